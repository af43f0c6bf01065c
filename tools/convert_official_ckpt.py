#!/usr/bin/env python
"""Convert the authors' released MobileNetV2+CA classifier (``mbv2_ca.pth``), the authors'
MobileNeXt ImageNet checkpoint, or an mmcls MobileNetV2 checkpoint to coordatt_mm's
``MobileNetV2CA`` / ``MobileNeXtCA`` key names.

    python tools/convert_official_ckpt.py mbv2_ca.pth checkpoints/mbv2_ca_coordatt_mm.pth

The output holds ``state_dict`` (backbone only; the ImageNet classifier is dropped) and
``meta`` (source, layout, width); use it as ``init_cfg=dict(type='Pretrained', checkpoint=OUT)``.
"""
import argparse
import os
import sys

import torch

from coordatt_mm.checkpoint import convert_to_ours


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    ap.add_argument('src', help='released (or mmcls) checkpoint: path or URL')
    ap.add_argument('dst', help='output .pth in coordatt_mm naming')
    ap.add_argument('--widen-factor', type=float, default=None,
                    help='width of the checkpoint (default: found from its shapes)')
    ap.add_argument('--overwrite', action='store_true', help='replace an existing DST')
    ap.add_argument('--trust-pickle', action='store_true',
                    help='read a local SRC that carries arbitrary Python objects (only for '
                         'files you trust: this lifts torch\'s safe unpickler)')
    args = ap.parse_args(argv)
    if os.path.exists(args.dst) and not args.overwrite:
        print(f'error: {args.dst} exists (use --overwrite)', file=sys.stderr)
        return 2
    try:
        state, meta = convert_to_ours(args.src, args.widen_factor, args.trust_pickle)
    except (RuntimeError, FileNotFoundError) as e:
        print(f'error: {e}', file=sys.stderr)
        return 1
    os.makedirs(os.path.dirname(os.path.abspath(args.dst)), exist_ok=True)
    tmp = args.dst + '.tmp'
    torch.save(dict(state_dict=state, meta=meta), tmp)
    os.replace(tmp, args.dst)  # never leave a half-written file under the final name
    print(f'wrote {args.dst}: {meta["arch"]}, {len(state)} tensors, {meta["layout"]} layout, '
          f'widen_factor={meta["widen_factor"]}, attention={meta["attention"]}, '
          f'dropped {len(meta["ignored"])} classifier keys')
    return 0


if __name__ == '__main__':
    sys.exit(main())
