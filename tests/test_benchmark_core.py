"""The benchmark's shared core: the machine line every table file opens with (CPU vector
features from /proc/cpuinfo, runtime versions) and the registry sections add themselves to."""
import argparse
import importlib.metadata

import pytest

from coordatt_mm.analysis.benchmark import core

# two processors: only the first one's name and flags count
AVX512_VNNI = ('processor\t: 0\nmodel name\t: Xeon Test\nflags\t\t: fpu sse2 avx avx2 avx512f '
               'avx512bw avx512_vnni\n\nprocessor\t: 1\nmodel name\t: Other\nflags\t\t: fpu\n')
AVX2_VNNI = 'model name\t: Core Test\nflags\t\t: fpu avx avx2 avx_vnni avx512_bf16\n'
AVX2_ONLY = 'model name\t: EPYC Test\nflags\t\t: fpu avx avx2 avx512_bf16\n'
ARM = 'processor\t: 0\nFeatures\t: fp asimd evtstrm\nCPU implementer\t: 0x41\n'


@pytest.mark.parametrize('text,name,features', [
    (AVX512_VNNI, 'Xeon Test', {'AVX2': True, 'AVX-512': True, 'VNNI': True}),
    (AVX2_VNNI, 'Core Test', {'AVX2': True, 'AVX-512': False, 'VNNI': True}),
    (AVX2_ONLY, 'EPYC Test', {'AVX2': True, 'AVX-512': False, 'VNNI': False}),
])
def test_cpu_features_come_from_the_first_processors_flags(tmp_path, text, name, features):
    path = tmp_path / 'cpuinfo'
    path.write_text(text)
    assert core.cpu_info(str(path)) == (name, features)


def test_machine_line_names_features_and_runtime_versions(tmp_path):
    path = tmp_path / 'cpuinfo'
    path.write_text(AVX2_ONLY)
    line = core.machine_line(str(path))
    assert line.startswith('CPU EPYC Test, vector features: AVX2 yes, AVX-512 no, VNNI no; ')
    import torch
    assert f'torch {torch.__version__}' in line
    assert f'onnxruntime {importlib.metadata.version("onnxruntime")}' in line
    try:
        assert f'openvino {importlib.metadata.version("openvino")}' in line
    except importlib.metadata.PackageNotFoundError:
        assert 'openvino not installed' in line
    path.write_text(ARM)
    assert 'vector features: unknown (no x86 flags in' in core.machine_line(str(path))


def test_sections_register_once_and_run_refuses_unknown_names(monkeypatch):
    import coordatt_mm.analysis.benchmark  # noqa: F401  (the section modules register)
    assert {'layer', 'eager', 'onnxruntime', 'openvino', 'training', 'compile'} <= set(
        core.SECTIONS)
    monkeypatch.setattr(core, 'SECTIONS', dict(core.SECTIONS))
    core.section('attention-test')(lambda rep, args, device: None)
    assert 'attention-test' in core.SECTIONS
    with pytest.raises(ValueError, match='registered twice'):
        core.section('layer')(lambda rep, args, device: None)
    args = argparse.Namespace(batch='1', device='cpu', sections='layer,nope')
    with pytest.raises(ValueError, match=r"\['nope'\]: not registered"):
        core.run(args)
