"""Runner hooks."""
from mmengine.hooks import Hook
from mmengine.logging import print_log
from mmengine.registry import HOOKS

from coordatt_mm.datasets.check import check_dataset
from coordatt_mm.registry import task_of


@HOOKS.register_module()
class DatasetCheckHook(Hook):
    """Fail at start, not hours in: before training, check that every training image (and
    segmentation mask) exists and that every box has a positive area.

    The full check (decoding images, box extents, mask sizes and labels) is
    ``tools/check_dataset.py``; ``tools/train.py --skip-bad-samples`` trains on the samples
    that pass it instead of stopping.

    Args:
        max_listed: problems listed in the error before the count.
    """

    priority = 'VERY_HIGH'

    def __init__(self, max_listed: int = 20) -> None:
        self.max_listed = max_listed

    def before_train(self, runner) -> None:
        n, problems = check_dataset(runner.train_dataloader.dataset, task_of(runner.cfg),
                                    level='exists')
        if problems:
            listed = '; '.join(problems[:self.max_listed])
            more = len(problems) - self.max_listed
            raise RuntimeError(f'training data check: {len(problems)} problems in {n} samples: '
                               f'{listed}{f" (+{more} more)" if more > 0 else ""}. Run '
                               f'tools/check_dataset.py for the full report, or tools/train.py '
                               f'--skip-bad-samples to leave them out.')
        print_log(f'DatasetCheckHook: {n} training samples present', logger='current')


@HOOKS.register_module()
class RNGStateHook(Hook):
    """Exact resume: keep the Python, numpy and torch random states in every checkpoint and
    put them back when training resumes from it.

    mmengine restores weights, optimizer, schedulers and counters, not the random
    generators, so an epoch-based run resumed at an epoch boundary draws different
    augmentations than an uninterrupted one whenever data is loaded in the main process.
    (Dataloader workers are re-seeded at every epoch when ``persistent_workers=False``, which
    keeps them in step. Iteration-based loops replay the consumed batches on resume, which
    with the same ``randomness.seed`` reproduces the random stream already: nothing is
    restored there.)
    """

    priority = 'VERY_LOW'

    def __init__(self) -> None:
        self._pending = None

    def before_save_checkpoint(self, runner, checkpoint: dict) -> None:
        import random

        import numpy as np
        import torch
        state = dict(python=random.getstate(), numpy=np.random.get_state(),
                     torch=torch.get_rng_state())
        if torch.cuda.is_available():
            state['cuda'] = torch.cuda.get_rng_state_all()
        checkpoint['rng_state'] = state

    def after_load_checkpoint(self, runner, checkpoint: dict) -> None:
        if getattr(runner, '_resume', False):  # not when only loading weights (load_from)
            self._pending = checkpoint.get('rng_state')

    def before_train(self, runner) -> None:
        # after mmengine's own re-seeding on resume, which would otherwise win
        from mmengine.runner import IterBasedTrainLoop
        if self._pending is None or isinstance(runner.train_loop, IterBasedTrainLoop):
            return
        import random

        import numpy as np
        import torch
        random.setstate(self._pending['python'])
        np.random.set_state(self._pending['numpy'])
        torch.set_rng_state(self._pending['torch'])
        if 'cuda' in self._pending and torch.cuda.is_available():
            torch.cuda.set_rng_state_all(self._pending['cuda'])
        print_log('RNGStateHook: random states restored from the checkpoint', logger='current')
        self._pending = None
