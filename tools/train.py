#!/usr/bin/env python
"""Train any coordatt_mm config (mmdet or mmseg: the config's ``default_scope`` decides).

    python tools/train.py CONFIG [--work-dir DIR] [--resume [CKPT]] [--amp]
                                 [--cfg-options k=v ...] [--launcher none|pytorch|slurm|mpi]

Outputs go to ``work_dirs/<config name>/`` unless ``--work-dir`` or the config says otherwise.
"""
import argparse
import os
import os.path as osp
import sys

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
    ap.add_argument('--skip-bad-samples', action='store_true',
                    help='check the training data first (tools/check_dataset.py) and train on '
                         'the samples that pass, with a warning, instead of stopping')
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


def check_checkpoint(path: str) -> None:
    """Fail now, with the file and the problem, if a checkpoint to load cannot be read."""
    from coordatt_mm.compat import load_checkpoint_file
    ckpt = load_checkpoint_file(path)
    if not isinstance(ckpt, dict) or not isinstance(ckpt.get('state_dict', ckpt), dict):
        raise RuntimeError(f'{path}: not a training checkpoint (no state_dict)')


def skip_bad_samples(cfg) -> None:
    """Restrict each training dataset to the samples that pass the data check."""
    import copy

    from mmengine.registry import DATASETS, init_default_scope

    from coordatt_mm.data_check import check_sample
    init_default_scope(cfg.default_scope)
    task = 'det' if cfg.default_scope == 'mmdet' else 'seg'

    def leaves(d):
        if 'datasets' in d:
            for x in d['datasets']:
                yield from leaves(x)
        elif 'dataset' in d:
            yield from leaves(d['dataset'])
        else:
            yield d

    for leaf in leaves(cfg.train_dataloader.dataset):
        probe = copy.deepcopy(leaf)
        probe['pipeline'] = []
        ds = DATASETS.build(probe)
        n_cls = len(ds.metainfo['classes'])
        good, bad = [], []
        for i in range(len(ds)):
            problems = check_sample(ds.get_data_info(i), task, n_cls)
            (bad if problems else good).append(i)
            for p in problems:
                print(f'warning: skipping {p}', file=sys.stderr)
        if bad:
            if not good:
                raise RuntimeError(f'no usable training sample in {leaf.get("ann_file", leaf)}')
            leaf['indices'] = good
            print(f'warning: --skip-bad-samples: {len(bad)} of {len(ds)} samples left out',
                  file=sys.stderr)


def main(argv=None):
    args = parse_args(argv)
    cfg = load_config(args)
    try:
        for path in (args.resume if args.resume not in (None, 'auto') else None,
                     cfg.get('load_from')):
            if path:
                check_checkpoint(path)
        if args.skip_bad_samples:
            skip_bad_samples(cfg)
    except (RuntimeError, FileNotFoundError) as e:
        sys.exit(f'error: {e}')
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
