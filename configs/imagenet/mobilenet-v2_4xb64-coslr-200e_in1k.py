# MobileNetV2-1.0 on ImageNet-1k with the paper's classification recipe (Hou et al., CVPR 2021,
# Sec. 4.1; the authors' README: "200 training epochs, random crop, and cosine learning
# schedule ... without ... label smoothing, random augmentation, random erasing, mixup"):
#   SGD, momentum 0.9, weight decay 4e-5; cosine schedule from lr 0.05 over 200 epochs;
#   batch 256 (4 GPUs x 64); MobileNetV2's augmentation: random resized crop 224 + flip;
#   evaluation: resize the short side to 256, center crop 224.
# Paper (ImageNet top-1, params, M-Adds): 72.3, 3.5M, 300M.
# The backbone is MobileNetV2CA without attention: the same network as mmpretrain's MobileNetV2,
# in the layout the SSDLite and DeepLabV3 configs load.
_base_ = [
    'mmpretrain::_base_/datasets/imagenet_bs64_pil_resize.py',
    'mmpretrain::_base_/schedules/imagenet_bs256_coslr.py',
    'mmpretrain::_base_/default_runtime.py',
    '../_base_/coordatt_runtime.py',
]
custom_imports = dict(imports=['coordatt_mm.classifiers'], allow_failed_imports=False)

model = dict(
    type='ReleasedLayoutClassifier',
    backbone=dict(type='MobileNetV2CA', widen_factor=1.0, out_indices=(7, ), attention=None),
    neck=dict(type='GlobalAveragePooling'),
    head=dict(
        type='LinearClsHead',
        num_classes=1000,
        in_channels=1280,
        loss=dict(type='CrossEntropyLoss', loss_weight=1.0),
        topk=(1, 5)))

optim_wrapper = dict(optimizer=dict(lr=0.05, weight_decay=4e-5))
param_scheduler = dict(T_max=200, end=200)
train_cfg = dict(max_epochs=200)
custom_hooks = _base_.coordatt_hooks
