"""SimAM, a parameter-free attention from an energy function.

Yang, Zhang, Li, Xie. "SimAM: A Simple, Parameter-Free Attention Module for Convolutional
Neural Networks", ICML 2021.
"""
from typing import Optional

import torch
import torch.nn as nn

from coordatt_mm.layers.channels import resolve_channels
from coordatt_mm.registry import register_model


@register_model()
class SimAM(nn.Module):
    """``out = x * sigmoid(d / (4 (v + lambda)) + 0.5)`` per channel, with
    ``d = (x - mean_HW(x))^2`` and ``v = sum_HW(d) / (H W - 1)``. No parameters.

    A 1x1 plane has no spread to measure: ``d = 0`` there and the divisor is taken as 1, so
    the gate is ``sigmoid(0.5)`` instead of a 0/0. Usable as an mmcv plugin.

    Args:
        in_channels: accepted for the plugin protocol and the backbones' slot (unused).
        e_lambda: the regulariser lambda. Default: 1e-4.
    """

    _abbr_ = 'simam'  # the plugin's attribute name (mmcv would make it 'sim_am')

    def __init__(self, in_channels: Optional[int] = None, e_lambda: float = 1e-4,
                 channels: Optional[int] = None) -> None:
        super().__init__()
        if in_channels is not None or channels is not None:
            resolve_channels('SimAM', in_channels, channels)  # only that they agree
        self.e_lambda = e_lambda

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n = x.shape[2] * x.shape[3] - 1
        # ``n + (n == 0)``, not max(n, 1): under tracing the sizes are tensors, and this keeps
        # the divisor a graph expression for exports with a dynamic height and width
        n = n + (n == 0)
        d = (x - x.mean(dim=(2, 3), keepdim=True)).square()
        v = d.sum(dim=(2, 3), keepdim=True) / n
        return x * (d / (4 * (v + self.e_lambda)) + 0.5).sigmoid()

    def extra_repr(self) -> str:
        return f'e_lambda={self.e_lambda}'
