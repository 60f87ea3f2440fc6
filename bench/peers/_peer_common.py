"""Shared timing loop of the Python peers of the unitfp8 microbenchmark.

Protocol: the benchmark runs `PYTHON <peer>.py '<json config>'`; the config holds
{"kernels": [ids], "sizes": [{"label", "n", "rounds", "target_s"}], "threads": [..], "tau": x}.
The script prints one JSON object on stdout:
{"peer", "available", "version", "note", "results": [{"kernel", "size", "n", "threads",
 "median_s", "min_s", "max_s", "q1_s", "q3_s", "copy_median_s", "pct_copy"}]}.
Times are per call. Each round times the kernel and a copy of the same number of bytes
(read + write) back to back, alternating their order, so that noise hits both.
"""

import json
import math
import sys
import time

# Bytes read and written per element (must match bench/src/kernels.rs).
BYTES = {
    "f32_e4m3": (4, 1),
    "f32_e5m2": (4, 1),
    "bf16_e4m3": (2, 1),
    "f32_e4m3_sr": (4, 1),
    "e4m3_f32": (1, 4),
    "e4m3_bf16": (1, 2),
    "f32_bf16": (4, 2),
    "cast_transpose_f32_e4m3": (4, 2),
    "mix_f32_e4m3": (8, 5),
    "mix_bf16": (4, 2),
    "mix_bf16_e4m3": (4, 3),
    "mix_f16_e4m3": (4, 3),
    "mix_bwd_f32_e5m2": (4, 9),
    "mix_bwd_bf16_e5m2": (2, 5),
}


def quantile(v, p):
    v = sorted(v)
    x = p * (len(v) - 1)
    lo, hi = math.floor(x), math.ceil(x)
    return v[lo] + (v[hi] - v[lo]) * (x - lo)


def per_call(fn, iters):
    t = time.perf_counter()
    for _ in range(iters):
        fn()
    return (time.perf_counter() - t) / iters


def calibrate(fn, target_s):
    fn()  # warm-up (and first-touch of anything it allocates)
    if target_s <= 0:
        return 1
    one = per_call(fn, 1)
    return max(1, min(100000, int(target_s / max(one, 1e-9))))


def measure(kernel_fn, copy_fn, rounds, target_s):
    ki = calibrate(kernel_fn, target_s)
    ci = calibrate(copy_fn, target_s)
    ks, cs, ratios = [], [], []
    for r in range(rounds):
        if r % 2 == 0:
            c = per_call(copy_fn, ci)
            k = per_call(kernel_fn, ki)
        else:
            k = per_call(kernel_fn, ki)
            c = per_call(copy_fn, ci)
        ks.append(k)
        cs.append(c)
        ratios.append(c / k)
    return {
        "median_s": quantile(ks, 0.5),
        "min_s": min(ks),
        "max_s": max(ks),
        "q1_s": quantile(ks, 0.25),
        "q3_s": quantile(ks, 0.75),
        "copy_median_s": quantile(cs, 0.5),
        "pct_copy": 100.0 * quantile(ratios, 0.5),
    }


def emit(obj):
    json.dump(obj, sys.stdout)
    sys.stdout.write("\n")
    sys.stdout.flush()


def config():
    return json.loads(sys.argv[1])


def note(msg):
    print(msg, file=sys.stderr, flush=True)
