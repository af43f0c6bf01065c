#!/usr/bin/env python
"""Train any coordatt_mm config (mmdet or mmseg: the config's ``default_scope`` decides).

    python tools/train.py CONFIG [--work-dir DIR] [--resume [CKPT]] [--amp]
                                 [--cfg-options k=v ...] [--launcher none|pytorch|slurm|mpi]

Outputs go to ``work_dirs/<config name>/`` unless ``--work-dir`` or the config says otherwise.
"""
import argparse
import os
import os.path as osp

from mmengine.config import Config, DictAction
from mmengine.runner import Runner

import coordatt_mm  # noqa: F401  (registers modules; lets torch load Runner checkpoints)


def parse_args(argv=None):
    ap = argparse.ArgumentParser(description='Train a detector or segmentor')
    ap.add_argument('config', help='config file')
    ap.add_argument('--work-dir', help='where logs and checkpoints go')
    ap.add_argument('--resume', nargs='?', const='auto', default=None,
                    help='resume from CKPT, or from the latest checkpoint of the work dir')
    ap.add_argument('--amp', action='store_true', help='mixed precision (CUDA)')
    ap.add_argument('--cfg-options', nargs='+', action=DictAction,
                    help='override config entries, e.g. train_cfg.max_epochs=1')
    ap.add_argument('--launcher', choices=['none', 'pytorch', 'slurm', 'mpi'], default='none')
    ap.add_argument('--local_rank', '--local-rank', type=int, default=0)
    args = ap.parse_args(argv)
    os.environ.setdefault('LOCAL_RANK', str(args.local_rank))
    return args


def load_config(args) -> Config:
    cfg = Config.fromfile(args.config)
    cfg.launcher = args.launcher
    if args.cfg_options:
        cfg.merge_from_dict(args.cfg_options)
    if args.work_dir:
        cfg.work_dir = args.work_dir
    elif cfg.get('work_dir') is None:
        cfg.work_dir = osp.join('work_dirs', osp.splitext(osp.basename(args.config))[0])
    return cfg


def main(argv=None):
    args = parse_args(argv)
    cfg = load_config(args)
    if args.amp:
        cfg.optim_wrapper.type = 'AmpOptimWrapper'
        cfg.optim_wrapper.setdefault('loss_scale', 'dynamic')
    if args.resume == 'auto':
        cfg.resume, cfg.load_from = True, None
    elif args.resume:
        cfg.resume, cfg.load_from = True, args.resume
    Runner.from_cfg(cfg).train()


if __name__ == '__main__':
    main()
