# MobileNetV2-1.0 + SimAM (lambda = 1e-4, no parameters), where CA sits, on ImageNet-1k, the
# paper's recipe (see mobilenet-v2_4xb64-coslr-200e_in1k.py).
# Paper (ImageNet top-1): no SimAM row in the CA paper. SimAM's own MobileNetV2 reached 72.36
# with another recipe (150 epochs, lr 0.05 cosine, wd 4e-5), lambda = 0.1 and another slot
# (after every block's depthwise conv, before its BN).
_base_ = './mobilenet-v2_4xb64-coslr-200e_in1k.py'

model = dict(backbone=dict(attention=dict(_delete_=True, type='SimAM', e_lambda=1e-4)))
