"""Tiny synthetic datasets in the real on-disk formats (COCO, VOCdevkit, Cityscapes, ImageNet).

Images hold a few simple, class-specific shapes on a noisy background, so a model learns them
on CPU in minutes; class names and label ids are the real ones of each dataset, so the stock
mmdet/mmseg dataset classes, metrics and configs read them unchanged.
"""
import json
import os
import os.path as osp
from typing import Dict, List, Tuple
from xml.etree import ElementTree as ET

import numpy as np
from PIL import Image, ImageDraw

# COCO's 80 category ids (1..90 with gaps), in the order of mmdet's CocoDataset classes.
COCO_IDS = [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 13, 14, 15, 16, 17, 18, 19, 20, 21, 22, 23,
            24, 25, 27, 28, 31, 32, 33, 34, 35, 36, 37, 38, 39, 40, 41, 42, 43, 44, 46, 47,
            48, 49, 50, 51, 52, 53, 54, 55, 56, 57, 58, 59, 60, 61, 62, 63, 64, 65, 67, 70,
            72, 73, 74, 75, 76, 77, 78, 79, 80, 81, 82, 84, 85, 86, 87, 88, 89, 90]

# object kinds drawn: class name -> (shape, RGB colour, aspect range w/h)
DET_KINDS = {
    'person': ('ellipse', (220, 40, 40), (0.45, 0.7)),
    'car': ('rect', (40, 70, 220), (1.5, 2.2)),
    'cat': ('triangle', (30, 170, 60), (0.9, 1.1)),
}
VOC_SEG_CLASSES = ('background', 'aeroplane', 'bicycle', 'bird', 'boat', 'bottle', 'bus',
                   'car', 'cat', 'chair', 'cow', 'diningtable', 'dog', 'horse', 'motorbike',
                   'person', 'pottedplant', 'sheep', 'sofa', 'train', 'tvmonitor')
# Cityscapes trainIds drawn: road 0, building 2, sky 10, car 13 (+ 255 ignore)
# the first ImageNet-1k classes (WordNet id, index in mmpretrain's ImageNet classes): class
# folders and meta/*.txt use the real ids and indices, so a 1000-way head reads them unchanged
IMAGENET_CLASSES = (('n01440764', 0), ('n01443537', 1), ('n01484850', 2), ('n01491361', 3))
IMAGENET_KINDS = (('ellipse', (220, 40, 40)), ('rect', (40, 70, 220)),
                  ('triangle', (30, 170, 60)), ('rect', (230, 200, 40)))
CITY_COLOURS = {0: (128, 64, 128), 2: (70, 70, 70), 10: (70, 130, 180), 13: (0, 0, 142)}


def _background(rng, w, h):
    base = rng.integers(90, 170)
    img = base + rng.normal(0, 12, (h, w, 3))
    return Image.fromarray(np.clip(img, 0, 255).astype(np.uint8))


def _draw(draw: ImageDraw.ImageDraw, shape: str, box, fill=None, outline=None, width=1):
    x1, y1, x2, y2 = box
    kw = dict(fill=fill, outline=outline, width=width)
    if shape == 'rect':
        draw.rectangle([x1, y1, x2 - 1, y2 - 1], **kw)
    elif shape == 'ellipse':
        draw.ellipse([x1, y1, x2 - 1, y2 - 1], **kw)
    else:
        draw.polygon([((x1 + x2) / 2, y1), (x2 - 1, y2 - 1), (x1, y2 - 1)], **kw)


def _jitter(rng, colour):
    return tuple(int(np.clip(c + rng.integers(-25, 26), 0, 255)) for c in colour)


def _place(rng, w, h, n, min_size, max_size, aspect) -> List[Tuple[int, int, int, int]]:
    """Up to n boxes that overlap little, each fully inside the image."""
    boxes = []
    for _ in range(n * 20):
        if len(boxes) == n:
            break
        s = rng.uniform(min_size, max_size)
        a = rng.uniform(*aspect[len(boxes)])
        bw, bh = int(min(w - 2, s * np.sqrt(a))), int(min(h - 2, s / np.sqrt(a)))
        x1, y1 = int(rng.integers(0, w - bw)), int(rng.integers(0, h - bh))
        b = (x1, y1, x1 + bw, y1 + bh)
        if all(min(b[2], o[2]) - max(b[0], o[0]) <= 4 or min(b[3], o[3]) - max(b[1], o[1]) <= 4
               for o in boxes):
            boxes.append(b)
    return boxes


def _det_image(rng, size=(320, 320), max_objects=3):
    """An image with 1..max_objects objects; returns (PIL image, [(class name, box)])."""
    w, h = size
    img = _background(rng, w, h)
    draw = ImageDraw.Draw(img)
    names = list(rng.choice(list(DET_KINDS), size=int(rng.integers(1, max_objects + 1))))
    boxes = _place(rng, w, h, len(names), 56, 150, [DET_KINDS[n][2] for n in names])
    objs = []
    for name, box in zip(names, boxes):
        shape, colour, _ = DET_KINDS[name]
        _draw(draw, shape, box, _jitter(rng, colour))
        objs.append((name, box))
    return img, objs


def make_coco(root: str, n_train: int = 48, n_val: int = 16, seed: int = 0) -> str:
    """COCO layout: annotations/instances_{train,val}2017.json, train2017/, val2017/."""
    from mmdet.datasets import CocoDataset
    classes = CocoDataset.METAINFO['classes']
    cat_id = dict(zip(classes, COCO_IDS))
    rng = np.random.default_rng(seed)
    os.makedirs(osp.join(root, 'annotations'), exist_ok=True)
    ann_id = 1
    for split, n in (('train2017', n_train), ('val2017', n_val)):
        os.makedirs(osp.join(root, split), exist_ok=True)
        images, anns = [], []
        for i in range(n):
            img_id = (1 if split == 'train2017' else 500000) + i
            img, objs = _det_image(rng)
            fname = f'{img_id:012d}.jpg'
            img.save(osp.join(root, split, fname), quality=92)
            images.append(dict(id=img_id, file_name=fname, width=img.width, height=img.height))
            for name, (x1, y1, x2, y2) in objs:
                anns.append(dict(id=ann_id, image_id=img_id, category_id=cat_id[name],
                                 bbox=[x1, y1, x2 - x1, y2 - y1], area=(x2 - x1) * (y2 - y1),
                                 iscrowd=0, segmentation=[[x1, y1, x2, y1, x2, y2, x1, y2]]))
                ann_id += 1
        data = dict(info=dict(description='coordatt_mm tiny COCO'), licenses=[],
                    images=images, annotations=anns,
                    categories=[dict(id=cat_id[c], name=c, supercategory='none') for c in classes])
        with open(osp.join(root, 'annotations', f'instances_{split}.json'), 'w') as f:
            json.dump(data, f)
    return root


def _voc_xml(fname, w, h, objs) -> ET.ElementTree:
    ann = ET.Element('annotation')
    ET.SubElement(ann, 'folder').text = 'VOC'
    ET.SubElement(ann, 'filename').text = fname
    size = ET.SubElement(ann, 'size')
    for k, v in (('width', w), ('height', h), ('depth', 3)):
        ET.SubElement(size, k).text = str(v)
    ET.SubElement(ann, 'segmented').text = '0'
    for name, (x1, y1, x2, y2) in objs:
        o = ET.SubElement(ann, 'object')
        ET.SubElement(o, 'name').text = name
        ET.SubElement(o, 'pose').text = 'Unspecified'
        ET.SubElement(o, 'truncated').text = '0'
        ET.SubElement(o, 'difficult').text = '0'
        bb = ET.SubElement(o, 'bndbox')
        # VOC boxes are 1-based and inclusive
        for k, v in (('xmin', x1 + 1), ('ymin', y1 + 1), ('xmax', x2), ('ymax', y2)):
            ET.SubElement(bb, k).text = str(v)
    return ET.ElementTree(ann)


def make_voc_det(root: str, n_trainval: int = 32, n_test: int = 16, seed: int = 1) -> str:
    """VOCdevkit/VOC2007 (trainval + test) and VOC2012 (trainval) for detection."""
    rng = np.random.default_rng(seed)
    for year, splits in (('2007', (('trainval', n_trainval), ('test', n_test))),
                         ('2012', (('trainval', n_trainval),))):
        base = osp.join(root, f'VOC{year}')
        for sub in ('Annotations', 'JPEGImages', 'ImageSets/Main'):
            os.makedirs(osp.join(base, sub), exist_ok=True)
        k = 0
        for split, n in splits:
            ids = []
            for _ in range(n):
                img_id = f'{year}_{k:06d}'
                k += 1
                img, objs = _det_image(rng)
                img.save(osp.join(base, 'JPEGImages', img_id + '.jpg'), quality=92)
                _voc_xml(img_id + '.jpg', img.width, img.height, objs).write(
                    osp.join(base, 'Annotations', img_id + '.xml'))
                ids.append(img_id)
            with open(osp.join(base, 'ImageSets/Main', f'{split}.txt'), 'w') as f:
                f.write('\n'.join(ids) + '\n')
    return root


def _seg_sample(rng, w, h, kinds: Dict[int, Tuple[str, Tuple[int, int, int]]], border=True):
    """Image + label map with 1..3 shapes; kinds: label -> (shape, colour). Label 0 = background."""
    img = _background(rng, w, h)
    label = Image.new('L', (w, h), 0)
    d_img, d_lab = ImageDraw.Draw(img), ImageDraw.Draw(label)
    labels = list(rng.choice(list(kinds), size=int(rng.integers(1, 4))))
    for lab, box in zip(labels, _place(rng, w, h, len(labels), 48, 120, [(0.6, 1.6)] * 3)):
        shape, colour = kinds[lab]
        _draw(d_img, shape, box, _jitter(rng, colour))
        _draw(d_lab, shape, box, int(lab))
        if border:  # VOC marks object outlines as 255 (ignored)
            _draw(d_lab, shape, box, outline=255, width=2)
    return img, label


def make_voc_seg(root: str, n_train: int = 24, n_aug: int = 24, n_val: int = 12,
                 seed: int = 2) -> str:
    """VOCdevkit/VOC2012 for segmentation: JPEGImages, SegmentationClass (palette PNG),
    SegmentationClassAug (grey PNG, as mmseg's voc_aug.py writes) and ImageSets/Segmentation
    train.txt / val.txt / aug.txt."""
    from mmseg.datasets import PascalVOCDataset
    palette = [c for rgb in PascalVOCDataset.METAINFO['palette'] for c in rgb]
    palette += [0] * (768 - len(palette))
    palette[255 * 3:256 * 3] = [224, 224, 192]  # VOC's colour for the 255 outline
    kinds = {VOC_SEG_CLASSES.index('person'): ('ellipse', (220, 40, 40)),
             VOC_SEG_CLASSES.index('car'): ('rect', (40, 70, 220)),
             VOC_SEG_CLASSES.index('cat'): ('triangle', (30, 170, 60))}
    base = osp.join(root, 'VOC2012')
    for sub in ('JPEGImages', 'SegmentationClass', 'SegmentationClassAug',
                'ImageSets/Segmentation'):
        os.makedirs(osp.join(base, sub), exist_ok=True)
    rng = np.random.default_rng(seed)
    lists, k = {}, 0
    for split, n in (('train', n_train), ('aug', n_aug), ('val', n_val)):
        lists[split] = []
        for _ in range(n):
            img_id = f'2012_{100000 + k:06d}'  # apart from the detection ids
            k += 1
            img, label = _seg_sample(rng, 320, 240, kinds)
            img.save(osp.join(base, 'JPEGImages', img_id + '.jpg'), quality=92)
            if split != 'aug':
                pal = label.copy()
                pal.putpalette(palette)
                pal.save(osp.join(base, 'SegmentationClass', img_id + '.png'))
            if split != 'val':
                label.save(osp.join(base, 'SegmentationClassAug', img_id + '.png'))
            lists[split].append(img_id)
    for split, ids in lists.items():
        with open(osp.join(base, 'ImageSets/Segmentation', f'{split}.txt'), 'w') as f:
            f.write('\n'.join(ids) + '\n')
    return root


def make_cityscapes(root: str, n_train: int = 16, n_val: int = 8, seed: int = 3) -> str:
    """cityscapes/leftImg8bit/{train,val}/<city>/*_leftImg8bit.png and
    gtFine/{train,val}/<city>/*_gtFine_labelTrainIds.png (255 = ignore)."""
    rng = np.random.default_rng(seed)
    w, h = 256, 128
    for split, n, city in (('train', n_train, 'aachen'), ('val', n_val, 'frankfurt')):
        img_dir = osp.join(root, 'leftImg8bit', split, city)
        gt_dir = osp.join(root, 'gtFine', split, city)
        os.makedirs(img_dir, exist_ok=True)
        os.makedirs(gt_dir, exist_ok=True)
        for i in range(n):
            img = np.array(_background(rng, w, h))
            lab = np.full((h, w), 255, np.uint8)  # unlabeled strip stays 255
            horizon = int(rng.integers(h * 3 // 10, h // 2))
            road = int(rng.integers(h * 6 // 10, h * 7 // 10))
            for label, (y1, y2) in ((10, (0, horizon)), (2, (horizon, road - 4)), (0, (road, h))):
                lab[y1:y2] = label
                img[y1:y2] = np.clip(np.array(CITY_COLOURS[label])
                                     + rng.normal(0, 10, (y2 - y1, w, 3)), 0, 255)
            for _ in range(int(rng.integers(1, 3))):
                cw, ch = int(rng.integers(30, 60)), int(rng.integers(16, 28))
                x1, y1 = int(rng.integers(0, w - cw)), road - ch // 2
                lab[y1:y1 + ch, x1:x1 + cw] = 13
                img[y1:y1 + ch, x1:x1 + cw] = _jitter(rng, CITY_COLOURS[13])
            stem = f'{city}_{i:06d}_000019'
            Image.fromarray(img.astype(np.uint8)).save(osp.join(img_dir, stem + '_leftImg8bit.png'))
            Image.fromarray(lab).save(osp.join(gt_dir, stem + '_gtFine_labelTrainIds.png'))
    return root


def _cls_image(rng, kind: int, size: int = 112) -> Image.Image:
    shape, colour = IMAGENET_KINDS[kind]
    img = _background(rng, size, size)
    draw = ImageDraw.Draw(img)
    for _ in range(int(rng.integers(1, 3))):
        s = int(rng.uniform(0.3, 0.6) * size)
        x, y = (int(v) for v in rng.integers(0, size - s, 2))
        _draw(draw, shape, (x, y, x + s, y + s), fill=_jitter(rng, colour))
    return img


def make_imagenet(root: str, n_train: int = 24, n_val: int = 8, seed: int = 5) -> str:
    """ImageNet as mmpretrain reads it: ``train/<wnid>/<wnid>_<n>.JPEG`` and
    ``val/ILSVRC2012_val_<n>.JPEG`` with ``meta/train.txt`` and ``meta/val.txt`` (``<file>
    <class index>``); ``n_train`` / ``n_val`` images per class."""
    rng = np.random.default_rng(seed)
    os.makedirs(osp.join(root, 'meta'), exist_ok=True)
    os.makedirs(osp.join(root, 'val'), exist_ok=True)
    train, val = [], []
    for kind, (wnid, index) in enumerate(IMAGENET_CLASSES):
        os.makedirs(osp.join(root, 'train', wnid), exist_ok=True)
        for i in range(n_train):
            name = f'{wnid}/{wnid}_{i + 1}.JPEG'
            _cls_image(rng, kind).save(osp.join(root, 'train', name), 'JPEG', quality=92)
            train.append(f'{name} {index}')
    for i in range(n_val * len(IMAGENET_CLASSES)):  # classes interleaved, as in the real val
        kind = i % len(IMAGENET_CLASSES)
        name = f'ILSVRC2012_val_{i + 1:08d}.JPEG'
        _cls_image(rng, kind).save(osp.join(root, 'val', name), 'JPEG', quality=92)
        val.append(f'{name} {IMAGENET_CLASSES[kind][1]}')
    for split, lines in (('train', train), ('val', val)):
        with open(osp.join(root, 'meta', f'{split}.txt'), 'w') as f:
            f.write('\n'.join(lines) + '\n')
    return root


def make_holdout(root: str, n: int = 6, seed: int = 4) -> str:
    """Images in no split, for folder inference: holdout/det/*.jpg and holdout/seg/*.jpg."""
    rng = np.random.default_rng(seed)
    kinds = {VOC_SEG_CLASSES.index(k): DET_KINDS[k][:2] for k in ('person', 'car', 'cat')}
    for task in ('det', 'seg'):
        os.makedirs(osp.join(root, task), exist_ok=True)
        for i in range(n):
            img = _det_image(rng)[0] if task == 'det' else _seg_sample(rng, 320, 240, kinds)[0]
            img.save(osp.join(root, task, f'{task}_{i:02d}.jpg'), quality=92)
    return root


# bump when the generated content changes, so stale copies are rebuilt
VERSION = '3'


def make_all(root: str) -> Dict[str, str]:
    """Every tiny dataset under ``root``: coco/, VOCdevkit/ (detection + segmentation),
    cityscapes/, imagenet/ and holdout/ images; writes ``root/VERSION`` last (marks a complete
    copy)."""
    out = dict(coco=make_coco(osp.join(root, 'coco')),
               voc_det=make_voc_det(osp.join(root, 'VOCdevkit')),
               voc_seg=make_voc_seg(osp.join(root, 'VOCdevkit')),
               cityscapes=make_cityscapes(osp.join(root, 'cityscapes')),
               imagenet=make_imagenet(osp.join(root, 'imagenet')),
               holdout=make_holdout(osp.join(root, 'holdout')))
    with open(osp.join(root, 'VERSION'), 'w') as f:
        f.write(VERSION + '\n')
    return out


def is_current(root: str) -> bool:
    """Whether ``root`` holds a complete copy made by this version of the generator."""
    try:
        with open(osp.join(root, 'VERSION')) as f:
            return f.read().strip() == VERSION
    except OSError:
        return False
