"""The ImageNet classifiers in mmpretrain (``configs/imagenet/``).

Importing this module (``custom_imports=dict(imports=['coordatt_mm.classifiers'])``) imports
mmpretrain, registers our layers and backbones in its scope and adds
:class:`ReleasedLayoutClassifier`.
"""
from coordatt_mm.classifiers.image_classifier import ReleasedLayoutClassifier
from coordatt_mm.registry import register_scope

register_scope('mmpretrain')

__all__ = ['ReleasedLayoutClassifier']
