"""CPUSyncBatchNorm (the SyncBN of CPU multi-process training): statistics in float32 whatever
the input's dtype, and torch's BatchNorm error, not inf or NaN, when all processes together
hold one value per channel. Two gloo processes, against a float64 BatchNorm of the whole
batch."""
import socket

import pytest
import torch
import torch.multiprocessing as mp
import torch.nn.functional as F

import sync_bn_worker


def free_port() -> int:
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        return s.getsockname()[1]


@pytest.fixture(scope='module')
def results(tmp_path_factory):
    """{case: [rank 0's result, rank 1's]}, every case in one pair of processes."""
    d = tmp_path_factory.mktemp('sync_bn')
    mp.spawn(sync_bn_worker.run, args=(2, free_port(), str(d)), nprocs=2)
    ranks = [torch.load(d / f'rank{r}.pt') for r in range(2)]
    return {case: [r[case] for r in ranks] for case in sync_bn_worker.CASES}


def test_bfloat16_input_gets_float32_statistics(results):
    parts = [sync_bn_worker.rank_input('bfloat16', r) for r in range(2)]
    whole = torch.cat(parts).double()
    mean = whole.mean((0, 2, 3))
    var = whole.var((0, 2, 3), unbiased=False)
    n = whole.numel() // 4
    for r, res in enumerate(results['bfloat16']):
        assert res['y'].dtype == torch.bfloat16
        ref = (parts[r].double() - mean.view(1, 4, 1, 1)) / (var.view(1, 4, 1, 1) + 1e-5).sqrt()
        # the output is rounded to bfloat16 (2^-8 relative): values up to ~3 -> 0.02
        torch.testing.assert_close(res['y'].double(), ref, atol=0.03, rtol=0)
        torch.testing.assert_close(res['running_mean'].double(), mean, atol=1e-4, rtol=0)
        torch.testing.assert_close(res['running_var'].double(), var * n / (n - 1), atol=1e-4,
                                   rtol=1e-4)


def test_one_value_per_channel_in_all_is_torchs_error(results):
    for res in results['one value']:
        assert 'error' in res, res
        assert res['error'].startswith('Expected more than 1 value per channel when training')
    # one value on each of two processes is two values: finite, as BatchNorm over both
    whole = torch.cat([sync_bn_worker.rank_input('two values', r) for r in range(2)])
    ref = F.batch_norm(whole, None, None, training=True, eps=1e-5)
    for r, res in enumerate(results['two values']):
        assert torch.isfinite(res['y']).all() and torch.isfinite(res['running_var']).all()
        torch.testing.assert_close(res['y'], ref[r:r + 1], atol=1e-5, rtol=1e-5)
