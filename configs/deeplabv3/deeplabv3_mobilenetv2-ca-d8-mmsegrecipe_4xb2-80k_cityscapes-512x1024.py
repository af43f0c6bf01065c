# mmseg's own MobileNetV2 DeepLabV3 recipe (ASPP 512 with a 3x3 projection + FCN auxiliary
# head), with the CA backbone: compare with mmseg's MobileNetV2 entry, 73.84 mIoU.
# Not a paper row (the paper's model is the 5.0M one in deeplabv3_mobilenetv2-ca-d8_...).
_base_ = 'mmseg::mobilenet_v2/mobilenet-v2-d8_deeplabv3_4xb2-80k_cityscapes-512x1024.py'

custom_imports = dict(imports=['coordatt_mm'], allow_failed_imports=False)

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
        norm_cfg=dict(type='SyncBN', requires_grad=True),
        init_cfg=dict(
            type='Pretrained',
            checkpoint='https://github.com/houqb/CoordAttention/raw/main/mbv2_ca.pth')))

# coordatt_mm: fail at start if a training image or mask is missing; keep random states in
# checkpoints for exact resume
custom_hooks = [dict(type='DatasetCheckHook'), dict(type='RNGStateHook')]
# DDP on the module's own device: also valid for CPU processes (gloo), where mmengine's default
# device_ids=[local_rank] is refused by torch
model_wrapper_cfg = dict(
    type='MMDistributedDataParallel', device_ids=None, broadcast_buffers=False,
    find_unused_parameters=False)
