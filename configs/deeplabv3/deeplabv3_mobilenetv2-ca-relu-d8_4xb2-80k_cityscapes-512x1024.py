# DeepLabV3, MobileNetV2 + CA (reduction 32) with ReLU inside, as SE and CBAM, output stride 8,
# Cityscapes, 512x1024 crops. In the paper's slot (after each expanding block's depthwise conv,
# where CA sits). Not in the CA paper. CA uses h-swish inside, SE and CBAM ReLU: this row takes
# the activation out of the comparison.
# The released CA weights were trained with h-swish: this starts its CA layers fresh on
# mmcls' ImageNet MobileNetV2, as the SE and CBAM rows do (allow_missing).
_base_ = './deeplabv3_mobilenetv2-ca-d8_4xb2-80k_cityscapes-512x1024.py'

model = dict(
    backbone=dict(
        attention=dict(act_cfg=dict(type='ReLU')),
        init_cfg=dict(checkpoint='mmcls://mobilenet_v2', allow_missing=['attention'])))
