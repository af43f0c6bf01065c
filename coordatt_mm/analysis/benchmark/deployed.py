"""Sections ``onnxruntime`` and ``openvino`` (one per entry of
:data:`~coordatt_mm.analysis.benchmark.runtimes.RUNTIMES`): the backbone, SSDLite320 end to
end (boxes after NMS) and DeepLabV3 end to end (label maps), plain and with CA, exported as
``tools/deploy/export_onnx.py`` exports them, in FP32 and in INT8 (its ``--int8``
quantisation, calibrated on random inputs), batch 1, on the CPU; then the runtime's own
profile of the backbones (ONNX Runtime: share of kernel time per operator type, after its
graph optimisations; OpenVINO: its performance counters per layer type and kernel)."""
import importlib
import itertools
import os.path as osp
import tempfile
from typing import Dict, NamedTuple, Optional, Tuple

import torch

from coordatt_mm import CoordAtt
from coordatt_mm.analysis.benchmark.core import TARGETS, TIMES, Report, section, time_interleaved
from coordatt_mm.analysis.benchmark.models import (
    DL_CA,
    DL_PLAIN,
    SSD_MM,
    SSD_OURS,
    backbones,
    dense_models,
)
from coordatt_mm.analysis.benchmark.runtimes import PRECISIONS, RUNTIMES, Runtime, Variant
from coordatt_mm.apis.build import quiet_logs

INT8 = ' INT8'  # the suffix of a model's INT8 row


class DeployedPair(NamedTuple):
    """One deployed comparison: its title, its short name in the targets' texts, the plain and
    the CA model's names, and the bound on INT8 with CA over FP32 with CA (None: no target)."""
    title: str
    short: str
    plain: str
    ca: str
    int8_gain: Optional[float]


DEPLOYED = [DeployedPair('backbone', 'backbone', 'MobileNetV2', 'MobileNetV2 + CA', 0.6),
            DeployedPair('SSDLite320 end to end', 'SSDLite320', SSD_MM, SSD_OURS, 0.6),
            DeployedPair('DeepLabV3 end to end', 'DeepLabV3', DL_PLAIN, DL_CA, 0.6)]
# bounds on FP32 with CA over plain FP32 (with their stage), and on INT8 with CA over INT8 plain
FP32_BOUNDS = ((1.25, 'next step'), (1.10, 'goal'))
INT8_BOUND = 1.25
PLAIN_FORM = 'pool'  # the export form of networks without CA (any form gives the same graph)


def _add_targets(section: str, rt: Runtime) -> None:
    for pair in DEPLOYED:
        prefix, what = f'{rt.name}, {pair.title}', f'{rt.name}: {pair.short}'
        TARGETS.extend((section, prefix, pair.ca, bound, f'{what} FP32 with CA <= {bound:.2f}x '
                        f'plain ({stage})') for bound, stage in FP32_BOUNDS)
        TARGETS.append((section, prefix, pair.ca + INT8, INT8_BOUND,
                        f'{what} INT8 with CA <= {INT8_BOUND:.2f}x INT8 plain', pair.plain + INT8))
        if pair.int8_gain is not None:
            TARGETS.append((section, prefix, pair.ca + INT8, pair.int8_gain,
                            f'{what} with CA, INT8 <= {pair.int8_gain:g}x FP32', pair.ca))


class DeployedModels:
    """The deployed pairs exported once for every runtime section, as
    ``tools/deploy/export_onnx.py`` exports them at the benchmark's size (segmentation with
    ``--static``, so that CA's static forms apply as in detection): each graph a runtime of
    :data:`RUNTIMES` runs, FP32 and INT8 (``--int8``'s
    quantisation, calibrated on random inputs of the benchmark's kind), in ``files``:
    {(title, name, variant): file}; a plain network has one file per precision and operator
    list, under every form.

    Args:
        args (argparse.Namespace): the benchmark's arguments (``size``).
        models (dict, optional): {title: {name: (config, network)}} to export instead of
            :data:`DEPLOYED`'s networks; the title ``'backbone'`` exports raw networks
            (normalised input), any other the end-to-end graphs (pixels). Defaults to None.
    """

    def __init__(self, args, models: Optional[Dict[str, Dict[str, tuple]]] = None) -> None:
        import numpy as np

        from coordatt_mm.deploy import export_model, export_network
        from coordatt_mm.deploy.quantize import ArrayCalibration, quantize_int8
        self._tmp = tempfile.TemporaryDirectory()
        self.files: Dict[Tuple[str, str, Variant], str] = {}
        self.inputs: Dict[str, 'np.ndarray'] = {}
        rng = np.random.default_rng(0)
        hw = (args.size, args.size)
        if models is None:
            plain, ca = backbones()
            models = {'backbone': {'MobileNetV2': (None, plain),
                                   'MobileNetV2 + CA': (None, ca)}}
            (_, ssd, _), (_, seg, _) = dense_models()
            models['SSDLite320 end to end'], models['DeepLabV3 end to end'] = ssd, seg
        variants = sorted({rt.variant(p) for rt in RUNTIMES.values() for p in PRECISIONS})
        forms = sorted({form for _, form, _ in variants})
        count = itertools.count()
        for title, nets in models.items():
            raw = title == 'backbone'
            # the backbone takes normalised inputs, the end-to-end graphs pixels
            make = ((lambda: rng.standard_normal((1, 3, *hw), np.float32)) if raw else
                    (lambda: rng.uniform(0, 255, (1, 3, *hw)).astype(np.float32)))
            self.inputs[title] = make()
            calibration = [make() for _ in range(4)]
            for name, (cfg, net) in nets.items():
                has_ca = any(isinstance(m, CoordAtt) for m in net.modules())
                for form in (forms if has_ca else [PLAIN_FORM]):
                    # the variants this graph serves: its form's, or every one without CA
                    served = [v for v in variants if v[1] == form or not has_ca]
                    path = osp.join(self._tmp.name, f'{next(count)}_{form}.onnx')
                    with torch.no_grad(), quiet_logs():
                        if raw:
                            export_network(net.eval(), path, hw, ['out'], ca_form=form)
                        else:
                            export_model(cfg, net.eval(), path, hw, ca_form=form,
                                         static=True)
                    made = {(): path}
                    for op_types in sorted({o for p, _, o in served if p == 'int8'}):
                        made[op_types] = f'{path[:-5]}_int8_{len(made)}.onnx'
                        quantize_int8(path, made[op_types],
                                      ArrayCalibration('input', calibration), op_types=op_types)
                    for v in served:
                        self.files[title, name, v] = made[v[2]]


def deployed_models(args) -> DeployedModels:
    """The exports of this run, made by the first deployed section that needs them."""
    if getattr(args, '_deployed', None) is None:
        args._deployed = DeployedModels(args)
    return args._deployed


def deployed_section(rep: Report, args, runtime: str) -> None:
    rt = RUNTIMES[runtime]
    try:
        module = importlib.import_module(rt.module)
    except ImportError:
        rep.lines += ['', f'**{rt.name}**: not installed (`{rt.install}`), not measured.']
        return
    where = rt.where.format(version=module.__version__, threads=args.threads)
    deployed = deployed_models(args)
    rep.start(f'{rt.name}: FP32 and INT8, plain vs CA, batch 1, {args.size}² ({where}; CA in its '
              f'{rt.fp32_form} form in FP32, {rt.int8_form} form in INT8)', TIMES)
    for pair in DEPLOYED:
        x = deployed.inputs[pair.title]
        rows = {pair.plain: (pair.plain, 'fp32'), pair.ca: (pair.ca, 'fp32'),
                pair.plain + INT8: (pair.plain, 'int8'), pair.ca + INT8: (pair.ca, 'int8')}
        fns = {row: (lambda f=rt.runner(deployed.files[pair.title, net, rt.variant(p)],
                                        args.threads): f(x))
               for row, (net, p) in rows.items()}
        rep.table(runtime, f'{rt.name}, {pair.title}, {args.size}²', pair.plain,
                  time_interleaved(fns, torch.device('cpu'), args.repeats, args.warmup))
    rep.verdicts(runtime)
    if rt.kernel_shares is not None:
        profile_table(rep, args, rt, deployed)


def profile_table(rep: Report, args, rt: Runtime, deployed: DeployedModels) -> None:
    """The runtime's own profile of the backbones: share of kernel time per operator type,
    most of CA's first; operators under 0.5% everywhere left out."""
    pair = DEPLOYED[0]
    x = deployed.inputs[pair.title]
    cols = [(net, p) for p in PRECISIONS for net in (pair.plain, pair.ca)]
    shares = [rt.kernel_shares(deployed.files[pair.title, net, rt.variant(p)], x, args.threads)
              for net, p in cols]
    with_ca = [sh for (net, _), sh in zip(cols, shares) if net == pair.ca]
    names = sorted(set().union(*shares), key=lambda k: -sum(sh.get(k, 0) for sh in with_ca))
    rep.start(f"{rt.name}'s profile of the backbones (share of kernel time)",
              '| operator | ' + ' | '.join(net + (INT8 if p == 'int8' else '') for net, p in cols)
              + ' |')
    rep.lines += [f'| {k} | ' + ' | '.join(f'{sh.get(k, 0):.1%}' for sh in shares) + ' |'
                  for k in names if max(sh.get(k, 0) for sh in shares) >= 0.005]


def _runtime_section(runtime: str):
    def runtime_section(rep: Report, args, device) -> None:
        deployed_section(rep, args, runtime)  # on the CPU, whatever --device says
    return runtime_section


for _name, _runtime in RUNTIMES.items():
    _add_targets(_name, _runtime)
    section(_name)(_runtime_section(_name))
