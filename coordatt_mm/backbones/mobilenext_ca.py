"""MobileNeXt (Zhou et al., "Rethinking Bottleneck Structure for Efficient Mobile Network
Design", ECCV 2020) with an attention slot, as used by the Coordinate Attention paper
(Hou, Zhou, Feng, CVPR 2021) for its MobileNeXt + CA rows."""
import math
from typing import Dict, NamedTuple, Optional, Sequence, Tuple

import torch
import torch.nn as nn
import torch.utils.checkpoint as cp
from mmcv.cnn import ConvModule
from mmengine.model import BaseModule

from coordatt_mm.backbones.base import (
    MobileBackbone,
    check_attention_position,
    conv_module_map,
    conv_then_attention,
    make_divisible,
)
from coordatt_mm.layers import build_attention
from coordatt_mm.registry import register_model

LAYOUTS = ('full', 'transition_s2', 'transition_s1')
# The authors' checkpoints (mnext.py): each block's ``conv`` is one flat nn.Sequential of
# Conv2d / BatchNorm2d / ReLU6, so a part's (conv, norm) are its positions in that list
# (ReLU6 entries take a position and hold no weights).
_AUTHORS_PARTS = {
    'full': {'dw1': (0, 1), 'reduce': (3, 4), 'expand': (5, 6), 'dw2': (8, 9)},
    'transition_s2': {'reduce': (0, 1), 'expand': (2, 3), 'dw2': (5, 6)},
    'transition_s1': {'reduce': (0, 1), 'expand': (2, 3)},
}


class BlockSpec(NamedTuple):
    """One sandglass block of the architecture (built or not)."""
    number: int  # 1..20, the authors' ``features.N``
    stage: int   # 0-based
    index: int   # within the stage
    in_channels: int
    out_channels: int
    hidden: int
    stride: int
    dilation: int
    layout: str
    residual: bool


class SandGlassCA(BaseModule):
    """Sandglass block: [dw 3x3 + ReLU6] -> [attention] -> 1x1 reduce (linear)
    -> 1x1 expand + ReLU6 -> [dw 3x3 linear, carries the stride] (+ identity).

    ``layout`` is ``'full'`` (both depthwise convs), ``'transition_s2'`` (no first dw) or
    ``'transition_s1'`` (no depthwise conv). With ``attention_position='after_depthwise'``
    the attention follows the first depthwise conv, so transition blocks have none; with
    ``'after_project'`` every block has one after its last conv + BN (the linear dw2, or in
    a ``'transition_s1'`` block the expand 1x1 + BN + ReLU6), before the identity is added.
    ``tap_only`` builds the block up to its expanding 1x1 conv (whose output is an SSDLite
    tap) when nothing reads the block's own output; such a block has no attention after its
    last conv, which it does not build. Taps are the expand conv's output, before any
    attention.
    """

    def __init__(self, in_channels: int, out_channels: int, hidden: int, stride: int,
                 layout: str, residual: bool, dilation: int = 1,
                 attention: Optional[dict] = None, conv_cfg=None,
                 norm_cfg: dict = dict(type='BN'), act_cfg: dict = dict(type='ReLU6'),
                 with_cp: bool = False, tap_only: bool = False,
                 attention_position: str = 'after_depthwise', init_cfg=None) -> None:
        super().__init__(init_cfg)
        if layout not in LAYOUTS:
            raise ValueError(f'layout must be one of {LAYOUTS}, got {layout!r}')
        self.layout, self.with_cp = layout, with_cp
        self.attention_position = check_attention_position(attention_position)
        self.use_res_connect = residual and not tap_only
        common = dict(conv_cfg=conv_cfg, norm_cfg=norm_cfg)
        self.dw1 = self.attention = self.dw2 = None
        if layout == 'full':
            self.dw1 = ConvModule(in_channels, in_channels, 3, padding=dilation, dilation=dilation,
                                  groups=in_channels, act_cfg=act_cfg, **common)
            if attention_position == 'after_depthwise':
                self.attention = build_attention(attention, in_channels, norm_cfg)
        self.reduce = ConvModule(in_channels, hidden, 1, act_cfg=None, **common)
        self.expand = ConvModule(hidden, out_channels, 1, act_cfg=act_cfg, **common)
        if layout != 'transition_s1' and not tap_only:
            self.dw2 = ConvModule(out_channels, out_channels, 3, stride=stride, padding=dilation,
                                  dilation=dilation, groups=out_channels, act_cfg=None, **common)
        if attention_position == 'after_project' and not tap_only:
            self.attention = build_attention(attention, out_channels, norm_cfg)

    def _body(self, x: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
        if self.attention_position == 'after_project':
            expanded = self.expand(self.reduce(x if self.dw1 is None else self.dw1(x)))
            if self.dw2 is None:  # the expand conv is the last: its output is also the tap
                out = expanded if self.attention is None else self.attention(expanded)
            else:  # CA folds dw2's BN into its eval passes
                out = conv_then_attention(self.dw2, self.attention, expanded)
        elif self.dw1 is None:
            expanded = self.expand(self.reduce(x))
            out = expanded if self.dw2 is None else self.dw2(expanded)
        else:
            expanded = self.expand(conv_then_attention(self.dw1, self.attention, x,
                                                       then=self.reduce))
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
    """MobileNeXt backbone with Coordinate Attention (or another attention, or none) for mmdet
    and mmseg.

    Only what the outputs use is built: blocks after the last output or tap are left out,
    and a block tapped after its expanding 1x1 (SSDLite's block 20) stops there.

    Args:
        widen_factor: width multiplier (stage widths rounded to 8; the last stage keeps
            1280 channels below width 1, as the authors' model). Default: 1.0.
        out_indices: stage outputs to return, over the 8 stages (0..7). Default: (7,).
        expand_taps: blocks (1..20, the authors' ``features.N``) whose features after the
            expanding 1x1 conv are also returned. SSDLite uses ``(13, 20)``: 576 channels at
            stride 16 and 1280 at stride 32, as in the authors' detection code. Default: ().
        strides: stride of each of the 8 stages. Default: (2, 1, 2, 2, 1, 2, 1, 1).
        dilations: dilation of each stage, applied to every block's depthwise convs (for
            output stride 8/16 backbones). Default: all 1.
        attention: attention layer config, as :class:`MobileNetV2CA`'s (``None``: plain
            MobileNeXt, 3,535,416 params as an ImageNet classifier).
            Default: ``dict(type='CoordAtt', reduction=32)``.
        attention_position: ``'after_depthwise'``: after the first depthwise conv of the 15
            blocks that have one (the authors' CA placement). ``'after_project'``: in every
            block, on its output channels after its last conv + BN (the linear dw2; the
            expand 1x1 + BN + ReLU6 in the one block without depthwise convs), before the
            residual addition; 20 layers, 19 when SSDLite's last block stops at its tap.
            Default: 'after_depthwise'.
        frozen_stages, conv_cfg, norm_cfg, act_cfg, norm_eval, with_cp, pretrained: as
            :class:`MobileNetV2CA`.
        init_cfg: ``Pretrained`` accepts the authors' ImageNet checkpoint layout
            (``features.N.conv.I`` with I the position in each block's flat Sequential,
            ``classifier.1.*``, ``state_dict``/``state_dict_ema`` wrappers, ``module.``
            prefix) and our own names; loading is checked like MobileNetV2CA's.
            Default: None (Kaiming/Constant initialisation).
    """

    # expand ratio t (reduction of the sandglass), channels c, blocks n, stride s
    arch_settings = ((2, 96, 1, 2), (6, 144, 1, 1), (6, 192, 3, 2), (6, 288, 3, 2),
                     (6, 384, 4, 1), (6, 576, 4, 2), (6, 960, 3, 1), (6, 1280, 1, 1))
    checkpoint_layouts = {'released': r'^features\.\d+\.'}

    def __init__(self, widen_factor: float = 1.0, out_indices: Sequence[int] = (7,),
                 expand_taps: Sequence[int] = (),
                 strides: Sequence[int] = (2, 1, 2, 2, 1, 2, 1, 1),
                 dilations: Sequence[int] = (1,) * 8,
                 attention: Optional[dict] = dict(type='CoordAtt', reduction=32),
                 frozen_stages: int = -1, conv_cfg: Optional[dict] = None,
                 norm_cfg: dict = dict(type='BN'), act_cfg: dict = dict(type='ReLU6'),
                 norm_eval: bool = False, with_cp: bool = False,
                 attention_position: str = 'after_depthwise',
                 pretrained: Optional[str] = None, init_cfg=None) -> None:
        super().__init__(pretrained, init_cfg)
        self._check_stage_args(strides, dilations, frozen_stages)
        self.attention_position = check_attention_position(attention_position)
        n_stages = len(self.arch_settings)
        self.widen_factor, self.attention_cfg = widen_factor, attention
        self.plan = self.block_plan(widen_factor, strides, dilations)
        if not set(out_indices) <= set(range(n_stages)):
            raise ValueError(f'out_indices {tuple(out_indices)} must lie in 0..{n_stages - 1}')
        if not set(expand_taps) <= set(range(1, len(self.plan) + 1)):
            raise ValueError(f'expand_taps {tuple(expand_taps)} must lie in 1..{len(self.plan)}')
        if not out_indices and not expand_taps:
            raise ValueError('nothing to output: give out_indices or expand_taps')
        self.out_indices, self.expand_taps = tuple(out_indices), tuple(expand_taps)
        self.frozen_stages, self.norm_eval = frozen_stages, norm_eval

        common = dict(conv_cfg=conv_cfg, norm_cfg=norm_cfg, act_cfg=act_cfg)
        self.stem = ConvModule(3, self.plan[0].in_channels, 3, stride=2, padding=1, **common)
        stage_end = {s.stage: s.number for s in self.plan}
        last_full = max([stage_end[i] for i in self.out_indices] + [0])
        last = max([last_full] + list(self.expand_taps))
        self.layers = []
        for spec in self.plan[:last]:
            if spec.index == 0:
                self.layers.append(f'layer{spec.stage + 1}')
                self.add_module(self.layers[-1], nn.Sequential())
            getattr(self, self.layers[-1]).append(SandGlassCA(
                spec.in_channels, spec.out_channels, spec.hidden, spec.stride, spec.layout,
                spec.residual, dilation=spec.dilation, attention=attention, with_cp=with_cp,
                tap_only=spec.number == last > last_full,
                attention_position=attention_position, **common))
        self.out_channels = self.plan[last - 1].out_channels
        self._freeze_stages()

    @classmethod
    def block_plan(cls, widen_factor: float, strides: Sequence[int],
                   dilations: Sequence[int]) -> Tuple[BlockSpec, ...]:
        """The 20 blocks of the architecture, as the authors' model lays them out."""
        plan = []
        in_channels = make_divisible(32 * widen_factor, 8)
        for i, ((t, c, n, s), stride, dilation) in enumerate(
                zip(cls.arch_settings, strides, dilations)):
            out_channels = make_divisible(c * widen_factor, 8)
            if c == 1280 and widen_factor < 1:
                out_channels = 1280
            for j in range(n):
                full = t == 2 or in_channels == out_channels or (n == 1 and s == 1)
                layout = 'full' if full else ('transition_s2' if s == 2 else 'transition_s1')
                hidden = in_channels // t
                if hidden < out_channels / 6:  # the sandglass never narrows below oup/6
                    hidden = make_divisible(math.ceil(out_channels / 6), 16)
                blk_stride = stride if j == 0 else 1
                # a full block keeps no identity when it changes width (first and
                # single-block stages)
                residual = blk_stride == 1 and in_channels == out_channels
                plan.append(BlockSpec(len(plan) + 1, i, j, in_channels, out_channels, hidden,
                                      blk_stride, dilation, layout, residual))
                in_channels = out_channels
        return tuple(plan)

    def stage_modules(self):
        return [self.stem] + [getattr(self, name) for name in self.layers]

    def forward(self, x: torch.Tensor) -> Tuple[torch.Tensor, ...]:
        x = self.stem(x)
        outs, k = [], 0
        for i, name in enumerate(self.layers):
            for block in getattr(self, name):
                k += 1
                if k in self.expand_taps:
                    x, expanded = block.forward_with_expanded(x)
                    outs.append(expanded)
                else:
                    x = block(x)
            if i in self.out_indices:
                outs.append(x)
        return tuple(outs)

    def checkpoint_module_map(self, layout: str) -> Dict[str, str]:
        """Our module path -> the authors' (``'released'``) or ours, over all 20 blocks."""
        if layout not in ('ours', 'released'):
            raise ValueError(f'MobileNeXtCA reads the authors\' layout or ours, not {layout}')
        norm = self.stem.norm_name
        if layout == 'ours':
            m = conv_module_map('stem', 'stem.conv', f'stem.{norm}', norm)
        else:
            m = conv_module_map('stem', 'features.0.0', 'features.0.1', norm)
        for spec in self.plan:
            ours = f'layer{spec.stage + 1}.{spec.index}'
            theirs = ours if layout == 'ours' else f'features.{spec.number}.conv'
            m[ours] = theirs  # whole block: its tensors are unused when not built
            for part, (conv, bn) in _AUTHORS_PARTS[spec.layout].items():
                if layout == 'ours':
                    conv, bn = f'{part}.conv', f'{part}.{norm}'
                m.update(conv_module_map(f'{ours}.{part}', f'{theirs}.{conv}', f'{theirs}.{bn}',
                                         norm))
        return m
