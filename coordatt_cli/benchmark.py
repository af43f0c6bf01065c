"""``tools/analysis/benchmark.py``: side-by-side benchmarks, baseline vs Coordinate Attention
(see coordatt_mm/analysis/benchmark/)."""
import argparse
import sys
from typing import List, Optional

# the sections coordatt_mm.analysis.benchmark registers, named here so that the command line
# parses before torch is imported
SECTIONS = ('layer', 'eager', 'onnxruntime', 'openvino', 'training', 'compile', 'attention')
DEFAULT_SECTIONS = 'layer,eager,onnxruntime,openvino,training'
# the attention section's choices (coordatt_mm/analysis/benchmark/attention.py: ATTENTIONS,
# MODELS, MEASURES)
ATTENTION_TYPES = ('none', 'SE', 'SE-hswish', 'CBAM', 'CBAM-hswish', 'ECA', 'Triplet', 'SimAM',
                   'CA', 'CA-ReLU')
ATTENTION_MODELS = ('backbone', 'ssdlite', 'deeplabv3')
ATTENTION_MEASURES = ('complexity', 'eager', 'training', 'onnxruntime', 'openvino')


def parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(
        description='Side-by-side benchmarks, baseline vs Coordinate Attention, in one process')
    ap.add_argument('--sections', default=DEFAULT_SECTIONS,
                    help=f'comma-separated, from {", ".join(SECTIONS)} (default: '
                         f'{DEFAULT_SECTIONS}; compile and attention take long)')
    ap.add_argument('--batch', default='1,8', help='eager batch sizes')
    ap.add_argument('--train-batch', type=int, default=8)
    ap.add_argument('--threads', type=int, default=2)
    ap.add_argument('--repeats', type=int, default=30)
    ap.add_argument('--warmup', type=int, default=5)
    ap.add_argument('--size', type=int, default=320)
    ap.add_argument('--device', default=None, help='cpu or cuda (default: cuda if available)')
    ap.add_argument('--channels-last', action='store_true',
                    help='eager and training in channels-last only (eager runs NCHW and '
                         'channels-last side by side otherwise)')
    ap.add_argument('--amp', action='store_true',
                    help='autocast: float16 on CUDA (with a gradient scaler), bfloat16 on CPU')
    ap.add_argument('--compile', action='store_true', help='torch.compile the eager models')
    ap.add_argument('--out', help='also write the Markdown tables here')
    att = ap.add_argument_group('section attention')
    att.add_argument('--attention-types', default=None,
                     help=f'comma-separated, from {", ".join(ATTENTION_TYPES)} (default: all; '
                          f'none, the plain network, is always measured)')
    att.add_argument('--attention-models', default=None,
                     help=f'comma-separated, from {", ".join(ATTENTION_MODELS)} (default: all)')
    att.add_argument('--attention-measures', default=None,
                     help=f'comma-separated, from {", ".join(ATTENTION_MEASURES)} (default: '
                          f'all; a runtime that is not installed is skipped)')
    att.add_argument('--attention-json', default='work_dirs/attention_cost.json',
                     help='write the figures here (docs/attention_cost.json feeds the docs)')
    att.add_argument('--attention-plot', default=None,
                     help='also draw the picture here (PNG; tools/analysis/attention_plot.py '
                          'draws it from the figures later)')
    return ap


def _unknown(value: Optional[str], known) -> List[str]:
    return [v for v in (value or '').split(',') if v and v not in known]


def main(argv: Optional[List[str]] = None) -> int:
    ap = parser()
    args = ap.parse_args(argv)
    unknown = _unknown(args.sections, SECTIONS)
    if unknown:
        ap.error(f'unknown section(s) {unknown}; choose from {", ".join(SECTIONS)}')
    for option, known in (('--attention-types', ATTENTION_TYPES),
                          ('--attention-models', ATTENTION_MODELS),
                          ('--attention-measures', ATTENTION_MEASURES)):
        unknown = _unknown(getattr(args, option[2:].replace('-', '_')), known)
        if unknown:
            ap.error(f'{option}: unknown {unknown}; choose from {", ".join(known)}')
    try:
        [int(b) for b in args.batch.split(',')]
    except ValueError:
        ap.error(f'--batch {args.batch}: comma-separated integers expected')
    from coordatt_mm.analysis.benchmark import run
    return run(args)


if __name__ == '__main__':
    sys.exit(main())
