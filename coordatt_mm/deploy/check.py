"""Does an exported model give what PyTorch gives? Checked on images, through the config's
test pipeline, before the exporter writes its file.

- Detection: every detection of either side whose score is clear of the thresholds (more
  than ``SCORE_TOL`` above ``score_thr`` and, when a side is full, above its lowest kept
  score) has a counterpart on the other side with the same label, IoU >= ``BOX_IOU`` (or,
  for boxes a pixel or two thin, whose IoU float rounding alone moves, every corner within
  ``CORNER_TOL`` pixels) and a score within ``SCORE_TOL``. Detections closer to a threshold
  than the score tolerance may legitimately fall on either side of it.
- Segmentation: at least ``PIXEL_AGREEMENT`` of the pixels get the same label.
"""
import os.path as osp
import tempfile
from typing import Dict, List, Optional, Tuple

import numpy as np
import torch

BOX_IOU, CORNER_TOL, SCORE_TOL, PIXEL_AGREEMENT = 0.99, 0.05, 1e-3, 0.999
RAW_TOL = 1e-4


class ExportCheckFailed(RuntimeError):
    """The exported model disagrees with PyTorch; the message says where and by how much."""


def _iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """IoU of each box of ``a`` (4,) with the rows of ``b`` (k, 4)."""
    lt = np.maximum(a[:2], b[:, :2])
    rb = np.minimum(a[2:], b[:, 2:])
    inter = np.prod(np.clip(rb - lt, 0, None), axis=1)
    area = lambda x: np.prod(np.clip(x[..., 2:] - x[..., :2], 0, None), axis=-1)  # noqa: E731
    return inter / np.maximum(area(a) + area(b) - inter, 1e-12)


def _one_way(ref, got, score_thr: float, k_max: int) -> Tuple[int, int, float, float, list]:
    boxes, scores, labels = ref
    floor = score_thr + SCORE_TOL
    if len(scores) >= k_max:
        floor = max(floor, scores.min() + SCORE_TOL)
    required = matched = 0
    worst_iou, worst_ds, missing = 1.0, 0.0, []
    for b, s, lab in zip(boxes, scores, labels):
        if s <= floor:
            continue
        required += 1
        same = got[2] == lab
        if not same.any():
            missing.append((int(lab), float(s)))
            continue
        ious = _iou(b, got[0][same])
        j = int(ious.argmax())
        ds = abs(float(got[1][same][j]) - float(s))
        close = ious[j] >= BOX_IOU or np.abs(got[0][same][j] - b).max() <= CORNER_TOL
        if close and ds <= SCORE_TOL:
            matched += 1
            worst_iou, worst_ds = min(worst_iou, float(ious[j])), max(worst_ds, ds)
        else:
            missing.append((int(lab), float(s)))
    return required, matched, worst_iou, worst_ds, missing


def match_detections(ref, got, score_thr: float, k_max: int) -> dict:
    """Both directions of the detection rule for one image; ``ref`` and ``got`` are
    (boxes (k, 4), scores (k,), labels (k,)) arrays."""
    r1, m1, iou1, ds1, miss1 = _one_way(ref, got, score_thr, k_max)
    r2, m2, iou2, ds2, miss2 = _one_way(got, ref, score_thr, k_max)
    return dict(required=r1 + r2, matched=m1 + m2, worst_iou=min(iou1, iou2),
                worst_score_diff=max(ds1, ds2), missing=miss1, extra=miss2)


def default_images(task: str) -> List[str]:
    """The demo's held-out images for ``task`` (``data/tiny/holdout``), made in a temporary
    folder when this is not a repository checkout with the tiny data."""
    from coordatt_mm.apis.images import list_inputs
    repo = osp.dirname(osp.dirname(osp.dirname(osp.realpath(__file__))))
    folder = osp.join(repo, 'data', 'tiny', 'holdout', task)
    if not osp.isdir(folder):
        from coordatt_mm.datasets.tiny import make_holdout
        folder = osp.join(make_holdout(tempfile.mkdtemp(prefix='coordatt_holdout_')), task)
    return list_inputs(folder)[1]


def _reference_det(model, packed, canvas_hw):
    import torch.nn.functional as F
    data = model.data_preprocessor(dict(inputs=[packed['inputs']],
                                        data_samples=[packed['data_samples']]), False)
    x = data['inputs']
    x = F.pad(x, (0, canvas_hw[1] - x.shape[-1], 0, canvas_hw[0] - x.shape[-2]))
    sample = data['data_samples'][0]
    # the graph has one static size and sees the padded canvas as its image: so does the
    # reference (an image that fills the canvas, e.g. SSDLite's, changes nothing)
    sample.set_metainfo(dict(batch_input_shape=tuple(canvas_hw), pad_shape=tuple(canvas_hw),
                             img_shape=tuple(canvas_hw)))
    with torch.no_grad():
        inst = model.predict(x, [sample], rescale=False)[0].pred_instances
    return inst.bboxes.numpy(), inst.scores.numpy(), inst.labels.numpy()


def _reference_seg(model, packed) -> np.ndarray:
    data = model.data_preprocessor(dict(inputs=[packed['inputs']],
                                        data_samples=[packed['data_samples']]), False)
    with torch.no_grad():
        logits = model.encode_decode(data['inputs'], [data['data_samples'][0].metainfo])
    return logits[0].argmax(0).numpy()


def _canvas_batches(cfg, onnx_model, images: List[str]):
    """(path, the packed sample, a batch of it on the model's canvas) for each image through
    the config's test pipeline, as inference feeds the model."""
    from coordatt_mm.apis.images import read_image
    from coordatt_mm.apis.pipeline import TestPipeline, rgb_input
    pipeline = TestPipeline(cfg)
    for path in images:
        packed = pipeline(read_image(path))
        yield path, packed, onnx_model.canvas([rgb_input(packed['inputs']).numpy()])[0]


def on_images(cfg, model, onnx_file: str, images: Optional[List[str]] = None) -> dict:
    """Run ``images`` through the config's test pipeline, the ONNX model (ONNX Runtime, CPU)
    and ``model`` (PyTorch), and hold them to the rules above; the figures, or
    :class:`ExportCheckFailed`."""
    from coordatt_mm.deploy.runtime import OnnxModel, detections
    onnx_model = OnnxModel(onnx_file)
    task = onnx_model.task
    images = images if images is not None else default_images(task)
    if not images:
        raise ExportCheckFailed('no image to check the export on')
    per_image, worst = [], dict(iou=1.0, score=0.0, agreement=1.0)
    head_cfg = model.bbox_head.test_cfg if task == 'det' else None
    for path, packed, batch in _canvas_batches(cfg, onnx_model, images):
        out = onnx_model.run(batch)
        if task == 'det':
            got = detections(out['dets'][0], out['labels'][0], batch.shape[2:], (1.0, 1.0))
            ref = _reference_det(model, packed, batch.shape[2:])
            m = match_detections(ref, got, float(head_cfg.get('score_thr', 0.0)),
                                 int(head_cfg.get('max_per_img', 100)))
            if m['matched'] < m['required']:
                raise ExportCheckFailed(
                    f'{path}: {m["required"] - m["matched"]} of {m["required"]} detections '
                    f'have no counterpart (IoU >= {BOX_IOU}, score within {SCORE_TOL}); '
                    f'PyTorch only (label, score): {m["missing"][:3]}, ONNX only: '
                    f'{m["extra"][:3]}')
            worst['iou'] = min(worst['iou'], m['worst_iou'])
            worst['score'] = max(worst['score'], m['worst_score_diff'])
            per_image.append(m['required'])
        else:
            ref = _reference_seg(model, packed)
            agree = float((out['labels'][0] == ref).mean())
            if agree < PIXEL_AGREEMENT:
                raise ExportCheckFailed(f'{path}: {agree:.4%} of the pixels have PyTorch\'s '
                                        f'label (at least {PIXEL_AGREEMENT:.1%} required)')
            worst['agreement'] = min(worst['agreement'], agree)
            per_image.append(ref.size)
    if task == 'det':
        return dict(images=len(images), detections_compared=int(sum(per_image)),
                    worst_iou=worst['iou'], worst_score_diff=worst['score'])
    return dict(images=len(images), pixels_compared=int(sum(per_image)),
                worst_agreement=worst['agreement'])


def raw_outputs(cfg, model, onnx_file: str, input_hw, seed: int = 0) -> Dict[str, float]:
    """The raw export's outputs against the PyTorch network's for one random (normalised)
    input: the largest absolute difference, at most ``RAW_TOL`` on the outputs' scale."""
    from coordatt_mm.apis.build import network
    from coordatt_mm.deploy.runtime import ort_session
    x = torch.randn(1, 3, *input_hw, generator=torch.Generator().manual_seed(seed))
    with torch.no_grad():
        ref = network(cfg, model)(x)
    ref = ref if isinstance(ref, tuple) else (ref,)
    got = ort_session(onnx_file).run(None, {'input': x.numpy()})
    diff = max(float(np.abs(a.numpy() - b).max()) for a, b in zip(ref, got))
    scale = max(1.0, max(float(a.abs().max()) for a in ref))
    if diff > RAW_TOL * scale:
        raise ExportCheckFailed(f'max |torch - onnxruntime| = {diff:.2e} on outputs of scale '
                                f'{scale:.1f} (tolerance {RAW_TOL:.0e} of it)')
    return dict(max_abs_diff=diff)


# INT8 against its float graph: quantisation moves scores and boxes a little, so the rules
# are an agreement floor that a broken quantisation (a wrong range, a bad calibration set)
# falls far below; the accuracy itself is measured with tools/test.py
INT8_SHOWN_SCORE, INT8_IOU, INT8_MATCHED, INT8_PIXELS = 0.3, 0.5, 0.75, 0.95


def int8_against_float(cfg, int8_file: str, float_file: str,
                       images: Optional[List[str]] = None) -> dict:
    """Detection: the share of the float model's detections scoring >= 0.3 that the INT8
    model finds (same label, IoU >= 0.5), their mean IoU and score difference; segmentation:
    the share of pixels with the same label. Raises :class:`ExportCheckFailed` below
    ``INT8_MATCHED`` / ``INT8_PIXELS``."""
    from coordatt_mm.deploy.runtime import OnnxModel, detections
    q, f = OnnxModel(int8_file), OnnxModel(float_file)
    images = images if images is not None else default_images(f.task)
    shown = matched = 0
    ious, dscores, agree, pixels = [], [], 0, 0
    for _, _, batch in _canvas_batches(cfg, f, images):
        a, b = f.run(batch), q.run(batch)
        if f.task == 'det':
            ref = detections(a['dets'][0], a['labels'][0], batch.shape[2:], (1.0, 1.0))
            got = detections(b['dets'][0], b['labels'][0], batch.shape[2:], (1.0, 1.0))
            for box, score, label in zip(*ref):
                if score < INT8_SHOWN_SCORE:
                    continue
                shown += 1
                same = got[2] == label
                if same.any():
                    iou = _iou(box, got[0][same])
                    j = int(iou.argmax())
                    if iou[j] >= INT8_IOU:
                        matched += 1
                        ious.append(float(iou[j]))
                        dscores.append(abs(float(got[1][same][j]) - float(score)))
        else:
            agree += int((a['labels'] == b['labels']).sum())
            pixels += a['labels'].size
    if f.task == 'det':
        share = matched / max(shown, 1)
        if share < INT8_MATCHED:
            raise ExportCheckFailed(f'INT8 finds {matched} of the float model\'s {shown} '
                                    f'detections scoring >= {INT8_SHOWN_SCORE} (at least '
                                    f'{INT8_MATCHED:.0%} required)')
        return dict(images=len(images), float_detections=shown, matched=matched,
                    mean_iou=float(np.mean(ious)) if ious else 1.0,
                    mean_score_diff=float(np.mean(dscores)) if dscores else 0.0)
    share = agree / max(pixels, 1)
    if share < INT8_PIXELS:
        raise ExportCheckFailed(f'INT8 gives the float model\'s label to {share:.2%} of the '
                                f'pixels (at least {INT8_PIXELS:.0%} required)')
    return dict(images=len(images), pixel_agreement=share)
