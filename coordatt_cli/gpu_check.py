"""``tools/gpu_check.py``: check a GPU machine end to end (see coordatt_mm/apis/gpu_check.py)."""
import argparse
import sys
from typing import List, Optional

CHECKS = ('mmcv-ops', 'coordatt', 'train-det', 'train-seg', 'nccl-syncbn', 'benchmark')


def parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(
        description="Check a GPU machine: mmcv's CUDA ops, CoordAtt on CUDA, AMP training and "
                    "testing of the tiny demo configs, NCCL with SyncBN, the CUDA benchmark; "
                    "a pass/fail table. Without a GPU, the checks that need none.")
    ap.add_argument('--out', default='work_dirs/gpu_check', help='where reports and logs go')
    ap.add_argument('--iters', type=int, default=30, help='training iterations per config')
    ap.add_argument('--skip', nargs='+', default=[], choices=CHECKS, metavar='CHECK',
                    help=f'checks to leave out: {", ".join(CHECKS)}')
    return ap


def main(argv: Optional[List[str]] = None) -> int:
    args = parser().parse_args(argv)
    from coordatt_mm.apis.gpu_check import gpu_check
    return gpu_check(args.out, args.iters, args.skip)


if __name__ == '__main__':
    sys.exit(main())
