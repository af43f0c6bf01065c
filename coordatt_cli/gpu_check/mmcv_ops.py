"""The ``mmcv-ops`` check: mmcv's ``nms``, ``batched_nms`` and ``roi_align`` on CUDA tensors
against their CPU results. A CPU-only mmcv build fails here ("nms_impl: implementation for
device cuda:0 not found"), as mmdet's first validation on a GPU would."""
from typing import Dict

import torch

from coordatt_cli.gpu_check.compare import mmcv_ops_agree


def mmcv_ops_inputs() -> Dict[str, torch.Tensor]:
    """200 overlapping boxes in 5 classes, and a feature map with two RoIs; always the same."""
    g = torch.Generator().manual_seed(0)
    xy = torch.rand(200, 2, generator=g) * 100
    boxes = torch.cat([xy, xy + 5 + torch.rand(200, 2, generator=g) * 30], 1)
    return dict(boxes=boxes, scores=torch.rand(200, generator=g),
                classes=torch.randint(0, 5, (200,), generator=g),
                feats=torch.randn(2, 16, 32, 32, generator=g),
                rois=torch.tensor([[0, 1., 2., 20., 25.], [1, 5., 5., 30., 12.]]))


def run_mmcv_ops(device: torch.device, inputs: Dict[str, torch.Tensor]) -> Dict[str, torch.Tensor]:
    """The ops' results on ``device``, as :func:`compare.mmcv_ops_agree` reads them."""
    from mmcv.ops import batched_nms, nms, roi_align
    t = {k: v.to(device) for k, v in inputs.items()}
    _, keep = nms(t['boxes'], t['scores'], 0.5)
    dets, batched_keep = batched_nms(t['boxes'], t['scores'], t['classes'],
                                     dict(type='nms', iou_threshold=0.5))
    roi = roi_align(t['feats'], t['rois'], (7, 7), 1.0, 2)
    return dict(keep=keep, batched_keep=batched_keep, dets=dets, roi=roi)


def check_mmcv_ops(device: torch.device) -> str:
    """The table's figure: ``device``'s results against the CPU's."""
    inputs = mmcv_ops_inputs()
    return f'on {device} as on the CPU: ' + mmcv_ops_agree(
        run_mmcv_ops(device, inputs), run_mmcv_ops(torch.device('cpu'), inputs))
