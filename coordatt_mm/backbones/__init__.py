from coordatt_mm.backbones.mobilenet_v2_ca import InvertedResidualCA, MobileNetV2CA
from coordatt_mm.backbones.mobilenext_ca import MobileNeXtCA, SandGlassCA

__all__ = ["InvertedResidualCA", "MobileNetV2CA", "MobileNeXtCA", "SandGlassCA"]
