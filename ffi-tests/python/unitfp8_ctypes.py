"""ctypes bindings of the unitfp8 C ABI (include/unitfp8.h), for the FFI tests.

The shared library is taken from $UNITFP8_LIB, else target/release/libunitfp8.so of this
repository (build it with `cargo build --release`). Arrays are passed as raw pointers
(`arr.ctypes.data`); bf16/f16 arrays as 16-bit elements, FP8 arrays (ml_dtypes) as bytes.
"""

import ctypes
import os
import pathlib

import ml_dtypes
import numpy as np

REPO = pathlib.Path(__file__).resolve().parents[2]
LIB_PATH = os.environ.get("UNITFP8_LIB", str(REPO / "target" / "release" / "libunitfp8.so"))
lib = ctypes.CDLL(LIB_PATH)

OK = 0
ERROR_NULL_POINTER = 1
ERROR_INVALID_ARGUMENT = 2
ERROR_OVERLAP = 3
ERROR_UNSUPPORTED = 4
ERROR_INTERNAL = 5

F32, BF16, F16, E4M3, E5M2 = 0, 1, 2, 3, 4
ROUND_NEAREST_SATURATE, ROUND_NEAREST, ROUND_STOCHASTIC_SATURATE = 0, 1, 2

# numpy dtype of each code
NP_DTYPE = {
    F32: np.dtype(np.float32),
    BF16: np.dtype(ml_dtypes.bfloat16),
    F16: np.dtype(np.float16),
    E4M3: np.dtype(ml_dtypes.float8_e4m3fn),
    E5M2: np.dtype(ml_dtypes.float8_e5m2),
}
CODE_OF = {dt: code for code, dt in NP_DTYPE.items()}

_vp, _sz, _u32, _u64, _i32, _f32 = (
    ctypes.c_void_p,
    ctypes.c_size_t,
    ctypes.c_uint32,
    ctypes.c_uint64,
    ctypes.c_int32,
    ctypes.c_float,
)
_fp = ctypes.POINTER(ctypes.c_float)

lib.unitfp8_version.restype = ctypes.c_char_p
lib.unitfp8_version.argtypes = []
lib.unitfp8_status_string.restype = ctypes.c_char_p
lib.unitfp8_status_string.argtypes = [_i32]
lib.unitfp8_backend.restype = ctypes.c_char_p
lib.unitfp8_backend.argtypes = []
lib.unitfp8_set_num_threads.restype = None
lib.unitfp8_set_num_threads.argtypes = [_sz]
lib.unitfp8_get_num_threads.restype = _sz
lib.unitfp8_get_num_threads.argtypes = []
lib.unitfp8_cast.restype = _i32
lib.unitfp8_cast.argtypes = [_vp, _u32, _vp, _u32, _sz, _f32, _u32, _u64, _fp]
lib.unitfp8_cast_transpose.restype = _i32
lib.unitfp8_cast_transpose.argtypes = [
    _vp, _u32, _sz, _sz, _sz, _vp, _sz, _vp, _sz, _u32, _f32, _u32, _u64, _fp,
]
lib.unitfp8_residual_mix.restype = _i32
lib.unitfp8_residual_mix.argtypes = [_vp, _vp, _vp, _u32, _sz, _f32, _vp, _u32, _u32, _u64]
lib.unitfp8_residual_mix_backward.restype = _i32
lib.unitfp8_residual_mix_backward.argtypes = [
    _vp, _vp, _vp, _u32, _sz, _f32, _i32, _vp, _u32, _u32, _u64,
]


def ptr(a):
    """Address of a numpy array's first element (None for None)."""
    return None if a is None else a.ctypes.data


def version():
    return lib.unitfp8_version().decode()


def backend():
    return lib.unitfp8_backend().decode()


def status_string(status):
    return lib.unitfp8_status_string(status).decode()


class Unitfp8Error(Exception):
    def __init__(self, status):
        super().__init__(f"unitfp8 status {status}: {status_string(status)}")
        self.status = status


def check(status):
    if status != OK:
        raise Unitfp8Error(status)


def cast(src, dst_dtype, scale=1.0, rounding=ROUND_NEAREST_SATURATE, seed=0, with_amax=False):
    """Casts a contiguous array; returns the result (and amax)."""
    src = np.ascontiguousarray(src)
    dst = np.empty(src.shape, dtype=dst_dtype)
    amax = ctypes.c_float(-1.0)
    check(
        lib.unitfp8_cast(
            ptr(src), CODE_OF[src.dtype], ptr(dst), CODE_OF[dst.dtype], src.size, scale,
            rounding, seed, ctypes.byref(amax) if with_amax else None,
        )
    )
    return (dst, amax.value) if with_amax else dst
