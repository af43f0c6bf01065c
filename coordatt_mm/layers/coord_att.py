"""Coordinate Attention.

Hou, Zhou, Feng. "Coordinate Attention for Efficient Mobile Network Design", CVPR 2021.
Functionally identical to the block of the authors' released MobileNetV2 + CA classifier.
"""
from typing import Optional

import torch
import torch.nn as nn
from mmcv.cnn import build_activation_layer, build_norm_layer

from coordatt_mm.registry import register_model


@register_model()
class CoordAtt(nn.Module):
    """Coordinate Attention: direction-aware gates from pooling along H and along W.

    Pools the input along W (giving a per-row descriptor) and along H (per-column),
    encodes both with one shared 1x1 conv + norm + activation, then produces one
    sigmoid gate per row and one per column with two 1x1 convs.

    Args:
        channels: input (= output) channels C.
        reduction: channel reduction r; the bottleneck has ``max(min_channels, C // r)``.
        min_channels: floor of the bottleneck width (8 in the paper).
        norm_cfg: norm after the shared conv (BatchNorm in the paper).
        act_cfg: activation after the norm (h-swish in the paper).
    """

    def __init__(self,
                 channels: int,
                 reduction: int = 32,
                 min_channels: int = 8,
                 norm_cfg: Optional[dict] = None,
                 act_cfg: Optional[dict] = None) -> None:
        super().__init__()
        mip = max(min_channels, channels // reduction)
        self.channels = channels
        self.mip = mip
        self.conv_reduce = nn.Conv2d(channels, mip, 1)
        self.norm = build_norm_layer(norm_cfg or dict(type='BN'), mip)[1]
        self.act = build_activation_layer(act_cfg or dict(type='HSwish'))
        self.conv_h = nn.Conv2d(mip, channels, 1)
        self.conv_w = nn.Conv2d(mip, channels, 1)

    def _encode(self, y: torch.Tensor) -> torch.Tensor:
        return self.act(self.norm(self.conv_reduce(y)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h, w = x.shape[-2:]
        x_h = x.mean(dim=3, keepdim=True)                  # N,C,H,1
        x_w = x.mean(dim=2, keepdim=True).transpose(2, 3)  # N,C,W,1
        if self.training:
            # One encoder call over the H+W positions: BN statistics as in the released model.
            y_h, y_w = self._encode(torch.cat([x_h, x_w], dim=2)).split([h, w], dim=2)
        else:
            # In eval the paths never mix (1x1 convs, frozen norm): skip concat/split.
            y_h, y_w = self._encode(x_h), self._encode(x_w)
        a_h = self.conv_h(y_h).sigmoid()
        a_w = self.conv_w(y_w.transpose(2, 3)).sigmoid()
        return x * a_w * a_h
