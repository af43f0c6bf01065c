from coordatt_mm.heads.deeplabv3_head import DeepLabV3Head
from coordatt_mm.heads.ssd_head import PatchedSSDHead

__all__ = ["DeepLabV3Head", "PatchedSSDHead"]
