#!/usr/bin/env bash
# Checks and benchmarks the CUDA back end on an NVIDIA GPU (compute capability 8.9 or 9.0); see
# gpu/README.md. Build first (scripts/cuda-check.sh builds target/release/libunitfp8.so with
# --features cuda and target/release/cuda_device_test), then
#
#   bash gpu/run_checks.sh
#
# No Rust is needed to run it: the library is loaded from Python (PyTorch with CUDA) through
# ctypes. Each section runs in its own process under a time limit, so a hung or faulting kernel
# loses only its section. Results: $OUT/gpu_<section>.{json,log} (default OUT=bench/results).
# Options: QUICK=1 (small sizes), SEED=<n> (reproduce a failure), LIB=<path>, PYTHON=<python>.
set -uo pipefail
cd "$(dirname "$0")/.."
export PYTHONUNBUFFERED=1
OUTDIR="${OUT:-bench/results}"
LIB="${LIB:-target/release/libunitfp8.so}"
mkdir -p "$OUTDIR"
PY="${PYTHON:-python3}"
args=(--lib "$LIB" --out "$OUTDIR")
[[ -n "${SEED:-}" ]] && args+=(--seed "$SEED")
[[ -n "${QUICK:-}" ]] && args+=(--quick)
[[ -n "${TINY:-}" ]] && args+=(--tiny)  # bench sizes for the SIMT emulator's dry run (scripts/cuda-emu.sh)

if [[ ! -f "$LIB" ]]; then
    echo "run_checks: $LIB is missing: build it with scripts/cuda-check.sh (or pass LIB=<path>)"
    exit 2
fi
# The results are 8 files: gpu_<section>.{json,log} for the four sections.
nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.sm,clocks.mem --format=csv 2>&1 | tee "$OUTDIR/gpu_info.log"

declare -A limit=([info]=60 [elementwise]=200 [gemm]=120 [bench]=150)
declare -A rc
for s in info elementwise gemm bench; do
    echo "=== $s (timeout ${limit[$s]} s)"
    tee_args=()
    [[ $s == info ]] && tee_args=(-a)
    timeout -k 10 "${limit[$s]}" "$PY" gpu/check.py "$s" "${args[@]}" 2>&1 | tee "${tee_args[@]}" "$OUTDIR/gpu_${s}.log"
    rc[$s]=${PIPESTATUS[0]}
    [[ ${rc[$s]} == 124 || ${rc[$s]} == 137 ]] && echo "run_checks: $s TIMED OUT (a hung kernel?)"
done

# The Rust device tests (tests/cuda_device.rs, built by scripts/cuda-check.sh), if carried:
# casts/mixes bit-exact and GEMM error bounds on the real GPU; output appended to gpu_info.log.
sections=(info elementwise gemm bench)
if [[ -x target/release/cuda_device_test ]]; then
    echo "=== rust device tests (timeout 90 s)" | tee -a "$OUTDIR/gpu_info.log"
    UNITFP8_REQUIRE_DEVICE=1 timeout -k 10 90 target/release/cuda_device_test --nocapture --test-threads 2 2>&1 |
        tee -a "$OUTDIR/gpu_info.log"
    rc[rust]=${PIPESTATUS[0]}
    sections+=(rust)
fi

echo "=== summary (exit codes: 0 ok, 1 check failed, 2 could not run, 124 timeout)"
status=0
for s in "${sections[@]}"; do
    printf '  %-12s %s\n' "$s" "${rc[$s]}"
    [[ ${rc[$s]} == 0 ]] || status=1
done
echo "=== tables"
grep -h "^FAIL" "$OUTDIR"/gpu_*.log | head -40
grep -h "bench " "$OUTDIR"/gpu_bench.log 2>/dev/null | cut -c1-200
exit $status
