# RetinaNet R-50-FPN 1x COCO (mmdet's recipe, 36.5 box AP) with Coordinate Attention after the
# 3x3 conv of every bottleneck of stages 2-4, as an mmcv plugin. Stage 1 stays as it is: the
# recipe freezes it (frozen_stages=1), which would leave CA layers there at their random init.
# The ResNet-50 ImageNet weights load as in the recipe; the CA layers are new, start fresh and
# are counted in the log (CheckedPretrained: everything else must load). As every BN of the
# recipe (norm_eval=True), the CA layers' BN keeps its statistics frozen.
_base_ = ['mmdet::retinanet/retinanet_r50_fpn_1x_coco.py', '../_base_/coordatt_runtime.py']

model = dict(
    backbone=dict(
        plugins=[
            dict(cfg=dict(type='CoordAtt', reduction=32), stages=(False, True, True, True),
                 position='after_conv2')
        ],
        init_cfg=dict(
            _delete_=True,
            type='CheckedPretrained',
            checkpoint='torchvision://resnet50',
            allow_missing=['coord_att'])))
custom_hooks = _base_.coordatt_hooks
