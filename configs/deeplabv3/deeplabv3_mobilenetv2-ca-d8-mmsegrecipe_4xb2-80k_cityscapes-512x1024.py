# mmseg's own MobileNetV2 DeepLabV3 recipe, plus CA: the same config (ASPP 512 with a 3x3
# projection, FCN auxiliary head, mmseg's backbone arguments, dilation on the first block of
# each dilated stage) with the backbone type switched to MobileNetV2CA and ImageNet weights
# from the authors' released MobileNetV2 + CA classifier instead of mmcls' MobileNetV2.
# Compare with mmseg's MobileNetV2 entry, 73.84 mIoU. Not a paper row (the paper's model is
# the 5.0M one in deeplabv3_mobilenetv2-ca-d8_...).
_base_ = [
    'mmseg::mobilenet_v2/mobilenet-v2-d8_deeplabv3_4xb2-80k_cityscapes-512x1024.py',
    '../_base_/coordatt_runtime.py'
]

model = dict(
    pretrained='https://github.com/houqb/CoordAttention/raw/main/mbv2_ca.pth',
    backbone=dict(type='MobileNetV2CA', attention=dict(type='CoordAtt', reduction=32)))
custom_hooks = _base_.coordatt_hooks
