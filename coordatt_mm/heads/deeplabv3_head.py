"""DeepLabV3's ASPP head as published, for mmseg."""
from mmcv.cnn import ConvModule
from mmseg.models.decode_heads import ASPPHead

from coordatt_mm.registry import register_model


@register_model(scopes=('mmseg',))
class DeepLabV3Head(ASPPHead):
    """ASPP with image pooling whose concatenated branches are projected by a **1x1** conv.

    Chen et al., "Rethinking Atrous Convolution for Semantic Image Segmentation" (2017),
    the head the paper's MobileNetV2 DeepLabV3 rows use. mmseg's ``ASPPHead`` projects with a
    3x3 conv instead, which at 256 channels alone adds ~2.4M parameters (more than the paper's
    whole 4.5M model leaves for the head).
    """

    def __init__(self, **kwargs) -> None:
        super().__init__(**kwargs)
        self.bottleneck = ConvModule(
            (len(self.aspp_modules) + 1) * self.channels, self.channels, 1,
            conv_cfg=self.conv_cfg, norm_cfg=self.norm_cfg, act_cfg=self.act_cfg)
