#!/usr/bin/env python
"""Score a checkpoint or an end-to-end ONNX export with any coordatt_mm config; the metrics
also go to ``<work_dir>/test_metrics.json`` (see ``coordatt_mm/apis/run.py`` or ``--help``)."""
import sys

from coordatt_cli.test import main

if __name__ == '__main__':
    sys.exit(main())
