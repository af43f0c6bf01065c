"""Building the attention layer a backbone config names."""
import inspect
from typing import List, Optional

import torch.nn as nn

from coordatt_mm.registry import ROOT_MODELS


def attention_types() -> List[str]:
    """The attention layers' registered names (sorted): the modules of
    :mod:`coordatt_mm.layers` in mmengine's root ``MODELS``, as registered now."""
    prefix = __name__.rsplit('.', 1)[0] + '.'
    return sorted(name for name, cls in ROOT_MODELS.module_dict.items()
                  if getattr(cls, '__module__', '').startswith(prefix))


def build_attention(cfg: Optional[dict], in_channels: int,
                    norm_cfg: Optional[dict] = None) -> Optional[nn.Module]:
    """Build the attention layer named by ``cfg`` for ``in_channels`` channels (None: none).

    The attention's norm follows the backbone's ``norm_cfg`` (e.g. SyncBN) unless ``cfg``
    sets its own. ``cfg['type']`` is any module of mmengine's root ``MODELS``; an unknown one
    is a KeyError that lists the attention layers (:func:`attention_types`).
    """
    if cfg is None:
        return None
    cls = ROOT_MODELS.get(cfg['type'])
    if cls is None:
        raise KeyError(f'attention type {cfg["type"]!r} is not registered; the attention '
                       f'layers: {", ".join(attention_types())}')
    cfg = dict(cfg, in_channels=in_channels)
    cfg.pop('channels', None)
    params = inspect.signature(cls).parameters
    if norm_cfg is not None and 'norm_cfg' in params:
        cfg.setdefault('norm_cfg', norm_cfg)
    return ROOT_MODELS.build(cfg)
