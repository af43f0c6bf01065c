#!/usr/bin/env python
"""One report from the GPU check's runs on the lent machine (run.sh runs tools/gpu_check.py in
phases, ``--only`` some checks each): for every check, the row of the run that ran it, else
``not run`` with run.sh's reason.

    python tools/gpu_pack/merge_report.py --out DIR [--note CHECK=WHY ...] [--line TEXT ...]
        [RUN.json ...]

Writes ``DIR/gpu_check.md`` and ``DIR/gpu_check.json``, prints the table; the exit status is 1
unless every check passed. Standard library only.
"""
import argparse
import json
import os
import os.path as osp
import sys
from typing import Dict, List, Optional


def merge(runs: List[dict], notes: Dict[str, str], checks: List[str]) -> List[Dict[str, str]]:
    """The rows of ``checks``: each from the first run that did not skip it, else not run."""
    rows = []
    for name in checks:
        ran = [r for run in runs for r in run['checks']
               if r['check'] == name and r['result'] != 'skipped']
        if ran:
            rows.append(ran[0])
        else:
            # 'not selected' says only that another run was to run it
            reasons = [r['figures'] for run in runs for r in run['checks']
                       if r['check'] == name and r['figures'] != 'not selected']
            why = notes.get(name) or (reasons[0] if reasons else
                                      'no run reported it (see checks.log)')
            rows.append(dict(check=name, result='not run', figures=why))
    return rows


def main(argv: Optional[List[str]] = None) -> int:
    ap = argparse.ArgumentParser(description="Merge the GPU check's runs into one report.")
    ap.add_argument('runs', nargs='*', help="the runs' gpu_check.json files (missing ones are "
                                            'passed over)')
    ap.add_argument('--out', required=True, help='where gpu_check.md and gpu_check.json go')
    ap.add_argument('--note', action='append', default=[], metavar='CHECK=WHY',
                    help='why a check did not run')
    ap.add_argument('--line', action='append', default=[], metavar='TEXT',
                    help='a line for the report, under the header')
    args = ap.parse_args(argv)
    notes = dict(n.split('=', 1) for n in args.note)
    from coordatt_cli.gpu_check import CHECKS  # the command line's module: standard library
    runs = []
    for path in args.runs:
        if osp.isfile(path):
            with open(path) as f:
                runs.append(json.load(f))
    rows = merge(runs, notes, list(CHECKS))
    # the last run's header: it saw the machine as the set-up left it (mmcv built or not)
    header = runs[-1]['header'] if runs else 'GPU check: no run of tools/gpu_check.py reported'
    lines = [header, ''] + [f'- {line}' for line in args.line] + [
        '', '| check | result | figures | s |', '|---|---|---|---|']
    lines += [f'| {r["check"]} | {r["result"]} | {r["figures"]} | {r.get("seconds", "")} |'
              for r in rows]
    text = '\n'.join(lines) + '\n'
    os.makedirs(args.out, exist_ok=True)
    with open(osp.join(args.out, 'gpu_check.md'), 'w') as f:
        f.write(text)
    with open(osp.join(args.out, 'gpu_check.json'), 'w') as f:
        json.dump(dict(header=header, notes=args.line, checks=rows), f, indent=2)
    print(text, end='')
    return 0 if all(r['result'] == 'pass' for r in rows) else 1


if __name__ == '__main__':
    sys.exit(main())
