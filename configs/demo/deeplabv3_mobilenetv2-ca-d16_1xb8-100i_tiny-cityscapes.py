# Demo: the tiny VOC demo (model OS16, pipelines, schedule) on the tiny synthetic Cityscapes
# (tools/make_tiny_data.py): the Cityscapes OS8 CA config's dataset (19 classes, its loader and
# evaluation); the 256x128 images are resized to fit the VOC demo's 320x240.
_base_ = './deeplabv3_mobilenetv2-ca-d16_1xb8-100i_tiny-voc12aug.py'

data_root = '{{ fileDirname }}/../../data/tiny/cityscapes/'
model = dict(decode_head=dict(num_classes=19))

cityscapes = dict(type='CityscapesDataset', data_root=data_root)
train_dataloader = dict(dataset=dict(
    _delete_=True, **cityscapes, pipeline={{_base_.train_pipeline}},
    data_prefix=dict(img_path='leftImg8bit/train', seg_map_path='gtFine/train')))
val_dataloader = dict(dataset=dict(
    _delete_=True, **cityscapes, pipeline={{_base_.test_pipeline}},
    data_prefix=dict(img_path='leftImg8bit/val', seg_map_path='gtFine/val')))
test_dataloader = val_dataloader
