#!/usr/bin/env python
"""Parameters and M-Adds of our models beside the paper's, as a Markdown table
(``coordatt_mm/analysis/complexity.py``; docs/performance.md embeds it).

    python tools/analysis/complexity.py [--out FILE.md]
"""
import argparse
import sys


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    ap.add_argument('--out', help='also write the table to this file')
    args = ap.parse_args(argv)
    from coordatt_mm.analysis.complexity import markdown
    table = markdown()
    print(table)
    if args.out:
        with open(args.out, 'w') as f:
            f.write(table + '\n')
    return 0


if __name__ == '__main__':
    sys.exit(main())
