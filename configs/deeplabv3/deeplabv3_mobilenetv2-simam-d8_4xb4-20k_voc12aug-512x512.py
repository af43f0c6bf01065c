# DeepLabV3, MobileNetV2 + SimAM (lambda = 1e-4, no parameters), output stride 8, VOC 2012 aug,
# 512x512. In the paper's slot (after each expanding block's depthwise conv, where CA sits). Not
# in the CA paper.
# SimAM has no parameters: mmcls' ImageNet MobileNetV2 fills every tensor.
_base_ = './deeplabv3_mobilenetv2-d8_4xb4-20k_voc12aug-512x512.py'

model = dict(
    backbone=dict(
        attention=dict(_delete_=True, type='SimAM', e_lambda=1e-4)))
