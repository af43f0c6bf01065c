"""A config's test pipeline applied to images in memory: what its test data loader would give
the model for an image, without the file or its annotations; and the input size it makes."""
from typing import List, Optional, Sequence, Tuple

import numpy as np


def test_pipeline_steps(cfg) -> List[dict]:
    """The config's ``test_pipeline``, or else the pipeline of the dataset its
    ``test_dataloader`` reads."""
    from coordatt_mm.apis.build import test_dataset_cfg
    return list(cfg.get('test_pipeline') or test_dataset_cfg(cfg)['pipeline'])


def resized_shapes(cfg, steps: Optional[Sequence[dict]] = None) -> List[Tuple[int, int]]:
    """The (H, W) network inputs that the test pipeline's ``Resize`` makes, rounded up to the
    data preprocessor's ``pad_size_divisor``: its ``scale`` (W, H); for a keep-ratio resize,
    which fits each image inside the scale's long and short sides, both orientations
    (landscape, (short, long), first), each the largest image of that orientation. [] where
    the pipeline resizes to no scale (its images keep their sizes).

    Args:
        cfg (Config): the config (its data preprocessor; its test pipeline unless ``steps``).
        steps (Sequence[dict], optional): the pipeline's steps instead. Defaults to None
            (:func:`test_pipeline_steps`).
    """
    steps = test_pipeline_steps(cfg) if steps is None else steps
    resize = next((s for s in steps if s['type'] == 'Resize'), None)
    if resize is None or resize.get('scale') is None:
        return []
    scale = resize['scale']
    w, h = (scale, scale) if isinstance(scale, int) else scale
    div = (cfg.model.get('data_preprocessor') or {}).get('pad_size_divisor', 1) or 1

    def padded(v) -> int:
        return -(-int(v) // div) * div
    if not resize.get('keep_ratio'):
        return [(padded(h), padded(w))]
    short, long = padded(min(h, w)), padded(max(h, w))
    return [(short, long)] + ([(long, short)] if short != long else [])


def pipeline_input_hw(cfg, steps: Optional[Sequence[dict]] = None,
                      every: bool = False) -> Optional[Tuple[int, int]]:
    """(H, W) of the network input that the test pipeline makes (:func:`resized_shapes`): a
    keep-ratio resize as its landscape (short, long) sides, or with ``every`` the size that
    holds every image it makes (the square of its long side). None where the pipeline
    resizes to no scale.

    Args:
        cfg (Config): the config (its data preprocessor; its test pipeline unless ``steps``).
        steps (Sequence[dict], optional): the pipeline's steps instead. Defaults to None.
        every (bool): a size that either orientation fits. Defaults to False.
    """
    shapes = resized_shapes(cfg, steps)
    if not shapes:
        return None
    if every:
        return max(h for h, _ in shapes), max(w for _, w in shapes)
    return shapes[0]


class TestPipeline:
    """RGB uint8 (H, W, 3) image -> the packed ``inputs`` (3, h, w) BGR uint8 tensor after the
    config's resizing, and the ``data_samples`` with its meta (``img_shape``, ``ori_shape``,
    ``scale_factor``, ...), as the config's ``test_pipeline`` makes them.

    Args:
        cfg (Config, optional): the config whose test pipeline to apply.
        steps (Sequence[dict], optional): the pipeline's steps instead (with ``scope``),
            e.g. an export plan's.
        scope (str, optional): the registries' scope of ``steps`` (``'mmdet'``, ...).
    """

    def __init__(self, cfg=None, steps: Optional[Sequence[dict]] = None,
                 scope: Optional[str] = None) -> None:
        from mmengine.dataset import Compose
        from mmengine.registry import init_default_scope
        if cfg is not None:
            steps, scope = test_pipeline_steps(cfg), cfg.default_scope
        steps = [dict(s, type='LoadImageFromNDArray') if s['type'] == 'LoadImageFromFile'
                 else s for s in steps if 'LoadAnnotations' not in s['type']]
        init_default_scope(scope)
        self.compose = Compose(steps)

    def __call__(self, image_rgb: np.ndarray) -> dict:
        return self.compose(dict(img=np.ascontiguousarray(image_rgb[..., ::-1]), img_id=0))


def rgb_input(packed_inputs):
    """The packed BGR uint8 (3, h, w) image as the exported graphs take it: RGB float32."""
    return packed_inputs[[2, 1, 0]].float()
