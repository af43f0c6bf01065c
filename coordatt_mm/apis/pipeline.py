"""A config's test pipeline applied to images in memory: what its test data loader would give
the model for an image, without the file or its annotations."""
from typing import List, Optional, Sequence

import numpy as np


def test_pipeline_steps(cfg) -> List[dict]:
    """The config's ``test_pipeline``, or else the pipeline of the dataset its
    ``test_dataloader`` reads."""
    from coordatt_mm.apis.build import test_dataset_cfg
    return list(cfg.get('test_pipeline') or test_dataset_cfg(cfg)['pipeline'])


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
