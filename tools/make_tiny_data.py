#!/usr/bin/env python
"""Write the tiny synthetic datasets in their real on-disk formats.

    python tools/make_tiny_data.py [ROOT]      # default: data/tiny

ROOT/coco         annotations/instances_{train,val}2017.json, train2017/, val2017/
ROOT/VOCdevkit    VOC2007 + VOC2012 (Annotations, JPEGImages, ImageSets/Main) for detection;
                  VOC2012 SegmentationClass, SegmentationClassAug, ImageSets/Segmentation
ROOT/cityscapes   leftImg8bit/{train,val}/<city>/, gtFine/{train,val}/<city>/*_labelTrainIds.png
ROOT/imagenet     train/<wnid>/*.JPEG, val/ILSVRC2012_val_*.JPEG, meta/{train,val}.txt
ROOT/holdout      det/ and seg/ images in no split, for folder inference

The content is deterministic (fixed seeds). A complete, current ROOT is kept as it is; an
incomplete or outdated one is rebuilt; --overwrite always rebuilds.
"""
import argparse
import os
import os.path as osp
import shutil
import sys


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    ap.add_argument('root', nargs='?', default=osp.join(osp.dirname(osp.dirname(
        osp.abspath(__file__))), 'data', 'tiny'))
    ap.add_argument('--overwrite', action='store_true', help='replace an existing ROOT')
    args = ap.parse_args(argv)
    from coordatt_mm.datasets import is_current, make_all
    if osp.exists(args.root):
        if is_current(args.root) and not args.overwrite:
            print(f'{args.root} is up to date; kept (--overwrite rebuilds it)')
            return 0
        if not is_current(args.root) and not osp.exists(osp.join(args.root, 'VERSION')) \
                and os.listdir(args.root) and not args.overwrite:
            print(f'error: {args.root} exists and was not made by this tool; '
                  f'choose another ROOT or pass --overwrite', file=sys.stderr)
            return 2
        shutil.rmtree(args.root)
    for name, path in make_all(args.root).items():
        print(f'{name:10s} {path}')
    return 0


if __name__ == '__main__':
    sys.exit(main())
