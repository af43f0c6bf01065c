from coordatt_mm.engine.hooks import DatasetCheckHook, RNGStateHook
from coordatt_mm.engine.runner import CPUDistributedRunner, CPUSyncBatchNorm

__all__ = ['CPUDistributedRunner', 'CPUSyncBatchNorm', 'DatasetCheckHook', 'RNGStateHook']
