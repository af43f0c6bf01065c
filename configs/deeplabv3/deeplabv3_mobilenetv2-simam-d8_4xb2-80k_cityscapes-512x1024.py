# DeepLabV3, MobileNetV2 + SimAM (lambda = 1e-4, no parameters), output stride 8, Cityscapes,
# 512x1024 crops. In the paper's slot (after each expanding block's depthwise conv, where CA
# sits). Not in the CA paper.
# SimAM has no parameters: mmcls' ImageNet MobileNetV2 fills every tensor.
_base_ = './deeplabv3_mobilenetv2-d8_4xb2-80k_cityscapes-512x1024.py'

model = dict(
    backbone=dict(
        attention=dict(_delete_=True, type='SimAM', e_lambda=1e-4)))
