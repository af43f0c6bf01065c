"""Convolutional Block Attention Module, the other baseline of the Coordinate Attention paper.

Woo, Park, Lee, Kweon. "CBAM: Convolutional Block Attention Module", ECCV 2018.
"""
from typing import Optional

import torch
import torch.nn as nn
from mmcv.cnn import build_activation_layer, build_norm_layer

from coordatt_mm.layers.channels import resolve_channels
from coordatt_mm.registry import register_model


@register_model()
class CBAM(nn.Module):
    """Channel attention (shared MLP on average- and max-pooled features) followed by
    spatial attention (7x7 conv + norm on the channel-wise mean and max).

    Args:
        in_channels: input (= output) channels C (``channels`` is accepted as well).
        reduction: MLP width ``max(min_channels, C // reduction)`` (24, as for SE).
        min_channels: floor of the MLP width.
        kernel_size: spatial attention kernel (7 in the paper).
        norm_cfg: norm after the spatial conv (BN, as the authors' code).
        act_cfg: activation inside the MLP.
    """

    def __init__(self, in_channels: Optional[int] = None, reduction: int = 24,
                 min_channels: int = 8, kernel_size: int = 7, norm_cfg: Optional[dict] = None,
                 act_cfg: dict = dict(type='ReLU'), channels: Optional[int] = None) -> None:
        super().__init__()
        channels = resolve_channels('CBAM', in_channels, channels)
        mid = max(min_channels, channels // reduction)
        self.mlp = nn.Sequential(nn.Conv2d(channels, mid, 1), build_activation_layer(act_cfg),
                                 nn.Conv2d(mid, channels, 1))
        self.spatial = nn.Conv2d(2, 1, kernel_size, padding=kernel_size // 2, bias=False)
        self.spatial_norm = build_norm_layer(norm_cfg or dict(type='BN'), 1)[1]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        channel = (self.mlp(x.mean(dim=(2, 3), keepdim=True))
                   + self.mlp(x.amax(dim=(2, 3), keepdim=True)))
        x = x * channel.sigmoid()
        pooled = torch.cat([x.mean(dim=1, keepdim=True), x.amax(dim=1, keepdim=True)], dim=1)
        return x * self.spatial_norm(self.spatial(pooled)).sigmoid()
