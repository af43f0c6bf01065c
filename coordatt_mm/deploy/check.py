"""Does an exported model give what PyTorch gives? Checked on images, through the config's
test pipeline, before the exporter writes its file.

- Detection: every detection of either side whose score is clear of the thresholds (more
  than ``SCORE_TOL`` above ``score_thr`` and, when a side is full, above its lowest kept
  score) has a counterpart on the other side with the same label, IoU >= ``BOX_IOU`` (or,
  for boxes a pixel or two thin, whose IoU float rounding alone moves, every corner within
  ``CORNER_TOL`` pixels) and a score within ``SCORE_TOL``. Detections closer to a threshold
  than the score tolerance may legitimately fall on either side of it.
- Segmentation: the label maps at the original image's size (the test pipeline's resize
  undone, as mmseg's post-processing does) have at least ``PIXEL_AGREEMENT`` of their pixels
  equal to mmseg's.
- A check that compares nothing proves nothing: it fails when no detection clears the
  thresholds on either side in any check image, or when every check image's map is a single
  label.
"""
import atexit
import functools
import os.path as osp
import shutil
import tempfile
from typing import Dict, Iterator, List, Sequence, Tuple

import numpy as np
import torch

BOX_IOU, CORNER_TOL, SCORE_TOL, PIXEL_AGREEMENT = 0.99, 0.05, 1e-3, 0.9999
RAW_TOL = 1e-4


class ExportCheckFailed(RuntimeError):
    """The check of an exported model failed: it disagrees with PyTorch (the message says
    where and by how much), its images could not be read, or they compared nothing."""


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


# the demo's held-out images in a repository checkout with the tiny data
HOLDOUT = osp.join(osp.dirname(osp.dirname(osp.dirname(osp.realpath(__file__)))), 'data',
                   'tiny', 'holdout')


@functools.lru_cache(maxsize=None)
def _generated_holdout() -> str:
    """The held-out images made once per process in a temporary folder, removed at exit."""
    from coordatt_mm.datasets.tiny import make_holdout
    folder = tempfile.mkdtemp(prefix='coordatt_holdout_')
    atexit.register(shutil.rmtree, folder, ignore_errors=True)
    return make_holdout(folder)


def default_images(task: str) -> List[str]:
    """The demo's held-out images for ``task``: ``data/tiny/holdout/<task>`` of a repository
    checkout with the tiny data, or else the same images generated once per process into a
    temporary folder that is removed when the process exits (so the paths are good for this
    process only)."""
    from coordatt_mm.apis.images import list_inputs
    root = HOLDOUT if osp.isdir(osp.join(HOLDOUT, task)) else _generated_holdout()
    return list_inputs(osp.join(root, task))[1]


def _samples(plan, images: Sequence[str]) -> Iterator[Tuple[str, dict, np.ndarray]]:
    """(path, the packed sample, the resized RGB float (3, h, w) input) of each image through
    the plan's test pipeline, as inference feeds the model; :class:`ExportCheckFailed` for
    an image that cannot be read or whose resize the graph's static size does not hold."""
    from coordatt_mm.apis.images import ImageReadError, read_image
    from coordatt_mm.apis.pipeline import TestPipeline, rgb_input
    pipeline = TestPipeline(steps=plan.pipeline, scope=plan.scope)
    for path in images:
        try:
            image = read_image(path)
        except ImageReadError as e:
            raise ExportCheckFailed(f'{path}: cannot read the check image ({e})') from None
        packed = pipeline(image)
        hw = tuple(packed['inputs'].shape[1:])
        if not plan.holds(hw):
            raise ExportCheckFailed(
                f'{path}: resized to {hw[0]}x{hw[1]}, more than the graph\'s static input '
                f'{plan.input_hw[0]}x{plan.input_hw[1]} holds: {plan.larger_shape_hint()}')
        yield path, packed, rgb_input(packed['inputs']).numpy()


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


def _reference_seg(model, packed, canvas_hw) -> np.ndarray:
    """mmseg's own label map at the original size (``predict``: logits resized to the input,
    padding cropped, resized to ``ori_shape``, argmax), the image padded at the bottom and
    right to ``canvas_hw`` as a static graph's runtime pads it."""
    import torch.nn.functional as F
    data = model.data_preprocessor(dict(inputs=[packed['inputs']],
                                        data_samples=[packed['data_samples']]), False)
    x, sample = data['inputs'], data['data_samples'][0]
    pad_h, pad_w = canvas_hw[0] - x.shape[-2], canvas_hw[1] - x.shape[-1]
    if pad_h or pad_w:  # zeros after normalisation: the mean colour the runtime pads with
        x = F.pad(x, (0, pad_w, 0, pad_h))
        sample.set_metainfo(dict(pad_shape=tuple(canvas_hw), padding_size=[0, pad_w, 0, pad_h]))
    with torch.no_grad():
        return model.predict(x, [sample])[0].pred_sem_seg.data[0].numpy()


def on_images(plan, model, onnx_file: str) -> dict:
    """Run the plan's check images through its test pipeline, the ONNX model (ONNX Runtime,
    CPU) and ``model`` (PyTorch), and hold them to the rules above; the figures, or
    :class:`ExportCheckFailed`."""
    from coordatt_mm.deploy.runtime import OnnxModel
    if not plan.check_images:
        raise ExportCheckFailed('no image to check the export on')
    onnx_model = OnnxModel(onnx_file)
    if plan.task == 'det':
        return _check_detections(plan, model, onnx_model)
    return _check_label_maps(plan, model, onnx_model)


def _check_detections(plan, model, onnx_model) -> dict:
    from coordatt_mm.deploy.runtime import detections
    head_cfg = model.bbox_head.test_cfg
    score_thr = float(head_cfg.get('score_thr', 0.0))
    compared, worst_iou, worst_score = 0, 1.0, 0.0
    for path, packed, x in _samples(plan, plan.check_images):
        batch = onnx_model.canvas([x])[0]
        out = onnx_model.run(batch)
        got = detections(out['dets'][0], out['labels'][0], batch.shape[2:], (1.0, 1.0))
        ref = _reference_det(model, packed, batch.shape[2:])
        m = match_detections(ref, got, score_thr, int(head_cfg.get('max_per_img', 100)))
        if m['matched'] < m['required']:
            raise ExportCheckFailed(
                f'{path}: {m["required"] - m["matched"]} of {m["required"]} detections '
                f'have no counterpart (IoU >= {BOX_IOU}, score within {SCORE_TOL}); '
                f'PyTorch only (label, score): {m["missing"][:3]}, ONNX only: '
                f'{m["extra"][:3]}')
        worst_iou = min(worst_iou, m['worst_iou'])
        worst_score = max(worst_score, m['worst_score_diff'])
        compared += m['required']
    if not compared:
        raise ExportCheckFailed(
            f'nothing compared: no detection scores above {score_thr + SCORE_TOL:g} in '
            f'PyTorch or ONNX Runtime on the {len(plan.check_images)} check images; choose '
            f'images the model finds objects in (--check-images)')
    return dict(images=len(plan.check_images), detections_compared=compared,
                worst_iou=worst_iou, worst_score_diff=worst_score)


def _check_label_maps(plan, model, onnx_model) -> dict:
    pixels, worst, varied = 0, 1.0, 0
    for path, packed, x in _samples(plan, plan.check_images):
        ori_hw = tuple(packed['data_samples'].metainfo['ori_shape'][:2])
        got = onnx_model.segment(x, ori_hw)
        ref = _reference_seg(model, packed, onnx_model.input_hw or x.shape[1:])
        if got.shape != ref.shape:
            raise ExportCheckFailed(f'{path}: a {got.shape} label map, PyTorch\'s is '
                                    f'{ref.shape}')
        agree = float((got == ref).mean())
        if agree < PIXEL_AGREEMENT:
            raise ExportCheckFailed(f'{path}: {agree:.4%} of the pixels have PyTorch\'s '
                                    f'label (at least {PIXEL_AGREEMENT:.2%} required)')
        worst, pixels = min(worst, agree), pixels + ref.size
        varied += len(np.unique(ref)) > 1
    if not varied:
        raise ExportCheckFailed(
            f'nothing compared: PyTorch gives each of the {len(plan.check_images)} check '
            f'images a single label everywhere; choose images that show several classes '
            f'(--check-images)')
    return dict(images=len(plan.check_images), pixels_compared=pixels,
                worst_agreement=worst)


def raw_outputs(plan, model, onnx_file: str, seed: int = 0) -> Dict[str, float]:
    """The raw export's outputs against the PyTorch network's for one random (normalised)
    input: the largest absolute difference, at most ``RAW_TOL`` on the outputs' scale."""
    from coordatt_mm.deploy.export import raw_network
    from coordatt_mm.deploy.runtime import ort_session
    x = torch.randn(1, 3, *plan.input_hw, generator=torch.Generator().manual_seed(seed))
    with torch.no_grad():
        ref = raw_network(plan, model)(x)
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
# falls far below; the accuracy itself is measured with tools/test.py. Detections are held
# to it both ways: the float model's that INT8 lost, and INT8's that the float model lacks.
INT8_SHOWN_SCORE, INT8_IOU, INT8_MATCHED, INT8_PIXELS = 0.3, 0.5, 0.75, 0.95


def _found(ref, got) -> Tuple[int, List[float], List[float]]:
    """Of ``ref``'s detections scoring >= ``INT8_SHOWN_SCORE``: how many, and for those
    ``got`` has (same label, IoU >= ``INT8_IOU``, any score) their IoUs and score
    differences."""
    shown, ious, dscores = 0, [], []
    for box, score, label in zip(*ref):
        if score < INT8_SHOWN_SCORE:
            continue
        shown += 1
        same = got[2] == label
        if same.any():
            iou = _iou(box, got[0][same])
            j = int(iou.argmax())
            if iou[j] >= INT8_IOU:
                ious.append(float(iou[j]))
                dscores.append(abs(float(got[1][same][j]) - float(score)))
    return shown, ious, dscores


def int8_against_float(plan, int8_file: str, float_file: str) -> dict:
    """Detection: of the float model's detections scoring >= 0.3, how many the INT8 model
    finds (same label, IoU >= 0.5) and how many it lost; of the INT8 model's, how many the
    float model lacks; the found ones' mean IoU and score difference. Segmentation: the share
    of pixels with the same label. Raises :class:`ExportCheckFailed` when either side lost
    more than ``1 - INT8_MATCHED`` of its detections, below ``INT8_PIXELS``, or when there
    was nothing to compare."""
    from coordatt_mm.deploy.runtime import OnnxModel
    q, f = OnnxModel(int8_file), OnnxModel(float_file)
    n = len(plan.check_images)
    shown = shown_q = 0
    ious, dscores, found_q, agree, pixels = [], [], 0, 0, 0
    for _, packed, x in _samples(plan, plan.check_images):
        meta = packed['data_samples'].metainfo
        if plan.task == 'det':
            a, b = (m.detect([x], [meta['scale_factor']])[0] for m in (f, q))
            s, i, d = _found(a, b)
            shown, ious, dscores = shown + s, ious + i, dscores + d
            s, i, _ = _found(b, a)
            shown_q, found_q = shown_q + s, found_q + len(i)
        else:
            a, b = (m.segment(x, tuple(meta['ori_shape'][:2])) for m in (f, q))
            agree, pixels = agree + int((a == b).sum()), pixels + a.size
    if plan.task == 'seg':
        share = agree / max(pixels, 1)
        if share < INT8_PIXELS:
            raise ExportCheckFailed(f'INT8 gives the float model\'s label to {share:.2%} of '
                                    f'the pixels (at least {INT8_PIXELS:.0%} required)')
        return dict(images=n, pixel_agreement=share)
    lost, extra = shown - len(ious), shown_q - found_q
    if not shown and not shown_q:
        raise ExportCheckFailed(f'nothing compared: neither the float nor the INT8 model finds '
                                f'a detection scoring >= {INT8_SHOWN_SCORE} on the {n} check '
                                f'images; choose images with objects (--check-images)')
    allowed = 1 - INT8_MATCHED
    if lost > allowed * shown or extra > allowed * shown_q:
        raise ExportCheckFailed(
            f'INT8 lost {lost} of the float model\'s {shown} detections scoring >= '
            f'{INT8_SHOWN_SCORE} and has {extra} of its {shown_q} that the float model lacks '
            f'(same label, IoU >= {INT8_IOU}; at most {allowed:.0%} each way)')
    return dict(images=n, float_detections=shown, int8_detections=shown_q, matched=len(ious),
                lost=lost, extra=extra, mean_iou=float(np.mean(ious)) if ious else 1.0,
                mean_score_diff=float(np.mean(dscores)) if dscores else 0.0)
