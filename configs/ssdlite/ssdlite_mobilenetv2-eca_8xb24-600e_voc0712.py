# SSDLite320 with MobileNetV2 + ECA (adaptive kernel: k = 3 or 5 by the channels), VOC07+12 ->
# VOC2007 test. In the paper's slot (after each expanding block's depthwise conv, where CA sits).
# Not in the CA paper.
# No ImageNet weights with this attention are public: it starts fresh on mmcls' ImageNet
# MobileNetV2 (allow_missing), everything else must load. With ImageNet weights trained here
# (configs/imagenet/mobilenet-v2-eca_4xb64-coslr-200e_in1k.py), every tensor loads:
#   --cfg-options model.backbone.init_cfg.checkpoint=<its epoch_200.pth> \
#                 model.backbone.init_cfg.allow_missing=[]
_base_ = './ssdlite_mobilenetv2_8xb24-600e_voc0712.py'

model = dict(
    backbone=dict(
        attention=dict(_delete_=True, type='ECA'),
        init_cfg=dict(allow_missing=['attention'])))
