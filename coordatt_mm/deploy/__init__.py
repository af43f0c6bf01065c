"""Deployment: ONNX export (end-to-end graphs that output boxes after NMS and label maps, or
the raw network), its check against PyTorch on images, and ONNX Runtime for folder inference
and evaluation of exported models."""
from coordatt_mm.deploy.check import ExportCheckFailed
from coordatt_mm.deploy.end2end import UnsupportedForExport
from coordatt_mm.deploy.export import export_checked, export_model, export_network
from coordatt_mm.deploy.runtime import OnnxModel, ort_kernel_shares, ort_session

__all__ = ['ExportCheckFailed', 'OnnxModel', 'UnsupportedForExport', 'export_checked',
           'export_model', 'export_network', 'ort_kernel_shares', 'ort_session']
