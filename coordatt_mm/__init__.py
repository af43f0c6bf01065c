"""coordatt_mm: Coordinate Attention (Hou, Zhou, Feng, CVPR 2021) for mmdet and mmseg.

Importing this package (``custom_imports=dict(imports=['coordatt_mm'])``) registers its
layers and backbones in mmengine's, mmdet's and mmseg's ``MODELS`` registries, lets
torch >= 2.6 load the checkpoints mmengine's Runner writes, and lets mmengine train with
several processes on machines without CUDA (gloo, CPU-synchronised SyncBN).
"""
from coordatt_mm import distributed
from coordatt_mm.compat import allow_mmengine_checkpoints

allow_mmengine_checkpoints()
distributed.install()

from coordatt_mm.layers import CBAM, CoordAtt, SqueezeExcitation  # noqa: E402
from coordatt_mm.backbones import MobileNetV2CA, MobileNeXtCA  # noqa: E402
from coordatt_mm.heads import DeepLabV3Head, PatchedSSDHead  # noqa: E402
from coordatt_mm.hooks import DatasetCheckHook, RNGStateHook  # noqa: E402

__version__ = '0.1.0'
__all__ = ['CBAM', 'CoordAtt', 'DatasetCheckHook', 'RNGStateHook', 'SqueezeExcitation', 'DeepLabV3Head', 'MobileNetV2CA', 'MobileNeXtCA', 'PatchedSSDHead',
           '__version__']
