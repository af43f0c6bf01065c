"""Multi-process training (gloo, SyncBN), exact resume after SIGKILL, data and checkpoint checks."""
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

import coordatt_mm  # noqa: F401  (torch.load of Runner checkpoints)

from e2e_utils import BIN, REPO, env, tool

SEG_DEMO = REPO / 'configs/demo/deeplabv3_mobilenetv2-ca-d8_1xb8-300i_tiny-voc12aug.py'
DET_DEMO = REPO / 'configs/demo/ssdlite_mobilenetv2-ca_1xb8-30e_tiny-coco.py'


def write_cfg(path: Path, base: Path, body: str) -> Path:
    path.write_text(f"_base_ = '{base}'\n" + body)
    return path


def run(args, cwd, extra_env=None, timeout=900):
    e = env()
    e['PYTHONPATH'] = str(REPO / 'tests') + os.pathsep + e.get('PYTHONPATH', '')
    e.update(extra_env or {})
    return subprocess.run([str(a) for a in args], cwd=cwd, env=e, capture_output=True, text=True,
                          timeout=timeout)


@pytest.fixture(scope='module')
def tiny_repo_data():
    """data/tiny as tools/make_tiny_data.py leaves it (its main, run here: no start-up cost)."""
    assert tool('tools/make_tiny_data.py')([]) == 0


# one rank's batch is half the single process's; the same 4 images, no random augmentation
DDP_BODY = """
custom_imports = dict(imports=['coordatt_mm', 'ddp_probe'], allow_failed_imports=False)
custom_hooks = [dict(type='DatasetCheckHook'), dict(type='RNGStateHook'), dict(type='LossProbeHook')]
randomness = dict(seed=0)
model = dict(decode_head=dict(dropout_ratio=0.0))  # dropout would draw different masks
pipe = [dict(type='LoadImageFromFile'), dict(type='LoadAnnotations'),
        dict(type='Resize', scale=(128, 128), keep_ratio=False), dict(type='PackSegInputs')]
voc = dict(type='PascalVOCDataset', data_root={{{{_base_.data_root}}}}, pipeline=pipe)
train_dataloader = dict(batch_size={batch}, num_workers=0,
                        sampler=dict(type='InfiniteSampler', shuffle=False),
                        dataset=dict(datasets=[
                            dict(voc, ann_file='ImageSets/Segmentation/train.txt',
                                 data_prefix=dict(img_path='JPEGImages', seg_map_path='SegmentationClass')),
                            dict(voc, ann_file='ImageSets/Segmentation/aug.txt',
                                 data_prefix=dict(img_path='JPEGImages', seg_map_path='SegmentationClassAug'))]))
train_cfg = dict(max_iters=2, val_interval=100)
param_scheduler = [dict(type='PolyLR', eta_min=1e-4, power=0.9, begin=0, end=2, by_epoch=False)]
default_hooks = dict(checkpoint=dict(interval=2), logger=dict(interval=1))
"""


def test_two_process_training_matches_one_process(tmp_path, tiny_repo_data):
    """2 CPU processes (gloo, SyncBN really synchronised) vs 1 process, same total batch."""
    one = write_cfg(tmp_path / 'one.py', SEG_DEMO, DDP_BODY.format(batch=4))
    two = write_cfg(tmp_path / 'two.py', SEG_DEMO, DDP_BODY.format(batch=2))
    r1 = run([sys.executable, REPO / 'tools/train.py', one, '--work-dir', tmp_path / 'w1'], cwd=tmp_path)
    assert r1.returncode == 0, r1.stderr[-3000:]
    r2 = run([BIN / 'torchrun', '--nproc_per_node', '2', '--master_port', '29517',
              REPO / 'tools/train.py', two, '--launcher', 'pytorch', '--work-dir', tmp_path / 'w2'],
             cwd=tmp_path, extra_env={'OMP_NUM_THREADS': '1'})
    assert r2.returncode == 0, r2.stderr[-3000:]
    assert 'nccl -> gloo' in r2.stdout + r2.stderr
    single = json.loads((tmp_path / 'w1/first_loss_rank0.json').read_text())['loss']
    ranks = [json.loads((tmp_path / f'w2/first_loss_rank{r}.json').read_text())['loss'] for r in (0, 1)]
    # CE averaged over all pixels of equal-size images: the mean of the ranks' losses equals
    # the single process's loss only if BN statistics were synchronised across the processes
    assert abs(sum(ranks) / 2 - single) < 1e-4 * max(1.0, abs(single)), (single, ranks)
    assert abs(ranks[0] - ranks[1]) > 1e-6  # the ranks did see different images
    # one checkpoint, loadable in a single process
    assert sorted(p.name for p in (tmp_path / 'w2').glob('*.pth')) == ['iter_2.pth']
    r = run([sys.executable, REPO / 'tools/test.py', two, tmp_path / 'w2/iter_2.pth',
             '--work-dir', tmp_path / 't2'], cwd=tmp_path)
    assert r.returncode == 0, r.stderr[-3000:]
    assert 'mIoU' in json.loads((tmp_path / 't2/test_metrics.json').read_text())['metrics']


RESUME_BODY = """
randomness = dict(seed=0, deterministic=True)
train_dataloader = dict(batch_size=4, num_workers=0, dataset=dict(dataset=dict(indices=8)))
train_cfg = dict(max_epochs=3, val_interval=100)
default_hooks = dict(checkpoint=dict(interval=1, max_keep_ckpts=5), logger=dict(interval=1))
"""


def test_resume_after_sigkill_is_exact(tmp_path, tiny_repo_data):
    cfg = write_cfg(tmp_path / 'resume.py', DET_DEMO, RESUME_BODY)
    train = [sys.executable, REPO / 'tools/train.py', cfg]
    ra = run(train + ['--work-dir', tmp_path / 'a'], cwd=tmp_path)
    assert ra.returncode == 0, ra.stderr[-3000:]
    # run b: killed (SIGKILL) right after its first checkpoint
    e = env()
    proc = subprocess.Popen([str(a) for a in train + ['--work-dir', tmp_path / 'b']], cwd=tmp_path,
                            env=e, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True)
    last = tmp_path / 'b/last_checkpoint'
    deadline = time.time() + 600
    while not (last.exists() and last.read_text().strip().endswith('epoch_1.pth')):
        assert proc.poll() is None and time.time() < deadline, 'run b ended before its checkpoint'
        time.sleep(0.05)
    time.sleep(0.5)  # let the file system settle; the run goes on into epoch 2
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    assert not (tmp_path / 'b/epoch_3.pth').exists(), 'killed too late to test anything'
    rb = run(train + ['--work-dir', tmp_path / 'b', '--resume'], cwd=tmp_path)
    assert rb.returncode == 0, rb.stderr[-3000:]
    out = rb.stdout + rb.stderr
    assert 'resumed epoch: ' in out and 'RNGStateHook: random states restored' in out
    a = torch.load(tmp_path / 'a/epoch_3.pth')
    b = torch.load(tmp_path / 'b/epoch_3.pth')
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


def test_check_dataset_reports_each_problem(tmp_path, tiny_repo_data):
    root, imgs = _broken_coco(tmp_path)
    cfg = write_cfg(tmp_path / 'broken.py', DET_DEMO, f"""
data_root = '{root}/'
train_dataloader = dict(dataset=dict(dataset=dict(data_root=data_root)))
val_dataloader = dict(dataset=dict(data_root=data_root))
""")
    r = run([sys.executable, REPO / 'tools/check_dataset.py', cfg, '--split', 'train'], cwd=tmp_path)
    assert r.returncode == 1, r.stderr[-2000:]
    lines = [line for line in r.stdout.splitlines() if line.startswith('train: ')]
    assert any(imgs[0]['file_name'] in line and 'image file missing' in line for line in lines)
    assert any(imgs[1]['file_name'] in line and 'unreadable image' in line for line in lines)
    assert any(imgs[2]['file_name'] in line and 'zero area' in line for line in lines)
    assert any(imgs[3]['file_name'] in line and 'outside' in line for line in lines)
    assert 'train: 48 samples checked, 4 problems' in r.stdout
    # training stops at start with the list ...
    r = run([sys.executable, REPO / 'tools/train.py', cfg, '--work-dir', tmp_path / 'w',
             '--cfg-options', 'train_cfg.max_epochs=1'], cwd=tmp_path)
    assert r.returncode != 0
    assert 'training data check' in r.stderr and imgs[0]['file_name'] in r.stderr
    assert 'Epoch(train)' not in r.stdout + r.stderr
    # ... or leaves the bad samples out when asked
    r = run([sys.executable, REPO / 'tools/train.py', cfg, '--work-dir', tmp_path / 'w2',
             '--skip-bad-samples', '--cfg-options', 'train_cfg.max_epochs=1',
             'train_cfg.val_interval=5'], cwd=tmp_path)
    assert r.returncode == 0, r.stderr[-3000:]
    # (mmdet itself drops the zero-area box while parsing; the other three images go)
    assert '3 of 48 samples left out' in r.stderr


def test_segmentation_masks_checked(tmp_path, tiny_repo_data):
    from PIL import Image
    root = tmp_path / 'VOC2012'
    shutil.copytree(REPO / 'data/tiny/VOCdevkit/VOC2012', root)
    ids = (root / 'ImageSets/Segmentation/val.txt').read_text().split()
    Image.new('P', (10, 10)).save(root / 'SegmentationClass' / f'{ids[0]}.png')   # wrong size
    m = Image.open(root / 'SegmentationClass' / f'{ids[1]}.png')
    arr = __import__('numpy').array(m)
    arr[0, 0] = 50                                                                 # beyond 21 classes
    Image.fromarray(arr).save(root / 'SegmentationClass' / f'{ids[1]}.png')
    cfg = write_cfg(tmp_path / 'seg.py', SEG_DEMO, f"""
data_root = '{root}'
val_dataloader = dict(dataset=dict(data_root=data_root))
""")
    r = run([sys.executable, REPO / 'tools/check_dataset.py', cfg, '--split', 'val'], cwd=tmp_path)
    assert r.returncode == 1
    assert f'{ids[0]}.png: mask is 10x10' in r.stdout
    assert f'{ids[1]}.png: labels [50] exceed the 21 classes' in r.stdout


def test_bad_checkpoints_fail_with_file_and_problem(tmp_path, tiny_repo_data):
    bad = tmp_path / 'cut.pth'
    torch.save({'state_dict': {'w': torch.zeros(1000)}}, bad)
    bad.write_bytes(bad.read_bytes()[:100])
    for args in ([REPO / 'tools/test.py', DET_DEMO, bad],
                 [REPO / 'tools/train.py', DET_DEMO, '--resume', bad]):
        r = run([sys.executable, *args, '--work-dir', tmp_path / 'w'], cwd=tmp_path)
        assert r.returncode != 0
        last = r.stderr.strip().splitlines()[-1]
        assert last.startswith('error: ') and str(bad) in last and 'not a readable PyTorch checkpoint' in last
    r = run([sys.executable, REPO / 'tools/test.py', DET_DEMO, tmp_path / 'none.pth'], cwd=tmp_path)
    assert r.returncode != 0 and 'none.pth: checkpoint not found' in r.stderr
