"""Runner hooks."""
import os.path as osp

from mmengine.hooks import Hook
from mmengine.logging import print_log
from mmengine.registry import HOOKS

from coordatt_mm.data_check import leaf_datasets


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
        problems, n = [], 0
        for ds in leaf_datasets(runner.train_dataloader.dataset):
            for i in range(len(ds)):
                info = ds.get_data_info(i)
                n += 1
                for key in ('img_path', 'seg_map_path'):
                    if info.get(key) and not osp.isfile(info[key]):
                        problems.append(f'{info[key]}: file missing')
                for k, inst in enumerate(info.get('instances', [])):
                    x1, y1, x2, y2 = inst['bbox']
                    if x2 <= x1 or y2 <= y1:
                        problems.append(f'{info["img_path"]}: box {k} has zero area')
        if problems:
            listed = '; '.join(problems[:self.max_listed])
            more = f' (+{len(problems) - self.max_listed} more)' if len(problems) > self.max_listed else ''
            raise RuntimeError(f'training data check: {len(problems)} problems in {n} samples: '
                               f'{listed}{more}. Run tools/check_dataset.py for the full report, '
                               f'or tools/train.py --skip-bad-samples to leave them out.')
        print_log(f'DatasetCheckHook: {n} training samples present', logger='current')
