# SSDLite320 with MobileNetV2 + SimAM (lambda = 1e-4, no parameters), VOC07+12 -> VOC2007 test. In
# the paper's slot (after each expanding block's depthwise conv, where CA sits). Not in the CA
# paper.
# SimAM has no parameters: mmcls' ImageNet MobileNetV2 fills every tensor.
_base_ = './ssdlite_mobilenetv2_8xb24-600e_voc0712.py'

model = dict(
    backbone=dict(
        attention=dict(_delete_=True, type='SimAM', e_lambda=1e-4)))
