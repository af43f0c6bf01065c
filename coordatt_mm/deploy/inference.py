"""Folder inference with an exported model: the predictor ``coordatt-infer`` runs for an
``.onnx`` file, in place of :class:`coordatt_mm.apis.infer.TorchPredictor`, with the same
outputs (written by :func:`coordatt_mm.apis.infer.run`)."""
from typing import List, Optional

import numpy as np


class OnnxPredictor:
    """An end-to-end ONNX export of a config's model, run by ONNX Runtime; the same outputs
    as :class:`~coordatt_mm.apis.infer.TorchPredictor`. The config gives the test pipeline
    (resizing); the model file its class names and palette.

    Args:
        config (str): the config the model was exported from.
        model_file (str): the ``.onnx`` file (``tools/deploy/export_onnx.py``).
        device (str, optional): ``'cpu'`` or ``'cuda'`` (ONNX Runtime's CUDA execution
            provider). Defaults to None: CUDA where that provider is installed.
    """

    backend = 'onnxruntime'

    def __init__(self, config: str, model_file: str, device: Optional[str] = None) -> None:
        from coordatt_mm.apis.build import load_config
        from coordatt_mm.apis.pipeline import TestPipeline
        from coordatt_mm.deploy.runtime import OnnxModel
        from coordatt_mm.registry import task_of
        if device is None:
            import onnxruntime as ort
            device = 'cuda' if 'CUDAExecutionProvider' in ort.get_available_providers() \
                else 'cpu'
        self.cfg = load_config(config)
        self.task = task_of(self.cfg)
        self.model = OnnxModel(model_file, device)
        if self.model.task != self.task:
            raise ValueError(f'{model_file}: a {self.model.task} model, but {config} is a '
                             f'{self.task} config')
        self.classes, self.palette = self.model.classes, self.model.palette
        self.pipeline = TestPipeline(self.cfg)

    def __call__(self, images_rgb: List[np.ndarray]) -> list:
        from coordatt_mm.apis.pipeline import rgb_input
        packed = [self.pipeline(im) for im in images_rgb]
        inputs = [rgb_input(p['inputs']).numpy() for p in packed]
        metas = [p['data_samples'].metainfo for p in packed]
        if self.task == 'det':
            return self.model.detect(inputs, [m['scale_factor'] for m in metas])
        # each on its own: the graph takes one original size per run, as mmseg tests them
        return [self.model.segment(x, m['ori_shape'][:2]) for x, m in zip(inputs, metas)]
