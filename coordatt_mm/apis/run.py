"""Training and testing any coordatt_mm config (mmdet, mmseg or mmpretrain: its
``default_scope`` decides), behind ``tools/train.py`` and ``tools/test.py``.

Outputs go to ``work_dirs/<config name>/`` unless ``work_dir`` or the config says otherwise.
Testing prints the metrics and writes them to ``<work_dir>/test_metrics.json``; end-to-end
``.onnx`` exports go through the same test loop from :mod:`coordatt_mm.deploy.evaluation`.
"""
import json
import os
import os.path as osp
import sys
from typing import Optional

from mmengine.config import Config

from coordatt_mm.checkpoint import load_checkpoint_file
from coordatt_mm.datasets.check import skip_bad_samples


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


def train(config: str, work_dir: Optional[str] = None, resume: Optional[str] = None,
          amp: bool = False, skip_bad: bool = False, cfg_options: Optional[dict] = None,
          launcher: str = 'none', local_rank: int = 0) -> int:
    """Train; ``resume``: a checkpoint, or ``'auto'`` for the work dir's latest. The exit
    status (1 with a one-line error when a checkpoint or the data cannot be used)."""
    os.environ.setdefault('LOCAL_RANK', str(local_rank))
    cfg = load_config(config, work_dir, cfg_options, launcher)
    try:
        for path in (resume if resume != 'auto' else None, cfg.get('load_from')):
            if path:
                check_checkpoint(path)
        if skip_bad:
            skip_bad_samples(cfg)
    except (RuntimeError, FileNotFoundError) as e:
        print(f'error: {e}', file=sys.stderr)
        return 1
    if amp:
        cfg.optim_wrapper.type = 'AmpOptimWrapper'
        cfg.optim_wrapper.setdefault('loss_scale', 'dynamic')
    if resume == 'auto':
        cfg.resume, cfg.load_from = True, None
    elif resume:
        cfg.resume, cfg.load_from = True, resume
    build_runner(cfg).train()
    return 0


def test(config: str, checkpoint: str, work_dir: Optional[str] = None,
         cfg_options: Optional[dict] = None, launcher: str = 'none',
         local_rank: int = 0) -> int:
    """Score ``checkpoint`` with the config's test set and evaluator; write
    ``test_metrics.json``. The exit status (1 with a one-line error for a file it cannot use;
    ``.onnx`` exports are scored by :func:`coordatt_mm.deploy.evaluation.evaluate_onnx`)."""
    os.environ.setdefault('LOCAL_RANK', str(local_rank))
    try:
        if checkpoint.lower().endswith('.onnx'):
            raise RuntimeError(f'{checkpoint}: an ONNX model (tools/test.py scores it with '
                               f'ONNX Runtime: coordatt_mm.deploy.evaluation.evaluate_onnx)')
        check_checkpoint(checkpoint)
    except (RuntimeError, FileNotFoundError) as e:
        print(f'error: {e}', file=sys.stderr)
        return 1
    cfg = load_config(config, work_dir, cfg_options, launcher)
    cfg.load_from = checkpoint
    return run_test_loop(cfg, config, checkpoint, 'pytorch')


def run_test_loop(cfg: Config, config: str, model: str, backend: str) -> int:
    """The test loop of ``cfg`` (its model set up: a checkpoint to load, or another
    backend's stand-in); the metrics printed and written to ``<work_dir>/test_metrics.json``
    with the config, the model file and ``backend``."""
    runner = build_runner(cfg)
    metrics = runner.test()
    if runner.rank == 0:
        out = osp.join(cfg.work_dir, 'test_metrics.json')
        with open(out, 'w') as f:
            json.dump(dict(config=config, checkpoint=model, backend=backend,
                           metrics={k: float(v) for k, v in metrics.items()}), f, indent=2)
        print(f'metrics written to {out}')
    return 0
