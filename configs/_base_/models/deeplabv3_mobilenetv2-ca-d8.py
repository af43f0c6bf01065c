# DeepLabV3 (ASPP 256 + image pooling, 1x1 projection) on MobileNetV2 + CA at output stride 8:
# the paper's segmentation model (4.97M params for 21 classes; paper: 5.0M). mmseg's
# DeepLabV3 model with the backbone and the head swapped; no auxiliary head.
_base_ = 'mmseg::_base_/models/deeplabv3_r50-d8.py'

custom_imports = dict(imports=['coordatt_mm'], allow_failed_imports=False)

norm_cfg = dict(type='SyncBN', requires_grad=True)
model = dict(
    pretrained=None,
    backbone=dict(
        _delete_=True,
        type='MobileNetV2CA',
        strides=(1, 2, 2, 1, 1, 1, 1),
        dilations=(1, 1, 1, 2, 2, 4, 4),
        out_indices=(1, 2, 4, 6),
        with_final_conv=False,
        attention=dict(type='CoordAtt', reduction=32),
        norm_cfg=norm_cfg,
        init_cfg=dict(
            type='Pretrained',
            checkpoint='https://github.com/houqb/CoordAttention/raw/main/mbv2_ca.pth')),
    decode_head=dict(
        _delete_=True,
        type='DeepLabV3Head',
        in_channels=320,
        in_index=3,
        channels=256,
        dilations=(1, 12, 24, 36),
        dropout_ratio=0.1,
        num_classes=19,
        norm_cfg=norm_cfg,
        align_corners=False,
        loss_decode=dict(type='CrossEntropyLoss', use_sigmoid=False, loss_weight=1.0)),
    auxiliary_head=None)

# coordatt_mm: fail at start if a training image or mask is missing; keep random states in
# checkpoints for exact resume
custom_hooks = [dict(type='DatasetCheckHook'), dict(type='RNGStateHook')]
# DDP on the module's own device: also valid for CPU processes (gloo), where mmengine's default
# device_ids=[local_rank] is refused by torch
model_wrapper_cfg = dict(
    type='MMDistributedDataParallel', device_ids=None, broadcast_buffers=False,
    find_unused_parameters=False)
