import argparse
from pathlib import Path

import pytest
import torch

from coordatt_mm import CBAM, CoordAtt, MobileNetV2CA, MobileNeXtCA, SqueezeExcitation, ops
from coordatt_mm.checkpoint import CheckpointMismatchError, load_checked

from e2e_utils import tool
from reference_mnext import authors_forward, random_authors_state, stage_outputs, with_module_prefix

REPO = Path(__file__).resolve().parents[1]
HEAD = 1280 * 1000 + 1000


def n_params(m):
    return sum(p.numel() for p in m.parameters())


def test_mobilenext_param_counts():
    assert n_params(MobileNeXtCA(attention=None)) + HEAD == 3_535_416
    # CA after the first depthwise conv of the 15 blocks that have one
    ca = MobileNeXtCA()
    assert sum(isinstance(m, CoordAtt) for m in ca.modules()) == 15
    assert n_params(ca) + HEAD == 3_971_626


def test_mobilenext_stage_channels_strides_and_ssdlite_taps():
    m = MobileNeXtCA(attention=None, out_indices=tuple(range(8))).eval()
    outs = m(torch.randn(1, 3, 224, 224))
    assert [(o.shape[1], 224 // o.shape[-1]) for o in outs] == [
        (96, 4), (144, 4), (192, 8), (288, 16), (384, 16), (576, 32), (960, 32), (1280, 32)]
    taps = MobileNeXtCA(out_indices=(), expand_taps=(13, 20)).eval()(torch.randn(1, 3, 320, 320))
    assert [(o.shape[1], 320 // o.shape[-1]) for o in taps] == [(576, 16), (1280, 32)]


@pytest.mark.parametrize('strides,dilations,os_', [
    ((2, 1, 2, 2, 1, 1, 1, 1), (1, 1, 1, 1, 1, 2, 2, 2), 16),
    ((2, 1, 2, 1, 1, 1, 1, 1), (1, 1, 1, 2, 2, 4, 4, 4), 8),
])
def test_mobilenext_output_stride(strides, dilations, os_):
    m = MobileNeXtCA(out_indices=(7,), strides=strides, dilations=dilations).eval()
    assert m(torch.randn(1, 3, 128, 128))[0].shape[-1] == 128 // os_


def test_mobilenext_frozen_stages_and_norm_eval():
    m = MobileNeXtCA(frozen_stages=3, norm_eval=True).train()
    assert not any(p.requires_grad for p in m.stem.parameters())
    assert not any(p.requires_grad for p in m.layer3.parameters())
    assert all(p.requires_grad for p in m.layer4.parameters())
    assert not any(b.training for b in m.modules() if isinstance(b, torch.nn.BatchNorm2d))


def _authors_file(tmp_path, sd, name='mnext.pth'):
    # as their training script saves it: wrapped in state_dict (beside the EMA copy and the
    # epoch), keys with DataParallel's module. prefix
    path = tmp_path / name
    torch.save({'state_dict': with_module_prefix(sd), 'state_dict_ema': sd, 'epoch': 3}, path)
    return str(path)


def test_authors_layout_loads_and_computes_their_function(tmp_path):
    sd = random_authors_state()
    ckpt = _authors_file(tmp_path, sd)
    m = MobileNeXtCA(attention=None, out_indices=tuple(range(8)),
                     init_cfg=dict(type='Pretrained', checkpoint=ckpt))
    m.init_weights()
    m.eval()
    # every tensor of the file but the classifier has its place
    n_file = sum(v.numel() for k, v in sd.items() if not k.startswith('classifier'))
    assert sum(v.numel() for v in m.state_dict().values()) == n_file
    x = torch.randn(2, 3, 96, 128)
    with torch.no_grad():
        outs, ref = m(x), stage_outputs(authors_forward(sd, x))
    assert len(outs) == 8
    for o, r in zip(outs, ref):
        torch.testing.assert_close(o, r, atol=1e-5, rtol=1e-5)


def test_authors_layout_into_ssdlite_taps_lists_the_unbuilt_layers(tmp_path, caplog):
    sd = random_authors_state(seed=1)
    ckpt = _authors_file(tmp_path, sd)
    m = MobileNeXtCA(attention=None, out_indices=(), expand_taps=(13, 20),
                     init_cfg=dict(type='Pretrained', checkpoint=ckpt))
    report = load_checked(m, ckpt)
    # block 20 stops after its expanding 1x1: its last depthwise conv and BN are unused
    assert sorted(report.unused) == sorted(k for k in sd if k.startswith(('features.20.conv.8.',
                                                                        'features.20.conv.9.')))
    x = torch.randn(1, 3, 128, 128)
    with torch.no_grad():
        outs, ref = m.eval()(x), authors_forward(sd, x, taps=(13, 20))[-2:]
    for o, r in zip(outs, ref):
        torch.testing.assert_close(o, r, atol=1e-5, rtol=1e-5)
    # the CA variant needs its attention tensors: loud failure, unless explicitly started fresh
    ca = MobileNeXtCA(init_cfg=dict(type='Pretrained', checkpoint=ckpt))
    with pytest.raises(CheckpointMismatchError, match=r'mnext\.pth.*missing'):
        ca.init_weights()
    ca = MobileNeXtCA(init_cfg=dict(type='Pretrained', checkpoint=ckpt,
                                    allow_missing=['attention']))
    ca.init_weights()
    assert ca.layer8[0].dw2.conv.weight.equal(sd['features.20.conv.8.weight'])


def test_checkpoint_with_python_objects_needs_explicit_trust(tmp_path, capsys):
    sd = random_authors_state()
    torch.save({'state_dict': sd, 'args': argparse.Namespace(lr=0.1)}, tmp_path / 'objs.pth')
    m = MobileNeXtCA(attention=None,
                     init_cfg=dict(type='Pretrained', checkpoint=str(tmp_path / 'objs.pth')))
    with pytest.raises(RuntimeError,
                       match=r'objs\.pth: holds Python objects '
                             r'.*argparse\.Namespace.*--trust-pickle'):
        m.init_weights()
    convert = tool('tools/convert_official_ckpt.py')
    assert convert(['--trust-pickle', str(tmp_path / 'objs.pth'), str(tmp_path / 'ok.pth')]) == 0
    assert 'MobileNeXtCA' in capsys.readouterr().out
    m = MobileNeXtCA(attention=None,
                     init_cfg=dict(type='Pretrained', checkpoint=str(tmp_path / 'ok.pth')))
    m.init_weights()
    assert m.stem.conv.weight.equal(sd['features.0.0.weight'])


def _se_params(c, r=24):
    mid = max(8, c // r)
    return c * mid + mid + mid * c + c


def _cbam_params(c, r=24):
    return _se_params(c, r) + 2 * 49 + 2


@pytest.mark.parametrize('cfg,layer,count', [
    (dict(type='CoordAtt'), CoordAtt,
     lambda c: (c * max(8, c // 32) + max(8, c // 32)) + 2 * max(8, c // 32)
     + 2 * (max(8, c // 32) * c + c)),
    (dict(type='SE'), SqueezeExcitation, _se_params),
    (dict(type='CBAM'), CBAM, _cbam_params),
])
@pytest.mark.parametrize('backbone', [MobileNetV2CA, MobileNeXtCA])
def test_attention_switch(backbone, cfg, layer, count):
    torch.manual_seed(0)
    plain = backbone(attention=None, out_indices=(7,)).eval()
    att = backbone(attention=cfg, out_indices=(7,)).eval()
    layers = [m for m in att.modules() if isinstance(m, layer)]
    assert len(layers) == (16 if backbone is MobileNetV2CA else 15)
    # placed in the same slot of every block, costing exactly its own parameters
    assert all(n_params(m) == count(m.conv_h.out_channels if hasattr(m, 'conv_h') else
                                     (m.fc2.out_channels if hasattr(m, 'fc2')
                                      else m.mlp[2].out_channels))
               for m in layers)
    assert n_params(att) - n_params(plain) == sum(n_params(m) for m in layers)
    # same weights elsewhere: the attention changes the output but not its shape
    att.load_state_dict(plain.state_dict(), strict=False)
    x = torch.randn(1, 3, 96, 96)
    with torch.no_grad():
        a, b = plain(x)[0], att(x)[0]
    assert a.shape == b.shape and not torch.allclose(a, b, rtol=1e-3, atol=0)


def test_paper_classifier_param_counts_for_se_and_cbam():
    # the paper: MobileNetV2 + SE 3.89M, + CBAM 3.89M (classifier, width 1.0)
    for cfg in (dict(type='SE'), dict(type='CBAM')):
        total = n_params(MobileNetV2CA(attention=cfg)) + HEAD
        assert abs(total / 3.89e6 - 1) < 0.005, (cfg, total)


def test_unknown_attention_type_is_named():
    """The error lists the attention layers registered now: a layer added to
    coordatt_mm.layers is listed without anyone editing the message."""
    from mmengine.registry import MODELS
    with pytest.raises(KeyError, match=r"'Nope' is not registered; the attention layers: CBAM, "
                                       r'CoordAtt, ECA, SE, SimAM, TripletAttention\W*$'):
        MobileNetV2CA(attention=dict(type='Nope'))
    gate = type('AGate', (torch.nn.Module,), dict(__module__='coordatt_mm.layers.a_gate'))
    MODELS.register_module(name='AGate', module=gate)
    try:
        with pytest.raises(KeyError, match=r'the attention layers: AGate, CBAM, CoordAtt,'):
            MobileNetV2CA(attention=dict(type='Nope'))
    finally:
        MODELS._module_dict.pop('AGate')


@pytest.mark.parametrize('memory_format', [torch.contiguous_format, torch.channels_last])
@pytest.mark.parametrize('backbone', [MobileNetV2CA, MobileNeXtCA])
def test_backbone_fast_inplace_eval_equals_the_training_form(backbone, memory_format,
                                                             monkeypatch):
    # blocks gate their own depthwise output in place; taps and residuals must not see it
    torch.manual_seed(4)
    m = backbone(out_indices=(2, 4, 7)).eval()
    cas = [mod for mod in m.modules() if isinstance(mod, CoordAtt)]
    # the layers gate a copy when called on their own; the blocks ask for in place
    assert cas and not any(ca.inplace for ca in cas)
    asked = []
    fused_eval = ops.coord_att_eval

    def spy(x, weights, act, inplace, prologue=None):
        asked.append(inplace)
        return fused_eval(x, weights, act, inplace, prologue)
    monkeypatch.setattr(ops, 'coord_att_eval', spy)
    with torch.no_grad():  # non-trivial BN statistics, so the fold matters
        for mod in m.modules():
            if isinstance(mod, torch.nn.BatchNorm2d):
                mod.running_mean.normal_(0, 0.1)
                mod.running_var.uniform_(0.5, 1.5)
    m = m.to(memory_format=memory_format)
    x = torch.randn(1, 3, 96, 96).contiguous(memory_format=memory_format)
    slow = m(x)  # grad enabled: concat form, never in place
    with torch.no_grad():
        fast = m(x)
    assert len(fast) == len(slow) == 3
    assert len(asked) == len(cas) and all(asked)
    for a, b in zip(fast, slow):
        torch.testing.assert_close(a, b, atol=1e-4, rtol=1e-4)
