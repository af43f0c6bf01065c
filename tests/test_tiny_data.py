"""The tiny datasets are read by the stock mmdet/mmseg datasets and metrics: perfect
predictions score perfectly, so the formats (ids, 1-based VOC boxes, palettes, ignore index)
are right."""
import json

import numpy as np
import pytest
import torch
from PIL import Image


def test_coco_ground_truth_as_predictions_scores_map_1(tiny_data):
    from mmdet.datasets import CocoDataset
    from mmdet.evaluation import CocoMetric
    root = tiny_data / 'coco'
    ann = root / 'annotations/instances_val2017.json'
    ds = CocoDataset(data_root=str(root), ann_file='annotations/instances_val2017.json',
                     data_prefix=dict(img='val2017/'), pipeline=[], test_mode=True)
    raw = json.loads(ann.read_text())
    assert len(ds) == len(raw['images']) == 16 and len(raw['categories']) == 80
    assert {c['name'] for c in raw['categories']
            if c['id'] in (1, 3, 17)} == {'person', 'car', 'cat'}
    metric = CocoMetric(ann_file=str(ann), metric='bbox')
    metric.dataset_meta = ds.metainfo
    n_inst = 0
    for i in range(len(ds)):
        info = ds.get_data_info(i)
        boxes = torch.tensor([inst['bbox'] for inst in info['instances']], dtype=torch.float32)
        labels = torch.tensor([inst['bbox_label'] for inst in info['instances']])
        n_inst += len(labels)
        metric.process({}, [dict(img_id=info['img_id'], ori_shape=(info['height'], info['width']),
                                 pred_instances=dict(bboxes=boxes, scores=torch.ones(len(labels)),
                                                     labels=labels))])
    assert n_inst == len(raw['annotations'])
    perfect = metric.compute_metrics(metric.results)['bbox_mAP']
    # the same boxes shifted by 30 px score far lower: the metric really compares them
    for _, pred in metric.results:
        pred['bboxes'] = pred['bboxes'] + 30
    shifted = metric.compute_metrics(metric.results)['bbox_mAP']
    assert perfect == pytest.approx(1.0) and shifted < 0.6


def test_voc_detection_dataset_and_metric(tiny_data):
    from mmdet.datasets import VOCDataset
    from mmdet.evaluation import VOCMetric
    ds = VOCDataset(data_root=str(tiny_data / 'VOCdevkit'),
                    ann_file='VOC2007/ImageSets/Main/test.txt',
                    data_prefix=dict(sub_data_root='VOC2007/'), pipeline=[], test_mode=True)
    assert len(ds) == 16
    metric = VOCMetric(metric='mAP', eval_mode='11points')
    metric.dataset_meta = ds.metainfo
    for i in range(len(ds)):
        info = ds.get_data_info(i)
        gt = [inst for inst in info['instances']]
        boxes = torch.tensor([g['bbox'] for g in gt], dtype=torch.float32)
        labels = torch.tensor([g['bbox_label'] for g in gt])
        assert all(g['ignore_flag'] == 0 for g in gt)
        metric.process({}, [dict(gt_instances=dict(bboxes=boxes, labels=labels),
                                 ignored_instances=dict(bboxes=torch.zeros(0, 4),
                                                        labels=torch.zeros(0)),
                                 ori_shape=(info['height'], info['width']),
                                 pred_instances=dict(bboxes=boxes, scores=torch.ones(len(labels)),
                                                     labels=labels))])
    assert metric.compute_metrics(metric.results)['mAP'] == pytest.approx(1.0)
    names = {ds.metainfo['classes'][g['bbox_label']] for i in range(len(ds))
             for g in ds.get_data_info(i)['instances']}
    assert names == {'person', 'car', 'cat'}


@pytest.mark.parametrize('kind', ['voc', 'cityscapes'])
def test_segmentation_datasets_and_perfect_miou(tiny_data, kind):
    from mmseg.datasets import CityscapesDataset, PascalVOCDataset
    from mmseg.evaluation import IoUMetric
    if kind == 'voc':
        root = tiny_data / 'VOCdevkit/VOC2012'
        lists = {s: (root / f'ImageSets/Segmentation/{s}.txt').read_text().split()
                 for s in ('train', 'aug', 'val')}
        assert [len(v) for v in lists.values()] == [24, 24, 12]
        assert not set(lists['val']) & (set(lists['train']) | set(lists['aug']))
        assert Image.open(root / 'SegmentationClass' / f"{lists['val'][0]}.png").mode == 'P'
        assert (root / 'SegmentationClassAug' / f"{lists['aug'][0]}.png").exists()
        ds = PascalVOCDataset(data_root=str(root), ann_file='ImageSets/Segmentation/val.txt',
                              data_prefix=dict(img_path='JPEGImages',
                                               seg_map_path='SegmentationClass'),
                              pipeline=[dict(type='mmseg.LoadAnnotations')], test_mode=True)
    else:
        ds = CityscapesDataset(data_root=str(tiny_data / 'cityscapes'),
                               data_prefix=dict(img_path='leftImg8bit/val',
                                                seg_map_path='gtFine/val'),
                               pipeline=[dict(type='mmseg.LoadAnnotations')], test_mode=True)
        assert len(ds) == 8
    metric = IoUMetric(iou_metrics=['mIoU'])
    metric.dataset_meta = ds.metainfo
    seen = set()
    for i in range(len(ds)):
        gt = torch.from_numpy(ds[i]['gt_seg_map'].astype(np.int64))
        assert 255 in gt.unique().tolist()  # ignore index present
        seen |= set(gt.unique().tolist()) - {255}
        pred = gt.clone()
        pred[pred == 255] = 0
        metric.process({}, [dict(pred_sem_seg=dict(data=pred[None]),
                                 gt_sem_seg=dict(data=gt[None]))])
    res = metric.compute_metrics(metric.results)
    assert res['mIoU'] == pytest.approx(100.0)
    assert seen == ({0, 8, 7, 15} if kind == 'voc' else {0, 2, 10, 13})


def test_imagenet_read_by_mmpretrain_with_real_class_indices(tiny_data):
    """mmpretrain's ImageNet reads the annotation files with the real ImageNet indices (class
    folders alone would need all 1000); Accuracy of the labels themselves is 100."""
    from mmpretrain.datasets import ImageNet
    from mmpretrain.evaluation import Accuracy
    root = tiny_data / 'imagenet'
    train = ImageNet(data_root=str(root), split='train', pipeline=[])
    assert len(train) == 96 and len(train.metainfo['classes']) == 1000
    assert train.metainfo['classes'][0] == 'tench, Tinca tinca'
    labels = [train.get_data_info(i)['gt_label'] for i in range(len(train))]
    assert sorted(set(labels)) == [0, 1, 2, 3]
    for i in range(len(train)):  # n01440764 is class 0 (tench), n01443537 class 1, ...
        info = train.get_data_info(i)
        wnid = info['img_path'].split('/')[-2]
        assert ['n01440764', 'n01443537', 'n01484850', 'n01491361'].index(wnid) == info['gt_label']
    val = ImageNet(data_root=str(root), split='val', pipeline=[])
    assert len(val) == 32
    gt = torch.tensor([val.get_data_info(i)['gt_label'] for i in range(len(val))])
    assert gt.bincount().tolist() == [8, 8, 8, 8]
    top1 = Accuracy.calculate(torch.nn.functional.one_hot(gt, 1000).float(), gt, topk=(1,))
    assert float(top1[0][0]) == 100.0


def test_make_tiny_data_tool_keeps_current_and_refuses_foreign(tmp_path, capsys):
    from e2e_utils import tool
    main = tool('tools/make_tiny_data.py')
    root = tmp_path / 'tiny'
    assert main([str(root)]) == 0 and (root / 'VERSION').exists()
    before = (root / 'coco/annotations/instances_train2017.json').stat().st_mtime_ns
    capsys.readouterr()
    assert main([str(root)]) == 0
    assert 'up to date' in capsys.readouterr().out
    assert (root / 'coco/annotations/instances_train2017.json').stat().st_mtime_ns == before
    foreign = tmp_path / 'mine'
    foreign.mkdir()
    (foreign / 'precious.txt').write_text('keep me')
    assert main([str(foreign)]) == 2
    assert 'not made by this tool' in capsys.readouterr().err
    assert (foreign / 'precious.txt').read_text() == 'keep me'
