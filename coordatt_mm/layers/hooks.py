"""Whether a module hook could observe what a fused path skips, merges or overwrites.

The fused paths of CoordAtt and of the blocks around it call some modules' arithmetic without
calling the modules (a BatchNorm computed inside CA's kernels, a projection conv run by an
autograd function) or gate a tensor in place. A forward, forward-pre or backward hook on any of
those modules, or a global module hook, would then miss a call or keep a tensor that changes
later. Where :func:`hooked` says so, the fused path steps aside and every module is called as
usual: hooks cost speed, never correctness.
"""
from typing import Optional

import torch.nn as nn
from torch.nn.modules import module as torch_module  # its global hook tables


def _global_hooks() -> bool:
    return bool(torch_module._global_forward_hooks or torch_module._global_forward_pre_hooks
                or torch_module._global_backward_hooks
                or torch_module._global_backward_pre_hooks)


def _own_hooks(m: nn.Module) -> bool:
    return bool(m._forward_hooks or m._forward_pre_hooks or m._backward_hooks
                or m._backward_pre_hooks)


def _tree_hooked(m: nn.Module) -> bool:
    # through _modules: this runs on every call of every block
    if _own_hooks(m):
        return True
    return any(_tree_hooked(c) for c in m._modules.values() if c is not None)


def hooked(*modules: Optional[nn.Module]) -> bool:
    """Whether any of ``modules`` or their sub-modules has a forward, forward-pre or backward
    hook, or a global module hook is registered (``None`` entries are skipped)."""
    if _global_hooks():
        return True
    return any(m is not None and _tree_hooked(m) for m in modules)
