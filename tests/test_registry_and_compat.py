"""Builds through configs with custom_imports (fresh processes, as mim/tools run them), and
loading mmengine Runner checkpoints under torch >= 2.6."""
import subprocess
import sys
import textwrap

import pytest
import torch

BUILD = textwrap.dedent('''
    import sys, torch
    from mmengine.config import Config
    from mmengine.registry import init_default_scope
    assert 'coordatt_mm' not in sys.modules
    cfg = Config.fromfile(sys.argv[1])          # runs custom_imports
    init_default_scope(cfg.default_scope)
    from importlib import import_module
    MODELS = import_module(cfg.default_scope + '.registry').MODELS
    m = MODELS.build(cfg.model).eval()
    outs = m(torch.randn(1, 3, 128, 128))
    print(type(m).__module__, type(m).__name__, [tuple(o.shape[1:]) for o in outs])
''')


@pytest.mark.parametrize('scope,extra,expect', [
    ('mmdet', 'out_indices=(4, 7)', '[(96, 8, 8), (1280, 4, 4)]'),
    ('mmseg', 'out_indices=(1, 2, 4, 6), strides=(1, 2, 2, 1, 1, 1, 1), '
              'dilations=(1, 1, 1, 2, 2, 4, 4), with_final_conv=False',
     '[(24, 32, 32), (32, 16, 16), (96, 16, 16), (320, 16, 16)]'),
])
def test_builds_from_both_scopes_via_custom_imports(tmp_path, scope, extra, expect):
    cfg = tmp_path / f'{scope}_cfg.py'
    cfg.write_text(textwrap.dedent(f'''
        default_scope = '{scope}'
        custom_imports = dict(imports=['coordatt_mm'], allow_failed_imports=False)
        model = dict(type='MobileNetV2CA', attention=dict(type='CoordAtt', reduction=32), {extra})
    '''))
    r = subprocess.run([sys.executable, '-c', BUILD, str(cfg)], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr[-2000:]
    assert r.stdout.strip().endswith(
        f'coordatt_mm.backbones.mobilenet_v2_ca MobileNetV2CA {expect}')


TOY_TRAIN = textwrap.dedent('''
    import sys, torch, torch.nn as nn
    from mmengine.model import BaseModel
    from mmengine.runner import Runner
    if sys.argv[2] == 'with':
        import coordatt_mm  # noqa
    class Toy(BaseModel):
        def __init__(self):
            super().__init__(); self.lin = nn.Linear(2, 1)
        def forward(self, x, y, mode='tensor'):
            return dict(loss=((self.lin(x) - y) ** 2).mean())
    class Data(torch.utils.data.Dataset):
        def __len__(self): return 8
        def __getitem__(self, i): return dict(x=torch.full((2,), float(i)), y=torch.ones(1))
    epochs = int(sys.argv[3])
    runner = Runner(model=Toy(), work_dir=sys.argv[1], randomness=dict(seed=0),
        train_dataloader=dict(dataset=Data(), batch_size=2, collate_fn=dict(type='default_collate'),
                              sampler=dict(type='DefaultSampler', shuffle=True)),
        optim_wrapper=dict(optimizer=dict(type='SGD', lr=0.01, momentum=0.9)),
        param_scheduler=dict(type='CosineAnnealingLR', T_max=4, by_epoch=True),
        train_cfg=dict(by_epoch=True, max_epochs=epochs), resume=epochs > 1,
        default_hooks=dict(checkpoint=dict(type='CheckpointHook', interval=1)))
    runner.train()
    print('ITER', runner.iter, 'EPOCH', runner.epoch)
''')


def test_runner_checkpoints_resume_under_torch_2_6_plus(tmp_path):
    run = lambda mode, epochs: subprocess.run(  # noqa: E731
        [sys.executable, '-c', TOY_TRAIN, str(tmp_path), mode, str(epochs)],
        capture_output=True, text=True)
    r = run('with', 1)
    assert r.returncode == 0, r.stderr[-2000:]
    # (without our allow-list, mmengine's torch.load fails on its own checkpoint here)
    r = run('with', 2)
    assert r.returncode == 0, r.stderr[-2000:]
    assert 'ITER 8 EPOCH 2' in r.stdout and 'resumed epoch: 1, iter: 4' in r.stdout + r.stderr


class _Sneaky:
    def __init__(self, target, name):
        self.target, self.name = target, name

    def __reduce__(self):
        return (getattr, (self.target, self.name))


def test_allow_list_still_refuses_arbitrary_globals(tmp_path):
    import numpy as np
    from mmengine.logging import HistoryBuffer

    import coordatt_mm  # noqa: F401
    for target, name in [(np.ndarray, 'tofile'), (HistoryBuffer, '__init__')]:
        torch.save({'w': torch.zeros(1), 'x': _Sneaky(target, name)}, tmp_path / 'sneaky.pth')
        with pytest.raises(Exception, match='only HistoryBuffer methods are allowed'):
            torch.load(tmp_path / 'sneaky.pth')
    torch.save({'w': torch.zeros(1), 'x': print}, tmp_path / 'print.pth')
    with pytest.raises(Exception, match='Weights only load failed'):
        torch.load(tmp_path / 'print.pth')
