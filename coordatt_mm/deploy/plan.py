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
# the size traced where the test pipeline resizes to no scale (its images keep their sizes)
DEFAULT_INPUT_HW = (512, 512)


class ExportPlanError(ValueError):
    """What was asked of an export does not fit it: an unknown CA form, a static CA form for
    a graph of dynamic size, a static size smaller than the images the test pipeline makes."""


def ca_form_for(precision: str, static: bool, asked: Optional[str] = None) -> str:
    """CoordAtt's export form, checked here for every caller: ``asked`` (one of ``CA_FORMS``)
    or else the fastest for ``precision`` at a static size (``STATIC_CA_FORM``) and
    ``'broadcast'`` where height and width are dynamic. Raises :class:`ExportPlanError` for
    an unknown form, and for a form other than 'broadcast' asked of a dynamic size."""
    if asked is not None and asked not in CA_FORMS:
        raise ExportPlanError(f'CA export form {asked!r}: expected one of '
                              f'{", ".join(CA_FORMS)}')
    if not static:
        if asked not in (None, 'broadcast'):
            raise ExportPlanError(f'CA export form {asked!r} needs a static size (a dynamic '
                                  "height and width take 'broadcast'): add --static "
                                  '(segmentation)')
        return 'broadcast'
    return asked or STATIC_CA_FORM[precision]


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

    def holds(self, hw: Sequence[int]) -> bool:
        """Whether a resized image of size ``hw`` (H, W) fits the graph's input: at most its
        static size, or any size where it is dynamic."""
        return not self.static or (hw[0] <= self.input_hw[0] and hw[1] <= self.input_hw[1])

    def larger_shape_hint(self) -> str:
        """What to do about a resized image the static input does not hold."""
        hint = 'give a larger --shape'
        if self.task == 'seg':  # its default static size is a square of the resize's long side
            hint += ' (without --shape the input holds images of either orientation)'
        return hint

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


def plan_export(cfg, input_hw: Optional[Sequence[int]] = None, static: bool = False,
                raw: bool = False, with_logits: bool = False, ca_form: Optional[str] = None,
                opset: int = OPSET, check_images: Optional[Sequence[str]] = None,
                int8_images: Optional[Sequence[str]] = None) -> ExportPlan:
    """The plan of exporting ``cfg``'s model: detection and raw graphs are static, segmentation
    graphs dynamic unless ``static``; ``int8_images`` (calibration) make it INT8; the check
    images default to the demo's held-out images of the task. The input size defaults to
    what the test pipeline's resize makes (:func:`~coordatt_mm.apis.pipeline.pipeline_input_hw`;
    for segmentation at a static size the square of its long side, which a keep-ratio resize
    of either orientation fits). Raises
    :class:`~coordatt_mm.deploy.end2end.UnsupportedForExport` for a classifier without
    ``raw``, :class:`ExportPlanError` for a CA form the graph cannot take (:func:`ca_form_for`)
    or, where images go through the pipeline into the graph (checks, calibration), a static
    ``input_hw`` that holds none of the sizes the resize makes (a size that holds one
    orientation of a keep-ratio resize is taken: images of the other are refused one by one,
    :meth:`ExportPlan.holds`)."""
    from coordatt_mm.apis.pipeline import (
        pipeline_input_hw,
        resized_shapes,
        test_pipeline_steps,
    )
    from coordatt_mm.deploy.end2end import UnsupportedForExport
    from coordatt_mm.registry import task_of
    task = task_of(cfg)
    if not raw and task not in ('det', 'seg'):
        raise UnsupportedForExport(f'{cfg.filename}: {task} configs export with --raw only')
    static = bool(raw or task == 'det' or static)
    pipeline = tuple(dict(s) for s in test_pipeline_steps(cfg))
    precision = 'int8' if int8_images is not None else 'fp32'
    ca_form = ca_form_for(precision, static, ca_form)
    hw = tuple(int(v) for v in input_hw) if input_hw else \
        pipeline_input_hw(cfg, pipeline, every=task == 'seg' and static) or DEFAULT_INPUT_HW
    if raw:
        images = ()
    else:
        from coordatt_mm.deploy.check import default_images
        images = tuple(check_images) if check_images is not None else default_images(task)
    plan = ExportPlan(config=osp.basename(cfg.filename), scope=cfg.default_scope, task=task,
                      pipeline=pipeline, input_hw=hw, static=static, raw=raw,
                      with_logits=with_logits and task == 'seg', precision=precision,
                      ca_form=ca_form, opset=opset,
                      check_images=images, calibration_images=tuple(int8_images or ()))
    shapes = resized_shapes(cfg, pipeline)
    fed = images or int8_images  # images go through the pipeline into the graph
    if fed and shapes and not any(plan.holds(s) for s in shapes):
        # a static graph's canvas must hold the images the pipeline makes (padded to it)
        raise ExportPlanError(
            f'{plan.config}: input size {hw[0]}x{hw[1]} holds none of the '
            f'sizes the test pipeline resizes images to '
            f'({" or ".join(f"{h}x{w}" for h, w in shapes)}): give --shape '
            f'{shapes[0][0]} {shapes[0][1]} or more')
    return plan
