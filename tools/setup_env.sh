#!/usr/bin/env bash
# Create or update .venv with the pinned OpenMMLab stack (requirements.txt).
#
# mmcv 2.1.0 ships only as source: it is compiled once with its C++ ops
# (~22 min on 2 cores) and the wheel is cached outside the clone, so later set-ups
# on the same machine take seconds. A matching wheel is taken, in this order, from
# $COORDATT_WHEELS, the directories in $PIP_FIND_LINKS, then the cache.
# Re-running on a ready .venv is a no-op.
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON=${PYTHON:-python3.11}
VENV=${VENV:-.venv}
MMCV_VERSION=2.1.0
TORCH_VERSION=$(sed -n 's/^torch==//p' requirements.txt)
CACHE=${COORDATT_WHEEL_CACHE:-$HOME/.cache/coordatt_mm/wheels}/torch-$TORCH_VERSION
STAMP=$VENV/.coordatt_mm-ready
WANT=$(cat requirements.txt pyproject.toml tools/setup_env.sh | sha256sum | cut -c1-16)
VPY=$VENV/bin/python
PIP=("$VPY" -m pip --disable-pip-version-check)

say() { echo "[setup] $*"; }

has_mmcv_ops() {
  "$VPY" - <<'PY' 2>/dev/null
import importlib.metadata as md, sys
sys.exit(0 if md.version('mmcv') == '2.1.0' and __import__('mmcv._ext') else 1)
PY
}

if [ -f "$STAMP" ] && [ "$(cat "$STAMP")" = "$WANT" ] && has_mmcv_ops; then
  say ".venv is ready (delete $STAMP to force a re-install)"
  exit 0
fi

if [ ! -x "$VPY" ]; then
  say "creating $VENV with $PYTHON"
  "$PYTHON" -m venv "$VENV"
fi

# torch first, with the machine's default pip configuration: a --find-links given
# later for mmcv replaces PIP_FIND_LINKS instead of adding to it.
say "installing torch==$TORCH_VERSION and build tools"
"${PIP[@]}" install -q "torch==$TORCH_VERSION" 'setuptools<82' wheel ninja

install_mmcv_wheel() {  # $1: wheel file; returns non-zero if its ops do not import
  say "installing mmcv from $1"
  "${PIP[@]}" install -q --force-reinstall --no-deps "$1" && \
    "${PIP[@]}" install -q "mmcv==$MMCV_VERSION" && has_mmcv_ops
}

if ! has_mmcv_ops; then
  tag=$("$VPY" -c 'import sys; v="cp%d%d" % sys.version_info[:2]; print(v + "-" + v)')
  name="mmcv-$MMCV_VERSION-$tag-linux_$(uname -m).whl"
  done_mmcv=0
  for d in ${COORDATT_WHEELS:-} ${PIP_FIND_LINKS:-} "$CACHE"; do
    d=${d#file://}
    if [ -f "$d/$name" ] && install_mmcv_wheel "$d/$name"; then done_mmcv=1; break; fi
  done
  if [ $done_mmcv = 0 ]; then
    say "no usable $name found; compiling mmcv $MMCV_VERSION with ops (about 22 min on 2 cores)"
    mkdir -p "$CACHE"
    # --no-build-isolation: the build must see our torch, otherwise mmcv silently
    # installs without mmcv._ext. MMCV_WITH_OPS=1 compiles the C++ ops.
    MMCV_WITH_OPS=1 MAX_JOBS=${MAX_JOBS:-$(nproc)} \
      "${PIP[@]}" wheel --no-build-isolation --no-deps --no-binary mmcv \
      -w "$CACHE" "mmcv==$MMCV_VERSION"
    install_mmcv_wheel "$CACHE/$name" || true
  fi
fi

say "installing the pinned stack (requirements.txt)"
grep -v '^openmim' requirements.txt > "$VENV/requirements-deps.txt"
"${PIP[@]}" install -q -r "$VENV/requirements-deps.txt"
# openmim without its opendatalab -> openxlab chain, which pins old setuptools/requests.
"${PIP[@]}" install -q --no-deps "$(grep '^openmim' requirements.txt)"
"${PIP[@]}" install -q --no-deps --no-build-isolation -e .

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
import mmcv.ops, mmdet, mmseg.models, mim, coordatt_mm  # noqa: F401
pins = {'torch': '2.13.0', 'mmcv': '2.1.0', 'mmengine': '0.10.7', 'mmdet': '3.3.0',
        'mmsegmentation': '1.2.2', 'openmim': '0.3.9'}
bad = {k: md.version(k) for k, v in pins.items() if not md.version(k).startswith(v)}
assert not bad, f'unexpected versions: {bad}'
print('[setup] ok: ' + ', '.join(f'{k} {md.version(k)}' for k in pins)
      + f", setuptools {md.version('setuptools')}")
PY
echo "$WANT" > "$STAMP"
