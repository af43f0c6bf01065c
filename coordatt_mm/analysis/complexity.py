"""Parameters and multiply-adds of our models beside the paper's numbers
(``tools/analysis/complexity.py``): the backbones as 224² ImageNet classifiers, SSDLite320 and
DeepLabV3 (512²), baseline vs attention.

M-Adds count every Conv2d/Linear multiply-add; the attention layers' pooling and gating
elementwise work is a separate column (the paper's 310M for MobileNetV2 + CA vs 300M matches
adding it; its SE/CBAM rows, 300M, do not count it).
"""
import json
import os.path as osp
from typing import Dict

import torch.nn as nn

PAPER_RESULTS = osp.join(osp.dirname(osp.dirname(osp.realpath(__file__))), 'data',
                         'paper_results.json')


def load_paper_results() -> Dict:
    with open(PAPER_RESULTS) as f:
        return json.load(f)


def count_params(model: nn.Module, with_aux: bool = False) -> int:
    """Parameters used at inference (segmentors' auxiliary heads excluded unless asked)."""
    n = sum(p.numel() for p in model.parameters())
    aux = getattr(model, 'auxiliary_head', None)
    if aux is not None and not with_aux:
        n -= sum(p.numel() for p in aux.parameters())
    return n


# elementwise work of one attention layer per input element: pooling reads + gate multiplies
ATTENTION_ELEMENTWISE = {'CoordAtt': 4, 'SqueezeExcitation': 2, 'CBAM': 6}


def count_madds(model: nn.Module, inputs) -> Dict[str, int]:
    """Multiply-adds of one forward pass, per image: ``conv_linear`` (every Conv2d and Linear,
    counted by mmengine's ``FlopAnalyzer``) and ``attention_elementwise`` (the pooling additions
    and gating multiplications of attention layers, which it does not count: 4 per element for
    CoordAtt, 2 for SE, 6 for CBAM)."""
    import torch
    from mmengine.analysis import FlopAnalyzer
    batch = inputs.shape[0]
    elementwise = [0]

    def att_hook(m, inp, out):
        elementwise[0] += ATTENTION_ELEMENTWISE[type(m).__name__] * inp[0].numel() // batch

    handles = [m.register_forward_hook(att_hook) for m in model.modules()
               if type(m).__name__ in ATTENTION_ELEMENTWISE]
    try:
        # grad mode on: CA's eval fast path turns its 1x1 convs into matrix products; the
        # module form does the same multiply-adds and is what the analyzer names 'conv'
        with torch.enable_grad():
            analyzer = FlopAnalyzer(model.eval(), (inputs,))
            analyzer.unsupported_ops_warnings(False).uncalled_modules_warnings(False)
            ops = analyzer.by_operator()
    finally:
        for h in handles:
            h.remove()
    conv_linear = sum(v for k, v in ops.items() if k in ('conv', 'linear'))
    return dict(conv_linear=conv_linear // batch, attention_elementwise=elementwise[0])


REPO = osp.dirname(osp.dirname(osp.dirname(osp.realpath(__file__))))
DENSE = [  # (label, config, input size, baseline label)
    ('SSDLite320 MobileNetV2', 'configs/ssdlite/ssdlite_mobilenetv2_8xb24-600e_coco.py', 320, None),
    ('SSDLite320 MobileNetV2 + CA', 'configs/ssdlite/ssdlite_mobilenetv2-ca_8xb24-600e_coco.py',
     320, 'SSDLite320 MobileNetV2'),
    ('SSDLite320 MobileNeXt', 'configs/ssdlite/ssdlite_mobilenext_8xb24-600e_coco.py', 320, None),
    ('SSDLite320 MobileNeXt + CA', 'configs/ssdlite/ssdlite_mobilenext-ca_8xb24-600e_coco.py',
     320, 'SSDLite320 MobileNeXt'),
    ('DeepLabV3 MobileNetV2 OS16 (21 cl.)',
     'configs/deeplabv3/deeplabv3_mobilenetv2-d16_4xb4-20k_voc12aug-512x512.py', 512, None),
    ('DeepLabV3 MobileNetV2 + CA OS16 (21 cl.)',
     'configs/deeplabv3/deeplabv3_mobilenetv2-ca-d16_4xb4-20k_voc12aug-512x512.py', 512,
     'DeepLabV3 MobileNetV2 OS16 (21 cl.)'),
    ('DeepLabV3 MobileNetV2 OS8 (21 cl.)',
     'configs/deeplabv3/deeplabv3_mobilenetv2-d8_4xb4-20k_voc12aug-512x512.py', 512, None),
    ('DeepLabV3 MobileNetV2 + CA OS8 (21 cl.)',
     'configs/deeplabv3/deeplabv3_mobilenetv2-ca-d8_4xb4-20k_voc12aug-512x512.py', 512,
     'DeepLabV3 MobileNetV2 OS8 (21 cl.)'),
]


def _row(model, params, madds, ratio, paper_params, paper_madds) -> dict:
    return dict(model=model, params=params, conv=madds['conv_linear'],
                elem=madds['attention_elementwise'], ratio=ratio, paper_params=paper_params,
                paper_madds=paper_madds)


def rows() -> list:
    import torch

    from coordatt_mm.apis.build import build_model, network
    paper = load_paper_results()
    out, base = [], {}
    for r in paper['imagenet']:  # the ImageNet configs' classifiers
        cfg, m = build_model(osp.join(REPO, r['config']))
        mac = count_madds(network(cfg, m), torch.randn(1, 3, 224, 224))
        total = mac['conv_linear'] + mac['attention_elementwise']
        if r['attention'] is None:
            base[r['backbone']] = total
        out.append(_row(r['model'] + ' (classifier, 224²)', count_params(m), mac,
                        total / base[r['backbone']], f"{r['params_m']}M", f"{r['madds_m']}M"))
    paper_params = {row['config']: row.get('paper_params_m') for row in paper['rows']}
    for label, config, size, baseline in DENSE:
        cfg, model = build_model(osp.join(REPO, config))
        mac = count_madds(network(cfg, model), torch.randn(1, 3, size, size))
        base[label] = mac['conv_linear'] + mac['attention_elementwise']
        pp = paper_params.get(config)
        out.append(_row(f'{label}, {size}²', count_params(model), mac,
                        base[label] / base[baseline] if baseline else 1.0,
                        f'{pp}M' if pp else '–', '–'))
    return out


def markdown() -> str:
    lines = ['| model | params (ours) | params (paper) | M-Adds conv+linear | '
             '+ attention elementwise | total vs baseline | M-Adds (paper) |',
             '|---|---|---|---|---|---|---|']
    for r in rows():
        lines.append(f"| {r['model']} | {r['params']:,} | {r['paper_params']} | "
                     f"{r['conv'] / 1e6:.1f}M | {r['elem'] / 1e6:.1f}M | {r['ratio']:.3f}× | "
                     f"{r['paper_madds']} |")
    return '\n'.join(lines)
