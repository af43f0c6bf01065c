# DeepLabV3, MobileNetV2 + CA, output stride 16, Pascal VOC 2012 + SBD aug, 512x512.
# Paper (Hou et al. 2021, segmentation table): VOC12 val mIoU 73.32 (OS16), 5.0M params.
_base_ = './deeplabv3_mobilenetv2-ca-d8_4xb4-20k_voc12aug-512x512.py'

model = dict(
    backbone=dict(strides=(1, 2, 2, 2, 1, 1, 1), dilations=(1, 1, 1, 1, 1, 2, 2)),
    # atrous rates halve with the output stride (DeepLabV3: 6/12/18 at OS16)
    decode_head=dict(dilations=(1, 6, 12, 18)))
