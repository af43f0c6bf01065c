"""The attention modules compared on the tiny demo data, end to end
(``tools/analysis/compare_attention.py``).

For each attention type (a registered layer, or ``none``), the demo detector and segmentor
(``configs/demo/``, :func:`coordatt_mm.apis.demo.train_and_test`) with that layer in the
backbone's slot are trained and evaluated with mmdet's and mmseg's metrics, exported to ONNX
end to end and checked against PyTorch (:func:`coordatt_mm.deploy.export_checked`; a model too
briefly trained to be checked is exported unchecked and the table says why), and timed in
eager PyTorch and ONNX Runtime on the same end-to-end computation, all types of a task
interleaved. One table (Markdown and JSON) comes out: metric, parameters, latencies and their
ratios to the plain network.

The layers take the settings of the full configs that use them (SE: reduction 24 as in
``ssdlite_mobilenetv2-se_8xb24-600e_coco.py``, ...), a layer no config uses its defaults.
"""
import contextlib
import json
import os
import os.path as osp
import statistics
import time
from typing import List, Optional, Sequence, Tuple

PLAIN = 'none'
TASKS = ('det', 'seg')
TINY_DATA_NOTE = (
    'On the tiny demo data these metrics prove only that each pipeline (training, evaluation, '
    'ONNX export and its check) works with the module; they do not rank the modules. Run on '
    'real data with the full configs (configs/ssdlite/ssdlite_mobilenetv2-<module>_8xb24-600e_'
    'coco.py, configs/deeplabv3/deeplabv3_mobilenetv2-<module>-d16_4xb4-20k_voc12aug-512x512.py'
    ', each with the same schedule), the same comparison is the experiment the critique of the '
    'paper asks for.')


def unknown_types(types: Sequence[str]) -> Optional[str]:
    """A one-line error for the types that are neither ``none`` nor registered, or None."""
    from coordatt_mm.layers.builder import attention_types
    known = attention_types()
    unknown = [t for t in types if t != PLAIN and t not in known]
    if not unknown:
        return None
    return (f'error: attention type(s) {", ".join(unknown)} not registered; choose from '
            f'{PLAIN}, {", ".join(known)}')


def attention_setting(layer: str) -> Tuple[Optional[dict], str]:
    """(the backbone's ``attention`` for ``layer``, where its settings come from): the first
    full SSDLite config that uses the layer (with the paper's activation, not the matched
    one), else the layer's defaults."""
    from coordatt_mm.analysis.benchmark.attention import ATTENTIONS, attention_settings, config_of
    if layer == PLAIN:
        return None, 'plain network'
    for label in ATTENTIONS:
        setting = attention_settings('ssdlite', label)
        if setting is not None and setting['type'] == layer:
            return setting, osp.basename(config_of('ssdlite', label))
    return dict(type=layer), 'layer defaults'


def _override(setting: Optional[dict]) -> dict:
    # _delete_: the demo configs' CA settings (reduction) must not merge into another layer
    return {'model.backbone.attention': None if setting is None else
            dict(setting, _delete_=True)}


def train_export(task: str, layer: str, work_dir: str, length: Optional[int], log) -> dict:
    """Train, evaluate and export one demo model with ``layer``; its row without latencies
    (the checkpoint and ONNX file for timing)."""
    from coordatt_mm.analysis.complexity import count_params
    from coordatt_mm.apis.build import build_model
    from coordatt_mm.apis.demo import CONFIGS, REPO, train_and_test
    from coordatt_mm.deploy import ExportCheckFailed, export_checked, export_model
    setting, source = attention_setting(layer)
    options = _override(setting)
    result = train_and_test(task, work_dir, log, length, options)
    config = osp.join(REPO, CONFIGS[task])
    onnx_file = osp.join(work_dir, f'{task}.onnx')
    with contextlib.redirect_stdout(log), contextlib.redirect_stderr(log):
        cfg, model = build_model(config, result['checkpoint'], cfg_options=options)
        try:
            info = export_checked(config, result['checkpoint'], onnx_file, cfg_options=options)
            check = 'passed: ' + ', '.join(f'{k} {v:.4g}' if isinstance(v, float) else f'{k} {v}'
                                           for k, v in info['check'].items())
        except ExportCheckFailed as e:
            # a briefly trained model may find nothing to compare: still exported, said so
            info = export_model(cfg, model, onnx_file)
            check = f'unchecked: {str(e).splitlines()[0]}'
    return dict(task=task, attention=layer, settings=setting, settings_from=source,
                metric=result['metric'], value=result['trained'],
                params=count_params(model), train_seconds=result['train_seconds'],
                checkpoint=result['checkpoint'], onnx=onnx_file, input_hw=info['input_hw'],
                static=info['static'], check=check)


def _eager_and_runtime(row: dict, threads: int, log):
    """Two callables that run the row's end-to-end computation once: the PyTorch model as the
    export plan wraps it, and its ONNX file in ONNX Runtime, on one random image."""
    import numpy as np
    import torch

    from coordatt_mm.analysis.benchmark.runtimes import RUNTIMES
    from coordatt_mm.apis.build import build_model
    from coordatt_mm.apis.demo import CONFIGS, REPO
    from coordatt_mm.deploy.end2end import end_to_end
    from coordatt_mm.deploy.plan import plan_export
    config = osp.join(REPO, CONFIGS[row['task']])
    with contextlib.redirect_stdout(log), contextlib.redirect_stderr(log):
        cfg, model = build_model(config, row['checkpoint'],
                                 cfg_options=_override(row['settings']))
        plan = plan_export(cfg, row['input_hw'], row['static'], check_images=())
    net = end_to_end(plan, model)
    hw = tuple(row['input_hw'])
    x = np.random.default_rng(0).uniform(0, 255, (1, 3, *hw)).astype(np.float32)
    sizes = torch.tensor(hw, dtype=torch.int64)
    inputs = (torch.from_numpy(x), sizes, sizes)[:len(net.input_names)]

    def eager():
        with torch.inference_mode():
            net(*inputs)
    run = RUNTIMES['onnxruntime'].runner(row['onnx'], threads)
    return eager, lambda: run(x)


def time_rows(rows: List[dict], repeats: int, warmup: int, threads: int, log) -> None:
    """Add eager and ONNX Runtime latencies (median ms) to the rows, the types of each task
    interleaved (eager and ONNX Runtime each in runs of their own), with ratios to the plain
    network's in the same rounds where it is there."""
    import torch

    from coordatt_mm.analysis.benchmark.core import round_ratio, time_interleaved
    torch.set_num_threads(threads)
    for task in TASKS:
        task_rows = [r for r in rows if r['task'] == task]
        if not task_rows:
            continue
        fns = {r['attention']: _eager_and_runtime(r, threads, log) for r in task_rows}
        for i, kind in enumerate(('eager', 'ort')):
            times = time_interleaved({t: f[i] for t, f in fns.items()}, torch.device('cpu'),
                                     repeats, warmup)
            for r in task_rows:
                t = times[r['attention']]
                r[f'{kind}_ms'] = statistics.median(t) * 1e3
                r[f'{kind}_ratio'] = round_ratio(t, times[PLAIN]) if PLAIN in times else None


def settings(row: dict) -> str:
    """The layer's settings besides its type, for a table cell."""
    if row['settings'] is None:
        return '–'
    items = [f'{k}={v}' for k, v in row['settings'].items() if k != 'type']
    return ', '.join(items) if items else 'defaults'


def table(rows: List[dict]) -> str:
    """The comparison as a Markdown table, a row per task and attention type."""
    plain = {r['task']: r['params'] for r in rows if r['attention'] == PLAIN}
    lines = ['| task | attention | settings | metric | value | params | + vs plain | '
             'eager ms | × plain | ONNX Runtime ms | × plain | export check |',
             '|---|---|---|---|---:|---:|---:|---:|---:|---:|---:|---|']

    def ratio(r):
        return '–' if r is None else f'{r:.3f}×'

    def ms(v):
        return '–' if v is None else f'{v:.2f}'
    for r in rows:
        added = r['params'] - plain[r['task']] if r['task'] in plain else None
        lines.append(
            f"| {r['task']} | {r['attention']} | {settings(r)} | {r['metric']} | "
            f"{r['value']:.3f} | {r['params']:,} | "
            f"{'–' if added is None else f'{added:+,}'} | {ms(r.get('eager_ms'))} | "
            f"{ratio(r.get('eager_ratio'))} | {ms(r.get('ort_ms'))} | "
            f"{ratio(r.get('ort_ratio'))} | {r['check']} |")
    return '\n'.join(lines)


def report(summary: dict) -> str:
    """The Markdown the run writes and prints: the note on what tiny data proves, the
    settings and the table."""
    s = summary['settings']
    det = f"{s['det_epochs']} epochs" if s['det_epochs'] else "the demo config's epochs"
    seg = f"{s['seg_iters']} iterations" if s['seg_iters'] else "the demo config's iterations"
    return '\n'.join([
        '# Attention modules on the tiny demo data', '', f'**{TINY_DATA_NOTE}**', '',
        f"Schedule: detection {det}, segmentation {seg}; the layers' settings as the full "
        f"configs set them; latency: batch 1, the "
        f"end-to-end computation (boxes after NMS, label maps) at the export's input size, "
        f"{s['repeats']} interleaved runs after {s['warmup']}, {s['threads']} threads; "
        f"{summary['machine']}.", '', table(summary['rows'])])


def compare(types: Sequence[str], work_dir: str, det_epochs: Optional[int] = None,
            seg_iters: Optional[int] = None, tasks: Sequence[str] = TASKS, repeats: int = 10,
            warmup: int = 2, threads: int = 2) -> dict:
    """Run the comparison; the summary (``rows``), also written to
    ``<work_dir>/compare_attention.json`` and, as Markdown, ``compare_attention.md``."""
    from coordatt_mm.analysis.benchmark.core import machine_line
    from coordatt_mm.apis.demo import NAMES, ensure_tiny_data, say
    t0 = time.time()
    os.makedirs(work_dir, exist_ok=True)
    ensure_tiny_data()
    rows = []
    lengths = {'det': det_epochs, 'seg': seg_iters}
    with open(osp.join(work_dir, 'compare_attention.log'), 'a') as log:
        for task in tasks:
            for layer in types:
                say(f'{NAMES[task]} with {layer}: training')
                rows.append(train_export(task, layer, osp.join(work_dir, layer, task),
                                         lengths[task], log))
                say(f'{NAMES[task]} with {layer}: {rows[-1]["metric"]} '
                    f'{rows[-1]["value"]:.3f}, export {rows[-1]["check"].split(":")[0]}')
        say('timing eager PyTorch and ONNX Runtime')
        time_rows(rows, repeats, warmup, threads, log)
    summary = dict(note=TINY_DATA_NOTE, machine=machine_line(), rows=rows,
                   settings=dict(det_epochs=det_epochs, seg_iters=seg_iters, repeats=repeats,
                                 warmup=warmup, threads=threads, types=list(types),
                                 tasks=list(tasks)),
                   seconds=round(time.time() - t0, 1))
    with open(osp.join(work_dir, 'compare_attention.json'), 'w') as f:
        json.dump(summary, f, indent=1)
    text = report(summary)
    with open(osp.join(work_dir, 'compare_attention.md'), 'w') as f:
        f.write(text + '\n')
    print('\n' + text, flush=True)
    print(f'\ntable: {osp.join(work_dir, "compare_attention.md")}; total '
          f'{summary["seconds"]:.0f} s', flush=True)
    return summary

