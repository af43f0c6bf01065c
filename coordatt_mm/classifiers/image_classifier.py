"""mmpretrain's ImageClassifier that also reads the authors' checkpoint layouts."""
import re
from typing import Dict

import torch
from mmpretrain.models.classifiers import ImageClassifier

from coordatt_mm.checkpoint import detect_layout, match_state_dict
from coordatt_mm.registry import register_model

# the authors' classifiers end in a Linear at ``classifier`` (MobileNetV2 + CA) or at
# ``classifier.1`` (after a Dropout); mmpretrain's LinearClsHead holds it at ``head.fc``
_AUTHORS_HEAD = re.compile(r'^classifier\.(?:1\.)?(weight|bias)$')


@register_model(scopes=('mmpretrain',))
class ReleasedLayoutClassifier(ImageClassifier):
    """``ImageClassifier`` (backbone -> neck -> head) that loads, besides its own state dicts,
    a classifier checkpoint in the layout its backbone names in ``checkpoint_layouts`` --
    e.g. the authors' released ``mbv2_ca.pth`` -- as it is, wherever weights are loaded
    (``load_from``, ``mim test --checkpoint``, ``load_state_dict``).

    The backbone's tensors are mapped and checked by :func:`~coordatt_mm.checkpoint.
    match_state_dict` (a missing or misshapen tensor is an error naming the key); the
    authors' final ``Linear`` becomes ``head.fc``. Arguments are ``ImageClassifier``'s.
    """

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self._register_load_state_dict_pre_hook(self._from_authors_layout)

    def _from_authors_layout(self, state_dict: Dict[str, torch.Tensor], prefix: str,
                             *args) -> None:
        ours = [k for k in state_dict if k.startswith(prefix)]
        local = {k[len(prefix):]: state_dict[k] for k in ours}
        layout = detect_layout(self.backbone, local)
        if layout == 'ours':  # our own state dicts (backbone.*, head.*) load as they are
            return
        head = {m.group(1): v for k, v in local.items() if (m := _AUTHORS_HEAD.match(k))}
        body = {k: v for k, v in local.items() if not _AUTHORS_HEAD.match(k)}
        mapped, _ = match_state_dict(self.backbone, body, f'{layout} checkpoint', layout)
        for k in ours:  # in place: the loader goes on with this same dict
            del state_dict[k]
        state_dict.update({f'{prefix}backbone.{k}': v for k, v in mapped.items()})
        state_dict.update({f'{prefix}head.fc.{k}': v for k, v in head.items()})
