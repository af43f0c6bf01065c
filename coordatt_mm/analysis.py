"""Building models from configs offline and counting their parameters."""
import json
import os.path as osp
from importlib import import_module
from typing import Dict, Tuple

import torch.nn as nn
from mmengine.config import Config
from mmengine.model import revert_sync_batchnorm
from mmengine.registry import init_default_scope

PAPER_RESULTS = osp.join(osp.dirname(__file__), 'data', 'paper_results.json')


def load_paper_results() -> Dict:
    with open(PAPER_RESULTS) as f:
        return json.load(f)


def build_model_offline(config: str) -> Tuple[Config, nn.Module]:
    """Build the model of ``config`` with random weights (no checkpoint download), plain BN."""
    cfg = Config.fromfile(config)
    init_default_scope(cfg.default_scope)
    cfg.model.backbone.init_cfg = None
    registry = import_module(f'{cfg.default_scope}.registry').MODELS
    return cfg, revert_sync_batchnorm(registry.build(cfg.model))


def count_params(model: nn.Module, with_aux: bool = False) -> int:
    """Parameters used at inference (segmentors' auxiliary heads excluded unless asked)."""
    n = sum(p.numel() for p in model.parameters())
    aux = getattr(model, 'auxiliary_head', None)
    if aux is not None and not with_aux:
        n -= sum(p.numel() for p in aux.parameters())
    return n
