"""Checks of a config's datasets: missing or unreadable images, boxes outside the image or of
zero area, masks of the wrong size or with labels beyond the class count, class indices
beyond the class count.

One module behind ``DatasetCheckHook`` (at training start), ``tools/check_dataset.py`` (the
full report) and ``tools/train.py --skip-bad-samples`` (train on the samples that pass).
"""
import copy
import json
import os.path as osp
import sys
from typing import Dict, Iterator, List, Tuple

import numpy as np
from PIL import Image

from coordatt_mm.registry import task_of

IGNORE_INDEX = 255
# how far a sample is checked: files present and boxes non-empty; image headers read (sizes,
# boxes inside); images and masks decoded
LEVELS = ('exists', 'header', 'decode')


def leaf_datasets(ds) -> Iterator:
    """The real datasets behind Repeat/Concat/ClassBalanced wrappers."""
    if hasattr(ds, 'datasets'):
        for d in ds.datasets:
            yield from leaf_datasets(d)
    elif hasattr(ds, 'dataset'):
        yield from leaf_datasets(ds.dataset)
    else:
        yield ds


def _first_line(e: Exception) -> str:
    text = str(e).strip()
    return f'{type(e).__name__}: {text.splitlines()[0]}' if text else type(e).__name__


def _box_problems(img: str, instances: List[Dict], size, num_classes: int) -> List[str]:
    problems = []
    for k, inst in enumerate(instances):
        x1, y1, x2, y2 = inst['bbox']
        if x2 <= x1 or y2 <= y1:
            problems.append(f'{img}: box {k} {[x1, y1, x2, y2]} has zero area')
        elif size and (x1 < -1 or y1 < -1 or x2 > size[0] + 1 or y2 > size[1] + 1):
            problems.append(f'{img}: box {k} {[x1, y1, x2, y2]} lies outside the '
                            f'{size[0]}x{size[1]} image')
        if not 0 <= inst.get('bbox_label', 0) < num_classes:
            problems.append(f'{img}: box {k} has label {inst.get("bbox_label")} '
                            f'outside 0..{num_classes - 1}')
    return problems


def _mask_problems(info: Dict, img: str, size, num_classes: int, decode: bool) -> List[str]:
    seg = info.get('seg_map_path')
    if not seg or not osp.isfile(seg):
        return [f'{seg}: segmentation mask missing (for {img})']
    if not decode:
        return []
    try:
        with Image.open(seg) as m:
            mask = np.asarray(m)
    except Exception as e:
        return [f'{seg}: unreadable mask ({type(e).__name__})']
    problems = []
    if mask.shape[:2] != (size[1], size[0]):
        problems.append(f'{seg}: mask is {mask.shape[1]}x{mask.shape[0]}, image {img} is '
                        f'{size[0]}x{size[1]}')
    bad = sorted(set(np.unique(mask).tolist()) - set(range(num_classes)) - {IGNORE_INDEX})
    if info.get('reduce_zero_label'):
        bad = [v for v in bad if v != 0]
    if bad:
        problems.append(f'{seg}: labels {bad[:5]} exceed the {num_classes} classes '
                        f'(other than the ignore index {IGNORE_INDEX})')
    return problems


def check_sample(info: Dict, task: str, num_classes: int, level: str = 'decode') -> List[str]:
    """Problems of one sample (empty list if fine), each naming the file."""
    img = info.get('img_path')
    if not img or not osp.isfile(img):
        return [f'{img}: image file missing']
    size = None
    if level != 'exists':
        try:
            with Image.open(img) as im:
                if level == 'decode':
                    im.load()
                size = im.size
        except Exception as e:  # corrupt, truncated, not an image
            return [f'{img}: unreadable image ({_first_line(e)})']
    if task == 'det':
        return _box_problems(img, info.get('instances', []), size, num_classes)
    if task == 'cls':
        label = info.get('gt_label')
        ok = label is None or 0 <= int(label) < num_classes
        return [] if ok else [f'{img}: class index {label} outside 0..{num_classes - 1}']
    return _mask_problems(info, img, size, num_classes, level == 'decode')


def coco_raw_problems(ds) -> List[str]:
    """Zero-area boxes in a COCO annotation file (mmdet drops them silently while parsing)."""
    ann_file = getattr(ds, 'ann_file', '') or ''
    if not ann_file.endswith('.json'):
        return []
    with open(ann_file) as f:
        data = json.load(f)
    files = {im['id']: im['file_name'] for im in data.get('images', [])}
    prefix = ds.data_prefix.get('img', '')
    out = []
    for ann in data.get('annotations', []):
        x, y, w, h = ann['bbox']
        if w <= 0 or h <= 0:
            name = osp.join(prefix, files.get(ann['image_id'], str(ann['image_id'])))
            out.append(f'{name}: annotation {ann["id"]} box {[x, y, w, h]} (x, y, w, h) '
                       f'has zero area')
    return out


def check_dataset(dataset, task: str, level: str = 'decode') -> Tuple[int, List[str]]:
    """(samples checked, problems) over every leaf dataset of ``dataset``."""
    n, problems = 0, []
    for ds in leaf_datasets(dataset):
        ds.full_init()
        if level != 'exists':
            problems += coco_raw_problems(ds)
        num_classes = len(ds.metainfo['classes'])
        for i in range(len(ds)):
            problems += check_sample(ds.get_data_info(i), task, num_classes, level)
            n += 1
    return n, problems


def _annotations_only(d: dict) -> dict:
    """A dataset config with its pipelines emptied, wrappers that repeat samples removed."""
    d = copy.deepcopy(d)
    if 'pipeline' in d:
        d['pipeline'] = []
    for key in ('dataset', 'datasets'):
        if key in d:
            d[key] = ([_annotations_only(x) for x in d[key]] if isinstance(d[key], list)
                      else _annotations_only(d[key]))
    if d.get('type') in ('RepeatDataset', 'ClassBalancedDataset'):
        return d['dataset']  # checking once is enough
    return d


def build_split(cfg, split: str):
    """The dataset of ``<split>_dataloader``, annotations only, with its filters off (every
    annotated sample is seen)."""
    from mmengine.registry import DATASETS, init_default_scope
    init_default_scope(cfg.default_scope)
    dcfg = _annotations_only(cfg[f'{split}_dataloader']['dataset'])
    dcfg.setdefault('lazy_init', True)
    if 'filter_cfg' in dcfg:
        dcfg['filter_cfg'] = None
    return DATASETS.build(dcfg)


def _leaf_configs(d: dict) -> Iterator[dict]:
    if 'datasets' in d:
        for x in d['datasets']:
            yield from _leaf_configs(x)
    elif 'dataset' in d:
        yield from _leaf_configs(d['dataset'])
    else:
        yield d


def skip_bad_samples(cfg) -> None:
    """Restrict each training dataset of ``cfg`` to the samples that pass the full check,
    with a warning per sample left out (``tools/train.py --skip-bad-samples``)."""
    from mmengine.registry import DATASETS, init_default_scope
    init_default_scope(cfg.default_scope)
    for leaf in _leaf_configs(cfg.train_dataloader.dataset):
        probe = dict(copy.deepcopy(leaf), pipeline=[])
        ds = DATASETS.build(probe)
        num_classes = len(ds.metainfo['classes'])
        good, bad = [], []
        for i in range(len(ds)):
            problems = check_sample(ds.get_data_info(i), task_of(cfg), num_classes)
            (bad if problems else good).append(i)
            for p in problems:
                print(f'warning: skipping {p}', file=sys.stderr)
        if not bad:
            continue
        if not good:
            raise RuntimeError(f'no usable training sample in {leaf.get("ann_file", leaf)}')
        leaf['indices'] = good
        print(f'warning: --skip-bad-samples: {len(bad)} of {len(ds)} samples left out',
              file=sys.stderr)
