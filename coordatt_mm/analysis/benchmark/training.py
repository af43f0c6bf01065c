"""Section ``training``: forward + backward + SGD step of the backbone at ``--train-batch``,
step time and the step's peak memory (CPU: the allocations the torch profiler records; CUDA:
``max_memory_allocated``), in channels-last with ``--channels-last``, under autocast with
``--amp`` (float16 through a gradient scaler on CUDA)."""
import statistics
from typing import Callable, Dict, List, Tuple

import torch
import torch.nn as nn

from coordatt_mm.analysis.benchmark.core import (
    TARGETS,
    Report,
    amp_dtype,
    autocast,
    round_ratio,
    section,
    time_interleaved,
)
from coordatt_mm.analysis.benchmark.models import OURS, OURS_ATEN, aten_only, backbones

TARGETS.extend([
    ('training', 'training step', OURS, 1.15, 'training step with CA <= 1.15x the plain one'),
    ('training', 'training peak memory', OURS, 1.10,
     'training peak memory with CA <= 1.10x the plain one')])


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


def output_loss(out) -> torch.Tensor:
    """A stand-in loss that reaches every output: the sum of their means (a tuple of outputs,
    as the backbones and the dense networks' raw heads give, or one tensor)."""
    outs = out if isinstance(out, (tuple, list)) else (out,)
    return sum(o.float().mean() for o in outs)


def measure_training(nets: Dict[str, nn.Module], x: torch.Tensor, args,
                     device) -> Tuple[Dict[str, List[float]], Dict[str, int]]:
    """({name: step seconds per interleaved round}, {name: peak bytes of one step}) of a
    forward + backward (:func:`output_loss`) + SGD step of each network in train mode on
    ``x`` (channels-last with ``--channels-last``, autocast with ``--amp``, float16 through a
    gradient scaler as mmengine's AmpOptimWrapper); ``max(3, repeats // 4)`` rounds after 2."""
    fmt = torch.channels_last if args.channels_last else torch.contiguous_format
    x = x.to(device).contiguous(memory_format=fmt)
    scaler = torch.amp.GradScaler(device.type, enabled=args.amp and amp_dtype(device)
                                  == torch.float16)
    steps = {}
    for name, net in nets.items():
        net = net.to(device).to(memory_format=fmt).train()
        opt = torch.optim.SGD(net.parameters(), lr=0.01, momentum=0.9, weight_decay=4e-5)

        def step(net=net, opt=opt):
            opt.zero_grad(set_to_none=True)
            with autocast(args, device):
                loss = output_loss(net(x))
            scaler.scale(loss).backward()
            scaler.step(opt)
            scaler.update()
        steps[name] = step
    times = time_interleaved(steps, device, max(3, args.repeats // 4), 2)
    return times, {name: peak_memory(step, device) for name, step in steps.items()}


def training_heading(args, device, what: str) -> str:
    """The heading of a training table: what steps, where the peak memory comes from."""
    where = 'torch profiler allocations' if device.type == 'cpu' else 'max_memory_allocated'
    return (f'Training: forward + backward + SGD step of {what}, peak memory of the step '
            f'({where})' + (', channels-last' if args.channels_last else '')
            + (f', autocast {amp_dtype(device)}' if args.amp else ''))


@section('training')
def training_section(rep: Report, args, device) -> None:
    plain, ca = backbones()
    nets = {'MobileNetV2': plain, OURS: ca, OURS_ATEN: aten_only(ca)}
    x = torch.randn(args.train_batch, 3, args.size, args.size, device=device)
    times, peaks = measure_training(nets, x, args, device)
    title = f'training step, batch {args.train_batch}, {args.size}²'
    rep.start(training_heading(args, device, 'the backbone'),
              '| comparison | model | median step ms | peak memory MiB | step ratio | '
              'memory ratio |')
    med = {k: statistics.median(v) for k, v in times.items()}
    for name in nets:
        r_t = round_ratio(times[name], times['MobileNetV2'])
        r_m = peaks[name] / peaks['MobileNetV2']
        rep.ratios['training', title, name] = r_t
        rep.ratios['training', f'training peak memory, batch {args.train_batch}', name] = r_m
        rep.lines.append(f'| {title} | {name} | {med[name] * 1e3:.0f} | {peaks[name] / 2**20:.0f} '
                         f'| {r_t:.3f}× | {r_m:.3f}× |')
    rep.verdicts('training')
