#!/usr/bin/env python
"""Evaluate a checkpoint with any coordatt_mm config (COCO/VOC mAP or mIoU).

    python tools/test.py CONFIG CHECKPOINT [--work-dir DIR] [--cfg-options k=v ...]
                                           [--launcher none|pytorch|slurm|mpi]

The metrics are printed and written to ``<work_dir>/test_metrics.json``.
"""
import argparse
import json
import os
import os.path as osp
import sys

from mmengine.config import DictAction
from mmengine.runner import Runner

sys.path.insert(0, osp.dirname(osp.abspath(__file__)))
from train import check_checkpoint, load_config  # noqa: E402


def main(argv=None):
    ap = argparse.ArgumentParser(description='Test a detector or segmentor')
    ap.add_argument('config')
    ap.add_argument('checkpoint')
    ap.add_argument('--work-dir')
    ap.add_argument('--cfg-options', nargs='+', action=DictAction)
    ap.add_argument('--launcher', choices=['none', 'pytorch', 'slurm', 'mpi'], default='none')
    ap.add_argument('--local_rank', '--local-rank', type=int, default=0)
    args = ap.parse_args(argv)
    os.environ.setdefault('LOCAL_RANK', str(args.local_rank))
    try:
        check_checkpoint(args.checkpoint)
    except (RuntimeError, FileNotFoundError) as e:
        sys.exit(f'error: {e}')
    cfg = load_config(args)
    cfg.load_from = args.checkpoint
    runner = Runner.from_cfg(cfg)
    metrics = runner.test()
    if runner.rank == 0:
        out = osp.join(cfg.work_dir, 'test_metrics.json')
        with open(out, 'w') as f:
            json.dump(dict(config=args.config, checkpoint=args.checkpoint,
                           metrics={k: float(v) for k, v in metrics.items()}), f, indent=2)
        print(f'metrics written to {out}')


if __name__ == '__main__':
    main()
