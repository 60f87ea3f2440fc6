"""Loads the bundled unitfp8 shared library and declares its C ABI for ctypes.

The library is the one built into this package (``unitfp8/_native*.so``); nothing is read from
the environment. Internal module: use the functions of :mod:`unitfp8`.
"""

from __future__ import annotations

import ctypes
import re
import importlib.machinery
import pathlib
import threading
from typing import Optional

import ml_dtypes
import numpy as np

_HERE = pathlib.Path(__file__).resolve().parent


def _find_library() -> pathlib.Path:
    for suffix in importlib.machinery.EXTENSION_SUFFIXES + [".so", ".dylib", ".dll"]:
        candidate = _HERE / f"_native{suffix}"
        if candidate.exists():
            return candidate
    found = sorted(_HERE.glob("_native*"))
    if found:
        return found[0]
    raise ImportError(
        f"unitfp8: the compiled library (_native*.so) is missing from {_HERE}; "
        "install the package with `pip install ./python` from the repository root"
    )


LIB_PATH = _find_library()
lib = ctypes.CDLL(str(LIB_PATH))

# Status codes (include/unitfp8.h).
OK = 0
ERROR_NULL_POINTER = 1
ERROR_INVALID_ARGUMENT = 2
ERROR_OVERLAP = 3
ERROR_UNSUPPORTED = 4
ERROR_INTERNAL = 5
CUDA_ERROR_NO_DRIVER = 10
CUDA_ERROR_NO_DEVICE = 11
CUDA_ERROR_DEVICE_UNSUPPORTED = 12
CUDA_ERROR_DRIVER = 13

# Element type codes.
F32, BF16, F16, E4M3, E5M2 = 0, 1, 2, 3, 4

NP_DTYPE = {
    F32: np.dtype(np.float32),
    BF16: np.dtype(ml_dtypes.bfloat16),
    F16: np.dtype(np.float16),
    E4M3: np.dtype(ml_dtypes.float8_e4m3fn),
    E5M2: np.dtype(ml_dtypes.float8_e5m2),
}
CODE_OF_NP = {dt: code for code, dt in NP_DTYPE.items()}
TYPE_NAME = {F32: "float32", BF16: "bfloat16", F16: "float16", E4M3: "float8_e4m3fn", E5M2: "float8_e5m2"}

_vp, _sz, _u32, _u64, _i32, _f32, _ssz = (
    ctypes.c_void_p,
    ctypes.c_size_t,
    ctypes.c_uint32,
    ctypes.c_uint64,
    ctypes.c_int32,
    ctypes.c_float,
    ctypes.c_ssize_t,
)
_fp = ctypes.POINTER(ctypes.c_float)
_cp = ctypes.c_char_p


def _declare(name: str, restype, argtypes, required: bool = True):
    fn = getattr(lib, name, None)
    if fn is None:
        if required:
            raise ImportError(f"unitfp8: {LIB_PATH} lacks the entry point {name}")
        return None
    fn.restype = restype
    fn.argtypes = argtypes
    return fn


version = _declare("unitfp8_version", _cp, [])
status_string = _declare("unitfp8_status_string", _cp, [_i32])
backend = _declare("unitfp8_backend", _cp, [])
set_num_threads = _declare("unitfp8_set_num_threads", None, [_sz])
get_num_threads = _declare("unitfp8_get_num_threads", _sz, [])
set_gemm_kernel = _declare("unitfp8_set_gemm_kernel", _i32, [_cp])
gemm_kernel = _declare("unitfp8_gemm_kernel", _cp, [])
# The per-thread detail message of the last failed call (argument, rule, values).
last_error = _declare("unitfp8_last_error", _cp, [])
cuda_available = _declare("unitfp8_cuda_available", _i32, [])

cast = _declare("unitfp8_cast", _i32, [_vp, _u32, _vp, _u32, _sz, _f32, _u32, _u64, _fp])
cast_transpose = _declare(
    "unitfp8_cast_transpose",
    _i32,
    [_vp, _u32, _sz, _sz, _sz, _vp, _sz, _vp, _sz, _u32, _f32, _u32, _u64, _fp],
)
residual_mix = _declare(
    "unitfp8_residual_mix", _i32, [_vp, _vp, _vp, _u32, _sz, _f32, _vp, _u32, _u32, _u64]
)
residual_mix_backward = _declare(
    "unitfp8_residual_mix_backward",
    _i32,
    [_vp, _vp, _vp, _u32, _sz, _f32, _i32, _vp, _u32, _u32, _u64],
)
_GEMM_ARGS = [_sz, _sz, _sz, _f32, _vp, _u32, _ssz, _ssz, _vp, _u32, _ssz, _ssz, _f32, _vp, _u32, _ssz, _ssz]
gemm = _declare("unitfp8_gemm", _i32, _GEMM_ARGS)
linear_forward = _declare("unitfp8_linear_forward", _i32, [_sz, _sz, _sz, _f32, _vp, _vp, _vp, _u32])
linear_backward_data = _declare(
    "unitfp8_linear_backward_data", _i32, [_sz, _sz, _sz, _f32, _vp, _vp, _f32, _vp, _u32]
)
linear_backward_weight = _declare(
    "unitfp8_linear_backward_weight", _i32, [_sz, _sz, _sz, _f32, _vp, _vp, _f32, _fp]
)

cuda_cast = _declare("unitfp8_cuda_cast", _i32, [_vp, _u32, _vp, _u32, _sz, _f32, _u32, _u64, _fp, _vp])
cuda_cast_transpose = _declare(
    "unitfp8_cuda_cast_transpose",
    _i32,
    [_vp, _u32, _sz, _sz, _sz, _vp, _sz, _vp, _sz, _u32, _f32, _u32, _u64, _fp, _vp],
)
cuda_residual_mix = _declare(
    "unitfp8_cuda_residual_mix", _i32, [_vp, _vp, _vp, _u32, _sz, _f32, _vp, _u32, _u32, _u64, _vp]
)
cuda_residual_mix_backward = _declare(
    "unitfp8_cuda_residual_mix_backward",
    _i32,
    [_vp, _vp, _vp, _u32, _sz, _f32, _i32, _vp, _u32, _u32, _u64, _vp],
)
cuda_gemm = _declare("unitfp8_cuda_gemm", _i32, _GEMM_ARGS + [_vp])
cuda_linear_forward = _declare(
    "unitfp8_cuda_linear_forward", _i32, [_sz, _sz, _sz, _f32, _vp, _vp, _vp, _u32, _vp]
)
cuda_linear_backward_data = _declare(
    "unitfp8_cuda_linear_backward_data", _i32, [_sz, _sz, _sz, _f32, _vp, _vp, _f32, _vp, _u32, _vp]
)
cuda_linear_backward_weight = _declare(
    "unitfp8_cuda_linear_backward_weight", _i32, [_sz, _sz, _sz, _f32, _vp, _vp, _f32, _fp, _vp]
)


class Unitfp8Error(Exception):
    """Base class of the errors the unitfp8 library reports; ``status`` holds its status code
    (``None`` for errors found by the Python layer before the call)."""

    status: Optional[int] = None

    def __init__(self, message: str, status: Optional[int] = None):
        super().__init__(message)
        self.status = status


class InvalidArgumentError(Unitfp8Error, ValueError):
    """An argument is out of its domain: shape, leading dimension, tau, scale, code or null
    pointer (statuses ``UNITFP8_ERROR_INVALID_ARGUMENT`` and ``UNITFP8_ERROR_NULL_POINTER``)."""


class OverlapError(Unitfp8Error, ValueError):
    """Buffers overlap in a way the call does not allow (``UNITFP8_ERROR_OVERLAP``)."""


class UnsupportedError(Unitfp8Error, NotImplementedError):
    """A valid but unsupported combination, e.g. stochastic rounding to a non-FP8 type or a
    CUDA call in a library built without CUDA (``UNITFP8_ERROR_UNSUPPORTED``)."""


class InternalError(Unitfp8Error, RuntimeError):
    """An internal error of the library (a caught panic): please report it."""


class CudaError(Unitfp8Error, RuntimeError):
    """The CUDA back end cannot run or a CUDA driver call failed (statuses 10-13)."""


_EXC = {
    ERROR_NULL_POINTER: InvalidArgumentError,
    ERROR_INVALID_ARGUMENT: InvalidArgumentError,
    ERROR_OVERLAP: OverlapError,
    ERROR_UNSUPPORTED: UnsupportedError,
    ERROR_INTERNAL: InternalError,
}


def describe(status: int) -> str:
    """English description of a status code (CUDA codes included)."""
    return status_string(status).decode()


def error_for(status: int, where: str, hint: str = "", names: Optional[dict] = None) -> Unitfp8Error:
    """The exception for a failed call: its status, the library's detail message (with the C
    argument names translated by ``names`` to the Python ones), else ``hint``."""
    detail = last_error().decode()  # read first: it describes this thread's last call
    if detail and names:
        detail = re.sub(r"\b(" + "|".join(map(re.escape, names)) + r")\b", lambda m: names[m.group(1)], detail)
    if not detail:
        detail = hint
    cls = _EXC.get(status, CudaError if status >= 10 else Unitfp8Error)
    msg = f"{where}: {describe(status)} (status {status})"
    if detail:
        msg += f": {detail}"
    return cls(msg, status)


def check(status: int, where: str, hint: str = "", names: Optional[dict] = None) -> None:
    """Raises the exception for ``status`` unless it is ``UNITFP8_OK``."""
    if status != OK:
        raise error_for(status, where, hint, names)


_cuda_lock = threading.Lock()
_cuda_state: Optional[int] = None


def cuda_status() -> int:
    """``unitfp8_cuda_available()``, cached after the first call."""
    global _cuda_state
    with _cuda_lock:
        if _cuda_state is None:
            _cuda_state = int(cuda_available())
        return _cuda_state
