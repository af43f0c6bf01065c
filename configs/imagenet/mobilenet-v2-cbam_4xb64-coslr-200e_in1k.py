# MobileNetV2-1.0 + CBAM (reduction 24: 3.89M params, as the paper's), where CA sits, on
# ImageNet-1k, the paper's recipe (see mobilenet-v2_4xb64-coslr-200e_in1k.py).
# Paper (ImageNet top-1, params, M-Adds): 73.6, 3.89M, 300M. No weights were released.
_base_ = './mobilenet-v2_4xb64-coslr-200e_in1k.py'

model = dict(backbone=dict(attention=dict(_delete_=True, type='CBAM', reduction=24)))
