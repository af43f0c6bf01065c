"""tools/gpu_check.py: without a GPU it runs what needs none and says so; its training and
benchmark checks, run on the CPU, read the figures they report from real runs."""
import json
import re

import pytest
import torch

from coordatt_mm.apis import gpu_check

from e2e_utils import tool


@pytest.mark.skipif(torch.cuda.is_available(), reason='the machine has a GPU')
def test_without_a_gpu_it_says_so_and_exits_0(tmp_path, capsys):
    assert tool('tools/gpu_check.py')(['--out', str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert 'no GPU' in out
    rows = {r['check']: r for r in json.loads((tmp_path / 'gpu_check.json').read_text())['checks']}
    assert rows['mmcv-ops']['result'] == rows['coordatt']['result'] == 'pass'
    assert 'bfloat16' in rows['coordatt']['figures']
    for name in gpu_check.GPU_ONLY:
        assert rows[name] == dict(check=name, result='skipped', figures='needs a GPU')
    from coordatt_cli.gpu_check import CHECKS  # what --skip accepts: every check, in order
    assert tuple(rows) == CHECKS
    table = (tmp_path / 'gpu_check.md').read_text()
    assert '| coordatt | pass |' in table and table.startswith('GPU check, ')


def test_a_failing_check_is_a_row_and_exit_1(tmp_path, monkeypatch):
    def broken(device):
        raise RuntimeError('nms_impl: implementation for device cuda:0 not found')
    monkeypatch.setattr(gpu_check, 'check_mmcv_ops', broken)
    assert gpu_check.gpu_check(str(tmp_path), skip=['coordatt']) == 1
    rows = json.loads((tmp_path / 'gpu_check.json').read_text())['checks']
    assert rows[0]['result'] == 'FAIL' and 'nms_impl' in rows[0]['figures']
    assert rows[1]['result'] == 'skipped'


@pytest.mark.slow
def test_training_and_benchmark_checks_on_the_cpu(tmp_path, tiny_repo_data):
    line = gpu_check.train_and_test('det', str(tmp_path), 8, amp=False)
    assert line.startswith('float32, ') and 'test: ' in line and 'coco/bbox_mAP' in line
    line = gpu_check.check_benchmark(str(tmp_path), 'cpu', (
        '--batch', '1', '--train-batch', '2', '--repeats', '2', '--warmup', '1',
        '--size', '64'))
    assert re.search(r'fp32: CA/plain eval batch 1 NCHW [0-9.]+×, batch 1 channels-last '
                     r'[0-9.]+×, train step', line), line
    assert re.search(r'AMP: CA/plain eval batch 1 channels-last [0-9.]+×', line), line
