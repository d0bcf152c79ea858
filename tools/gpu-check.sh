#!/usr/bin/env bash
# One-command GPU check of pygenmod (docs/gpu.md): build for this device only, the test suite
# with the CUDA backend REQUIRED, compute-sanitizer over a short CUDA subset, the determinism
# report and the GPU benchmark table. Everything goes to one folder.
#
# Usage: tools/gpu-check.sh [--dry-run] [OUTDIR]      (OUTDIR default: $OUT, else ./gpu-check-out)
#   --dry-run  no GPU needed: every step runs with the CPU standing in for the device
#              (the CUDA modules are still compiled when nvcc exists) so the script is tested here.
# Environment: GPU_CHECK_BUDGET (total seconds, default 480), GPU_CHECK_ARCH (default: the
#   device's compute capability, e.g. 90), JOBS (build jobs, default all cores), PYTHON.
# Each step's log is OUTDIR/<step>.log; OUTDIR/summary.md lists every step's status and time.
# A failing step is recorded and the next one runs; the exit status is 1 if any step failed
# (a missing compute-sanitizer is recorded as "not run", not as a failure).
set -uo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD

DRY=0
if [[ "${1:-}" == "--dry-run" ]]; then DRY=1; shift; fi
OUTDIR=${1:-${OUT:-$ROOT/gpu-check-out}}
mkdir -p "$OUTDIR"
OUTDIR=$(cd "$OUTDIR" && pwd)
PY=${PYTHON:-python3}
BUDGET=${GPU_CHECK_BUDGET:-480}
JOBS=${JOBS:-$(nproc 2>/dev/null || echo 2)}
START=$(date +%s)
export PYTHONPATH="$ROOT${PYTHONPATH:+:$PYTHONPATH}"
export PYTHONDONTWRITEBYTECODE=1
FAILED=0

SUMMARY=$OUTDIR/summary.md
{
  echo "# pygenmod GPU check $( ((DRY)) && echo '(DRY RUN: CPU stands in for the device)')"
  echo
  echo "started $(date -u +%Y-%m-%dT%H:%M:%SZ) on $(hostname), commit $(git rev-parse --short HEAD 2>/dev/null || echo '?')$(git diff --quiet 2>/dev/null || echo ' (+local changes)'), budget ${BUDGET}s"
  echo
  echo "| step | status | seconds | log |"
  echo "|---|---|---|---|"
} >"$SUMMARY"

left() { echo $((BUDGET - ($(date +%s) - START))); }

# step NAME CAP_SECONDS FUNCTION: run the function in a child bash with a timeout of
# min(CAP, time left); record the result.
step() {
  local name=$1 cap=$2 fn=$3
  local log=$OUTDIR/$name.log t0 rc lim status
  lim=$(left)
  ((lim > cap)) && lim=$cap
  if ((lim < 5)); then
    echo "| $name | SKIPPED (budget spent) | 0 | - |" >>"$SUMMARY"
    echo "== $name: skipped, budget spent"
    FAILED=1
    return 0
  fi
  echo "== $name (limit ${lim}s)"
  t0=$(date +%s)
  timeout --kill-after=10 "$lim" bash -c "$fn" >"$log" 2>&1
  rc=$?
  case $rc in
    0) status=ok ;;
    75) status="not run (tool missing, see log)" ;;
    124 | 137) status="TIMEOUT (${lim}s)"; FAILED=1 ;;
    *) status="FAILED (rc $rc)"; FAILED=1 ;;
  esac
  echo "| $name | $status | $(($(date +%s) - t0)) | $name.log |" >>"$SUMMARY"
  echo "   $status; tail of $name.log:"
  tail -n 5 "$log" | sed 's/^/   | /'
  return 0
}

# ---------------------------------------------------------------------------------------------
env_report() {
  echo "## machine"; uname -a; nproc
  echo "## nvidia-smi"; nvidia-smi 2>&1 || echo "nvidia-smi not available"
  echo "## nvcc"; nvcc --version 2>&1 || echo "nvcc not on PATH"
  echo "## compute-sanitizer"; command -v compute-sanitizer || echo "compute-sanitizer not on PATH"
  echo "## python packages"
  "$PY" - <<'EOF'
import importlib, sys
print("python", sys.version.split()[0])
for m in ("numpy", "scipy", "cupy", "torch", "jax", "jaxlib", "numba", "mctx", "sklearn", "pybind11", "pytest"):
    try:
        mod = importlib.import_module(m)
        extra = ""
        if m == "torch":
            extra = f" cuda={mod.version.cuda} available={mod.cuda.is_available()}"
        if m == "cupy":
            try:
                extra = f" runtime={mod.cuda.runtime.runtimeGetVersion()} driver={mod.cuda.runtime.driverGetVersion()}"
            except Exception as exc:  # no device here
                extra = f" ({type(exc).__name__})"
        print(f"{m} {getattr(mod, '__version__', '?')}{extra}")
    except Exception as exc:
        print(f"{m} missing ({type(exc).__name__})")
EOF
}

# Packages the machine lacks (it has no network) come from gpu-wheels/ (tools/gpu_wheels.py
# download, carried with the working tree); only those it cannot import are installed.
wheels() {
  if ((DRY)); then
    "$PY" tools/gpu_wheels.py install --dry-run
  else
    "$PY" tools/gpu_wheels.py install
  fi
}

detect_arch() {
  local cc
  cc=$(nvidia-smi --query-gpu=compute_cap --format=csv,noheader 2>/dev/null | head -n1 | tr -d ' .')
  echo "${cc:-90}"
}

build() {
  if ((DRY)); then
    # same script and options; CUDA compiled for one architecture when nvcc exists
    PYGENMOD_CUDA=${PYGENMOD_CUDA:-AUTO} JOBS=$JOBS PYTHON=$PY tools/dev-build.sh \
      -DPYGENMOD_CUDA_ARCHITECTURES="${GPU_CHECK_ARCH:-90}-real"
  else
    PYGENMOD_CUDA=ON JOBS=$JOBS PYTHON=$PY tools/dev-build.sh \
      -DPYGENMOD_CUDA_ARCHITECTURES="${GPU_CHECK_ARCH:-$(detect_arch)}-real"
  fi
}

probe() {
  "$PY" - "$DRY" <<'EOF'
import json, sys
import pygenmod
dry = sys.argv[1] == "1"
b = pygenmod.backends()
print(json.dumps(b, indent=1))
ok = b["cuda"]["available"]
if dry:
    print("dry run: cuda", "available" if ok else "unavailable (expected without a GPU)")
    sys.exit(0)
sys.exit(0 if ok else 1)
EOF
}

# The CUDA tests first (-k cuda: every backend-parametrised test's cuda case and the GPU-check
# tests), with CUDA REQUIRED; then the whole suite with what is left of the budget.
# Dry run: the GPU-check tests and the shared host code only.
tests_cuda() {
  if ((DRY)); then
    "$PY" -m pytest -q -p no:cacheprovider -rfEs --junitxml="$OUTDIR/junit-cuda.xml" \
      tests/test_gpu_check.py tests/test_gpu_shared.py tests/test_backend.py
  else
    PYGENMOD_REQUIRE_CUDA=1 "$PY" -m pytest -q -p no:cacheprovider -rfEs --junitxml="$OUTDIR/junit-cuda.xml" \
      -k cuda tests
  fi
}

tests_all() {
  if ((DRY)); then
    echo "dry run: the whole suite is not run here (2 shared cores); on the GPU machine:"
    echo "PYGENMOD_REQUIRE_CUDA=1 $PY -m pytest -q -rfEs tests"
    return 0
  fi
  PYGENMOD_REQUIRE_CUDA=1 "$PY" -m pytest -q -p no:cacheprovider -rfEs --junitxml="$OUTDIR/junit-all.xml" tests
}

# Short CUDA subset under compute-sanitizer: memcheck on everything in it, racecheck on the
# kernels with shared memory (spatial softmax), synccheck on the MCTS warp-per-tree kernels
# (shuffles, __syncwarp). PYGENMOD_CUDA_SYNC=1 ties a fault to its launch.
sanitizer() {
  local tool SAN_K="cuda" SAN_TESTS=(tests/test_gpu_shared.py tests/test_mcts_warp.py)
  if ((DRY)) || ! command -v compute-sanitizer >/dev/null; then
    echo "compute-sanitizer: $( ((DRY)) && echo 'dry run' || echo 'not on PATH'): only collecting the subset"
    PYGENMOD_CUDA_SYNC=1 "$PY" -m pytest -q -p no:cacheprovider --collect-only -k "$SAN_K" "${SAN_TESTS[@]}" || return 1
    ((DRY)) || return 75  # recorded as "not run", not as a failure
    return 0
  fi
  local rc=0
  for tool in memcheck racecheck synccheck; do
    local k=$SAN_K
    [[ $tool == racecheck ]] && k="$SAN_K and spatial"
    [[ $tool == synccheck ]] && k="$SAN_K and warp_per_tree and f32"
    echo "## compute-sanitizer --tool $tool (-k '$k')"
    PYGENMOD_CUDA_SYNC=1 compute-sanitizer --tool "$tool" --error-exitcode 99 --target-processes all \
      "$PY" -m pytest -q -p no:cacheprovider -x -k "$k" "${SAN_TESTS[@]}" || rc=1
  done
  return $rc
}

determinism() {
  if ((DRY)); then
    "$PY" tools/gpu_determinism.py --dry-run --out "$OUTDIR"
  else
    "$PY" tools/gpu_determinism.py --out "$OUTDIR"
  fi
}

bench() {
  if ((DRY)); then
    "$PY" -m pygenmod.benchmarks.gpu --dry-run --out "$OUTDIR"
  else
    "$PY" -m pygenmod.benchmarks.gpu --repeats 5 --out "$OUTDIR"
  fi
}

# ---------------------------------------------------------------------------------------------
# Caps (seconds) sized for the H200 machine (16 cores): ~8 minutes in all. The most telling
# steps come first; the whole suite gets what is left.
export DRY PY OUTDIR JOBS ROOT
export -f env_report wheels detect_arch build probe tests_cuda tests_all sanitizer determinism bench
step env 30 env_report
step wheels 30 wheels
step build 150 build
step probe 30 probe
step tests-cuda 120 tests_cuda
step determinism 40 determinism
step bench 150 bench
step sanitizer 60 sanitizer
step tests-all 400 tests_all

{
  echo
  echo "finished after $(($(date +%s) - START)) s: $( ((FAILED)) && echo 'SOME STEPS FAILED' || echo 'all steps ok')"
} >>"$SUMMARY"
cat "$SUMMARY"
exit $FAILED
