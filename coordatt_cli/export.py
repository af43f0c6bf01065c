"""``tools/deploy/export_onnx.py``: a config + checkpoint to ONNX, checked against PyTorch on
images before the file is written (see coordatt_mm/deploy/export.py and docs/deploy.md)."""
import argparse
import glob
import sys
from typing import List, Optional

from coordatt_cli.common import cfg_options, fail, missing

# coordatt_mm.deploy.CA_FORMS, written here so that --help needs no import of torch (a test
# holds them equal)
CA_FORMS = ('pool', 'product', 'broadcast', 'integer')


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
                    help="input size (detection and --static: the graph's one size, default "
                         "the test pipeline's; segmentation: the size traced, H and W stay "
                         "dynamic)")
    ap.add_argument('--static', action='store_true',
                    help='segmentation: a graph of one input size (--shape; default a square '
                         "of the test resize's long side), so that CA's static forms apply; "
                         'images are padded to it at the bottom and right')
    ap.add_argument('--raw', action='store_true',
                    help='export the network to raw head outputs (normalised input), no '
                         'decoding or NMS; checked on a random input')
    ap.add_argument('--with-logits', action='store_true',
                    help='segmentation: also output the logits the labels are the argmax of')
    ap.add_argument('--check-images', nargs='+', default=None, metavar='DIR_OR_FILE',
                    help="images to check against PyTorch: folders, files or globs (default: "
                         "the demo's held-out images); the check fails where they give no "
                         "detection or a single-label map")
    ap.add_argument('--int8', default=None, metavar='CALIB_DIR',
                    help='write a static INT8 (QDQ) model, calibrated on the images of this '
                         'folder through the test pipeline (the float graph is checked first)')
    ap.add_argument('--calib-images', type=int, default=64,
                    help='how many of the calibration images (sorted) to use; default 64')
    ap.add_argument('--ca-form', default=None, choices=CA_FORMS, metavar='FORM',
                    help="CA's graph: 'pool' (windowed average pools, gates resized to full "
                         "size; the FP32 default, fastest in ONNX Runtime), 'product' (the two "
                         "gates multiplied into one first; fastest in OpenVINO FP32), "
                         "'broadcast' (means and broadcasting products; the only form for "
                         "dynamic sizes, the default there) or 'integer' (the INT8 default at "
                         'a static size: every operator of CA on integers). The forms other '
                         "than 'broadcast' need a static size (segmentation: --static)")
    ap.add_argument('--opset', type=int, default=17)
    ap.add_argument('--cfg-options', nargs='+', metavar='KEY=VALUE',
                    help='override config entries first')
    return ap


def main(argv: Optional[List[str]] = None) -> int:
    ap = parser()
    args = ap.parse_args(argv)
    if args.raw and args.with_logits:
        ap.error('--with-logits applies to the end-to-end segmentation export, not --raw')
    if args.raw and args.int8:
        ap.error('--int8 quantises the end-to-end export, not --raw')
    if args.calib_images < 1:
        ap.error('--calib-images must be >= 1')
    error = missing([(args.config, 'config'), (args.checkpoint, 'checkpoint')])
    if error:
        return fail(error, 2)
    import os.path as osp
    for path in [*(args.check_images or []), args.int8]:
        if path and not osp.exists(path) and not glob.has_magic(path):
            return fail(f'error: {path}: no such file or folder', 2)
    from coordatt_mm import deploy
    from coordatt_mm.apis.images import list_inputs
    images = calib = None
    if args.check_images:
        images = [p for spec in args.check_images for p in list_inputs(spec)[1]]
        if not images:
            return fail(f'error: {" ".join(args.check_images)}: no image found', 2)
    if args.int8:
        calib = list_inputs(args.int8)[1][:args.calib_images]
        if not calib:
            return fail(f'error: {args.int8}: no image found', 2)
    try:
        info = deploy.export_checked(args.config, args.checkpoint, args.out, args.shape, args.raw,
                              args.with_logits, images, args.opset,
                              cfg_options(args.cfg_options), calib, args.ca_form, args.static)
    except deploy.ExportPlanError as e:
        return fail(f'error: {e}', 2)
    except deploy.UnsupportedForExport as e:
        return fail(f'error: {args.config}: cannot export end to end: {e}', 1)
    except deploy.CalibrationError as e:
        return fail(f'error: {args.out} not written: {e}', 1)
    except deploy.ExportCheckFailed as e:
        return fail(f'error: {args.out} not written: the check against PyTorch failed: {e}',
                    1)
    report(args.out, info)
    return 0


def report(out: str, info: dict) -> None:
    """What was written and checked, as printed lines."""
    h, w = info['input_hw']
    size = f'N x 3 x H x W (traced at {h}x{w})' if info['dynamic'] else f'N x 3 x {h} x {w}'
    extra = ' + img_shape, ori_shape (int64 h, w)' if 'ori_shape' in info['inputs'] else ''
    print(f'wrote {out}: {info["task"]}, {info["form"]}, input {size}{extra}, CA form '
          f'{info["ca_form"]}, outputs {", ".join(info["outputs"])}')
    c = info['check']
    if 'worst_iou' in c:
        print(f'checked on {c["images"]} images: {c["detections_compared"]} detections '
              f'matched, worst IoU {c["worst_iou"]:.6f}, worst score difference '
              f'{c["worst_score_diff"]:.2e}')
    elif 'worst_agreement' in c:
        print(f'checked on {c["images"]} images: {c["pixels_compared"]} pixels at the '
              f'original sizes, worst agreement {c["worst_agreement"]:.4%}')
    else:
        print(f'checked on a random input: max |torch - onnxruntime| = '
              f'{c["max_abs_diff"]:.2e}')
    if 'int8' in info:
        q, c = info['int8'], info['int8_check']
        skipped = q['calibration_skipped']
        print(f'INT8 (QDQ, calibrated on {q["calibration_images"]} images'
              f'{f" ({len(skipped)} unreadable skipped)" if skipped else ""}; quantised: '
              f'{", ".join(q["op_types"])}), {q["size_mb"]} MB')
        if 'matched' in c:
            print(f'INT8 against the float graph on {c["images"]} images: {c["matched"]} of '
                  f'the float model\'s {c["float_detections"]} detections scoring >= 0.3 '
                  f'found ({c["lost"]} lost), {c["extra"]} of its {c["int8_detections"]} '
                  f'without a float counterpart, mean IoU {c["mean_iou"]:.3f}, mean score '
                  f'difference {c["mean_score_diff"]:.3f}')
        else:
            print(f'INT8 against the float graph on {c["images"]} images: '
                  f'{c["pixel_agreement"]:.2%} of the pixels with the same label')


if __name__ == '__main__':
    sys.exit(main())
