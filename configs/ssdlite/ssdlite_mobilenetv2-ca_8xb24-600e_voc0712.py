# SSDLite320 with MobileNetV2 + CA, trained on VOC07+12 trainval, tested on VOC2007 test.
# Paper (Hou et al. 2021, detection table): VOC2007 test mAP 73.1.
# Metric: mAP at IoU 0.5 with 11-point interpolation (mmdet's VOC setting, eval_mode='11points').
_base_ = './ssdlite_mobilenetv2-ca_8xb24-600e_coco.py'

model = dict(bbox_head=dict(num_classes=20))

dataset_type = 'VOCDataset'
data_root = 'data/VOCdevkit/'
voc_train = dict(
    type=dataset_type,
    data_root=data_root,
    filter_cfg=dict(filter_empty_gt=True, min_size=32, bbox_min_size=32),
    pipeline={{_base_.train_pipeline}})
train_dataloader = dict(
    dataset=dict(
        dataset=dict(
            _delete_=True,
            type='ConcatDataset',
            # VOCDataset reads its class names from METAINFO, so the datasets agree
            ignore_keys=['dataset_type'],
            datasets=[
                dict(voc_train, ann_file='VOC2007/ImageSets/Main/trainval.txt',
                     data_prefix=dict(sub_data_root='VOC2007/')),
                dict(voc_train, ann_file='VOC2012/ImageSets/Main/trainval.txt',
                     data_prefix=dict(sub_data_root='VOC2012/')),
            ])))
val_dataloader = dict(
    dataset=dict(
        _delete_=True,
        type=dataset_type,
        data_root=data_root,
        ann_file='VOC2007/ImageSets/Main/test.txt',
        data_prefix=dict(sub_data_root='VOC2007/'),
        test_mode=True,
        pipeline={{_base_.test_pipeline}}))
test_dataloader = val_dataloader
val_evaluator = dict(_delete_=True, type='VOCMetric', metric='mAP', eval_mode='11points')
test_evaluator = val_evaluator
