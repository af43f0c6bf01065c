"""coordatt_mm: Coordinate Attention (Hou, Zhou, Feng, CVPR 2021) for mmdet and mmseg.

Importing this package (``custom_imports=dict(imports=['coordatt_mm'])``) registers its
layers, backbones, heads, hooks, runner and ``CheckedPretrained`` initializer in the
OpenMMLab registries; nothing those libraries define is replaced. It imports neither
``mmdet.models`` nor ``mmseg.models``: the heads, which extend theirs, are registered under
their names and imported when first built (or as ``coordatt_mm.PatchedSSDHead``). It also
allow-lists the non-tensor contents of mmengine Runner checkpoints for torch >= 2.6's safe
loader (an addition, see :mod:`coordatt_mm.compat`).
"""
from coordatt_mm.compat import allow_mmengine_checkpoints

allow_mmengine_checkpoints()

from coordatt_mm.backbones import MobileNetV2CA, MobileNeXtCA  # noqa: E402
from coordatt_mm.checkpoint import CheckedPretrained  # noqa: E402
from coordatt_mm.engine import CPUDistributedRunner, DatasetCheckHook, RNGStateHook  # noqa: E402
from coordatt_mm.layers import CBAM, CoordAtt, SqueezeExcitation  # noqa: E402
from coordatt_mm.registry import register_deferred  # noqa: E402

register_deferred('PatchedSSDHead', 'coordatt_mm.heads.ssd_head', scopes=('mmdet',))
register_deferred('DeepLabV3Head', 'coordatt_mm.heads.deeplabv3_head', scopes=('mmseg',))


def __getattr__(name: str):
    """``coordatt_mm.PatchedSSDHead`` / ``DeepLabV3Head``: imported on first use. Any other
    name is an AttributeError, so that ``from coordatt_mm import <submodule>`` imports it."""
    if name in ('PatchedSSDHead', 'DeepLabV3Head'):
        from importlib import import_module
        return getattr(import_module('coordatt_mm.heads'), name)
    raise AttributeError(f'module {__name__!r} has no attribute {name!r}')


__version__ = '0.1.0'
__all__ = ['CBAM', 'CPUDistributedRunner', 'CheckedPretrained', 'CoordAtt', 'DatasetCheckHook',
           'DeepLabV3Head', 'MobileNetV2CA', 'MobileNeXtCA', 'PatchedSSDHead', 'RNGStateHook',
           'SqueezeExcitation', '__version__']
