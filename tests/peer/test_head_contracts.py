"""The contracts of mmdet's SSD head and single-stage detector tests and mmseg's ASPP head test
(test_ssd_head.py, test_single_stage.py, test_aspp_head.py upstream), asserted on our heads and
on every SSDLite config."""
from math import ceil
from pathlib import Path

import pytest
import torch
from mmcv.cnn import ConvModule
from mmengine.config import Config
from mmengine.logging import MessageHub
from mmengine.structures import InstanceData

import coordatt_mm  # noqa: F401
from coordatt_mm.apis.build import build_model
from coordatt_mm.heads import DeepLabV3Head, PatchedSSDHead

from model_batches import default_or_slow

REPO = Path(__file__).resolve().parents[2]
SSDLITE = sorted((REPO / 'configs/ssdlite').glob('*.py')) + \
    sorted((REPO / 'configs/demo').glob('ssdlite_*.py'))


def _ssd_head():
    from mmengine.registry import init_default_scope
    init_default_scope('mmdet')  # the parts of the head are built from mmdet's registries
    s = 300
    train_cfg = Config(dict(
        assigner=dict(type='MaxIoUAssigner', pos_iou_thr=0.5, neg_iou_thr=0.5, min_pos_iou=0.,
                      ignore_iof_thr=-1, gt_max_assign_all=False),
        sampler=dict(type='PseudoSampler'), smoothl1_beta=1., allowed_border=-1,
        pos_weight=-1, neg_pos_ratio=3, debug=False))
    head = PatchedSSDHead(
        num_classes=4, in_channels=(1, 1, 1, 1, 1, 1), stacked_convs=1, feat_channels=1,
        use_depthwise=True,
        anchor_generator=dict(type='SSDAnchorGenerator', scale_major=False, input_size=s,
                              basesize_ratio_range=(0.15, 0.9),
                              strides=[8, 16, 32, 64, 100, 300],
                              ratios=[[2], [2, 3], [2, 3], [2, 3], [2], [2]]),
        train_cfg=train_cfg, test_cfg=Config(dict(nms=dict(type='nms', iou_threshold=0.45),
                                                  min_bbox_size=0, score_thr=0.0,
                                                  max_per_img=20)))
    feats = [torch.rand(1, 1, ceil(s / st[0]), ceil(s / st[0]))
             for st in head.prior_generator.strides]
    return head, feats, [dict(img_shape=(s, s, 3), pad_shape=(s, s, 3), scale_factor=1)]


def test_ssd_head_loss_empty_and_one_box():
    head, feats, metas = _ssd_head()
    cls_scores, bbox_preds = head.forward(feats)
    empty = InstanceData(bboxes=torch.empty((0, 4)), labels=torch.LongTensor([]))
    losses = head.loss_by_feat(cls_scores, bbox_preds, [empty], metas)
    assert sum(losses['loss_cls']).item() == 0 and sum(losses['loss_bbox']).item() == 0
    one = InstanceData(bboxes=torch.Tensor([[23.6667, 23.8757, 238.6326, 151.8874]]),
                       labels=torch.LongTensor([2]))
    losses = head.loss_by_feat(cls_scores, bbox_preds, [one], metas)
    assert sum(losses['loss_cls']).item() > 0 and sum(losses['loss_bbox']).item() > 0
    # what the patch is for: mmdet 3.3.0's SSDHead cannot predict
    results = head.predict_by_feat(cls_scores, bbox_preds, batch_img_metas=metas, rescale=False)
    assert len(results[0].bboxes) == 20 and results[0].scores.max() <= 1


@pytest.mark.parametrize('path', default_or_slow(SSDLITE), ids=lambda p: p.name)
def test_single_stage_detector_loss_predict_tensor(path):
    from mmdet.structures import DetDataSample
    from mmdet.testing import demo_mm_inputs
    MessageHub.get_instance(f'ssd-{path.name}').update_info('iter', 0)
    _, detector = build_model(str(path), init=True)
    packed = demo_mm_inputs(2, [[3, 128, 128], [3, 125, 130]],
                            num_classes=detector.bbox_head.num_classes)
    detector.train()
    inputs, samples = detector.data_preprocessor(packed, True).values()
    losses = detector.forward(inputs, samples, mode='loss')
    assert isinstance(losses, dict) and {'loss_cls', 'loss_bbox'} <= set(losses)
    detector.eval()
    inputs, samples = detector.data_preprocessor(packed, False).values()
    with torch.no_grad():
        results = detector.forward(inputs, samples, mode='predict')
        tensors = detector.forward(inputs, samples, mode='tensor')
    assert len(results) == 2 and all(isinstance(r, DetDataSample) for r in results)
    assert isinstance(tensors, tuple) and len(tensors) == 2  # (cls_scores, bbox_preds)


def _conv_norms(head):
    return [m.norm_name and getattr(m, m.norm_name) for m in head.modules()
            if isinstance(m, ConvModule)]


def test_deeplabv3_head_norms_dilations_and_shape():
    with pytest.raises(AssertionError):  # dilations must be a list or tuple
        DeepLabV3Head(in_channels=32, channels=16, num_classes=19, dilations=1)
    head = DeepLabV3Head(in_channels=32, channels=16, num_classes=19)
    assert _conv_norms(head) and not any(_conv_norms(head))
    head = DeepLabV3Head(in_channels=32, channels=16, num_classes=19,
                         norm_cfg=dict(type='SyncBN'))
    # mmcv's SyncBN is torch's SyncBatchNorm, also once coordatt_mm is imported
    assert all(isinstance(n, torch.nn.SyncBatchNorm) for n in _conv_norms(head))
    head = DeepLabV3Head(in_channels=32, channels=16, num_classes=19, dilations=(1, 12, 24))
    assert [m.conv.dilation for m in head.aspp_modules] == [(1, 1), (12, 12), (24, 24)]
    assert head.bottleneck.conv.kernel_size == (1, 1)  # ours: DeepLabV3's 1x1 projection
    assert head([torch.randn(1, 32, 45, 45)]).shape == (1, 19, 45, 45)
