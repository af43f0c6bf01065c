"""``tools/test.py``: score a checkpoint or an ONNX export with a config's test set and its
codebase's evaluator (see coordatt_mm/apis/run.py and coordatt_mm/deploy/evaluation.py)."""
import argparse
import sys
from typing import List, Optional

from coordatt_cli.common import add_run_options, cfg_options, fail, missing


def parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(
        description='Test a detector, segmentor or classifier: a checkpoint, or an '
                    'end-to-end ONNX export (.onnx) run by ONNX Runtime; the metrics also go '
                    'to <work_dir>/test_metrics.json')
    ap.add_argument('config', help='config file')
    ap.add_argument('model', help='checkpoint (.pth) or ONNX export (.onnx)')
    add_run_options(ap)
    ap.add_argument('--device', default='cpu',
                    help='ONNX models: cpu or cuda (ONNX Runtime\'s CUDA execution provider)')
    return ap


def main(argv: Optional[List[str]] = None) -> int:
    args = parser().parse_args(argv)
    what = 'model' if args.model.lower().endswith('.onnx') else 'checkpoint'
    error = missing([(args.config, 'config'), (args.model, what)])
    if error:
        return fail(error, 1)
    run = (args.config, args.model, args.work_dir, cfg_options(args.cfg_options),
           args.launcher, args.local_rank)
    if what == 'model':  # an export: scored with ONNX Runtime
        from coordatt_mm.deploy.evaluation import evaluate_onnx
        return evaluate_onnx(*run, args.device)
    from coordatt_mm.apis.run import test
    return test(*run)


if __name__ == '__main__':
    sys.exit(main())
