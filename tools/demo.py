#!/usr/bin/env python
"""The whole job on the tiny bundled data, on CPU (``make demo``); see
``coordatt_mm/apis/demo.py`` or ``--help``."""
import sys

from coordatt_cli.demo import main

if __name__ == '__main__':
    sys.exit(main())
