# SSDLite320 with plain MobileNetV2 (the paper's baseline row), COCO.
# Paper (Hou et al. 2021, detection table): COCO val2017 AP 22.3, 4.3M params.
# Same recipe as the CA row; only the attention and the ImageNet weights differ.
_base_ = './ssdlite_mobilenetv2-ca_8xb24-600e_coco.py'

model = dict(
    backbone=dict(
        attention=None,
        init_cfg=dict(type='Pretrained', checkpoint='mmcls://mobilenet_v2')))
