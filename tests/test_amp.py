"""Mixed precision: the training step of every detection and segmentation config, of the
trained demo models, of each backbone alone, of one block and of the CA layer under
autocast, against the float32 step.

The tests run CPU autocast (the machine's); the CUDA AMP path (``--amp``, mmengine's
``AmpOptimWrapper``) goes through the same code with CUDA's autocast in place of the CPU's.
float16 runs on the detection configs (SSDLite at 128², which its priors and neck accept), one
segmentation config, the backbones, the block and the layer; bfloat16 on everything. The default
run keeps SSDLite + CA (MobileNetV2, MobileNeXt; COCO) and DeepLabV3 + CA (VOC OS16, Cityscapes
OS8); the rest, the ResNet-50 ones among them, is in the slow set.

How close is close. bfloat16 keeps 8 significant bits (eps 2^-8), float16 11 (eps 2^-11);
float16 scales the loss as AMP's dynamic loss scaler does (halved while a gradient overflows).
- Every config, randomly initialised, training form (BatchNorm on batch statistics): a finite
  gradient for every trainable parameter and a loss within 1% of float32's (a mean over many
  terms; measured within 0.3%). Their gradients are not compared: over 2 images, batch
  statistics let a random network amplify rounding stage by stage (plain MobileNetV2 in
  bfloat16: 0.7% relative difference after stage 1, 42% after stage 7; mmdet's own SSDLite
  shows the same), so no tolerance could tell a bug from rounding there.
- The demo's trained SSDLite and DeepLabV3 (CA), BatchNorm on its trained statistics:
  gradients against float32 with cosine similarity >= 0.9, over all parameters and over the
  CA layers' (measured 0.94-0.998: rounding through some 60 layers; bfloat16 on DeepLabV3 is
  the lowest).
- Each backbone alone, randomly initialised: as the configs.
- One block and the CA layer, in the training form and with BatchNorm frozen: CA's gradients
  within 8 eps relative (measured <= 3), the block's all together within 80 eps (measured
  <= 38 for float16: its convolutions' weight gradients sum some 300 low-precision products);
  the fused training path and the PyTorch-only one within 4 eps of each other (measured 1.2).
"""
import copy

import pytest
import torch
from torch.nn.modules.batchnorm import _BatchNorm

from coordatt_mm import CoordAtt, MobileNetV2CA, MobileNeXtCA
from coordatt_mm.apis.build import build_model, quiet_logs

from model_batches import CONFIGS, batch_for, build, total_loss

DENSE = [p for p in CONFIGS if p.parent.name in ('ssdlite', 'deeplabv3', 'retinanet')
         or p.name.startswith(('ssdlite', 'deeplabv3'))]
EPS = {torch.bfloat16: 2.0 ** -8, torch.float16: 2.0 ** -11}
SSD_SIZE = 128


def rel(a: torch.Tensor, b: torch.Tensor) -> float:
    """||a - b|| / ||b||, in float64."""
    a, b = a.double(), b.double()
    return ((a - b).norm() / b.norm().clamp_min(1e-30)).item()


def cosine(a: torch.Tensor, b: torch.Tensor) -> float:
    return torch.nn.functional.cosine_similarity(a.double(), b.double(), dim=0).item()


def amp_step(model, forward, dtype=None):
    """(loss, {name: gradient}) of one forward + backward of ``forward(model)`` under CPU
    autocast in ``dtype`` (None: float32), on a copy of ``model``; float16 scales the loss
    as AMP's dynamic loss scaler does (from 2^10 here: the scaler's 2^16 only costs retries)."""
    scale = 2.0 ** 10 if dtype == torch.float16 else 1.0
    while True:
        m = copy.deepcopy(model)
        torch.manual_seed(0)  # the same dropout masks in every run
        with torch.autocast('cpu', dtype=dtype or torch.bfloat16, enabled=dtype is not None):
            loss = forward(m)
        (loss * scale).backward()
        grads = {n: p.grad for n, p in m.named_parameters() if p.requires_grad}
        finite = all(g is not None and torch.isfinite(g).all() for g in grads.values())
        if finite or scale <= 1.0:
            return float(loss), {n: None if g is None else g.double() / scale
                                 for n, g in grads.items()}
        scale /= 2


def checked_step(model, forward, dtype, float32_step=None):
    """The step under autocast against float32's (``float32_step``: its result, when already
    run): every gradient there and finite, the loss within 1%. Returns both steps'
    gradients."""
    loss, grads = amp_step(model, forward, dtype)
    loss32, grads32 = float32_step or amp_step(model, forward)
    missing = [n for n, g in grads.items() if g is None]
    assert not missing, f'{dtype}: no gradient for {missing[:5]}'
    bad = [n for n, g in grads.items() if not torch.isfinite(g).all()]
    assert not bad, f'{dtype}: non-finite gradients of {bad[:5]}'
    assert abs(loss - loss32) <= 0.01 * abs(loss32), (dtype, loss, loss32)
    return grads, grads32


def groups(model, grads32):
    """Names of the parameters with a non-zero float32 gradient: all, and the CA layers'."""
    ca = {f'{prefix}.{n}'.lstrip('.') for prefix, m in model.named_modules()
          if isinstance(m, CoordAtt) for n, _ in m.named_parameters()}
    names = [n for n, g in grads32.items() if g is not None and g.abs().max() > 0]
    return names, [n for n in names if n in ca]


def flat(grads: dict, names) -> torch.Tensor:
    return torch.cat([grads[n].flatten() for n in names])


def loss_of(data):
    def forward(m):
        m.train()
        return total_loss(m(**data, mode='loss'))
    return forward


# The default run keeps the CA configs named here (the other attention modules' layers are
# tested under autocast in tests/test_attention_zoo.py); the rest is slow. float16 runs on the
# detection configs and on one segmentation config (the paper's OS16 one).
FP16_SEG = 'deeplabv3_mobilenetv2-ca-d16_4xb4-20k_voc12aug-512x512.py'
DEFAULT_RUN = {'ssdlite_mobilenetv2-ca_8xb24-600e_coco.py',
               'ssdlite_mobilenext-ca_8xb24-600e_coco.py', FP16_SEG,
               'deeplabv3_mobilenetv2-ca-d8_4xb2-80k_cityscapes-512x1024.py'}
assert DEFAULT_RUN <= {p.name for p in DENSE}  # a misspelt name would go slow unseen


@pytest.mark.parametrize('path', [p if p.name in DEFAULT_RUN else
                                  pytest.param(p, marks=pytest.mark.slow) for p in DENSE],
                         ids=lambda p: p.name)
def test_config_training_step_under_autocast(path):
    torch.manual_seed(0)
    cfg, model = build(path, init=True)
    forward = loss_of(model.data_preprocessor(batch_for(cfg, model, ssd_size=SSD_SIZE), True))
    float32_step = amp_step(model, forward)
    fp16 = cfg.default_scope == 'mmdet' or path.name == FP16_SEG
    for dtype in [torch.bfloat16] + [torch.float16] * fp16:
        checked_step(model, forward, dtype, float32_step)


@pytest.mark.parametrize('task', ['det', 'seg'])
def test_trained_demo_models_gradients_under_autocast(demo, task):
    cfg, model = build_model(demo[task]['config'], demo[task]['checkpoint'])
    data = model.data_preprocessor(batch_for(cfg, model), True)

    def forward(m):
        frozen_bn(m.train())  # the trained statistics
        return total_loss(m(**data, mode='loss'))
    float32_step = amp_step(model, forward)
    for dtype in [torch.bfloat16] + [torch.float16] * (task == 'det'):
        grads, grads32 = checked_step(model, forward, dtype, float32_step)
        names, ca = groups(model, grads32)
        assert ca
        for group in (names, ca):
            c = cosine(flat(grads, group), flat(grads32, group))
            assert c >= 0.9, (dtype, len(group), c)


def frozen_bn(model):
    for m in model.modules():
        if isinstance(m, _BatchNorm):
            m.eval()
    return model


def regression(x, outputs=lambda m, x: m(x)):
    """forward(m): mean squared distance of m's outputs on x to fixed random targets."""
    targets = []

    def forward(m):
        outs = outputs(m, x)
        outs = outs if isinstance(outs, (tuple, list)) else [outs]
        if not targets:
            g = torch.Generator().manual_seed(1)
            targets.extend(torch.randn(o.shape, generator=g) for o in outs)
        return sum(((o.float() - t) ** 2).mean() for o, t in zip(outs, targets))
    return forward


def within_eps(grads, grads32, model, dtype, bound_all, bound_ca):
    names, ca = groups(model, grads32)
    assert ca
    for group, bound in ((names, bound_all), (ca, bound_ca)):
        r = rel(flat(grads, group), flat(grads32, group)) / EPS[dtype]
        assert r <= bound, (dtype, len(group), f'{r:.1f} eps')


@pytest.mark.parametrize('cls', [MobileNetV2CA, MobileNeXtCA], ids=lambda c: c.__name__)
def test_backbone_alone_under_autocast(cls):
    torch.manual_seed(0)
    model = cls(out_indices=(2, 4))
    with quiet_logs():
        model.init_weights()
    forward = regression(torch.randn(2, 3, 96, 96))
    float32_step = amp_step(model, lambda m: forward(m.train()))
    for dtype in (torch.bfloat16, torch.float16):
        checked_step(model, lambda m: forward(m.train()), dtype, float32_step)


@pytest.mark.parametrize('dtype', [torch.bfloat16, torch.float16], ids=str)
@pytest.mark.parametrize('part', ['block', 'layer'])
def test_block_and_layer_under_autocast(part, dtype):
    torch.manual_seed(0)
    model = MobileNetV2CA(out_indices=(3,))
    with quiet_logs():
        model.init_weights()
    block = model.layer3[1]  # expand -> dw -> CA -> project, with a residual
    if part == 'layer':
        block = block.attention
    x = torch.randn(2, block.channels if part == 'layer' else 32, 14, 11)
    forward = regression(x)
    for mode in ('train', 'frozen'):
        def f(m, mode=mode):
            m.train()
            if mode == 'frozen':
                frozen_bn(m)
            return forward(m)
        grads, grads32 = checked_step(block, f, dtype)
        within_eps(grads, grads32, block, dtype, 80, 8)
    # the fused training path (block) and the PyTorch-only path agree under autocast too
    plain = copy.deepcopy(block)
    for m in plain.modules():
        if isinstance(m, CoordAtt):
            m.use_ops = False
    _, g_fused = amp_step(block, lambda m: (m.train(), forward(m))[1], dtype)
    _, g_plain = amp_step(plain, lambda m: (m.train(), forward(m))[1], dtype)
    names, _ = groups(block, g_plain)
    assert rel(flat(g_fused, names), flat(g_plain, names)) <= 4 * EPS[dtype]
