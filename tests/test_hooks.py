"""Module hooks see what the plain PyTorch network would give them.

The fused paths skip module calls (a block's BatchNorm inside CA's kernels, the projection
conv inside an autograd function, CA's sub-layers in eval) and gate a tensor in place; with a
hook on any module they touch, or a global module hook, they step aside. The reference here
is written from the block description, calling each module's arithmetic directly
(``plain_backbone``), not through our blocks' or CoordAtt's forward.
"""
import copy

import pytest
import torch
from torch.nn.modules import module as torch_module

from coordatt_mm import CoordAtt, MobileNetV2CA, MobileNeXtCA
from coordatt_mm.apis.build import quiet_logs
from coordatt_mm.layers.hooks import hooked


def released_ca(att, x):
    """The released CA computation on ``att``'s sub-layers (concat form)."""
    h, w = x.shape[-2:]
    y = torch.cat([x.mean(3, keepdim=True), x.mean(2, keepdim=True).transpose(2, 3)], 2)
    y = att.act.forward(att.norm.forward(att.conv_reduce.forward(y)))
    y_h, y_w = y.split([h, w], 2)
    return (x * att.conv_w.forward(y_w.transpose(2, 3)).sigmoid()
            * att.conv_h.forward(y_h).sigmoid())


def conv_bn_act(cm, x, taps=None, key=None):
    """An mmcv ConvModule (conv -> norm -> act); ``taps[key]`` keeps the conv output."""
    y = cm.conv.forward(x)
    if taps is not None:
        if y.requires_grad:
            y.retain_grad()
        taps[key] = y
    y = cm.norm.forward(y)
    return cm.activate.forward(y) if cm.with_activation else y


def plain_block(b, x, taps):
    """One InvertedResidualCA or SandGlassCA; taps: 'dw' (the depthwise conv before CA) and
    'proj' (the 1x1 conv after CA) outputs, the latter keeping its gradient."""
    if hasattr(b, 'depthwise'):  # MobileNetV2: expand -> dw -> CA -> project
        out = x if b.expand is None else conv_bn_act(b.expand, x)
        out = conv_bn_act(b.depthwise, out, taps, 'dw')
        if b.attention is not None:
            out = released_ca(b.attention, out)
        out = conv_bn_act(b.project, out, taps, 'proj')
        return x + out if b.use_res_connect else out
    if b.dw1 is None:  # MobileNeXt transition: reduce -> expand [-> dw2]
        out = conv_bn_act(b.expand, conv_bn_act(b.reduce, x))
    else:
        out = conv_bn_act(b.dw1, x, taps, 'dw')
        if b.attention is not None:
            out = released_ca(b.attention, out)
        out = conv_bn_act(b.expand, conv_bn_act(b.reduce, out, taps, 'proj'))
    out = out if b.dw2 is None else conv_bn_act(b.dw2, out)
    return x + out if b.use_res_connect else out


def plain_backbone(m, x, taps):
    """Stage outputs of MobileNetV2CA / MobileNeXtCA (out_indices among its stages);
    ``taps[block path]`` gets each block's taps."""
    x = conv_bn_act(m.conv1 if hasattr(m, 'conv1') else m.stem, x)
    outs = []
    for i, name in enumerate(m.layers):
        for j, b in enumerate(getattr(m, name)):
            x = plain_block(b, x, taps.setdefault(f'{name}.{j}', {}))
        if i in m.out_indices:
            outs.append(x)
    return outs


BACKBONES = {'MobileNetV2CA': (MobileNetV2CA, 'layer3.0', ('depthwise.conv', 'project.conv')),
             'MobileNeXtCA': (MobileNeXtCA, 'layer3.1', ('dw1.conv', 'reduce.conv'))}


def make(name, seed=0):
    cls, block, (dw, proj) = BACKBONES[name]
    torch.manual_seed(seed)
    m = cls(out_indices=(3,))
    with quiet_logs():
        m.init_weights()
    with torch.no_grad():  # trained-like BN statistics, so that folding them matters
        for mod in m.modules():
            if isinstance(mod, torch.nn.BatchNorm2d):
                mod.running_mean.normal_(0, 0.2)
                mod.running_var.uniform_(0.5, 1.5)
    return m, block, dw, proj


def grad_cam_capture(m, block, dw, proj, x, target, mode):
    """Grad-CAM's two hooks: the forward output of ``dw`` (kept as is, no copy) and the
    gradient at the output of ``proj`` (a full backward hook); and the backbone's output."""
    seen = {}
    blk = m.get_submodule(block)
    h1 = blk.get_submodule(dw).register_forward_hook(lambda mod, i, o: seen.update(dw=o))
    h2 = blk.get_submodule(proj).register_full_backward_hook(
        lambda mod, gi, go: seen.update(grad=go[0]))
    try:
        if mode == 'inference':
            m.eval()
            with torch.no_grad():
                out = m(x)[0]
        else:
            m.train(mode == 'train')
            out = m(x)[0]
            (out * target).sum().backward()
    finally:
        h1.remove()
        h2.remove()
    return seen, out


@pytest.mark.parametrize('mode', ['inference', 'eval+grad', 'train'])
@pytest.mark.parametrize('name', list(BACKBONES))
def test_grad_cam_hooks_see_the_plain_network(name, mode):
    m, block, dw, proj = make(name)
    ref = copy.deepcopy(m)
    x = torch.randn(2, 3, 64, 80)
    target = torch.randn_like(m.eval()(x)[0]) if mode != 'inference' else None
    seen, out = grad_cam_capture(m, block, dw, proj, x, target, mode)
    taps = {}
    ref.train(mode == 'train')
    with torch.set_grad_enabled(mode != 'inference'):
        ref_out = plain_backbone(ref, x, taps)[0]
        if mode != 'inference':
            (ref_out * target).sum().backward()
    torch.testing.assert_close(out, ref_out, atol=1e-4, rtol=1e-4)
    # the kept tensor still holds the conv's output: nothing gated it in place afterwards
    torch.testing.assert_close(seen['dw'], taps[block]['dw'], atol=1e-5, rtol=1e-5)
    if mode == 'inference':
        assert 'grad' not in seen
    else:
        # batch statistics of the later stages amplify float rounding: compare on the
        # gradient's own scale
        ref_grad = taps[block]['proj'].grad
        torch.testing.assert_close(seen['grad'], ref_grad, rtol=1e-3,
                                   atol=1e-3 * ref_grad.abs().max().item())


@pytest.mark.parametrize('name', list(BACKBONES))
def test_hooks_on_ca_sublayers_fire_in_eval(name):
    m, block, _, _ = make(name)
    att = m.get_submodule(block).attention
    fired = {}
    handles = [getattr(att, k).register_forward_hook(
        lambda mod, i, o, k=k: fired.update({k: o.clone()}))
        for k in ('conv_reduce', 'norm', 'act', 'conv_h', 'conv_w')]
    x = torch.randn(1, 3, 64, 64)
    m.eval()
    with torch.no_grad():
        out = m(x)[0]
        for h in handles:
            h.remove()
        unhooked = m(x)[0]
        ref = plain_backbone(copy.deepcopy(m), x, {})[0]
    assert set(fired) == {'conv_reduce', 'norm', 'act', 'conv_h', 'conv_w'}
    assert fired['conv_h'].shape[1] == att.channels and fired['conv_reduce'].shape[1] == att.mip
    torch.testing.assert_close(out, ref, atol=1e-4, rtol=1e-4)
    torch.testing.assert_close(unhooked, out, atol=1e-5, rtol=1e-5)


def _noop_forward(mod, inputs, output):
    return None


@pytest.mark.parametrize('where', ['block', 'depthwise.norm', 'attention', 'attention.conv_w',
                                   'projection', 'projection backward', 'global forward'])
@pytest.mark.parametrize('name', list(BACKBONES))
def test_hooks_left_on_cost_speed_only(name, where):
    """Outputs and gradients with a do-nothing hook equal those without one."""
    m, block, dw, proj = make(name)
    blk = m.get_submodule(block)
    targets = {'block': blk, 'depthwise.norm': blk.get_submodule(dw.rsplit('.', 1)[0]).norm,
               'attention': blk.attention, 'attention.conv_w': blk.attention.conv_w,
               'projection': blk.get_submodule(proj.rsplit('.', 1)[0])}
    x = torch.randn(2, 3, 64, 48)
    results = []
    for with_hook in (False, True):
        mm = copy.deepcopy(m)
        handle = None
        if with_hook:
            if where == 'global forward':
                handle = torch_module.register_module_forward_hook(_noop_forward)
            elif where == 'projection backward':
                handle = mm.get_submodule(f'{block}.{proj}').register_full_backward_hook(
                    lambda mod, gi, go: None)
            else:
                handle = mm.get_submodule(
                    {k: n for n, mod in m.named_modules() for k, t in targets.items()
                     if mod is t}[where]).register_forward_hook(_noop_forward)
        try:
            mm.eval()
            with torch.no_grad():
                inference = mm(x)[0]
            mm.train()
            out = mm(x)[0]
            out.square().mean().backward()
        finally:
            if handle is not None:
                handle.remove()
        results.append((inference, out, [p.grad for p in mm.parameters()]))
    (i0, o0, g0), (i1, o1, g1) = results
    torch.testing.assert_close(i1, i0, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(o1, o0, atol=1e-5, rtol=1e-5)
    scale = max(g.abs().max() for g in g0)
    for a, b in zip(g1, g0):
        torch.testing.assert_close(a, b, atol=1e-5 * scale, rtol=1e-4)


def test_a_global_hook_sees_every_module_call():
    """A global forward hook (what profilers and tracers register) counts every call of CA's
    sub-layers and of the blocks' convolutions, in eval and in training."""
    m, _, _, _ = make('MobileNetV2CA')
    x = torch.randn(1, 3, 64, 64)
    cas = [mod for mod in m.modules() if isinstance(mod, CoordAtt)]
    n_ca, act = len(cas), type(cas[0].act).__name__
    for mode in ('eval', 'train'):
        calls = []
        h = torch_module.register_module_forward_hook(
            lambda mod, i, o: calls.append(type(mod).__name__))
        try:
            m.train(mode == 'train')
            with torch.set_grad_enabled(mode == 'train'):
                m(x)
        finally:
            h.remove()
        assert calls.count('CoordAtt') == n_ca
        # per CA layer: conv_reduce, conv_h, conv_w; per block: expand, depthwise, project
        assert calls.count('Conv2d') == 1 + 3 * n_ca + 3 * n_ca + 2  # + stem, layer1's two
        assert calls.count(act) == n_ca


def test_hooked_sees_every_kind_of_hook():
    m = CoordAtt(16)
    assert not hooked(m, None)
    for register in (torch_module.register_module_forward_hook,
                     torch_module.register_module_forward_pre_hook,
                     torch_module.register_module_full_backward_hook,
                     torch_module.register_module_full_backward_pre_hook):
        h = register(lambda *a: None)
        assert hooked(None), register
        h.remove()
        assert not hooked(m)
    for register in (lambda t: t.register_forward_hook(lambda *a: None),
                     lambda t: t.register_forward_pre_hook(lambda *a: None),
                     lambda t: t.register_full_backward_hook(lambda *a: None),
                     lambda t: t.register_full_backward_pre_hook(lambda *a: None)):
        for target in (m, m.norm):
            h = register(target)
            assert hooked(m), (register, target)
            h.remove()
            assert not hooked(m)
