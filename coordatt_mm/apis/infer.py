"""Folder inference for coordatt_mm detectors and segmentors (``coordatt-infer``).

    coordatt-infer CONFIG CHECKPOINT INPUT [--out-dir DIR] [--device cpu|cuda]
                   [--batch-size N] [--score-thr T] [--overwrite] [--quiet]

INPUT is an image, a folder (searched recursively, sorted, extensions case-insensitive) or a
glob. Outputs mirror the input tree under --out-dir:

- detection: ``<stem>.json`` (boxes x1,y1,x2,y2 in the original image's pixels, scores,
  label ids, class names) and ``<stem>.jpg`` with the boxes drawn;
- segmentation: ``<stem>.png`` (label ids at the original resolution, with the dataset
  palette) and ``<stem>_overlay.jpg``;

plus ``summary.json`` for the run. Exit status: 0 every image done (or kept from an earlier
run), 1 some images failed, 2 no image could be read or none was found.
"""
import argparse
import json
import os
import os.path as osp
import sys
import time
from collections import Counter, defaultdict
from typing import Dict, List, Optional

import numpy as np
from PIL import Image, ImageDraw

from coordatt_mm.apis.images import ImageReadError, iter_images, list_inputs

EXIT_OK, EXIT_SOME_FAILED, EXIT_NOTHING = 0, 1, 2


def output_stems(base: str, paths: List[str]) -> Dict[str, str]:
    """Input path -> output path without extension, mirroring the tree under ``base``.

    Inputs of one folder that share a stem (``a.jpg``, ``a.png``) keep their extension in
    the name (``a_jpg``, ``a_png``) so outputs never collide.
    """
    rel = {p: osp.relpath(p, base) if not osp.relpath(p, base).startswith('..')
           else osp.basename(p) for p in paths}
    counts = Counter(osp.splitext(r)[0] for r in rel.values())
    out = {}
    for p, r in rel.items():
        stem, ext = osp.splitext(r)
        out[p] = f'{stem}_{ext[1:].lower()}' if counts[stem] > 1 else stem
    return out


class Predictor:
    """A detector or segmentor built from a config; the config's ``default_scope`` decides."""

    def __init__(self, config: str, checkpoint: str, device: str) -> None:
        from mmengine.config import Config
        from mmengine.model import revert_sync_batchnorm
        import coordatt_mm  # noqa: F401  (registers modules, allows mmengine checkpoints)
        cfg = Config.fromfile(config)
        cfg.model.backbone.init_cfg = None  # weights come from the checkpoint
        self.task = {'mmdet': 'det', 'mmseg': 'seg'}.get(cfg.get('default_scope'))
        if self.task is None:
            raise ValueError(f'{config}: default_scope must be mmdet or mmseg, '
                             f'got {cfg.get("default_scope")!r}')
        if self.task == 'det':
            from mmdet.apis import init_detector
            self.model = init_detector(cfg, checkpoint, device=device)
        else:
            from mmseg.apis import init_model
            self.model = init_model(cfg, checkpoint, device=device)
        self.model = revert_sync_batchnorm(self.model).eval()
        meta = self.model.dataset_meta or {}
        self.classes = list(meta.get('classes', []))
        self.palette = meta.get('palette')

    def __call__(self, images_rgb: List[np.ndarray]):
        bgr = [np.ascontiguousarray(im[..., ::-1]) for im in images_rgb]
        if self.task == 'det':
            from mmdet.apis import inference_detector
            return inference_detector(self.model, bgr)
        from mmseg.apis import inference_model
        return inference_model(self.model, bgr)


def _colour(i: int, palette) -> tuple:
    if palette and i < len(palette):
        return tuple(int(c) for c in palette[i])
    rng = np.random.default_rng(i)
    return tuple(int(c) for c in rng.integers(0, 255, 3))


def write_detection(pred, image: np.ndarray, stem: str, classes, palette, score_thr: float):
    inst = pred.pred_instances
    keep = inst.scores >= score_thr
    boxes = inst.bboxes[keep].cpu().numpy().astype(float)
    scores = inst.scores[keep].cpu().numpy().astype(float)
    labels = inst.labels[keep].cpu().numpy().astype(int)
    names = [classes[i] if i < len(classes) else str(i) for i in labels]
    h, w = image.shape[:2]
    record = dict(width=w, height=h, score_thr=score_thr,
                  boxes=[[round(v, 2) for v in b] for b in boxes.tolist()],
                  scores=[round(s, 4) for s in scores.tolist()], labels=labels.tolist(),
                  classes=names)
    canvas = Image.fromarray(image)
    draw = ImageDraw.Draw(canvas)
    width = max(1, round(max(h, w) / 300))
    for (x1, y1, x2, y2), s, lab, name in zip(boxes, scores, labels, names):
        c = _colour(lab, palette)
        draw.rectangle([x1, y1, x2, y2], outline=c, width=width)
        draw.text((x1 + width, y1 + width), f'{name} {s:.2f}', fill=c)
    _atomic_json(stem + '.json', record)
    _atomic_save(canvas, stem + '.jpg', quality=90)
    return names


def write_segmentation(pred, image: np.ndarray, stem: str, classes, palette):
    mask = pred.pred_sem_seg.data[0].cpu().numpy().astype(np.uint8)
    pal = [c for i in range(256) for c in _colour(i, palette)]
    png = Image.fromarray(mask, mode='L').convert('P')
    png.putpalette(pal)
    colour = np.asarray(pal, dtype=np.uint8).reshape(256, 3)[mask]
    overlay = (0.5 * image + 0.5 * colour).astype(np.uint8)
    _atomic_save(png, stem + '.png')
    _atomic_save(Image.fromarray(overlay), stem + '_overlay.jpg', quality=90)
    return [classes[i] if i < len(classes) else str(i) for i in np.unique(mask)]


def _atomic_save(img: Image.Image, path: str, **kw) -> None:
    tmp = path + '.part'
    img.save(tmp, format='JPEG' if path.endswith('.jpg') else 'PNG', **kw)
    os.replace(tmp, path)


def _atomic_json(path: str, obj) -> None:
    tmp = path + '.part'
    with open(tmp, 'w', encoding='utf-8') as f:
        json.dump(obj, f, ensure_ascii=False, indent=1)
    os.replace(tmp, path)


class Progress:
    def __init__(self, total: int, quiet: bool) -> None:
        self.total, self.quiet, self.t0, self.n = total, quiet, time.time(), 0
        self.tty = sys.stderr.isatty()

    def step(self, k: int = 1) -> None:
        self.n += k
        if self.quiet:
            return
        rate = self.n / max(time.time() - self.t0, 1e-9)
        if self.tty:
            bar = '#' * int(30 * self.n / max(self.total, 1))
            print(f'\r[{bar:<30}] {self.n}/{self.total} {rate:.2f} img/s', end='',
                  file=sys.stderr, flush=True)
        elif self.n == self.total or self.n % 50 == 0:
            print(f'{self.n}/{self.total} images, {rate:.2f} img/s', file=sys.stderr)

    def close(self) -> None:
        if self.tty and not self.quiet:
            print(file=sys.stderr)


def run(config: str, checkpoint: str, inputs: str, out_dir: str, device: str = 'cpu',
        batch_size: int = 1, score_thr: float = 0.3, overwrite: bool = False,
        quiet: bool = False) -> int:
    base, paths = list_inputs(inputs)
    os.makedirs(out_dir, exist_ok=True)
    stems = output_stems(base, paths)
    exts = None
    failed, done, kept = [], [], []
    seen = Counter()
    started = time.time()
    if not paths:
        print(f'error: {inputs}: no image found', file=sys.stderr)
        predictor = None
    else:
        predictor = Predictor(config, checkpoint, device)
        exts = ('.json', '.jpg') if predictor.task == 'det' else ('.png', '_overlay.jpg')
    todo = []
    for p in paths:
        outs = [osp.join(out_dir, stems[p] + e) for e in exts]
        if not overwrite and all(osp.exists(o) for o in outs):
            kept.append(p)
        else:
            todo.append(p)
    if kept and not quiet:
        print(f'{len(kept)} images already have outputs in {out_dir}; kept them '
              f'(--overwrite to redo)', file=sys.stderr)
    progress = Progress(len(todo), quiet)
    t_model = 0.0

    def fail(path, reason):
        failed.append(dict(path=path, reason=reason))
        print(f'error: {path}: {reason}', file=sys.stderr)

    def flush(batch):
        nonlocal t_model
        if not batch:
            return
        t = time.time()
        try:
            preds = predictor([im for _, im in batch])
        except Exception as e:  # one bad batch must not stop the run: retry one by one
            if len(batch) > 1:
                for item in batch:
                    flush([item])
                return
            fail(batch[0][0], f'inference failed ({type(e).__name__}: {e})')
            progress.step()
            return
        t_model += time.time() - t
        for (p, im), pred in zip(batch, preds):
            stem = osp.join(out_dir, stems[p])
            os.makedirs(osp.dirname(stem), exist_ok=True)
            try:
                if predictor.task == 'det':
                    names = write_detection(pred, im, stem, predictor.classes,
                                            predictor.palette, score_thr)
                else:
                    names = write_segmentation(pred, im, stem, predictor.classes,
                                               predictor.palette)
            except OSError as e:
                fail(p, f'cannot write outputs ({e})')
            else:
                done.append(p)
                seen.update(set(names))
            progress.step()

    batch = []
    for path, image in iter_images(todo):
        if isinstance(image, ImageReadError):
            fail(path, str(image))
            progress.step()
            continue
        batch.append((path, image))
        if len(batch) >= batch_size:
            flush(batch)
            batch = []
    flush(batch)
    progress.close()

    elapsed = time.time() - started
    summary = dict(
        config=config, checkpoint=checkpoint, input=inputs, out_dir=out_dir,
        task=predictor.task if predictor else None, images_found=len(paths),
        images_done=len(done), images_kept=len(kept), images_failed=failed,
        classes_seen=dict(sorted(seen.items())),
        seconds_per_image=round(elapsed / max(len(done), 1), 4),
        model_seconds_per_image=round(t_model / max(len(done), 1), 4),
        outputs={p: stems[p] for p in paths})
    summary_path = osp.join(out_dir, 'summary.json')
    if osp.exists(summary_path) and not overwrite:  # keep the earlier run's report
        stamp = time.strftime('%Y%m%d_%H%M%S', time.localtime(osp.getmtime(summary_path)))
        os.replace(summary_path, osp.join(out_dir, f'summary_{stamp}.json'))
    _atomic_json(summary_path, summary)
    if not quiet:
        print(f'{len(done)} done, {len(kept)} kept, {len(failed)} failed; '
              f'outputs and summary.json in {out_dir}', file=sys.stderr)
    if not paths or (not done and not kept):
        return EXIT_NOTHING
    return EXIT_SOME_FAILED if failed else EXIT_OK


def main(argv: Optional[List[str]] = None) -> int:
    ap = argparse.ArgumentParser(
        prog='coordatt-infer', description='Run a detector or segmentor on images.',
        epilog='Exit status: 0 all images done, 1 some failed, 2 none read or none found.')
    ap.add_argument('config')
    ap.add_argument('checkpoint')
    ap.add_argument('input', help='image, folder (recursive) or glob')
    ap.add_argument('--out-dir', default=None,
                    help='output folder (default: work_dirs/infer/<config name>)')
    ap.add_argument('--device', default=None, help='cpu or cuda (default: cuda if available)')
    ap.add_argument('--batch-size', type=int, default=1)
    ap.add_argument('--score-thr', type=float, default=0.3, help='detection score threshold')
    ap.add_argument('--overwrite', action='store_true', help='redo images that have outputs')
    ap.add_argument('--quiet', action='store_true', help='no progress or summary lines')
    args = ap.parse_args(argv)
    for path, what in ((args.config, 'config'), (args.checkpoint, 'checkpoint')):
        if not osp.isfile(path):
            print(f'error: {path}: {what} not found', file=sys.stderr)
            return EXIT_NOTHING
    if args.batch_size < 1:
        ap.error('--batch-size must be >= 1')
    device = args.device
    if device is None:
        import torch
        device = 'cuda' if torch.cuda.is_available() else 'cpu'
    out_dir = args.out_dir or osp.join(
        'work_dirs', 'infer', osp.splitext(osp.basename(args.config))[0])
    return run(args.config, args.checkpoint, args.input, out_dir, device, args.batch_size,
               args.score_thr, args.overwrite, args.quiet)


if __name__ == '__main__':
    sys.exit(main())
