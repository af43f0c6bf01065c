"""Multi-process training on machines without CUDA (gloo), through mmengine's own Runner.

- ``init_dist`` of mmengine calls ``torch.cuda.set_device`` unconditionally for the pytorch
  launcher, which fails on CPU-only machines; without CUDA we initialise the process group
  ourselves and use ``gloo`` when the config asks for ``nccl``.
- ``SyncBN`` (torch's ``SyncBatchNorm``) only synchronises CUDA tensors, and DDP refuses CPU
  modules that contain it. Our ``SyncBN`` builds torch's layer whenever CUDA is available
  (unchanged GPU behaviour) and otherwise a BatchNorm that synchronises its statistics through
  ``torch.distributed.nn.all_reduce`` (autograd-aware, works with gloo), and acts as a plain
  BatchNorm in a single process.
"""
import torch
import torch.distributed as dist
import torch.nn as nn
from mmengine.logging import print_log
from torch.nn.modules.batchnorm import _BatchNorm
from mmengine.registry import MODELS


class SyncBatchNorm(_BatchNorm):
    """Synchronised BatchNorm: torch's ``nn.SyncBatchNorm`` when CUDA is available, else a
    BatchNorm whose batch statistics are all-reduced over the process group (gloo)."""

    _abbr_ = 'bn'

    def __new__(cls, *args, **kwargs):
        if torch.cuda.is_available():
            return nn.SyncBatchNorm(*args, **kwargs)
        return super().__new__(cls)

    def __init__(self, num_features: int, eps: float = 1e-5, momentum: float = 0.1,
                 affine: bool = True, track_running_stats: bool = True,
                 process_group=None, **kwargs) -> None:
        super().__init__(num_features, eps, momentum, affine, track_running_stats, **kwargs)
        self.process_group = process_group

    def _check_input_dim(self, x: torch.Tensor) -> None:
        if x.dim() < 2:
            raise ValueError(f'expected at least 2D input (got {x.dim()}D input)')

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not (self.training and dist.is_available() and dist.is_initialized()):
            return super().forward(x)
        group = self.process_group or dist.group.WORLD
        if dist.get_world_size(group) == 1:
            return super().forward(x)
        from torch.distributed.nn.functional import all_reduce
        dims = [0] + list(range(2, x.dim()))
        c = x.shape[1]
        count = torch.tensor([x.numel() // c], dtype=x.dtype)
        stats = all_reduce(torch.cat([x.sum(dims), (x * x).sum(dims), count]), group=group)
        n = stats[-1]
        mean = stats[:c] / n
        var = stats[c:2 * c] / n - mean * mean
        if self.track_running_stats:
            with torch.no_grad():
                self.num_batches_tracked += 1
                m = self.momentum if self.momentum is not None else 1.0 / float(self.num_batches_tracked)
                self.running_mean.mul_(1 - m).add_(m * mean)
                self.running_var.mul_(1 - m).add_(m * var * n / (n - 1))
        shape = [1, c] + [1] * (x.dim() - 2)
        y = (x - mean.view(shape)) * torch.rsqrt(var.view(shape) + self.eps)
        if self.affine:
            y = y * self.weight.view(shape) + self.bias.view(shape)
        return y


def install() -> None:
    """Register our SyncBN and the CUDA-less init_dist (idempotent)."""
    import mmcv.cnn  # noqa: F401  (mmcv registers torch's SyncBN first; ours replaces it)
    MODELS.register_module('SyncBN', module=SyncBatchNorm, force=True)
    import mmengine.runner.runner as runner_mod
    if getattr(runner_mod.init_dist, '_coordatt_mm', False):
        return
    original = runner_mod.init_dist

    def init_dist(launcher, backend='nccl', init_backend='torch', **kwargs):
        if torch.cuda.is_available() or launcher != 'pytorch' or init_backend != 'torch':
            return original(launcher, backend, init_backend, **kwargs)
        if backend == 'nccl':
            print_log('no CUDA device: distributed backend nccl -> gloo', logger='current')
            backend = 'gloo'
        dist.init_process_group(backend=backend, **kwargs)

    init_dist._coordatt_mm = True
    runner_mod.init_dist = init_dist
