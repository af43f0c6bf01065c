"""Inputs at the edges -- ``torch.inference_mode``, an empty batch, one row or one column --
through the fused and the PyTorch-only paths: the same results, or a clear error."""
import copy

import pytest
import torch

from coordatt_mm import CoordAtt, MobileNetV2CA, MobileNeXtCA, ops
from coordatt_mm.apis.build import quiet_logs

FORMATS = [torch.contiguous_format, torch.channels_last]


def layer(seed=0, channels=48):
    torch.manual_seed(seed)
    m = CoordAtt(channels)
    with torch.no_grad():
        m.norm.running_mean.normal_(0, 0.3)
        m.norm.running_var.uniform_(0.5, 1.5)
    return m


def pytorch_only(model):
    model = copy.deepcopy(model)
    for m in model.modules():
        if isinstance(m, CoordAtt):
            m.use_ops = False
    return model


def backbone(cls):
    torch.manual_seed(0)
    m = cls(out_indices=(2, 4))
    with quiet_logs():
        m.init_weights()
    return m


@pytest.mark.parametrize('memory_format', FORMATS)
@pytest.mark.parametrize('shape', [(2, 48, 9, 7), (2, 48, 1, 11), (1, 48, 13, 1),
                                   (2, 48, 1, 1)])
def test_inference_mode_equals_no_grad(shape, memory_format):
    m = layer().eval()
    x = torch.randn(shape).contiguous(memory_format=memory_format)
    with torch.no_grad():
        ref = pytorch_only(m)(x)
        fused = m(x)
    with torch.inference_mode():
        inf_fused = m(x)
        inf_plain = pytorch_only(m)(x)
    for out in (fused, inf_fused, inf_plain):
        torch.testing.assert_close(out, ref, atol=1e-5, rtol=1e-5)
    # the eval cache built inside inference_mode does not break a later training step
    m.train()
    xg = x.clone().requires_grad_()
    m(xg).sum().backward()
    assert torch.isfinite(xg.grad).all()


@pytest.mark.parametrize('cls', [MobileNetV2CA, MobileNeXtCA], ids=lambda c: c.__name__)
@pytest.mark.parametrize('size', [(64, 48), (32, 1), (1, 40)])
def test_backbone_inference_mode_and_thin_inputs(cls, size):
    m = backbone(cls).eval()
    x = torch.randn(1, 3, *size)
    with torch.no_grad():
        ref = pytorch_only(m)(x)
    with torch.inference_mode():
        outs = m(x)
    for o, r in zip(outs, ref):
        torch.testing.assert_close(o, r, atol=1e-4, rtol=1e-4)
    # the blocks' training path (gradients recorded) on one row or column; BatchNorm frozen,
    # as batch statistics over a 1 x 1 late stage would amplify any rounding difference
    p = pytorch_only(m)
    xg = torch.randn(2, 3, *size, requires_grad=True)
    xp = xg.detach().clone().requires_grad_()
    out, out_p = m(xg), p(xp)
    for o, r in zip(out, out_p):
        torch.testing.assert_close(o, r, atol=1e-4, rtol=1e-4)
    sum(o.sum() for o in out).backward()
    sum(o.sum() for o in out_p).backward()
    torch.testing.assert_close(xg.grad, xp.grad, atol=1e-4, rtol=1e-3)
    # and with batch statistics: finite
    m.train()
    xt = torch.randn(2, 3, *size, requires_grad=True)
    sum(o.sum() for o in m(xt)).backward()
    assert torch.isfinite(xt.grad).all()


@pytest.mark.parametrize('use_ops', [True, False])
def test_empty_batch(use_ops):
    m = layer()
    m.use_ops = use_ops
    x = torch.randn(0, 48, 6, 5)
    m.eval()
    with torch.no_grad():
        assert m(x).shape == x.shape
    with torch.inference_mode():
        assert m(x).shape == x.shape
    b = backbone(MobileNetV2CA)
    for mod in b.modules():
        if isinstance(mod, CoordAtt):
            mod.use_ops = use_ops
    b.eval()
    with torch.no_grad():
        outs = b(torch.randn(0, 3, 64, 64))
    assert [o.shape for o in outs] == [(0, 32, 8, 8), (0, 96, 4, 4)]
    # training on an empty batch: an empty output, zero gradients, statistics untouched (as
    # torch's BatchNorm does)
    m.train()
    before = m.norm.running_mean.clone()
    x = torch.randn(0, 48, 6, 5, requires_grad=True)
    out = m(x)
    assert out.shape == x.shape
    out.sum().backward()
    assert x.grad.shape == x.shape
    assert all(p.grad is None or not p.grad.any() for p in m.parameters())
    torch.testing.assert_close(m.norm.running_mean, before)


def test_fused_ops_decline_what_they_do_not_serve():
    assert not ops.fused_usable(torch.zeros(0, 8, 4, 4))
    with torch.autocast('cpu', dtype=torch.bfloat16):
        assert not ops.fused_usable(torch.zeros(1, 8, 4, 4))
    assert ops.fused_usable(torch.zeros(1, 8, 4, 4)) == ops.fused_available()
