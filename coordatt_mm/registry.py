"""One registration that both mmdet and mmseg configs can see.

Modules go into mmengine's root ``MODELS``, which the ``mmdet`` and ``mmseg`` registries
fall back to, and into each codebase's own registry so ``type='mmdet.X'`` and
``type='mmseg.X'`` resolve too.
"""
import importlib

from mmengine.registry import MODELS as ROOT_MODELS

_SCOPES = ('mmdet', 'mmseg')


def _registries(scopes):
    regs = [ROOT_MODELS] if scopes == _SCOPES else []
    for scope in scopes:
        try:
            regs.append(importlib.import_module(f'{scope}.registry').MODELS)
        except ImportError:  # a codebase that is not installed cannot use us anyway
            pass
    return regs


def register_model(name=None, scopes=_SCOPES):
    """Class decorator: register into every installed codebase registry (and the root one
    when the module serves all of them)."""

    def wrap(cls):
        for reg in _registries(tuple(scopes)):
            reg.register_module(name=name, module=cls, force=True)
        return cls

    return wrap
