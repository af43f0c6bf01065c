# MobileNeXt-1.0 + Squeeze-and-Excitation (reduction 24), where CA sits, on ImageNet-1k, the
# paper's recipe (see mobilenet-v2_4xb64-coslr-200e_in1k.py).
# Paper (ImageNet top-1, params, M-Adds): 74.7, 3.89M, 300M. No weights were released.
_base_ = './mobilenext_4xb64-coslr-200e_in1k.py'

model = dict(backbone=dict(attention=dict(_delete_=True, type='SE', reduction=24)))
