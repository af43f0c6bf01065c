# Demo: the ImageNet MobileNetV2 + CA config on the tiny synthetic ImageNet
# (tools/make_tiny_data.py: 4 real ImageNet classes, 24 training and 8 validation images each),
# made for a CPU: 96x96 crops, 8 epochs of 8 images with AdamW from random init (fewer
# iterations leave BatchNorm's running statistics behind the weights), data loaded in
# the main process, a fixed seed. Model (1000-way head), data layout and evaluation are the
# real config's.
_base_ = '../imagenet/mobilenet-v2-ca_4xb64-coslr-200e_in1k.py'

data_root = '{{ fileDirname }}/../../data/tiny/imagenet'
train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='RandomResizedCrop', scale=96, crop_ratio_range=(0.5, 1.0), backend='pillow'),
    dict(type='RandomFlip', prob=0.5, direction='horizontal'),
    dict(type='PackInputs'),
]
test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='ResizeEdge', scale=110, edge='short', backend='pillow'),
    dict(type='CenterCrop', crop_size=96),
    dict(type='PackInputs'),
]
train_dataloader = dict(
    batch_size=8, num_workers=0, persistent_workers=False,
    dataset=dict(data_root=data_root, pipeline=train_pipeline))
val_dataloader = dict(
    batch_size=16, num_workers=0, persistent_workers=False,
    dataset=dict(data_root=data_root, pipeline=test_pipeline))
test_dataloader = val_dataloader

max_epochs = 8
train_cfg = dict(max_epochs=max_epochs, val_begin=max_epochs + 1)  # `mim test` evaluates
optim_wrapper = dict(_delete_=True, type='OptimWrapper',
                     optimizer=dict(type='AdamW', lr=0.003, weight_decay=1e-4))
param_scheduler = dict(_delete_=True, type='CosineAnnealingLR', T_max=max_epochs, by_epoch=True,
                       begin=0, end=max_epochs)
auto_scale_lr = dict(enable=False)
default_hooks = dict(
    logger=dict(interval=2),
    checkpoint=dict(interval=max_epochs, max_keep_ckpts=1, save_last=True))

randomness = dict(seed=0)
