#!/usr/bin/env bash
# Create or update .venv with the pinned OpenMMLab stack (requirements.txt).
#
# mmcv 2.1.0 ships only as source: it is compiled once with its C++ ops against the
# pinned torch (10-30 min on 2 cores) and the wheel is cached per torch version outside
# the clone, so later set-ups on the same machine take seconds. A matching wheel is taken,
# in this order, from $COORDATT_WHEELS, the directories in $PIP_FIND_LINKS, then the cache;
# a wheel built against another torch fails the ops check and is passed over.
# Re-running on a ready .venv is a no-op.
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON=${PYTHON:-python3.11}
VENV=${VENV:-.venv}
case $VENV in /*) ;; *) VENV=$PWD/$VENV ;; esac  # absolute: the mmcv build runs elsewhere
MMCV_VERSION=2.1.0
TORCH_VERSION=$(sed -n 's/^torch==//p' requirements.txt)
TORCHVISION_VERSION=$(sed -n 's/^torchvision==//p' requirements.txt)
CACHE=${COORDATT_WHEEL_CACHE:-$HOME/.cache/coordatt_mm/wheels}/torch-$TORCH_VERSION
STAMP=$VENV/.coordatt_mm-ready
MMCV_FOR=$VENV/.coordatt_mm-mmcv-torch  # the torch the installed mmcv wheel was built for
# the compiled CA operator is rebuilt when its sources change
WANT=$(cat requirements.txt pyproject.toml setup.py tools/setup_env.sh coordatt_mm/ops/csrc/* \
  | sha256sum | cut -c1-16)
VPY=$VENV/bin/python
PIP=("$VPY" -m pip --disable-pip-version-check)

say() { echo "[setup] $*"; }

has_mmcv_ops() {
  "$VPY" - <<'PY' 2>/dev/null
import importlib.metadata as md, sys
sys.exit(0 if md.version('mmcv') == '2.1.0' and __import__('mmcv._ext') else 1)
PY
}

# mmcv's ops may even import beside another torch and then fail at run time
mmcv_ready() { [ "$(cat "$MMCV_FOR" 2>/dev/null)" = "$TORCH_VERSION" ] && has_mmcv_ops; }

if [ -f "$STAMP" ] && [ "$(cat "$STAMP")" = "$WANT" ] && mmcv_ready; then
  say ".venv is ready (delete $STAMP to force a re-install)"
  exit 0
fi

if [ ! -x "$VPY" ]; then
  say "creating $VENV with $PYTHON"
  "$PYTHON" -m venv "$VENV"
fi

# torch first, with the machine's default pip configuration: a --find-links given
# later for mmcv replaces PIP_FIND_LINKS instead of adding to it.
say "installing torch==$TORCH_VERSION, torchvision==$TORCHVISION_VERSION and build tools"
"${PIP[@]}" install -q "torch==$TORCH_VERSION" "torchvision==$TORCHVISION_VERSION" \
  'setuptools<82' wheel ninja

install_mmcv_wheel() {  # $1: wheel file; returns non-zero if its ops do not import
  say "installing mmcv from $1"
  "${PIP[@]}" install -q --force-reinstall --no-deps "$1" && \
    "${PIP[@]}" install -q "mmcv==$MMCV_VERSION" && has_mmcv_ops && \
    echo "$TORCH_VERSION" > "$MMCV_FOR"
}

if ! mmcv_ready; then
  tag=$("$VPY" -c 'import sys; v="cp%d%d" % sys.version_info[:2]; print(v + "-" + v)')
  name="mmcv-$MMCV_VERSION-$tag-linux_$(uname -m).whl"
  done_mmcv=0
  for d in ${COORDATT_WHEELS:-} ${PIP_FIND_LINKS:-} "$CACHE"; do  # first usable wins
    d=${d#file://}
    if [ -f "$d/$name" ] && install_mmcv_wheel "$d/$name"; then done_mmcv=1; break; fi
  done
  if [ $done_mmcv = 0 ]; then
    say "no usable $name found; compiling mmcv $MMCV_VERSION with ops (10-30 min on 2 cores)"
    mkdir -p "$CACHE"
    build=$(mktemp -d)
    trap 'rm -rf "$build"' EXIT
    "${PIP[@]}" download -q --no-deps --no-binary mmcv --no-cache-dir -d "$build" \
      "mmcv==$MMCV_VERSION"
    tar -xzf "$build"/mmcv-$MMCV_VERSION.tar.gz -C "$build"
    # torch >= 2.14's headers need C++20; mmcv 2.1.0's setup.py hard-codes -std=c++17 and
    # a flag from CXXFLAGS would come first on the command line and lose.
    sed -i 's/-std=c++17/-std=c++20/g' "$build/mmcv-$MMCV_VERSION/setup.py"
    # --no-build-isolation: the build must see our torch, otherwise mmcv silently installs
    # without mmcv._ext. --no-cache-dir: pip's wheel cache would hand back a wheel built
    # against another torch. MMCV_WITH_OPS=1 compiles the C++ ops.
    (cd "$build/mmcv-$MMCV_VERSION" && MMCV_WITH_OPS=1 MAX_JOBS=${MAX_JOBS:-$(nproc)} \
      "${PIP[@]}" wheel -q --no-cache-dir --no-build-isolation --no-deps -w "$CACHE" .)
    install_mmcv_wheel "$CACHE/$name" || true
  fi
fi

say "installing the pinned stack (requirements.txt)"
grep -v '^openmim' requirements.txt > "$VENV/requirements-deps.txt"
"${PIP[@]}" install -q -r "$VENV/requirements-deps.txt"
# openmim without its opendatalab -> openxlab chain, which pins old setuptools/requests.
"${PIP[@]}" install -q --no-deps "$(grep '^openmim' requirements.txt)"
# -e . also compiles coordatt_mm's fused CA operator (setup.py; about a minute on 2 cores)
say "installing coordatt_mm and compiling its CPU operator"
MAX_JOBS=${MAX_JOBS:-$(nproc)} "${PIP[@]}" install -q --no-deps --no-build-isolation -e .
# mim reads a package's model index from <site-packages>/<package>/.mim/ (`mim search
# coordatt_mm`), a folder an editable install does not create: link the package there, as
# OpenMMLab's `setup.py develop` links its .mim/ files (coordatt_mm/.mim/ holds links to
# model-index.yml and configs/).
site=$("$VPY" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')
ln -sfn "$PWD/coordatt_mm" "$site/coordatt_mm"

say "checking the installation"
if ! has_mmcv_ops; then
  cat >&2 <<MSG
[setup] ERROR: mmcv $MMCV_VERSION is installed WITHOUT its compiled ops (mmcv._ext is missing).
[setup] This happens when mmcv is built with build isolation or without MMCV_WITH_OPS=1.
[setup] Fix: rm -rf $VENV $CACHE/mmcv-*.whl && make setup
MSG
  exit 1
fi
"$VPY" - <<'PY'
import importlib.metadata as md
import pkg_resources  # noqa: F401  (openmim needs it: setuptools must stay < 82)
import mmcv.ops, mmdet, mmseg.models, mmpretrain.models, mim, coordatt_mm  # noqa: F401
import torchvision.ops  # noqa: F401  (its compiled ops must match torch)
pins = dict(line.strip().split('==') for line in open('requirements.txt')
            if line.split('==')[0] in ('torch', 'torchvision', 'mmcv', 'mmengine', 'mmdet',
                                       'mmsegmentation', 'mmpretrain', 'openmim'))
bad = {k: md.version(k) for k, v in pins.items() if not md.version(k).startswith(v)}
assert not bad, f'unexpected versions: {bad}'
print('[setup] ok: ' + ', '.join(f'{k} {md.version(k)}' for k in pins)
      + f", setuptools {md.version('setuptools')}")
import os
from coordatt_mm import ops
print(f'[setup] fused CoordAtt operator: {ops.fused_status()}')
assert ops.fused_available() or os.environ.get('COORDATT_WITH_OPS') == '0', \
    'the fused CoordAtt operator did not build or load (see above); COORDATT_WITH_OPS=0 skips it'
PY
echo "$WANT" > "$STAMP"
