"""Whole detectors and segmentors in channels-last memory format (the fast training layout on
GPUs, with AMP): the same losses, gradients and predictions as in NCHW.

With BatchNorm on batch statistics over 2 images, a randomly initialised network amplifies
the rounding differences of the two layouts' kernels stage by stage: the whole gradient then
differs by about 1% between layouts for mmdet's and mmseg's own plain MobileNetV2 networks
(measured 0.9-1.1%; ours with CA 0.6-0.8%), so that step is compared as a whole (<= 3%).
With BatchNorm on running statistics nothing amplifies: the whole gradient within 1e-3 and
each parameter's within 1e-3 of the largest gradient (measured: 1e-7 and below, except one
SSD head bias at 3e-4 whose smooth-L1 loss sits near its kink)."""
import copy

import pytest
import torch
from torch.nn.modules.batchnorm import _BatchNorm

from model_batches import REPO, batch_for, build, total_loss

CONFIGS = [REPO / 'configs/ssdlite/ssdlite_mobilenetv2-ca_8xb24-600e_coco.py',
           REPO / 'configs/ssdlite/ssdlite_mobilenext-ca_8xb24-600e_coco.py',
           REPO / 'configs/deeplabv3/deeplabv3_mobilenetv2-ca-d8_4xb4-20k_voc12aug-512x512.py']


def inputs(model, batch, training, fmt):
    data = model.data_preprocessor(batch, training)
    data['inputs'] = data['inputs'].contiguous(memory_format=fmt)
    return data


def run(model, batch, channels_last):
    """Losses and gradients of a training step with batch statistics and of one with running
    statistics, then the predictions in eval mode."""
    fmt = torch.channels_last if channels_last else torch.contiguous_format
    model = copy.deepcopy(model).to(memory_format=fmt)
    steps = []
    for frozen in (False, True):
        m = copy.deepcopy(model).train()
        if frozen:
            for bn in m.modules():
                if isinstance(bn, _BatchNorm):
                    bn.eval()
        torch.manual_seed(0)  # dropout
        losses = m(**inputs(m, batch, True, fmt), mode='loss')
        total_loss(losses).backward()
        steps.append((losses, {n: p.grad for n, p in m.named_parameters()
                               if p.grad is not None}))
    model.eval()
    with torch.no_grad():
        preds = model(**inputs(model, batch, False, fmt), mode='predict')
    return steps, preds, model


def flat(grads):
    return torch.cat([g.flatten().double() for _, g in sorted(grads.items())])


@pytest.mark.parametrize('path', CONFIGS, ids=lambda p: p.name)
def test_channels_last_model_equals_nchw(path):
    torch.manual_seed(0)
    cfg, model = build(path, init=True)
    batch = batch_for(cfg, model, ssd_size=192)
    steps0, p0, _ = run(model, batch, False)
    steps1, p1, cl = run(model, batch, True)
    assert any(p.dim() == 4 and p.is_contiguous(memory_format=torch.channels_last)
               and not p.is_contiguous() for p in cl.parameters())
    for (l1, g1), (l0, g0), frozen in zip(steps1, steps0, (False, True)):
        for k in l0:
            for a, b in zip(*(v if isinstance(v, list) else [v] for v in (l1[k], l0[k]))):
                torch.testing.assert_close(a, b, atol=1e-4, rtol=1e-4, msg=k)
        assert g0.keys() == g1.keys()
        a, b = flat(g1), flat(g0)
        assert ((a - b).norm() / b.norm()).item() <= (1e-3 if frozen else 0.03)
        if frozen:
            top = max(g.abs().max() for g in g0.values())
            for k in g0:
                torch.testing.assert_close(g1[k], g0[k], atol=1e-3 * top, rtol=1e-3, msg=k)
    for a, b in zip(p1, p0):
        if cfg.default_scope == 'mmdet':
            ia, ib = a.pred_instances, b.pred_instances
            torch.testing.assert_close(ia.scores, ib.scores, atol=1e-5, rtol=1e-4)
            torch.testing.assert_close(ia.bboxes, ib.bboxes, atol=1e-3, rtol=1e-4)
            assert torch.equal(ia.labels, ib.labels)
        else:
            torch.testing.assert_close(a.seg_logits.data, b.seg_logits.data, atol=1e-4,
                                       rtol=1e-4)
            assert (a.pred_sem_seg.data != b.pred_sem_seg.data).float().mean() < 1e-3
