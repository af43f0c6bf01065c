"""Deployment: ONNX export (end-to-end graphs that output boxes after NMS and label maps, or
the raw network) from a config resolved once into an export plan, its check against PyTorch on
images, INT8 quantisation, and ONNX Runtime for folder inference and evaluation of exported
models. It builds on :mod:`coordatt_mm.apis` (models, test pipelines, folder inference), which
does not import it."""
from coordatt_mm.deploy.check import ExportCheckFailed
from coordatt_mm.deploy.end2end import UnsupportedForExport
from coordatt_mm.deploy.export import export_checked, export_model, export_network
from coordatt_mm.deploy.inference import OnnxPredictor
from coordatt_mm.deploy.plan import CA_FORMS, ExportPlan, ExportPlanError, plan_export
from coordatt_mm.deploy.quantize import CalibrationError
from coordatt_mm.deploy.runtime import OnnxModel, ort_kernel_shares, ort_session

__all__ = ['CA_FORMS', 'CalibrationError', 'ExportCheckFailed', 'ExportPlan', 'ExportPlanError',
           'OnnxModel', 'OnnxPredictor', 'UnsupportedForExport', 'export_checked',
           'export_model', 'export_network', 'ort_kernel_shares', 'ort_session', 'plan_export']
