"""What MobileNetV2CA and MobileNeXtCA share: the peers' ``pretrained``/``init_cfg`` contract,
stage freezing, ``norm_eval`` and the checkpoint layout tables the loader reads."""
import warnings
from typing import Dict, List, Optional

import torch
import torch.nn as nn
from mmcv.cnn import ConvModule
from mmengine.model import BaseModule
from mmengine.model.weight_init import initialize
from torch.nn.modules.batchnorm import _BatchNorm

from coordatt_mm.layers.hooks import hooked

# where a block's attention sits: the Coordinate Attention paper's slot (on the expanded
# features after the depthwise conv) or ECA's and Triplet Attention's (on the block's output,
# after its last conv + BN, before the residual addition)
ATTENTION_POSITIONS = ('after_depthwise', 'after_project')

# mmdet's and mmseg's MobileNetV2 start from this when no checkpoint is given
DEFAULT_INIT_CFG = [
    dict(type='Kaiming', layer='Conv2d'),
    dict(type='Constant', val=1, layer=['_BatchNorm', 'GroupNorm']),
]


class MobileBackbone(BaseModule):
    """Base of the mobile backbones with an attention slot.

    Subclasses set ``self.frozen_stages`` and ``self.norm_eval``, list their built stages
    (stem first) in :meth:`stage_modules`, and describe the checkpoint layouts they read in
    ``checkpoint_layouts`` (layout name -> a regex only that layout's keys match) and
    :meth:`checkpoint_module_map`.

    Args:
        pretrained: deprecated, as in mmdet/mmseg: a path or URL becomes
            ``init_cfg=dict(type='Pretrained', checkpoint=pretrained)`` (with a warning).
        init_cfg: ``None`` gives mmdet's/mmseg's MobileNetV2 initialisation (Kaiming for
            convs, 1 for norms); ``Pretrained`` loads through the checked loader
            (:mod:`coordatt_mm.checkpoint`), which accepts ``prefix`` and ``allow_missing``.
    """

    arch_settings: tuple = ()
    frozen_stages: int = -1
    norm_eval: bool = False
    checkpoint_layouts: Dict[str, str] = {}

    def __init__(self, pretrained: Optional[str] = None, init_cfg=None) -> None:
        if init_cfg and pretrained:
            raise AssertionError('init_cfg and pretrained cannot be set at the same time')
        if isinstance(pretrained, str):
            warnings.warn('DeprecationWarning: pretrained is deprecated, '
                          'please use "init_cfg" instead')
            init_cfg = dict(type='Pretrained', checkpoint=pretrained)
        elif pretrained is not None:
            raise TypeError(f'pretrained must be a str or None, got {type(pretrained).__name__}')
        elif init_cfg is None:
            init_cfg = [dict(c) for c in DEFAULT_INIT_CFG]
        super().__init__(init_cfg)

    def _check_stage_args(self, strides, dilations, frozen_stages: int) -> None:
        n_stages = len(self.arch_settings)
        if len(strides) != n_stages or len(dilations) != n_stages:
            raise ValueError(f'strides and dilations need {n_stages} entries, got '
                             f'{tuple(strides)} and {tuple(dilations)}')
        if frozen_stages not in range(-1, n_stages + 1):
            raise ValueError(f'frozen_stages must be in -1..{n_stages}, got {frozen_stages}')

    def stage_modules(self) -> List[nn.Module]:
        """[stem, stage 1, stage 2, ...] as built, in the order ``frozen_stages`` counts them."""
        raise NotImplementedError

    def checkpoint_module_map(self, layout: str) -> Dict[str, str]:
        """Our module path -> the checkpoint's, over the whole architecture (modules this
        instance did not build included: their tensors are reported as unused)."""
        raise NotImplementedError

    def init_weights(self) -> None:
        if isinstance(self.init_cfg, dict) and self.init_cfg.get('type') == 'Pretrained':
            # checked, layout-aware loading instead of mmengine's silent partial load; the
            # initializer is registered by coordatt_mm.checkpoint
            initialize(self, dict(self.init_cfg, type='CheckedPretrained'))
            self._is_init = True
        else:
            super().init_weights()

    def _freeze_stages(self) -> None:
        for m in self.stage_modules()[:self.frozen_stages + 1]:
            m.eval()
            for p in m.parameters():
                p.requires_grad = False

    def train(self, mode: bool = True):
        super().train(mode)
        self._freeze_stages()
        if mode and self.norm_eval:
            for m in self.modules():
                if isinstance(m, _BatchNorm):
                    m.eval()
        return self


def check_attention_position(position: str) -> str:
    """``position`` if it is one of :data:`ATTENTION_POSITIONS`, else a ValueError."""
    if position not in ATTENTION_POSITIONS:
        raise ValueError(f'attention_position must be one of {ATTENTION_POSITIONS}, '
                         f'got {position!r}')
    return position


def make_divisible(value: float, divisor: int, min_ratio: float = 0.9) -> int:
    """``value`` rounded to the nearest multiple of ``divisor`` (at least ``divisor``), one
    multiple more when rounding would lose more than ``1 - min_ratio`` of it: MobileNets'
    width rule, the same numbers as mmdet's and torchvision's ``make_divisible``."""
    rounded = max(divisor, int(value + divisor / 2) // divisor * divisor)
    return rounded + divisor if rounded < min_ratio * value else rounded


def conv_module_map(ours: str, theirs_conv: str, theirs_norm: str,
                    norm_name: str) -> Dict[str, str]:
    """The two entries of an mmcv ConvModule (conv, norm) in a module map."""
    return {f'{ours}.conv': theirs_conv, f'{ours}.{norm_name}': theirs_norm}


def conv_then_attention(conv: ConvModule, attention: Optional[nn.Module], x: torch.Tensor,
                        then: Optional[ConvModule] = None) -> torch.Tensor:
    """``then(attention(conv(x)))`` (``then`` optional), letting an attention layer that can
    (``CoordAtt``) work with its neighbours: in its fused eval form it computes ``conv``'s norm
    and activation inside its own passes instead of in two passes of their own, gating the
    block's own tensor in place (:meth:`CoordAtt.forward_after_norm_act`); in training it feeds
    ``then``'s convolution without storing the gated tensor (:meth:`CoordAtt.forward_then_conv`).

    Both skip module calls and the second overwrites a tensor, so both step aside when a hook
    is registered on any of the three modules or their sub-modules, or globally
    (:func:`~coordatt_mm.layers.hooks.hooked`): every module is then called as usual and
    nothing is gated in place."""
    if attention is None:
        out = conv(x)
        return out if then is None else then(out)
    if hooked(conv, attention, then) or torch.jit.is_tracing():
        # hooks see every module called; a traced graph (ONNX export) names CA's nodes after
        # the layer (its own export form, see CoordAtt._forward_export)
        out = attention(conv(x))
        return out if then is None else then(out)
    if (then is not None and torch.is_grad_enabled() and hasattr(attention, 'forward_then_conv')
            and _plain(then) and type(then.conv) is nn.Conv2d
            and then.conv.padding_mode == 'zeros'):
        out = then.norm(attention.forward_then_conv(conv(x), then.conv))
        return then.activate(out) if then.with_activation else out
    after = getattr(attention, 'forward_after_norm_act', None)
    if after is not None and _plain(conv):
        out = after(conv.conv(x), conv.norm, conv.activate if conv.with_activation else None,
                    inplace=True)
    else:
        out = attention(conv(x))
    return out if then is None else then(out)


def _plain(conv: ConvModule) -> bool:
    """conv -> norm -> activation, nothing else in between."""
    return (conv.order == ('conv', 'norm', 'act') and conv.with_norm
            and not conv.with_explicit_padding and not conv.with_spectral_norm)
