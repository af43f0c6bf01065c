"""Training and testing any coordatt_mm config (mmdet or mmseg: its ``default_scope`` decides),
behind ``tools/train.py`` and ``tools/test.py``.

    python tools/train.py CONFIG [--work-dir DIR] [--resume [CKPT]] [--amp] [--skip-bad-samples]
                                 [--cfg-options k=v ...] [--launcher none|pytorch|slurm|mpi]
    python tools/test.py CONFIG CHECKPOINT [--work-dir DIR] [--cfg-options k=v ...]
                                           [--launcher none|pytorch|slurm|mpi]

Outputs go to ``work_dirs/<config name>/`` unless ``--work-dir`` or the config says otherwise.
``tools/test.py`` prints the metrics and writes them to ``<work_dir>/test_metrics.json``.
"""
import argparse
import json
import os
import os.path as osp
import sys
from typing import List, Optional

from mmengine.config import Config, DictAction

from coordatt_mm.checkpoint import load_checkpoint_file
from coordatt_mm.datasets.check import skip_bad_samples


def _parser(description: str) -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(description=description)
    ap.add_argument('config', help='config file')
    return ap


def _common(ap: argparse.ArgumentParser) -> None:
    ap.add_argument('--work-dir', help='where logs and checkpoints go')
    ap.add_argument('--cfg-options', nargs='+', action=DictAction,
                    help='override config entries, e.g. train_cfg.max_epochs=1')
    ap.add_argument('--launcher', choices=['none', 'pytorch', 'slurm', 'mpi'], default='none')
    ap.add_argument('--local_rank', '--local-rank', type=int, default=0)


def load_config(config: str, work_dir: Optional[str] = None, cfg_options: Optional[dict] = None,
                launcher: str = 'none') -> Config:
    cfg = Config.fromfile(config)
    cfg.launcher = launcher
    if cfg_options:
        cfg.merge_from_dict(cfg_options)
    if work_dir:
        cfg.work_dir = work_dir
    elif cfg.get('work_dir') is None:
        cfg.work_dir = osp.join('work_dirs', osp.splitext(osp.basename(config))[0])
    return cfg


def check_checkpoint(path: str) -> None:
    """Fail now, with the file and the problem, if a checkpoint to load cannot be read."""
    ckpt = load_checkpoint_file(path)
    if not isinstance(ckpt, dict) or not isinstance(ckpt.get('state_dict', ckpt), dict):
        raise RuntimeError(f'{path}: not a training checkpoint (no state_dict)')


def build_runner(cfg: Config):
    """The config's runner (``runner_type``, as mmdet's and mmseg's tools do) or mmengine's."""
    from mmengine.registry import RUNNERS
    from mmengine.runner import Runner
    return RUNNERS.build(cfg) if 'runner_type' in cfg else Runner.from_cfg(cfg)


def train(argv: Optional[List[str]] = None) -> int:
    ap = _parser('Train a detector or segmentor')
    _common(ap)
    ap.add_argument('--resume', nargs='?', const='auto', default=None,
                    help='resume from CKPT, or from the latest checkpoint of the work dir')
    ap.add_argument('--amp', action='store_true', help='mixed precision (CUDA)')
    ap.add_argument('--skip-bad-samples', action='store_true',
                    help='check the training data first (tools/check_dataset.py) and train on '
                         'the samples that pass, with a warning, instead of stopping')
    args = ap.parse_args(argv)
    os.environ.setdefault('LOCAL_RANK', str(args.local_rank))
    cfg = load_config(args.config, args.work_dir, args.cfg_options, args.launcher)
    try:
        for path in (args.resume if args.resume != 'auto' else None, cfg.get('load_from')):
            if path:
                check_checkpoint(path)
        if args.skip_bad_samples:
            skip_bad_samples(cfg)
    except (RuntimeError, FileNotFoundError) as e:
        print(f'error: {e}', file=sys.stderr)
        return 1
    if args.amp:
        cfg.optim_wrapper.type = 'AmpOptimWrapper'
        cfg.optim_wrapper.setdefault('loss_scale', 'dynamic')
    if args.resume == 'auto':
        cfg.resume, cfg.load_from = True, None
    elif args.resume:
        cfg.resume, cfg.load_from = True, args.resume
    build_runner(cfg).train()
    return 0


def test(argv: Optional[List[str]] = None) -> int:
    ap = _parser('Test a detector or segmentor')
    ap.add_argument('checkpoint')
    _common(ap)
    args = ap.parse_args(argv)
    os.environ.setdefault('LOCAL_RANK', str(args.local_rank))
    try:
        check_checkpoint(args.checkpoint)
    except (RuntimeError, FileNotFoundError) as e:
        print(f'error: {e}', file=sys.stderr)
        return 1
    cfg = load_config(args.config, args.work_dir, args.cfg_options, args.launcher)
    cfg.load_from = args.checkpoint
    runner = build_runner(cfg)
    metrics = runner.test()
    if runner.rank == 0:
        out = osp.join(cfg.work_dir, 'test_metrics.json')
        with open(out, 'w') as f:
            json.dump(dict(config=args.config, checkpoint=args.checkpoint,
                           metrics={k: float(v) for k, v in metrics.items()}), f, indent=2)
        print(f'metrics written to {out}')
    return 0
