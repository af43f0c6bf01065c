"""Folder inference on hostile input, with the models the demo run trained."""
import io
import json
import subprocess
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageDraw

from coordatt_mm.apis.images import list_inputs, read_image
from coordatt_mm.apis.infer import output_stems

from e2e_utils import BIN, REPO, env

BAD = {'cut.jpg': 'unreadable', 'empty.jpg': 'empty file', 'notes.png': 'not an image'}
# a 'car' (the tiny data's blue, wide rectangle) at a known place of a 8000x6000 photo
BIG_BOX = (3000, 2000, 6000, 3200)  # 120x64 px, the trained aspect, once resized to 320x320


def _noise(w, h, seed=0):
    rng = np.random.default_rng(seed)
    return Image.fromarray(rng.integers(110, 151, (h, w, 3), dtype=np.uint8))


def make_hostile_folder(root: Path) -> dict:
    """Every kind of awkward input; returns {relative path: expected displayed (w, h)}."""
    good = {}

    def save(rel, img, size=None, **kw):
        p = root / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        img.save(p, **kw)
        good[rel] = size or img.size

    base = _noise(320, 240)
    ImageDraw.Draw(base).rectangle([100, 80, 200, 135], fill=(40, 70, 220))
    save('plain.jpg', base)
    save('grey.png', base.convert('L'))
    save('rgba.png', base.convert('RGBA'))
    sixteen = Image.fromarray((np.asarray(base.convert('L'), np.uint16) * 257))
    assert sixteen.mode.startswith('I;16')
    save('deep16.png', sixteen)
    save('cmyk.jpg', base.convert('CMYK'))
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees clockwise when displayed
    save('rotated.jpg', base, size=(240, 320), exif=exif.tobytes())
    save('tiny.png', Image.new('RGB', (1, 1), (10, 200, 10)))
    big = _noise(8000, 6000, seed=1)
    ImageDraw.Draw(big).rectangle(BIG_BOX, fill=(40, 70, 220))
    save('big/large photo.jpg', big, quality=85)
    save('nested/deeper/ümlaut café.JPG', base)
    save('same/a.jpg', base)
    save('same/a.png', base)
    # bad files
    data = io.BytesIO()
    base.save(data, format='JPEG')
    (root / 'cut.jpg').write_bytes(data.getvalue()[: len(data.getvalue()) // 3])
    (root / 'empty.jpg').write_bytes(b'')
    (root / 'notes.png').write_text('not a picture at all')
    (root / 'readme.txt').write_text('ignored: not an image extension')
    return good


@pytest.fixture(scope='module')
def hostile(tmp_path_factory):
    root = tmp_path_factory.mktemp('hostile')
    return root, make_hostile_folder(root)


def test_listing_is_sorted_recursive_and_case_insensitive(hostile):
    root, good = hostile
    base, paths = list_inputs(str(root))
    rel = [str(Path(p).relative_to(root)) for p in paths]
    assert rel == sorted(rel) and set(rel) == set(good) | set(BAD)
    stems = output_stems(base, paths)
    assert len(set(stems.values())) == len(paths)  # one-to-one
    assert stems[str(root / 'same/a.jpg')] == 'same/a_jpg'
    assert stems[str(root / 'nested/deeper/ümlaut café.JPG')] == 'nested/deeper/ümlaut café'
    # a glob and a single file
    _, jpgs = list_inputs(str(root / '**' / '*.jpg'))
    assert all(p.lower().endswith('.jpg') for p in jpgs) and len(jpgs) >= 4
    assert list_inputs(str(root / 'plain.jpg'))[1] == [str(root / 'plain.jpg')]


def test_reading_awkward_images(hostile):
    root, good = hostile
    for rel, (w, h) in good.items():
        if rel.startswith('big'):
            continue
        arr = read_image(str(root / rel))
        assert arr.shape == (h, w, 3) and arr.dtype == np.uint8, rel
    deep = read_image(str(root / 'deep16.png'))
    assert abs(int(deep.mean()) - int(read_image(str(root / 'grey.png')).mean())) <= 1


def infer(cfg, ckpt, inp, out, *extra):
    return subprocess.run([str(BIN / 'coordatt-infer'), cfg, ckpt, str(inp), '--out-dir', str(out),
                           *extra], cwd=REPO, env=env(), capture_output=True, text=True,
                          timeout=900)


def infer_here(capsys, cfg, ckpt, inp, out, *extra):
    """The same CLI called in this process (no start-up cost): (exit status, stderr)."""
    from coordatt_cli.infer import main
    capsys.readouterr()
    rc = main([str(REPO / cfg), str(ckpt), str(inp), '--out-dir', str(out), *extra])
    return rc, capsys.readouterr().err


def _iou(a, b):
    ix = max(0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = ix * iy
    return inter / ((a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter)


def test_detection_on_hostile_folder(demo, hostile, tmp_path, capsys):
    root, good = hostile
    det = demo['det']
    r = infer(det['config'], det['checkpoint'], root, tmp_path, '--quiet', '--batch-size', '2',
              '--score-thr', '0.1')
    assert r.returncode == 1, r.stderr[-2000:]
    err_lines = [line for line in r.stderr.splitlines() if line.startswith('error:')]
    assert len(err_lines) == len(BAD)
    for name, why in BAD.items():
        assert any(str(root / name) in line and why in line for line in err_lines), name
    summary = json.loads((tmp_path / 'summary.json').read_text())
    assert summary['task'] == 'det' and summary['images_done'] == len(good)
    assert {Path(f['path']).name for f in summary['images_failed']} == set(BAD)
    for rel, (w, h) in good.items():
        stem = str(tmp_path / summary['outputs'][str(root / rel)])
        rec = json.loads(Path(stem + '.json').read_text())
        assert (rec['width'], rec['height']) == (w, h), rel
        assert Image.open(stem + '.jpg').size == (w, h)
    big = json.loads((tmp_path / 'big' / 'large photo.json').read_text())
    cars = [b for b, c in zip(big['boxes'], big['classes']) if c == 'car']
    assert cars and max(_iou(b, BIG_BOX) for b in cars) > 0.5, big
    assert 'car' in summary['classes_seen'] and summary['seconds_per_image'] > 0
    # second run: existing outputs are kept, the bad files fail again
    before = (tmp_path / 'plain.json').stat().st_mtime_ns
    rc, _ = infer_here(capsys, det['config'], det['checkpoint'], root, tmp_path, '--quiet')
    assert rc == 1
    assert (tmp_path / 'plain.json').stat().st_mtime_ns == before
    s2 = json.loads((tmp_path / 'summary.json').read_text())
    assert s2['images_kept'] == len(good) and s2['images_done'] == 0
    assert list(tmp_path.glob('summary_*.json'))  # the first run's report is kept too
    rc, _ = infer_here(capsys, det['config'], det['checkpoint'], root / 'plain.jpg', tmp_path,
                       '--quiet', '--overwrite')
    assert rc == 0 and (tmp_path / 'plain.json').stat().st_mtime_ns != before


@pytest.mark.slow  # an 8000x6000 image (about 35 s)
def test_segmentation_on_hostile_folder_in_bounded_memory(demo, hostile, tmp_path):
    """Every readable image segmented at its own resolution; the folder holds an 8000x6000
    photo, and the whole run stays below 2 GB resident (mmseg's full-resolution logits for it
    alone would take 2.3 GB)."""
    root, good = hostile
    seg = demo['seg']
    # the peak resident set of this process image (VmHWM): getrusage's ru_maxrss would also
    # count the test process it was started from
    code = ('import re, sys\n'
            'from coordatt_cli.infer import main\n'
            'rc = main(sys.argv[1:])\n'
            'hwm = re.search(r"VmHWM:\\s+(\\d+) kB", open("/proc/self/status").read())\n'
            'print("MAXRSS_KB", hwm.group(1))\n'
            'sys.exit(rc)\n')
    r = subprocess.run([str(BIN / 'python'), '-c', code, seg['config'], seg['checkpoint'],
                        str(root), '--out-dir', str(tmp_path), '--quiet'],
                       capture_output=True, text=True, env=env(), cwd=REPO)
    assert r.returncode == 1, r.stderr[-2000:]  # the bad files
    peak_gb = int(r.stdout.split('MAXRSS_KB')[1]) / 2 ** 20
    assert peak_gb < 2.0, peak_gb
    summary = json.loads((tmp_path / 'summary.json').read_text())
    assert summary['task'] == 'seg' and summary['images_done'] == len(good)
    for rel, (w, h) in good.items():
        stem = str(tmp_path / summary['outputs'][str(root / rel)])
        mask = Image.open(stem + '.png')
        assert mask.mode == 'P' and mask.size == (w, h), rel
        assert Image.open(stem + '_overlay.jpg').size == (w, h)
    mask = np.asarray(Image.open(tmp_path / 'big' / 'large photo.png'))
    x1, y1, x2, y2 = BIG_BOX
    inside = mask[y1 + 100:y2 - 100, x1 + 100:x2 - 100]
    car = 7  # VOC label id of 'car'
    assert (inside == car).mean() > 0.5
    assert (mask[:1500, :1500] == car).mean() < 0.1


def test_exit_status_when_nothing_readable(demo, tmp_path, capsys):
    det = demo['det']
    bad = tmp_path / 'bad'
    bad.mkdir()
    (bad / 'x.jpg').write_bytes(b'')
    rc, err = infer_here(capsys, det['config'], det['checkpoint'], bad, tmp_path / 'o1',
                         '--quiet')
    assert rc == 2 and 'empty file' in err
    (tmp_path / 'void').mkdir()
    rc, err = infer_here(capsys, det['config'], det['checkpoint'], tmp_path / 'void',
                         tmp_path / 'o2', '--quiet')
    assert rc == 2 and 'no image found' in err
    rc, err = infer_here(capsys, det['config'], tmp_path / 'missing.pth', bad, tmp_path / 'o3')
    assert rc == 2 and 'missing.pth: checkpoint not found' in err



def test_onnx_model_on_hostile_folder(demo, exported, hostile, tmp_path, capsys):
    """The ONNX Runtime path handles bad files as the PyTorch one: one error line each, the
    others done, exit status 1; a device its ONNX Runtime lacks is a one-line error."""
    root, good = hostile
    onnx_file = str(exported['det'][0])
    rc, err = infer_here(capsys, demo['det']['config'], onnx_file, root, tmp_path, '--quiet',
                         '--batch-size', '2', '--score-thr', '0.1')
    assert rc == 1
    err_lines = [line for line in err.splitlines() if line.startswith('error:')]
    assert len(err_lines) == len(BAD)
    for name, why in BAD.items():
        assert any(str(root / name) in line and why in line for line in err_lines), name
    summary = json.loads((tmp_path / 'summary.json').read_text())
    assert summary['backend'] == 'onnxruntime' and summary['images_done'] == len(good)
    # the 'car' of the 8000x6000 photo, found at its place in original pixels
    record = json.loads((tmp_path / 'big' / 'large photo.json').read_text())
    cars = [b for b, c in zip(record['boxes'], record['classes']) if c == 'car']
    assert cars and max(_iou(b, BIG_BOX) for b in cars) > 0.5
    import onnxruntime as ort
    if 'CUDAExecutionProvider' not in ort.get_available_providers():
        rc, err = infer_here(capsys, demo['det']['config'], onnx_file, root, tmp_path / 'c',
                             '--device', 'cuda')
        assert rc == 2
        line = err.strip().splitlines()[-1]
        assert line.startswith('error: ') and 'no CUDA execution provider' in line


@pytest.mark.parametrize('align_corners', [False, True])
def test_upsample_argmax_equals_full_resolution_interpolation(align_corners):
    import torch
    import torch.nn.functional as F

    from coordatt_mm.apis.label_maps import upsample_argmax
    g = torch.Generator().manual_seed(0)
    logits = torch.randn(19, 37, 53, generator=g)
    size = (413, 301)
    full = F.interpolate(logits[None], size=size, mode='bilinear', align_corners=align_corners)[0]
    # strips of a few rows: many strip boundaries
    ours = upsample_argmax(logits, size, align_corners, strip_elements=19 * 301 * 7)
    top2 = full.topk(2, dim=0).values
    clear = (top2[0] - top2[1] > 1e-5).numpy()
    assert clear.mean() > 0.99
    assert (ours == full.argmax(0).numpy())[clear].all()


def test_segmentation_labels_are_mmsegs(demo):
    """The label maps equal mmseg's own post-processing (full-resolution logits, argmax)."""
    import torch
    from mmseg.apis import inference_model

    from coordatt_mm.apis.infer import TorchPredictor
    seg = demo['seg']
    predictor = TorchPredictor(seg['config'], seg['checkpoint'], 'cpu')
    canvas = _noise(700, 500, seed=3)
    draw = ImageDraw.Draw(canvas)
    draw.rectangle([100, 120, 330, 230], fill=(40, 70, 220))  # a 'car'
    draw.ellipse([420, 200, 560, 420], fill=(220, 40, 40))    # a 'person'
    image = np.asarray(canvas)
    ours = predictor([image])[0]
    with torch.no_grad():
        ref = inference_model(predictor.model, np.ascontiguousarray(image[..., ::-1]))
    top2 = ref.seg_logits.data.topk(2, dim=0).values
    clear = (top2[0] - top2[1] > 1e-4).numpy()
    assert ours.shape == (500, 700) and clear.mean() > 0.99
    assert (ours == ref.pred_sem_seg.data[0].numpy())[clear].all()
