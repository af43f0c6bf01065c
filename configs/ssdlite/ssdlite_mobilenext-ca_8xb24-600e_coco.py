# SSDLite320 with MobileNeXt-1.0 + CA (after the first depthwise conv of the 15 blocks that
# have one), COCO. The paper reports ImageNet 75.2 for this backbone but no detection row.
# No ImageNet MobileNeXt+CA weights are public: the CA layers start fresh on the authors'
# MobileNeXt weights (allow_missing), everything else must load.
# With ImageNet weights trained here (docs/classifiers.md), every tensor loads, none fresh:
#   mim train mmpretrain configs/imagenet/mobilenext-ca_4xb64-coslr-200e_in1k.py, then
#   --cfg-options model.backbone.init_cfg.checkpoint=<its epoch_200.pth> \
#                 model.backbone.init_cfg.allow_missing=[]
_base_ = './ssdlite_mobilenext_8xb24-600e_coco.py'

model = dict(
    backbone=dict(
        attention=dict(_delete_=True, type='CoordAtt', reduction=32),  # base: None
        init_cfg=dict(allow_missing=['attention'])))
