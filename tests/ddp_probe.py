"""Imported by the DDP test's config: records each rank's first training losses."""
import json
import os.path as osp

from mmengine.dist import get_rank
from mmengine.hooks import Hook
from mmengine.registry import HOOKS


@HOOKS.register_module()
class LossProbeHook(Hook):
    def after_train_iter(self, runner, batch_idx, data_batch=None, outputs=None):
        if runner.iter == 0:
            rec = {k: float(v) for k, v in outputs.items()}
            with open(osp.join(runner.work_dir, f'first_loss_rank{get_rank()}.json'), 'w') as f:
                json.dump(rec, f)
