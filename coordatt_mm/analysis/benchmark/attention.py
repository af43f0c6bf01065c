"""Section ``attention`` (not in the default run: about an hour at the default settings on
2 cores): what each attention module costs in MobileNetV2, side by side in one run.

For none / SE / SE-hswish / CBAM / CBAM-hswish / ECA / Triplet / SimAM / CA / CA-ReLU, each in
the paper's slot as the configs put it, in the backbone (from the ImageNet configs, stem to
the 1280 conv), SSDLite320 and DeepLabV3 OS16 (from ``configs/ssdlite`` and
``configs/deeplabv3``): parameters and M-Adds (:mod:`coordatt_mm.analysis.complexity`); eager
latency at each ``--batch``; the training step's time and peak memory (:mod:`.training`); and
each runtime of :data:`~.runtimes.RUNTIMES` that is installed, FP32 and INT8, on the graphs
the deployed sections export (:class:`~.deployed.DeployedModels`). Every timing interleaves
all modules of one model and measure, and every ratio is to the plain network of that run.
CA runs in its fastest form: the fused CPU kernels in eager, each runtime's export forms; the
other modules as PyTorch and the ONNX exporter give them.

Options: ``--attention-types`` and ``--attention-models`` (subsets; the plain network is always
measured), ``--attention-measures``, ``--attention-json`` (the figures, which
:mod:`coordatt_mm.analysis.attention_cost` renders into tables, paragraphs and the picture) and
``--attention-plot`` (the picture, PNG).
"""
import copy
import importlib
import json
import os
import os.path as osp
import statistics
import time
from typing import Dict, List, NamedTuple, Optional

import torch
import torch.nn as nn

from coordatt_mm import ops
from coordatt_mm.analysis import attention_cost
from coordatt_mm.analysis.benchmark.core import (
    Report,
    amp_dtype,
    autocast,
    machine_line,
    prepare,
    round_ratio,
    runtime_versions,
    section,
    settings_line,
    time_interleaved,
)
from coordatt_mm.analysis.benchmark.deployed import DeployedModels
from coordatt_mm.analysis.benchmark.models import initialised, with_bn_statistics
from coordatt_mm.analysis.benchmark.runtimes import PRECISIONS, RUNTIMES
from coordatt_mm.analysis.benchmark.training import measure_training, training_heading
from coordatt_mm.analysis.complexity import REPO, count_madds_by_shapes, count_params
from coordatt_mm.apis.build import build_model, load_config, network, quiet_logs
from coordatt_mm.registry import ROOT_MODELS

PLAIN, CA = attention_cost.PLAIN, attention_cost.CA
# label -> what its configs carry in the place of the SE configs' '-se' ('' : the plain ones)
ATTENTIONS = {PLAIN: '', 'SE': '-se', 'SE-hswish': '-se-hswish', 'CBAM': '-cbam',
              'CBAM-hswish': '-cbam-hswish', 'ECA': '-eca', 'Triplet': '-triplet',
              'SimAM': '-simam', CA: '-ca', 'CA-ReLU': '-ca-relu'}


class AttentionModel(NamedTuple):
    """One network the section compares the modules in.

    Args:
        title (str): as the tables name it.
        short (str): as the paragraphs name it.
        config (str): its configs, ``{}`` standing for :data:`ATTENTIONS`' part.
        deployed (str): the title :class:`DeployedModels` exports it under ('backbone': the
            raw network on normalised inputs; otherwise the end-to-end graph on pixels).
        eager (str): what eager and training run it to.
    """
    title: str
    short: str
    config: str
    deployed: str
    eager: str


MODELS = {
    'backbone': AttentionModel(
        'MobileNetV2 backbone', 'backbone',
        'configs/imagenet/mobilenet-v2{}_4xb64-coslr-200e_in1k.py', 'backbone',
        'the 1280-channel features (stem to the 1280 conv, as the ImageNet configs build it)'),
    'ssdlite': AttentionModel(
        'SSDLite320 MobileNetV2', 'SSDLite320',
        'configs/ssdlite/ssdlite_mobilenetv2{}_8xb24-600e_coco.py', 'SSDLite320 end to end',
        'the raw head outputs (scores and box deltas)'),
    'deeplabv3': AttentionModel(
        'DeepLabV3 MobileNetV2 OS16', 'DeepLabV3',
        'configs/deeplabv3/deeplabv3_mobilenetv2{}-d16_4xb4-20k_voc12aug-512x512.py',
        'DeepLabV3 end to end', 'the logits at the input size'),
}
MEASURES = ('complexity', 'eager', 'training', *RUNTIMES)


def config_of(model: str, label: str) -> str:
    """The config (relative to the repository) of ``model`` with the attention ``label``."""
    return MODELS[model].config.format(ATTENTIONS[label])


def attention_settings(model: str, label: str) -> Optional[dict]:
    """The backbone's ``attention`` entry of that config (None: the plain network)."""
    backbone = load_config(osp.join(REPO, config_of(model, label))).model.backbone
    attention = backbone.get('attention')
    return None if attention is None else dict(attention)


class Built(NamedTuple):
    """One network built for the section: its config (None for a backbone), the model (eval,
    initialised), what eager and training run, and its shapes-only twin on the meta device
    (M-Adds)."""
    cfg: object
    model: nn.Module
    net: nn.Module
    meta: nn.Module


def _backbone_spec(path: str) -> dict:
    spec = dict(load_config(path).model.backbone)
    for k in ('init_cfg', 'pretrained'):
        spec.pop(k, None)
    spec['out_indices'] = (7,)  # to the 1280 conv, without the classifier head
    return spec


def build(model: str, label: str) -> Built:
    """``model`` with the attention ``label`` from its config, initialised as the codebases
    do, with trained-like BatchNorm statistics (:mod:`.models`)."""
    path = osp.join(REPO, config_of(model, label))
    torch.manual_seed(0)
    if model == 'backbone':
        spec = _backbone_spec(path)
        net = initialised(ROOT_MODELS.build(spec)).eval()
        with torch.device('meta'):
            meta = ROOT_MODELS.build(spec)
        return Built(None, net, net, meta)
    with quiet_logs():
        cfg, net = build_model(path, init=True)
        _, meta = build_model(path, device='meta')
    with_bn_statistics(net)
    return Built(cfg, net, network(cfg, net), network(cfg, meta))


class Figures:
    """The run's figures, as :mod:`coordatt_mm.analysis.attention_cost` reads them."""

    def __init__(self, args, device, labels: List[str], models: List[str]) -> None:
        self.data = dict(
            machine=machine_line(), settings_line=settings_line(args, device),
            settings=dict(size=args.size, threads=args.threads, repeats=args.repeats,
                          warmup=args.warmup, batch=list(args.batch),
                          train_batch=args.train_batch, channels_last=args.channels_last,
                          amp=args.amp, device=str(device)),
            runtimes=runtime_versions(), types=labels,
            configs={t: {k: config_of(k, t) for k in MODELS} for t in labels},
            groups={}, notes=[],
            models={k: dict(title=MODELS[k].title, short=MODELS[k].short, measures={})
                    for k in models})

    def add(self, model: str, name: str, group: str, unit: str, values: Dict[str, float],
            ratios: Dict[str, float], plot: bool = False, iqr=None) -> None:
        """One measure of ``model``: {label: value} in ``unit`` and {label: ratio to the
        plain network}; ``plot``: a panel of the picture; ``iqr``: {label: [q1, q3]}."""
        m = dict(group=group, unit=unit, values=values, ratios=ratios, plot=plot)
        if iqr:
            m['iqr'] = iqr
        self.data['models'][model]['measures'][name] = m

    def add_times(self, model: str, name: str, group: str, times: Dict[str, List[float]],
                  plot: bool = False) -> None:
        """Milliseconds: medians, quartiles and ratios (median of per-round ratios) to the
        plain network's times in the same interleaved rounds."""
        def quartiles(v):
            q = statistics.quantiles(v, n=4) if len(v) > 1 else (v[0], v[0], v[0])
            return [q[0] * 1e3, q[2] * 1e3]
        self.add(model, name, group, 'ms',
                 {t: statistics.median(v) * 1e3 for t, v in times.items()},
                 {t: round_ratio(v, times[PLAIN]) for t, v in times.items()}, plot,
                 {t: quartiles(v) for t, v in times.items()})


def _complexity(fig: Figures, built: Dict[str, Dict[str, Built]], args) -> None:
    fig.data['groups']['complexity'] = (
        f'parameters (inference: no auxiliary head) and M-Adds at {args.size}² (convolutions '
        f'and linear layers plus the attention layers\' pooling and gating, as '
        f'tools/analysis/complexity.py counts them)')
    for key, nets in built.items():
        params = {t: float(count_params(b.model)) for t, b in nets.items()}
        madds = {}
        for t, b in nets.items():
            c = count_madds_by_shapes(b.meta, (1, 3, args.size, args.size))
            madds[t] = (c['conv_linear'] + c['attention_elementwise']) / 1e6
        fig.add(key, 'params', 'complexity', '', params,
                {t: v / params[PLAIN] for t, v in params.items()})
        fig.add(key, 'M-Adds', 'complexity', 'M', madds,
                {t: v / madds[PLAIN] for t, v in madds.items()})


def _eager(fig: Figures, built: Dict[str, Dict[str, Built]], args, device) -> None:
    last = bool(args.channels_last)
    fig.data['groups']['eager'] = (
        f'eager PyTorch, eval, torch.inference_mode, {"channels-last" if last else "NCHW"}'
        + (f', autocast {amp_dtype(device)}' if args.amp else '') + ', median ms')
    for key, nets in built.items():
        models = {t: prepare(b.net, device, last, False) for t, b in nets.items()}
        for i, batch in enumerate(args.batch):
            x = torch.randn(batch, 3, args.size, args.size, device=device)
            if last:
                x = x.contiguous(memory_format=torch.channels_last)
            with torch.inference_mode(), autocast(args, device):
                times = time_interleaved({t: (lambda m=m: m(x)) for t, m in models.items()},
                                         device, args.repeats, args.warmup)
            fig.add_times(key, f'eager batch {batch}', 'eager', times, plot=i == 0)


def _training(fig: Figures, built: Dict[str, Dict[str, Built]], args, device) -> None:
    fig.data['groups']['training'] = training_heading(
        args, device, f'each network to its raw outputs, batch {args.train_batch}') + \
        ': median ms, MiB'
    for key, nets in built.items():
        copies = {t: copy.deepcopy(b.net) for t, b in nets.items()}  # eval models stay as built
        x = torch.randn(args.train_batch, 3, args.size, args.size)
        times, peaks = measure_training(copies, x, args, device)
        del copies
        fig.add_times(key, 'training step', 'training', times)
        fig.add(key, 'training peak memory', 'training', 'MiB',
                {t: p / 2 ** 20 for t, p in peaks.items()},
                {t: p / peaks[PLAIN] for t, p in peaks.items()})


def _runtimes(fig: Figures, built: Dict[str, Dict[str, Built]], args, names: List[str]) -> None:
    installed = {}
    for name in names:
        rt = RUNTIMES[name]
        try:
            installed[name] = importlib.import_module(rt.module)
        except ImportError:
            fig.data['notes'].append(f'{rt.name}: not installed (`{rt.install}`), not measured.')
    if not installed:
        return
    deployed = DeployedModels(args, {MODELS[k].deployed: {t: (b.cfg, b.model)
                                                           for t, b in nets.items()}
                                     for k, nets in built.items()})
    cpu = torch.device('cpu')
    for name, module in installed.items():
        rt = RUNTIMES[name]
        fig.data['groups'][name] = (
            rt.where.format(version=module.__version__, threads=args.threads)
            + f', batch 1, CA in its {rt.fp32_form} form in FP32 and its {rt.int8_form} form '
              f'in INT8: median ms')
        for key, nets in built.items():
            title = MODELS[key].deployed
            x = deployed.inputs[title]
            fns = {}
            for t in nets:
                for p in PRECISIONS:
                    run = rt.runner(deployed.files[title, t, rt.variant(p)], args.threads)
                    fns[t, p] = lambda run=run: run(x)
            times = time_interleaved(fns, cpu, args.repeats, args.warmup)
            for p in PRECISIONS:
                fig.add_times(key, f'{rt.name} {p.upper()}', name,
                              {t: times[t, p] for t in nets}, plot=True)


def notes(models: List[str], measures: List[str]) -> List[str]:
    """What the tables do not say themselves: each module's form, what each measure runs."""
    out = ['Every module sits in the paper\'s slot (after the depthwise conv of each expanding '
           'block), as the configs put them; ECA\'s and Triplet Attention\'s own papers put them '
           'after the projection (`attention_position=\'after_project\'`).']
    if 'eager' in measures or 'training' in measures:
        fused = ops.fused_status()
        out.append(f'Eager and training: CA and CA-ReLU on the fused CPU kernels ({fused}; '
                   f'CUDA and autocast take PyTorch ops); the other modules on PyTorch ops, '
                   f'as their layers compute them. The networks run to '
                   + '; '.join(f'{MODELS[k].short}: {MODELS[k].eager}' for k in models) + '.')
    if 'training' in measures:
        out.append('Training: the loss is the mean of every raw output (no target assignment '
                   'or head losses, the same for every module); peak memory is the step\'s '
                   'allocations beyond those before it.')
    deployed = [n for n in measures if n in RUNTIMES]
    if deployed:
        out.append('Runtimes: the graphs `tools/deploy/export_onnx.py` writes at the run\'s '
                   'size (the backbone raw; SSDLite320 end to end to boxes after NMS; '
                   'DeepLabV3 end to end to label maps, `--static`), INT8 as `--int8` '
                   'quantises them, calibrated on 4 random inputs. CA and CA-ReLU in each '
                   'runtime\'s fastest export forms: '
                   + '; '.join(f'{RUNTIMES[n].name} {RUNTIMES[n].fp32_form} (FP32), '
                               f'{RUNTIMES[n].int8_form} (INT8)' for n in deployed)
                   + '; the other modules as the ONNX exporter writes their PyTorch ops.')
    return out


def _choice(value, known, what: str) -> List[str]:
    chosen = [v for v in str(value).split(',') if v] if value else list(known)
    unknown = [v for v in chosen if v not in known]
    if unknown:
        raise ValueError(f'{what} {unknown}: unknown (known: {", ".join(known)})')
    return chosen


def write_json(data: dict, path: str) -> None:
    """The figures to ``path`` (its folder made), as attention_cost.load reads them."""
    os.makedirs(osp.dirname(osp.abspath(path)), exist_ok=True)
    with open(path, 'w', encoding='utf-8') as f:
        json.dump(data, f, indent=1, ensure_ascii=False)
        f.write('\n')


@section('attention')
def attention_section(rep: Report, args, device) -> None:
    t0 = time.time()
    chosen = _choice(getattr(args, 'attention_types', None), ATTENTIONS, 'attention types')
    labels = [t for t in ATTENTIONS if t == PLAIN or t in chosen]  # ratios need the plain one
    models = _choice(getattr(args, 'attention_models', None), MODELS, 'attention models')
    measures = _choice(getattr(args, 'attention_measures', None), MEASURES, 'attention measures')
    fig = Figures(args, device, labels, models)
    built = {k: {t: build(k, t) for t in labels} for k in models}
    fig.data['notes'] = notes(models, measures)
    if 'complexity' in measures:
        _complexity(fig, built, args)
    # the exports first: eager may move the networks to --device
    _runtimes(fig, built, args, [n for n in measures if n in RUNTIMES])
    if 'eager' in measures:
        _eager(fig, built, args, device)
    if 'training' in measures:
        _training(fig, built, args, device)
    fig.data['seconds'] = round(time.time() - t0, 1)
    data = fig.data
    order = ['complexity', 'eager', *RUNTIMES, 'training']  # as the tables read best
    for model in data['models'].values():
        model['measures'] = dict(sorted(model['measures'].items(),
                                        key=lambda kv: order.index(kv[1]['group'])))
    rep.lines += ['', '**What each attention module costs in MobileNetV2** (section '
                  f'`attention`, {data["seconds"] / 60:.1f} min)', '',
                  attention_cost.document(data)]
    out = getattr(args, 'attention_json', None)
    if out:
        write_json(data, out)
        rep.lines += ['', f'Figures: `{out}`.']
    png = getattr(args, 'attention_plot', None)
    if png:
        attention_cost.plot(data, png)
        rep.lines += ['', f'Picture: `{png}`.']

