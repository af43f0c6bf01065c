#!/usr/bin/env python
"""``make gpu-pack``: what the GPU check needs on the lent GPU machine, which has no network.

    python tools/gpu_pack/make_pack.py [--out gpu_pack]

Writes the folder ``gpu_pack/`` (ignored by git: copy it to the GPU machine with the repository):

- wheels for CPython 3.12 on Linux x86-64 of every package the check needs that the machine
  lacks: the OpenMMLab codebases pinned in requirements.txt (``WANTED``) and everything they
  require, less what the machine has (``provided.txt``); pip resolves and downloads them
  (``pip download --only-binary=:all: --python-version 3.12``, pure-Python wheels included);
- mmcv 2.1.0's source (it ships no wheels), which run.sh compiles there with its CUDA ops;
- ``requirements.txt``, the pins the pack was made for; ``provided.txt``, what the machine
  has (with versions for the check); ``run.sh``, which runs ``tools/gpu_pack/run.sh`` of the
  repository beside it; ``PACK``, the marker that says this tool wrote the folder;

then checks it (``check_pack.py``: complete, at most 60 MiB). The pack is made in a new folder
beside ``--out`` and takes the place of ``--out`` only once it is complete, so a failed download
leaves the previous pack as it was; ``--out`` must be new, empty or a pack (holding ``PACK``),
so that no other folder is ever replaced. Needs pip and the package index.
"""
import argparse
import json
import os
import os.path as osp
import shutil
import subprocess
import sys
import tempfile
from typing import List, Optional

HERE = osp.dirname(osp.abspath(__file__))
REPO = osp.dirname(osp.dirname(HERE))
# what the GPU check imports beyond the machine's packages, as requirements.txt pins them:
# the codebases, the packages mmseg and mmpretrain import without requiring them, the
# setuptools that mmcv's setup.py needs (it imports pkg_resources) and ninja for its build
WANTED = ('mmengine', 'mmdet', 'mmsegmentation', 'mmpretrain', 'pycocotools', 'ftfy', 'regex',
          'einops', 'importlib_metadata', 'mat4py', 'modelindex', 'setuptools', 'ninja')
MMCV = 'mmcv==2.1.0'
LAUNCHER = '''#!/usr/bin/env bash
# The GPU check on the lent machine: bash gpu_pack/run.sh [--dry-run], from the repository
# root (made by `make gpu-pack`; the steps are in tools/gpu_pack/run.sh).
GPU_PACK="$(cd "$(dirname "$0")" && pwd)" exec bash tools/gpu_pack/run.sh "$@"
'''
# the file that marks a folder as a pack this tool wrote: only such a folder is replaced
MARKER = 'PACK'
MARKER_TEXT = ('A GPU pack written by tools/gpu_pack/make_pack.py (make gpu-pack); making the '
               'pack again replaces this folder.\n')


class NotAPack(Exception):
    """``--out`` is a file, or a folder with files that this tool did not write."""


def replaceable(out: str) -> bool:
    """Whether ``out`` may be made (True where it exists: it is replaced): a new path, an
    empty folder or a pack (its ``PACK`` file). Raises :class:`NotAPack` for anything else,
    which replacing would destroy."""
    if not osp.lexists(out):
        return False
    if not osp.isdir(out) or osp.islink(out):
        raise NotAPack(f'{out}: not a folder (a file or a link); give --out a new or empty '
                       'folder, or a pack')
    if os.listdir(out) and not osp.isfile(osp.join(out, MARKER)):
        raise NotAPack(f'{out}: a folder with files and no {MARKER} file, so not a pack that '
                       'make_pack.py wrote: it is left alone; give --out a new or empty '
                       'folder, or remove it yourself')
    return True


def install(built: str, out: str) -> None:
    """Put the complete pack ``built`` at ``out`` (a sibling folder), where an empty folder or
    a previous pack is replaced."""
    if replaceable(out):
        old = tempfile.mkdtemp(prefix=f'.{osp.basename(out)}.old-', dir=osp.dirname(out))
        os.replace(out, osp.join(old, 'pack'))
        os.replace(built, out)
        shutil.rmtree(old)
    else:
        os.replace(built, out)


def pins(requirements: str) -> List[str]:
    """The ``WANTED`` lines of a requirements file, as they are written there."""
    from check_pack import canonical
    wanted = {canonical(w) for w in WANTED}
    out = []
    with open(requirements) as f:
        for line in f:
            line = line.split('#')[0].strip()
            name = line.replace('<', '=').replace('>', '=').split('=')[0].strip()
            if line and canonical(name) in wanted:
                out.append(line)
    missing = wanted - {canonical(p.replace('<', '=').split('=')[0]) for p in out}
    if missing:
        raise SystemExit(f'error: {requirements}: no pin for {", ".join(sorted(missing))}')
    return out


def pip(*args: str, env: Optional[dict] = None) -> None:
    from check_pack import pip_env
    cmd = [sys.executable, '-m', 'pip', *args]
    print('[make_pack] pip ' + ' '.join(args[:2]) + ' ...', flush=True)
    subprocess.run(cmd, check=True, env=dict(pip_env(), **(env or {})))


def make(out: str) -> int:
    """Make the pack at ``out``: built in a new sibling folder, checked, then put in place
    (:func:`install`); the previous pack stays where anything fails. The exit status."""
    out = osp.abspath(out)
    try:
        replaceable(out)
    except NotAPack as e:
        print(f'error: {e}', file=sys.stderr)
        return 1
    os.makedirs(osp.dirname(out), exist_ok=True)
    building = tempfile.mkdtemp(prefix=f'.{osp.basename(out)}.new-', dir=osp.dirname(out))
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(building, 0o777 & ~umask)  # a folder as os.makedirs makes it, not mkdtemp's 0700
    try:
        try:
            code = build(building)
        except subprocess.CalledProcessError as e:
            print(f'error: pip {e.cmd[3]} failed (exit {e.returncode})', file=sys.stderr)
            code = 1
        if code == 0:
            install(building, out)
            print(f'[make_pack] the pack is in {out}')
        else:
            print(f'error: no complete pack was made; {out} is left as it was',
                  file=sys.stderr)
        return code
    finally:
        shutil.rmtree(building, ignore_errors=True)


def build(out: str) -> int:
    """Download and write the pack into the empty folder ``out`` and check it; the check's
    exit status."""
    # check_pack.py beside this script (its folder is the script's first import path)
    from check_pack import (
        ALIASES,
        MMCV_SDIST,
        PYTHON_VERSION,
        canonical,
        mmcv_requirements,
        pip_args,
        read_provided,
        resolve,
        stand_in_versions,
        wheel_name_version,
    )
    from check_pack import main as check_main
    wanted = pins(osp.join(REPO, 'requirements.txt'))
    provided = read_provided(osp.join(HERE, 'provided.txt'))
    with open(osp.join(out, MARKER), 'w') as f:
        f.write(MARKER_TEXT)
    with tempfile.TemporaryDirectory() as tmp:
        # what pip installs for the pins on CPython 3.12, as if into an empty folder
        report = osp.join(tmp, 'report.json')
        pip('install', '--dry-run', '--quiet', '--ignore-installed', *pip_args(),
            '--target', osp.join(tmp, 'target'), '--report', report, *wanted)
        with open(report) as f:
            resolved = {canonical(i['metadata']['name']): i['metadata']['version']
                        for i in json.load(f)['install']}
        needed = [f'{n}=={v}' for n, v in resolved.items()
                  if n not in provided and n not in ALIASES]
        pip('download', '--quiet', '--no-deps', *pip_args(), '--dest', out, *needed)
        # the sdist's metadata is built with setuptools < 82 (mmcv's setup.py imports
        # pkg_resources) and wheel, installed for this step alone
        tools = osp.join(tmp, 'build-tools')
        pip('install', '--quiet', '--target', tools, 'setuptools<82', 'wheel')
        pip('download', '--quiet', '--no-deps', '--no-binary', ':all:', '--no-build-isolation',
            '--dest', out, MMCV, env=dict(PYTHONPATH=tools))
    # the machine's packages with the versions read there, or else today's for CPython 3.12
    versions = {n: v or resolved.get(n) or next(
        (resolved[a] for a, t in ALIASES.items() if t == n and a in resolved), None)
        for n, v in provided.items()}
    with open(osp.join(out, 'provided.txt'), 'w') as f:
        f.write('# what the lent machine has (tools/gpu_pack/provided.txt): the versions read '
                f'there, or else those CPython {PYTHON_VERSION} gets today\n'
                + ''.join(f'{n}=={v}\n' if v else f'{n}\n' for n, v in versions.items()))
    with open(osp.join(out, 'requirements.txt'), 'w') as f:
        f.write(f'# the pins this pack was made for (CPython {PYTHON_VERSION}), '
                'from requirements.txt\n' + '\n'.join(wanted) + '\n')
    launcher = osp.join(out, 'run.sh')
    with open(launcher, 'w') as f:
        f.write(LAUNCHER)
    os.chmod(launcher, 0o755)
    # what only the machine's own packages need (python-dateutil's tzdata, say) stays out
    used, why = resolve(out, wanted + mmcv_requirements(out),
                        stand_in_versions(read_provided(osp.join(out, 'provided.txt')), False),
                        PYTHON_VERSION)
    if used is None:
        print(f'error: the downloaded pack does not resolve: {why}', file=sys.stderr)
        return 1
    keep = {n for n, _ in used}
    for f in sorted(os.listdir(out)):
        if f.endswith('.whl') and wheel_name_version(osp.join(out, f))[0] not in keep:
            os.remove(osp.join(out, f))
            print(f'[make_pack] {f}: only the machine\'s own packages need it; left out')
    print(f'[make_pack] the wheels and {MMCV_SDIST} are in {out}; checking the pack')
    return check_main([out])


def main(argv: Optional[List[str]] = None) -> int:
    ap = argparse.ArgumentParser(description='Write the GPU pack: wheels for the lent GPU '
                                             'machine, the mmcv source and run.sh.')
    ap.add_argument('--out', default=osp.join(REPO, 'gpu_pack'),
                    help='the pack folder: new, empty, or a pack this tool wrote (replaced)')
    args = ap.parse_args(argv)
    return make(args.out)


if __name__ == '__main__':
    sys.exit(main())
