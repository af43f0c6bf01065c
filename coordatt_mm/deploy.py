"""ONNX export of coordatt_mm networks (to raw head outputs) and ONNX Runtime sessions for them.

CoordAtt exports in the form ONNX Runtime keeps in its blocked-layout kernels (see
``CoordAtt._forward_export``).
"""
import json
import os
import warnings
from typing import Dict, List, Sequence, Tuple

import numpy as np
import torch
import torch.nn as nn

from coordatt_mm.apis.build import build_model, network
from coordatt_mm.registry import task_of


def load_for_export(config: str, checkpoint: str) -> Tuple[nn.Module, str]:
    cfg, model = build_model(config, checkpoint)
    return network(cfg, model), task_of(cfg)


def export_network(net: nn.Module, out: str, shape: Sequence[int],
                   output_names: Sequence[str], opset: int = 17) -> None:
    """Export ``net`` (eval) for one (1, 3, H, W) input named ``input``. One eval run first
    lets the layers that fold their weights (CoordAtt) export the folded ones as constants."""
    x = torch.randn(1, 3, *shape)
    with torch.no_grad(), warnings.catch_warnings():
        # shapes read as Python numbers are constants on purpose: one graph per input size
        warnings.filterwarnings('ignore', category=torch.jit.TracerWarning)
        net.eval()(x)
        torch.onnx.export(net, (x,), out, input_names=['input'], output_names=list(output_names),
                          opset_version=opset, dynamo=False, do_constant_folding=True)


def export_onnx(config: str, checkpoint: str, out: str, shape: Sequence[int],
                opset: int = 17) -> Tuple[List[str], str]:
    net, task = load_for_export(config, checkpoint)
    if task == 'det':
        with torch.no_grad():
            n = len(net(torch.randn(1, 3, *shape))) // 2
        names = [f'cls_score_{i}' for i in range(n)] + [f'bbox_pred_{i}' for i in range(n)]
    else:
        names = ['logits']
    export_network(net, out, shape, names, opset)
    return names, task


def ort_session(onnx_file: str, threads: int = 2, profile: bool = False):
    """An ONNX Runtime CPU session. Intra-op threads do not spin between runs: a waiting
    session's spinning threads would slow down another one timed beside it."""
    import onnxruntime as ort
    so = ort.SessionOptions()
    so.intra_op_num_threads, so.inter_op_num_threads = threads, 1
    so.add_session_config_entry('session.intra_op.allow_spinning', '0')
    so.enable_profiling = profile
    return ort.InferenceSession(onnx_file, so, providers=['CPUExecutionProvider'])


def ort_kernel_shares(onnx_file: str, x: np.ndarray, runs: int = 20,
                      threads: int = 2) -> Dict[str, float]:
    """ONNX Runtime's own profile of ``runs`` runs: share of kernel time per operator type
    (after its graph optimisations: fused convs, layout reorders, ...)."""
    sess = ort_session(onnx_file, threads, profile=True)
    for _ in range(runs):
        sess.run(None, {'input': x})
    path = sess.end_profiling()
    with open(path) as f:
        events = json.load(f)
    os.remove(path)
    total: Dict[str, float] = {}
    for e in events:
        if e.get('cat') == 'Node' and e['name'].endswith('_kernel_time'):
            op = e['args']['op_name']
            total[op] = total.get(op, 0.0) + e['dur']
    s = sum(total.values()) or 1.0
    return {k: v / s for k, v in sorted(total.items(), key=lambda kv: -kv[1])}


def max_abs_diff(config: str, checkpoint: str, onnx_file: str, shape: Sequence[int],
                 seed: int = 0) -> float:
    """Largest |torch - onnxruntime| over all outputs for one random input."""
    net, _ = load_for_export(config, checkpoint)
    x = torch.randn(1, 3, *shape, generator=torch.Generator().manual_seed(seed))
    with torch.no_grad():
        ref = net(x)
    ref = ref if isinstance(ref, tuple) else (ref,)
    got = ort_session(onnx_file).run(None, {'input': x.numpy()})
    return max(float(np.abs(a.numpy() - b).max()) for a, b in zip(ref, got))
