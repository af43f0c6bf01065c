"""Efficient Channel Attention.

Wang, Wu, Zhu, Li, Zuo, Hu. "ECA-Net: Efficient Channel Attention for Deep Convolutional Neural
Networks", CVPR 2020.
"""
import math
from typing import Optional

import torch
import torch.nn as nn
import torch.nn.functional as F

from coordatt_mm.layers.channels import resolve_channels
from coordatt_mm.registry import register_model


def adaptive_kernel_size(channels: int, gamma: float = 2, beta: float = 1) -> int:
    """The paper's kernel rule: ``t = int(|(log2(C) + beta) / gamma|)``, made odd by adding 1
    when even (its released code; C = 16 -> 3, 96 -> 3, 320 -> 5, 1280 -> 5)."""
    t = int(abs((math.log2(channels) + beta) / gamma))
    return t if t % 2 else t + 1


@register_model()
class ECA(nn.Module):
    """Global average pool -> 1-D conv across channels (k weights, no bias) -> sigmoid gate.

    Usable as an mmcv plugin (``build_plugin_layer`` passes ``in_channels``).

    Args:
        in_channels: input (= output) channels C (``channels`` is accepted as well).
        kernel_size: odd k of the channel conv; None applies the paper's adaptive rule
            (:func:`adaptive_kernel_size`). Default: None.
        gamma, beta: the adaptive rule's constants. Default: 2, 1.
    """

    def __init__(self, in_channels: Optional[int] = None, kernel_size: Optional[int] = None,
                 gamma: float = 2, beta: float = 1, channels: Optional[int] = None) -> None:
        super().__init__()
        channels = resolve_channels('ECA', in_channels, channels)
        if kernel_size is None:
            kernel_size = adaptive_kernel_size(channels, gamma, beta)
        if not isinstance(kernel_size, int) or kernel_size < 1 or kernel_size % 2 == 0:
            raise ValueError(f'ECA: kernel_size must be a positive odd int or None, '
                             f'got {kernel_size!r}')
        self.kernel_size = kernel_size
        self.conv = nn.Conv1d(1, 1, kernel_size, padding=kernel_size // 2, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = F.adaptive_avg_pool2d(x, 1).squeeze(-1).transpose(1, 2)  # N,1,C
        gate = self.conv(y).transpose(1, 2).unsqueeze(-1).sigmoid()  # N,C,1,1
        return x * gate
