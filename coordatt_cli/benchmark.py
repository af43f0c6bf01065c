"""``tools/analysis/benchmark.py``: side-by-side benchmarks, baseline vs Coordinate Attention
(see coordatt_mm/analysis/benchmark/)."""
import argparse
import sys
from typing import List, Optional

# the sections coordatt_mm.analysis.benchmark registers, named here so that the command line
# parses before torch is imported
SECTIONS = ('layer', 'eager', 'onnxruntime', 'openvino', 'training', 'compile')


def parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(
        description='Side-by-side benchmarks, baseline vs Coordinate Attention, in one process')
    ap.add_argument('--sections', default='layer,eager,onnxruntime,openvino,training',
                    help=f'comma-separated, from {", ".join(SECTIONS)}')
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
    return ap


def main(argv: Optional[List[str]] = None) -> int:
    ap = parser()
    args = ap.parse_args(argv)
    unknown = [s for s in args.sections.split(',') if s not in SECTIONS]
    if unknown:
        ap.error(f'unknown section(s) {unknown}; choose from {", ".join(SECTIONS)}')
    try:
        [int(b) for b in args.batch.split(',')]
    except ValueError:
        ap.error(f'--batch {args.batch}: comma-separated integers expected')
    from coordatt_mm.analysis.benchmark import run
    return run(args)


if __name__ == '__main__':
    sys.exit(main())
