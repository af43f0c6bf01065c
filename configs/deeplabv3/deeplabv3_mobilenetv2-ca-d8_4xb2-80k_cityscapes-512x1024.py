# DeepLabV3, MobileNetV2 + CA, output stride 8, Cityscapes, 512x1024 crops.
# Paper (Hou et al. 2021, segmentation table): Cityscapes val mIoU 74.0 (OS8), 5.0M params.
_base_ = [
    '../_base_/models/deeplabv3_mobilenetv2-ca-d8.py',
    'mmseg::_base_/datasets/cityscapes.py', 'mmseg::_base_/default_runtime.py',
    'mmseg::_base_/schedules/schedule_80k.py'
]
crop_size = (512, 1024)
model = dict(data_preprocessor=dict(size=crop_size))
