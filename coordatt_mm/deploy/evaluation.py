"""Scoring an exported model with the codebase's own evaluator (``tools/test.py CONFIG
MODEL.onnx``): the config's test loop, data and metric, with the network replaced by ONNX
Runtime running the end-to-end graph."""
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
        from coordatt_mm.deploy.runtime import detections, label_map
        images = [rgb_input(x).numpy() for x in inputs]
        if self.onnx.task == 'det':
            batch, sizes = self.onnx.canvas(images)
            out = self.onnx.run(batch)
            for i, sample in enumerate(data_samples):
                boxes, scores, labels = detections(out['dets'][i], out['labels'][i], sizes[i],
                                                   sample.metainfo['scale_factor'])
                sample.pred_instances = InstanceData(bboxes=torch.from_numpy(boxes),
                                                     scores=torch.from_numpy(scores),
                                                     labels=torch.from_numpy(labels))
            return data_samples
        for x, sample in zip(images, data_samples):  # each at its own size
            out = self.onnx.run(x[None])
            labels = label_map(out, 0, x.shape[1:], sample.metainfo['ori_shape'],
                               self.onnx.align_corners)
            sample.pred_sem_seg = PixelData(data=torch.from_numpy(
                labels.astype(np.int64))[None])
        return data_samples


def use_onnx_model(cfg, model_file: str, device: str = 'cpu') -> None:
    """Make ``cfg`` test ``model_file`` instead of its network (no checkpoint to load)."""
    cfg.model = dict(type='OnnxRuntimeModel', model_file=model_file, device=device)
    cfg.load_from = None
