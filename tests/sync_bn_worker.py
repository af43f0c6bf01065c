"""A process of the CPUSyncBatchNorm tests (torch.multiprocessing.spawn): for each case, one
training forward of CPUSyncBatchNorm on this rank's part of a batch, over gloo; the results
or errors go to ``out_dir/rank<r>.pt``."""
import os

import torch
import torch.distributed as dist

from coordatt_mm.engine.runner import CPUSyncBatchNorm


def rank_input(case: str, rank: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(rank)
    if case == 'bfloat16':
        # values near 64 with a spread of about 0.5: bfloat16 resolves 0.25-0.5 there, so a
        # mean or a variance taken in bfloat16 would be off by a good part of the spread
        x = 64 + 0.5 * torch.randn(3, 4, 6, 5, generator=g)
        return x.to(torch.bfloat16)
    if case == 'one value':  # rank 0 holds one value per channel, rank 1 none
        return torch.randn(1 - rank, 4, 1, 1, generator=g)
    if case == 'two values':  # one value per channel on each rank
        return torch.randn(1, 4, 1, 1, generator=g)
    raise ValueError(case)


CASES = ('bfloat16', 'one value', 'two values')


def run(rank: int, world: int, port: int, out_dir: str) -> None:
    os.environ.update(MASTER_ADDR='127.0.0.1', MASTER_PORT=str(port))
    dist.init_process_group('gloo', rank=rank, world_size=world)
    results = {}
    try:
        for case in CASES:
            bn = CPUSyncBatchNorm(4, momentum=1.0).train()
            try:
                y = bn(rank_input(case, rank))
                results[case] = dict(y=y, running_mean=bn.running_mean,
                                     running_var=bn.running_var)
            except ValueError as e:
                results[case] = dict(error=str(e))
        torch.save(results, os.path.join(out_dir, f'rank{rank}.pt'))
    finally:
        dist.destroy_process_group()
