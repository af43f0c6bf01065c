"""ONNX round trip of the raw export (``--raw``: the network to head outputs): the graphs agree
with torch (onnxruntime, max abs diff <= 1e-4), and CA stays in ONNX Runtime's fast layout."""
from pathlib import Path

import pytest
import torch

from coordatt_mm.apis.build import build_model

from e2e_utils import tool

REPO = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize('config,shape', [
    ('configs/ssdlite/ssdlite_mobilenetv2-ca_8xb24-600e_coco.py', (320, 320)),
    ('configs/deeplabv3/deeplabv3_mobilenetv2-ca-d16_4xb4-20k_voc12aug-512x512.py', (256, 320)),
])
def test_onnx_round_trip(tmp_path, capsys, config, shape):
    torch.manual_seed(0)
    _, model = build_model(str(REPO / config))
    # non-trivial BN statistics so the folded CA path is exercised
    for m in model.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.normal_(0, 0.1), m.running_var.uniform_(0.5, 1.5)
    torch.save(dict(state_dict=model.state_dict()), tmp_path / 'model.pth')
    out = tmp_path / 'model.onnx'
    args = [str(REPO / config), str(tmp_path / 'model.pth'), str(out), '--shape',
            *map(str, shape), '--raw']
    assert tool('tools/deploy/export_onnx.py')(args) == 0
    stdout = capsys.readouterr().out
    assert out.exists() and 'max |torch - onnxruntime|' in stdout
    diff = float(stdout.rsplit('=', 1)[1])
    assert diff <= 1e-4
    import onnx
    graph = onnx.load(str(out)).graph
    outputs = [o.name for o in graph.output]
    if 'ssdlite' in config:
        assert outputs == ([f'cls_score_{i}' for i in range(6)]
                           + [f'bbox_pred_{i}' for i in range(6)])
    else:
        assert outputs == ['logits']
        dims = [d.dim_value for d in graph.output[0].type.tensor_type.shape.dim]
        assert dims == [1, 21, *shape]


def _ort_node_types(onnx_file, tmp_path):
    """Operator types of the graph ONNX Runtime runs (after its optimisations)."""
    import onnx
    import onnxruntime as ort
    so = ort.SessionOptions()
    so.optimized_model_filepath = str(tmp_path / 'optimized.onnx')
    ort.InferenceSession(str(onnx_file), so, providers=['CPUExecutionProvider'])
    types = {}
    for node in onnx.load(so.optimized_model_filepath).graph.node:
        types[node.op_type] = types.get(node.op_type, 0) + 1
    return types


def test_exported_ca_stays_in_onnxruntime_blocked_layout(tmp_path):
    """CA exports as pooling, 1x1 convs, resizes and same-shape products: ONNX Runtime runs it
    without the layout reorders a broadcasting graph costs (the plain network has as many)."""
    import onnx

    from coordatt_mm import MobileNetV2CA
    from coordatt_mm.deploy import export_network
    torch.manual_seed(0)
    counts = {}
    for name, att in (('plain', None), ('ca', dict(type='CoordAtt'))):
        net = MobileNetV2CA(attention=att, out_indices=(7,)).eval()
        for m in net.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.running_var.uniform_(0.5, 1.5)
        path = tmp_path / f'{name}.onnx'
        export_network(net, str(path), (96, 128), ['out'])
        exported = {n.op_type for n in onnx.load(str(path)).graph.node}
        counts[name] = _ort_node_types(path, tmp_path)
        if att:
            assert not exported & {'ReduceMean', 'MatMul', 'Concat', 'Split'}, exported
            from coordatt_mm.deploy import ort_session
            x = torch.randn(1, 3, 96, 128)
            with torch.no_grad():
                ref = net(x)[0].numpy()
            got = ort_session(str(path)).run(None, {'input': x.numpy()})[0]
            assert abs(got - ref).max() <= 1e-4
    for reorder in ('ReorderInput', 'ReorderOutput'):
        assert counts['ca'].get(reorder, 0) == counts['plain'].get(reorder, 0), counts


@pytest.mark.parametrize('form', ['pool', 'product', 'broadcast', 'integer'])
def test_every_ca_export_form_equals_pytorch(tmp_path, form):
    """--ca-form: each of CA's graph forms computes the network's output (non-square input,
    so that a height/width mix-up shows), with the operators that make it that form."""
    import onnx

    from coordatt_mm import MobileNetV2CA
    from coordatt_mm.deploy import export_network, ort_session
    torch.manual_seed(0)
    net = MobileNetV2CA(out_indices=(7,)).eval()
    for m in net.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_var.uniform_(0.5, 1.5)
            m.running_mean.uniform_(-0.1, 0.1)
    path = tmp_path / f'{form}.onnx'
    export_network(net, str(path), (96, 64), ['out'], ca_form=form)
    ops = {n.op_type for n in onnx.load(str(path)).graph.node if '/attention/' in n.name}
    expected = {'pool': {'AveragePool', 'Resize'}, 'product': {'AveragePool'},
                'broadcast': {'ReduceMean'}, 'integer': {'Conv', 'Sigmoid', 'Mul'}}[form]
    assert expected <= ops and ('Resize' in ops) == (form == 'pool'), ops
    # the integer form: means as depthwise convolutions, no pooling or reduction operator
    assert (not {'AveragePool', 'ReduceMean'} & ops) == (form == 'integer'), ops
    x = torch.randn(1, 3, 96, 64)
    with torch.no_grad():
        ref = net(x)[0].numpy()
    got = ort_session(str(path)).run(None, {'input': x.numpy()})[0]
    assert abs(got - ref).max() <= 1e-4 * max(1.0, abs(ref).max())
    with pytest.raises(ValueError, match="CA export form 'nope'"):
        export_network(net, str(tmp_path / 'x.onnx'), (96, 64), ['out'], ca_form='nope')


def test_one_table_chooses_cas_export_form():
    """CA's form comes from the precision and whether the size is static, in one place; a
    dynamic height or width broadcasts whatever was asked, and the plan of a config carries
    what its export will use."""
    from coordatt_mm.apis.build import load_config
    from coordatt_mm.deploy.plan import CA_FORMS, STATIC_CA_FORM, ca_form_for, plan_export
    assert set(STATIC_CA_FORM.values()) <= set(CA_FORMS)
    assert ca_form_for('fp32', True) == 'pool' and ca_form_for('int8', True) == 'integer'
    assert ca_form_for('fp32', True, 'product') == 'product'
    assert ca_form_for('fp32', False, 'pool') == 'broadcast'
    with pytest.raises(ValueError, match="CA export form 'nope'"):
        ca_form_for('int8', True, 'nope')
    seg = load_config(str(REPO / 'configs/demo/deeplabv3_mobilenetv2-ca-d16_1xb8-100i_tiny-'
                                 'voc12aug.py'))
    dynamic = plan_export(seg, check_images=())
    assert (dynamic.static, dynamic.ca_form, dynamic.input_hw) == (False, 'broadcast', (240, 320))
    assert dynamic.dynamic_axes(['labels'])['input'] == {0: 'batch', 2: 'height', 3: 'width'}
    static = plan_export(seg, static=True, int8_images=['calib.jpg'], check_images=())
    # a square of the resize's long side: a keep-ratio resize of either orientation fits
    assert (static.static, static.input_hw, static.precision) == (True, (320, 320), 'int8')
    assert static.ca_form == 'integer'
    assert static.dynamic_axes(['labels'])['input'] == {0: 'batch'}
    det = plan_export(load_config(str(REPO / 'configs/demo/ssdlite_mobilenetv2-ca_1xb6-14e_'
                                             'tiny-coco.py')), check_images=())
    assert (det.task, det.static, det.ca_form) == ('det', True, 'pool')
