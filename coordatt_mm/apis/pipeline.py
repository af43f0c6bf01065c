"""A config's test pipeline applied to images in memory: what its test data loader would give
the model for an image, without the file or its annotations."""
import numpy as np


class TestPipeline:
    """RGB uint8 (H, W, 3) image -> the packed ``inputs`` (3, h, w) BGR uint8 tensor after the
    config's resizing, and the ``data_samples`` with its meta (``img_shape``, ``ori_shape``,
    ``scale_factor``, ...), as the config's ``test_pipeline`` makes them."""

    def __init__(self, cfg) -> None:
        from mmengine.dataset import Compose
        from mmengine.registry import init_default_scope

        from coordatt_mm.apis.build import test_dataset_cfg
        steps = cfg.get('test_pipeline') or test_dataset_cfg(cfg)['pipeline']
        steps = [dict(s, type='LoadImageFromNDArray') if s['type'] == 'LoadImageFromFile'
                 else s for s in steps if 'LoadAnnotations' not in s['type']]
        init_default_scope(cfg.default_scope)
        self.compose = Compose(steps)

    def __call__(self, image_rgb: np.ndarray) -> dict:
        return self.compose(dict(img=np.ascontiguousarray(image_rgb[..., ::-1]), img_id=0))


def rgb_input(packed_inputs):
    """The packed BGR uint8 (3, h, w) image as the exported graphs take it: RGB float32."""
    return packed_inputs[[2, 1, 0]].float()
