# Demo: the COCO CA config on the tiny synthetic COCO (tools/make_tiny_data.py), on CPU.
# Only data, schedule and backbone init differ from the real config (no network: random init).
_base_ = '../ssdlite/ssdlite_mobilenetv2-ca_8xb24-600e_coco.py'

data_root = '{{ fileDirname }}/../../data/tiny/coco/'
model = dict(backbone=dict(init_cfg=None))

train_dataloader = dict(
    batch_size=8,
    num_workers=2,
    persistent_workers=False,
    dataset=dict(times=1, dataset=dict(data_root=data_root)))
val_dataloader = dict(
    batch_size=8,
    num_workers=2,
    persistent_workers=False,
    dataset=dict(data_root=data_root))
test_dataloader = val_dataloader
val_evaluator = dict(ann_file=data_root + 'annotations/instances_val2017.json')
test_evaluator = val_evaluator

max_epochs = 30
train_cfg = dict(max_epochs=max_epochs, val_interval=max_epochs)
param_scheduler = [
    dict(type='LinearLR', start_factor=0.01, by_epoch=False, begin=0, end=30),
    dict(type='CosineAnnealingLR', begin=0, T_max=max_epochs, end=max_epochs,
         by_epoch=True, eta_min=0)
]
optim_wrapper = dict(optimizer=dict(lr=0.03))
auto_scale_lr = dict(enable=False)
default_hooks = dict(
    logger=dict(interval=5),
    checkpoint=dict(interval=10, max_keep_ckpts=2, save_last=True))

# a fixed seed: the demo and its tests reproduce run to run
randomness = dict(seed=0)
