"""Command lines answer at once: ``--help`` and argument errors are handled before torch or
any OpenMMLab codebase is imported; ``import coordatt_mm`` registers everything without
importing mmdet's and mmseg's model zoos."""
import json
import subprocess
import sys

from e2e_utils import REPO

# (script, arguments, exit status): --help of every command, then argument errors
CASES = [(str(p.relative_to(REPO)), ['--help'], 0)
         for p in sorted((REPO / 'tools').rglob('*.py'))] + [
    ('coordatt_cli/infer.py', ['--help'], 0),
    ('coordatt_cli/infer.py', ['no.py', 'no.pth', 'photos/'], 2),
    ('coordatt_cli/infer.py', ['a.py', 'b.onnx', 'c', '--batch-size', '0'], 2),
    ('tools/train.py', ['missing_config.py'], 1),
    ('tools/test.py', ['missing_config.py', 'model.onnx'], 1),
    ('tools/deploy/export_onnx.py', ['a.py', 'b.pth', 'c.onnx', '--raw', '--with-logits'], 2),
    ('tools/deploy/export_onnx.py', ['missing.py', 'b.pth', 'c.onnx'], 2),
    ('tools/analysis/benchmark.py', ['--sections', 'nope'], 2),
    ('tools/gpu_check.py', ['--skip', 'nope'], 2),
]
HEAVY = ('torch', 'numpy', 'mmengine', 'mmcv', 'mmdet', 'mmseg', 'mmpretrain', 'coordatt_mm',
         'onnxruntime')
PROBE = '''
import json, runpy, sys
cases, heavy, out = json.loads(sys.argv[1]), sys.argv[2].split(','), []
for script, argv, _ in cases:
    sys.argv = [script] + argv
    try:
        runpy.run_path(script, run_name='__main__')
        code = 0
    except SystemExit as e:
        code = e.code or 0
    out.append([code, sorted(m for m in heavy if m in sys.modules)])
print(json.dumps(out))
'''


def test_help_and_argument_errors_import_nothing_heavy():
    r = subprocess.run([sys.executable, '-c', PROBE, json.dumps(CASES), ','.join(HEAVY)],
                       cwd=REPO, capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr[-2000:]
    results = json.loads(r.stdout.strip().splitlines()[-1])
    for (script, argv, status), (code, imported) in zip(CASES, results):
        assert code == status, (script, argv, code)
        assert imported == [], (script, argv, imported)


def test_import_registers_without_the_model_zoos():
    code = ('import sys, coordatt_mm\n'
            'zoos = [m for m in ("mmdet.models", "mmseg.models", "mmpretrain") '
            'if m in sys.modules]\n'
            # a submodule not imported yet, by name from the package (as the CLIs do)
            'from coordatt_mm import deploy\n'
            'from mmdet.registry import MODELS\n'
            'from mmengine.registry import init_default_scope\n'
            'init_default_scope("mmdet")\n'
            'head = MODELS.build(dict(type="PatchedSSDHead", num_classes=3, in_channels=(8,),'
            ' anchor_generator=dict(type="SSDAnchorGenerator", scale_major=False, '
            'input_size=64, strides=[8], ratios=[[2]], min_sizes=[8], max_sizes=[16])))\n'
            'from coordatt_mm import PatchedSSDHead\n'
            'print(zoos, type(head) is PatchedSSDHead, MODELS.get("PatchedSSDHead") is '
            'PatchedSSDHead)\n'
            'from coordatt_mm import heads\n'
            'print(deploy.__name__, heads.DeepLabV3Head is coordatt_mm.DeepLabV3Head, '
            'hasattr(coordatt_mm, "no_such_name"))\n')
    r = subprocess.run([sys.executable, '-c', code], cwd=REPO, capture_output=True, text=True,
                       timeout=300)
    assert r.returncode == 0, r.stderr[-2000:]
    assert r.stdout.strip().splitlines()[-2:] == ['[] True True', 'coordatt_mm.deploy True False']
