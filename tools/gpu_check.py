#!/usr/bin/env python
"""Check a GPU machine end to end against CPU references: mmcv's CUDA ops, CoordAtt on CUDA,
SyncBN in two processes, AMP training and testing of the tiny demo configs, the CUDA benchmark
(see ``coordatt_cli/gpu_check/`` or ``--help``). Without a GPU every check is skipped."""
import sys

from coordatt_cli.gpu_check import main

if __name__ == '__main__':
    sys.exit(main())
