"""INT8: an exported float model turned into a static QDQ INT8 model by ONNX Runtime's
quantizer, calibrated on images through the config's test pipeline.

What is quantised was chosen by measurement on the demo models (tools/test.py, float box mAP
0.428 / mIoU 88.80, INT8 figures below): the convolutions (int8 weights per output channel,
uint8 activations), the ReLU6 / ReLU clips after them (folded into the convolutions' output
ranges), the residual additions and the products (CA's gating among them), with ranges from
the 99.999th percentile of each tensor's histogram. That lost 0.006 mAP / 0.64 mIoU. Min-max
ranges over every operator the quantizer knows lost 0.097 mAP: the head outputs concatenated
before decoding then share one 8-bit range. Keeping CA in float gained nothing (0.419 mAP with
convolutions only) and was slower: ONNX Runtime has no integer kernel for CA's row and column
means, so CA's input is converted back to float either way, and a float CA adds conversions of
its full-size output. Leaving the clips in float made the plain INT8 backbone 1.6x slower.
Decoding, NMS, the argmax and the normalisation stay in float. ``--int8`` quantises the graph
with CA in its broadcasting form by default, which ONNX Runtime's INT8 runs fastest
(``--ca-form pool`` for OpenVINO).
"""
import json
import os
import os.path as osp
import tempfile
from typing import Dict, Iterator, List, Optional, Sequence

import numpy as np

from coordatt_mm.deploy.runtime import META, size_feeds

# what is quantised and how (see the module docstring)
KEEP_FLOAT: Sequence[str] = ()
OP_TYPES = ('Conv', 'Clip', 'Relu', 'Add', 'Mul', 'Sigmoid')
METHOD = 'percentile'
# an attention gate's sigmoid output, pinned to [0, 255/256] (TFLite's logistic output):
# the full 8 bits on the only range a gate can take, whatever the calibration images saw
GATE_SCALE, GATE_ZERO_POINT = 1 / 256, 0


def gate_sigmoids(model) -> Dict[str, str]:
    """{node name: output tensor} of the Sigmoid nodes that gate a product (an attention
    layer's ``x * sigmoid(...)``), the ones INT8 quantises; a sigmoid whose output is not
    multiplied (a detector's class scores, decoded in float) is not among them."""
    mul_inputs = {i for n in model.graph.node if n.op_type == 'Mul' for i in n.input}
    return {n.name: n.output[0] for n in model.graph.node
            if n.op_type == 'Sigmoid' and n.output[0] in mul_inputs}


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
                  method: str = METHOD, op_types: Sequence[str] = OP_TYPES) -> dict:
    """Write the INT8 QDQ model of ``float_file`` to ``out``, calibrated with ``reader``;
    the metadata is carried over, with ``coordatt_mm.precision = int8``."""
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
        gates = gate_sigmoids(model)
        if 'Sigmoid' in op_types:
            excluded += [n.name for n in model.graph.node
                         if n.op_type == 'Sigmoid' and n.name not in gates]
        overrides = {t: [dict(scale=np.array(GATE_SCALE, np.float32),
                              zero_point=np.array(GATE_ZERO_POINT, np.uint8))]
                     for name, t in gates.items() if name not in excluded}
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
