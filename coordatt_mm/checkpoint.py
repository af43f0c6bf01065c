"""Checked checkpoint loading: every tensor of the model is filled with the right shape, or an
error names the file and the first offending keys.

Models may describe foreign layouts (the authors' released files, mmcls/mmpretrain, mmdet):
``model.checkpoint_layouts`` maps a layout name to a regex only that layout's keys match, and
``model.checkpoint_module_map(layout)`` maps the model's module paths to the checkpoint's over
the whole architecture, so that tensors of modules the model did not build (e.g. a 1280 conv
no output uses) are reported as unused instead of unexpected. Models without these (mmdet's
ResNet with CA plugins, say) are read by their own names.

``CheckedPretrained`` puts this behind ``init_cfg``; the backbones use it for ``Pretrained``.
"""
import logging
import os.path as osp
import pickle
import re
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Dict, List, Optional, Sequence, Tuple

import torch
import torch.nn as nn
from mmengine.logging import print_log
from mmengine.registry import WEIGHT_INITIALIZERS

# heads of classifiers: never part of a backbone, ignored (and listed) when present
CLASSIFIER_KEYS = re.compile(r'^(classifier|head|fc)\.')
# training scripts' wrappers around the weights, most specific first
_WRAPPERS = ('state_dict', 'model', 'state_dict_ema')


class CheckpointMismatchError(RuntimeError):
    """A checkpoint that does not fit the model it is loaded into."""


def load_checkpoint_file(filename: str, map_location='cpu', trust_pickle: bool = False):
    """Read a checkpoint (path, URL, ``mmcls://``...) with a one-line error naming the file.

    ``trust_pickle=True`` (local files only) lifts torch's safe unpickler for a file you
    trust that carries arbitrary Python objects (e.g. training scripts' ``args``).
    """
    from mmengine.runner.checkpoint import CheckpointLoader
    try:
        if trust_pickle and osp.isfile(filename):
            return torch.load(filename, map_location=map_location, weights_only=False)
        return CheckpointLoader.load_checkpoint(filename, map_location=map_location)
    except FileNotFoundError as e:
        raise FileNotFoundError(f'{filename}: checkpoint not found') from e
    except pickle.UnpicklingError as e:
        blocked = re.search(r'Unsupported global: GLOBAL ([\w.]+)', str(e))
        what = blocked.group(1) if blocked else 'objects outside the allow-list'
        raise RuntimeError(
            f'{filename}: holds Python objects that torch\'s safe loader refuses ({what}); '
            f'if you trust the file, convert it once with: python tools/convert_official_ckpt.py '
            f'--trust-pickle {filename} OUT.pth') from e
    except Exception as e:  # truncated, corrupt, not a torch file
        first = (str(e).strip().splitlines() or [''])[0]
        raise RuntimeError(f'{filename}: not a readable PyTorch checkpoint '
                           f'({type(e).__name__}: {first})') from e


def read_state_dict(filename: str, prefix: Optional[str] = None,
                    trust_pickle: bool = False) -> Dict[str, torch.Tensor]:
    """The tensors of a checkpoint file: training wrappers and ``module.`` removed, and only
    the part under ``prefix`` (default: ``backbone.`` when the file is a whole model)."""
    ckpt = load_checkpoint_file(filename, trust_pickle=trust_pickle)
    if isinstance(ckpt, dict):
        inner = next((ckpt[k] for k in _WRAPPERS if isinstance(ckpt.get(k), dict)), None)
        ckpt = inner if inner is not None else ckpt
    if not isinstance(ckpt, dict) or not any(torch.is_tensor(v) for v in ckpt.values()):
        raise CheckpointMismatchError(f'{filename}: holds no state_dict of tensors')
    state = OrderedDict((k[7:] if k.startswith('module.') else k, v)
                        for k, v in ckpt.items() if torch.is_tensor(v))
    if prefix is None and any(k.startswith('backbone.') for k in state):
        prefix = 'backbone'
    if prefix is None:
        return state
    p = prefix.rstrip('.') + '.'
    return OrderedDict((k[len(p):], v) for k, v in state.items() if k.startswith(p))


def detect_layout(model: nn.Module, state: Dict[str, torch.Tensor]) -> str:
    """The first of ``model.checkpoint_layouts`` whose pattern a key matches, else 'ours'."""
    for name, pattern in getattr(model, 'checkpoint_layouts', {}).items():
        if any(re.match(pattern, k) for k in state):
            return name
    return 'ours'


@dataclass
class LoadReport:
    """What a checked load did with each tensor."""
    layout: str
    loaded: int = 0
    fresh: List[str] = field(default_factory=list)    # model tensors left as initialised
    unused: List[str] = field(default_factory=list)   # checkpoint tensors of unbuilt modules
    ignored: List[str] = field(default_factory=list)  # classifier tensors


def _describe(model: nn.Module) -> str:
    att = getattr(model, 'attention_cfg', False)
    if att is False:
        return type(model).__name__
    return (f'{type(model).__name__}(widen_factor={getattr(model, "widen_factor", "?")}, '
            f'attention={(att or {}).get("type")})')


def match_state_dict(model: nn.Module, state: Dict[str, torch.Tensor],
                     filename: str = '<state_dict>', layout: Optional[str] = None,
                     allow_missing: Sequence[str] = ()
                     ) -> Tuple[Dict[str, torch.Tensor], LoadReport]:
    """Map ``state`` onto ``model``'s keys; return (state_dict to load, report).

    Raises :class:`CheckpointMismatchError` unless every tensor of ``model`` is found with the
    right shape (``num_batches_tracked`` may be absent) and every checkpoint tensor is used,
    belongs to a module the model did not build, or is a classifier's. Tensors of submodules
    named in ``allow_missing`` (e.g. ``'attention'``, ``'coord_att'``) may be absent: they keep
    their initialisation and are counted in the report.
    """
    layout = layout or detect_layout(model, state)
    has_map = hasattr(model, 'checkpoint_module_map')
    mod_map = model.checkpoint_module_map(layout) if has_map else {}
    built = {name for name, _ in model.named_modules()}
    unbuilt = tuple(theirs + '.' for ours, theirs in mod_map.items() if ours not in built)
    out, problems, used = OrderedDict(), [], set()
    report = LoadReport(layout)
    for key, param in model.state_dict().items():
        path, leaf = key.rsplit('.', 1)
        src = f'{mod_map.get(path, path)}.{leaf}'
        if src not in state:
            if any(f'.{name}.' in f'.{key}' for name in allow_missing):
                report.fresh.append(key)
            elif leaf != 'num_batches_tracked':
                problems.append(f'missing {src} (for {key}, {tuple(param.shape)})')
            continue
        used.add(src)
        if state[src].shape != param.shape:
            problems.append(f'{src}: checkpoint {tuple(state[src].shape)} vs model '
                            f'{tuple(param.shape)}')
            continue
        out[key] = state[src]
    for k in state:
        if k in used:
            continue
        if k.startswith(unbuilt):
            report.unused.append(k)
        elif CLASSIFIER_KEYS.match(k):
            report.ignored.append(k)
        else:
            problems.append(f'unexpected {k} {tuple(state[k].shape)}')
    if not out and state:
        raise CheckpointMismatchError(
            f'{filename}: none of its tensors fit {_describe(model)} (first keys: '
            f'{", ".join(list(state)[:3])})')
    if problems:
        more = f' (+{len(problems) - 3} more)' if len(problems) > 3 else ''
        raise CheckpointMismatchError(
            f'{filename} ({layout} layout) does not fit {_describe(model)}: '
            + '; '.join(problems[:3]) + more)
    report.loaded = len(out)
    return out, report


def load_checked(model: nn.Module, filename: str, prefix: Optional[str] = None,
                 allow_missing: Sequence[str] = (), trust_pickle: bool = False) -> LoadReport:
    """Load ``filename`` (path, URL or ``mmcls://``...) into ``model``, all or nothing (except
    the submodules named in ``allow_missing``), and log what was loaded, left, unused."""
    state = read_state_dict(filename, prefix, trust_pickle)
    converted, report = match_state_dict(model, state, filename, allow_missing=allow_missing)
    model.load_state_dict(converted, strict=False)  # strictness checked above
    params = dict(model.named_parameters())
    n_fresh = sum(params[k].numel() for k in report.fresh if k in params)
    lines = [f'{type(model).__name__}: loaded {report.loaded} tensors from {filename} '
             f'({report.layout} layout)']
    if report.fresh:
        lines.append(f'{len(report.fresh)} tensors ({n_fresh:,} parameters) of '
                     f'{sorted(allow_missing)} are not in the checkpoint and keep their '
                     f'initialisation')
    if report.unused:
        lines.append(f'{len(report.unused)} tensors of modules this model does not build are '
                     f'unused: {", ".join(report.unused)}')
    if report.ignored:
        lines.append(f'ignored {len(report.ignored)} classifier keys: '
                     f'{", ".join(report.ignored)}')
    print_log('; '.join(lines), logger='current',
              level=logging.WARNING if report.fresh else logging.INFO)
    return report


@WEIGHT_INITIALIZERS.register_module(name='CheckedPretrained')
class CheckedPretrained:
    """``init_cfg`` that loads a checkpoint through :func:`load_checked`.

    For any model: e.g. ResNet-50 ImageNet weights into a ResNet whose bottlenecks carry CA
    plugins, the CA layers started fresh and counted in the log::

        init_cfg=dict(type='CheckedPretrained', checkpoint='torchvision://resnet50',
                      allow_missing=['coord_att'])

    Args:
        checkpoint: path, URL or ``mmcls://``/``torchvision://``/``open-mmlab://`` name.
        prefix: load the part under this prefix (default: ``backbone.`` of a whole model).
        allow_missing: submodule names whose tensors may be absent (they keep their init).
    """

    def __init__(self, checkpoint: str, prefix: Optional[str] = None,
                 allow_missing: Sequence[str] = (), map_location: str = 'cpu') -> None:
        self.checkpoint, self.prefix = checkpoint, prefix
        self.allow_missing = tuple(allow_missing)
        self.wholemodule = False

    def __call__(self, module: nn.Module) -> None:
        load_checked(module, self.checkpoint, self.prefix, self.allow_missing)

    def _get_init_info(self) -> str:
        return f'{type(self).__name__}: load from {self.checkpoint}'
