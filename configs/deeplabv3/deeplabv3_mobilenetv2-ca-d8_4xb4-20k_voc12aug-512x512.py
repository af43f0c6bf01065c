# DeepLabV3, MobileNetV2 + CA, output stride 8, Pascal VOC 2012 + SBD aug, 512x512.
# Paper (Hou et al. 2021, segmentation table): VOC12 val mIoU 73.96 (OS8), 5.0M params.
_base_ = [
    '../_base_/models/deeplabv3_mobilenetv2-ca-d8.py',
    'mmseg::_base_/datasets/pascal_voc12_aug.py', 'mmseg::_base_/default_runtime.py',
    'mmseg::_base_/schedules/schedule_20k.py'
]
crop_size = (512, 512)
model = dict(data_preprocessor=dict(size=crop_size), decode_head=dict(num_classes=21))
