# MobileNeXt-1.0 on ImageNet-1k, the paper's recipe (see mobilenet-v2_4xb64-coslr-200e_in1k.py).
# Paper (ImageNet top-1, params, M-Adds): 74.0, 3.5M, 300M. The backbone loads the authors'
# MobileNeXt file (yitu-opensource/MobileNeXt) as it is.
_base_ = './mobilenet-v2_4xb64-coslr-200e_in1k.py'

model = dict(
    backbone=dict(_delete_=True, type='MobileNeXtCA', widen_factor=1.0, out_indices=(7, ),
                  attention=None))
