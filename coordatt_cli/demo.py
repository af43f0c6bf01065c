"""``tools/demo.py`` (``make demo``): the whole job on the tiny bundled data, on CPU (see
coordatt_mm/apis/demo.py)."""
import argparse
import os.path as osp
import sys
import warnings
from typing import List, Optional

REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))


def parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(description='train, evaluate and run the tiny demo models')
    ap.add_argument('--work-dir', default=osp.join(REPO, 'work_dirs', 'demo'))
    ap.add_argument('--det-epochs', type=int, default=None,
                    help="detection epochs (default: the demo config's)")
    ap.add_argument('--seg-iters', type=int, default=None,
                    help="segmentation iterations (default: the demo config's)")
    ap.add_argument('--publish', default=None,
                    help='also copy one output picture per task and the summary into this '
                         'folder (docs/ holds the ones the README shows)')
    return ap


def main(argv: Optional[List[str]] = None) -> int:
    args = parser().parse_args(argv)
    # the libraries' import-time deprecation notices are not the demo user's concern
    warnings.filterwarnings('ignore', category=UserWarning)
    warnings.filterwarnings('ignore', category=DeprecationWarning)
    from coordatt_mm.apis.demo import demo
    return demo(args.work_dir, args.det_epochs, args.seg_iters, args.publish)


if __name__ == '__main__':
    sys.exit(main())
