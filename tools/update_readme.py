#!/usr/bin/env python
"""Regenerate the tables of README.md and docs/ (performance.md, models.md, attention_cost.md)
and the model index (model-index.yml, configs/*/metafile.yml) from files
(``coordatt_mm/analysis/tables.py``).

    python tools/update_readme.py           # rewrite them
    python tools/update_readme.py --check   # exit 1 if one is out of date
"""
import argparse
import os.path as osp
import sys


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    ap.add_argument('--check', action='store_true', help='only check that they are current')
    args = ap.parse_args(argv)
    from coordatt_mm.analysis.tables import REPO, update
    stale = [osp.relpath(p, REPO) for p in update(check=args.check)]
    if args.check and stale:
        print(f'out of date: {", ".join(stale)}; run python tools/update_readme.py',
              file=sys.stderr)
        return 1
    print(f'updated: {", ".join(stale)}' if stale else 'tables are up to date')
    return 0


if __name__ == '__main__':
    sys.exit(main())
