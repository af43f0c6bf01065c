"""Folder inference for coordatt_mm detectors and segmentors (``coordatt-infer``).

    coordatt-infer CONFIG MODEL INPUT [--out-dir DIR] [--device cpu|cuda]
                   [--batch-size N] [--score-thr T] [--overwrite] [--quiet]

MODEL is a PyTorch checkpoint (run by PyTorch: :class:`TorchPredictor`) or an ``.onnx`` file
written by ``tools/deploy/export_onnx.py`` (run by ONNX Runtime, on CUDA with ``--device cuda``
where its CUDA execution provider is installed: ``coordatt_mm.deploy.inference``); the outputs
are the same. INPUT is an image, a folder (searched recursively, sorted, extensions
case-insensitive) or a glob. Outputs mirror the input tree under --out-dir:

- detection: ``<stem>.json`` (boxes x1,y1,x2,y2 in the original image's pixels, scores,
  label ids, class names) and ``<stem>.jpg`` with the boxes drawn;
- segmentation: ``<stem>.png`` (label ids at the original resolution, with the dataset
  palette) and ``<stem>_overlay.jpg``;

plus ``summary.json`` for the run. Exit status: 0 every image done (or kept from an earlier
run), 1 some images failed, 2 no image could be read or none was found.
"""
import json
import os
import os.path as osp
import sys
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Callable, Dict, Iterator, List, Optional

import numpy as np
from PIL import Image, ImageDraw

from coordatt_mm.apis.images import ImageReadError, iter_images, list_inputs
from coordatt_mm.apis.label_maps import upsample_argmax

EXIT_OK, EXIT_SOME_FAILED, EXIT_NOTHING = 0, 1, 2
OUTPUT_SUFFIXES = {'det': ('.json', '.jpg'), 'seg': ('.png', '_overlay.jpg')}


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


class TorchPredictor:
    """A detector or segmentor built from a config and a checkpoint, run by PyTorch (on
    ``device``, by default CUDA where torch has it).

    Detection returns (boxes, scores, labels) arrays per image, boxes in original pixels
    (mmdet's own inference); segmentation a label map (uint8, original resolution) per
    image, computed with bounded memory. Exported models have their predictor in
    :mod:`coordatt_mm.deploy.inference`, with the same interface.
    """

    backend = 'pytorch'

    def __init__(self, config: str, checkpoint: str, device: Optional[str] = None) -> None:
        from coordatt_mm.apis.build import build_model
        from coordatt_mm.registry import task_of
        if checkpoint.lower().endswith('.onnx'):
            raise ValueError(f'{checkpoint}: an ONNX model (coordatt-infer runs it with ONNX '
                             f'Runtime: coordatt_mm.deploy.inference.OnnxPredictor)')
        if device is None:
            import torch
            device = 'cuda' if torch.cuda.is_available() else 'cpu'
        self.cfg, self.model = build_model(config, checkpoint, device)
        self.task = task_of(self.cfg)
        self.classes = list(self.model.dataset_meta.get('classes', []))
        self.palette = self.model.dataset_meta.get('palette')
        self._seg_pipeline = None

    def __call__(self, images_rgb: List[np.ndarray]) -> list:
        bgr = [np.ascontiguousarray(im[..., ::-1]) for im in images_rgb]
        if self.task == 'det':
            from mmdet.apis import inference_detector
            out = []
            for pred in inference_detector(self.model, bgr):
                inst = pred.pred_instances
                out.append((inst.bboxes.cpu().numpy().astype(np.float32),
                            inst.scores.cpu().numpy().astype(np.float32),
                            inst.labels.cpu().numpy().astype(np.int64)))
            return out
        return self._segment(images_rgb)

    def _segment(self, images_rgb: List[np.ndarray]) -> List[np.ndarray]:
        import torch

        from coordatt_mm.apis.pipeline import TestPipeline
        if self._seg_pipeline is None:
            self._seg_pipeline = TestPipeline(self.cfg)
        packed = [self._seg_pipeline(im) for im in images_rgb]
        data = self.model.data_preprocessor(
            dict(inputs=[p['inputs'] for p in packed],
                 data_samples=[p['data_samples'] for p in packed]), False)
        metas = [s.metainfo for s in data['data_samples']]
        with torch.no_grad():
            logits = self.model.inference(data['inputs'], metas).float().cpu()
        align = self.model.decode_head.align_corners
        return [upsample_argmax(_unpad_unflip(logits[i], m), m['ori_shape'], align)
                for i, m in enumerate(metas)]


def _unpad_unflip(logits, meta: dict):
    """Undo the test pipeline's padding and flip, as mmseg's post-processing does."""
    left, right, top, bottom = meta.get('img_padding_size', meta.get('padding_size', [0] * 4))
    h, w = logits.shape[-2:]
    logits = logits[:, top:h - bottom, left:w - right]
    if meta.get('flip'):
        logits = logits.flip(dims=(2,) if meta.get('flip_direction') == 'horizontal' else (1,))
    return logits


def _colour(i: int, palette) -> tuple:
    if palette and i < len(palette):
        return tuple(int(c) for c in palette[i])
    rng = np.random.default_rng(i)
    return tuple(int(c) for c in rng.integers(0, 255, 3))


def _names(labels, classes) -> List[str]:
    return [classes[i] if i < len(classes) else str(i) for i in labels]


def write_detection(pred: tuple, image: np.ndarray, stem: str, classes, palette,
                    score_thr: float) -> List[str]:
    """``pred``: (boxes (k, 4) in the image's pixels, scores (k,), labels (k,))."""
    boxes, scores, labels = pred
    keep = scores >= score_thr
    boxes = boxes[keep].astype(float)
    scores = scores[keep].astype(float)
    labels = labels[keep].astype(int)
    names = _names(labels, classes)
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


def write_segmentation(labels: np.ndarray, image: np.ndarray, stem: str, classes,
                       palette) -> List[str]:
    lut = np.asarray([_colour(i, palette) for i in range(256)], dtype=np.uint8)
    png = Image.fromarray(labels.astype(np.uint8, copy=False), mode='L').convert('P')
    png.putpalette(lut.ravel().tolist())
    _atomic_save(png, stem + '.png')
    del png
    # uint8 blending in PIL: no float copy of a full-resolution image
    overlay = Image.blend(Image.fromarray(image), Image.fromarray(lut[labels]), 0.5)
    _atomic_save(overlay, stem + '_overlay.jpg', quality=90)
    return _names(np.unique(labels), classes)


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
    """mmengine's progress bar on a terminal; a line every 50 images otherwise."""

    def __init__(self, total: int, quiet: bool) -> None:
        self.total, self.quiet, self.t0, self.n = total, quiet, time.time(), 0
        self.bar = None
        if not quiet and total and sys.stderr.isatty():
            from mmengine.utils import ProgressBar
            self.bar = ProgressBar(total, file=sys.stderr)

    def step(self) -> None:
        self.n += 1
        if self.bar is not None:
            self.bar.update()
        elif not self.quiet and (self.n == self.total or self.n % 50 == 0):
            rate = self.n / max(time.time() - self.t0, 1e-9)
            print(f'{self.n}/{self.total} images, {rate:.2f} img/s', file=sys.stderr)

    def close(self) -> None:
        if self.bar is not None:
            print(file=sys.stderr)


@dataclass
class FolderRun:
    """One ``coordatt-infer`` run: which images to do, what became of each."""
    out_dir: str
    stems: Dict[str, str]
    score_thr: float = 0.3
    quiet: bool = False
    done: List[str] = field(default_factory=list)
    kept: List[str] = field(default_factory=list)
    failed: List[dict] = field(default_factory=list)
    seen: Counter = field(default_factory=Counter)
    model_seconds: float = 0.0

    def todo(self, paths: List[str], task: str, overwrite: bool) -> List[str]:
        """The images without outputs from an earlier run (all of them with ``overwrite``)."""
        out = []
        for p in paths:
            outs = [osp.join(self.out_dir, self.stems[p] + s) for s in OUTPUT_SUFFIXES[task]]
            (self.kept if not overwrite and all(map(osp.exists, outs)) else out).append(p)
        if self.kept and not self.quiet:
            print(f'{len(self.kept)} images already have outputs in {self.out_dir}; kept them '
                  f'(--overwrite to redo)', file=sys.stderr)
        return out

    def fail(self, path: str, reason: str) -> None:
        self.failed.append(dict(path=path, reason=reason))
        print(f'error: {path}: {reason}', file=sys.stderr)

    def predict(self, predictor, batch: list) -> Iterator[tuple]:
        """(path, image, prediction) per image of the batch; a failing batch is retried one
        image at a time so that one bad image does not stop the others."""
        t = time.time()
        try:
            preds = predictor([im for _, im in batch])
        except Exception as e:
            if len(batch) > 1:
                for item in batch:
                    yield from self.predict(predictor, [item])
                return
            self.fail(batch[0][0], f'inference failed ({type(e).__name__}: {e})')
            return
        self.model_seconds += time.time() - t
        for (path, image), pred in zip(batch, preds):
            yield path, image, pred

    def write(self, predictor, path: str, image: np.ndarray, pred) -> None:
        stem = osp.join(self.out_dir, self.stems[path])
        os.makedirs(osp.dirname(stem), exist_ok=True)
        try:
            if predictor.task == 'det':
                names = write_detection(pred, image, stem, predictor.classes, predictor.palette,
                                        self.score_thr)
            else:
                names = write_segmentation(pred, image, stem, predictor.classes,
                                           predictor.palette)
        except OSError as e:
            self.fail(path, f'cannot write outputs ({e})')
        else:
            self.done.append(path)
            self.seen.update(set(names))

    def summary(self, seconds: float, **info) -> dict:
        n = max(len(self.done), 1)
        return dict(info, images_done=len(self.done), images_kept=len(self.kept),
                    images_failed=self.failed, classes_seen=dict(sorted(self.seen.items())),
                    seconds_per_image=round(seconds / n, 4),
                    model_seconds_per_image=round(self.model_seconds / n, 4))


def _batches(images: Iterator, size: int, run: FolderRun, progress: Progress) -> Iterator[list]:
    """Readable images in batches of ``size``; unreadable ones are reported on the way."""
    batch = []
    for path, image in images:
        if isinstance(image, ImageReadError):
            run.fail(path, str(image))
            progress.step()
            continue
        batch.append((path, image))
        if len(batch) == size:
            yield batch
            batch = []
    if batch:
        yield batch


def _write_summary(out_dir: str, summary: dict, overwrite: bool) -> None:
    path = osp.join(out_dir, 'summary.json')
    if osp.exists(path) and not overwrite:  # keep the earlier run's report
        stamp = time.strftime('%Y%m%d_%H%M%S', time.localtime(osp.getmtime(path)))
        os.replace(path, osp.join(out_dir, f'summary_{stamp}.json'))
    _atomic_json(path, summary)


def run(config: str, model_file: str, inputs: str, out_dir: str,
        device: Optional[str] = None, batch_size: int = 1, score_thr: float = 0.3,
        overwrite: bool = False, quiet: bool = False,
        predictor_type: Callable = TorchPredictor) -> int:
    """``coordatt-infer``: the exit status (EXIT_OK, EXIT_SOME_FAILED, EXIT_NOTHING).
    ``predictor_type(config, model_file, device)`` runs the model:
    :class:`TorchPredictor` for checkpoints, ``coordatt_mm.deploy.inference.OnnxPredictor``
    for exports."""
    started = time.time()
    base, paths = list_inputs(inputs)
    if paths:
        try:
            predictor = predictor_type(config, model_file, device)
        except (ValueError, RuntimeError, OSError) as e:  # a model it cannot use
            msg = str(e).strip().splitlines()[0]
            print(f'error: {msg if model_file in msg else f"{model_file}: {msg}"}',
                  file=sys.stderr)
            return EXIT_NOTHING
    os.makedirs(out_dir, exist_ok=True)
    folder = FolderRun(out_dir, output_stems(base, paths), score_thr, quiet)
    predictor = predictor if paths else None
    if predictor is None:
        print(f'error: {inputs}: no image found', file=sys.stderr)
    else:
        todo = folder.todo(paths, predictor.task, overwrite)
        progress = Progress(len(todo), quiet)
        for batch in _batches(iter_images(todo), batch_size, folder, progress):
            for path, image, pred in folder.predict(predictor, batch):
                folder.write(predictor, path, image, pred)
            for _ in batch:
                progress.step()
        progress.close()
    summary = folder.summary(config=config, checkpoint=model_file, input=inputs,
                             out_dir=out_dir, task=predictor.task if predictor else None,
                             backend=predictor.backend if predictor else None,
                             images_found=len(paths), outputs=folder.stems,
                             seconds=time.time() - started)
    _write_summary(out_dir, summary, overwrite)
    if not quiet:
        print(f'{len(folder.done)} done, {len(folder.kept)} kept, {len(folder.failed)} failed; '
              f'outputs and summary.json in {out_dir}', file=sys.stderr)
    if not folder.done and not folder.kept:
        return EXIT_NOTHING
    return EXIT_SOME_FAILED if folder.failed else EXIT_OK
