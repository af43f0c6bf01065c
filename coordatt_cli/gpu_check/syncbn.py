"""The ``syncbn`` check: SyncBatchNorm in two processes must use the statistics of both
processes' data.

Each rank holds its own part of a batch (rank 0 three images around 0, rank 1 five around 2.5,
so that the shared mean differs from either rank's own) and takes one training step through
torch's ``SyncBatchNorm``: with two GPUs over NCCL, one GPU each; with one GPU over gloo, both
ranks on it (gloo carries CUDA tensors; NCCL refuses two ranks on one GPU). The running
statistics, outputs and gradients go back to the parent, which compares them with one float64
BatchNorm over the whole batch on the CPU (:func:`compare.syncbn_statistics`).
"""
import datetime
import os.path as osp
import socket
import tempfile
import time
from typing import List, Tuple

import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from coordatt_cli.gpu_check.compare import Failed, syncbn_statistics

CHANNELS, MOMENTUM, EPS = 8, 0.5, 1e-5


def rank_data(rank: int) -> Tuple[torch.Tensor, torch.Tensor]:
    """Rank ``rank``'s input (N, 8, 5, 7) and the weights of its loss ``sum(y * weight)``
    (a plain sum of a BatchNorm's output has no gradient); the same on every call."""
    g = torch.Generator().manual_seed(100 + rank)
    n, offset, spread = ((3, 0.0, 1.0), (5, 2.5, 1.5))[rank]
    x = offset + spread * torch.randn(n, CHANNELS, 5, 7, generator=g)
    x = x + torch.linspace(-1, 1, CHANNELS).view(1, -1, 1, 1)  # channels apart too
    return x, torch.randn(x.shape, generator=g)


def worker(rank: int, backend: str, devices: List[str], port: int, out_dir: str) -> None:
    """One rank: one training step of a SyncBatchNorm on ``devices[rank]`` over ``backend``; its
    statistics, output and gradients to ``out_dir/rank<r>.pt``. On 'cpu' devices (tests) the
    layer is coordatt_mm's CPUSyncBatchNorm, torch's refusing CPU tensors."""
    dist.init_process_group(backend, init_method=f'tcp://127.0.0.1:{port}', rank=rank,
                            world_size=len(devices), timeout=datetime.timedelta(seconds=60))
    try:
        device = torch.device(devices[rank])
        if device.type == 'cuda':
            torch.cuda.set_device(device)
            bn = torch.nn.SyncBatchNorm(CHANNELS, eps=EPS, momentum=MOMENTUM)
        else:
            from coordatt_mm.engine.runner import CPUSyncBatchNorm
            bn = CPUSyncBatchNorm(CHANNELS, eps=EPS, momentum=MOMENTUM)
        bn = bn.to(device).train()
        x, loss_weight = rank_data(rank)
        x = x.to(device).requires_grad_()
        y = bn(x)
        (y * loss_weight.to(device)).sum().backward()
        torch.save(dict(running_mean=bn.running_mean.cpu(), running_var=bn.running_var.cpu(),
                        y=y.detach().cpu(), grad=x.grad.cpu(), weight_grad=bn.weight.grad.cpu(),
                        bias_grad=bn.bias.grad.cpu(), layer=type(bn).__name__),
                   osp.join(out_dir, f'rank{rank}.pt'))
    finally:
        dist.destroy_process_group()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        return s.getsockname()[1]


def route() -> Tuple[str, List[str]]:
    """(backend, device of each rank) for this machine's GPUs."""
    count = torch.cuda.device_count()
    if count >= 2:
        return 'nccl', ['cuda:0', 'cuda:1']
    if count == 1:
        return 'gloo', ['cuda:0', 'cuda:0']
    raise Failed('needs a GPU (two for NCCL; one runs both processes over gloo)')


def run_ranks(backend: str, devices: List[str], timeout: float = 180.0) -> List[dict]:
    """Spawn one process per device, wait at most ``timeout`` seconds; their results."""
    with tempfile.TemporaryDirectory() as out_dir:
        ctx = mp.spawn(worker, args=(backend, devices, free_port(), out_dir),
                       nprocs=len(devices), join=False)
        deadline = time.time() + timeout
        while not ctx.join(timeout=1):  # raises where a rank raised
            if time.time() > deadline:
                for p in ctx.processes:
                    p.terminate()
                raise Failed(f'the {len(devices)} processes did not finish in {timeout:.0f} s')
        return [torch.load(osp.join(out_dir, f'rank{r}.pt'), weights_only=False)
                for r in range(len(devices))]


def check_syncbn(backend: str = '', devices: Tuple[str, ...] = ()) -> str:
    """The table's figure for two processes on this machine's GPUs (or on ``devices`` over
    ``backend``, e.g. the CPU over gloo in tests)."""
    if not devices:
        backend, devices = route()
    results = run_ranks(backend, list(devices))
    inputs, weights = zip(*(rank_data(r) for r in range(len(devices))))
    figure = syncbn_statistics(inputs, weights, results, MOMENTUM, EPS)
    where = ('2 GPUs' if len(set(devices)) > 1 else 'both on one GPU') \
        if devices[0].startswith('cuda') else 'CPU'
    return f'2 processes, {results[0]["layer"]} over {backend} ({where}): {figure}'
