"""MobileNeXt (Zhou et al., "Rethinking Bottleneck Structure for Efficient Mobile Network
Design", ECCV 2020) with an attention slot, as used by the Coordinate Attention paper
(Hou, Zhou, Feng, CVPR 2021) for its MobileNeXt + CA rows."""
import math
from typing import Dict, Optional, Sequence, Tuple

import torch
import torch.nn as nn
import torch.utils.checkpoint as cp
from mmcv.cnn import ConvModule
from mmengine.model import BaseModule

from coordatt_mm.backbones.base import MobileBackbone
from coordatt_mm.backbones.mobilenet_v2_ca import build_attention
from coordatt_mm.registry import register_model
from coordatt_mm.utils import make_divisible


class SandGlassCA(BaseModule):
    """Sandglass block: [dw 3x3 + ReLU6] -> [attention] -> 1x1 reduce (linear)
    -> 1x1 expand + ReLU6 -> [dw 3x3 linear, carries the stride] (+ identity).

    ``layout`` is ``'full'`` (both depthwise convs), ``'transition_s2'`` (no first dw) or
    ``'transition_s1'`` (no depthwise conv); the attention follows the first depthwise conv,
    so transition blocks have none.
    """

    def __init__(self, in_channels: int, out_channels: int, hidden: int, stride: int,
                 layout: str, residual: bool, dilation: int = 1,
                 attention: Optional[dict] = None, conv_cfg=None,
                 norm_cfg: dict = dict(type='BN'), act_cfg: dict = dict(type='ReLU6'),
                 with_cp: bool = False, init_cfg=None) -> None:
        super().__init__(init_cfg)
        self.layout, self.use_res_connect, self.with_cp = layout, residual, with_cp
        common = dict(conv_cfg=conv_cfg, norm_cfg=norm_cfg)
        self.dw1 = self.attention = self.dw2 = None
        if layout == 'full':
            self.dw1 = ConvModule(in_channels, in_channels, 3, padding=dilation, dilation=dilation,
                                  groups=in_channels, act_cfg=act_cfg, **common)
            self.attention = build_attention(attention, in_channels, norm_cfg)
        self.reduce = ConvModule(in_channels, hidden, 1, act_cfg=None, **common)
        self.expand = ConvModule(hidden, out_channels, 1, act_cfg=act_cfg, **common)
        if layout != 'transition_s1':
            self.dw2 = ConvModule(out_channels, out_channels, 3, stride=stride, padding=dilation,
                                  dilation=dilation, groups=out_channels, act_cfg=None, **common)

    def _body(self, x: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
        out = x
        if self.dw1 is not None:
            out = self.dw1(out)
        if self.attention is not None:
            out = self.attention(out)
        expanded = self.expand(self.reduce(out))
        out = expanded if self.dw2 is None else self.dw2(expanded)
        return (x + out if self.use_res_connect else out), expanded

    def forward_with_expanded(self, x: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
        """(block output, features after the expanding 1x1) -- SSDLite's taps."""
        if self.with_cp and x.requires_grad:
            return cp.checkpoint(self._body, x, use_reentrant=False)
        return self._body(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_with_expanded(x)[0]


@register_model()
class MobileNeXtCA(MobileBackbone):
    """MobileNeXt backbone with Coordinate Attention (or SE/CBAM/none) for mmdet and mmseg.

    Args:
        widen_factor: width multiplier (stage widths rounded to 8, hidden widths to 16).
        out_indices: stage outputs to return, over the 8 stages (0..7).
        expand_taps: blocks (1..20, the authors' ``features.N``) whose features after the
            expanding 1x1 conv are also returned. SSDLite uses ``(13, 20)``: 576 channels at
            stride 16 and 1280 at stride 32, as in the authors' detection code.
        strides, dilations: per stage (8 entries), for output stride 8/16 backbones.
        attention: attention after the first depthwise conv of the 15 blocks that have one
            (``None``: plain MobileNeXt, 3,535,416 params as an ImageNet classifier).
        frozen_stages, norm_eval, with_cp, norm_cfg, act_cfg, conv_cfg: as MobileNetV2CA.
        init_cfg: ``Pretrained`` accepts the authors' ImageNet checkpoint layout
            (``features.N.conv.M``, ``classifier.1.*``, ``state_dict``/``state_dict_ema``
            wrappers) and our own names; loading is checked like MobileNetV2CA's.
    """

    # expand ratio t (reduction of the sandglass), channels c, blocks n, stride s
    arch_settings = ((2, 96, 1, 2), (6, 144, 1, 1), (6, 192, 3, 2), (6, 288, 3, 2),
                     (6, 384, 4, 1), (6, 576, 4, 2), (6, 960, 3, 1), (6, 1280, 1, 1))

    def __init__(self,
                 widen_factor: float = 1.0,
                 out_indices: Sequence[int] = (7,),
                 expand_taps: Sequence[int] = (),
                 strides: Sequence[int] = (2, 1, 2, 2, 1, 2, 1, 1),
                 dilations: Sequence[int] = (1,) * 8,
                 attention: Optional[dict] = dict(type='CoordAtt', reduction=32),
                 frozen_stages: int = -1,
                 conv_cfg: Optional[dict] = None,
                 norm_cfg: dict = dict(type='BN'),
                 act_cfg: dict = dict(type='ReLU6'),
                 norm_eval: bool = False,
                 with_cp: bool = False,
                 init_cfg=None) -> None:
        super().__init__(init_cfg)
        n_stages = len(self.arch_settings)
        n_blocks = sum(n for _, _, n, _ in self.arch_settings)
        if len(strides) != n_stages or len(dilations) != n_stages:
            raise ValueError(f'strides and dilations need {n_stages} entries')
        if not set(out_indices) <= set(range(n_stages)):
            raise ValueError(f'out_indices {tuple(out_indices)} must lie in 0..{n_stages - 1}')
        if not set(expand_taps) <= set(range(1, n_blocks + 1)):
            raise ValueError(f'expand_taps {tuple(expand_taps)} must lie in 1..{n_blocks}')
        if not out_indices and not expand_taps:
            raise ValueError('nothing to output: give out_indices or expand_taps')
        if frozen_stages not in range(-1, n_stages + 1):
            raise ValueError(f'frozen_stages must be in -1..{n_stages}, got {frozen_stages}')
        self.widen_factor, self.attention_cfg = widen_factor, attention
        self.out_indices, self.expand_taps = tuple(out_indices), tuple(expand_taps)
        self.frozen_stages, self.norm_eval = frozen_stages, norm_eval

        common = dict(conv_cfg=conv_cfg, norm_cfg=norm_cfg, act_cfg=act_cfg)
        in_channels = make_divisible(32 * widen_factor, 8)
        self.stem = ConvModule(3, in_channels, 3, stride=2, padding=1, **common)
        self.layers = []
        for i, ((t, c, n, s), stride, dilation) in enumerate(zip(self.arch_settings, strides, dilations)):
            out_channels = make_divisible(c * widen_factor, 8)
            blocks = []
            for j in range(n):
                blk_stride = stride if j == 0 else 1
                full = t == 2 or in_channels == out_channels or (n == 1 and s == 1)
                layout = 'full' if full else ('transition_s2' if s == 2 else 'transition_s1')
                hidden = make_divisible(in_channels / t, 16)
                if hidden < out_channels / 6:  # the sandglass never narrows below oup/6
                    hidden = make_divisible(math.ceil(out_channels / 6), 16)
                blocks.append(SandGlassCA(
                    in_channels, out_channels, hidden, blk_stride, layout,
                    residual=blk_stride == 1 and in_channels == out_channels,
                    dilation=dilation, attention=attention, with_cp=with_cp, **common))
                in_channels = out_channels
            self.add_module(f'layer{i + 1}', nn.Sequential(*blocks))
            self.layers.append(f'layer{i + 1}')
        self.out_channels = in_channels

    def stage_modules(self):
        return [self.stem] + [getattr(self, name) for name in self.layers]

    def forward(self, x: torch.Tensor) -> Tuple[torch.Tensor, ...]:
        x = self.stem(x)
        outs, k = [], 0
        last_block = max([sum(n for _, _, n, _ in self.arch_settings[:i + 1]) for i in self.out_indices]
                         + list(self.expand_taps))
        for i, name in enumerate(self.layers):
            for block in getattr(self, name):
                k += 1
                if k > last_block:
                    return tuple(outs)
                if k in self.expand_taps:
                    x, expanded = block.forward_with_expanded(x)
                    outs.append(expanded)
                else:
                    x = block(x)
            if i in self.out_indices:
                outs.append(x)
        return tuple(outs)

    def checkpoint_module_map(self, layout: str) -> Dict[str, str]:
        """Authors' layout (``features.N.conv.M``, ConvBNReLU as ``M.0``/``M.1``) -> ours."""
        if layout == 'ours':
            return {}
        if layout != 'released':
            raise ValueError(f'MobileNeXtCA reads the authors\' layout or ours, not {layout}')
        m = {'stem.conv': 'features.0.0', f'stem.{self.stem.norm_name}': 'features.0.1'}
        k = 0
        for name in self.layers:
            for j, b in enumerate(getattr(self, name)):
                k += 1
                src, ours = f'features.{k}.conv', f'{name}.{j}'
                # each entry: (our ConvModule, source conv path, source norm path)
                seq = []
                i = 0
                if b.dw1 is not None:
                    seq.append(('dw1', b.dw1, f'{src}.{i}.0', f'{src}.{i}.1'))
                    i += 1
                seq.append(('reduce', b.reduce, f'{src}.{i}', f'{src}.{i + 1}'))
                i += 2
                seq.append(('expand', b.expand, f'{src}.{i}.0', f'{src}.{i}.1'))
                i += 1
                if b.dw2 is not None:
                    seq.append(('dw2', b.dw2, f'{src}.{i}', f'{src}.{i + 1}'))
                for attr, cm, conv, norm in seq:
                    m[f'{ours}.{attr}.conv'] = conv
                    m[f'{ours}.{attr}.{cm.norm_name}'] = norm
        return m
