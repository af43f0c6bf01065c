"""tools/gpu_check.py: every check compares what a GPU computed with a reference from elsewhere,
so without a GPU every row says skipped; each verdict (coordatt_cli/gpu_check/compare.py) fails
when it is handed a wrong result -- mmcv's ops, CoordAtt, SyncBN statistics, the training
metric -- and passes on an independent right one."""
import copy
import json
import math
import re

import pytest
import torch
import torch.nn.functional as F
import torchvision

from coordatt_cli.gpu_check import CHECKS, compare, coordatt, runner, syncbn, training
from coordatt_cli.gpu_check.compare import Failed
from coordatt_cli.gpu_check.mmcv_ops import mmcv_ops_inputs, run_mmcv_ops

from e2e_utils import tool


@pytest.mark.skipif(torch.cuda.is_available(), reason='the machine has a GPU')
def test_without_a_gpu_every_check_is_skipped(tmp_path, capsys):
    assert tool('tools/gpu_check.py')(['--out', str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert 'no GPU visible' in out
    rows = json.loads((tmp_path / 'gpu_check.json').read_text())['checks']
    assert [r['check'] for r in rows] == list(CHECKS)
    assert all(r == dict(check=r['check'], result='skipped', figures='needs a GPU') for r in rows)
    table = (tmp_path / 'gpu_check.md').read_text()
    assert table.startswith('GPU check, ') and '| coordatt | skipped | needs a GPU |' in table
    assert 'no GPU: torch.cuda.is_available() is False' in table


def test_the_command_line_picks_checks(tmp_path, monkeypatch):
    seen = []
    monkeypatch.setattr(runner, 'gpu_check', lambda out, iters, selected: seen.append(
        (iters, selected)) or 0)
    main = tool('tools/gpu_check.py')
    assert main(['--only', 'syncbn', 'coordatt', '--iters', '16']) == 0
    assert main(['--skip', 'benchmark']) == 0
    assert seen == [(16, ['coordatt', 'syncbn']), (80, [c for c in CHECKS if c != 'benchmark'])]
    assert tuple(runner.checks(torch.device('cuda'), str(tmp_path), 8)) == CHECKS


def test_a_failing_check_is_a_row_and_exit_1(tmp_path, monkeypatch):
    def broken():
        raise RuntimeError('nms_impl: implementation for device cuda:0 not found')

    def wrong():
        raise Failed('roi_align: relative difference 3.0e-02 from the reference (bound 1.0e-05)')
    fns = dict.fromkeys(CHECKS, lambda: 'fine')
    fns.update({'mmcv-ops': broken, 'coordatt': wrong})
    monkeypatch.setattr(runner, 'checks', lambda device, out_dir, iters: fns)
    monkeypatch.setattr(runner.torch.cuda, 'is_available', lambda: True)
    rows = runner.run_checks(str(tmp_path), 8, [c for c in CHECKS if c != 'benchmark'])
    by_name = {r['check']: r for r in rows}
    assert by_name['mmcv-ops']['result'] == 'FAIL' and 'nms_impl' in by_name['mmcv-ops']['figures']
    assert by_name['coordatt']['result'] == 'FAIL'
    assert by_name['coordatt']['figures'].startswith('roi_align: relative difference 3.0e-02')
    assert by_name['syncbn']['result'] == 'pass'
    assert by_name['benchmark'] == dict(check='benchmark', result='skipped',
                                        figures='not selected')
    assert '| mmcv-ops | FAIL | RuntimeError: nms_impl' in runner.report(rows, 'head')
    # the command's exit status and files
    monkeypatch.setattr(runner, 'run_checks', lambda out_dir, iters, selected: rows)
    monkeypatch.setattr(runner, 'machine', lambda: 'a machine')
    assert runner.gpu_check(str(tmp_path), 8, ('mmcv-ops', 'coordatt')) == 1  # no data needed
    written = json.loads((tmp_path / 'gpu_check.json').read_text())
    assert written == dict(header=written['header'], checks=rows)
    assert written['header'].endswith(': a machine')


def test_relative_difference_lets_no_nan_or_shape_through():
    ref = torch.ones(3, 4)
    assert compare.relative_difference(ref * (1 + 1e-3), ref) == pytest.approx(1e-3, rel=1e-4)
    assert compare.relative_difference(torch.full((3, 4), math.nan), ref) == math.inf
    with pytest.raises(Failed, match=r'non-finite|relative difference inf'):
        compare.close('y', ref.clone().index_fill_(0, torch.tensor([1]), math.inf), ref, 1.0)
    with pytest.raises(Failed, match=r'shape \(4, 3\) where the reference has \(3, 4\)'):
        compare.relative_difference(torch.ones(4, 3), ref)


def torchvision_ops(inputs):
    """What mmcv's ops compute, by torchvision's independent implementations."""
    boxes, scores, classes = inputs['boxes'], inputs['scores'], inputs['classes']
    batched = torchvision.ops.batched_nms(boxes, scores, classes, 0.5)
    return dict(keep=torchvision.ops.nms(boxes, scores, 0.5), batched_keep=batched,
                dets=torch.cat([boxes[batched], scores[batched, None]], 1),
                roi=torchvision.ops.roi_align(inputs['feats'], inputs['rois'], (7, 7), 1.0, 2,
                                              aligned=True))


def test_mmcv_ops_verdict():
    inputs = mmcv_ops_inputs()
    ref = run_mmcv_ops(torch.device('cpu'), inputs)
    good = torchvision_ops(inputs)
    assert re.fullmatch(r'nms keeps the same \d+ boxes, batched_nms the same \d+ \(\S+\), '
                        r'roi_align \S+', compare.mmcv_ops_agree(good, ref))
    wrong = dict(good, keep=good['keep'][:-1])  # one box lost
    with pytest.raises(Failed, match=r'nms keeps \d+ boxes where the CPU keeps \d+ \(extra '
                                     r'\[\], missing \[\d+\]'):
        compare.mmcv_ops_agree(wrong, ref)
    wrong = dict(good, batched_keep=good['batched_keep'].flip(0))
    with pytest.raises(Failed, match='same boxes in another order'):
        compare.mmcv_ops_agree(wrong, ref)
    wrong = dict(good, roi=good['roi'] * 1.001)
    with pytest.raises(Failed, match=r'roi_align: relative difference 1\.0e-03'):
        compare.mmcv_ops_agree(wrong, ref)
    wrong = dict(good, dets=good['dets'] + torch.tensor([0, 0, 0, 0, 1e-3]))  # scores off
    with pytest.raises(Failed, match='batched_nms boxes and scores'):
        compare.mmcv_ops_agree(wrong, ref)


def test_coordatt_verdict():
    layer = coordatt.random_layer(32)
    g = torch.Generator().manual_seed(1)
    x = torch.randn(2, 32, 12, 9, generator=g)
    grad = torch.randn(x.shape, generator=g)
    ref = coordatt.training_step(copy.deepcopy(layer).double(), x.double(), grad.double())
    plain = copy.deepcopy(layer)
    plain.use_ops = False  # PyTorch ops in float32: another path than the reference's
    err = compare.coordatt_agrees('float32', coordatt.training_step(plain, x, grad), ref,
                                  coordatt.AUTOCAST_BOUNDS[None])
    assert 0 < err < 1e-6
    half = coordatt.training_step(plain, x, grad, torch.bfloat16)  # CPU autocast, bfloat16
    err = compare.coordatt_agrees('bfloat16', half, ref, coordatt.AUTOCAST_BOUNDS[torch.bfloat16])
    assert 1e-4 < err < coordatt.AUTOCAST_BOUNDS[torch.bfloat16]
    # bfloat16's result fails the float32 bound; a layer whose W gate is off fails any
    with pytest.raises(Failed, match='bfloat16 output: relative difference'):
        compare.coordatt_agrees('bfloat16', half, ref, coordatt.AUTOCAST_BOUNDS[None])
    off = copy.deepcopy(plain)
    with torch.no_grad():
        off.conv_w.bias.add_(0.05)
    with pytest.raises(Failed, match='float32 output: relative difference'):
        compare.coordatt_agrees('float32', coordatt.training_step(off, x, grad), ref, 1e-2)
    nan = coordatt.training_step(plain, x, grad)
    nan[1][0, 0, 0, 0] = math.nan
    with pytest.raises(Failed, match='float32 input gradient: relative difference inf'):
        compare.coordatt_agrees('float32', nan, ref, 1e-2)


def rank_results(synchronised):
    """Each rank's results as the SyncBN workers report them, from a float64 BatchNorm (weight
    1, bias 0) over both ranks' data (``synchronised``) or over each rank's own (what two
    processes without synchronisation give): the output rows, running statistics and input
    gradient of the rank, and its share of the weight and bias gradients."""
    inputs, weights = zip(*(syncbn.rank_data(r) for r in range(2)))
    results = []
    for rank in range(2):
        parts = [x.double().requires_grad_() for x in inputs]
        mean = torch.zeros(syncbn.CHANNELS, dtype=torch.float64)
        var = torch.ones(syncbn.CHANNELS, dtype=torch.float64)
        if synchronised:
            y = F.batch_norm(torch.cat(parts), mean, var, None, None, True, syncbn.MOMENTUM,
                             syncbn.EPS)
            (y * torch.cat(weights).double()).sum().backward()
            y = y.split([len(x) for x in parts])[rank]
        else:
            y = F.batch_norm(parts[rank], mean, var, None, None, True, syncbn.MOMENTUM,
                             syncbn.EPS)
            (y * weights[rank].double()).sum().backward()
        w = weights[rank].double()
        results.append(dict(y=y.detach(), running_mean=mean, running_var=var,
                            grad=parts[rank].grad, weight_grad=(w * y.detach()).sum((0, 2, 3)),
                            bias_grad=w.sum((0, 2, 3))))
    return results


def test_syncbn_verdict_fails_unsynchronised_statistics():
    inputs, weights = zip(*(syncbn.rank_data(r) for r in range(2)))
    args = (syncbn.MOMENTUM, syncbn.EPS)
    figure = compare.syncbn_statistics(inputs, weights, rank_results(True), *args)
    assert figure.startswith("statistics of both ranks' data (a rank alone would be")
    with pytest.raises(Failed, match=r"rank 0's running mean is \S+ from the mean of both "
                                     r"ranks' data and 0\.0e\+00 from its own: the statistics "
                                     r'were not synchronised'):
        compare.syncbn_statistics(inputs, weights, rank_results(False), *args)
    # identical data on both ranks could not tell: the verdict refuses it
    with pytest.raises(Failed, match='cannot show whether the statistics were synchronised'):
        compare.syncbn_statistics([inputs[0]] * 2, [weights[0]] * 2, rank_results(True), *args)
    # synchronised statistics with a wrong input gradient (the backward not synchronised)
    wrong = rank_results(True)
    wrong[1]['grad'] = rank_results(False)[1]['grad']
    with pytest.raises(Failed, match='rank 1 grad: relative difference'):
        compare.syncbn_statistics(inputs, weights, wrong, *args)


@pytest.mark.slow
def test_syncbn_check_in_two_processes_on_the_cpu():
    """The check's own processes (gloo, coordatt_mm's CPUSyncBatchNorm standing in for torch's
    CUDA-only one) pass the verdict."""
    line = syncbn.check_syncbn('gloo', ('cpu', 'cpu'))
    assert line.startswith('2 processes, CPUSyncBatchNorm over gloo (CPU): statistics of both')


def test_training_verdicts():
    assert compare.training_metric('det', {'coco/bbox_mAP': 0.25, 'coco/bbox_mAP_50': 0.5}) == 0.25
    assert compare.training_metric('seg', {'mIoU': 71.5, 'aAcc': 90.0}) == 71.5
    # what learning nothing scores on the tiny data: a detector finds no box (0 mAP, or a
    # stray 0.001), a segmentor that paints background everywhere gets background's IoU over
    # the classes of the tiny VOC (background and 3 objects, ~85% of the pixels background)
    background_everywhere = 100 * 0.85 / 4
    for task, key, untrained in (('det', 'coco/bbox_mAP', 0.0), ('det', 'coco/bbox_mAP', 0.001),
                                 ('seg', 'mIoU', background_everywhere)):
        with pytest.raises(Failed, match=rf'{key} is {untrained:g}, below the '):
            compare.training_metric(task, {key: untrained})
    assert compare.training_metric('seg', {'mIoU': 30.0}, floor=20.0) == 30.0
    with pytest.raises(Failed, match=r'no coco/bbox_mAP among the test metrics \(none\)'):
        compare.training_metric('det', {})
    with pytest.raises(Failed, match=r'no mIoU among the test metrics \(aAcc\)'):
        compare.training_metric('seg', {'aAcc': 90.0})
    for bad in (math.nan, -0.1, 1.5):
        with pytest.raises(Failed, match='outside'):
            compare.training_metric('det', {'coco/bbox_mAP': bad})
    assert compare.falling_losses([2.0, 1.5, 1.2]) == '3 logged losses 2.000 -> 1.200'
    with pytest.raises(Failed, match='did not fall'):
        compare.falling_losses([1.0, 1.5])
    with pytest.raises(Failed, match='not finite'):
        compare.falling_losses(training.logged_losses('loss: 2.0 x loss: nan y loss: 1.0'))
    with pytest.raises(Failed, match='0 training losses'):
        compare.falling_losses([])


# rows of tools/analysis/benchmark.py's tables as it writes them (CPU, --size 64)
BENCHMARK_ROWS = {
    'NCHW': '| backbone, stem to 1280 conv, batch 1, 64², NCHW | MobileNetV2 + CA (ours) | 82.95 | '
            '69.60–96.30 | 12.1 | 1.563× |',
    'channels-last': '| backbone, stem to 1280 conv, batch 1, 64², channels-last | MobileNetV2 + '
                     'CA (ours) | 149.71 | 96.83–202.59 | 6.7 | 1.224× |',
    'step': '| training step, batch 2, 64² | MobileNetV2 + CA (ours) | 1143 | 20 | 1.912× | '
            '1.104× |'}


def test_benchmark_figures_fail_where_the_tables_do_not_give_them():
    from coordatt_cli.gpu_check.benchmark import ratios
    plain = '| backbone, stem to 1280 conv, batch 1, 64², NCHW | MobileNetV2 | 57.31 | 1.000× |'
    both = ('NCHW', 'channels-last')
    assert ratios('\n'.join([plain, *BENCHMARK_ROWS.values()]), both) == (
        'batch 1 NCHW 1.563×, batch 1 channels-last 1.224×, train step 1143 ms (1.912×), '
        'peak 20 MiB (1.104×)')
    rows = dict(BENCHMARK_ROWS)
    with pytest.raises(Failed, match='no CA/plain eval ratio read for channels-last'):
        ratios('\n'.join([rows['NCHW'], rows['step']]), both)
    with pytest.raises(Failed, match='no training step row'):
        ratios('\n'.join([rows['NCHW'], rows['channels-last']]), both)
    renamed = '\n'.join(rows.values()).replace('(ours)', '(this repository)')
    with pytest.raises(Failed, match='no CA/plain eval ratio read for NCHW, channels-last'):
        ratios(renamed, both)
    with pytest.raises(Failed, match='no CA/plain eval ratio read for channels-last'):
        ratios('', ('channels-last',))


@pytest.mark.slow
def test_training_and_benchmark_checks_on_the_cpu(tmp_path, tiny_repo_data):
    # segmentation: mmseg reports mIoU after a few iterations (mmdet's mAP needs boxes above the
    # score threshold, which a detector trained briefly on a CPU may not have yet)
    # 20 CPU iterations are too few for the metric floor (its verdict: test_training_verdicts)
    line = training.train_and_test('seg', str(tmp_path), 20, amp=False, floor=0.0)
    assert re.fullmatch(r'float32, 4 logged losses \S+ -> \S+; test: mIoU \d+\.\d+', line), line
    from coordatt_cli.gpu_check.benchmark import check_benchmark
    line = check_benchmark(str(tmp_path), 'cpu', (
        '--batch', '1', '--train-batch', '2', '--repeats', '2', '--warmup', '1',
        '--size', '64'))
    assert re.search(r'fp32: CA/plain eval batch 1 NCHW [0-9.]+×, batch 1 channels-last '
                     r'[0-9.]+×, train step', line), line
    assert re.search(r'AMP: CA/plain eval batch 1 channels-last [0-9.]+×', line), line
