# SSDLite320 with MobileNetV2 + SE (reduction 24: 3.89M classifier params, as the paper's), COCO.
# Paper (Hou et al. 2021, detection table): COCO val2017 AP 23.7, 4.7M params.
# The SE layers sit where CA sits. No ImageNet MobileNetV2+SE weights are public: they start
# fresh on mmcls' ImageNet MobileNetV2 (allow_missing), everything else must load.
_base_ = './ssdlite_mobilenetv2-ca_8xb24-600e_coco.py'

model = dict(
    backbone=dict(
        attention=dict(_delete_=True, type='SE', reduction=24),
        init_cfg=dict(checkpoint='mmcls://mobilenet_v2', allow_missing=['attention'])))
