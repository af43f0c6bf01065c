# MobileNeXt-1.0 + Coordinate Attention (after the first depthwise conv of the 15 blocks that
# have one) on ImageNet-1k, the paper's recipe (see mobilenet-v2_4xb64-coslr-200e_in1k.py).
# Paper (ImageNet top-1, params, M-Adds): 75.2, 4.09M, 330M. No weights were released.
_base_ = './mobilenext_4xb64-coslr-200e_in1k.py'

model = dict(backbone=dict(attention=dict(_delete_=True, type='CoordAtt', reduction=32)))
