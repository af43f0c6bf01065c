"""One command that checks a GPU machine end to end (``tools/gpu_check.py``).

    python tools/gpu_check.py [--out work_dirs/gpu_check] [--iters 30] [--skip CHECK ...]

Checks, each with its figures in a pass/fail table (printed, and written to
``<out>/gpu_check.md`` and ``<out>/gpu_check.json``):

- ``mmcv-ops``: mmcv's ``nms``, ``batched_nms`` and ``roi_align`` on CUDA tensors equal their
  CPU results (a CPU-only mmcv build fails here: "nms_impl: implementation for device cuda:0
  not found");
- ``coordatt``: CoordAtt forward and backward on CUDA against the CPU: float32 within 1e-5
  (relative, the whole tensor), float16 and bfloat16 autocast within 8 of their eps (2^-11,
  2^-8) of the float32 CPU result; the MobileNetV2CA backbone's eval outputs within 1e-4;
- ``train-det``, ``train-seg``: the tiny demo SSDLite and DeepLabV3 configs trained ``--iters``
  iterations with ``--amp`` on the GPU (mmengine's AmpOptimWrapper: float16, dynamic loss
  scale), then tested (NMS on the GPU): a finite loss that fell, and the codebase's metric;
- ``nccl-syncbn``: the tiny detection config (SyncBN) for a few iterations in one process
  through ``torchrun --launcher pytorch`` (NCCL, torch's SyncBatchNorm);
- ``benchmark``: ``tools/analysis/benchmark.py --device cuda`` (eager eval latency, training step
  time and peak memory, CA vs plain), then the same with ``--channels-last --amp``.

Without a GPU it says so, runs the checks that need none on the CPU (``mmcv-ops`` and
``coordatt`` there), marks the others as skipped and exits 0. About 5 minutes on one
modern GPU once the set-up is done; the exit status is 1 when a check fails.
"""
import json
import os
import os.path as osp
import re
import subprocess
import sys
import time
from typing import Callable, Dict, List, Optional, Sequence, Tuple

REPO = osp.dirname(osp.dirname(osp.dirname(osp.realpath(__file__))))
DET = 'configs/demo/ssdlite_mobilenetv2-ca_1xb6-14e_tiny-coco.py'
SEG = 'configs/demo/deeplabv3_mobilenetv2-ca-d16_1xb8-100i_tiny-voc12aug.py'
GPU_ONLY = ('train-det', 'train-seg', 'nccl-syncbn', 'benchmark')


class Failed(Exception):
    """A check's failure: its message is the table's figure."""


def _rel(a, b) -> float:
    a, b = a.double().cpu(), b.double().cpu()
    return float((a - b).norm() / b.norm().clamp_min(1e-30))


def check_mmcv_ops(device) -> str:
    import torch
    from mmcv.ops import batched_nms, nms, roi_align
    g = torch.Generator().manual_seed(0)
    xy = torch.rand(200, 2, generator=g) * 100
    boxes = torch.cat([xy, xy + 5 + torch.rand(200, 2, generator=g) * 30], 1)
    scores = torch.rand(200, generator=g)
    idxs = torch.randint(0, 5, (200,), generator=g)
    _, keep_cpu = nms(boxes, scores, 0.5)
    _, keep_dev = nms(boxes.to(device), scores.to(device), 0.5)
    if keep_dev.cpu().tolist() != keep_cpu.tolist():
        raise Failed(f'nms on {device} keeps other boxes than on the CPU')
    cfg = dict(type='nms', iou_threshold=0.5)
    dets_cpu, _ = batched_nms(boxes, scores, idxs, cfg)
    dets_dev, _ = batched_nms(boxes.to(device), scores.to(device), idxs.to(device), cfg)
    if not torch.allclose(dets_dev.cpu(), dets_cpu):
        raise Failed(f'batched_nms on {device} differs from the CPU')
    feats = torch.randn(2, 16, 32, 32, generator=g)
    rois = torch.tensor([[0, 1., 2., 20., 25.], [1, 5., 5., 30., 12.]])
    out_cpu = roi_align(feats, rois, (7, 7), 1.0, 2)
    out_dev = roi_align(feats.to(device), rois.to(device), (7, 7), 1.0, 2)
    err = _rel(out_dev, out_cpu)
    if err > 1e-5:
        raise Failed(f'roi_align on {device}: relative difference {err:.1e} from the CPU')
    return f'nms, batched_nms (200 boxes), roi_align on {device} = CPU (roi_align {err:.1e})'


def check_coordatt(device) -> str:
    import torch

    from coordatt_mm import CoordAtt, MobileNetV2CA
    from coordatt_mm.apis.build import quiet_logs
    torch.manual_seed(0)
    layer = CoordAtt(96)
    with torch.no_grad():
        layer.norm.running_mean.normal_(0, 0.3)
        layer.norm.running_var.uniform_(0.5, 1.5)
    x = torch.randn(4, 96, 40, 40)
    g = torch.randn(4, 96, 40, 40)

    def fwd_bwd(m, x, dtype=None):
        m = m.train()
        xg = x.clone().requires_grad_()
        with torch.autocast(x.device.type, dtype=dtype or torch.float16,
                            enabled=dtype is not None):
            y = m(xg)
        (y.float() * g.to(x.device)).sum().backward()
        # the parameters' gradients as one vector: a bias before a training BN has a gradient
        # that is zero up to rounding, whose own relative error means nothing
        return (y.detach().float(), xg.grad.float(),
                torch.cat([p.grad.float().flatten() for p in m.parameters()]))

    import copy
    ref = fwd_bwd(copy.deepcopy(layer), x)
    figures = []
    eps = {None: 1e-5 / 8, torch.float16: 2.0 ** -11, torch.bfloat16: 2.0 ** -8}
    if device.type == 'cpu':
        dtypes = [torch.bfloat16]  # float16 autocast on CPUs is slow; CUDA runs all three
    else:
        dtypes = [None, torch.float16, torch.bfloat16]
    for dtype in dtypes:
        got = fwd_bwd(copy.deepcopy(layer).to(device), x.to(device), dtype)
        worst = max(_rel(a, b) for a, b in zip(got, ref))
        name = 'float32' if dtype is None else str(dtype).split('.')[1]
        if worst > 8 * eps[dtype]:
            raise Failed(f'CoordAtt on {device} {name}: relative difference {worst:.1e} '
                         f'(bound {8 * eps[dtype]:.1e})')
        figures.append(f'{name} {worst:.1e}')
    torch.manual_seed(0)
    net = MobileNetV2CA(out_indices=(2, 4, 7))
    with quiet_logs():
        net.init_weights()
    x = torch.randn(2, 3, 224, 224)
    with torch.no_grad():
        outs_cpu = net.eval()(x)
        outs_dev = copy.deepcopy(net).to(device).eval()(x.to(device))
    err = max(_rel(a, b) for a, b in zip(outs_dev, outs_cpu))
    if err > 1e-4:
        raise Failed(f'MobileNetV2CA on {device}: relative difference {err:.1e} from the CPU')
    return (f'CA layer fwd+bwd vs CPU float32 (relative, bound 8 eps): {", ".join(figures)}; '
            f'backbone eval {err:.1e}')


def _run(args: List[str], log: str, env: Optional[dict] = None,
         timeout: int = 600) -> Tuple[int, str]:
    """Run a command from the repository root; its output goes to ``log`` too."""
    e = dict(os.environ, **(env or {}))
    t = time.time()
    r = subprocess.run(args, cwd=REPO, env=e, capture_output=True, text=True, timeout=timeout)
    out = r.stdout + r.stderr
    with open(log, 'w') as f:
        f.write(f'$ {" ".join(args)}\n{out}')
    return r.returncode, out + f'\n[{time.time() - t:.0f} s]'


def _tail(out: str) -> str:
    lines = [ln for ln in out.strip().splitlines() if ln.strip()]
    return lines[-1][:200] if lines else ''


def _losses(out: str) -> List[float]:
    return [float(v) for v in re.findall(r'\bloss: ([0-9.]+(?:e[-+]?\d+)?)', out)]


def train_and_test(task: str, out_dir: str, iters: int, amp: bool = True) -> str:
    """Train the tiny demo config of ``task`` ('det'/'seg') for about ``iters`` iterations
    (with ``--amp``), test its checkpoint; one line of figures."""
    config = DET if task == 'det' else SEG
    wd = osp.join(out_dir, f'train-{task}')
    if task == 'det':  # 8 iterations per epoch of the tiny COCO
        epochs = max(1, round(iters / 8))
        opts = [f'train_cfg.max_epochs={epochs}', 'default_hooks.logger.interval=4',
                f'default_hooks.checkpoint.interval={epochs}']
    else:
        opts = [f'train_cfg.max_iters={iters}', 'default_hooks.logger.interval=5',
                f'default_hooks.checkpoint.interval={iters}']
    code, out = _run([sys.executable, 'tools/train.py', config, '--work-dir', wd]
                     + ['--amp'] * amp + ['--cfg-options'] + opts,
                     osp.join(out_dir, f'train-{task}.log'))
    if code != 0:
        raise Failed(f'training failed: {_tail(out)} (log: {wd}.log)')
    if amp and 'AmpOptimWrapper' not in out:
        raise Failed('the run did not use AmpOptimWrapper')
    losses = _losses(out)
    if not losses or not all(v == v and v < float('inf') for v in losses):
        raise Failed(f'no finite training loss logged: {losses[:5]}')
    with open(osp.join(wd, 'last_checkpoint')) as f:
        ckpt = f.read().strip()
    code, out = _run([sys.executable, 'tools/test.py', config, ckpt, '--work-dir', wd],
                     osp.join(out_dir, f'test-{task}.log'))
    if code != 0:
        raise Failed(f'test failed: {_tail(out)}')
    with open(osp.join(wd, 'test_metrics.json')) as f:
        metrics = json.load(f)['metrics']
    key = 'coco/bbox_mAP' if task == 'det' else 'mIoU'
    if key in metrics:
        metric = f'{key} {metrics[key]:.3f}'
    elif task == 'det':  # mmdet's CocoMetric reports nothing when no box passes score_thr
        metric = f'no {key} (no box above the score threshold yet)'
    else:
        raise Failed(f'no {key} in {sorted(metrics)}')
    if not losses[-1] < losses[0]:
        raise Failed(f'loss did not fall: {losses[0]:.3f} -> {losses[-1]:.3f}')
    return (f'{"AMP" if amp else "float32"}, {len(losses)} logged losses {losses[0]:.3f} -> '
            f'{losses[-1]:.3f}; test: {metric}' + (' (NMS on the GPU)' if amp else ''))


def check_nccl_syncbn(out_dir: str) -> str:
    wd = osp.join(out_dir, 'nccl-syncbn')
    torchrun = osp.join(osp.dirname(sys.executable), 'torchrun')
    cmd = [torchrun if osp.exists(torchrun) else 'torchrun', '--nproc_per_node', '1',
           '--master_port', '29531', 'tools/train.py', DET, '--launcher', 'pytorch',
           '--work-dir', wd, '--cfg-options', 'train_cfg.max_epochs=1',
           'env_cfg.dist_cfg.backend=nccl', 'default_hooks.logger.interval=2']
    code, out = _run(cmd, osp.join(out_dir, 'nccl-syncbn.log'))
    if code != 0:
        raise Failed(f'torchrun failed: {_tail(out)}')
    if 'SyncBatchNorm' not in out and 'SyncBN' not in out:
        raise Failed('no SyncBatchNorm in the built model')
    losses = _losses(out)
    return f'1 process, NCCL, SyncBN: {len(losses)} logged losses, last {losses[-1]:.3f}' \
        if losses else '1 process, NCCL, SyncBN: trained one epoch'


def check_benchmark(out_dir: str, device: str = 'cuda',
                    sizes: Tuple[str, ...] = ('--batch', '1,32', '--train-batch', '32',
                                              '--repeats', '20')) -> str:
    """The benchmark's eager and training sections on ``device``: float32 (eager NCHW and
    channels-last) and channels-last AMP; CA-vs-plain ratios in one line."""
    figures = []
    for extra, name in (([], f'benchmark-{device}.md'),
                        (['--channels-last', '--amp'], f'benchmark-{device}-cl-amp.md')):
        path = osp.join(out_dir, name)
        code, out = _run([sys.executable, 'tools/analysis/benchmark.py', '--device', device,
                          '--sections', 'eager,training', '--out', path, *sizes, *extra],
                         osp.join(out_dir, name.replace('.md', '.log')), timeout=900)
        if code != 0:
            raise Failed(f'benchmark {" ".join(extra)} failed: {_tail(out)}')
        text = open(path).read()
        ratios = re.findall(r'\| backbone, stem to 1280 conv, (batch \d+), [^|]*?'
                            r'(NCHW|channels-last) \| MobileNetV2 \+ CA \(ours\) \|[^\n]*\| '
                            r'([0-9.]+)× \|', text)
        step = re.search(r'\| training step[^|]*\| MobileNetV2 \+ CA \(ours\) \| ([0-9.]+) \| '
                         r'([0-9.]+) \| ([0-9.]+)× \| ([0-9.]+)× \|', text)
        label = 'fp32' if not extra else 'AMP'
        part = ', '.join(f'{b} {fmt} {r}×' for b, fmt, r in ratios)
        if step:
            part += (f', train step {step.group(1)} ms ({step.group(3)}×), peak '
                     f'{step.group(2)} MiB ({step.group(4)}×)')
        figures.append(f'{label}: CA/plain eval {part}')
    return '; '.join(figures) + f' (tables in {out_dir})'


def run_checks(out_dir: str, iters: int, skip: List[str]) -> List[Dict[str, str]]:
    import torch
    gpu = torch.cuda.is_available()
    device = torch.device('cuda' if gpu else 'cpu')
    checks: Dict[str, Callable[[], str]] = {
        'mmcv-ops': lambda: check_mmcv_ops(device),
        'coordatt': lambda: check_coordatt(device),
        'train-det': lambda: train_and_test('det', out_dir, iters),
        'train-seg': lambda: train_and_test('seg', out_dir, iters),
        'nccl-syncbn': lambda: check_nccl_syncbn(out_dir),
        'benchmark': lambda: check_benchmark(out_dir),
    }
    rows = []
    for name, fn in checks.items():
        t = time.time()
        if name in skip:
            rows.append(dict(check=name, result='skipped', figures='--skip'))
            continue
        if name in GPU_ONLY and not gpu:
            rows.append(dict(check=name, result='skipped', figures='needs a GPU'))
            continue
        print(f'[gpu_check] {name} ...', flush=True)
        try:
            rows.append(dict(check=name, result='pass', figures=fn()))
        except Failed as e:
            rows.append(dict(check=name, result='FAIL', figures=str(e)))
        except Exception as e:  # a crash is a failed check; the others still run
            rows.append(dict(check=name, result='FAIL',
                             figures=f'{type(e).__name__}: {str(e).strip()[:200]}'))
        rows[-1]['seconds'] = f'{time.time() - t:.0f}'
    return rows


def report(rows: List[Dict[str, str]], header: str) -> str:
    lines = [header, '', '| check | result | figures | s |', '|---|---|---|---|']
    lines += [f'| {r["check"]} | {r["result"]} | {r["figures"]} | {r.get("seconds", "")} |'
              for r in rows]
    return '\n'.join(lines)


def machine() -> str:
    import platform

    import torch
    if torch.cuda.is_available():
        where = (f'{torch.cuda.get_device_name()} (CUDA {torch.version.cuda}, '
                 f'{torch.cuda.device_count()} visible)')
    else:
        where = f'no GPU: torch.cuda.is_available() is False ({platform.machine()} CPU)'
    import mmcv
    import mmcv._ext as ext
    from mmcv import ops  # noqa: F401  (fails here if mmcv has no compiled ops)
    return (f'{where}; torch {torch.__version__}, mmcv {mmcv.__version__} (ops compiled with '
            f'CUDA {ext.get_compiling_cuda_version()}), Python {platform.python_version()}')


def gpu_check(out: str = 'work_dirs/gpu_check', iters: int = 30,
              skip: Sequence[str] = ()) -> int:
    """``tools/gpu_check.py``: run the checks, print and write the table; 1 if one failed."""
    out_dir = osp.abspath(out)
    os.makedirs(out_dir, exist_ok=True)
    t = time.time()
    header = f'GPU check, {time.strftime("%Y-%m-%d %H:%M")}: {machine()}'
    print(f'[gpu_check] {header}', flush=True)
    import torch
    if not torch.cuda.is_available():
        print('[gpu_check] no GPU visible: running the checks that need none, on the CPU',
              flush=True)
    tiny = osp.join(REPO, 'data/tiny')
    if torch.cuda.is_available() and {'train-det', 'train-seg', 'nccl-syncbn'} - set(skip):
        from coordatt_mm.datasets import is_current, make_all
        if not is_current(tiny):  # the demo configs' data
            make_all(tiny)
    rows = run_checks(out_dir, iters, list(skip))
    text = report(rows, header) + f'\n\nTotal {time.time() - t:.0f} s.'
    print(text)
    with open(osp.join(out_dir, 'gpu_check.md'), 'w') as f:
        f.write(text + '\n')
    with open(osp.join(out_dir, 'gpu_check.json'), 'w') as f:
        json.dump(dict(header=header, checks=rows), f, indent=2)
    print(f'[gpu_check] written to {osp.join(out_dir, "gpu_check.md")}')
    return 1 if any(r['result'] == 'FAIL' for r in rows) else 0
