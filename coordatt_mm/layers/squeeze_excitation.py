"""Squeeze-and-Excitation, the channel-attention baseline of the Coordinate Attention paper.

Hu, Shen, Sun. "Squeeze-and-Excitation Networks", CVPR 2018.
"""
from typing import Optional

import torch
import torch.nn as nn
from mmcv.cnn import build_activation_layer

from coordatt_mm.layers.channels import resolve_channels
from coordatt_mm.registry import register_model


@register_model(name='SE')
class SqueezeExcitation(nn.Module):
    """Global average pool -> 1x1 conv C->mid -> ReLU -> 1x1 conv mid->C -> sigmoid gate.

    Args:
        in_channels: input (= output) channels C (``channels`` is accepted as well).
        reduction: ``mid = max(min_channels, C // reduction)``. 24 puts MobileNetV2 + SE at
            the paper's 3.89M classifier parameters.
        min_channels: floor of the bottleneck width.
        act_cfg: activation between the two convs.
    """

    def __init__(self, in_channels: Optional[int] = None, reduction: int = 24,
                 min_channels: int = 8, act_cfg: dict = dict(type='ReLU'),
                 channels: Optional[int] = None) -> None:
        super().__init__()
        channels = resolve_channels('SE', in_channels, channels)
        mid = max(min_channels, channels // reduction)
        self.fc1 = nn.Conv2d(channels, mid, 1)
        self.act = build_activation_layer(act_cfg)
        self.fc2 = nn.Conv2d(mid, channels, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        gate = self.fc2(self.act(self.fc1(x.mean(dim=(2, 3), keepdim=True)))).sigmoid()
        return x * gate
