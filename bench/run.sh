#!/usr/bin/env bash
# Runs unitfp8's microbenchmarks: the casts / residual-mix benchmark (bench/src/main.rs), the
# GEMM benchmark (bench/src/bin/gemm.rs) and the thread hand-off benchmark
# (bench/src/bin/threads.rs).
#
#   bench/run.sh [--quick] [other options of the casts benchmark, see --help]
#
# All arguments go to the casts benchmark; only --quick is passed on to the other two.
# Results: bench/results/casts.json, gemm.{json,svg}, threads.{json,txt}.
# Python peers (ml_dtypes, PyTorch) use $PYTHON, else .venv/bin/python when the repository has
# that venv, else python3; a peer whose modules are missing is skipped with a note.
set -euo pipefail
cd "$(dirname "$0")/.."

if ! command -v cargo >/dev/null 2>&1; then
    echo "cargo not found: install Rust (https://rustup.rs) first" >&2
    exit 1
fi
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

quick=()
for arg in "$@"; do
    if [ "$arg" = "--quick" ]; then
        quick=(--quick)
    fi
done

cargo build --release -p unitfp8-bench --bins
mkdir -p bench/results

echo "== casts and residual mix =="
cargo run --release -q -p unitfp8-bench --bin unitfp8-bench -- "$@"

if [ -f bench/src/bin/gemm.rs ]; then
    echo
    echo "== GEMM =="
    cargo run --release -q -p unitfp8-bench --bin gemm -- "${quick[@]}"
fi

echo
echo "== thread hand-off (mid-size calls, 1 thread vs all) =="
cargo run --release -q -p unitfp8-bench --bin threads -- "${quick[@]}" | tee bench/results/threads.txt
