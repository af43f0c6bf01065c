"""The ``benchmark`` check: ``tools/analysis/benchmark.py --device cuda`` (eager eval latency,
training step time and peak memory, CA vs plain), float32 and then channels-last with AMP. It
fails where the benchmark fails; its figures are the CA/plain ratios the tables hold."""
import os.path as osp
import re
import sys
from typing import Tuple

from coordatt_cli.gpu_check.compare import Failed
from coordatt_cli.gpu_check.process import run_logged, tail

SIZES = ('--batch', '1,32', '--train-batch', '32', '--repeats', '20')


def ratios(text: str) -> str:
    """The CA/plain figures of a benchmark's Markdown tables, in one line ('' if none)."""
    found = re.findall(r'\| backbone, stem to 1280 conv, (batch \d+), [^|]*?'
                       r'(NCHW|channels-last) \| MobileNetV2 \+ CA \(ours\) \|[^\n]*\| '
                       r'([0-9.]+)× \|', text)
    part = ', '.join(f'{b} {fmt} {r}×' for b, fmt, r in found)
    step = re.search(r'\| training step[^|]*\| MobileNetV2 \+ CA \(ours\) \| ([0-9.]+) \| '
                     r'([0-9.]+) \| ([0-9.]+)× \| ([0-9.]+)× \|', text)
    if step:
        part += (f', train step {step.group(1)} ms ({step.group(3)}×), peak '
                 f'{step.group(2)} MiB ({step.group(4)}×)')
    return part


def check_benchmark(out_dir: str, device: str = 'cuda', sizes: Tuple[str, ...] = SIZES) -> str:
    """The eager and training sections on ``device``: float32 (eager NCHW and channels-last),
    then channels-last AMP; the table's figure."""
    figures = []
    for extra, name in (([], f'benchmark-{device}.md'),
                        (['--channels-last', '--amp'], f'benchmark-{device}-cl-amp.md')):
        path = osp.join(out_dir, name)
        code, out = run_logged([sys.executable, 'tools/analysis/benchmark.py', '--device', device,
                                '--sections', 'eager,training', '--out', path, *sizes, *extra],
                               osp.join(out_dir, name.replace('.md', '.log')), timeout=900)
        if code != 0:
            raise Failed(f'benchmark {" ".join(extra)} failed: {tail(out)}')
        if not osp.isfile(path):
            raise Failed(f'benchmark {" ".join(extra)} wrote no tables ({path})')
        with open(path) as f:
            figure = ratios(f.read())
        figures.append(f'{"AMP" if extra else "fp32"}: CA/plain eval {figure or "(see tables)"}')
    return '; '.join(figures) + f' (tables in {out_dir})'
