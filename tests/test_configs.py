"""Every shipped config loads, builds (offline) and trains under its own DDP wrapper's rule:
one loss + backward gives every trainable parameter a gradient (mmengine's DDP runs with
``find_unused_parameters=False`` and would stop at the second iteration otherwise); then it
predicts. Parameter counts against the paper and mmdet's recipe."""
from pathlib import Path

import pytest
import torch

from coordatt_mm.apis.build import build_model

from model_batches import (
    CONFIGS,
    REPO,
    SEG_SIZE,
    batch_for,
    build,
    default_or_slow,
    loss_step,
    n_params,
)

# exact arithmetic: MBv2 stages without the 1280 conv + ASPP(256, 1x1 projection) + classifier,
# beside the paper's 4.5M and 5.0M
DEEPLAB_PARAMS = {
    'deeplabv3_mobilenetv2-d16_4xb4-20k_voc12aug-512x512.py': 4_523_541,
    'deeplabv3_mobilenetv2-ca-d16_4xb4-20k_voc12aug-512x512.py': 4_969_317,
    'deeplabv3_mobilenetv2-d8_4xb4-20k_voc12aug-512x512.py': 4_523_541,
    'deeplabv3_mobilenetv2-ca-d8_4xb4-20k_voc12aug-512x512.py': 4_969_317,
}


def check_segmentor(path, model):
    if 'mobilenetv2' not in path.name:
        return
    os_ = 16 if '-d16' in path.name else 8
    with torch.no_grad():
        feats = model.backbone(torch.randn(1, 3, 128, 128))
    assert feats[-1].shape[-1] == 128 // os_
    assert model.decode_head.num_classes == (21 if 'voc' in path.name else 19)
    if path.name in DEEPLAB_PARAMS:
        n = n_params(model)
        assert n == DEEPLAB_PARAMS[path.name]
        assert abs(n / (5.0e6 if '-ca-' in path.name else 4.5e6) - 1) < 0.10


@pytest.mark.parametrize('path', default_or_slow(CONFIGS), ids=lambda p: p.name)
def test_config_trains_every_parameter_and_predicts(path):
    cfg, model = build(path)
    assert cfg.runner_type == 'CPUDistributedRunner'
    assert {'coordatt_mm', 'coordatt_mm.classifiers'} & set(cfg.custom_imports.imports)
    assert {'DatasetCheckHook', 'RNGStateHook'} <= {h['type'] for h in cfg.custom_hooks}
    if cfg.default_scope == 'mmseg':
        check_segmentor(path, model)
    batch = batch_for(cfg, model)
    assert loss_step(model, batch) == []
    model.eval()
    with torch.no_grad():
        out = model.test_step(batch)
    if cfg.default_scope == 'mmdet':
        assert out[0].pred_instances.bboxes.shape[-1] == 4
    elif cfg.default_scope == 'mmpretrain':
        assert out[0].pred_score.shape == (model.head.num_classes, )
    else:
        assert out[0].pred_sem_seg.data.shape == (1, *SEG_SIZE)


def test_ssdlite_param_counts(capsys):
    _, ca = build(REPO / 'configs/ssdlite/ssdlite_mobilenetv2-ca_8xb24-600e_coco.py')
    _, plain = build(REPO / 'configs/ssdlite/ssdlite_mobilenetv2_8xb24-600e_coco.py')
    # the baseline is exactly mmdet's SSDLite-MobileNetV2 (measured 4,228,788); CA adds its layers
    import mmdet
    _, mm = build_model(str(Path(mmdet.__file__).parent /
                            '.mim/configs/ssd/ssdlite_mobilenetv2-scratch_8xb24-600e_coco.py'))
    assert n_params(plain) == n_params(mm)
    ca_layers = sum(n_params(m) for m in ca.backbone.modules() if type(m).__name__ == 'CoordAtt')
    assert n_params(ca) == n_params(plain) + ca_layers
    with capsys.disabled():
        print(f'\nSSDLite320 params (80 classes): MBv2 {n_params(plain):,} (paper 4.3M), '
              f'MBv2+CA {n_params(ca):,} (paper 4.8M)')
    assert abs(n_params(ca) / 4.8e6 - 1) < 0.05 and abs(n_params(plain) / 4.3e6 - 1) < 0.05


def test_paper_configs_dilate_every_block_mmseg_recipe_only_the_first():
    _, paper = build(REPO / 'configs/deeplabv3/'
                     'deeplabv3_mobilenetv2-ca-d8_4xb4-20k_voc12aug-512x512.py')
    _, recipe = build(REPO / 'configs/deeplabv3/'
                      'deeplabv3_mobilenetv2-ca-d8-mmsegrecipe_4xb2-80k_cityscapes-512x1024.py')
    assert paper.backbone.layer6[2].depthwise.conv.dilation == (4, 4)
    assert recipe.backbone.layer6[0].depthwise.conv.dilation == (4, 4)
    assert recipe.backbone.layer6[2].depthwise.conv.dilation == (1, 1)
    assert paper.decode_head.bottleneck.conv.kernel_size == (1, 1)
    assert paper.decode_head.bottleneck.conv.in_channels == 5 * 256
