"""The ``benchmark`` check: ``tools/analysis/benchmark.py --device cuda`` (eager eval latency,
training step time and peak memory, CA vs plain), float32 and then channels-last with AMP. It
fails where the benchmark fails or its tables do not give the figures the row reports; its
figures are the CA/plain ratios the tables hold."""
import os.path as osp
import re
import sys
from typing import Sequence, Tuple

from coordatt_cli.gpu_check.compare import Failed
from coordatt_cli.gpu_check.process import run_logged, tail

SIZES = ('--batch', '1,32', '--train-batch', '32', '--repeats', '20')


def ratios(text: str, layouts: Sequence[str]) -> str:
    """The CA/plain figures of a benchmark's Markdown tables, in one line: the eval ratios of
    the backbone rows and the training step's time and peak memory. :class:`Failed` where a
    layout of ``layouts`` ('NCHW', 'channels-last') has no eval ratio or the training step has
    no row, so that tables these patterns no longer read fail instead of passing unread."""
    found = re.findall(r'\| backbone, stem to 1280 conv, (batch \d+), [^|]*?'
                       r'(NCHW|channels-last) \| MobileNetV2 \+ CA \(ours\) \|[^\n]*\| '
                       r'([0-9.]+)× \|', text)
    unread = [layout for layout in layouts if layout not in {f for _, f, _ in found}]
    if unread:
        raise Failed(f'no CA/plain eval ratio read for {", ".join(unread)} from the tables')
    step = re.search(r'\| training step[^|]*\| MobileNetV2 \+ CA \(ours\) \| ([0-9.]+) \| '
                     r'([0-9.]+) \| ([0-9.]+)× \| ([0-9.]+)× \|', text)
    if not step:
        raise Failed('no training step row of MobileNetV2 + CA read from the tables')
    return (', '.join(f'{b} {fmt} {r}×' for b, fmt, r in found)
            + f', train step {step.group(1)} ms ({step.group(3)}×), peak {step.group(2)} MiB '
              f'({step.group(4)}×)')


def check_benchmark(out_dir: str, device: str = 'cuda', sizes: Tuple[str, ...] = SIZES) -> str:
    """The eager and training sections on ``device``: float32 (eager NCHW and channels-last),
    then channels-last AMP; the table's figure. :class:`Failed` where the benchmark fails or
    its tables do not give the figures (:func:`ratios`)."""
    figures = []
    for extra, name, layouts in (
            ([], f'benchmark-{device}.md', ('NCHW', 'channels-last')),
            (['--channels-last', '--amp'], f'benchmark-{device}-cl-amp.md', ('channels-last',))):
        path = osp.join(out_dir, name)
        code, out = run_logged([sys.executable, 'tools/analysis/benchmark.py', '--device', device,
                                '--sections', 'eager,training', '--out', path, *sizes, *extra],
                               osp.join(out_dir, name.replace('.md', '.log')), timeout=900)
        if code != 0:
            raise Failed(f'benchmark {" ".join(extra)} failed: {tail(out)}')
        if not osp.isfile(path):
            raise Failed(f'benchmark {" ".join(extra)} wrote no tables ({path})')
        with open(path) as f:
            try:
                figure = ratios(f.read(), layouts)
            except Failed as e:
                raise Failed(f'{name}: {e}') from None
        figures.append(f'{"AMP" if extra else "fp32"}: CA/plain eval {figure}')
    return '; '.join(figures) + f' (tables in {out_dir})'
