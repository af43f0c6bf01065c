"""Per-class non-maximum suppression that exports as ONNX's ``NonMaxSuppression``.

In eager mode it computes what that operator computes (torchvision's NMS per image and class),
so that a graph containing it can be run, traced and compared before export.
"""
import torch
from torch import Tensor


def _eager(boxes: Tensor, scores: Tensor, max_per_class: int, iou_threshold: float,
           score_threshold: float) -> Tensor:
    from torchvision.ops import nms
    picked = []
    n, c, _ = scores.shape
    for b in range(n):
        for k in range(c):
            s = scores[b, k]
            idx = torch.nonzero(s > score_threshold).flatten()
            if idx.numel() == 0:
                continue
            keep = idx[nms(boxes[b, idx].float(), s[idx].float(), iou_threshold)]
            keep = keep[:max_per_class]
            picked.append(torch.stack([torch.full_like(keep, b), torch.full_like(keep, k),
                                       keep], 1))
    if not picked:
        return torch.zeros((0, 3), dtype=torch.int64, device=boxes.device)
    return torch.cat(picked)


class NonMaxSuppression(torch.autograd.Function):
    """``(S, 3)`` int64 rows ``[image, class, box]`` of the boxes kept, as ONNX defines it:
    ``boxes`` (N, P, 4) corners, ``scores`` (N, C, P); per image and class, boxes above
    ``score_threshold`` in descending score, a box dropped when its IoU with a kept one
    exceeds ``iou_threshold``, at most ``max_per_class`` kept."""

    @staticmethod
    def forward(ctx, boxes, scores, max_per_class: int, iou_threshold: float,
                score_threshold: float):
        return _eager(boxes, scores, max_per_class, iou_threshold, score_threshold)

    @staticmethod
    def symbolic(g, boxes, scores, max_per_class, iou_threshold, score_threshold):
        def const(v, dtype):
            return g.op('Constant', value_t=torch.tensor([v], dtype=dtype))
        # corners in any order of axes: the IoU is the same for (x1,y1,x2,y2) and (y1,x1,...)
        return g.op('NonMaxSuppression', boxes, scores, const(max_per_class, torch.int64),
                    const(iou_threshold, torch.float32), const(score_threshold, torch.float32),
                    center_point_box_i=0)


def non_max_suppression(boxes: Tensor, scores: Tensor, max_per_class: int,
                        iou_threshold: float, score_threshold: float) -> Tensor:
    return NonMaxSuppression.apply(boxes, scores, max_per_class, iou_threshold,
                                   score_threshold)
