"""Multi-process training without CUDA, chosen by a config's ``runner_type``.

mmengine 0.10.7 cannot run distributed on CPU-only machines: its ``init_dist`` calls
``torch.cuda.set_device`` for the pytorch launcher, the default DDP wrapper passes
``device_ids=[local_rank]``, and torch's ``SyncBatchNorm`` (mmcv's ``SyncBN``) only runs on
CUDA. :class:`CPUDistributedRunner` is mmengine's ``Runner`` unchanged whenever CUDA is
available; without it, a distributed run uses gloo, wraps the model for the CPU and swaps
each SyncBN layer for :class:`CPUSyncBatchNorm`, which all-reduces its batch statistics.
"""
import datetime

import torch
import torch.distributed as dist
import torch.nn as nn
from mmengine.dist import is_distributed
from mmengine.logging import print_log
from mmengine.registry import RUNNERS
from mmengine.runner import Runner
from torch.nn.modules.batchnorm import _BatchNorm


class _AllReduceSum(torch.autograd.Function):
    """Sum over the processes, with the sum of the gradients as its gradient."""

    @staticmethod
    def forward(ctx, x: torch.Tensor, group) -> torch.Tensor:
        ctx.group = group
        x = x.clone()
        dist.all_reduce(x, group=group)
        return x

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        grad = grad.clone()
        dist.all_reduce(grad, group=ctx.group)
        return grad, None


def _all_gather_rows(x: torch.Tensor, group) -> torch.Tensor:
    """(world size, *x.shape): every process's ``x``, differentiable."""
    rows = x.new_zeros((dist.get_world_size(group), *x.shape))
    rows = rows.index_put((torch.tensor([dist.get_rank(group)]),), x[None])
    return _AllReduceSum.apply(rows, group)


class CPUSyncBatchNorm(_BatchNorm):
    """BatchNorm whose batch statistics are all-reduced over the process group (gloo);
    a plain BatchNorm outside distributed training."""

    def __init__(self, num_features: int, eps: float = 1e-5, momentum: float = 0.1,
                 affine: bool = True, track_running_stats: bool = True,
                 process_group=None) -> None:
        super().__init__(num_features, eps, momentum, affine, track_running_stats)
        self.process_group = process_group

    def _check_input_dim(self, x: torch.Tensor) -> None:
        if x.dim() < 2:
            raise ValueError(f'expected at least 2D input (got {x.dim()}D input)')

    @classmethod
    def convert(cls, module: nn.Module) -> nn.Module:
        """``module`` with every torch ``SyncBatchNorm`` replaced (weights and statistics kept)."""
        if isinstance(module, nn.SyncBatchNorm):
            new = cls(module.num_features, module.eps, module.momentum, module.affine,
                      module.track_running_stats, module.process_group)
            new.load_state_dict(module.state_dict())
            new.train(module.training)
            for p_new, p_old in zip(new.parameters(), module.parameters()):
                p_new.requires_grad = p_old.requires_grad
            return new
        for name, child in module.named_children():
            module.add_module(name, cls.convert(child))
        return module

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not (self.training and dist.is_available() and dist.is_initialized()):
            return super().forward(x)
        group = self.process_group or dist.group.WORLD
        if dist.get_world_size(group) == 1:
            return super().forward(x)
        dims = [0] + list(range(2, x.dim()))
        c = x.shape[1]
        shape = [1, c] + [1] * (x.dim() - 2)
        # statistics in float32 (float64 stays), whatever the input's dtype: half-precision
        # sums over a whole batch would lose the mean's digits
        stat_dtype = torch.promote_types(x.dtype, torch.float32)
        xs = x.to(stat_dtype)
        # per process: element count, mean and sum of squared deviations per channel, combined
        # across processes with Chan's formula (E[x^2] - E[x]^2 loses float32 precision on
        # channels whose mean is large against their spread); an empty batch counts 0
        n_local = x.numel() // c if c else 0
        mean_local = xs.sum(dims) / max(n_local, 1)
        m2_local = ((xs - mean_local.view(shape)) ** 2).sum(dims)
        count = torch.tensor([float(n_local)], dtype=stat_dtype)
        parts = _all_gather_rows(torch.cat([count, mean_local, m2_local]), group)
        counts, means, m2s = parts[:, :1], parts[:, 1:c + 1], parts[:, c + 1:]
        n = counts.sum()
        if n.item() <= 1:  # every process knows the total: all raise, none waits
            raise ValueError(f'Expected more than 1 value per channel when training, got input '
                             f'size {x.size()} (on {parts.shape[0]} processes together: '
                             f'{int(n.item())} value per channel)')
        mean = (counts * means).sum(0) / n
        var = (m2s + counts * (means - mean) ** 2).sum(0) / n
        if self.track_running_stats:
            with torch.no_grad():
                self.num_batches_tracked += 1
                m = self.momentum
                if m is None:
                    m = 1.0 / float(self.num_batches_tracked)
                self.running_mean.mul_(1 - m).add_(m * mean.to(self.running_mean.dtype))
                unbiased = var * n / (n - 1)
                self.running_var.mul_(1 - m).add_(m * unbiased.to(self.running_var.dtype))
        y = (xs - mean.view(shape)) * torch.rsqrt(var.view(shape) + self.eps)
        if self.affine:
            y = y * self.weight.view(shape) + self.bias.view(shape)
        return y.to(x.dtype)


@RUNNERS.register_module()
class CPUDistributedRunner(Runner):
    """mmengine's ``Runner`` that can also train with several processes without CUDA.

    Select it with ``runner_type = 'CPUDistributedRunner'`` (our configs' ``_base_`` runtime
    does). With CUDA available nothing differs from ``Runner``. Without it, under
    ``--launcher pytorch`` (torchrun, ``mim train --launcher pytorch``): the process group
    uses gloo (``env_cfg.dist_cfg.backend='nccl'`` is read as gloo), DDP wraps the model on
    the CPU, and SyncBN layers synchronise their statistics through gloo.
    """

    def _cpu_distributed(self) -> bool:
        return self.distributed and not torch.cuda.is_available()

    def setup_env(self, env_cfg: dict) -> None:
        if self._cpu_distributed() and self.launcher == 'pytorch' and not is_distributed():
            dist_cfg = dict(env_cfg.get('dist_cfg', {}))
            if dist_cfg.get('backend', 'nccl') == 'nccl':
                dist_cfg['backend'] = 'gloo'
            if 'timeout' in dist_cfg:  # seconds in configs, as mmengine's init_dist reads it
                dist_cfg['timeout'] = datetime.timedelta(seconds=dist_cfg['timeout'])
            dist.init_process_group(**dist_cfg)  # rank and world size from torchrun's env
            print_log(f'no CUDA device: distributed training with {dist_cfg["backend"]}, SyncBN '
                      f'statistics synchronised on the CPU', logger='current')
        super().setup_env(env_cfg)

    def wrap_model(self, model_wrapper_cfg, model):
        if not self._cpu_distributed():
            return super().wrap_model(model_wrapper_cfg, model)
        model = CPUSyncBatchNorm.convert(model)
        if model_wrapper_cfg is None:
            model_wrapper_cfg = dict(
                type='MMDistributedDataParallel', broadcast_buffers=False,
                find_unused_parameters=self.cfg.get('find_unused_parameters', False))
        model_wrapper_cfg = dict(model_wrapper_cfg)
        model_wrapper_cfg.setdefault('device_ids', None)  # CPU modules take no device ids
        return super().wrap_model(model_wrapper_cfg, model)
