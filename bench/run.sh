#!/usr/bin/env bash
# Runs unitfp8's microbenchmarks: the casts / residual-mix benchmark (bench/src/main.rs), the
# GEMM benchmark (bench/src/bin/gemm.rs) and the thread hand-off benchmark
# (bench/src/bin/threads.rs; the GEMM benchmark also for the opt-in AMX kernel where the CPU has
# it), then prints a one-screen summary: each kernel's ratio to its limit
# (copy bandwidth, vdpbf16ps peak) and to each peer, next to the project's goal for it.
#
#   bench/run.sh [--quick] [--publish] [other options of the casts benchmark, see its --help]
#
#   --quick     smaller sizes and fewer rounds (about a minute)
#   --publish   write into bench/results/ (the committed results the README quotes) instead of
#               the untracked bench/out/
#   UNITFP8_BENCH_TORCH=1   add the PyTorch peers to every benchmark (installs torch, CPU
#               build, into .venv when it is missing)
#
# All other arguments go to the casts benchmark. Python peers run with $PYTHON, else
# .venv/bin/python (created here with numpy and ml_dtypes when missing), else python3.
set -euo pipefail
cd "$(dirname "$0")/.."

if ! command -v cargo >/dev/null 2>&1; then
    echo "cargo not found: install Rust (https://rustup.rs) first" >&2
    exit 1
fi

quick=()
casts_args=()
out=bench/out
for arg in "$@"; do
    case "$arg" in
        --quick) quick=(--quick); casts_args+=("$arg") ;;
        --publish) out=bench/results ;;
        *) casts_args+=("$arg") ;;
    esac
done

if [ -z "${PYTHON:-}" ] && [ ! -x .venv/bin/python ] && command -v python3 >/dev/null 2>&1; then
    # The ml_dtypes peer needs numpy + ml_dtypes: make the same venv the tests use (best effort).
    echo "bench: creating .venv with numpy and ml_dtypes for the Python peers"
    python3 -m venv .venv && .venv/bin/pip install --quiet --disable-pip-version-check numpy ml_dtypes ||
        echo "bench: could not set up .venv; Python peers will be skipped"
fi
if [ -z "${PYTHON:-}" ]; then
    if [ -x .venv/bin/python ]; then
        PYTHON="$PWD/.venv/bin/python"
    else
        PYTHON=python3
    fi
fi
export PYTHON

if [ "${UNITFP8_BENCH_TORCH:-0}" = 1 ]; then
    if ! "$PYTHON" -c 'import torch' 2>/dev/null; then
        echo "bench: UNITFP8_BENCH_TORCH=1: installing torch (CPU build) with $PYTHON -m pip"
        "$PYTHON" -m pip install --quiet --disable-pip-version-check torch \
            --index-url https://download.pytorch.org/whl/cpu ||
            echo "bench: could not install torch; the PyTorch peers will be skipped"
    fi
else
    echo "bench: PyTorch peers off; UNITFP8_BENCH_TORCH=1 bench/run.sh adds them (installs torch into .venv)"
fi
export UNITFP8_BENCH_TORCH="${UNITFP8_BENCH_TORCH:-0}"

cargo build --release -p unitfp8-bench --bins
mkdir -p "$out"
echo "bench: results go to $out/"

echo "== casts and residual mix =="
cargo run --release -q -p unitfp8-bench --bin unitfp8-bench -- --json "$out/casts.json" \
    ${casts_args[@]+"${casts_args[@]}"} | tee "$out/casts.txt"

echo
echo "== GEMM =="
cargo run --release -q -p unitfp8-bench --bin gemm -- --out "$out" ${quick[@]+"${quick[@]}"} |
    tee "$out/gemm.txt"

# The opt-in AMX kernel (faster on CPUs with AMX, not bit-identical), where this CPU has it.
if target/release/gemm --kernel amx-bf16 --shape 64,64,64 2>/dev/null | head -1 | grep -q 'kernel: amx-bf16'; then
    echo
    echo "== GEMM, opt-in AMX kernel amx-bf16 (rows: % of the tdpbf16ps peak) =="
    mkdir -p "$out/amx"
    cargo run --release -q -p unitfp8-bench --bin gemm -- --kernel amx-bf16 --out "$out/amx" \
        ${quick[@]+"${quick[@]}"} | tee "$out/amx/gemm.txt"
fi

echo
echo "== thread hand-off (mid-size calls, 1 thread vs all) =="
cargo run --release -q -p unitfp8-bench --bin threads -- --out "$out" ${quick[@]+"${quick[@]}"} |
    tee "$out/threads.txt"

echo
if "$PYTHON" bench/summary.py "$out" >"$out/summary.txt"; then
    cat "$out/summary.txt"
else
    echo "bench: could not print the summary (bench/summary.py with $PYTHON)"
fi

echo
echo "Files written:"
for f in casts.json casts.txt gemm.json gemm.svg gemm.txt threads.json threads.txt summary.txt; do
    [ -f "$out/$f" ] && echo "  $out/$f"
done
if [ "$out" = bench/out ]; then
    echo "(bench/results/, which the README quotes, is unchanged; --publish writes there)"
fi
