"""Checks of a config's datasets before training: missing or unreadable images, boxes outside
the image or of zero area, masks of the wrong size or with labels beyond the class count."""
import os.path as osp
from typing import Dict, Iterator, List, Tuple

import numpy as np
from PIL import Image

IGNORE_INDEX = 255


def leaf_datasets(ds) -> Iterator:
    """The real datasets behind Repeat/Concat/ClassBalanced wrappers."""
    if hasattr(ds, 'datasets'):
        for d in ds.datasets:
            yield from leaf_datasets(d)
    elif hasattr(ds, 'dataset'):
        yield from leaf_datasets(ds.dataset)
    else:
        yield ds


def _image_size(path: str, decode: bool) -> Tuple[int, int]:
    with Image.open(path) as im:
        if decode:
            im.load()
        return im.size


def check_sample(info: Dict, task: str, num_classes: int, decode: bool = True) -> List[str]:
    """Problems of one sample (empty list if fine)."""
    problems = []
    img = info.get('img_path')
    if not img or not osp.isfile(img):
        return [f'{img}: image file missing']
    try:
        w, h = _image_size(img, decode)
    except Exception as e:  # corrupt, truncated, not an image
        return [f'{img}: unreadable image ({type(e).__name__}: {str(e).splitlines()[0] if str(e) else ""})']
    if task == 'det':
        for k, inst in enumerate(info.get('instances', [])):
            x1, y1, x2, y2 = inst['bbox']
            if x2 <= x1 or y2 <= y1:
                problems.append(f'{img}: box {k} {[x1, y1, x2, y2]} has zero area')
            elif x1 < -1 or y1 < -1 or x2 > w + 1 or y2 > h + 1:
                problems.append(f'{img}: box {k} {[x1, y1, x2, y2]} lies outside the {w}x{h} image')
            if not 0 <= inst.get('bbox_label', 0) < num_classes:
                problems.append(f'{img}: box {k} has label {inst.get("bbox_label")} '
                                f'outside 0..{num_classes - 1}')
    else:
        seg = info.get('seg_map_path')
        if not seg or not osp.isfile(seg):
            return [f'{seg}: segmentation mask missing (for {img})']
        try:
            with Image.open(seg) as m:
                mask = np.asarray(m)
        except Exception as e:
            return [f'{seg}: unreadable mask ({type(e).__name__})']
        if mask.shape[:2] != (h, w):
            problems.append(f'{seg}: mask is {mask.shape[1]}x{mask.shape[0]}, image {img} is {w}x{h}')
        bad = sorted(set(np.unique(mask).tolist()) - set(range(num_classes)) - {IGNORE_INDEX})
        if info.get('reduce_zero_label'):
            bad = [v for v in bad if v != 0]
        if bad:
            problems.append(f'{seg}: labels {bad[:5]} exceed the {num_classes} classes '
                            f'(other than the ignore index {IGNORE_INDEX})')
    return problems


def coco_raw_problems(ds) -> List[str]:
    """Zero-area boxes in a COCO annotation file (mmdet drops them silently while parsing)."""
    ann_file = getattr(ds, 'ann_file', '') or ''
    if not ann_file.endswith('.json'):
        return []
    import json
    with open(ann_file) as f:
        data = json.load(f)
    if 'annotations' not in data:
        return []
    files = {im['id']: im['file_name'] for im in data.get('images', [])}
    prefix = ds.data_prefix.get('img', '')
    out = []
    for ann in data['annotations']:
        x, y, w, h = ann['bbox']
        if w <= 0 or h <= 0:
            name = osp.join(prefix, files.get(ann['image_id'], str(ann['image_id'])))
            out.append(f'{name}: annotation {ann["id"]} box {[x, y, w, h]} (x, y, w, h) has zero area')
    return out


def check_dataset(dataset, task: str, decode: bool = True) -> Tuple[int, List[str]]:
    """(samples checked, problems) over every leaf dataset of ``dataset``."""
    n, problems = 0, []
    for ds in leaf_datasets(dataset):
        ds.full_init()
        problems += coco_raw_problems(ds)
        num_classes = len(ds.metainfo['classes'])
        for i in range(len(ds)):
            problems += check_sample(ds.get_data_info(i), task, num_classes, decode)
            n += 1
    return n, problems


def build_split(cfg, split: str):
    """The dataset of ``<split>_dataloader`` with its pipeline emptied (annotations only)."""
    from mmengine.registry import DATASETS, init_default_scope
    init_default_scope(cfg.default_scope)
    import copy

    def strip(d):
        d = copy.deepcopy(d)
        if 'pipeline' in d:
            d['pipeline'] = []
        for key in ('dataset', 'datasets'):
            if key in d:
                d[key] = [strip(x) for x in d[key]] if isinstance(d[key], list) else strip(d[key])
        if d.get('type') in ('RepeatDataset', 'ClassBalancedDataset'):
            return d['dataset']  # checking once is enough
        return d

    dcfg = strip(cfg[f'{split}_dataloader']['dataset'])
    dcfg.setdefault('lazy_init', True)
    # datasets keep their own filters off: we want to see every annotated sample
    if 'filter_cfg' in dcfg:
        dcfg['filter_cfg'] = None
    return DATASETS.build(dcfg)
