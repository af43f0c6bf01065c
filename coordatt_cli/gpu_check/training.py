"""The ``train-det`` and ``train-seg`` checks: the tiny demo SSDLite and DeepLabV3 configs trained
on the GPU with ``--amp`` (mmengine's AmpOptimWrapper: float16, dynamic loss scale) and tested
(NMS on the GPU). A row passes with finite, falling losses and the codebase's metric
(``coco/bbox_mAP``, ``mIoU``) at or above its floor (``compare.METRIC_FLOORS``, which a model
that learned nothing misses); a missing metric is a failure."""
import json
import math
import os.path as osp
import re
import sys
from typing import List, Optional

from coordatt_cli.gpu_check.compare import METRICS, Failed, falling_losses, training_metric
from coordatt_cli.gpu_check.process import run_logged, tail

DET = 'configs/demo/ssdlite_mobilenetv2-ca_1xb6-14e_tiny-coco.py'
SEG = 'configs/demo/deeplabv3_mobilenetv2-ca-d16_1xb8-100i_tiny-voc12aug.py'
DET_ITERS_PER_EPOCH = 8  # the tiny COCO's training images over the config's batch size


def logged_losses(out: str) -> List[float]:
    """The training losses mmengine's logger printed, in order."""
    return [float(v) for v in re.findall(r'\bloss: ([0-9.]+(?:e[-+]?\d+)?|nan|inf)', out)]


def train_and_test(task: str, out_dir: str, iters: int, amp: bool = True,
                   floor: Optional[float] = None) -> str:
    """Train the tiny demo config of ``task`` ('det' or 'seg') for about ``iters`` iterations,
    test its checkpoint; the table's figure. ``floor``: the least metric that passes (default
    ``METRIC_FLOORS[task]``, for the default 80 iterations)."""
    config = DET if task == 'det' else SEG
    wd = osp.join(out_dir, f'train-{task}')
    if task == 'det':
        epochs = max(1, math.ceil(iters / DET_ITERS_PER_EPOCH))
        opts = [f'train_cfg.max_epochs={epochs}', 'default_hooks.logger.interval=4',
                f'default_hooks.checkpoint.interval={epochs}']
    else:
        opts = [f'train_cfg.max_iters={iters}', 'default_hooks.logger.interval=5',
                f'default_hooks.checkpoint.interval={iters}']
    code, out = run_logged([sys.executable, 'tools/train.py', config, '--work-dir', wd]
                           + ['--amp'] * amp + ['--cfg-options'] + opts,
                           osp.join(out_dir, f'train-{task}.log'))
    if code != 0:
        raise Failed(f'training failed: {tail(out)}')
    if amp and 'AmpOptimWrapper' not in out:
        raise Failed('the run did not use AmpOptimWrapper')
    losses = falling_losses(logged_losses(out))
    with open(osp.join(wd, 'last_checkpoint')) as f:
        checkpoint = f.read().strip()
    code, out = run_logged([sys.executable, 'tools/test.py', config, checkpoint, '--work-dir', wd],
                           osp.join(out_dir, f'test-{task}.log'))
    if code != 0:
        raise Failed(f'test failed: {tail(out)}')
    with open(osp.join(wd, 'test_metrics.json')) as f:
        metric = training_metric(task, json.load(f)['metrics'], floor)
    return (f'{"AMP" if amp else "float32"}, {losses}; test: {METRICS[task][0]} {metric:.3f}'
            + (' (NMS on the GPU)' if amp and task == 'det' else ''))
