"""``tools/gpu_check.py``: check a GPU machine end to end; a pass/fail table with figures.

    python tools/gpu_check.py [--out work_dirs/gpu_check] [--iters 80] [--skip|--only CHECK ...]

Each check compares what the GPU computes with a reference computed elsewhere:

- ``mmcv-ops`` (:mod:`.mmcv_ops`): mmcv's nms, batched_nms and roi_align on CUDA against the CPU;
- ``coordatt`` (:mod:`.coordatt`): CoordAtt's training step (float32, float16 and bfloat16
  autocast) and the MobileNetV2CA backbone on CUDA against the CPU in float64;
- ``syncbn`` (:mod:`.syncbn`): SyncBatchNorm in two processes (NCCL on two GPUs, gloo on one)
  against one BatchNorm over both processes' data;
- ``train-det``, ``train-seg`` (:mod:`.training`): the tiny demo configs trained with AMP and
  tested; finite falling losses and the codebase's metric;
- ``benchmark`` (:mod:`.benchmark`): the CUDA benchmark, CA vs plain.

The verdicts are pure functions (:mod:`.compare`). Without a GPU every row is ``skipped`` and the
exit status is 0; it is 1 when a check fails. This module parses the command line with the
standard library alone; the checks import torch and coordatt_mm once it is valid.
"""
import argparse
import sys
from typing import List, Optional

CHECKS = ('mmcv-ops', 'coordatt', 'syncbn', 'train-det', 'train-seg', 'benchmark')


def parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(
        description="Check a GPU machine against CPU references: mmcv's CUDA ops, CoordAtt on "
                    'CUDA, SyncBN in two processes, AMP training and testing of the tiny demo '
                    'configs, the CUDA benchmark; a pass/fail table. Without a GPU every check '
                    'is skipped.')
    ap.add_argument('--out', default='work_dirs/gpu_check', help='where reports and logs go')
    ap.add_argument('--iters', type=int, default=80,
                    help='training iterations per demo config (detection: whole epochs of '
                         "8); the metric floors the rows must reach assume the default 80")
    pick = ap.add_mutually_exclusive_group()
    pick.add_argument('--skip', nargs='+', default=[], choices=CHECKS, metavar='CHECK',
                      help=f'checks to leave out: {", ".join(CHECKS)}')
    pick.add_argument('--only', nargs='+', default=[], choices=CHECKS, metavar='CHECK',
                      help='the checks to run (all by default)')
    return ap


def main(argv: Optional[List[str]] = None) -> int:
    args = parser().parse_args(argv)
    if args.iters < 1:
        parser().error(f'--iters must be at least 1, got {args.iters}')
    selected = [c for c in CHECKS if c not in args.skip and (not args.only or c in args.only)]
    from coordatt_cli.gpu_check.runner import gpu_check
    return gpu_check(args.out, args.iters, selected)


if __name__ == '__main__':
    sys.exit(main())
