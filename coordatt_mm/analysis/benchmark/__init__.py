"""Side-by-side benchmarks, baseline vs Coordinate Attention, in one process
(``tools/analysis/benchmark.py``).

    python tools/analysis/benchmark.py
        [--sections layer,eager,onnxruntime,openvino,training,compile,attention]
        [--batch 1,8] [--train-batch 8] [--threads 2] [--repeats 30] [--warmup 5] [--size 320]
        [--device cpu|cuda] [--channels-last] [--amp] [--compile] [--out FILE.md]

Every comparison runs its models interleaved (A, B, C, A, B, C, ...) after a warm-up, so that
the ratios of one table share the machine's state; CUDA timings are synchronised.
``--amp`` runs the eager and training sections under autocast (float16 with a gradient scaler
on CUDA, bfloat16 on the CPU), as ``--amp`` training does. A run opens with the machine: the
device and settings, then the CPU's vector features (AVX2, AVX-512, VNNI) and the runtimes'
versions. Sections, one module each:

- ``layer``: the CA layer alone against the released forward and timm's;
- ``eager``: eval latency in NCHW and channels-last, per build of the fused kernels;
- ``onnxruntime``, ``openvino`` (``deployed``, runtimes in ``runtimes``): the exported
  models in FP32 and INT8 on each runtime, and ONNX Runtime's profile of the backbones;
- ``training``: step time and peak memory of the backbone;
- ``compile`` (``torch_compile``; not in the default run: compilation takes minutes): whether
  ``torch.compile`` pays for a folder of images;
- ``attention`` (not in the default run: about an hour): every attention module (SE, CBAM,
  ECA, Triplet, SimAM, CA, with matched activations) in the backbone, SSDLite and DeepLabV3:
  parameters, M-Adds, eager, training and each runtime, each against the plain network in one
  run; its figures go to ``--attention-json`` for docs/attention_cost.md and the picture.

Each section (``attention`` aside) ends with its targets, judged on its own numbers.
``core`` holds what they share (interleaved timing, ratios as medians of per-round ratios, the
report, its targets and verdicts, the machine's header, the run) and ``models`` the networks
they compare. A new section is a module here that registers its function with
:func:`core.section` and its targets in :data:`core.TARGETS`, imported below, with its name
added to ``coordatt_cli/benchmark.py`` (which parses the command line before anything heavy
is imported).
"""
from coordatt_mm.analysis.benchmark import (
    attention,
    deployed,
    eager,
    layer,
    torch_compile,
    training,
)
from coordatt_mm.analysis.benchmark.core import (
    SECTIONS,
    TARGETS,
    TIMES,
    Report,
    machine_line,
    round_ratio,
    run,
    section,
    time_interleaved,
    verdict,
)
from coordatt_mm.analysis.benchmark.deployed import DEPLOYED, DeployedModels, deployed_models
from coordatt_mm.analysis.benchmark.models import (
    DL_CA,
    DL_PLAIN,
    OURS,
    OURS_ATEN,
    SSD_MM,
    SSD_OURS,
    ReleasedFormCoordAtt,
    aten_only,
    backbones,
    dense_models,
    dense_pairs,
    released_form,
)
from coordatt_mm.analysis.benchmark.runtimes import RUNTIMES, Runtime

__all__ = ['DEPLOYED', 'DL_CA', 'DL_PLAIN', 'OURS', 'OURS_ATEN', 'RUNTIMES', 'SECTIONS',
           'SSD_MM', 'SSD_OURS', 'TARGETS', 'TIMES', 'DeployedModels', 'ReleasedFormCoordAtt',
           'Report', 'Runtime', 'aten_only', 'attention', 'backbones', 'deployed',
           'deployed_models', 'dense_models', 'dense_pairs', 'eager', 'layer', 'machine_line',
           'released_form', 'round_ratio', 'run', 'section', 'time_interleaved',
           'torch_compile', 'training', 'verdict']
