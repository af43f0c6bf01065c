"""Every shipped config loads, builds (no network: pretrained weights overridden) and runs a
forward/backward pass on a dummy batch; parameter counts against the paper."""
from pathlib import Path

import pytest
import torch
from mmengine.config import Config
from mmengine.model import revert_sync_batchnorm
from mmengine.registry import init_default_scope

REPO = Path(__file__).resolve().parents[1]
DET = sorted((REPO / 'configs/ssdlite').glob('*.py'))
SEG = sorted((REPO / 'configs/deeplabv3').glob('*.py'))
DEMO = sorted((REPO / 'configs/demo').glob('*.py'))


def build(path, pad_size=None):
    cfg = Config.fromfile(str(path))
    init_default_scope(cfg.default_scope)
    cfg.model.backbone.init_cfg = None  # tests never touch the network
    if pad_size is not None:  # the recipe pads to its crop (up to 512x1024): slow, not tested here
        cfg.model.data_preprocessor.size = pad_size
    from importlib import import_module
    reg = import_module(f'{cfg.default_scope}.registry').MODELS
    return cfg, revert_sync_batchnorm(reg.build(cfg.model))


def n_params(m):
    return sum(p.numel() for p in m.parameters())


def det_batch(num_classes, size=320, n=2):
    from mmdet.structures import DetDataSample
    from mmengine.structures import InstanceData
    samples = []
    for i in range(n):
        s = DetDataSample(metainfo=dict(img_shape=(size, size), ori_shape=(size, size),
                                        scale_factor=(1.0, 1.0), pad_shape=(size, size)))
        s.gt_instances = InstanceData(bboxes=torch.tensor([[20., 30., 150., 200.]]),
                                      labels=torch.tensor([i % num_classes]))
        samples.append(s)
    return dict(inputs=[torch.randint(0, 255, (3, size, size), dtype=torch.uint8) for _ in range(n)],
                data_samples=samples)


def seg_batch(num_classes, size=(128, 128), n=2):
    from mmengine.structures import PixelData
    from mmseg.structures import SegDataSample
    samples = []
    for _ in range(n):
        s = SegDataSample(metainfo=dict(img_shape=size, ori_shape=size, pad_shape=size))
        s.gt_sem_seg = PixelData(data=torch.randint(0, num_classes, (1, *size)))
        samples.append(s)
    return dict(inputs=[torch.randint(0, 255, (3, *size), dtype=torch.uint8) for _ in range(n)],
                data_samples=samples)


def train_step(model, batch):
    model.train()
    data = model.data_preprocessor(batch, True)
    losses = model(**data, mode='loss')
    loss = sum(v for k, v in losses.items() if 'loss' in k
               for v in (v if isinstance(v, list) else [v]))
    loss.backward()
    assert torch.isfinite(loss)
    unused = [n for n, p in model.backbone.named_parameters() if p.requires_grad and p.grad is None]
    # MobileNeXt's SSDLite tap on the last block is after its expanding 1x1, so that block's
    # final depthwise conv (and only it) feeds nothing; everything else gets a gradient
    dw2 = [n for n, _ in model.backbone.named_modules() if n.endswith('.dw2')]
    assert all(dw2 and n.startswith(dw2[-1] + '.') for n in unused), unused
    return losses


@pytest.mark.parametrize('path', DET + [p for p in DEMO if 'ssdlite' in p.name], ids=lambda p: p.name)
def test_detection_config_trains_and_predicts(path):
    cfg, model = build(path)
    assert cfg.default_scope == 'mmdet'
    n_cls = cfg.model.bbox_head.num_classes
    assert n_cls == (20 if 'voc' in path.name else 80)
    plain = '_mobilenetv2_' in path.name or '_mobilenext_' in path.name
    assert (cfg.model.backbone.get('attention', 'default') is None) == plain
    train_step(model, det_batch(n_cls))
    model.eval()
    with torch.no_grad():
        out = model.test_step(det_batch(n_cls))
    assert out[0].pred_instances.bboxes.shape[-1] == 4


@pytest.mark.parametrize('path', SEG + [p for p in DEMO if 'deeplabv3' in p.name], ids=lambda p: p.name)
def test_segmentation_config_trains_and_predicts_at_its_stride(path):
    cfg, model = build(path, pad_size=(128, 128))
    assert cfg.default_scope == 'mmseg'
    os_ = 16 if '-d16' in path.name else 8
    feats = model.backbone.eval()(torch.randn(1, 3, 128, 128))
    assert feats[-1].shape[-1] == 128 // os_
    n_cls = cfg.model.decode_head.num_classes
    assert n_cls == (21 if 'voc' in path.name else 19)
    train_step(model, seg_batch(n_cls))
    model.eval()
    with torch.no_grad():
        out = model.test_step(seg_batch(n_cls))
    assert out[0].pred_sem_seg.data.shape == (1, 128, 128)


def test_ssdlite_param_counts(capsys):
    _, ca = build(REPO / 'configs/ssdlite/ssdlite_mobilenetv2-ca_8xb24-600e_coco.py')
    _, plain = build(REPO / 'configs/ssdlite/ssdlite_mobilenetv2_8xb24-600e_coco.py')
    # the baseline is exactly mmdet's SSDLite-MobileNetV2 (measured 4,228,788); CA adds its layers
    import mmdet
    mm = Config.fromfile(str(Path(mmdet.__file__).parent /
                             '.mim/configs/ssd/ssdlite_mobilenetv2-scratch_8xb24-600e_coco.py'))
    from mmdet.registry import MODELS
    assert n_params(plain) == n_params(MODELS.build(mm.model))
    ca_layers = sum(n_params(m) for m in ca.backbone.modules() if type(m).__name__ == 'CoordAtt')
    assert n_params(ca) == n_params(plain) + ca_layers
    with capsys.disabled():
        print(f'\nSSDLite320 params (80 classes): MBv2 {n_params(plain):,} (paper 4.3M), '
              f'MBv2+CA {n_params(ca):,} (paper 4.8M)')
    assert abs(n_params(ca) / 4.8e6 - 1) < 0.05 and abs(n_params(plain) / 4.3e6 - 1) < 0.05


@pytest.mark.parametrize('name,paper', [
    ('deeplabv3_mobilenetv2-d16_4xb4-20k_voc12aug-512x512.py', 4.5e6),
    ('deeplabv3_mobilenetv2-ca-d16_4xb4-20k_voc12aug-512x512.py', 5.0e6),
    ('deeplabv3_mobilenetv2-d8_4xb4-20k_voc12aug-512x512.py', 4.5e6),
    ('deeplabv3_mobilenetv2-ca-d8_4xb4-20k_voc12aug-512x512.py', 5.0e6),
])
def test_deeplabv3_param_counts_within_10_percent_of_paper(name, paper):
    _, m = build(REPO / 'configs/deeplabv3' / name)
    n = n_params(m)
    assert abs(n / paper - 1) < 0.10, n
    # exact arithmetic: MBv2 stages without the 1280 conv + ASPP(256, 1x1 proj) + classifier
    expect = 4_523_541 if '-ca-' not in name else 4_969_317
    assert n == expect


def test_deeplabv3_head_projects_with_1x1():
    _, m = build(REPO / 'configs/deeplabv3/deeplabv3_mobilenetv2-ca-d8_4xb4-20k_voc12aug-512x512.py')
    assert m.decode_head.bottleneck.conv.kernel_size == (1, 1)
    assert m.decode_head.bottleneck.conv.in_channels == 5 * 256
