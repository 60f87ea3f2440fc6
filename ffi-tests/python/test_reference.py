"""Independent reference check of the casts through the C ABI, against ml_dtypes and numpy.

- Nearest (UNITFP8_ROUND_NEAREST) f32/bf16/f16 -> E4M3/E5M2 equals ml_dtypes `astype`, bit for
  bit: all 2^16 bf16 and all 2^16 f16 patterns, and >= 10^7 f32 values (random bit patterns,
  random normals at scales 2^-40 .. 2^40, and every rounding boundary of both FP8 formats and
  of bf16/f16: each value, each midpoint between neighbours, including the overflow
  thresholds 464 and 61440, the f32 values just around them, +-0, +-Inf, NaNs).
- NearestSaturate equals ml_dtypes after clipping the input to +-max (NaN stays NaN).
- Decoding all 256 codes of each format to f32 equals ml_dtypes, NaN bits included; FP8 -> FP8
  equals ml_dtypes.
- f32 -> bf16 / f16 equals ml_dtypes / numpy for non-NaN inputs (NaN stays NaN), both modes.

Run directly (`python test_reference.py`) or under pytest. run_all.py runs it once with
UNITFP8_BACKEND=scalar and once with the default back end. The random seed is printed;
set UNITFP8_TEST_SEED to repeat a run.
"""

import os
import sys
import time

import ml_dtypes
import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import unitfp8_ctypes as u  # noqa: E402

np.seterr(all="ignore")  # overflow and NaN casts are what these tests are about
SEED = int(os.environ.get("UNITFP8_TEST_SEED", time.time_ns() % 2**63))
FP8 = {
    "e4m3": (u.E4M3, ml_dtypes.float8_e4m3fn, 448.0),
    "e5m2": (u.E5M2, ml_dtypes.float8_e5m2, 57344.0),
}
BF16_MAX = float(ml_dtypes.finfo(ml_dtypes.bfloat16).max)
F16_MAX = 65504.0


def bits(a):
    """The raw bits of an array as unsigned integers of the same width."""
    return a.view({1: np.uint8, 2: np.uint16, 4: np.uint32}[a.dtype.itemsize])


def assert_bits_equal(what, inputs, got, expected, limit=8):
    g, e = bits(got), bits(expected)
    bad = np.flatnonzero(g != e)
    if bad.size:
        w = inputs.dtype.itemsize * 2
        lines = [
            f"  input 0x{int(bits(inputs)[i]):0{w}x} ({inputs[i]!r}): got 0x{int(g[i]):x}, "
            f"expected 0x{int(e[i]):x}"
            for i in bad[:limit]
        ]
        raise AssertionError(
            f"{what}: {bad.size} of {g.size} differ (seed {SEED}); first:\n" + "\n".join(lines)
        )


def clip(x, m):
    """x clipped to [-m, m] in float32; NaN stays NaN."""
    x32 = x.astype(np.float32)
    return np.clip(x32, np.float32(-m), np.float32(m))


def around(points):
    """Each float32 point, its neighbours toward +Inf and toward 0, and all their negatives."""
    p = np.asarray(points, dtype=np.float32)
    s = np.concatenate([p, np.nextafter(p, np.float32(np.inf)), np.nextafter(p, np.float32(0))])
    return np.concatenate([s, -s])


def midpoints(values):
    """Midpoints between consecutive sorted non-negative finite values (exact in float32)."""
    v = np.unique(values.astype(np.float64))
    return ((v[:-1] + v[1:]) / 2).astype(np.float32)


def fp8_boundaries():
    out = []
    for _, dt, m in FP8.values():
        vals = np.arange(256, dtype=np.uint8).view(dt).astype(np.float32)
        vals = vals[np.isfinite(vals) & (vals >= 0)]
        top_ulp = 32.0 if dt is ml_dtypes.float8_e4m3fn else 8192.0
        vals = np.append(vals, np.float32(m + top_ulp))  # the virtual neighbour above max
        out.append(around(vals))
        out.append(around(midpoints(vals)))  # includes 464 / 61440 and min subnormal / 2
    specials = np.array(
        [465.0, 61439.0, 61441.0, 480.0, 65536.0, np.inf, 3.4028235e38, 1e-45, 0.0],
        dtype=np.float32,
    )
    out.append(around(specials))
    nans = np.array(
        [0x7FC00000, 0xFFC00000, 0x7F800001, 0xFF800001, 0x7FBFFFFF, 0xFFFFFFFF, 0x7FC12345],
        dtype=np.uint32,
    ).view(np.float32)
    out.append(nans)
    return np.concatenate(out)


def half_boundaries():
    """Every bf16 and f16 value and midpoint between neighbours, and the f32 values around."""
    out = []
    for dt in (ml_dtypes.bfloat16, np.float16):
        vals = np.arange(65536, dtype=np.uint16).view(dt).astype(np.float32)
        vals = vals[np.isfinite(vals) & (vals >= 0)]
        out.append(around(midpoints(vals)))
    # Overflow thresholds: bf16 max + half ulp, f16 65520.
    out.append(around(np.array([65520.0, BF16_MAX + 2.0**103], dtype=np.float32)))
    return np.concatenate(out)


def f32_inputs():
    rng = np.random.default_rng(SEED)
    n = 5_000_000
    random_bits = rng.integers(0, 2**32, n, dtype=np.uint64).astype(np.uint32).view(np.float32)
    normals = rng.standard_normal(n).astype(np.float32) * np.exp2(
        rng.integers(-40, 41, n)
    ).astype(np.float32)
    x = np.concatenate([fp8_boundaries(), half_boundaries(), random_bits, normals])
    assert x.size >= 10_000_000
    return x


_F32 = None


def f32_values():
    global _F32
    if _F32 is None:
        _F32 = f32_inputs()
    return _F32


def all16(dt):
    return np.arange(65536, dtype=np.uint16).view(dt)


def check_fp8_from(src, label):
    for name, (code, dt, m) in FP8.items():
        got = u.cast(src, dt, rounding=u.ROUND_NEAREST)
        assert_bits_equal(f"{label} -> {name} nearest", src, got, src.astype(dt))
        got = u.cast(src, dt, rounding=u.ROUND_NEAREST_SATURATE)
        assert_bits_equal(f"{label} -> {name} saturate", src, got, clip(src, m).astype(dt))


def test_f32_to_fp8():
    check_fp8_from(f32_values(), "f32")


def test_all_bf16_to_fp8():
    check_fp8_from(all16(ml_dtypes.bfloat16), "bf16")


def test_all_f16_to_fp8():
    check_fp8_from(all16(np.float16), "f16")


def test_decode_all_codes():
    codes = np.arange(256, dtype=np.uint8)
    for name, (code, dt, _) in FP8.items():
        src = codes.view(dt)
        got = u.cast(src, np.float32, rounding=u.ROUND_NEAREST)
        assert_bits_equal(f"{name} -> f32", src, got, src.astype(np.float32))
        # f32 destinations are never clipped: the default mode decodes E5M2 +-Inf to +-Inf too.
        got = u.cast(src, np.float32, rounding=u.ROUND_NEAREST_SATURATE)
        assert_bits_equal(f"{name} -> f32 saturate", src, got, src.astype(np.float32))
        for dst in (ml_dtypes.bfloat16, np.float16):
            got = u.cast(src, dst, rounding=u.ROUND_NEAREST)
            exp = src.astype(np.float32).astype(dst)
            ok = ~np.isnan(exp.astype(np.float32))
            assert_bits_equal(f"{name} -> {np.dtype(dst).name}", src[ok], got[ok], exp[ok])
            assert np.isnan(got[~ok].astype(np.float32)).all(), f"{name} NaN -> {dst}"
        nan = np.isnan(src.astype(np.float32))
        for other, (_, dt2, m2) in FP8.items():
            # NaNs become the canonical NaN of the destination with their sign (ml_dtypes keeps
            # the payload of an E5M2 -> E5M2 identity cast; unitfp8 documents canonical NaNs).
            canonical = (codes & 0x80) | (0x7F if dt2 is ml_dtypes.float8_e4m3fn else 0x7E)
            for rounding, ref in (
                (u.ROUND_NEAREST, src.astype(dt2)),
                (u.ROUND_NEAREST_SATURATE, clip(src, m2).astype(dt2)),
            ):
                ref = np.where(nan, canonical, bits(ref)).astype(np.uint8)
                got = u.cast(src, dt2, rounding=rounding)
                assert_bits_equal(f"{name} -> {other} mode {rounding}", src, got, ref)


def test_f32_to_half():
    x = f32_values()
    for dt, m in ((ml_dtypes.bfloat16, BF16_MAX), (np.float16, F16_MAX)):
        name = np.dtype(dt).name
        for rounding, ref in (
            (u.ROUND_NEAREST, x.astype(dt)),
            (u.ROUND_NEAREST_SATURATE, clip(x, m).astype(dt)),
        ):
            got = u.cast(x, dt, rounding=rounding)
            nan = np.isnan(x)
            assert_bits_equal(f"f32 -> {name} mode {rounding}", x[~nan], got[~nan], ref[~nan])
            assert np.isnan(got[nan].astype(np.float32)).all(), f"NaN -> {name}"
    # And the halves back to f32 exactly.
    for dt in (ml_dtypes.bfloat16, np.float16):
        h = all16(dt)
        got = u.cast(h, np.float32, rounding=u.ROUND_NEAREST)
        exp = h.astype(np.float32)
        ok = ~np.isnan(exp)
        assert_bits_equal(f"{np.dtype(dt).name} -> f32", h[ok], got[ok], exp[ok])
        assert np.isnan(got[~ok]).all()


def main():
    print(f"test_reference: backend {u.backend()}, seed {SEED}")
    failed = 0
    for name, fn in list(globals().items()):
        if name.startswith("test_") and callable(fn):
            t = time.perf_counter()
            try:
                fn()
                print(f"  ok   {name} ({time.perf_counter() - t:.2f} s)")
            except AssertionError as e:
                failed += 1
                print(f"  FAIL {name}: {e}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
