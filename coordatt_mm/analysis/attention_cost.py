"""What each attention module costs, rendered from the figures of one benchmark run
(``tools/analysis/benchmark.py --sections attention --attention-json FILE``): Markdown tables
(one per model and measure group), a paragraph per module that sets its cost beside CA's, and
the picture (latency ratio against added parameters, one panel per runtime;
``tools/analysis/attention_plot.py``). docs/attention_cost.md embeds the tables and paragraphs
(``tools/update_readme.py``); nothing here measures, so that embedding stays cheap.

The figures file (JSON) holds ``machine`` (the CPU and runtime versions), ``settings_line``,
``types`` (attention labels, ``'none'`` the plain network), ``configs`` ({label: {model key:
config}}; ``'backbone'`` is the ImageNet config, whose published top-1 labels the picture),
``groups`` ({group: heading}), ``notes`` and ``models``: {key: {title, short, measures: {name:
{group, unit, values: {label: median}, ratios: {label: ratio to the plain network in the same
interleaved run}, plot: a panel of the picture}}}}.
"""
import json
import math
import re
import textwrap
from typing import Dict, List, NamedTuple, Optional

from coordatt_mm.analysis.complexity import load_paper_results

PLAIN, CA = 'none', 'CA'
COMPLEXITY = 'complexity'  # the group of counted (not timed) measures
# the CA paper's ImageNet rows (paper_results.json, 'top1') share its recipe
CA_PAPER = ('CA paper', '200 epochs')
# a module's own paper's figure in paper_results.json's 'reference':
# "<source>: <top-1>[ qualifier][, other figures] (<recipe>; details)"
_REFERENCE = re.compile(r'^(?P<source>[^:]+):\s*(?P<top1>\d+(?:\.\d+)?)(?P<qualifier>[^,(;]*)'
                        r'[^(]*\((?P<recipe>[^;)]*)')
MARKERS = ('o', 's', '^', 'D', 'v')


class Published(NamedTuple):
    """A published ImageNet top-1 of MobileNetV2 with a module, and where it comes from."""
    top1: float
    qualifier: str  # which variant it is, e.g. 'with k = 7' ('' when the config's)
    source: str  # 'CA paper', "ECA-Net's own", ...
    recipe: str  # '200 epochs', '400 epochs, batch 96, lr 0.045', ...

    def text(self) -> str:
        q = f' {self.qualifier}' if self.qualifier else ''
        return f'top-1 {self.top1:g}{q} ({self.source}, {self.recipe})'


def load(path: str) -> dict:
    """The figures file at ``path``; a one-line error naming it where it is not one."""
    try:
        with open(path, encoding='utf-8') as f:
            data = json.load(f)
    except FileNotFoundError:
        raise FileNotFoundError(f'{path}: no such figures file (python tools/analysis/benchmark.py '
                                f'--sections attention --attention-json {path})') from None
    except json.JSONDecodeError as e:
        raise ValueError(f'{path}: not JSON ({e})') from None
    missing = [k for k in ('machine', 'types', 'models', 'configs') if k not in data]
    if missing:
        raise ValueError(f'{path}: not attention-cost figures (no {", ".join(missing)})')
    return data


def published_top1(config: str) -> Optional[Published]:
    """The published ImageNet top-1 of the ImageNet ``config`` (its row in
    ``coordatt_mm/data/paper_results.json``) with its source and recipe, or None (no row, or
    no figure published for it)."""
    for row in load_paper_results()['imagenet']:
        if row['config'] != config:
            continue
        if row['top1'] is not None:
            return Published(float(row['top1']), '', *CA_PAPER)
        m = _REFERENCE.match(row.get('reference') or '')
        return (Published(float(m['top1']), m['qualifier'].strip(), m['source'].strip(),
                          m['recipe'].strip()) if m else None)
    return None


def published(data: dict) -> Dict[str, Optional[Published]]:
    """{label: its published top-1 or None} for the run's attention types."""
    return {t: published_top1(data['configs'][t]['backbone']) for t in data['types']}


def _value(v: float, unit: str) -> str:
    if unit == '':
        return f'{v:,.0f}'
    if unit == 'M':
        return f'{v:.1f}M'
    if unit == 'MiB':
        return f'{v:.0f}'
    return f'{v:.2f}' if v < 100 else f'{v:.1f}'


def _groups(model: dict) -> Dict[str, List[str]]:
    """{group: [measure names]} in the order measured."""
    groups: Dict[str, List[str]] = {}
    for name, m in model['measures'].items():
        groups.setdefault(m['group'], []).append(name)
    return groups


def tables(data: dict) -> str:
    """One Markdown table per model and measure group: per attention type the median (or
    count) and its ratio to the plain network in the same run."""
    lines: List[str] = []
    for model in data['models'].values():
        for group, names in _groups(model).items():
            cols, sep = ['attention'], ['---']
            for name in names:
                unit = model['measures'][name]['unit']
                cols += [f'{name}' + (f' ({unit})' if unit not in ('', 'M') else ''), '× plain']
                sep += ['---:', '---:']
                if unit == '':
                    cols.insert(-1, '+ vs plain')
                    sep.append('---:')
            lines += ['', f'**{model["title"]}: {data["groups"][group]}**', '',
                      '| ' + ' | '.join(cols) + ' |', '|' + '|'.join(sep) + '|']
            for t in data['types']:
                cells = [t]
                for name in names:
                    m = model['measures'][name]
                    if t not in m['values']:
                        cells += ['–', '–'] + (['–'] if m['unit'] == '' else [])
                        continue
                    cells.append(_value(m['values'][t], m['unit']))
                    if m['unit'] == '':
                        cells.append(f'{m["values"][t] - m["values"].get(PLAIN, 0):+,.0f}')
                    cells.append(f'{m["ratios"][t]:.3f}×')
                lines.append('| ' + ' | '.join(cells) + ' |')
    return '\n'.join(lines).strip()


def _added_params(data: dict, t: str) -> Optional[float]:
    for model in data['models'].values():
        p = model['measures'].get('params')
        if p and t in p['values'] and PLAIN in p['values']:
            return p['values'][t] - p['values'][PLAIN]
    return None


def paragraphs(data: dict) -> str:
    """One Markdown bullet per module: the parameters it adds and, per timed measure, its
    ratio to the plain network in each model (backbone / SSDLite320 / DeepLabV3) beside CA's
    in the same run, and on how many of them it is below CA."""
    models = list(data['models'].values())
    names: List[str] = []
    for model in models:
        names += [n for n, m in model['measures'].items()
                  if m['group'] != COMPLEXITY and n not in names]
    order = ' / '.join(m['short'] for m in models)

    def ratios(name: str, t: str) -> List[Optional[float]]:
        return [m['measures'][name]['ratios'].get(t) if name in m['measures'] else None
                for m in models]

    def joined(values: List[Optional[float]]) -> str:
        return ' / '.join('–' if v is None else f'{v:.2f}' for v in values)
    lines = []
    ca_added = _added_params(data, CA)
    for t in data['types']:
        if t == PLAIN:
            continue
        cells, below, compared = [], 0, 0
        for name in names:
            own = ratios(name, t)
            if all(v is None for v in own):
                continue
            cell = f'{name} {joined(own)}'
            ca = ratios(name, CA)
            if t != CA and any(v is not None for v in ca):
                cell += f' (CA {joined(ca)})'
                pairs = [(a, b) for a, b in zip(own, ca) if a is not None and b is not None]
                below += sum(a < b for a, b in pairs)
                compared += len(pairs)
            cells.append(cell)
        added = _added_params(data, t)
        head = f'**{t}**'
        if added is not None:
            head += f' (+{added:,.0f} parameters'
            head += (f'; CA +{ca_added:,.0f})' if t != CA and ca_added is not None else ')')
        tail = f'; below CA in {below} of {compared}' if compared else ''
        lines.append(f'- {head}, × plain in {order}: ' + '; '.join(cells) + tail + '.')
    return '\n'.join(lines)


def document(data: dict) -> str:
    """What docs/attention_cost.md embeds: where it was measured, the notes, the paragraphs
    against CA and the tables."""
    minutes = f', the run took {data["seconds"] / 60:.0f} min' if 'seconds' in data else ''
    lines = [f'Measured on: {data["machine"]}.', '',
             f'Settings: {data["settings_line"]}{minutes}.', '']
    lines += [f'- {n}' for n in data.get('notes', [])]
    lines += ['', '**Each module against CA** (ratios to the plain network in the same run):',
              '', paragraphs(data), '', tables(data)]
    return '\n'.join(lines)


def panels(data: dict) -> List[str]:
    """The measures the picture plots, one panel each, in the order measured."""
    names: List[str] = []
    for model in data['models'].values():
        names += [n for n, m in model['measures'].items() if m.get('plot') and n not in names]
    return names


def _place_labels(ax, labels, colours, gap: float = 8.0, near: float = 70.0) -> None:
    """Write each (x, y, text) beside its point, moved up (in points) just enough that no two
    labels of points less than ``near`` points apart across overlap; a moved one gets a line
    to its point."""
    ax.get_ylim()  # the limits autoscaling settles on, before data becomes points
    to_points = 72.0 / ax.figure.dpi
    placed = []  # (x, y) of the labels written, in points
    for (x, y, text), colour in sorted(zip(labels, colours), key=lambda lc: lc[0][1]):
        px, py = (v * to_points for v in ax.transData.transform((x, y)))
        ty = py
        for qx, qy in sorted(placed, key=lambda q: q[1]):
            if abs(qx - px) < near and abs(ty - qy) < gap:
                ty = max(ty, qy + gap)
        placed.append((px, ty))
        moved = ty - py > gap / 2
        ax.annotate(text, (x, y), xytext=(5, ty - py + 2), textcoords='offset points',
                    fontsize=6.5, color='0.1', va='bottom',
                    arrowprops=dict(arrowstyle='-', color=colour, lw=0.5) if moved else None)


def plot(data: dict, out: str) -> List[str]:
    """Write the picture to ``out`` (PNG, matplotlib's Agg canvas): per panel (a runtime) the
    latency ratio of every module to the plain network against the parameters it adds, one
    marker per model, the published ImageNet top-1 beside the module's name where one exists,
    with its source and recipe in the legend. The panels' titles."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    from matplotlib.lines import Line2D
    names = panels(data)
    if not names:
        raise ValueError('no latency measured: nothing to plot (run the eager or a runtime '
                         'measure)')
    pub = published(data)
    types = [t for t in data['types'] if t != PLAIN]
    ncols = min(3, len(names))
    nrows = math.ceil(len(names) / ncols)
    handles_count = len(types) + len(data['models'])
    # inches: the heading, each row of panels (with its axis labels), the legend below
    head, row, legend = 0.8, 3.6, 0.16 * math.ceil(handles_count / 2) + 0.3
    fig = Figure(figsize=(5.0 * ncols, head + row * nrows + legend))
    FigureCanvasAgg(fig)
    colours = {t: f'C{i % 10}' for i, t in enumerate(types)}
    markers = {k: MARKERS[i % len(MARKERS)] for i, k in enumerate(data['models'])}
    added = [m['measures']['params']['values'][t] - m['measures']['params']['values'][PLAIN]
             for m in data['models'].values() if 'params' in m['measures']
             for t in types if t in m['measures']['params']['values']]
    for i, name in enumerate(names):
        ax = fig.add_subplot(nrows, ncols, i + 1)
        ax.axhline(1.0, color='0.6', lw=0.8, ls='--')
        labels = {}  # the module's name once, at its first model
        for key, model in data['models'].items():
            m, params = model['measures'].get(name), model['measures'].get('params')
            if m is None or params is None:
                continue
            for t in types:
                if t not in m['ratios'] or t not in params['values']:
                    continue
                x = params['values'][t] - params['values'][PLAIN]
                ax.plot([x], [m['ratios'][t]], marker=markers[key], color=colours[t], ms=6,
                        ls='none', alpha=0.85)
                top1 = f' ({pub[t].top1:g})' if pub.get(t) else ''
                labels.setdefault(t, (x, m['ratios'][t], f'{t}{top1}'))
        ax.set_xscale('symlog', linthresh=100)
        # room on the right for the names beside the largest modules
        ax.set_xlim(-20, max(added + [100]) * 6)
        _place_labels(ax, list(labels.values()), colours=[colours[t] for t in labels])
        ax.set_title(name, fontsize=9)
        ax.set_xlabel('parameters added to MobileNetV2', fontsize=8)
        ax.set_ylabel('latency / plain network (same run)', fontsize=8)
        ax.tick_params(labelsize=7)
        ax.grid(alpha=0.3)
    handles = [Line2D([], [], color=colours[t], marker='o', ls='none',
                      label=f'{t}: ' + (pub[t].text() if pub.get(t) else
                                        'no published MobileNetV2 top-1'))
               for t in types]
    handles += [Line2D([], [], color='0.3', marker=markers[k], ls='none',
                       label=data['models'][k]['title']) for k in data['models']]
    fig.legend(handles=handles, loc='lower center', ncol=2, fontsize=7, frameon=False)
    fig.suptitle('Latency of each attention module in MobileNetV2 (paper slot), relative to the '
                 'plain network; in brackets: published ImageNet top-1 (recipes differ by '
                 'paper: see the legend)\n'
                 + '\n'.join(textwrap.wrap(data['machine'], 170)), fontsize=8)
    height = fig.get_figheight()
    fig.subplots_adjust(top=1 - head / height, bottom=(legend + 0.45) / height, hspace=0.4,
                        wspace=0.25, left=0.06, right=0.98)
    fig.savefig(out, dpi=110)
    return names
