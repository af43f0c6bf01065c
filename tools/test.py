#!/usr/bin/env python
"""Evaluate a checkpoint with any coordatt_mm config (see ``coordatt_mm/apis/run.py`` or
``--help``); the metrics also go to ``<work_dir>/test_metrics.json``."""
import sys

from coordatt_mm.apis.run import test

if __name__ == '__main__':
    sys.exit(test())
