"""PyTorch peer of the unitfp8 microbenchmark (see _peer_common.py for the protocol).

Casts are `Tensor.to(dtype)` (allocating, non-saturating); the mix is `torch.mul(out=)` then
`add_(alpha=)`; torch.set_num_threads(t) sets the thread count. Skipped when torch is not
importable. Runs only with UNITFP8_BENCH_TORCH=1 (bench/run.sh then installs torch when missing).
"""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import _peer_common as pc  # noqa: E402

try:
    import torch
    _ = torch.float8_e4m3fn
except Exception as e:  # noqa: BLE001
    pc.emit({"peer": "torch", "available": False,
             "note": f"torch (with float8 dtypes) not importable ({type(e).__name__}: {e})"})
    sys.exit(0)


def kernels(n, tau):
    e4, e5, bf = torch.float8_e4m3fn, torch.float8_e5m2, torch.bfloat16
    g = torch.Generator().manual_seed(12345)
    x = torch.randn(n, generator=g, dtype=torch.float32)
    f = torch.randn(n, generator=g, dtype=torch.float32)
    xbf, fbf, xq = x.to(bf), f.to(bf), x.to(e4)
    side = int(round(n ** 0.5))
    x2 = x.view(side, side)
    o, o2, obf = torch.zeros_like(x), torch.zeros_like(x), torch.zeros_like(xbf)
    a, b = (1 - tau) ** 0.5, tau ** 0.5

    def mix_f32():
        torch.mul(x, a, out=o)
        o.add_(f, alpha=b)
        return o.to(e4)

    def mix_bf16():
        torch.mul(xbf, a, out=obf)
        obf.add_(fbf, alpha=b)
        return obf

    def mix_bf16_e4m3():
        return mix_bf16().to(e4)

    obf2 = torch.zeros_like(xbf)
    xh, fh = x.to(torch.float16), f.to(torch.float16)
    oh = torch.zeros_like(xh)

    def mix_f16_e4m3():
        torch.mul(xh, a, out=oh)
        oh.add_(fh, alpha=b)
        return oh.to(e4)

    def mix_bwd_bf16():
        torch.mul(xbf, a, out=obf)
        torch.mul(xbf, b, out=obf2)
        return obf2.to(e5)

    def mix_bwd():
        torch.mul(x, a, out=o)
        torch.mul(x, b, out=o2)
        return o2.to(e5)

    def ct():
        q = x2.to(e4)
        return q, q.t().contiguous()

    return {
        "f32_e4m3": lambda: x.to(e4),
        "f32_e5m2": lambda: x.to(e5),
        "bf16_e4m3": lambda: xbf.to(e4),
        "e4m3_f32": lambda: xq.to(torch.float32),
        "e4m3_bf16": lambda: xq.to(bf),
        "f32_bf16": lambda: x.to(bf),
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
        csrc = torch.full((cmax,), 0x5A, dtype=torch.uint8)
        cdst = torch.full((cmax,), 0x55, dtype=torch.uint8)
        for t in cfg["threads"]:
            torch.set_num_threads(t)
            for kid in cfg["kernels"]:
                fn = ks.get(kid)
                if fn is None:
                    continue
                r, w = pc.BYTES[kid]
                nb = (r + w) * n // 2
                s, d = csrc[:nb], cdst[:nb]
                try:
                    res = pc.measure(fn, lambda: d.copy_(s), size["rounds"], size["target_s"])
                except Exception as e:  # noqa: BLE001
                    pc.note(f"  torch {kid}: failed ({type(e).__name__}: {e})")
                    continue
                res.update({"kernel": kid, "size": size["label"], "n": n, "threads": t})
                results.append(res)
                pc.note(f"  torch {kid} {size['label']} t={t}: {res['median_s'] * 1e3:.3f} ms")
        del ks
    pc.emit({"peer": "torch", "available": True, "version": f"torch {torch.__version__}",
             "note": "Tensor.to (allocating, non-saturating); torch.set_num_threads(t)",
             "results": results})


main()
