# MobileNetV2-1.0 + CBAM (reduction 24) with h-swish inside, as CA, where CA sits, on ImageNet-1k,
# the paper's recipe (see mobilenet-v2_4xb64-coslr-200e_in1k.py). SE and CBAM use ReLU inside, CA
# h-swish: this row takes the activation out of the comparison.
# Paper (ImageNet top-1): none for this variant (the paper's CBAM, with ReLU: 73.6).
_base_ = './mobilenet-v2_4xb64-coslr-200e_in1k.py'

model = dict(
    backbone=dict(
        attention=dict(_delete_=True, type='CBAM', reduction=24, act_cfg=dict(type='HSwish'))))
