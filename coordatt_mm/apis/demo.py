"""The whole job on the tiny bundled data, on CPU (``make demo``, ``tools/demo.py``).

1. writes the tiny datasets (``tools/make_tiny_data.py``) to ``data/tiny/`` unless current;
2. trains the tiny SSDLite-MobileNetV2-CA (COCO format) and DeepLabV3-MobileNetV2-CA (VOC
   format), then evaluates each with its test set (COCO box mAP, mIoU), printing a progress line
   at least every few seconds;
3. runs folder inference (as ``coordatt-infer``) on held-out images;
4. prints a table of what it did and where the outputs are, and writes it to
   ``<work-dir>/summary.json``.

The same steps with OpenMMLab's commands: ``mim train mmdet CONFIG``, ``mim test mmdet CONFIG
--checkpoint CKPT``, ``coordatt-infer CONFIG CKPT FOLDER``.
"""
import contextlib
import json
import os
import os.path as osp
import platform
import shutil
import sys
import time
from typing import Optional

from mmengine.hooks import Hook

REPO = osp.dirname(osp.dirname(osp.dirname(osp.realpath(__file__))))
CONFIGS = {'det': 'configs/demo/ssdlite_mobilenetv2-ca_1xb6-14e_tiny-coco.py',
           'seg': 'configs/demo/deeplabv3_mobilenetv2-ca-d16_1xb8-100i_tiny-voc12aug.py'}
METRICS = {'det': 'coco/bbox_mAP', 'seg': 'mIoU'}
NAMES = {'det': 'detection', 'seg': 'segmentation'}
# What "it learned" means for the demo's own schedule: far above what an untrained model scores
# (box mAP 0; mIoU about 21, background everywhere), far below what training reaches. Training
# on tiny data amplifies rounding: with 5 seeds, each kernel build and each oneDNN instruction
# set of an AVX2 CPU, and on an AVX-512 CPU, the detector ended at 0.22-0.43 box mAP and the
# segmentor at 77-91 mIoU.
THRESHOLDS = {'coco/bbox_mAP': 0.10, 'mIoU': 60.0}


_T0 = time.time()


def say(msg: str) -> None:
    """A console line, stamped with the time since the demo started (m:ss)."""
    m, s = divmod(int(time.time() - _T0), 60)
    print(f'[demo {m}:{s:02d}] {msg}', file=sys.__stdout__, flush=True)


class ConsoleProgressHook(Hook):
    """One console line (task, epoch/iteration, loss, ETA) every ``interval`` seconds."""

    priority = 'LOW'

    def __init__(self, task: str, interval: float = 5.0) -> None:
        self.task, self.interval = task, interval
        self.t0 = self.last = None

    def before_train(self, runner) -> None:
        self.t0 = self.last = time.time()

    def after_train_iter(self, runner, batch_idx, data_batch=None, outputs=None) -> None:
        now, done = time.time(), runner.iter + 1
        if now - self.last < self.interval and done < runner.max_iters:
            return
        self.last = now
        eta = (now - self.t0) / done * (runner.max_iters - done)
        where = (f'epoch {runner.epoch + 1}/{runner.max_epochs}, '
                 if runner.train_loop.__class__.__name__.startswith('Epoch') else '')
        loss = (outputs or {}).get('loss', float('nan'))
        loss = float(loss.detach() if hasattr(loss, 'detach') else loss)
        say(f'{NAMES[self.task]}: {where}iteration {done}/{runner.max_iters}, loss {loss:.3f}, '
            f'ETA {eta:.0f} s')


def _schedule(task: str, length: Optional[int]) -> dict:
    """Config overrides for another length (epochs for detection, iterations otherwise)."""
    if length is None:
        return {}
    if task == 'det':
        return {'train_cfg.max_epochs': length, 'param_scheduler.1.T_max': length,
                'param_scheduler.1.end': length}
    return {'train_cfg.max_iters': length, 'param_scheduler.0.end': length}


def train_and_test(task: str, work_dir: str, log, length: Optional[int] = None,
                   options: Optional[dict] = None) -> dict:
    """Train the task's demo config, then evaluate the last checkpoint on its test set.
    ``options``: config entries to override as well (e.g. the backbone's attention)."""
    from coordatt_mm.apis.run import build_runner, load_config
    config = osp.join(REPO, CONFIGS[task])
    options = {**_schedule(task, length), **(options or {})}
    cfg = load_config(config, work_dir, options)
    t = time.time()
    # mmengine's console output and the libraries' warnings go to the demo log
    with contextlib.redirect_stdout(log), contextlib.redirect_stderr(log):
        runner = build_runner(cfg)
        runner.register_hook(ConsoleProgressHook(task))
        say(f'{NAMES[task]}: model built, training starts')
        runner.train()
    train_s = time.time() - t
    ckpt = osp.join(work_dir, open(osp.join(work_dir, 'last_checkpoint')).read().strip()
                    .rsplit('/', 1)[-1])
    say(f'{NAMES[task]}: testing {osp.relpath(ckpt, REPO)}')
    cfg = load_config(config, osp.join(work_dir, 'test'), options)
    cfg.load_from = ckpt
    with contextlib.redirect_stdout(log), contextlib.redirect_stderr(log):
        metrics = build_runner(cfg).test()
    return dict(config=CONFIGS[task], checkpoint=ckpt, train_seconds=round(train_s, 1),
                metric=METRICS[task], trained=float(metrics.get(METRICS[task], 0.0)),
                metrics={k: float(v) for k, v in metrics.items()})


def infer_holdout(task: str, result: dict, work_dir: str, log) -> None:
    from coordatt_mm.apis.infer import run
    out = osp.join(work_dir, 'infer', task)
    with contextlib.redirect_stdout(log), contextlib.redirect_stderr(log):
        run(osp.join(REPO, result['config']), result['checkpoint'],
            osp.join(REPO, 'data', 'tiny', 'holdout', task), out, quiet=True)
    result['infer_out'] = out
    with open(osp.join(out, 'summary.json')) as f:
        result['infer_summary'] = json.load(f)


def table(summary: dict) -> str:
    rows = [('task', 'metric', 'trained', 'threshold', 'train s', 'images inferred', 'outputs')]
    for task in ('det', 'seg'):
        r, s = summary[task], summary[task]['infer_summary']
        rows.append((NAMES[task], r['metric'], f"{r['trained']:.3f}",
                     f"{THRESHOLDS[r['metric']]}", f"{r['train_seconds']:.0f}",
                     f"{s['images_done']}/{s['images_found']}",
                     osp.relpath(r['infer_out'], REPO)))
    widths = [max(len(str(row[i])) for row in rows) for i in range(len(rows[0]))]
    return '\n'.join('  '.join(str(c).ljust(w) for c, w in zip(row, widths)) for row in rows)


def publish(summary: dict, work_dir: str, folder: str) -> None:
    """One output picture per task and the summary, for the README (``--publish docs``)."""
    os.makedirs(folder, exist_ok=True)
    shutil.copy(osp.join(summary['det']['infer_out'], 'det_00.jpg'),
                osp.join(folder, 'demo_det.jpg'))
    shutil.copy(osp.join(summary['seg']['infer_out'], 'seg_00_overlay.jpg'),
                osp.join(folder, 'demo_seg.jpg'))
    with open(osp.join(work_dir, 'summary.json')) as f:  # paths relative to the repository
        text = f.read().replace(REPO + os.sep, '')
    with open(osp.join(folder, 'demo_summary.json'), 'w') as f:
        f.write(text)


def ensure_tiny_data() -> str:
    """``data/tiny`` (``tools/make_tiny_data.py``), written again unless current; its path."""
    from coordatt_mm.datasets import is_current, make_all
    tiny = osp.join(REPO, 'data', 'tiny')
    if not is_current(tiny):
        shutil.rmtree(tiny, ignore_errors=True)
        make_all(tiny)
    return tiny


def run_demo(work_dir: str, det_epochs: Optional[int] = None, seg_iters: Optional[int] = None,
             publish_to: Optional[str] = None) -> dict:
    global _T0
    t0 = _T0 = time.time()
    if osp.exists(work_dir):
        shutil.rmtree(work_dir)  # the demo's own output folder; each run starts clean
    os.makedirs(work_dir)
    log_path = osp.join(work_dir, 'demo.log')
    summary = dict(thresholds=THRESHOLDS)
    with open(log_path, 'a') as log:
        tiny = ensure_tiny_data()
        say(f'tiny datasets in {osp.relpath(tiny, REPO)} (full log: {osp.relpath(log_path, REPO)})')
        for task, length in (('det', det_epochs), ('seg', seg_iters)):
            say(f'{NAMES[task]}: training {CONFIGS[task]}')
            summary[task] = train_and_test(task, osp.join(work_dir, task), log, length)
            say(f'{NAMES[task]}: {METRICS[task]} {summary[task]["trained"]:.3f}')
        say('folder inference on held-out images')
        for task in ('det', 'seg'):
            infer_holdout(task, summary[task], work_dir, log)
    summary['seconds'] = round(time.time() - t0, 1)
    import torch

    from coordatt_mm.ops.cpu import features_text
    summary['machine'] = (f'{os.cpu_count()} CPU cores ({platform.machine()}; '
                          f'{features_text()}; torch {torch.__version__})')
    summary['schedule'] = dict(det_epochs=det_epochs, seg_iters=seg_iters)
    with open(osp.join(work_dir, 'summary.json'), 'w') as f:
        json.dump(summary, f, indent=2)
    if publish_to:
        publish(summary, work_dir, publish_to)
    print('\n' + table(summary), flush=True)
    print(f'\nsummary: {osp.relpath(osp.join(work_dir, "summary.json"), REPO)}; '
          f'total {summary["seconds"]:.0f} s', flush=True)
    return summary


def demo(work_dir: str, det_epochs: Optional[int] = None, seg_iters: Optional[int] = None,
         publish: Optional[str] = None) -> int:
    """``make demo`` / ``tools/demo.py``: 1 when the demo's own schedule ends below the
    thresholds."""
    summary = run_demo(osp.abspath(work_dir), det_epochs, seg_iters, publish)
    ok = all(summary[t]['trained'] >= THRESHOLDS[METRICS[t]] for t in ('det', 'seg'))
    if (det_epochs, seg_iters) == (None, None) and not ok:
        say(f'WARNING: below the expected thresholds {THRESHOLDS}')
        return 1
    return 0
