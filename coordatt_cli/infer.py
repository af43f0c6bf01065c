"""``coordatt-infer``: a detector or segmentor on images (see coordatt_mm/apis/infer.py)."""
import argparse
import sys
from typing import List, Optional

from coordatt_cli.common import fail, missing

EXIT_NOTHING = 2


def parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(
        prog='coordatt-infer',
        description='Run a detector or segmentor on images: a PyTorch checkpoint, or an '
                    'end-to-end ONNX export (.onnx, run by ONNX Runtime).',
        epilog='Exit status: 0 all images done, 1 some failed, 2 none read or none found.')
    ap.add_argument('config')
    ap.add_argument('model', help='checkpoint (.pth) or ONNX export (.onnx)')
    ap.add_argument('input', help='image, folder (recursive) or glob')
    ap.add_argument('--out-dir', default=None,
                    help='output folder (default: work_dirs/infer/<config name>)')
    ap.add_argument('--device', default=None,
                    help='cpu or cuda (default: cuda if available; ONNX models: its CUDA '
                         'execution provider)')
    ap.add_argument('--batch-size', type=int, default=1)
    ap.add_argument('--score-thr', type=float, default=0.3, help='detection score threshold')
    ap.add_argument('--overwrite', action='store_true', help='redo images that have outputs')
    ap.add_argument('--quiet', action='store_true', help='no progress or summary lines')
    return ap


def main(argv: Optional[List[str]] = None) -> int:
    import os.path as osp
    ap = parser()
    args = ap.parse_args(argv)
    if args.batch_size < 1:
        ap.error('--batch-size must be >= 1')
    what = 'model' if args.model.lower().endswith('.onnx') else 'checkpoint'
    error = missing([(args.config, 'config'), (args.model, what)])
    if error:
        return fail(error, EXIT_NOTHING)
    out_dir = args.out_dir or osp.join(
        'work_dirs', 'infer', osp.splitext(osp.basename(args.config))[0])
    from coordatt_mm.apis.infer import TorchPredictor, run
    predictor_type = TorchPredictor
    if what == 'model':  # an export: run by ONNX Runtime
        from coordatt_mm.deploy.inference import OnnxPredictor as predictor_type
    return run(args.config, args.model, args.input, out_dir, args.device, args.batch_size,
               args.score_thr, args.overwrite, args.quiet, predictor_type)


if __name__ == '__main__':
    sys.exit(main())
