"""ONNX export of coordatt_mm detectors and segmentors, checked against PyTorch on images.

:func:`export_model` is ``tools/deploy/export_onnx.py``: the end-to-end graph
(:mod:`coordatt_mm.deploy.end2end`) by default, or the raw network to head outputs
(``raw=True``); then ONNX Runtime and PyTorch run the same resized images and the file is
written only if they agree (:mod:`coordatt_mm.deploy.check`).
"""
import contextlib
import json
import os
import os.path as osp
import tempfile
import warnings
from typing import Dict, List, Optional, Sequence, Tuple

import torch
import torch.nn as nn

from coordatt_mm.deploy.runtime import META

OPSET = 17
CA_FORMS = ('pool', 'product', 'broadcast')


@contextlib.contextmanager
def _ca_form(net: nn.Module, form: str):
    """CoordAtt layers export in ``form`` (see CoordAtt._forward_export) inside the block."""
    from coordatt_mm.layers import CoordAtt
    if form not in CA_FORMS:
        raise ValueError(f'CA export form {form!r}: expected one of {", ".join(CA_FORMS)}')
    layers = [m for m in net.modules() if isinstance(m, CoordAtt)]
    before = [m.export_form for m in layers]
    for m in layers:
        m.export_form = form
    try:
        yield
    finally:
        for m, f in zip(layers, before):
            m.export_form = f


def export_graph(net: nn.Module, out: str, example: torch.Tensor, output_names: Sequence[str],
                 dynamic_axes: Optional[Dict[str, Dict[int, str]]] = None,
                 metadata: Optional[Dict[str, str]] = None, opset: int = OPSET,
                 ca_form: str = 'pool') -> None:
    """Export ``net`` (eval) for inputs like ``example``, named ``input``; ``dynamic_axes``
    as torch.onnx.export takes them. One eval run first lets the layers that fold their
    weights (CoordAtt) export the folded ones as constants. CoordAtt exports in ``ca_form``
    (``CA_FORMS``), or broadcasting where height or width are dynamic."""
    net = net.eval()
    if dynamic_axes and any({2, 3} & set(axes) for axes in dynamic_axes.values()):
        ca_form = 'broadcast'
    with torch.no_grad(), warnings.catch_warnings(), _ca_form(net, ca_form):
        # shapes read as Python numbers are constants on purpose where the size is static
        warnings.filterwarnings('ignore', category=torch.jit.TracerWarning)
        warnings.filterwarnings('ignore', message='.*is not a known ONNX.*')
        net(example)
        torch.onnx.export(net, (example,), out, input_names=['input'],
                          output_names=list(output_names), dynamic_axes=dynamic_axes,
                          opset_version=opset, dynamo=False, do_constant_folding=True)
    if metadata:
        import onnx
        model = onnx.load(out)
        for k, v in metadata.items():
            model.metadata_props.add(key=k, value=v)
        onnx.save(model, out)


def export_network(net: nn.Module, out: str, shape: Sequence[int],
                   output_names: Sequence[str], opset: int = OPSET,
                   ca_form: str = 'pool') -> None:
    """The raw form: ``net`` for one static (1, 3, H, W) normalised input."""
    export_graph(net, out, torch.randn(1, 3, *shape), output_names, opset=opset,
                 ca_form=ca_form)


def default_input_hw(cfg, task: str) -> Tuple[int, int]:
    """(H, W) of the export: for detection, the test pipeline's resize size (padded to the
    data preprocessor's divisor); for segmentation, the example used while tracing."""
    from coordatt_mm.apis.build import test_dataset_cfg
    steps = cfg.get('test_pipeline') or test_dataset_cfg(cfg)['pipeline']
    resize = next((s for s in steps if s['type'] == 'Resize'), None)
    if resize is None or 'scale' not in resize:
        return (512, 512)
    w, h = resize['scale']
    if task == 'seg' or resize.get('keep_ratio'):
        h, w = min(h, w), max(h, w)  # a keep-ratio resize fits the image inside (long, short)
    div = cfg.model.get('data_preprocessor', {}).get('pad_size_divisor', 1) or 1
    return (-(-int(h) // div) * div, -(-int(w) // div) * div)


def _metadata(cfg, model, task: str, form: str) -> Dict[str, str]:
    from coordatt_mm.deploy.end2end import network_sees_rgb
    pre = model.data_preprocessor
    mean = pre.mean.flatten().tolist()  # in the network's channel order
    if not network_sees_rgb(pre):
        mean = mean[::-1]
    meta = {'task': task, 'form': form, 'config': osp.basename(cfg.filename),
            'classes': json.dumps(list(model.dataset_meta.get('classes', []))),
            'palette': json.dumps([list(map(int, c)) for c in model.dataset_meta['palette']]
                                  if model.dataset_meta.get('palette') else None),
            'pad_rgb': json.dumps(mean)}
    if task == 'seg':
        meta['align_corners'] = str(bool(model.decode_head.align_corners)).lower()
    return {META + k: v for k, v in meta.items()}


def export_model(cfg, model: nn.Module, out: str, input_hw: Optional[Tuple[int, int]] = None,
                 raw: bool = False, with_logits: bool = False, opset: int = OPSET,
                 ca_form: str = 'pool') -> dict:
    """Export a built detector or segmentor (eval, CPU) to ``out``; what was exported.
    ``ca_form``: CoordAtt's graph at a static size (``CA_FORMS``; dynamic sizes broadcast)."""
    from coordatt_mm.apis.build import network
    from coordatt_mm.deploy.end2end import UnsupportedForExport, end_to_end
    from coordatt_mm.registry import task_of
    task = task_of(cfg)
    hw = tuple(input_hw or default_input_hw(cfg, task))
    if raw:
        net = network(cfg, model)
        with torch.no_grad():
            outs = net(torch.randn(1, 3, *hw))
        names = (['logits'] if task != 'det' else
                 [f'cls_score_{i}' for i in range(len(outs) // 2)]
                 + [f'bbox_pred_{i}' for i in range(len(outs) // 2)])
        export_graph(net, out, torch.randn(1, 3, *hw), names,
                     metadata=_metadata(cfg, model, task, 'raw'), opset=opset, ca_form=ca_form)
        return dict(task=task, form='raw', input_hw=hw, outputs=names, dynamic=False)
    if task not in ('det', 'seg'):
        raise UnsupportedForExport(f'{cfg.filename}: {task} configs export with --raw only')
    net = end_to_end(cfg, model, hw, with_logits)
    names = list(net.output_names)
    example = torch.rand(1, 3, *hw) * 255
    if task == 'det':  # static size, any batch
        axes = {'input': {0: 'batch'}, **{n: {0: 'batch'} for n in names}}
    else:
        axes = {'input': {0: 'batch', 2: 'height', 3: 'width'},
                'labels': {0: 'batch', 1: 'height', 2: 'width'}}
        if with_logits:
            axes['logits'] = {0: 'batch', 2: 'height', 3: 'width'}
    export_graph(net, out, example, names, axes, _metadata(cfg, model, task, 'end2end'), opset,
                 ca_form)
    return dict(task=task, form='end2end', input_hw=hw, outputs=names, dynamic=task == 'seg')


def export_checked(config: str, checkpoint: str, out: str, input_hw=None, raw: bool = False,
                   with_logits: bool = False, images: Optional[List[str]] = None,
                   opset: int = OPSET, cfg_options: Optional[dict] = None,
                   int8_images: Optional[List[str]] = None,
                   ca_form: Optional[str] = None) -> dict:
    """Build, export to a temporary file, check against PyTorch on ``images`` (end-to-end:
    the images through the config's test pipeline; raw: random inputs), and only then move
    the file to ``out``. With ``int8_images``, the checked float graph is then quantised to
    INT8, calibrated on those images, and compared with it on ``images``. ``ca_form``:
    CoordAtt's graph at a static size (``CA_FORMS``; default: 'broadcast' for INT8, 'pool'
    for FP32, the fastest in ONNX Runtime). The report; raises :class:`ExportCheckFailed`
    without writing."""
    from coordatt_mm.apis.build import build_model
    from coordatt_mm.deploy import check
    cfg, model = build_model(config, checkpoint, cfg_options=cfg_options)
    folder = osp.dirname(osp.abspath(out))
    os.makedirs(folder, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=folder, prefix='.export_') as tmp_dir:
        tmp = osp.join(tmp_dir, 'float.onnx')
        if ca_form is None:
            ca_form = 'pool' if int8_images is None else 'broadcast'
        info = export_model(cfg, model, tmp, input_hw, raw, with_logits, opset, ca_form)
        if raw:
            info['check'] = check.raw_outputs(cfg, model, tmp, info['input_hw'])
        else:
            info['check'] = check.on_images(cfg, model, tmp, images)
        if int8_images is not None:
            from coordatt_mm.deploy.quantize import ImageCalibration, quantize_int8
            q = osp.join(tmp_dir, 'int8.onnx')
            info['int8'] = quantize_int8(tmp, q, ImageCalibration(cfg, tmp, int8_images))
            info['int8']['calibration_images'] = len(int8_images)
            info['int8_check'] = check.int8_against_float(cfg, q, tmp, images)
            tmp = q
        os.replace(tmp, out)
    return info
