#!/usr/bin/env python
"""Check a config's datasets before training.

    python tools/check_dataset.py CONFIG [--split train val test] [--no-decode]

Reports, one line each with the file name: missing or unreadable images; boxes outside the
image or of zero area; segmentation masks whose size differs from the image or whose labels
exceed the class count (other than the ignore index 255); then a summary count.
Exit status 0 when clean, 1 when problems were found, 2 when the config cannot be read.
"""
import argparse
import sys


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    ap.add_argument('config')
    ap.add_argument('--split', nargs='+', default=['train', 'val'],
                    choices=['train', 'val', 'test'])
    ap.add_argument('--no-decode', action='store_true',
                    help='only open image headers (faster; misses truncated files)')
    args = ap.parse_args(argv)
    from mmengine.config import Config

    import coordatt_mm  # noqa: F401
    from coordatt_mm.datasets.check import build_split, check_dataset
    from coordatt_mm.registry import task_of
    try:
        cfg = Config.fromfile(args.config)
    except Exception as e:
        print(f'error: {args.config}: cannot read config ({e})', file=sys.stderr)
        return 2
    total = 0
    for split in args.split:
        n, problems = check_dataset(build_split(cfg, split), task_of(cfg),
                                    level='header' if args.no_decode else 'decode')
        for p in problems:
            print(f'{split}: {p}')
        print(f'{split}: {n} samples checked, {len(problems)} problems')
        total += len(problems)
    return 1 if total else 0


if __name__ == '__main__':
    sys.exit(main())
