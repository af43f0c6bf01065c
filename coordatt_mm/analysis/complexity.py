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


# elementwise work of one attention layer per input element, by class: CoordAtt two poolings
# and two gate products; SE and ECA one pooling and one product; CBAM two poolings and a product
# for each of its two gates; TripletAttention three Z-pools (max and mean), the two additions
# of its three broadcast gates and one product (with no_spatial two Z-pools and one addition:
# see elementwise_per_element); SimAM its mean, the deviation, its square, their sum, scale and
# offset, and the product (plus a sigmoid per element, not a multiply-add)
ATTENTION_ELEMENTWISE = {'CoordAtt': 4, 'SqueezeExcitation': 2, 'CBAM': 6, 'ECA': 2,
                         'TripletAttention': 9, 'SimAM': 7}


def elementwise_per_element(layer: nn.Module) -> int:
    """The elementwise multiply-adds of one attention layer per element of its input:
    ``ATTENTION_ELEMENTWISE`` of its class, for the branches it has (TripletAttention without
    its spatial branch: 6, its two Z-pools, one addition of the gates and the product)."""
    name = type(layer).__name__
    if name == 'TripletAttention' and layer.no_spatial:
        return ATTENTION_ELEMENTWISE[name] - 3  # the spatial Z-pool (2) and its addition
    return ATTENTION_ELEMENTWISE[name]


def _attention_hooks(model: nn.Module, batch: int, elementwise: list) -> list:
    def att_hook(m, inp, out):
        elementwise[0] += elementwise_per_element(m) * inp[0].numel() // batch

    return [m.register_forward_hook(att_hook) for m in model.modules()
            if type(m).__name__ in ATTENTION_ELEMENTWISE]


def count_madds(model: nn.Module, inputs) -> Dict[str, int]:
    """Multiply-adds of one forward pass, per image: ``conv_linear`` (every Conv2d and Linear,
    counted by mmengine's ``FlopAnalyzer``) and ``attention_elementwise`` (the pooling, gating
    and other per-element work of attention layers, which it does not count:
    :func:`elementwise_per_element` per element of their input)."""
    import torch
    from mmengine.analysis import FlopAnalyzer
    batch = inputs.shape[0]
    elementwise = [0]
    handles = _attention_hooks(model, batch, elementwise)
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


def count_madds_by_shapes(model: nn.Module, shape) -> Dict[str, int]:
    """:func:`count_madds` from the output shapes of the model's Conv1d/Conv2d and Linear modules
    on a ``meta`` input of ``shape`` (N, 3, H, W): ``model`` lives on the meta device (built
    with ``device='meta'``), so nothing is computed and any input size takes milliseconds.
    Every convolution and linear layer of our models is a module call (the fused paths step
    aside for the hooks this places), so the counts equal ``count_madds``'s (tested)."""
    import torch
    batch = shape[0]
    conv_linear, elementwise = [0], [0]

    def conv_hook(m, inp, out):
        kernel = 1
        for k in m.kernel_size:
            kernel *= k
        conv_linear[0] += out.numel() // batch * (m.in_channels // m.groups) * kernel

    def linear_hook(m, inp, out):
        conv_linear[0] += out.numel() // batch * m.in_features

    handles = _attention_hooks(model, batch, elementwise)
    # norms and activations keep the shape: skipped (their meta kernels are most of the time)
    skipped = [m for m in model.modules() if isinstance(m, _SHAPE_KEEPING)]
    for m in model.modules():
        if isinstance(m, (nn.Conv1d, nn.Conv2d)):
            handles.append(m.register_forward_hook(conv_hook))
        elif isinstance(m, nn.Linear):
            handles.append(m.register_forward_hook(linear_hook))
    try:
        for m in skipped:
            m.forward = _same
        # grad mode on, as count_madds: CA's sub-layers run as modules
        with torch.enable_grad():
            model.eval()(torch.empty(shape, device='meta'))
    finally:
        for h in handles:
            h.remove()
        for m in skipped:
            del m.forward
    return dict(conv_linear=conv_linear[0], attention_elementwise=elementwise[0])


_SHAPE_KEEPING = (nn.modules.batchnorm._BatchNorm, nn.GroupNorm, nn.ReLU, nn.ReLU6, nn.Hardswish,
                  nn.Hardsigmoid, nn.Sigmoid, nn.Dropout, nn.Identity)


def _same(x, *args, **kwargs):
    return x


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


def _millions(value) -> str:
    return '–' if value is None else f'{value}M'


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
                        total / base[r['backbone']], _millions(r['params_m']),
                        _millions(r['madds_m'])))
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


# the attention modules of the position table: label, config (the -hswish / -relu variants
# count as their modules)
POSITION_ATTENTIONS = (
    ('none', None),
    ('SE', dict(type='SE', reduction=24)),
    ('CBAM', dict(type='CBAM', reduction=24)),
    ('CA', dict(type='CoordAtt', reduction=32)),
    ('ECA', dict(type='ECA')),
    ('Triplet, k = 7', dict(type='TripletAttention', kernel_size=7)),
    ('Triplet, k = 3', dict(type='TripletAttention', kernel_size=3)),
    ('SimAM', dict(type='SimAM')),
)
POSITION_CLASSIFIERS = (('MobileNetV2', 'configs/imagenet/mobilenet-v2_4xb64-coslr-200e_in1k.py'),
                        ('MobileNeXt', 'configs/imagenet/mobilenext_4xb64-coslr-200e_in1k.py'))


def position_rows(size: int = 224) -> list:
    """Each attention module at each ``attention_position`` of the plain ImageNet classifiers'
    backbones (built on the meta device): its layers, the classifier's parameters and M-Adds
    at ``size``² (:func:`count_madds_by_shapes`)."""
    from coordatt_mm.apis.build import build_model, load_config, network
    from coordatt_mm.backbones.base import ATTENTION_POSITIONS
    out = []
    for name, config in POSITION_CLASSIFIERS:
        for label, attention in POSITION_ATTENTIONS:
            row = dict(backbone=name, attention=label)
            for position in ATTENTION_POSITIONS:
                cfg = load_config(osp.join(REPO, config))
                cfg.model.backbone.update(attention=attention, attention_position=position)
                cfg, model = build_model(cfg, device='meta')
                layers = sum(type(m).__name__ in ATTENTION_ELEMENTWISE for m in model.modules())
                row[position] = dict(layers=layers, params=count_params(model),
                                     **count_madds_by_shapes(network(cfg, model),
                                                             (1, 3, size, size)))
            out.append(row)
    return out


def position_markdown() -> str:
    """:func:`position_rows` as a Markdown table (docs/attention_positions.md)."""
    from coordatt_mm.backbones.base import ATTENTION_POSITIONS
    head = '| backbone | attention |' + ''.join(
        f' `{p}`: layers | params | + vs none | M-Adds |' for p in ATTENTION_POSITIONS)
    lines = [head, '|---|---|' + '---|---|---|---|' * len(ATTENTION_POSITIONS)]
    plain = {}
    for r in position_rows():
        cells = []
        for p in ATTENTION_POSITIONS:
            c = r[p]
            plain.setdefault((r['backbone'], p), c['params'])
            madds = f"{c['conv_linear'] / 1e6:.1f}M"
            if c['attention_elementwise']:
                madds += f" + {c['attention_elementwise'] / 1e6:.1f}M"
            cells.append(f"{c['layers']} | {c['params']:,} | "
                         f"{c['params'] - plain[r['backbone'], p]:,} | {madds}")
        lines.append(f"| {r['backbone']} | {r['attention']} | " + ' | '.join(cells) + ' |')
    return '\n'.join(lines)
