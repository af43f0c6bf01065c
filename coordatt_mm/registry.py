"""One registration that mmdet, mmseg and mmpretrain configs can all see.

Modules go into mmengine's root ``MODELS``, which the codebases' registries fall back to, and
into each installed codebase's own registry so ``type='mmdet.X'`` and ``type='mmseg.X'``
resolve too. mmpretrain's registry module imports all of mmpretrain (seconds), so its scope
is filled only when :mod:`coordatt_mm.classifiers` is imported (:func:`register_scope`).
A name some other package already registered is never replaced.
"""
import importlib

from mmengine.registry import MODELS as ROOT_MODELS

SCOPES = ('mmdet', 'mmseg')
# a config's task, from its default scope
TASKS = {'mmdet': 'det', 'mmseg': 'seg', 'mmpretrain': 'cls'}
_SHARED = {}  # name -> class of every module registered for all scopes


def task_of(cfg) -> str:
    """'det', 'seg' or 'cls' for an mmdet, mmseg or mmpretrain config."""
    scope = cfg.get('default_scope')
    if scope not in TASKS:
        raise ValueError(f'{cfg.filename}: default_scope must be one of {sorted(TASKS)}, '
                         f'got {scope!r}')
    return TASKS[scope]


def _registries(scopes):
    regs = [ROOT_MODELS] if scopes == SCOPES else []
    for scope in scopes:
        try:
            regs.append(importlib.import_module(f'{scope}.registry').MODELS)
        except ImportError:  # a codebase that is not installed cannot use us anyway
            pass
    return regs


def _same_class(a, b) -> bool:
    # a module imported twice (e.g. reloaded) defines an equal class under the same name
    return a is b or (a.__module__, a.__qualname__) == (b.__module__, b.__qualname__)


def _add(reg, key: str, cls) -> None:
    taken = reg.module_dict.get(key)
    if taken is None:
        reg.register_module(name=key, module=cls)
    elif not _same_class(taken, cls):
        raise KeyError(f'{key!r} is already registered in the {reg.scope} MODELS '
                       f'registry by {taken.__module__}; coordatt_mm does not replace it')


def register_model(name=None, scopes=SCOPES):
    """Class decorator: register into every installed codebase registry (and the root one
    when the module serves all of them). Raises if the name is taken by another class."""

    def wrap(cls):
        key = name or cls.__name__
        if tuple(scopes) == SCOPES:
            _SHARED[key] = cls
        for reg in _registries(tuple(scopes)):
            _add(reg, key, cls)
        return cls

    return wrap


def register_scope(scope: str) -> None:
    """Also register every shared module (layers, backbones) in ``scope``'s own registry."""
    for reg in _registries((scope,)):
        for key, cls in _SHARED.items():
            _add(reg, key, cls)
