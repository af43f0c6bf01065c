"""Configs, built offline, and made-up batches in the codebases' data structures: what the
tests that run a model's training or test step share."""
import re
from pathlib import Path

import pytest
import torch

from coordatt_mm.apis.build import build_model, load_config

REPO = Path(__file__).resolve().parents[1]
CONFIGS = sorted(p for p in (REPO / 'configs').rglob('*.py') if '_base_' not in p.parts)
SEG_SIZE = (64, 64)
# configs of the attention modules compared with CA beside SE and CBAM: one of each task in the
# default run (each module's layer is tested on its own in tests/test_attention_zoo.py)
ZOO = re.compile(r'-(eca|triplet|simam|se-hswish|cbam-hswish|ca-relu)[-_]')
ZOO_DEFAULT = {'ssdlite_mobilenetv2-eca_8xb24-600e_coco.py',
               'deeplabv3_mobilenetv2-triplet-d16_4xb4-20k_voc12aug-512x512.py',
               'mobilenet-v2-simam_4xb64-coslr-200e_in1k.py'}
assert ZOO_DEFAULT <= {p.name for p in CONFIGS}  # a misspelt name would go slow unseen


def default_or_slow(paths):
    """``paths`` as pytest parameters, those of ZOO outside ZOO_DEFAULT marked slow."""
    return [pytest.param(p, marks=pytest.mark.slow)
            if ZOO.search(p.name) and p.name not in ZOO_DEFAULT else p for p in paths]


def n_params(m):
    return sum(p.numel() for p in m.parameters())


def det_batch(num_classes, size=320, n=2):
    from mmdet.structures import DetDataSample
    from mmengine.structures import InstanceData
    samples = []
    for i in range(n):
        s = DetDataSample(metainfo=dict(img_shape=(size, size), ori_shape=(size, size),
                                        scale_factor=(1.0, 1.0), pad_shape=(size, size)))
        box = [size / 16, size * 3 / 32, size * 15 / 32, size * 5 / 8]  # 20,30,150,200 at 320
        s.gt_instances = InstanceData(bboxes=torch.tensor([box]),
                                      labels=torch.tensor([i % num_classes]))
        samples.append(s)
    images = [torch.randint(0, 255, (3, size, size), dtype=torch.uint8) for _ in range(n)]
    return dict(inputs=images, data_samples=samples)


def seg_batch(num_classes, size=SEG_SIZE, n=2):
    from mmengine.structures import PixelData
    from mmseg.structures import SegDataSample
    samples = []
    for _ in range(n):
        s = SegDataSample(metainfo=dict(img_shape=size, ori_shape=size, pad_shape=size))
        s.gt_sem_seg = PixelData(data=torch.randint(0, num_classes, (1, *size)))
        samples.append(s)
    return dict(inputs=[torch.randint(0, 255, (3, *size), dtype=torch.uint8) for _ in range(n)],
                data_samples=samples)


def build(path, init=False):
    """(config, model) of a config file, offline; ``init``: the codebases' initialisation
    (Kaiming convs) instead of construction-time weights."""
    cfg = load_config(str(path))
    if cfg.default_scope == 'mmseg':  # the recipes pad to their crop (up to 512x1024): slow
        cfg.model.data_preprocessor.size = SEG_SIZE
    return build_model(cfg, init=init)


def cls_batch(num_classes, size=64, n=2):
    from mmpretrain.structures import DataSample
    return dict(inputs=[torch.randint(0, 255, (3, size, size), dtype=torch.uint8)
                        for _ in range(n)],
                data_samples=[DataSample().set_gt_label(i % num_classes) for i in range(n)])


def batch_for(cfg, model, ssd_size=320):
    if cfg.default_scope == 'mmdet':
        size = ssd_size if 'ssdlite' in cfg.filename else 128
        return det_batch(model.bbox_head.num_classes, size)
    if cfg.default_scope == 'mmpretrain':
        return cls_batch(model.head.num_classes)
    return seg_batch(model.decode_head.num_classes)


def total_loss(losses: dict) -> torch.Tensor:
    """The sum of a model's loss terms (mmengine's parse_losses without the logging)."""
    return sum(v for k, v in losses.items() if 'loss' in k
               for v in (v if isinstance(v, list) else [v]))


def loss_step(model, batch):
    """One training forward + backward; the trainable parameters no gradient reached."""
    model.train()
    loss = total_loss(model(**model.data_preprocessor(batch, True), mode='loss'))
    assert torch.isfinite(loss)
    loss.backward()
    return [n for n, p in model.named_parameters() if p.requires_grad and p.grad is None]


