"""CoordAtt as an mmcv plugin (``build_plugin_layer``, the ``plugins=`` of mmdet's and mmseg's
ResNets), the two configs that use it, and CheckedPretrained for their ImageNet weights."""
from pathlib import Path

import pytest
import torch
from mmcv.cnn import build_plugin_layer

import coordatt_mm  # noqa: F401
from coordatt_mm import CoordAtt
from coordatt_mm.apis.build import build_model, load_config
from coordatt_mm.checkpoint import CheckpointMismatchError, load_checked

from peer_utils import peer_config

REPO = Path(__file__).resolve().parents[2]
PLUGIN = [dict(cfg=dict(type='CoordAtt'), position='after_conv2')]
RESNET50 = ((64, 3), (128, 4), (256, 6), (512, 3))  # (planes, blocks) per stage


def ca_params(c: int, reduction: int = 32) -> int:
    """By hand: 1x1 C->mip with bias, BN(mip), two 1x1 mip->C with bias."""
    mip = max(8, c // reduction)
    return (c * mip + mip) + 2 * mip + 2 * (mip * c + c)


def n_params(m) -> int:
    return sum(p.numel() for p in m.parameters())


def test_build_plugin_layer_protocol():
    name, layer = build_plugin_layer(dict(type='CoordAtt', reduction=16), in_channels=64)
    assert name == 'coord_att' and isinstance(layer, CoordAtt) and layer.mip == 8
    x = torch.randn(2, 64, 9, 7)
    assert layer(x).shape == x.shape
    assert CoordAtt(64).channels == CoordAtt(channels=64).channels == 64  # the older name
    with pytest.raises(ValueError, match='disagree'):
        CoordAtt(in_channels=64, channels=32)


@pytest.mark.parametrize('scope,cls,kwargs,width', [
    ('mmdet', 'ResNet', dict(depth=50), 1),
    ('mmdet', 'ResNeXt', dict(depth=50, groups=32, base_width=4), 2),
    ('mmseg', 'ResNetV1c', dict(depth=50), 1),
    ('mmseg', 'ResNetV1d', dict(depth=50), 1),
])
def test_resnet_bottlenecks_take_ca_after_conv2(scope, cls, kwargs, width):
    from importlib import import_module

    from mmengine.registry import init_default_scope
    init_default_scope(scope)
    registry = import_module(f'{scope}.registry').MODELS
    import_module(f'{scope}.models')
    stock = registry.build(dict(type=cls, **kwargs))
    ca = registry.build(dict(type=cls, plugins=PLUGIN, **kwargs))
    stock.eval(), ca.eval()  # (their train() returns None)
    layers = [m for m in ca.modules() if isinstance(m, CoordAtt)]
    assert len(layers) == sum(n for _, n in RESNET50)
    # after the 3x3 conv: CA's channels are that conv's (ResNeXt: planes * 2 at 32x4d)
    assert n_params(ca) == n_params(stock) + sum(n * ca_params(p * width) for p, n in RESNET50)
    ca.load_state_dict(stock.state_dict(), strict=False)
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        a, b = stock(x), ca(x)
    assert [o.shape for o in a] == [o.shape for o in b]
    assert not torch.allclose(a[-1], b[-1])


def test_checked_pretrained_starts_ca_fresh_and_counts_it(tmp_path):
    from mmdet.models.backbones import ResNet
    stock = ResNet(depth=50)
    # torchvision's names are mmdet's ResNet names, plus the classifier
    state = dict(stock.state_dict(), **{'fc.weight': torch.zeros(1000, 2048),
                                        'fc.bias': torch.zeros(1000)})
    torch.save(state, tmp_path / 'resnet50.pth')
    ca = ResNet(depth=50, plugins=PLUGIN)
    report = load_checked(ca, str(tmp_path / 'resnet50.pth'), allow_missing=['coord_att'])
    fresh = {k for k in ca.state_dict() if '.coord_att.' in k}
    assert set(report.fresh) == fresh and report.ignored == ['fc.weight', 'fc.bias']
    assert report.loaded == len(stock.state_dict())
    assert ca.layer3[2].conv2.weight.equal(stock.layer3[2].conv2.weight)
    ca = ResNet(depth=50, plugins=PLUGIN,
                init_cfg=dict(type='CheckedPretrained', checkpoint=str(tmp_path / 'resnet50.pth')))
    with pytest.raises(CheckpointMismatchError,
                       match=r'resnet50\.pth .*missing layer1\.0\.coord_att'):
        ca.init_weights()


@pytest.mark.parametrize('config,stock,stages', [
    ('configs/retinanet/retinanet_r50-ca_fpn_1x_coco.py',
     ('mmdet', 'retinanet/retinanet_r50_fpn_1x_coco.py'), (False, True, True, True)),
    ('configs/deeplabv3/deeplabv3_r50-ca-d8_4xb2-80k_cityscapes-512x1024.py',
     ('mmseg', 'deeplabv3/deeplabv3_r50-d8_4xb2-80k_cityscapes-512x1024.py'), (True,) * 4),
])
def test_plugin_configs_are_the_recipe_plus_ca(config, stock, stages):
    cfg, model = build_model(str(REPO / config))
    _, base = build_model(peer_config(*stock))
    hand = sum(n * ca_params(p) for (p, n), on in zip(RESNET50, stages) if on)
    assert n_params(model) == n_params(base) + hand
    assert cfg.model.backbone.init_cfg is None  # build_model drops it: offline
    raw = load_config(str(REPO / config)).model.backbone.init_cfg
    assert raw.type == 'CheckedPretrained' and raw.allow_missing == ['coord_att']
