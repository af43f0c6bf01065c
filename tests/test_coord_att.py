import copy

import pytest
import torch

from coordatt_mm import CoordAtt

from reference_mbv2 import released_ca


def released_ca_train(x, m):
    """Training-mode forward of the released block on m's weights (its names mapped to the
    released ones); returns the output and the BN running statistics it leaves."""
    names = {'conv1': m.conv_reduce, 'bn1': m.norm, 'conv2': m.conv_h, 'conv3': m.conv_w}
    sd = {f'ca.{k}.{leaf}': v.clone() if 'running' in leaf else v
          for k, mod in names.items() for leaf, v in mod.state_dict(keep_vars=True).items()}
    out = released_ca(x, sd, 'ca', training=True, momentum=m.norm.momentum)
    return out, sd['ca.bn1.running_mean'], sd['ca.bn1.running_var']


@pytest.mark.parametrize('c,mip', [(96, 8), (144, 8), (384, 12), (960, 30)])
def test_bottleneck_width_and_params(c, mip):
    m = CoordAtt(c)
    assert m.mip == mip
    # conv C->mip with bias, BN(mip), two convs mip->C with bias
    assert sum(p.numel() for p in m.parameters()) == (c * mip + mip) + 2 * mip + 2 * (mip * c + c)


@pytest.mark.parametrize('shape', [(2, 32, 7, 5), (3, 64, 1, 9), (2, 16, 6, 1), (2, 96, 20, 20)])
def test_matches_released_forward_train_and_eval(shape):
    torch.manual_seed(0)
    m = CoordAtt(shape[1])
    with torch.no_grad():
        for p in m.parameters():
            p.normal_(0, 0.3)
    x = torch.randn(shape)
    m.train()
    ref, rm, rv = released_ca_train(x, m)
    out = m(x)
    assert out.shape == x.shape
    torch.testing.assert_close(out, ref, atol=1e-5, rtol=1e-5)
    # BN statistics over the H+W positions together, as the released model
    torch.testing.assert_close(m.norm.running_mean, rm)
    torch.testing.assert_close(m.norm.running_var, rv)
    m.eval()
    mref = copy.deepcopy(m)
    # eval reference: concat path with frozen BN
    n, c, h, w = shape
    y = torch.cat([x.mean(3, keepdim=True), x.mean(2, keepdim=True).transpose(2, 3)], 2)
    y = mref.act(mref.norm(mref.conv_reduce(y)))
    y_h, y_w = y.split([h, w], 2)
    ref = x * mref.conv_w(y_w.transpose(2, 3)).sigmoid() * mref.conv_h(y_h).sigmoid()
    torch.testing.assert_close(m(x), ref, atol=1e-5, rtol=1e-5)


def test_changes_output_and_gates_in_unit_interval():
    m = CoordAtt(32).eval()
    x = torch.rand(1, 32, 8, 8) + 0.1
    out = m(x)
    assert not torch.allclose(out, x)
    ratio = out / x
    assert ratio.min() > 0 and ratio.max() < 1  # product of two sigmoid gates


def test_configurable_norm_and_activation():
    m = CoordAtt(64, reduction=4, norm_cfg=dict(type='GN', num_groups=4), act_cfg=dict(type='ReLU'))
    assert m.mip == 16
    assert isinstance(m.norm, torch.nn.GroupNorm) and isinstance(m.act, torch.nn.ReLU)
    assert m(torch.randn(2, 64, 5, 7)).shape == (2, 64, 5, 7)


@pytest.mark.parametrize('scope', ['mmdet', 'mmseg'])
def test_registered_in_both_codebases(scope):
    import importlib
    reg = importlib.import_module(f'{scope}.registry').MODELS
    m = reg.build(dict(type='CoordAtt', channels=48, reduction=16))
    assert isinstance(m, CoordAtt) and m.mip == 8


@pytest.mark.parametrize('shape', [(1, 96, 40, 40), (2, 144, 7, 13), (1, 32, 1, 17), (3, 64, 9, 1),
                                   (1, 960, 10, 10), (1, 8, 1, 1)])
@pytest.mark.parametrize('memory_format', [torch.contiguous_format, torch.channels_last])
def test_fast_eval_form_equals_training_form(shape, memory_format):
    torch.manual_seed(1)
    m = CoordAtt(shape[1])
    with torch.no_grad():
        for p in m.parameters():
            p.normal_(0, 0.5)
        m.norm.running_mean.normal_(0, 0.5)
        m.norm.running_var.uniform_(0.2, 2.0)
    x = torch.randn(shape).contiguous(memory_format=memory_format)
    m.eval()
    slow = m(x)  # grad enabled: the concat form
    with torch.no_grad():
        fast = m(x)
        assert m._eval_cache is not None  # the folded path really ran
    torch.testing.assert_close(fast, slow, atol=1e-5, rtol=1e-5)
    # the folded weights follow parameter updates
    with torch.no_grad():
        m.norm.running_var.mul_(3.0)
        m.conv_reduce.weight.add_(0.1)
    slow = m(x)
    with torch.no_grad():
        torch.testing.assert_close(m(x), slow, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize('memory_format', [torch.contiguous_format, torch.channels_last])
def test_inplace_gates_the_input_only_when_asked_and_only_without_grad(memory_format):
    torch.manual_seed(3)
    m = CoordAtt(48).eval()
    x = torch.randn(2, 48, 7, 5).contiguous(memory_format=memory_format)
    x0 = x.clone()
    ref = m(x)  # grad enabled: never in place
    m.inplace = True
    x_copy = x.clone()
    out = m(x_copy)
    torch.testing.assert_close(x_copy, x0)  # grad enabled: input untouched
    with torch.no_grad():
        out = m(x_copy)
    assert out.data_ptr() == x_copy.data_ptr()
    torch.testing.assert_close(out, ref, atol=1e-5, rtol=1e-5)
    m.inplace = False
    with torch.no_grad():
        out = m(x)
    assert out.data_ptr() != x.data_ptr()
    torch.testing.assert_close(x, x0)  # untouched
    torch.testing.assert_close(out, ref, atol=1e-5, rtol=1e-5)


def test_groupnorm_keeps_the_mixing_form_in_eval():
    # GN normalises over positions too, so H and W must be encoded together even in eval
    torch.manual_seed(2)
    m = CoordAtt(32, norm_cfg=dict(type='GN', num_groups=4)).eval()
    x = torch.randn(2, 32, 6, 9)
    y = torch.cat([x.mean(3, keepdim=True), x.mean(2, keepdim=True).transpose(2, 3)], 2)
    y = m.act(m.norm(m.conv_reduce(y)))
    y_h, y_w = y.split([6, 9], 2)
    ref = x * m.conv_w(y_w.transpose(2, 3)).sigmoid() * m.conv_h(y_h).sigmoid()
    with torch.no_grad():
        torch.testing.assert_close(m(x), ref)
