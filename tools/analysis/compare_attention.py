#!/usr/bin/env python
"""The tiny demo detector and segmentor trained, evaluated, exported and timed with each
attention type, in one table (``coordatt_mm/analysis/compare_attention.py`` or ``--help``).

    python tools/analysis/compare_attention.py \
        --attention none SE ECA TripletAttention SimAM CoordAtt [--det-epochs N --seg-iters N]
"""
import sys

from coordatt_cli.compare_attention import main

if __name__ == '__main__':
    sys.exit(main())
