#!/usr/bin/env python
"""The whole job on the tiny bundled data, on CPU, as a user runs it (`make demo`).

1. writes the tiny datasets (tools/make_tiny_data.py) to data/tiny/;
2. trains the tiny SSDLite-MobileNetV2-CA (COCO format) and DeepLabV3-MobileNetV2-CA
   (VOC format) with `mim train`, evaluates them and an untrained copy with `mim test`
   (COCO box mAP, mIoU);
3. runs folder inference (coordatt-infer) on held-out images;
4. prints a table of what it did and where the outputs are, and writes it to
   <work-dir>/summary.json.

    python tools/demo.py [--work-dir work_dirs/demo] [--det-epochs 30] [--seg-iters 300]
"""
import argparse
import glob
import json
import os
import os.path as osp
import shutil
import subprocess
import sys
import time

REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))
BIN = osp.dirname(sys.executable)
DET_CFG = 'configs/demo/ssdlite_mobilenetv2-ca_1xb8-30e_tiny-coco.py'
SEG_CFG = 'configs/demo/deeplabv3_mobilenetv2-ca-d8_1xb8-300i_tiny-voc12aug.py'
# What "visibly useful" means for the full demo schedule (asserted by tests/test_demo.py on a
# shortened one with its own, lower thresholds).
THRESHOLDS = {'coco/bbox_mAP': 0.15, 'mIoU': 70.0}


def sh(args, log):
    """Run a command with its output in ``log``; stop the demo with the log's tail on failure."""
    env = dict(os.environ, PATH=BIN + os.pathsep + os.environ.get('PATH', ''))
    with open(log, 'a') as f:
        f.write('$ ' + ' '.join(map(str, args)) + '\n')
        f.flush()
        r = subprocess.run(list(map(str, args)), cwd=REPO, env=env, stdout=f,
                           stderr=subprocess.STDOUT)
    if r.returncode != 0:
        tail = ''.join(open(log).readlines()[-25:])
        sys.exit(f'demo: {args[0]} failed (exit {r.returncode}); see {log}\n{tail}')


def test_metrics(work_dir, key):
    """Metrics of the newest `mim test` run in work_dir ({} when the model found nothing)."""
    for f in sorted(glob.glob(osp.join(work_dir, '2*', '2*.json')), reverse=True):
        recs = [json.loads(line) for line in open(f) if line.strip()]
        if recs and 'lr' not in recs[-1]:
            return {k: v for k, v in recs[-1].items() if '/' in k or k in ('mIoU', 'mAcc', 'aAcc')}
    return {}


def save_untrained(config, out):
    """A checkpoint of the freshly initialised model: the 'untrained' reference."""
    import logging
    import warnings

    import torch
    with warnings.catch_warnings():  # the libraries' import-time deprecations: not the user's concern
        warnings.simplefilter('ignore')
        from mmengine.logging import MMLogger
        from coordatt_mm.analysis import build_model_offline
        cfg, model = build_model_offline(osp.join(REPO, config))
    # init_weights reports every parameter on the console: keep the demo's output short
    loggers = list(MMLogger._instance_dict.values())
    levels = [lg.level for lg in loggers]
    for lg in loggers:
        lg.setLevel(logging.WARNING)
    try:
        model.init_weights()
    finally:
        for lg, level in zip(loggers, levels):
            lg.setLevel(level)
    torch.save(dict(state_dict=model.state_dict(), meta=dict(note='untrained')), out)


def train_eval(scope, config, work_dir, overrides, key, log):
    os.makedirs(work_dir, exist_ok=True)
    t = time.time()
    sh([osp.join(BIN, 'mim'), 'train', scope, config, '--work-dir', work_dir,
        '--cfg-options', *overrides], log)
    train_s = time.time() - t
    ckpt = open(osp.join(work_dir, 'last_checkpoint')).read().strip()
    untrained = osp.join(work_dir, 'untrained.pth')
    save_untrained(config, untrained)
    res = {}
    for name, c in (('untrained', untrained), ('trained', ckpt)):
        sub = osp.join(work_dir, f'test_{name}')
        sh([osp.join(BIN, 'mim'), 'test', scope, config, '--checkpoint', c, '--work-dir', sub], log)
        res[name] = test_metrics(sub, key).get(key, 0.0)
    return dict(config=config, checkpoint=ckpt, train_seconds=round(train_s, 1), metric=key,
                untrained=res['untrained'], trained=res['trained'], log=log)


def main(argv=None):
    ap = argparse.ArgumentParser(description='train, evaluate and run the tiny demo models')
    ap.add_argument('--work-dir', default=osp.join(REPO, 'work_dirs', 'demo'))
    ap.add_argument('--det-epochs', type=int, default=30)
    ap.add_argument('--seg-iters', type=int, default=300)
    ap.add_argument('--publish', default=None,
                    help='also copy one output picture per task and the summary into this '
                         'folder (docs/ holds the ones the README shows)')
    args = ap.parse_args(argv)
    wd = osp.abspath(args.work_dir)
    if osp.exists(wd):
        shutil.rmtree(wd)  # the demo's own output folder; each run starts clean
    os.makedirs(wd)
    log = osp.join(wd, 'demo.log')
    t0 = time.time()
    print(f'[demo] tiny datasets -> data/tiny (log: {log})', flush=True)
    sh([sys.executable, 'tools/make_tiny_data.py'], log)

    print(f'[demo] SSDLite-MobileNetV2-CA: mim train / mim test ({args.det_epochs} epochs)', flush=True)
    det = train_eval('mmdet', DET_CFG, osp.join(wd, 'ssdlite'),
                     [f'train_cfg.max_epochs={args.det_epochs}',
                      f'train_cfg.val_interval={args.det_epochs}',
                      f'param_scheduler.1.T_max={args.det_epochs}',
                      f'param_scheduler.1.end={args.det_epochs}'],
                     'coco/bbox_mAP', log)
    print(f'[demo] DeepLabV3-MobileNetV2-CA: mim train / mim test ({args.seg_iters} iterations)', flush=True)
    seg = train_eval('mmseg', SEG_CFG, osp.join(wd, 'deeplabv3'),
                     [f'train_cfg.max_iters={args.seg_iters}',
                      f'train_cfg.val_interval={args.seg_iters}',
                      f'param_scheduler.0.end={args.seg_iters}',
                      f'default_hooks.checkpoint.interval={args.seg_iters}'],
                     'mIoU', log)

    print('[demo] folder inference on held-out images', flush=True)
    for run, task in ((det, 'det'), (seg, 'seg')):
        out = osp.join(wd, 'infer', task)
        sh([osp.join(BIN, 'coordatt-infer'), run['config'], run['checkpoint'],
            'data/tiny/holdout/' + task, '--out-dir', out, '--quiet'], log)
        run['infer_out'] = out
        run['infer_summary'] = json.load(open(osp.join(out, 'summary.json')))
    summary = dict(det=det, seg=seg, thresholds=THRESHOLDS, seconds=round(time.time() - t0, 1),
                   schedule=dict(det_epochs=args.det_epochs, seg_iters=args.seg_iters))
    with open(osp.join(wd, 'summary.json'), 'w') as f:
        json.dump(summary, f, indent=2)
    if args.publish:
        os.makedirs(args.publish, exist_ok=True)
        shutil.copy(osp.join(det['infer_out'], 'det_00.jpg'), osp.join(args.publish, 'demo_det.jpg'))
        shutil.copy(osp.join(seg['infer_out'], 'seg_00_overlay.jpg'),
                    osp.join(args.publish, 'demo_seg.jpg'))
        shutil.copy(osp.join(wd, 'summary.json'), osp.join(args.publish, 'demo_summary.json'))
    rows = [('task', 'metric', 'untrained', 'trained', 'train s', 'images inferred', 'outputs')]
    for name, r in (('detection', det), ('segmentation', seg)):
        s = r['infer_summary']
        rows.append((name, r['metric'], f"{r['untrained']:.3f}", f"{r['trained']:.3f}",
                     f"{r['train_seconds']:.0f}", f"{s['images_done']}/{s['images_found']}",
                     osp.relpath(r['infer_out'], REPO)))
    widths = [max(len(str(row[i])) for row in rows) for i in range(len(rows[0]))]
    print()
    for row in rows:
        print('  '.join(str(c).ljust(w) for c, w in zip(row, widths)))
    print(f'\ncheckpoints: {osp.relpath(det["checkpoint"], REPO)}, {osp.relpath(seg["checkpoint"], REPO)}')
    print(f'summary: {osp.relpath(osp.join(wd, "summary.json"), REPO)}; '
          f'total {summary["seconds"]:.0f} s')
    ok = det['trained'] >= THRESHOLDS['coco/bbox_mAP'] and seg['trained'] >= THRESHOLDS['mIoU']
    if (args.det_epochs, args.seg_iters) == (30, 300) and not ok:
        print(f'[demo] WARNING: below the expected thresholds {THRESHOLDS}', file=sys.stderr)
        return 1
    return 0


if __name__ == '__main__':
    sys.exit(main())
