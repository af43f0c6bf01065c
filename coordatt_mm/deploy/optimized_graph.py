"""What a runtime actually runs: ONNX Runtime's optimised graph of a model, read per layer.

A QDQ INT8 model says what *may* run on integers; which operators do is decided by ONNX
Runtime's graph transformers (a DequantizeLinear -> op -> QuantizeLinear group becomes an
integer kernel only where a rule exists for the op). :func:`ort_optimized_model` saves and
reads the graph after those transformers, and :func:`layer_report` tells, for each layer of
the network (CoordAtt, say), which operators it runs and which of them compute in float.
"""
import os.path as osp
import re
import tempfile
from collections import Counter
from typing import Dict, List, Optional

# operators that compute on integers, or only move or convert data, in ONNX Runtime's
# optimised QDQ graphs; every other operator inside a layer computes in float
INTEGER_OPS = frozenset({'QLinearConv', 'QLinearMul', 'QLinearAdd', 'QLinearSigmoid',
                         'QLinearAveragePool', 'QLinearGlobalAveragePool', 'QLinearConcat',
                         'QLinearMatMul', 'QGemm', 'QLinearLeakyRelu', 'QLinearSoftmax',
                         'MatMulInteger', 'ConvInteger', 'DynamicQuantizeLinear'})
MOVES = frozenset({'Reshape', 'Transpose', 'Squeeze', 'Unsqueeze', 'Slice', 'Expand',
                   'Gather', 'Identity', 'Flatten'})
CONVERSIONS = frozenset({'QuantizeLinear', 'DequantizeLinear'})


def ort_optimized_model(onnx_file: str, threads: int = 1):
    """The graph ONNX Runtime's CPU execution provider runs for ``onnx_file``, after all its
    optimisations (``SessionOptions.optimized_model_filepath``), as an ``onnx.ModelProto``."""
    import onnx
    import onnxruntime as ort
    with tempfile.TemporaryDirectory() as tmp:
        so = ort.SessionOptions()
        so.intra_op_num_threads = threads
        so.log_severity_level = 3  # the warning that the saved graph is machine-specific
        so.optimized_model_filepath = osp.join(tmp, 'optimized.onnx')
        ort.InferenceSession(onnx_file, so, providers=['CPUExecutionProvider'])
        return onnx.load(so.optimized_model_filepath)


def _layer_of(node_name: str, pattern: 're.Pattern') -> Optional[str]:
    m = pattern.search(node_name)
    return m.group(0).rstrip('/') if m else None


def layer_nodes(model, layer: str = 'attention') -> Dict[str, list]:
    """{layer path: [nodes]} for every layer whose module name is ``layer``, from the module
    path the exporter writes into node names (``/layer2/layer2.0/attention/Conv``; ONNX
    Runtime keeps it in the names of the nodes it fuses). A conversion (QuantizeLinear,
    DequantizeLinear) or a node the runtime inserted under a name of its own (a layout
    transpose) belongs to a layer when everything it reads comes from that layer, or everything
    it feeds is in it: a DequantizeLinear of a layer's input belongs to the layer that reads it
    in float."""
    pattern = re.compile(rf'^.*?/{re.escape(layer)}/')
    nodes = list(model.graph.node)  # by position: protobuf hands out new wrappers each time
    owner = [_layer_of(n.name, pattern) for n in nodes]
    made_by = {o: owner[k] for k, n in enumerate(nodes) for o in n.output}
    read_by: Dict[str, set] = {}
    for k, n in enumerate(nodes):
        for i in n.input:
            read_by.setdefault(i, set()).add(owner[k])
    layers: Dict[str, list] = {}
    for k, n in enumerate(nodes):
        name = owner[k]
        if name is None and (n.op_type in CONVERSIONS or not n.name.startswith('/')):
            sources = {made_by.get(i) for i in n.input if i in made_by}
            sinks = set().union(*(read_by.get(o, {None}) for o in n.output))
            for side in (sources, sinks):
                if len(side) == 1 and None not in side:
                    name = next(iter(side))
                    break
        if name is not None:
            layers.setdefault(name, []).append(n)
    return layers


def layer_report(model, layer: str = 'attention') -> Dict[str, dict]:
    """Per layer: its operator counts, the float operators among them (neither integer
    kernels nor data moves nor conversions), and its DequantizeLinear / QuantizeLinear
    nodes (each a full conversion of a tensor between integers and float)."""
    report = {}
    for name, nodes in layer_nodes(model, layer).items():
        ops = Counter(n.op_type for n in nodes)
        report[name] = dict(
            ops=dict(ops),
            float_ops=sorted(n.name or n.op_type for n in nodes
                             if n.op_type not in INTEGER_OPS | MOVES | CONVERSIONS),
            dequantize=ops.get('DequantizeLinear', 0), quantize=ops.get('QuantizeLinear', 0))
    return report


def graph_ops(model) -> Dict[str, int]:
    """Operator counts of a whole graph."""
    return dict(Counter(n.op_type for n in model.graph.node))


def float_layers(report: Dict[str, dict]) -> List[str]:
    """The layers of :func:`layer_report` that still compute in float or convert tensors."""
    return [k for k, v in report.items() if v['float_ops'] or v['dequantize'] or v['quantize']]
