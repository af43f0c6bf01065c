"""Section ``compile`` (not in the default run: compilation takes minutes): whether
``torch.compile`` pays for inference on a folder of images, for our SSDLite-CA and
DeepLabV3-CA at batch 1: the first compiled call (compilation included) and the steady-state
time, eager vs compiled, and the number of images from which compiling wins."""
import copy
import statistics
import time

import torch

from coordatt_mm.analysis.benchmark.core import (
    Report,
    first_line,
    prepare,
    section,
    sync,
    time_interleaved,
)
from coordatt_mm.analysis.benchmark.models import dense_pairs


@section('compile')
def compile_section(rep: Report, args, device) -> None:
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
                rep.lines.append(f'| {name} | – | – | not compiled: {first_line(e)} | | | |')
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
