import copy
from pathlib import Path

import pytest
import torch
from mmengine.model import revert_sync_batchnorm
from mmengine.registry import init_default_scope
from mmengine.structures import InstanceData

from coordatt_mm.apis.build import load_config

REPO = Path(__file__).resolve().parents[1]


def ssd_head(type_name):
    from mmdet.registry import MODELS
    init_default_scope('mmdet')
    cfg = load_config(str(REPO / 'configs/ssdlite/ssdlite_mobilenetv2-ca_8xb24-600e_coco.py'))
    head = copy.deepcopy(cfg.model.bbox_head)
    test_cfg = dict(cfg.model.test_cfg, score_thr=0.0)  # keep boxes of an untrained head
    head.update(type=type_name, test_cfg=test_cfg, train_cfg=cfg.model.train_cfg)
    return revert_sync_batchnorm(MODELS.build(head)).eval()


def feats():
    chans, sizes = (96, 1280, 512, 256, 256, 128), (20, 10, 5, 3, 2, 1)
    return tuple(torch.randn(1, c, s, s) for c, s in zip(chans, sizes))


def test_stock_ssd_head_cannot_predict_patched_one_can():
    meta = [dict(img_shape=(320, 320), ori_shape=(640, 480), scale_factor=(2 / 3, 0.5))]  # (w, h)
    x = feats()
    stock = ssd_head('SSDHead')
    with pytest.raises(AttributeError, match='loss_cls'):
        stock.predict_by_feat(*stock(x), batch_img_metas=meta, rescale=True)
    ours = ssd_head('PatchedSSDHead')
    ours.load_state_dict(stock.state_dict())
    with torch.no_grad():
        res = ours.predict_by_feat(*ours(x), batch_img_metas=meta, rescale=True)[0]
    assert isinstance(res, InstanceData) and res.bboxes.shape[1] == 4
    assert len(res) > 0 and res.labels.max() < 80
    # rescaled to the original image
    assert res.bboxes[:, 2].max() <= 480 + 1 and res.bboxes[:, 3].max() <= 640 + 1


def test_patched_head_training_loss_is_the_stock_one():
    stock, ours = ssd_head('SSDHead'), ssd_head('PatchedSSDHead')
    ours.load_state_dict(stock.state_dict())
    gt = [InstanceData(bboxes=torch.tensor([[30., 40., 200., 220.]]), labels=torch.tensor([2]))]
    meta = [dict(img_shape=(320, 320), pad_shape=(320, 320))]
    x = feats()
    a = stock.loss_by_feat(*stock(x), gt, meta)
    b = ours.loss_by_feat(*ours(x), gt, meta)
    for k in a:
        torch.testing.assert_close(sum(a[k]), sum(b[k]))


def test_deeplabv3_head_1x1_projection():
    from mmseg.registry import MODELS
    init_default_scope('mmseg')
    head = MODELS.build(dict(type='DeepLabV3Head', in_channels=320, channels=256, in_index=3,
                             dilations=(1, 6, 12, 18), num_classes=21, dropout_ratio=0.1,
                             norm_cfg=dict(type='BN'), align_corners=False))
    stock = MODELS.build(dict(type='ASPPHead', in_channels=320, channels=256, in_index=3,
                              dilations=(1, 6, 12, 18), num_classes=21, dropout_ratio=0.1,
                              norm_cfg=dict(type='BN'), align_corners=False))
    n = lambda m: sum(p.numel() for p in m.parameters())  # noqa: E731
    # the only difference: the 5*256 -> 256 projection is 1x1 instead of 3x3
    assert n(stock) - n(head) == 5 * 256 * 256 * (9 - 1)
    out = head.eval()([torch.randn(1, c, 16, 16) for c in (24, 32, 96, 320)])
    assert out.shape == (1, 21, 16, 16)
