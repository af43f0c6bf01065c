"""The ImageNet classifiers in mmpretrain: the released file loads as it is into our
ImageClassifier and computes the released model; the configs state the paper's recipe; the
chain tiny ImageNet -> `mim train` -> `mim test` / SSDLite / DeepLabV3 (tests/test_configs.py
trains every config one step)."""
from collections import OrderedDict
from pathlib import Path

import pytest
import torch
from mmengine.runner.checkpoint import load_checkpoint

import coordatt_mm.classifiers  # noqa: F401  (registers ReleasedLayoutClassifier)
from coordatt_mm.apis.build import build_model, load_config
from coordatt_mm.checkpoint import CheckpointMismatchError

from reference_mbv2 import random_state, released_logits, released_shapes

REPO = Path(__file__).resolve().parents[1]
IMAGENET = sorted((REPO / 'configs' / 'imagenet').glob('*.py'))
CA_CONFIG = REPO / 'configs/imagenet/mobilenet-v2-ca_4xb64-coslr-200e_in1k.py'


def classifier(config=CA_CONFIG):
    return build_model(str(config))[1]


@pytest.mark.parametrize('head_key', ['classifier', 'classifier.1'])
@pytest.mark.parametrize('how', ['mmengine', 'torch', 'module-prefixed'])
def test_released_file_loads_as_is_and_gives_released_logits(tmp_path, head_key, how):
    sd = random_state(released_shapes(1.0, classifier=head_key), seed=3)
    model = classifier()
    if how == 'mmengine':  # what load_from / `mim test --checkpoint` do
        torch.save(sd, tmp_path / 'mbv2_ca.pth')
        load_checkpoint(model, str(tmp_path / 'mbv2_ca.pth'), strict=True)
    elif how == 'torch':
        model.load_state_dict(sd, strict=True)
    else:  # saved from DataParallel, wrapped as training scripts do
        torch.save(dict(state_dict=OrderedDict(('module.' + k, v) for k, v in sd.items())),
                   tmp_path / 'mbv2_ca.pth')
        load_checkpoint(model, str(tmp_path / 'mbv2_ca.pth'), strict=True)
    assert model.head.fc.weight.equal(sd[f'{head_key}.weight'])
    x = torch.randn(2, 3, 96, 128)
    with torch.no_grad():
        ours = model(x, mode='tensor')
        ref = released_logits(sd, x, head_key)
    assert ours.shape == (2, 1000)
    torch.testing.assert_close(ours, ref, atol=1e-5, rtol=1e-5)


def test_released_file_of_another_model_is_refused():
    sd = random_state(released_shapes(1.0, with_ca=False))  # plain MobileNetV2 weights
    with pytest.raises(CheckpointMismatchError, match='missing .*conv1'):
        classifier().load_state_dict(sd)


def test_own_checkpoints_load_unchanged():
    a, b = classifier(), classifier()
    b.load_state_dict(a.state_dict(), strict=True)
    for (k, v), w in zip(a.state_dict().items(), b.state_dict().values()):
        assert v.equal(w), k


def test_configs_state_the_paper_recipe_and_top1():
    for path in IMAGENET:
        cfg = load_config(str(path))  # parsed with the codebases' metafiles read once
        opt = cfg.optim_wrapper.optimizer
        assert (opt.type, opt.lr, opt.momentum, opt.weight_decay) == ('SGD', 0.05, 0.9, 4e-5)
        assert cfg.train_cfg.max_epochs == 200 and cfg.param_scheduler.T_max == 200
        assert cfg.train_dataloader.batch_size * 4 == 256, path.name
        header = path.read_text().split('_base_')[0]
        assert 'Paper (ImageNet top-1' in header or path.name.startswith('mobilenet-v2_'), path


# --- ImageNet -> dense tasks, as users run it: `mim train mmpretrain` on the tiny ImageNet ---

TINY_CLS = REPO / 'configs/demo/mobilenet-v2-ca_1xb8-8e_tiny-in1k.py'
DENSE = [REPO / 'configs/ssdlite/ssdlite_mobilenetv2-ca_8xb24-600e_coco.py',
         REPO / 'configs/deeplabv3/deeplabv3_mobilenetv2-ca-d8_4xb4-20k_voc12aug-512x512.py']
# 4 classes, balanced: a model that has not learned scores <= 25 top-1 (0 when untrained: its
# 1000-way head rarely picks one of the 4); measured: 93.75 (30 of 32)
MIN_TOP1 = 75


@pytest.fixture(scope='module')
def trained(tmp_path_factory, tiny_repo_data):
    from e2e_utils import BIN, run
    wd = tmp_path_factory.mktemp('in1k')
    run([BIN / 'mim', 'train', 'mmpretrain', TINY_CLS, '--work-dir', wd], cwd=wd)
    return wd / 'epoch_8.pth'


def to_released_layout(ckpt: Path, out: Path) -> None:
    """Our trained classifier written as the authors' file: features.* / conv.* keys, the
    Linear at ``classifier``, no wrapper."""
    _, model = build_model(str(TINY_CLS))
    mod_map = model.backbone.checkpoint_module_map('released')
    state = torch.load(ckpt, map_location='cpu')['state_dict']
    released = OrderedDict()
    for key, v in state.items():
        if key.startswith('backbone.'):
            path, leaf = key[len('backbone.'):].rsplit('.', 1)
            released[f'{mod_map[path]}.{leaf}'] = v
        elif key.startswith('head.fc.'):
            released['classifier.' + key.rsplit('.', 1)[1]] = v
    assert set(released) == set(released_shapes(1.0))
    torch.save(released, out)


@pytest.mark.slow  # the tiny classifier's training (about 60 s) and mim test
def test_mim_test_scores_a_released_format_file_of_the_trained_classifier(trained, tmp_path):
    from e2e_utils import BIN, last_json_metrics, run
    to_released_layout(trained, tmp_path / 'mbv2_ca.pth')
    run([BIN / 'mim', 'test', 'mmpretrain', TINY_CLS, '--checkpoint', tmp_path / 'mbv2_ca.pth',
         '--work-dir', tmp_path / 'test'], cwd=tmp_path)
    metrics = last_json_metrics(tmp_path / 'test', 'accuracy/top1')
    assert metrics['accuracy/top1'] >= MIN_TOP1, metrics


@pytest.mark.slow  # needs the trained tiny classifier
@pytest.mark.parametrize('dense', DENSE, ids=lambda p: p.parent.name)
def test_trained_classifier_initialises_dense_backbones_completely(trained, dense):
    from mmengine.registry import init_default_scope

    from coordatt_mm.apis.build import load_config
    from coordatt_mm.registry import ROOT_MODELS
    cfg = load_config(str(dense))
    init_default_scope(cfg.default_scope)
    bcfg = dict(cfg.model.backbone, init_cfg=dict(type='Pretrained', checkpoint=str(trained)))
    backbone = ROOT_MODELS.build(bcfg)
    backbone.init_weights()
    source = torch.load(trained, map_location='cpu')['state_dict']
    for key, v in backbone.state_dict().items():  # every tensor, attention included
        assert v.equal(source[f'backbone.{key}']), key
