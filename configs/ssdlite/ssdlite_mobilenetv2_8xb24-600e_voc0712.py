# SSDLite320 with plain MobileNetV2 (baseline), VOC07+12 -> VOC2007 test.
# Paper (Hou et al. 2021, detection table): VOC2007 test mAP 71.7.
_base_ = './ssdlite_mobilenetv2-ca_8xb24-600e_voc0712.py'

model = dict(
    backbone=dict(
        attention=None,
        init_cfg=dict(type='Pretrained', checkpoint='mmcls://mobilenet_v2')))
