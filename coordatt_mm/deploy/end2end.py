"""Networks from the resized image to final predictions, in ONNX-exportable form.

Both take what the config's test pipeline makes of an image after resizing: RGB, float 0-255,
(N, 3, H, W); the data preprocessor's normalisation and channel order are part of the graph.

- :class:`DetectorEnd2End`: ``dets`` (N, K, 5: x1, y1, x2, y2, score, in input pixels) and
  ``labels`` (N, K), K = the config's ``max_per_img``; rows past the detections have score 0
  and label -1. It computes what mmdet's dense heads do after the network: per level the
  ``nms_pre`` best (prior, class) pairs above ``score_thr``, box decoding, boxes of zero size
  dropped, per-class NMS (ONNX ``NonMaxSuppression``), the ``max_per_img`` best overall.
- :class:`SegmentorEnd2End`: ``labels`` (N, H0, W0) at the original image's size, as mmseg
  computes them: the logits resized to the input (bilinear, the head's ``align_corners``),
  cropped to the resized image (``img_shape``), resized to the original size (``ori_shape``),
  then the argmax; optionally the ``logits`` at the input's size.
"""
import math
from typing import Sequence, Tuple

import torch
import torch.nn as nn
import torch.nn.functional as F

from coordatt_mm.deploy.nms import non_max_suppression
from coordatt_mm.deploy.postprocess import to_original_size


class UnsupportedForExport(ValueError):
    """A part of the model the end-to-end export cannot express; the message names it."""


def network_sees_rgb(preprocessor) -> bool:
    """Images are loaded BGR; with a channel conversion (mmengine's and mmdet's
    ``_channel_conversion``, mmseg's ``channel_conversion``) the network sees RGB."""
    return bool(getattr(preprocessor, '_channel_conversion', False)
                or getattr(preprocessor, 'channel_conversion', False))


class _Normalise(nn.Module):
    """RGB 0-255 -> what the network takes: the data preprocessor's channel order, mean, std."""

    def __init__(self, preprocessor) -> None:
        super().__init__()
        mean = getattr(preprocessor, 'mean', None)
        std = getattr(preprocessor, 'std', None)
        if mean is None or std is None or not getattr(preprocessor, '_enable_normalize', True):
            raise UnsupportedForExport(f'data preprocessor {type(preprocessor).__name__} '
                                       f'without mean/std normalisation')
        self.to_bgr = not network_sees_rgb(preprocessor)
        self.register_buffer('mean', mean.detach().clone().view(1, -1, 1, 1))
        self.register_buffer('std', std.detach().clone().view(1, -1, 1, 1))

    def forward(self, x):
        if self.to_bgr:
            x = x.flip(1)
        return (x - self.mean) / self.std


def decode_deltas(priors, deltas, means: Sequence[float], stds: Sequence[float],
                  wh_ratio_clip: float, clip_hw=None, ctr_clamp=None):
    """Boxes from priors (x1, y1, x2, y2) and (dx, dy, dw, dh) deltas, the delta-XYWH coding
    (Girshick et al.): centres shift by the delta times the prior's size, sizes scale by
    exp(delta), log-ratios clamped to |log(wh_ratio_clip)|; corners clipped to ``clip_hw``."""
    d = deltas * deltas.new_tensor(stds) + deltas.new_tensor(means)
    centre = (priors[..., :2] + priors[..., 2:]) * 0.5
    size = priors[..., 2:] - priors[..., :2]
    shift = size * d[..., :2]
    max_ratio = abs(math.log(wh_ratio_clip))
    if ctr_clamp is not None:
        shift = shift.clamp(min=-ctr_clamp, max=ctr_clamp)
        dwh = d[..., 2:].clamp(max=max_ratio)
    else:
        dwh = d[..., 2:].clamp(min=-max_ratio, max=max_ratio)
    centre = centre + shift
    size = size * dwh.exp()
    boxes = torch.cat([centre - size * 0.5, centre + size * 0.5], -1)
    if clip_hw is not None:
        h, w = clip_hw
        upper = boxes.new_tensor([w, h, w, h])
        boxes = torch.minimum(boxes.clamp(min=0), upper)
    return boxes


def _dense_head_settings(head) -> dict:
    """What the end-to-end graph needs from an mmdet dense head, or UnsupportedForExport."""
    name = type(head).__name__
    coder = getattr(head, 'bbox_coder', None)
    if type(coder).__name__ != 'DeltaXYWHBBoxCoder':
        raise UnsupportedForExport(f'{name}: box coder {type(coder).__name__} (the end-to-end '
                                   f'export decodes DeltaXYWHBBoxCoder only; use --raw)')
    if getattr(head, 'prior_generator', None) is None:
        raise UnsupportedForExport(f'{name}: no prior generator (anchor-free head; use --raw)')
    if getattr(getattr(head, 'loss_cls', None), 'custom_cls_channels', False):
        raise UnsupportedForExport(f'{name}: a classification loss with custom channels')
    cfg = head.test_cfg
    nms = cfg.get('nms') or {}
    if nms.get('type', 'nms') != 'nms':
        raise UnsupportedForExport(f'{name}: test_cfg.nms type {nms.get("type")!r} (the ONNX '
                                   f'graph has plain NMS only)')
    if cfg.get('min_bbox_size', -1) > 0:
        raise UnsupportedForExport(f'{name}: test_cfg.min_bbox_size > 0 is measured in the '
                                   f'original image, which the graph does not see')
    return dict(sigmoid=bool(head.use_sigmoid_cls), num_classes=int(head.num_classes),
                cls_channels=int(head.cls_out_channels), nms_pre=int(cfg.get('nms_pre', -1)),
                score_thr=float(cfg.get('score_thr', 0.0)),
                iou=float(nms.get('iou_threshold', 0.5)),
                max_per_img=int(cfg.get('max_per_img', 100)),
                drop_empty=cfg.get('min_bbox_size', -1) >= 0,
                means=[float(v) for v in coder.means], stds=[float(v) for v in coder.stds],
                clip_border=bool(coder.clip_border),
                ctr_clamp=float(coder.ctr_clamp) if coder.add_ctr_clamp else None)


class DetectorEnd2End(nn.Module):
    """An mmdet single-stage detector (anchor-based dense head, delta-XYWH boxes) from the
    resized RGB image to ``dets`` and ``labels``, for one static input size ``(H, W)``."""

    input_names = ('input',)
    output_names = ('dets', 'labels')

    def __init__(self, model: nn.Module, input_hw: Tuple[int, int]) -> None:
        super().__init__()
        if not hasattr(model, 'bbox_head') or hasattr(model, 'roi_head'):
            raise UnsupportedForExport(f'{type(model).__name__}: only single-stage detectors '
                                       f'with a dense head export end to end (use --raw)')
        self.model = model
        self.normalise = _Normalise(model.data_preprocessor)
        self.settings = _dense_head_settings(model.bbox_head)
        self.input_hw = tuple(int(v) for v in input_hw)
        with torch.no_grad():  # the feature map sizes, hence the priors, of this input size
            cls_scores, _ = self._head(torch.zeros(1, 3, *self.input_hw))
        sizes = [tuple(c.shape[-2:]) for c in cls_scores]
        priors = model.bbox_head.prior_generator.grid_priors(sizes, device='cpu')
        self.level_sizes = [int(p.shape[0]) for p in priors]
        self.register_buffer('priors', torch.cat([p[:, :4] for p in priors]).float())

    def _head(self, x):
        feats = self.model.extract_feat(x)
        return self.model.bbox_head(feats)

    def forward(self, x):
        s = self.settings
        cls_scores, bbox_preds = self._head(self.normalise(x))
        n = x.shape[0]
        scores, deltas = [], []
        for cls, reg, p in zip(cls_scores, bbox_preds, self.level_sizes):
            cls = cls.permute(0, 2, 3, 1).reshape(n, p, s['cls_channels'])
            cls = cls.sigmoid() if s['sigmoid'] else cls.softmax(-1)[..., :s['num_classes']]
            flat = cls.reshape(n, p * s['num_classes'])
            flat = torch.where(flat > s['score_thr'], flat, torch.zeros_like(flat))
            k = p * s['num_classes']
            if 0 < s['nms_pre'] < k:  # the level's nms_pre best (prior, class) pairs
                top, idx = flat.topk(s['nms_pre'], dim=1)
                flat = torch.zeros_like(flat).scatter(1, idx, top)
            scores.append(flat.reshape(n, p, s['num_classes']))
            deltas.append(reg.permute(0, 2, 3, 1).reshape(n, p, 4))
        scores = torch.cat(scores, 1)
        priors = self.priors.unsqueeze(0).expand(n, -1, -1)
        # wh_ratio_clip: the coder's decode default, which mmdet's dense heads keep
        boxes = decode_deltas(priors, torch.cat(deltas, 1), s['means'], s['stds'], 16 / 1000,
                              self.input_hw if s['clip_border'] else None, s['ctr_clamp'])
        if s['drop_empty']:  # min_bbox_size 0: boxes clipped to nothing are dropped
            wh = boxes[..., 2:] - boxes[..., :2]
            keep = (wh[..., 0] > 0) & (wh[..., 1] > 0)
            scores = scores * keep.unsqueeze(-1).to(scores.dtype)
        return self._select(boxes, scores)

    def _select(self, boxes, scores) -> Tuple[torch.Tensor, torch.Tensor]:
        """Per-class NMS, then the ``max_per_img`` best detections of each image."""
        s = self.settings
        n, p, c = scores.shape
        by_class = scores.transpose(1, 2)  # N, C, P
        kept = non_max_suppression(boxes, by_class, s['max_per_img'], s['iou'],
                                   s['score_thr'])
        img, cls, box = kept[:, 0], kept[:, 1], kept[:, 2]
        # the kept scores scattered back into an (image, class * P + box) table, so that the
        # best K of each image are one TopK, padded with zeros where fewer were kept
        table = torch.zeros(n, c * p, dtype=scores.dtype, device=scores.device)
        table = table.index_put((img, cls * p + box), by_class[img, cls, box])
        k = min(s['max_per_img'], c * p)
        top, idx = table.topk(k, dim=1)
        labels = torch.div(idx, p, rounding_mode='floor')
        picked = torch.gather(boxes, 1, (idx - labels * p).unsqueeze(-1).expand(-1, -1, 4))
        valid = top > 0
        dets = torch.cat([picked * valid.unsqueeze(-1).to(picked.dtype), top.unsqueeze(-1)], -1)
        return dets, torch.where(valid, labels, torch.full_like(labels, -1))


class SegmentorEnd2End(nn.Module):
    """An mmseg encoder-decoder from the resized RGB image, padded at the bottom and right to
    the input's size, to ``labels`` (N, H0, W0) at the original image's size, and, with
    ``with_logits``, the ``logits`` (N, classes, H, W) at the input's size.

    Its inputs besides the image: ``img_shape``, the resized image's (h, w) inside the input,
    and ``ori_shape``, the original image's (H0, W0); int64, shared by the batch.
    """

    input_names = ('input', 'img_shape', 'ori_shape')

    def __init__(self, model: nn.Module, with_logits: bool = False) -> None:
        super().__init__()
        if not hasattr(model, 'decode_head'):
            raise UnsupportedForExport(f'{type(model).__name__}: not an mmseg segmentor')
        if model.decode_head.out_channels == 1:
            raise UnsupportedForExport('a binary (one-channel, thresholded) decode head')
        self.model = model
        self.normalise = _Normalise(model.data_preprocessor)
        self.with_logits = with_logits
        self.output_names = ('labels', 'logits') if with_logits else ('labels',)

    def forward(self, x, img_shape, ori_shape):
        align = self.model.decode_head.align_corners
        logits = self.model.decode_head(self.model.extract_feat(self.normalise(x)))
        # to the input's size, as mmseg's decode head predicts; then its post-processing
        logits = F.interpolate(logits, size=x.shape[2:], mode='bilinear', align_corners=align)
        labels = to_original_size(logits, img_shape, ori_shape, align).argmax(1)
        return (labels, logits) if self.with_logits else labels


def end_to_end(plan, model: nn.Module) -> nn.Module:
    """The end-to-end network of an export plan's (detection or segmentation) model."""
    if plan.task == 'det':
        return DetectorEnd2End(model, plan.input_hw).eval()
    return SegmentorEnd2End(model, plan.with_logits).eval()
