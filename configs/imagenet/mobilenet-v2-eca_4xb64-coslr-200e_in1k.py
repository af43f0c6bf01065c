# MobileNetV2-1.0 + ECA (adaptive kernel: k = 3 or 5 by the channels), where CA sits, on
# ImageNet-1k, the paper's recipe (see mobilenet-v2_4xb64-coslr-200e_in1k.py).
# Paper (ImageNet top-1): no ECA row in the CA paper. ECA's own MobileNetV2 reached 72.56 with
# another recipe (400 epochs, batch 96, lr 0.045), another kernel rule (k = 1 below 96
# channels, else 3) and another slot (after every block's projection + BN:
# attention_position='after_project'); its baseline there was 71.64.
_base_ = './mobilenet-v2_4xb64-coslr-200e_in1k.py'

model = dict(backbone=dict(attention=dict(_delete_=True, type='ECA')))
