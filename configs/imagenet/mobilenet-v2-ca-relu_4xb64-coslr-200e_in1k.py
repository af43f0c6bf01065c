# MobileNetV2-1.0 + CA (reduction 32) with ReLU inside, as SE and CBAM, where CA sits, on
# ImageNet-1k, the paper's recipe (see mobilenet-v2_4xb64-coslr-200e_in1k.py). CA uses h-swish
# inside, SE and CBAM ReLU: this row takes the activation out of the comparison.
# Paper (ImageNet top-1): none for this variant (the paper's CA, with h-swish: 74.3).
_base_ = './mobilenet-v2_4xb64-coslr-200e_in1k.py'

model = dict(
    backbone=dict(
        attention=dict(_delete_=True, type='CoordAtt', reduction=32, act_cfg=dict(type='ReLU'))))
