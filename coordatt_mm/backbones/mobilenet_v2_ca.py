"""MobileNetV2 with an attention slot (Coordinate Attention by default) for mmdet and mmseg.

Architecture of the MobileNetV2 + CA classifier released with Hou, Zhou, Feng, "Coordinate
Attention for Efficient Mobile Network Design" (CVPR 2021), minus its linear head. With
``attention=None`` it is mmdet's MobileNetV2 (``out_indices`` counted the same way) and, with
mmseg's arguments, mmseg's.
"""
from typing import Dict, Optional, Sequence, Tuple

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

DEFAULT_ATTENTION = dict(type='CoordAtt', reduction=32)
DILATION_MODES = ('first_block', 'every_block')

# The released CoordAtt's submodules -> ours
_RELEASED_CA = {'conv_reduce': 'conv1', 'norm': 'bn1', 'conv_h': 'conv2', 'conv_w': 'conv3'}
# Per layout: stem, block prefix ({k}: 1-based block number, {i}/{j}: stage/index), the
# (conv, norm) of each block part for expanding and for t=1 blocks, and the 1280 conv.
_LAYOUTS = {
    'released': dict(stem=('features.0.0', 'features.0.1'), block='features.{k}.conv',
                     parts={'expand': ('0', '1'), 'depthwise': ('3', '4'), 'project': ('7', '8')},
                     parts_t1={'depthwise': ('0', '1'), 'project': ('3', '4')},
                     attention='6', head=('conv.0', 'conv.1')),
    'mmcls': dict(stem=('conv1.conv', 'conv1.bn'), block='layer{i}.{j}.conv',
                  parts={'expand': ('0.conv', '0.bn'), 'depthwise': ('1.conv', '1.bn'),
                         'project': ('2.conv', '2.bn')},
                  parts_t1={'depthwise': ('0.conv', '0.bn'), 'project': ('1.conv', '1.bn')},
                  head=('conv2.conv', 'conv2.bn')),
    'mmdet': dict(stem=('conv1.conv', 'conv1.bn'), block='layer{i}.{j}',
                  parts={'expand': ('expand_conv.conv', 'expand_conv.bn'),
                         'depthwise': ('depthwise_conv.conv', 'depthwise_conv.bn'),
                         'project': ('linear_conv.conv', 'linear_conv.bn')},
                  parts_t1={'depthwise': ('depthwise_conv.conv', 'depthwise_conv.bn'),
                            'project': ('linear_conv.conv', 'linear_conv.bn')},
                  head=('conv2.conv', 'conv2.bn')),
}


class InvertedResidualCA(BaseModule):
    """expand 1x1 -> depthwise 3x3 -> attention -> linear project 1x1 (+ identity).

    ``attention_position='after_depthwise'``: the attention sits on the expanded features
    after the depthwise conv, as in the released model; blocks with ``expand_ratio == 1``
    have neither expansion nor attention. ``'after_project'``: every block has one, on its
    output channels after the projection conv + BN, before the identity is added.
    """

    def __init__(self,
                 in_channels: int,
                 out_channels: int,
                 stride: int,
                 expand_ratio: int,
                 dilation: int = 1,
                 attention: Optional[dict] = None,
                 conv_cfg: Optional[dict] = None,
                 norm_cfg: dict = dict(type='BN'),
                 act_cfg: dict = dict(type='ReLU6'),
                 with_cp: bool = False,
                 attention_position: str = 'after_depthwise',
                 init_cfg=None) -> None:
        super().__init__(init_cfg)
        assert stride in (1, 2), f'stride must be 1 or 2, got {stride}'
        self.with_cp = with_cp
        self.attention_position = check_attention_position(attention_position)
        self.use_res_connect = stride == 1 and in_channels == out_channels
        hidden = int(round(in_channels * expand_ratio))
        common = dict(conv_cfg=conv_cfg, norm_cfg=norm_cfg)
        self.expand = None
        if expand_ratio != 1:
            self.expand = ConvModule(in_channels, hidden, 1, act_cfg=act_cfg, **common)
        self.depthwise = ConvModule(
            hidden, hidden, 3, stride=stride, padding=dilation, dilation=dilation,
            groups=hidden, act_cfg=act_cfg, **common)
        self.attention = None
        if attention_position == 'after_project':
            self.attention = build_attention(attention, out_channels, norm_cfg)
        elif expand_ratio != 1:
            self.attention = build_attention(attention, hidden, norm_cfg)
        self.project = ConvModule(hidden, out_channels, 1, act_cfg=None, **common)

    def _body(self, x: torch.Tensor) -> torch.Tensor:
        out = x if self.expand is None else self.expand(x)
        if self.attention_position == 'after_depthwise':
            out = conv_then_attention(self.depthwise, self.attention, out, then=self.project)
        else:  # CA folds the projection's BN into its eval passes, as it does the depthwise's
            out = conv_then_attention(self.project, self.attention, self.depthwise(out))
        return x + out if self.use_res_connect else out

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.with_cp and x.requires_grad:
            return cp.checkpoint(self._body, x, use_reentrant=False)
        return self._body(x)


@register_model()
class MobileNetV2CA(MobileBackbone):
    """MobileNetV2 backbone with Coordinate Attention, usable from mmdet and mmseg configs.

    Only what the outputs use is built: the stages up to the last output, and the 1280 conv
    when an output (index 7) or ``with_final_conv=True`` asks for it. So every parameter gets
    a gradient and DDP with ``find_unused_parameters=False`` works for any ``out_indices``.

    Args:
        widen_factor: width multiplier; channels are rounded to multiples of 8.
            Default: 1.0.
        out_indices: outputs to return, counted over [layer1 ... layer7, conv2 (1280)]
            as in mmdet's MobileNetV2: ``(4, 7)`` are SSDLite's taps (96 ch at stride 16,
            1280 ch at stride 32); ``(1, 2, 4, 6)`` are mmseg's DeepLabV3 taps.
            Default: (1, 2, 4, 7).
        strides: stride of each of the 7 stages (mmseg's meaning).
            Default: (1, 2, 2, 2, 1, 2, 1).
        dilations: dilation of each of the 7 stages. Default: all 1.
        dilation_mode: ``'first_block'`` dilates only the first block of a stage, as mmseg's
            MobileNetV2 (its released DeepLabV3 weights expect this); ``'every_block'``
            keeps the atrous rate for every block of the stage (DeepLab's output-stride
            convention). Default: 'first_block'.
        attention: attention layer config (``CoordAtt``, ``SE``, ``CBAM``, ``ECA``,
            ``TripletAttention``, ``SimAM`` or any registered layer taking ``in_channels``;
            ``None``: plain MobileNetV2, parameter-identical to mmdet's and mmseg's).
            Default: ``dict(type='CoordAtt', reduction=32)``.
        attention_position: ``'after_depthwise'``: in each expanding block, on the expanded
            features after the depthwise conv (the Coordinate Attention paper's slot and the
            released model's; 16 layers). ``'after_project'``: in every block, the t=1 block
            included, on the block's output channels after the projection conv + BN, before
            the residual addition (the slot of ECA's and Triplet Attention's MobileNetV2; 17
            layers). Default: 'after_depthwise'.
        with_final_conv: build the final 1x1 conv to 1280 channels (index 7) even when no
            output uses it; ``False`` forbids index 7. Default: None (built when used).
        frozen_stages: freeze the stem (0) and layer1..layerN (N); -1 freezes nothing.
            As mmdet's, except that a frozen stem's BN also stops updating statistics.
            Default: -1.
        conv_cfg, norm_cfg, act_cfg: of every conv (the attention's norm follows
            ``norm_cfg``). Default: None, BN, ReLU6.
        norm_eval: keep norm layers in eval mode while training. Default: False.
        with_cp: gradient checkpointing per block (saves memory, costs time). Default: False.
        pretrained: deprecated path of a checkpoint (see ``MobileBackbone``). Default: None.
        init_cfg: ``dict(type='Pretrained', checkpoint=...)`` accepts the authors' released
            file, mmcls/mmpretrain/mmseg and mmdet MobileNetV2 checkpoints and our own; every
            built tensor must be filled (see :mod:`coordatt_mm.checkpoint`). Default: None
            (mmdet's/mmseg's Kaiming/Constant initialisation).
    """

    # expand ratio t, channels c, blocks n, stride s (the paper's Table)
    arch_settings = ((1, 16, 1, 1), (6, 24, 2, 2), (6, 32, 3, 2), (6, 64, 4, 2),
                     (6, 96, 3, 1), (6, 160, 3, 2), (6, 320, 1, 1))
    checkpoint_layouts = {
        'released': r'^features\.\d+\.',
        'mmcls': r'^layer\d+\.\d+\.conv\.\d+\.conv\.',
        'mmdet': r'^layer\d+\.\d+\.depthwise_conv\.',
    }

    def __init__(self,
                 widen_factor: float = 1.0,
                 out_indices: Sequence[int] = (1, 2, 4, 7),
                 strides: Sequence[int] = (1, 2, 2, 2, 1, 2, 1),
                 dilations: Sequence[int] = (1, 1, 1, 1, 1, 1, 1),
                 dilation_mode: str = 'first_block',
                 attention: Optional[dict] = DEFAULT_ATTENTION,
                 with_final_conv: Optional[bool] = None,
                 frozen_stages: int = -1,
                 conv_cfg: Optional[dict] = None,
                 norm_cfg: dict = dict(type='BN'),
                 act_cfg: dict = dict(type='ReLU6'),
                 norm_eval: bool = False,
                 with_cp: bool = False,
                 attention_position: str = 'after_depthwise',
                 pretrained: Optional[str] = None,
                 init_cfg=None) -> None:
        super().__init__(pretrained, init_cfg)
        self._check_stage_args(strides, dilations, frozen_stages)
        self.attention_position = check_attention_position(attention_position)
        n_stages = len(self.arch_settings)
        if dilation_mode not in DILATION_MODES:
            raise ValueError(f'dilation_mode must be one of {DILATION_MODES}, '
                             f'got {dilation_mode!r}')
        last = n_stages - 1 if with_final_conv is False else n_stages
        if not out_indices or not set(out_indices) <= set(range(last + 1)):
            raise ValueError(f'out_indices {tuple(out_indices)} must lie in 0..{last}'
                             + (' (with_final_conv=False)' if with_final_conv is False else ''))
        self.widen_factor = widen_factor
        self.out_indices = tuple(out_indices)
        self.attention_cfg = attention
        self.frozen_stages = frozen_stages
        self.norm_eval = norm_eval
        self.with_cp = with_cp

        common = dict(conv_cfg=conv_cfg, norm_cfg=norm_cfg, act_cfg=act_cfg)
        self.in_channels = make_divisible(32 * widen_factor, 8)
        self.conv1 = ConvModule(3, self.in_channels, 3, stride=2, padding=1, **common)

        build_head = with_final_conv or (with_final_conv is None and n_stages in out_indices)
        n_built = n_stages if build_head else max(out_indices) + 1
        self.layers = []
        for i, ((t, c, n, _), stride, dilation) in enumerate(
                zip(self.arch_settings[:n_built], strides, dilations)):
            layer = self.make_layer(make_divisible(c * widen_factor, 8), n, stride, dilation,
                                    dilation_mode, t, attention, with_cp, common,
                                    attention_position)
            self.add_module(f'layer{i + 1}', layer)
            self.layers.append(f'layer{i + 1}')

        self.conv2 = None
        if build_head:
            self.conv2 = ConvModule(self.in_channels, self.head_channels(), 1, **common)
        self._freeze_stages()

    def make_layer(self, out_channels: int, num_blocks: int, stride: int, dilation: int,
                   dilation_mode: str, expand_ratio: int, attention: Optional[dict],
                   with_cp: bool, common: dict,
                   attention_position: str = 'after_depthwise') -> nn.Sequential:
        """One stage: the first block carries the stride (and, in ``'first_block'`` mode,
        the only dilation)."""
        blocks = []
        for j in range(num_blocks):
            blocks.append(InvertedResidualCA(
                self.in_channels, out_channels, stride if j == 0 else 1, expand_ratio,
                dilation=dilation if j == 0 or dilation_mode == 'every_block' else 1,
                attention=attention, with_cp=with_cp, attention_position=attention_position,
                **common))
            self.in_channels = out_channels
        return nn.Sequential(*blocks)

    def head_channels(self) -> int:
        # the 1280 head conv only grows for width > 1 (as the released classifier)
        return int(1280 * self.widen_factor) if self.widen_factor > 1.0 else 1280

    def forward(self, x: torch.Tensor) -> Tuple[torch.Tensor, ...]:
        x = self.conv1(x)
        outs = []
        stages = self.layers + (['conv2'] if self.conv2 is not None else [])
        for i, name in enumerate(stages[:max(self.out_indices) + 1]):
            x = getattr(self, name)(x)
            if i in self.out_indices:
                outs.append(x)
        return tuple(outs)

    def stage_modules(self):
        return [self.conv1] + [getattr(self, name) for name in self.layers]

    def checkpoint_module_map(self, layout: str) -> Dict[str, str]:
        """Over the whole architecture, blocks included; for ``'ours'`` the identity."""
        norm = self.conv1.norm_name
        ca = self.attention_cfg is not None and self.attention_cfg['type'] == 'CoordAtt'
        # attention elsewhere: the released CA's slot is one this model does not build
        moved = self.attention_cfg is not None and self.attention_position == 'after_project'
        if layout == 'ours':
            table = dict(stem=('conv1.conv', f'conv1.{norm}'), block='layer{i}.{j}',
                         parts={p: (f'{p}.conv', f'{p}.{norm}')
                                for p in ('expand', 'depthwise', 'project')},
                         head=('conv2.conv', f'conv2.{norm}'))
            table['parts_t1'] = {p: table['parts'][p] for p in ('depthwise', 'project')}
        else:
            table = _LAYOUTS[layout]
        m = conv_module_map('conv1', *table['stem'], norm)
        k = 0
        for i, (t, _, n, _) in enumerate(self.arch_settings):
            for j in range(n):
                k += 1
                ours = f'layer{i + 1}.{j}'
                theirs = table['block'].format(k=k, i=i + 1, j=j)
                m[ours] = theirs  # whole block: its tensors are unused when not built
                for part, (conv, bn) in table['parts' if t != 1 else 'parts_t1'].items():
                    m.update(conv_module_map(f'{ours}.{part}', f'{theirs}.{conv}',
                                             f'{theirs}.{bn}', norm))
                if t != 1 and 'attention' in table and moved:
                    # a path no module has: the released CA tensors are reported unused
                    # (ours are new: allow_missing=['attention'])
                    m[f'{ours}.attention(after_depthwise)'] = f'{theirs}.{table["attention"]}'
                elif t != 1 and 'attention' in table and ca:
                    m.update({f'{ours}.attention.{a}': f'{theirs}.{table["attention"]}.{b}'
                              for a, b in _RELEASED_CA.items()})
        m.update(conv_module_map('conv2', *table['head'], norm))
        return m
