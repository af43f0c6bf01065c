"""What each attention module costs: the figures file rendered into tables, paragraphs against
CA and the picture (coordatt_mm/analysis/attention_cost.py) on synthetic figures, the command
line's choices, and (slow) the benchmark section itself on the backbone."""
import contextlib
import io
import json
import math
import struct

import pytest

from e2e_utils import tool

TYPES = ['none', 'SE', 'ECA', 'CA']
CONFIGS = {'none': 'configs/imagenet/mobilenet-v2_4xb64-coslr-200e_in1k.py',
           'SE': 'configs/imagenet/mobilenet-v2-se_4xb64-coslr-200e_in1k.py',
           'ECA': 'configs/imagenet/mobilenet-v2-eca_4xb64-coslr-200e_in1k.py',
           'CA': 'configs/imagenet/mobilenet-v2-ca_4xb64-coslr-200e_in1k.py'}
PARAMS = {'none': 2_223_872, 'SE': 2_600_000, 'ECA': 2_223_950, 'CA': 2_669_648}
# synthetic ratios to the plain network: ECA below CA on eager and ONNX Runtime FP32, above
# it on INT8; SE above CA everywhere
RATIOS = {'eager batch 1': {'SE': 1.30, 'ECA': 1.02, 'CA': 1.10},
          'ONNX Runtime FP32': {'SE': 1.40, 'ECA': 1.05, 'CA': 1.20},
          'ONNX Runtime INT8': {'SE': 1.90, 'ECA': 1.60, 'CA': 1.50}}


def figures(runtimes=('ONNX Runtime',)) -> dict:
    """Figures of a run of the backbone and SSDLite320 with TYPES."""
    def measure(group, unit, values, ratios, plot=False):
        return dict(group=group, unit=unit, values=values, ratios=ratios, plot=plot)
    models = {}
    for key, title, short, scale in (('backbone', 'MobileNetV2 backbone', 'backbone', 1.0),
                                     ('ssdlite', 'SSDLite320 MobileNetV2', 'SSDLite320', 2.0)):
        params = {t: PARAMS[t] + (2_000_000 if key == 'ssdlite' else 0) for t in TYPES}
        ms = {'none': 10.0 * scale}
        m = {'params': measure('complexity', '', params,
                               {t: params[t] / params['none'] for t in TYPES}),
             'M-Adds': measure('complexity', 'M', {t: 300.0 + i for i, t in enumerate(TYPES)},
                               {t: (300.0 + i) / 300.0 for i, t in enumerate(TYPES)})}
        for name, group in (('eager batch 1', 'eager'), ('ONNX Runtime FP32', 'onnxruntime'),
                            ('ONNX Runtime INT8', 'onnxruntime')):
            ratios = {'none': 1.0, **RATIOS[name]}
            m[name] = measure(group, 'ms', {t: ms['none'] * r for t, r in ratios.items()}, ratios,
                              plot=True)
        if 'OpenVINO' in runtimes:
            for p in ('FP32', 'INT8'):
                ratios = {'none': 1.0, 'SE': 1.2, 'ECA': 1.1, 'CA': 1.3}
                m[f'OpenVINO {p}'] = measure('openvino', 'ms', {t: 5 * r for t, r in
                                                                ratios.items()}, ratios, True)
        models[key] = dict(title=title, short=short, measures=m)
    groups = {'complexity': 'parameters and M-Adds', 'eager': 'eager PyTorch',
              'onnxruntime': 'ONNX Runtime 1.32', 'openvino': 'OpenVINO'}
    return dict(machine='CPU Test CPU, vector features: AVX2 yes; runtimes: torch 2',
                settings_line='device cpu, 320²', types=TYPES, groups=groups, notes=['a note'],
                configs={t: {'backbone': CONFIGS[t]} for t in TYPES}, models=models)


def table_rows(text: str, heading: str):
    """The data rows of the table under the bold ``heading``."""
    lines = text.splitlines()
    i = next(i for i, line in enumerate(lines) if line.startswith(f'**{heading}'))
    rows = []
    for line in lines[i + 4:]:
        if not line.startswith('|'):
            break
        rows.append([c.strip() for c in line.strip('|').split('|')])
    return rows


def test_tables_have_a_row_per_type_with_its_figures():
    from coordatt_mm.analysis.attention_cost import tables
    text = tables(figures())
    rows = table_rows(text, 'MobileNetV2 backbone: parameters and M-Adds')
    assert [r[0] for r in rows] == TYPES
    eca = rows[TYPES.index('ECA')]
    assert eca[1] == '2,223,950' and eca[2] == '+78'
    assert eca[3] == f'{2_223_950 / 2_223_872:.3f}×'
    rows = table_rows(text, 'SSDLite320 MobileNetV2: ONNX Runtime 1.32')
    ca = rows[TYPES.index('CA')]
    # FP32 then INT8: the median ms and the ratio of each
    assert ca[1:] == ['24.00', '1.200×', '30.00', '1.500×']
    assert text.count('**') == 2 * 2 * 3  # a table per model and group


def test_paragraphs_set_each_module_beside_ca():
    from coordatt_mm.analysis.attention_cost import paragraphs
    text = paragraphs(figures())
    lines = text.splitlines()
    assert [line.split('**')[1] for line in lines] == ['SE', 'ECA', 'CA']
    eca = lines[1]
    assert '+78 parameters; CA +445,776' in eca and 'in backbone / SSDLite320:' in eca
    # each measure in both models, beside CA's
    assert 'eager batch 1 1.02 / 1.02 (CA 1.10 / 1.10)' in eca
    assert 'ONNX Runtime INT8 1.60 / 1.60 (CA 1.50 / 1.50)' in eca
    # ECA is below CA on eager and FP32, above on INT8, in both models
    below = sum(RATIOS[m]['ECA'] < RATIOS[m]['CA'] for m in RATIOS) * 2
    assert eca.endswith(f'below CA in {below} of {len(RATIOS) * 2}.')
    assert lines[0].endswith('below CA in 0 of 6.')  # SE is above CA everywhere
    assert '(CA' not in lines[2]  # CA against the plain network only


def test_published_top1_with_its_source_and_recipe():
    from coordatt_mm.analysis.attention_cost import published_top1
    ca = published_top1(CONFIGS['CA'])
    assert (ca.top1, ca.source, ca.recipe) == (74.3, 'CA paper', '200 epochs')
    eca = published_top1(CONFIGS['ECA'])
    assert (eca.top1, eca.recipe) == (72.56, '400 epochs, batch 96, lr 0.045')
    assert eca.source.startswith('ECA')
    triplet = published_top1('configs/imagenet/mobilenet-v2-triplet_4xb64-coslr-200e_in1k.py')
    assert (triplet.top1, triplet.qualifier) == (71.99, 'with k = 7')  # the config's kernel
    simam = published_top1('configs/imagenet/mobilenet-v2-simam_4xb64-coslr-200e_in1k.py')
    assert (simam.top1, simam.recipe) == (72.36, '150 epochs, lr 0.05 cosine')
    assert published_top1('configs/imagenet/mobilenet-v2-se-hswish_4xb64-coslr-200e_in1k.py') \
        is None
    assert '400 epochs' in eca.text() and '72.56' in eca.text()


def png_size(path):
    data = path.read_bytes()
    assert data[:8] == b'\x89PNG\r\n\x1a\n' and data[12:16] == b'IHDR'
    return struct.unpack('>II', data[16:24])


@pytest.mark.parametrize('runtimes,panels', [
    (('ONNX Runtime',), ['eager batch 1', 'ONNX Runtime FP32', 'ONNX Runtime INT8']),
    (('ONNX Runtime', 'OpenVINO'), ['eager batch 1', 'ONNX Runtime FP32', 'ONNX Runtime INT8',
                                    'OpenVINO FP32', 'OpenVINO INT8'])])
def test_picture_has_a_panel_per_runtime(tmp_path, runtimes, panels):
    from PIL import Image

    from coordatt_mm.analysis.attention_cost import plot
    out = tmp_path / 'cost.png'
    assert plot(figures(runtimes), str(out)) == panels
    w, h = png_size(out)
    with Image.open(out) as im:
        im.verify()
    # three panels to a row: a second row makes the picture taller, not wider
    assert w == 3 * 5.0 * 110 and h > 4 * 110
    if len(panels) > 3:
        one_row = tmp_path / 'one.png'
        plot(figures(), str(one_row))
        assert png_size(one_row)[0] == w and png_size(one_row)[1] + 3.6 * 110 <= h + 1


def test_plot_tool_and_bad_figure_files(tmp_path, capsys):
    from coordatt_mm.analysis.attention_cost import load
    path = tmp_path / 'fig.json'
    path.write_text(json.dumps(figures()))
    main = tool('tools/analysis/attention_plot.py')
    assert main([str(path), '--out', str(tmp_path / 'a.png')]) == 0
    assert png_size(tmp_path / 'a.png')[0] > 0
    assert main([str(tmp_path / 'missing.json'), '--out', str(tmp_path / 'b.png')]) == 1
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and 'missing.json' in err
    bad = tmp_path / 'bad.json'
    bad.write_text('{"types": []}')
    with pytest.raises(ValueError, match='bad.json.*not attention-cost figures'):
        load(str(bad))


def test_command_line_choices_match_the_section_and_refuse_unknown_ones(capsys):
    from coordatt_cli import benchmark as cli
    from coordatt_mm.analysis.benchmark import attention
    assert cli.ATTENTION_TYPES == tuple(attention.ATTENTIONS)
    assert cli.ATTENTION_MODELS == tuple(attention.MODELS)
    assert cli.ATTENTION_MEASURES == attention.MEASURES
    assert 'attention' in cli.SECTIONS and 'attention' not in cli.DEFAULT_SECTIONS
    with pytest.raises(SystemExit):
        cli.main(['--sections', 'attention', '--attention-types', 'ECA,GC'])
    err = capsys.readouterr().err
    assert "--attention-types: unknown ['GC']" in err and 'SimAM' in err


@pytest.mark.slow
def test_section_on_the_backbone_with_two_modules(tmp_path):
    """The section end to end, tiny: ECA and CA on the backbone, every measure."""
    import torch

    from coordatt_mm import CoordAtt, MobileNetV2CA
    from coordatt_mm.analysis.attention_cost import load
    out, png = tmp_path / 'cost.json', tmp_path / 'cost.png'
    buf = io.StringIO()
    threads = torch.get_num_threads()
    try:
        with contextlib.redirect_stdout(buf):
            rc = tool('tools/analysis/benchmark.py')([
                '--sections', 'attention', '--attention-types', 'ECA,CA',
                '--attention-models', 'backbone', '--repeats', '2', '--warmup', '1',
                '--size', '96', '--batch', '1', '--train-batch', '2', '--threads', '1',
                '--device', 'cpu', '--attention-json', str(out), '--attention-plot', str(png)])
    finally:
        torch.set_num_threads(threads)
    assert rc == 0
    data = load(str(out))
    assert data['types'] == ['none', 'ECA', 'CA']
    m = data['models']['backbone']['measures']
    expected = {'params', 'M-Adds', 'eager batch 1', 'training step', 'training peak memory',
                'ONNX Runtime FP32', 'ONNX Runtime INT8'}
    assert expected <= set(m)
    for name, measure in m.items():
        assert measure['ratios']['none'] == 1.0, name
        for t in data['types']:
            v, r = measure['values'][t], measure['ratios'][t]
            assert math.isfinite(v) and v >= 0 and math.isfinite(r) and r > 0, (name, t)
    # the networks the section built are the backbones the configs describe
    plain = MobileNetV2CA(attention=None, out_indices=(7,))
    ca = MobileNetV2CA(attention=dict(type='CoordAtt', reduction=32), out_indices=(7,))
    ca_params = sum(p.numel() for mod in ca.modules() if isinstance(mod, CoordAtt)
                    for p in mod.parameters())
    assert m['params']['values']['none'] == sum(p.numel() for p in plain.parameters())
    assert m['params']['values']['CA'] - m['params']['values']['none'] == ca_params
    assert 0 < m['params']['values']['ECA'] - m['params']['values']['none'] < 200
    assert m['M-Adds']['values']['CA'] > m['M-Adds']['values']['ECA'] > \
        m['M-Adds']['values']['none']
    text = buf.getvalue()
    assert data['machine'] in text and '**ECA**' in text and '(CA ' in text
    assert png_size(png)[0] > 0
