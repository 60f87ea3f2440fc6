"""Python test of unitfp8_gemm and the linear layer through ctypes, with numpy + ml_dtypes
arrays in row-major, column-major and transposed (strided) layouts. Bit-exact against a numpy
float32 model of the documented accumulation order, and close to float64."""
import ctypes
import os
import sys
import time

import ml_dtypes
import numpy as np

lib = ctypes.CDLL(os.environ.get("UNITFP8_LIB", "target/release/libunitfp8.so"))
P, S, D, F, U = ctypes.c_void_p, ctypes.c_size_t, ctypes.c_ssize_t, ctypes.c_float, ctypes.c_uint32
lib.unitfp8_gemm.argtypes = [S, S, S, F, P, U, D, D, P, U, D, D, F, P, U, D, D]
lib.unitfp8_gemm.restype = ctypes.c_int32
lib.unitfp8_linear_forward.argtypes = [S, S, S, F, P, P, P, U]
lib.unitfp8_linear_forward.restype = ctypes.c_int32
lib.unitfp8_linear_backward_data.argtypes = [S, S, S, F, P, P, F, P, U]
lib.unitfp8_linear_backward_data.restype = ctypes.c_int32
lib.unitfp8_linear_backward_weight.argtypes = [S, S, S, F, P, P, F, P]
lib.unitfp8_linear_backward_weight.restype = ctypes.c_int32

CODES = {np.dtype(np.float32): 0, np.dtype(ml_dtypes.bfloat16): 1,
         np.dtype(ml_dtypes.float8_e4m3fn): 3, np.dtype(ml_dtypes.float8_e5m2): 4}

seed = int(time.time_ns() % 2**32)
print(f"test_gemm.py: seed {seed}")
rng = np.random.default_rng(seed)


def view(x):
    """(pointer, row stride, col stride) of a 2-D numpy array, strides in elements."""
    rs, cs = (s // x.itemsize for s in x.strides)
    return x.ctypes.data, rs, cs


def gemm(alpha, a, b, beta, c):
    pa, ars, acs = view(a)
    pb, brs, bcs = view(b)
    pc, crs, ccs = view(c)
    m, k = a.shape
    n = b.shape[1]
    return lib.unitfp8_gemm(m, n, k, alpha, pa, CODES[a.dtype], ars, acs, pb, CODES[b.dtype],
                            brs, bcs, beta, pc, CODES[c.dtype], crs, ccs)


def model(alpha, a, b, beta, c_old):
    """The documented order in float32: blocks of 256, pairs odd-first."""
    a = a.astype(np.float32)
    b = b.astype(np.float32)
    m, k = a.shape
    n = b.shape[1]
    total = np.zeros((m, n), np.float32)
    for s in range(0, k, 256):
        e = min(s + 256, k)
        acc = np.zeros((m, n), np.float32)
        for t in range(s, e, 2):
            even = a[:, t:t + 1] * b[t:t + 1, :]
            odd = a[:, t + 1:t + 2] * b[t + 1:t + 2, :] if t + 1 < e else np.float32(0)
            acc = even + (odd + acc)
        total = acc if s == 0 else total + acc
    r = np.float32(alpha) * total
    if beta != 0:
        r = r + np.float32(beta) * c_old.astype(np.float32)
    return r


def fp8(shape, dt):
    x = rng.standard_normal(shape).astype(np.float32) * 2
    return x.astype(dt)


def layout(x, kind):
    if kind == "row":
        return np.ascontiguousarray(x)
    if kind == "col":
        return np.asfortranarray(x)
    if kind == "transposed":  # a transposed view of a row-major array
        return np.ascontiguousarray(x.T).T
    if kind == "strided":  # every other column of a wider array
        big = np.zeros((x.shape[0], 2 * x.shape[1]), x.dtype)
        big[:, ::2] = x
        return big[:, ::2]
    if kind == "reversed":  # negative row stride
        return np.ascontiguousarray(x[::-1])[::-1]
    raise ValueError(kind)


LAYOUTS = ["row", "col", "transposed", "strided", "reversed"]
E4, E5 = ml_dtypes.float8_e4m3fn, ml_dtypes.float8_e5m2
fails = 0
for it in range(80):
    m, n, k = (int(rng.choice([1, 2, 15, 16, 17, 33, 100, 257])) for _ in range(3))
    ta, tb = rng.choice([E4, E5]), rng.choice([E4, E5])
    tc = rng.choice([np.float32, ml_dtypes.bfloat16, E4, E5])
    beta = 0.0 if np.dtype(tc).itemsize == 1 or rng.random() < 0.5 else 0.5
    alpha = float(rng.choice([1.0, 0.125, -2.0]))
    a = layout(fp8((m, k), ta), rng.choice(LAYOUTS))
    b = layout(fp8((k, n), tb), rng.choice(LAYOUTS))
    c_old = rng.standard_normal((m, n)).astype(np.float32).astype(tc)
    c = layout(c_old.copy(), rng.choice(["row", "col", "reversed"]))
    st = gemm(alpha, a, b, beta, c)
    want = model(alpha, a, b, beta, c_old)
    if np.dtype(tc).itemsize == 1:
        # FP8 outputs saturate (ml_dtypes' cast does not): clip first, then round.
        mx = float(ml_dtypes.finfo(tc).max)
        want = np.clip(want, -mx, mx)
    want = want.astype(tc)
    ok = st == 0 and np.array_equal(c.view(np.uint8 if c.itemsize == 1 else (np.uint16 if c.itemsize == 2 else np.uint32)),
                                    want.view(np.uint8 if c.itemsize == 1 else (np.uint16 if c.itemsize == 2 else np.uint32)))
    if not ok:
        fails += 1
        print(f"FAIL m={m} n={n} k={k} {ta} {tb} {tc} beta={beta} status={st}")
    # Against float64 (f32 output only): tight relative error.
    if tc == np.float32 and beta == 0 and st == 0:
        exact = alpha * (a.astype(np.float64) @ b.astype(np.float64))
        err = np.linalg.norm(c - exact) / max(np.linalg.norm(exact), 1e-300)
        if err > 1e-6:
            fails += 1
            print(f"FAIL accuracy {err}")

# Linear layer, PyTorch layout.
bt, fi, fo = 64, 96, 80
x, w, dy = fp8((bt, fi), E4), fp8((fo, fi), E4), fp8((bt, fo), E5)
alpha = np.float32(1) / np.sqrt(np.float32(fi))  # as the library: f32 sqrt, f32 divide
y = np.empty((bt, fo), np.float32)
assert lib.unitfp8_linear_forward(bt, fi, fo, float("nan"), x.ctypes.data, w.ctypes.data, y.ctypes.data, 0) == 0
if not np.array_equal(y, model(alpha, x, w.T, 0, None)):
    fails += 1
    print("FAIL linear forward")
dx = np.empty((bt, fi), ml_dtypes.bfloat16)
assert lib.unitfp8_linear_backward_data(bt, fi, fo, 0.0, dy.ctypes.data, w.ctypes.data, 0.0, dx.ctypes.data, 1) == 0
if not np.array_equal(dx.view(np.uint16), model(alpha, dy, w, 0, None).astype(ml_dtypes.bfloat16).view(np.uint16)):
    fails += 1
    print("FAIL linear backward data")
dw = rng.standard_normal((fo, fi)).astype(np.float32)
dw0 = dw.copy()
assert lib.unitfp8_linear_backward_weight(bt, fi, fo, 0.5, dy.ctypes.data, x.ctypes.data, 1.0, dw.ctypes.data) == 0
if not np.array_equal(dw, model(0.5, dy.T, x, 1.0, dw0)):
    fails += 1
    print("FAIL linear backward weight")
# Errors leave outputs untouched.
c = np.full((4, 4), 7.0, np.float32)
a8 = fp8((4, 4), E4)
assert gemm(1.0, a8, a8, 1.0, c.astype(E4)) == 2  # FP8 C with beta != 0
assert lib.unitfp8_gemm(4, 4, 4, 1.0, a8.ctypes.data, 3, 4, 1, a8.ctypes.data, 9, 4, 1, 0.0, c.ctypes.data, 0, 4, 1) == 2
assert lib.unitfp8_gemm(4, 4, 4, 1.0, a8.ctypes.data, 3, 4, 1, a8.ctypes.data, 3, 4, 1, 0.0, c.ctypes.data, 0, 0, 1) == 3
assert (c == 7.0).all()
print("ok" if fails == 0 else f"FAILED ({fails})")
sys.exit(1 if fails else 0)
