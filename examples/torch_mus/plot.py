"""Plots the results of train.py (needs matplotlib): loss.png (the four variants, and the
1- vs 2-process DDP curves) and sweep.png (final validation loss against η per width).
Also prints the README tables. Usage: python plot.py [results-dir]"""

import csv
import math
import os
import sys

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402


def read(path):
    with open(path) as fh:
        return list(csv.DictReader(fh))


def main(out):
    fig, axes = plt.subplots(1, 3, figsize=(16, 4.5))
    curves = {}
    for v in ["mus_fp8", "mus_f32", "mus_bf16", "sp_bf16"]:
        p = os.path.join(out, f"{v}.csv")
        if os.path.exists(p):
            rows = read(p)
            curves[v] = rows
            s = [int(r["step"]) for r in rows]
            axes[0].plot(s, [float(r["train_loss"]) for r in rows], label=v, lw=0.8)
            ev = [(int(r["step"]), float(r["val_loss"])) for r in rows if r["val_loss"] != "nan"]
            axes[0].plot(*zip(*ev), "o", ms=3, color=axes[0].lines[-1].get_color())
    axes[0].set(title="train loss (lines), validation (dots)", xlabel="step", ylabel="loss / token", ylim=(0.4, 3.5))
    axes[0].legend()
    if "mus_fp8" in curves and "mus_f32" in curves:
        a = [float(r["train_loss"]) for r in curves["mus_fp8"]]
        b = [float(r["train_loss"]) for r in curves["mus_f32"]]
        n = len(a) - len(a) % 10
        rel = [100 * (sum(a[i : i + 10]) / sum(b[i : i + 10]) - 1) for i in range(0, n, 10)]
        axes[1].plot(range(10, n + 1, 10), rel)
        axes[1].axhline(0, color="k", lw=0.5)
        axes[1].set(title="μS-FP8 vs μS-f32 train loss (10-step means)", xlabel="step", ylabel="%")
    w1, w2 = (os.path.join(out, f"run_mus_fp8_world{w}.csv") for w in (1, 2))
    if os.path.exists(w1) and os.path.exists(w2):
        r1, r2 = read(w1), read(w2)
        axes[2].plot([int(r["step"]) for r in r1], [float(r["train_loss"]) for r in r1], label="1 process")
        axes[2].plot([int(r["step"]) for r in r2], [float(r["train_loss"]) for r in r2], "--", label="2 processes (DDP)")
        diff = max(abs(float(x["train_loss"]) - float(y["train_loss"])) / float(x["train_loss"]) for x, y in zip(r1, r2))
        axes[2].set(title=f"μS-FP8 DDP vs 1 process (max rel. diff {diff:.1e})", xlabel="step", ylabel="loss / token")
        axes[2].legend()
        print(f"DDP: {len(r1)} steps, max relative train-loss difference {diff:.2e}")
        vals = [(float(x["val_loss"]), float(y["val_loss"])) for x, y in zip(r1, r2) if x["val_loss"] != "nan"]
        print("DDP val (1 proc, 2 proc):", vals)
    fig.tight_layout()
    fig.savefig(os.path.join(out, "loss.png"), dpi=110)

    p = os.path.join(out, "summary.csv")
    if os.path.exists(p):
        rows = read(p)
        ref = {r["variant"]: float(r["final_val_loss"]) for r in rows}.get("mus_f32")
        print("| run | η | final val loss | vs μS-f32 | train loss (last 20) | ms/step |")
        print("|---|---|---|---|---|---|")
        for r in rows:
            v = float(r["final_val_loss"])
            rel = f"{100 * (v / ref - 1):+.2f}%" if ref else ""
            print(f"| {r['variant']} | 2^{math.log2(float(r['lr'])):.0f} | {v:.4f} | {rel} | "
                  f"{float(r['final_train_loss']):.4f} | {float(r['ms_per_step']):.0f} |")

    p = os.path.join(out, "sweep_mus_fp8.csv")
    if os.path.exists(p):
        rows = read(p)
        fig, ax = plt.subplots(figsize=(6, 4.5))
        widths = sorted({int(r["width"]) for r in rows})
        lrs = sorted({float(r["lr"]) for r in rows})
        print("| μS-FP8 | " + " | ".join(f"η=2^{math.log2(x):.0f}" for x in lrs) + " |")
        print("|---|" + "---|" * len(lrs))
        for w in widths:
            rs = sorted((float(r["lr"]), float(r["final_val_loss"])) for r in rows if int(r["width"]) == w)
            ax.plot([math.log2(a) for a, _ in rs], [b for _, b in rs], "o-", label=f"d={w}")
            best = min(rs, key=lambda t: t[1] if math.isfinite(t[1]) else 1e9)
            cells = [f"**{b:.3f}** ★" if (a, b) == best else f"{b:.3f}" for a, b in rs]
            print(f"| d={w} | " + " | ".join(cells) + " |")
        ax.set(xlabel="log2 η", ylabel="final validation loss", title="μS-FP8 LR sweep")
        ax.legend()
        fig.tight_layout()
        fig.savefig(os.path.join(out, "sweep.png"), dpi=110)


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else os.path.join(os.path.dirname(os.path.abspath(__file__)), "results"))
