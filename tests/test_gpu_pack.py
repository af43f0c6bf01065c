"""The GPU pack (make gpu-pack, tools/gpu_pack/): its check finds what the lent machine would
lack -- a missing requirement, two versions of a package, a wheel for another Python, a package
the machine has, too many MiB -- and run.sh --dry-run passes on a complete pack and fails on an
incomplete one; the reports of run.sh's phases merge into one; making a pack replaces only a
previous pack, and only once the new one is complete. The slow test makes the real
pack from the package index and checks it (Python 3.12, at most 60 MiB)."""
import io
import json
import os
import socket
import subprocess
import sys
import tarfile
import zipfile
from pathlib import Path

import pytest

from e2e_utils import REPO, tool

check = tool('tools/gpu_pack/check_pack.py', 'check')


def wheel(folder: Path, name: str, version: str, requires=(), tag='py3-none-any') -> Path:
    """A wheel holding metadata only: enough for pip's resolution."""
    dist = name.replace('-', '_')
    info = f'{dist}-{version}.dist-info'
    path = folder / f'{dist}-{version}-{tag}.whl'
    with zipfile.ZipFile(path, 'w') as z:
        z.writestr(f'{info}/METADATA', f'Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n'
                   + ''.join(f'Requires-Dist: {r}\n' for r in requires))
        z.writestr(f'{info}/WHEEL', f'Wheel-Version: 1.0\nRoot-Is-Purelib: true\nTag: {tag}\n')
        z.writestr(f'{info}/RECORD', '')
    return path


def small_pack(folder: Path) -> Path:
    """A complete pack in miniature: a codebase needing a pure and a compiled wheel, numpy from
    the machine, mmcv's source needing addict and numpy, the launcher."""
    folder.mkdir()
    wheel(folder, 'mmfake', '1.0', ['addict', 'fastthing>=1', 'numpy>=2',
                                    'tqdm; sys_platform == "win32"'])
    wheel(folder, 'addict', '2.4.0')
    wheel(folder, 'fastthing', '1.2', tag='cp312-cp312-manylinux_2_17_x86_64')
    runtime = b'addict\nnumpy\n'
    with tarfile.open(folder / 'mmcv-2.1.0.tar.gz', 'w:gz') as tar:
        info = tarfile.TarInfo('mmcv-2.1.0/requirements/runtime.txt')
        info.size = len(runtime)
        tar.addfile(info, io.BytesIO(runtime))
    (folder / 'requirements.txt').write_text('mmfake==1.0\n')
    (folder / 'provided.txt').write_text('torch==2.11.0\nnumpy==2.5.2\nscipy\n')
    (folder / 'run.sh').write_text(tool('tools/gpu_pack/make_pack.py', 'LAUNCHER'))
    return folder


def test_a_complete_pack_passes(tmp_path):
    errors, summary = check(str(small_pack(tmp_path / 'pack')), None, False, 60.0)
    assert errors == []
    assert summary.endswith("3 wheels and mmcv-2.1.0.tar.gz, 0.0 MiB; resolves for CPython 3.12 "
                            "with the machine's numpy 2.5.2 (as provided.txt gives them)")


def test_what_the_machine_would_lack_is_an_error(tmp_path):
    pack = small_pack(tmp_path / 'pack')
    wheel(pack, 'addict', '2.5.0')  # two versions: pip --no-deps *.whl installs neither
    wheel(pack, 'oldthing', '1.0', tag='cp311-cp311-manylinux_2_17_x86_64')
    wheel(pack, 'numpy', '2.5.2')  # the machine has it
    errors, _ = check(str(pack), None, False, 1e-4)
    assert errors == [
        f'{pack}/oldthing-1.0-cp311-cp311-manylinux_2_17_x86_64.whl: does not install on '
        'CPython 3.12, Linux x86-64',
        f'{pack}: addict twice (2.4.0, 2.5.0); pip installs one version',
        f'{pack}: numpy is packed, but {pack}/provided.txt says the machine has it',
        f'{pack}: oldthing 1.0 is not needed (run.sh would install it)',
        f'{pack}: 0.0 MiB, over the 0.0001 MiB that may travel']
    pack = small_pack(tmp_path / 'pack2')
    (pack / 'fastthing-1.2-cp312-cp312-manylinux_2_17_x86_64.whl').unlink()
    errors, _ = check(str(pack), None, False, 60.0)
    assert len(errors) == 1 and errors[0].startswith(
        f"{pack}: pip cannot resolve requirements.txt and mmcv's requirements from the pack "
        'and the provided packages: '), errors
    assert 'fastthing>=1' in errors[0], errors
    (pack / 'mmcv-2.1.0.tar.gz').unlink()
    assert check(str(pack), None, False, 60.0)[0] == [
        f'{pack}/mmcv-2.1.0.tar.gz: missing (make gpu-pack writes it)']


def dry_run(pack: Path, out: Path):
    """``bash <pack>/run.sh --dry-run`` from the repository root, as the lent machine runs it."""
    env = dict(os.environ, OUT=str(out))
    env.pop('GPU_PACK', None)
    return subprocess.run(['bash', str(pack / 'run.sh'), '--dry-run'], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=120)


def test_run_sh_dry_run(tmp_path):
    pack = small_pack(tmp_path / 'pack')
    r = dry_run(pack, tmp_path / 'out')
    assert r.returncode == 0, r.stdout + r.stderr
    assert f'[check_pack] ok: {pack}: 3 wheels' in r.stdout
    for step in (f'pip install --no-index --no-deps --target /tmp/coordatt_gpu_pack/site '
                 f'{pack}/*.whl (3 wheels)', 'MMCV_WITH_OPS=1 FORCE_CUDA=1',
                 'python setup.py build_ext --inplace', '--only coordatt syncbn',
                 'stop the mmcv build at 390 s', 'dry run: the pack is complete'):
        assert step in r.stdout, (step, r.stdout)
    assert (tmp_path / 'out' / 'run.log').read_text() == r.stdout  # the log: what it said
    (pack / 'addict-2.4.0-py3-none-any.whl').unlink()
    r = dry_run(pack, tmp_path / 'out')
    assert r.returncode == 1 and 'dry run: the pack is NOT complete' in r.stdout, r.stdout
    assert 'pip cannot resolve' in r.stdout


def test_the_phases_merge_into_one_report(tmp_path):
    merge = tool('tools/gpu_pack/merge_report.py')
    phase_a = dict(header='GPU check, H100', checks=[
        dict(check='mmcv-ops', result='skipped', figures='not selected'),
        dict(check='coordatt', result='pass', figures='float32 1e-7', seconds='9'),
        dict(check='syncbn', result='FAIL', figures="rank 0's running mean is 4e-1 off"),
        dict(check='train-det', result='skipped', figures='not selected'),
        dict(check='train-seg', result='skipped', figures='not selected'),
        dict(check='benchmark', result='skipped', figures='not selected')])
    (tmp_path / 'a.json').write_text(json.dumps(phase_a))
    out = tmp_path / 'out'
    code = merge(['--out', str(out), str(tmp_path / 'a.json'), str(tmp_path / 'missing.json'),
                  '--note', 'mmcv-ops=needs mmcv: 97/136 objects', '--line', 'total 505 s'])
    assert code == 1
    rows = {r['check']: r for r in json.loads((out / 'gpu_check.json').read_text())['checks']}
    assert rows['coordatt']['result'] == 'pass' and rows['syncbn']['result'] == 'FAIL'
    assert rows['mmcv-ops'] == dict(check='mmcv-ops', result='not run',
                                    figures='needs mmcv: 97/136 objects')
    assert rows['train-det']['figures'] == 'no run reported it (see checks.log)'
    text = (out / 'gpu_check.md').read_text()
    assert text.startswith('GPU check, H100\n\n- total 505 s\n')
    assert '| syncbn | FAIL |' in text


@pytest.fixture
def make_with(monkeypatch):
    """make_pack's ``make`` with its download-and-check step (``build``) replaced by
    ``fake(folder) -> exit status``; the calls' folders are listed in ``make.built``."""
    make = tool('tools/gpu_pack/make_pack.py', 'make')
    make.built = []

    def use(fake):
        def build(folder):
            make.built.append(folder)
            return fake(folder)
        monkeypatch.setitem(make.__globals__, 'build', build)
        return make
    return use


def fake_pack(wheel_name: str, code: int = 0):
    """A stand-in download: the marker and one file, as a pack would have them."""
    def build(folder):
        (Path(folder) / 'PACK').write_text('a pack\n')
        (Path(folder) / wheel_name).write_text('')
        return code
    return build


def test_make_pack_replaces_nothing_but_a_pack(tmp_path, make_with, capsys):
    """--out may be new, empty or a pack (its PACK file): a folder of other files (the
    repository, say) or a file is refused before anything is downloaded and kept as it was."""
    make = make_with(fake_pack('new.whl'))
    mine = tmp_path / 'mine'
    mine.mkdir()
    (mine / 'notes.txt').write_text('keep me')
    assert make(str(mine)) == 1
    assert 'not a pack that make_pack.py wrote: it is left alone' in capsys.readouterr().err
    a_file = tmp_path / 'a_file'
    a_file.write_text('keep me too')
    assert make(str(a_file)) == 1
    assert make.built == []  # refused before the download
    assert (mine / 'notes.txt').read_text() == 'keep me' and list(mine.iterdir()) == \
        [mine / 'notes.txt']
    assert a_file.read_text() == 'keep me too'
    (tmp_path / 'empty').mkdir()
    for out in (tmp_path / 'new' / 'gpu_pack', tmp_path / 'empty'):
        assert make(str(out)) == 0
        assert sorted(p.name for p in out.iterdir()) == ['PACK', 'new.whl']
    assert sorted(p.name for p in tmp_path.iterdir()) == ['a_file', 'empty', 'mine', 'new']


def test_a_failed_make_pack_leaves_the_previous_pack(tmp_path, make_with, capsys):
    """The pack is made beside --out and takes its place only when complete: a check that
    fails or a download that fails leaves the previous pack whole; a good one replaces it
    (nothing of the old one stays)."""
    import subprocess as sp
    pack = tmp_path / 'gpu_pack'
    assert make_with(fake_pack('old.whl'))(str(pack)) == 0

    def broken_download(folder):
        (Path(folder) / 'half.whl').write_text('')
        raise sp.CalledProcessError(1, [sys.executable, '-m', 'pip', 'download'])
    for fake in (fake_pack('incomplete.whl', code=1), broken_download):
        make = make_with(fake)
        assert make(str(pack)) == 1
        assert f'{pack} is left as it was' in capsys.readouterr().err
        assert make.built[-1] != str(pack) and Path(make.built[-1]).parent == tmp_path
        assert sorted(p.name for p in pack.iterdir()) == ['PACK', 'old.whl']
        assert [p.name for p in tmp_path.iterdir()] == ['gpu_pack']  # no folder left behind
    assert make_with(fake_pack('new.whl'))(str(pack)) == 0
    assert sorted(p.name for p in pack.iterdir()) == ['PACK', 'new.whl']
    assert [p.name for p in tmp_path.iterdir()] == ['gpu_pack']


def pypi_reachable() -> bool:
    try:
        socket.create_connection(('pypi.org', 443), timeout=5).close()
        return True
    except OSError:
        return False


@pytest.mark.slow
@pytest.mark.skipif(not pypi_reachable(), reason='making the pack needs the package index')
def test_make_gpu_pack(tmp_path):
    """The real pack: complete for CPython 3.12 beside the machine's packages, at most 60 MiB,
    without what the machine has, with the codebases and mmcv's source; run.sh --dry-run
    passes on it."""
    pack = tmp_path / 'gpu_pack'
    r = subprocess.run([sys.executable, 'tools/gpu_pack/make_pack.py', '--out', str(pack)],
                       cwd=REPO, capture_output=True, text=True, timeout=900)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    assert '[check_pack] ok: ' in r.stdout
    files = sorted(p.name for p in pack.iterdir())
    size = sum(p.stat().st_size for p in pack.iterdir()) / 2 ** 20
    assert size <= 60, size
    names = {f.split('-')[0].lower() for f in files if f.endswith('.whl')}
    assert {'mmengine', 'mmdet', 'mmsegmentation', 'mmpretrain', 'pycocotools', 'ftfy', 'regex',
            'shapely', 'terminaltables', 'addict', 'yapf', 'setuptools', 'ninja'} <= names
    assert not names & {'torch', 'torchvision', 'onnxruntime', 'opencv_python', 'numpy',
                        'scipy', 'matplotlib'}, names
    assert {'mmcv-2.1.0.tar.gz', 'run.sh', 'requirements.txt', 'provided.txt'} <= set(files)
    # pip itself, asked as the lent machine would be: the codebases resolve from the pack and
    # the machine's packages (stand-ins of its versions) with no index
    stubs = tmp_path / 'machine'
    stubs.mkdir()
    stand_in = tool('tools/gpu_pack/check_pack.py', 'stand_in_wheel')
    for line in (pack / 'provided.txt').read_text().splitlines()[1:]:
        name, _, version = line.partition('==')
        if version:
            stand_in(str(stubs), name, version)
            if name == 'opencv-python-headless':
                stand_in(str(stubs), 'opencv-python', version)
    env = {k: v for k, v in os.environ.items() if not k.startswith('PIP_')}
    env['PIP_CONFIG_FILE'] = os.devnull
    r = subprocess.run([sys.executable, '-m', 'pip', 'install', '--dry-run', '--no-index',
                        '--find-links', str(pack), '--find-links', str(stubs),
                        '--python-version', '3.12', '--only-binary=:all:', '--target',
                        str(tmp_path / 'x'), 'mmengine==0.10.7', 'mmdet==3.3.0',
                        'mmsegmentation==1.2.2', 'mmpretrain==1.2.0', 'pycocotools', 'ftfy',
                        'regex'], env=env, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0 and 'Would install' in r.stdout, r.stdout[-2000:] + r.stderr
    r = dry_run(pack, tmp_path / 'out')
    assert r.returncode == 0 and 'dry run: the pack is complete' in r.stdout, r.stdout
