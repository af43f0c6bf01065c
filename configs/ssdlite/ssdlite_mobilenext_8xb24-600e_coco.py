# SSDLite320 with plain MobileNeXt-1.0, COCO.
# Paper (Hou et al. 2021, detection table): COCO val2017 AP 23.3, 4.4M params.
# Taps as in the authors' detection code: block 13 after its expanding 1x1 (576 ch, stride 16)
# and block 20 before its last depthwise conv (1280 ch, stride 32).
# Weights: the authors' ImageNet MobileNeXt-1.0 (yitu-opensource/MobileNeXt), converted once with
#   python tools/convert_official_ckpt.py --trust-pickle <their file> checkpoints/mobilenext-1.0.pth
# With ImageNet weights trained here (docs/classifiers.md), every tensor loads, none fresh:
#   mim train mmpretrain configs/imagenet/mobilenext_4xb64-coslr-200e_in1k.py, then
#   --cfg-options model.backbone.init_cfg.checkpoint=<its epoch_200.pth> \
#                 model.backbone.init_cfg.allow_missing=[]
_base_ = './ssdlite_mobilenetv2-ca_8xb24-600e_coco.py'

model = dict(
    backbone=dict(
        _delete_=True,
        type='MobileNeXtCA',
        out_indices=(),
        expand_taps=(13, 20),
        attention=None,
        norm_cfg={{_base_.norm_cfg}},
        init_cfg=dict(type='Pretrained', checkpoint='checkpoints/mobilenext-1.0.pth')),
    neck=dict(in_channels=(576, 1280), out_channels=(576, 1280, 512, 256, 256, 128)),
    bbox_head=dict(in_channels=(576, 1280, 512, 256, 256, 128)))
