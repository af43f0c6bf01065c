# DeepLabV3, plain MobileNetV2 (baseline), output stride 8, VOC 2012 aug, 512x512.
# Paper (Hou et al. 2021, segmentation table): VOC12 val mIoU 71.82 (OS8), 4.5M params.
_base_ = './deeplabv3_mobilenetv2-ca-d8_4xb4-20k_voc12aug-512x512.py'

model = dict(
    backbone=dict(
        attention=None,
        init_cfg=dict(type='Pretrained', checkpoint='mmcls://mobilenet_v2')))
