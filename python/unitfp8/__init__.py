"""unitfp8: FP8 kernels for unit-scaled (μS) training, on numpy arrays.

Element types are numpy dtypes: ``numpy.float32``, ``numpy.float16`` and the ``ml_dtypes`` types
``bfloat16``, ``float8_e4m3fn`` (E4M3, max 448, no infinities) and ``float8_e5m2`` (E5M2, max
57344), re-exported here as :data:`bfloat16`, :data:`float8_e4m3fn` and :data:`float8_e5m2`.

Every function checks its arguments and raises before the library runs: ``TypeError`` for an
argument of the wrong type or dtype, :class:`InvalidArgumentError` (a ``ValueError``) for a bad
shape, layout or value, :class:`OverlapError` (``ValueError``) for outputs that overlap inputs,
:class:`UnsupportedError` (``NotImplementedError``) for valid but unsupported combinations. The
message names the argument. Arrays are never copied behind your back: inputs that are not laid
out as a function needs are rejected (2-D matrices may have any row stride).

PyTorch layers and custom operators are in :mod:`unitfp8.torch` (needs ``torch``).
"""

from __future__ import annotations

import enum
from typing import Optional, Tuple, Union

import ml_dtypes
import numpy as np

from . import _args, _lib
from ._args import default_alpha
from ._lib import (
    CudaError,
    InternalError,
    InvalidArgumentError,
    OverlapError,
    Unitfp8Error,
    UnsupportedError,
)

__all__ = [
    "Rounding",
    "RoundingLike",
    "bfloat16",
    "float8_e4m3fn",
    "float8_e5m2",
    "cast",
    "cast_transpose",
    "residual_mix",
    "residual_mix_backward",
    "gemm",
    "linear_forward",
    "linear_backward_data",
    "linear_backward_weight",
    "default_alpha",
    "set_num_threads",
    "num_threads",
    "set_gemm_kernel",
    "gemm_kernel",
    "GEMM_KERNELS",
    "backend",
    "version",
    "cuda_available",
    "Unitfp8Error",
    "InvalidArgumentError",
    "OverlapError",
    "UnsupportedError",
    "InternalError",
    "CudaError",
]

__version__ = "0.1.0"

bfloat16 = ml_dtypes.bfloat16
float8_e4m3fn = ml_dtypes.float8_e4m3fn
float8_e5m2 = ml_dtypes.float8_e5m2

DTypeLike = Union[np.dtype, type, str]


class Rounding(enum.IntEnum):
    """Rounding mode of a conversion to FP8 (and to bf16/f16).

    - ``NEAREST_SATURATE`` (``"nearest_saturate"``, the μS clip-cast): round to nearest even;
      values beyond ±max and ±Inf become ±max; NaN stays NaN.
    - ``NEAREST`` (``"nearest"``): round to nearest even with IEEE-style overflow (E4M3 overflow
      and ±Inf become NaN, E5M2/bf16/f16 overflow becomes ±Inf); equals ``ml_dtypes`` and
      PyTorch ``.to()``.
    - ``STOCHASTIC_SATURATE`` (``"stochastic"``): unbiased stochastic rounding with saturation,
      FP8 destinations only; element ``i`` draws its random bits from ``(seed, i)``, so results
      do not depend on threads or back end.
    """

    NEAREST_SATURATE = 0
    NEAREST = 1
    STOCHASTIC_SATURATE = 2


RoundingLike = Union[Rounding, str, int]

_ROUNDING_NAMES = {
    "nearest_saturate": Rounding.NEAREST_SATURATE,
    "saturate": Rounding.NEAREST_SATURATE,
    "nearest": Rounding.NEAREST,
    "stochastic": Rounding.STOCHASTIC_SATURATE,
    "stochastic_saturate": Rounding.STOCHASTIC_SATURATE,
}

_FLOAT_CODES = (_lib.F32, _lib.BF16, _lib.F16)
_FP8_CODES = (_lib.E4M3, _lib.E5M2)
_ALL_CODES = _FLOAT_CODES + _FP8_CODES


def _rounding(rounding: RoundingLike, name: str = "rounding") -> int:
    if isinstance(rounding, str):
        try:
            return int(_ROUNDING_NAMES[rounding.lower()])
        except KeyError:
            raise InvalidArgumentError(
                f"{name} must be one of {sorted(_ROUNDING_NAMES)} or a Rounding, got {rounding!r}"
            ) from None
    if isinstance(rounding, (int, np.integer)) and not isinstance(rounding, bool):
        try:
            return int(Rounding(int(rounding)))
        except ValueError:
            raise InvalidArgumentError(f"{name} must be 0, 1 or 2 (a Rounding), got {rounding}") from None
    raise TypeError(f"{name} must be a Rounding or a string, got {type(rounding).__name__}")


def _dtype_code(dtype: DTypeLike, name: str, allowed=_ALL_CODES) -> int:
    try:
        dt = np.dtype(dtype)
    except TypeError:
        raise TypeError(f"{name} must be a numpy dtype, got {dtype!r}") from None
    code = _lib.CODE_OF_NP.get(dt)
    if code is None or code not in allowed:
        names = ", ".join(_lib.TYPE_NAME[c] for c in allowed)
        raise TypeError(f"{name} must be one of {names}, got {dt}")
    return code


def _array(a, name: str, allowed=_ALL_CODES, writable: bool = False) -> int:
    if not isinstance(a, np.ndarray):
        raise TypeError(f"{name} must be a numpy.ndarray, got {type(a).__name__}")
    code = _dtype_code(a.dtype, f"{name}.dtype", allowed)
    if writable and not a.flags.writeable:
        raise InvalidArgumentError(f"{name} is read-only")
    return code


def _contiguous(a: np.ndarray, name: str) -> None:
    if not a.flags.c_contiguous:
        raise InvalidArgumentError(
            f"{name} must be C-contiguous (strides {a.strides}); pass np.ascontiguousarray({name})"
        )


def _ld(a: np.ndarray, name: str) -> int:
    """Leading dimension (elements) of a 2-D array with unit column stride."""
    if a.ndim != 2:
        raise InvalidArgumentError(f"{name} must be 2-D, got shape {a.shape}")
    rows, cols = a.shape
    if rows == 0 or cols == 0:
        return max(cols, 1)  # an empty matrix: no element is read or written, any strides do
    item = a.itemsize
    if cols > 1 and a.strides[1] != item:
        raise InvalidArgumentError(
            f"{name} must have unit column stride (row-major rows), got strides {a.strides}"
        )
    if rows <= 1:
        return max(cols, 1)
    s = a.strides[0]
    if s < 0 or s % item or s // item < cols:
        raise InvalidArgumentError(
            f"{name} row stride ({s} bytes) must be a non-negative multiple of {item} bytes "
            f"covering its {cols} columns"
        )
    return s // item


def _elem_strides(a: np.ndarray, name: str) -> Tuple[int, int]:
    if a.ndim != 2:
        raise InvalidArgumentError(f"{name} must be 2-D, got shape {a.shape}")
    item = a.itemsize
    rs, cs = a.strides
    if rs % item or cs % item:
        raise InvalidArgumentError(f"{name} strides {a.strides} must be multiples of its itemsize {item}")
    return rs // item, cs // item


def _out(out, name: str, shape, code: int) -> np.ndarray:
    if out is None:
        return np.empty(shape, dtype=_lib.NP_DTYPE[code])
    _array(out, name, (code,), writable=True)
    if tuple(out.shape) != tuple(shape):
        raise InvalidArgumentError(f"{name} must have shape {tuple(shape)}, got {out.shape}")
    return out


# ---------------------------------------------------------------------------------------------
# Information and threads


def version() -> str:
    """The library version, ``"MAJOR.MINOR.PATCH"``."""
    return _lib.version().decode()


def backend() -> str:
    """The CPU back end running the kernels: ``"scalar"``, ``"avx512"`` or ``"neon"``."""
    return _lib.backend().decode()


def set_num_threads(threads: int) -> None:
    """Sets the number of worker threads of later calls, process-wide; 0 restores the default
    (``UNITFP8_NUM_THREADS``, else the number of CPUs); counts above 256 mean 256 (see
    :func:`num_threads`). Results never depend on it.

    Raises ``TypeError`` for a non-integer and :class:`InvalidArgumentError` for a value below 0
    or above 2^64 - 1 (the C ``size_t`` the library takes).
    """
    n = _args.integer(threads, "threads")
    if not 0 <= n <= _args.SIZE_MAX:
        raise InvalidArgumentError(f"threads must be in [0, 2^64 - 1], got {n}")
    _lib.set_num_threads(n)


def num_threads() -> int:
    """The number of threads later calls use, the caller included (1 to 256)."""
    return int(_lib.get_num_threads())


#: The CPU GEMM kernel names :func:`set_gemm_kernel` takes (besides ``"default"``).
GEMM_KERNELS = ("amx-bf16", "avx512-bf16", "avx512-fma", "avx2-fma", "neon", "scalar")


def set_gemm_kernel(name: Optional[str]) -> None:
    """Chooses the CPU GEMM kernel of later calls, process-wide (all GEMM and linear functions,
    and the ``unitfp8.torch`` ops and modules on CPU tensors).

    ``"amx-bf16"`` opts in to the AMX kernel (x86-64 CPUs with AMX such as Xeon Sapphire Rapids
    and later, on Linux): several times faster on large products, but **not bit-identical** to
    the other kernels, because AMX sums the products inside each instruction in an order of its
    own (the error stays within ``(k/32 + 4)·2⁻²³·Σ|a·b|``, f32 accumulation as always).
    ``None`` or ``"default"`` restores the back end's own, exact kernel, the default unless the
    environment variable ``UNITFP8_GEMM_KERNEL`` names one. The other names (``GEMM_KERNELS``)
    select an exact kernel. Thread-safe; calls already running are not affected.

    Raises:
        TypeError: ``name`` is not a string or None.
        InvalidArgumentError: an unknown name.
        UnsupportedError: a kernel this CPU or system cannot run (the setting is unchanged).
    """
    if name is not None and not isinstance(name, str):
        raise TypeError(f"name must be a str or None, got {type(name).__name__}")
    if name is not None and name != "default" and name not in GEMM_KERNELS:
        raise InvalidArgumentError(
            f"name must be one of {', '.join(GEMM_KERNELS)} or 'default', got {name!r}"
        )
    _lib.check(_lib.set_gemm_kernel(None if name is None else name.encode()), "set_gemm_kernel")


def gemm_kernel() -> str:
    """The CPU GEMM kernel later calls use, e.g. ``"avx512-bf16"`` or ``"amx-bf16"`` (see
    :func:`set_gemm_kernel`); problems of a few rows may take an exact short-problem kernel of
    the same family."""
    return _lib.gemm_kernel().decode()


def cuda_available() -> bool:
    """Whether the library's CUDA back end can run in this process (built with the ``cuda``
    feature, a driver, and a GPU of compute capability 8.9 or newer)."""
    return _lib.cuda_status() == _lib.OK


# ---------------------------------------------------------------------------------------------
# Casts


def cast(
    x: np.ndarray,
    dtype: DTypeLike,
    *,
    scale: float = 1.0,
    rounding: RoundingLike = Rounding.NEAREST_SATURATE,
    seed: int = 0,
    out: Optional[np.ndarray] = None,
    return_amax: bool = False,
) -> Union[np.ndarray, Tuple[np.ndarray, float]]:
    """Casts every element: ``out[i] = round(x[i] * scale)``.

    Args:
        x: C-contiguous array of float32, float16, bfloat16, float8_e4m3fn or float8_e5m2.
        dtype: destination element type (one of the same five).
        scale: multiplier applied in f32 before rounding (1 for μS); must be finite and nonzero
            (``0·Inf`` would give a NaN whose sign depends on the CPU architecture). The source
            widens to f32 exactly, then one f32 multiply, then one rounding.
        rounding: a :class:`Rounding` or its name (``"nearest_saturate"``, ``"nearest"``,
            ``"stochastic"``); FP8/bf16/f16 destinations are rounded, f32 ones never.
            Stochastic rounding needs an FP8 destination.
        seed: key of stochastic rounding (element ``i`` uses ``(seed, i)``); ignored otherwise.
        out: optional C-contiguous destination of ``x``'s shape and ``dtype``; may be ``x`` itself
            when both types have the same size (in place).
        return_amax: also return ``max |x|`` before scaling (NaN if any element is NaN, 0 if
            empty).

    Returns:
        The cast array, or ``(array, amax)``.

    Raises:
        TypeError: ``x``/``out`` not an ndarray or of an unsupported dtype, ``scale`` not a
            number, ``seed`` not an int.
        InvalidArgumentError: non-contiguous ``x``/``out``, wrong ``out`` shape, ``scale`` not
            finite or zero in float32 (``|scale|`` at least 3.4e38, or at most 2^-150), unknown
            ``rounding``.
        UnsupportedError: stochastic rounding to float32/bfloat16/float16.
        OverlapError: ``out`` partly overlaps ``x``.
    """
    src = _array(x, "x")
    dst = _dtype_code(dtype, "dtype")
    r = _rounding(rounding)
    s = _args.scale(scale)
    _contiguous(x, "x")
    y = _out(out, "out", x.shape, dst)
    _contiguous(y, "out")
    if r == Rounding.STOCHASTIC_SATURATE and dst not in _FP8_CODES:
        raise UnsupportedError(f"rounding: stochastic rounding needs an FP8 dtype, got {_lib.TYPE_NAME[dst]}")
    amax = _lib.ctypes.c_float(0.0) if return_amax else None
    _lib.check(
        _lib.cast(
            x.ctypes.data, src, y.ctypes.data, dst, x.size, s, r, _args.seed(seed),
            _lib.ctypes.byref(amax) if amax is not None else None,
        ),
        "cast",
        "out must be x itself or not overlap it",
        {"src": "x", "dst": "out"},
    )
    return (y, float(amax.value)) if amax is not None else y


def cast_transpose(
    x: np.ndarray,
    dtype: DTypeLike,
    *,
    scale: float = 1.0,
    rounding: RoundingLike = Rounding.NEAREST_SATURATE,
    seed: int = 0,
    out: Optional[np.ndarray] = None,
    out_t: Optional[np.ndarray] = None,
    transposed_only: bool = False,
    return_amax: bool = False,
) -> Union[Tuple[Optional[np.ndarray], np.ndarray], Tuple[Optional[np.ndarray], np.ndarray, float]]:
    """Casts a ``rows x cols`` matrix and writes its transpose in the same pass:
    ``out[r, c] = out_t[c, r] = round(x[r, c] * scale)``.

    Args:
        x: 2-D array with unit column stride and any row stride (a row-major matrix or a view of
            rows of one), of float32, float16, bfloat16, float8_e4m3fn or float8_e5m2.
        dtype: destination element type of both outputs.
        scale, rounding, seed: as :func:`cast`; stochastic rounding keys element ``(r, c)`` by
            ``r*cols + c``, so ``out_t`` is exactly the transpose of ``out`` and equals
            :func:`cast` of the contiguous matrix with the same seed.
        out: optional ``rows x cols`` destination (unit column stride, any row stride).
        out_t: optional ``cols x rows`` destination of the transpose (unit column stride).
        transposed_only: compute only the transpose (``out`` is then returned as ``None``).
        return_amax: also return ``max |x|`` before scaling.

    Returns:
        ``(out, out_t)`` or ``(out, out_t, amax)``.

    Raises:
        TypeError, InvalidArgumentError, UnsupportedError: as :func:`cast`; a 3-D input or a
        column stride other than one is an :class:`InvalidArgumentError`.
        OverlapError: outputs overlap each other or ``x``.
    """
    src = _array(x, "x")
    dst = _dtype_code(dtype, "dtype")
    r = _rounding(rounding)
    s = _args.scale(scale)
    ld_src = _ld(x, "x")
    rows, cols = x.shape
    if r == Rounding.STOCHASTIC_SATURATE and dst not in _FP8_CODES:
        raise UnsupportedError(f"rounding: stochastic rounding needs an FP8 dtype, got {_lib.TYPE_NAME[dst]}")
    y = None
    if not transposed_only or out is not None:
        y = _out(out, "out", (rows, cols), dst)
    yt = _out(out_t, "out_t", (cols, rows), dst)
    ld_y = _ld(y, "out") if y is not None else 0
    ld_yt = _ld(yt, "out_t")
    amax = _lib.ctypes.c_float(0.0) if return_amax else None
    _lib.check(
        _lib.cast_transpose(
            x.ctypes.data, src, rows, cols, ld_src,
            y.ctypes.data if y is not None else None, ld_y,
            yt.ctypes.data, ld_yt, dst, s, r, _args.seed(seed),
            _lib.ctypes.byref(amax) if amax is not None else None,
        ),
        "cast_transpose",
        "out, out_t and x must not overlap",
        {"src": "x", "dst": "out", "dst_t": "out_t", "ld_src": "x row stride", "ld_dst": "out row stride", "ld_dst_t": "out_t row stride"},
    )
    if amax is not None:
        return y, yt, float(amax.value)
    return y, yt


# ---------------------------------------------------------------------------------------------
# Residual mix


def _same_shape(a: np.ndarray, name: str, shape) -> None:
    if tuple(a.shape) != tuple(shape):
        raise InvalidArgumentError(f"{name} must have shape {tuple(shape)}, got {a.shape}")


def _fp8_copy(
    fp8_dtype: Optional[DTypeLike], out: Optional[np.ndarray], name: str, shape, default_code: int
) -> Tuple[int, Optional[np.ndarray]]:
    """The FP8 type code and C-contiguous destination of an optional FP8 copy (``None`` when
    neither ``fp8_dtype`` nor ``out`` asks for one); ``fp8_dtype`` wins over ``out``'s dtype,
    ``default_code`` names the format when no copy is made."""
    if fp8_dtype is None and out is None:
        return default_code, None
    if fp8_dtype is not None:
        code = _dtype_code(fp8_dtype, "fp8_dtype", _FP8_CODES)
    else:
        code = _array(out, name, _FP8_CODES)
    y8 = _out(out, name, shape, code)
    _contiguous(y8, name)
    return code, y8


def residual_mix(
    x: np.ndarray,
    f: np.ndarray,
    tau: float,
    *,
    out: Optional[np.ndarray] = None,
    fp8_dtype: Optional[DTypeLike] = None,
    out_fp8: Optional[np.ndarray] = None,
    rounding: RoundingLike = Rounding.NEAREST_SATURATE,
    seed: int = 0,
) -> Union[np.ndarray, Tuple[np.ndarray, np.ndarray]]:
    """The μS fixed(τ) residual mix ``out = sqrt(1-tau)*x + sqrt(tau)*f``, optionally with an
    FP8 copy ``out_fp8 = round(out)`` of the stored output (the next layer's FP8 input).

    Arithmetic is f32: inputs widen exactly, ``sqrt(1-tau)`` and ``sqrt(tau)`` are correctly
    rounded f32 values, each product is rounded to f32, then they are added (no FMA); a
    bf16/f16 output rounds to nearest even.

    Args:
        x, f: C-contiguous arrays of one shape and one dtype (float32, bfloat16 or float16).
        tau: τ in [0, 1].
        out: optional destination (same shape and dtype); ``out=x`` or ``out=f`` updates in
            place; any other overlap is an error.
        fp8_dtype: request the FP8 copy in this type (float8_e4m3fn or float8_e5m2); implied by
            ``out_fp8``.
        out_fp8: optional C-contiguous destination of the FP8 copy.
        rounding, seed: rounding of the FP8 copy (as :func:`cast`); equal to ``cast(out)``.

    Returns:
        ``out``, or ``(out, out_fp8)`` when an FP8 copy was requested.

    Raises:
        TypeError: unsupported dtypes (FP8 ``x``, non-FP8 ``fp8_dtype``), mismatched dtypes.
        InvalidArgumentError: shapes differ, non-contiguous arrays, ``tau`` outside [0, 1].
        OverlapError: ``out`` partly overlaps ``x`` or ``f``, or ``out_fp8`` overlaps anything.
    """
    io = _array(x, "x", _FLOAT_CODES)
    _array(f, "f", (io,))
    _same_shape(f, "f", x.shape)
    _contiguous(x, "x")
    _contiguous(f, "f")
    t = _args.tau(tau)
    r = _rounding(rounding)
    y = _out(out, "out", x.shape, io)
    _contiguous(y, "out")
    fcode, y8 = _fp8_copy(fp8_dtype, out_fp8, "out_fp8", x.shape, _lib.E4M3)
    _lib.check(
        _lib.residual_mix(
            x.ctypes.data, f.ctypes.data, y.ctypes.data, io, x.size, t,
            y8.ctypes.data if y8 is not None else None, fcode, r, _args.seed(seed),
        ),
        "residual_mix",
        "out must be x, f, or disjoint from both; out_fp8 must not overlap any array",
    )
    return (y, y8) if y8 is not None else y


def residual_mix_backward(
    grad_out: np.ndarray,
    tau: float,
    *,
    grad_x: Optional[np.ndarray] = None,
    accumulate: bool = False,
    grad_f: Optional[np.ndarray] = None,
    fp8_dtype: Optional[DTypeLike] = None,
    grad_f_fp8: Optional[np.ndarray] = None,
    rounding: RoundingLike = Rounding.NEAREST_SATURATE,
    seed: int = 0,
) -> Union[Tuple[np.ndarray, np.ndarray], Tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """Backward of :func:`residual_mix` with ``g = grad_out``:
    ``grad_x = sqrt(1-tau)*g`` (``grad_x += sqrt(1-tau)*g`` with ``accumulate=True``) and
    ``grad_f = sqrt(tau)*g``, plus an optional FP8 copy of ``grad_f`` (normally E5M2).

    Args:
        grad_out: C-contiguous float32, bfloat16 or float16 array.
        tau: τ in [0, 1].
        grad_x: destination (same shape and dtype); required when ``accumulate`` is true (it is
            read and added to, in f32, then rounded once).
        accumulate: add into ``grad_x`` instead of overwriting it.
        grad_f: optional destination; may be ``grad_out`` itself.
        fp8_dtype, grad_f_fp8: request the FP8 copy of ``grad_f`` (float8_e5m2 or float8_e4m3fn).
        rounding, seed: rounding of the FP8 copy.

    Returns:
        ``(grad_x, grad_f)`` or ``(grad_x, grad_f, grad_f_fp8)``.

    Raises:
        TypeError, InvalidArgumentError, OverlapError: as :func:`residual_mix`;
        InvalidArgumentError when ``accumulate`` is true and ``grad_x`` is missing.
    """
    io = _array(grad_out, "grad_out", _FLOAT_CODES)
    _contiguous(grad_out, "grad_out")
    t = _args.tau(tau)
    r = _rounding(rounding)
    accumulate = _args.flag(accumulate, "accumulate")
    if accumulate and grad_x is None:
        raise InvalidArgumentError("grad_x is required when accumulate=True")
    gx = _out(grad_x, "grad_x", grad_out.shape, io)
    gf = _out(grad_f, "grad_f", grad_out.shape, io)
    _contiguous(gx, "grad_x")
    _contiguous(gf, "grad_f")
    fcode, g8 = _fp8_copy(fp8_dtype, grad_f_fp8, "grad_f_fp8", grad_out.shape, _lib.E5M2)
    _lib.check(
        _lib.residual_mix_backward(
            grad_out.ctypes.data, gx.ctypes.data, gf.ctypes.data, io, grad_out.size, t,
            1 if accumulate else 0, g8.ctypes.data if g8 is not None else None, fcode, r,
            _args.seed(seed),
        ),
        "residual_mix_backward",
        "grad_x and grad_f may each be grad_out but must not overlap each other",
    )
    return (gx, gf, g8) if g8 is not None else (gx, gf)


# ---------------------------------------------------------------------------------------------
# GEMM and the μS linear layer

_GEMM_OUT = (_lib.F32, _lib.BF16, _lib.E4M3, _lib.E5M2)


def gemm(
    a: np.ndarray,
    b: np.ndarray,
    *,
    alpha: float = 1.0,
    beta: float = 0.0,
    out: Optional[np.ndarray] = None,
    out_dtype: DTypeLike = np.float32,
) -> np.ndarray:
    """``C ← alpha·A·B + beta·C`` with FP8 ``A`` (m×k) and ``B`` (k×n), accumulated in f32.

    Any strides (in whole elements, any sign) are passed through: ``a.T``, column-major and
    sliced views need no copies. The result is bit-identical for any thread count and back end
    (unless the opt-in AMX kernel was chosen with :func:`set_gemm_kernel`).

    Args:
        a: 2-D float8_e4m3fn or float8_e5m2 array, ``m x k``.
        b: 2-D float8_e4m3fn or float8_e5m2 array, ``k x n``.
        alpha, beta: multipliers, finite in f32 (a float64 beyond 3.4e38 is an error);
            ``beta = 0`` never reads ``out``.
        out: optional ``m x n`` destination (any strides that do not map two elements to one)
            of float32, bfloat16, float8_e4m3fn or float8_e5m2; required when ``beta != 0``.
        out_dtype: type of a new ``out`` (ignored when ``out`` is given).

    Returns:
        ``out``.

    Raises:
        TypeError: non-FP8 ``a``/``b``, float16 or other ``out`` dtypes.
        InvalidArgumentError: not 2-D, inner dimensions differ, ``beta != 0`` without ``out`` or
            with an FP8 ``out``, ``alpha``/``beta`` not finite in f32.
        OverlapError: ``out`` overlaps ``a`` or ``b`` or maps two elements to one.
    """
    at = _array(a, "a", _FP8_CODES)
    bt = _array(b, "b", _FP8_CODES)
    if a.ndim != 2 or b.ndim != 2:
        raise InvalidArgumentError(f"a and b must be 2-D, got shapes {a.shape} and {b.shape}")
    m, k = a.shape
    if b.shape[0] != k:
        raise InvalidArgumentError(f"b must have {k} rows (a's columns), got shape {b.shape}")
    n = b.shape[1]
    al = _args.f32(alpha, "alpha")
    be = _args.f32(beta, "beta")
    if out is None:
        if be != 0.0:
            raise InvalidArgumentError("out is required when beta != 0")
        ct = _dtype_code(out_dtype, "out_dtype", _GEMM_OUT)
        c = np.empty((m, n), dtype=_lib.NP_DTYPE[ct])
    else:
        ct = _array(out, "out", _GEMM_OUT, writable=True)
        _same_shape(out, "out", (m, n))
        c = out
    if ct in _FP8_CODES and be != 0.0:
        raise InvalidArgumentError("beta must be 0 for an FP8 out")
    ars, acs = _elem_strides(a, "a")
    brs, bcs = _elem_strides(b, "b")
    crs, ccs = _elem_strides(c, "out")
    _lib.check(
        _lib.gemm(
            m, n, k, al, a.ctypes.data, at, ars, acs, b.ctypes.data, bt, brs, bcs, be,
            c.ctypes.data, ct, crs, ccs,
        ),
        "gemm",
        "out must not overlap a or b, nor map two elements to one address",
        {"c": "out"},
    )
    return c


def _dense2(a, name: str, allowed) -> int:
    code = _array(a, name, allowed)
    if a.ndim != 2:
        raise InvalidArgumentError(f"{name} must be 2-D, got shape {a.shape}")
    _contiguous(a, name)
    return code


def linear_forward(
    x: np.ndarray,
    w: np.ndarray,
    *,
    alpha: Optional[float] = None,
    out: Optional[np.ndarray] = None,
    out_dtype: DTypeLike = np.float32,
) -> np.ndarray:
    """μS linear forward, PyTorch layout: ``y[batch, fan_out] = alpha·x·wᵀ``.

    Args:
        x: C-contiguous float8_e4m3fn ``[batch, fan_in]``.
        w: C-contiguous float8_e4m3fn ``[fan_out, fan_in]`` (an ``nn.Linear`` weight).
        alpha: positive multiplier, finite in f32; ``None`` means ``1/sqrt(fan_in)``
            (:func:`default_alpha`).
        out: optional C-contiguous ``[batch, fan_out]`` float32/bfloat16/float8 destination.
        out_dtype: type of a new ``out``.

    Returns:
        ``y``.

    Raises:
        TypeError: ``x``/``w`` not E4M3, unsupported ``out`` dtype.
        InvalidArgumentError: shapes disagree, non-contiguous arrays, ``alpha`` not positive or not
            finite in f32.
        OverlapError: ``out`` overlaps ``x`` or ``w``.
    """
    _dense2(x, "x", (_lib.E4M3,))
    _dense2(w, "w", (_lib.E4M3,))
    batch, fan_in = x.shape
    if w.shape[1] != fan_in:
        raise InvalidArgumentError(f"w must have {fan_in} columns (x's fan_in), got shape {w.shape}")
    fan_out = w.shape[0]
    al = _args.alpha(alpha, fan_in)
    yt = _array(out, "out", _GEMM_OUT, writable=True) if out is not None else _dtype_code(out_dtype, "out_dtype", _GEMM_OUT)
    y = _out(out, "out", (batch, fan_out), yt)
    _contiguous(y, "out")
    _lib.check(
        _lib.linear_forward(batch, fan_in, fan_out, al, x.ctypes.data, w.ctypes.data, y.ctypes.data, yt),
        "linear_forward",
        "out must not overlap x or w",
        {"y": "out"},
    )
    return y


def linear_backward_data(
    dy: np.ndarray,
    w: np.ndarray,
    *,
    alpha: Optional[float] = None,
    beta: float = 0.0,
    out: Optional[np.ndarray] = None,
    out_dtype: DTypeLike = np.float32,
) -> np.ndarray:
    """μS linear backward data: ``dx[batch, fan_in] ← alpha·dy·w + beta·dx``.

    Args:
        dy: C-contiguous float8_e5m2 ``[batch, fan_out]``.
        w: C-contiguous float8_e4m3fn ``[fan_out, fan_in]``.
        alpha: positive multiplier, finite in f32; ``None`` means ``1/sqrt(fan_in)``.
        beta: ``0`` overwrites ``out`` without reading it; ``1`` accumulates (e.g. a residual
            gradient); needs ``out`` when nonzero.
        out: optional C-contiguous ``[batch, fan_in]`` float32/bfloat16 destination (FP8 only
            with ``beta = 0``).
        out_dtype: type of a new ``out``.

    Returns:
        ``dx``.

    Raises:
        TypeError: ``dy`` not E5M2, ``w`` not E4M3, unsupported ``out`` dtype.
        InvalidArgumentError: shapes disagree, non-contiguous arrays, ``beta != 0`` without
            ``out``, ``alpha`` not positive, ``alpha``/``beta`` not finite in f32.
        OverlapError: ``out`` overlaps ``dy`` or ``w``.
    """
    _dense2(dy, "dy", (_lib.E5M2,))
    _dense2(w, "w", (_lib.E4M3,))
    batch, fan_out = dy.shape
    if w.shape[0] != fan_out:
        raise InvalidArgumentError(f"w must have {fan_out} rows (dy's fan_out), got shape {w.shape}")
    fan_in = w.shape[1]
    al = _args.alpha(alpha, fan_in)
    be = _args.f32(beta, "beta")
    if out is None and be != 0.0:
        raise InvalidArgumentError("out is required when beta != 0")
    dt = _array(out, "out", _GEMM_OUT, writable=True) if out is not None else _dtype_code(out_dtype, "out_dtype", _GEMM_OUT)
    dx = _out(out, "out", (batch, fan_in), dt)
    _contiguous(dx, "out")
    if dt in _FP8_CODES and be != 0.0:
        raise InvalidArgumentError("beta must be 0 for an FP8 out")
    st = _lib.linear_backward_data(
        batch, fan_in, fan_out, al, dy.ctypes.data, w.ctypes.data, be, dx.ctypes.data, dt
    )
    _lib.check(st, "linear_backward_data", "out must not overlap dy or w", {"dx": "out"})
    return dx


def linear_backward_weight(
    dy: np.ndarray,
    x: np.ndarray,
    *,
    alpha: Optional[float] = None,
    beta: float = 0.0,
    out: Optional[np.ndarray] = None,
) -> np.ndarray:
    """μS linear backward weight: ``dW[fan_out, fan_in] ← alpha·dyᵀ·x + beta·dW`` in float32.

    Args:
        dy: C-contiguous float8_e5m2 ``[batch, fan_out]``.
        x: C-contiguous float8_e4m3fn ``[batch, fan_in]``.
        alpha: positive multiplier, finite in f32; ``None`` means ``1/sqrt(fan_in)``.
        beta: ``0`` overwrites ``out`` without reading it; ``1`` accumulates into the f32 master
            gradient; needs ``out`` when nonzero.
        out: optional C-contiguous float32 ``[fan_out, fan_in]`` destination.

    Returns:
        ``dW``.

    Raises:
        TypeError: ``dy`` not E5M2, ``x`` not E4M3, ``out`` not float32.
        InvalidArgumentError: batch sizes differ, non-contiguous arrays, ``beta != 0`` without
            ``out``, ``alpha`` not positive, ``alpha``/``beta`` not finite in f32.
        OverlapError: ``out`` overlaps ``dy`` or ``x``.
    """
    _dense2(dy, "dy", (_lib.E5M2,))
    _dense2(x, "x", (_lib.E4M3,))
    batch, fan_out = dy.shape
    if x.shape[0] != batch:
        raise InvalidArgumentError(f"x must have {batch} rows (dy's batch), got shape {x.shape}")
    fan_in = x.shape[1]
    al = _args.alpha(alpha, fan_in)
    be = _args.f32(beta, "beta")
    if out is None and be != 0.0:
        raise InvalidArgumentError("out is required when beta != 0")
    dw = _out(out, "out", (fan_out, fan_in), _lib.F32)
    _contiguous(dw, "out")
    _lib.check(
        _lib.linear_backward_weight(
            batch, fan_in, fan_out, al, dy.ctypes.data, x.ctypes.data, be,
            dw.ctypes.data_as(_lib._fp),
        ),
        "linear_backward_weight",
        "out must not overlap dy or x",
        {"dw": "out"},
    )
    return dw
