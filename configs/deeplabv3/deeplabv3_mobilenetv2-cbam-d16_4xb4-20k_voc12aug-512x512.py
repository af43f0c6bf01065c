# DeepLabV3, MobileNetV2 + CBAM (reduction 24), output stride 16, VOC 2012 aug, 512x512.
# Paper (Hou et al. 2021, segmentation table): VOC12 val mIoU 71.28 (OS16), 4.9M params.
# CBAM starts fresh on mmcls' ImageNet MobileNetV2 (allow_missing); everything else must load.
# With ImageNet weights trained here (docs/classifiers.md), every tensor loads, none fresh:
#   mim train mmpretrain configs/imagenet/mobilenet-v2-cbam_4xb64-coslr-200e_in1k.py, then
#   --cfg-options model.backbone.init_cfg.checkpoint=<its epoch_200.pth> \
#                 model.backbone.init_cfg.allow_missing=[]
_base_ = './deeplabv3_mobilenetv2-ca-d16_4xb4-20k_voc12aug-512x512.py'

model = dict(
    backbone=dict(
        attention=dict(_delete_=True, type='CBAM', reduction=24),
        init_cfg=dict(checkpoint='mmcls://mobilenet_v2', allow_missing=['attention'])))
