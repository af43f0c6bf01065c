# DeepLabV3, plain MobileNetV2 (baseline), output stride 8, Cityscapes, 512x1024 crops.
# Paper (Hou et al. 2021, segmentation table): Cityscapes val mIoU 71.4 (OS8), 4.5M params.
_base_ = './deeplabv3_mobilenetv2-ca-d8_4xb2-80k_cityscapes-512x1024.py'

model = dict(
    backbone=dict(
        attention=None,
        init_cfg=dict(type='Pretrained', checkpoint='mmcls://mobilenet_v2')))
