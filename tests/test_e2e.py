"""End to end, as users run it: `tools/demo.py` (mim train -> mim test -> coordatt-infer) on the
tiny data with a shortened schedule, then resume through `mim train --resume`.

The shortened schedule's thresholds are below the full demo's (tools/demo.py THRESHOLDS) but
far above what an untrained model gets.
"""
import shutil

import pytest

from e2e_utils import (DET_EPOCHS, MIN_DET_MAP, MIN_SEG_MIOU, REPO, SEG_ITERS, BIN,
                       last_json_metrics, run, tool, train_losses)


def test_demo_prints_table_and_reaches_thresholds(demo):
    det, seg = demo['det'], demo['seg']
    assert 'coco/bbox_mAP' in demo['stdout'] and 'mIoU' in demo['stdout']
    assert det['trained'] >= MIN_DET_MAP > det['untrained']
    assert seg['trained'] >= MIN_SEG_MIOU
    assert seg['trained'] > seg['untrained'] + 10
    for r in (det, seg):
        s = r['infer_summary']
        assert s['images_found'] == s['images_done'] == 6 and not s['images_failed']


def test_detection_training_lowers_loss_and_beats_untrained(demo):
    losses = train_losses(demo['det']['checkpoint'].rsplit('/', 1)[0])
    assert len(losses) >= 5
    assert sum(losses[-3:]) / 3 < 0.6 * sum(losses[:3]) / 3
    # mim test wrote COCO metrics computed by pycocotools through mmdet's CocoMetric
    m = last_json_metrics(demo['wd'] / 'ssdlite' / 'test_trained', 'coco/bbox_mAP')
    assert m['coco/bbox_mAP'] == pytest.approx(demo['det']['trained'])
    assert m['coco/bbox_mAP_50'] > m['coco/bbox_mAP']


def test_segmentation_training_lowers_loss_and_beats_untrained(demo):
    losses = train_losses(demo['seg']['checkpoint'].rsplit('/', 1)[0])
    assert sum(losses[-2:]) / 2 < 0.6 * losses[0]
    m = last_json_metrics(demo['wd'] / 'deeplabv3' / 'test_trained', 'mIoU')
    assert m['mIoU'] == pytest.approx(demo['seg']['trained'])


@pytest.mark.parametrize('task,scope,extra', [
    ('ssdlite', 'mmdet', [f'train_cfg.max_epochs={DET_EPOCHS + 1}',
                          f'train_cfg.val_interval={DET_EPOCHS + 1}',
                          f'param_scheduler.1.T_max={DET_EPOCHS}', f'param_scheduler.1.end={DET_EPOCHS}']),
    # mmseg's resume through mim also runs in the slow Cityscapes test; here only with -m slow
    pytest.param('deeplabv3', 'mmseg', [f'train_cfg.max_iters={SEG_ITERS + 10}',
                                        f'train_cfg.val_interval={SEG_ITERS + 10}',
                                        f'param_scheduler.0.end={SEG_ITERS}',
                                        f'default_hooks.checkpoint.interval={SEG_ITERS + 10}'],
                 marks=pytest.mark.slow),
])
def test_mim_train_resume_continues_from_last_checkpoint(demo, tmp_path, task, scope, extra):
    src = demo['wd'] / task
    wd = tmp_path / task
    shutil.copytree(src, wd, ignore=shutil.ignore_patterns('test_*', 'untrained.pth'))
    # last_checkpoint holds an absolute path: point it at the copy
    last = (wd / 'last_checkpoint').read_text().strip().rsplit('/', 1)[1]
    (wd / 'last_checkpoint').write_text(str(wd / last))
    cfg = demo['det' if task == 'ssdlite' else 'seg']['config']
    out = run([BIN / 'mim', 'train', scope, REPO / cfg, '--work-dir', wd, '--resume', '--cfg-options', *extra],
              cwd=tmp_path)
    unit = 'epoch' if task == 'ssdlite' else 'iter'
    done = DET_EPOCHS if task == 'ssdlite' else SEG_ITERS
    assert f'Auto resumed from the latest checkpoint {wd / last}' in out
    assert f'resumed {"epoch: " + str(done) if unit == "epoch" else ""}' in out
    if unit == 'epoch':
        assert (wd / f'epoch_{DET_EPOCHS + 1}.pth').exists()
        assert f'Epoch(train) [{DET_EPOCHS + 1}]' in out and 'Epoch(train)  [1]' not in out
    else:
        assert (wd / f'iter_{SEG_ITERS + 10}.pth').exists()
        assert f'iter: {SEG_ITERS}' in out


@pytest.mark.slow
def test_cityscapes_mim_train_test_resume(tmp_path):
    """Tiny Cityscapes through mim train / mim test / mim train --resume (make test-all)."""
    import sys
    run([sys.executable, REPO / 'tools/make_tiny_data.py'], cwd=REPO)
    cfg = REPO / 'configs/demo/deeplabv3_mobilenetv2-ca-d8_1xb8-300i_tiny-cityscapes.py'
    wd = tmp_path / 'city'
    iters = 120
    sched = [f'train_cfg.max_iters={iters}', f'train_cfg.val_interval={iters}',
             f'param_scheduler.0.end={iters}', f'default_hooks.checkpoint.interval={iters}']
    run([BIN / 'mim', 'train', 'mmseg', cfg, '--work-dir', wd, '--cfg-options', *sched], cwd=tmp_path)
    losses = train_losses(wd)
    assert sum(losses[-2:]) / 2 < 0.6 * losses[0]
    tool('tools/demo.py', 'save_untrained')(str(cfg), str(tmp_path / 'untrained.pth'))
    miou = {}
    for name, ckpt in (('untrained', tmp_path / 'untrained.pth'), ('trained', wd / f'iter_{iters}.pth')):
        run([BIN / 'mim', 'test', 'mmseg', cfg, '--checkpoint', ckpt, '--work-dir', tmp_path / name],
            cwd=tmp_path)
        miou[name] = last_json_metrics(tmp_path / name, 'mIoU')['mIoU']
    assert miou['trained'] > miou['untrained'] + 10, miou
    more = [f'train_cfg.max_iters={iters + 10}', f'train_cfg.val_interval={iters + 10}',
            f'param_scheduler.0.end={iters}', f'default_hooks.checkpoint.interval={iters + 10}']
    out = run([BIN / 'mim', 'train', 'mmseg', cfg, '--work-dir', wd, '--resume', '--cfg-options', *more],
              cwd=tmp_path)
    assert f'iter: {iters}' in out and (wd / f'iter_{iters + 10}.pth').exists()
