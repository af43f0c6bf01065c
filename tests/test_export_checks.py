"""The export's checks cannot pass on a broken model: each fails on a wrong input (images that
compare nothing, maps off by the old nearest-neighbour resize, an INT8 model that loses or
invents detections, a calibration folder without a readable image), with the models the demo
trained and the graphs the session exported."""
import re
import shutil

import numpy as np
import pytest
from PIL import Image

from coordatt_mm.apis.build import build_model
from coordatt_mm.apis.images import list_inputs
from coordatt_mm.deploy import ExportCheckFailed, OnnxModel, check, plan_export

from e2e_utils import REPO, tool

HOLDOUT = REPO / 'data/tiny/holdout'


@pytest.fixture(scope='module')
def models(demo):
    """{task: (config, model)} of the demo's trained detector and segmentor."""
    return {task: build_model(demo[task]['config'], demo[task]['checkpoint'])
            for task in ('det', 'seg')}


def _flat_images(folder, n=3, size=(320, 240)):
    """Images of one mid grey each: nothing but background to segment, and nothing the demo
    detector scores above 0.06 (it finds faint boxes in almost anything)."""
    folder.mkdir()
    paths = []
    for i in range(n):
        paths.append(str(folder / f'flat_{i}.png'))
        Image.new('RGB', size, (120 + 5 * i,) * 3).save(paths[-1])
    return paths


def test_detection_check_fails_when_nothing_is_detected(models, exported, tmp_path,
                                                        monkeypatch):
    """The rule counts detections clear of the model's score threshold; at 0.5 (raised from
    the config's 0.02, which faint boxes on any image clear) flat images give none on either
    side (the demo detectors trained with 5 seeds and each kernel build scored at most 0.34
    on them), the held-out images at 0.3 a few dozen."""
    cfg, model = models['det']
    monkeypatch.setitem(model.bbox_head.test_cfg, 'score_thr', 0.5)
    onnx_file = str(exported['det'][0])
    plan = plan_export(cfg, check_images=_flat_images(tmp_path / 'flat'))
    with pytest.raises(ExportCheckFailed, match=r'nothing compared: no detection scores above '
                                                r'0\.501 .* on the 3 check images'):
        check.on_images(plan, model, onnx_file)
    # the same graph and model pass where there are objects: the images made the difference
    monkeypatch.setitem(model.bbox_head.test_cfg, 'score_thr', 0.3)
    report = check.on_images(plan_export(cfg), model, onnx_file)
    assert report['detections_compared'] >= 10


def test_segmentation_check_fails_on_single_label_maps(models, tmp_path):
    """A segmentor that labels every pixel alike (its classifier's weights zero, one class's
    bias up: a model that learned nothing), exported, agrees with itself on every pixel of
    every image and still fails the check: it compared nothing."""
    import copy

    import torch

    from coordatt_mm.deploy import export_model
    cfg, model = models['seg']
    broken = copy.deepcopy(model)
    with torch.no_grad():
        broken.decode_head.conv_seg.weight.zero_()
        broken.decode_head.conv_seg.bias.zero_()
        broken.decode_head.conv_seg.bias[3] = 1.0
    onnx_file = str(tmp_path / 'broken.onnx')
    export_model(cfg, broken, onnx_file)
    plan = plan_export(cfg, check_images=_flat_images(tmp_path / 'flat'))
    with pytest.raises(ExportCheckFailed, match='nothing compared: PyTorch gives each of the 3 '
                                                'check images a single label everywhere'):
        check.on_images(plan, broken, onnx_file)


def _resized_holdout(folder, sizes):
    """The held-out segmentation images at sizes the test pipeline resizes (W x H)."""
    folder.mkdir()
    paths = []
    for (w, h), src in zip(sizes, sorted((HOLDOUT / 'seg').glob('*.jpg'))):
        paths.append(str(folder / f'{src.stem}_{w}x{h}.png'))
        Image.open(src).convert('RGB').resize((w, h), Image.BILINEAR).save(paths[-1])
    return paths


def test_segmentation_check_fails_on_maps_resized_after_the_argmax(models, exported, tmp_path,
                                                                    monkeypatch):
    """Labels at the input's size resized to the image by nearest neighbour (what the graphs
    gave before they took the image sizes) differ from mmseg's on a few pixels of images not
    at the pipeline's scale: the check sees it."""
    from coordatt_mm.apis.label_maps import resize_labels
    cfg, model = models['seg']
    plan = plan_export(cfg, check_images=_resized_holdout(tmp_path / 'sized',
                                                          [(300, 200), (517, 333)]))
    onnx_file = str(exported['seg'][0])
    assert check.on_images(plan, model, onnx_file)['worst_agreement'] >= check.PIXEL_AGREEMENT

    def after_the_argmax(self, image, ori_hw):
        hw = image.shape[1:]
        return resize_labels(self.run(image[None], hw, hw)['labels'][0], ori_hw)

    monkeypatch.setattr(OnnxModel, 'segment', after_the_argmax)
    with pytest.raises(ExportCheckFailed, match=r'of the pixels have PyTorch\'s label'):
        check.on_images(plan, model, onnx_file)


def test_int8_comparison_counts_both_directions(models, exported, tmp_path, monkeypatch):
    """Detections the INT8 model lost, and detections it has that the float model lacks,
    each fail the comparison beyond a quarter of their side."""
    cfg, _ = models['det']
    plan = plan_export(cfg, int8_images=[])
    float_file, int8_file = str(exported['det'][0]), str(tmp_path / 'int8.onnx')
    shutil.copy(float_file, int8_file)
    same = check.int8_against_float(plan, int8_file, float_file)
    assert same['lost'] == same['extra'] == 0
    assert same['matched'] == same['float_detections'] == same['int8_detections'] > 5
    real = OnnxModel.detect

    def int8_detects(change):
        def detect(self, images, scale_factors):
            preds = real(self, images, scale_factors)
            return [change(*p) for p in preds] if self.path == int8_file else preds
        return detect

    # every detection lost
    monkeypatch.setattr(OnnxModel, 'detect', int8_detects(lambda b, s, lab: (b[:0], s[:0],
                                                                              lab[:0])))
    with pytest.raises(ExportCheckFailed) as lost:
        check.int8_against_float(plan, int8_file, float_file)
    m = re.search(r'INT8 lost (\d+) of the float model\'s (\d+) detections .* has 0 of its 0 ',
                  str(lost.value))
    assert m and m.group(1) == m.group(2) == str(same['float_detections']), lost.value

    # every float detection kept, and one invented in a corner for each shown (the other
    # direction alone fails)
    def invent(boxes, scores, labels):
        shown = scores >= check.INT8_SHOWN_SCORE
        fake = np.tile(np.asarray([[1, 1, 5, 5]], np.float32), (int(shown.sum()), 1))
        return (np.concatenate([boxes, fake]), np.concatenate([scores, scores[shown]]),
                np.concatenate([labels, labels[shown]]))
    monkeypatch.setattr(OnnxModel, 'detect', int8_detects(invent))
    n = same['float_detections']
    with pytest.raises(ExportCheckFailed, match=rf'INT8 lost 0 of the float model\'s {n} '
                                                rf'detections .* has {n} of its {2 * n} '):
        check.int8_against_float(plan, int8_file, float_file)


def test_calibration_counts_the_images_it_used(models, exported, tmp_path):
    from coordatt_mm.deploy.quantize import ImageCalibration
    cfg, _ = models['det']
    folder = tmp_path / 'calib'
    folder.mkdir()
    for src in sorted((HOLDOUT / 'det').glob('*.jpg'))[:3]:
        shutil.copy(src, folder)
    (folder / 'empty.jpg').write_bytes(b'')
    (folder / 'notes.png').write_text('not a picture')
    images = list_inputs(str(folder))[1]
    calibration = ImageCalibration(plan_export(cfg, int8_images=images, check_images=()))
    assert len(calibration.inputs) == 3
    assert [s.split(': ')[0] for s in calibration.skipped] == [str(folder / 'empty.jpg'),
                                                               str(folder / 'notes.png')]
    feeds = list(iter(calibration.for_model(str(exported['det'][0])).get_next, None))
    assert len(feeds) == 3 and all(f['input'].shape == (1, 3, 192, 192) for f in feeds)


def test_calibration_without_a_readable_image_writes_nothing(demo, tmp_path, capsys):
    bad = tmp_path / 'calib'
    bad.mkdir()
    (bad / 'a.jpg').write_bytes(b'')
    (bad / 'b.png').write_text('not a picture')
    folder = tmp_path / 'out'
    folder.mkdir()
    out = folder / 'model_int8.onnx'
    rc = tool('tools/deploy/export_onnx.py')([demo['det']['config'], demo['det']['checkpoint'],
                                              str(out), '--int8', str(bad)])
    errors = [line for line in capsys.readouterr().err.splitlines()
              if line.startswith('error:')]
    assert rc == 1 and errors == [
        f'error: {out} not written: {bad}: no readable calibration image (2 tried; '
        f'{bad / "a.jpg"}: empty file (0 bytes))']
    assert list(folder.iterdir()) == []  # no model, no temporary folder


@pytest.mark.slow  # a detector export (about 15 s)
def test_export_with_check_images_that_compare_nothing_is_not_written(demo, tmp_path, capsys):
    flat = _flat_images(tmp_path / 'flat', n=2)
    out = tmp_path / 'model.onnx'
    rc = tool('tools/deploy/export_onnx.py')([demo['det']['config'], demo['det']['checkpoint'],
                                              str(out), '--check-images', str(tmp_path / 'flat'),
                                              flat[0], '--cfg-options',
                                              'model.test_cfg.score_thr=0.3'])
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert rc == 1 and not out.exists()
    assert err.startswith(f'error: {out} not written: the check against PyTorch failed: '
                          f'nothing compared') and 'on the 3 check images' in err
