"""The numpy API against the C ABI called directly and against float64 / ml_dtypes references."""

import ctypes
import threading

import numpy as np
import pytest

import unitfp8
from unitfp8 import _lib

from reference import (
    ALL,
    BF16,
    E4M3,
    E5M2,
    F16,
    F32,
    FLOATS,
    FP8,
    bits,
    cast_ref,
    exact_fp8,
    matmul64,
    mix_coeffs,
    mix_ref,
)


@pytest.fixture
def rng(request):
    seed = abs(hash(request.node.nodeid)) % (2**32)
    return np.random.default_rng(seed)


def sample(rng, n, dtype, spread=4.0):
    """Random values over a wide range (some beyond the FP8 maxima), plus specials."""
    v = rng.standard_normal(n).astype(np.float32) * np.exp2(rng.uniform(-12, spread * 4, n)).astype(np.float32)
    v[: min(n, 6)] = [np.nan, np.inf, -np.inf, 0.0, -0.0, 449.0][: min(n, 6)]
    with np.errstate(over="ignore"):
        return v.astype(dtype) if np.dtype(dtype) != F32 else v


def poison(shape, dtype):
    a = np.empty(shape, dtype=dtype)
    a.view(np.uint8)[...] = 0x7F
    return a


# ---------------------------------------------------------------------------------------------
# info


def test_info():
    assert unitfp8.version().count(".") == 2
    assert unitfp8.backend() in ("scalar", "avx512", "neon")
    old = unitfp8.num_threads()
    unitfp8.set_num_threads(1)
    assert unitfp8.num_threads() == 1
    unitfp8.set_num_threads(0)
    assert unitfp8.num_threads() == old
    assert unitfp8.cuda_available() in (True, False)
    assert "units" in unitfp8.cast.__doc__ or "scale" in unitfp8.cast.__doc__


# ---------------------------------------------------------------------------------------------
# cast


@pytest.mark.parametrize("src", ALL, ids=str)
@pytest.mark.parametrize("dst", ALL, ids=str)
@pytest.mark.parametrize("rounding", ["nearest_saturate", "nearest"])
def test_cast_matches_reference_and_abi(rng, src, dst, rounding):
    n = 1001
    x = sample(rng, n, src)
    scale = 1.0 if rng.random() < 0.5 else float(np.float32(rng.uniform(0.1, 3)))
    y = unitfp8.cast(x, dst, scale=scale, rounding=rounding)
    assert y.dtype == dst and y.shape == x.shape
    # the C ABI called directly, into a poisoned buffer
    z = poison(n, dst)
    st = _lib.cast(x.ctypes.data, _lib.CODE_OF_NP[src], z.ctypes.data, _lib.CODE_OF_NP[dst], n, scale,
                   0 if rounding == "nearest_saturate" else 1, 0, None)
    assert st == 0
    np.testing.assert_array_equal(bits(y), bits(z))
    ref = cast_ref(x, dst, scale, saturate=(rounding == "nearest_saturate"))
    np.testing.assert_array_equal(bits(y), bits(ref))


def test_cast_out_inplace_and_amax(rng):
    x = rng.standard_normal((7, 9)).astype(np.float32) * 100
    out = poison((7, 9), E4M3)
    y, amax = unitfp8.cast(x, E4M3, out=out, return_amax=True)
    assert y is out and amax == np.abs(x).max()
    np.testing.assert_array_equal(bits(out), bits(cast_ref(x, E4M3)))
    # in place: same element size
    h = rng.standard_normal(64).astype(np.float16)
    expect = cast_ref(h, BF16)
    hb = h.view(BF16)
    unitfp8.cast(h, BF16, out=hb)
    np.testing.assert_array_equal(bits(hb), bits(expect))


def test_cast_stochastic(rng):
    x = rng.standard_normal(4096).astype(np.float32)
    a = unitfp8.cast(x, E4M3, rounding="stochastic", seed=7)
    b = unitfp8.cast(x, E4M3, rounding=unitfp8.Rounding.STOCHASTIC_SATURATE, seed=7)
    c = unitfp8.cast(x, E4M3, rounding="stochastic", seed=8)
    np.testing.assert_array_equal(bits(a), bits(b))
    assert (bits(a) != bits(c)).any()
    # each result is one of the two neighbours of x
    lo = np.minimum(a.astype(np.float64), x)
    hi = np.maximum(a.astype(np.float64), x)
    near = cast_ref(x, E4M3).astype(np.float64)
    assert np.all((a.astype(np.float64) == near) | ((lo <= x) & (x <= hi)))
    # unbiased: the mean error over many draws of one value is small
    v = np.full(20000, 1.0 + 1 / 32, dtype=np.float32)  # between 1 and 1.125
    m = unitfp8.cast(v, E4M3, rounding="stochastic", seed=3).astype(np.float64).mean()
    assert abs(m - (1 + 1 / 32)) < 0.005


# ---------------------------------------------------------------------------------------------
# cast_transpose


@pytest.mark.parametrize("src", FLOATS, ids=str)
@pytest.mark.parametrize("dst", FP8, ids=str)
def test_cast_transpose(rng, src, dst):
    rows, cols = 37, 53
    big = sample(rng, rows * (cols + 11), src).reshape(rows, cols + 11)
    x = big[:, 5 : 5 + cols]  # row stride cols + 11: passed as the leading dimension
    y, yt, amax = unitfp8.cast_transpose(x, dst, return_amax=True)
    ref = cast_ref(np.ascontiguousarray(x), dst)
    np.testing.assert_array_equal(bits(y), bits(ref))
    np.testing.assert_array_equal(bits(yt), bits(ref.T))
    assert np.isnan(amax) == bool(np.isnan(x.astype(np.float32)).any())
    # stochastic: out_t is exactly the transpose and equals cast() of the contiguous matrix
    y1, yt1 = unitfp8.cast_transpose(x, dst, rounding="stochastic", seed=99)
    c = unitfp8.cast(np.ascontiguousarray(x), dst, rounding="stochastic", seed=99)
    np.testing.assert_array_equal(bits(y1), bits(c))
    np.testing.assert_array_equal(bits(yt1), bits(c.T))
    # strided outputs and transposed-only
    obig = poison((cols, rows + 3), dst)
    none, yt2 = unitfp8.cast_transpose(x, dst, out_t=obig[:, :rows], transposed_only=True)
    assert none is None
    np.testing.assert_array_equal(bits(yt2), bits(ref.T))
    assert (bits(obig[:, rows:]) == 0x7F).all()


@pytest.mark.parametrize("shape", [(0, 3), (3, 0), (0, 0)])
def test_cast_transpose_empty(shape):
    """An empty matrix is a no-op with empty results, whatever its strides (an empty view of
    a transposed matrix has a column stride other than 1)."""
    big = np.ones((6, 4), np.float32).T  # strides (4, 16): columns 16 bytes apart
    x = big[: shape[0], : shape[1]]
    assert x.shape == shape
    y, yt = unitfp8.cast_transpose(x, E4M3)
    assert y.shape == shape and yt.shape == shape[::-1] and y.dtype == yt.dtype == E4M3
    out_t = np.zeros((6, 6), E4M3).T[: shape[1], : shape[0]]  # an odd-strided empty output
    none, yt3 = unitfp8.cast_transpose(x, E4M3, out_t=out_t, transposed_only=True)
    assert none is None and yt3 is out_t


def test_multipliers_at_the_float32_limits():
    """A multiplier is refused exactly when float32 would round it to infinity (from
    2^128 - 2^103 up) or, where it must be nonzero, to zero (2^-150 and below)."""
    a = np.full((2, 4), 1.0, np.float32).astype(E4M3)
    w = np.full((3, 4), 1.0, np.float32).astype(E4M3)
    x = np.ones(3, np.float32)
    overflow, underflow = 2.0**128 - 2.0**103, 2.0**-150
    below = float(np.nextafter(overflow, 0.0))  # rounds to the largest float32
    above = float(np.nextafter(underflow, 1.0))  # rounds to the smallest float32, 2^-149
    np.testing.assert_array_equal(unitfp8.gemm(a, w.T, alpha=below / 4), np.float32(below))
    np.testing.assert_array_equal(unitfp8.linear_forward(a, w, alpha=above), np.float32(4 * 2.0**-149))
    np.testing.assert_array_equal(unitfp8.cast(x, np.float32, scale=-below), np.float32(-below))
    unitfp8.cast(x, np.float32, scale=above)
    for bad in (overflow, -overflow):
        with pytest.raises(unitfp8.InvalidArgumentError, match="alpha must be finite in float32"):
            unitfp8.gemm(a, w.T, alpha=bad)
        with pytest.raises(unitfp8.InvalidArgumentError, match="scale must be finite in float32"):
            unitfp8.cast(x, E4M3, scale=bad)
    for bad in (underflow, -underflow):
        with pytest.raises(unitfp8.InvalidArgumentError, match="scale must be nonzero in float32"):
            unitfp8.cast(x, E4M3, scale=bad)
    with pytest.raises(unitfp8.InvalidArgumentError, match="alpha must be positive"):
        unitfp8.linear_forward(a, w, alpha=underflow)
    with pytest.raises(unitfp8.InvalidArgumentError, match="alpha must be finite"):
        unitfp8.gemm(a, w.T, alpha=10**400)  # too large even for a float64


def test_linear_with_empty_fan_in():
    """fan_in = 0: y is zero and dx, dW are empty, with the default alpha (which would be
    1/sqrt(0) but multiplies nothing)."""
    x = np.zeros((3, 0), E4M3)
    w = np.zeros((5, 0), E4M3)
    dy = np.ones((3, 5), np.float32).astype(E5M2)
    np.testing.assert_array_equal(unitfp8.linear_forward(x, w), np.zeros((3, 5), np.float32))
    assert unitfp8.linear_backward_data(dy, w).shape == (3, 0)
    assert unitfp8.linear_backward_weight(dy, x).shape == (5, 0)


# ---------------------------------------------------------------------------------------------
# residual mix


@pytest.mark.parametrize("io", FLOATS, ids=str)
@pytest.mark.parametrize("tau", [0.0, 0.1, 0.4, 1.0])
def test_residual_mix(rng, io, tau):
    n = 777
    x = rng.standard_normal(n).astype(io)
    f = (rng.standard_normal(n) * 30).astype(io)
    out = unitfp8.residual_mix(x, f, tau)
    np.testing.assert_array_equal(bits(out), bits(mix_ref(x, f, tau)))
    out2, y8 = unitfp8.residual_mix(x, f, tau, fp8_dtype=E4M3)
    np.testing.assert_array_equal(bits(out2), bits(out))
    np.testing.assert_array_equal(bits(y8), bits(cast_ref(out, E4M3)))
    # C ABI directly
    z = poison(n, io)
    z8 = poison(n, E5M2)
    st = _lib.residual_mix(x.ctypes.data, f.ctypes.data, z.ctypes.data, _lib.CODE_OF_NP[np.dtype(io)], n, tau,
                           z8.ctypes.data, _lib.E5M2, 2, 5)
    assert st == 0
    o3, o8 = unitfp8.residual_mix(x, f, tau, fp8_dtype=E5M2, rounding="stochastic", seed=5)
    np.testing.assert_array_equal(bits(o3), bits(z))
    np.testing.assert_array_equal(bits(o8), bits(z8))
    # in place on x
    xc = x.copy()
    r = unitfp8.residual_mix(xc, f, tau, out=xc)
    assert r is xc
    np.testing.assert_array_equal(bits(xc), bits(out))


@pytest.mark.parametrize("io", FLOATS, ids=str)
def test_residual_mix_backward(rng, io):
    n, tau = 501, 0.3
    g = rng.standard_normal(n).astype(io)
    a, b = mix_coeffs(tau)
    gx, gf = unitfp8.residual_mix_backward(g, tau)
    np.testing.assert_array_equal(bits(gx), bits((a * g.astype(np.float32)).astype(io)))
    np.testing.assert_array_equal(bits(gf), bits((b * g.astype(np.float32)).astype(io)))
    acc = rng.standard_normal(n).astype(io)
    expect = (acc.astype(np.float32) + (a * g.astype(np.float32)).astype(np.float32)).astype(io)
    gx2, gf2, g8 = unitfp8.residual_mix_backward(g, tau, grad_x=acc, accumulate=True, fp8_dtype=E5M2)
    assert gx2 is acc
    np.testing.assert_array_equal(bits(gx2), bits(expect))
    np.testing.assert_array_equal(bits(g8), bits(cast_ref(gf2, E5M2)))


# ---------------------------------------------------------------------------------------------
# GEMM and linear


@pytest.mark.parametrize("at", FP8, ids=str)
@pytest.mark.parametrize("bt", FP8, ids=str)
@pytest.mark.parametrize("ct", [F32, BF16], ids=str)
def test_gemm_exact(rng, at, bt, ct):
    m, k, n = 19, 300, 23
    a = exact_fp8(rng, (m, k), at)
    b = exact_fp8(rng, (k, n), bt)
    c = unitfp8.gemm(a, b, alpha=0.5, out_dtype=ct)
    ref = (0.5 * matmul64(a, b)).astype(np.float32).astype(ct)
    np.testing.assert_array_equal(bits(c), bits(ref))
    # transposed / negative-stride / column-major views need no copies
    at_view = np.asfortranarray(a)  # column-major
    b_rev = np.ascontiguousarray(b[::-1])[::-1]  # negative row stride
    c2 = poison((n, m), ct).T  # transposed output
    unitfp8.gemm(at_view, b_rev, alpha=0.5, out=c2)
    np.testing.assert_array_equal(bits(c2), bits(ref))
    # beta accumulates
    c3 = np.ones((m, n), dtype=np.float32)
    unitfp8.gemm(a, b, alpha=1.0, beta=2.0, out=c3)
    np.testing.assert_array_equal(c3, (matmul64(a, b) + 2.0).astype(np.float32))


def test_gemm_general_alpha_within_bound(rng):
    m, k, n = 8, 2048, 16
    a = (rng.standard_normal((m, k))).astype(E4M3)
    b = (rng.standard_normal((k, n))).astype(E5M2)
    alpha = 1 / np.sqrt(k)
    c = unitfp8.gemm(a, b, alpha=alpha)
    ref = alpha * matmul64(a, b)
    mag = alpha * (np.abs(a.astype(np.float64)) @ np.abs(b.astype(np.float64)))
    # f32 accumulation in blocks of 256: |err| <= (sqrt-ish) k·u bound, stated loosely as
    # (256 + k/256 + 2)·2^-24·sum|a||b|
    bound = (256 + k / 256 + 2) * 2.0**-24 * mag
    assert np.all(np.abs(c - ref) <= bound)
    # and the C ABI directly gives the same bits
    z = poison((m, n), F32)
    st = _lib.gemm(m, n, k, alpha, a.ctypes.data, _lib.E4M3, k, 1, b.ctypes.data, _lib.E5M2, n, 1, 0.0,
                   z.ctypes.data, _lib.F32, n, 1)
    assert st == 0
    np.testing.assert_array_equal(bits(c), bits(z))


def test_linear_exact_and_transposes(rng):
    batch, fan_in, fan_out = 13, 96, 40  # all different: a wrong transpose cannot line up
    x = exact_fp8(rng, (batch, fan_in), E4M3)
    w = exact_fp8(rng, (fan_out, fan_in), E4M3)
    dy = exact_fp8(rng, (batch, fan_out), E5M2)
    alpha = 0.25
    y = unitfp8.linear_forward(x, w, alpha=alpha)
    np.testing.assert_array_equal(y, (alpha * matmul64(x, w.T)).astype(np.float32))
    dx = unitfp8.linear_backward_data(dy, w, alpha=alpha)
    np.testing.assert_array_equal(dx, (alpha * matmul64(dy, w)).astype(np.float32))
    dw = unitfp8.linear_backward_weight(dy, x, alpha=alpha)
    np.testing.assert_array_equal(dw, (alpha * matmul64(dy.T, x)).astype(np.float32))
    # beta: accumulate into existing dx and dW
    acc = np.full((batch, fan_in), 0.5, np.float32)
    unitfp8.linear_backward_data(dy, w, alpha=alpha, beta=1.0, out=acc)
    np.testing.assert_array_equal(acc, (alpha * matmul64(dy, w) + 0.5).astype(np.float32))
    accw = np.full((fan_out, fan_in), -1.0, np.float32)
    unitfp8.linear_backward_weight(dy, x, alpha=alpha, beta=1.0, out=accw)
    np.testing.assert_array_equal(accw, (alpha * matmul64(dy.T, x) - 1.0).astype(np.float32))
    # default alpha is 1/sqrt(fan_in), as the library computes it
    y2 = unitfp8.linear_forward(x, w, out_dtype=BF16)
    z = poison((batch, fan_out), BF16)
    assert _lib.linear_forward(batch, fan_in, fan_out, float("nan"), x.ctypes.data, w.ctypes.data, z.ctypes.data, _lib.BF16) == 0
    np.testing.assert_array_equal(bits(y2), bits(z))
    a0 = unitfp8.default_alpha(fan_in)
    np.testing.assert_array_equal(bits(y2), bits((np.float32(a0) * matmul64(x, w.T).astype(np.float32)).astype(BF16)))


# ---------------------------------------------------------------------------------------------
# errors: documented type, message naming the argument


def _errors():
    x = np.zeros((4, 8), np.float32)
    x8 = np.zeros((4, 8), E4M3)
    w8 = np.zeros((6, 8), E4M3)
    dy8 = np.zeros((4, 6), E5M2)
    return [
        (lambda: unitfp8.cast([1.0], E4M3), TypeError, "x must be a numpy.ndarray"),
        (lambda: unitfp8.cast(x.astype(np.float64), E4M3), TypeError, "x.dtype"),
        (lambda: unitfp8.cast(x, np.int8), TypeError, "dtype"),
        (lambda: unitfp8.cast(x.T, E4M3), ValueError, "x must be C-contiguous"),
        (lambda: unitfp8.cast(x, E4M3, scale=float("inf")), ValueError, "scale"),
        (lambda: unitfp8.cast(x, E4M3, scale=0.0), ValueError, "nonzero"),
        (lambda: unitfp8.cast(x, E4M3, rounding="up"), ValueError, "rounding"),
        (lambda: unitfp8.cast(x, E4M3, rounding=7), ValueError, "rounding"),
        (lambda: unitfp8.cast(x, F16, rounding="stochastic"), NotImplementedError, "rounding"),
        (lambda: unitfp8.cast(x, E4M3, out=np.zeros((4, 7), E4M3)), ValueError, "out must have shape"),
        (lambda: unitfp8.cast(x, E4M3, out=np.zeros((4, 8), E5M2)), TypeError, "out.dtype"),
        (lambda: unitfp8.cast(x, E4M3, seed=1.5), TypeError, "seed"),
        (lambda: unitfp8.cast_transpose(x[None], E4M3), ValueError, "x must be 2-D"),
        (lambda: unitfp8.cast_transpose(x[:, ::2], E4M3), ValueError, "x must have unit column stride"),
        (lambda: unitfp8.cast_transpose(x, E4M3, out_t=np.zeros((4, 8), E4M3)), ValueError, "out_t must have shape"),
        (lambda: unitfp8.residual_mix(x, x[:2], 0.5), ValueError, "f must have shape"),
        (lambda: unitfp8.residual_mix(x, x.astype(F16), 0.5), TypeError, "f.dtype"),
        (lambda: unitfp8.residual_mix(x8, x8, 0.5), TypeError, "x.dtype"),
        (lambda: unitfp8.residual_mix(x, x, 1.5), ValueError, "tau"),
        (lambda: unitfp8.residual_mix(x, x, float("nan")), ValueError, "tau"),
        (lambda: unitfp8.residual_mix(x, x, 0.5, fp8_dtype=F16), TypeError, "fp8_dtype"),
        (lambda: unitfp8.residual_mix(x, x, 0.5, out=np.zeros((4, 7), np.float32)), ValueError, "out must have shape"),
        (lambda: unitfp8.residual_mix_backward(x, 0.5, accumulate=True), ValueError, "grad_x is required"),
        (lambda: unitfp8.gemm(x8, x8), ValueError, "b must have 8 rows"),
        (lambda: unitfp8.gemm(x, x8.T), TypeError, "a.dtype"),
        (lambda: unitfp8.gemm(x8, w8.T, beta=1.0), ValueError, "out is required"),
        (lambda: unitfp8.gemm(x8, w8.T, out=np.zeros((4, 6), F16)), TypeError, "out.dtype"),
        (lambda: unitfp8.gemm(x8, w8.T, out=np.zeros((4, 6), E4M3), beta=1.0), ValueError, "beta"),
        (lambda: unitfp8.gemm(x8, w8.T, alpha=float("nan")), ValueError, "alpha"),
        (lambda: unitfp8.linear_forward(x8, w8.T.copy()), ValueError, "w must have 8 columns"),
        (lambda: unitfp8.linear_forward(x, w8), TypeError, "x.dtype"),
        (lambda: unitfp8.linear_forward(x8, w8, out=np.zeros((4, 6), np.float32).T.copy().T), ValueError, "out must be C-contiguous"),
        (lambda: unitfp8.linear_backward_data(dy8, w8.T.copy()), ValueError, "w must have 6 rows"),
        (lambda: unitfp8.linear_backward_data(x8[:, :6], w8), TypeError, "dy.dtype"),
        (lambda: unitfp8.linear_backward_data(dy8, w8, beta=1.0), ValueError, "out is required"),
        (lambda: unitfp8.linear_backward_weight(dy8, x8[:3]), ValueError, "x must have 4 rows"),
        (lambda: unitfp8.linear_backward_weight(dy8, x8, out=np.zeros((6, 8), BF16)), TypeError, "out.dtype"),
        (lambda: unitfp8.set_num_threads(-1), ValueError, "threads"),
        (lambda: unitfp8.set_num_threads("2"), TypeError, "threads"),
        (lambda: unitfp8.set_num_threads(2**64 + 1), ValueError, "threads"),
        # the library reads alpha <= 0 or NaN as "the default": the package must not pass one on
        (lambda: unitfp8.linear_forward(x8, w8, alpha=-1.0), ValueError, "alpha must be positive"),
        (lambda: unitfp8.linear_forward(x8, w8, alpha=0.0), ValueError, "alpha must be positive"),
        (lambda: unitfp8.linear_forward(x8, w8, alpha=-0.0), ValueError, "alpha must be positive"),
        (lambda: unitfp8.linear_forward(x8, w8, alpha=1e-50), ValueError, "alpha must be positive"),
        (lambda: unitfp8.linear_backward_data(dy8, w8, alpha=-0.5), ValueError, "alpha must be positive"),
        (lambda: unitfp8.linear_backward_weight(dy8, x8, alpha=0.0), ValueError, "alpha must be positive"),
        (lambda: unitfp8.linear_forward(x8, w8, alpha="0.5"), TypeError, "alpha must be a real number"),
        # finite in float64, infinite in float32
        (lambda: unitfp8.gemm(x8, w8.T, alpha=1e300), ValueError, "alpha must be finite in float32"),
        (lambda: unitfp8.gemm(x8, w8.T, alpha=-3.5e38), ValueError, "alpha must be finite in float32"),
        (lambda: unitfp8.gemm(x8, w8.T, beta=1e39, out=np.zeros((4, 6), np.float32)), ValueError, "beta must be finite in float32"),
        (lambda: unitfp8.linear_forward(x8, w8, alpha=1e300), ValueError, "alpha must be finite in float32"),
        (lambda: unitfp8.cast(x, E4M3, scale=1e39), ValueError, "scale must be finite in float32"),
        (lambda: unitfp8.cast(x, E4M3, scale=1e-46), ValueError, "scale must be nonzero in float32"),
        (lambda: unitfp8.cast(x, E4M3, scale=None), TypeError, "scale must be a real number"),
        (lambda: unitfp8.residual_mix(x, x, "0.5"), TypeError, "tau must be a real number"),
        (lambda: unitfp8.residual_mix(x, x, None), TypeError, "tau must be a real number"),
        (lambda: unitfp8.residual_mix_backward(x, 0.5, grad_x=x.copy(), accumulate="no"), TypeError, "accumulate"),
        (lambda: unitfp8.residual_mix_backward(x, 0.5, grad_x=x.copy(), accumulate=2), TypeError, "accumulate"),
        (lambda: unitfp8.residual_mix(x, x, np.array(True)), TypeError, "tau must be a real number"),
        (lambda: unitfp8.cast(x, E4M3, seed=np.array(True)), TypeError, "seed must be an int"),
        (lambda: unitfp8.default_alpha(0), ValueError, "fan_in"),
    ]


@pytest.mark.parametrize("case", range(len(_errors())))
def test_errors_name_the_argument(case):
    fn, exc, text = _errors()[case]
    with pytest.raises(exc) as info:
        fn()
    assert text in str(info.value)
    if exc is not TypeError:
        assert isinstance(info.value, unitfp8.Unitfp8Error)


def test_library_errors_map_to_exceptions(rng):
    """Errors only the library detects (overlaps) come back as exceptions with the status."""
    buf = np.zeros(64, np.float32)
    with pytest.raises(unitfp8.OverlapError) as info:
        unitfp8.cast(buf[:32], np.float32, out=buf[1:33])
    assert info.value.status == _lib.ERROR_OVERLAP
    # the library's own detail message, in the package's argument names
    assert "x and out overlap" in str(info.value)
    with pytest.raises(unitfp8.OverlapError, match="out and x overlap"):
        _overlap_mix()
    a8 = np.zeros((8, 8), E4M3)
    c = np.zeros((8, 8), BF16)
    with pytest.raises(unitfp8.OverlapError, match="out maps two elements to one"):
        unitfp8.gemm(a8, a8, out=np.lib.stride_tricks.as_strided(c, (8, 8), (0, 2)))
    out, x8 = _overlapping_f32(a8)
    with pytest.raises(unitfp8.OverlapError, match="out and x overlap|x and out overlap"):
        unitfp8.linear_forward(x8, x8, out=out)


def _overlapping_f32(a8):
    """An (8, 8) float32 out whose bytes include a8's (a8 is 64 bytes at the start of it)."""
    buf = np.zeros(64, np.float32)
    a8_view = buf.view(np.uint8)[:64].view(E4M3).reshape(8, 8)
    a8_view[...] = a8
    return buf.reshape(8, 8), a8_view


def _overlap_mix():
    base = np.zeros(40, np.float32)
    x = base[:32]
    out = base[4:36]  # partly overlaps x: not allowed
    unitfp8.residual_mix(x, x, 0.5, out=out)


# ---------------------------------------------------------------------------------------------
# several Python threads at once (ctypes releases the GIL during each call)


def test_threads(rng):
    jobs = []
    for i in range(8):
        x = rng.standard_normal((64, 96)).astype(np.float32)
        a = exact_fp8(rng, (48, 256), E4M3)
        b = exact_fp8(rng, (256, 40), E5M2)
        jobs.append((x, a, b))
    expect = [(unitfp8.cast(x, E4M3, rounding="stochastic", seed=i), unitfp8.gemm(a, b)) for i, (x, a, b) in enumerate(jobs)]
    results = [None] * len(jobs)
    errors = []

    def work(i):
        try:
            x, a, b = jobs[i]
            for _ in range(20):
                r = (unitfp8.cast(x, E4M3, rounding="stochastic", seed=i), unitfp8.gemm(a, b))
            results[i] = r
        except Exception as e:  # pragma: no cover - reported below
            errors.append(e)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(len(jobs))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    for (e8, ec), (r8, rc) in zip(expect, results):
        np.testing.assert_array_equal(bits(e8), bits(r8))
        np.testing.assert_array_equal(bits(ec), bits(rc))


def test_thread_count_is_capped(rng):
    """Thread counts above 256 mean 256, and such a call computes what one thread does."""
    a = exact_fp8(rng, (96, 256), E4M3)
    b = exact_fp8(rng, (256, 80), E5M2)
    try:
        unitfp8.set_num_threads(1)
        one = unitfp8.gemm(a, b)
        for asked in (257, 10**6, 2**64 - 1):
            unitfp8.set_num_threads(asked)
            assert unitfp8.num_threads() == 256
            np.testing.assert_array_equal(bits(unitfp8.gemm(a, b)), bits(one))
    finally:
        unitfp8.set_num_threads(0)


def test_gemm_kernel_setting_and_amx(rng):
    default = unitfp8.gemm_kernel()
    assert default != "amx-bf16", "the default kernel must be an exact one"
    with pytest.raises(TypeError):
        unitfp8.set_gemm_kernel(3)
    with pytest.raises(unitfp8.InvalidArgumentError, match="name must be one of"):
        unitfp8.set_gemm_kernel("amx")
    assert unitfp8.gemm_kernel() == default
    # General values (not exactly summable), so that kernels summing in another order differ.
    a = (rng.standard_normal((70, 300)) * 4).astype(E4M3)
    b = (rng.standard_normal((300, 90)) * 4).astype(E5M2)
    want = unitfp8.gemm(a, b, alpha=0.25)
    try:
        unitfp8.set_gemm_kernel("scalar")
        assert unitfp8.gemm_kernel() == "scalar"
        assert bits(unitfp8.gemm(a, b, alpha=0.25)).tolist() == bits(want).tolist()
        try:
            unitfp8.set_gemm_kernel("amx-bf16")
        except unitfp8.UnsupportedError as e:
            assert "amx-bf16" in str(e)
            assert unitfp8.gemm_kernel() == "scalar"  # unchanged
            print("AMX part skipped: this CPU or system has no usable AMX-BF16")
            return
        assert unitfp8.gemm_kernel() == "amx-bf16"
        got = unitfp8.gemm(a, b, alpha=0.25).astype(np.float64)
        a64, b64 = a.astype(np.float64), b.astype(np.float64)
        exact = 0.25 * (a64 @ b64)
        mag = 0.25 * (np.abs(a64) @ np.abs(b64))
        bound = (300 / 32 + 4) * 2.0**-23 * mag + 2.0**-24 * np.abs(exact)
        assert np.all(np.abs(got - exact) <= bound)
        assert not np.array_equal(got, np.zeros_like(got))
    finally:
        unitfp8.set_gemm_kernel(None)
    assert unitfp8.gemm_kernel() == default


def test_gemm_kernel_from_environment():
    import subprocess
    import sys

    code = "import unitfp8; print(unitfp8.gemm_kernel())"
    for name in ("scalar", "no-such-kernel"):
        env = dict(__import__("os").environ, UNITFP8_GEMM_KERNEL=name)
        out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
        expect = "scalar" if name == "scalar" else unitfp8.gemm_kernel()
        assert out.stdout.strip() == expect


def test_numpy_api_works_without_torch():
    """torch is optional: with every ``import torch`` failing, the numpy API still casts and
    multiplies exactly, torch is never imported, ``unitfp8.torch`` raises an ImportError that
    says what to install, and the installed metadata requires torch only through an extra."""
    import subprocess
    import sys

    code = r"""
import importlib.abc, sys

class NoTorch(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name == "torch" or name.startswith("torch."):
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)
        return None

sys.meta_path.insert(0, NoTorch())
import ml_dtypes, numpy as np, unitfp8
rng = np.random.default_rng()
x = rng.standard_normal((5, 7)).astype(np.float32) * 3
q = unitfp8.cast(x, ml_dtypes.float8_e4m3fn)
assert np.array_equal(q.view(np.uint8), x.astype(ml_dtypes.float8_e4m3fn).view(np.uint8))
# small integers: every product and partial sum is exact in f32, so the f64 product is the answer
a = rng.integers(-8, 9, (5, 7)).astype(ml_dtypes.float8_e4m3fn)
b = rng.integers(-8, 9, (7, 3)).astype(ml_dtypes.float8_e4m3fn)
c = unitfp8.gemm(a, b)
assert np.array_equal(c, (a.astype(np.float64) @ b.astype(np.float64)).astype(np.float32))
assert not any(m == "torch" or m.startswith("torch.") for m in sys.modules), "torch was imported"
try:
    import unitfp8.torch
except ImportError as e:
    assert "pip install torch" in str(e), e
else:
    raise AssertionError("unitfp8.torch imported without torch")
from importlib.metadata import requires
reqs = requires("unitfp8")
assert any(r.startswith("torch") for r in reqs), reqs
assert all("extra ==" in r for r in reqs if r.startswith("torch")), reqs
print("ok")
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.returncode == 0 and out.stdout.strip() == "ok", out.stderr
