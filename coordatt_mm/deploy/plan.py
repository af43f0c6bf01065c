"""What one export is, resolved once from a config: :class:`ExportPlan`.

The task, the input size and whether it is static, the test pipeline, CoordAtt's graph form,
the precision and the images of the checks are read from the config here and nowhere else;
the export (:mod:`coordatt_mm.deploy.export`), its checks (:mod:`coordatt_mm.deploy.check`),
the INT8 calibration (:mod:`coordatt_mm.deploy.quantize`) and the model's metadata take the
plan.
"""
import os.path as osp
from dataclasses import dataclass
from typing import Dict, Optional, Sequence, Tuple

OPSET = 17
CA_FORMS = ('pool', 'product', 'broadcast', 'integer')
# CA's form at a static input size, per precision: the fastest in ONNX Runtime
# (docs/performance.md, deployed speed). A dynamic height or width takes 'broadcast' only:
# the windows and scales of the other forms are the size traced.
STATIC_CA_FORM = {'fp32': 'pool', 'int8': 'integer'}


def ca_form_for(precision: str, static: bool, asked: Optional[str] = None) -> str:
    """CoordAtt's export form: ``'broadcast'`` where height and width are dynamic, else
    ``asked`` or the fastest for ``precision`` (``STATIC_CA_FORM``)."""
    form = 'broadcast' if not static else asked or STATIC_CA_FORM[precision]
    if form not in CA_FORMS:
        raise ValueError(f'CA export form {form!r}: expected one of {", ".join(CA_FORMS)}')
    return form


@dataclass(frozen=True)
class ExportPlan:
    """One export of a config's model, as every step of it needs it.

    Args:
        config (str): the config's file name (metadata, messages).
        scope (str): its ``default_scope`` (the registries of its test pipeline).
        task (str): ``'det'``, ``'seg'`` or ``'cls'``.
        pipeline (tuple[dict]): the test pipeline's steps.
        input_hw (tuple[int, int]): the input size (H, W): the graph's size where static,
            the size traced where dynamic.
        static (bool): one input size (detection and raw graphs always; segmentation with
            ``--static``), so that CoordAtt's static forms apply.
        raw (bool): the network to its head outputs instead of the end-to-end graph.
            Defaults to False.
        with_logits (bool): segmentation: also output the logits. Defaults to False.
        precision (str): ``'fp32'`` or ``'int8'`` (quantised after the float graph is
            checked). Defaults to 'fp32'.
        ca_form (str): CoordAtt's graph form (:func:`ca_form_for`). Defaults to 'pool'.
        opset (int): the ONNX opset. Defaults to ``OPSET``.
        check_images (tuple[str]): the images the export is checked on against PyTorch
            (end-to-end graphs). Defaults to ().
        calibration_images (tuple[str]): INT8's calibration images. Defaults to ().
    """

    config: str
    scope: str
    task: str
    pipeline: Tuple[dict, ...]
    input_hw: Tuple[int, int]
    static: bool
    raw: bool = False
    with_logits: bool = False
    precision: str = 'fp32'
    ca_form: str = 'pool'
    opset: int = OPSET
    check_images: Tuple[str, ...] = ()
    calibration_images: Tuple[str, ...] = ()

    def dynamic_axes(self, output_names: Sequence[str]) -> Optional[Dict[str, Dict[int, str]]]:
        """torch.onnx.export's ``dynamic_axes``: any batch, and for segmentation the
        original image's size in ``labels``, and height and width where not static."""
        if self.raw:
            return None
        batch = {0: 'batch'}
        size = {} if self.static else {2: 'height', 3: 'width'}
        if self.task == 'det':
            return {'input': batch, **{n: batch for n in output_names}}
        axes = {'input': {**batch, **size}, 'labels': {**batch, 1: 'ori_height', 2: 'ori_width'}}
        if self.with_logits:
            axes['logits'] = {**batch, **size}
        return axes


def default_input_hw(cfg, task: str, pipeline: Sequence[dict], static: bool) -> Tuple[int, int]:
    """(H, W) of the export from the test pipeline's resize: for detection its size (padded to
    the data preprocessor's divisor); for segmentation with a static size the square of its
    long side, which a keep-ratio resize of either orientation fits, else the size traced."""
    resize = next((s for s in pipeline if s['type'] == 'Resize'), None)
    if resize is None or 'scale' not in resize:
        return (512, 512)
    w, h = resize['scale']
    if task == 'seg' and static and resize.get('keep_ratio'):
        h = w = max(h, w)
    elif task == 'seg' or resize.get('keep_ratio'):
        h, w = min(h, w), max(h, w)  # a keep-ratio resize fits the image inside (long, short)
    div = cfg.model.get('data_preprocessor', {}).get('pad_size_divisor', 1) or 1
    return (-(-int(h) // div) * div, -(-int(w) // div) * div)


def plan_export(cfg, input_hw: Optional[Sequence[int]] = None, static: bool = False,
                raw: bool = False, with_logits: bool = False, ca_form: Optional[str] = None,
                opset: int = OPSET, check_images: Optional[Sequence[str]] = None,
                int8_images: Optional[Sequence[str]] = None) -> ExportPlan:
    """The plan of exporting ``cfg``'s model: detection and raw graphs are static, segmentation
    graphs dynamic unless ``static``; ``int8_images`` (calibration) make it INT8; the check
    images default to the demo's held-out images of the task. Raises
    :class:`~coordatt_mm.deploy.end2end.UnsupportedForExport` for a classifier without
    ``raw``."""
    from coordatt_mm.apis.pipeline import test_pipeline_steps
    from coordatt_mm.deploy.end2end import UnsupportedForExport
    from coordatt_mm.registry import task_of
    task = task_of(cfg)
    if not raw and task not in ('det', 'seg'):
        raise UnsupportedForExport(f'{cfg.filename}: {task} configs export with --raw only')
    static = bool(raw or task == 'det' or static)
    pipeline = tuple(dict(s) for s in test_pipeline_steps(cfg))
    hw = tuple(int(v) for v in input_hw) if input_hw else \
        default_input_hw(cfg, task, pipeline, static)
    precision = 'int8' if int8_images is not None else 'fp32'
    if raw:
        images = ()
    else:
        from coordatt_mm.deploy.check import default_images
        images = tuple(check_images) if check_images is not None else default_images(task)
    return ExportPlan(config=osp.basename(cfg.filename), scope=cfg.default_scope, task=task,
                      pipeline=pipeline, input_hw=hw, static=static, raw=raw,
                      with_logits=with_logits and task == 'seg', precision=precision,
                      ca_form=ca_form_for(precision, static, ca_form), opset=opset,
                      check_images=images, calibration_images=tuple(int8_images or ()))
