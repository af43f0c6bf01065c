"""Section ``layer``: the 16 CA layers of MobileNetV2 at ``--size``, each on its own input,
batch 1, eval: ours (fused / PyTorch ops) vs the released forward vs timm's ``CoordAttn``
when timm is installed."""
import torch

from coordatt_mm import CoordAtt
from coordatt_mm.analysis.benchmark.core import (
    TARGETS,
    TIMES,
    Report,
    prepare,
    runnable,
    section,
    time_interleaved,
)
from coordatt_mm.analysis.benchmark.models import (
    ManyLayers,
    ReleasedFormCoordAtt,
    aten_only,
    ca_shapes,
    with_bn_statistics,
)

TARGETS.append(('layer', 'CA layer', 'CoordAtt (ours)', 1 / 1.3,
                'CA layer >= 1.3x faster than the released forward'))


@section('layer')
def layer_section(rep: Report, args, device) -> None:
    shapes = ca_shapes(args.size)
    torch.manual_seed(0)
    ours = [with_bn_statistics(CoordAtt(c)) for c, _, _ in shapes]
    models = {'CoordAtt (ours)': ManyLayers(ours),
              'CoordAtt (ours, PyTorch ops only)': aten_only(ManyLayers(ours)),
              'released forward': ManyLayers([ReleasedFormCoordAtt(m) for m in ours])}
    try:  # optional dependency; the released widths (mip = max(8, C // 32), biased convs)
        import timm
        from timm.layers.coord_attn import CoordAttn
        models[f'timm {timm.__version__} CoordAttn'] = ManyLayers(
            [CoordAttn(c, rd_channels=max(8, c // 32), bias=True) for c, _, _ in shapes])
    except ImportError:
        pass
    xs = [torch.randn(1, c, h, w, device=device) for c, h, w in shapes]
    title = f'CA layer, 16 MobileNetV2 shapes at {args.size}²'
    rep.start('The CA layer alone, eval, batch 1', TIMES)
    with torch.inference_mode():
        models = {k: prepare(v, device, False, args.compile) for k, v in models.items()}
        fns, failed = runnable({k: (lambda m=m: m(xs)) for k, m in models.items()})
        rep.table('layer', title, 'released forward',
                  time_interleaved(fns, device, args.repeats, args.warmup))
    rep.lines += [f'- {title}: {n}' for n in failed]
    if not any(k.startswith('timm') for k in models):
        rep.lines += ['', 'timm is not installed (`pip install timm`): no timm row.']
    rep.verdicts('layer')
