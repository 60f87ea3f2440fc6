"""ml_dtypes / numpy peer of the unitfp8 microbenchmark (see _peer_common.py for the protocol).

Casts are `ndarray.astype` (allocating, as users call it; ml_dtypes casts are non-saturating,
which changes no result on the unit-variance inputs used here). The residual mix is written
the natural numpy way, in f32 with preallocated outputs. numpy is single-threaded here, so only
the 1-thread entries are produced.
"""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import _peer_common as pc  # noqa: E402

try:
    import numpy as np
    import ml_dtypes
except Exception as e:  # noqa: BLE001
    pc.emit({"peer": "ml_dtypes", "available": False,
             "note": f"numpy + ml_dtypes not importable ({type(e).__name__}: {e})"})
    sys.exit(0)


def kernels(n, tau):
    e4, e5, bf = ml_dtypes.float8_e4m3fn, ml_dtypes.float8_e5m2, ml_dtypes.bfloat16
    rng = np.random.default_rng(12345)
    x = rng.standard_normal(n, dtype=np.float32)
    f = rng.standard_normal(n, dtype=np.float32)
    xbf, fbf, xq = x.astype(bf), f.astype(bf), x.astype(e4)
    side = int(round(n ** 0.5))
    x2 = x.reshape(side, side)
    o = np.empty_like(x)
    o2 = np.empty_like(x)
    a, b = np.float32(np.sqrt(np.float32(1 - tau))), np.float32(np.sqrt(np.float32(tau)))
    o.fill(0)
    o2.fill(0)

    def mix_f32():
        np.multiply(x, a, out=o)
        np.multiply(f, b, out=o2)
        np.add(o, o2, out=o)
        return o.astype(e4)

    def mix_bf16():
        u = xbf.astype(np.float32)
        u *= a
        v = fbf.astype(np.float32)
        v *= b
        u += v
        return u.astype(bf)

    def mix_bf16_e4m3():
        return mix_bf16().astype(e4)

    xh, fh = x.astype(np.float16), f.astype(np.float16)

    def mix_f16_e4m3():
        u = xh.astype(np.float32)
        u *= a
        v = fh.astype(np.float32)
        v *= b
        u += v
        return u.astype(np.float16).astype(e4)

    def mix_bwd_bf16():
        u = xbf.astype(np.float32)
        gx = (u * a).astype(bf)
        gf = (u * b).astype(bf)
        return gx, gf.astype(e5)

    def mix_bwd():
        np.multiply(x, a, out=o)
        np.multiply(x, b, out=o2)
        return o2.astype(e5)

    def ct():
        q = x2.astype(e4)
        return q, np.ascontiguousarray(q.T)

    return {
        "f32_e4m3": lambda: x.astype(e4),
        "f32_e5m2": lambda: x.astype(e5),
        "bf16_e4m3": lambda: xbf.astype(e4),
        "e4m3_f32": lambda: xq.astype(np.float32),
        "e4m3_bf16": lambda: xq.astype(bf),
        "f32_bf16": lambda: x.astype(bf),
        "cast_transpose_f32_e4m3": ct,
        "mix_f32_e4m3": mix_f32,
        "mix_bf16": mix_bf16,
        "mix_bf16_e4m3": mix_bf16_e4m3,
        "mix_f16_e4m3": mix_f16_e4m3,
        "mix_bwd_f32_e5m2": mix_bwd,
        "mix_bwd_bf16_e5m2": mix_bwd_bf16,
    }


def main():
    cfg = pc.config()
    results = []
    for size in cfg["sizes"]:
        n = size["n"]
        ks = kernels(n, cfg["tau"])
        cmax = max(pc.BYTES[k][0] + pc.BYTES[k][1] for k in pc.BYTES) * n // 2
        csrc = np.full(cmax, 0x5A, dtype=np.uint8)
        cdst = np.full(cmax, 0x55, dtype=np.uint8)
        for kid in cfg["kernels"]:
            fn = ks.get(kid)
            if fn is None:
                continue
            r, w = pc.BYTES[kid]
            nb = (r + w) * n // 2
            s, d = csrc[:nb], cdst[:nb]
            res = pc.measure(fn, lambda: np.copyto(d, s), size["rounds"], size["target_s"])
            res.update({"kernel": kid, "size": size["label"], "n": n, "threads": 1})
            results.append(res)
            pc.note(f"  ml_dtypes {kid} {size['label']}: {res['median_s'] * 1e3:.3f} ms")
        del ks
    pc.emit({"peer": "ml_dtypes", "available": True,
             "version": f"ml_dtypes {ml_dtypes.__version__}, numpy {np.__version__}",
             "note": "astype (allocating, non-saturating); numpy single-threaded: 1-thread only",
             "results": results})


main()
