"""ONNX round trip of the raw export (``--raw``: the network to head outputs): the graphs agree
with torch (onnxruntime, max abs diff <= 1e-4), and CA stays in ONNX Runtime's fast layout;
CA's export forms, and what an export plan refuses (a static CA form at a dynamic size, a
static size smaller than the resized images) as one line of the command line."""
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
    """CA's form comes from the precision and whether the size is static, in one place that
    checks what was asked: an unknown form, or a static form asked of a dynamic height and
    width, is an error (never silently replaced); the plan of a config carries what its
    export will use."""
    from coordatt_mm.apis.build import load_config
    from coordatt_mm.deploy.plan import (
        CA_FORMS,
        STATIC_CA_FORM,
        ExportPlanError,
        ca_form_for,
        plan_export,
    )
    assert set(STATIC_CA_FORM.values()) <= set(CA_FORMS)
    assert ca_form_for('fp32', True) == 'pool' and ca_form_for('int8', True) == 'integer'
    assert ca_form_for('fp32', True, 'product') == 'product'
    assert ca_form_for('fp32', False) == ca_form_for('int8', False, 'broadcast') == 'broadcast'
    for static in (True, False):
        with pytest.raises(ExportPlanError, match="CA export form 'nope': expected one of "
                                                  'pool, product, broadcast, integer'):
            ca_form_for('int8', static, 'nope')
    for form in ('pool', 'product', 'integer'):
        with pytest.raises(ExportPlanError, match=f"CA export form '{form}' needs a static "
                                                  r'size .*: add --static \(segmentation\)$'):
            ca_form_for('fp32', False, form)
    seg = load_config(str(REPO / 'configs/demo/deeplabv3_mobilenetv2-ca-d16_1xb8-100i_tiny-'
                                 'voc12aug.py'))
    dynamic = plan_export(seg, check_images=())
    assert (dynamic.static, dynamic.ca_form, dynamic.input_hw) == (False, 'broadcast', (240, 320))
    assert dynamic.dynamic_axes(['labels'])['input'] == {0: 'batch', 2: 'height', 3: 'width'}
    with pytest.raises(ExportPlanError, match="'pool' needs a static size"):
        plan_export(seg, ca_form='pool', check_images=())
    static = plan_export(seg, static=True, int8_images=['calib.jpg'], check_images=())
    # a square of the resize's long side: a keep-ratio resize of either orientation fits
    assert (static.static, static.input_hw, static.precision) == (True, (320, 320), 'int8')
    assert static.ca_form == 'integer'
    assert static.dynamic_axes(['labels'])['input'] == {0: 'batch'}
    det = plan_export(load_config(str(REPO / 'configs/demo/ssdlite_mobilenetv2-ca_1xb6-14e_'
                                             'tiny-coco.py')), check_images=())
    assert (det.task, det.static, det.ca_form) == ('det', True, 'pool')


def test_export_graph_refuses_a_static_ca_form_at_a_dynamic_size(tmp_path):
    """export_graph takes the form it is given through the same check: 'pool' at a dynamic
    height and width is an error (it used to become 'broadcast' silently)."""
    from coordatt_mm import CoordAtt
    from coordatt_mm.deploy.export import export_graph
    from coordatt_mm.deploy.plan import ExportPlanError
    with pytest.raises(ExportPlanError, match="'pool' needs a static size"):
        export_graph(CoordAtt(16), str(tmp_path / 'x.onnx'), torch.randn(1, 16, 8, 8), ['out'],
                     dynamic_axes={'input': {2: 'h', 3: 'w'}}, ca_form='pool')
    assert not (tmp_path / 'x.onnx').exists()


SEG_DEMO = REPO / 'configs/demo/deeplabv3_mobilenetv2-ca-d16_1xb8-100i_tiny-voc12aug.py'


def test_a_static_size_must_hold_the_resized_images():
    """Where images go through the test pipeline into a static graph (checks, calibration),
    its size must hold what the resize makes: the demo segmentor's keep-ratio resize to
    (320, 240) makes landscape images up to 240x320 and portrait ones up to 320x240, so
    --static takes 240x320 (landscape images), 320x240 or more, and 320x320 (both) by
    default; the detector's 192x192 resize needs 192x192. An unchecked export may trace any
    size."""
    from coordatt_mm.apis.build import load_config
    from coordatt_mm.deploy.plan import ExportPlanError, plan_export
    seg = load_config(str(SEG_DEMO))
    det = load_config(str(REPO / 'configs/demo/ssdlite_mobilenetv2-ca_1xb6-14e_tiny-coco.py'))
    for cfg, static, hw, sizes in ((seg, True, (239, 320), '240x320 or 320x240'),
                                   (seg, True, (300, 300), '240x320 or 320x240'),
                                   (seg, True, (320, 239), '240x320 or 320x240'),
                                   (det, False, (192, 160), '192x192')):
        for images in dict(check_images=['a.jpg']), dict(check_images=[],
                                                         int8_images=['c.jpg']):
            with pytest.raises(ExportPlanError, match=rf'input size {hw[0]}x{hw[1]} holds none '
                                                      rf'of the sizes .* \({sizes}\): give '
                                                      r'--shape \d+ \d+ or more$'):
                plan_export(cfg, hw, static, **images)
    assert plan_export(seg, static=True, check_images=['a.jpg']).input_hw == (320, 320)
    for hw in ((240, 320), (320, 240), (256, 384)):
        plan = plan_export(seg, hw, True, check_images=['a.jpg'])
        assert plan.input_hw == hw
        assert plan.holds(hw) and not plan.holds((hw[0] + 1, hw[1]))
    assert plan_export(det, (224, 192), check_images=['a.jpg']).input_hw == (224, 192)
    assert plan_export(seg, (200, 200), True, check_images=()).input_hw == (200, 200)
    dynamic = plan_export(seg, (64, 64), check_images=['a.jpg'])  # the size traced
    assert dynamic.static is False and dynamic.holds((1000, 2000))


def test_a_check_image_the_static_size_does_not_hold_is_one_error(tmp_path):
    """A graph for landscape images (240x320) checked on a portrait one: the check fails on
    that image with one line, before any model runs."""
    from PIL import Image

    from coordatt_mm.apis.build import load_config
    from coordatt_mm.deploy.check import ExportCheckFailed, _samples
    from coordatt_mm.deploy.plan import plan_export
    portrait = tmp_path / 'portrait.jpg'
    Image.new('RGB', (300, 400), (90, 120, 60)).save(portrait)  # 400 high
    plan = plan_export(load_config(str(SEG_DEMO)), (240, 320), True,
                       check_images=[str(portrait)])
    with pytest.raises(ExportCheckFailed, match=rf'^{portrait}: resized to 320x240, more than '
                                                r"the graph's static input 240x320 holds: "):
        next(_samples(plan, plan.check_images))


@pytest.mark.parametrize('extra,error', [
    (['--ca-form', 'pool'], "CA export form 'pool' needs a static size (a dynamic height and "
                            "width take 'broadcast'): add --static (segmentation)"),
    (['--static', '--shape', '200', '320'],
     'deeplabv3_mobilenetv2-ca-d16_1xb8-100i_tiny-voc12aug.py: input size 200x320 holds none '
     'of the sizes the test pipeline resizes images to (240x320 or 320x240): give --shape 240 '
     '320 or more'),
    (['--static', '--shape', '240', '320', '--int8', 'CALIB'],
     "1 of the 2 calibration images resize to more than the graph's static input 240x320 "
     'holds (the first to 320x240): give a larger --shape (without --shape the input holds '
     'images of either orientation)')])
def test_export_cli_prints_a_plan_error_in_one_line(tmp_path, capsys, extra, error):
    """What the plan refuses is one error line and exit status 2, before any weights are read
    (the checkpoint here is not even one), and nothing is written."""
    from PIL import Image
    calib = tmp_path / 'calib'
    calib.mkdir()
    Image.new('RGB', (400, 300), (90, 120, 60)).save(calib / 'landscape.jpg')
    Image.new('RGB', (300, 400), (60, 90, 120)).save(calib / 'portrait.jpg')
    checkpoint = tmp_path / 'not_read.pth'
    checkpoint.write_bytes(b'')
    out = tmp_path / 'model.onnx'
    args = [str(calib) if a == 'CALIB' else a for a in extra]
    code = tool('tools/deploy/export_onnx.py')([str(SEG_DEMO), str(checkpoint), str(out), *args])
    assert (code, capsys.readouterr().err) == (2, f'error: {error}\n')
    assert sorted(p.name for p in tmp_path.iterdir()) == ['calib', 'not_read.pth']


def test_the_command_lines_ca_forms_are_the_exporters():
    """export_onnx.py's --ca-form choices (written there so that --help imports no torch)."""
    from coordatt_cli import export as cli
    from coordatt_mm import deploy
    assert cli.CA_FORMS == deploy.CA_FORMS
    with pytest.raises(SystemExit):
        cli.parser().parse_args(['c', 'k', 'o', '--ca-form', 'nope'])
    help_text = ' '.join(cli.parser().format_help().split())
    for form, where in (('pool', 'the FP32 default'), ('product', 'OpenVINO FP32'),
                        ('broadcast', 'dynamic sizes'), ('integer', 'the INT8 default')):
        assert f"'{form}'" in help_text and where in help_text, (form, help_text)
