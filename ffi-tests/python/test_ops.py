"""cast_transpose and the residual mix (forward and backward) through the C ABI, against numpy
float32 recomputation (bit-exact: each product rounded to f32, then the sum, as documented) and
ml_dtypes casts; row- and column-major layouts through leading dimensions; error paths with
poisoned outputs that must stay untouched.

Run directly (`python test_ops.py`) or under pytest; run_all.py runs it with
UNITFP8_BACKEND=scalar and with the default back end. Set UNITFP8_TEST_SEED to repeat a run.
"""

import ctypes
import os
import sys
import time

import ml_dtypes
import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import unitfp8_ctypes as u  # noqa: E402
from test_reference import assert_bits_equal, bits, clip  # noqa: E402

np.seterr(all="ignore")
SEED = int(os.environ.get("UNITFP8_TEST_SEED", time.time_ns() % 2**63))
RNG = np.random.default_rng(SEED)
lib = u.lib
E4, E5, BF = ml_dtypes.float8_e4m3fn, ml_dtypes.float8_e5m2, ml_dtypes.bfloat16
POISON = 0xA5


def poisoned(shape, dtype):
    a = np.empty(shape, dtype=dtype)
    a.view(np.uint8)[...] = POISON
    return a


def is_poison(a):
    return bool((a.view(np.uint8) == POISON).all())


def random_f32(n, lo=-8, hi=8):
    return (RNG.standard_normal(n) * np.exp2(RNG.integers(lo, hi + 1, n))).astype(np.float32)


def fp8_ref(x, dt, rounding):
    """ml_dtypes reference of a Nearest or NearestSaturate cast of x (any float dtype)."""
    m = 448.0 if dt is E4 else 57344.0
    x32 = x.astype(np.float32)
    return (x32 if rounding == u.ROUND_NEAREST else clip(x32, m)).astype(dt)


# ---------------------------------------------------------------- info


def test_info():
    assert u.version().count(".") == 2
    b = u.backend()
    assert b in ("scalar", "avx512", "neon"), b
    if os.environ.get("UNITFP8_BACKEND") == "scalar":
        assert b == "scalar", b
    assert u.status_string(u.OK) == "ok"
    assert u.status_string(u.ERROR_OVERLAP) == "illegal overlap of buffers"
    assert u.status_string(42) == "unknown status"
    old = lib.unitfp8_get_num_threads()
    lib.unitfp8_set_num_threads(5)
    assert lib.unitfp8_get_num_threads() == 5
    lib.unitfp8_set_num_threads(0)
    assert lib.unitfp8_get_num_threads() == old


# ---------------------------------------------------------------- cast_transpose


def cast_transpose(src_buf, rows, cols, ld_src, dst, ld_dst, dst_t, ld_t, dt, scale=1.0,
                   rounding=u.ROUND_NEAREST_SATURATE, seed=0):
    amax = ctypes.c_float(-1.0)
    st = lib.unitfp8_cast_transpose(
        u.ptr(src_buf), u.CODE_OF[src_buf.dtype], rows, cols, ld_src, u.ptr(dst), ld_dst,
        u.ptr(dst_t), ld_t, u.CODE_OF[np.dtype(dt)], scale, rounding, seed, ctypes.byref(amax),
    )
    u.check(st)
    return amax.value


def test_cast_transpose_row_major():
    for rows, cols in ((1, 1), (1, 77), (77, 1), (33, 65), (130, 70), (64, 256)):
        for src_dt, dt, rounding in (
            (np.float32, E4, u.ROUND_NEAREST_SATURATE),
            (BF, E5, u.ROUND_NEAREST),
            (np.float16, E4, u.ROUND_NEAREST),
        ):
            ld_src, ld_dst, ld_t = cols + 3, cols + 1, rows + 5
            buf = random_f32(rows * ld_src).astype(src_dt).reshape(rows, ld_src)
            a = buf[:, :cols]
            d = poisoned((rows, ld_dst), dt)
            t = poisoned((cols, ld_t), dt)
            amax = cast_transpose(buf, rows, cols, ld_src, d, ld_dst, t, ld_t, dt,
                                  rounding=rounding)
            exp = fp8_ref(a, dt, rounding)
            what = f"cast_transpose {rows}x{cols} {np.dtype(src_dt).name}->{np.dtype(dt).name}"
            assert_bits_equal(what, a.ravel(), d[:, :cols].copy().ravel(), exp.ravel())
            assert_bits_equal(what + " (T)", a.T.ravel(), t[:, :rows].copy().ravel(),
                              exp.T.copy().ravel())
            assert is_poison(d[:, cols:]) and is_poison(t[:, rows:]), what + " padding written"
            assert amax == float(np.abs(a.astype(np.float32)).max()), (what, amax)


def test_cast_transpose_column_major():
    # A column-major M x N matrix with leading dimension ld is the row-major N x M one.
    m, n = 45, 29
    ld_a, ld_d, ld_t = m + 7, m + 2, n + 4
    store = random_f32(ld_a * n).reshape(n, ld_a)  # column j of A = store[j, :m]
    a = store[:, :m].T  # M x N view
    d = poisoned((n, ld_d), E4)  # column-major M x N, ld_d
    t = poisoned((m, ld_t), E4)  # column-major N x M (A^T), ld_t
    cast_transpose(store, n, m, ld_a, d, ld_d, t, ld_t, E4)
    exp = fp8_ref(a, E4, u.ROUND_NEAREST_SATURATE)
    got_d = d[:, :m].T  # back to the M x N view
    got_t = t[:, :n].T  # N x M view of A^T
    assert_bits_equal("col-major dst", a.ravel(), got_d.copy().ravel(), exp.copy().ravel())
    assert_bits_equal("col-major dst_t", a.T.ravel(), got_t.copy().ravel(), exp.T.copy().ravel())
    assert is_poison(d[:, m:]) and is_poison(t[:, n:])


def test_cast_transpose_stochastic_and_threads():
    rows, cols = 600, 500  # 300000 elements: more than one thread's worth
    src = random_f32(rows * cols).reshape(rows, cols)
    seed = int(RNG.integers(0, 2**63))
    outs = []
    for threads in (1, 2):
        lib.unitfp8_set_num_threads(threads)
        d = poisoned((rows, cols), E5)
        t = poisoned((cols, rows), E5)
        cast_transpose(src, rows, cols, cols, d, cols, t, rows, E5, scale=0.5,
                       rounding=u.ROUND_STOCHASTIC_SATURATE, seed=seed)
        outs.append((d, t))
    lib.unitfp8_set_num_threads(0)
    (d1, t1), (d2, t2) = outs
    flat = u.cast(src, E5, scale=0.5, rounding=u.ROUND_STOCHASTIC_SATURATE, seed=seed)
    assert_bits_equal("stochastic dst vs flat cast", src.ravel(), d1.ravel(), flat.ravel())
    assert_bits_equal("stochastic dst_t vs dst^T", src.T.ravel(), t1.ravel(), d1.T.copy().ravel())
    assert (bits(d1) == bits(d2)).all() and (bits(t1) == bits(t2)).all(), "depends on threads"
    # Each result is a neighbour of x/2: between the round-down and round-up values.
    x = (src * np.float32(0.5)).ravel()
    v = d1.ravel().astype(np.float32)
    nearest = fp8_ref(x, E5, u.ROUND_NEAREST_SATURATE).astype(np.float32)
    ulp = np.exp2(np.floor(np.log2(np.maximum(np.abs(x), 2.0**-14))) - 2).astype(np.float32)
    assert (np.abs(v - x) < ulp).all(), "stochastic result is not a neighbour"
    frac_differs = np.mean(v != nearest)
    assert 0.05 < frac_differs < 0.6, frac_differs


# ---------------------------------------------------------------- residual mix


def coefficients(tau):
    t = np.float32(tau)
    return np.sqrt(np.float32(1) - t), np.sqrt(t)


def mix(x, f, out, tau, q=None, q_dt=E4, rounding=u.ROUND_NEAREST_SATURATE, n=None):
    return lib.unitfp8_residual_mix(
        u.ptr(x), u.ptr(f), u.ptr(out), u.CODE_OF[out.dtype] if out is not None else 0,
        x.size if n is None else n, tau, u.ptr(q), u.CODE_OF[np.dtype(q_dt)], rounding, 0,
    )


def mix_backward(g, gx, gf, tau, acc, q=None, q_dt=E5, rounding=u.ROUND_NEAREST_SATURATE, n=None):
    return lib.unitfp8_residual_mix_backward(
        u.ptr(g), u.ptr(gx), u.ptr(gf), u.CODE_OF[g.dtype], g.size if n is None else n, tau,
        acc, u.ptr(q), u.CODE_OF[np.dtype(q_dt)], rounding, 0,
    )


def test_residual_mix_forward():
    for dt in (np.float32, BF, np.float16):
        for tau in (0.0, 0.1, 0.4, 1.0, float(RNG.random())):
            n = int(RNG.integers(1, 5000))
            x = random_f32(n, -4, 4).astype(dt)
            f = random_f32(n, -4, 4).astype(dt)
            a, b = coefficients(tau)
            exp = (a * x.astype(np.float32) + b * f.astype(np.float32)).astype(dt)
            for rounding, q_dt in ((u.ROUND_NEAREST, E4), (u.ROUND_NEAREST_SATURATE, E5)):
                out = poisoned(n, dt)
                q = poisoned(n, q_dt)
                u.check(mix(x, f, out, tau, q, q_dt, rounding))
                what = f"mix {np.dtype(dt).name} tau={tau} n={n}"
                assert_bits_equal(what, x, out, exp)
                assert_bits_equal(what + " fp8", out, q, fp8_ref(out, q_dt, rounding))
            # In place: out is x, then out is f.
            for alias in ("x", "f"):
                xx, ff = x.copy(), f.copy()
                target = xx if alias == "x" else ff
                u.check(mix(xx, ff, target, tau))
                assert_bits_equal(f"{what} in place (out = {alias})", x, target, exp)


def test_residual_mix_backward():
    for dt in (np.float32, BF, np.float16):
        for tau in (0.0, 0.25, 1.0, float(RNG.random())):
            for acc in (0, 1):
                n = int(RNG.integers(1, 5000))
                g = random_f32(n, -4, 4).astype(dt)
                gx0 = random_f32(n, -4, 4).astype(dt)
                a, b = coefficients(tau)
                g32 = g.astype(np.float32)
                dx = a * g32
                if acc:
                    dx = gx0.astype(np.float32) + dx
                gx = gx0.copy()
                gf = poisoned(n, dt)
                q = poisoned(n, E5)
                u.check(mix_backward(g, gx, gf, tau, acc, q, E5, u.ROUND_NEAREST))
                what = f"mix backward {np.dtype(dt).name} tau={tau} acc={acc} n={n}"
                assert_bits_equal(what + " grad_x", g, gx, dx.astype(dt))
                assert_bits_equal(what + " grad_f", g, gf, (b * g32).astype(dt))
                assert_bits_equal(what + " fp8", gf, q, fp8_ref(gf, E5, u.ROUND_NEAREST))
                # grad_x may be grad_out itself.
                gg = g.copy()
                gf2 = poisoned(n, dt)
                u.check(mix_backward(gg, gg, gf2, tau, 0))
                assert_bits_equal(what + " in place", g, gg, (a * g32).astype(dt))


def test_residual_threads():
    n = 300_001
    x, f = random_f32(n), random_f32(n)
    outs = []
    for threads in (1, 2):
        lib.unitfp8_set_num_threads(threads)
        out = poisoned(n, np.float32)
        q = poisoned(n, E4)
        u.check(mix(x, f, out, 0.3, q, E4, u.ROUND_STOCHASTIC_SATURATE))
        outs.append((bits(out).copy(), bits(q).copy()))
    lib.unitfp8_set_num_threads(0)
    assert (outs[0][0] == outs[1][0]).all() and (outs[0][1] == outs[1][1]).all()


def test_threads_concurrent_callers():
    """Several Python threads in the library at once (ctypes drops the GIL): each call splits
    over the worker pool or, when another call holds it, over threads of its own."""
    import threading
    n = 400_003
    srcs = [random_f32(n) for _ in range(4)]
    lib.unitfp8_set_num_threads(1)
    expect = [bits(u.cast(s, E4)).copy() for s in srcs]
    lib.unitfp8_set_num_threads(2)
    errors = []

    def run(i):
        for _ in range(20):
            got = bits(u.cast(srcs[i], E4))
            if not (got == expect[i]).all():
                errors.append(i)
                return

    ts = [threading.Thread(target=run, args=(i,)) for i in range(4)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    lib.unitfp8_set_num_threads(0)
    assert not errors, f"threads {errors} got wrong codes"


def worker_threads():
    """How many of this process's threads are the library's workers (None where /proc is
    missing: not checked there)."""
    try:
        tasks = os.listdir("/proc/self/task")
    except OSError:
        return None
    names = []
    for t in tasks:
        try:
            with open(f"/proc/self/task/{t}/comm") as f:
                names.append(f.read().strip())
        except OSError:
            pass
    return sum(name == "unitfp8-worker" for name in names)


def test_threads_after_fork():
    """A forked child (a data-loader process) must split work over threads of its own: the
    parent's workers do not exist there. The child checks its result and exits; a hang fails."""
    if not hasattr(os, "fork"):
        print("    skipped: no os.fork on this platform")
        return
    n = 600_001
    src = random_f32(n)
    lib.unitfp8_set_num_threads(3)
    expect = bits(u.cast(src, E5, rounding=u.ROUND_STOCHASTIC_SATURATE, seed=7)).copy()
    assert worker_threads() != 0, "the parent started no worker threads"
    pid = os.fork()
    if pid == 0:
        ok = True
        for _ in range(5):
            got = bits(u.cast(src, E5, rounding=u.ROUND_STOCHASTIC_SATURATE, seed=7))
            ok = ok and bool((got == expect).all())
        workers = worker_threads()
        os._exit(3 if not ok else 4 if workers == 0 else 0)
    deadline = time.monotonic() + 60
    while True:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            break
        if time.monotonic() > deadline:
            os.kill(pid, 9)
            os.waitpid(pid, 0)
            raise AssertionError("the forked child hung in a multi-threaded cast")
        time.sleep(0.01)
    assert os.WIFEXITED(status), f"child status {status}"
    code = os.WEXITSTATUS(status)
    assert code != 3, "the forked child computed wrong codes"
    assert code != 4, "the forked child ran on one thread: it started no workers of its own"
    assert code == 0, f"child exit code {code}"
    # The parent's pool still works.
    assert (bits(u.cast(src, E5, rounding=u.ROUND_STOCHASTIC_SATURATE, seed=7)) == expect).all()
    lib.unitfp8_set_num_threads(0)


# ---------------------------------------------------------------- error paths


def expect_fail(status, expected, *outputs):
    assert status == expected, (status, u.status_string(status), expected)
    for o in outputs:
        assert is_poison(o), "a failed call wrote an output"


def test_errors():
    n = 16
    x, f = random_f32(n), random_f32(n)
    for tau in (float("nan"), -0.5, 1.5, float("inf")):
        out, q = poisoned(n, np.float32), poisoned(n, E4)
        expect_fail(mix(x, f, out, tau, q), u.ERROR_INVALID_ARGUMENT, out, q)
        gx, gf = poisoned(n, np.float32), poisoned(n, np.float32)
        expect_fail(mix_backward(x, gx, gf, tau, 0, q), u.ERROR_INVALID_ARGUMENT, gx, gf, q)
    out, q = poisoned(n, np.float32), poisoned(n, E4)
    st = lib.unitfp8_residual_mix(None, u.ptr(f), u.ptr(out), u.F32, n, 0.5, None, 0, 0, 0)
    expect_fail(st, u.ERROR_NULL_POINTER, out)
    st = lib.unitfp8_residual_mix(u.ptr(x), u.ptr(f), u.ptr(out), u.F32, n, 0.5, u.ptr(q), u.F16,
                                  0, 0)
    expect_fail(st, u.ERROR_INVALID_ARGUMENT, out, q)
    st = lib.unitfp8_residual_mix(u.ptr(x), u.ptr(f), u.ptr(out), u.E5M2, n, 0.5, None, 0, 0, 0)
    expect_fail(st, u.ERROR_UNSUPPORTED, out)
    st = lib.unitfp8_residual_mix(None, None, None, u.F32, 0, 0.5, None, 0, 0, 0)
    assert st == u.OK
    # Partial overlap of out with x.
    buf = random_f32(2 * n)
    keep = buf.copy()
    st = lib.unitfp8_residual_mix(u.ptr(buf), u.ptr(f), buf.ctypes.data + 4, u.F32, n, 0.5, None,
                                  0, 0, 0)
    assert st == u.ERROR_OVERLAP and (bits(buf) == bits(keep)).all()
    # grad_x and grad_f overlapping each other.
    st = lib.unitfp8_residual_mix_backward(u.ptr(x), u.ptr(buf), buf.ctypes.data + 8, u.F32, n,
                                           0.5, 1, None, 0, 0, 0)
    assert st == u.ERROR_OVERLAP and (bits(buf) == bits(keep)).all()
    # Casts: stochastic to bf16, bad codes, bad leading dimension, amax inside the output.
    d = poisoned(n, BF)
    st = lib.unitfp8_cast(u.ptr(x), u.F32, u.ptr(d), u.BF16, n, 1.0,
                          u.ROUND_STOCHASTIC_SATURATE, 0, None)
    expect_fail(st, u.ERROR_UNSUPPORTED, d)
    st = lib.unitfp8_cast(u.ptr(x), u.F32, u.ptr(d), 17, n, 1.0, 0, 0, None)
    expect_fail(st, u.ERROR_INVALID_ARGUMENT, d)
    st = lib.unitfp8_cast(u.ptr(x), u.F32, u.ptr(d), u.BF16, n, 1.0, 3, 0, None)
    expect_fail(st, u.ERROR_INVALID_ARGUMENT, d)
    d8 = poisoned(4 * 8, E4)
    t8 = poisoned(8 * 4, E4)
    amax_in_d = ctypes.cast(d8.ctypes.data + 4, ctypes.POINTER(ctypes.c_float))
    st = lib.unitfp8_cast_transpose(u.ptr(x), u.F32, 4, 4, 4, u.ptr(d8), 4, u.ptr(t8), 4, u.E4M3,
                                    1.0, 0, 0, amax_in_d)
    expect_fail(st, u.ERROR_OVERLAP, d8, t8)
    st = lib.unitfp8_cast_transpose(u.ptr(x), u.F32, 4, 4, 3, u.ptr(d8), 4, u.ptr(t8), 4, u.E4M3,
                                    1.0, 0, 0, None)
    expect_fail(st, u.ERROR_INVALID_ARGUMENT, d8, t8)
    st = lib.unitfp8_cast_transpose(u.ptr(x), u.F32, 4, 4, 4, u.ptr(d8), 4, u.ptr(t8), 3, u.E4M3,
                                    1.0, 0, 0, None)
    expect_fail(st, u.ERROR_INVALID_ARGUMENT, d8, t8)
    st = lib.unitfp8_cast_transpose(None, u.F32, 4, 4, 4, u.ptr(d8), 4, u.ptr(t8), 4, u.E4M3,
                                    1.0, 0, 0, None)
    expect_fail(st, u.ERROR_NULL_POINTER, d8, t8)


def main():
    print(f"test_ops: backend {u.backend()}, seed {SEED}")
    failed = 0
    for name, fn in list(globals().items()):
        if name.startswith("test_") and callable(fn):
            t = time.perf_counter()
            try:
                fn()
                print(f"  ok   {name} ({time.perf_counter() - t:.2f} s)")
            except AssertionError as e:
                failed += 1
                print(f"  FAIL {name}: {e!r}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
