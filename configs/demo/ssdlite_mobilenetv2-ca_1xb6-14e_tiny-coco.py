# Demo: the COCO CA config on the tiny synthetic COCO (tools/make_tiny_data.py), made for a CPU:
# 192x192 input (anchors scaled from the 320 recipe), flips as the only augmentation, 14 epochs
# of 8 iterations of 6 images, BN statistics that follow the weights faster (momentum 0.1), a
# higher learning rate, data loaded in the main process, random init (no network), a fixed seed,
# and NMS at IoU 0.3 (the tiny data's objects never overlap). Everything else (model, heads,
# losses, evaluation) is the real config's.
_base_ = '../ssdlite/ssdlite_mobilenetv2-ca_8xb24-600e_coco.py'

data_root = '{{ fileDirname }}/../../data/tiny/coco/'
input_size = 192
norm_cfg = dict(type='SyncBN', eps=0.001, momentum=0.1)
model = dict(
    backbone=dict(norm_cfg=norm_cfg, init_cfg=None),
    neck=dict(norm_cfg=norm_cfg),
    bbox_head=dict(
        norm_cfg=norm_cfg,
        anchor_generator=dict(
            strides=[16, 32, 64, 96, 192, 192],
            min_sizes=[29, 60, 90, 121, 152, 182],
            max_sizes=[60, 90, 121, 152, 182, 192])),
    test_cfg=dict(nms=dict(iou_threshold=0.3)))

train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadAnnotations', with_bbox=True),
    dict(type='Resize', scale=(input_size, input_size), keep_ratio=False),
    dict(type='RandomFlip', prob=0.5),
    dict(type='PackDetInputs')
]
test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='Resize', scale=(input_size, input_size), keep_ratio=False),
    dict(type='LoadAnnotations', with_bbox=True),
    dict(type='PackDetInputs',
         meta_keys=('img_id', 'img_path', 'ori_shape', 'img_shape', 'scale_factor'))
]
train_dataloader = dict(
    batch_size=6,
    num_workers=0,
    persistent_workers=False,
    dataset=dict(times=1, dataset=dict(data_root=data_root, pipeline=train_pipeline)))
val_dataloader = dict(
    batch_size=8,
    num_workers=0,
    persistent_workers=False,
    dataset=dict(data_root=data_root, pipeline=test_pipeline))
test_dataloader = val_dataloader
val_evaluator = dict(ann_file=data_root + 'annotations/instances_val2017.json')
test_evaluator = val_evaluator

max_epochs = 14
train_cfg = dict(max_epochs=max_epochs, val_begin=max_epochs + 1)  # `mim test` evaluates
param_scheduler = [
    dict(type='LinearLR', start_factor=0.1, by_epoch=False, begin=0, end=10),
    dict(type='CosineAnnealingLR', begin=0, T_max=max_epochs, end=max_epochs,
         by_epoch=True, eta_min=0)
]
optim_wrapper = dict(optimizer=dict(lr=0.05))
auto_scale_lr = dict(enable=False)
default_hooks = dict(
    logger=dict(interval=8),
    checkpoint=dict(interval=max_epochs, max_keep_ckpts=1, save_last=True))

randomness = dict(seed=0)
