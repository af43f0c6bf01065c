"""What every benchmark section shares: interleaved timing, ratios as medians of per-round
ratios, the Markdown report with its targets and verdicts, the machine's header, the section
registry and the run of the command line (``tools/analysis/benchmark.py``)."""
import contextlib
import importlib.metadata
import os
import os.path as osp
import platform
import statistics
import time
from typing import Callable, Dict, List, Optional, Tuple

import torch

from coordatt_mm import ops
from coordatt_mm.ops.cpu import cpu_info, features_text

# ---- timing ----


def sync(device: torch.device) -> None:
    """Wait for the device's queued work (CUDA), so that a timer sees all of it."""
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


def round_ratio(a: List[float], b: List[float]) -> float:
    """The median over interleaved rounds of a's time over b's in the same round."""
    return statistics.median(x / y for x, y in zip(a, b))


def amp_dtype(device) -> torch.dtype:
    """The autocast dtype of ``--amp``: float16 on CUDA (as mmengine's AmpOptimWrapper),
    bfloat16 on the CPU (float16 convolutions are slow there)."""
    return torch.float16 if device.type == 'cuda' else torch.bfloat16


def autocast(args, device):
    """Autocast in ``--amp``'s dtype, or nothing without ``--amp``."""
    if not args.amp:
        return contextlib.nullcontext()
    return torch.autocast(device.type, dtype=amp_dtype(device))


def prepare(m, device, channels_last: bool, compile_: bool):
    """``m`` in eval mode on ``device``, in channels-last and compiled when asked."""
    m = m.to(device).eval()
    if channels_last:
        m = m.to(memory_format=torch.channels_last)
    if compile_:
        m = torch.compile(m, dynamic=False)  # one specialisation per shape, as deployed
    return m


def first_line(e: Exception) -> str:
    """The exception's type and the first line of its message, for a table note."""
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
            notes.append(f'{name}: not measured, {first_line(e)}')
    return kept, notes


# ---- report ----

# (section, comparison title prefix, model, bound on its ratio, target text[, versus]): the
# ratio is of the model's latency (or memory) to the comparison's baseline, or to ``versus``.
# ">= 0.95x the images/s" is a latency bound of 1/0.95. Each section module adds its own.
TARGETS: List[tuple] = []

TIMES = ('| comparison | model | median ms | IQR ms | images/s | ratio to baseline (median of '
         'rounds) |')


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
        """A bold heading and the header of the table that follows."""
        self.lines += ['', f'**{heading}**', '', columns,
                       '|' + '---|' * (columns.count('|') - 1)]

    def verdicts(self, section: str) -> None:
        """The section's targets (:data:`TARGETS`), each judged on its comparison's rows."""
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


# ---- machine ----

# the runtimes a figure depends on: module -> the distributions that install it
RUNTIME_DISTRIBUTIONS = {'torch': ('torch',),
                         'onnxruntime': ('onnxruntime', 'onnxruntime-gpu',
                                         'onnxruntime-openvino'),
                         'openvino': ('openvino',)}


def runtime_versions() -> Dict[str, Optional[str]]:
    """{module: installed version or None} for :data:`RUNTIME_DISTRIBUTIONS`."""
    versions = {}
    for module, distributions in RUNTIME_DISTRIBUTIONS.items():
        versions[module] = None
        for d in distributions:
            try:
                versions[module] = importlib.metadata.version(d)
                break
            except importlib.metadata.PackageNotFoundError:
                continue
    versions['torch'] = torch.__version__  # the build in use, with its local tag
    return versions


def machine_line(cpuinfo: str = '/proc/cpuinfo') -> str:
    """One line for the head of every table and figure: the CPU with its vector features (read
    from ``cpuinfo``) and the runtimes' versions (figures differ with both)."""
    name, features = cpu_info(cpuinfo)
    cpu = features_text(cpuinfo, features)
    runtimes = ', '.join(f'{k} {v}' if v else f'{k} not installed'
                         for k, v in runtime_versions().items())
    return f'CPU {name}, vector features: {cpu}; runtimes: {runtimes}'


# ---- sections and the run ----

# name -> function(report, args, device) that appends the section's tables and verdicts;
# each section module adds its own with :func:`section` (the command line lists the names
# in coordatt_cli/benchmark.py, which parses before anything heavy is imported)
SECTIONS: Dict[str, Callable] = {}


def section(name: str) -> Callable[[Callable], Callable]:
    """Decorator: register a section function under ``name`` in :data:`SECTIONS`."""
    def register(fn: Callable) -> Callable:
        if name in SECTIONS:
            raise ValueError(f'benchmark section {name!r} is registered twice')
        SECTIONS[name] = fn
        return fn
    return register


def settings_line(args, device: torch.device) -> str:
    """The run's first line: the device, torch, threads, the fused kernels, size, repeats."""
    dev_name = (torch.cuda.get_device_name(device) if device.type == 'cuda'
                else platform.processor() or platform.machine())
    return (f'device {device} ({dev_name}), torch {torch.__version__}, threads '
            f'{torch.get_num_threads()}, fused CA kernels {ops.fused_status()}, {args.size}², '
            f'{args.repeats} interleaved runs after {args.warmup} warm-up, denormals flushed, '
            f'initialised weights')


def run(args) -> int:
    """``tools/analysis/benchmark.py`` with its parsed arguments (coordatt_cli.benchmark)."""
    args.batch = [int(b) for b in str(args.batch).split(',')]
    args.device = args.device or ('cuda' if torch.cuda.is_available() else 'cpu')
    sections = args.sections.split(',')
    unknown = [s for s in sections if s not in SECTIONS]
    if unknown:
        raise ValueError(f'benchmark sections {unknown}: not registered (known: '
                         f'{", ".join(SECTIONS)})')
    torch.set_num_threads(args.threads)
    # a random-weight network can still underflow somewhere: denormal arithmetic, many times
    # slower on CPUs, would be measured instead of the models
    torch.set_flush_denormal(True)
    device = torch.device(args.device)
    rep = Report()
    rep.lines += [settings_line(args, device), '', machine_line()]
    for name in sections:  # the deployed runtimes run on the CPU, whatever --device says
        SECTIONS[name](rep, args, device)
    text = '\n'.join(rep.lines)
    print(text)
    if args.out:
        os.makedirs(osp.dirname(osp.abspath(args.out)), exist_ok=True)
        with open(args.out, 'w') as f:
            f.write(text + '\n')
    return 0
