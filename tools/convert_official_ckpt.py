#!/usr/bin/env python
"""Convert an ImageNet backbone checkpoint to coordatt_mm's ``MobileNetV2CA`` / ``MobileNeXtCA``
key names: the authors' released MobileNetV2+CA classifier (``mbv2_ca.pth``), the authors'
MobileNeXt checkpoint, mmcls/mmpretrain/mmseg/mmdet MobileNetV2 files, or our own files (any
attention: CoordAtt, SE or CBAM, recognised from the keys; the width from the shapes).

    python tools/convert_official_ckpt.py mbv2_ca.pth checkpoints/mbv2_ca_coordatt_mm.pth

The output holds ``state_dict`` (backbone only; the ImageNet classifier is dropped) and
``meta`` (source, layout, width, attention); use it as
``init_cfg=dict(type='Pretrained', checkpoint=OUT)``.
"""
from __future__ import annotations  # torch's types in hints, torch imported after parsing

import argparse
import os
import re
import sys
from typing import TYPE_CHECKING, Dict, Optional

if TYPE_CHECKING:
    import torch

CANDIDATE_WIDTHS = (0.35, 0.5, 0.75, 1.0, 1.3, 1.4, 1.5, 2.0)
# attention type -> the key of its first 1x1 conv (whose weight is (bottleneck, C, 1, 1)), in
# the authors' layout (CA at position 6 of a block) or ours
ATTENTION_KEYS = {
    'CoordAtt': re.compile(r'(\.6\.conv1|\.attention\.conv_reduce)\.weight$'),
    'SE': re.compile(r'\.attention\.fc1\.weight$'),
    'CBAM': re.compile(r'\.attention\.mlp\.0\.weight$'),
}
DEFAULT_REDUCTION = {'CoordAtt': 32, 'SE': 24, 'CBAM': 24}


def guess_arch(state: Dict[str, torch.Tensor]):
    """MobileNeXtCA for 20-block files (the authors' ``features.20`` or our ``layer8``)."""
    from coordatt_mm import MobileNetV2CA, MobileNeXtCA
    blocks = {int(k.split('.')[1]) for k in state if re.match(r'features\.\d+\.', k)}
    mnext = max(blocks, default=0) == 20 or any(k.startswith('layer8.') for k in state)
    return MobileNeXtCA if mnext else MobileNetV2CA


def attention_from_keys(state: Dict[str, torch.Tensor]) -> Optional[dict]:
    """The attention config the checkpoint was trained with (None: plain), its reduction read
    from the widest layer's bottleneck."""
    for kind, pattern in ATTENTION_KEYS.items():
        shapes = [tuple(v.shape[:2]) for k, v in state.items() if pattern.search(k)]
        if shapes:
            mid, channels = max(shapes, key=lambda s: s[1])
            reduction = channels // mid if mid > 8 else DEFAULT_REDUCTION[kind]
            return dict(type=kind, reduction=reduction)
    return None


def convert(filename: str, widen_factor: Optional[float] = None, trust_pickle: bool = False):
    """(state_dict in our naming, meta); the width is found when not given."""
    from coordatt_mm.checkpoint import (
        CheckpointMismatchError,
        detect_layout,
        match_state_dict,
        read_state_dict,
    )
    state = read_state_dict(filename, trust_pickle=trust_pickle)
    cls, attention = guess_arch(state), attention_from_keys(state)
    error = None
    for w in [widen_factor] if widen_factor else CANDIDATE_WIDTHS:
        model = cls(widen_factor=w, attention=attention, out_indices=(_last_output(cls, state),))
        try:
            converted, report = match_state_dict(model, state, filename,
                                                 detect_layout(model, state))
        except CheckpointMismatchError as e:
            error = e
            continue
        meta = dict(source=str(filename), arch=cls.__name__, layout=report.layout,
                    widen_factor=w, attention=attention, ignored=report.ignored)
        return converted, meta
    if widen_factor:
        raise error
    raise CheckpointMismatchError(f'{filename}: fits {cls.__name__} at none of the widths '
                                  f'{CANDIDATE_WIDTHS}; last error: {error}')


def _last_output(cls, state: Dict[str, torch.Tensor]) -> int:
    """The output index that builds everything the file holds (a MobileNetV2 backbone of a
    segmentor may come without its 1280 conv)."""
    from coordatt_mm import MobileNetV2CA
    head = any(re.match(r'(conv2|conv\.0|conv\.1)\.', k) for k in state)
    return 6 if cls is MobileNetV2CA and not head else 7


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    ap.add_argument('src', help='checkpoint to convert: path or URL')
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
    import torch
    try:
        state, meta = convert(args.src, args.widen_factor, args.trust_pickle)
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
