"""``tools/train.py``: train any coordatt_mm config (see coordatt_mm/apis/run.py)."""
import argparse
import sys
from typing import List, Optional

from coordatt_cli.common import add_run_options, cfg_options, fail, missing


def parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(description='Train a detector, segmentor or classifier')
    ap.add_argument('config', help='config file')
    add_run_options(ap)
    ap.add_argument('--resume', nargs='?', const='auto', default=None,
                    help='resume from CKPT, or from the latest checkpoint of the work dir')
    ap.add_argument('--amp', action='store_true',
                    help="mixed precision: mmengine's AmpOptimWrapper (float16, dynamic loss "
                         "scale; GPU)")
    ap.add_argument('--skip-bad-samples', action='store_true',
                    help='check the training data first (tools/check_dataset.py) and train on '
                         'the samples that pass, with a warning, instead of stopping')
    return ap


def main(argv: Optional[List[str]] = None) -> int:
    args = parser().parse_args(argv)
    error = missing([(args.config, 'config')])
    if error:
        return fail(error, 1)
    from coordatt_mm.apis.run import train
    return train(args.config, args.work_dir, args.resume, args.amp, args.skip_bad_samples,
                 cfg_options(args.cfg_options), args.launcher, args.local_rank)


if __name__ == '__main__':
    sys.exit(main())
