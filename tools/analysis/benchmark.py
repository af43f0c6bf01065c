#!/usr/bin/env python
"""Side-by-side latency, baseline vs Coordinate Attention (``coordatt_mm/analysis/benchmark/``
or ``--help``)."""
import sys

from coordatt_cli.benchmark import main

if __name__ == '__main__':
    sys.exit(main())
