"""ECA, Triplet Attention and SimAM beside SE, CBAM and CA, and the backbones' two attention
positions.

Each layer is checked against a reference written here from its paper's formula (and the
authors' code where the paper leaves a detail open: ECA's kernel rounding, Triplet's
BatchNorm), in float64, in eval and in training, gradients included; then through the paths the
other attention layers go: mmcv plugins, both backbones at both positions (a block-by-block
reference, the fused CA paths among them), module hooks, CPU autocast, channels-last, every
parameter getting a gradient (what DDP needs; two gloo processes in the slow set), ONNX export
against PyTorch and INT8 (slow); the checkpoints and the parameter counts of each position; and
the configs of the other modules.
"""
import copy
import math

import pytest
import torch
import torch.nn.functional as F
from mmcv.cnn import build_plugin_layer

from coordatt_mm import CoordAtt, MobileNetV2CA, MobileNeXtCA, ops
from coordatt_mm.apis.build import load_config, quiet_logs
from coordatt_mm.checkpoint import CheckpointMismatchError, load_checked
from coordatt_mm.layers import ECA, SimAM, TripletAttention
from coordatt_mm.layers.eca import adaptive_kernel_size

from fused_operator import require_fused_operator
from model_batches import CONFIGS, REPO, ZOO, n_params
from reference_mbv2 import STAGES, divisible8, random_state, released_shapes
from reference_mnext import blocks as mnext_blocks
from reference_mnext import random_authors_state

POSITIONS = ('after_depthwise', 'after_project')
NEW = {'ECA': dict(type='ECA'), 'TripletAttention': dict(type='TripletAttention'),
       'SimAM': dict(type='SimAM')}


# --- references, from the formulas -------------------------------------------------------

def eca_k(c, gamma=2, beta=1):
    """ECA's rule: |(log2 C + b) / gamma| truncated, then the next odd number if even (the
    authors' code)."""
    k = math.floor(abs((math.log2(c) + beta) / gamma))
    return k if k % 2 == 1 else k + 1


def ref_eca(x, w):
    """Global average pool, a k-tap correlation along the channels (zero padded), sigmoid."""
    c = x.shape[1]
    k = w.numel()
    y = F.pad(x.mean((2, 3)), ((k - 1) // 2, (k - 1) // 2))
    a = sum(w[j] * y[:, j:j + c] for j in range(k))
    return x * torch.sigmoid(a)[:, :, None, None]


def ref_gate(t, gate, training):
    """One Triplet branch on t (its first axis after N pooled): Z-pool (max, mean), k x k conv
    without bias, BN (eps 1e-5, momentum 0.01), sigmoid, times t."""
    z = torch.cat([t.max(1, keepdim=True).values, t.mean(1, keepdim=True)], 1)
    w = gate.conv.weight
    y = F.conv2d(z, w, padding=(w.shape[-1] - 1) // 2)
    bn = gate.norm
    y = F.batch_norm(y, bn.running_mean, bn.running_var, bn.weight, bn.bias, training, 0.01,
                     1e-5)
    return t * torch.sigmoid(y)


def ref_triplet(x, att, training):
    """The rotated branches: (N,H,C,W) and (N,W,H,C) gated and rotated back, then x itself;
    averaged."""
    o1 = ref_gate(x.permute(0, 2, 1, 3), att.cw, training).permute(0, 2, 1, 3)
    o2 = ref_gate(x.permute(0, 3, 2, 1), att.hc, training).permute(0, 3, 2, 1)
    if att.hw is None:
        return (o1 + o2) / 2
    return (o1 + o2 + ref_gate(x, att.hw, training)) / 3


def ref_simam(x, lam=1e-4):
    n = x.shape[2] * x.shape[3] - 1
    d = (x - x.mean((2, 3), keepdim=True)) ** 2
    v = d.sum((2, 3), keepdim=True) / n
    return x * torch.sigmoid(d / (4 * (v + lam)) + 0.5)


def ref_ca(att, x, training):
    """Coordinate Attention as the released block computes it: means along W and H,
    concatenated, 1x1 conv with bias, BN, h-swish, split, a 1x1 conv with bias and a sigmoid
    per direction, x * a_w * a_h."""
    h, w = x.shape[-2:]
    y = torch.cat([x.mean(3, keepdim=True), x.mean(2, keepdim=True).transpose(2, 3)], 2)
    y = F.conv2d(y, att.conv_reduce.weight, att.conv_reduce.bias)
    bn = att.norm
    y = F.batch_norm(y, bn.running_mean, bn.running_var, bn.weight, bn.bias, training, 0.1, 1e-5)
    y = y * F.relu6(y + 3) / 6
    y_h, y_w = y.split([h, w], 2)
    a_h = torch.sigmoid(F.conv2d(y_h, att.conv_h.weight, att.conv_h.bias))
    a_w = torch.sigmoid(F.conv2d(y_w.transpose(2, 3), att.conv_w.weight, att.conv_w.bias))
    return x * a_w * a_h


def conv_bn_act(cm, x):
    """An mmcv ConvModule's conv -> norm -> activation, from its parts."""
    y = cm.norm.forward(cm.conv.forward(x))
    return cm.activate.forward(y) if cm.with_activation else y


def ref_attention(att, x, training):
    if isinstance(att, ECA):
        return ref_eca(x, att.conv.weight.flatten())
    if isinstance(att, TripletAttention):
        return ref_triplet(x, att, training)
    if isinstance(att, SimAM):
        return ref_simam(x, att.e_lambda)
    assert isinstance(att, CoordAtt)
    return ref_ca(att, x, training)


def ref_block(b, x, position, training):
    """An InvertedResidualCA or SandGlassCA from its parts, the attention where ``position``
    puts it."""
    att = b.attention
    if hasattr(b, 'depthwise'):  # expand -> dw -> [att] -> project -> [att] (+ x)
        out = x if b.expand is None else conv_bn_act(b.expand, x)
        out = conv_bn_act(b.depthwise, out)
        if att is not None and position == 'after_depthwise':
            out = ref_attention(att, out, training)
        out = conv_bn_act(b.project, out)
    else:  # [dw1 -> [att]] -> reduce -> expand -> [dw2]
        out = x if b.dw1 is None else conv_bn_act(b.dw1, x)
        if att is not None and position == 'after_depthwise':
            out = ref_attention(att, out, training)
        out = conv_bn_act(b.expand, conv_bn_act(b.reduce, out))
        out = out if b.dw2 is None else conv_bn_act(b.dw2, out)
    if att is not None and position == 'after_project':
        out = ref_attention(att, out, training)
    return x + out if b.use_res_connect else out


def ref_backbone(m, x, position, training):
    x = conv_bn_act(m.conv1 if hasattr(m, 'conv1') else m.stem, x)
    outs = []
    for i, name in enumerate(m.layers):
        for b in getattr(m, name):
            x = ref_block(b, x, position, training)
        if i in m.out_indices:
            outs.append(x)
    return outs


def randomise(module, seed=0):
    """Random weights and trained-like BN statistics (in place, float64-safe)."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, t in list(module.named_parameters()) + list(module.named_buffers()):
            if name.endswith('num_batches_tracked'):
                continue
            r = torch.rand(t.shape, generator=g, dtype=torch.float64).to(t.dtype)
            if name.endswith('running_var'):
                t.copy_(0.5 + r)
            elif name.endswith(('norm.weight', 'bn.weight')):
                t.copy_(0.5 + r)
            else:
                t.copy_(r - 0.5)
    return module


def make_layer(name, channels=12, **kwargs):
    cls = dict(ECA=ECA, TripletAttention=TripletAttention, SimAM=SimAM)[name]
    return randomise(cls(channels, **kwargs).double())


LAYER_CASES = [('ECA', {}), ('ECA', dict(kernel_size=5)), ('TripletAttention', {}),
               ('TripletAttention', dict(kernel_size=3, no_spatial=True)), ('SimAM', {}),
               ('SimAM', dict(e_lambda=0.1))]


# --- the layers ----------------------------------------------------------------------------

@pytest.mark.parametrize('training', [False, True], ids=['eval', 'train'])
@pytest.mark.parametrize('name,kwargs', LAYER_CASES, ids=lambda v: str(v))
def test_layer_equals_its_formula_with_gradients(name, kwargs, training):
    layer = make_layer(name, **kwargs).train(training)
    ref = copy.deepcopy(layer)
    x = torch.randn(3, 12, 7, 5, dtype=torch.float64, requires_grad=True)
    x_ref = x.detach().clone().requires_grad_()
    out = layer(x)
    expect = ref_attention(ref, x_ref, training)
    torch.testing.assert_close(out, expect, rtol=1e-12, atol=1e-12)
    target = torch.randn_like(out)
    (out * target).sum().backward()
    (expect * target).sum().backward()
    torch.testing.assert_close(x.grad, x_ref.grad, rtol=1e-10, atol=1e-12)
    for (n, p), q in zip(layer.named_parameters(), ref.parameters()):
        assert p.grad is not None and p.grad.abs().sum() > 0, n
        torch.testing.assert_close(p.grad, q.grad, rtol=1e-10, atol=1e-12, msg=n)
    # training updates the gate norms' statistics with the authors' momentum (0.01)
    for (n, a), b in zip(layer.named_buffers(), ref.buffers()):
        if not n.endswith('num_batches_tracked'):
            torch.testing.assert_close(a, b, rtol=0, atol=0, msg=n)
    # and autograd's gradient is the numerical one (random directions: fast_mode)
    small = torch.randn(2, 12, 4, 3, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(layer, (small,), eps=1e-6, atol=1e-7, fast_mode=True)


def test_layer_arguments_and_parameter_counts():
    # ECA: k from the rule (3 for 8..127 channels, 5 for 128..2047, as docs/models.md says)
    assert {ECA(c).kernel_size for c in range(8, 128)} == {3}
    assert {ECA(c).kernel_size for c in range(128, 2048)} == {5}
    for c in (16, 24, 96, 144, 320, 1280, 2048, 5000):
        assert ECA(c).kernel_size == adaptive_kernel_size(c) == eca_k(c), c
        assert ECA(c, gamma=1, beta=0).kernel_size == eca_k(c, 1, 0), c
    assert ECA(64, kernel_size=9).conv.weight.shape == (1, 1, 9)
    assert sum(p.numel() for p in ECA(64).parameters()) == 3
    for bad in (4, 0, 'x'):
        with pytest.raises(ValueError, match=f'ECA: kernel_size .* got {bad!r}'):
            ECA(64, kernel_size=bad)
    # Triplet: 2k^2 conv weights and a BN's 2 per gate, whatever C (about 300 at k = 7)
    t = TripletAttention(64)
    assert sum(p.numel() for p in t.parameters()) == 3 * (2 * 49 + 2) == 300
    assert sum(p.numel() for p in TripletAttention(64, kernel_size=3).parameters()) == 60
    assert sum(p.numel() for p in TripletAttention(8, no_spatial=True).parameters()) == 200
    assert t.cw.conv.bias is None
    assert (t.cw.norm.eps, t.cw.norm.momentum) == (1e-5, 0.01)
    # a backbone's norm_cfg sets the type (and what it names); the rest stays the authors'
    sync = TripletAttention(8, norm_cfg=dict(type='SyncBN'))
    assert isinstance(sync.hw.norm, torch.nn.SyncBatchNorm)
    assert (sync.hw.norm.eps, sync.hw.norm.momentum) == (1e-5, 0.01)
    assert TripletAttention(8, norm_cfg=dict(type='BN', eps=1e-3)).hc.norm.eps == 1e-3
    with pytest.raises(ValueError, match='TripletAttention: kernel_size .* got 4'):
        TripletAttention(8, kernel_size=4)
    # SimAM: no parameters; a 1x1 plane gets the gate sigmoid(0.5) instead of 0/0
    assert not list(SimAM(64).parameters())
    x = torch.randn(2, 5, 1, 1)
    torch.testing.assert_close(SimAM()(x), x * torch.sigmoid(torch.tensor(0.5)))
    with pytest.raises(ValueError, match='disagree'):
        SimAM(in_channels=4, channels=8)


@pytest.mark.parametrize('name', [pytest.param(n, marks=[] if n == 'TripletAttention'
                                              else [pytest.mark.slow]) for n in NEW])
def test_layer_is_an_mmcv_plugin_in_resnet(name):
    from mmdet.models.backbones import ResNet
    plugin_name, layer = build_plugin_layer(dict(NEW[name]), in_channels=32)
    assert plugin_name == {'ECA': 'eca', 'TripletAttention': 'triplet_attention',
                           'SimAM': 'simam'}[name]
    x = torch.randn(2, 32, 5, 6)
    assert layer(x).shape == x.shape
    plugins = [dict(cfg=dict(NEW[name]), position='after_conv2')]
    stock, with_att = ResNet(depth=50), ResNet(depth=50, plugins=plugins)
    # (planes, blocks) per stage; the plugin sees the 3x3 conv's `planes` channels
    per_layer = {'ECA': lambda c: eca_k(c), 'TripletAttention': lambda c: 300,
                 'SimAM': lambda c: 0}[name]
    hand = sum(n * per_layer(c) for c, n in ((64, 3), (128, 4), (256, 6), (512, 3)))
    n_params = [sum(p.numel() for p in m.parameters()) for m in (stock, with_att)]
    assert n_params[1] - n_params[0] == hand
    assert sum(type(m).__name__ == name for m in with_att.modules()) == 16
    with_att.eval()  # (mmdet's ResNet.train returns None)
    with torch.no_grad():
        assert with_att(torch.randn(1, 3, 64, 64))[-1].shape == (1, 2048, 2, 2)


# --- the backbones: positions ------------------------------------------------------------

def slot_channels(backbone, position):
    """The channels each attention layer sees, block by block, from the architecture
    description (MobileNetV2: the paper's stage table; MobileNeXt: reference_mnext)."""
    if backbone is MobileNetV2CA:
        out, cin = [], 32
        for t, c, n, _ in STAGES:
            for _ in range(n):
                if position == 'after_project':
                    out.append(divisible8(c))
                elif t != 1:
                    out.append(cin * t)
                cin = divisible8(c)
        return out
    return [oup if position == 'after_project' else inp
            for inp, oup, _, _, kind, _ in mnext_blocks()
            if position == 'after_project' or kind == 'full']


@pytest.mark.parametrize('position', POSITIONS)
@pytest.mark.parametrize('backbone', [MobileNetV2CA, MobileNeXtCA], ids=lambda c: c.__name__)
def test_position_places_a_layer_per_block_on_the_right_channels(backbone, position):
    kw = dict(out_indices=(7,), attention_position=position)
    plain = n_params(backbone(attention=None, **kw))
    channels = slot_channels(backbone, position)
    assert len(channels) == {(MobileNetV2CA, 'after_depthwise'): 16,
                             (MobileNetV2CA, 'after_project'): 17,
                             (MobileNeXtCA, 'after_depthwise'): 15,
                             (MobileNeXtCA, 'after_project'): 20}[backbone, position]
    # ECA's and SE's parameters depend on C: the totals pin every layer's channels
    eca = backbone(attention=dict(type='ECA'), **kw)
    assert n_params(eca) - plain == sum(eca_k(c) for c in channels)
    se = backbone(attention=dict(type='SE'), **kw)
    mid = [max(8, c // 24) for c in channels]
    assert n_params(se) - plain == sum(2 * c * m + m + c for c, m in zip(channels, mid))
    assert sum(isinstance(m, ECA) for m in eca.modules()) == len(channels)
    # SSDLite's MobileNeXt stops block 20 at its tap: no layer after a conv it does not build
    taps = MobileNeXtCA(out_indices=(), expand_taps=(13, 20), attention=dict(type='ECA'),
                        attention_position=position)
    assert sum(isinstance(m, ECA) for m in taps.modules()) == (
        15 if position == 'after_depthwise' else 19)


@pytest.mark.parametrize('backbone', [MobileNetV2CA, MobileNeXtCA], ids=lambda c: c.__name__)
def test_bad_position_is_named(backbone):
    with pytest.raises(ValueError, match=r"attention_position must be one of .*"
                                         r"'after_depthwise'.*got 'after_expand'"):
        backbone(attention_position='after_expand')


def make_backbone(backbone, attention, position, seed=0, out_indices=None):
    """Kaiming-initialised (the backbones' default), with trained-like BN statistics; the
    first 3 (MobileNetV2) or 5 (MobileNeXt) stages unless ``out_indices`` says otherwise."""
    torch.manual_seed(seed)
    m = backbone(attention=attention, attention_position=position,
                 out_indices=out_indices or ((2,) if backbone is MobileNetV2CA else (4,)))
    with quiet_logs():
        m.init_weights()
    with torch.no_grad():
        for mod in m.modules():
            if isinstance(mod, torch.nn.BatchNorm2d):
                mod.running_mean.normal_(0, 0.2)
                mod.running_var.uniform_(0.5, 1.5)
    return m


# the default run: the new slot with each new layer and CA in MobileNetV2, and with CA and
# Triplet in MobileNeXt (whose first slot calls the new layers as it calls SE and CBAM)
BACKBONE_DEFAULT = {('MobileNetV2CA', 'after_project'),
                    ('MobileNetV2CA', 'after_depthwise', 'CoordAtt'),
                    ('MobileNeXtCA', 'after_project', 'CoordAtt'),
                    ('MobileNeXtCA', 'after_project', 'TripletAttention')}


def backbone_cases():
    for backbone in (MobileNetV2CA, MobileNeXtCA):
        for position in POSITIONS:
            for attention in ('ECA', 'TripletAttention', 'SimAM', 'CoordAtt'):
                key = (backbone.__name__, position)
                fast = key in BACKBONE_DEFAULT or key + (attention,) in BACKBONE_DEFAULT
                yield pytest.param(backbone, position, attention,
                                   marks=[] if fast else [pytest.mark.slow],
                                   id=f'{backbone.__name__}-{position}-{attention}')


def flat_grads(model, x):
    return torch.cat([x.grad.flatten()] + [p.grad.flatten() for p in model.parameters()])


@pytest.mark.parametrize('backbone,position,attention', list(backbone_cases()))
def test_backbone_equals_block_by_block_reference(backbone, position, attention):
    """Inference (CA: the fused eval path, folding the norm before it), gradients with frozen
    BatchNorm (CA: the fused training path) and a training step, against the blocks computed
    part by part; every parameter gets a gradient, as DDP with find_unused_parameters=False
    needs."""
    m = make_backbone(backbone, dict(type=attention), position)
    ref = copy.deepcopy(m)
    x = torch.randn(2, 3, 48, 40)
    m.eval(), ref.eval()
    with torch.no_grad():
        torch.testing.assert_close(m(x)[0], ref_backbone(ref, x, position, False)[0],
                                   rtol=1e-4, atol=1e-4)
    xs = [x.clone().requires_grad_() for _ in range(2)]
    out, expect = m(xs[0])[0], ref_backbone(ref, xs[1], position, False)[0]
    torch.testing.assert_close(out, expect, rtol=1e-4, atol=1e-4)
    target = torch.randn_like(out)
    (out * target).mean().backward()
    (expect * target).mean().backward()
    g, g_ref = flat_grads(m, xs[0]), flat_grads(ref, xs[1])
    assert (g - g_ref).norm() <= 1e-4 * g_ref.norm()
    # a training step (batch statistics: rounding grows through them, so outputs only)
    m.zero_grad()
    m.train(), ref.train()
    out = m(x)[0]
    torch.testing.assert_close(out, ref_backbone(ref, x, position, True)[0], rtol=1e-3,
                               atol=1e-3)
    out.square().mean().backward()
    missing = [n for n, p in m.named_parameters() if p.grad is None]
    assert not missing, missing[:5]


@pytest.mark.parametrize('backbone,memory_format', [
    (MobileNetV2CA, torch.contiguous_format), (MobileNeXtCA, torch.channels_last),
    pytest.param(MobileNetV2CA, torch.channels_last, marks=pytest.mark.slow),
    pytest.param(MobileNeXtCA, torch.contiguous_format, marks=pytest.mark.slow)],
    ids=['MobileNetV2CA-nchw', 'MobileNeXtCA-channels_last', 'MobileNetV2CA-channels_last',
         'MobileNeXtCA-nchw'])
def test_fused_ca_after_project_gates_its_own_tensor_in_place(backbone, memory_format,
                                                              monkeypatch):
    """After the projection CA's fused eval kernel folds the projection's BN (or MobileNeXt's
    last depthwise BN) and gates that conv's fresh output in place (every block but the one
    without depthwise convs asks for it), and every stage's tap equals the block-by-block
    reference: gating in place overwrote no tensor that a residual or a tap still reads."""
    require_fused_operator()
    stages = range(3) if backbone is MobileNetV2CA else range(5)
    m = make_backbone(backbone, dict(type='CoordAtt'), 'after_project', out_indices=stages)
    asked = []
    fused_eval = ops.coord_att_eval

    def spy(x, weights, act, inplace, prologue=None):
        asked.append((inplace, bool(prologue)))
        return fused_eval(x, weights, act, inplace, prologue)
    monkeypatch.setattr(ops, 'coord_att_eval', spy)
    m = m.to(memory_format=memory_format).eval()
    x = torch.randn(1, 3, 64, 64).contiguous(memory_format=memory_format)
    with torch.no_grad():
        fast = m(x)
        expect = ref_backbone(copy.deepcopy(m), x, 'after_project', False)
    cas = [mod for mod in m.modules() if isinstance(mod, CoordAtt)]
    # MobileNeXt's one block without depthwise convs gates its expand output (also its tap)
    # through CA's own forward
    n_fused = len(cas) - (backbone is MobileNeXtCA)
    assert asked.count((True, True)) == n_fused
    assert len(fast) == len(expect) == len(stages)
    for tap, (got, ref) in enumerate(zip(fast, expect)):
        torch.testing.assert_close(got, ref, rtol=1e-4, atol=1e-4, msg=f'tap {tap}')


@pytest.mark.parametrize('position,attention', [
    ('after_depthwise', 'CoordAtt'), ('after_project', 'CoordAtt'),
    ('after_project', 'TripletAttention'),
    pytest.param('after_depthwise', 'ECA', marks=pytest.mark.slow),
    pytest.param('after_project', 'ECA', marks=pytest.mark.slow),
    pytest.param('after_depthwise', 'TripletAttention', marks=pytest.mark.slow)])
def test_hooks_see_the_conv_output_before_the_attention(position, attention):
    """A forward hook keeps the output of the conv the attention follows (Grad-CAM does): in
    inference it still holds that conv's output afterwards (nothing gated it in place), the
    attention's hook saw it as its input, and the backbone's output is the reference's."""
    m = make_backbone(MobileNetV2CA, dict(type=attention), position).eval()
    block = m.layer3[1]
    conv = block.depthwise if position == 'after_depthwise' else block.project
    seen = {}
    handles = [conv.register_forward_hook(lambda mod, i, o: seen.update(conv=o)),
               block.attention.register_forward_hook(
                   lambda mod, i, o: seen.update(att_in=i[0].clone(), att_out=o))]
    x = torch.randn(1, 3, 64, 64)
    try:
        with torch.no_grad():
            out = m(x)[0]
    finally:
        for h in handles:
            h.remove()
    ref = copy.deepcopy(m)
    with torch.no_grad():
        expect = ref_backbone(ref, x, position, False)[0]
    torch.testing.assert_close(out, expect, rtol=1e-4, atol=1e-4)
    torch.testing.assert_close(seen['conv'], seen['att_in'], rtol=0, atol=0)
    torch.testing.assert_close(seen['att_out'],
                               ref_attention(ref.layer3[1].attention, seen['att_in'], False),
                               rtol=1e-5, atol=1e-5)


# --- autocast, channels-last ---------------------------------------------------------------

EPS = {torch.bfloat16: 2.0 ** -8, torch.float16: 2.0 ** -11}


def autocast_grads(module, x, target, dtype):
    """(output, flat gradient of the input and every parameter) of a regression step, under
    CPU autocast in ``dtype`` (None: float32), on a copy of ``module``."""
    m = copy.deepcopy(module)
    x = x.clone().requires_grad_()
    with torch.autocast('cpu', dtype=dtype or torch.bfloat16, enabled=dtype is not None):
        out = m(x)
        out = out[0] if isinstance(out, tuple) else out
    ((out.float() - target) ** 2).mean().backward()
    return out, torch.cat([x.grad.flatten()] + [p.grad.flatten() for p in m.parameters()])


@pytest.mark.parametrize('dtype', [torch.bfloat16, torch.float16], ids=str)
@pytest.mark.parametrize('name', list(NEW))
def test_layer_under_autocast(name, dtype):
    """Within 16 eps of float32, gradients included (measured <= 2.3; SimAM's operations are
    not autocast ones, 0); the output keeps the input's float32, as the other layers'."""
    torch.manual_seed(0)
    layer = make_layer(name, channels=16).float().train()
    x = torch.randn(2, 16, 9, 7)
    target = torch.randn(2, 16, 9, 7)
    out32, g32 = autocast_grads(layer, x, target, None)
    out, g = autocast_grads(layer, x, target, dtype)
    assert out.dtype == torch.float32
    assert ((out - out32).norm() / out32.norm()).item() <= 16 * EPS[dtype]
    assert ((g - g32).norm() / g32.norm()).item() <= 16 * EPS[dtype]


@pytest.mark.parametrize('name,position', [
    ('ECA', 'after_project'), ('TripletAttention', 'after_depthwise'), ('SimAM', 'after_project'),
    pytest.param('ECA', 'after_depthwise', marks=pytest.mark.slow),
    pytest.param('TripletAttention', 'after_project', marks=pytest.mark.slow),
    pytest.param('SimAM', 'after_depthwise', marks=pytest.mark.slow)])
def test_block_under_bfloat16_autocast(name, position):
    """One MobileNetV2 block (expand, depthwise, projection, the layer in either slot): within
    80 eps of float32 (tests/test_amp.py's block bound; measured 6-15)."""
    torch.manual_seed(0)
    m = make_backbone(MobileNetV2CA, NEW[name], position)
    block = m.layer3[1].train()
    x = torch.randn(2, 32, 14, 11)
    target = torch.randn(2, 32, 14, 11)
    _, g32 = autocast_grads(block, x, target, None)
    _, g = autocast_grads(block, x, target, torch.bfloat16)
    assert ((g - g32).norm() / g32.norm()).item() <= 80 * EPS[torch.bfloat16]


@pytest.mark.parametrize('name', list(NEW))
def test_layer_in_channels_last(name):
    layer = make_layer(name, channels=16).float().train()
    x = torch.randn(2, 16, 9, 7)
    xc = x.contiguous(memory_format=torch.channels_last)
    xc.requires_grad_(), x.requires_grad_()
    a, b = layer(x), copy.deepcopy(layer)(xc)
    assert b.is_contiguous(memory_format=torch.channels_last)  # the layout is kept
    torch.testing.assert_close(b, a, rtol=1e-5, atol=1e-6)
    (a * a).sum().backward(), (b * b).sum().backward()
    torch.testing.assert_close(xc.grad, x.grad, rtol=1e-4, atol=1e-5)


# --- ONNX ----------------------------------------------------------------------------------

ONNX_CASES = [('ECA', 'after_project'), ('TripletAttention', 'after_depthwise'),
              ('SimAM', 'after_project')]


def export_and_compare(tmp_path, attention, position, sizes):
    """MobileNetV2CA's first three stages with the layer, exported with a dynamic height and
    width; ONNX Runtime against PyTorch at ``sizes``. Returns the ONNX file."""
    import onnx

    from coordatt_mm.deploy.export import export_graph
    from coordatt_mm.deploy.runtime import ort_session
    m = make_backbone(MobileNetV2CA, dict(type=attention), position).eval()
    path = str(tmp_path / f'{attention}.onnx')
    export_graph(m, path, torch.randn(1, 3, *sizes[0]), ['out'],
                 dynamic_axes={'input': {2: 'h', 3: 'w'}, 'out': {2: 'oh', 3: 'ow'}})
    session = ort_session(path)
    for hw in sizes:
        x = torch.randn(1, 3, *hw)
        with torch.no_grad():
            ref = m(x)[0].numpy()
        got = session.run(None, {'input': x.numpy()})[0]
        assert got.shape == ref.shape and abs(got - ref).max() <= 1e-4 * max(1, abs(ref).max())
    ops_ = {n.op_type for n in onnx.load(path).graph.node if '/attention/' in n.name}
    assert 'Sigmoid' in ops_ and 'Mul' in ops_, ops_  # the layers are in the graph
    return path


@pytest.mark.parametrize('attention,position', ONNX_CASES + [
    pytest.param(a, p, marks=pytest.mark.slow) for a, _ in ONNX_CASES for p in POSITIONS
    if (a, p) not in ONNX_CASES])
def test_onnx_export_matches_pytorch(tmp_path, attention, position):
    # 8x8 gives SimAM 1x1 planes at stride 8: the exported divisor is a graph expression
    export_and_compare(tmp_path, attention, position, [(64, 48), (40, 56), (8, 8)])


@pytest.mark.slow  # an export and a calibration per layer (10-40 s each)
@pytest.mark.parametrize('attention,position', [('ECA', 'after_depthwise'),
                                                ('TripletAttention', 'after_project'),
                                                ('SimAM', 'after_depthwise')])
def test_int8_export_stays_close_to_float(tmp_path, attention, position):
    """The whole MobileNetV2CA backbone with the layer, quantised as --int8 quantises
    (convolutions, clips, additions and products, the gating among them): its output within
    6% of the float graph's (measured 2-3%, as the plain network's and CA's)."""
    import numpy as np
    import onnx

    from coordatt_mm.deploy.export import export_graph
    from coordatt_mm.deploy.quantize import ArrayCalibration, quantize_int8
    from coordatt_mm.deploy.runtime import ort_session
    m = make_backbone(MobileNetV2CA, dict(type=attention), position, out_indices=(7,)).eval()
    g = torch.Generator().manual_seed(0)
    images = [torch.randn(1, 3, 96, 96, generator=g).numpy() for _ in range(12)]
    fp32, int8 = str(tmp_path / 'fp32.onnx'), str(tmp_path / 'int8.onnx')
    export_graph(m, fp32, torch.randn(1, 3, 96, 96), ['out'])
    quantize_int8(fp32, int8, ArrayCalibration('input', images[:8]))
    graph = onnx.load(int8).graph
    assert sum(n.op_type == 'QuantizeLinear' for n in graph.node) > 50
    assert any('/attention/' in n.name and n.op_type == 'DequantizeLinear' for n in graph.node)
    f, q = ort_session(fp32), ort_session(int8)
    for x in images[8:]:
        a, b = f.run(None, {'input': x})[0], q.run(None, {'input': x})[0]
        assert np.linalg.norm(b - a) <= 0.06 * np.linalg.norm(a)


# --- checkpoints ---------------------------------------------------------------------------

@pytest.mark.parametrize('attention', ['ECA', 'CoordAtt', 'SimAM'])
def test_released_file_loads_into_after_project_but_its_attention(tmp_path, attention):
    """The authors' mbv2_ca.pth into a backbone with the attention after the projection: every
    other tensor loads, ours start fresh (allow_missing), the file's CA tensors are listed as
    unused; without allow_missing the new layers are a loud error."""
    sd = random_state(released_shapes(1.0))
    torch.save(sd, tmp_path / 'mbv2_ca.pth')
    cfg = dict(attention=dict(type=attention), attention_position='after_project')
    m = MobileNetV2CA(**cfg)
    report = load_checked(m, str(tmp_path / 'mbv2_ca.pth'), allow_missing=['attention'])
    assert sorted(report.unused) == sorted(k for k in sd if '.conv.6.' in k)
    assert all('.attention.' in k for k in report.fresh)
    assert len(report.fresh) == len([k for k in m.state_dict() if '.attention.' in k])
    assert m.layer2[0].project.conv.weight.equal(sd['features.2.conv.7.weight'])
    assert m.layer1[0].project.bn.running_var.equal(sd['features.1.conv.4.running_var'])
    if attention != 'SimAM':
        with pytest.raises(CheckpointMismatchError, match=r'missing layer1\.0\.attention'):
            load_checked(MobileNetV2CA(**cfg), str(tmp_path / 'mbv2_ca.pth'))
    # the default slot still loads the file completely
    full = load_checked(MobileNetV2CA(), str(tmp_path / 'mbv2_ca.pth'))
    assert not full.fresh and not full.unused


def test_plain_and_authors_mobilenext_files_load_into_after_project(tmp_path):
    torch.save(random_state(released_shapes(1.0, with_ca=False)), tmp_path / 'plain.pth')
    m = MobileNetV2CA(attention=dict(type='TripletAttention'), attention_position='after_project')
    report = load_checked(m, str(tmp_path / 'plain.pth'), allow_missing=['attention'])
    fresh = [k for k in m.state_dict() if '.attention.' in k]
    assert not report.unused and sorted(report.fresh) == sorted(fresh)
    assert len(fresh) == 17 * 3 * 6  # per gate: conv weight, BN weight/bias/statistics
    sd = random_authors_state()
    torch.save(sd, tmp_path / 'mnext.pth')
    m = MobileNeXtCA(attention=dict(type='ECA'), attention_position='after_project')
    report = load_checked(m, str(tmp_path / 'mnext.pth'), allow_missing=['attention'])
    assert len(report.fresh) == 20 and not report.unused
    assert m.layer8[0].dw2.conv.weight.equal(sd['features.20.conv.8.weight'])


# --- configs -------------------------------------------------------------------------------

ZOO_CONFIGS = [p for p in CONFIGS if ZOO.search(p.name)]
# the attention each suffix names (the paper's slot: no attention_position)
SUFFIX_ATTENTION = {
    'eca': dict(type='ECA'),
    'triplet': dict(type='TripletAttention', kernel_size=7),
    'simam': dict(type='SimAM', e_lambda=1e-4),
    'se-hswish': dict(type='SE', reduction=24, act_cfg=dict(type='HSwish')),
    'cbam-hswish': dict(type='CBAM', reduction=24, act_cfg=dict(type='HSwish')),
    'ca-relu': dict(type='CoordAtt', reduction=32, act_cfg=dict(type='ReLU')),
}


def test_every_module_has_every_setting():
    names = {p.name for p in ZOO_CONFIGS}
    for suffix in SUFFIX_ATTENTION:
        for pattern in ('ssdlite_mobilenetv2-{}_8xb24-600e_coco.py',
                        'ssdlite_mobilenetv2-{}_8xb24-600e_voc0712.py',
                        'deeplabv3_mobilenetv2-{}-d16_4xb4-20k_voc12aug-512x512.py',
                        'deeplabv3_mobilenetv2-{}-d8_4xb4-20k_voc12aug-512x512.py',
                        'deeplabv3_mobilenetv2-{}-d8_4xb2-80k_cityscapes-512x1024.py',
                        'mobilenet-v2-{}_4xb64-coslr-200e_in1k.py'):
            assert pattern.format(suffix) in names, pattern.format(suffix)
    assert len(names) == 6 * len(SUFFIX_ATTENTION)


def _plain_twin(path):
    suffix = ZOO.search(path.name).group(1)
    return path.with_name(path.name.replace(f'-{suffix}', '', 1)), suffix


# one setting per module in the default run
RECIPE_DEFAULT = {'ssdlite_mobilenetv2-eca_8xb24-600e_coco.py',
                  'ssdlite_mobilenetv2-ca-relu_8xb24-600e_voc0712.py',
                  'deeplabv3_mobilenetv2-triplet-d16_4xb4-20k_voc12aug-512x512.py',
                  'deeplabv3_mobilenetv2-se-hswish-d8_4xb4-20k_voc12aug-512x512.py',
                  'deeplabv3_mobilenetv2-cbam-hswish-d8_4xb2-80k_cityscapes-512x1024.py',
                  'mobilenet-v2-simam_4xb64-coslr-200e_in1k.py'}
assert RECIPE_DEFAULT <= {p.name for p in ZOO_CONFIGS}  # a misspelt name would go slow unseen


@pytest.mark.parametrize('path', [p if p.name in RECIPE_DEFAULT else
                                  pytest.param(p, marks=pytest.mark.slow) for p in ZOO_CONFIGS],
                         ids=lambda p: p.name)
def test_config_is_its_plain_recipe_with_only_the_attention_changed(path):
    """Same recipe as the plain config of its setting: only the backbone's attention and its
    initialisation differ (ImageNet: only the attention)."""
    plain_path, suffix = _plain_twin(path)
    cfg, plain = load_config(str(path)), load_config(str(plain_path))
    backbone, plain_backbone = cfg.model.backbone, plain.model.backbone
    assert backbone.attention.to_dict() == SUFFIX_ATTENTION[suffix]
    assert 'attention_position' not in backbone  # the paper's slot, as the SE/CBAM/CA rows
    assert plain_backbone.attention is None
    for c in (cfg, plain):
        c.model.backbone.pop('attention')
    if 'init_cfg' in backbone or 'init_cfg' in plain_backbone:
        init, plain_init = backbone.pop('init_cfg'), plain_backbone.pop('init_cfg')
        assert init.type == 'Pretrained' and init.checkpoint == 'mmcls://mobilenet_v2'
        # SimAM has no tensors to start fresh
        assert init.get('allow_missing') == (None if suffix == 'simam' else ['attention'])
        assert plain_init.to_dict() == dict(type='Pretrained', checkpoint='mmcls://mobilenet_v2')
    assert cfg.to_dict() == plain.to_dict()


# --- what each costs -----------------------------------------------------------------------

# elementwise multiply-adds per input element, from each layer's formula (the references
# above), for the hand count below
BY_FORMULA = {
    'ECA': 2,  # the global mean's addition, the gate's product
    'TripletAttention': 9,  # three Z-pools (a max and a mean each), two gate additions, product
    'TripletAttention-no_spatial': 6,  # two Z-pools, one gate addition, the product
    'SimAM': 7,  # mean, deviation, its square, their sum, scale, offset, the product
    'CoordAtt': 4,  # a mean along each axis, a product with each of the two gates
}


@pytest.mark.parametrize('attention', [
    dict(type='ECA'), dict(type='TripletAttention'),
    dict(type='TripletAttention', no_spatial=True),
    pytest.param(dict(type='SimAM'), marks=pytest.mark.slow),
    pytest.param(dict(type='CoordAtt'), marks=pytest.mark.slow)],
    ids=lambda a: a['type'] + ('-no_spatial' if a.get('no_spatial') else ''))
def test_counts_by_shapes_equal_mmengines_flop_analyzer(attention):
    """The metafiles' and docs' M-Adds (output shapes on the meta device): the convolutions
    and linear layers as mmengine's FlopAnalyzer counts them on real tensors; the attention
    layers' elementwise work as a hand count, each layer's input elements times its formula's
    multiply-adds per element (BY_FORMULA)."""
    from coordatt_mm.analysis.complexity import count_madds, count_madds_by_shapes
    kw = dict(attention=attention, attention_position='after_project', out_indices=(2, 4))
    with torch.device('meta'):
        on_meta = MobileNetV2CA(**kw)
    real = MobileNetV2CA(**kw).eval()
    x = torch.randn(1, 3, 64, 48)
    inputs = []
    handles = [m.register_forward_pre_hook(lambda m, args: inputs.append(args[0].shape))
               for m in real.modules() if type(m).__name__ == attention['type']]
    with torch.no_grad():
        real(x)
    for h in handles:
        h.remove()
    key = attention['type'] + ('-no_spatial' if attention.get('no_spatial') else '')
    by_hand = BY_FORMULA[key] * sum(math.prod(shape[1:]) for shape in inputs)
    assert len(inputs) >= 3 and by_hand > 0
    by_shapes = count_madds_by_shapes(on_meta, (1, 3, 64, 48))
    analyzer = count_madds(real, x)
    assert by_shapes['conv_linear'] == analyzer['conv_linear'] > 0
    assert by_shapes['attention_elementwise'] == analyzer['attention_elementwise'] == by_hand


def test_metafiles_list_the_configs_with_their_costs():
    """Every config of the other modules is in mim's index with its parameters, FLOPs
    (convolutions and linear layers) and M-Adds (plus the attention layers' pooling and
    gating); SimAM adds no parameters and no FLOPs to its plain config, only M-Adds."""
    import yaml
    entries = {}
    for meta in (REPO / 'configs').glob('*/metafile.yml'):
        for model in yaml.safe_load(meta.read_text())['Models']:
            entries[model['Config']] = model['Metadata']
    for path in ZOO_CONFIGS:
        rel = path.relative_to(REPO).as_posix()
        meta, plain = entries[rel], entries[_plain_twin(path)[0].relative_to(REPO).as_posix()]
        assert meta['Input Size'] == plain['Input Size'], rel
        assert meta['M-Adds'] > meta['FLOPs'] >= plain['FLOPs'] == plain['M-Adds'], rel
        if '-simam' in rel:
            assert (meta['Parameters'], meta['FLOPs']) == (plain['Parameters'], plain['FLOPs'])
        else:
            assert meta['Parameters'] > plain['Parameters'], rel


@pytest.mark.slow  # every module at both positions of both classifiers (about 30 s)
def test_position_table_in_the_docs_is_current():
    from coordatt_mm.analysis.complexity import position_markdown
    table = position_markdown()
    assert (REPO / 'docs/attention_positions.md').read_text() == table + '\n'
    # the paper's classifier counts where the slot is the paper's
    assert '| MobileNetV2 | CA | 16 | 3,950,648 |' in table
    assert '| MobileNeXt | CA | 15 | 3,971,626 |' in table


# --- the slow set: whole backbones under autocast, configs in channels-last, DDP -----------

@pytest.mark.slow
@pytest.mark.parametrize('position', POSITIONS)
@pytest.mark.parametrize('name', list(NEW))
@pytest.mark.parametrize('backbone', [MobileNetV2CA, MobileNeXtCA], ids=lambda c: c.__name__)
def test_backbone_training_step_under_autocast(backbone, name, position):
    """As tests/test_amp.py's backbones: every parameter gets a finite gradient and the loss
    is within 1% of float32's (bfloat16; float16 for MobileNetV2, slow on CPUs)."""
    m = make_backbone(backbone, NEW[name], position)
    x = torch.randn(2, 3, 96, 96)
    with torch.no_grad():
        target = torch.randn_like(m.train()(x)[0])

    def step(dtype):
        mm = copy.deepcopy(m).train()
        with torch.autocast('cpu', dtype=dtype or torch.bfloat16, enabled=dtype is not None):
            loss = ((mm(x)[0].float() - target) ** 2).mean()
        (loss * (2.0 ** 10 if dtype == torch.float16 else 1.0)).backward()
        return float(loss), {n: p.grad for n, p in mm.named_parameters()}

    loss32, _ = step(None)
    for dtype in [torch.bfloat16] + [torch.float16] * (backbone is MobileNetV2CA):
        loss, grads = step(dtype)
        assert all(g is not None and torch.isfinite(g).all() for g in grads.values()), dtype
        assert abs(loss - loss32) <= 0.01 * abs(loss32), (dtype, loss, loss32)


CHANNELS_LAST_CONFIGS = ['configs/ssdlite/ssdlite_mobilenetv2-eca_8xb24-600e_coco.py',
                         'configs/deeplabv3/deeplabv3_mobilenetv2-triplet-d16_4xb4-20k_'
                         'voc12aug-512x512.py',
                         'configs/ssdlite/ssdlite_mobilenetv2-simam_8xb24-600e_voc0712.py']


@pytest.mark.slow
@pytest.mark.parametrize('config', CHANNELS_LAST_CONFIGS, ids=lambda c: c.rsplit('/', 1)[1])
def test_config_in_channels_last(config):
    """A training step with BatchNorm on running statistics and the predictions, in
    channels-last against NCHW (tests/test_channels_last.py's bounds)."""
    from torch.nn.modules.batchnorm import _BatchNorm

    from model_batches import batch_for, build, total_loss
    torch.manual_seed(0)
    cfg, model = build(REPO / config, init=True)
    batch = batch_for(cfg, model, ssd_size=192)
    results = []
    for fmt in (torch.contiguous_format, torch.channels_last):
        m = copy.deepcopy(model).to(memory_format=fmt).train()
        for bn in m.modules():
            if isinstance(bn, _BatchNorm):
                bn.eval()
        data = m.data_preprocessor(batch, True)
        data['inputs'] = data['inputs'].contiguous(memory_format=fmt)
        torch.manual_seed(0)
        loss = total_loss(m(**data, mode='loss'))
        loss.backward()
        grads = torch.cat([p.grad.flatten() for _, p in sorted(m.named_parameters())
                           if p.grad is not None])
        m.eval()
        data = m.data_preprocessor(batch, False)
        data['inputs'] = data['inputs'].contiguous(memory_format=fmt)
        with torch.no_grad():
            logits = m(**data, mode='tensor')
        logits = logits if isinstance(logits, torch.Tensor) else torch.cat(
            [t.flatten() for group in logits for t in group])
        results.append((float(loss), grads, logits))
    (l0, g0, p0), (l1, g1, p1) = results
    assert abs(l1 - l0) <= 1e-4 * abs(l0)
    assert ((g1 - g0).norm() / g0.norm()).item() <= 1e-3
    torch.testing.assert_close(p1, p0, rtol=1e-4, atol=1e-4)


DDP_BODY = """
train_dataloader = dict(batch_size=2, num_workers=0, dataset=dict(dataset=dict(indices=8)))
train_cfg = dict(max_epochs=1, val_interval=100)
default_hooks = dict(logger=dict(interval=1))
model = dict(backbone=dict(attention=dict(_delete_=True, type='{type}'),
                           attention_position='{position}'))
"""


@pytest.mark.slow  # two training processes each (about 40 s)
@pytest.mark.parametrize('attention,position', [('TripletAttention', 'after_project'),
                                                ('ECA', 'after_depthwise')])
def test_two_gloo_processes_train_past_the_first_iteration(tmp_path, tiny_repo_data,
                                                           attention, position):
    """mmengine's DDP (find_unused_parameters=False) stops at the second iteration when a
    parameter got no gradient: the demo detector with the layer trains two iterations on two
    CPU processes."""
    import socket

    from e2e_utils import BIN, DET_DEMO, launch, write_cfg
    cfg = write_cfg(tmp_path / 'det.py', DET_DEMO,
                    DDP_BODY.format(type=attention, position=position))
    with socket.socket() as sock:
        sock.bind(('127.0.0.1', 0))
        port = sock.getsockname()[1]
    r = launch([BIN / 'torchrun', '--nproc_per_node', 2, '--master_port', port,
                REPO / 'tools/train.py', cfg, '--launcher', 'pytorch', '--work-dir',
                tmp_path / 'w'], cwd=tmp_path, extra_env={'OMP_NUM_THREADS': '1'})
    out = r.stdout + r.stderr
    assert r.returncode == 0, out[-3000:]
    assert 'distributed training with gloo' in out and 'Epoch(train) [1][2/2]' in out, out[-3000:]
