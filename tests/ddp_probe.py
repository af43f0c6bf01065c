"""Imported by the DDP tests' configs: records each rank's first training losses and, at the
first optimizer step, the gradients of every BatchNorm weight (after DDP's all-reduce)."""
import json
import os.path as osp

import torch
from mmengine.dist import get_rank
from mmengine.hooks import Hook
from mmengine.model import is_model_wrapper
from mmengine.optim import OptimWrapper
from mmengine.registry import HOOKS, OPTIM_WRAPPERS
from torch.nn.modules.batchnorm import _BatchNorm


@OPTIM_WRAPPERS.register_module()
class GradProbeOptimWrapper(OptimWrapper):
    probe = None  # (work_dir, {param: name}) set by LossProbeHook

    def step(self, **kwargs):
        if self.probe is not None:
            work_dir, names = self.probe
            grads = {names[p]: p.grad.detach().clone() for group in self.optimizer.param_groups
                     for p in group['params'] if p in names and p.grad is not None}
            torch.save(grads, osp.join(work_dir, f'bn_grads_rank{get_rank()}.pth'))
            self.probe = None
        super().step(**kwargs)


@HOOKS.register_module()
class LossProbeHook(Hook):
    def before_train(self, runner):
        model = runner.model.module if is_model_wrapper(runner.model) else runner.model
        bn = {m.weight: f'{n}.weight' for n, m in model.named_modules()
              if isinstance(m, _BatchNorm) and m.weight is not None}
        if isinstance(runner.optim_wrapper, GradProbeOptimWrapper):
            runner.optim_wrapper.probe = (runner.work_dir, bn)

    def after_train_iter(self, runner, batch_idx, data_batch=None, outputs=None):
        if runner.iter == 0:
            rec = {k: float(v) for k, v in outputs.items()}
            with open(osp.join(runner.work_dir, f'first_loss_rank{get_rank()}.json'), 'w') as f:
                json.dump(rec, f)
