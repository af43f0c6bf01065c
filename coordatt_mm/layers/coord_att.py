"""Coordinate Attention.

Hou, Zhou, Feng. "Coordinate Attention for Efficient Mobile Network Design", CVPR 2021.
Functionally identical to the block of the authors' released MobileNetV2 + CA classifier.
"""
from typing import Optional, Tuple, Union

import torch
import torch.nn as nn
import torch.nn.functional as F
from mmcv.cnn import build_activation_layer, build_norm_layer
from mmcv.cnn.bricks.hswish import HSwish
from torch.nn.modules.batchnorm import _BatchNorm

from coordatt_mm import ops
from coordatt_mm.layers.channels import resolve_channels
from coordatt_mm.layers.hooks import hooked
from coordatt_mm.registry import register_model

# activations the fused eval kernels apply themselves (codes of coordatt_mm.ops): after CA's
# shared transform, and before CA (a block's own, see forward_after_norm_act)
_FUSED_ACTIVATIONS = {nn.Identity: 0, nn.ReLU: 1, nn.ReLU6: 2, nn.Hardswish: 3, HSwish: 3}
_PROLOGUE_ACTIVATIONS = {type(None): 0, nn.Identity: 0, nn.ReLU: 1, nn.ReLU6: 2}


def _tensor_states(modules) -> Union[list, object]:
    """Versions and addresses of every parameter and buffer of ``modules``: a cache built from
    them is valid while this is unchanged (in-place updates bump a version, new tensors have
    new addresses). Read through the modules' own dicts: this runs on every eval call."""
    tensors = []
    for m in modules:
        tensors += m._parameters.values()
        tensors += m._buffers.values()
    tensors = [t for t in tensors if t is not None]
    try:
        return [t._version for t in tensors] + [t.data_ptr() for t in tensors]
    except RuntimeError:  # inference tensors keep no version: a key that never matches
        return object()


@register_model()
class CoordAtt(nn.Module):
    """Coordinate Attention: direction-aware gates from pooling along H and along W.

    Pools the input along W (a per-row descriptor) and along H (per-column), encodes both
    with one shared 1x1 conv + norm + activation, then makes one sigmoid gate per row and
    one per column with two 1x1 convs: ``out = x * a_w * a_h``.

    Training runs the released computation (one encoder call on the concatenated H+W
    positions, so BN statistics are the released model's); on the CPU the pooling and the
    gating are fused kernels of :mod:`coordatt_mm.ops` (one pass each), and everywhere the
    gating's backward keeps x and the two gates but not ``x * a_w``. In eval mode with a
    BatchNorm (frozen statistics act per position) the two paths never mix, so the fast form is
    used automatically: BN folded into the shared conv (cached until a weight changes), and on
    float CPU tensors the whole layer is one compiled call (pool, the three transforms, gate);
    elsewhere (CUDA, half, tracing, export, ``torch.compile``, no compiled ops) the row and
    column means go through the 1x1 convs as matrix products and the gating is done in place.
    Other norms (GN mixes positions) keep the concat form. Outputs agree to float precision
    (tested <= 1e-5).

    Usable as an mmcv plugin (``build_plugin_layer`` passes ``in_channels``), e.g. after the
    3x3 conv of mmdet's / mmseg's ResNet bottlenecks:
    ``plugins=[dict(cfg=dict(type='CoordAtt'), position='after_conv2')]``.

    Args:
        in_channels: input (= output) channels C (``channels`` is accepted as well).
        reduction: channel reduction r; the bottleneck has ``max(min_channels, C // r)``.
        min_channels: floor of the bottleneck width (8 in the paper).
        norm_cfg: norm after the shared conv (BatchNorm in the paper).
        act_cfg: activation after the norm (h-swish in the paper).
        inplace: in the fast eval form, gate ``x`` itself instead of a copy (as
            ``nn.ReLU(inplace=True)``); saves a full-size allocation when the caller owns ``x``,
            as the backbones' blocks do.
        use_ops: take the compiled kernels where they apply (False: PyTorch ops only, the
            same results; for comparisons).
    """

    def __init__(self,
                 in_channels: Optional[int] = None,
                 reduction: int = 32,
                 min_channels: int = 8,
                 norm_cfg: Optional[dict] = None,
                 act_cfg: Optional[dict] = None,
                 inplace: bool = False,
                 channels: Optional[int] = None,
                 use_ops: bool = True) -> None:
        super().__init__()
        channels = resolve_channels('CoordAtt', in_channels, channels)
        self.inplace = inplace
        self.use_ops = use_ops
        mip = max(min_channels, channels // reduction)
        self.channels = channels
        self.mip = mip
        self.conv_reduce = nn.Conv2d(channels, mip, 1)
        self.norm = build_norm_layer(norm_cfg or dict(type='BN'), mip)[1]
        self.act = build_activation_layer(act_cfg or dict(type='HSwish'))
        self.conv_h = nn.Conv2d(mip, channels, 1)
        self.conv_w = nn.Conv2d(mip, channels, 1)
        self._eval_cache = self._prologue_cache = self._export_cache = None

    # CA's ONNX graph (set by the exporter): 'pool', 'product', 'broadcast' or 'integer'
    # (_forward_export)
    export_form = 'pool'

    def _fast_eval(self) -> bool:
        # through _modules: this runs on every call, and Module.__getattr__ is slow
        return (not self.training and not torch.is_grad_enabled()
                and isinstance(self._modules['norm'], _BatchNorm))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # the fast eval form computes the sub-layers without calling them: not when a hook
        # waits for one of them
        if self._fast_eval() and not hooked(*self._modules.values()):
            return self._forward_fast(x, self.inplace)
        a_h, a_w = self._gates(x)
        return ops.coord_gate(x, a_h, a_w) if self.use_ops else \
            x * a_w.unsqueeze(2) * a_h.unsqueeze(3)

    def _gates(self, x: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
        """The training form's row gates (N,C,H) and column gates (N,C,W)."""
        h, w = x.shape[-2:]
        z = ops.coord_pool(x) if self.use_ops else torch.cat([x.mean(3), x.mean(2)], dim=2)
        y = self.act(self.norm(self.conv_reduce(z.unsqueeze(3))))  # z: N,C,H+W; y: N,mip,H+W,1
        y_h, y_w = y.split([h, w], dim=2)
        return self.conv_h(y_h).sigmoid().squeeze(3), self.conv_w(y_w).sigmoid().squeeze(3)

    def forward_then_conv(self, x: torch.Tensor, conv: nn.Conv2d) -> torch.Tensor:
        """``conv(self(x))``, for a block whose next layer is a conv. While autograd records
        (training), the gated tensor the conv would keep for its weight gradient is not
        stored but recomputed in the backward: one full-size tensor less per layer."""
        if not self.use_ops or not torch.is_grad_enabled():
            return conv(self(x))
        a_h, a_w = self._gates(x)
        return ops.gate_then_conv(x, a_h, a_w, conv)

    def forward_after_norm_act(self, x: torch.Tensor, norm: nn.Module,
                               act: Optional[nn.Module], inplace: bool = False) -> torch.Tensor:
        """``self(act(norm(x)))``, for a block that hands CA its depthwise conv output and
        has checked that no hook observes ``norm``, ``act``, this layer or its sub-layers.

        In the fused eval form, with ``norm`` a BatchNorm using running statistics and ``act``
        ReLU, ReLU6 or none, the folded ``norm`` and ``act`` are computed where the kernels'
        pooling and gating passes read ``x``: they cost no pass of their own. ``inplace``: the
        caller owns ``x`` (nothing else reads it), so the eval form may gate it in place.
        """
        pro_act = _PROLOGUE_ACTIVATIONS.get(type(act))
        act_code = _FUSED_ACTIVATIONS.get(type(self._modules['act']))
        if (pro_act is not None and act_code is not None and self.use_ops and self._fast_eval()
                and isinstance(norm, _BatchNorm) and not norm.training
                and norm.running_mean is not None and ops.fused_available()
                and not torch.compiler.is_compiling()):
            weights, prologue = self._eval_args(norm)
            out = ops.coord_att_eval(x, weights, act_code, inplace,
                                     prologue=prologue + (pro_act,))
            if out is not None:
                return out
        x = norm(x)
        x = x if act is None else act(x)
        return self._forward_fast(x, inplace) if self._fast_eval() else self(x)

    def _folded(self) -> tuple:
        """(w1, b1, wth, bh, wtw, bw): see :meth:`_eval_args`."""
        conv, bn = self.conv_reduce, self.norm
        scale = torch.rsqrt(bn.running_var + bn.eps)
        if bn.weight is not None:
            scale = scale * bn.weight
        bias = (conv.bias - bn.running_mean) * scale
        if bn.bias is not None:
            bias = bias + bn.bias
        return ((conv.weight.flatten(1) * scale[:, None]).contiguous(), bias.contiguous(),
                self.conv_h.weight.flatten(1).t().contiguous(), self.conv_h.bias.detach(),
                self.conv_w.weight.flatten(1).t().contiguous(), self.conv_w.bias.detach())

    def _eval_args(self, before: Optional[_BatchNorm] = None) -> Tuple[tuple, tuple]:
        """The eval form's weights: ``(w1, b1, wth, bh, wtw, bw)`` -- the shared conv with its
        BatchNorm folded in, (mip, C); its bias; the H and W convs' weights transposed to
        (mip, C) and their biases -- and, for a BatchNorm ``before`` CA, its ``(scale, shift)``.
        Each cached until a tensor it comes from changes."""
        mods = self._modules
        key = _tensor_states((mods['conv_reduce'], mods['norm'], mods['conv_h'], mods['conv_w']))
        if self._eval_cache is None or self._eval_cache[0] != key:
            self._eval_cache = (key, self._folded())
        if before is None:
            return self._eval_cache[1], ()
        key = (_tensor_states((before,)), id(before))
        if self._prologue_cache is None or self._prologue_cache[0] != key:
            scale = torch.rsqrt(before.running_var + before.eps)
            if before.weight is not None:
                scale = scale * before.weight
            shift = -before.running_mean * scale
            if before.bias is not None:
                shift = shift + before.bias
            # the module behind id() is kept with the cache, so the id is not reused
            self._prologue_cache = (key, (scale.contiguous(), shift.contiguous()), before)
        return self._eval_cache[1], self._prologue_cache[1]

    def _forward_fast(self, x: torch.Tensor, inplace: bool) -> torch.Tensor:
        act = _FUSED_ACTIVATIONS.get(type(self._modules['act']))
        if torch.compiler.is_compiling():  # no cache: inductor folds and fuses the arithmetic
            weights = self._folded()
        else:
            weights, _ = self._eval_args()
        if self.use_ops and act is not None:
            out = ops.coord_att_eval(x, weights, act, inplace)
            if out is not None:
                return out
        if torch.onnx.is_in_onnx_export():
            return self._forward_export(x, weights)
        w1, b1, wth, bh, wtw, bw = weights
        h = x.shape[2]
        if x.is_contiguous(memory_format=torch.channels_last) and not x.is_contiguous():
            # channels-last: work on the N,H,W,C view so that pooling, the products and the
            # gating all run along contiguous channels (NCHW-shaped gates would be strided)
            xt = x.permute(0, 2, 3, 1)
            y = self.act(F.linear(torch.cat([xt.mean(2), xt.mean(1)], dim=1), w1, b1))
            a_h = F.linear(y[:, :h], wth.t(), bh).sigmoid_().unsqueeze(2)  # N,H,1,C
            a_w = F.linear(y[:, h:], wtw.t(), bw).sigmoid_().unsqueeze(1)  # N,1,W,C
            out = xt.mul_(a_h) if inplace else torch.mul(xt, a_h)
            return out.mul_(a_w).permute(0, 3, 1, 2)  # N,C,H,W, channels-last
        # 1x1 convs act per position: on the N,C,H+W descriptors they are matrix products,
        # far cheaper to dispatch than conv2d on such thin tensors.
        z = torch.cat([x.mean(3), x.mean(2)], dim=2)  # N,C,H+W
        y = self.act(torch.matmul(w1, z).add_(b1[:, None]))
        a_h = torch.matmul(wth.t(), y[..., :h]).add_(bh[:, None]).sigmoid_().unsqueeze(3)
        a_w = torch.matmul(wtw.t(), y[..., h:]).add_(bw[:, None]).sigmoid_().unsqueeze(2)
        out = x.mul_(a_h) if inplace else torch.mul(x, a_h)  # a_h: N,C,H,1; a_w: N,C,1,W
        return out.mul_(a_w)

    def _forward_export(self, x: torch.Tensor, weights: tuple) -> torch.Tensor:
        """The eval form as an ONNX graph, in one of four forms (``export_form``), each
        measured fastest somewhere (docs/performance.md, deployed speed):

        - 'pool' (ONNX Runtime FP32): pooling as AveragePool windows, the transforms as 1x1
          convs with the bottleneck padded with zero channels to a multiple of 16 (ONNX
          Runtime's blocked convs need that), each gate expanded by a nearest Resize so that
          the products are same-shape Muls, all in ONNX Runtime's blocked layout (NCHWc; a
          broadcasting Mul would leave it: two full-size reorders per layer);
        - 'product' (OpenVINO FP32): the same pooling and transforms, the two gates multiplied
          into one full-size gate, then one product with the input;
        - 'broadcast' (any graph whose height and width are inputs, as the windows, kernels
          and scales of the others are the input's size): means and broadcasting products;
        - 'integer' (INT8 at a static size; :meth:`_forward_integer`): every operator one
          that ONNX Runtime runs on integers.
        """
        if self.export_form == 'integer':
            return self._forward_integer(x, weights)
        w1, b1, wh, bh, ww, bw = self._export_weights(weights)
        if self.export_form == 'broadcast':
            a_h = F.conv2d(self.act(F.conv2d(x.mean(3, keepdim=True), w1, b1)), wh, bh)
            a_w = F.conv2d(self.act(F.conv2d(x.mean(2, keepdim=True), w1, b1)), ww, bw)
            return x * a_w.sigmoid() * a_h.sigmoid()
        n, c, h, w = (int(v) for v in x.shape)  # static shapes, as the export specialises
        y_h = self.act(F.conv2d(F.avg_pool2d(x, (1, w)), w1, b1))  # N,mip',H,1
        y_w = self.act(F.conv2d(F.avg_pool2d(x, (h, 1)), w1, b1))  # N,mip',1,W
        a_h = F.conv2d(y_h, wh, bh).sigmoid()
        a_w = F.conv2d(y_w, ww, bw).sigmoid()
        if self.export_form == 'product':
            return x * (a_h * a_w)
        # constant integer scales: a Resize without shape arithmetic in the graph
        return (x * F.interpolate(a_w, scale_factor=(float(h), 1.0), mode='nearest')
                * F.interpolate(a_h, scale_factor=(1.0, float(w)), mode='nearest'))

    def _forward_integer(self, x: torch.Tensor, weights: tuple) -> torch.Tensor:
        """The 'integer' export form: every operator one that the runtimes' INT8 pipelines
        run on integers (ONNX Runtime: QLinearConv, QLinearMul, QLinearSigmoid; OpenVINO's
        low-precision convolutions and multiplies), for a static input size.

        - the row and column means as depthwise convolutions with (1, W) and (H, 1) kernels
          of weight 1/W and 1/H (a channel's weights are equal, so per-channel int8 holds
          them exactly);
        - the shared transform once per branch (in eval its BatchNorm is per-channel affine,
          so this equals the concatenated form), h-swish as ``t * clip(t / 6 + 1/2, 0, 1)``
          with the second factor a convolution of its own (weights / 6, bias / 6 + 1/2) whose
          clip an 8-bit range [0, 1] expresses; ReLU and ReLU6 as clips;
        - the sigmoid gates and one product per gate, broadcasting.
        """
        w1, b1, wth, bh, wtw, bw = weights
        n, c, h, w = (int(v) for v in x.shape)  # static shapes, as the export specialises
        mip = int(w1.shape[0])
        w1 = w1.view(mip, c, 1, 1)
        mean_w = F.conv2d(x, x.new_full((c, 1, 1, w), 1.0 / w), groups=c)  # N,C,H,1
        mean_h = F.conv2d(x, x.new_full((c, 1, h, 1), 1.0 / h), groups=c)  # N,C,1,W
        act = self._modules['act']

        def encode(m: torch.Tensor) -> torch.Tensor:
            t = F.conv2d(m, w1, b1)
            if isinstance(act, (nn.Hardswish, HSwish)):
                return t * F.conv2d(m, w1 / 6, b1 / 6 + 0.5).clamp(0, 1)
            return act(t)

        a_h = F.conv2d(encode(mean_w), wth.t().reshape(c, mip, 1, 1), bh).sigmoid()
        a_w = F.conv2d(encode(mean_h), wtw.t().reshape(c, mip, 1, 1), bw).sigmoid()
        return x * a_h * a_w

    def _export_weights(self, weights: tuple) -> tuple:
        """The eval weights as 1x1 conv kernels, mip padded to a multiple of 16; cached with
        them, so that an export after an eval call sees constants (initialisers ONNX Runtime
        can re-lay out), not the folding arithmetic."""
        cache = self._export_cache
        if cache is None or cache[0] is not weights:
            w1, b1, wth, bh, wtw, bw = weights
            mip, c = (int(v) for v in w1.shape)
            mp = mip + -mip % 16
            zeros = w1.new_zeros(mp - mip, c)
            conv = (torch.cat([w1, zeros]).view(mp, c, 1, 1), torch.cat([b1, zeros[:, 0]]),
                    torch.cat([wth, zeros]).t().reshape(c, mp, 1, 1), bh,
                    torch.cat([wtw, zeros]).t().reshape(c, mp, 1, 1), bw)
            self._export_cache = cache = (weights, conv)
        return cache[1]
