#!/usr/bin/env python3
"""Few-row products y = x·Wᵀ (a decoded token) through unitfp8 (E4M3 x and W, bf16 y) against
PyTorch's bf16 `x @ w.t()` on the same CPU threads.

Usage: bench/decode-vs-torch.py [ROUNDS]   (needs the unitfp8 package and torch: `pip install
./python torch`; `UNITFP8_GEMM_KERNEL=amx-bf16` measures the opt-in AMX kernel)

Both sides cycle through copies of W that total about 1 GiB, so every call reads its weight from
DRAM, as a decode step does. Each round times every (threads, shape, m) on unitfp8 and then on
PyTorch, 16 calls each (the median call); ROUNDS rounds (default 5), and the table shows the
median over the rounds, GB/s of weight bytes read, and the ratio unitfp8 / PyTorch speed with
its per-round range. FP8 weights are half the bytes of bf16 ones: where both stream W at the
same bandwidth, the ratio is 2.
"""
import statistics
import sys
import time

import ml_dtypes
import numpy as np
import torch
import unitfp8

ROUNDS = int(sys.argv[1]) if len(sys.argv) > 1 else 5
SHAPES = [(8192, 2048), (2048, 8192), (14336, 4096)]  # (n = fan_out, k = fan_in)
ROWS = [1, 2, 4, 8, 16]
CALLS = 16
TOTAL_BYTES = 1 << 30


def copies(nbytes: int) -> int:
    return max(2, TOTAL_BYTES // nbytes)


rng = np.random.default_rng(1)
weights = {}
for n, k in SHAPES:
    w32 = rng.standard_normal((n, k), dtype=np.float32)
    w8 = w32.astype(ml_dtypes.float8_e4m3fn)
    wb = torch.from_numpy(w32).to(torch.bfloat16)
    weights[(n, k)] = (
        [w8.copy() for _ in range(copies(n * k))],
        [wb.clone() for _ in range(copies(2 * n * k))],
    )
    del w32


def median_call(fn, ws) -> float:
    times = []
    for i in range(CALLS):
        w = ws[i % len(ws)]
        t0 = time.perf_counter()
        fn(w)
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


res = {}
for rnd in range(ROUNDS):
    for threads in (1, 2):
        unitfp8.set_num_threads(threads)
        torch.set_num_threads(threads)
        for (n, k), (w8s, wbs) in weights.items():
            for m in ROWS:
                x8 = rng.standard_normal((m, k), dtype=np.float32).astype(ml_dtypes.float8_e4m3fn)
                y = np.empty((m, n), dtype=ml_dtypes.bfloat16)
                xb = torch.randn(m, k).to(torch.bfloat16)
                ours = median_call(lambda w: unitfp8.linear_forward(x8, w, alpha=1.0, out=y), w8s)
                theirs = median_call(lambda w: xb @ w.t(), wbs)
                res.setdefault((threads, n, k, m), []).append((ours, theirs))
    print(f"round {rnd + 1} of {ROUNDS} done", file=sys.stderr)

print(f"y = x·Wᵀ, W from DRAM: unitfp8 E4M3 (bf16 y, GEMM kernel {unitfp8.gemm_kernel()}) vs PyTorch {torch.__version__} bf16 x @ w.t(); "
      f"medians of {ROUNDS} interleaved rounds")
print(f"{'thr':>3} {'W (n x k)':>12} {'m':>3} {'unitfp8 ms':>11} {'GB/s':>6} {'torch ms':>9} {'GB/s':>6} "
      f"{'speed ratio':>11}  per-round")
for (threads, n, k, m), v in sorted(res.items()):
    ours = statistics.median(o for o, _ in v)
    theirs = statistics.median(t for _, t in v)
    ratios = [t / o for o, t in v]
    print(f"{threads:>3} {f'{n}x{k}':>12} {m:>3} {1e3 * ours:11.3f} {n * k / ours / 1e9:6.1f} "
          f"{1e3 * theirs:9.3f} {2 * n * k / theirs / 1e9:6.1f} {theirs / ours:10.2f}x  "
          f"{min(ratios):.2f}-{max(ratios):.2f}")
