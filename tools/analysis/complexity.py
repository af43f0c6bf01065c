#!/usr/bin/env python
"""Parameters and M-Adds of our backbones (224², classifier-equivalent), SSDLite320 and
DeepLabV3 (512²) models, baseline vs attention, beside the paper's numbers
(coordatt_mm/data/paper_results.json), as a Markdown table (README embeds it).

    python tools/analysis/complexity.py [--out FILE.md]

M-Adds count every Conv2d/Linear multiply-add; attention layers' pooling and gating
elementwise work is shown separately (the paper's 310M for MobileNetV2 + CA vs 300M matches
adding it; its SE/CBAM rows, 300M, do not count it).
"""
import argparse
import os.path as osp
import sys

import torch

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
sys.path.insert(0, REPO)

from coordatt_mm.analysis import (build_model_offline, classifier_equivalent,  # noqa: E402
                                  count_madds, count_params, load_paper_results)

DENSE = [  # (label, config, input size, baseline label)
    ('SSDLite320 MobileNetV2', 'configs/ssdlite/ssdlite_mobilenetv2_8xb24-600e_coco.py', 320, None),
    ('SSDLite320 MobileNetV2 + CA', 'configs/ssdlite/ssdlite_mobilenetv2-ca_8xb24-600e_coco.py', 320,
     'SSDLite320 MobileNetV2'),
    ('SSDLite320 MobileNeXt', 'configs/ssdlite/ssdlite_mobilenext_8xb24-600e_coco.py', 320, None),
    ('SSDLite320 MobileNeXt + CA', 'configs/ssdlite/ssdlite_mobilenext-ca_8xb24-600e_coco.py', 320,
     'SSDLite320 MobileNeXt'),
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


def fmt_m(n: float) -> str:
    return f'{n / 1e6:.2f}M'


def dense_model_forward(cfg, model):
    """The network up to raw head outputs (what complexity is about)."""
    if cfg.default_scope == 'mmdet':
        return lambda x: model.bbox_head(model.neck(model.backbone(x)))
    return lambda x: model.decode_head(model.backbone(x))


class _Wrap(torch.nn.Module):
    def __init__(self, model, fn):
        super().__init__()
        self.model, self.fn = model, fn

    def forward(self, x):
        return self.fn(x)


def rows():
    paper = load_paper_results()
    out = []
    base = {}
    for r in paper['imagenet']:
        m = classifier_equivalent(r['backbone'], r['attention'])
        n = count_params(m)
        mac = count_madds(m, torch.randn(1, 3, 224, 224))
        total = mac['conv_linear'] + mac['attention_elementwise']
        key = r['backbone']
        if r['attention'] is None:
            base[key] = total
        out.append(dict(model=r['model'] + ' (classifier, 224²)', params=n, conv=mac['conv_linear'],
                        elem=mac['attention_elementwise'], ratio=total / base[key],
                        paper_params=f"{r['params_m']}M", paper_madds=f"{r['madds_m']}M"))
    paper_params = {row['config']: row.get('paper_params_m') for row in paper['rows']}
    dense_base = {}
    for label, config, size, baseline in DENSE:
        cfg, model = build_model_offline(osp.join(REPO, config))
        n = count_params(model)
        mac = count_madds(_Wrap(model, dense_model_forward(cfg, model)), torch.randn(1, 3, size, size))
        total = mac['conv_linear'] + mac['attention_elementwise']
        dense_base[label] = total
        pp = paper_params.get(config)
        out.append(dict(model=f'{label}, {size}²', params=n, conv=mac['conv_linear'],
                        elem=mac['attention_elementwise'],
                        ratio=total / dense_base[baseline] if baseline else 1.0,
                        paper_params=f'{pp}M' if pp else '–', paper_madds='–'))
    return out


def markdown() -> str:
    lines = ['| model | params (ours) | params (paper) | M-Adds conv+linear | + attention elementwise | '
             'total vs baseline | M-Adds (paper) |', '|---|---|---|---|---|---|---|']
    for r in rows():
        lines.append(f"| {r['model']} | {r['params']:,} | {r['paper_params']} | {r['conv'] / 1e6:.1f}M | "
                     f"{r['elem'] / 1e6:.1f}M | {r['ratio']:.3f}× | {r['paper_madds']} |")
    return '\n'.join(lines)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    ap.add_argument('--out', help='also write the table to this file')
    args = ap.parse_args(argv)
    table = markdown()
    print(table)
    if args.out:
        with open(args.out, 'w') as f:
            f.write(table + '\n')
    return 0


if __name__ == '__main__':
    sys.exit(main())
