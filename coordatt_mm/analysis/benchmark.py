#!/usr/bin/env python
"""Side-by-side latency: baseline vs Coordinate Attention, measured in one process
(``tools/analysis/benchmark.py``).

    python tools/analysis/benchmark.py [--threads 2] [--repeats 30] [--warmup 5] [--size 320]
                                       [--device cpu|cuda] [--channels-last] [--compile]
                                       [--only layer,backbone,ssdlite,deeplabv3] [--out FILE.md]

Every comparison runs its models interleaved (A, B, C, A, B, C, ...) after a warm-up, batch 1,
eval mode, ``torch.inference_mode``; CUDA timings are synchronised. It prints median and
inter-quartile range (ms), images/s and the ratio to the baseline, as a Markdown table:

- layer: our CoordAtt vs a literal transcription of the released forward (AdaptiveAvgPool2d,
  permute, concat, split, h-swish as x*relu6(x+3)/6) vs timm's CoordAttn when timm is
  installed, summed over the 16 (C, H, W) shapes MobileNetV2's CA layers see at --size;
- backbone: MobileNetV2 (stem to the 1280 conv) without CA, with our CA, with the released CA form;
- ssdlite: mmdet's own SSDLite-MobileNetV2 config vs ours with CA (network to raw head outputs);
- deeplabv3: our DeepLabV3 MobileNetV2 OS16 without and with CA (network to logits).
"""
import argparse
import copy
import os
import os.path as osp
import platform
import statistics
import sys
import time

import torch
import torch.nn as nn
import torch.nn.functional as F

from coordatt_mm import CoordAtt, MobileNetV2CA
from coordatt_mm.apis.build import DetectorHeads, SegmentorLogits, build_model

REPO = osp.dirname(osp.dirname(osp.dirname(osp.realpath(__file__))))


class ReleasedFormCoordAtt(nn.Module):
    """The released model's CA forward, step by step, on the weights of one of our CoordAtt."""

    def __init__(self, ours: CoordAtt) -> None:
        super().__init__()
        self.pool_h, self.pool_w = nn.AdaptiveAvgPool2d((None, 1)), nn.AdaptiveAvgPool2d((1, None))
        self.conv1, self.bn1 = ours.conv_reduce, ours.norm
        self.conv_h, self.conv_w = ours.conv_h, ours.conv_w

    def forward(self, x):
        identity = x
        n, c, h, w = x.size()
        x_h = self.pool_h(x)
        x_w = self.pool_w(x).permute(0, 1, 3, 2)
        y = torch.cat([x_h, x_w], dim=2)
        y = self.bn1(self.conv1(y))
        y = y * F.relu6(y + 3) / 6
        x_h, x_w = torch.split(y, [h, w], dim=2)
        x_w = x_w.permute(0, 1, 3, 2)
        a_h = self.conv_h(x_h).sigmoid()
        a_w = self.conv_w(x_w).sigmoid()
        return identity * a_w * a_h


def released_form(model: nn.Module) -> nn.Module:
    """A copy of ``model`` whose CoordAtt layers compute the released way (same weights)."""
    model = copy.deepcopy(model)
    for name, m in list(model.named_modules()):
        for child_name, child in list(m.named_children()):
            if isinstance(child, CoordAtt):
                setattr(m, child_name, ReleasedFormCoordAtt(child))
    return model


class ManyLayers(nn.Module):
    """Applies one attention layer per (C, H, W) shape to its own input: a layer-only workload."""

    def __init__(self, layers):
        super().__init__()
        self.layers = nn.ModuleList(layers)

    def forward(self, xs):
        return [layer(x) for layer, x in zip(self.layers, xs)]


def sync(device):
    if device.type == 'cuda':
        torch.cuda.synchronize()


def time_interleaved(models, inputs, device, repeats, warmup):
    """{name: [seconds per run]} with the models run in turn, repeatedly."""
    times = {name: [] for name in models}
    with torch.inference_mode():
        for i in range(warmup + repeats):
            for name, m in models.items():
                sync(device)
                t = time.perf_counter()
                m(inputs)
                sync(device)
                if i >= warmup:
                    times[name].append(time.perf_counter() - t)
    return times


def prepare(m, device, channels_last, compile_):
    m = m.to(device).eval()
    if channels_last:
        m = m.to(memory_format=torch.channels_last)
    if compile_:
        m = torch.compile(m, dynamic=False)  # one specialisation per shape, as deployed
    return m


def runnable(models, inputs):
    """The models that run once on ``inputs`` and, for those that fail (e.g. a torch.compile
    lowering error), one line each saying so."""
    kept, notes = {}, []
    for name, m in models.items():
        try:
            with torch.inference_mode():
                m(inputs)
            kept[name] = m
        except Exception as e:  # reported in the table, not fatal for the other models
            first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
            notes.append(f'{name}: not measured, {type(e).__name__}: {first[:160]}')
    return kept, notes


def ca_shapes(size):
    """(C, H, W) seen by MobileNetV2's 16 CA layers at input size x size."""
    shapes = []
    m = MobileNetV2CA(out_indices=(7,)).eval()
    hooks = [mod.register_forward_hook(lambda mod, i, o: shapes.append(tuple(i[0].shape[1:])))
             for mod in m.modules() if isinstance(mod, CoordAtt)]
    with torch.no_grad():
        m(torch.randn(1, 3, size, size))
    for h in hooks:
        h.remove()
    return shapes


def comparisons(args, device):
    s = args.size
    x = torch.randn(1, 3, s, s, device=device)
    if args.channels_last:
        x = x.contiguous(memory_format=torch.channels_last)
    out = []
    if 'layer' in args.only:
        shapes = ca_shapes(s)
        torch.manual_seed(0)
        ours = [CoordAtt(c) for c, _, _ in shapes]
        models = {'CoordAtt (ours)': ManyLayers(ours),
                  'released forward': ManyLayers([ReleasedFormCoordAtt(m) for m in ours])}
        try:
            from timm.layers import CoordAttn
            models['timm CoordAttn'] = ManyLayers([CoordAttn(c) for c, _, _ in shapes])
        except Exception:  # optional dependency
            pass
        xs = [torch.randn(1, c, h, w, device=device) for c, h, w in shapes]
        out.append(('CA layer (16 MobileNetV2 shapes)', 'released forward',
                    {k: prepare(v, device, False, args.compile) for k, v in models.items()}, xs))
    if 'backbone' in args.only:
        plain = MobileNetV2CA(attention=None, out_indices=(7,))
        ca = MobileNetV2CA(out_indices=(7,))
        models = {'MobileNetV2': plain, 'MobileNetV2 + CA (ours)': ca,
                  'MobileNetV2 + CA (released form)': released_form(ca)}
        out.append((f'backbone, stem to 1280 conv, {s}²', 'MobileNetV2',
                    {k: prepare(v, device, args.channels_last, args.compile)
                     for k, v in models.items()}, x))
    if 'ssdlite' in args.only:
        import mmdet
        mm_cfg = osp.join(osp.dirname(mmdet.__file__),
                          '.mim/configs/ssd/ssdlite_mobilenetv2-scratch_8xb24-600e_coco.py')
        _, mm = build_model(mm_cfg)
        _, ours = build_model(osp.join(REPO,
                                       'configs/ssdlite/ssdlite_mobilenetv2-ca_8xb24-600e_coco.py'))
        models = {"mmdet's SSDLite-MobileNetV2": DetectorHeads(mm),
                  'SSDLite-MobileNetV2 + CA (ours)': DetectorHeads(ours)}
        out.append((f'SSDLite320 to raw head outputs, {s}²', "mmdet's SSDLite-MobileNetV2",
                    {k: prepare(v, device, args.channels_last, args.compile)
                     for k, v in models.items()}, x))
    if 'deeplabv3' in args.only:
        cfgs = {'DeepLabV3 MobileNetV2 OS16':
                'deeplabv3_mobilenetv2-d16_4xb4-20k_voc12aug-512x512.py',
                'DeepLabV3 MobileNetV2 + CA OS16':
                'deeplabv3_mobilenetv2-ca-d16_4xb4-20k_voc12aug-512x512.py'}
        models = {k: SegmentorLogits(build_model(osp.join(REPO, 'configs/deeplabv3', v))[1])
                  for k, v in cfgs.items()}
        out.append((f'DeepLabV3 to logits, {s}²', 'DeepLabV3 MobileNetV2 OS16',
                    {k: prepare(v, device, args.channels_last, args.compile)
                     for k, v in models.items()}, x))
    return out


# The targets (eval, batch 1, 320²): (comparison prefix, model, bound on its ratio to
# the comparison's baseline, how to say it). Ratios are latency ratios, so >= 1.3x faster is
# <= 1/1.3 and >= 0.95x the images/s is <= 1/0.95.
TARGETS = [
    ('CA layer', 'CoordAtt (ours)', 1 / 1.3, 'CA layer >= 1.3x faster than the released forward'),
    ('backbone', 'MobileNetV2 + CA (ours)', 1.10,
     'MobileNetV2CA backbone <= 1.10x the plain latency'),
    ('SSDLite320', 'SSDLite-MobileNetV2 + CA (ours)', 1 / 0.95,
     "SSDLite-MobileNetV2-CA >= 0.95x the images/s of mmdet's SSDLite-MobileNetV2"),
]


def target_status(ratios: dict) -> list:
    """Markdown lines: each target met or missed, with the measured ratio ({(title, model): r})."""
    lines = []
    for prefix, model, bound, text in TARGETS:
        got = [r for (title, name), r in ratios.items()
               if title.startswith(prefix) and name == model]
        if not got:
            continue
        r = got[0]
        speed = f'{1 / r:.2f}x faster' if prefix == 'CA layer' else \
            (f'{1 / r:.3f}x the images/s' if prefix == 'SSDLite320' else f'{r:.3f}x')
        verdict = '**met**' if r <= bound else f'**missed** by {r / bound - 1:.1%} of latency'
        lines.append(f'- {text}: {verdict} (measured {speed}; '
                     f'latency ratio {r:.3f}, bound {bound:.3f})')
    return lines


def main(argv=None) -> int:  # noqa: C901
    ap = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    ap.add_argument('--threads', type=int, default=2)
    ap.add_argument('--repeats', type=int, default=30)
    ap.add_argument('--warmup', type=int, default=5)
    ap.add_argument('--size', type=int, default=320)
    ap.add_argument('--device', default='cuda' if torch.cuda.is_available() else 'cpu')
    ap.add_argument('--channels-last', action='store_true')
    ap.add_argument('--compile', action='store_true', help='torch.compile every model')
    ap.add_argument('--only', default='layer,backbone,ssdlite,deeplabv3')
    ap.add_argument('--out', help='also write the Markdown table here')
    args = ap.parse_args(argv)
    args.only = set(args.only.split(','))
    torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    dev_name = (torch.cuda.get_device_name(device) if device.type == 'cuda'
                else platform.processor() or platform.machine())
    head = (f'device {args.device} ({dev_name}), torch {torch.__version__}, '
            f'threads {torch.get_num_threads()}, '
            f'batch 1, {args.size}², {args.repeats} interleaved runs after {args.warmup} warm-up'
            + (', channels-last' if args.channels_last else '')
            + (', torch.compile' if args.compile else ''))
    lines = [head, '', '| comparison | model | median ms | IQR ms | images/s | ratio to baseline |',
             '|---|---|---|---|---|---|']
    ratios, failed = {}, []
    for title, base, models, inputs in comparisons(args, device):
        models, notes = runnable(models, inputs)
        failed += [f'- {title}: {n}' for n in notes]
        if base not in models:
            continue
        times = time_interleaved(models, inputs, device, args.repeats, args.warmup)
        med = {k: statistics.median(v) for k, v in times.items()}
        for name, t in times.items():
            q = statistics.quantiles(t, n=4)
            ratios[title, name] = med[name] / med[base]
            lines.append(f'| {title} | {name} | {med[name] * 1e3:.2f} | '
                         f'{q[0] * 1e3:.2f}–{q[2] * 1e3:.2f} | '
                         f'{1 / med[name]:.1f} | {med[name] / med[base]:.3f}× |')
    if failed:
        lines += [''] + failed
    status = target_status(ratios)
    if status:
        lines += ['', 'Targets on this run:'] + status
    table = '\n'.join(lines)
    print(table)
    if args.out:
        os.makedirs(osp.dirname(osp.abspath(args.out)), exist_ok=True)
        with open(args.out, 'w') as f:
            f.write(table + '\n')
    return 0


if __name__ == '__main__':
    sys.exit(main())
