"""One registration that mmdet, mmseg and mmpretrain configs can all see.

Modules go into mmengine's root ``MODELS``, which the codebases' registries fall back to, and
into each installed codebase's own registry so ``type='mmdet.X'`` and ``type='mmseg.X'``
resolve too. mmpretrain's registry module imports all of mmpretrain (seconds), so its scope
is filled only when :mod:`coordatt_mm.classifiers` is imported (:func:`register_scope`).
Classes that extend a codebase's model (our heads) are registered deferred
(:func:`register_deferred`): their name is there at once, their module -- and the codebase's
whole ``models`` package it imports -- is imported when one is first built.
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
    elif getattr(taken, '_deferred_from', None) == cls.__module__ and taken is not cls:
        reg.register_module(name=key, module=cls, force=True)  # the real class, now loaded
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


def register_deferred(name: str, module: str, scopes=SCOPES) -> None:
    """Register ``name`` now as a stand-in for the class of that name in ``module``: building
    it (``registry.build``, or calling it) imports ``module``, whose registration then puts
    the real class in its place, and returns an instance of the real class."""

    def __new__(cls, *args, **kwargs):
        return getattr(importlib.import_module(module), name)(*args, **kwargs)

    stand_in = type(name, (), dict(
        __new__=__new__, __module__=module, _deferred_from=module,
        __doc__=f'Stands in for {module}.{name} until one is built (which imports it).'))
    for reg in _registries(tuple(scopes)):
        if _key_free(reg, name):
            reg.register_module(name=name, module=stand_in)


def _key_free(reg, key: str) -> bool:
    taken = reg.module_dict.get(key)
    if taken is not None and getattr(taken, '_deferred_from', None) is None:
        raise KeyError(f'{key!r} is already registered in the {reg.scope} MODELS registry by '
                       f'{taken.__module__}; coordatt_mm does not replace it')
    return taken is None


def register_scope(scope: str) -> None:
    """Also register every shared module (layers, backbones) in ``scope``'s own registry."""
    for reg in _registries((scope,)):
        for key, cls in _SHARED.items():
            _add(reg, key, cls)
