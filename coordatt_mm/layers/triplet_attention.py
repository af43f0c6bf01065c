"""Triplet Attention: three branches, each gating one pair of the (C, H, W) axes.

Misra, Nalamada, Arasanipalai, Hou. "Rotate to Attend: Convolutional Triplet Attention
Module", WACV 2021.
"""
from typing import Optional

import torch
import torch.nn as nn
from mmcv.cnn import build_norm_layer

from coordatt_mm.layers.channels import resolve_channels
from coordatt_mm.registry import register_model

# the authors' BatchNorm after each gate's conv
GATE_NORM = dict(type='BN', eps=1e-5, momentum=0.01)


class ZPoolGate(nn.Module):
    """A Z-pooled pair of maps (N, 2, A, B: max, then mean, over the third axis) -> k x k
    conv 2 -> 1 without bias -> norm -> sigmoid: one gate (N, 1, A, B)."""

    def __init__(self, kernel_size: int, norm_cfg: dict) -> None:
        super().__init__()
        self.conv = nn.Conv2d(2, 1, kernel_size, padding=kernel_size // 2, bias=False)
        self.norm = build_norm_layer(norm_cfg, 1)[1]

    def forward(self, pooled: torch.Tensor) -> torch.Tensor:
        return self.norm(self.conv(pooled)).sigmoid()


@register_model()
class TripletAttention(nn.Module):
    """``out = x * (g_cw + g_hc + g_hw) / 3``: the C-W gate pools over H, the H-C gate over
    W, the H-W (spatial) gate over C; each pools max and mean (Z-pool) and makes its gate with
    a :class:`ZPoolGate`. The authors' code rotates x so that each branch pools its first
    axis, gates the rotated x and rotates back; here the small gates are rotated instead and
    x is multiplied once by their sum, which is the same function.

    Usable as an mmcv plugin (``build_plugin_layer`` passes ``in_channels``, which this layer
    does not need: its parameters do not depend on C).

    Args:
        in_channels: accepted for the plugin protocol and the backbones' slot.
        kernel_size: odd size of each gate's conv (the authors' MobileNetV2 results: 3 and
            7). Default: 7.
        no_spatial: drop the H-W gate and average the other two. Default: False.
        norm_cfg: norm after each gate's conv; eps and momentum not given take the authors'
            values (1e-5, 0.01), so a backbone's ``dict(type='SyncBN')`` keeps them while
            one that sets its own (SSDLite's BN) applies them here too. Default: None (BN).
    """

    def __init__(self, in_channels: Optional[int] = None, kernel_size: int = 7,
                 no_spatial: bool = False, norm_cfg: Optional[dict] = None,
                 channels: Optional[int] = None) -> None:
        super().__init__()
        if in_channels is not None or channels is not None:
            resolve_channels('TripletAttention', in_channels, channels)
        if not isinstance(kernel_size, int) or kernel_size < 1 or kernel_size % 2 == 0:
            raise ValueError(f'TripletAttention: kernel_size must be a positive odd int, '
                             f'got {kernel_size!r}')
        norm_cfg = {**GATE_NORM, **(norm_cfg or {})}
        self.no_spatial = no_spatial
        self.cw = ZPoolGate(kernel_size, norm_cfg)  # over (C, W), pooled along H
        self.hc = ZPoolGate(kernel_size, norm_cfg)  # over (H, C), pooled along W
        self.hw = None if no_spatial else ZPoolGate(kernel_size, norm_cfg)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        share = 1.0 / (2 if self.no_spatial else 3)
        # each gate is scaled on its small map, so that x is read by one sum and one product
        g_cw = self.cw(torch.stack([x.amax(2), x.mean(2)], 1)) * share  # N,1,C,W
        g_hc = self.hc(torch.stack([x.amax(3), x.mean(3)], 1).transpose(2, 3)) * share
        gate = g_cw.transpose(1, 2) + g_hc.permute(0, 3, 2, 1)  # N,C,1,W + N,C,H,1
        if self.hw is not None:
            pooled = torch.cat([x.amax(1, keepdim=True), x.mean(1, keepdim=True)], 1)
            gate = gate + self.hw(pooled) * share  # + N,1,H,W
        return x * gate
