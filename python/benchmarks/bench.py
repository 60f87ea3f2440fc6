"""Benchmarks of the unitfp8 Python package (not a test; prints medians and ratios).

1. Python call overhead per op on small tensors (µs): numpy API, torch ops, raw ctypes.
2. UnitScaledLinear forward+backward (batch 4096, fan_in 2048, fan_out 8192, f32 activations):
   the torch module vs the same six library calls made straight through ctypes (buffers
   allocated once), vs PyTorch's bf16 nn.Linear forward+backward, on the same threads; with the
   default (exact) GEMM kernel and, where the CPU has AMX, the opt-in ``amx-bf16`` kernel.
3. One training step of the examples/torch_mus model: μS-FP8 (unitfp8, each GEMM kernel) vs
   μS-bf16 and SP-bf16 (PyTorch autocast).

Repetitions of the compared variants are interleaved and medians are taken, so a shared machine
slows all of them alike; quote the ratios. Usage:
    python python/benchmarks/bench.py [--threads 2] [--reps 5] [--skip-linear] [--skip-step]
"""

import argparse
import ctypes
import os
import statistics
import sys
import time

import numpy as np
import torch

import unitfp8
import unitfp8.torch as ut
from unitfp8 import _lib
from unitfp8.torch import _ops
from unitfp8.torch.nn import UnitScaledLinear


def kernels() -> list:
    """The GEMM kernels to compare: the default one, and ``amx-bf16`` where this CPU runs it."""
    default = unitfp8.gemm_kernel()
    try:
        unitfp8.set_gemm_kernel("amx-bf16")
        return [default, "amx-bf16"]
    except unitfp8.UnsupportedError:
        return [default]
    finally:
        unitfp8.set_gemm_kernel(None)


def with_kernel(name: str, fn):
    """``fn`` run with GEMM kernel ``name`` (the process-wide setting, restored afterwards)."""

    def run():
        unitfp8.set_gemm_kernel(name)
        try:
            fn()
        finally:
            unitfp8.set_gemm_kernel(None)

    return run


def interleaved(fns: dict, reps: int, inner: int = 1) -> dict:
    """Median seconds per call of each function, repetitions interleaved (the order rotates each
    repetition, so no variant always runs right after the same other one)."""
    times = {k: [] for k in fns}
    for f in fns.values():  # warm-up
        f()
    keys = list(fns)
    for rep in range(reps):
        for k in keys[rep % len(keys):] + keys[: rep % len(keys)]:
            f = fns[k]
            t0 = time.perf_counter()
            for _ in range(inner):
                f()
            times[k].append((time.perf_counter() - t0) / inner)
    return {k: statistics.median(v) for k, v in times.items()}


def overhead(reps):
    x = np.random.randn(64).astype(np.float32)
    y8 = np.empty(64, unitfp8.float8_e4m3fn)
    xt = torch.from_numpy(x)
    a8 = np.random.randn(8, 8).astype(unitfp8.float8_e4m3fn)
    at = torch.from_numpy(a8.view(np.uint8)).view(torch.float8_e4m3fn)
    f = x.copy()
    ft = torch.from_numpy(f)
    raw = lambda: _lib.cast(x.ctypes.data, 0, y8.ctypes.data, 3, 64, 1.0, 0, 0, None)  # noqa: E731
    fns = {
        "ctypes unitfp8_cast (64 elements)": raw,
        "unitfp8.cast (numpy, 64)": lambda: unitfp8.cast(x, unitfp8.float8_e4m3fn, out=y8),
        "unitfp8.residual_mix (numpy, 64)": lambda: unitfp8.residual_mix(x, f, 0.4),
        "unitfp8.gemm (numpy, 8x8x8)": lambda: unitfp8.gemm(a8, a8),
        "unitfp8.torch.cast (64)": lambda: ut.cast(xt, torch.float8_e4m3fn),
        "unitfp8.torch.residual_mix (64)": lambda: ut.residual_mix(xt, ft, 0.4),
        "torch.ops.unitfp8.linear_forward (8x8x8)": lambda: _ops.linear_forward(at, at, 0.5, torch.float32),
        "torch x.to(float8_e4m3fn) (64), for scale": lambda: xt.to(torch.float8_e4m3fn),
    }
    res = interleaved(fns, reps, inner=2000)
    print("\n## Python call overhead per call (µs, median of interleaved runs)")
    for k, v in res.items():
        print(f"| {k} | {v * 1e6:.1f} |")


def linear(reps, batch=4096, fan_in=2048, fan_out=8192):
    torch.manual_seed(0)
    mod = UnitScaledLinear(fan_in, fan_out)
    x = torch.randn(batch, fan_in, requires_grad=True)
    dy = torch.randn(batch, fan_out)

    def torch_module():
        x.grad = None
        mod.weight.grad = None
        y = mod(x)
        y.backward(dy)

    # the same six calls straight through the C ABI, buffers allocated once
    xn, wn, dyn = x.detach().numpy(), mod.weight.detach().numpy(), dy.numpy()
    x8 = np.empty((batch, fan_in), np.uint8)
    w8 = np.empty((fan_out, fan_in), np.uint8)
    dy8 = np.empty((batch, fan_out), np.uint8)
    y = np.empty((batch, fan_out), np.float32)
    dx = np.empty((batch, fan_in), np.float32)
    dw = np.empty((fan_out, fan_in), np.float32)
    alpha = unitfp8.default_alpha(fan_in)
    P = lambda a: a.ctypes.data  # noqa: E731

    def raw_ctypes():
        assert _lib.cast(P(xn), 0, P(x8), 3, xn.size, 1.0, 0, 0, None) == 0
        assert _lib.cast(P(wn), 0, P(w8), 3, wn.size, 1.0, 0, 0, None) == 0
        assert _lib.linear_forward(batch, fan_in, fan_out, alpha, P(x8), P(w8), P(y), 0) == 0
        assert _lib.cast(P(dyn), 0, P(dy8), 4, dyn.size, 1.0, 0, 0, None) == 0
        assert _lib.linear_backward_data(batch, fan_in, fan_out, alpha, P(dy8), P(w8), 0.0, P(dx), 0) == 0
        assert _lib.linear_backward_weight(batch, fan_in, fan_out, alpha, P(dy8), P(x8), 0.0, dw.ctypes.data_as(_lib._fp)) == 0

    lin = torch.nn.Linear(fan_in, fan_out, bias=False).bfloat16()
    xb = x.detach().bfloat16().requires_grad_(True)
    dyb = dy.bfloat16()

    def torch_bf16():
        xb.grad = None
        lin.weight.grad = None
        lin(xb).backward(dyb)

    # The module on bf16 activations and output gradients (as PyTorch's bf16 layer gets them;
    # the master weight and its gradient stay f32).
    xb16 = x.detach().bfloat16().requires_grad_(True)

    def torch_module_bf16():
        xb16.grad = None
        mod.weight.grad = None
        mod(xb16).backward(dyb)

    fns = {"PyTorch bf16 nn.Linear": torch_bf16}
    for kern in kernels():
        fns[f"unitfp8 UnitScaledLinear (torch, {kern})"] = with_kernel(kern, torch_module)
        fns[f"same calls via ctypes ({kern})"] = with_kernel(kern, raw_ctypes)
        fns[f"unitfp8 UnitScaledLinear (torch, bf16 x and dy, {kern})"] = with_kernel(kern, torch_module_bf16)
    res = interleaved(fns, reps)
    print(f"\n## linear forward+backward {batch}x{fan_in}->{fan_out} (median s, interleaved)")
    for k, v in res.items():
        print(f"| {k} | {v:.3f} s | {6 * batch * fan_in * fan_out / v / 1e9:.0f} GFLOP/s |")
    b = res["PyTorch bf16 nn.Linear"]
    for kern in kernels():
        m, r = res[f"unitfp8 UnitScaledLinear (torch, {kern})"], res[f"same calls via ctypes ({kern})"]
        m16 = res[f"unitfp8 UnitScaledLinear (torch, bf16 x and dy, {kern})"]
        print(f"{kern}: module / ctypes = {m / r:.3f}x (goal <= 1.1x); "
              f"bf16 nn.Linear / module = {b / m:.2f}x, / module on bf16 x and dy = {b / m16:.2f}x "
              f"(goal >= 1.1x)")


def train_step(reps):
    sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "examples", "torch_mus"))
    import train as ex  # the example's model

    data = ex.Data(100_000, 1)
    xy = data.batch(0, 16, 64, 1)
    fns = {}
    for variant in ("mus_fp8", "mus_bf16", "sp_bf16"):
        torch.manual_seed(0)
        model = ex.CharTransformer(data.vocab, 256, 4, 4, 64, variant, 0.4)
        opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
        amp = variant.endswith("bf16")

        def step(model=model, opt=opt, amp=amp):
            with torch.autocast("cpu", dtype=torch.bfloat16, enabled=amp):
                logits = model(xy[:, :-1])
            loss = torch.nn.functional.cross_entropy(logits.float().reshape(-1, data.vocab), xy[:, 1:].reshape(-1))
            opt.zero_grad()
            loss.backward()
            opt.step()

        if variant == "mus_fp8":
            for kern in kernels():
                fns[f"mus_fp8 ({kern})"] = with_kernel(kern, step)
        else:
            fns[variant] = step
    res = interleaved(fns, reps, inner=3)
    print("\n## one training step of the example model (width 256, 4 layers, ctx 64, batch 16; median ms)")
    first = next(k for k in res if k.startswith("mus_fp8"))
    for k, v in res.items():
        print(f"| {k} | {v * 1e3:.1f} ms | {v / res[first]:.2f}x the first FP8 step |")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--skip-linear", action="store_true")
    ap.add_argument("--skip-step", action="store_true")
    ap.add_argument("--skip-overhead", action="store_true")
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    unitfp8.set_num_threads(a.threads)
    print(f"unitfp8 {unitfp8.version()} ({unitfp8.backend()}), torch {torch.__version__}, "
          f"{a.threads} threads (torch and unitfp8), {os.cpu_count()} CPUs, load {os.getloadavg()[0]:.1f}")
    if not a.skip_overhead:
        overhead(a.reps)
    if not a.skip_linear:
        linear(a.reps)
    if not a.skip_step:
        train_step(a.reps)


if __name__ == "__main__":
    main()
