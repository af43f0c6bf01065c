"""The ``coordatt`` check: CoordAtt's training step and the MobileNetV2CA backbone's eval forward
on CUDA against the CPU in float64.

Bounds (relative, the whole tensor): float32 1e-5, with TF32 off (cuDNN's convolutions use it by
default, with a 10-bit mantissa); float16 and bfloat16 autocast 8 of their eps (2^-11, 2^-8);
the backbone in float32 1e-4.
"""
import contextlib
import copy
from typing import Iterator, Optional, Tuple

import torch

from coordatt_cli.gpu_check.compare import close, coordatt_agrees

AUTOCAST_BOUNDS = {None: 1e-5, torch.float16: 8 * 2.0 ** -11, torch.bfloat16: 8 * 2.0 ** -8}


@contextlib.contextmanager
def ieee_float32() -> Iterator[None]:
    """float32 convolutions and matrix products without TF32 inside the block."""
    saved = torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32
    torch.backends.cudnn.allow_tf32 = torch.backends.cuda.matmul.allow_tf32 = False
    try:
        yield
    finally:
        torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32 = saved


def training_step(layer: torch.nn.Module, x: torch.Tensor, grad: torch.Tensor,
                  autocast: Optional[torch.dtype] = None) -> Tuple[torch.Tensor, ...]:
    """(output, input gradient, parameters' gradients as one vector) of one training forward
    and backward of a copy of ``layer`` on ``x``'s device, the output's gradient ``grad``."""
    m = copy.deepcopy(layer).to(x.device).train()
    xg = x.clone().requires_grad_()
    with torch.autocast(x.device.type, dtype=autocast or torch.float16,
                        enabled=autocast is not None):
        y = m(xg)
    y.backward(grad.to(device=x.device, dtype=y.dtype))
    return (y.detach(), xg.grad, torch.cat([p.grad.flatten() for p in m.parameters()]))


def random_layer(channels: int = 96):
    """A CoordAtt with random running statistics (its BatchNorm is then no identity)."""
    from coordatt_mm import CoordAtt
    torch.manual_seed(0)
    layer = CoordAtt(channels)
    with torch.no_grad():
        layer.norm.running_mean.normal_(0, 0.3)
        layer.norm.running_var.uniform_(0.5, 1.5)
    return layer


def check_coordatt(device: torch.device) -> str:
    """The table's figure for CoordAtt and the backbone on ``device``."""
    from coordatt_mm import MobileNetV2CA
    from coordatt_mm.apis.build import quiet_logs
    layer = random_layer()
    g = torch.Generator().manual_seed(1)
    x = torch.randn(4, 96, 40, 40, generator=g)
    grad = torch.randn(x.shape, generator=g)
    ref = training_step(copy.deepcopy(layer).double(), x.double(), grad.double())
    figures = []
    for autocast, bound in AUTOCAST_BOUNDS.items():
        name = 'float32' if autocast is None else str(autocast).split('.')[1]
        with ieee_float32():
            got = training_step(layer, x.to(device), grad, autocast)
        figures.append(f'{name} {coordatt_agrees(name, got, ref, bound):.1e}')
    torch.manual_seed(0)
    net = MobileNetV2CA(out_indices=(2, 4, 7))
    with quiet_logs():
        net.init_weights()
    images = torch.randn(2, 3, 224, 224, generator=g)
    with torch.no_grad(), ieee_float32():
        refs = copy.deepcopy(net).double().eval()(images.double())
        outs = net.to(device).eval()(images.to(device))
    err = max(close(f'MobileNetV2CA output {i}', o, r, 1e-4)
              for i, (o, r) in enumerate(zip(outs, refs)))
    return (f'CA training step on {device} vs the CPU in float64 (relative; bounds float32 1e-5, '
            f'half types 8 eps): {", ".join(figures)}; backbone eval {err:.1e}')
