"""Compiled operators: the fused CPU kernels of Coordinate Attention.

A PyTorch C++ extension (``coordatt_mm/ops/csrc``) that the set-up builds, as mmcv builds its
ops. Everything works without it: :func:`fused_usable` says whether a tensor can take the fused
path, and :class:`~coordatt_mm.layers.CoordAtt` falls back to PyTorch ops otherwise.
"""
from coordatt_mm.ops.coord_att import (
    coord_att_eval,
    coord_gate,
    coord_pool,
    fused_available,
    fused_status,
    fused_usable,
    gate_then_conv,
    kernel_build,
    kernel_builds,
    using_kernels,
)

__all__ = ['coord_att_eval', 'coord_gate', 'coord_pool', 'fused_available', 'fused_status',
           'fused_usable', 'gate_then_conv', 'kernel_build', 'kernel_builds', 'using_kernels']
