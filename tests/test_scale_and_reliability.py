"""Exact resume after SIGKILL, data and checkpoint checks."""
import json
import os
import shutil
import signal
import subprocess
import sys
import time

import pytest
import torch

from coordatt_cli import test as test_cli
from coordatt_cli import train as train_cli

from e2e_utils import DET_DEMO, REPO, SEG_DEMO, env, tool, write_cfg
from e2e_utils import launch as run

RESUME_BODY = """
randomness = dict(seed=0, deterministic=True)
train_dataloader = dict(batch_size=4, num_workers=0, dataset=dict(dataset=dict(indices=8)))
train_cfg = dict(max_epochs=2, val_interval=100)
default_hooks = dict(checkpoint=dict(interval=1, max_keep_ckpts=5), logger=dict(interval=1))
"""


@pytest.mark.slow  # three training runs (about 70 s)
def test_resume_after_sigkill_is_exact(tmp_path, tiny_repo_data):
    cfg = write_cfg(tmp_path / 'resume.py', DET_DEMO, RESUME_BODY)
    train = [sys.executable, REPO / 'tools/train.py', cfg]
    ra = run(train + ['--work-dir', tmp_path / 'a'], cwd=tmp_path)
    assert ra.returncode == 0, ra.stderr[-3000:]
    # run b: killed (SIGKILL) right after its first checkpoint
    b = subprocess.Popen([str(x) for x in train + ['--work-dir', tmp_path / 'b']], cwd=tmp_path,
                         env=env(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                         start_new_session=True)
    last = tmp_path / 'b/last_checkpoint'
    deadline = time.time() + 600
    while not (last.exists() and last.read_text().strip().endswith('epoch_1.pth')):
        assert b.poll() is None and time.time() < deadline, 'run b ended before its checkpoint'
        time.sleep(0.05)
    time.sleep(0.1)  # let the file system settle; the run goes on into epoch 2
    os.killpg(b.pid, signal.SIGKILL)
    b.wait()
    assert not (tmp_path / 'b/epoch_2.pth').exists(), 'killed too late to test anything'
    rb = run(train + ['--work-dir', tmp_path / 'b', '--resume'], cwd=tmp_path)
    assert rb.returncode == 0, rb.stderr[-3000:]
    out = rb.stdout + rb.stderr
    assert 'resumed epoch: ' in out and 'RNGStateHook: random states restored' in out
    a = torch.load(tmp_path / 'a/epoch_2.pth')
    b = torch.load(tmp_path / 'b/epoch_2.pth')
    assert a['meta']['iter'] == b['meta']['iter']
    for k, v in a['state_dict'].items():
        torch.testing.assert_close(b['state_dict'][k], v, atol=1e-6, rtol=0, msg=k)
    # the optimizer state was restored too (momentum buffers continue)
    for (ka, va), (kb, vb) in zip(a['optimizer']['state'].items(), b['optimizer']['state'].items()):
        torch.testing.assert_close(vb['momentum_buffer'], va['momentum_buffer'], atol=1e-6, rtol=0)


def _broken_coco(tmp_path):
    src = REPO / 'data/tiny/coco'
    root = tmp_path / 'coco'
    shutil.copytree(src, root)
    ann = json.loads((root / 'annotations/instances_train2017.json').read_text())
    imgs = ann['images']
    (root / 'train2017' / imgs[0]['file_name']).unlink()                       # missing
    p = root / 'train2017' / imgs[1]['file_name']
    p.write_bytes(p.read_bytes()[:200])                                         # truncated
    a = next(x for x in ann['annotations'] if x['image_id'] == imgs[2]['id'])
    a['bbox'] = [10, 10, 0, 30]                                                  # zero area
    b = next(x for x in ann['annotations'] if x['image_id'] == imgs[3]['id'])
    b['bbox'] = [300, 300, 100, 100]                                             # outside
    (root / 'annotations/instances_train2017.json').write_text(json.dumps(ann))
    return root, imgs


@pytest.mark.slow  # a broken copy of each tiny dataset (about 15 s)
def test_check_dataset_reports_each_problem(tmp_path, tiny_repo_data, capsys):
    root, imgs = _broken_coco(tmp_path)
    cfg = write_cfg(tmp_path / 'broken.py', DET_DEMO, f"""
data_root = '{root}/'
train_dataloader = dict(dataset=dict(dataset=dict(data_root=data_root)))
val_dataloader = dict(dataset=dict(data_root=data_root))
""")
    assert tool('tools/check_dataset.py')([str(cfg), '--split', 'train']) == 1
    out = capsys.readouterr().out
    lines = [line for line in out.splitlines() if line.startswith('train: ')]
    assert any(imgs[0]['file_name'] in line and 'image file missing' in line for line in lines)
    assert any(imgs[1]['file_name'] in line and 'unreadable image' in line for line in lines)
    assert any(imgs[2]['file_name'] in line and 'zero area' in line for line in lines)
    assert any(imgs[3]['file_name'] in line and 'outside' in line for line in lines)
    assert 'train: 48 samples checked, 4 problems' in out
    # training stops at start with the list ...
    with pytest.raises(RuntimeError, match=f"training data check.*{imgs[0]['file_name']}"):
        train_cli.main([str(cfg), '--work-dir', str(tmp_path / 'w'), '--cfg-options',
               'train_cfg.max_epochs=1'])
    assert not list((tmp_path / 'w').glob('*.pth'))
    # ... or leaves the bad samples out when asked
    assert train_cli.main([str(cfg), '--work-dir', str(tmp_path / 'w2'), '--skip-bad-samples',
                        '--cfg-options', 'train_cfg.max_epochs=1']) == 0
    # (mmdet itself drops the zero-area box while parsing; the other three images go)
    assert '3 of 48 samples left out' in capsys.readouterr().err
    assert (tmp_path / 'w2/epoch_1.pth').exists()


def test_segmentation_masks_checked(tmp_path, tiny_repo_data, capsys):
    from PIL import Image
    root = tmp_path / 'VOC2012'
    shutil.copytree(REPO / 'data/tiny/VOCdevkit/VOC2012', root)
    ids = (root / 'ImageSets/Segmentation/val.txt').read_text().split()
    Image.new('P', (10, 10)).save(root / 'SegmentationClass' / f'{ids[0]}.png')   # wrong size
    m = Image.open(root / 'SegmentationClass' / f'{ids[1]}.png')
    arr = __import__('numpy').array(m)
    arr[0, 0] = 50  # beyond 21 classes
    Image.fromarray(arr).save(root / 'SegmentationClass' / f'{ids[1]}.png')
    cfg = write_cfg(tmp_path / 'seg.py', SEG_DEMO, f"""
data_root = '{root}'
val_dataloader = dict(dataset=dict(data_root=data_root))
""")
    assert tool('tools/check_dataset.py')([str(cfg), '--split', 'val']) == 1
    out = capsys.readouterr().out
    assert f'{ids[0]}.png: mask is 10x10' in out
    assert f'{ids[1]}.png: labels [50] exceed the 21 classes' in out


def test_bad_checkpoints_fail_with_file_and_problem(tmp_path, tiny_repo_data, capsys):
    bad = tmp_path / 'cut.pth'
    torch.save({'state_dict': {'w': torch.zeros(1000)}}, bad)
    bad.write_bytes(bad.read_bytes()[:100])
    assert test_cli.main([str(DET_DEMO), str(bad), '--work-dir', str(tmp_path / 'w')]) == 1
    last = capsys.readouterr().err.strip().splitlines()[-1]
    assert last.startswith('error: ') and str(bad) in last
    assert 'not a readable PyTorch checkpoint' in last
    rc = train_cli.main([str(DET_DEMO), '--resume', str(bad), '--work-dir', str(tmp_path / 'w')])
    assert rc == 1
    last = capsys.readouterr().err.strip().splitlines()[-1]
    assert last.startswith('error: ') and str(bad) in last
    assert test_cli.main([str(DET_DEMO), str(tmp_path / 'none.pth')]) == 1
    assert 'none.pth: checkpoint not found' in capsys.readouterr().err
