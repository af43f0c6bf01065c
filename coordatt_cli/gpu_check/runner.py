"""The GPU check's run: each selected check as a row of a pass/fail table, printed and written
to ``<out>/gpu_check.md`` and ``<out>/gpu_check.json``. Every check compares what the GPU
computed with a reference from elsewhere, so without a GPU every row says ``skipped``."""
import json
import os
import os.path as osp
import platform
import time
from typing import Callable, Dict, List, Sequence

import torch

from coordatt_cli.gpu_check import CHECKS
from coordatt_cli.gpu_check.compare import Failed

TRAINING = ('train-det', 'train-seg')


def checks(device: torch.device, out_dir: str, iters: int) -> Dict[str, Callable[[], str]]:
    """Each check's function, by the name the command line uses (``CHECKS``' order)."""
    from coordatt_cli.gpu_check import benchmark, coordatt, mmcv_ops, syncbn, training
    table = {
        'mmcv-ops': lambda: mmcv_ops.check_mmcv_ops(device),
        'coordatt': lambda: coordatt.check_coordatt(device),
        'syncbn': syncbn.check_syncbn,
        'train-det': lambda: training.train_and_test('det', out_dir, iters),
        'train-seg': lambda: training.train_and_test('seg', out_dir, iters),
        'benchmark': lambda: benchmark.check_benchmark(out_dir),
    }
    return table


def run_checks(out_dir: str, iters: int, selected: Sequence[str]) -> List[Dict[str, str]]:
    """One row per check: pass, FAIL (its figure says why) or skipped (not selected, no GPU)."""
    gpu = torch.cuda.is_available()
    rows = []
    for name, fn in checks(torch.device('cuda'), out_dir, iters).items():
        if name not in selected:
            rows.append(dict(check=name, result='skipped', figures='not selected'))
            continue
        if not gpu:
            rows.append(dict(check=name, result='skipped', figures='needs a GPU'))
            continue
        print(f'[gpu_check] {name} ...', flush=True)
        start = time.time()
        try:
            rows.append(dict(check=name, result='pass', figures=fn()))
        except Failed as e:
            rows.append(dict(check=name, result='FAIL', figures=str(e)))
        except Exception as e:  # a crash is a failed check; the others still run
            rows.append(dict(check=name, result='FAIL',
                             figures=f'{type(e).__name__}: {str(e).strip()[:300]}'))
        rows[-1]['seconds'] = f'{time.time() - start:.0f}'
    return rows


def report(rows: List[Dict[str, str]], header: str) -> str:
    """The rows as a Markdown table under ``header``."""
    lines = [header, '', '| check | result | figures | s |', '|---|---|---|---|']
    lines += [f'| {r["check"]} | {r["result"]} | {r["figures"]} | {r.get("seconds", "")} |'
              for r in rows]
    return '\n'.join(lines)


def mmcv_state() -> str:
    """mmcv's version and whether its compiled ops are there, and with which CUDA."""
    try:
        import mmcv
    except ImportError as e:
        return f'no mmcv ({e})'
    try:
        import mmcv._ext as ext
        ops = f'ops compiled with CUDA {ext.get_compiling_cuda_version()}'
    except ImportError:
        ops = 'no compiled ops'
    return f'mmcv {mmcv.__version__} ({ops})'


def machine() -> str:
    """One line: the GPU (or its absence), torch, mmcv, Python."""
    if torch.cuda.is_available():
        where = (f'{torch.cuda.get_device_name()} (CUDA {torch.version.cuda}, '
                 f'{torch.cuda.device_count()} visible)')
    else:
        where = f'no GPU: torch.cuda.is_available() is False ({platform.machine()} CPU)'
    return (f'{where}; torch {torch.__version__}, {mmcv_state()}, '
            f'Python {platform.python_version()}')


def gpu_check(out: str = 'work_dirs/gpu_check', iters: int = 80,
              selected: Sequence[str] = CHECKS) -> int:
    """``tools/gpu_check.py``: run the ``selected`` checks, print and write the table; 1 if
    one failed."""
    out_dir = osp.abspath(out)
    os.makedirs(out_dir, exist_ok=True)
    start = time.time()
    header = f'GPU check, {time.strftime("%Y-%m-%d %H:%M")}: {machine()}'
    print(f'[gpu_check] {header}', flush=True)
    if not torch.cuda.is_available():
        print('[gpu_check] no GPU visible: every check compares a GPU with the CPU, so each is '
              'skipped', flush=True)
    elif set(TRAINING) & set(selected):
        from coordatt_mm.apis.demo import ensure_tiny_data
        ensure_tiny_data()  # the demo configs' data
    rows = run_checks(out_dir, iters, selected)
    text = report(rows, header) + f'\n\nTotal {time.time() - start:.0f} s.'
    print(text)
    with open(osp.join(out_dir, 'gpu_check.md'), 'w') as f:
        f.write(text + '\n')
    with open(osp.join(out_dir, 'gpu_check.json'), 'w') as f:
        json.dump(dict(header=header, checks=rows), f, indent=2)
    print(f'[gpu_check] written to {osp.join(out_dir, "gpu_check.md")}')
    return 1 if any(r['result'] == 'FAIL' for r in rows) else 0
