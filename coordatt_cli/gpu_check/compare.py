"""The GPU check's verdicts: what a GPU computed against a reference computed elsewhere (the CPU,
float64), each a pure function of tensors or dicts that returns its figure or raises
:class:`Failed` with the figure that failed, so that a test can hand it a wrong result."""
import math
from typing import Dict, List, Mapping, Optional, Sequence

import torch
import torch.nn.functional as F


class Failed(Exception):
    """A check's failure: its message is the table's figure."""


def relative_difference(got: torch.Tensor, ref: torch.Tensor) -> float:
    """``||got - ref|| / ||ref||`` in float64 on the CPU; ``inf`` where ``got`` holds a NaN or
    an infinity (which a plain norm would let through as NaN, and NaN passes every bound)."""
    got, ref = got.detach().double().cpu(), ref.detach().double().cpu()
    if got.shape != ref.shape:
        raise Failed(f'shape {tuple(got.shape)} where the reference has {tuple(ref.shape)}')
    if not bool(torch.isfinite(got).all()):
        return math.inf
    return float((got - ref).norm() / ref.norm().clamp_min(1e-30))


def close(name: str, got: torch.Tensor, ref: torch.Tensor, bound: float) -> float:
    """The relative difference of ``got`` from ``ref``; :class:`Failed` above ``bound``."""
    err = relative_difference(got, ref)
    if not err <= bound:
        raise Failed(f'{name}: relative difference {err:.1e} from the reference '
                     f'(bound {bound:.1e})')
    return err


def same_boxes(name: str, got_keep: torch.Tensor, ref_keep: torch.Tensor) -> int:
    """The number of boxes kept; :class:`Failed` unless an NMS kept the reference's boxes, in
    its order."""
    got, ref = got_keep.cpu().tolist(), ref_keep.cpu().tolist()
    if got != ref:
        extra, missing = sorted(set(got) - set(ref)), sorted(set(ref) - set(got))
        raise Failed(f'{name} keeps {len(got)} boxes where the CPU keeps {len(ref)} '
                     f'(extra {extra[:5]}, missing {missing[:5]}'
                     f'{", same boxes in another order" if not extra and not missing else ""})')
    return len(got)


def mmcv_ops_agree(got: Mapping[str, torch.Tensor], ref: Mapping[str, torch.Tensor]) -> str:
    """mmcv's ops on a GPU (``got``) against the CPU (``ref``): ``keep`` (nms) and
    ``batched_keep`` the same boxes in the same order, ``dets`` (batched_nms' boxes and
    scores) and ``roi`` (roi_align) within float32 rounding."""
    kept = same_boxes('nms', got['keep'], ref['keep'])
    same_boxes('batched_nms', got['batched_keep'], ref['batched_keep'])
    dets = close('batched_nms boxes and scores', got['dets'], ref['dets'], 1e-6)
    roi = close('roi_align', got['roi'], ref['roi'], 1e-5)
    return (f'nms keeps the same {kept} boxes, batched_nms the same '
            f'{len(ref["batched_keep"])} ({dets:.1e}), roi_align {roi:.1e}')


def coordatt_agrees(name: str, got: Sequence[torch.Tensor], ref: Sequence[torch.Tensor],
                    bound: float) -> float:
    """CoordAtt's training step on a GPU (``got``: output, input gradient, then the parameters'
    gradients as one vector) against the CPU's (``ref``, float64); the worst relative
    difference, :class:`Failed` above ``bound``. The parameters' gradients are compared as one
    vector: a bias before a training BatchNorm has a gradient that is zero up to rounding, whose
    own relative error means nothing."""
    if len(got) != len(ref):
        raise Failed(f'{name}: {len(got)} results where the reference has {len(ref)}')
    parts = ('output', 'input gradient', 'parameter gradients')
    return max(close(f'{name} {part}', g, r, bound) for part, g, r in zip(parts, got, ref))


# ---- SyncBN: two processes, each with its own part of a batch ----

def syncbn_reference(inputs: Sequence[torch.Tensor], loss_weights: Sequence[torch.Tensor],
                     momentum: float, eps: float) -> Dict[str, object]:
    """What one BatchNorm over the ranks' inputs together gives, in float64 on the CPU, after
    one training step of the loss ``sum(y * loss_weight)`` from running statistics 0 and 1 and
    weight 1, bias 0: each rank's output and input gradient (lists), the running statistics
    and the weight and bias gradients of the whole batch."""
    sizes = [len(x) for x in inputs]
    whole = torch.cat([x.double() for x in inputs]).requires_grad_()
    channels = whole.shape[1]
    weight = torch.ones(channels, dtype=torch.float64, requires_grad=True)
    bias = torch.zeros(channels, dtype=torch.float64, requires_grad=True)
    mean = torch.zeros(channels, dtype=torch.float64)
    var = torch.ones(channels, dtype=torch.float64)
    y = F.batch_norm(whole, mean, var, weight, bias, True, momentum, eps)
    (y * torch.cat([w.double() for w in loss_weights])).sum().backward()
    return dict(y=list(y.detach().split(sizes)), grad=list(whole.grad.split(sizes)),
                running_mean=mean, running_var=var, weight_grad=weight.grad,
                bias_grad=bias.grad)


def own_running_mean(x: torch.Tensor, momentum: float) -> torch.Tensor:
    """The running mean one rank would hold after one step on its own data (no synchronisation)."""
    return momentum * x.double().mean((0, 2, 3))


def syncbn_statistics(inputs: Sequence[torch.Tensor], loss_weights: Sequence[torch.Tensor],
                      results: Sequence[Mapping[str, torch.Tensor]], momentum: float,
                      eps: float) -> str:
    """The verdict on a two-process SyncBN step: each rank's ``results`` (``running_mean``,
    ``running_var``, ``y``, ``grad`` of its input, ``weight_grad``, ``bias_grad``) against
    :func:`syncbn_reference` of all ranks' ``inputs``. The running mean must be that of both
    ranks' data, which the inputs are made to tell apart from each rank's own."""
    ref = syncbn_reference(inputs, loss_weights, momentum, eps)
    if len(results) != len(inputs) or len(inputs) < 2:
        raise Failed(f'{len(results)} results from {len(inputs)} ranks; the check needs two')
    # a rank's own statistics must be far from the shared ones, or this check could not fail
    apart = min(relative_difference(own_running_mean(x, momentum), ref['running_mean'])
                for x in inputs)
    if apart < 0.1:
        raise Failed(f"the ranks' data have nearly the same mean ({apart:.1e} apart): "
                     'they cannot show whether the statistics were synchronised')
    worst: Dict[str, float] = {}
    for rank, (x, res) in enumerate(zip(inputs, results)):
        own = relative_difference(res['running_mean'], own_running_mean(x, momentum))
        err = relative_difference(res['running_mean'], ref['running_mean'])
        if not err <= 1e-5:
            raise Failed(f"rank {rank}'s running mean is {err:.1e} from the mean of both ranks' "
                         f"data and {own:.1e} from its own: the statistics were not "
                         'synchronised')
        bounds = dict(running_var=('running_var', 1e-5), y=('y', 1e-5), grad=('grad', 1e-4))
        for key, (ref_key, bound) in bounds.items():
            expected = ref[ref_key] if key.startswith('running') else ref[ref_key][rank]
            worst[key] = max(worst.get(key, 0.0),
                             close(f'rank {rank} {key}', res[key], expected, bound))
        worst['running_mean'] = max(worst.get('running_mean', 0.0), err)
    # each rank's weight and bias gradients are its share: together, the whole batch's
    for key in ('weight_grad', 'bias_grad'):
        total = sum(res[key].double().cpu() for res in results)
        worst[key] = close(f'{key} summed over the ranks', total, ref[key], 1e-4)
    return (f"statistics of both ranks' data (a rank alone would be {apart:.1e} off): "
            + ', '.join(f'{k} {v:.1e}' for k, v in worst.items()))


# ---- training ----

# the metric each codebase's evaluator reports for the demo configs, and its range
METRICS = {'det': ('coco/bbox_mAP', 1.0), 'seg': ('mIoU', 100.0)}
# What a model that learned must reach after the check's default schedule (--iters 80: 10
# epochs of the tiny COCO, 80 iterations of the tiny VOC), each far above what learning nothing
# scores and far below what learning reaches. The demo trained for these lengths on a CPU
# scored 0.25 box mAP and 72 mIoU (the demo's own thresholds, for its longer full schedule:
# 0.10 and 60). An untrained SSDLite scores about 0 mAP: 0.05, half the demo's threshold, is
# a fifth of the trained figure. A segmentor that paints background everywhere scores about
# 21 mIoU on the tiny data (background is most pixels): 40 is nearly twice that and 30 points
# below the trained figure, room for float16 training and the GPU's rounding. Much shorter
# schedules (--iters well below 80) may legitimately miss them.
METRIC_FLOORS = {'det': 0.05, 'seg': 40.0}


def training_metric(task: str, metrics: Mapping[str, float],
                    floor: Optional[float] = None) -> float:
    """The codebase's metric of a tested model (``task`` 'det' or 'seg'); :class:`Failed` where
    it is missing (mmdet's CocoMetric prints none when no box passes the score threshold), not
    a number in its range, or below ``floor`` (default ``METRIC_FLOORS[task]``: a model that
    learned nothing misses it)."""
    key, top = METRICS[task]
    floor = METRIC_FLOORS[task] if floor is None else floor
    if key not in metrics:
        raise Failed(f'no {key} among the test metrics ({", ".join(sorted(metrics)) or "none"})')
    value = float(metrics[key])
    if not 0.0 <= value <= top:  # NaN fails too
        raise Failed(f'{key} is {value}, outside [0, {top:g}]')
    if value < floor:
        raise Failed(f'{key} is {value:g}, below the {floor:g} that a model which learned '
                     'anything reaches after the check\'s schedule')
    return value


def falling_losses(losses: List[float]) -> str:
    """The logged training losses' figure; :class:`Failed` unless they are finite and the last is
    below the first."""
    if len(losses) < 2:
        raise Failed(f'{len(losses)} training losses logged; at least 2 are needed')
    if not all(math.isfinite(v) for v in losses):
        raise Failed(f'a training loss is not finite: {losses[:8]}')
    if not losses[-1] < losses[0]:
        raise Failed(f'the loss did not fall: {losses[0]:.3f} -> {losses[-1]:.3f}')
    return f'{len(losses)} logged losses {losses[0]:.3f} -> {losses[-1]:.3f}'
