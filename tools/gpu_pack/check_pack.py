#!/usr/bin/env python
"""Check that a GPU pack (``make gpu-pack``: gpu_pack/) is complete for the lent GPU machine.

    python tools/gpu_pack/check_pack.py [PACK] [--installed] [--provided FILE] [--max-mib 60]

Checks, each an error line (exit status 1):

- the pack holds ``run.sh``, ``requirements.txt`` (the pins it was made for), ``provided.txt``
  and mmcv's source;
- at most one wheel per package, and every wheel installs on CPython 3.12, Linux x86-64;
- with no index, pip resolves ``requirements.txt`` plus mmcv's runtime requirements from the
  pack's wheels and the packages the lent machine already has (``provided.txt``), and every
  wheel of the pack is part of that resolution (run.sh installs them all);
- the pack's size is at most ``--max-mib``.

The machine's own packages take part in pip's resolution as empty stand-in wheels of their
versions: with ``--installed`` (on the lent machine) those installed in this interpreter, else
the versions the pack's ``provided.txt`` gives (``make gpu-pack`` writes it: the versions read
on the machine where known, else those a fresh CPython 3.12 install would get). Standard
library and pip only.
"""
import argparse
import email.parser
import json
import os
import os.path as osp
import re
import subprocess
import sys
import tarfile
import tempfile
import zipfile
from typing import Dict, List, Optional, Tuple

PYTHON_VERSION = '3.12'
MMCV_SDIST = 'mmcv-2.1.0.tar.gz'
# a wheel must install on glibc 2.28 (manylinux_2_28) or older
PLATFORMS = (['manylinux2014_x86_64', 'linux_x86_64']
             + [f'manylinux_2_{n}_x86_64' for n in range(17, 29)])
# requirement names that a provided package of another name satisfies: the machine has
# opencv-python-headless, whose cv2 is what mmengine and mmcv import as "opencv-python"
ALIASES = {'opencv-python': 'opencv-python-headless'}


def canonical(name: str) -> str:
    return re.sub(r'[-_.]+', '-', name).lower()


def pip_args(python_version: str = PYTHON_VERSION) -> List[str]:
    """pip's options for binary wheels of CPython ``python_version`` on Linux x86-64."""
    cp = 'cp' + python_version.replace('.', '')
    return (['--only-binary=:all:', '--python-version', python_version, '--implementation', 'cp',
             '--abi', cp, '--abi', 'abi3', '--abi', 'none']
            + [a for p in PLATFORMS for a in ('--platform', p)])


def pip_env() -> Dict[str, str]:
    """The environment for pip: no configuration files or PIP_* settings of this machine."""
    env = {k: v for k, v in os.environ.items() if not k.startswith('PIP_')}
    env.update(PIP_CONFIG_FILE=os.devnull, PIP_DISABLE_PIP_VERSION_CHECK='1')
    return env


def read_provided(path: str) -> Dict[str, Optional[str]]:
    """``provided.txt``: {package: pinned version or None}."""
    out: Dict[str, Optional[str]] = {}
    with open(path) as f:
        for line in f:
            line = line.split('#')[0].strip()
            if line:
                name, _, version = line.partition('==')
                out[canonical(name)] = version.strip() or None
    return out


def installed_version(name: str) -> Optional[str]:
    import importlib.metadata as md
    others = [a for a, n in ALIASES.items() if n == name] + [ALIASES.get(name, name)]
    for candidate in [name] + others:
        try:
            return md.version(candidate)
        except md.PackageNotFoundError:
            pass
    return None


def stand_in_versions(provided: Dict[str, Optional[str]], installed: bool) -> Dict[str, str]:
    """{package: the version of its stand-in wheel}: the installed one (``installed``) or the
    pinned one; packages without either get none (pip then reports any that is needed)."""
    out = {}
    for name, pinned in provided.items():
        version = installed_version(name) if installed else pinned
        if version is not None:
            out[name] = version
    for alias, name in ALIASES.items():
        if name in out and alias not in out:
            out[alias] = out[name]
    return out


def stand_in_wheel(folder: str, name: str, version: str) -> None:
    """An empty wheel of ``name`` ``version`` (metadata only) for pip's resolution."""
    dist = re.sub(r'[-_.]+', '_', name)
    info = f'{dist}-{version}.dist-info'
    with zipfile.ZipFile(osp.join(folder, f'{dist}-{version}-py3-none-any.whl'), 'w') as z:
        z.writestr(f'{info}/METADATA',
                   f'Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n')
        z.writestr(f'{info}/WHEEL', 'Wheel-Version: 1.0\nGenerator: check_pack\n'
                                    'Root-Is-Purelib: true\nTag: py3-none-any\n')
        z.writestr(f'{info}/RECORD', '')


def wheel_name_version(path: str) -> Tuple[str, str, List[str]]:
    """(package, version, tags) of a wheel file, the name and version from its metadata."""
    with zipfile.ZipFile(path) as z:
        meta = next(n for n in z.namelist()
                    if n.count('/') == 1 and n.endswith('.dist-info/METADATA'))
        msg = email.parser.Parser().parsestr(z.read(meta).decode())
    parts = osp.basename(path)[:-4].split('-')
    tags = [f'{py}-{abi}-{plat}' for py in parts[-3].split('.') for abi in parts[-2].split('.')
            for plat in parts[-1].split('.')]
    return canonical(msg['Name']), msg['Version'], tags


def installable(tags: List[str], python_version: str = PYTHON_VERSION) -> bool:
    """Whether one of a wheel's tags installs on CPython ``python_version``, Linux x86-64."""
    major, minor = python_version.split('.')
    cp = f'cp{major}{minor}'
    pythons = {f'py{major}', f'py{major}{minor}', cp} | {f'cp{major}{m}'
                                                         for m in range(int(minor) + 1)}
    for tag in tags:
        py, abi, plat = tag.split('-')
        if py not in pythons or plat not in ['any'] + PLATFORMS:
            continue
        if abi == 'none' or abi == cp or (abi == 'abi3' and py.startswith('cp')):
            return True
    return False


def mmcv_requirements(pack: str) -> List[str]:
    """mmcv's runtime requirements, read from its source archive."""
    with tarfile.open(osp.join(pack, MMCV_SDIST)) as tar:
        member = tar.getmember(MMCV_SDIST[:-len('.tar.gz')] + '/requirements/runtime.txt')
        text = tar.extractfile(member).read().decode()
    return [ln.strip() for ln in text.splitlines() if ln.strip() and not ln.startswith('#')]


def resolve(pack: str, requirements: List[str], stand_ins: Dict[str, str],
            python_version: str) -> Tuple[Optional[List[Tuple[str, str]]], str]:
    """pip's resolution of ``requirements`` from the pack and the stand-ins, without an index:
    ([(package, version)], '') or (None, pip's error)."""
    with tempfile.TemporaryDirectory() as tmp:
        stubs = osp.join(tmp, 'provided')
        os.makedirs(stubs)
        for name, version in stand_ins.items():
            stand_in_wheel(stubs, name, version)
        report = osp.join(tmp, 'report.json')
        r = subprocess.run([sys.executable, '-m', 'pip', 'install', '--dry-run', '--quiet',
                            '--ignore-installed', '--no-index', '--find-links', pack,
                            '--find-links', stubs, *pip_args(python_version),
                            '--target', osp.join(tmp, 'target'), '--report', report,
                            *requirements], capture_output=True, text=True, env=pip_env())
        if r.returncode != 0:
            lines = [ln for ln in (r.stderr + r.stdout).splitlines() if ln.strip()]
            return None, ' | '.join(lines[-3:])
        with open(report) as f:
            installs = json.load(f)['install']
    return [(canonical(i['metadata']['name']), i['metadata']['version']) for i in installs], ''


def check(pack: str, provided_file: Optional[str], installed: bool, max_mib: float,
          python_version: str = PYTHON_VERSION) -> Tuple[List[str], str]:
    """(errors, one-line summary) of the pack in folder ``pack``."""
    errors = []
    for name in ('run.sh', 'requirements.txt', 'provided.txt', MMCV_SDIST):
        if not osp.isfile(osp.join(pack, name)):
            errors.append(f'{pack}/{name}: missing (make gpu-pack writes it)')
    if errors:
        return errors, ''
    wheels: Dict[str, List[str]] = {}
    for f in sorted(os.listdir(pack)):
        if f.endswith('.whl'):
            name, version, tags = wheel_name_version(osp.join(pack, f))
            wheels.setdefault(name, []).append(version)
            if not installable(tags, python_version):
                errors.append(f'{pack}/{f}: does not install on CPython {python_version}, '
                              'Linux x86-64')
    errors += [f'{pack}: {name} twice ({", ".join(v)}); pip installs one version'
               for name, v in wheels.items() if len(v) > 1]
    provided_file = provided_file or osp.join(pack, 'provided.txt')
    if not osp.isfile(provided_file):
        return errors + [f'{provided_file}: missing (make gpu-pack writes it)'], ''
    provided = read_provided(provided_file)
    errors += [f'{pack}: {name} is packed, but {provided_file} says the machine has it'
               for name in wheels if name in provided]
    stand_ins = stand_in_versions(provided, installed)
    with open(osp.join(pack, 'requirements.txt')) as f:
        pins = [ln.strip() for ln in f if ln.strip() and not ln.startswith('#')]
    resolved, why = resolve(pack, pins + mmcv_requirements(pack), stand_ins, python_version)
    if resolved is None:
        errors.append(f'{pack}: pip cannot resolve requirements.txt and mmcv\'s requirements '
                      f'from the pack and the provided packages: {why}')
    else:
        used = {name for name, _ in resolved}
        errors += [f'{pack}: {name} {", ".join(v)} is not needed (run.sh would install it)'
                   for name, v in wheels.items() if name not in used]
    size = sum(osp.getsize(osp.join(pack, f)) for f in os.listdir(pack)
               if osp.isfile(osp.join(pack, f))) / 2 ** 20
    if size > max_mib:
        errors.append(f'{pack}: {size:.1f} MiB, over the {max_mib:g} MiB that may travel')
    used = sorted(n for n in stand_ins if resolved and n in dict(resolved))
    absent = sorted(set(provided) - set(stand_ins))
    summary = (f'{pack}: {sum(map(len, wheels.values()))} wheels and {MMCV_SDIST}, '
               f'{size:.1f} MiB; resolves for CPython {python_version} with the machine\'s '
               f'{", ".join(f"{n} {stand_ins[n]}" for n in used)} '
               f'({"installed here" if installed else "as provided.txt gives them"})'
               + (f'; not installed here: {", ".join(absent)}' if installed and absent else ''))
    return errors, summary


def parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(description='Check that a GPU pack is complete for the lent '
                                             'GPU machine (Python 3.12, no network).')
    ap.add_argument('pack', nargs='?', default='gpu_pack', help='the pack folder')
    ap.add_argument('--installed', action='store_true',
                    help="take the machine's packages from this interpreter (on the machine)")
    ap.add_argument('--provided', help="what the machine already has (default: the pack's "
                                       'provided.txt)')
    ap.add_argument('--max-mib', type=float, default=60.0)
    ap.add_argument('--python-version', default=PYTHON_VERSION)
    return ap


def main(argv: Optional[List[str]] = None) -> int:
    args = parser().parse_args(argv)
    if not osp.isdir(args.pack):
        print(f'error: {args.pack}: no such folder (make gpu-pack writes it)', file=sys.stderr)
        return 1
    errors, summary = check(args.pack, args.provided, args.installed, args.max_mib,
                            args.python_version)
    for e in errors:
        print(f'error: {e}', file=sys.stderr)
    if not errors:
        print(f'[check_pack] ok: {summary}')
    return 1 if errors else 0


if __name__ == '__main__':
    sys.exit(main())
