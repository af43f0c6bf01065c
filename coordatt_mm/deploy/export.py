"""ONNX export of coordatt_mm detectors and segmentors, checked against PyTorch on images.

:func:`export_checked` is ``tools/deploy/export_onnx.py``: a config resolved once into an
:class:`~coordatt_mm.deploy.plan.ExportPlan`, the end-to-end graph
(:mod:`coordatt_mm.deploy.end2end`) by default or the raw network to head outputs, then ONNX
Runtime and PyTorch run the same resized images and the file is written only if they agree
(:mod:`coordatt_mm.deploy.check`); INT8 after that (:mod:`coordatt_mm.deploy.quantize`).
"""
import contextlib
import json
import os
import os.path as osp
import tempfile
import warnings
from typing import Dict, List, Optional, Sequence, Tuple, Union

import torch
import torch.nn as nn

from coordatt_mm.deploy.plan import (
    CA_FORMS,
    OPSET,
    ExportPlan,
    ca_form_for,
    plan_export,
)
from coordatt_mm.deploy.runtime import META

__all__ = ['CA_FORMS', 'OPSET', 'export_checked', 'export_graph', 'export_model',
           'export_network', 'write_export']


@contextlib.contextmanager
def _ca_form(net: nn.Module, form: str):
    """CoordAtt layers export in ``form`` (see CoordAtt._forward_export) inside the block;
    ``form`` comes checked (:func:`~coordatt_mm.deploy.plan.ca_form_for`)."""
    from coordatt_mm.layers import CoordAtt
    layers = [m for m in net.modules() if isinstance(m, CoordAtt)]
    before = [m.export_form for m in layers]
    for m in layers:
        m.export_form = form
    try:
        yield
    finally:
        for m, f in zip(layers, before):
            m.export_form = f


def export_graph(net: nn.Module, out: str, example: Union[torch.Tensor, Tuple[torch.Tensor, ...]],
                 output_names: Sequence[str],
                 dynamic_axes: Optional[Dict[str, Dict[int, str]]] = None,
                 metadata: Optional[Dict[str, str]] = None, opset: int = OPSET,
                 ca_form: Optional[str] = None, input_names: Sequence[str] = ('input',)
                 ) -> None:
    """Export ``net`` (eval) for inputs like ``example`` (a tensor, or one per name of
    ``input_names``); ``dynamic_axes`` as torch.onnx.export takes them. One eval run first
    lets the layers that fold their weights (CoordAtt) export the folded ones as constants.
    CoordAtt exports in ``ca_form`` (``CA_FORMS``; default the FP32 one for the first
    input's size: 'pool' where static, 'broadcast' where its height or width is dynamic),
    checked by :func:`~coordatt_mm.deploy.plan.ca_form_for`, which refuses a static form at a
    dynamic size."""
    net = net.eval()
    example = example if isinstance(example, tuple) else (example,)
    dynamic_hw = bool({2, 3} & set((dynamic_axes or {}).get(input_names[0], {})))
    ca_form = ca_form_for('fp32', not dynamic_hw, ca_form)
    with torch.no_grad(), warnings.catch_warnings(), _ca_form(net, ca_form):
        # shapes read as Python numbers are constants on purpose where the size is static
        warnings.filterwarnings('ignore', category=torch.jit.TracerWarning)
        warnings.filterwarnings('ignore', message='.*is not a known ONNX.*')
        net(*example)
        torch.onnx.export(net, example, out, input_names=list(input_names),
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
                   ca_form: Optional[str] = None) -> None:
    """The raw form: ``net`` for one static (1, 3, H, W) normalised input; CoordAtt in
    ``ca_form`` (default 'pool')."""
    export_graph(net, out, torch.randn(1, 3, *shape), output_names, opset=opset,
                 ca_form=ca_form)


def raw_network(plan: ExportPlan, model: nn.Module) -> nn.Module:
    """The model from the normalised image to its head outputs (``--raw``)."""
    from coordatt_mm.apis.build import ClassifierLogits, DetectorHeads, SegmentorLogits
    wrapper = dict(det=DetectorHeads, seg=SegmentorLogits, cls=ClassifierLogits)[plan.task]
    return wrapper(model).eval()


def metadata(plan: ExportPlan, model: nn.Module) -> Dict[str, str]:
    """What the runtime reads from the model file (``coordatt_mm.*`` keys): the task, graph
    form, config, class names and palette, the RGB value padding stands for, precision,
    CoordAtt's form and, for segmentation, the head's ``align_corners``."""
    from coordatt_mm.deploy.end2end import network_sees_rgb
    pre = model.data_preprocessor
    mean = pre.mean.flatten().tolist()  # in the network's channel order
    if not network_sees_rgb(pre):
        mean = mean[::-1]
    meta = {'task': plan.task, 'form': 'raw' if plan.raw else 'end2end',
            'config': plan.config, 'precision': plan.precision, 'ca_form': plan.ca_form,
            'classes': json.dumps(list(model.dataset_meta.get('classes', []))),
            'palette': json.dumps([list(map(int, c)) for c in model.dataset_meta['palette']]
                                  if model.dataset_meta.get('palette') else None),
            'pad_rgb': json.dumps(mean)}
    if plan.task == 'seg':
        meta['align_corners'] = str(bool(model.decode_head.align_corners)).lower()
    return {META + k: v for k, v in meta.items()}


def write_export(plan: ExportPlan, model: nn.Module, out: str) -> dict:
    """Export a built detector or segmentor (eval, CPU) to ``out`` as ``plan`` says; what was
    exported (task, form, input size, inputs, outputs, static, CA form, precision)."""
    hw = plan.input_hw
    info = dict(task=plan.task, form='raw' if plan.raw else 'end2end', input_hw=hw,
                dynamic=not plan.static, static=plan.static, ca_form=plan.ca_form,
                precision=plan.precision)
    if plan.raw:
        net = raw_network(plan, model)
        with torch.no_grad():
            outs = net(torch.randn(1, 3, *hw))
        names = (['logits'] if plan.task != 'det' else
                 [f'cls_score_{i}' for i in range(len(outs) // 2)]
                 + [f'bbox_pred_{i}' for i in range(len(outs) // 2)])
        example, inputs = torch.randn(1, 3, *hw), ('input',)
    else:
        from coordatt_mm.deploy.end2end import end_to_end
        net = end_to_end(plan, model)
        names, inputs = list(net.output_names), net.input_names
        sizes = torch.tensor(hw, dtype=torch.int64)
        example = (torch.rand(1, 3, *hw) * 255, sizes, sizes)[:len(inputs)]
    export_graph(net, out, example, names, plan.dynamic_axes(names), metadata(plan, model),
                 plan.opset, plan.ca_form, inputs)
    return dict(info, inputs=list(inputs), outputs=names)


def export_model(cfg, model: nn.Module, out: str, input_hw=None, raw: bool = False,
                 with_logits: bool = False, opset: int = OPSET, ca_form: Optional[str] = None,
                 static: bool = False) -> dict:
    """Export a built detector or segmentor (eval, CPU) to ``out``, unchecked; what was
    exported. ``ca_form``: CoordAtt's graph at a static size (``CA_FORMS``; default the
    fastest, :func:`~coordatt_mm.deploy.plan.ca_form_for`); ``static``: a segmentation
    graph of one input size."""
    plan = plan_export(cfg, input_hw, static, raw, with_logits, ca_form, opset,
                       check_images=())
    return write_export(plan, model, out)


def export_checked(config: str, checkpoint: str, out: str, input_hw=None, raw: bool = False,
                   with_logits: bool = False, images: Optional[List[str]] = None,
                   opset: int = OPSET, cfg_options: Optional[dict] = None,
                   int8_images: Optional[List[str]] = None,
                   ca_form: Optional[str] = None, static: bool = False) -> dict:
    """Build, export to a temporary file, check against PyTorch on ``images`` (end-to-end:
    the images through the config's test pipeline, by default the demo's held-out ones;
    raw: a random input), and only then move the file to ``out``. With ``int8_images``, the
    checked float graph is then quantised to INT8, calibrated on those images (read before
    anything is exported), and compared with it on ``images``. ``ca_form``: CoordAtt's graph
    at a static size (``CA_FORMS``; default the fastest for the precision); ``static``: a
    segmentation graph of one size (``input_hw``). The report; raises
    :class:`~coordatt_mm.deploy.plan.ExportPlanError` (before the model is built),
    :class:`~coordatt_mm.deploy.check.ExportCheckFailed` or
    :class:`~coordatt_mm.deploy.quantize.CalibrationError` without writing anything."""
    from coordatt_mm.apis.build import build_model, load_config
    from coordatt_mm.deploy import check
    cfg = load_config(config)
    if cfg_options:
        cfg.merge_from_dict(cfg_options)
    # planned, and the calibration images read, before the model is built: what cannot be
    # exported fails at once
    plan = plan_export(cfg, input_hw, static, raw, with_logits, ca_form, opset, images,
                       int8_images)
    calibration = None
    if plan.precision == 'int8':
        from coordatt_mm.deploy.quantize import ImageCalibration, quantize_int8
        calibration = ImageCalibration(plan)
    cfg, model = build_model(cfg, checkpoint)
    folder = osp.dirname(osp.abspath(out))
    os.makedirs(folder, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=folder, prefix='.export_') as tmp_dir:
        tmp = osp.join(tmp_dir, 'float.onnx')
        info = write_export(plan, model, tmp)
        info['check'] = (check.raw_outputs(plan, model, tmp) if plan.raw else
                         check.on_images(plan, model, tmp))
        if calibration is not None:
            q = osp.join(tmp_dir, 'int8.onnx')
            info['int8'] = quantize_int8(tmp, q, calibration.for_model(tmp))
            info['int8'].update(calibration_images=len(calibration.inputs),
                                calibration_skipped=calibration.skipped)
            info['int8_check'] = check.int8_against_float(plan, q, tmp)
            tmp = q
        os.replace(tmp, out)
    return info
