#!/usr/bin/env python
"""Export a coordatt_mm config + checkpoint to ONNX and check it against torch.

    python tools/deploy/export_onnx.py CONFIG CKPT OUT.onnx [--shape H W] [--opset 17]

What is exported: the network from the normalised image to raw head outputs.
- detection (SSDLite): ``cls_score_i`` and ``bbox_pred_i`` for the 6 levels; SSD priors,
  box decoding and NMS are not in the graph (mmdet's ``bbox_head.predict_by_feat`` does them);
- segmentation (DeepLabV3): ``logits`` (N, classes, H, W) at the input resolution.
The input is ``input`` (1, 3, H, W), already normalised as the config's data_preprocessor does.
After export, onnxruntime runs it on a random input and the max |torch - onnx| is printed
(non-zero exit if above --tol).
"""
import argparse
import os
import os.path as osp
import sys

sys.path.insert(0, osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__)))))
from coordatt_mm.deploy import export_onnx, max_abs_diff  # noqa: E402


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    ap.add_argument('config')
    ap.add_argument('checkpoint')
    ap.add_argument('out')
    ap.add_argument('--shape', type=int, nargs=2, default=None, metavar=('H', 'W'),
                    help='input size (default: 320 320 detection, 512 512 segmentation)')
    ap.add_argument('--opset', type=int, default=17)
    ap.add_argument('--tol', type=float, default=1e-4)
    args = ap.parse_args(argv)
    for path in (args.config, args.checkpoint):
        if not osp.isfile(path):
            print(f'error: {path}: not found', file=sys.stderr)
            return 2
    import mmengine
    scope = mmengine.Config.fromfile(args.config).default_scope
    shape = args.shape or ((320, 320) if scope == 'mmdet' else (512, 512))
    tmp = args.out + '.part'
    names, task = export_onnx(args.config, args.checkpoint, tmp, shape, args.opset)
    diff = max_abs_diff(args.config, args.checkpoint, tmp, shape)
    os.replace(tmp, args.out)
    print(f'wrote {args.out} ({task}, input 1x3x{shape[0]}x{shape[1]}, '
          f'outputs {", ".join(names)}); '
          f'max |torch - onnxruntime| = {diff:.2e}')
    return 0 if diff <= args.tol else 1


if __name__ == '__main__':
    sys.exit(main())
