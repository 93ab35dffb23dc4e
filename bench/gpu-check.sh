#!/usr/bin/env bash
# One-call GPU check, for a machine with a CUDA GPU and no package registry (numpy, cupy and
# pytest installed; this repository copied to the current directory). Under 8 minutes in all.
#
#   bash bench/gpu-check.sh [--dry] [OUTDIR]        (OUTDIR default: $OUT, else ./gpu-check-out)
#
# Steps, each with its own timeout (one failure or hang does not lose the others); everything
# lands in OUTDIR:
#   env.txt / env.json       nvidia-smi, python, numpy/cupy versions, device properties
#   kernel.json              per-kernel registers, spills, stack, .f64 counts (nvcc -Xptxas -v,
#                            sm_80 + sm_90, if nvcc exists) and CuPy's own view on this GPU
#                            (RawKernel num_regs, local memory, occupancy at 128 threads)
#   pytest-gpu.txt/.xml      python -m pytest -q -m gpu tests/
#   polyphony-cupy.json/.png the cupy polyphony sweep 1,024 .. 4,000,000 held voices (smem kernel)
#   polyphony-cupy-fused.json the portable kernel on the middle of the sweep
#   many-cupy.json           many songs in one launch against one at a time (bench.py many)
#   summary.txt              one line per step: status, exit code, seconds
# --dry: the same steps on a CPU-only machine (native backend, small sweep) to check the script.
set -u

DRY=0
if [ "${1:-}" = "--dry" ]; then DRY=1; shift; fi
OUTDIR="${1:-${OUT:-./gpu-check-out}}"
mkdir -p "$OUTDIR"
OUTDIR="$(cd "$OUTDIR" && pwd)"
cd "$(dirname "$0")/.."
PY="${PYTHON:-$(command -v python || command -v python3)}"
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
export PYTHONUNBUFFERED=1

TOTAL_S=${GPU_CHECK_TOTAL_S:-465}           # hard ceiling for the whole script
START=$(date +%s)
SUMMARY="$OUTDIR/summary.txt"
: > "$SUMMARY"

# step NAME TIMEOUT_S CMD...: run with the smaller of TIMEOUT_S and the time left; log stdout and
# stderr to OUTDIR/NAME.log; record the outcome in summary.txt
step() {
    local name="$1" limit="$2"; shift 2
    local now left t0 rc status
    now=$(date +%s); left=$(( TOTAL_S - (now - START) ))
    if [ "$left" -lt 10 ]; then
        echo "$name: SKIPPED (no time left)" | tee -a "$SUMMARY"
        return 0
    fi
    [ "$limit" -gt "$left" ] && limit=$left
    echo "== $name (timeout ${limit}s): $*" >&2
    t0=$(date +%s)
    timeout -k 10 "$limit" "$@" > "$OUTDIR/$name.log" 2>&1
    rc=$?
    case $rc in
        0) status=ok ;;
        124|137) status=TIMEOUT ;;
        5) status=NO-TESTS ;;          # pytest: nothing collected/selected
        *) status=FAILED ;;
    esac
    echo "$name: $status rc=$rc $(( $(date +%s) - t0 ))s" | tee -a "$SUMMARY"
    tail -n 5 "$OUTDIR/$name.log" >&2
    return 0
}

env_info() {
    echo "date: $(date -u +%FT%TZ)"; echo "host: $(uname -a)"; echo "dry: $DRY"
    command -v nvidia-smi >/dev/null && nvidia-smi || echo "nvidia-smi: not found"
    command -v nvcc >/dev/null && nvcc --version || echo "nvcc: not found"
    git rev-parse HEAD 2>/dev/null && git status --short 2>/dev/null | head -20
    "$PY" - "$OUTDIR/env.json" <<'EOF'
import json, os, platform, sys
info = {"python": sys.version, "platform": platform.platform(), "cpus": os.cpu_count()}
try:
    import numpy; info["numpy"] = numpy.__version__
except Exception as e: info["numpy"] = f"missing: {e}"
try:
    import cupy as cp
    info["cupy"] = cp.__version__
    info["cuda_runtime"] = cp.cuda.runtime.runtimeGetVersion()
    info["cuda_driver"] = cp.cuda.runtime.driverGetVersion()
    n = cp.cuda.runtime.getDeviceCount()
    devs = []
    for i in range(n):
        p = cp.cuda.runtime.getDeviceProperties(i)
        devs.append({k: (v.decode() if isinstance(v, bytes) else v) for k, v in p.items()
                     if isinstance(v, (int, float, str, bytes)) and k in (
                         "name", "major", "minor", "multiProcessorCount", "totalGlobalMem",
                         "regsPerMultiprocessor", "regsPerBlock", "maxThreadsPerMultiProcessor",
                         "sharedMemPerMultiprocessor", "clockRate", "memoryClockRate",
                         "memoryBusWidth", "l2CacheSize")})
    info["devices"] = devs
except Exception as e:
    info["cupy"] = f"unavailable: {type(e).__name__}: {e}"
try:
    from gpusynth.backend.select import backend_info
    info["gpusynth_backends"] = backend_info()
except Exception as e:
    info["gpusynth_backends"] = f"{type(e).__name__}: {e}"
json.dump(info, open(sys.argv[1], "w"), indent=2, default=str)
print(json.dumps(info, indent=2, default=str))
EOF
}

if [ "$DRY" = 1 ]; then
    SWEEP=(--backends native --voices 64,256 --seconds 1 --cores 2 --no-fluidsynth)
    SWEEP_FUSED=(--backends native --voices 64 --seconds 1 --cores 2 --no-fluidsynth)
else
    SWEEP=(--backends cupy --voices 1024,16384,262144,1048576,4000000 --seconds 2 --no-fluidsynth)
    SWEEP_FUSED=(--backends cupy --voices 16384,262144,1048576 --seconds 2 --no-fluidsynth)
fi

export DRY PY OUTDIR
export -f env_info
step env 40 bash -c env_info
step kernel 120 "$PY" bench/bench.py kernel --out "$OUTDIR/kernel.json"
step pytest-gpu 160 "$PY" -m pytest -q -m gpu tests/ -p no:cacheprovider \
    --junitxml="$OUTDIR/pytest-gpu.xml"
# the CuPy backend's two kernels (GPUSYNTH_CUPY_KERNEL): the shared-memory fast path over the
# whole sweep, its portable twin (int64 atomics per thread) on the middle of it
GPUSYNTH_CUPY_KERNEL=smem step polyphony-cupy 150 "$PY" bench/bench.py polyphony "${SWEEP[@]}" \
    --timeout 100 --out "$OUTDIR/polyphony-cupy.json" --plot "$OUTDIR/polyphony-cupy.png"
GPUSYNTH_CUPY_KERNEL=fused step polyphony-cupy-fused 90 "$PY" bench/bench.py polyphony \
    "${SWEEP_FUSED[@]}" --timeout 60 --out "$OUTDIR/polyphony-cupy-fused.json"
# many songs in one launch against one at a time (gpusynth.ensemble), same process
if [ "$DRY" = 1 ]; then
    step many-cupy 120 "$PY" bench/bench.py many --backend native --songs-n 8 --group 8 \
        --cores 2 --no-fluidsynth --out "$OUTDIR/many-cupy.json"
else
    step many-cupy 120 "$PY" bench/bench.py many --backend cupy --songs-n 128 --group 32,128 \
        --cores 4 --no-fluidsynth --timeout 110 --out "$OUTDIR/many-cupy.json"
fi
[ -f "$OUTDIR/pytest-gpu.log" ] && cp "$OUTDIR/pytest-gpu.log" "$OUTDIR/pytest-gpu.txt"

echo "total: $(( $(date +%s) - START ))s" | tee -a "$SUMMARY"
echo "results in $OUTDIR" >&2
