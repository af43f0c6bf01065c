"""Building a detector, segmentor or classifier from a config, offline: the one place
inference, export, analysis, the demo and the tests get their models from."""
import copy
import logging
import os.path as osp
from contextlib import contextmanager, nullcontext
from functools import lru_cache
from importlib import import_module
from typing import Optional, Tuple, Union

import torch
import torch.nn as nn
from mmengine.config import Config
from mmengine.model import revert_sync_batchnorm
from mmengine.registry import init_default_scope

import coordatt_mm  # noqa: F401  (registers our modules)
from coordatt_mm.registry import task_of


@lru_cache(maxsize=None)
def _parsed(path: str, mtime: float) -> Config:
    return Config.fromfile(path)


def load_config(path: str) -> Config:
    """``Config.fromfile``, parsed once per file version in this process (each ``mmdet::`` /
    ``mmseg::`` base makes mmengine read the codebase's whole model index); a fresh copy."""
    return copy.deepcopy(_parsed(osp.abspath(path), osp.getmtime(path)))


@contextmanager
def quiet_logs(level=logging.WARNING):
    """Raise mmengine's loggers to ``level`` (init_weights reports every parameter)."""
    from mmengine.logging import MMLogger
    loggers = list(MMLogger._instance_dict.values())
    levels = [lg.level for lg in loggers]
    for lg in loggers:
        lg.setLevel(level)
    try:
        yield
    finally:
        for lg, old in zip(loggers, levels):
            lg.setLevel(old)


def test_dataset_cfg(cfg: Config) -> dict:
    """The config of the dataset ``test_dataloader`` reads, inside any wrappers."""
    ds = cfg.test_dataloader.dataset
    while 'dataset' in ds or 'datasets' in ds:
        ds = ds['dataset'] if 'dataset' in ds else ds['datasets'][0]
    return ds


def dataset_meta(cfg: Config, checkpoint_meta: Optional[dict] = None) -> dict:
    """Class names and palette: the checkpoint's when it has them, else the config's test
    dataset's."""
    meta = (checkpoint_meta or {}).get('dataset_meta')
    if meta:
        return {k.lower(): v for k, v in meta.items()}
    datasets = import_module(f'{cfg.default_scope}.registry').DATASETS
    return dict(datasets.get(test_dataset_cfg(cfg)['type']).METAINFO)


def build_model(config: Union[str, Config], checkpoint: Optional[str] = None,
                device: str = 'cpu', init: bool = False,
                cfg_options: Optional[dict] = None) -> Tuple[Config, nn.Module]:
    """(config, model in eval mode on ``device``) built from ``config`` without downloading:
    the backbone's ``init_cfg``/``pretrained`` are dropped, SyncBN becomes BN.

    Args:
        checkpoint: weights to load (strictly), e.g. a trained model; the class names of
            its meta become ``model.dataset_meta``.
        device: where the model lives; ``'meta'`` builds it without memory or initialisation
            (shapes and parameter counts only, fast).
        init: run ``init_weights()`` (the backbone's default initialisation), as training
            from scratch starts; otherwise the modules keep their construction-time weights.
        cfg_options: config entries to override first.
    """
    cfg = config if isinstance(config, Config) else load_config(config)
    if cfg_options:
        cfg.merge_from_dict(cfg_options)
    task_of(cfg)
    for name in cfg.get('custom_imports', {}).get('imports', []):
        import_module(name)  # e.g. coordatt_mm.classifiers for mmpretrain configs
    init_default_scope(cfg.default_scope)
    cfg.model.backbone.init_cfg = None
    cfg.model.backbone.pop('pretrained', None)
    cfg.model.pop('pretrained', None)
    registry = import_module(f'{cfg.default_scope}.registry').MODELS
    if device == 'meta' and (checkpoint or init):
        raise ValueError('a model on the meta device has no values to load or initialise')
    with torch.device(device) if device == 'meta' else nullcontext():
        model = revert_sync_batchnorm(registry.build(cfg.model))
    ckpt_meta = None
    if init:
        with quiet_logs():
            model.init_weights()
    if checkpoint is not None:
        from mmengine.runner import load_checkpoint
        if not osp.isfile(checkpoint):
            raise FileNotFoundError(f'{checkpoint}: checkpoint not found')
        ckpt_meta = load_checkpoint(model, checkpoint, map_location='cpu', strict=True,
                                    logger='silent').get('meta')
    model.cfg = cfg  # mmdet's/mmseg's inference read their test pipeline from here
    model.dataset_meta = dataset_meta(cfg, ckpt_meta)
    return cfg, (model if device == 'meta' else model.to(device)).eval()


class DetectorHeads(nn.Module):
    """image (N,3,H,W, normalised) -> per level: class scores ..., then box deltas ...
    (SSD priors and NMS stay outside: mmdet's ``bbox_head.predict_by_feat`` does them)."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, x):
        cls_scores, bbox_preds = self.model.bbox_head(self.model.neck(self.model.backbone(x)))
        return (*cls_scores, *bbox_preds)


class ClassifierLogits(nn.Module):
    """image (N,3,H,W, normalised) -> class logits (N,K)."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, x):
        return self.model(x, mode='tensor')


class SegmentorLogits(nn.Module):
    """image (N,3,H,W, normalised) -> class logits (N,K,H,W) at the input resolution."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, x):
        import torch.nn.functional as F
        logits = self.model.decode_head(self.model.extract_feat(x))
        return F.interpolate(logits, size=x.shape[2:], mode='bilinear',
                             align_corners=self.model.decode_head.align_corners)


def network(cfg: Config, model: nn.Module) -> nn.Module:
    """The model from the normalised image to its raw outputs (what is exported, timed and
    counted): :class:`DetectorHeads`, :class:`SegmentorLogits` or :class:`ClassifierLogits`."""
    wrappers = dict(det=DetectorHeads, seg=SegmentorLogits, cls=ClassifierLogits)
    return wrappers[task_of(cfg)](model).eval()
