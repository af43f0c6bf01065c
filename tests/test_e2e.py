"""End to end, as users run it: the demo (tiny data -> train -> test -> folder inference) as
``make demo`` runs it, then ``mim test`` on what it trained. The thresholds are the demo's own
(what it publishes in docs/demo_summary.json is above them); a model that does not learn scores
0 mAP and about 21 mIoU (background everywhere)."""
import re

import pytest

from coordatt_mm.apis.demo import THRESHOLDS

from e2e_utils import BIN, DET_EPOCHS, REPO, SEG_ITERS, last_json_metrics, run, train_losses


def test_demo_reports_progress_results_and_outputs(demo):
    det, seg = demo['det'], demo['seg']
    assert det['trained'] >= THRESHOLDS['coco/bbox_mAP'], det
    assert seg['trained'] >= THRESHOLDS['mIoU'], seg
    lines = demo['stdout'].splitlines()
    progress = [line for line in lines if re.search(r'iteration \d+/\d+, loss [\d.]+, ETA', line)]
    assert any('detection: epoch' in line for line in progress)
    assert any('segmentation: iteration' in line for line in progress)
    # while it trains, a console line at least every 10 seconds
    stamped = [(int(m) * 60 + int(s), text) for m, s, text in
               re.findall(r'^\[demo (\d+):(\d\d)\] (.*)$', demo['stdout'], re.M)]
    for task in ('detection', 'segmentation'):
        start = next(i for i, (_, t) in enumerate(stamped)
                     if t.startswith(f'{task}: model built'))
        end = next(i for i, (_, t) in enumerate(stamped) if t.startswith(f'{task}: testing'))
        gaps = [b[0] - a[0] for a, b in zip(stamped[start:end], stamped[start + 1:end + 1])]
        assert gaps and max(gaps) <= 10, (task, gaps)
    table = demo['stdout'].split('\n\n')[-2]
    assert 'coco/bbox_mAP' in table and 'mIoU' in table and f"{det['trained']:.3f}" in table
    for r in (det, seg):
        s = r['infer_summary']
        assert s['images_found'] == s['images_done'] == 6 and not s['images_failed']


@pytest.mark.parametrize('task', ['det', 'seg'])
def test_training_lowers_the_loss(demo, task):
    losses = train_losses(demo['wd'] / task)
    assert len(losses) >= 5
    assert sum(losses[-2:]) / 2 < 0.5 * sum(losses[:2]) / 2, losses


# mmseg's script in the slow run: the same mim route, another 15 s
@pytest.mark.parametrize('task,scope,key', [('det', 'mmdet', 'coco/bbox_mAP'),
                                            pytest.param('seg', 'mmseg', 'mIoU',
                                                         marks=pytest.mark.slow)])
def test_mim_test_scores_the_demo_checkpoint(demo, tmp_path, task, scope, key):
    r = demo[task]
    run([BIN / 'mim', 'test', scope, REPO / r['config'], '--checkpoint', r['checkpoint'],
         '--work-dir', tmp_path], cwd=tmp_path)
    metrics = last_json_metrics(tmp_path, key)
    # evaluated again by mmdet's/mmseg's own test script: the demo's figure
    assert metrics[key] == pytest.approx(r['trained'], abs=1e-3)
    if task == 'det':
        assert metrics['coco/bbox_mAP_50'] > metrics['coco/bbox_mAP']


@pytest.mark.slow
@pytest.mark.parametrize('task,scope', [('det', 'mmdet'), ('seg', 'mmseg')])
def test_mim_train_resume_continues_from_last_checkpoint(demo, tmp_path, task, scope):
    import shutil
    wd = tmp_path / task
    shutil.copytree(demo['wd'] / task, wd, ignore=shutil.ignore_patterns('test'))
    last = (wd / 'last_checkpoint').read_text().strip().rsplit('/', 1)[1]
    (wd / 'last_checkpoint').write_text(str(wd / last))  # it holds an absolute path
    more = ([f'train_cfg.max_epochs={DET_EPOCHS + 1}', f'param_scheduler.1.T_max={DET_EPOCHS}',
             f'param_scheduler.1.end={DET_EPOCHS}'] if task == 'det' else
            [f'train_cfg.max_iters={SEG_ITERS + 10}', f'param_scheduler.0.end={SEG_ITERS}',
             f'default_hooks.checkpoint.interval={SEG_ITERS + 10}'])
    out = run([BIN / 'mim', 'train', scope, REPO / demo[task]['config'], '--work-dir', wd,
               '--resume', '--cfg-options', *more], cwd=tmp_path)
    assert f'Auto resumed from the latest checkpoint {wd / last}' in out
    if task == 'det':
        assert (wd / f'epoch_{DET_EPOCHS + 1}.pth').exists()
        assert f'Epoch(train) [{DET_EPOCHS + 1}]' in out and 'Epoch(train)  [1]' not in out
    else:
        assert (wd / f'iter_{SEG_ITERS + 10}.pth').exists() and f'iter: {SEG_ITERS}' in out


@pytest.mark.slow
def test_cityscapes_demo_config_trains_and_scores(tmp_path):
    import sys
    run([sys.executable, REPO / 'tools/make_tiny_data.py'], cwd=REPO)
    cfg = REPO / 'configs/demo/deeplabv3_mobilenetv2-ca-d16_1xb8-100i_tiny-cityscapes.py'
    run([BIN / 'mim', 'train', 'mmseg', cfg, '--work-dir', tmp_path / 'w'], cwd=tmp_path)
    assert train_losses(tmp_path / 'w')[-1] < 0.5 * train_losses(tmp_path / 'w')[0]
    run([BIN / 'mim', 'test', 'mmseg', cfg, '--checkpoint', tmp_path / 'w/iter_100.pth',
         '--work-dir', tmp_path / 't'], cwd=tmp_path)
    assert last_json_metrics(tmp_path / 't', 'mIoU')['mIoU'] > 40


def test_mmdet_analyze_logs_plots_our_training_log(demo, tmp_path, monkeypatch):
    """`mim run mmdet analyze_logs plot_curve` on the demo's log (its script, run here)."""
    import glob
    import runpy
    import sys

    import mmdet
    script = f'{mmdet.__path__[0]}/.mim/tools/analysis_tools/analyze_logs.py'
    log = glob.glob(str(demo['wd'] / 'det' / '*' / 'vis_data' / 'scalars.json'))[0]
    out = tmp_path / 'loss.png'
    monkeypatch.setattr(sys, 'argv', ['analyze_logs.py', 'plot_curve', log, '--keys', 'loss',
                                      '--out', str(out)])
    import matplotlib
    matplotlib.use('Agg')
    runpy.run_path(script, run_name='__main__')
    assert out.read_bytes()[:8] == b'\x89PNG\r\n\x1a\n'  # (it imports seaborn to get here)
