#!/usr/bin/env python
"""Train any coordatt_mm config (see ``coordatt_mm/apis/run.py`` or ``--help``)."""
import sys

from coordatt_cli.train import main

if __name__ == '__main__':
    sys.exit(main())
