# SSDLite320 with MobileNetV2 + SE (reduction 24: 3.89M classifier params, as the paper's), COCO.
# Paper (Hou et al. 2021, detection table): COCO val2017 AP 23.7, 4.7M params.
# The SE layers sit where CA sits. No ImageNet MobileNetV2+SE weights are public: they start
# fresh on mmcls' ImageNet MobileNetV2 (allow_missing), everything else must load.
# With ImageNet weights trained here (docs/classifiers.md), every tensor loads, none fresh:
#   mim train mmpretrain configs/imagenet/mobilenet-v2-se_4xb64-coslr-200e_in1k.py, then
#   --cfg-options model.backbone.init_cfg.checkpoint=<its epoch_200.pth> \
#                 model.backbone.init_cfg.allow_missing=[]
_base_ = './ssdlite_mobilenetv2-ca_8xb24-600e_coco.py'

model = dict(
    backbone=dict(
        attention=dict(_delete_=True, type='SE', reduction=24),
        init_cfg=dict(checkpoint='mmcls://mobilenet_v2', allow_missing=['attention'])))
