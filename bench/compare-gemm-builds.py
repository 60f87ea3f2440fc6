#!/usr/bin/env python3
"""A/B comparison of two builds of the GEMM benchmark on short problems (few rows of C).

Usage: bench/compare-gemm-builds.py BASE_GEMM NEW_GEMM [BASE_NAME NEW_NAME]

BASE_GEMM and NEW_GEMM are `gemm` benchmark binaries (target/release/gemm) built from two
commits, e.g. with `git worktree add /tmp/base <commit>` and `CARGO_TARGET_DIR=/tmp/base-target
cargo build --release -p unitfp8-bench --bin gemm` there. Three rounds; in each, the vdpbf16ps
peak is measured, then every shape runs on each binary in turn (`--shape`, the median of its
three calls). Prints the medians over the rounds, the ratio, the per-round ratio range and the
new build's fraction of the peak, for one and two threads. The environment variable SHAPES
(space-separated m,n,k[,layout] items, e.g. SHAPES="2048,2048,2048 16,8192,2048") replaces the
default shapes; METRIC=cpu compares GFLOP/s per CPU second (the benchmark's "CPU time" figure: on a
shared machine it does not count time the threads spent descheduled) instead of per wall second.
"""
import os
import statistics
import subprocess
import sys

if len(sys.argv) not in (3, 5):
    sys.exit(__doc__)
names = sys.argv[3:5] if len(sys.argv) == 5 else ["base", "new"]
bins = {names[0]: sys.argv[1], names[1]: sys.argv[2]}
base, new = names
shapes = [f"{m},8192,2048" for m in (1, 4, 8, 16, 24, 32)] + ["16,2048,8192", "16,8192,2048,nn"]
if os.environ.get("SHAPES"):
    shapes = os.environ["SHAPES"].split()


def shape(b, s, t):
    out = subprocess.run([b, "--threads", str(t), "--shape", s], capture_output=True, text=True).stdout
    field = 8 if os.environ.get("METRIC") == "cpu" else 4
    v = [float(l.split()[field].rstrip(")")) for l in out.splitlines() if l.startswith("shape")]
    return statistics.median(v)


def peak(t):
    out = subprocess.run([bins[new], "--threads", str(t), "--squares-only", "--squares", "256", "--out", "/tmp/gemmout"], capture_output=True, text=True).stdout
    for l in out.splitlines():
        if l.startswith(f"threads {t}: vdpbf16ps peak"):
            return float(l.split()[4])


res = {}
for rnd in range(3):
    for t in (1, 2):
        pk = peak(t)
        res.setdefault((t, "peak"), []).append(pk)
        for s in shapes:
            for name, b in bins.items():
                res.setdefault((t, s, name), []).append(shape(b, s, t))
print(f"GEMM {new} ({bins[new]}) vs {base} ({bins[base]}), GFLOP/s; each cell the median of 3 rounds")
print("(each round: the median of 3 benchmark calls per binary, binaries interleaved per shape).")
print("'peak' is the vdpbf16ps peak measured in each round. Shapes m,n,k; default layout nt (B K-contiguous,")
print("the forward X·Wᵀ), nn = B row-major.")
for t in (1, 2):
    pk = statistics.median(res[(t, "peak")])
    print(f"\nthreads {t}: peak {pk:.0f} GFLOP/s (rounds: {', '.join(f'{x:.0f}' for x in res[(t, 'peak')])})")
    print(f"  {'shape':<18} {base:>8} {new:>8} {'ratio':>6} {new + ' % peak':>13}")
    for s in shapes:
        a = statistics.median(res[(t, s, base)])
        b = statistics.median(res[(t, s, new)])
        ratios = [y / x for x, y in zip(res[(t, s, base)], res[(t, s, new)])]
        print(f"  {s:<18} {a:8.1f} {b:8.1f} {b/a:5.2f}x {100*b/pk:12.1f}%   (per-round ratios {min(ratios):.2f}-{max(ratios):.2f})")
