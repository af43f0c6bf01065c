"""One registration that both mmdet and mmseg configs can see.

Modules go into mmengine's root ``MODELS``, which the ``mmdet`` and ``mmseg`` registries
fall back to, and into each codebase's own registry so ``type='mmdet.X'`` and
``type='mmseg.X'`` resolve too.
"""
import importlib

from mmengine.registry import MODELS as ROOT_MODELS

_SCOPES = ('mmdet', 'mmseg')


def _registries():
    regs = [ROOT_MODELS]
    for scope in _SCOPES:
        try:
            regs.append(importlib.import_module(f'{scope}.registry').MODELS)
        except ImportError:  # a codebase that is not installed cannot use us anyway
            pass
    return regs


def register_model(name=None):
    """Class decorator: register into the root and every installed codebase registry."""

    def wrap(cls):
        for reg in _registries():
            reg.register_module(name=name, module=cls, force=True)
        return cls

    return wrap
