#!/usr/bin/env bash
# Create or update .venv with the pinned OpenMMLab stack (requirements.txt).
#
# mmcv 2.1.0 ships only as source: it is compiled once with its C++ ops against the
# pinned torch (10-30 min on 2 cores) and the wheel is cached per torch version and build
# kind outside the clone, so later set-ups on the same machine take seconds. A matching wheel
# is taken, in this order, from $COORDATT_WHEELS, the directories in $PIP_FIND_LINKS, then the
# cache; a wheel built against another torch, or without the CUDA ops this machine needs,
# fails the ops check and is passed over.
#
# CUDA: when torch sees a GPU, or FORCE_CUDA=1, mmcv is built with its CUDA ops too, for the
# visible GPUs' architectures (or $TORCH_CUDA_ARCH_LIST), with a CUDA toolkit from
# $CUDA_HOME/$PATH whose version matches torch's CUDA, or else NVIDIA's compiler and headers
# from PyPI installed into the venv. With a GPU, the set-up ends by running mmcv's nms and
# roi_align and our CoordAtt on it. Re-running on a ready .venv is a no-op.
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON=${PYTHON:-python3.11}
VENV=${VENV:-.venv}
case $VENV in /*) ;; *) VENV=$PWD/$VENV ;; esac  # absolute: the mmcv build runs elsewhere
MMCV_VERSION=2.1.0
TORCH_VERSION=$(sed -n 's/^torch==//p' requirements.txt)
TORCHVISION_VERSION=$(sed -n 's/^torchvision==//p' requirements.txt)
CACHE_ROOT=${COORDATT_WHEEL_CACHE:-$HOME/.cache/coordatt_mm/wheels}/torch-$TORCH_VERSION
STAMP=$VENV/.coordatt_mm-ready
MMCV_FOR=$VENV/.coordatt_mm-mmcv-torch  # torch version and build kind of the installed mmcv
# the compiled CA operator is rebuilt when its sources change
WANT=$(cat requirements.txt pyproject.toml setup.py tools/setup_env.sh coordatt_mm/ops/csrc/* \
  | sha256sum | cut -c1-16)
VPY=$VENV/bin/python
PIP=("$VPY" -m pip --disable-pip-version-check)

say() { echo "[setup] $*"; }

# $1: "cpu", or the CUDA version ("13.0") the ops must have been compiled with
has_mmcv_ops() {
  "$VPY" - "${1:-cpu}" <<'PY' 2>/dev/null
import importlib.metadata as md, sys
if md.version('mmcv') != '2.1.0':
    sys.exit(1)
import mmcv._ext
cuda = mmcv._ext.get_compiling_cuda_version()
want = sys.argv[1]
# a CPU-only wheel reports "not available"; it is never taken where CUDA ops are wanted
sys.exit(0 if want == 'cpu' or cuda.split('.')[0] == want.split('.')[0] else 1)
PY
}

# CUDA builds: wanted when torch sees a GPU or FORCE_CUDA=1 (needs torch installed)
SEES_GPU=""  # cached answer: each question costs a torch import
torch_sees_gpu() {
  if [ -z "$SEES_GPU" ]; then
    SEES_GPU=no
    "$VPY" -c 'import sys, torch; sys.exit(0 if torch.cuda.is_available() else 1)' \
      2>/dev/null && SEES_GPU=yes
  fi
  [ "$SEES_GPU" = yes ]
}
want_cuda() { [ "${FORCE_CUDA:-0}" = 1 ] || torch_sees_gpu; }
torch_cuda() { "$VPY" -c 'import torch; print(torch.version.cuda or "")'; }

# the build kind: "cpu" or "cuda<version>-sm<archs>" (archs from TORCH_CUDA_ARCH_LIST)
build_kind() {
  if want_cuda; then
    echo "cuda$(torch_cuda)-sm$(echo "$TORCH_CUDA_ARCH_LIST" | tr ' ;,' '\n\n\n' | sed '/^$/d' \
      | tr -d . | sort -u | paste -sd- -)"
  else
    echo cpu
  fi
}

# the ops check's argument for a build kind
ops_of() { case $1 in cpu) echo cpu ;; *) echo "${1#cuda}" | cut -d- -f1 ;; esac; }

# mmcv's ops may even import beside another torch and then fail at run time
mmcv_ready() {
  [ "$(cat "$MMCV_FOR" 2>/dev/null)" = "$TORCH_VERSION $1" ] && has_mmcv_ops "$(ops_of "$1")"
}

# TORCH_CUDA_ARCH_LIST from the visible GPUs, unless it is set
cuda_arch_list() {
  if [ -n "${TORCH_CUDA_ARCH_LIST:-}" ]; then return; fi
  if torch_sees_gpu; then
    TORCH_CUDA_ARCH_LIST=$("$VPY" -c 'import torch
print(";".join(sorted({"%d.%d" % torch.cuda.get_device_capability(i)
                       for i in range(torch.cuda.device_count())})))')
    export TORCH_CUDA_ARCH_LIST
    say "building for the visible GPUs: TORCH_CUDA_ARCH_LIST=$TORCH_CUDA_ARCH_LIST"
  else
    echo "[setup] ERROR: FORCE_CUDA=1 without a visible GPU: set TORCH_CUDA_ARCH_LIST" \
      "(e.g. TORCH_CUDA_ARCH_LIST=9.0 for H100/H200)" >&2
    exit 1
  fi
}

# CUDA_HOME for the mmcv build: a toolkit whose version matches torch's CUDA ($CUDA_HOME,
# the one nvcc on PATH belongs to, /usr/local/cuda), else NVIDIA's compiler and headers from
# PyPI installed into the venv (COORDATT_PYPI_CUDA=1 takes those in any case)
cuda_home() {
  local want root nvcc have site home
  want=$(torch_cuda)
  if [ -z "$want" ]; then
    echo "[setup] ERROR: this torch has no CUDA (torch.version.cuda is None); install a" \
      "CUDA build of torch $TORCH_VERSION or unset FORCE_CUDA" >&2
    exit 1
  fi
  nvcc=$(command -v nvcc || true)
  for root in ${CUDA_HOME:-} ${nvcc:+$(dirname "$(readlink -f "$nvcc")")/..} /usr/local/cuda; do
    [ "${COORDATT_PYPI_CUDA:-0}" = 1 ] && break
    # a toolkit root has the compiler and the runtime headers (a wrapper script's folder not)
    [ -x "$root/bin/nvcc" ] && [ -f "$root/include/cuda_runtime.h" ] || continue
    have=$("$root/bin/nvcc" --version | sed -n 's/.*release \([0-9.]*\),.*/\1/p')
    if [ "${have%%.*}" = "${want%%.*}" ]; then
      CUDA_HOME=$(cd "$root" && pwd -P)
      export CUDA_HOME
      say "CUDA toolkit $have at $CUDA_HOME (torch's CUDA: $want)"
      return
    fi
    say "the CUDA $have toolkit at $root does not match torch's CUDA $want; passed over"
  done
  local major=${want%%.*} pins=()
  local pkg
  for pkg in nvidia-cuda-nvcc nvidia-nvvm nvidia-cuda-runtime nvidia-cuda-cccl \
             nvidia-cuda-crt; do
    pins+=("$pkg==$want.*")
  done
  if [ "$major" -lt 13 ]; then
    echo "[setup] ERROR: torch's CUDA is $want; the set-up installs NVIDIA's PyPI compiler" \
      "for CUDA >= 13 only: set CUDA_HOME to a CUDA $want toolkit" >&2
    exit 1
  fi
  say "installing NVIDIA's CUDA $want compiler and headers from PyPI into $VENV"
  "${PIP[@]}" install -q "${pins[@]}"
  site=$("$VPY" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')
  home=$site/nvidia/cu$major
  # torch's cpp_extension links -lcudart from lib64; the wheel ships lib/ and libcudart.so.N
  [ -e "$home/lib64" ] || ln -s lib "$home/lib64"
  [ -e "$home/lib/libcudart.so" ] || ln -s "libcudart.so.$major" "$home/lib/libcudart.so"
  CUDA_HOME=$home
  PATH=$CUDA_HOME/bin:$PATH
  export CUDA_HOME PATH
}

# whether coordatt_mm's fused operator loads with the ABI its Python code expects (a build for
# another torch, from other sources, or none at all does not); COORDATT_WITH_OPS=0 wants none
operator_loads() {
  [ "${COORDATT_WITH_OPS:-1}" = 0 ] && return 0
  local why
  why=$("$VPY" - 2>&1 <<'PY'
import sys
from coordatt_mm.ops import coord_att
if not coord_att.fused_available():
    sys.exit(f'the fused CoordAtt operator is not available ({coord_att._LOAD_ERROR})')
PY
) && return 0
  say "${why##*$'\n'}"
  return 1
}

# a ready .venv (the build kind needs its torch, so only where one is installed)
if [ -f "$STAMP" ] && [ -x "$VPY" ] && "$VPY" -c 'import torch' 2>/dev/null; then
  if want_cuda; then cuda_arch_list; fi
  KIND=$(build_kind)
  if [ "$(cat "$STAMP")" = "$WANT $KIND" ] && mmcv_ready "$KIND"; then
    if operator_loads; then
      say ".venv is ready (delete $STAMP to force a re-install)"
      exit 0
    fi
    say "rebuilding the fused CoordAtt operator"
  fi
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

if want_cuda; then cuda_arch_list; fi
KIND=$(build_kind)
CACHE=$CACHE_ROOT/$KIND

install_mmcv_wheel() {  # $1: wheel file; non-zero if its ops do not import or lack CUDA
  say "installing mmcv from $1"
  "${PIP[@]}" install -q --force-reinstall --no-deps "$1" && \
    "${PIP[@]}" install -q "mmcv==$MMCV_VERSION" && has_mmcv_ops "$(ops_of "$KIND")" && \
    echo "$TORCH_VERSION $KIND" > "$MMCV_FOR" || \
    { say "passed over $1 (its ops do not load here or it was built for another kind)"; false; }
}

if ! mmcv_ready "$KIND"; then
  tag=$("$VPY" -c 'import sys; v="cp%d%d" % sys.version_info[:2]; print(v + "-" + v)')
  name="mmcv-$MMCV_VERSION-$tag-linux_$(uname -m).whl"
  done_mmcv=0
  legacy=""  # CPU wheels cached before the cache was split by kind
  [ "$KIND" = cpu ] && legacy=$CACHE_ROOT
  for d in ${COORDATT_WHEELS:-} ${PIP_FIND_LINKS:-} "$CACHE" $legacy; do  # first usable wins
    d=${d#file://}
    if [ -f "$d/$name" ] && install_mmcv_wheel "$d/$name"; then done_mmcv=1; break; fi
  done
  if [ $done_mmcv = 0 ]; then
    if [ "$KIND" = cpu ]; then
      say "no usable $name found; compiling mmcv $MMCV_VERSION with ops (10-30 min on 2 cores)"
    else
      cuda_home
      say "no usable $name found; compiling mmcv $MMCV_VERSION with CPU and CUDA ops for" \
        "TORCH_CUDA_ARCH_LIST=$TORCH_CUDA_ARCH_LIST (about 1 h on 2 cores, minutes on many)"
    fi
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
    # FORCE_CUDA=1: mmcv's setup.py compiles its CUDA ops (it also does when torch sees a GPU)
    (cd "$build/mmcv-$MMCV_VERSION" && MMCV_WITH_OPS=1 MAX_JOBS=${MAX_JOBS:-$(nproc)} \
      FORCE_CUDA=$([ "$KIND" = cpu ] && echo 0 || echo 1) \
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
if ! has_mmcv_ops "$(ops_of "$KIND")"; then
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
if torch_sees_gpu; then
  say "checking mmcv's CUDA ops and CoordAtt on the GPU"
  if ! "$VPY" - <<'PY'
import torch
from mmcv.ops import nms, roi_align
from coordatt_mm import CoordAtt
dev = torch.device('cuda')
boxes = torch.tensor([[0., 0., 10., 10.], [1., 1., 11., 11.], [50., 50., 60., 60.]], device=dev)
_, keep = nms(boxes, torch.tensor([0.9, 0.8, 0.7], device=dev), 0.5)
assert keep.tolist() == [0, 2], keep
feats = torch.arange(64., device=dev).view(1, 1, 8, 8)
out = roi_align(feats, torch.tensor([[0., 0., 0., 4., 4.]], device=dev), (2, 2), 1.0, 2)
assert out.shape == (1, 1, 2, 2) and torch.isfinite(out).all()
m = CoordAtt(32).to(dev).train()
x = torch.randn(2, 32, 9, 7, device=dev, requires_grad=True)
m(x).sum().backward()
assert torch.isfinite(x.grad).all()
print(f'[setup] ok on {torch.cuda.get_device_name()}: mmcv nms, roi_align, CoordAtt')
PY
  then
    echo "[setup] ERROR: mmcv's CUDA ops or CoordAtt failed on this GPU (see above). Fix:" \
      "rm -rf $VENV $CACHE && make setup" \
      "(rebuilds mmcv for TORCH_CUDA_ARCH_LIST=${TORCH_CUDA_ARCH_LIST:-<this GPU>})" >&2
    exit 1
  fi
fi
echo "$WANT $KIND" > "$STAMP"
