"""The contracts mmdet's and mmseg's own MobileNetV2 tests hold their backbone to
(tests/test_models/test_backbones/test_mobilenet_v2.py in both), asserted on ours, plus the
swap of mmseg's own DeepLabV3-MobileNetV2 config to our backbone. Where we differ on purpose,
the test says so and asserts our behaviour."""
from collections import OrderedDict

import pytest
import torch
from mmengine.config import Config
from mmseg.models.backbones import MobileNetV2 as MMSegMobileNetV2
from torch.nn import GroupNorm
from torch.nn.modules.batchnorm import _BatchNorm

from coordatt_mm import CoordAtt, MobileNetV2CA, MobileNeXtCA
from coordatt_mm.backbones.mobilenet_v2_ca import InvertedResidualCA
from coordatt_mm.backbones.mobilenext_ca import SandGlassCA

from peer_utils import peer_config

BACKBONES = [MobileNetV2CA, MobileNeXtCA]
NORMS = (_BatchNorm, GroupNorm)


def norms(model):
    return [m for m in model.modules() if isinstance(m, NORMS)]


def shapes(outs, size):
    return [(o.shape[1], size // o.shape[-1]) for o in outs]


@pytest.mark.parametrize('backbone', BACKBONES)
def test_argument_ranges(backbone):
    n_stages = len(backbone.arch_settings)
    with pytest.raises(ValueError):
        backbone(frozen_stages=n_stages + 1)
    with pytest.raises(ValueError):
        backbone(out_indices=[n_stages + 1])
    with pytest.raises(ValueError):
        backbone(out_indices=(8, 7) if backbone is MobileNetV2CA else (9, 7))


@pytest.mark.parametrize('backbone', BACKBONES)
def test_frozen_stages_and_norm_eval(backbone):
    m = backbone(frozen_stages=1).train()
    stem = m.stage_modules()[0]
    assert not any(p.requires_grad for p in stem.parameters())
    layer1 = m.layer1
    assert not any(p.requires_grad for p in layer1.parameters())
    assert not any(b.training for b in layer1.modules() if isinstance(b, _BatchNorm))
    assert all(p.requires_grad for p in m.layer2.parameters())
    assert all(b.training for b in m.layer2.modules() if isinstance(b, _BatchNorm))
    # a difference on purpose: mmdet's/mmseg's frozen stem keeps updating its BN statistics;
    # ours stops (a frozen stage is frozen entirely)
    assert not any(b.training for b in stem.modules() if isinstance(b, _BatchNorm))
    m = backbone(frozen_stages=2, norm_eval=True).train()
    assert norms(m) and not any(b.training for b in norms(m))


def test_mobilenet_v2_stage_shapes_at_widths():
    x = torch.randn(1, 3, 224, 224)
    m = MobileNetV2CA(widen_factor=1.0, out_indices=range(0, 8)).train()
    assert all(b.training for b in norms(m))
    assert shapes(m(x), 224) == [(16, 2), (24, 4), (32, 8), (64, 16), (96, 16), (160, 32),
                                 (320, 32), (1280, 32)]
    m = MobileNetV2CA(widen_factor=0.5, out_indices=range(0, 7)).train()
    assert shapes(m(x), 224) == [(8, 2), (16, 4), (16, 8), (32, 16), (48, 16), (80, 32),
                                 (160, 32)]
    m = MobileNetV2CA(widen_factor=2.0, out_indices=range(0, 8)).train()
    assert shapes(m(x), 224) == [(32, 2), (48, 4), (64, 8), (128, 16), (192, 16), (320, 32),
                                 (640, 32), (2560, 32)]
    m = MobileNetV2CA(out_indices=(0, 2, 4)).train()
    assert shapes(m(x), 224) == [(16, 2), (32, 8), (96, 16)]


@pytest.mark.parametrize('width,expect', [
    (0.5, [(48, 4), (72, 4), (96, 8), (144, 16), (192, 16), (288, 32), (480, 32), (1280, 32)]),
    (2.0, [(192, 4), (288, 4), (384, 8), (576, 16), (768, 16), (1152, 32), (1920, 32),
           (2560, 32)]),
])
def test_mobilenext_stage_shapes_at_widths(width, expect):
    m = MobileNeXtCA(widen_factor=width, out_indices=range(0, 8)).train()
    assert shapes(m(torch.randn(1, 3, 128, 128)), 128) == expect


@pytest.mark.parametrize('backbone', BACKBONES)
def test_act_cfg_gn_and_with_cp(backbone):
    x = torch.randn(2, 3, 64, 64)
    last = len(backbone.arch_settings) - 1
    m = backbone(act_cfg=dict(type='ReLU'), out_indices=(last,)).train()
    acts = {type(a).__name__ for a in m.modules() if type(a).__name__ in ('ReLU', 'ReLU6')}
    assert acts == {'ReLU'}
    m(x)
    # GN everywhere, the attention's norm included (it follows the backbone's norm_cfg);
    # MobileNeXt's CA at 288 channels has a 9-channel bottleneck, so one group there
    groups = 2 if backbone is MobileNetV2CA else 1
    m = backbone(norm_cfg=dict(type='GN', num_groups=groups, requires_grad=True),
                 out_indices=(last,)).train()
    assert norms(m) and all(isinstance(n, GroupNorm) for n in norms(m))
    cas = [c for c in m.modules() if isinstance(c, CoordAtt)]
    assert cas and all(isinstance(c.norm, GroupNorm) for c in cas)
    out = m(x)[0]
    assert torch.isfinite(out).all()
    with torch.no_grad():  # the eval form with GN keeps the concat computation
        torch.testing.assert_close(m.eval()(x)[0], m(x)[0])
    # gradient checkpointing per block: same output, same gradients
    torch.manual_seed(0)
    plain = backbone(out_indices=(last,)).train()
    cp = backbone(out_indices=(last,), with_cp=True).train()
    cp.load_state_dict(plain.state_dict())
    blocks = [b for b in cp.modules() if isinstance(b, (InvertedResidualCA, SandGlassCA))]
    assert blocks and all(b.with_cp for b in blocks)
    xa, xb = x.clone().requires_grad_(), x.clone().requires_grad_()
    plain(xa)[0].sum().backward()
    cp(xb)[0].sum().backward()
    torch.testing.assert_close(xa.grad, xb.grad, atol=1e-5, rtol=1e-4)


@pytest.mark.parametrize('backbone', BACKBONES)
def test_pretrained_and_init_cfg_contract(backbone):
    with pytest.raises(AssertionError):
        backbone(pretrained='test', init_cfg=dict(type='Pretrained'))
    with pytest.warns(UserWarning, match='pretrained is deprecated'):
        m = backbone(pretrained='test')
    assert m.init_cfg == dict(type='Pretrained', checkpoint='test')
    m = backbone(init_cfg=dict(type='Pretrained', checkpoint='test'))
    assert m.init_cfg == dict(type='Pretrained', checkpoint='test')
    assert backbone().init_cfg == [
        dict(type='Kaiming', layer='Conv2d'),
        dict(type='Constant', val=1, layer=['_BatchNorm', 'GroupNorm'])]
    with pytest.raises(TypeError):
        backbone(pretrained=123)


def test_default_init_is_kaiming_not_pytorchs():
    # mmcv's ConvModules start Kaiming-initialised; the CA layers' own 1x1 convs start from
    # PyTorch's defaults until init_weights applies the backbone's init_cfg
    torch.manual_seed(0)
    m = MobileNetV2CA()
    ca = m.layer7[0].attention
    conv_h = ca.conv_h.weight  # (960, 30, 1, 1)
    assert conv_h.std().item() == pytest.approx((1 / 30 / 3) ** 0.5, rel=0.03)  # PyTorch's
    assert ca.conv_reduce.bias.abs().max() > 0
    m.init_weights()
    # Kaiming normal, fan_out, ReLU gain: std = sqrt(2 / 960); biases 0; norms 1 and 0
    assert conv_h.std().item() == pytest.approx((2 / 960) ** 0.5, rel=0.03)
    assert ca.conv_h.bias.abs().max() == 0 and ca.conv_reduce.bias.abs().max() == 0
    assert all(n.weight.eq(1).all() and n.bias.eq(0).all() for n in norms(m))


def test_outputs_are_always_a_tuple():
    # a difference on purpose: mmseg's MobileNetV2 returns a bare tensor for one output;
    # ours returns a tuple, as mmdet's (decode heads index it with in_index either way)
    out = MobileNetV2CA(out_indices=(5,))(torch.randn(2, 3, 56, 56))
    assert isinstance(out, tuple) and len(out) == 1
    assert isinstance(MMSegMobileNetV2(out_indices=(5,))(torch.randn(2, 3, 56, 56)), torch.Tensor)


def test_only_used_layers_are_built():
    m = MobileNetV2CA(out_indices=(1, 2, 4, 6))  # mmseg's taps: no 1280 conv
    assert m.conv2 is None
    assert MobileNetV2CA(out_indices=(4, 7)).conv2 is not None
    assert MobileNetV2CA(out_indices=(1, 2, 4, 6), with_final_conv=True).conv2 is not None
    m = MobileNetV2CA(out_indices=(2,))
    assert m.layers == ['layer1', 'layer2', 'layer3'] and m.conv2 is None
    with pytest.raises(ValueError, match='with_final_conv=False'):
        MobileNetV2CA(out_indices=(7,), with_final_conv=False)
    taps = MobileNeXtCA(out_indices=(), expand_taps=(13, 20))
    assert taps.layer8[0].dw2 is None and taps.layer7[2].dw2 is not None
    x = torch.randn(2, 3, 128, 128)
    for m in (MobileNetV2CA(out_indices=(1, 2, 4, 6)), MobileNetV2CA(out_indices=(2,)), taps):
        sum(o.sum() for o in m.train()(x)).backward()
        assert all(p.grad is not None for p in m.parameters())


# --- mmseg's own config with the backbone swapped -------------------------------------------

MMSEG_CFG = 'mobilenet_v2/mobilenet-v2-d8_deeplabv3_4xb2-80k_cityscapes-512x1024.py'


def _mmseg_segmentor(backbone_type, pretrained, **backbone):
    from mmengine.registry import init_default_scope
    from mmseg.registry import MODELS

    import coordatt_mm  # noqa: F401
    init_default_scope('mmseg')
    cfg = Config.fromfile(peer_config('mmseg', MMSEG_CFG))
    cfg.model.pretrained = pretrained
    cfg.model.backbone.update(type=backbone_type, norm_cfg=dict(type='BN', requires_grad=True),
                              **backbone)
    cfg.model.decode_head.norm_cfg = cfg.model.auxiliary_head.norm_cfg = dict(type='BN')
    model = MODELS.build(cfg.model)
    model.init_weights()
    return model.eval()


@pytest.fixture(scope='module')
def mmseg_weights(tmp_path_factory):
    """mmseg MobileNetV2 weights as ``mmcls://mobilenet_v2`` hands them to mmseg's backbone
    (mmcls names, prefix removed), random and with non-trivial BN statistics."""
    torch.manual_seed(3)
    ref = MMSegMobileNetV2(strides=(1, 2, 2, 1, 1, 1, 1), dilations=(1, 1, 1, 2, 2, 4, 4),
                           out_indices=(1, 2, 4, 6))
    state = OrderedDict()
    for k, v in ref.state_dict().items():
        if k.endswith(('running_var', 'weight')) and v.dim() == 1:
            v = torch.rand_like(v) + 0.5
        elif v.is_floating_point():
            v = torch.randn_like(v) * 0.1
        state[k] = v
    path = tmp_path_factory.mktemp('mmseg') / 'mobilenet_v2.pth'
    torch.save(state, path)
    return str(path)


def test_mmseg_config_swapped_to_our_backbone_is_mmsegs_network(mmseg_weights):
    with pytest.warns(UserWarning, match='pretrained is deprecated'):
        ours = _mmseg_segmentor('MobileNetV2CA', mmseg_weights, attention=None)
    theirs = _mmseg_segmentor('MobileNetV2', mmseg_weights)
    n = lambda m: sum(p.numel() for p in m.parameters())  # noqa: E731
    assert n(ours) == n(theirs)
    assert n(ours.backbone) == n(theirs.backbone)
    # both loaded the file: ours through the checked loader, mmseg's through mmengine's
    assert ours.backbone.layer4[0].depthwise.conv.weight.equal(
        theirs.backbone.layer4[0].conv[1].conv.weight)
    # mmseg dilates only the first block of a dilated stage; so do we by default
    assert ours.backbone.layer4[0].depthwise.conv.dilation == (2, 2)
    assert ours.backbone.layer4[1].depthwise.conv.dilation == (1, 1)
    ours.decode_head.load_state_dict(theirs.decode_head.state_dict())  # heads: same weights
    x = torch.randn(1, 3, 96, 128)
    with torch.no_grad():
        for a, b in zip(ours.backbone(x), theirs.backbone(x)):
            torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-5)
        torch.testing.assert_close(ours.encode_decode(x, [dict(img_shape=(96, 128))]),
                                   theirs.encode_decode(x, [dict(img_shape=(96, 128))]),
                                   atol=1e-5, rtol=1e-5)
    # DeepLab's convention, an option: every block of the stage dilated, another function
    every = MobileNetV2CA(attention=None, strides=(1, 2, 2, 1, 1, 1, 1),
                          dilations=(1, 1, 1, 2, 2, 4, 4), dilation_mode='every_block',
                          out_indices=(1, 2, 4, 6))
    assert every.layer4[1].depthwise.conv.dilation == (2, 2)


def test_mmseg_config_with_ca_is_the_same_network_plus_ca(mmseg_weights):
    theirs = _mmseg_segmentor('MobileNetV2', mmseg_weights)
    ours = _mmseg_segmentor('MobileNetV2CA', None,
                            init_cfg=dict(type='Pretrained', checkpoint=mmseg_weights,
                                          allow_missing=['attention']))
    cas = [m for m in ours.backbone.modules() if isinstance(m, CoordAtt)]
    n = lambda m: sum(p.numel() for p in m.parameters())  # noqa: E731
    assert len(cas) == 16
    assert n(ours) == n(theirs) + sum(n(c) for c in cas)
    x = torch.randn(1, 3, 64, 96)
    with torch.no_grad():
        for c in cas:  # gates fixed at 1: CA passes its input through
            for conv in (c.conv_h, c.conv_w):
                conv.weight.zero_()
                conv.bias.fill_(50.0)
        for a, b in zip(ours.backbone(x), theirs.backbone(x)):
            torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-5)
