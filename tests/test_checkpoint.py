from collections import OrderedDict
from pathlib import Path

import pytest
import torch
from mmdet.models.backbones import MobileNetV2 as MMDetMobileNetV2

from coordatt_mm import MobileNetV2CA
from coordatt_mm.checkpoint import CheckpointMismatchError, load_checked

from e2e_utils import tool
from reference_mbv2 import random_state, released_forward, released_shapes

REPO = Path(__file__).resolve().parents[1]
# the released checkpoint's key list and shapes, as published
KEYS_TSV = REPO / 'tests' / 'data' / 'mbv2_ca_official_keys.tsv'


def pretrained(path, **kwargs):
    m = MobileNetV2CA(init_cfg=dict(type='Pretrained', checkpoint=str(path)), **kwargs)
    m.init_weights()
    return m


@pytest.fixture(scope='module')
def released(tmp_path_factory):
    sd = random_state(released_shapes(1.0))
    path = tmp_path_factory.mktemp('ckpt') / 'mbv2_ca.pth'
    torch.save(sd, path)
    return path, sd


def test_generator_reproduces_released_key_list():
    rows = [line.split('\t') for line in KEYS_TSV.read_text().splitlines()[1:] if line]
    want = OrderedDict((k, eval(s)) for k, s in rows)
    assert released_shapes(1.0) == want


@pytest.mark.parametrize('kwargs', [
    dict(),
    dict(strides=(1, 2, 2, 1, 1, 1, 1), dilations=(1, 1, 1, 2, 2, 4, 4)),
    dict(strides=(1, 2, 2, 1, 1, 1, 1), dilations=(1, 1, 1, 2, 2, 4, 4),
         dilation_mode='every_block'),
])
def test_released_file_fills_every_tensor_and_matches_reference(released, kwargs):
    path, sd = released
    m = pretrained(path, out_indices=tuple(range(8)), **kwargs).eval()
    # every parameter and buffer came from the file (random values, nothing default)
    assert m.layer2[0].attention.conv_h.weight.equal(sd['features.2.conv.6.conv2.weight'])
    assert m.layer2[0].attention.conv_w.bias.equal(sd['features.2.conv.6.conv3.bias'])
    assert m.conv2.bn.running_var.equal(sd['conv.1.running_var'])
    n_file = sum(v.numel() for k, v in sd.items() if not k.startswith('classifier'))
    assert sum(v.numel() for v in m.state_dict().values()) == n_file
    x = torch.randn(2, 3, 96, 128)
    with torch.no_grad():
        outs = m(x)
        ref = released_forward(sd, x, **kwargs)
    assert len(outs) == 8
    for o, r in zip(outs, ref):
        torch.testing.assert_close(o, r, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize('variant', ['classifier.1', 'no_nbt', 'module', 'wrapped'])
def test_released_file_variants_load(tmp_path, variant):
    sd = random_state(released_shapes(1.0, classifier='classifier.1' if variant == 'classifier.1'
                                      else 'classifier'))
    if variant == 'no_nbt':
        sd = OrderedDict((k, v) for k, v in sd.items() if 'num_batches_tracked' not in k)
    if variant == 'module':
        sd = OrderedDict(('module.' + k, v) for k, v in sd.items())
    obj = dict(state_dict=sd, epoch=3) if variant == 'wrapped' else sd
    torch.save(obj, tmp_path / 'f.pth')
    m = pretrained(tmp_path / 'f.pth')
    w = sd['module.features.0.0.weight' if variant == 'module' else 'features.0.0.weight']
    assert m.conv1.conv.weight.equal(w)


def test_released_file_at_another_width(tmp_path):
    torch.save(random_state(released_shapes(0.5)), tmp_path / 'w05.pth')
    m = pretrained(tmp_path / 'w05.pth', widen_factor=0.5)
    assert m.conv1.conv.weight.shape[0] == 16
    with pytest.raises(CheckpointMismatchError) as e:
        pretrained(tmp_path / 'w05.pth', widen_factor=1.0)
    msg = str(e.value)
    assert 'w05.pth' in msg and ('features.0.0.weight: checkpoint (16, 3, 3, 3) '
                                 'vs model (32, 3, 3, 3)') in msg
    assert '\n' not in msg


def test_wrong_model_and_missing_attention_fail_loudly(tmp_path):
    torch.save({'conv1.weight': torch.zeros(64, 3, 7, 7), 'fc.weight': torch.zeros(10, 64)},
               tmp_path / 'resnet.pth')
    with pytest.raises(CheckpointMismatchError, match=r'resnet\.pth: none of its tensors fit'):
        pretrained(tmp_path / 'resnet.pth')
    # a plain MobileNetV2 classifier into the CA backbone: the CA tensors are missing
    torch.save(random_state(released_shapes(1.0, with_ca=False)), tmp_path / 'plain.pth')
    with pytest.raises(CheckpointMismatchError,
                       match=r'missing features\.2\.conv\.6\.conv1\.weight'):
        pretrained(tmp_path / 'plain.pth')
    # ... and the CA file into a plain backbone: unexpected tensors
    torch.save(random_state(released_shapes(1.0)), tmp_path / 'ca.pth')
    with pytest.raises(CheckpointMismatchError, match='unexpected features.2.conv.6'):
        pretrained(tmp_path / 'ca.pth', attention=None)


def test_truncated_and_missing_files(tmp_path, released):
    data = Path(released[0]).read_bytes()
    (tmp_path / 'cut.pth').write_bytes(data[: len(data) // 2])
    with pytest.raises(RuntimeError, match=r'cut\.pth: not a readable PyTorch checkpoint'):
        pretrained(tmp_path / 'cut.pth')
    with pytest.raises(FileNotFoundError, match=r'nope\.pth: checkpoint not found'):
        pretrained(tmp_path / 'nope.pth')


def _randomise_bn(model):
    torch.manual_seed(1)
    for m in model.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.normal_(0, 0.1), m.running_var.uniform_(0.5, 1.5)
            m.weight.data.uniform_(0.5, 1.5), m.bias.data.normal_(0, 0.1)
    return model


def test_mmcls_layout_loads_into_plain_backbone(tmp_path):
    from mmseg.models.backbones import MobileNetV2 as MMSegMobileNetV2
    # mmseg's MobileNetV2 has mmcls' module names (it loads mmcls://mobilenet_v2 as is);
    # the mmcls classifier file adds the 1280 conv and the head.
    ref = _randomise_bn(MMSegMobileNetV2(out_indices=(1, 2, 4, 6)))
    sd = OrderedDict(('backbone.' + k, v) for k, v in ref.state_dict().items())
    conv2 = MobileNetV2CA(attention=None).conv2.state_dict()
    sd.update(('backbone.conv2.' + k, v) for k, v in conv2.items())
    sd['head.fc.weight'], sd['head.fc.bias'] = torch.zeros(1000, 1280), torch.zeros(1000)
    torch.save(dict(meta={}, state_dict=sd), tmp_path / 'mmcls_mbv2.pth')
    ours = pretrained(tmp_path / 'mmcls_mbv2.pth', attention=None, out_indices=(1, 2, 4, 6)).eval()
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        ref.eval()
        for a, b in zip(ours(x), ref(x)):
            torch.testing.assert_close(a, b)
    with pytest.raises(CheckpointMismatchError, match=r'mmcls layout.*missing'):
        pretrained(tmp_path / 'mmcls_mbv2.pth')


def test_mmdet_layout_loads_into_plain_backbone(tmp_path):
    ref = _randomise_bn(MMDetMobileNetV2(out_indices=(4, 7)))
    sd = OrderedDict(('backbone.' + k, v) for k, v in ref.state_dict().items())
    sd['bbox_head.cls_convs.0.weight'] = torch.zeros(3)
    torch.save(dict(state_dict=sd), tmp_path / 'ssdlite.pth')
    ours = pretrained(tmp_path / 'ssdlite.pth', attention=None, out_indices=(4, 7)).eval()
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        ref.eval()
        for a, b in zip(ours(x), ref(x)):
            torch.testing.assert_close(a, b)


def test_backbone_builds_no_final_conv_for_mmseg_taps_and_lists_it_unused(released):
    m = pretrained(released[0], out_indices=(1, 2, 4, 6))
    assert m.conv2 is None
    report = load_checked(m, str(released[0]))
    assert set(report.ignored) == {'classifier.weight', 'classifier.bias'}
    assert set(report.unused) == {'conv.0.weight', 'conv.1.weight', 'conv.1.bias',
                                  'conv.1.running_mean', 'conv.1.running_var',
                                  'conv.1.num_batches_tracked'}
    # stages after the last output are not built either: their tensors are unused as well
    m = MobileNetV2CA(out_indices=(2,))
    report = load_checked(m, str(released[0]))
    assert {k.split('.')[1] for k in report.unused if k.startswith('features.')} == \
        {str(i) for i in range(7, 18)}


def test_convert_tool_roundtrip(tmp_path, released, capsys):
    convert = tool('tools/convert_official_ckpt.py')
    torch.save(random_state(released_shapes(0.75), seed=3), tmp_path / 'w075.pth')
    for src, width in [(released[0], 1.0), (tmp_path / 'w075.pth', 0.75)]:
        out = tmp_path / f'conv_{width}.pth'
        capsys.readouterr()
        assert convert([str(src), str(out)]) == 0
        stdout = capsys.readouterr().out
        assert f'widen_factor={width}' in stdout
        a = pretrained(src, widen_factor=width)
        b = pretrained(out, widen_factor=width)
        for (ka, va), (kb, vb) in zip(a.state_dict().items(), b.state_dict().items()):
            assert ka == kb and va.equal(vb)
        assert 'classifier.weight' not in torch.load(out)['state_dict']
    # refuses to clobber; a bad input leaves no output behind
    capsys.readouterr()
    assert convert([str(released[0]), str(tmp_path / 'conv_1.0.pth')]) == 2
    assert 'exists' in capsys.readouterr().err
    (tmp_path / 'junk.pth').write_bytes(b'not a checkpoint')
    assert convert([str(tmp_path / 'junk.pth'), str(tmp_path / 'o.pth')]) == 1
    assert 'junk.pth' in capsys.readouterr().err and not (tmp_path / 'o.pth').exists()


@pytest.mark.parametrize('attention', [None, dict(type='CoordAtt', reduction=32),
                                       dict(type='SE', reduction=24),
                                       dict(type='CBAM', reduction=16)])
def test_convert_tool_recognises_the_attention_from_the_keys(tmp_path, capsys, attention):
    torch.manual_seed(0)
    src = MobileNetV2CA(widen_factor=0.75, attention=attention, out_indices=(7,))
    # a trained detector's checkpoint: the backbone under 'backbone.', a head beside it
    sd = {f'backbone.{k}': v for k, v in src.state_dict().items()}
    sd['bbox_head.cls.weight'] = torch.zeros(2)
    torch.save(dict(state_dict=sd, meta={}), tmp_path / 'det.pth')
    assert tool('tools/convert_official_ckpt.py')([str(tmp_path / 'det.pth'),
                                                  str(tmp_path / 'out.pth')]) == 0
    out = torch.load(tmp_path / 'out.pth')
    assert out['meta']['attention'] == attention and out['meta']['widen_factor'] == 0.75
    dst = MobileNetV2CA(widen_factor=0.75, attention=attention, out_indices=(7,),
                        init_cfg=dict(type='Pretrained', checkpoint=str(tmp_path / 'out.pth')))
    dst.init_weights()
    for (ka, va), (kb, vb) in zip(src.state_dict().items(), dst.state_dict().items()):
        assert ka == kb and va.equal(vb)
