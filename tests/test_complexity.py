import torch

from coordatt_mm.analysis import count_madds, count_params
from coordatt_mm.analysis.complexity import REPO
from coordatt_mm.apis.build import build_model, network

from reference_mbv2 import STAGES, divisible8


def hand_madds_mbv2(size=224, with_ca=True):
    """Multiply-adds of the MobileNetV2(+CA) classifier from the block description."""
    h = size // 2
    conv = 32 * 3 * 9 * h * h
    elem = 0
    cin = 32
    for t, c, n, s in STAGES:
        cout = divisible8(c)
        for i in range(n):
            stride = s if i == 0 else 1
            hid = cin * t
            h_out = h // stride
            if t != 1:
                conv += hid * cin * h * h                     # expand 1x1
            conv += hid * 9 * h_out * h_out                  # depthwise 3x3
            if t != 1 and with_ca:
                mip = max(8, hid // 32)
                conv += mip * hid * 2 * h_out               # shared 1x1 on H + W positions
                conv += 2 * hid * mip * h_out               # the two gate convs
                elem += 4 * hid * h_out * h_out             # two poolings + two gatings
            conv += cout * hid * h_out * h_out               # project 1x1
            cin, h = cout, h_out
    conv += 1280 * 320 * h * h + 1280 * 1000
    return conv, elem


def classifier(name):
    cfg, model = build_model(f'{REPO}/configs/imagenet/{name}_4xb64-coslr-200e_in1k.py')
    return network(cfg, model)


def test_mobilenetv2_ca_complexity_matches_hand_count():
    m = classifier('mobilenet-v2-ca')
    assert count_params(m) == 3_950_648
    got = count_madds(m, torch.randn(1, 3, 224, 224))
    conv, elem = hand_madds_mbv2()
    assert got == dict(conv_linear=conv, attention_elementwise=elem)
    plain = count_madds(classifier('mobilenet-v2'), torch.randn(1, 3, 224, 224))
    assert plain['conv_linear'] == hand_madds_mbv2(with_ca=False)[0]
    assert 300e6 < plain['conv_linear'] < 301e6  # the paper's 300M


def test_benchmark_judges_targets_from_measured_ratios():
    from coordatt_mm.analysis.benchmark import OURS, SSD_OURS, Report
    rep = Report()
    rep.ratios = {('layer', 'CA layer, 16 shapes', 'CoordAtt (ours)'): 0.70,  # 1.43x faster
                  ('eager', 'backbone, batch 1', OURS): 1.12,  # > 1.10
                  ('eager', 'backbone, batch 1', 'MobileNetV2'): 1.0,
                  ('eager', 'SSDLite320, batch 8', SSD_OURS): 1.05,
                  ('training', 'training peak memory, batch 8', OURS): 1.05,
                  ('training', 'training step, batch 8', OURS): 1.2}
    for section in ('layer', 'eager', 'training', 'onnxruntime'):
        rep.verdicts(section)
    lines = [line for line in rep.lines if line.startswith('- ')]
    assert len(lines) == 5  # nothing judged without its comparison (no ONNX Runtime rows)
    assert '**met**' in lines[0] and '1.43x faster' in lines[0]
    assert '**missed** by 1.8%' in lines[1] and 'batch 1' in lines[1]
    assert '**met**' in lines[2] and '0.952x the images/s' in lines[2]
    assert '**missed** by 4.3%' in lines[3] and 'training step' in lines[3]
    assert '**met**' in lines[4] and 'peak memory' in lines[4]


def test_benchmark_judges_deployed_targets_against_their_own_rows():
    """FP32 with CA against plain FP32, INT8 with CA against INT8 plain and against FP32 with
    CA: each ratio from the rows of the same rounds."""
    from coordatt_mm.analysis.benchmark import Report
    rep = Report()
    rounds = [1.0, 1.1, 0.9]  # machine drift shared by the rows of a round
    times = {'MobileNetV2': [10 * d for d in rounds],
             'MobileNetV2 + CA': [12 * d for d in rounds],  # 1.2x: next step met, goal missed
             'MobileNetV2 INT8': [7 * d for d in rounds],
             'MobileNetV2 + CA INT8': [9.1 * d for d in rounds]}  # 1.3x INT8 plain, 0.758x FP32
    rep.table('onnxruntime', 'ONNX Runtime, backbone, 320²', 'MobileNetV2', times)
    rep.verdicts('onnxruntime')
    lines = [line for line in rep.lines if line.startswith('- ')]
    assert len(lines) == 4, lines
    assert '1.25x plain' in lines[0] and '**met**' in lines[0] and 'ratio 1.200' in lines[0]
    assert '1.10x plain' in lines[1] and '**missed** by 9.1%' in lines[1]
    assert 'INT8 plain' in lines[2] and '**missed** by 4.0%' in lines[2]
    assert '0.6x FP32' in lines[3] and 'ratio 0.758' in lines[3] and '**missed**' in lines[3]
