"""CA's integer export form (``--ca-form integer``, INT8's default at a static size): the float
graph equals PyTorch, and once quantised ONNX Runtime runs every part of every CA layer on
integers, read from the runtime's own optimised graph."""
import numpy as np
import pytest
import torch
import torch.nn as nn

from coordatt_mm import CoordAtt, MobileNetV2CA
from coordatt_mm.deploy import export_network, ort_session
from coordatt_mm.deploy.export import export_graph
from coordatt_mm.deploy.optimized_graph import (
    float_layers,
    graph_ops,
    layer_report,
    ort_optimized_model,
)
from coordatt_mm.deploy.quantize import GATE_SCALE, ArrayCalibration, gate_sigmoids, quantize_int8


def _trained_like(m: nn.Module, seed: int = 0) -> nn.Module:
    """Random weights and BN statistics at a trained network's scale (identity BNs would hide a
    wrong folding)."""
    g = torch.Generator().manual_seed(seed)
    for mod in m.modules():
        if isinstance(mod, nn.modules.batchnorm._BatchNorm):
            mod.running_mean.copy_(0.2 * torch.randn(mod.num_features, generator=g))
            mod.running_var.copy_(0.5 + torch.rand(mod.num_features, generator=g))
            mod.weight.data.copy_(1 + 0.2 * torch.randn(mod.num_features, generator=g))
            mod.bias.data.copy_(0.2 * torch.randn(mod.num_features, generator=g))
    return m.eval()


@pytest.mark.parametrize('act', ['HSwish', 'ReLU', 'ReLU6'])
@pytest.mark.parametrize('shape', [(32, 7, 5), (17, 12, 1)])
def test_integer_form_equals_the_layer_in_float(tmp_path, act, shape):
    """Every activation the layer takes (h-swish split into a product of two convolutions,
    the clips), odd and one-wide planes, channels not a multiple of anything: the ONNX graph
    equals the PyTorch layer within 1e-4 and holds no mean or pooling operator."""
    import onnx
    c, h, w = shape
    torch.manual_seed(0)
    layer = _trained_like(CoordAtt(c, act_cfg=dict(type=act)))
    for p in layer.parameters():
        p.data.normal_(0, 0.3)
    x = torch.randn(2, c, h, w) * 2
    path = str(tmp_path / 'ca.onnx')
    export_graph(layer, path, x, ['out'], ca_form='integer')
    ops = graph_ops(onnx.load(path))
    assert not {'ReduceMean', 'AveragePool', 'GlobalAveragePool', 'Resize'} & set(ops), ops
    assert ops['Sigmoid'] == 2 and ops['Mul'] == 2 + (act == 'HSwish') * 2, ops
    with torch.no_grad():
        ref = layer(x).numpy()
    got = ort_session(path).run(None, {'input': x.numpy()})[0]
    assert np.abs(got - ref).max() <= 1e-4 * max(1.0, np.abs(ref).max())


@pytest.fixture(scope='module')
def int8_backbones(tmp_path_factory):
    """MobileNetV2CA's first three stages (5 CA layers), exported in the integer and the
    broadcasting form and quantised as ``--int8`` does: {form: (float file, INT8 file)}, the
    network and an input."""
    tmp = tmp_path_factory.mktemp('int8')
    size = (64, 96)
    torch.manual_seed(0)
    net = _trained_like(MobileNetV2CA(widen_factor=0.5, out_indices=(2,)))
    rng = np.random.default_rng(0)
    calib = [rng.standard_normal((1, 3, *size), np.float32) for _ in range(4)]
    files = {}
    for form in ('integer', 'broadcast'):
        path, q = str(tmp / f'{form}.onnx'), str(tmp / f'{form}_int8.onnx')
        export_network(net, path, size, ['out'], ca_form=form)
        quantize_int8(path, q, ArrayCalibration('input', calib))
        files[form] = (path, q)
    return files, net, rng.standard_normal((1, 3, *size), np.float32)


def test_ort_runs_every_ca_layer_on_integers(int8_backbones):
    """The INT8 graph ONNX Runtime optimises (saved through
    ``SessionOptions.optimized_model_filepath``) holds, inside each CA layer, only integer
    kernels: the means (depthwise QLinearConv), the shared transform and h-swish (QLinearConv,
    QLinearMul), the gates (QLinearConv, QLinearSigmoid) and the gating products (QLinearMul).
    DequantizeLinear nodes per CA layer: 0, because every operator of the layer has an integer
    kernel; the whole graph keeps one, for its float output. The broadcasting form, the same
    check's negative, still converts inside every layer (ReduceMean has no integer kernel)."""
    files, net, _ = int8_backbones
    _, q = files['integer']
    optimised = ort_optimized_model(q)
    report = layer_report(optimised)
    n_ca = sum(isinstance(m, CoordAtt) for m in net.modules())
    assert len(report) == n_ca == 5
    assert float_layers(report) == [], {k: v for k, v in report.items() if v['float_ops']}
    for layer in report.values():
        assert layer['dequantize'] == 0 and layer['quantize'] == 0
        ops = layer['ops']
        assert ops.get('QLinearConv') == 2 + 2 * 2 + 2, ops  # means, transform (x2), gates
        assert ops.get('QLinearMul') == 2 + 2 and ops.get('QLinearSigmoid') == 2, ops
    assert graph_ops(optimised).get('DequantizeLinear') == 1

    report_bc = layer_report(ort_optimized_model(files['broadcast'][1]))
    assert len(float_layers(report_bc)) == n_ca
    assert all('ReduceMean' in v['ops'] for v in report_bc.values())


def _gate_scales(float_file: str, int8_file: str):
    import onnx
    quantised = onnx.load(int8_file)
    scales = {i.name: float(onnx.numpy_helper.to_array(i)) for i in quantised.graph.initializer
              if not i.dims}
    gates = set(gate_sigmoids(onnx.load(float_file)).values())
    return [scales[n.input[1]] for n in quantised.graph.node
            if n.op_type == 'QuantizeLinear' and n.input[0] in gates]


def test_gate_ranges_are_calibrated_or_pinned(int8_backbones, tmp_path):
    """Each CA layer's two sigmoid gates are quantised; by default their ranges come from
    calibration (finer than the whole [0, 1] where the gates stay in part of it: this kept
    0.018 more box mAP on the demo detector), with ``pin_gates`` fixed to scale 1/256."""
    files, net, _ = int8_backbones
    float_file, q = files['integer']
    n_ca = sum(isinstance(m, CoordAtt) for m in net.modules())
    calibrated = _gate_scales(float_file, q)
    assert len(calibrated) == 2 * n_ca
    assert all(s > 0 and abs(s - GATE_SCALE) > 1e-9 for s in calibrated), calibrated
    pinned_file = str(tmp_path / 'pinned.onnx')
    rng = np.random.default_rng(1)
    quantize_int8(float_file, pinned_file,
                  ArrayCalibration('input', [rng.standard_normal((1, 3, 64, 96), np.float32)]),
                  pin_gates=True)
    pinned = _gate_scales(float_file, pinned_file)
    assert len(pinned) == 2 * n_ca and all(s == pytest.approx(GATE_SCALE) for s in pinned)


def test_integer_int8_backbone_stays_close_to_float(int8_backbones):
    """Quantised, the integer form's output stays as close to the float network's as the
    broadcasting form's (a wrong gate scale or a lost h-swish factor would move it far more)."""
    files, net, x = int8_backbones
    with torch.no_grad():
        ref = net(torch.from_numpy(x))[0].numpy()
    errs = {}
    for form, (_, q) in files.items():
        got = ort_session(q).run(None, {'input': x})[0]
        errs[form] = float(np.linalg.norm(got - ref) / np.linalg.norm(ref))
    assert errs['integer'] <= max(0.1, 1.5 * errs['broadcast']), errs
