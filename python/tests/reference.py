"""Independent float64 / ml_dtypes references for the package tests."""

import ml_dtypes
import numpy as np

E4M3 = np.dtype(ml_dtypes.float8_e4m3fn)
E5M2 = np.dtype(ml_dtypes.float8_e5m2)
BF16 = np.dtype(ml_dtypes.bfloat16)
F16 = np.dtype(np.float16)
F32 = np.dtype(np.float32)
FLOATS = (F32, BF16, F16)
FP8 = (E4M3, E5M2)
ALL = FLOATS + FP8
MAX = {E4M3: 448.0, E5M2: 57344.0, BF16: float(ml_dtypes.finfo(BF16).max), F16: 65504.0}


def bits(a: np.ndarray) -> np.ndarray:
    """The raw bits of an array (for bit-for-bit comparisons that treat NaN == NaN)."""
    return np.ascontiguousarray(a).view(np.dtype(f"u{a.itemsize}"))


def cast_ref(x: np.ndarray, dtype, scale: float = 1.0, saturate: bool = True) -> np.ndarray:
    """round(x * scale) to dtype: the product in f32, one round-to-nearest-even (ml_dtypes), and
    for `saturate` values beyond ±max clipped to ±max first (NaN kept)."""
    dtype = np.dtype(dtype)
    with np.errstate(over="ignore", invalid="ignore"):
        return _cast_ref(x, dtype, scale, saturate)


def _cast_ref(x, dtype, scale, saturate):
    v = x.astype(np.float32) * np.float32(scale)
    if dtype == F32:
        return v
    if saturate:
        v = np.clip(v, -MAX[dtype], MAX[dtype])
    return v.astype(dtype)


def mix_coeffs(tau: float):
    t = np.float32(tau)
    return np.sqrt(np.float32(1) - t), np.sqrt(t)


def mix_ref(x: np.ndarray, f: np.ndarray, tau: float) -> np.ndarray:
    a, b = mix_coeffs(tau)
    out = (a * x.astype(np.float32)).astype(np.float32) + (b * f.astype(np.float32)).astype(np.float32)
    return out.astype(x.dtype)


def exact_fp8(rng: np.random.Generator, shape, dtype) -> np.ndarray:
    """FP8 values k/8 with |k| <= 32 (exact in E4M3 and E5M2 only where representable): every
    product and partial sum of a GEMM with k < 4096 is exact in f32, so the float64 product is
    the library's result bit for bit."""
    vals = rng.integers(-32, 33, size=shape).astype(np.float64) / 8.0
    out = vals.astype(dtype)
    return out


def matmul64(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return a.astype(np.float64) @ b.astype(np.float64)
