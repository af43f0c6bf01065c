from coordatt_mm.backbones.mobilenet_v2_ca import InvertedResidualCA, MobileNetV2CA

__all__ = ["InvertedResidualCA", "MobileNetV2CA"]
