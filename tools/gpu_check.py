#!/usr/bin/env python
"""Check a GPU machine end to end: mmcv's CUDA ops, CoordAtt on CUDA, AMP training and testing
of the tiny demo configs, NCCL with SyncBN, the CUDA benchmark (see
``coordatt_mm/apis/gpu_check.py`` or ``--help``). Without a GPU it runs what needs none."""
import sys

from coordatt_cli.gpu_check import main

if __name__ == '__main__':
    sys.exit(main())
