# DeepLabV3, MobileNetV2 + SE (reduction 24) with h-swish inside, as CA, output stride 8,
# Cityscapes, 512x1024 crops. In the paper's slot (after each expanding block's depthwise conv,
# where CA sits). Not in the CA paper. SE and CBAM use ReLU inside, CA h-swish: this row takes the
# activation out of the comparison.
# No ImageNet weights with this attention are public: it starts fresh on mmcls' ImageNet
# MobileNetV2 (allow_missing), everything else must load. With ImageNet weights trained here
# (configs/imagenet/mobilenet-v2-se-hswish_4xb64-coslr-200e_in1k.py), every tensor loads:
#   --cfg-options model.backbone.init_cfg.checkpoint=<its epoch_200.pth> \
#                 model.backbone.init_cfg.allow_missing=[]
_base_ = './deeplabv3_mobilenetv2-d8_4xb2-80k_cityscapes-512x1024.py'

model = dict(
    backbone=dict(
        attention=dict(_delete_=True, type='SE', reduction=24, act_cfg=dict(type='HSwish')),
        init_cfg=dict(allow_missing=['attention'])))
