"""Coordinate Attention.

Hou, Zhou, Feng. "Coordinate Attention for Efficient Mobile Network Design", CVPR 2021.
Functionally identical to the block of the authors' released MobileNetV2 + CA classifier.
"""
from typing import Optional, Tuple

import torch
import torch.nn as nn
import torch.nn.functional as F
from mmcv.cnn import build_activation_layer, build_norm_layer
from torch.nn.modules.batchnorm import _BatchNorm

from coordatt_mm.layers.channels import resolve_channels
from coordatt_mm.registry import register_model


@register_model()
class CoordAtt(nn.Module):
    """Coordinate Attention: direction-aware gates from pooling along H and along W.

    Pools the input along W (a per-row descriptor) and along H (per-column), encodes both
    with one shared 1x1 conv + norm + activation, then makes one sigmoid gate per row and
    one per column with two 1x1 convs: ``out = x * a_w * a_h``.

    Training runs the released computation (one encoder call on the concatenated H+W
    positions, so BN statistics are the released model's). In eval mode with a BatchNorm
    (frozen statistics act per position) the two paths never mix, so the fast form is used
    automatically: the row and column means go through the 1x1 convs as matrix products
    (BN folded into the shared one, cached until a weight changes; on the N,H,W,C view for a
    channels-last input), and the gating is done in place. Other norms (GN mixes positions)
    keep the concat form. Outputs agree to float precision (tested <= 1e-5).

    Usable as an mmcv plugin (``build_plugin_layer`` passes ``in_channels``), e.g. after the
    3x3 conv of mmdet's / mmseg's ResNet bottlenecks:
    ``plugins=[dict(cfg=dict(type='CoordAtt'), position='after_conv2')]``.

    Args:
        in_channels: input (= output) channels C (``channels`` is accepted as well).
        reduction: channel reduction r; the bottleneck has ``max(min_channels, C // r)``.
        min_channels: floor of the bottleneck width (8 in the paper).
        norm_cfg: norm after the shared conv (BatchNorm in the paper).
        act_cfg: activation after the norm (h-swish in the paper).
        inplace: in the fast eval form, gate ``x`` itself instead of a copy (as
            ``nn.ReLU(inplace=True)``); saves a full-size allocation when the caller owns ``x``,
            as the backbones' blocks do.
    """

    def __init__(self,
                 in_channels: Optional[int] = None,
                 reduction: int = 32,
                 min_channels: int = 8,
                 norm_cfg: Optional[dict] = None,
                 act_cfg: Optional[dict] = None,
                 inplace: bool = False,
                 channels: Optional[int] = None) -> None:
        super().__init__()
        channels = resolve_channels('CoordAtt', in_channels, channels)
        self.inplace = inplace
        mip = max(min_channels, channels // reduction)
        self.channels = channels
        self.mip = mip
        self.conv_reduce = nn.Conv2d(channels, mip, 1)
        self.norm = build_norm_layer(norm_cfg or dict(type='BN'), mip)[1]
        self.act = build_activation_layer(act_cfg or dict(type='HSwish'))
        self.conv_h = nn.Conv2d(mip, channels, 1)
        self.conv_w = nn.Conv2d(mip, channels, 1)
        self._fold_cache = None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training and isinstance(self.norm, _BatchNorm) and not torch.is_grad_enabled():
            return self._forward_fast(x)
        h, w = x.shape[-2:]
        x_h = x.mean(dim=3, keepdim=True)                  # N,C,H,1
        x_w = x.mean(dim=2, keepdim=True).transpose(2, 3)  # N,C,W,1
        y = self.act(self.norm(self.conv_reduce(torch.cat([x_h, x_w], dim=2))))
        y_h, y_w = y.split([h, w], dim=2)
        a_h = self.conv_h(y_h).sigmoid()
        a_w = self.conv_w(y_w.transpose(2, 3)).sigmoid()
        return x * a_w * a_h

    def _folded(self) -> Tuple[torch.Tensor, torch.Tensor]:
        """conv_reduce with the eval BatchNorm folded in, as a (mip, C) matrix and a bias;
        recomputed when any input changed."""
        bn, conv = self.norm, self.conv_reduce
        tensors = (conv.weight, conv.bias, bn.weight, bn.bias, bn.running_mean, bn.running_var)
        key = tuple((t.data_ptr(), t._version) for t in tensors if t is not None)
        if self._fold_cache is None or self._fold_cache[0] != key:
            scale = torch.rsqrt(bn.running_var + bn.eps)
            if bn.weight is not None:
                scale = scale * bn.weight
            bias = (conv.bias - bn.running_mean) * scale
            if bn.bias is not None:
                bias = bias + bn.bias
            self._fold_cache = (key, conv.weight.flatten(1) * scale[:, None], bias)
        return self._fold_cache[1], self._fold_cache[2]

    def _forward_fast(self, x: torch.Tensor) -> torch.Tensor:
        weight, bias = self._folded()
        h = x.shape[2]
        if x.is_contiguous(memory_format=torch.channels_last) and not x.is_contiguous():
            return self._forward_fast_nhwc(x, weight, bias, h)
        # 1x1 convs act per position: on the N,C,H+W descriptors they are matrix products,
        # far cheaper to dispatch than conv2d on such thin tensors.
        z = torch.cat([x.mean(3), x.mean(2)], dim=2)  # N,C,H+W
        y = self.act(torch.matmul(weight, z).add_(bias[:, None]))
        a_h = torch.matmul(self.conv_h.weight.flatten(1), y[..., :h])
        a_w = torch.matmul(self.conv_w.weight.flatten(1), y[..., h:])
        a_h = a_h.add_(self.conv_h.bias[:, None]).sigmoid_().unsqueeze(3)  # N,C,H,1
        a_w = a_w.add_(self.conv_w.bias[:, None]).sigmoid_().unsqueeze(2)  # N,C,1,W
        out = x.mul_(a_h) if self.inplace else torch.mul(x, a_h)
        return out.mul_(a_w)

    def _forward_fast_nhwc(self, x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor,
                           h: int) -> torch.Tensor:
        # channels-last: work on the N,H,W,C view so that pooling, the products and the gating
        # all run along contiguous channels (the NCHW-shaped gates would be strided here)
        xt = x.permute(0, 2, 3, 1)
        y = self.act(F.linear(torch.cat([xt.mean(2), xt.mean(1)], dim=1), weight, bias))
        a_h = F.linear(y[:, :h], self.conv_h.weight.flatten(1), self.conv_h.bias).sigmoid_()
        a_w = F.linear(y[:, h:], self.conv_w.weight.flatten(1), self.conv_w.bias).sigmoid_()
        out = xt.mul_(a_h.unsqueeze(2)) if self.inplace else torch.mul(xt, a_h.unsqueeze(2))
        return out.mul_(a_w.unsqueeze(1)).permute(0, 3, 1, 2)  # N,C,H,W, channels-last
