# DeepLabV3 (ASPP 256 + image pooling, 1x1 projection) on MobileNetV2 + CA at output stride 8:
# the paper's segmentation model (4.97M params for 21 classes; paper: 5.0M). mmseg's
# DeepLabV3 model with the backbone and the head swapped; no auxiliary head.
# The dilated stages keep their atrous rate in every block (dilation_mode='every_block'):
# DeepLab's output-stride convention, which the paper's DeepLabV3 follows. mmseg's own
# MobileNetV2 dilates only the first block of a stage (see the -mmsegrecipe config).
_base_ = ['mmseg::_base_/models/deeplabv3_r50-d8.py', '../coordatt_runtime.py']

norm_cfg = dict(type='SyncBN', requires_grad=True)
model = dict(
    pretrained=None,
    backbone=dict(
        _delete_=True,
        type='MobileNetV2CA',
        strides=(1, 2, 2, 1, 1, 1, 1),
        dilations=(1, 1, 1, 2, 2, 4, 4),
        dilation_mode='every_block',
        out_indices=(1, 2, 4, 6),
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
custom_hooks = _base_.coordatt_hooks
