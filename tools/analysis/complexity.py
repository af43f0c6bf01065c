#!/usr/bin/env python
"""Parameters and M-Adds of our models beside the paper's, as a Markdown table
(``coordatt_mm/analysis/complexity.py``; docs/performance.md embeds it), or with
``--positions`` those of every attention module at each ``attention_position``
(docs/models.md embeds that one).

    python tools/analysis/complexity.py [--out docs/complexity.md]
    python tools/analysis/complexity.py --positions [--out docs/attention_positions.md]
"""
import argparse
import sys


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    ap.add_argument('--out', help='also write the table to this file')
    ap.add_argument('--positions', action='store_true',
                    help='the attention modules at each position instead of the paper table')
    args = ap.parse_args(argv)
    from coordatt_mm.analysis.complexity import markdown, position_markdown
    table = position_markdown() if args.positions else markdown()
    print(table)
    if args.out:
        with open(args.out, 'w') as f:
            f.write(table + '\n')
    return 0


if __name__ == '__main__':
    sys.exit(main())
