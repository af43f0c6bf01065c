"""Section ``eager``: eval latency at each ``--batch``, ``torch.inference_mode``, in NCHW and in
channels-last (only the latter with ``--channels-last``): the backbone (MobileNetV2, stem to
the 1280 conv: plain; with our CA on the widest fused CPU kernels the CPU runs, and on each
other build of them; on PyTorch ops only; in the released CA forward), SSDLite320 (mmdet's own
config vs ours with CA, to raw head outputs) and DeepLabV3 OS16 (to logits)."""
from typing import List

import torch
import torch.nn as nn

from coordatt_mm import ops
from coordatt_mm.analysis.benchmark.core import (
    TARGETS,
    TIMES,
    Report,
    amp_dtype,
    autocast,
    prepare,
    runnable,
    section,
    time_interleaved,
)
from coordatt_mm.analysis.benchmark.models import (
    DL_CA,
    OURS,
    OURS_ATEN,
    SSD_OURS,
    aten_only,
    backbones,
    dense_pairs,
    released_form,
)

TARGETS.extend([
    ('eager', 'backbone', OURS, 1.10, 'MobileNetV2CA backbone <= 1.10x the plain latency'),
    ('eager', 'SSDLite320', SSD_OURS, 1 / 0.95,
     "SSDLite-MobileNetV2-CA >= 0.95x the images/s of mmdet's SSDLite-MobileNetV2"),
    ('eager', 'DeepLabV3', DL_CA, 1.10, 'DeepLabV3 + CA <= 1.10x the plain latency')])


class WithKernels(nn.Module):
    """``model`` run with the fused kernels of another build.

    Args:
        model (nn.Module): the network to run.
        build (str): one of ``ops.kernel_builds()`` ('default', 'avx2', 'avx512').
    """

    def __init__(self, model: nn.Module, build: str) -> None:
        super().__init__()
        self.model, self.build = model, build

    def forward(self, x):
        with ops.using_kernels(self.build):
            return self.model(x)


def memory_formats(args) -> List[str]:
    """Eager runs both layouts side by side unless ``--channels-last`` asks for that one."""
    return ['channels-last'] if args.channels_last else ['NCHW', 'channels-last']


@section('eager')
def eager_section(rep: Report, args, device) -> None:
    plain, ca = backbones()
    # the kernel builds this CPU runs besides the one in use (the default row)
    others = ([b for b in ops.kernel_builds() if b != ops.kernel_build()]
              if device.type == 'cpu' else [])
    notes, pairs = [], dense_pairs()
    for fmt in memory_formats(args):
        last = fmt == 'channels-last'
        rep.start(f'Eager PyTorch, eval, {fmt}'
                  + (f', autocast {amp_dtype(device)}' if args.amp else '')
                  + (', torch.compile' if args.compile else ''), TIMES)
        for batch in args.batch:
            x = torch.randn(batch, 3, args.size, args.size, device=device)
            if last:
                x = x.contiguous(memory_format=torch.channels_last)
            backbone = {'MobileNetV2': plain, OURS: ca}
            backbone.update({f'MobileNetV2 + CA (ours, {b} kernels)': WithKernels(ca, b)
                             for b in others})
            backbone.update({OURS_ATEN: aten_only(ca),
                             'MobileNetV2 + CA (released form)': released_form(ca)})
            comparisons = [(f'backbone, stem to 1280 conv, batch {batch}, {args.size}², {fmt}',
                            backbone, 'MobileNetV2')]
            comparisons += [(f'{t}, batch {batch}, {args.size}², {fmt}', nets, base)
                            for t, nets, base in pairs]
            for title, nets, base in comparisons:
                models = {k: prepare(v, device, last, args.compile) for k, v in nets.items()}
                with torch.inference_mode(), autocast(args, device):
                    fns, failed = runnable({k: (lambda m=m: m(x)) for k, m in models.items()})
                    notes += [f'- {title}: {n}' for n in failed]
                    if base in fns:
                        rep.table('eager', title, base,
                                  time_interleaved(fns, device, args.repeats, args.warmup), batch)
    rep.lines += ([''] + notes) if notes else []
    rep.verdicts('eager')
