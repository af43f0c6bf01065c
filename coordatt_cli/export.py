"""``tools/deploy/export_onnx.py``: a config + checkpoint to ONNX, checked against PyTorch on
images before the file is written (see coordatt_mm/deploy/export.py and docs/deploy.md)."""
import argparse
import sys
from typing import List, Optional

from coordatt_cli.common import cfg_options, fail, missing


def parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(
        description='Export a detector or segmentor to ONNX: end to end by default (boxes '
                    'after NMS, or label maps; normalisation in the graph), or the raw '
                    'network (--raw). OUT is written only when ONNX Runtime agrees with '
                    'PyTorch on the check images.')
    ap.add_argument('config')
    ap.add_argument('checkpoint')
    ap.add_argument('out', help='the .onnx file to write')
    ap.add_argument('--shape', type=int, nargs=2, default=None, metavar=('H', 'W'),
                    help="input size (detection: the graph's static size, default the test "
                         "pipeline's; segmentation: the size traced, H and W stay dynamic)")
    ap.add_argument('--raw', action='store_true',
                    help='export the network to raw head outputs (normalised input), no '
                         'decoding or NMS; checked on a random input')
    ap.add_argument('--with-logits', action='store_true',
                    help='segmentation: also output the logits the labels are the argmax of')
    ap.add_argument('--check-images', default=None,
                    help="images to check against PyTorch (default: the demo's held-out "
                         "images)")
    ap.add_argument('--opset', type=int, default=17)
    ap.add_argument('--cfg-options', nargs='+', metavar='KEY=VALUE',
                    help='override config entries first')
    return ap


def main(argv: Optional[List[str]] = None) -> int:
    ap = parser()
    args = ap.parse_args(argv)
    if args.raw and args.with_logits:
        ap.error('--with-logits applies to the end-to-end segmentation export, not --raw')
    error = missing([(args.config, 'config'), (args.checkpoint, 'checkpoint')])
    if error:
        return fail(error, 2)
    images = None
    if args.check_images:
        import os.path as osp
        if not osp.exists(args.check_images):
            return fail(f'error: {args.check_images}: no such file or folder', 2)
    from coordatt_mm.deploy import ExportCheckFailed, UnsupportedForExport, export_checked
    if args.check_images:
        from coordatt_mm.apis.images import list_inputs
        images = list_inputs(args.check_images)[1]
        if not images:
            return fail(f'error: {args.check_images}: no image found', 2)
    try:
        info = export_checked(args.config, args.checkpoint, args.out, args.shape, args.raw,
                              args.with_logits, images, args.opset,
                              cfg_options(args.cfg_options))
    except UnsupportedForExport as e:
        return fail(f'error: {args.config}: cannot export end to end: {e}', 1)
    except ExportCheckFailed as e:
        return fail(f'error: {args.out} not written: ONNX Runtime disagrees with PyTorch: {e}',
                    1)
    h, w = info['input_hw']
    size = f'N x 3 x H x W (traced at {h}x{w})' if info['dynamic'] else f'N x 3 x {h} x {w}'
    print(f'wrote {args.out}: {info["task"]}, {info["form"]}, input {size}, outputs '
          f'{", ".join(info["outputs"])}')
    c = info['check']
    if 'worst_iou' in c:
        print(f'checked on {c["images"]} images: {c["detections_compared"]} detections '
              f'matched, worst IoU {c["worst_iou"]:.6f}, worst score difference '
              f'{c["worst_score_diff"]:.2e}')
    elif 'worst_agreement' in c:
        print(f'checked on {c["images"]} images: {c["pixels_compared"]} pixels, worst '
              f'agreement {c["worst_agreement"]:.4%}')
    else:
        print(f'checked on a random input: max |torch - onnxruntime| = '
              f'{c["max_abs_diff"]:.2e}')
    return 0


if __name__ == '__main__':
    sys.exit(main())
