"""Building the attention layer a backbone config names."""
import inspect
from typing import Optional

import torch.nn as nn

from coordatt_mm.registry import ROOT_MODELS


def build_attention(cfg: Optional[dict], in_channels: int,
                    norm_cfg: Optional[dict] = None) -> Optional[nn.Module]:
    """Build the attention layer named by ``cfg`` for ``in_channels`` channels (None: none).

    The attention's norm follows the backbone's ``norm_cfg`` (e.g. SyncBN) unless ``cfg``
    sets its own.
    """
    if cfg is None:
        return None
    cls = ROOT_MODELS.get(cfg['type'])
    if cls is None:
        raise KeyError(f'attention type {cfg["type"]!r} is not registered (CoordAtt, SE, CBAM, '
                       f'ECA, TripletAttention, SimAM)')
    cfg = dict(cfg, in_channels=in_channels)
    cfg.pop('channels', None)
    params = inspect.signature(cls).parameters
    if norm_cfg is not None and 'norm_cfg' in params:
        cfg.setdefault('norm_cfg', norm_cfg)
    return ROOT_MODELS.build(cfg)
