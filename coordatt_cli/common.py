"""What several commands share: options, checks of files named on the command line."""
import argparse
import os.path as osp
import sys
from typing import Iterable, List, Optional, Tuple


def add_run_options(ap: argparse.ArgumentParser) -> None:
    """The options of tools/train.py and tools/test.py besides their positionals."""
    ap.add_argument('--work-dir', help='where logs and checkpoints go')
    ap.add_argument('--cfg-options', nargs='+', metavar='KEY=VALUE',
                    help='override config entries, e.g. train_cfg.max_epochs=1')
    ap.add_argument('--launcher', choices=['none', 'pytorch', 'slurm', 'mpi'], default='none')
    ap.add_argument('--local_rank', '--local-rank', type=int, default=0)


def cfg_options(pairs: Optional[List[str]]) -> Optional[dict]:
    """``--cfg-options`` parsed as mmengine's DictAction does (lists, tuples, numbers)."""
    if not pairs:
        return None
    from mmengine.config import DictAction
    ns = argparse.Namespace()
    DictAction(option_strings=['--cfg-options'], dest='opts')(None, ns, pairs)
    return ns.opts


def missing(files: Iterable[Tuple[str, str]]) -> Optional[str]:
    """The first ``(path, what)`` that is not a file, as an error line, or None."""
    for path, what in files:
        if not osp.isfile(path):
            return f'error: {path}: {what} not found'
    return None


def fail(message: str, status: int) -> int:
    print(message, file=sys.stderr)
    return status
