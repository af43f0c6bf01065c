"""Building models from configs offline and counting their parameters."""
import json
import os.path as osp
from importlib import import_module
from typing import Dict, Tuple

import torch.nn as nn
from mmengine.config import Config
from mmengine.model import revert_sync_batchnorm
from mmengine.registry import init_default_scope

PAPER_RESULTS = osp.join(osp.dirname(__file__), 'data', 'paper_results.json')


def load_paper_results() -> Dict:
    with open(PAPER_RESULTS) as f:
        return json.load(f)


def build_model_offline(config: str) -> Tuple[Config, nn.Module]:
    """Build the model of ``config`` with random weights (no checkpoint download), plain BN."""
    cfg = Config.fromfile(config)
    init_default_scope(cfg.default_scope)
    cfg.model.backbone.init_cfg = None
    registry = import_module(f'{cfg.default_scope}.registry').MODELS
    return cfg, revert_sync_batchnorm(registry.build(cfg.model))


def count_params(model: nn.Module, with_aux: bool = False) -> int:
    """Parameters used at inference (segmentors' auxiliary heads excluded unless asked)."""
    n = sum(p.numel() for p in model.parameters())
    aux = getattr(model, 'auxiliary_head', None)
    if aux is not None and not with_aux:
        n -= sum(p.numel() for p in aux.parameters())
    return n


# elementwise work of one attention layer per input element: pooling reads + gate multiplies
ATTENTION_ELEMENTWISE = {'CoordAtt': 4, 'SqueezeExcitation': 2, 'CBAM': 6}


def count_madds(model: nn.Module, inputs) -> Dict[str, int]:
    """Multiply-adds of one forward pass, per image: ``conv_linear`` (every Conv2d and
    Linear: ``Cout * Hout * Wout * Cin / groups * k * k``; ``in * out``) and
    ``attention_elementwise`` (pooling additions and gating multiplications of attention
    layers: 4 per element for CoordAtt, 2 for SE, 6 for CBAM)."""
    import torch
    totals = dict(conv_linear=0, attention_elementwise=0)
    batch = inputs.shape[0]

    def conv_hook(m, inp, out):
        k = m.kernel_size[0] * m.kernel_size[1]
        totals['conv_linear'] += out.numel() // batch * (m.in_channels // m.groups) * k

    def linear_hook(m, inp, out):
        totals['conv_linear'] += out.numel() // batch * m.in_features

    def att_hook(m, inp, out):
        totals['attention_elementwise'] += ATTENTION_ELEMENTWISE[type(m).__name__] * \
            inp[0].numel() // batch

    handles = []
    for m in model.modules():
        if isinstance(m, nn.Conv2d):
            handles.append(m.register_forward_hook(conv_hook))
        elif isinstance(m, nn.Linear):
            handles.append(m.register_forward_hook(linear_hook))
        elif type(m).__name__ in ATTENTION_ELEMENTWISE:
            handles.append(m.register_forward_hook(att_hook))
    try:
        # grad mode on: CoordAtt's eval fast path calls its folded conv functionally, which
        # the hooks would not see; the module form does the same multiply-adds
        with torch.enable_grad():
            model.eval()(inputs)
    finally:
        for h in handles:
            h.remove()
    return totals


class ClassifierEquivalent(nn.Module):
    """backbone -> global average pool -> linear to 1000 classes (the ImageNet models'
    head: how the paper counts backbone parameters and M-Adds)."""

    def __init__(self, backbone: nn.Module, channels: int, num_classes: int = 1000) -> None:
        super().__init__()
        self.backbone = backbone
        self.fc = nn.Linear(channels, num_classes)

    def forward(self, x):
        return self.fc(self.backbone(x)[-1].mean(dim=(2, 3)))


def classifier_equivalent(backbone_type: str, attention=None, widen_factor: float = 1.0):
    from coordatt_mm.backbones import MobileNetV2CA, MobileNeXtCA
    if backbone_type == 'MobileNetV2CA':
        bb = MobileNetV2CA(widen_factor=widen_factor, attention=attention, out_indices=(7,))
        return ClassifierEquivalent(bb, bb.conv2.conv.out_channels)
    bb = MobileNeXtCA(widen_factor=widen_factor, attention=attention, out_indices=(7,))
    return ClassifierEquivalent(bb, bb.out_channels)
