"""The generated tables of README.md and docs/ (``tools/update_readme.py``), each from files:

- README results table: the paper's numbers (``coordatt_mm/data/paper_results.json``), the
  parameter counts of the models our configs build, and measured metrics where a results file
  exists (``results/<config name>.json``, as ``tools/test.py`` writes ``test_metrics.json``);
  the same for the other attention modules' configs in docs/models.md, beside their parameter
  counts at each attention position (``docs/attention_positions.md``,
  ``tools/analysis/complexity.py --positions --out``);
- README ImageNet table: the paper's ImageNet rows beside our ``configs/imagenet/``;
- README demo table: ``docs/demo_summary.json`` (``tools/demo.py --publish docs``);
- ``model-index.yml`` and ``configs/*/metafile.yml``: :mod:`coordatt_mm.analysis.model_index`;
- docs/performance.md: ``docs/complexity.md`` (``tools/analysis/complexity.py --out``) and
  ``docs/benchmark*.md`` (``tools/analysis/benchmark.py --out``);
- docs/attention_cost.md: the tables and paragraphs of ``docs/attention_cost.json``
  (``tools/analysis/benchmark.py --sections attention --attention-json``), rendered by
  :mod:`coordatt_mm.analysis.attention_cost`.
"""
import json
import os.path as osp
from typing import Dict

from coordatt_mm.analysis.complexity import REPO, load_paper_results
from coordatt_mm.analysis.model_index import config_facts, metafiles

METRIC_KEYS = {'det': ('coco/bbox_mAP', 'pascal_voc/mAP'), 'seg': ('mIoU',)}
DOCS = osp.join(REPO, 'docs')
BENCHMARKS = [('', 'benchmark.md')]


def _measured(row: dict) -> str:
    name = osp.splitext(osp.basename(row['config']))[0]
    path = osp.join(REPO, 'results', name + '.json')
    if not osp.exists(path):
        return '–'
    with open(path) as f:
        metrics = json.load(f)['metrics']
    for k in METRIC_KEYS[row['task']]:
        if k in metrics:
            v = metrics[k]
            return f'{100 * v:.1f}' if v <= 1 else f'{v:.2f}'
    return 'n/a'


def results_table(key: str = 'rows', links_from: str = '') -> str:
    """The dense rows of ``paper_results.json[key]``: ``'rows'`` the paper's (README),
    ``'attention_rows'`` the other attention modules' (docs/models.md, whose links to the
    configs start with ``links_from='../'``)."""
    lines = ['| task | dataset | model | metric | paper | ours | params paper | params ours '
             '| config |', '|---|---|---|---|---|---|---|---|---|']
    for row in load_paper_results()[key]:
        n = config_facts(row['config'])[2]
        paper = row['paper'] if row['paper'] is not None else row.get('reference', '–')
        pp = f"{row['paper_params_m']}M" if row['paper_params_m'] else '–'
        name = osp.basename(row['config'])
        lines.append(f"| {row['task']} | {row['dataset']} | {row['model']} | {row['metric']} | "
                     f"{paper} | {_measured(row)} | {pp} | {n / 1e6:.2f}M | "
                     f"[{name}]({links_from}{row['config']}) |")
    return '\n'.join(lines)


def imagenet_table() -> str:
    lines = ['| model | top-1 paper | params paper | params ours | M-Adds paper | M-Adds ours | '
             'config | weights |', '|---|---|---|---|---|---|---|---|']
    for row in load_paper_results()['imagenet']:
        weights = f"[released]({row['weights']})" if row.get('weights') else '–'
        # a module the paper has no row for: its own paper's figure, with that recipe
        top1 = row['top1'] if row['top1'] is not None else row['reference']
        params, madds = (f'{v}M' if v is not None else '–'
                         for v in (row['params_m'], row['madds_m']))
        _, _, n, ours, _ = config_facts(row['config'])
        ours = (ours['conv_linear'] + ours['attention_elementwise']) / 1e6
        lines.append(f"| {row['model']} | {top1} | {params} | {n / 1e6:.2f}M | {madds} | "
                     f"{ours:.0f}M | [{osp.basename(row['config'])}]({row['config']}) | "
                     f"{weights} |")
    return '\n'.join(lines)


def demo_table() -> str:
    path = osp.join(DOCS, 'demo_summary.json')
    if not osp.exists(path):
        return '_no published demo run yet: `python tools/demo.py --publish docs`_'
    with open(path) as f:
        s = json.load(f)
    lines = ['| task | config | metric | trained | threshold | train time (s) |',
             '|---|---|---|---|---|---|']
    for task in ('det', 'seg'):
        r = s[task]
        lines.append(f"| {task} | `{r['config']}` | {r['metric']} | {r['trained']:.3f} | "
                     f"≥ {s['thresholds'][r['metric']]} | {r['train_seconds']:.0f} |")
    lines.append(f"\nWhole demo, data to pictures: {s['seconds']:.0f} s on "
                 f"{s.get('machine', '2 CPU cores')}.")
    return '\n'.join(lines)


def _file(name: str, missing: str) -> str:
    path = osp.join(DOCS, name)
    return open(path, encoding='utf-8').read().strip() if osp.exists(path) else missing


def benchmark_tables() -> str:
    parts = []
    for flag, name in BENCHMARKS:
        if not flag:
            parts.append(_file(name, '_not measured yet: `python tools/analysis/benchmark.py '
                                     '--out docs/benchmark.md`_'))
        elif osp.exists(osp.join(DOCS, name)):
            parts.append(f'With `{flag}` (`docs/{name}`):\n\n' + _file(name, ''))
    return '\n\n'.join(parts)


def attention_cost() -> str:
    """docs/attention_cost.md's generated part, from ``docs/attention_cost.json``."""
    path = osp.join(DOCS, 'attention_cost.json')
    if not osp.exists(path):
        return ('_not measured yet: `python tools/analysis/benchmark.py --sections attention '
                '--attention-json docs/attention_cost.json`_')
    from coordatt_mm.analysis.attention_cost import document, load
    return document(load(path))


def sections() -> Dict[str, Dict[str, callable]]:
    """file -> {marker: function producing the text between its begin/end comments}."""
    return {
        osp.join(REPO, 'README.md'): {'results-table': results_table,
                                      'imagenet-table': imagenet_table,
                                      'demo-table': demo_table},
        osp.join(DOCS, 'models.md'): {
            'attention-results-table': lambda: results_table('attention_rows', '../'),
            'attention-positions-table': lambda: _file(
                'attention_positions.md', '_not counted yet: `python tools/analysis/complexity.py '
                '--positions --out docs/attention_positions.md`_')},
        osp.join(DOCS, 'performance.md'): {
            'complexity-table': lambda: _file('complexity.md', '_not counted yet: '
                                              '`python tools/analysis/complexity.py --out '
                                              'docs/complexity.md`_'),
            'benchmark-table': benchmark_tables,
            'compile-table': lambda: _file('benchmark_compile.md', '_not measured yet: '
                                           '`python tools/analysis/benchmark.py --sections '
                                           'compile --out docs/benchmark_compile.md`_')},
        osp.join(DOCS, 'attention_cost.md'): {'attention-cost': attention_cost},
    }


def render(text: str, marker: str, body: str, path: str) -> str:
    begin, end = f'<!-- {marker}:begin -->', f'<!-- {marker}:end -->'
    if begin not in text or end not in text:
        raise SystemExit(f'{path}: markers {begin} / {end} not found')
    head, rest = text.split(begin, 1)
    _, tail = rest.split(end, 1)
    return f'{head}{begin}\n{body}\n{end}{tail}'


def update(check: bool = False) -> list:
    """Rewrite the generated sections and files; with ``check``, only list the stale files."""
    files = {osp.join(REPO, rel): text for rel, text in metafiles().items()}
    for path, parts in sections().items():
        with open(path, encoding='utf-8') as f:
            text = f.read()
        for marker, produce in parts.items():
            text = render(text, marker, produce(), path)
        files[path] = text
    stale = []
    for path, text in files.items():
        old = open(path, encoding='utf-8').read() if osp.exists(path) else None
        if old != text:
            stale.append(path)
            if not check:
                with open(path, 'w', encoding='utf-8') as f:
                    f.write(text)
    return stale
