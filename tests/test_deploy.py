"""Deployment end to end: ONNX graphs that output boxes after NMS and label maps, checked
against PyTorch on images before they are written; folder inference and evaluation of the
exported models on ONNX Runtime against the PyTorch checkpoints the demo trained."""
import json
import re

import numpy as np
import pytest
import torch

from coordatt_mm.apis.build import build_model
from coordatt_mm.deploy import ExportCheckFailed, OnnxModel, export_checked

from e2e_utils import REPO, tool

# the bounds of the export check (coordatt_mm/deploy/check.py) and of the issue
BOX_IOU, SCORE_TOL, PIXELS = 0.99, 1e-3, 0.9999


def test_detection_export_outputs_boxes_after_nms(exported, demo):
    path, stdout = exported['det']
    # the tool checked its file on the held-out images before writing it
    m = re.search(r'checked on (\d+) images: (\d+) detections matched, worst IoU ([0-9.]+), '
                  r'worst score difference ([0-9.e-]+)', stdout)
    assert m, stdout
    assert int(m.group(1)) == 6 and int(m.group(2)) > 20
    assert float(m.group(3)) >= BOX_IOU and float(m.group(4)) <= SCORE_TOL
    model = OnnxModel(str(path))
    assert model.task == 'det' and model.output_names == ['dets', 'labels']
    assert model.input_hw == (192, 192) and model.classes[:2] == ['person', 'bicycle']
    x = np.random.default_rng(0).uniform(0, 255, (3, 3, 192, 192)).astype(np.float32)
    out = model.run(x)
    assert out['dets'].shape == (3, 200, 5) and out['labels'].shape == (3, 200)
    assert out['labels'].dtype == np.int64
    # padding rows: score 0, label -1; detections sorted by score
    pad = out['labels'] < 0
    assert (out['dets'][pad] == 0).all()
    scores = out['dets'][..., 4]
    assert (np.diff(scores, axis=1) <= 0).all()


def test_segmentation_export_is_dynamic_and_equals_pytorch(exported, demo):
    path, stdout = exported['seg_logits']
    m = re.search(r'checked on 6 images: (\d+) pixels at the original sizes, worst agreement '
                  r'([0-9.]+)%', stdout)
    assert m and int(m.group(1)) == 6 * 320 * 240 and float(m.group(2)) >= 100 * PIXELS, stdout
    model = OnnxModel(str(path))
    assert model.output_names == ['labels', 'logits'] and model.input_hw is None
    assert model.input_names == ['input', 'img_shape', 'ori_shape'] and model.takes_sizes
    cfg, net = build_model(demo['seg']['config'], demo['seg']['checkpoint'])
    for hw in ((240, 320), (131, 197)):  # two sizes through one graph
        x = torch.rand(2, 3, *hw) * 255
        out = model.run(x.numpy())
        assert out['labels'].shape == (2, *hw) and out['logits'].shape[2:] == hw
        with torch.no_grad():  # mmseg's own preprocessing of the images (BGR, as loaded)
            data = net.data_preprocessor(dict(inputs=list(x[:, [2, 1, 0]])), False)
            ref = net.encode_decode(data['inputs'], [dict(img_shape=hw)] * 2).argmax(1)
        assert (out['labels'] == ref.numpy()).mean() >= PIXELS


def _sized(src, w, h):
    from PIL import Image
    return np.asarray(Image.open(src).convert('RGB').resize((w, h), Image.BILINEAR))


# (W, H): none at the demo pipeline's scale (a keep-ratio resize into 320 x 240)
SIZES = [(200, 200), (300, 200), (517, 333), (320, 320)]


def test_label_maps_equal_mmsegs_at_any_image_size(exported, demo):
    """ONNX Runtime's label maps at the original size, from the labels-only graph given the
    image sizes, equal mmseg's own inference of the checkpoint (logits cropped, resized
    bilinearly to the image, then the argmax) on every pixel, at sizes the pipeline resizes;
    the labels at the input's size resized after the argmax (older graphs) do not."""
    from mmseg.apis import inference_model

    from coordatt_mm.apis.label_maps import resize_labels
    from coordatt_mm.apis.pipeline import rgb_input
    from coordatt_mm.deploy import OnnxPredictor
    predictor = OnnxPredictor(demo['seg']['config'], str(exported['seg'][0]), 'cpu')
    _, net = build_model(demo['seg']['config'], demo['seg']['checkpoint'])
    sources = sorted((REPO / 'data/tiny/holdout/seg').glob('*.jpg'))
    resized_after = []
    for (w, h), src in zip(SIZES, sources):
        image = _sized(src, w, h)
        with torch.no_grad():
            ref = inference_model(net, np.ascontiguousarray(image[..., ::-1]))
        ref = ref.pred_sem_seg.data[0].numpy()
        got = predictor([image])[0]
        assert got.shape == (h, w) and len(np.unique(ref)) > 1
        assert (got == ref).all(), ((w, h), (got != ref).sum())
        x = rgb_input(predictor.pipeline(image)['inputs']).numpy()
        hw = x.shape[1:]
        labels = predictor.model.run(x[None], hw, hw)['labels'][0]
        resized_after.append((resize_labels(labels, (h, w)) == ref).mean())
    assert min(resized_after) < 0.9999, resized_after


def test_older_exports_without_the_size_inputs_still_run(exported, demo, tmp_path):
    """A segmentation graph that takes the image alone (as exports did before the size
    inputs) runs through the same runtime: its labels at the input's size, resized to the
    image by nearest neighbour."""
    import onnx

    from coordatt_mm.apis.build import load_config
    from coordatt_mm.apis.label_maps import resize_labels
    from coordatt_mm.apis.pipeline import TestPipeline, rgb_input
    graph = onnx.load(str(exported['seg'][0]))
    # the sizes become the input's own, computed in the graph: labels at the input's size
    sizes = [onnx.helper.make_node('Shape', ['input'], ['input_shape']),
             onnx.helper.make_node('Constant', [], ['two'], value_ints=[2]),
             onnx.helper.make_node('Constant', [], ['four'], value_ints=[4]),
             onnx.helper.make_node('Slice', ['input_shape', 'two', 'four'], ['img_shape']),
             onnx.helper.make_node('Identity', ['img_shape'], ['ori_shape'])]
    for i, node in enumerate(sizes):
        graph.graph.node.insert(i, node)
    for name in ('img_shape', 'ori_shape'):
        graph.graph.input.remove(next(i for i in graph.graph.input if i.name == name))
    old = tmp_path / 'old.onnx'
    onnx.save(graph, str(old))
    model = OnnxModel(str(old))
    assert model.input_names == ['input'] and not model.takes_sizes
    image = _sized(sorted((REPO / 'data/tiny/holdout/seg').glob('*.jpg'))[0], 517, 333)
    x = rgb_input(TestPipeline(load_config(demo['seg']['config']))(image)['inputs']).numpy()
    got = model.segment(x, (333, 517))
    labels = model.run(x[None])['labels'][0]
    assert labels.shape == x.shape[1:] and got.shape == (333, 517)
    assert (got == resize_labels(labels, (333, 517))).all() and len(np.unique(got)) > 1


def test_a_failing_check_writes_nothing(demo, tmp_path, monkeypatch, capsys):
    """A graph that disagrees with PyTorch (here: normalisation left out) is not written, and
    a file already at OUT stays as it was."""
    from coordatt_mm.deploy import end2end
    monkeypatch.setattr(end2end._Normalise, 'forward', lambda self, x: x)
    out = tmp_path / 'model.onnx'
    with pytest.raises(ExportCheckFailed, match='detections have no counterpart'):
        export_checked(demo['det']['config'], demo['det']['checkpoint'], str(out))
    assert not out.exists() and list(tmp_path.iterdir()) == []
    out.write_text('an earlier export')
    rc = tool('tools/deploy/export_onnx.py')([demo['det']['config'],
                                              demo['det']['checkpoint'], str(out)])
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert rc == 1 and err.startswith(f'error: {out} not written: ')
    assert out.read_text() == 'an earlier export'


def _boxes(record):
    return (np.asarray(record['boxes'], np.float32).reshape(-1, 4),
            np.asarray(record['scores'], np.float32), np.asarray(record['labels']))


def test_folder_inference_on_onnxruntime_equals_pytorch(exported, demo, tmp_path):
    """coordatt-infer with the .onnx file writes what it writes with the checkpoint: the
    same files; boxes (original pixels) matched as the export check matches them, label maps
    from the logits pixel for pixel."""
    from coordatt_mm.deploy.check import match_detections
    infer = tool('coordatt_cli/infer.py')
    holdout = REPO / 'data/tiny/holdout'
    for task, onnx_name in (('det', 'det'), ('seg', 'seg_logits')):
        runs = {}
        for backend, model in (('pytorch', demo[task]['checkpoint']),
                               ('onnxruntime', str(exported[onnx_name][0]))):
            out = tmp_path / task / backend
            rc = infer([demo[task]['config'], model, str(holdout / task), '--out-dir', str(out),
                        '--quiet', '--score-thr', '0.05'])
            assert rc == 0
            summary = json.loads((out / 'summary.json').read_text())
            assert summary['backend'] == backend and summary['images_done'] == 6
            runs[backend] = out
        a, b = runs['pytorch'], runs['onnxruntime']
        assert sorted(p.name for p in a.iterdir()) == sorted(p.name for p in b.iterdir())
        for f in sorted(a.glob('*.json' if task == 'det' else '*.png')):
            if f.name == 'summary.json':
                continue
            if task == 'det':
                ref, got = (json.loads(p.read_text()) for p in (f, b / f.name))
                assert (ref['width'], ref['height']) == (got['width'], got['height'])
                m = match_detections(_boxes(ref), _boxes(got), 0.05, 200)
                assert m['matched'] == m['required'] > 0, (f.name, m)
            else:
                from PIL import Image
                ref, got = (np.asarray(Image.open(p)) for p in (f, b / f.name))
                assert ref.shape == got.shape and (ref == got).mean() >= PIXELS


@pytest.mark.parametrize('task', ['det', 'seg'])
def test_tools_test_scores_the_onnx_model_like_the_checkpoint(exported, demo, tmp_path, task):
    """tools/test.py CONFIG MODEL.onnx: the codebase's own evaluator on ONNX Runtime's
    predictions equals the checkpoint's score (the demo's own test of it) within 0.005 box mAP
    / 0.5 mIoU."""
    onnx_file = exported['det' if task == 'det' else 'seg_logits'][0]
    wd = tmp_path / 'w'
    assert tool('tools/test.py')([demo[task]['config'], str(onnx_file), '--work-dir',
                                  str(wd)]) == 0
    result = json.loads((wd / 'test_metrics.json').read_text())
    assert result['backend'] == 'onnxruntime'
    key = demo[task]['metric']
    ours, theirs = result['metrics'][key], demo[task]['metrics'][key]
    assert abs(ours - theirs) <= (0.005 if task == 'det' else 0.5), (ours, theirs)


CALIBRATION = {'det': REPO / 'data/tiny/coco/train2017',
               'seg': REPO / 'data/tiny/VOCdevkit/VOC2012/JPEGImages'}


@pytest.mark.parametrize('task', ['det', pytest.param('seg', marks=pytest.mark.slow)])
def test_int8_export_scores_close_to_float(demo, tmp_path, capsys, task):
    """--int8: a QDQ model with int8 convolutions (CA's included), calibrated on the training
    images, goes through tools/test.py like any exported model. Its score stays above the
    demo's threshold, which an untrained model misses by far (an untrained SSDLite scores ~0
    box mAP; predicting background everywhere about 21 mIoU on the tiny data), and within
    0.03 mAP / 2 mIoU of the checkpoint's."""
    import shutil

    import onnx
    calib = tmp_path / 'calib'  # 16 training images and, sorted last, an unreadable file
    calib.mkdir()
    for src in sorted(CALIBRATION[task].glob('*.jpg'))[:16]:
        shutil.copy(src, calib)
    (calib / 'truncated.jpg').write_bytes(b'\xff\xd8\xff')
    out = tmp_path / f'{task}_int8.onnx'
    assert tool('tools/deploy/export_onnx.py')([demo[task]['config'],
                                                demo[task]['checkpoint'], str(out),
                                                '--int8', str(calib),
                                                '--calib-images', '17']) == 0
    printed = capsys.readouterr().out
    assert 'INT8 (QDQ, calibrated on 16 images (1 unreadable skipped)' in printed, printed
    if task == 'det':  # compared both ways
        m = re.search(r'(\d+) of the float model\'s (\d+) detections scoring >= 0\.3 found '
                      r'\((\d+) lost\), (\d+) of its (\d+) without a float counterpart',
                      printed)
        assert m, printed
        found, shown, lost, extra, shown_int8 = map(int, m.groups())
        assert shown > 5 and found + lost == shown and lost <= shown // 4
        assert extra <= shown_int8 // 4
    graph = onnx.load(str(out))
    meta = {p.key: p.value for p in graph.metadata_props}
    assert meta['coordatt_mm.precision'] == 'int8'
    ops = [n.op_type for n in graph.graph.node]
    int8_weights = [t for t in graph.graph.initializer if t.data_type == onnx.TensorProto.INT8]
    assert ops.count('QuantizeLinear') > 50 and len(int8_weights) > 50
    assert any('/attention/' in n.name and n.op_type == 'DequantizeLinear'
               for n in graph.graph.node)  # CA's convolutions are quantised as well
    wd = tmp_path / 'w'
    assert tool('tools/test.py')([demo[task]['config'], str(out), '--work-dir', str(wd)]) == 0
    result = json.loads((wd / 'test_metrics.json').read_text())
    key = demo[task]['metric']
    ours, theirs = result['metrics'][key], demo[task]['metrics'][key]
    assert result['backend'] == 'onnxruntime'
    assert ours >= demo['thresholds'][key], (ours, theirs)
    assert theirs - ours <= (0.03 if task == 'det' else 2.0), (ours, theirs)


@pytest.mark.slow  # a segmentation export, folder inference and an evaluation (about 60 s)
def test_static_segmentation_export(demo, tmp_path, capsys):
    """--static --shape H W: a segmentation graph of one input size, with CA in a static form
    (pooling windows, no means), checked on images given as a folder and a file; folder
    inference pads images of other sizes to it (their maps equal PyTorch's on the same
    canvas), and tools/test.py scores it like the checkpoint (the test images fill it)."""
    import onnx
    from PIL import Image

    from coordatt_mm.apis.images import read_image
    from coordatt_mm.apis.pipeline import TestPipeline
    from coordatt_mm.deploy.check import _reference_seg
    seg = demo['seg']
    holdout = REPO / 'data/tiny/holdout/seg'
    out = tmp_path / 'static.onnx'
    assert tool('tools/deploy/export_onnx.py')([seg['config'], seg['checkpoint'], str(out),
                                                '--static', '--shape', '240', '320',
                                                '--check-images', str(holdout),
                                                str(sorted(holdout.glob('*.jpg'))[0])]) == 0
    printed = capsys.readouterr().out
    assert re.search(r'input N x 3 x 240 x 320 \+ img_shape, ori_shape .*, CA form pool,',
                     printed) and 'checked on 7 images' in printed, printed
    graph = onnx.load(str(out)).graph
    dims = [d.dim_value or d.dim_param for d in graph.input[0].type.tensor_type.shape.dim]
    assert dims == ['batch', 3, 240, 320]
    ops = {n.op_type for n in graph.node if '/attention/' in n.name}
    assert 'AveragePool' in ops and 'ReduceMean' not in ops, ops
    sized = tmp_path / 'sized'
    sized.mkdir()
    for (w, h), src in zip(SIZES, sorted(holdout.glob('*.jpg'))):
        Image.fromarray(_sized(src, w, h)).save(sized / f'{w}x{h}.png')
    assert tool('coordatt_cli/infer.py')([seg['config'], str(out), str(sized), '--out-dir',
                                          str(tmp_path / 'maps'), '--quiet']) == 0
    cfg, net = build_model(seg['config'], seg['checkpoint'])
    pipeline = TestPipeline(cfg)
    for (w, h) in SIZES:
        packed = pipeline(read_image(str(sized / f'{w}x{h}.png')))
        ref = _reference_seg(net, packed, (240, 320))  # PyTorch on the padded canvas
        got = np.asarray(Image.open(tmp_path / 'maps' / f'{w}x{h}.png'))
        assert got.shape == (h, w) and (got == ref).mean() >= PIXELS, (w, h)
    wd = tmp_path / 'w'
    assert tool('tools/test.py')([seg['config'], str(out), '--work-dir', str(wd)]) == 0
    result = json.loads((wd / 'test_metrics.json').read_text())
    key = seg['metric']
    assert abs(result['metrics'][key] - seg['metrics'][key]) <= 0.5


def test_raw_export_keeps_head_outputs(demo, tmp_path, capsys):
    out = tmp_path / 'raw.onnx'
    assert tool('tools/deploy/export_onnx.py')([demo['det']['config'],
                                                demo['det']['checkpoint'], str(out),
                                                '--raw']) == 0
    assert 'max |torch - onnxruntime|' in capsys.readouterr().out
    import onnx
    names = [o.name for o in onnx.load(str(out)).graph.output]
    assert names == [f'cls_score_{i}' for i in range(6)] + [f'bbox_pred_{i}' for i in range(6)]
    with pytest.raises(ValueError, match='--raw'):
        OnnxModel(str(out))  # folder inference and evaluation need the end-to-end graph


def test_decoding_equals_mmdets_coder():
    from mmdet.models.task_modules.coders import DeltaXYWHBBoxCoder

    from coordatt_mm.deploy.end2end import decode_deltas
    g = torch.Generator().manual_seed(0)
    xy = torch.rand(500, 2, generator=g) * 300
    priors = torch.cat([xy, xy + 4 + torch.rand(500, 2, generator=g) * 120], 1)
    deltas = torch.randn(500, 4, generator=g) * 1.5  # some beyond the aspect clamp
    for kw in (dict(target_stds=(0.1, 0.1, 0.2, 0.2)), dict(add_ctr_clamp=True, ctr_clamp=16)):
        coder = DeltaXYWHBBoxCoder(**kw)
        ref = coder.decode(priors, deltas, max_shape=(320, 300))
        ours = decode_deltas(priors, deltas, coder.means, coder.stds, 16 / 1000, (320, 300),
                             coder.ctr_clamp if coder.add_ctr_clamp else None)
        torch.testing.assert_close(ours, ref, atol=1e-4, rtol=1e-5)


def test_nms_operator_equals_its_eager_form(tmp_path):
    """The graph's NonMaxSuppression (ONNX Runtime) keeps what the eager form keeps."""
    from coordatt_mm.deploy.export import export_graph
    from coordatt_mm.deploy.nms import non_max_suppression

    class Net(torch.nn.Module):
        def forward(self, x):
            boxes, scores = x[..., :4], x[..., 4:].transpose(1, 2)
            return non_max_suppression(boxes, scores, 30, 0.45, 0.05)

    g = torch.Generator().manual_seed(1)
    xy = torch.rand(2, 300, 2, generator=g) * 200
    boxes = torch.cat([xy, xy + 10 + torch.rand(2, 300, 2, generator=g) * 60], 2)
    x = torch.cat([boxes, torch.rand(2, 300, 3, generator=g)], 2)  # 3 classes, distinct
    export_graph(Net(), str(tmp_path / 'nms.onnx'), x, ['kept'],
                 {'input': {0: 'n', 1: 'boxes'}})
    from coordatt_mm.deploy import ort_session
    got = ort_session(str(tmp_path / 'nms.onnx')).run(None, {'input': x.numpy()})[0]
    ref = Net()(x).numpy()
    assert len(ref) > 50
    assert sorted(map(tuple, got.tolist())) == sorted(map(tuple, ref.tolist()))


def spread_scores(model):
    """A randomly initialised detector whose scores spread out like a trained one's: variance-
    keeping (Kaiming fan-in) weights, then the classifier scaled to logits of standard
    deviation 3 (sigmoid heads biased to -2). With the codebases' own initialisation every
    score sits near 1/classes, under the score threshold, and ties everywhere."""
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, torch.nn.Conv2d):
                torch.nn.init.kaiming_normal_(m.weight, mode='fan_in', nonlinearity='relu')
                if m.bias is not None:
                    m.bias.normal_(0, 0.1)
            elif isinstance(m, torch.nn.BatchNorm2d):
                m.running_mean.zero_(), m.running_var.fill_(1)
        head = model.bbox_head
        x = model.data_preprocessor(dict(inputs=[torch.randint(0, 255, (3, 256, 320),
                                                               dtype=torch.uint8)]), False)
        cls, _ = head(model.extract_feat(x['inputs']))
        std = torch.cat([c.flatten() for c in cls]).std()
        for name, m in head.named_modules():
            if (isinstance(m, torch.nn.Conv2d) and 'cls' in name and m.groups == 1
                    and m.out_channels % head.cls_out_channels == 0):
                m.weight.mul_(3 / std)
                m.bias.fill_(-2.0 if head.use_sigmoid_cls else 0.0)
    return model


def statistics(model):
    """Non-trivial running statistics for a segmentor, as a trained one has."""
    g = torch.Generator().manual_seed(0)
    for m in model.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.copy_(0.1 * torch.randn(m.num_features, generator=g))
            m.running_var.copy_(0.5 + torch.rand(m.num_features, generator=g))
    return model


DENSE = sorted(p for p in (REPO / 'configs').rglob('*.py') if '_base_' not in p.parts
               and p.parent.name in ('ssdlite', 'deeplabv3', 'retinanet', 'demo')
               and not p.name.startswith('mobilenet'))
# one of each kind in the default run: MobileNeXt's taps, OS8 with every block dilated, mmseg's
# recipe (ASPP + auxiliary head); the demo configs are exported in the tests above
DEFAULT = {'ssdlite_mobilenext-ca_8xb24-600e_coco.py',
           'deeplabv3_mobilenetv2-ca-d8_4xb4-20k_voc12aug-512x512.py'}


@pytest.mark.parametrize('path', [p if p.name in DEFAULT else
                                  pytest.param(p, marks=pytest.mark.slow) for p in DENSE],
                         ids=lambda p: p.name)
def test_every_config_exports_end_to_end(path, tmp_path):
    """Random weights, one input size each (smaller test resizes for the large recipes), the
    export checked against PyTorch on the held-out images as the tool checks it."""
    from coordatt_mm.apis.build import load_config
    from coordatt_mm.deploy import check, plan_export
    from coordatt_mm.deploy.export import write_export
    cfg = load_config(str(path))
    opts = {}
    if cfg.default_scope == 'mmseg' or 'retinanet' in path.name:
        opts['test_pipeline.1.scale'] = (320, 256)
    torch.manual_seed(0)
    cfg, model = build_model(cfg, init=True, cfg_options=opts)
    model = spread_scores(model) if cfg.default_scope == 'mmdet' else statistics(model)
    out = str(tmp_path / 'model.onnx')
    plan = plan_export(cfg)
    info = write_export(plan, model, out)
    report = check.on_images(plan, model, out)
    if info['task'] == 'det':
        assert report['detections_compared'] > 100, report
    else:
        assert report['worst_agreement'] >= PIXELS


def test_what_cannot_export_end_to_end_is_named(demo, tmp_path, capsys):
    export = tool('tools/deploy/export_onnx.py')
    out = tmp_path / 'model.onnx'
    rc = export([demo['det']['config'], demo['det']['checkpoint'], str(out), '--cfg-options',
                 'model.test_cfg.nms.type=soft_nms'])
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert rc == 1 and not out.exists()
    assert err == (f"error: {demo['det']['config']}: cannot export end to end: PatchedSSDHead: "
                   f"test_cfg.nms type 'soft_nms' (the ONNX graph has plain NMS only)")
    cls_cfg = str(REPO / 'configs/demo/mobilenet-v2-ca_1xb8-8e_tiny-in1k.py')
    _, classifier = build_model(cls_cfg)
    torch.save(dict(state_dict=classifier.state_dict()), tmp_path / 'cls.pth')
    assert export([cls_cfg, str(tmp_path / 'cls.pth'), str(out)]) == 1
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert err.endswith('cls configs export with --raw only') and not out.exists()


def test_the_documented_onnxruntime_example_runs_without_coordatt_mm(exported, demo, tmp_path):
    """docs/deploy.md's example, run as a user would (a script of its own), prints the
    detections coordatt-infer finds with the same model, in the image's pixels."""
    import subprocess
    import sys

    from coordatt_mm.apis.images import read_image
    from coordatt_mm.deploy import OnnxPredictor
    from coordatt_mm.deploy.check import match_detections
    text = (REPO / 'docs/deploy.md').read_text()
    block = text.split('<!-- ort-example:begin -->')[1].split('<!-- ort-example:end -->')[0]
    code = block.split('```python\n')[1].split('```')[0]
    assert len(code.strip().splitlines()) <= 20
    assert 'coordatt_mm' not in code
    script = tmp_path / 'example.py'
    script.write_text(code)
    onnx_file = str(exported['det'][0])
    predictor = OnnxPredictor(demo['det']['config'], onnx_file, 'cpu')
    compared = 0
    for image in sorted((REPO / 'data/tiny/holdout/det').glob('*.jpg')):
        r = subprocess.run([sys.executable, str(script), onnx_file, str(image)],
                           capture_output=True, text=True, timeout=120,
                           env={'PATH': '/usr/bin:/bin'})  # no PYTHONPATH, no repo on it
        assert r.returncode == 0, r.stderr[-2000:]
        rows = [line.split() for line in r.stdout.strip().splitlines()]
        got = (np.asarray([[float(v) for v in row[2:]] for row in rows], np.float32)
               .reshape(-1, 4), np.asarray([float(row[1]) for row in rows], np.float32),
               np.asarray([int(row[0]) for row in rows]))
        boxes, scores, labels = predictor([read_image(str(image))])[0]
        keep = scores >= 0.3
        m = match_detections((boxes[keep], scores[keep], labels[keep]), got, 0.3, 200)
        assert m['matched'] == m['required'], (image.name, m)
        compared += m['required']
    assert compared > 5


def test_apis_does_not_import_deploy():
    """Imports run one way: deploy builds on apis (models, pipelines, folder inference), and
    no module of apis imports deploy, not even inside a function."""
    import ast
    found = []
    for path in sorted((REPO / 'coordatt_mm/apis').glob('*.py')):
        for node in ast.walk(ast.parse(path.read_text())):
            names = ([a.name for a in node.names] if isinstance(node, ast.Import) else
                     [node.module or ''] if isinstance(node, ast.ImportFrom) else [])
            found += [(path.name, n) for n in names if n.startswith('coordatt_mm.deploy')]
    assert found == []
