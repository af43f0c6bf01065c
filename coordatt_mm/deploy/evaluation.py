"""Scoring an exported model with the codebase's own evaluator (``tools/test.py CONFIG
MODEL.onnx``): the config's test loop, data and metric, with the network replaced by ONNX
Runtime running the end-to-end graph (label maps at each image's original size, as mmseg's
post-processing gives them)."""
import os
import sys
from typing import Optional

import numpy as np
import torch
from mmengine.model import BaseModel
from mmengine.structures import InstanceData, PixelData

from coordatt_mm.registry import register_model


@register_model(scopes=('mmdet', 'mmseg'))
class OnnxRuntimeModel(BaseModel):
    """Stands in for a detector or segmentor in mmengine's test loop: each batch of packed
    images (the config's test pipeline) goes through ONNX Runtime, and the predictions come
    back as the codebase's data samples in original-image pixels (``pred_instances`` with
    boxes, scores and labels; ``pred_sem_seg`` at the original resolution), as the PyTorch
    model's ``test_step`` returns them.

    Args:
        model_file: an end-to-end export (``tools/deploy/export_onnx.py``).
        device: ``'cpu'`` or ``'cuda'`` (ONNX Runtime's CUDA execution provider).
    """

    def __init__(self, model_file: str, device: str = 'cpu', data_preprocessor=None) -> None:
        # the runner hands over the config's data preprocessor: the graph has its own
        super().__init__()
        from coordatt_mm.deploy.runtime import OnnxModel
        self.onnx = OnnxModel(model_file, device)

    def forward(self, inputs, data_samples=None, mode: str = 'predict'):
        if mode != 'predict':
            raise RuntimeError(f'{self.onnx.path}: an exported model only predicts')
        return self._predict(inputs, data_samples)

    def test_step(self, data):
        return self._predict(data['inputs'], data['data_samples'])

    val_step = test_step

    def _predict(self, inputs, data_samples):
        from coordatt_mm.apis.pipeline import rgb_input
        images = [rgb_input(x).numpy() for x in inputs]
        metas = [sample.metainfo for sample in data_samples]
        if self.onnx.task == 'det':
            preds = self.onnx.detect(images, [m['scale_factor'] for m in metas])
            for sample, (boxes, scores, labels) in zip(data_samples, preds):
                sample.pred_instances = InstanceData(bboxes=torch.from_numpy(boxes),
                                                     scores=torch.from_numpy(scores),
                                                     labels=torch.from_numpy(labels))
            return data_samples
        for x, sample, meta in zip(images, data_samples, metas):  # each at its own size
            labels = self.onnx.segment(x, meta['ori_shape'][:2])
            sample.pred_sem_seg = PixelData(data=torch.from_numpy(
                labels.astype(np.int64))[None])
        return data_samples


def use_onnx_model(cfg, model_file: str, device: str = 'cpu') -> None:
    """Make ``cfg`` test ``model_file`` instead of its network (no checkpoint to load)."""
    cfg.model = dict(type='OnnxRuntimeModel', model_file=model_file, device=device)
    cfg.load_from = None


def evaluate_onnx(config: str, model_file: str, work_dir: Optional[str] = None,
                  cfg_options: Optional[dict] = None, launcher: str = 'none',
                  local_rank: int = 0, device: str = 'cpu') -> int:
    """``tools/test.py CONFIG MODEL.onnx``: score an end-to-end export, run by ONNX Runtime on
    ``device``, with the config's test set and evaluator; write ``test_metrics.json`` (as
    :func:`coordatt_mm.apis.run.test` for checkpoints). The exit status (1 with a one-line
    error for a model it cannot use)."""
    from coordatt_mm.apis.run import load_config, run_test_loop
    from coordatt_mm.deploy.runtime import OnnxModel
    os.environ.setdefault('LOCAL_RANK', str(local_rank))
    try:
        OnnxModel(model_file, device)  # readable, end-to-end, ours: or a one-line error
    except (RuntimeError, FileNotFoundError, ValueError) as e:
        print(f'error: {e}', file=sys.stderr)
        return 1
    cfg = load_config(config, work_dir, cfg_options, launcher)
    use_onnx_model(cfg, model_file, device)
    return run_test_loop(cfg, config, model_file, 'onnxruntime')
