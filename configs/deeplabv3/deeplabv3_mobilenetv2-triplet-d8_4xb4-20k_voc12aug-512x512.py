# DeepLabV3, MobileNetV2 + Triplet Attention (k = 7), output stride 8, VOC 2012 aug, 512x512. In
# the paper's slot (after each expanding block's depthwise conv, where CA sits). Not in the CA
# paper.
# No ImageNet weights with this attention are public: it starts fresh on mmcls' ImageNet
# MobileNetV2 (allow_missing), everything else must load. With ImageNet weights trained here
# (configs/imagenet/mobilenet-v2-triplet_4xb64-coslr-200e_in1k.py), every tensor loads:
#   --cfg-options model.backbone.init_cfg.checkpoint=<its epoch_200.pth> \
#                 model.backbone.init_cfg.allow_missing=[]
_base_ = './deeplabv3_mobilenetv2-d8_4xb4-20k_voc12aug-512x512.py'

model = dict(
    backbone=dict(
        attention=dict(_delete_=True, type='TripletAttention', kernel_size=7),
        init_cfg=dict(allow_missing=['attention'])))
