"""MobileNetV2 with an attention slot (Coordinate Attention by default) for mmdet and mmseg.

Architecture of the MobileNetV2 + CA classifier released with Hou, Zhou, Feng, "Coordinate
Attention for Efficient Mobile Network Design" (CVPR 2021), minus its linear head.
"""
import inspect
from typing import Optional, Sequence, Tuple

import torch
import torch.nn as nn
import torch.utils.checkpoint as cp
from mmcv.cnn import ConvModule
from mmengine.model import BaseModule

from coordatt_mm.backbones.base import MobileBackbone
from coordatt_mm.registry import ROOT_MODELS, register_model
from coordatt_mm.utils import make_divisible

DEFAULT_ATTENTION = dict(type='CoordAtt', reduction=32)


def build_attention(cfg: Optional[dict], channels: int,
                    norm_cfg: Optional[dict] = None) -> Optional[nn.Module]:
    """Build the attention layer named by ``cfg`` for ``channels`` channels (None: none).

    The attention's norm follows the backbone's ``norm_cfg`` (e.g. SyncBN) unless ``cfg``
    sets its own. Layers that can gate in place do so unless ``cfg`` says otherwise: the
    blocks feed them a depthwise output nothing else reads.
    """
    if cfg is None:
        return None
    cfg = dict(cfg, channels=channels)
    cls = ROOT_MODELS.get(cfg['type'])
    if cls is None:
        raise KeyError(f'attention type {cfg["type"]!r} is not registered (CoordAtt, SE, CBAM)')
    if norm_cfg is not None and 'norm_cfg' in inspect.signature(cls).parameters:
        cfg.setdefault('norm_cfg', norm_cfg)
    if 'inplace' in inspect.signature(cls).parameters:
        cfg.setdefault('inplace', True)
    return ROOT_MODELS.build(cfg)


class InvertedResidualCA(BaseModule):
    """expand 1x1 -> depthwise 3x3 -> attention -> linear project 1x1 (+ identity).

    The attention sits on the expanded features after the depthwise conv, as in the
    released model; blocks with ``expand_ratio == 1`` have neither expansion nor attention.
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
                 init_cfg=None) -> None:
        super().__init__(init_cfg)
        assert stride in (1, 2), f'stride must be 1 or 2, got {stride}'
        self.with_cp = with_cp
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
        if expand_ratio != 1:
            self.attention = build_attention(attention, hidden, norm_cfg)
        self.project = ConvModule(hidden, out_channels, 1, act_cfg=None, **common)

    def _body(self, x: torch.Tensor) -> torch.Tensor:
        out = x if self.expand is None else self.expand(x)
        out = self.depthwise(out)
        if self.attention is not None:
            out = self.attention(out)
        out = self.project(out)
        return x + out if self.use_res_connect else out

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.with_cp and x.requires_grad:
            return cp.checkpoint(self._body, x, use_reentrant=False)
        return self._body(x)


@register_model()
class MobileNetV2CA(MobileBackbone):
    """MobileNetV2 backbone with Coordinate Attention, usable from mmdet and mmseg configs.

    Args:
        widen_factor: width multiplier; channels are rounded to multiples of 8.
        out_indices: outputs to return, counted over [layer1 ... layer7, conv2 (1280)]
            as in mmdet's MobileNetV2: ``(4, 7)`` are SSDLite's taps (96 ch at stride 16,
            1280 ch at stride 32); ``(1, 2, 4, 6)`` are mmseg's DeepLabV3 taps.
        strides: stride of each of the 7 stages (mmseg's meaning).
        dilations: dilation of each of the 7 stages; applied to every block of the stage.
        attention: attention layer config inserted in each expanding block
            (``None``: plain MobileNetV2, parameter-identical to mmdet's).
        with_final_conv: build the final 1x1 conv to 1280 channels (index 7).
        frozen_stages: freeze the stem (0) and layer1..layerN (N); -1 freezes nothing.
            As mmdet's, except that a frozen stem's BN also stops updating statistics.
        norm_eval: keep norm layers in eval mode while training.
        with_cp: gradient checkpointing per block (saves memory, costs time).
        init_cfg: ``dict(type='Pretrained', checkpoint=...)`` accepts the authors' released
            file, mmcls/mmpretrain MobileNetV2 checkpoints and our own converted files;
            every backbone tensor must be filled (see :mod:`coordatt_mm.checkpoint`).
    """

    # expand ratio t, channels c, blocks n, stride s (the paper's Table)
    arch_settings = ((1, 16, 1, 1), (6, 24, 2, 2), (6, 32, 3, 2), (6, 64, 4, 2),
                     (6, 96, 3, 1), (6, 160, 3, 2), (6, 320, 1, 1))

    def __init__(self,
                 widen_factor: float = 1.0,
                 out_indices: Sequence[int] = (1, 2, 4, 7),
                 strides: Sequence[int] = (1, 2, 2, 2, 1, 2, 1),
                 dilations: Sequence[int] = (1, 1, 1, 1, 1, 1, 1),
                 attention: Optional[dict] = DEFAULT_ATTENTION,
                 with_final_conv: bool = True,
                 frozen_stages: int = -1,
                 conv_cfg: Optional[dict] = None,
                 norm_cfg: dict = dict(type='BN'),
                 act_cfg: dict = dict(type='ReLU6'),
                 norm_eval: bool = False,
                 with_cp: bool = False,
                 init_cfg=None) -> None:
        super().__init__(init_cfg)
        n_stages = len(self.arch_settings)
        if len(strides) != n_stages or len(dilations) != n_stages:
            raise ValueError(f'strides and dilations need {n_stages} entries, got '
                             f'{tuple(strides)} and {tuple(dilations)}')
        last = n_stages if with_final_conv else n_stages - 1
        if not set(out_indices) <= set(range(last + 1)):
            raise ValueError(f'out_indices {tuple(out_indices)} must lie in 0..{last}'
                             + ('' if with_final_conv else ' (with_final_conv=False)'))
        if frozen_stages not in range(-1, n_stages + 1):
            raise ValueError(f'frozen_stages must be in -1..{n_stages}, got {frozen_stages}')
        self.widen_factor = widen_factor
        self.out_indices = tuple(out_indices)
        self.attention_cfg = attention
        self.frozen_stages = frozen_stages
        self.norm_eval = norm_eval
        self.with_cp = with_cp

        common = dict(conv_cfg=conv_cfg, norm_cfg=norm_cfg, act_cfg=act_cfg)
        in_channels = make_divisible(32 * widen_factor, 8)
        self.conv1 = ConvModule(3, in_channels, 3, stride=2, padding=1, **common)

        self.layers = []
        for i, ((t, c, n, _), stride, dilation) in enumerate(
                zip(self.arch_settings, strides, dilations)):
            out_channels = make_divisible(c * widen_factor, 8)
            blocks = []
            for j in range(n):
                blocks.append(InvertedResidualCA(
                    in_channels, out_channels, stride if j == 0 else 1, t,
                    dilation=dilation, attention=attention, with_cp=with_cp, **common))
                in_channels = out_channels
            self.add_module(f'layer{i + 1}', nn.Sequential(*blocks))
            self.layers.append(f'layer{i + 1}')

        self.conv2 = None
        if with_final_conv:
            # the 1280 head conv only grows for width > 1 (as the released classifier)
            out_channels = int(1280 * widen_factor) if widen_factor > 1.0 else 1280
            self.conv2 = ConvModule(in_channels, out_channels, 1, **common)
        self._freeze_stages()

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

    def checkpoint_module_map(self, layout: str):
        from coordatt_mm.checkpoint import mobilenet_v2_module_map
        return mobilenet_v2_module_map(self, layout)
