import pytest
import torch
from mmdet.models.backbones import MobileNetV2 as MMDetMobileNetV2
from torch.nn.modules.batchnorm import _BatchNorm

from coordatt_mm import MobileNetV2CA

OS8 = dict(strides=(1, 2, 2, 1, 1, 1, 1), dilations=(1, 1, 1, 2, 2, 4, 4))
OS16 = dict(strides=(1, 2, 2, 2, 1, 1, 1), dilations=(1, 1, 1, 1, 1, 2, 2))


def n_params(m):
    return sum(p.numel() for p in m.parameters())


def test_param_count_with_ca_is_released_classifier_minus_head():
    assert n_params(MobileNetV2CA()) == 3_950_648 - 1_281_000 == 2_669_648


@pytest.mark.parametrize('width,classifier_total', [(0.5, 2_095_568), (0.75, 2_891_631),
                                                    (1.0, 3_950_648), (1.4, 6_958_700)])
def test_param_counts_per_width(width, classifier_total):
    m = MobileNetV2CA(widen_factor=width)
    head = m.conv2.conv.out_channels
    assert n_params(m) + head * 1000 + 1000 == classifier_total
    plain = MobileNetV2CA(widen_factor=width, attention=None)
    assert n_params(plain) == n_params(MMDetMobileNetV2(widen_factor=width))


@pytest.mark.parametrize('kwargs,out_indices,size,expect', [
    ({}, (4, 7), 320, [(96, 16), (1280, 32)]),
    (OS8, (1, 2, 4, 6), 256, [(24, 4), (32, 8), (96, 8), (320, 8)]),
    (OS16, (1, 2, 4, 6), 256, [(24, 4), (32, 8), (96, 16), (320, 16)]),
])
def test_output_channels_and_strides(kwargs, out_indices, size, expect):
    m = MobileNetV2CA(out_indices=out_indices, **kwargs).eval()
    outs = m(torch.randn(1, 3, size, size))
    assert [(o.shape[1], size // o.shape[2]) for o in outs] == expect


def test_without_final_conv():
    m = MobileNetV2CA(out_indices=(1, 2, 4, 6), with_final_conv=False)
    assert m.conv2 is None
    assert n_params(m) == 2_669_648 - (320 * 1280 + 2 * 1280)
    with pytest.raises(ValueError, match='out_indices'):
        MobileNetV2CA(out_indices=(7,), with_final_conv=False)


def _stage_state(model, stage_names):
    """Per stage: (requires_grad flags, BN training flags) -- comparable across naming."""
    out = {}
    for name in stage_names:
        mod = getattr(model, name)
        out[name] = ([p.requires_grad for p in mod.parameters()],
                     [m.training for m in mod.modules() if isinstance(m, _BatchNorm)])
    return out


STAGES = ['conv1'] + [f'layer{i}' for i in range(1, 8)] + ['conv2']


@pytest.mark.parametrize('frozen', [-1, 0, 1, 4, 7])
@pytest.mark.parametrize('norm_eval', [False, True])
def test_frozen_stages_and_norm_eval_as_mmdet(frozen, norm_eval):
    ours = MobileNetV2CA(attention=None, frozen_stages=frozen, norm_eval=norm_eval)
    ref = MMDetMobileNetV2(frozen_stages=frozen, norm_eval=norm_eval)
    ours.train()
    ref.train()
    got, want = _stage_state(ours, STAGES), _stage_state(ref, STAGES)
    if frozen >= 0 and not norm_eval:
        # deliberate difference: mmdet freezes the stem's parameters but leaves its BN
        # updating running statistics; ours puts a frozen stem in eval like frozen layers
        assert got['conv1'] == (want['conv1'][0], [False])
        got.pop('conv1'), want.pop('conv1')
    assert got == want
    # and the CA variant freezes its attention with its stage
    ca = MobileNetV2CA(frozen_stages=frozen, norm_eval=norm_eval).train()
    for i in range(1, 8):
        layer = getattr(ca, f'layer{i}')
        assert all(p.requires_grad == (i > frozen) for p in layer.parameters())
        assert all(m.training == (i > frozen and not norm_eval)
                   for m in layer.modules() if isinstance(m, _BatchNorm))


def test_with_cp_same_result_and_checkpoints_like_mmdet(monkeypatch):
    import torch.utils.checkpoint as cp
    calls = []
    real = cp.checkpoint

    def counting(fn, *args, **kwargs):
        calls.append(fn)
        return real(fn, *args, **kwargs)

    monkeypatch.setattr(cp, 'checkpoint', counting)
    torch.manual_seed(0)
    m = MobileNetV2CA(out_indices=(7,))
    m_cp = MobileNetV2CA(out_indices=(7,), with_cp=True)
    m_cp.load_state_dict(m.state_dict())
    x = torch.randn(2, 3, 64, 64, requires_grad=True)
    y, y_cp = m(x)[0], m_cp(x)[0]
    n_ours = len(calls)
    torch.testing.assert_close(y, y_cp)
    y.sum().backward()
    g = [p.grad.clone() for p in m.parameters()]
    y_cp.sum().backward()
    for a, p in zip(g, m_cp.parameters()):
        torch.testing.assert_close(a, p.grad, atol=1e-5, rtol=1e-4)
    calls.clear()
    MMDetMobileNetV2(out_indices=(7,), with_cp=True)(x)
    assert n_ours == len(calls) == 17  # one checkpointed segment per inverted residual block


def test_bad_arguments_fail_clearly():
    with pytest.raises(ValueError, match='strides'):
        MobileNetV2CA(strides=(1, 2, 2))
    with pytest.raises(ValueError, match='frozen_stages'):
        MobileNetV2CA(frozen_stages=9)
