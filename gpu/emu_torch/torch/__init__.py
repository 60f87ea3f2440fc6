"""A numpy stand-in for the part of PyTorch that gpu/check.py uses, for running that script
without a GPU: "CUDA" tensors live in host memory, which is what device memory is under the
SIMT emulator's libcuda.so (kernels/emu). scripts/cuda-emu.sh puts this directory first on
PYTHONPATH and runs check.py's info, elementwise and gemm sections on the emulator, so the
script itself is exercised in CI, where there is no GPU.

Semantics follow PyTorch where check.py depends on them: .to(float8) rounds to nearest even
(ml_dtypes), _scaled_mm accumulates in float32 (numpy's sgemm), data_ptr() is the address of
the first element, view(dtype) reinterprets bits. Anything else raises AttributeError.
Not PyTorch, not for any other use.
"""
import os

import ml_dtypes
import numpy as np

__version__ = "0.0+unitfp8-numpy-stand-in"


class dtype:
    def __init__(self, np_dtype, name):
        self.np = np.dtype(np_dtype)
        self.name = name

    def __repr__(self):
        return "torch." + self.name

    __str__ = __repr__


float64 = dtype(np.float64, "float64")
float32 = dtype(np.float32, "float32")
bfloat16 = dtype(ml_dtypes.bfloat16, "bfloat16")
float8_e4m3fn = dtype(ml_dtypes.float8_e4m3fn, "float8_e4m3fn")
float8_e5m2 = dtype(ml_dtypes.float8_e5m2, "float8_e5m2")
uint8 = dtype(np.uint8, "uint8")
int16 = dtype(np.int16, "int16")
int32 = dtype(np.int32, "int32")
int64 = dtype(np.int64, "int64")
bool_ = dtype(np.bool_, "bool")
_BY_NP = {d.np: d for d in (float64, float32, bfloat16, float8_e4m3fn, float8_e5m2, uint8, int16, int32, int64, bool_)}


def _arr(x):
    return x.a if isinstance(x, Tensor) else x


class Tensor:
    def __init__(self, a):
        self.a = a if isinstance(a, np.ndarray) else np.asarray(a)

    # shape, layout, memory
    @property
    def shape(self):
        return self.a.shape

    @property
    def dtype(self):
        return _BY_NP[self.a.dtype]

    @property
    def T(self):
        return Tensor(self.a.T)

    def t(self):
        assert self.a.ndim == 2
        return Tensor(self.a.T)

    def stride(self, i):
        return self.a.strides[i] // self.a.itemsize

    def numel(self):
        return self.a.size

    def data_ptr(self):
        return self.a.ctypes.data

    def contiguous(self):
        return Tensor(np.ascontiguousarray(self.a))

    def clone(self):
        return Tensor(self.a.copy())

    def view(self, d):
        return Tensor(self.a.view(d.np))

    def fill_(self, v):
        self.a[...] = v
        return self

    def copy_(self, o):
        self.a[...] = _arr(o)
        return self

    def cpu(self):
        return self

    def numpy(self):
        return self.a

    # conversions
    def to(self, target):
        if isinstance(target, str):
            assert target == "cuda"
            return Tensor(self.a.copy())
        src = self.a
        if target.np.itemsize == 1 and target.np.kind == "V" and src.dtype == np.float64:
            src = src.astype(np.float32)  # as torch: via float32 (exact here: inputs are f32 values)
        return Tensor(src.astype(target.np))

    def double(self):
        return Tensor(self.a.astype(np.float64))

    def float(self):
        return Tensor(self.a.astype(np.float32))

    def int(self):
        return Tensor(self.a.astype(np.int32))

    def __float__(self):
        return float(self.a)

    def __int__(self):
        return int(self.a)

    # arithmetic
    def __matmul__(self, o):
        return Tensor(self.a @ _arr(o))

    def __add__(self, o):
        return Tensor(self.a + _arr(o))

    __radd__ = __add__

    def __sub__(self, o):
        return Tensor(self.a - _arr(o))

    def __rsub__(self, o):
        return Tensor(_arr(o) - self.a)

    def __mul__(self, o):
        return Tensor(self.a * _arr(o))

    __rmul__ = __mul__

    def __truediv__(self, o):
        return Tensor(self.a / _arr(o))

    def __neg__(self):
        return Tensor(-self.a)

    def abs(self):
        return Tensor(np.abs(self.a))

    def max(self):
        return Tensor(self.a.max())

    def sum(self):
        return Tensor(self.a.sum())

    def gt(self, v):
        return Tensor(self.a > _arr(v))

    def clamp(self, lo, hi):
        return Tensor(np.clip(self.a, lo, hi))

    def clamp_min(self, lo):
        return Tensor(np.maximum(self.a, lo))


_rng = np.random.default_rng(0)


def manual_seed(s):
    global _rng
    _rng = np.random.default_rng(s)


def _shape(shape):
    if len(shape) == 1 and isinstance(shape[0], (tuple, list)):
        return tuple(shape[0])
    return tuple(shape)


def randn(*shape, device=None, dtype=float32):
    return Tensor(_rng.standard_normal(_shape(shape)).astype(dtype.np))


def empty(*shape, dtype=float32, device=None):
    return Tensor(np.empty(_shape(shape), dtype.np))


def full(shape, value, dtype=float32, device=None):
    return Tensor(np.full(_shape((shape,)), value, dtype.np))


def zeros(*shape, dtype=float32, device=None):
    return Tensor(np.zeros(_shape(shape), dtype.np))


def ones(*shape, dtype=float32, device=None):
    return Tensor(np.ones(_shape(shape), dtype.np))


def from_numpy(a):
    return Tensor(a)


def empty_like(t, dtype=None, device=None):
    return Tensor(np.empty(t.shape, (dtype or t.dtype).np))


def add(a, b, alpha=1, out=None):
    r = _arr(a) + _arr(b) * alpha
    if out is None:
        return Tensor(r.astype(_arr(a).dtype))
    out.a[...] = r
    return out


def matmul(a, b):
    return Tensor((a.a.astype(np.float32) @ b.a.astype(np.float32)).astype(a.a.dtype))


def maximum(a, b):
    return Tensor(np.maximum(_arr(a), _arr(b)))


def _scaled_mm(a, b, scale_a=None, scale_b=None, out_dtype=float32):
    s = float(_arr(scale_a)) * float(_arr(scale_b))
    return Tensor((a.a.astype(np.float32) @ b.a.astype(np.float32) * np.float32(s)).astype(out_dtype.np))


class linalg:
    @staticmethod
    def norm(t):
        return Tensor(np.linalg.norm(_arr(t).ravel()))


class version:
    cuda = "none (unitfp8 SIMT emulator)"


class _Props:
    def __init__(self):
        cc = int(os.environ.get("UNITFP8_EMU_CC", "90"))
        self.major, self.minor = cc // 10, cc % 10
        self.multi_processor_count = 4
        self.total_memory = 1 << 30
        self.name = "unitfp8 SIMT emulator"


class _Stream:
    cuda_stream = 0


class _Event:
    """Host wall-clock events (kernels run synchronously on the emulator)."""

    def __init__(self, enable_timing=False):
        self.t = None

    def record(self, stream=None):
        import time
        self.t = time.perf_counter()

    def elapsed_time(self, end):
        return (end.t - self.t) * 1e3


class cuda:
    @staticmethod
    def is_available():
        return True

    @staticmethod
    def synchronize():
        pass

    @staticmethod
    def current_stream():
        return _Stream()

    @staticmethod
    def get_device_name(i=0):
        return _Props().name

    @staticmethod
    def get_device_properties(i=0):
        return _Props()

    @staticmethod
    def get_device_capability(i=0):
        p = _Props()
        return (p.major, p.minor)

    @staticmethod
    def empty_cache():
        pass

    Event = _Event
