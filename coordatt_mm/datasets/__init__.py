from coordatt_mm.datasets.tiny import (
    is_current,
    make_all,
    make_cityscapes,
    make_coco,
    make_holdout,
    make_imagenet,
    make_voc_det,
    make_voc_seg,
)

__all__ = ['is_current', 'make_all', 'make_cityscapes', 'make_coco', 'make_holdout',
           'make_imagenet', 'make_voc_det', 'make_voc_seg']
