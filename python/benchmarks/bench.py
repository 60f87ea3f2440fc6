"""Benchmarks of the unitfp8 Python package (not a test; prints medians and ratios).

1. Python call overhead per op on small tensors (µs): numpy API, torch ops, raw ctypes.
2. UnitScaledLinear forward+backward (batch 4096, fan_in 2048, fan_out 8192; f32 and bf16
   activations): the torch module vs the same six library calls made straight through ctypes
   (buffers allocated once), vs PyTorch's bf16 nn.Linear forward+backward, on the same threads;
   with the default (exact) GEMM kernel and, where the CPU has AMX, the opt-in ``amx-bf16`` kernel.
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

    wt = mod.weight.detach()
    alpha = unitfp8.default_alpha(fan_in)

    def c_calls(xs: torch.Tensor, dys: torch.Tensor, fresh: bool):
        """The module's six library calls made straight through ctypes on ``xs``/``dys`` (f32 or
        bf16; y and dx in that type, dW f32). ``fresh``: the outputs come from ``torch.empty`` at
        every call, as the module allocates them; else they are allocated once and reused."""
        io = _lib.F32 if xs.dtype == torch.float32 else _lib.BF16

        def outputs():
            u8, e = torch.uint8, torch.empty
            return (e(batch, fan_in, dtype=u8), e(fan_out, fan_in, dtype=u8), e(batch, fan_out, dtype=xs.dtype),
                    e(batch, fan_out, dtype=u8), e(batch, fan_in, dtype=xs.dtype), e(fan_out, fan_in))

        once = None if fresh else outputs()

        def run():
            x8, w8, y, dy8, dx, dw = outputs() if fresh else once
            P = torch.Tensor.data_ptr
            assert _lib.cast(P(xs), io, P(x8), _lib.E4M3, xs.numel(), 1.0, 0, 0, None) == 0
            assert _lib.cast(P(wt), _lib.F32, P(w8), _lib.E4M3, wt.numel(), 1.0, 0, 0, None) == 0
            assert _lib.linear_forward(batch, fan_in, fan_out, alpha, P(x8), P(w8), P(y), io) == 0
            assert _lib.cast(P(dys), io, P(dy8), _lib.E5M2, dys.numel(), 1.0, 0, 0, None) == 0
            assert _lib.linear_backward_data(batch, fan_in, fan_out, alpha, P(dy8), P(w8), 0.0, P(dx), io) == 0
            dwp = ctypes.cast(P(dw), _lib._fp)
            assert _lib.linear_backward_weight(batch, fan_in, fan_out, alpha, P(dy8), P(x8), 0.0, dwp) == 0

        run.outputs = once
        return run

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

    xd = x.detach()
    # the baselines do the module's work: the same y, dx and dW, bit for bit (default kernel)
    for module_step, xs, dys, xg in ((torch_module, xd, dy, x), (torch_module_bf16, xd.bfloat16(), dyb, xb16)):
        check = c_calls(xs, dys, False)
        check()
        module_step()
        with torch.no_grad():
            y_mod = mod(xs)
        _, _, y_c, _, dx_c, dw_c = check.outputs
        assert torch.equal(y_c, y_mod) and torch.equal(dx_c, xg.grad) and torch.equal(dw_c, mod.weight.grad)
    fns = {"PyTorch bf16 nn.Linear": torch_bf16}
    for kern in kernels():
        fns[f"module, f32 x and dy ({kern})"] = with_kernel(kern, torch_module)
        fns[f"C calls, f32, outputs reused ({kern})"] = with_kernel(kern, c_calls(xd, dy, False))
        fns[f"C calls, f32, fresh outputs ({kern})"] = with_kernel(kern, c_calls(xd, dy, True))
        fns[f"module, bf16 x and dy ({kern})"] = with_kernel(kern, torch_module_bf16)
        fns[f"C calls, bf16, outputs reused ({kern})"] = with_kernel(kern, c_calls(xd.bfloat16(), dyb, False))
        fns[f"C calls, bf16, fresh outputs ({kern})"] = with_kernel(kern, c_calls(xd.bfloat16(), dyb, True))
    res = interleaved(fns, reps)
    print(f"\n## linear forward+backward {batch}x{fan_in}->{fan_out} (median s, interleaved)")
    for k, v in res.items():
        print(f"| {k} | {v:.3f} s | {6 * batch * fan_in * fan_out / v / 1e9:.0f} GFLOP/s |")
    b = res["PyTorch bf16 nn.Linear"]
    for kern in kernels():
        for t in ("f32", "bf16"):
            m = res[f"module, {t} x and dy ({kern})"]
            reused, fresh = res[f"C calls, {t}, outputs reused ({kern})"], res[f"C calls, {t}, fresh outputs ({kern})"]
            print(f"{kern}, {t} x and dy: module / C calls = {m / reused:.3f}x with outputs reused, "
                  f"{m / fresh:.3f}x with fresh outputs (goal <= 1.1x); "
                  f"PyTorch bf16 nn.Linear / module = {b / m:.2f}x (goal >= 1.1x)")


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
