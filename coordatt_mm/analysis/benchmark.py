"""Side-by-side benchmarks, baseline vs Coordinate Attention, in one process
(``tools/analysis/benchmark.py``).

    python tools/analysis/benchmark.py
        [--sections layer,eager,onnxruntime,openvino,training,compile]
        [--batch 1,8] [--train-batch 8] [--threads 2] [--repeats 30] [--warmup 5] [--size 320]
        [--device cpu|cuda] [--channels-last] [--amp] [--compile] [--out FILE.md]

Every comparison runs its models interleaved (A, B, C, A, B, C, ...) after a warm-up, so that
the ratios of one table share the machine's state; CUDA timings are synchronised.
``--amp`` runs the eager and training sections under autocast (float16 with a gradient scaler
on CUDA, bfloat16 on the CPU), as ``--amp`` training does. Sections:

- eager: eval latency at each ``--batch``, ``torch.inference_mode``, in NCHW and in
  channels-last (only the latter with ``--channels-last``): the backbone (MobileNetV2, stem to
  the 1280 conv: plain; with our CA on the widest fused CPU kernels the CPU runs, and on each
  other build of them; on PyTorch ops only; in the released CA forward), SSDLite320 (mmdet's
  own config vs ours with CA, to raw head outputs) and DeepLabV3 OS16 (to logits);
- onnxruntime, openvino: the backbone, SSDLite320 end to end (boxes after NMS) and DeepLabV3
  end to end (label maps), plain and with CA, exported as ``tools/deploy/export_onnx.py``
  exports them, in FP32 and in INT8 (its ``--int8`` quantisation, calibrated on random inputs),
  batch 1, on ONNX Runtime's CPU execution provider (``--threads`` intra-op threads that do not
  spin) and on OpenVINO's CPU plugin where ``openvino`` is installed; then ONNX Runtime's own
  profile of the backbones (share of kernel time per operator type, after its graph
  optimisations);
- training: forward + backward + SGD step of the backbone at ``--train-batch``, step time and
  the step's peak memory (CPU: the allocations the torch profiler records; CUDA:
  ``max_memory_allocated``), in channels-last with ``--channels-last``;
- layer: the 16 CA layers of MobileNetV2 at ``--size``, each on its own input, batch 1: ours
  (fused / PyTorch ops) vs the released forward vs timm's ``CoordAttn`` when timm is installed;
- compile (not in the default run: compilation takes minutes): whether ``torch.compile`` pays
  for a folder of images, for our SSDLite-CA and DeepLabV3-CA.

Each section ends with its targets, judged on its own numbers.
"""
import contextlib
import copy
import os
import os.path as osp
import platform
import statistics
import tempfile
import time
from typing import Callable, Dict, List, Tuple

import torch
import torch.nn as nn
import torch.nn.functional as F

from coordatt_mm import CoordAtt, MobileNetV2CA, ops
from coordatt_mm.apis.build import DetectorHeads, SegmentorLogits, build_model, quiet_logs

REPO = osp.dirname(osp.dirname(osp.dirname(osp.realpath(__file__))))
SSDLITE_CA = 'configs/ssdlite/ssdlite_mobilenetv2-ca_8xb24-600e_coco.py'
DEEPLAB = {'DeepLabV3 MobileNetV2 OS16': 'deeplabv3_mobilenetv2-d16_4xb4-20k_voc12aug-512x512.py',
           'DeepLabV3 MobileNetV2 + CA OS16':
           'deeplabv3_mobilenetv2-ca-d16_4xb4-20k_voc12aug-512x512.py'}
OURS, OURS_ATEN = 'MobileNetV2 + CA (ours)', 'MobileNetV2 + CA (ours, PyTorch ops only)'
SSD_MM, SSD_OURS = "mmdet's SSDLite-MobileNetV2", 'SSDLite-MobileNetV2 + CA (ours)'
DL_PLAIN, DL_CA = list(DEEPLAB)

# (section, comparison title prefix, model, bound on its ratio, target text[, versus]): the
# ratio is of the model's latency (or memory) to the comparison's baseline, or to ``versus``.
# ">= 0.95x the images/s" is a latency bound of 1/0.95.
TARGETS = [
    ('layer', 'CA layer', 'CoordAtt (ours)', 1 / 1.3,
     'CA layer >= 1.3x faster than the released forward'),
    ('eager', 'backbone', OURS, 1.10, 'MobileNetV2CA backbone <= 1.10x the plain latency'),
    ('eager', 'SSDLite320', SSD_OURS, 1 / 0.95,
     "SSDLite-MobileNetV2-CA >= 0.95x the images/s of mmdet's SSDLite-MobileNetV2"),
    ('eager', 'DeepLabV3', DL_CA, 1.10, 'DeepLabV3 + CA <= 1.10x the plain latency'),
    ('training', 'training step', OURS, 1.15, 'training step with CA <= 1.15x the plain one'),
    ('training', 'training peak memory', OURS, 1.10,
     'training peak memory with CA <= 1.10x the plain one'),
]
# the deployed pairs: (title, plain, with CA)
DEPLOYED = [('backbone', 'MobileNetV2', 'MobileNetV2 + CA'),
            ('SSDLite320 end to end', SSD_MM, SSD_OURS),
            ('DeepLabV3 end to end', DL_PLAIN, DL_CA)]
INT8 = ' INT8'
for _runtime in ('ONNX Runtime', 'OpenVINO'):
    _sec = _runtime.lower().replace(' ', '')
    for _title, _plain, _ca in DEPLOYED:
        _what = f'{_runtime}: {_title.split(" end")[0]}'
        TARGETS += [
            (_sec, f'{_runtime}, {_title}', _ca, 1.25, f'{_what} FP32 with CA <= 1.25x plain '
             '(next step)'),
            (_sec, f'{_runtime}, {_title}', _ca, 1.10, f'{_what} FP32 with CA <= 1.10x plain '
             '(goal)'),
            (_sec, f'{_runtime}, {_title}', _ca + INT8, 1.25,
             f'{_what} INT8 with CA <= 1.25x INT8 plain', _plain + INT8)]
        if not _title.startswith('DeepLabV3'):
            TARGETS.append((_sec, f'{_runtime}, {_title}', _ca + INT8, 0.6,
                            f'{_what} with CA, INT8 <= 0.6x FP32', _ca))


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
    for m in list(model.modules()):
        for child_name, child in list(m.named_children()):
            if isinstance(child, CoordAtt):
                setattr(m, child_name, ReleasedFormCoordAtt(child))
    return model


def aten_only(model: nn.Module) -> nn.Module:
    """A copy of ``model`` whose CoordAtt layers use PyTorch ops only (no fused kernels)."""
    model = copy.deepcopy(model)
    for m in model.modules():
        if isinstance(m, CoordAtt):
            m.use_ops = False
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


def time_interleaved(fns: Dict[str, Callable], device, repeats: int, warmup: int):
    """{name: [seconds per call]} with the callables run in turn, repeatedly."""
    times = {name: [] for name in fns}
    for i in range(warmup + repeats):
        for name, fn in fns.items():
            sync(device)
            t = time.perf_counter()
            fn()
            sync(device)
            if i >= warmup:
                times[name].append(time.perf_counter() - t)
    return times


def amp_dtype(device) -> torch.dtype:
    """The autocast dtype of ``--amp``: float16 on CUDA (as mmengine's AmpOptimWrapper),
    bfloat16 on the CPU (float16 convolutions are slow there)."""
    return torch.float16 if device.type == 'cuda' else torch.bfloat16


def autocast(args, device):
    if not args.amp:
        return contextlib.nullcontext()
    return torch.autocast(device.type, dtype=amp_dtype(device))


def prepare(m, device, channels_last, compile_):
    m = m.to(device).eval()
    if channels_last:
        m = m.to(memory_format=torch.channels_last)
    if compile_:
        m = torch.compile(m, dynamic=False)  # one specialisation per shape, as deployed
    return m


def _first_line(e: Exception) -> str:
    text = str(e).strip()
    return f'{type(e).__name__}: {(text.splitlines()[0] if text else "")[:160]}'


def runnable(fns: Dict[str, Callable]) -> Tuple[Dict[str, Callable], List[str]]:
    """The callables that run once and, for those that fail (e.g. a torch.compile lowering
    error), one line each saying so."""
    kept, notes = {}, []
    for name, fn in fns.items():
        try:
            fn()
            kept[name] = fn
        except Exception as e:  # reported in the table, not fatal for the other models
            notes.append(f'{name}: not measured, {_first_line(e)}')
    return kept, notes


def ca_shapes(size):
    """(C, H, W) seen by MobileNetV2's 16 CA layers at input size x size."""
    shapes = []
    m = MobileNetV2CA(out_indices=(7,)).eval()
    hooks = [mod.register_forward_pre_hook(lambda mod, i: shapes.append(tuple(i[0].shape[1:])))
             for mod in m.modules() if isinstance(mod, CoordAtt)]
    with torch.no_grad():
        m(torch.randn(1, 3, size, size))
    for h in hooks:
        h.remove()
    return shapes


def _with_bn_statistics(model: nn.Module, seed: int = 0) -> nn.Module:
    """Non-trivial running statistics, as a trained model has (the default mean 0, var 1
    would make every BN an identity)."""
    g = torch.Generator().manual_seed(seed)
    for m in model.modules():
        if isinstance(m, nn.modules.batchnorm._BatchNorm) and m.running_var is not None:
            m.running_mean.copy_(0.1 * torch.randn(m.num_features, generator=g))
            m.running_var.copy_(0.5 + torch.rand(m.num_features, generator=g))
    return model


def _initialised(model: nn.Module) -> nn.Module:
    """The codebases' own initialisation (Kaiming convs), which keeps activations and gradients
    at a trained network's scale; construction-time weights let them fade towards denormal
    numbers, whose slow arithmetic would be timed instead."""
    with quiet_logs():
        model.init_weights()
    return _with_bn_statistics(model)


def backbones():
    torch.manual_seed(0)
    return (_initialised(MobileNetV2CA(attention=None, out_indices=(7,))),
            _initialised(MobileNetV2CA(out_indices=(7,))))


def dense_models():
    """(title, {name: (cfg, model)}, baseline) for SSDLite and DeepLabV3, initialised."""
    import mmdet
    mm_cfg = osp.join(osp.dirname(mmdet.__file__),
                      '.mim/configs/ssd/ssdlite_mobilenetv2-scratch_8xb24-600e_coco.py')
    torch.manual_seed(0)
    ssd = {SSD_MM: build_model(mm_cfg, init=True),
           SSD_OURS: build_model(osp.join(REPO, SSDLITE_CA), init=True)}
    seg = {k: build_model(osp.join(REPO, 'configs/deeplabv3', v), init=True)
           for k, v in DEEPLAB.items()}
    for nets in (ssd, seg):
        for _, n in nets.values():
            _with_bn_statistics(n)
    return [('SSDLite320', ssd, SSD_MM), ('DeepLabV3', seg, DL_PLAIN)]


def dense_pairs():
    """(title, {name: network to raw outputs}, baseline) for SSDLite and DeepLabV3."""
    (ssd_t, ssd, ssd_b), (seg_t, seg, seg_b) = dense_models()
    return [(f'{ssd_t} to raw head outputs', {k: DetectorHeads(m) for k, (_, m) in ssd.items()},
             ssd_b),
            (f'{seg_t} to logits', {k: SegmentorLogits(m) for k, (_, m) in seg.items()}, seg_b)]


# ---- tables ----

class Report:
    """The Markdown lines of a run and the ratios its targets are judged on."""

    def __init__(self):
        self.lines: List[str] = []
        self.ratios: Dict[Tuple[str, str, str], float] = {}
        self.times: Dict[Tuple[str, str], Tuple[str, Dict[str, List[float]]]] = {}

    def table(self, section: str, title: str, base: str, times: Dict[str, List[float]],
              images: int = 1) -> None:
        """Rows of median times; a model's ratio is the median over the interleaved rounds of
        its time over the baseline's in the same round, which cancels the machine's drift."""
        med = {k: statistics.median(v) for k, v in times.items()}
        self.times[section, title] = (base, times)
        for name, t in times.items():
            q = statistics.quantiles(t, n=4) if len(t) > 1 else (t[0], t[0], t[0])
            r = round_ratio(t, times[base])
            self.ratios[section, title, name] = r
            self.lines.append(f'| {title} | {name} | {med[name] * 1e3:.2f} | '
                              f'{q[0] * 1e3:.2f}–{q[2] * 1e3:.2f} | '
                              f'{images / med[name]:.1f} | {r:.3f}× |')

    def start(self, heading: str, columns: str) -> None:
        self.lines += ['', f'**{heading}**', '', columns,
                       '|' + '---|' * (columns.count('|') - 1)]

    def verdicts(self, section: str) -> None:
        got = []
        for sec, prefix, model, bound, text, *versus in TARGETS:
            if sec != section:
                continue
            for (s, title), (base, times) in self.times.items():
                other = versus[0] if versus else base
                if s == sec and title.startswith(prefix) and model in times and other in times:
                    got.append(verdict(title, text, round_ratio(times[model], times[other]),
                                       bound))
            for (s, title, name), r in self.ratios.items():  # tables without times
                if (s == sec and title.startswith(prefix) and name == model and not versus
                        and (s, title) not in self.times):
                    got.append(verdict(title, text, r, bound))
        if got:
            self.lines += ['', 'Targets:'] + got


def round_ratio(a: List[float], b: List[float]) -> float:
    """The median over interleaved rounds of a's time over b's in the same round."""
    return statistics.median(x / y for x, y in zip(a, b))


def verdict(title: str, text: str, r: float, bound: float) -> str:
    """One Markdown line: the target met or missed, with the measured ratio."""
    if bound < 1 and 'faster' in text:
        measured = f'{1 / r:.2f}x faster'
    elif 'images/s' in text:
        measured = f'{1 / r:.3f}x the images/s'
    else:
        measured = f'{r:.3f}x'
    state = '**met**' if r <= bound else f'**missed** by {r / bound - 1:.1%}'
    return f'- {text} ({title}): {state} (measured {measured}; ratio {r:.3f}, bound {bound:.3f})'


TIMES = ('| comparison | model | median ms | IQR ms | images/s | ratio to baseline (median of '
         'rounds) |')


class WithKernels(nn.Module):
    """``model`` run with the fused kernels of another build (AVX2, AVX-512, default)."""

    def __init__(self, model: nn.Module, build: str) -> None:
        super().__init__()
        self.model, self.build = model, build

    def forward(self, x):
        with ops.using_kernels(self.build):
            return self.model(x)


def memory_formats(args) -> List[str]:
    """Eager runs both layouts side by side unless ``--channels-last`` asks for that one."""
    return ['channels-last'] if args.channels_last else ['NCHW', 'channels-last']


def eager_section(rep: Report, args, device) -> None:
    plain, ca = backbones()
    # the kernel builds this CPU runs besides the one in use (the default row)
    others = ([b for b in ops.kernel_builds() if b != ops.kernel_build()]
              if device.type == 'cpu' else [])
    notes, pairs = [], dense_pairs()
    for fmt in memory_formats(args):
        last = fmt == 'channels-last'
        rep.start(f'Eager PyTorch, eval, {fmt}'
                  + (f', autocast {amp_dtype(device)}' if args.amp else '')
                  + (', torch.compile' if args.compile else ''), TIMES)
        for batch in args.batch:
            x = torch.randn(batch, 3, args.size, args.size, device=device)
            if last:
                x = x.contiguous(memory_format=torch.channels_last)
            backbone = {'MobileNetV2': plain, OURS: ca}
            backbone.update({f'MobileNetV2 + CA (ours, {b} kernels)': WithKernels(ca, b)
                             for b in others})
            backbone.update({OURS_ATEN: aten_only(ca),
                             'MobileNetV2 + CA (released form)': released_form(ca)})
            comparisons = [(f'backbone, stem to 1280 conv, batch {batch}, {args.size}², {fmt}',
                            backbone, 'MobileNetV2')]
            comparisons += [(f'{t}, batch {batch}, {args.size}², {fmt}', nets, base)
                            for t, nets, base in pairs]
            for title, nets, base in comparisons:
                models = {k: prepare(v, device, last, args.compile) for k, v in nets.items()}
                with torch.inference_mode(), autocast(args, device):
                    fns, failed = runnable({k: (lambda m=m: m(x)) for k, m in models.items()})
                    notes += [f'- {title}: {n}' for n in failed]
                    if base in fns:
                        rep.table('eager', title, base,
                                  time_interleaved(fns, device, args.repeats, args.warmup), batch)
    rep.lines += ([''] + notes) if notes else []
    rep.verdicts('eager')


class DeployedModels:
    """The deployed pairs exported once for every runtime section, as
    ``tools/deploy/export_onnx.py`` exports them (segmentation is dynamic, so its CA always
    broadcasts): FP32 and INT8 (``--int8``'s quantisation, calibrated on random inputs of the
    benchmark's kind) in each CA form a runtime runs fastest: {(title, name, precision,
    form): file}; plain networks have one file per precision, under every form."""

    FORMS = {'fp32': ('pool', 'product'), 'int8': ('pool', 'broadcast')}

    def __init__(self, args) -> None:
        import numpy as np

        from coordatt_mm.deploy import export_model, export_network
        from coordatt_mm.deploy.quantize import ArrayCalibration, quantize_int8
        self._tmp = tempfile.TemporaryDirectory()
        self.files: Dict[Tuple[str, str, str, str], str] = {}
        self.inputs: Dict[str, 'np.ndarray'] = {}
        rng = np.random.default_rng(0)
        hw = (args.size, args.size)
        plain, ca = backbones()
        models = {'backbone': {'MobileNetV2': (None, plain), 'MobileNetV2 + CA': (None, ca)}}
        (_, ssd, _), (_, seg, _) = dense_models()
        models['SSDLite320 end to end'], models['DeepLabV3 end to end'] = ssd, seg
        forms = sorted(set(sum(self.FORMS.values(), ())))
        for title, nets in models.items():
            raw = title == 'backbone'
            # the backbone takes normalised inputs, the end-to-end graphs pixels
            make = ((lambda: rng.standard_normal((1, 3, *hw), np.float32)) if raw else
                    (lambda: rng.uniform(0, 255, (1, 3, *hw)).astype(np.float32)))
            self.inputs[title] = make()
            calibration = [make() for _ in range(4)]
            for name, (cfg, net) in nets.items():
                has_ca = any(isinstance(m, CoordAtt) for m in net.modules())
                for form in (forms if has_ca else ['pool']):
                    path = osp.join(self._tmp.name, f'{len(self.files)}_{form}.onnx')
                    with torch.no_grad(), quiet_logs():
                        if raw:
                            export_network(net.eval(), path, hw, ['out'], ca_form=form)
                        else:
                            export_model(cfg, net.eval(), path, hw, ca_form=form)
                    quantized = not has_ca or form in self.FORMS['int8']
                    if quantized:
                        q = path[:-5] + '_int8.onnx'
                        quantize_int8(path, q, ArrayCalibration('input', calibration))
                    # a network without CA has one graph, whatever the form
                    for f in (forms if not has_ca else [form]):
                        self.files[title, name, 'fp32', f] = path
                        if quantized:
                            self.files[title, name, 'int8', f] = q


def deployed_models(args) -> DeployedModels:
    if getattr(args, '_deployed', None) is None:
        args._deployed = DeployedModels(args)
    return args._deployed


def _ort_runner(path: str, threads: int):
    from coordatt_mm.deploy import ort_session
    sess = ort_session(path, threads)
    return lambda x: sess.run(None, {'input': x})


def _openvino_runner(path: str, threads: int):
    import openvino as ov
    compiled = ov.Core().compile_model(path, 'CPU', {'INFERENCE_NUM_THREADS': threads,
                                                     'NUM_STREAMS': 1,
                                                     'PERFORMANCE_HINT': 'LATENCY'})
    request = compiled.create_infer_request()
    return lambda x: request.infer({0: x})


# per runtime: its name, how a file runs, and CA's form in its FP32 and INT8 rows (the
# fastest measured there: docs/performance.md, deployed speed)
RUNTIMES = {'onnxruntime': ('ONNX Runtime', _ort_runner, 'pool', 'broadcast'),
            'openvino': ('OpenVINO', _openvino_runner, 'product', 'pool')}


def deployed_section(rep: Report, args, runtime: str) -> None:
    name, runner, fp32_form, int8_form = RUNTIMES[runtime]
    if runtime == 'openvino':
        try:
            import openvino as ov
        except ImportError:
            rep.lines += ['', f'**{name}**: not installed (`pip install openvino`), not measured.']
            return
        where = (f'OpenVINO {ov.__version__} CPU plugin, {args.threads} inference threads, '
                 'latency hint, one stream')
    else:
        import onnxruntime as ort
        where = (f'ONNX Runtime {ort.__version__}, CPU execution provider, {args.threads} '
                 'intra-op threads without spinning')
    deployed = deployed_models(args)
    rep.start(f'{name}: FP32 and INT8, plain vs CA, batch 1, {args.size}² ({where}; CA in its '
              f'{fp32_form} form in FP32, {int8_form} form in INT8)', TIMES)
    for title, plain, ca in DEPLOYED:
        x = deployed.inputs[title]
        rows = {plain: (plain, 'fp32', fp32_form), ca: (ca, 'fp32', fp32_form),
                plain + INT8: (plain, 'int8', int8_form), ca + INT8: (ca, 'int8', int8_form)}
        fns = {row: (lambda f=runner(deployed.files[(title, *key)], args.threads): f(x))
               for row, key in rows.items()}
        rep.table(runtime, f'{name}, {title}, {args.size}²', plain,
                  time_interleaved(fns, torch.device('cpu'), args.repeats, args.warmup))
    rep.verdicts(runtime)
    if runtime == 'onnxruntime':
        from coordatt_mm.deploy import ort_kernel_shares
        x = deployed.inputs['backbone']
        cols = [(m, p, f) for p, f in (('fp32', fp32_form), ('int8', int8_form))
                for m in ('MobileNetV2', 'MobileNetV2 + CA')]
        shares = [ort_kernel_shares(deployed.files[('backbone', *c)], x, threads=args.threads)
                  for c in cols]
        names = sorted(set().union(*shares), key=lambda k: -(shares[1].get(k, 0)
                                                              + shares[3].get(k, 0)))
        rep.start("ONNX Runtime's profile of the backbones (share of kernel time)",
                  '| operator | MobileNetV2 | MobileNetV2 + CA | MobileNetV2 INT8 | '
                  'MobileNetV2 + CA INT8 |')
        rep.lines += [f'| {k} | ' + ' | '.join(f'{sh.get(k, 0):.1%}' for sh in shares) + ' |'
                      for k in names if max(sh.get(k, 0) for sh in shares) >= 0.005]


def peak_memory(step: Callable, device) -> int:
    """Peak bytes allocated during one call of ``step``, beyond what was allocated before."""
    if device.type == 'cuda':
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats(device)
        before = torch.cuda.memory_allocated(device)
        step()
        torch.cuda.synchronize()
        return torch.cuda.max_memory_allocated(device) - before
    from torch.profiler import ProfilerActivity, profile
    with profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
        step()
    events = sorted((e for e in prof.profiler.kineto_results.events() if e.name() == '[memory]'),
                    key=lambda e: e.start_ns())
    current = peak = 0
    for e in events:
        current += e.nbytes()
        peak = max(peak, current)
    return peak


def training_section(rep: Report, args, device) -> None:
    plain, ca = backbones()
    nets = {'MobileNetV2': plain, OURS: ca, OURS_ATEN: aten_only(ca)}
    fmt = torch.channels_last if args.channels_last else torch.contiguous_format
    x = torch.randn(args.train_batch, 3, args.size, args.size, device=device)
    x = x.contiguous(memory_format=fmt)
    # float16 AMP steps through a gradient scaler, as mmengine's AmpOptimWrapper does
    scaler = torch.amp.GradScaler(device.type, enabled=args.amp and amp_dtype(device)
                                  == torch.float16)
    steps = {}
    for name, net in nets.items():
        net = net.to(device).to(memory_format=fmt).train()
        opt = torch.optim.SGD(net.parameters(), lr=0.01, momentum=0.9, weight_decay=4e-5)

        def step(net=net, opt=opt):
            opt.zero_grad(set_to_none=True)
            with autocast(args, device):
                loss = net(x)[0].float().mean()
            scaler.scale(loss).backward()
            scaler.step(opt)
            scaler.update()
        steps[name] = step
    repeats = max(3, args.repeats // 4)
    times = time_interleaved(steps, device, repeats, 2)
    peaks = {name: peak_memory(step, device) for name, step in steps.items()}
    where = 'torch profiler allocations' if device.type == 'cpu' else 'max_memory_allocated'
    title = f'training step, batch {args.train_batch}, {args.size}²'
    rep.start(f'Training: forward + backward + SGD step of the backbone, peak memory of the step '
              f'({where})' + (', channels-last' if args.channels_last else '')
              + (f', autocast {amp_dtype(device)}' if args.amp else ''),
              '| comparison | model | median step ms | peak memory MiB | step ratio | '
              'memory ratio |')
    med = {k: statistics.median(v) for k, v in times.items()}
    for name in steps:
        r_t = statistics.median(a / b for a, b in zip(times[name], times['MobileNetV2']))
        r_m = peaks[name] / peaks['MobileNetV2']
        rep.ratios['training', title, name] = r_t
        rep.ratios['training', f'training peak memory, batch {args.train_batch}', name] = r_m
        rep.lines.append(f'| {title} | {name} | {med[name] * 1e3:.0f} | {peaks[name] / 2**20:.0f} '
                         f'| {r_t:.3f}× | {r_m:.3f}× |')
    rep.verdicts('training')


def layer_section(rep: Report, args, device) -> None:
    shapes = ca_shapes(args.size)
    torch.manual_seed(0)
    ours = [_with_bn_statistics(CoordAtt(c)) for c, _, _ in shapes]
    models = {'CoordAtt (ours)': ManyLayers(ours),
              'CoordAtt (ours, PyTorch ops only)': aten_only(ManyLayers(ours)),
              'released forward': ManyLayers([ReleasedFormCoordAtt(m) for m in ours])}
    try:  # optional dependency; the released widths (mip = max(8, C // 32), biased convs)
        import timm
        from timm.layers.coord_attn import CoordAttn
        models[f'timm {timm.__version__} CoordAttn'] = ManyLayers(
            [CoordAttn(c, rd_channels=max(8, c // 32), bias=True) for c, _, _ in shapes])
    except ImportError:
        pass
    xs = [torch.randn(1, c, h, w, device=device) for c, h, w in shapes]
    title = f'CA layer, 16 MobileNetV2 shapes at {args.size}²'
    rep.start('The CA layer alone, eval, batch 1', TIMES)
    with torch.inference_mode():
        models = {k: prepare(v, device, False, args.compile) for k, v in models.items()}
        fns, failed = runnable({k: (lambda m=m: m(xs)) for k, m in models.items()})
        rep.table('layer', title, 'released forward',
                  time_interleaved(fns, device, args.repeats, args.warmup))
    rep.lines += [f'- {title}: {n}' for n in failed]
    if not any(k.startswith('timm') for k in models):
        rep.lines += ['', 'timm is not installed (`pip install timm`): no timm row.']
    rep.verdicts('layer')


def compile_section(rep: Report, args, device) -> None:
    """Whether ``torch.compile`` pays for inference on a folder of images: for our SSDLite-CA
    and DeepLabV3-CA at batch 1, the first compiled call (compilation included) and the
    steady-state time, eager vs compiled, and the number of images from which compiling
    wins."""
    x = torch.randn(1, 3, args.size, args.size, device=device)
    rep.start(f'torch.compile for folder inference, batch 1, {args.size}² (one input shape)',
              '| model | eager ms | compiled ms | first compiled call s | images to break even '
              '| 100 images eager s | 100 images compiled s |')
    verdicts = []
    for title, nets, _ in dense_pairs():
        name = [k for k in nets if 'CA' in k][0]
        eager = prepare(nets[name], device, False, False)
        compiled = torch.compile(copy.deepcopy(eager), dynamic=False)
        with torch.inference_mode():
            sync(device)
            t = time.perf_counter()
            try:
                compiled(x)
            except Exception as e:  # a lowering error: say so, keep the other rows
                rep.lines.append(f'| {name} | – | – | not compiled: {_first_line(e)} | | | |')
                continue
            sync(device)
            first = time.perf_counter() - t
            times = time_interleaved({'eager': lambda: eager(x), 'compiled': lambda: compiled(x)},
                                     device, args.repeats, args.warmup)
        te, tc = (statistics.median(times[k]) for k in ('eager', 'compiled'))
        gain = te - tc
        even = (first - tc) / gain if gain > 0 else float('inf')
        n = 100
        rep.lines.append(f'| {name} | {te * 1e3:.1f} | {tc * 1e3:.1f} | {first:.1f} | '
                         f'{"never" if gain <= 0 else f"{even:,.0f}"} | {n * te:.1f} | '
                         f'{first + (n - 1) * tc:.1f} |')
        pays = first + (n - 1) * tc < n * te
        verdicts.append(f'- {name}: compiling {"pays" if pays else "does not pay"} for a folder '
                        f'of {n} images of one size')
    rep.lines += [''] + verdicts


SECTIONS = {'layer': layer_section, 'eager': eager_section,
            'onnxruntime': lambda rep, args, device: deployed_section(rep, args, 'onnxruntime'),
            'openvino': lambda rep, args, device: deployed_section(rep, args, 'openvino'),
            'training': training_section, 'compile': compile_section}


def run(args) -> int:
    """``tools/analysis/benchmark.py`` with its parsed arguments (coordatt_cli.benchmark)."""
    args.batch = [int(b) for b in str(args.batch).split(',')]
    args.device = args.device or ('cuda' if torch.cuda.is_available() else 'cpu')
    sections = args.sections.split(',')
    torch.set_num_threads(args.threads)
    # a random-weight network can still underflow somewhere: denormal arithmetic, many times
    # slower on CPUs, would be measured instead of the models
    torch.set_flush_denormal(True)
    device = torch.device(args.device)
    dev_name = (torch.cuda.get_device_name(device) if device.type == 'cuda'
                else platform.processor() or platform.machine())
    rep = Report()
    rep.lines.append(
        f'device {args.device} ({dev_name}), torch {torch.__version__}, threads '
        f'{torch.get_num_threads()}, fused CA kernels {ops.fused_status()}, {args.size}², '
        f'{args.repeats} interleaved runs after {args.warmup} warm-up, denormals flushed, '
        f'initialised weights')
    for name in sections:  # the deployed runtimes run on the CPU, whatever --device says
        SECTIONS[name](rep, args, device)
    text = '\n'.join(rep.lines)
    print(text)
    if args.out:
        os.makedirs(osp.dirname(osp.abspath(args.out)), exist_ok=True)
        with open(args.out, 'w') as f:
            f.write(text + '\n')
    return 0

