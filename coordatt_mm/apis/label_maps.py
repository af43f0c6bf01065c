"""Label maps at the original resolution from a segmentor's output at its input resolution."""
from typing import Tuple

import numpy as np


def upsample_argmax(logits, size: Tuple[int, int], align_corners: bool = False,
                    strip_elements: int = 2 ** 24) -> np.ndarray:
    """Labels at ``size`` of (C, h, w) logits: bilinear upsampling then argmax, as mmseg's
    post-processing computes it, but a strip of rows at a time (about ``strip_elements``
    floats each), so memory stays bounded instead of C x H x W floats (3.6 GB for 19 classes
    at 8000x6000).

    Rows follow PyTorch's bilinear source-index rule; each strip's width interpolation is
    ``F.interpolate`` itself on the source rows the strip reads, and the strip is laid out
    channels-last so that blending rows and the argmax run along contiguous memory.
    """
    import torch
    import torch.nn.functional as F
    c, h, w = logits.shape
    out_h, out_w = size
    dst = torch.arange(out_h, dtype=torch.float32)
    if align_corners:
        scale = torch.tensor((h - 1) / (out_h - 1) if out_h > 1 else 0.0, dtype=torch.float32)
        src = dst * scale
    else:
        scale = torch.tensor(h, dtype=torch.float32) / out_h
        src = ((dst + 0.5) * scale - 0.5).clamp_(min=0)
    top = src.long().clamp_(max=h - 1)
    bottom = (top + 1).clamp_(max=h - 1)
    lam = (src - top).view(-1, 1, 1)
    labels = np.empty((out_h, out_w), np.uint8 if c <= 256 else np.int32)
    rows = max(1, strip_elements // (c * out_w))
    for y0 in range(0, out_h, rows):
        y1 = min(y0 + rows, out_h)
        r0, r1 = int(top[y0]), int(bottom[y1 - 1]) + 1
        wide = F.interpolate(logits[None, :, r0:r1], size=(r1 - r0, out_w), mode='bilinear',
                             align_corners=align_corners)[0].permute(1, 2, 0).contiguous()
        strip = torch.lerp(wide[top[y0:y1] - r0], wide[bottom[y0:y1] - r0], lam[y0:y1])
        labels[y0:y1] = strip.argmax(-1).numpy()
    return labels


def resize_labels(labels: np.ndarray, size) -> np.ndarray:
    """A label map resized to ``size`` (H, W) by nearest neighbour at pixel centres (each
    output pixel takes the label under its centre), for models that give labels only."""
    h, w = labels.shape
    out_h, out_w = size
    rows = np.minimum(((np.arange(out_h) + 0.5) * h / out_h).astype(np.int64), h - 1)
    cols = np.minimum(((np.arange(out_w) + 0.5) * w / out_w).astype(np.int64), w - 1)
    return labels[rows[:, None], cols[None, :]]
