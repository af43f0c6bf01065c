"""The networks the benchmark sections compare, built alike for each of them: names, weights
initialised as the codebases do, and the alternative forms of our CA (PyTorch ops only, the
released forward)."""
import copy
import os.path as osp
from typing import Dict, List, Tuple

import torch
import torch.nn as nn
import torch.nn.functional as F

from coordatt_mm import CoordAtt, MobileNetV2CA
from coordatt_mm.analysis.complexity import REPO
from coordatt_mm.apis.build import DetectorHeads, SegmentorLogits, build_model, quiet_logs

SSDLITE_CA = 'configs/ssdlite/ssdlite_mobilenetv2-ca_8xb24-600e_coco.py'
DEEPLAB = {'DeepLabV3 MobileNetV2 OS16': 'deeplabv3_mobilenetv2-d16_4xb4-20k_voc12aug-512x512.py',
           'DeepLabV3 MobileNetV2 + CA OS16':
           'deeplabv3_mobilenetv2-ca-d16_4xb4-20k_voc12aug-512x512.py'}
OURS, OURS_ATEN = 'MobileNetV2 + CA (ours)', 'MobileNetV2 + CA (ours, PyTorch ops only)'
SSD_MM, SSD_OURS = "mmdet's SSDLite-MobileNetV2", 'SSDLite-MobileNetV2 + CA (ours)'
DL_PLAIN, DL_CA = list(DEEPLAB)


class ReleasedFormCoordAtt(nn.Module):
    """The released model's CA forward, step by step, on the weights of one of our CoordAtt.

    Args:
        ours (CoordAtt): the layer whose convolutions and BN it computes with.
    """

    def __init__(self, ours: CoordAtt) -> None:
        super().__init__()
        self.pool_h, self.pool_w = nn.AdaptiveAvgPool2d((None, 1)), nn.AdaptiveAvgPool2d((1, None))
        self.conv1, self.bn1 = ours.conv_reduce, ours.norm
        self.conv_h, self.conv_w = ours.conv_h, ours.conv_w

    def forward(self, x):
        identity = x
        n, c, h, w = x.size()
        x_h = self.pool_h(x)
        x_w = self.pool_w(x).permute(0, 1, 3, 2)
        y = torch.cat([x_h, x_w], dim=2)
        y = self.bn1(self.conv1(y))
        y = y * F.relu6(y + 3) / 6
        x_h, x_w = torch.split(y, [h, w], dim=2)
        x_w = x_w.permute(0, 1, 3, 2)
        a_h = self.conv_h(x_h).sigmoid()
        a_w = self.conv_w(x_w).sigmoid()
        return identity * a_w * a_h


def released_form(model: nn.Module) -> nn.Module:
    """A copy of ``model`` whose CoordAtt layers compute the released way (same weights)."""
    model = copy.deepcopy(model)
    for m in list(model.modules()):
        for child_name, child in list(m.named_children()):
            if isinstance(child, CoordAtt):
                setattr(m, child_name, ReleasedFormCoordAtt(child))
    return model


def aten_only(model: nn.Module) -> nn.Module:
    """A copy of ``model`` whose CoordAtt layers use PyTorch ops only (no fused kernels)."""
    model = copy.deepcopy(model)
    for m in model.modules():
        if isinstance(m, CoordAtt):
            m.use_ops = False
    return model


class ManyLayers(nn.Module):
    """Applies one attention layer per (C, H, W) shape to its own input: a layer-only workload.

    Args:
        layers (list[nn.Module]): one layer per input of ``forward``.
    """

    def __init__(self, layers):
        super().__init__()
        self.layers = nn.ModuleList(layers)

    def forward(self, xs):
        return [layer(x) for layer, x in zip(self.layers, xs)]


def ca_shapes(size: int) -> List[Tuple[int, int, int]]:
    """(C, H, W) seen by MobileNetV2's 16 CA layers at input size x size."""
    shapes = []
    m = MobileNetV2CA(out_indices=(7,)).eval()
    hooks = [mod.register_forward_pre_hook(lambda mod, i: shapes.append(tuple(i[0].shape[1:])))
             for mod in m.modules() if isinstance(mod, CoordAtt)]
    with torch.no_grad():
        m(torch.randn(1, 3, size, size))
    for h in hooks:
        h.remove()
    return shapes


def with_bn_statistics(model: nn.Module, seed: int = 0) -> nn.Module:
    """Non-trivial running statistics, as a trained model has (the default mean 0, var 1
    would make every BN an identity)."""
    g = torch.Generator().manual_seed(seed)
    for m in model.modules():
        if isinstance(m, nn.modules.batchnorm._BatchNorm) and m.running_var is not None:
            m.running_mean.copy_(0.1 * torch.randn(m.num_features, generator=g))
            m.running_var.copy_(0.5 + torch.rand(m.num_features, generator=g))
    return model


def initialised(model: nn.Module) -> nn.Module:
    """The codebases' own initialisation (Kaiming convs), which keeps activations and gradients
    at a trained network's scale; construction-time weights let them fade towards denormal
    numbers, whose slow arithmetic would be timed instead."""
    with quiet_logs():
        model.init_weights()
    return with_bn_statistics(model)


def backbones() -> Tuple[nn.Module, nn.Module]:
    """MobileNetV2 from the stem to the 1280 conv: plain and with our CA, initialised."""
    torch.manual_seed(0)
    return (initialised(MobileNetV2CA(attention=None, out_indices=(7,))),
            initialised(MobileNetV2CA(out_indices=(7,))))


def dense_models() -> List[Tuple[str, Dict[str, tuple], str]]:
    """(title, {name: (cfg, model)}, baseline) for SSDLite and DeepLabV3, initialised."""
    import mmdet
    mm_cfg = osp.join(osp.dirname(mmdet.__file__),
                      '.mim/configs/ssd/ssdlite_mobilenetv2-scratch_8xb24-600e_coco.py')
    torch.manual_seed(0)
    ssd = {SSD_MM: build_model(mm_cfg, init=True),
           SSD_OURS: build_model(osp.join(REPO, SSDLITE_CA), init=True)}
    seg = {k: build_model(osp.join(REPO, 'configs/deeplabv3', v), init=True)
           for k, v in DEEPLAB.items()}
    for nets in (ssd, seg):
        for _, n in nets.values():
            with_bn_statistics(n)
    return [('SSDLite320', ssd, SSD_MM), ('DeepLabV3', seg, DL_PLAIN)]


def dense_pairs() -> List[Tuple[str, Dict[str, nn.Module], str]]:
    """(title, {name: network to raw outputs}, baseline) for SSDLite and DeepLabV3."""
    (ssd_t, ssd, ssd_b), (seg_t, seg, seg_b) = dense_models()
    return [(f'{ssd_t} to raw head outputs', {k: DetectorHeads(m) for k, (_, m) in ssd.items()},
             ssd_b),
            (f'{seg_t} to logits', {k: SegmentorLogits(m) for k, (_, m) in seg.items()}, seg_b)]
