#!/usr/bin/env python
"""Export a coordatt_mm config + checkpoint to ONNX, end to end (boxes after NMS, label maps)
or raw (``--raw``), written only once ONNX Runtime agrees with PyTorch on images; see
docs/deploy.md or ``--help``.

    python tools/deploy/export_onnx.py CONFIG CHECKPOINT OUT.onnx [--shape H W] [--static]
        [--raw] [--with-logits] [--check-images DIR_OR_FILE ...] [--int8 CALIB_DIR]
        [--ca-form FORM] [--opset 17]
"""
import sys

from coordatt_cli.export import main

if __name__ == '__main__':
    sys.exit(main())
