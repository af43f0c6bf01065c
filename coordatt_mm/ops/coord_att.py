"""Fused Coordinate Attention: the compiled kernels, their autograd functions, the fallbacks.

The extension is compiled by the set-up (``setup.py``; ``COORDATT_WITH_OPS=0`` skips it). It
serves float32/float64 CPU tensors in NCHW or channels-last layout outside tracing, scripting,
ONNX export, ``torch.compile`` (those need ATen ops they can see) and CPU autocast (whose
lower-precision products the plain form would give); everything else, and any build that did
not load, takes the PyTorch ops below, on any device. ``COORDATT_KERNELS`` (one of
:func:`kernel_builds`) asks for narrower kernels than the widest the CPU runs; any other value
is an error at the kernels' first use.

Autocast: pooling and gating are not autocast operators (they keep their inputs' dtype, as
``mean`` and ``*`` do); :func:`gate_then_conv` behaves as ``nn.Conv2d`` does, computing in the
autocast dtype of the tensors' device (float16 or bfloat16, CUDA or CPU), its backward in that
same dtype, and handing parameters their gradients in their own dtype.
"""
import contextlib
import os
from typing import Iterator, List, Optional, Tuple

import torch
import torch.nn.functional as F
from torch.autograd.function import once_differentiable

ABI_VERSION = 2  # the extension's ABI_VERSION this code was written for

try:
    from coordatt_mm.ops import _ext
except ImportError as e:  # not built, or built against another torch
    _ext, _LOAD_ERROR = None, f'{type(e).__name__}: {e}'
else:
    _LOAD_ERROR = None
    if getattr(_ext, 'ABI_VERSION', None) != ABI_VERSION:
        _ext, _LOAD_ERROR = None, (f'coordatt_mm/ops/_ext was built from other sources (ABI '
                                   f'{getattr(_ext, "ABI_VERSION", None)}, expected '
                                   f'{ABI_VERSION}); rebuild it with `make setup`')


def fused_available() -> bool:
    """Whether the compiled kernels loaded."""
    return _ext is not None


def kernel_builds() -> List[str]:
    """The builds of the fused kernels this CPU runs ('default', 'avx2', 'avx512'), narrowest
    first; the widest is in use unless ``COORDATT_KERNELS`` asks for less."""
    return list(_ext.capabilities()) if _ext is not None else []


_kernels_setting_checked = False


def check_kernels_setting() -> bool:
    """Raise a ``RuntimeError`` where ``COORDATT_KERNELS`` names a build that this CPU does not
    run (the extension itself would quietly take the widest); True otherwise. Checked at the
    first use of the kernels, so that commands that never run them (``--help``) start as
    before."""
    global _kernels_setting_checked
    asked = os.environ.get('COORDATT_KERNELS', '')
    if asked and _ext is not None and asked not in _ext.capabilities():
        raise RuntimeError(
            f"COORDATT_KERNELS={asked!r}: this CPU runs the fused CoordAtt kernel builds "
            f"{', '.join(map(repr, _ext.capabilities()))}; set one of them, or unset it")
    _kernels_setting_checked = True
    return True


def kernel_build() -> Optional[str]:
    """The build of the fused kernels in use (None without the operator)."""
    if _ext is None:
        return None
    check_kernels_setting()
    return _ext.capability()


@contextlib.contextmanager
def using_kernels(build: str) -> Iterator[None]:
    """Run the fused kernels of ``build`` (one of :func:`kernel_builds`) inside the block."""
    previous = _ext.set_capability(build)
    try:
        yield
    finally:
        _ext.set_capability(previous)


def fused_status() -> str:
    """One line: whether the fused kernels loaded, and which CPU kernels they use."""
    if _ext is None:
        return f'not available ({_LOAD_ERROR})'
    return f'available ({kernel_build()} kernels)'


_DTYPES = (torch.float32, torch.float64)


def _tracing() -> bool:
    # ONNX export traces (torch.jit) or compiles (dynamo); both need ATen ops they can see
    return torch.jit.is_tracing() or torch.compiler.is_compiling() or torch.jit.is_scripting()


def fused_usable(x: torch.Tensor) -> bool:
    """Whether ``x`` can go through the compiled kernels (CPU, float32/64, 4-d, not traced,
    not under CPU autocast). The first such tensor checks ``COORDATT_KERNELS``."""
    return (_ext is not None and not _tracing() and x.is_cpu and x.dtype in _DTYPES
            and x.dim() == 4 and x.numel() > 0 and not torch.is_autocast_enabled('cpu')
            and (_kernels_setting_checked or check_kernels_setting()))


def autocast_dtype(device_type: str) -> Optional[torch.dtype]:
    """The autocast dtype in force for ``device_type`` ('cpu', 'cuda', ...), or None."""
    if not torch.amp.is_autocast_available(device_type):
        return None
    if not torch.is_autocast_enabled(device_type):
        return None
    return torch.get_autocast_dtype(device_type)


class _CoordPool(torch.autograd.Function):
    """Row means then column means of x in one pass: (N, C, H + W)."""

    @staticmethod
    def forward(ctx, x):
        ctx.save_for_backward(x)  # for its shape and layout only; x is kept alive anyway
        return _ext.coord_pool(x)

    @staticmethod
    @once_differentiable
    def backward(ctx, grad_z):
        x, = ctx.saved_tensors
        return _ext.coord_pool_backward(grad_z, x)


def coord_pool(x: torch.Tensor) -> torch.Tensor:
    """CA's descriptors ``cat([x.mean(3), x.mean(2)], 2)`` (N, C, H + W), one pass over x on
    the fused path."""
    if fused_usable(x):
        return _CoordPool.apply(x)
    return torch.cat([x.mean(3), x.mean(2)], dim=2)


def _fused_gate(x, a_h, a_w) -> bool:
    return fused_usable(x) and a_h.dtype == a_w.dtype == x.dtype


def _gate(x, a_h, a_w):
    """x * a_w * a_h, outside autograd."""
    if _fused_gate(x, a_h, a_w):
        return _ext.coord_gate(x, a_h, a_w, False)
    return x * a_w.unsqueeze(2) * a_h.unsqueeze(3)


def _gate_backward(g, x, a_h, a_w):
    """(grad_x, grad_a_h, grad_a_w) of x * a_w * a_h from x and the gates alone."""
    if _fused_gate(x, a_h, a_w):
        return _ext.coord_gate_backward(g, x, a_h, a_w)
    a_h4, a_w4 = a_h.unsqueeze(3), a_w.unsqueeze(2)
    gxx = g * x
    return g * a_w4 * a_h4, (gxx * a_w4).sum(3), (gxx * a_h4).sum(2)


def _needed(ctx, grads):
    return tuple(g if need else None for g, need in zip(grads, ctx.needs_input_grad))


class _CoordGate(torch.autograd.Function):
    """out = x * a_w * a_h (a_h: N,C,H; a_w: N,C,W) keeping only x and the gates for the
    backward; the fused kernels where x can take them, ATen ops elsewhere (CUDA, half)."""

    @staticmethod
    def forward(ctx, x, a_h, a_w):
        ctx.save_for_backward(x, a_h, a_w)
        return _gate(x, a_h, a_w)

    @staticmethod
    @once_differentiable
    def backward(ctx, grad_out):
        return _needed(ctx, _gate_backward(grad_out, *ctx.saved_tensors))


def coord_gate(x: torch.Tensor, a_h: torch.Tensor, a_w: torch.Tensor) -> torch.Tensor:
    """``x * a_w * a_h`` with ``a_h`` (N, C, H) and ``a_w`` (N, C, W) the row and column gates.

    With autograd recording, the backward keeps x and the gates but not ``x * a_w`` (one
    full-size tensor less per layer); traced graphs get the plain products.
    """
    if torch.is_grad_enabled() and not _tracing():
        return _CoordGate.apply(x, a_h, a_w)
    return _gate(x, a_h, a_w)


class _GateConv(torch.autograd.Function):
    """conv(x * a_w * a_h) keeping x and the gates but not the gated tensor: the backward
    recomputes it (one pass) for the convolution's weight gradient. All inputs share one
    dtype and autocast is off inside (:func:`gate_then_conv` casts them, as autocast casts a
    convolution's), so that the backward's convolution gradients see one dtype."""

    @staticmethod
    def forward(ctx, x, a_h, a_w, weight, bias, stride, padding, dilation, groups):
        ctx.conv = (stride, padding, dilation, groups)
        ctx.save_for_backward(x, a_h, a_w, weight)
        ctx.has_bias = bias is not None
        return F.conv2d(_gate(x, a_h, a_w), weight, bias, stride, padding, dilation, groups)

    @staticmethod
    @once_differentiable
    def backward(ctx, grad_y):
        x, a_h, a_w, weight = ctx.saved_tensors
        stride, padding, dilation, groups = ctx.conv
        need = ctx.needs_input_grad
        grad_gated, grad_w, grad_b = torch.ops.aten.convolution_backward(
            grad_y, _gate(x, a_h, a_w), weight, [weight.shape[0]] if ctx.has_bias else None,
            stride, padding, dilation, False, [0, 0], groups, [any(need[:3]), need[3], need[4]])
        gates = _gate_backward(grad_gated, x, a_h, a_w) if any(need[:3]) else (None,) * 3
        return _needed(ctx, gates + (grad_w, grad_b, None, None, None, None))


def gate_then_conv(x: torch.Tensor, a_h: torch.Tensor, a_w: torch.Tensor,
                   conv: torch.nn.Conv2d) -> torch.Tensor:
    """``conv(x * a_w * a_h)``; with autograd recording, the gated tensor (which a plain conv
    would keep for its weight gradient) is recomputed in the backward instead of stored.

    Under autocast the gating and the convolution run in the autocast dtype, forward and
    backward, and the weight and bias get float gradients through the casts, as with a plain
    ``nn.Conv2d`` under autocast."""
    if not torch.is_grad_enabled() or _tracing():
        return conv(coord_gate(x, a_h, a_w))
    weight, bias = conv.weight, conv.bias
    device_type = x.device.type
    dtype = autocast_dtype(device_type)
    if dtype is None:
        return _GateConv.apply(x, a_h, a_w, weight, bias, conv.stride, conv.padding,
                               conv.dilation, conv.groups)
    x, a_h, a_w, weight = (t.to(dtype) for t in (x, a_h, a_w, weight))
    bias = None if bias is None else bias.to(dtype)
    with torch.autocast(device_type, enabled=False):
        return _GateConv.apply(x, a_h, a_w, weight, bias, conv.stride, conv.padding,
                               conv.dilation, conv.groups)


def coord_att_eval(x: torch.Tensor, weights: Tuple[torch.Tensor, ...], act: int,
                   inplace: bool, prologue: Optional[tuple] = None) -> Optional[torch.Tensor]:
    """The whole eval-mode layer in one call, or None where ``x`` cannot take the fused path.

    ``weights``: (w1, b1, wth, bh, wtw, bw) as :meth:`CoordAtt._eval_args` makes them;
    ``act``: the activation's code (0 identity, 1 ReLU, 2 ReLU6, 3 h-swish); ``prologue``:
    (scale, shift, act code 0-2): CA then applies to ``act(x * scale[c] + shift[c])``, computed
    where the kernels read x.
    """
    if not fused_usable(x) or weights[0].dtype != x.dtype:
        return None
    # a strided x (neither layout) is copied by the kernel: then there is no "in place"
    if prologue is None:
        return _ext.coord_att_eval(x, *weights, act, inplace)
    scale, shift, pro_act = prologue
    if scale.dtype != x.dtype:
        return None
    return _ext.coord_att_eval(x, *weights, act, inplace, scale, shift, pro_act)
