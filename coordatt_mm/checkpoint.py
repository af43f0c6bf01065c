"""Checked loading of ImageNet MobileNetV2(-CA) weights into :class:`MobileNetV2CA`.

Three layouts are recognised and mapped onto the backbone's own names:

- ``released``: the authors' ``mbv2_ca.pth`` (``features.N.conv.M``, CA at ``conv.6``,
  head conv ``conv.0/1``, ``classifier[.1].*``);
- ``mmcls``: mmcls/mmpretrain ``MobileNetV2`` (``conv1``, ``layerI.J.conv.K``, ``head.*``),
  with or without the ``backbone.`` prefix, as behind ``mmcls://mobilenet_v2`` (mmseg's
  ``MobileNetV2`` uses the same names);
- ``mmdet``: mmdet's ``MobileNetV2`` (``layerI.J.{expand,depthwise,linear}_conv``), e.g. the
  backbone of a trained mmdet SSDLite;
- ``ours``: this package's names (files written by ``tools/convert_official_ckpt.py`` or
  a trained detector/segmentor's ``backbone.*``).

Every backbone tensor must be filled with the right shape; otherwise a
:class:`CheckpointMismatchError` names the file and the first offending keys.
Only classifier weights (and the 1280 conv, when the backbone has none) are ignored, and
what was ignored is logged.
"""
import logging
import re
from collections import OrderedDict
from typing import Dict, List, Optional, Sequence, Tuple

import torch
import torch.nn as nn
from mmengine.logging import print_log

from coordatt_mm.compat import load_checkpoint_file

# authors' CoordAtt submodule names -> ours
_RELEASED_CA_NAMES = {'conv1': 'conv_reduce', 'bn1': 'norm', 'conv2': 'conv_h', 'conv3': 'conv_w'}
_CLASSIFIER = re.compile(r'^(classifier|head|fc)\.')


class CheckpointMismatchError(RuntimeError):
    """A checkpoint that does not fit the model it is loaded into."""


def _unwrap(ckpt, filename: str) -> Dict[str, torch.Tensor]:
    if isinstance(ckpt, dict):
        for key in ('state_dict', 'model'):
            if isinstance(ckpt.get(key), dict):
                ckpt = ckpt[key]
                break
    if not isinstance(ckpt, dict) or not any(torch.is_tensor(v) for v in ckpt.values()):
        raise CheckpointMismatchError(f'{filename}: holds no state_dict of tensors')
    return OrderedDict((k[7:] if k.startswith('module.') else k, v)
                       for k, v in ckpt.items() if torch.is_tensor(v))


def _select(state: Dict[str, torch.Tensor], prefix: Optional[str]) -> Dict[str, torch.Tensor]:
    """Keep the backbone part of a whole-model state dict (``prefix`` or ``backbone.``)."""
    if prefix is None and any(k.startswith('backbone.') for k in state):
        prefix = 'backbone'
    if prefix is None:
        return state
    p = prefix.rstrip('.') + '.'
    return OrderedDict((k[len(p):], v) for k, v in state.items() if k.startswith(p))


def detect_layout(state: Dict[str, torch.Tensor]) -> str:
    keys = list(state)
    if any(k.startswith('features.') for k in keys):
        return 'released'
    if any(re.match(r'layer\d+\.\d+\.conv\.\d+\.', k) for k in keys):
        return 'mmcls'
    if any(re.match(r'layer\d+\.\d+\.depthwise_conv\.', k) for k in keys):
        return 'mmdet'
    if any(re.match(r'layer\d+\.\d+\.(depthwise|project|reduce|dw1|dw2)\.', k) for k in keys):
        return 'ours'
    return 'unknown'


def _conv_module(path: str, cm: nn.Module) -> List[Tuple[str, str]]:
    """(our conv path, our norm path) of an mmcv ConvModule."""
    return [f'{path}.conv', f'{path}.{cm.norm_name}']


def mobilenet_v2_module_map(model: nn.Module, layout: str) -> Dict[str, str]:
    """MobileNetV2CA: our module path -> the checkpoint's module path (released, mmcls, mmdet)."""
    if layout == 'ours':
        return {}
    released = layout == 'released'
    m = dict(zip(_conv_module('conv1', model.conv1),
                 ['features.0.0', 'features.0.1'] if released else ['conv1.conv', 'conv1.bn']))
    idx = 1
    for lname in model.layers:
        for j, block in enumerate(getattr(model, lname)):
            ours, src = f'{lname}.{j}', f'features.{idx}.conv' if released else f'{lname}.{j}.conv'
            parts = ([] if block.expand is None else [('expand', block.expand)]) + \
                [('depthwise', block.depthwise), ('project', block.project)]
            if released:  # Sequential indices, with ReLU6 and CA occupying slots
                slots = [0, 3, 7] if block.expand is not None else [0, 3]
                srcs = [[f'{src}.{i}', f'{src}.{i + 1}'] for i in slots]
            elif layout == 'mmcls':
                srcs = [[f'{src}.{i}.conv', f'{src}.{i}.bn'] for i in range(len(parts))]
            else:  # mmdet
                srcs = [[f'{ours}.{name}_conv.conv', f'{ours}.{name}_conv.bn']
                        for name in ['expand', 'depthwise', 'linear'][3 - len(parts):]]
            for (name, cm), src_names in zip(parts, srcs):
                m.update(zip(_conv_module(f'{ours}.{name}', cm), src_names))
            if block.attention is not None and released:
                for theirs, our_name in _RELEASED_CA_NAMES.items():
                    m[f'{ours}.attention.{our_name}'] = f'{src}.6.{theirs}'
            idx += 1
    if model.conv2 is not None:
        m.update(zip(_conv_module('conv2', model.conv2),
                     ['conv.0', 'conv.1'] if released else ['conv2.conv', 'conv2.bn']))
    return m


def convert_state_dict(state: Dict[str, torch.Tensor], model: nn.Module, filename: str = '<state_dict>',
                       layout: Optional[str] = None, allow_missing: Sequence[str] = ()
                       ) -> Tuple[Dict[str, torch.Tensor], List[str]]:
    """Map a backbone checkpoint onto ``model``'s keys; return (state_dict, ignored keys).

    Raises :class:`CheckpointMismatchError` unless every tensor of ``model`` is found with the
    right shape (``num_batches_tracked`` may be absent) and nothing but classifier weights is
    left over. Tensors of submodules named in ``allow_missing`` (e.g. ``'attention'``, to start
    SE/CA layers fresh on plain ImageNet weights) may be absent; they keep their init.
    """
    layout = layout or detect_layout(state)
    desc = (f'{type(model).__name__}(widen_factor={getattr(model, "widen_factor", "?")}, '
            f'attention={(getattr(model, "attention_cfg", None) or {}).get("type")})')
    if layout == 'unknown':
        raise CheckpointMismatchError(
            f'{filename}: not a MobileNetV2 checkpoint in a known layout (first keys: '
            f'{", ".join(list(state)[:3])})')
    mod_map = model.checkpoint_module_map(layout)
    out, problems, used, fresh = OrderedDict(), [], set(), []
    for key, param in model.state_dict().items():
        path, leaf = key.rsplit('.', 1)
        src = f'{mod_map.get(path, path)}.{leaf}'
        if src not in state:
            if any(f'.{name}.' in f'.{key}' for name in allow_missing):
                fresh.append(key)
            elif leaf != 'num_batches_tracked':
                problems.append(f'missing {src} (for {key}, {tuple(param.shape)})')
            continue
        used.add(src)
        if state[src].shape != param.shape:
            problems.append(f'{src}: checkpoint {tuple(state[src].shape)} vs model '
                            f'{tuple(param.shape)}')
            continue
        out[key] = state[src]
    ignorable = re.compile(r'^(conv\.[01]|conv2)\.') if getattr(model, 'conv2', 0) is None else None
    ignored = []
    for k in state:
        if k in used:
            continue
        if _CLASSIFIER.match(k) or (ignorable is not None and ignorable.match(k)):
            ignored.append(k)
        else:
            problems.append(f'unexpected {k} {tuple(state[k].shape)}')
    if problems:
        more = f' (+{len(problems) - 3} more)' if len(problems) > 3 else ''
        raise CheckpointMismatchError(
            f'{filename} ({layout} layout) does not fit {desc}: '
            + '; '.join(problems[:3]) + more)
    if fresh:
        print_log(f'{filename}: {len(fresh)} tensors of {sorted(allow_missing)} are not in the '
                  f'checkpoint and keep their initialisation (allow_missing)',
                  logger='current', level=logging.WARNING)
    return out, ignored


def load_backbone_checkpoint(model: nn.Module, filename: str, prefix: Optional[str] = None,
                             allow_missing: Sequence[str] = ()) -> List[str]:
    """Load ``filename`` (path, URL or ``mmcls://``) into ``model``, all or nothing
    (except the submodules named in ``allow_missing``)."""
    state = read_backbone_state(filename, prefix)
    converted, ignored = convert_state_dict(state, model, filename, allow_missing=allow_missing)
    model.load_state_dict(converted, strict=False)  # strictness checked above
    print_log(f'{type(model).__name__}: loaded {len(converted)} tensors from {filename} '
              f'({detect_layout(state)} layout); ignored {len(ignored)} non-backbone keys'
              + (f': {", ".join(ignored)}' if ignored else ''), logger='current')
    return ignored


CANDIDATE_WIDTHS = (0.35, 0.5, 0.75, 1.0, 1.3, 1.4, 1.5, 2.0)


def read_backbone_state(filename: str, prefix: Optional[str] = None,
                        trust_pickle: bool = False) -> Dict[str, torch.Tensor]:
    """The backbone tensors of a checkpoint file, wrappers and prefixes removed."""
    return _select(_unwrap(load_checkpoint_file(filename, trust_pickle=trust_pickle), filename),
                   prefix)


def guess_arch(state: Dict[str, torch.Tensor]) -> str:
    """'mobilenext' for the authors' 20-block MobileNeXt layout, else 'mobilenetv2'."""
    blocks = {int(k.split('.')[1]) for k in state if re.match(r'features\.\d+\.', k)}
    return 'mobilenext' if max(blocks, default=0) == 20 else 'mobilenetv2'


def convert_to_ours(filename: str, widen_factor: Optional[float] = None,
                    trust_pickle: bool = False):
    """Convert a released/mmcls file to our naming; the width is found when not given.

    Returns (state_dict, meta) where meta records the source, layout and model settings.
    """
    from coordatt_mm.backbones import MobileNetV2CA, MobileNeXtCA
    state = read_backbone_state(filename, trust_pickle=trust_pickle)
    layout = detect_layout(state)
    arch = guess_arch(state)
    with_att = any('.6.conv1.' in k or '.attention.' in k for k in state)
    attention = dict(type='CoordAtt', reduction=32) if with_att else None
    widths = [widen_factor] if widen_factor else CANDIDATE_WIDTHS
    error = None
    cls = MobileNeXtCA if arch == 'mobilenext' else MobileNetV2CA
    for w in widths:
        model = cls(widen_factor=w, attention=attention)
        try:
            converted, ignored = convert_state_dict(state, model, filename, layout)
        except CheckpointMismatchError as e:
            error = e
            continue
        meta = dict(source=str(filename), arch=cls.__name__, layout=layout, widen_factor=w,
                    attention=attention, ignored=ignored)
        return converted, meta
    if widen_factor:
        raise error
    raise CheckpointMismatchError(f'{filename}: fits {cls.__name__} at none of the widths '
                                  f'{CANDIDATE_WIDTHS}; last error: {error}')
