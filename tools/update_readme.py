#!/usr/bin/env python
"""Regenerate the README's tables from files: the results table (the paper's numbers from
coordatt_mm/data/paper_results.json, parameter counts of the models our configs build, and
measured metrics where a results file exists: results/<config name>.json, as written by
tools/test.py's test_metrics.json), the demo table (docs/demo_summary.json, written by
tools/demo.py --publish docs), the complexity table (tools/analysis/complexity.py) and the
latency table (docs/benchmark.md, written by tools/analysis/benchmark.py --out).

    python tools/update_readme.py           # rewrite the table in README.md
    python tools/update_readme.py --check   # exit 1 if README.md is out of date
"""
import argparse
import json
import os.path as osp
import sys

from coordatt_mm.analysis import build_model_offline, count_params, load_paper_results

REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))
BEGIN, END = '<!-- results-table:begin -->', '<!-- results-table:end -->'
DEMO_BEGIN, DEMO_END = '<!-- demo-table:begin -->', '<!-- demo-table:end -->'
DEMO_SUMMARY = osp.join(REPO, 'docs', 'demo_summary.json')
CPLX_BEGIN, CPLX_END = '<!-- complexity-table:begin -->', '<!-- complexity-table:end -->'
BENCH_BEGIN, BENCH_END = '<!-- benchmark-table:begin -->', '<!-- benchmark-table:end -->'
BENCHMARK = osp.join(REPO, 'docs', 'benchmark.md')
OPTION_RUNS = [('--channels-last', osp.join(REPO, 'docs', 'benchmark_channels-last.md')),
               ('--compile', osp.join(REPO, 'docs', 'benchmark_compile.md'))]
METRIC_KEYS = {'det': ('coco/bbox_mAP', 'pascal_voc/mAP'), 'seg': ('mIoU',)}


def measured(row) -> str:
    name = osp.splitext(osp.basename(row['config']))[0]
    path = osp.join(REPO, 'results', name + '.json')
    if not osp.exists(path):
        return 'not trained here'
    with open(path) as f:
        metrics = json.load(f)['metrics']
    for k in METRIC_KEYS[row['task']]:
        if k in metrics:
            v = metrics[k]
            return f'{100 * v:.1f}' if v <= 1 else f'{v:.2f}'
    return 'n/a'


def table() -> str:
    lines = ['| task | dataset | model | metric | paper | ours | params paper | params ours | config | command |',
             '|---|---|---|---|---|---|---|---|---|---|']
    for row in load_paper_results()['rows']:
        _, model = build_model_offline(osp.join(REPO, row['config']))
        n = count_params(model)
        paper = row['paper'] if row['paper'] is not None else row.get('reference', '–')
        pp = f"{row['paper_params_m']}M" if row['paper_params_m'] else '–'
        scope = 'mmdet' if row['task'] == 'det' else 'mmseg'
        name = osp.basename(row['config'])
        lines.append(f"| {row['task']} | {row['dataset']} | {row['model']} | {row['metric']} | "
                     f"{paper} | {measured(row)} | {pp} | {n / 1e6:.2f}M ({n:,}) | "
                     f"[{name}]({row['config']}) | `mim train {scope} {row['config']}` |")
    return '\n'.join(lines)


def demo_table() -> str:
    """The last published demo run (tools/demo.py --publish docs/)."""
    if not osp.exists(DEMO_SUMMARY):
        return '_no published demo run yet: `python tools/demo.py --publish docs`_'
    with open(DEMO_SUMMARY) as f:
        s = json.load(f)
    lines = ['| task | config | metric | untrained | trained | threshold | train time (s) |',
             '|---|---|---|---|---|---|---|']
    for task in ('det', 'seg'):
        r = s[task]
        lines.append(f"| {task} | `{r['config']}` | {r['metric']} | {r['untrained']:.3f} | "
                     f"{r['trained']:.3f} | ≥ {s['thresholds'][r['metric']]} | {r['train_seconds']:.0f} |")
    lines.append(f"\nSchedule: {s['schedule']['det_epochs']} epochs (detection), "
                 f"{s['schedule']['seg_iters']} iterations (segmentation); whole demo "
                 f"{s['seconds']:.0f} s.")
    return '\n'.join(lines)


def _replace(text: str, begin: str, end: str, body: str) -> str:
    if begin not in text or end not in text:
        raise SystemExit(f'README.md: markers {begin} / {end} not found')
    head, rest = text.split(begin, 1)
    _, tail = rest.split(end, 1)
    return f'{head}{begin}\n{body}\n{end}{tail}'


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description='regenerate the README results table')
    ap.add_argument('--check', action='store_true', help='only check that README is current')
    args = ap.parse_args(argv)
    readme = osp.join(REPO, 'README.md')
    text = open(readme, encoding='utf-8').read()
    sys.path.insert(0, osp.join(REPO, 'tools', 'analysis'))
    from complexity import markdown as complexity_table
    bench = open(BENCHMARK).read().strip() if osp.exists(BENCHMARK) else \
        '_not measured yet: `python tools/analysis/benchmark.py --out docs/benchmark.md`_'
    for flag, path in OPTION_RUNS:  # the same benchmark with an option on, when measured
        if osp.exists(path):
            bench += (f'\n\nWith `{flag}` (`docs/{osp.basename(path)}`):'
                      f'\n\n' + open(path).read().strip())
    new = _replace(text, BEGIN, END, table())
    new = _replace(new, DEMO_BEGIN, DEMO_END, demo_table())
    new = _replace(new, CPLX_BEGIN, CPLX_END, complexity_table())
    new = _replace(new, BENCH_BEGIN, BENCH_END, bench)
    if args.check:
        if new != text:
            print('README.md results table is out of date: run python tools/update_readme.py',
                  file=sys.stderr)
            return 1
        print('README.md results table is up to date')
        return 0
    with open(readme, 'w', encoding='utf-8') as f:
        f.write(new)
    print('README.md results table updated')
    return 0


if __name__ == '__main__':
    sys.exit(main())
