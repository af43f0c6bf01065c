"""INT8: an exported float model turned into a static QDQ INT8 model by ONNX Runtime's
quantizer, calibrated on images through the config's test pipeline.

What is quantised was chosen by measurement on the demo models (tools/test.py; docs/deploy.md,
INT8): the convolutions (int8 weights per output channel, uint8 activations), the ReLU6 / ReLU
clips after them (folded into the convolutions' output ranges), the residual additions, the
products and the sigmoids that gate them with the resizes on their way (attention gates;
:func:`gate_paths`), with ranges from the 99.999th percentile of each tensor's histogram.
Min-max ranges over every operator the quantizer knows lost 0.097 mAP: the head outputs
concatenated before decoding then share one 8-bit range. Leaving the clips in float made the
plain INT8 backbone 1.6x slower. Decoding, NMS, the argmax, the normalisation, and sigmoids and
resizes that gate nothing (a detector's scores, logits before the argmax) stay in float. ``--int8``
quantises the graph with CA in its integer form at a static size, in which ONNX Runtime runs
every operator of the layer on integers (CoordAtt._forward_integer).
"""
import json
import os
import os.path as osp
import tempfile
from typing import Dict, Iterator, List, Optional, Sequence

import numpy as np

from coordatt_mm.deploy.plan import ExportPlanError
from coordatt_mm.deploy.runtime import META, size_feeds

# what is quantised and how (see the module docstring)
KEEP_FLOAT: Sequence[str] = ()
OP_TYPES = ('Conv', 'Clip', 'Relu', 'Add', 'Mul', 'Sigmoid', 'Resize')
METHOD = 'percentile'
# an attention gate's sigmoid output range with ``pin_gates``: [0, 255/256], TFLite's fixed
# logistic output. Not the default: calibrated ranges, finer where the gates keep to part of
# [0, 1], lost less (demo detector: box mAP 0.418 calibrated, 0.400 pinned; float 0.428)
GATE_SCALE, GATE_ZERO_POINT = 1 / 256, 0


# what may stand between a gate's sigmoid and its product: moves, and the nearest-neighbour
# Resize of CA's 'pool' form
GATE_PATH_OPS = ('Resize', 'Reshape', 'Transpose', 'Squeeze', 'Unsqueeze')


def gate_paths(model) -> Dict[str, List[str]]:
    """{Sigmoid node name: [the nodes between it and the product it gates]} for the sigmoids
    that gate a product (an attention layer's ``x * sigmoid(...)``, directly or through a
    resize to full size, as CA's pool form): the ones INT8 quantises, with the nodes on their
    way. A sigmoid whose output is not multiplied (a detector's class scores, decoded in
    float) is not among them."""
    readers: Dict[str, list] = {}
    for n in model.graph.node:
        for i in n.input:
            readers.setdefault(i, []).append(n)
    paths = {}
    for n in model.graph.node:
        if n.op_type != 'Sigmoid':
            continue
        path, tensor = [], n.output[0]
        while len(readers.get(tensor, ())) == 1:
            nxt = readers[tensor][0]
            if nxt.op_type == 'Mul':
                paths[n.name] = path
                break
            if nxt.op_type not in GATE_PATH_OPS:
                break
            path.append(nxt.name)
            tensor = nxt.output[0]
    return paths


def gate_sigmoids(model) -> Dict[str, str]:
    """{node name: output tensor} of the gating sigmoids (:func:`gate_paths`)."""
    gates = gate_paths(model)
    return {n.name: n.output[0] for n in model.graph.node if n.name in gates}


def float_nodes(model, keep_float: Sequence[str]) -> List[str]:
    """Names of the nodes inside the modules ``keep_float`` names by a part of their path
    (``attention``: every CA layer; ``bbox_head``; ...), read from the module path the
    TorchScript exporter writes into node names (``/backbone/layer2/layer2.0/attention/...``)."""
    parts = [f'/{k}/' for k in keep_float]
    return [n.name for n in model.graph.node
            if any(p in n.name.rsplit('/', 1)[0] + '/' for p in parts)]


class CalibrationError(ValueError):
    """No INT8 calibration image could be read; the message names the folder."""


class ImageCalibration:
    """ONNX Runtime calibration data (``onnxruntime.quantization``'s CalibrationDataReader
    protocol): an export plan's calibration images through its test pipeline, read when made
    (before anything is exported), then resized and padded as the runtime feeds the model
    given to :meth:`for_model`.

    Attributes:
        inputs (list[Tensor]): the packed (3, h, w) images of the readable ones.
        skipped (list[str]): ``'path: why'`` of those that could not be read.

    Raises:
        CalibrationError: none could be read.
        ExportPlanError: the graph's static input does not hold an image's resize.
    """

    def __init__(self, plan) -> None:
        from coordatt_mm.apis.images import ImageReadError, iter_images
        from coordatt_mm.apis.pipeline import TestPipeline
        pipeline = TestPipeline(steps=plan.pipeline, scope=plan.scope)
        self.inputs, self.skipped = [], []
        for path, image in iter_images(plan.calibration_images):
            if isinstance(image, ImageReadError):
                self.skipped.append(f'{path}: {image}')
            else:
                self.inputs.append(pipeline(image)['inputs'])
        if not self.inputs:
            paths = plan.calibration_images
            where = osp.commonpath([osp.dirname(osp.abspath(p)) for p in paths]) if paths \
                else 'the calibration images'
            why = f' ({len(paths)} tried; {self.skipped[0]})' if self.skipped else ''
            raise CalibrationError(f'{where}: no readable calibration image{why}')
        big = [tuple(x.shape[1:]) for x in self.inputs if not plan.holds(x.shape[1:])]
        if big:
            h, w = plan.input_hw
            raise ExportPlanError(
                f'{len(big)} of the {len(self.inputs)} calibration images resize to more than '
                f'the graph\'s static input {h}x{w} holds (the first to {big[0][0]}x{big[0][1]}): '
                f'{plan.larger_shape_hint()}')
        self.model = None
        self._it: Optional[Iterator] = None

    def for_model(self, model_file: str) -> 'ImageCalibration':
        """This data, fed to ``model_file`` (an end-to-end export)."""
        from coordatt_mm.deploy.runtime import OnnxModel
        self.model, self._it = OnnxModel(model_file), None
        return self

    def _batches(self):
        from coordatt_mm.apis.pipeline import rgb_input
        # one canvas for all: the histogram calibrators stack each tensor across images
        hw = tuple(max(int(x.shape[i]) for x in self.inputs) for i in (1, 2))
        for x in self.inputs:
            yield {self.model.input_name: self.model.canvas([rgb_input(x).numpy()], hw)[0]}

    def get_next(self) -> Optional[Dict[str, np.ndarray]]:
        if self._it is None:
            self._it = self._batches()
        return next(self._it, None)

    def rewind(self) -> None:
        self._it = None


class ArrayCalibration:
    """Calibration data from arrays already shaped as the model input (benchmarks)."""

    def __init__(self, input_name: str, arrays: Sequence[np.ndarray]) -> None:
        self.input_name, self.arrays, self.i = input_name, list(arrays), 0

    def get_next(self):
        if self.i >= len(self.arrays):
            return None
        self.i += 1
        return {self.input_name: self.arrays[self.i - 1]}

    def rewind(self) -> None:
        self.i = 0


class _WithSizes:
    """A calibration reader whose feeds gain the size inputs of a segmentation graph (its
    input's own size: labels at the input's size) where the graph takes them."""

    def __init__(self, reader, input_names: Sequence[str]) -> None:
        self.reader, self.input_names = reader, list(input_names)

    def get_next(self) -> Optional[Dict[str, np.ndarray]]:
        feeds = self.reader.get_next()
        return None if feeds is None else \
            {**size_feeds(self.input_names, feeds[self.input_names[0]]), **feeds}

    def rewind(self) -> None:
        self.reader.rewind()


def quantize_int8(float_file: str, out: str, reader, keep_float: Sequence[str] = KEEP_FLOAT,
                  method: str = METHOD, op_types: Sequence[str] = OP_TYPES,
                  pin_gates: bool = False) -> dict:
    """Write the INT8 QDQ model of ``float_file`` to ``out``, calibrated with ``reader``;
    the metadata is carried over, with ``coordatt_mm.precision = int8``. ``pin_gates``: the
    gates' sigmoid outputs take the fixed range [0, 255/256] instead of a calibrated one."""
    import onnx
    from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_static
    from onnxruntime.quantization.shape_inference import quant_pre_process
    methods = dict(minmax=CalibrationMethod.MinMax, entropy=CalibrationMethod.Entropy,
                   percentile=CalibrationMethod.Percentile)
    with tempfile.TemporaryDirectory() as tmp:
        pre = osp.join(tmp, 'pre.onnx')
        # shape inference and graph cleanup first, as ONNX Runtime recommends
        quant_pre_process(float_file, pre, skip_symbolic_shape=True)
        model = onnx.load(pre)
        excluded = float_nodes(model, keep_float)
        paths = gate_paths(model)
        gates = {n.name: n.output[0] for n in model.graph.node if n.name in paths}
        on_gate_paths = {name for path in paths.values() for name in path}
        # sigmoids and resizes that gate nothing stay float (scores, logits before the argmax)
        excluded += [n.name for n in model.graph.node
                     if (n.op_type == 'Sigmoid' and n.name not in gates)
                     or (n.op_type == 'Resize' and n.name not in on_gate_paths)]
        overrides = {t: [dict(scale=np.array(GATE_SCALE, np.float32),
                              zero_point=np.array(GATE_ZERO_POINT, np.uint8))]
                     for name, t in gates.items() if pin_gates and name not in excluded}
        initializers = {t.name for t in model.graph.initializer}
        reader = _WithSizes(reader, [i.name for i in model.graph.input
                                     if i.name not in initializers])
        quantize_static(pre, out, reader, quant_format=QuantFormat.QDQ, per_channel=True,
                        activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8,
                        nodes_to_exclude=excluded, calibrate_method=methods[method],
                        op_types_to_quantize=list(op_types),
                        extra_options=dict(ActivationSymmetric=False,
                                           WeightSymmetric=True,
                                           TensorQuantOverrides=overrides))
    source = {p.key: p.value for p in onnx.load(float_file, load_external_data=False)
              .metadata_props}
    q = onnx.load(out)
    del q.metadata_props[:]
    source[META + 'precision'] = 'int8'
    source[META + 'int8_float'] = json.dumps(list(keep_float))
    for k, v in source.items():
        q.metadata_props.add(key=k, value=v)
    onnx.save(q, out)
    n_q = sum(n.op_type == 'QuantizeLinear' for n in q.graph.node)
    return dict(float_nodes=len(excluded), quantize_nodes=n_q, keep_float=list(keep_float),
                method=method, op_types=list(op_types),
                size_mb=round(os.path.getsize(out) / 2 ** 20, 2))
