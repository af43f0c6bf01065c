# SSDLite320 with MobileNetV2 + Coordinate Attention, COCO.
# Paper (Hou et al. 2021, detection table): COCO val2017 AP 24.5, 4.8M params.
# mmdet's recipe (MobileNetV2 from scratch, 21.3 AP) with the CA backbone initialised from the
# authors' released ImageNet classifier, and BN synchronised across GPUs as the authors require
# (mmengine reverts SyncBN to BN when training on one process).
_base_ = [
    'mmdet::ssd/ssdlite_mobilenetv2-scratch_8xb24-600e_coco.py', '../_base_/coordatt_runtime.py'
]

norm_cfg = dict(type='SyncBN', eps=0.001, momentum=0.03)
model = dict(
    backbone=dict(
        _delete_=True,
        type='MobileNetV2CA',
        out_indices=(4, 7),
        attention=dict(type='CoordAtt', reduction=32),
        norm_cfg=norm_cfg,
        init_cfg=dict(
            type='Pretrained',
            checkpoint='https://github.com/houqb/CoordAttention/raw/main/mbv2_ca.pth')),
    neck=dict(norm_cfg=norm_cfg),
    # SSDHead cannot predict in mmdet 3.3.0 (see coordatt_mm/heads/ssd_head.py)
    bbox_head=dict(type='PatchedSSDHead', norm_cfg=norm_cfg))

# SSDLite's last neck level is 1x1: a last batch of one image breaks BatchNorm in training.
train_dataloader = dict(drop_last=True)
custom_hooks = _base_.custom_hooks + _base_.coordatt_hooks
