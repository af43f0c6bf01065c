# SSDLite320 with MobileNetV2 + CBAM (reduction 24) with h-swish inside, as CA, COCO. In the
# paper's slot (after each expanding block's depthwise conv, where CA sits). Not in the CA paper.
# SE and CBAM use ReLU inside, CA h-swish: this row takes the activation out of the comparison.
# No ImageNet weights with this attention are public: it starts fresh on mmcls' ImageNet
# MobileNetV2 (allow_missing), everything else must load. With ImageNet weights trained here
# (configs/imagenet/mobilenet-v2-cbam-hswish_4xb64-coslr-200e_in1k.py), every tensor loads:
#   --cfg-options model.backbone.init_cfg.checkpoint=<its epoch_200.pth> \
#                 model.backbone.init_cfg.allow_missing=[]
_base_ = './ssdlite_mobilenetv2-cbam_8xb24-600e_coco.py'

model = dict(backbone=dict(attention=dict(act_cfg=dict(type='HSwish'))))
