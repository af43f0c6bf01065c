"""Training with several processes on the CPU (gloo) through the configs' own runner and DDP
wrapper, and what importing coordatt_mm does (and does not do) to the process."""
import json
import re
import socket
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch

from coordatt_cli import train as train_cli

from e2e_utils import BIN, DET_DEMO, REPO, SEG_DEMO, launch, write_cfg

CONFIGS = sorted(p for p in (REPO / 'configs').rglob('*.py') if '_base_' not in p.parts)


# what these tests check is the path without CUDA; with CUDA the runner is mmengine's, unchanged
cpu_only = pytest.mark.skipif(torch.cuda.is_available(), reason='the CPU (gloo) path')


def free_port() -> int:
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        return s.getsockname()[1]


def torchrun(config, work_dir, cwd, nproc=2):
    return launch([BIN / 'torchrun', '--nproc_per_node', nproc, '--master_port', free_port(),
                   REPO / 'tools/train.py', config, '--launcher', 'pytorch', '--work-dir',
                   work_dir], cwd=cwd, extra_env={'OMP_NUM_THREADS': '1'})


IMPORT_CHECK = textwrap.dedent('''
    import torch, mmcv.cnn, mmdet.models, mmseg.models
    import mmengine.dist, mmengine.runner.runner as runner_mod
    import mmengine.registry as root
    import mmdet.registry, mmseg.registry
    regs = {f'{mod.__name__}.{name}': getattr(mod, name)
            for mod in (root, mmdet.registry, mmseg.registry)
            for name in dir(mod) if isinstance(getattr(mod, name), root.Registry)}
    before = {k: dict(r.module_dict) for k, r in regs.items()}
    fns = (runner_mod.init_dist, mmengine.dist.init_dist, torch.nn.SyncBatchNorm.forward)
    import coordatt_mm
    changed = [f'{k}:{n}' for k, r in regs.items() for n, c in before[k].items()
               if r.module_dict.get(n) is not c]
    assert not changed, changed
    assert (runner_mod.init_dist, mmengine.dist.init_dist, torch.nn.SyncBatchNorm.forward) == fns
    sync_bn = root.MODELS.get('SyncBN')  # mmcv's: mmengine's subclass of torch's
    assert sync_bn.__module__.startswith('mmengine.')
    assert issubclass(sync_bn, torch.nn.SyncBatchNorm)
    added = sorted(f'{k.rsplit(".", 1)[1]}.{n}' for k, r in regs.items() for n in r.module_dict
                   if n not in before[k])
    print('ADDED', ' '.join(added))
''')


def test_import_registers_and_replaces_nothing():
    r = subprocess.run([sys.executable, '-c', IMPORT_CHECK], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr[-2000:]
    added = set(r.stdout.split('ADDED', 1)[1].split())
    assert {'MODELS.CoordAtt', 'MODELS.MobileNetV2CA', 'RUNNERS.CPUDistributedRunner',
            'HOOKS.DatasetCheckHook', 'WEIGHT_INITIALIZERS.CheckedPretrained'} <= added


# one rank's batch is half the single process's; the same 4 images, no random augmentation
SEG_BODY = """
custom_imports = dict(imports=['coordatt_mm', 'ddp_probe'], allow_failed_imports=False)
custom_hooks = [dict(type='DatasetCheckHook'), dict(type='RNGStateHook'),
                dict(type='LossProbeHook')]
randomness = dict(seed=0)
model = dict(decode_head=dict(dropout_ratio=0.0))  # dropout would draw different masks
optim_wrapper = dict(type='GradProbeOptimWrapper')
pipe = [dict(type='LoadImageFromFile'), dict(type='LoadAnnotations'),
        dict(type='Resize', scale=(64, 64), keep_ratio=False), dict(type='PackSegInputs')]
voc = dict(type='PascalVOCDataset', data_root={{{{_base_.data_root}}}}, pipeline=pipe)
train_dataloader = dict(batch_size={batch}, num_workers=0,
                        sampler=dict(type='InfiniteSampler', shuffle=False),
                        dataset=dict(datasets=[
                            dict(voc, ann_file='ImageSets/Segmentation/train.txt',
                                 data_prefix=dict(img_path='JPEGImages',
                                                  seg_map_path='SegmentationClass')),
                            dict(voc, ann_file='ImageSets/Segmentation/aug.txt',
                                 data_prefix=dict(img_path='JPEGImages',
                                                  seg_map_path='SegmentationClassAug'))]))
train_cfg = dict(max_iters=1, val_interval=100)
param_scheduler = [dict(type='PolyLR', eta_min=1e-4, power=0.9, begin=0, end=1, by_epoch=False)]
default_hooks = dict(checkpoint=dict(interval=1), logger=dict(interval=1))
"""


@cpu_only
def test_two_processes_synchronise_batchnorm(tmp_path, tiny_repo_data):
    """2 CPU processes (gloo) vs 1 process on the same 4 images: the same loss and the same
    BatchNorm weight gradients, which needs the BN statistics synchronised across processes."""
    one = write_cfg(tmp_path / 'one.py', SEG_DEMO, SEG_BODY.format(batch=4))
    two = write_cfg(tmp_path / 'two.py', SEG_DEMO, SEG_BODY.format(batch=2))
    # the single process here (its own start-up adds nothing to what is tested)
    assert train_cli.main([str(one), '--work-dir', str(tmp_path / 'w1')]) == 0
    r2 = torchrun(two, tmp_path / 'w2', tmp_path)
    assert r2.returncode == 0, r2.stderr[-3000:]
    assert 'distributed training with gloo' in r2.stdout + r2.stderr
    single = json.loads((tmp_path / 'w1/first_loss_rank0.json').read_text())['loss']
    ranks = [json.loads((tmp_path / f'w2/first_loss_rank{r}.json').read_text())['loss']
             for r in (0, 1)]
    # CE averaged over all pixels of equal-size images: the mean of the ranks' losses equals
    # the single process's loss only if BN statistics were synchronised across the processes
    assert abs(sum(ranks) / 2 - single) < 1e-4 * max(1.0, abs(single)), (single, ranks)
    assert abs(ranks[0] - ranks[1]) > 1e-6  # the ranks did see different images
    g1 = torch.load(tmp_path / 'w1/bn_grads_rank0.pth')
    g2 = [torch.load(tmp_path / f'w2/bn_grads_rank{r}.pth') for r in (0, 1)]
    assert len(g1) > 50 and set(g1) == set(g2[0]) == set(g2[1])
    # float32 leaves this random-init network's gradients ~0.5% apart between two summation
    # orders (float64 vs float32, measured); without synchronised statistics they are ~100%
    # apart (measured: BN computed per process)
    errors = sorted(((g2[0][k] - v).norm() / v.norm()).item() for k, v in g1.items())
    assert errors[len(errors) // 2] < 0.02 and errors[-1] < 0.05, errors[-5:]
    for k in g1:  # DDP all-reduced them
        torch.testing.assert_close(g2[1][k], g2[0][k], msg=k)
    # one checkpoint, written by rank 0
    assert sorted(p.name for p in (tmp_path / 'w2').glob('iter_*.pth')) == ['iter_1.pth']


DET_BODY = """
train_dataloader = dict(batch_size=2, num_workers=0, dataset=dict(dataset=dict(indices=8)))
train_cfg = dict(max_epochs=1, val_interval=100)
default_hooks = dict(logger=dict(interval=1))
"""


@pytest.mark.slow  # the default run keeps the segmentation one (BN sync); every config: below
@cpu_only
def test_two_process_detection_runs_past_the_first_iteration(tmp_path, tiny_repo_data):
    # DDP with find_unused_parameters=False fails at the second iteration on an unused layer
    cfg = write_cfg(tmp_path / 'det.py', DET_DEMO, DET_BODY)
    r = torchrun(cfg, tmp_path / 'w', tmp_path)
    assert r.returncode == 0, r.stderr[-3000:]
    assert 'Epoch(train) [1][2/2]' in r.stdout + r.stderr
    assert (tmp_path / 'w/epoch_1.pth').exists()


def tiny_version(cfg_path: Path, tiny: Path, out: Path) -> Path:
    """``cfg_path`` on the tiny data: small crops, 2 iterations (or 1 epoch of 8 images)."""
    from mmengine.config import Config
    cfg = Config.fromfile(str(cfg_path))
    roots = {'data/coco/': tiny / 'coco', 'data/VOCdevkit/VOC2012': tiny / 'VOCdevkit/VOC2012',
             'data/VOCdevkit/': tiny / 'VOCdevkit', 'data/cityscapes/': tiny / 'cityscapes',
             'data/imagenet': tiny / 'imagenet'}

    def fix(node):
        if isinstance(node, dict):
            for k, v in list(node.items()):
                if k == 'data_root':
                    node[k] = next((str(t) + '/' for r, t in roots.items()
                                    if v.rstrip('/') == r.rstrip('/')), v)
                elif k == 'times':
                    node[k] = 1
                else:
                    fix(v)
            if node.get('type') in ('RandomResize', 'Resize') and 'scale' in node:
                node['scale'] = (256, 128) if cfg.default_scope == 'mmseg' else (320, 320)
            if node.get('type') == 'RandomCrop':
                node['crop_size'] = (128, 128)
            if ('ann_file' in node and cfg.default_scope == 'mmdet'
                    or node.get('type') == 'ImageNet'):
                node['indices'] = 8
        elif isinstance(node, list):
            for v in node:
                fix(v)

    fix(cfg.train_dataloader)
    cfg.train_dataloader.update(batch_size=2, num_workers=0, persistent_workers=False)
    cfg.model.backbone.init_cfg = None
    cfg.model.pop('pretrained', None)
    cfg.load_from = None
    if cfg.default_scope == 'mmseg':
        cfg.model.data_preprocessor.size = (128, 128)
        cfg.train_cfg = dict(type='IterBasedTrainLoop', max_iters=2)
    else:
        cfg.train_cfg = dict(type='EpochBasedTrainLoop', max_epochs=1)
    cfg.default_hooks.checkpoint = dict(type='CheckpointHook', interval=1000)
    cfg.default_hooks.logger = dict(type='LoggerHook', interval=1)
    for split in ('val', 'test'):  # training only
        cfg[f'{split}_dataloader'] = cfg[f'{split}_cfg'] = cfg[f'{split}_evaluator'] = None
    cfg.dump(str(out))
    return out


@cpu_only
@pytest.mark.slow
@pytest.mark.parametrize('path', CONFIGS, ids=lambda p: p.name)
def test_every_config_trains_with_two_processes(path, tmp_path, tiny_repo_data):
    cfg = tiny_version(path, REPO / 'data/tiny', tmp_path / path.name)
    r = torchrun(cfg, tmp_path / 'w', tmp_path)
    out = r.stdout + r.stderr
    assert r.returncode == 0, out[-3000:]
    assert re.search(r'(Iter\(train\) \[2/2\]|Epoch\(train\) \[1\]\[2/\d+\])', out), out[-3000:]
