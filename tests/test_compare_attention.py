"""tools/analysis/compare_attention.py: the table and report it writes, its argument errors,
the layers' settings it takes from the full configs, and (slow) a run of two types on a tiny
schedule."""
import contextlib
import io
import json
import math

import pytest

from e2e_utils import tool


def row(task, attention, value, params, eager=None, ort=None, settings=None):
    return dict(task=task, attention=attention, settings=settings, metric='mIoU', value=value,
                params=params, eager_ms=eager, eager_ratio=None if eager is None else
                eager / 10.0, ort_ms=ort, ort_ratio=None, check='passed: images 6')


def test_table_has_a_row_per_task_and_type():
    from coordatt_mm.analysis.compare_attention import table
    rows = [row('det', 'none', 0.25, 4_000_000, 10.0, 5.0),
            row('det', 'ECA', 0.2612, 4_000_078, 11.0, 5.5, dict(type='ECA')),
            row('seg', 'SE', 80.5, 4_500_000, settings=dict(type='SE', reduction=24))]
    lines = table(rows).splitlines()
    assert len(lines) == 2 + len(rows)
    cells = [[c.strip() for c in line.strip('|').split('|')] for line in lines[2:]]
    assert [c[:2] for c in cells] == [['det', 'none'], ['det', 'ECA'], ['seg', 'SE']]
    eca = cells[1]
    assert eca[2] == 'defaults' and eca[4] == '0.261' and eca[5] == '4,000,078'
    assert eca[6] == '+78' and eca[7] == '11.00' and eca[8] == '1.100×'
    assert eca[10] == '–'  # no ratio measured
    se = cells[2]
    assert se[2] == 'reduction=24' and se[6] == '–'  # no plain segmentor in this run
    assert se[7] == '–' and se[9] == '–'


def test_report_says_what_tiny_data_proves():
    from coordatt_mm.analysis.compare_attention import report
    summary = dict(machine='CPU X', rows=[row('det', 'none', 0.25, 4_000_000, 10.0, 5.0)],
                   settings=dict(det_epochs=1, seg_iters=None, repeats=3, warmup=1, threads=1))
    text = report(summary)
    assert 'prove only that each pipeline' in text and 'do not rank the modules' in text
    assert 'the experiment the critique of the paper asks for' in text
    assert 'detection 1 epochs' in text and "the demo config's iterations" in text
    assert '| det | none |' in text


@pytest.mark.parametrize('argv,message', [
    (['--attention', 'none', 'GCNet'], 'GCNet not registered; choose from none, CBAM, CoordAtt'),
    (['--attention', 'ECA', 'ECA'], '--attention names ECA more than once'),
    (['--attention', 'ECA', '--seg-iters', '0'], '--seg-iters 0: must be at least 1'),
])
def test_bad_arguments_give_one_line(capsys, argv, message):
    main = tool('tools/analysis/compare_attention.py')
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and message in err, err


def test_unknown_type_error_names_every_registered_layer():
    from coordatt_mm.analysis.compare_attention import unknown_types
    err = unknown_types(['none', 'Foo'])
    for name in ('CBAM', 'CoordAtt', 'ECA', 'SE', 'SimAM', 'TripletAttention'):
        assert name in err
    assert unknown_types(['none', 'SE', 'CoordAtt']) is None


def test_layers_take_the_full_configs_settings():
    from coordatt_mm.analysis.compare_attention import _override, attention_setting
    setting, source = attention_setting('SE')
    assert setting == dict(type='SE', reduction=24)  # the paper's SE, as in its configs
    assert source == 'ssdlite_mobilenetv2-se_8xb24-600e_coco.py'
    assert attention_setting('none') == (None, 'plain network')
    # the demo configs' CA settings must not merge into another layer
    assert _override(setting) == {'model.backbone.attention':
                                  dict(type='SE', reduction=24, _delete_=True)}


@pytest.mark.slow
def test_two_types_on_a_tiny_schedule(tmp_path):
    import torch
    wd = tmp_path / 'cmp'
    buf = io.StringIO()
    threads = torch.get_num_threads()
    try:
        with contextlib.redirect_stdout(buf):
            rc = tool('tools/analysis/compare_attention.py')([
                '--attention', 'none', 'ECA', '--det-epochs', '1', '--seg-iters', '2',
                '--work-dir', str(wd), '--repeats', '2', '--warmup', '1', '--threads', '1'])
    finally:
        torch.set_num_threads(threads)
    assert rc == 0
    summary = json.loads((wd / 'compare_attention.json').read_text())
    rows = {(r['task'], r['attention']): r for r in summary['rows']}
    assert set(rows) == {(t, a) for t in ('det', 'seg') for a in ('none', 'ECA')}
    for key, r in rows.items():
        for k in ('value', 'params', 'eager_ms', 'ort_ms', 'eager_ratio', 'ort_ratio'):
            assert isinstance(r[k], (int, float)) and math.isfinite(r[k]), (key, k)
        assert r['eager_ms'] > 0 and r['ort_ms'] > 0
        assert (wd / r['attention'] / r['task'] / f"{r['task']}.onnx").is_file()
        assert r['check'].startswith(('passed', 'unchecked'))
    for task in ('det', 'seg'):
        assert rows[task, 'none']['eager_ratio'] == 1.0
        # ECA adds one small 1-D conv per attention layer, nothing else
        assert 0 < rows[task, 'ECA']['params'] - rows[task, 'none']['params'] < 200
        assert rows[task, 'ECA']['settings'] == dict(type='ECA')
    text = (wd / 'compare_attention.md').read_text()
    assert 'prove only that each pipeline' in text and text in buf.getvalue()
    assert text.count('\n| det |') == 2 and text.count('\n| seg |') == 2
