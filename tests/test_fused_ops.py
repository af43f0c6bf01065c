"""The fused CPU kernels of CoordAtt (coordatt_mm.ops): equal to the PyTorch form and to an
independent reference in eval and training, forward and backward, on every kernel build the
CPU runs (default, AVX2, AVX-512), and the builds equal to each other; every activation code
against plain PyTorch; the fallback when the operator is absent or the input is elsewhere.

The set-up builds the operator unless ``COORDATT_WITH_OPS=0``: only then do these tests skip.
Anywhere else an operator that is missing or does not load fails every test with its load
error, so that a stale build cannot leave the run green."""
import copy
import itertools
import os
import subprocess
import sys
import textwrap

import pytest
import torch
import torch.nn.functional as F

from coordatt_mm import CoordAtt, MobileNetV2CA, ops
from coordatt_mm.checkpoint import match_state_dict
from coordatt_mm.ops import coord_att as fused

from e2e_utils import REPO
from fused_operator import NOT_BUILT, require_fused_operator
from reference_mbv2 import random_state, released_ca, released_forward, released_shapes

if os.environ.get('COORDATT_WITH_OPS') == '0':
    pytestmark = pytest.mark.skip(reason=NOT_BUILT)

SHAPES = [(1, 96, 40, 40), (2, 144, 7, 13), (1, 32, 1, 17), (3, 64, 9, 1), (1, 960, 10, 10),
          (2, 8, 1, 1), (2, 40, 20, 33)]
FORMATS = [torch.contiguous_format, torch.channels_last]
# every kernel build this CPU runs, narrowest first (checked against /proc/cpuinfo below);
# without the operator the tests fail (operator_loaded), they are not collected away
CAPABILITIES = ops.kernel_builds() or ['default']


@pytest.fixture(autouse=True)
def operator_loaded():
    """Every test here needs the operator that the set-up built."""
    require_fused_operator()


class Spy:
    """Stands in for the extension module and counts the calls of each kernel."""

    def __init__(self, ext):
        self._ext, self.calls = ext, {}

    def __getattr__(self, name):
        fn = getattr(self._ext, name)

        def counted(*args, **kwargs):
            self.calls[name] = self.calls.get(name, 0) + 1
            return fn(*args, **kwargs)
        return counted


@pytest.fixture
def spy(monkeypatch):
    s = Spy(fused._ext)
    monkeypatch.setattr(fused, '_ext', s)
    return s


@pytest.fixture(params=CAPABILITIES)
def capability(request):
    previous = fused._ext.set_capability(request.param)
    yield request.param
    fused._ext.set_capability(previous)


def randomised(m, seed=0):
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in m.parameters():
            p.copy_(torch.randn(p.shape, generator=g) * 0.5)
        for b in m.modules():
            if isinstance(b, torch.nn.BatchNorm2d):
                b.running_mean.copy_(torch.randn(b.num_features, generator=g) * 0.5)
                b.running_var.copy_(torch.rand(b.num_features, generator=g) * 1.8 + 0.2)
    return m


def reference(x, m):
    """The released CoordAtt forward (tests/reference_mbv2.py) on m's weights, eval."""
    names = {'conv1': m.conv_reduce, 'bn1': m.norm, 'conv2': m.conv_h, 'conv3': m.conv_w}
    sd = {f'ca.{k}.{leaf}': v for k, mod in names.items()
          for leaf, v in mod.state_dict().items()}
    return released_ca(x, sd, 'ca')


@pytest.mark.parametrize('shape', SHAPES)
@pytest.mark.parametrize('memory_format', FORMATS)
def test_eval_kernel_equals_reference_and_pytorch_form(shape, memory_format, capability, spy):
    m = randomised(CoordAtt(shape[1])).eval()
    x = torch.randn(shape).contiguous(memory_format=memory_format)
    with torch.no_grad():
        ref = reference(x, m)
        got = m(x)
        m.use_ops = False
        plain = m(x)
    assert spy.calls.get('coord_att_eval') == 1  # the fused call ran, once
    torch.testing.assert_close(got, ref, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(got, plain, atol=1e-5, rtol=1e-5)
    assert got.is_contiguous(memory_format=memory_format)


@pytest.mark.parametrize('memory_format', FORMATS)
def test_eval_kernel_with_the_blocks_norm_and_activation(memory_format, capability, spy):
    """The backbone hands CA its depthwise conv output; BN + ReLU6 run inside CA's passes.
    The whole backbone must still equal the released network (independent reference)."""
    shapes = released_shapes()
    sd = random_state(shapes, seed=3)
    model = MobileNetV2CA(out_indices=tuple(range(8))).eval()
    state, _ = match_state_dict(model, sd)
    model.load_state_dict(state, strict=False)
    x = torch.randn(2, 3, 64, 96).contiguous(memory_format=memory_format)
    if memory_format == torch.channels_last:
        model = model.to(memory_format=torch.channels_last)
    with torch.no_grad():
        outs = model(x)
        refs = released_forward(sd, x.contiguous())
    assert spy.calls.get('coord_att_eval') == 16  # every CA layer fused, BN+ReLU6 with it
    for o, r in zip(outs, refs):
        torch.testing.assert_close(o, r, atol=2e-5, rtol=1e-4)


def test_hooks_see_what_they_expect(spy):
    """A hook on a CA layer or its block's depthwise module keeps the usual call path."""
    model = randomised(MobileNetV2CA(out_indices=(2,))).eval()
    block = model.layer2[0]
    seen = []
    h = block.attention.register_forward_pre_hook(lambda mod, i: seen.append(i[0].clone()))
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        out = model(x)
        h.remove()
        expected = block.depthwise(block.expand(model.layer1(model.conv1(x))))
        again = model(x)
    torch.testing.assert_close(seen[0], expected)
    torch.testing.assert_close(out[0], again[0], atol=1e-5, rtol=1e-5)
    assert spy.calls.get('coord_att_eval') == 5 + 5  # layer2 and layer3: 5 CA layers a forward


@pytest.mark.parametrize('shape', SHAPES[:4] + SHAPES[5:])
@pytest.mark.parametrize('memory_format', FORMATS)
def test_training_forward_backward_equal_pytorch_form(shape, memory_format, capability, spy):
    fused_m = randomised(CoordAtt(shape[1])).train()
    plain_m = copy.deepcopy(fused_m)
    plain_m.use_ops = False
    x = torch.randn(shape).contiguous(memory_format=memory_format)
    x1, x2 = x.clone().requires_grad_(), x.clone().requires_grad_()
    y1, y2 = fused_m(x1), plain_m(x2)
    g = torch.randn_like(y1)
    y1.backward(g)
    y2.backward(g)
    assert spy.calls.get('coord_pool') == 1 and spy.calls.get('coord_gate_backward') == 1
    torch.testing.assert_close(y1, y2, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(x1.grad, x2.grad, atol=1e-5, rtol=1e-4)
    scale = max(p.grad.abs().max() for p in plain_m.parameters())
    for (name, p), q in zip(fused_m.named_parameters(), plain_m.parameters()):
        # a bias before a training BN has a zero gradient: compare on the layer's scale
        torch.testing.assert_close(p.grad, q.grad, atol=1e-5 * scale, rtol=1e-4, msg=name)
    torch.testing.assert_close(fused_m.norm.running_mean, plain_m.norm.running_mean)
    torch.testing.assert_close(fused_m.norm.running_var, plain_m.norm.running_var)


@pytest.mark.parametrize('memory_format', FORMATS)
@pytest.mark.parametrize('shape', [(2, 3, 4, 5), (1, 5, 1, 6), (2, 4, 3, 1)])
def test_gradcheck_float64(shape, memory_format, capability):
    x = torch.randn(shape, dtype=torch.float64).contiguous(memory_format=memory_format)
    x.requires_grad_()
    n, c, h, w = shape
    a_h = torch.rand(n, c, h, dtype=torch.float64, requires_grad=True)
    a_w = torch.rand(n, c, w, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(ops.coord_pool, (x,))
    assert torch.autograd.gradcheck(ops.coord_gate, (x, a_h, a_w))
    m = randomised(CoordAtt(c, min_channels=2)).double().train()
    assert torch.autograd.gradcheck(m, (x,))


def _saved_full_size(m, x):
    """Storages of the full-size tensors autograd keeps for the backward of m(x)."""
    kept = []

    def pack(t):
        if t.numel() == x.numel():
            kept.append(t.untyped_storage().data_ptr())
        return t
    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        m(x)
    return set(kept)


def test_training_keeps_no_x_times_a_w():
    m = randomised(CoordAtt(32)).train()
    x = torch.randn(2, 32, 12, 10, requires_grad=True)
    assert _saved_full_size(m, x) == {x.untyped_storage().data_ptr()}  # only x itself
    m.use_ops = False
    assert len(_saved_full_size(m, x) - {x.untyped_storage().data_ptr()}) >= 1  # x * a_w


@pytest.mark.parametrize('dtype', [torch.float32, torch.float64])
@pytest.mark.parametrize('memory_format', FORMATS)
def test_kernel_builds_agree_with_each_other(dtype, memory_format):
    """Every pair of builds: eval output, training output, input and parameter gradients."""
    if len(CAPABILITIES) < 2:
        pytest.skip('this CPU runs one kernel build only')
    assert fused._ext.capability() == CAPABILITIES[-1]  # the widest, by default
    layer = randomised(CoordAtt(144)).to(dtype)
    x = torch.randn(2, 144, 21, 17, dtype=dtype).contiguous(memory_format=memory_format)
    g = torch.randn(x.shape, dtype=dtype)
    results = {}
    for build in CAPABILITIES:
        m = copy.deepcopy(layer)  # training updates the running statistics
        with ops.using_kernels(build), torch.no_grad():
            y_eval = m.eval()(x)
        xg = x.clone().requires_grad_()
        with ops.using_kernels(build):
            y = m.train()(xg)
            y.backward(g)
        results[build] = [y_eval, y, xg.grad] + [p.grad for p in m.parameters()]
    tol = dict(atol=1e-6, rtol=1e-5) if dtype == torch.float32 else dict(atol=1e-12, rtol=1e-10)
    for a, b in itertools.combinations(CAPABILITIES, 2):
        scale = max(t.abs().max() for t in results[a][3:])
        for i, (ta, tb) in enumerate(zip(results[a], results[b])):
            # parameter gradients (from 3 on) that are zero up to rounding: on the layer's scale
            atol = tol['atol'] * (scale if i >= 3 else 1)
            torch.testing.assert_close(ta, tb, atol=atol, rtol=tol['rtol'],
                                       msg=lambda m: f'{a} vs {b}, tensor {i}: {m}')


# C >= 16: whole vectors of float64 (4 lanes in AVX2, 8 in AVX-512) plus a remainder (33);
# odd H and W fill neither the vectors nor the kernels' 16-position tiles
F64_SHAPES = [(2, 16, 7, 9), (1, 40, 13, 5), (2, 33, 9, 17)]


@pytest.mark.parametrize('shape', F64_SHAPES)
@pytest.mark.parametrize('memory_format', FORMATS)
def test_float64_eval_kernel_equals_reference(shape, memory_format, capability, spy):
    m = randomised(CoordAtt(shape[1])).double().eval()
    x = torch.randn(shape, dtype=torch.float64).contiguous(memory_format=memory_format)
    with torch.no_grad():
        got = m(x)
        ref = reference(x, m)
    assert spy.calls.get('coord_att_eval') == 1
    assert got.dtype == torch.float64 and got.is_contiguous(memory_format=memory_format)
    torch.testing.assert_close(got, ref, atol=1e-12, rtol=1e-10)


# the kernels' activation codes (coord_att_eval's act and pro_act) and what each means
ACTIVATIONS = {0: lambda t: t, 1: F.relu, 2: F.relu6, 3: F.hardswish}


def plain_coord_att(x, w1, b1, wth, bh, wtw, bw, act, prologue=None):
    """The eval layer in plain PyTorch from its folded weights (w1, wth, wtw: mip x C)."""
    if prologue is not None:
        scale, shift, pro_act = prologue
        x = ACTIVATIONS[pro_act](x * scale[:, None, None] + shift[:, None, None])
    h = x.shape[2]
    z = torch.cat([x.mean(3), x.mean(2)], dim=2)  # N, C, H + W
    y = ACTIVATIONS[act](torch.einsum('mc,ncl->nml', w1, z) + b1[:, None])
    a_h = torch.sigmoid(torch.einsum('mc,nml->ncl', wth, y[..., :h]) + bh[:, None])
    a_w = torch.sigmoid(torch.einsum('mc,nml->ncl', wtw, y[..., h:]) + bw[:, None])
    return x * a_h[..., None] * a_w[:, :, None, :]


@pytest.mark.parametrize('dtype', [torch.float32, torch.float64])
@pytest.mark.parametrize('memory_format', FORMATS)
def test_every_activation_code_against_pytorch(dtype, memory_format, capability):
    """CA's activation (Identity 0, ReLU 1, ReLU6 2, h-swish 3), alone and after each
    prologue activation (none 0, ReLU 1, ReLU6 2)."""
    gen = torch.Generator().manual_seed(5)
    n, c, h, w, mip = 2, 24, 7, 11, 8

    def rand(*shape, scale=1.0):
        return (torch.randn(*shape, generator=gen) * scale).to(dtype)
    x = rand(n, c, h, w, scale=4.0).contiguous(memory_format=memory_format)
    # pre-activations well beyond -3 and 6, so that every activation bends somewhere
    weights = (rand(mip, c, scale=1.5), rand(mip, scale=3.0), rand(mip, c), rand(c),
               rand(mip, c), rand(c))
    scale, shift = rand(c).abs() + 0.5, rand(c, scale=4.0)
    refs = {}
    for act, pro_act in itertools.product(ACTIVATIONS, [None, 0, 1, 2]):
        prologue = None if pro_act is None else (scale, shift, pro_act)
        got = ops.coord_att_eval(x, weights, act, False, prologue=prologue)
        ref = plain_coord_att(x, *weights, act, prologue)
        # float32: values up to ~40 summed in another order than PyTorch's
        torch.testing.assert_close(got, ref, atol=1e-4 if dtype == torch.float32 else 1e-12,
                                   rtol=1e-4 if dtype == torch.float32 else 1e-10,
                                   msg=lambda m: f'act {act}, prologue act {pro_act}: {m}')
        refs[act, pro_act] = ref
    # the data tells every code from every other: a swapped code would be caught
    for key_a, key_b in itertools.combinations(refs, 2):
        assert (refs[key_a] - refs[key_b]).abs().max() > 1e-2, (key_a, key_b)


def test_fallback_when_the_operator_is_absent(monkeypatch):
    m = randomised(CoordAtt(48)).eval()
    x = torch.randn(2, 48, 9, 7)
    with torch.no_grad():
        fused_out = m(x)
    monkeypatch.setattr(fused, '_ext', None)
    monkeypatch.setattr(fused, '_LOAD_ERROR', 'ImportError: not built')
    assert not ops.fused_available() and not ops.fused_usable(x)
    assert ops.fused_status() == 'not available (ImportError: not built)'
    with torch.no_grad():
        torch.testing.assert_close(m(x), fused_out, atol=1e-5, rtol=1e-5)
        torch.testing.assert_close(m(x), reference(x, m), atol=1e-5, rtol=1e-5)
    m.train()
    xg = x.clone().requires_grad_()
    m(xg).sum().backward()  # the ATen gate function
    plain = copy.deepcopy(m)
    plain.use_ops = False
    xp = x.clone().requires_grad_()
    plain(xp).sum().backward()
    torch.testing.assert_close(xg.grad, xp.grad, atol=1e-5, rtol=1e-5)
    # the backbone still runs, blocks hand CA their conv output as before
    model = MobileNetV2CA(out_indices=(7,)).eval()
    with torch.no_grad():
        assert model(torch.randn(1, 3, 64, 64))[0].shape == (1, 1280, 2, 2)


@pytest.mark.parametrize('dtype', [torch.float16, torch.bfloat16])
def test_other_dtypes_take_the_pytorch_form(dtype, spy):
    assert not ops.fused_usable(torch.zeros(1, 8, 2, 2, dtype=dtype))
    m = randomised(CoordAtt(16)).eval().to(dtype)
    x = torch.randn(1, 16, 6, 5).to(dtype)
    with torch.no_grad():
        out = m(x)
    assert not spy.calls
    ref = reference(x.float(), m.float())
    torch.testing.assert_close(out.float(), ref, atol=3e-2, rtol=3e-2)


def test_traced_graphs_use_aten_ops(spy):
    m = randomised(CoordAtt(16)).eval()
    x = torch.randn(1, 16, 6, 5)
    with torch.no_grad():
        traced = torch.jit.trace(m, (x,), check_trace=False)
        torch.testing.assert_close(traced(x), m(x), atol=1e-5, rtol=1e-5)
    assert 'coord_att_eval' not in str(traced.graph)
    assert spy.calls.get('coord_att_eval') == 1  # only the untraced call


def test_bad_shapes_get_a_clear_error():
    x = torch.randn(1, 8, 4, 5)
    with pytest.raises(RuntimeError, match='a_h must have shape'):
        fused._ext.coord_gate(x, torch.rand(1, 8, 5), torch.rand(1, 8, 5), False)
    with pytest.raises(RuntimeError, match='must be a CPU tensor'):
        fused._ext.coord_pool(torch.zeros(1, 8, 4, 5, device='meta'))
    with pytest.raises(RuntimeError, match='x must be N,C,H,W'):
        fused._ext.coord_pool(torch.zeros(8, 4, 5))
    weights = (torch.zeros(8, 8), torch.zeros(8), torch.zeros(8, 8), torch.zeros(8),
               torch.zeros(8, 8), torch.zeros(8))
    with pytest.raises(RuntimeError, match='unknown activation code 4'):
        fused._ext.coord_att_eval(x, *weights, 4)
    with pytest.raises(RuntimeError, match='unknown prologue activation 3'):
        fused._ext.coord_att_eval(x, *weights, 0, False, torch.ones(8), torch.zeros(8), 3)


@pytest.mark.parametrize('memory_format', FORMATS)
def test_gate_then_conv_gradcheck(memory_format, capability):
    x = torch.randn(2, 4, 5, 6, dtype=torch.float64).contiguous(memory_format=memory_format)
    a_h = torch.rand(2, 4, 5, dtype=torch.float64)
    a_w = torch.rand(2, 4, 6, dtype=torch.float64)
    conv = torch.nn.Conv2d(4, 3, 3, stride=2, padding=1, bias=True).double()
    for t in (x, a_h, a_w):
        t.requires_grad_()

    def f(x, a_h, a_w, weight, bias):
        return fused._GateConv.apply(x, a_h, a_w, weight, bias, conv.stride, conv.padding,
                                     conv.dilation, conv.groups)
    assert torch.autograd.gradcheck(f, (x, a_h, a_w, conv.weight, conv.bias))


@pytest.mark.parametrize('memory_format', FORMATS)
def test_training_backbone_equals_pytorch_form_and_keeps_no_gated_tensor(memory_format, spy):
    """The blocks feed CA's gating to their projection conv without storing the gated tensor;
    losses, gradients and BN statistics equal the PyTorch form's."""
    torch.manual_seed(0)
    fused_m = MobileNetV2CA(out_indices=(2, 4))
    fused_m.init_weights()
    plain_m = aten_copy(fused_m)
    x = torch.randn(2, 3, 64, 48).contiguous(memory_format=memory_format)
    for m in (fused_m, plain_m):
        m.train()
        if memory_format == torch.channels_last:
            m.to(memory_format=torch.channels_last)
    outs = [m(x) for m in (fused_m, plain_m)]
    for o1, o2 in zip(*outs):
        torch.testing.assert_close(o1, o2, atol=1e-4, rtol=1e-4)
    for m, o in zip((fused_m, plain_m), outs):
        sum((t.square().mean() for t in o)).backward()
    assert spy.calls.get('coord_gate_backward', 0) >= 10  # 10 CA layers, the fused gradient
    # gradients that are zero up to rounding (a BN bias before a training BN) are compared on
    # the model's scale, the others on their own
    top = max(q.grad.abs().max() for q in plain_m.parameters())
    for (name, p), q in zip(fused_m.named_parameters(), plain_m.parameters()):
        scale = max(q.grad.abs().max(), 1e-3 * top)
        torch.testing.assert_close(p.grad / scale, q.grad / scale, atol=1e-3, rtol=1e-3,
                                   msg=name)
    for b1, b2 in zip(fused_m.buffers(), plain_m.buffers()):
        torch.testing.assert_close(b1, b2, atol=1e-5, rtol=1e-4)
    # memory: autograd keeps fewer full-size tensors than with the PyTorch form
    sizes = []
    for m in (fused_m, plain_m):
        kept = {}

        def pack(t):
            kept[t.untyped_storage().data_ptr()] = t.untyped_storage().nbytes()
            return t
        with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
            m(x)
        sizes.append(sum(kept.values()))
    gated = sum(2 * c * h * w * 4 for c, h, w in [(96, 16, 12), (144, 16, 12), (144, 8, 6),
                                                   (192, 8, 6), (192, 8, 6), (192, 4, 3),
                                                   (384, 4, 3), (384, 4, 3), (384, 4, 3),
                                                   (384, 4, 3)])
    assert sizes[1] - sizes[0] >= gated  # at least the gated tensors (and x * a_w) less


def aten_copy(model):
    model = copy.deepcopy(model)
    for m in model.modules():
        if isinstance(m, CoordAtt):
            m.use_ops = False
    return model


def test_the_widest_kernels_the_cpu_has_and_a_clear_error_beyond():
    """AVX-512 where the CPU has it, else AVX2, else the default build; asking for kernels
    the CPU lacks is refused with a message that says so; COORDATT_KERNELS asks for less."""
    flags = open('/proc/cpuinfo').read() if sys.platform == 'linux' else ''
    want = ('avx512' if all(f in flags for f in ('avx512f', 'avx512bw', 'avx512vl',
                                                  'avx512dq'))
            else 'avx2' if 'avx2' in flags and 'fma' in flags else 'default')
    assert fused._ext.capability() == want
    for cap in ('avx2', 'avx512'):
        if cap not in CAPABILITIES:
            with pytest.raises(RuntimeError, match=f'no {cap} kernels'):
                fused._ext.set_capability(cap)
    with pytest.raises(RuntimeError, match="expected 'default', 'avx2' or 'avx512'"):
        fused._ext.set_capability('sse9')
    code = 'from coordatt_mm.ops import coord_att as f; print(f.kernel_build())'
    r = subprocess.run([sys.executable, '-c', code], capture_output=True, text=True,
                       env=dict(os.environ, COORDATT_KERNELS='default'))
    assert r.stdout.strip().splitlines()[-1] == 'default', r.stderr[-500:]
    # an unknown build, as a user's command meets it: an error naming the builds, no result
    code = ('import torch; from coordatt_mm.layers.coord_att import CoordAtt; '
            'CoordAtt(16).eval()(torch.randn(1, 16, 4, 4)); print("RAN")')
    r = subprocess.run([sys.executable, '-c', code], capture_output=True, text=True,
                       env=dict(os.environ, COORDATT_KERNELS='avx9000'))
    assert r.returncode != 0 and 'RAN' not in r.stdout
    error = r.stderr.strip().splitlines()[-1]
    assert error.startswith("RuntimeError: COORDATT_KERNELS='avx9000': this CPU runs"), error
    assert all(repr(b) in error for b in CAPABILITIES), error


@pytest.mark.parametrize('asked', ['avx9000', 'AVX2', 'avx2 ', 'sse4'] + [
    b for b in ('avx2', 'avx512') if b not in CAPABILITIES])
def test_a_kernels_setting_this_cpu_cannot_run_is_an_error(asked, monkeypatch):
    """COORDATT_KERNELS is read at the kernels' first use, in eval and in training; a build
    the CPU does not run is refused with the builds it does run, never replaced quietly."""
    m = randomised(CoordAtt(16))
    x = torch.randn(1, 16, 4, 4)
    monkeypatch.setenv('COORDATT_KERNELS', asked)
    for mode in ('eval', 'train'):
        monkeypatch.setattr(fused, '_kernels_setting_checked', False)
        with pytest.raises(RuntimeError) as e, torch.set_grad_enabled(mode == 'train'):
            getattr(m, mode)()(x)
        assert str(e.value) == (f'COORDATT_KERNELS={asked!r}: this CPU runs the fused CoordAtt '
                                f'kernel builds {", ".join(map(repr, CAPABILITIES))}; set one '
                                'of them, or unset it')
    for build in CAPABILITIES:  # each build the CPU runs is accepted
        monkeypatch.setenv('COORDATT_KERNELS', build)
        monkeypatch.setattr(fused, '_kernels_setting_checked', False)
        with torch.no_grad():
            assert m.eval()(x).shape == x.shape


BLOCK_THE_OPERATOR = textwrap.dedent('''
    import sys
    sys.modules['coordatt_mm.ops._ext'] = None  # as if the build were missing
''')


@pytest.mark.slow
@pytest.mark.parametrize('with_ops', ['1', '0'])
def test_a_missing_operator_fails_these_tests_unless_it_was_not_built(with_ops, tmp_path):
    """pytest on one of these tests with the operator's import blocked: it fails with the load
    error, unless the set-up was told not to build the operator (COORDATT_WITH_OPS=0)."""
    (tmp_path / 'block_the_operator.py').write_text(BLOCK_THE_OPERATOR)
    env = dict(os.environ, COORDATT_WITH_OPS=with_ops,
               PYTHONPATH=os.pathsep.join([str(tmp_path), os.environ.get('PYTHONPATH', '')]))
    r = subprocess.run([sys.executable, '-m', 'pytest', '-p', 'block_the_operator', '-q',
                        '-rfs', 'tests/test_fused_ops.py::test_bad_shapes_get_a_clear_error'],
                       cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
    out = r.stdout + r.stderr
    if with_ops == '1':
        # the fixture fails: pytest counts that as an error of the test, not a pass or skip
        assert r.returncode == 1 and '1 error' in out and 'skipped' not in out, out[-2000:]
        assert 'the fused CoordAtt operator is not available (ModuleNotFoundError: import of ' \
               'coordatt_mm.ops._ext halted' in out, out[-2000:]
    else:
        assert r.returncode == 0 and '1 skipped' in out, out[-2000:]
        assert 'COORDATT_WITH_OPS=0' in out, out[-2000:]


FAKE_PYTHON = '''#!/bin/sh
# this test's python, for the set-up's checks; pip (the start of a re-install) is refused
case "$*" in *"-m pip"*) echo "PIP REFUSED: $*"; exit 3 ;; esac
PYTHONPATH="{block}${{PYTHONPATH:+:$PYTHONPATH}}" exec {python} "$@"
'''


@pytest.mark.slow
@pytest.mark.parametrize('loads', [True, False])
def test_the_set_up_rebuilds_an_operator_that_does_not_load(loads, tmp_path):
    """tools/setup_env.sh on a ready venv (a stand-in: this interpreter behind a script that
    refuses pip, so that nothing is installed) is a no-op while the operator loads; when it
    does not, the set-up says why and starts the re-install that rebuilds it."""
    venv, block = tmp_path / 'venv', tmp_path / 'block'
    (venv / 'bin').mkdir(parents=True)
    block.mkdir()
    if not loads:
        (block / 'sitecustomize.py').write_text(BLOCK_THE_OPERATOR)
    python = venv / 'bin' / 'python'
    python.write_text(FAKE_PYTHON.format(block=block, python=sys.executable))
    python.chmod(0o755)
    # the stamp of a finished set-up of these sources, and its mmcv (tools/setup_env.sh)
    want = subprocess.run(
        'cat requirements.txt pyproject.toml setup.py tools/setup_env.sh coordatt_mm/ops/csrc/* '
        '| sha256sum | cut -c1-16', shell=True, cwd=REPO, capture_output=True, text=True,
        check=True).stdout.strip()
    torch_pin = [line.split('==')[1] for line in (REPO / 'requirements.txt').read_text().split()
                 if line.startswith('torch==')][0]
    (venv / '.coordatt_mm-ready').write_text(f'{want} cpu\n')
    (venv / '.coordatt_mm-mmcv-torch').write_text(f'{torch_pin} cpu\n')
    env = {k: v for k, v in os.environ.items()
           if k not in ('FORCE_CUDA', 'TORCH_CUDA_ARCH_LIST', 'COORDATT_KERNELS')}
    env.update(VENV=str(venv), COORDATT_WITH_OPS='1', CUDA_VISIBLE_DEVICES='')
    r = subprocess.run(['bash', 'tools/setup_env.sh'], cwd=REPO, env=env, capture_output=True,
                       text=True, timeout=300)
    out = r.stdout + r.stderr
    if loads:
        assert r.returncode == 0 and '.venv is ready' in out and 'PIP' not in out, out[-2000:]
    else:
        assert r.returncode != 0, out[-2000:]
        assert ('[setup] the fused CoordAtt operator is not available (ModuleNotFoundError: '
                'import of coordatt_mm.ops._ext halted') in out, out[-2000:]
        assert '[setup] rebuilding the fused CoordAtt operator' in out, out[-2000:]
        assert 'PIP REFUSED: -m pip --disable-pip-version-check install' in out, out[-2000:]
