"""Heads that extend mmdet's and mmseg's (each imports its codebase's whole ``models``
package, so each is imported on first use: ``from coordatt_mm.heads import PatchedSSDHead``)."""
import importlib

_MODULES = {'PatchedSSDHead': 'coordatt_mm.heads.ssd_head',
            'DeepLabV3Head': 'coordatt_mm.heads.deeplabv3_head'}
__all__ = ['DeepLabV3Head', 'PatchedSSDHead']


def __getattr__(name: str):
    if name in _MODULES:
        return getattr(importlib.import_module(_MODULES[name]), name)
    raise AttributeError(f'module {__name__!r} has no attribute {name!r}')
