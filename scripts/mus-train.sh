#!/usr/bin/env bash
# Runs the μS end-to-end experiment (examples/mus_train) and writes its results to
# bench/results/mus_train/: loss.csv, eval.csv, summary.csv (the four-run comparison),
# sweep.csv (width × learning-rate sweep), and PNG plots (matplotlib from $PYTHON, if present).
# Single-threaded (--threads 1) on purpose: the f32 parts of the example are single-threaded.
# Takes ~20 minutes on one core of the development machine. Extra arguments go to both runs (e.g. --steps 100).
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=bench/results/mus_train
if [ -z "${PYTHON:-}" ]; then if [ -x .venv/bin/python ]; then PYTHON=.venv/bin/python; else PYTHON=python3; fi; fi
mkdir -p "$OUT"
cargo build --release --example mus_train
BIN=target/release/examples/mus_train
$BIN compare --steps 600 --width 128 --layers 4 --heads 4 --ctx 64 --batch 16 \
    --lr 0.015625 --sp-lr 0.001953125 --threads 1 --out "$OUT" "$@" | tee "$OUT/compare.log"
# The μS pair again at the sweep's best η (2^-5).
mkdir -p "$OUT/mus_lr2e-5"
$BIN compare --runs muS-fp8,muS-f32 --steps 600 --width 128 --layers 4 --heads 4 --ctx 64 --batch 16 \
    --lr 0.03125 --threads 1 --out "$OUT/mus_lr2e-5" "$@" | tee "$OUT/mus_lr2e-5/compare.log"
$BIN sweep --widths 64,128,256 --steps 200 --batch 8 --layers 4 --ctx 64 --d-base 128 \
    --mus-lrs 0.0039,0.0078,0.0156,0.03125,0.0625 \
    --sp-lrs 0.00049,0.00098,0.00195,0.0039,0.0078 --threads 1 --out "$OUT" "$@" | tee "$OUT/sweep.log"
if "$PYTHON" -c "import matplotlib" 2>/dev/null; then
    "$PYTHON" examples/mus_train/plot.py "$OUT"
else
    echo "matplotlib not found for $PYTHON: skipping the plots (the CSVs are the results)"
fi
