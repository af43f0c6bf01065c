#!/usr/bin/env python
"""The picture of what each attention module costs (latency ratio against added parameters,
one panel per runtime, published ImageNet top-1 as labels) from the figures of
``tools/analysis/benchmark.py --sections attention --attention-json FILE``
(``coordatt_mm/analysis/attention_cost.py``).

    python tools/analysis/attention_plot.py docs/attention_cost.json --out docs/attention_cost.png
"""
import argparse
import sys


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    ap.add_argument('figures', help='the JSON the attention benchmark section wrote')
    ap.add_argument('--out', required=True, help='the PNG to write')
    args = ap.parse_args(argv)
    from coordatt_mm.analysis.attention_cost import load, plot
    try:
        panels = plot(load(args.figures), args.out)
    except (FileNotFoundError, ValueError) as e:
        print(f'error: {e}', file=sys.stderr)
        return 1
    print(f'{args.out}: {len(panels)} panels ({", ".join(panels)})')
    return 0


if __name__ == '__main__':
    sys.exit(main())
