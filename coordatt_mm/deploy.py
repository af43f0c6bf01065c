"""ONNX export of coordatt_mm detectors and segmentors (the network to raw head outputs)."""
from typing import List, Sequence, Tuple

import numpy as np
import torch
import torch.nn as nn

from coordatt_mm.apis.build import build_model, network
from coordatt_mm.registry import task_of


def load_for_export(config: str, checkpoint: str) -> Tuple[nn.Module, str]:
    cfg, model = build_model(config, checkpoint)
    return network(cfg, model), task_of(cfg)


def export_onnx(config: str, checkpoint: str, out: str, shape: Sequence[int],
                opset: int = 17) -> Tuple[List[str], str]:
    net, task = load_for_export(config, checkpoint)
    dummy = torch.randn(1, 3, *shape)
    if task == 'det':
        n = len(net(dummy)) // 2
        names = [f'cls_score_{i}' for i in range(n)] + [f'bbox_pred_{i}' for i in range(n)]
    else:
        names = ['logits']
    with torch.no_grad():
        torch.onnx.export(net, (dummy,), out, input_names=['input'], output_names=names,
                          opset_version=opset, dynamo=False, do_constant_folding=True)
    return names, task


def max_abs_diff(config: str, checkpoint: str, onnx_file: str, shape: Sequence[int],
                 seed: int = 0) -> float:
    """Largest |torch - onnxruntime| over all outputs for one random input."""
    import onnxruntime as ort
    net, _ = load_for_export(config, checkpoint)
    x = torch.randn(1, 3, *shape, generator=torch.Generator().manual_seed(seed))
    with torch.no_grad():
        ref = net(x)
    ref = ref if isinstance(ref, tuple) else (ref,)
    sess = ort.InferenceSession(onnx_file, providers=['CPUExecutionProvider'])
    got = sess.run(None, {'input': x.numpy()})
    return max(float(np.abs(a.numpy() - b).max()) for a, b in zip(ref, got))
