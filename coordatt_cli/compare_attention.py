"""``tools/analysis/compare_attention.py``: the demo detector and segmentor trained, evaluated,
exported and timed with each attention type, in one table (see
coordatt_mm/analysis/compare_attention.py)."""
import argparse
import os.path as osp
import sys
import warnings
from typing import List, Optional

from coordatt_cli.common import fail

REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))
# here, not in coordatt_mm.analysis.compare_attention, so that --help needs no torch
DEFAULT_TYPES = ('none', 'SE', 'ECA', 'TripletAttention', 'SimAM', 'CoordAtt')


def parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(
        description='Train, evaluate, export (ONNX, checked) and time the tiny demo detector '
                    'and segmentor with each attention type; one table (Markdown and JSON). '
                    'On the tiny data the metrics only show that each pipeline works.')
    ap.add_argument('--attention', nargs='+', default=list(DEFAULT_TYPES), metavar='TYPE',
                    help='registered attention layers (SE, CBAM, ECA, TripletAttention, SimAM, '
                         f'CoordAtt) or none (default: {" ".join(DEFAULT_TYPES)})')
    ap.add_argument('--work-dir', default=osp.join(REPO, 'work_dirs', 'compare_attention'))
    ap.add_argument('--det-epochs', type=int, default=None,
                    help="detection epochs (default: the demo config's)")
    ap.add_argument('--seg-iters', type=int, default=None,
                    help="segmentation iterations (default: the demo config's)")
    ap.add_argument('--tasks', nargs='+', choices=('det', 'seg'), default=['det', 'seg'])
    ap.add_argument('--repeats', type=int, default=10, help='interleaved latency runs')
    ap.add_argument('--warmup', type=int, default=2)
    ap.add_argument('--threads', type=int, default=2)
    return ap


def main(argv: Optional[List[str]] = None) -> int:
    ap = parser()
    args = ap.parse_args(argv)
    repeated = sorted({t for t in args.attention if args.attention.count(t) > 1})
    if repeated:
        return fail(f'error: --attention names {", ".join(repeated)} more than once', 2)
    for name in ('det_epochs', 'seg_iters', 'repeats', 'threads'):
        value = getattr(args, name)
        if value is not None and value < 1:
            return fail(f'error: --{name.replace("_", "-")} {value}: must be at least 1', 2)
    # the libraries' import-time deprecation notices are not the user's concern
    warnings.filterwarnings('ignore', category=UserWarning)
    warnings.filterwarnings('ignore', category=DeprecationWarning)
    from coordatt_mm.analysis.compare_attention import compare, unknown_types
    error = unknown_types(args.attention)
    if error:
        return fail(error, 2)
    compare(args.attention, osp.abspath(args.work_dir), args.det_epochs, args.seg_iters,
            args.tasks, args.repeats, args.warmup, args.threads)
    return 0


if __name__ == '__main__':
    sys.exit(main())
