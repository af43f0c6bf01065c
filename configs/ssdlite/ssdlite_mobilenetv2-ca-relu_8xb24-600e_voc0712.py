# SSDLite320 with MobileNetV2 + CA (reduction 32) with ReLU inside, as SE and CBAM, VOC07+12 ->
# VOC2007 test. In the paper's slot (after each expanding block's depthwise conv, where CA sits).
# Not in the CA paper. CA uses h-swish inside, SE and CBAM ReLU: this row takes the activation out
# of the comparison.
# The released CA weights were trained with h-swish: this starts its CA layers fresh on
# mmcls' ImageNet MobileNetV2, as the SE and CBAM rows do (allow_missing).
_base_ = './ssdlite_mobilenetv2-ca_8xb24-600e_voc0712.py'

model = dict(
    backbone=dict(
        attention=dict(act_cfg=dict(type='ReLU')),
        init_cfg=dict(checkpoint='mmcls://mobilenet_v2', allow_missing=['attention'])))
