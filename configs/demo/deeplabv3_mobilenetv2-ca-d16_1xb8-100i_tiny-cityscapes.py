# Demo: the tiny VOC demo's model (OS16) and schedule on the tiny synthetic Cityscapes
# (tools/make_tiny_data.py): the Cityscapes OS8 CA config's dataset (19 classes, its loader and
# evaluation) at 256x128.
_base_ = './deeplabv3_mobilenetv2-ca-d16_1xb8-100i_tiny-voc12aug.py'

data_root = '{{ fileDirname }}/../../data/tiny/cityscapes/'
crop_size = (128, 128)
scale = (256, 128)
model = dict(decode_head=dict(num_classes=19))

train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadAnnotations'),
    dict(type='RandomResize', scale=scale, ratio_range=(0.75, 1.5), keep_ratio=True),
    dict(type='RandomCrop', crop_size=crop_size, cat_max_ratio=0.75),
    dict(type='RandomFlip', prob=0.5),
    dict(type='PhotoMetricDistortion'),
    dict(type='PackSegInputs')
]
test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='Resize', scale=scale, keep_ratio=True),
    dict(type='LoadAnnotations'),
    dict(type='PackSegInputs')
]
cityscapes = dict(type='CityscapesDataset', data_root=data_root)
train_dataloader = dict(dataset=dict(
    _delete_=True, **cityscapes, pipeline=train_pipeline,
    data_prefix=dict(img_path='leftImg8bit/train', seg_map_path='gtFine/train')))
val_dataloader = dict(dataset=dict(
    _delete_=True, **cityscapes, pipeline=test_pipeline,
    data_prefix=dict(img_path='leftImg8bit/val', seg_map_path='gtFine/val')))
test_dataloader = val_dataloader
