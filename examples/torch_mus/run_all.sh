#!/usr/bin/env bash
# The full experiment of this folder (about 30 minutes on 2 vCPUs): the four-variant
# comparison, the μS-FP8 learning-rate sweep over two widths, the 600-step FP8/f32 pair at the
# sweep's best η (with stochastic-rounding gradients, and f32 with another seed for the spread),
# and the 2-process DDP run against the 1-process run; then the plots. Results go to examples/torch_mus/results/.
# WITH_SEEDS=1 adds the ten-seed μS-FP8 vs μS-f32 comparisons (widths 256 and 128, and 128 with
# SiLU: about 70 minutes more).
set -euo pipefail
cd "$(dirname "$0")"
PY="${PYTHON:-python}"
OUT="${OUT:-results}"
mkdir -p "$OUT"
"$PY" train.py compare --steps 400 --width 128 --out "$OUT"
"$PY" train.py sweep --widths 64,128 --steps 150 --lrs 0.0078125,0.015625,0.03125,0.0625,0.125 --eval-every 150 --out "$OUT"
"$PY" train.py compare --steps 600 --width 128 --lr 0.0625 --variants mus_fp8,mus_f32 --out "$OUT/mus_lr2e-4"
"$PY" train.py run --variant mus_fp8 --grad-rounding stochastic --steps 600 --width 128 --lr 0.0625 --out "$OUT/mus_lr2e-4"
"$PY" train.py run --variant mus_f32 --init-seed 2 --steps 600 --width 128 --lr 0.0625 --out "$OUT/mus_lr2e-4/init2"
"$PY" train.py run --variant mus_fp8 --steps 100 --width 64 --eval-every 25 --out "$OUT"
"$PY" -m torch.distributed.run --nproc-per-node 2 train.py run --variant mus_fp8 --steps 100 --width 64 --eval-every 25 --out "$OUT"
if [ "${WITH_SEEDS:-0}" = 1 ]; then
    "$PY" train.py seeds --seeds 10 --width 256 --out "$OUT"
    "$PY" train.py seeds --seeds 10 --width 128 --out "$OUT"
    "$PY" train.py seeds --seeds 10 --width 128 --activation silu --out "$OUT"
fi
"$PY" plot.py "$OUT"
