"""SSD head that can predict under mmdet 3.3.0."""
from mmdet.models.dense_heads import SSDHead

from coordatt_mm.registry import register_model


@register_model(scopes=('mmdet',))
class PatchedSSDHead(SSDHead):
    """mmdet's ``SSDHead`` with validation/test/inference working.

    mmdet 3.3.0's ``BaseDenseHead._predict_by_feat_single`` reads ``self.loss_cls``, which
    ``SSDHead`` never sets (it computes its loss inline), so predicting raises
    ``AttributeError: 'SSDHead' object has no attribute 'loss_cls'`` (upstream
    open-mmlab/mmdetection#11063, #11305, #11780). ``SSDHead`` classifies with a softmax
    and has no custom classification loss, which ``loss_cls = None`` states; should a later
    mmdet set ``self.loss_cls`` itself, its instance attribute simply takes precedence.
    """

    loss_cls = None
