# MobileNetV2-1.0 + Coordinate Attention (reduction 32, after each expanding block's depthwise
# conv) on ImageNet-1k, the paper's recipe (see mobilenet-v2_4xb64-coslr-200e_in1k.py).
# Paper (ImageNet top-1, params, M-Adds): 74.3, 3.95M, 310M.
# The authors released these weights; this model loads their file as it is:
#   mim test mmpretrain configs/imagenet/mobilenet-v2-ca_4xb64-coslr-200e_in1k.py \
#     --checkpoint https://github.com/houqb/CoordAttention/raw/main/mbv2_ca.pth
_base_ = './mobilenet-v2_4xb64-coslr-200e_in1k.py'

model = dict(backbone=dict(attention=dict(_delete_=True, type='CoordAtt', reduction=32)))
