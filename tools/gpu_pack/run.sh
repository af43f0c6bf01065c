#!/usr/bin/env bash
# The GPU check on a lent GPU machine without network, within its 10 minutes a command:
#
#   bash gpu_pack/run.sh [--dry-run]        (from the repository root; make gpu-pack made gpu_pack/)
#
# Copy the repository with the gpu_pack/ folder to the GPU machine (git ignores gpu_pack/, so
# copy it explicitly), then run this there from the repository root; the report lands in $OUT
# (default work_dirs/gpu_pack/ in the repository). It:
#
# 1. installs the pack's wheels into a folder of their own (pip --no-index --target) and puts it
#    on PYTHONPATH;
# 2. builds mmcv 2.1.0 from the pack's source with its CUDA ops for the visible GPU's arch, on
#    every core, in the background (its setup.py's -std=c++17 becomes -std=c++20, as torch's
#    headers need; setuptools < 82 from the pack, for its pkg_resources; no build isolation);
# 3. builds coordatt_mm's fused CPU operator (setup.py), meanwhile;
# 4. runs tools/gpu_check.py: the checks that need no mmcv ops (coordatt, syncbn) while mmcv
#    builds, the others (mmcv-ops, train-det, train-seg) once it is built, the benchmark last
#    if time is left;
# 5. writes the report (gpu_check.md, gpu_check.json) and the logs to $OUT (8 files at most).
#
# Everything ends by GPU_PACK_DEADLINE seconds (510): an mmcv build still running when only the
# time of the checks after it is left is stopped, and the report says how far it got (objects
# compiled of all) and runs what needs no mmcv. --dry-run checks the pack against this
# machine's Python (tools/gpu_pack/check_pack.py) and prints the plan, building nothing.
# The exit status is 0 when every check passed.
set -uo pipefail

REPO=$PWD
PACK=${GPU_PACK:-$REPO/gpu_pack}
OUT=${OUT:-$REPO/work_dirs/gpu_pack}
WORK=${GPU_PACK_WORK:-/tmp/coordatt_gpu_pack}
DEADLINE=${GPU_PACK_DEADLINE:-510}  # seconds from the start: everything ends by then
AFTER_BUILD=${GPU_PACK_AFTER_BUILD:-120}  # seconds kept for the checks that need mmcv's ops
ITERS=${GPU_PACK_ITERS:-80}  # training iterations of each demo config
PY=${PYTHON:-python3}
MMCV=mmcv-2.1.0
SITE=$WORK/site
SRC=$WORK/$MMCV
START=$(date +%s)

DRY=0
case ${1:-} in
  --dry-run) DRY=1 ;;
  "") ;;
  *) echo "usage: bash gpu_pack/run.sh [--dry-run]" >&2; exit 2 ;;
esac

elapsed() { echo $(( $(date +%s) - START )); }
left() { echo $(( DEADLINE - $(elapsed) )); }
mkdir -p "$OUT"
LOG=$OUT/run.log
: > "$LOG"
say() { echo "[run.sh $(elapsed) s] $*" | tee -a "$LOG"; }
die() { say "ERROR: $*"; exit 1; }
plan() { say "$([ $DRY = 1 ] && echo 'would run' || echo 'running'): $*"; }
# pip without this machine's configuration or any index
offline_pip() { PIP_CONFIG_FILE=/dev/null PIP_DISABLE_PIP_VERSION_CHECK=1 "$PY" -m pip "$@"; }

[ -f tools/gpu_check.py ] && [ -f tools/gpu_pack/check_pack.py ] \
  || die "run this from the repository root (bash gpu_pack/run.sh)"
[ -d "$PACK" ] || die "$PACK: no such folder: make gpu-pack writes it on a machine with \
network; copy it here with the repository (git ignores gpu_pack/, so copy it explicitly)"

# ---- 0. the machine and the pack ----
PYVER=$("$PY" -c 'import sys; print("%d.%d" % sys.version_info[:2])')
say "Python $PYVER ($(command -v "$PY")), $(nproc) cores"
INSTALLED=""
if [ "$PYVER" = 3.12 ] && "$PY" -c 'import torch' 2>/dev/null; then
  INSTALLED=--installed  # the lent machine: check against the packages it really has
elif [ $DRY = 0 ]; then
  die "the pack is for CPython 3.12 with torch installed; this is Python $PYVER"
else
  say "not the lent machine (Python $PYVER): its packages as $PACK/provided.txt gives them"
fi
"$PY" tools/gpu_pack/check_pack.py "$PACK" $INSTALLED 2>&1 | tee -a "$LOG"
PACK_OK=${PIPESTATUS[0]}
if [ $DRY = 0 ] && [ "$PACK_OK" != 0 ]; then die "the pack is incomplete (above)"; fi

ARCH=${TORCH_CUDA_ARCH_LIST:-}
if [ -z "$ARCH" ]; then
  ARCH=$("$PY" -c 'import torch
if torch.cuda.is_available():
    print("%d.%d" % torch.cuda.get_device_capability())' 2>/dev/null)
fi
if [ -n "$ARCH" ]; then
  say "GPU: $("$PY" -c 'import torch; print(torch.cuda.get_device_name(), "- torch",
    torch.__version__, "CUDA", torch.version.cuda)' 2>/dev/null || echo '?'), arch $ARCH"
elif [ $DRY = 0 ]; then
  die "no GPU visible to torch: this check is for the lent GPU machine"
else
  say "no GPU visible here: TORCH_CUDA_ARCH_LIST would be the GPU's compute capability"
fi
NVCC=$(command -v nvcc || ls /usr/local/cuda/bin/nvcc 2>/dev/null || true)
if [ -n "$NVCC" ]; then
  # the toolkit: where nvcc lies beside the runtime's headers (torch's own guess otherwise)
  for root in ${CUDA_HOME:-} "$(dirname "$(dirname "$(readlink -f "$NVCC")")")" /usr/local/cuda; do
    if [ -f "$root/include/cuda_runtime.h" ]; then export CUDA_HOME=$root; break; fi
  done
  say "nvcc: $NVCC ($("$NVCC" --version | sed -n 's/.*release \([0-9.]*\),.*/\1/p')), CUDA_HOME=${CUDA_HOME:-?}"
elif [ $DRY = 0 ]; then
  die "no nvcc on PATH or in /usr/local/cuda: mmcv's CUDA ops cannot be built"
fi
JOBS=$(nproc)
plan "pip install --no-index --no-deps --target $SITE $PACK/*.whl ($(ls "$PACK"/*.whl | wc -l) wheels)"
plan "build $MMCV from $PACK/$MMCV.tar.gz in $SRC: MMCV_WITH_OPS=1 FORCE_CUDA=1" \
  "TORCH_CUDA_ARCH_LIST=${ARCH:-<the GPU arch>} MAX_JOBS=$JOBS, -std=c++20, in the background"
plan "build coordatt_mm's operator: python setup.py build_ext --inplace"
plan "tools/gpu_check.py --only coordatt syncbn, while mmcv builds"
plan "stop the mmcv build at $(( DEADLINE - AFTER_BUILD )) s if it still runs; then" \
  "tools/gpu_check.py --only mmcv-ops train-det train-seg --iters $ITERS; the benchmark if" \
  "time is left; everything ends by $DEADLINE s"
plan "report and logs to $OUT"
if [ $DRY = 1 ]; then
  [ "$PACK_OK" = 0 ] && say "dry run: the pack is complete" || say "dry run: the pack is NOT complete"
  exit "$PACK_OK"
fi

# ---- 1. the wheels ----
rm -rf "$WORK" && mkdir -p "$WORK"
offline_pip install -q --no-index --no-deps --no-compile --target "$SITE" "$PACK"/*.whl >> "$LOG" 2>&1 \
  || die "installing the wheels failed (run.log)"
export PYTHONPATH=$SITE:$SRC:$REPO${PYTHONPATH:+:$PYTHONPATH}
export PATH=$SITE/bin:$(dirname "$(command -v "$PY")"):$PATH
say "wheels installed in $SITE"

# ---- 2. mmcv, in the background ----
tar -xzf "$PACK/$MMCV.tar.gz" -C "$WORK"
sed -i 's/-std=c++17/-std=c++20/g' "$SRC/setup.py"
set -m  # the build gets a process group of its own: stopping it stops its compilers too
(cd "$SRC" && MMCV_WITH_OPS=1 FORCE_CUDA=1 TORCH_CUDA_ARCH_LIST=$ARCH MAX_JOBS=$JOBS \
  exec "$PY" setup.py build_ext --inplace) > "$WORK/mmcv_build.log" 2>&1 &
BUILD=$!
set +m
stop_build() { kill -TERM -- "-$BUILD" 2>/dev/null; }
trap stop_build EXIT
say "mmcv build started (pid $BUILD)"
objects() {  # "compiled/total" of the mmcv build so far
  local ninja total
  ninja=$(ls "$SRC"/build/temp*/build.ninja 2>/dev/null | head -1)
  total=$([ -n "$ninja" ] && grep -c '^build .*\.o: ' "$ninja" || echo '?')
  echo "$(find "$SRC/build" -name '*.o' 2>/dev/null | wc -l)/$total"
}

# ---- 3. the CoordAtt operator ----
MAX_JOBS=$JOBS "$PY" setup.py build_ext --inplace > "$WORK/coordatt_build.log" 2>&1 \
  || say "building the CoordAtt operator failed (coordatt_build.log)"
OPERATOR=$("$PY" -c 'from coordatt_mm import ops; print(ops.fused_status())' 2>&1 | tail -1)
say "CoordAtt CPU operator: $OPERATOR"
"$PY" -c 'from coordatt_mm.datasets import is_current, make_all
if not is_current("data/tiny"):
    make_all("data/tiny")' >> "$LOG" 2>&1 || say "making data/tiny failed (run.log)"

# ---- 4. the checks ----
check() {  # $1: name of the run, $2: seconds to keep after it; the rest: gpu_check's arguments
  local name=$1 keep=$2 budget
  shift 2
  budget=$(( $(left) - keep ))
  [ "$budget" -lt 30 ] && budget=30
  say "gpu_check $* (at most $budget s)"
  timeout --kill-after=10 "$budget" env OMP_NUM_THREADS="$THREADS" "$PY" tools/gpu_check.py \
    --out "$WORK/$name" "$@" > "$WORK/$name.log" 2>&1
  say "gpu_check $name: exit $?$([ -f "$WORK/$name/gpu_check.json" ] || echo ', no report')"
}
THREADS=4  # the CPU references' threads while mmcv compiles on every core
check phase-a "$AFTER_BUILD" --only coordatt syncbn
THREADS=$JOBS

while kill -0 "$BUILD" 2>/dev/null && [ "$(left)" -gt "$AFTER_BUILD" ]; do sleep 5; done
NOTES=()
if kill -0 "$BUILD" 2>/dev/null; then
  HOW_FAR=$(objects)
  stop_build
  wait "$BUILD" 2>/dev/null
  say "mmcv build stopped at the deadline: $HOW_FAR objects compiled"
  for c in mmcv-ops train-det train-seg benchmark; do
    NOTES+=(--note "$c=needs mmcv's CUDA ops: its build had compiled $HOW_FAR objects when it \
was stopped at $(elapsed) s")
  done
  BUILT="stopped at $(elapsed) s with $HOW_FAR objects compiled"
else
  wait "$BUILD"
  STATUS=$?
  if [ $STATUS = 0 ] && ls "$SRC"/mmcv/_ext*.so > /dev/null 2>&1; then
    BUILT="built at $(elapsed) s ($(objects) objects, sm_${ARCH/./}, $JOBS jobs)"
    say "mmcv $BUILT"
    check phase-b 15 --only mmcv-ops train-det --iters "$ITERS" &
    B1=$!
    check phase-c 15 --only train-seg --iters "$ITERS"
    wait $B1
    if [ "$(left)" -gt 90 ]; then
      check phase-d 10 --only benchmark
    else
      NOTES+=(--note "benchmark=not run: $(left) s were left")
    fi
  else
    BUILT="failed (exit $STATUS, $(objects) objects; see mmcv_build.log)"
    say "mmcv build $BUILT"
    for c in mmcv-ops train-det train-seg benchmark; do
      NOTES+=(--note "$c=needs mmcv's CUDA ops: their build failed (mmcv_build.log)")
    done
  fi
fi
trap - EXIT

# ---- 5. the report and the logs ----
"$PY" tools/gpu_pack/merge_report.py --out "$OUT" "$WORK"/phase-*/gpu_check.json "${NOTES[@]}" \
  --line "run.sh: wheels from the pack; $MMCV $BUILT; coordatt_mm's CPU operator $OPERATOR" \
  --line "total $(elapsed) s of the $DEADLINE s allowed" > "$WORK/report.txt" 2>&1
RESULT=$?
cat "$WORK/report.txt" | tee -a "$LOG"
# the build logs: their start and end (a CUDA build prints much)
for b in mmcv_build coordatt_build; do
  f=$WORK/$b.log
  if [ -f "$f" ] && [ "$(stat -c %s "$f")" -gt 6000000 ]; then
    { head -c 20000 "$f"; echo "[...]"; tail -c 6000000 "$f"; } > "$OUT/$b.log"
  elif [ -f "$f" ]; then
    cp "$f" "$OUT/$b.log"
  fi
done
# the checks' own output and logs, one file
for f in "$WORK"/phase-*.log "$WORK"/phase-*/*.log; do
  [ -f "$f" ] && { echo "===== ${f#"$WORK"/}"; tail -c 800000 "$f"; }
done > "$OUT/checks.log"
cat "$WORK"/phase-*/benchmark-*.md > "$OUT/benchmark.md" 2>/dev/null || rm -f "$OUT/benchmark.md"
say "report and logs in $OUT: $(ls "$OUT" | tr '\n' ' ')"
exit $RESULT
