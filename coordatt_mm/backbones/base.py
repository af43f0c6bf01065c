"""What MobileNetV2CA and MobileNeXtCA share: stage freezing, norm_eval, checked pretrained loading."""
from typing import Dict, List

import torch.nn as nn
from mmengine.model import BaseModule
from torch.nn.modules.batchnorm import _BatchNorm


class MobileBackbone(BaseModule):
    """Base of the mobile backbones with an attention slot.

    Subclasses set ``self.frozen_stages``, ``self.norm_eval``, build ``self.stem`` or ``conv1``
    and list their stages (stem first) in :meth:`stage_modules`; they describe how foreign
    checkpoint layouts map onto them in :meth:`checkpoint_module_map`.
    """

    frozen_stages: int = -1
    norm_eval: bool = False

    def stage_modules(self) -> List[nn.Module]:
        """[stem, stage 1, stage 2, ...] in the order ``frozen_stages`` counts them."""
        raise NotImplementedError

    def checkpoint_module_map(self, layout: str) -> Dict[str, str]:
        """Our module path -> the checkpoint's module path, for ``layout`` (see checkpoint.py)."""
        raise NotImplementedError

    def init_weights(self) -> None:
        if self.init_cfg and self.init_cfg.get('type') == 'Pretrained':
            # Checked, layout-aware loading instead of mmengine's silent partial load.
            from coordatt_mm.checkpoint import load_backbone_checkpoint
            load_backbone_checkpoint(self, self.init_cfg['checkpoint'],
                                     prefix=self.init_cfg.get('prefix'),
                                     allow_missing=self.init_cfg.get('allow_missing', ()))
            self._is_init = True
        else:
            super().init_weights()

    def _freeze_stages(self) -> None:
        for m in self.stage_modules()[:self.frozen_stages + 1]:
            m.eval()
            for p in m.parameters():
                p.requires_grad = False

    def train(self, mode: bool = True):
        super().train(mode)
        self._freeze_stages()
        if mode and self.norm_eval:
            for m in self.modules():
                if isinstance(m, _BatchNorm):
                    m.eval()
        return self
