"""OpenMMLab's model index (``model-index.yml`` and ``configs/*/metafile.yml``, what ``mim
search coordatt_mm`` reads), generated from files: every config under ``configs/`` (``_base_``
aside), its task and dataset from the config, the paper's metric from
``coordatt_mm/data/paper_results.json``, the parameter count and multiply-adds from the model
it builds: ``FLOPs`` as OpenMMLab's metafiles count them (every convolution and linear layer)
and ``M-Adds`` as the paper does (those plus the attention layers' pooling and gating), at the
``Input Size`` :func:`input_hw` gives (the test size; segmentation: the training crop)."""
import os.path as osp
from functools import lru_cache
from glob import glob
from typing import Dict, Optional, Tuple

import yaml

from coordatt_mm.analysis.complexity import (
    REPO,
    count_madds_by_shapes,
    count_params,
    load_paper_results,
)

PAPER = dict(Title='Coordinate Attention for Efficient Mobile Network Design',
             URL='https://arxiv.org/abs/2103.02907')
TASK_NAMES = {'det': 'Object Detection', 'seg': 'Semantic Segmentation',
              'cls': 'Image Classification'}
DATASET_NAMES = {'CocoDataset': 'COCO', 'VOCDataset': 'PASCAL VOC',
                 'PascalVOCDataset': 'PASCAL VOC 2012', 'CityscapesDataset': 'Cityscapes',
                 'ImageNet': 'ImageNet-1k'}
METRIC_NAMES = {'box AP': 'box AP', 'mAP@0.5 (11-point)': 'mAP', 'mIoU': 'mIoU'}
COLLECTIONS = {  # folder -> (collection name, what it holds)
    'ssdlite': ('SSDLite-CA', 'SSDLite320 with MobileNetV2 / MobileNeXt backbones, with and '
                'without attention'),
    'deeplabv3': ('DeepLabV3-CA', 'DeepLabV3 with MobileNetV2 (and ResNet-50) backbones, with '
                  'and without attention'),
    'retinanet': ('RetinaNet-CA', 'RetinaNet R-50-FPN with CA as an mmcv plugin'),
    'imagenet': ('ImageNet-CA', 'ImageNet-1k classifiers (mmpretrain) with and without '
                 'attention'),
    'demo': ('Demo-CA', 'The CPU demo on tiny synthetic data in the real formats'),
}


def config_files() -> Dict[str, list]:
    """folder -> its configs (paths relative to the repository), sorted."""
    out = {}
    for path in sorted(glob(osp.join(REPO, 'configs', '*', '*.py'))):
        folder = osp.basename(osp.dirname(path))
        if folder != '_base_':
            out.setdefault(folder, []).append(osp.relpath(path, REPO))
    return out


def _paper_rows() -> Dict[str, dict]:
    paper = load_paper_results()
    rows = {r['config']: dict(r) for r in paper['rows']}
    for r in paper['imagenet']:
        rows[r['config']] = dict(r, metric='Top 1 Accuracy', paper=r['top1'])
    return rows


def input_hw(cfg, task: str) -> Tuple[int, int]:
    """(H, W) a config's model is counted at: the classifiers' centre crop, the segmentors'
    training crop, the detectors' test input
    (:func:`~coordatt_mm.apis.pipeline.pipeline_input_hw`: a keep-ratio resize as its (short,
    long) sides, padded to the data preprocessor's divisor)."""
    from coordatt_mm.apis.pipeline import pipeline_input_hw, test_pipeline_steps
    if task == 'seg':
        h, w = cfg.model.data_preprocessor.size
        return int(h), int(w)
    steps = test_pipeline_steps(cfg)
    if task == 'cls':
        crop = next(s['crop_size'] for s in steps if s['type'] == 'CenterCrop')
        return (crop, crop) if isinstance(crop, int) else (int(crop[1]), int(crop[0]))
    hw = pipeline_input_hw(cfg, steps)
    if hw is None:
        raise ValueError(f'{cfg.filename}: its test pipeline resizes to no scale, so the '
                         'model has no input size to be counted at')
    return hw


@lru_cache(maxsize=None)
def config_facts(config: str) -> tuple:
    """(task, dataset type, parameter count, multiply-adds as :func:`count_madds` gives them,
    input (H, W)) of the model ``config`` (a path relative to the repository) builds, on the
    meta device; once per process."""
    from coordatt_mm.apis.build import build_model, network, test_dataset_cfg
    from coordatt_mm.registry import task_of
    cfg, model = build_model(osp.join(REPO, config), device='meta')
    task = task_of(cfg)
    hw = input_hw(cfg, task)
    madds = count_madds_by_shapes(network(cfg, model), (1, 3, *hw))
    return task, test_dataset_cfg(cfg)['type'], count_params(model), madds, hw


def _entry(config: str, collection: str, row: Optional[dict]) -> dict:
    task, dataset, params, madds, hw = config_facts(config)
    dataset = DATASET_NAMES.get(dataset, dataset)
    result = dict(Task=TASK_NAMES[task], Dataset=dataset)
    if row and row.get('paper') is not None:  # the paper's number, not ours
        result['Metrics'] = {METRIC_NAMES.get(row['metric'], row['metric']): row['paper']}
    meta = {'Training Data': dataset, 'Parameters': params, 'FLOPs': madds['conv_linear'],
            'M-Adds': madds['conv_linear'] + madds['attention_elementwise'],
            'Input Size': f'{hw[0]}x{hw[1]}'}
    entry = dict(Name=osp.splitext(osp.basename(config))[0], **{'In Collection': collection},
                 Config=config, Metadata=meta, Results=[result])
    if row and row.get('weights'):
        entry['Weights'] = row['weights']
    return entry


def metafiles() -> Dict[str, str]:
    """Path (relative to the repository) -> text, for model-index.yml and every metafile."""
    rows, out = _paper_rows(), {}
    header = '# generated by tools/update_readme.py from the configs and ' \
             'coordatt_mm/data/paper_results.json\n'
    for folder, configs in config_files().items():
        name, about = COLLECTIONS.get(folder, (f'{folder}-CA', folder))
        meta = dict(Collections=[dict(Name=name, Metadata=dict(Description=about),
                                      Paper=PAPER, README='README.md')],
                    Models=[_entry(c, name, rows.get(c)) for c in configs])
        out[f'configs/{folder}/metafile.yml'] = header + yaml.safe_dump(meta, sort_keys=False)
    index = dict(Import=sorted(out))
    out['model-index.yml'] = header + yaml.safe_dump(index, sort_keys=False)
    return out
