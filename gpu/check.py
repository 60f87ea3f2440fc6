#!/usr/bin/env python3
"""GPU checks and benchmarks of unitfp8's CUDA back end, through its C ABI, with PyTorch.

Sections (each runs on its own; run_checks.sh runs each in its own process under a timeout so a
hung kernel cannot take the others down):

  info        device, driver status, library version
  elementwise casts, cast-transpose, residual mix fwd/bwd: bit-exact against the CPU entry
              points of the same library, on fresh random data (seed printed), poisoned outputs
  gemm        FP8 GEMM (every kernel: wgmma, mma.sync, naive) and the linear layer: relative
              Frobenius error against float64, and against torch._scaled_mm on the same inputs
  bench       CUDA-event timings: device copy bandwidth, casts/mixes vs PyTorch, GEMM vs
              torch._scaled_mm (cuBLASLt) and bf16 torch.matmul

Usage: check.py SECTION [--lib target/release/libunitfp8.so] [--out DIR] [--seed N] [--quick] [--tiny]
(--tiny: bench sizes for the SIMT emulator's smoke run in CI, where timings mean nothing.)
Writes DIR/gpu_SECTION.json and prints a table; exits 1 when a correctness check fails, 2 when
the section could not run at all.
"""
import argparse
import ctypes
import json
import math
import os
import platform
import sys
import time
import traceback

import numpy as np

F32, BF16, F16, E4M3, E5M2 = 0, 1, 2, 3, 4
TYPES = {F32: "f32", BF16: "bf16", F16: "f16", E4M3: "e4m3", E5M2: "e5m2"}
SIZE = {F32: 4, BF16: 2, F16: 2, E4M3: 1, E5M2: 1}
NP_BITS = {4: np.uint32, 2: np.uint16, 1: np.uint8}
SAT, NEAREST, STOCH = 0, 1, 2
GEMM_KERNELS = {"auto": 0, "wgmma": 1, "mma_sync": 2, "naive": 3}
TINY = False  # --tiny

VP = ctypes.c_void_p
U32, U64, SZ, SSZ, F = ctypes.c_uint32, ctypes.c_uint64, ctypes.c_size_t, ctypes.c_ssize_t, ctypes.c_float
I32 = ctypes.c_int32


def load_lib(path):
    lib = ctypes.CDLL(os.path.abspath(path))
    sig = {
        "unitfp8_version": ([], ctypes.c_char_p),
        "unitfp8_cuda_available": ([], I32),
        "unitfp8_cuda_status_string": ([I32], ctypes.c_char_p),
        "unitfp8_cuda_last_error": ([], ctypes.c_char_p),
        "unitfp8_cuda_set_gemm_kernel": ([U32], I32),
        "unitfp8_cast": ([VP, U32, VP, U32, SZ, F, U32, U64, VP], I32),
        "unitfp8_cuda_cast": ([VP, U32, VP, U32, SZ, F, U32, U64, VP, VP], I32),
        "unitfp8_cast_transpose": ([VP, U32, SZ, SZ, SZ, VP, SZ, VP, SZ, U32, F, U32, U64, VP], I32),
        "unitfp8_cuda_cast_transpose": ([VP, U32, SZ, SZ, SZ, VP, SZ, VP, SZ, U32, F, U32, U64, VP, VP], I32),
        "unitfp8_residual_mix": ([VP, VP, VP, U32, SZ, F, VP, U32, U32, U64], I32),
        "unitfp8_cuda_residual_mix": ([VP, VP, VP, U32, SZ, F, VP, U32, U32, U64, VP], I32),
        "unitfp8_residual_mix_backward": ([VP, VP, VP, U32, SZ, F, I32, VP, U32, U32, U64], I32),
        "unitfp8_cuda_residual_mix_backward": ([VP, VP, VP, U32, SZ, F, I32, VP, U32, U32, U64, VP], I32),
        "unitfp8_cuda_gemm": ([SZ, SZ, SZ, F, VP, U32, SSZ, SSZ, VP, U32, SSZ, SSZ, F, VP, U32, SSZ, SSZ, VP], I32),
        "unitfp8_cuda_linear_forward": ([SZ, SZ, SZ, F, VP, VP, VP, U32, VP], I32),
        "unitfp8_cuda_linear_backward_data": ([SZ, SZ, SZ, F, VP, VP, F, VP, U32, VP], I32),
        "unitfp8_cuda_linear_backward_weight": ([SZ, SZ, SZ, F, VP, VP, F, VP, VP], I32),
    }
    for name, (args, res) in sig.items():
        fn = getattr(lib, name)
        fn.argtypes = args
        fn.restype = res
    return lib


class Ctx:
    def __init__(self, args):
        self.args = args
        self.lib = load_lib(args.lib)
        self.results = []  # dicts: name, ok (bool or None for info/bench), detail
        self.failures = 0

    def status(self, code):
        return "%d (%s; %s)" % (code, self.lib.unitfp8_cuda_status_string(code).decode(),
                               self.lib.unitfp8_cuda_last_error().decode())

    def check_call(self, code, what):
        if code != 0:
            raise RuntimeError("%s returned %s" % (what, self.status(code)))

    def record(self, name, ok, **detail):
        self.results.append(dict(name=name, ok=ok, **detail))
        if ok is False:
            self.failures += 1
        mark = {True: "ok  ", False: "FAIL", None: "    "}[ok]
        extra = " ".join("%s=%s" % (k, _fmt(v)) for k, v in detail.items())
        print("%s %-58s %s" % (mark, name, extra), flush=True)


def _fmt(v):
    if isinstance(v, float):
        return "%.4g" % v
    return str(v)


# ----------------------------------------------------------------------------------------------
# CPU reference through the same library (numpy host buffers).

def cpu_cast(lib, src_bits, st, dt, scale, rounding, seed):
    n = src_bits.size
    dst = np.full(n, 0x5A, dtype=NP_BITS[SIZE[dt]])
    amax = np.zeros(1, dtype=np.float32)
    s = lib.unitfp8_cast(src_bits.ctypes.data, st, dst.ctypes.data, dt, n, scale, rounding, seed, amax.ctypes.data)
    if s != 0:
        raise RuntimeError("unitfp8_cast failed: %d" % s)
    return dst, amax.view(np.uint32)[0]


def random_bits(rng, t, n):
    """Random raw bits of type t mixing uniform bit patterns, scaled normals, FP8 rounding
    boundaries (midpoints: ties), and specials."""
    size = SIZE[t]
    if size == 1:
        return rng.integers(0, 256, n, dtype=np.uint8)
    k = n // 4
    parts = []
    if size == 4:
        parts.append(rng.integers(0, 2**32, k, dtype=np.uint64).astype(np.uint32))
        x = (rng.standard_normal(k) * np.exp2(rng.integers(-24, 20, k))).astype(np.float32)
        parts.append(x.view(np.uint32))
        # FP8 neighbours and exact midpoints, both formats, times small perturbations.
        e4 = _fp8_values(0x7E)
        e5 = _fp8_values(0x7B, e5m2=True)
        vals = np.concatenate([e4, e5])
        i = rng.integers(0, vals.size - 1, k)
        a, b = vals[i], vals[np.minimum(i + 1, vals.size - 1)]
        mid = ((a.astype(np.float64) + b) / 2).astype(np.float32)
        sign = np.where(rng.integers(0, 2, k) == 1, -1, 1).astype(np.float32)
        pick = rng.integers(0, 3, k)
        y = np.where(pick == 0, mid, np.where(pick == 1, a, np.nextafter(mid, np.float32(np.inf))))
        parts.append((y * sign).astype(np.float32).view(np.uint32))
        specials = np.array([0.0, -0.0, np.inf, -np.inf, np.nan, 448, 464, 465, -465, 480, 57344,
                             61439, 61440, 1e30, 2.0**-9, 2.0**-10, 3 * 2.0**-11, 2.0**-16, 2.0**-17,
                             1.5 * 2.0**-17, 1e-40, -1e-45, 65504, 65520, 3.4e38], dtype=np.float32)
        rest = n - 3 * k
        parts.append(specials.view(np.uint32)[rng.integers(0, specials.size, rest)])
        nanp = rng.integers(0, 2**22, 8).astype(np.uint32) | np.uint32(0x7F800001)
        out = np.concatenate(parts)
        out[rng.integers(0, n, min(8, n))] = nanp[: min(8, n)]
    else:
        parts.append(rng.integers(0, 2**16, 2 * k, dtype=np.uint32).astype(np.uint16))
        f = random_bits(rng, F32, n - 2 * k).view(np.float32)
        if t == BF16:
            parts.append((f.view(np.uint32) >> 16).astype(np.uint16))
        else:
            with np.errstate(over="ignore", invalid="ignore"):
                parts.append(f.astype(np.float16).view(np.uint16))
        out = np.concatenate(parts)
    rng.shuffle(out)
    return out[:n]


def _fp8_values(max_code, e5m2=False):
    mb, bias = (2, 15) if e5m2 else (3, 7)
    codes = np.arange(0, max_code + 1)
    e, m = codes >> mb, codes & ((1 << mb) - 1)
    v = np.where(e == 0, m * 2.0 ** (1 - bias - mb), (1 + m / 2.0**mb) * 2.0 ** (e - bias))
    return v.astype(np.float32)


# ----------------------------------------------------------------------------------------------
# torch helpers

def torch_mod():
    import torch
    return torch


def dev_bits(torch, host_bits):
    """A device tensor holding these raw bits (int dtype of the same width)."""
    tdt = {1: torch.uint8, 2: torch.int16, 4: torch.int32}[host_bits.itemsize]
    signed = host_bits.view({1: np.uint8, 2: np.int16, 4: np.int32}[host_bits.itemsize])
    return torch.from_numpy(np.ascontiguousarray(signed)).to("cuda")


def host_bits(t, size):
    return t.cpu().numpy().view(NP_BITS[size])


def poison(torch, n, size, extra=0):
    tdt = {1: torch.uint8, 2: torch.int16, 4: torch.int32}[size]
    x = torch.empty(n + extra, dtype=tdt, device="cuda")
    x.view(torch.uint8).fill_(0xA5)
    return x


def stream_ptr(torch):
    return ctypes.c_void_p(torch.cuda.current_stream().cuda_stream)


# ----------------------------------------------------------------------------------------------
# Sections

def section_info(c):
    lib = c.lib
    st = lib.unitfp8_cuda_available()
    info = dict(library=lib.unitfp8_version().decode(), cuda_available=c.status(st), python=sys.version.split()[0],
                host=platform.node())
    try:
        torch = torch_mod()
        info.update(torch=torch.__version__, cuda=torch.version.cuda,
                    device=torch.cuda.get_device_name() if torch.cuda.is_available() else None)
        if torch.cuda.is_available():
            p = torch.cuda.get_device_properties(0)
            info.update(cc="%d.%d" % (p.major, p.minor), sms=p.multi_processor_count,
                        memory_gib=round(p.total_memory / 2**30, 1))
    except Exception as e:  # noqa: BLE001
        info["torch_error"] = repr(e)
    c.record("info", st == 0, **info)


def elementwise_cast(c, torch, rng, seed_base):
    lib = c.lib
    sizes = [1, 3, 4, 5, 1000, 65537] if c.args.quick else [1, 3, 4, 5, 1000, 65537, (1 << 20) + 3]
    scales = [1.0, 0.5, 3.7, 2.0**-10]
    for st in TYPES:
        for dt in TYPES:
            modes = [SAT, NEAREST] + ([STOCH] if dt in (E4M3, E5M2) else [])
            bad = 0
            calls = 0
            first = None
            for n in sizes:
                src = random_bits(rng, st, n + 1)
                for off in (0, 1):  # offset 1: misaligned for the 4-element vector path
                    s_host = np.ascontiguousarray(src[off:off + n])
                    s_dev = dev_bits(torch, src)
                    for mode in modes:
                        scale = scales[rng.integers(0, len(scales))]
                        seed = int(rng.integers(0, 2**63)) ^ seed_base
                        want, want_amax = cpu_cast(lib, s_host, st, dt, scale, mode, seed)
                        d_dev = poison(torch, n, SIZE[dt], extra=1)
                        amax = torch.full((1,), -1.0, dtype=torch.float32, device="cuda")
                        sp = s_dev.data_ptr() + off * SIZE[st]
                        dp = d_dev.data_ptr() + off * SIZE[dt]
                        code = lib.unitfp8_cuda_cast(sp, st, dp, dt, n, scale, mode, seed, amax.data_ptr(), stream_ptr(torch))
                        c.check_call(code, "unitfp8_cuda_cast")
                        torch.cuda.synchronize()
                        got = host_bits(d_dev, SIZE[dt])
                        got_all = got.view(np.uint8)
                        body = got_all[off * SIZE[dt]:(off + n) * SIZE[dt]].view(NP_BITS[SIZE[dt]])
                        guard = np.concatenate([got_all[:off * SIZE[dt]], got_all[(off + n) * SIZE[dt]:]])
                        got_amax = host_bits(amax, 4)[0]
                        calls += 1
                        mism = int(np.count_nonzero(body != want)) + int(got_amax != want_amax) + int(np.count_nonzero(guard != 0xA5))
                        if mism and first is None:
                            i = int(np.flatnonzero(body != want)[0]) if np.any(body != want) else -1
                            first = dict(n=n, off=off, mode=mode, scale=scale, seed=seed, index=i,
                                         src=hex(int(s_host[i])) if i >= 0 else None,
                                         want=hex(int(want[i])) if i >= 0 else None,
                                         got=hex(int(body[i])) if i >= 0 else None,
                                         amax=(hex(int(want_amax)), hex(int(got_amax))))
                        bad += mism
            c.record("cast %s->%s" % (TYPES[st], TYPES[dt]), bad == 0, calls=calls, mismatches=bad,
                     **({"first": first} if first else {}))


def elementwise_cast_transpose(c, torch, rng, seed_base):
    lib = c.lib
    shapes = [(1, 1, 0, 0, 0), (63, 65, 3, 1, 2), (130, 257, 0, 5, 0), (64, 64, 0, 0, 0)]
    if not c.args.quick:
        shapes.append((1000, 2049, 7, 0, 11))
    for st in (F32, BF16, F16, E4M3):
        for dt in (E4M3, E5M2, BF16, F32):
            bad, calls, first = 0, 0, None
            for rows, cols, pad_s, pad_d, pad_t in shapes:
                ld_s, ld_d, ld_t = cols + pad_s, cols + pad_d, rows + pad_t
                src = random_bits(rng, st, rows * ld_s)
                s_dev = dev_bits(torch, src)
                for which in ("both", "dst", "dst_t", "none"):
                    for mode in ([SAT, NEAREST] + ([STOCH] if dt in (E4M3, E5M2) else [])):
                        scale = [1.0, 3.7][int(rng.integers(0, 2))]
                        seed = int(rng.integers(0, 2**63)) ^ seed_base
                        nd, nt = rows * ld_d, cols * ld_t
                        hd = np.full(nd, 0x5A, NP_BITS[SIZE[dt]])
                        ht = np.full(nt, 0x5A, NP_BITS[SIZE[dt]])
                        ha = np.zeros(1, np.float32)
                        use_d, use_t = which in ("both", "dst"), which in ("both", "dst_t")
                        code = lib.unitfp8_cast_transpose(src.ctypes.data, st, rows, cols, ld_s,
                                                          hd.ctypes.data if use_d else None, ld_d,
                                                          ht.ctypes.data if use_t else None, ld_t,
                                                          dt, scale, mode, seed, ha.ctypes.data)
                        c.check_call(code, "unitfp8_cast_transpose (CPU)")
                        dd = poison(torch, nd, SIZE[dt])
                        tt = poison(torch, nt, SIZE[dt])
                        am = torch.full((1,), -1.0, dtype=torch.float32, device="cuda")
                        code = lib.unitfp8_cuda_cast_transpose(s_dev.data_ptr(), st, rows, cols, ld_s,
                                                               dd.data_ptr() if use_d else None, ld_d,
                                                               tt.data_ptr() if use_t else None, ld_t,
                                                               dt, scale, mode, seed, am.data_ptr(), stream_ptr(torch))
                        c.check_call(code, "unitfp8_cuda_cast_transpose")
                        torch.cuda.synchronize()
                        calls += 1
                        gd, gt = host_bits(dd, SIZE[dt]), host_bits(tt, SIZE[dt])
                        poison_val = {1: 0xA5, 2: 0xA5A5, 4: 0xA5A5A5A5}[SIZE[dt]]
                        # Absent outputs must stay untouched; present ones equal the CPU's in the
                        # matrix and keep the poison in the padding.
                        md = np.count_nonzero(gd != (hd if use_d else poison_val)) if use_d else np.count_nonzero(gd != poison_val)
                        if use_d:
                            pad_mask = (np.arange(nd) % ld_d) >= cols
                            md = np.count_nonzero((gd != hd) & ~pad_mask) + np.count_nonzero(gd[pad_mask] != poison_val)
                        if use_t:
                            pad_mask = (np.arange(nt) % ld_t) >= rows
                            mt = np.count_nonzero((gt != ht) & ~pad_mask) + np.count_nonzero(gt[pad_mask] != poison_val)
                        else:
                            mt = np.count_nonzero(gt != poison_val)
                        ma = int(host_bits(am, 4)[0] != ha.view(np.uint32)[0])
                        m = int(md + mt + ma)
                        if m and first is None:
                            first = dict(shape=(rows, cols, ld_s, ld_d, ld_t), which=which, mode=mode, seed=seed,
                                         dst=int(md), dst_t=int(mt), amax=ma)
                        bad += m
            c.record("cast_transpose %s->%s" % (TYPES[st], TYPES[dt]), bad == 0, calls=calls, mismatches=bad,
                     **({"first": first} if first else {}))


def elementwise_mix(c, torch, rng, seed_base):
    lib = c.lib
    sizes = [1, 5, 1003, 65536 + 3] if c.args.quick else [1, 5, 1003, 65536 + 3, (1 << 20) + 1]
    for io in (F32, BF16, F16):
        sz = SIZE[io]
        for backward in (False, True):
            bad, calls, first, nan_pairs = 0, 0, None, 0
            for n in sizes:
                for q_type in (None, E4M3, E5M2):
                    for variant in ("plain", "inplace", "off1"):
                        tau = float(rng.choice([0.0, 1.0, 0.1, 0.4, float(rng.random())]))
                        mode = int(rng.integers(0, 3))
                        seed = int(rng.integers(0, 2**63)) ^ seed_base
                        accumulate = int(rng.integers(0, 2))
                        off = 1 if variant == "off1" else 0
                        x = random_bits(rng, io, n + off)
                        f = random_bits(rng, io, n + off)
                        o = random_bits(rng, io, n + off)  # grad_x before accumulation (bwd)
                        xs, fs, os_ = x[off:].copy(), f[off:].copy(), o[off:].copy()
                        # CPU
                        hq = np.full(n, 0x5A, np.uint8)
                        qa = hq.ctypes.data if q_type else None
                        qt = q_type if q_type else E4M3
                        if not backward:
                            ho = xs.copy() if variant == "inplace" else np.full(n, 0x5A, NP_BITS[sz])
                            code = lib.unitfp8_residual_mix(xs.ctypes.data, fs.ctypes.data, ho.ctypes.data, io, n, tau, qa, qt, mode, seed)
                            want = [ho]
                        else:
                            hgx = os_.copy()
                            hgf = xs.copy() if variant == "inplace" else np.full(n, 0x5A, NP_BITS[sz])
                            code = lib.unitfp8_residual_mix_backward(xs.ctypes.data, hgx.ctypes.data, hgf.ctypes.data, io, n, tau,
                                                                     accumulate, qa, qt, mode, seed)
                            want = [hgx, hgf]
                        c.check_call(code, "CPU residual mix")
                        if q_type:
                            want.append(hq)
                        # GPU
                        dx, df, do = dev_bits(torch, x), dev_bits(torch, f), dev_bits(torch, o)
                        dq = poison(torch, n, 1, extra=off)
                        qp = dq.data_ptr() + off if q_type else None
                        p = lambda t: t.data_ptr() + off * sz  # noqa: E731
                        if not backward:
                            dout = dx if variant == "inplace" else poison(torch, n, sz, extra=off)
                            code = lib.unitfp8_cuda_residual_mix(p(dx), p(df), p(dout), io, n, tau, qp, qt, mode, seed, stream_ptr(torch))
                            outs = [dout]
                        else:
                            dgf = dx if variant == "inplace" else poison(torch, n, sz, extra=off)
                            code = lib.unitfp8_cuda_residual_mix_backward(p(dx), p(do), p(dgf), io, n, tau, accumulate, qp, qt, mode,
                                                                          seed, stream_ptr(torch))
                            outs = [do, dgf]
                        c.check_call(code, "unitfp8_cuda_residual_mix%s" % ("_backward" if backward else ""))
                        torch.cuda.synchronize()
                        got = [host_bits(t, sz).view(np.uint8)[off * sz:(off + n) * sz].view(NP_BITS[sz]) for t in outs]
                        if q_type:
                            got.append(host_bits(dq, 1)[off:off + n])
                        calls += 1
                        m = 0
                        for g, w in zip(got, want):
                            diff = g != w
                            if np.any(diff) and (not backward or accumulate):
                                # Both addends NaN (a NaN operand, or infinity times a zero
                                # coefficient at tau = 0 or 1): which NaN (payload, sign) an x86
                                # add keeps depends on the operand order the compiler chose;
                                # counted apart. Forward x*a + f*b; backward grad_x + g*a.
                                a0, b0 = tau == 1.0, tau == 0.0
                                xf = _as_f32(xs, io)
                                x_nan = np.isnan(xf) | (np.isinf(xf) & a0)
                                if backward:
                                    both = x_nan & np.isnan(_as_f32(os_, io))
                                else:
                                    ff = _as_f32(fs, io)
                                    both = x_nan & (np.isnan(ff) | (np.isinf(ff) & b0))
                                nan_pairs += int(np.count_nonzero(diff & both))
                                diff &= ~both
                            m += int(np.count_nonzero(diff))
                        if m and first is None:
                            k = next(i for i, (g, w) in enumerate(zip(got, want)) if np.any(g != w))
                            i = int(np.flatnonzero(got[k] != want[k])[0])
                            first = dict(n=n, q=q_type, variant=variant, tau=tau, mode=mode, seed=seed, acc=accumulate,
                                         output=k, index=i, x=hex(int(xs[i])), f=hex(int(fs[i])),
                                         want=hex(int(want[k][i])), got=hex(int(got[k][i])))
                        bad += m
            c.record("residual_mix%s %s" % ("_backward" if backward else "", TYPES[io]), bad == 0, calls=calls,
                     mismatches=bad, both_nan_payload_diffs=nan_pairs, **({"first": first} if first else {}))


def _as_f32(bits, t):
    if t == F32:
        return bits.view(np.float32)
    if t == BF16:
        return (bits.astype(np.uint32) << 16).view(np.float32)
    return bits.view(np.float16).astype(np.float32)


def section_elementwise(c):
    torch = torch_mod()
    seed = c.args.seed if c.args.seed is not None else int(time.time() * 1e6) & (2**63 - 1)
    print("elementwise: seed %d" % seed, flush=True)
    c.record("elementwise seed", None, seed=seed)
    rng = np.random.default_rng(seed)
    for fn in (elementwise_cast, elementwise_cast_transpose, elementwise_mix):
        try:
            fn(c, torch, rng, seed)
        except Exception as e:  # noqa: BLE001
            traceback.print_exc()
            c.record(fn.__name__, False, error=repr(e))


def rel_fro(out, ref):
    out = out.double()
    return float(torch_mod().linalg.norm(out - ref) / torch_mod().linalg.norm(ref))


def fp8_randn(torch, shape, dtype, scale=1.0):
    return (torch.randn(shape, device="cuda") * scale).to(dtype)


def our_gemm(c, torch, a, b, out, alpha=1.0, beta=0.0, a_type=E4M3, b_type=E4M3, c_type=F32):
    """out[m, n] = alpha * a[m, k] @ b[n, k]^T + beta * out (all row-major)."""
    m, k = a.shape
    n = b.shape[0]
    code = c.lib.unitfp8_cuda_gemm(m, n, k, alpha, a.data_ptr(), a_type, a.stride(0), 1,
                                   b.data_ptr(), b_type, 1, b.stride(0), beta,
                                   out.data_ptr(), c_type, out.stride(0), 1, stream_ptr(torch))
    return code


def section_gemm(c):
    torch = torch_mod()
    lib = c.lib
    seed = c.args.seed if c.args.seed is not None else int(time.time() * 1e6) & (2**31 - 1)
    torch.manual_seed(seed)
    c.record("gemm seed", None, seed=seed)
    cc = torch.cuda.get_device_capability()
    kernels = ["auto", "naive", "mma_sync"] + (["wgmma"] if cc == (9, 0) else [])
    e4, e5 = torch.float8_e4m3fn, torch.float8_e5m2
    one = torch.ones((), device="cuda")
    shapes = [(128, 128, 128), (256, 384, 8192), (129, 67, 200), (1000, 520, 1040), (64, 4096, 8192)]
    kbig = 8192  # the K of the shapes every operand-type pair runs at
    if c.args.quick:  # a smoke run (and what the SIMT emulator runs in CI)
        shapes, kbig = [(128, 128, 128), (256, 384, 1024), (129, 67, 200), (64, 272, 1024)], 1024
    for kern in kernels:
        c.check_call(lib.unitfp8_cuda_set_gemm_kernel(GEMM_KERNELS[kern]), "set_gemm_kernel")
        for (m, n, k) in shapes:
            if kern == "naive" and m * n * k > 2**31:
                continue
            for at, bt in ((e4, e4), (e5, e4), (e4, e5), (e5, e5)):
                if (at, bt) != (e4, e4) and k != kbig:
                    continue
                a, b = fp8_randn(torch, (m, k), at), fp8_randn(torch, (n, k), bt)
                ref = a.double() @ b.double().T
                out = torch.full((m, n), float("nan"), device="cuda")
                code = our_gemm(c, torch, a, b, out, a_type=E4M3 if at == e4 else E5M2, b_type=E4M3 if bt == e4 else E5M2)
                aligned = k % 16 == 0
                if code == 4 and kern in ("wgmma", "mma_sync") and not aligned:
                    c.record("gemm %s %dx%dx%d" % (kern, m, n, k), True, note="unsupported (unaligned), as documented")
                    continue
                c.check_call(code, "unitfp8_cuda_gemm[%s]" % kern)
                torch.cuda.synchronize()
                err = rel_fro(out, ref)
                ok = math.isfinite(err) and err <= 1e-5
                detail = dict(err=err)
                if m % 16 == 0 and n % 16 == 0 and k % 16 == 0 and at == e4:
                    try:
                        sm = torch._scaled_mm(a, b.t(), scale_a=one, scale_b=one, out_dtype=torch.float32)
                        e_sm = rel_fro(sm, ref)
                        detail["scaled_mm_err"] = e_sm
                        # "No worse than cuBLASLt": within 10%, or both at f32 output rounding.
                        ok = ok and (err <= 1.1 * e_sm or err <= 1e-7)
                    except Exception as e:  # noqa: BLE001
                        detail["scaled_mm"] = repr(e)[:80]
                c.record("gemm %s %dx%dx%d %s.%s" % (kern, m, n, k, str(at)[-6:], str(bt)[-6:]), ok, **detail)
        # alpha/beta, bf16 and FP8 outputs, column-major C.
        try:
            m, n, k = 256, 192, 1024
            a, b = fp8_randn(torch, (m, k), e4), fp8_randn(torch, (n, k), e4)
            ref = a.double() @ b.double().T
            c0 = torch.randn(m, n, device="cuda")
            out = c0.clone()
            c.check_call(our_gemm(c, torch, a, b, out, alpha=0.5, beta=-2.0), "gemm beta")
            torch.cuda.synchronize()
            err = rel_fro(out, 0.5 * ref - 2.0 * c0.double())
            c.record("gemm %s alpha=0.5 beta=-2 f32" % kern, err <= 1e-6, err=err)
            outb = torch.randn(m, n, device="cuda").to(torch.bfloat16)
            c.check_call(our_gemm(c, torch, a, b, outb, alpha=1 / 32, c_type=BF16), "gemm bf16")
            torch.cuda.synchronize()
            want = (ref / 32).to(torch.bfloat16)
            base = torch.maximum(want.float().abs(), outb.float().abs()).clamp_min(1e-30)
            ulps = (outb.float() - want.float()).abs() / base
            c.record("gemm %s bf16 out" % kern, float(ulps.max()) <= 2.0**-7, max_rel=float(ulps.max()))
            outq = torch.zeros(m, n, dtype=torch.uint8, device="cuda")
            c.check_call(our_gemm(c, torch, a, b, outq, alpha=1 / 32, c_type=E4M3), "gemm e4m3")
            torch.cuda.synchronize()
            want = (ref / 32).clamp(-448, 448).float().to(e4).view(torch.uint8)
            diff = int((outq.int() - want.int()).abs().gt(1).sum())
            c.record("gemm %s e4m3 out (within 1 code)" % kern, diff == 0, far=diff)
            # Column-major C: strides (1, m).
            outc = torch.full((n, m), float("nan"), device="cuda")
            code = lib.unitfp8_cuda_gemm(m, n, k, 1.0, a.data_ptr(), E4M3, k, 1, b.data_ptr(), E4M3, 1, k, 0.0,
                                         outc.data_ptr(), F32, 1, m, stream_ptr(torch))
            c.check_call(code, "gemm column-major C")
            torch.cuda.synchronize()
            err = rel_fro(outc.T, ref)
            c.record("gemm %s column-major C" % kern, err <= 1e-5, err=err)
        except Exception as e:  # noqa: BLE001
            traceback.print_exc()
            c.record("gemm %s extras" % kern, False, error=repr(e)[:200])
    lib.unitfp8_cuda_set_gemm_kernel(0)
    # Layout errors and the linear layer.
    a, b = fp8_randn(torch, (64, 128), e4), fp8_randn(torch, (128, 96), e4)
    out = torch.zeros(64, 96, device="cuda")
    code = lib.unitfp8_cuda_gemm(64, 96, 128, 1.0, a.data_ptr(), E4M3, 128, 1, b.data_ptr(), E4M3, 96, 1, 0.0,
                                 out.data_ptr(), F32, 96, 1, stream_ptr(torch))
    c.record("gemm row-major B (not K-major) -> unsupported", code == 4, status=code)
    try:
        batch, fan_in, fan_out = (512, 1024, 768) if not c.args.quick else (128, 256, 192)
        x = fp8_randn(torch, (batch, fan_in), e4)
        w = fp8_randn(torch, (fan_out, fan_in), e4)
        dy = fp8_randn(torch, (batch, fan_out), e5)
        alpha = 1 / math.sqrt(fan_in)
        y = torch.full((batch, fan_out), float("nan"), device="cuda")
        c.check_call(lib.unitfp8_cuda_linear_forward(batch, fan_in, fan_out, 0.0, x.data_ptr(), w.data_ptr(), y.data_ptr(), F32,
                                                     stream_ptr(torch)), "linear_forward")
        dx = torch.full((batch, fan_in), float("nan"), device="cuda")
        w_t = w.view(torch.uint8).t().contiguous()
        c.check_call(lib.unitfp8_cuda_linear_backward_data(batch, fan_in, fan_out, 0.0, dy.data_ptr(), w_t.data_ptr(),
                                                           0.0, dx.data_ptr(), F32, stream_ptr(torch)), "linear_backward_data")
        dw0 = torch.randn(fan_out, fan_in, device="cuda")
        dw = dw0.clone()
        dy_t = dy.view(torch.uint8).t().contiguous()
        x_t = x.view(torch.uint8).t().contiguous()
        c.check_call(lib.unitfp8_cuda_linear_backward_weight(batch, fan_in, fan_out, 0.0, dy_t.data_ptr(), x_t.data_ptr(), 1.0,
                                                             dw.data_ptr(), stream_ptr(torch)), "linear_backward_weight")
        torch.cuda.synchronize()
        xd, wd, dyd = x.double(), w.double(), dy.double()
        c.record("linear forward", rel_fro(y, alpha * xd @ wd.T) <= 1e-5, err=rel_fro(y, alpha * xd @ wd.T))
        c.record("linear backward data", rel_fro(dx, alpha * dyd @ wd) <= 1e-5, err=rel_fro(dx, alpha * dyd @ wd))
        want = alpha * dyd.T @ xd + dw0.double()
        c.record("linear backward weight (beta=1)", rel_fro(dw, want) <= 1e-5, err=rel_fro(dw, want))
    except Exception as e:  # noqa: BLE001
        traceback.print_exc()
        c.record("linear", False, error=repr(e)[:200])


def timed(torch, fn, reps=20, warmup=3):
    if TINY:
        reps, warmup = 2, 1
    for _ in range(warmup):
        fn()
    torch.cuda.synchronize()
    ev = [(torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)) for _ in range(reps)]
    for s, e in ev:
        s.record()
        fn()
        e.record()
    torch.cuda.synchronize()
    ts = sorted(s.elapsed_time(e) for s, e in ev)
    return ts[len(ts) // 2] / 1e3, ts[0] / 1e3


def section_bench(c):
    torch = torch_mod()
    lib = c.lib
    sp = lambda: stream_ptr(torch)  # noqa: E731
    n = 1 << 28 if not c.args.quick else 1 << 24  # 1 GiB of f32
    if c.args.tiny:
        n = 1 << 16
    x = torch.randn(n, device="cuda")
    y = torch.empty_like(x)
    t, _ = timed(torch, lambda: y.copy_(x))
    copy_bw = 2 * 4 * n / t / 1e9
    c.record("bench copy f32 (read+write)", None, GBps=copy_bw, ms=t * 1e3)

    def ew(name, bytes_moved, fn):
        try:
            t, tmin = timed(torch, fn)
            bw = bytes_moved / t / 1e9
            c.record("bench " + name, None, GBps=bw, of_copy=bw / copy_bw, ms=t * 1e3)
            return bw
        except Exception as e:  # noqa: BLE001
            c.record("bench " + name, False, error=repr(e)[:200])
            return None

    q = torch.empty(n, dtype=torch.uint8, device="cuda")
    amax = torch.zeros(1, device="cuda")
    xb = x.to(torch.bfloat16)

    def ours(src, st, dt, dst, mode=SAT, am=None):
        def f():
            code = lib.unitfp8_cuda_cast(src.data_ptr(), st, dst.data_ptr(), dt, n, 1.0, mode, 1, am.data_ptr() if am is not None else None, sp())
            if code:
                raise RuntimeError(c.status(code))
        return f

    ew("ours cast f32->e4m3 sat", 5 * n, ours(x, F32, E4M3, q))
    ew("ours cast f32->e4m3 sat+amax", 5 * n, ours(x, F32, E4M3, q, am=amax))
    ew("ours cast f32->e4m3 stochastic", 5 * n, ours(x, F32, E4M3, q, mode=STOCH))
    ew("ours cast bf16->e4m3 sat", 3 * n, ours(xb, BF16, E4M3, q))
    ew("ours cast e4m3->bf16", 3 * n, ours(q, E4M3, BF16, xb))
    ew("torch f32.clamp(+-448).to(e4m3)", 5 * n, lambda: x.clamp(-448, 448).to(torch.float8_e4m3fn))
    ew("torch f32.to(e4m3) (non-saturating)", 5 * n, lambda: x.to(torch.float8_e4m3fn))
    ew("torch bf16.to(e4m3)", 3 * n, lambda: xb.to(torch.float8_e4m3fn))
    # cast-transpose 16384 x 16384 bf16 -> e4m3 (both outputs)
    r = 1 << 14 if not c.args.quick else 1 << 12
    if c.args.tiny:
        r = 256
    m2 = torch.randn(r, r, device="cuda").to(torch.bfloat16)
    d1 = torch.empty(r, r, dtype=torch.uint8, device="cuda")
    d2 = torch.empty(r, r, dtype=torch.uint8, device="cuda")

    def ct():
        code = lib.unitfp8_cuda_cast_transpose(m2.data_ptr(), BF16, r, r, r, d1.data_ptr(), r, d2.data_ptr(), r, E4M3, 1.0, SAT, 0,
                                               None, sp())
        if code:
            raise RuntimeError(c.status(code))
    ew("ours cast_transpose bf16->e4m3 (W and W^T)", 4 * r * r, ct)
    ew("torch bf16.to(e4m3) + .t().contiguous()", 4 * r * r,
       lambda: (lambda w: (w, w.t().contiguous()))(m2.to(torch.float8_e4m3fn)))
    # residual mix
    f_ = torch.randn(n, device="cuda")
    o = torch.empty_like(x)
    a_, b_ = math.sqrt(0.9), math.sqrt(0.1)

    def mix(xx, ff, oo, io, qq=None):
        def fn():
            code = lib.unitfp8_cuda_residual_mix(xx.data_ptr(), ff.data_ptr(), oo.data_ptr(), io, n, 0.1,
                                                 qq.data_ptr() if qq is not None else None, E4M3, SAT, 0, sp())
            if code:
                raise RuntimeError(c.status(code))
        return fn
    ew("ours mix f32", 12 * n, mix(x, f_, o, F32))
    ew("ours mix f32 + e4m3 copy", 13 * n, mix(x, f_, o, F32, q))
    fb, ob = f_.to(torch.bfloat16), torch.empty_like(xb)
    ew("ours mix bf16 + e4m3 copy", 7 * n, mix(xb, fb, ob, BF16, q))
    ew("torch mix f32 (a*x + b*f)", 12 * n, lambda: torch.add(x * a_, f_, alpha=b_, out=o))
    ew("torch mix bf16 + .to(e4m3)", 7 * n, lambda: torch.add(xb * a_, fb, alpha=b_).to(torch.float8_e4m3fn))

    del x, y, q, xb, m2, d1, d2, f_, o, fb, ob
    torch.cuda.empty_cache()
    # GEMMs
    shapes = [("4096^3", 4096, 4096, 4096), ("8192^3", 8192, 8192, 8192)]
    tokens = 8192
    for model, d, ffn in (("1B", 2048, 8192), ("7B", 4096, 11008)):
        shapes += [("%s qkv" % model, tokens, 3 * d, d), ("%s out" % model, tokens, d, d),
                   ("%s up" % model, tokens, ffn, d), ("%s down" % model, tokens, d, ffn)]
    if c.args.quick:
        shapes = shapes[:1]
    if c.args.tiny:
        shapes = [("256x384x512", 256, 384, 512)]
    one = torch.ones((), device="cuda")
    cc = torch.cuda.get_device_capability()
    for name, m, nn, k in shapes:
        a = fp8_randn(torch, (m, k), torch.float8_e4m3fn)
        b = fp8_randn(torch, (nn, k), torch.float8_e4m3fn)
        out = torch.empty(m, nn, dtype=torch.bfloat16, device="cuda")
        flop = 2.0 * m * nn * k
        row = {}
        try:
            t, _ = timed(torch, lambda: torch._scaled_mm(a, b.t(), scale_a=one, scale_b=one, out_dtype=torch.bfloat16), reps=10)
            row["scaled_mm"] = flop / t / 1e12
        except Exception as e:  # noqa: BLE001
            row["scaled_mm_error"] = repr(e)[:100]
        ab, bb = a.to(torch.bfloat16), b.to(torch.bfloat16)
        t, _ = timed(torch, lambda: torch.matmul(ab, bb.t()), reps=10)
        row["bf16_matmul"] = flop / t / 1e12
        del ab, bb
        for kern in (["wgmma"] if cc == (9, 0) else []) + ["mma_sync"]:
            lib.unitfp8_cuda_set_gemm_kernel(GEMM_KERNELS[kern])

            def g():
                code = our_gemm(c, torch, a, b, out, c_type=BF16)
                if code:
                    raise RuntimeError(c.status(code))
            try:
                t, _ = timed(torch, g, reps=10)
                row["ours_" + kern] = flop / t / 1e12
            except Exception as e:  # noqa: BLE001
                row["ours_%s_error" % kern] = repr(e)[:100]
        lib.unitfp8_cuda_set_gemm_kernel(0)
        ref = row.get("scaled_mm")
        if ref:
            for kern in ("wgmma", "mma_sync"):
                if "ours_" + kern in row:
                    row["%s_vs_scaled_mm" % kern] = row["ours_" + kern] / ref
        c.record("bench gemm %s (%dx%dx%d) TFLOP/s" % (name, m, nn, k), None, **row)
        del a, b, out
        torch.cuda.empty_cache()


SECTIONS = {"info": section_info, "elementwise": section_elementwise, "gemm": section_gemm, "bench": section_bench}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("section", choices=sorted(SECTIONS))
    ap.add_argument("--lib", default="target/release/libunitfp8.so")
    ap.add_argument("--out", default=os.environ.get("OUT") or "bench/results")
    ap.add_argument("--seed", type=int, default=None)
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--tiny", action="store_true")
    args = ap.parse_args()
    global TINY
    TINY = args.tiny
    os.makedirs(args.out, exist_ok=True)
    started = time.time()
    try:
        c = Ctx(args)
    except OSError as e:
        print("cannot load %s: %s (build it with scripts/cuda-check.sh, or pass --lib PATH)" % (args.lib, e))
        return 2
    if args.section != "info":
        st = c.lib.unitfp8_cuda_available()
        if st != 0:
            print("CUDA back end not available: %s" % c.status(st))
            return 2
    code = 0
    try:
        SECTIONS[args.section](c)
    except Exception as e:  # noqa: BLE001
        traceback.print_exc()
        c.record(args.section, False, error=repr(e)[:300])
        code = 2
    path = os.path.join(args.out, "gpu_%s.json" % args.section)
    with open(path, "w") as fh:
        json.dump(dict(section=args.section, seconds=round(time.time() - started, 1), failures=c.failures,
                       results=c.results), fh, indent=1, default=str)
    print("%s: %d results, %d failures, %.1f s -> %s" % (args.section, len(c.results), c.failures, time.time() - started, path))
    return code or (1 if c.failures else 0)


if __name__ == "__main__":
    sys.exit(main())
