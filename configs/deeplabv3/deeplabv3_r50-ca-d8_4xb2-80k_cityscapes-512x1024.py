# DeepLabV3 R-50-D8 Cityscapes 512x1024, 80k (mmseg's recipe, 79.32 mIoU) with Coordinate
# Attention after the 3x3 conv of every bottleneck, as an mmcv plugin, its BN synchronised like
# the recipe's. The ResNet-50-V1c ImageNet weights load as in the recipe; the CA layers are new,
# start fresh and are counted in the log (CheckedPretrained: everything else must load).
_base_ = [
    'mmseg::deeplabv3/deeplabv3_r50-d8_4xb2-80k_cityscapes-512x1024.py',
    '../_base_/coordatt_runtime.py'
]

model = dict(
    pretrained=None,
    backbone=dict(
        plugins=[
            dict(cfg=dict(type='CoordAtt', reduction=32, norm_cfg=dict(type='SyncBN')),
                 position='after_conv2')
        ],
        init_cfg=dict(
            type='CheckedPretrained',
            checkpoint='open-mmlab://resnet50_v1c',
            allow_missing=['coord_att'])))
custom_hooks = _base_.coordatt_hooks
