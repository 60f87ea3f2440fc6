"""Plots of the mus_train results: loss.png (four-run comparison) and sweep.png (LR transfer).

usage: python plot.py DIR   (DIR holds loss.csv, eval.csv and, optionally, sweep.csv)
"""
import csv
import math
import os
import sys
from collections import defaultdict

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

out = sys.argv[1] if len(sys.argv) > 1 else "bench/results/mus_train"
COLORS = {"muS-fp8": "tab:red", "muS-f32": "tab:blue", "SP-f32": "tab:green", "SP-fp8": "tab:orange"}


def rows(name):
    with open(os.path.join(out, name)) as f:
        return list(csv.DictReader(f))


def smooth(ys, k=15):
    return [sum(ys[max(0, i - k + 1): i + 1]) / len(ys[max(0, i - k + 1): i + 1]) for i in range(len(ys))]


train, val = defaultdict(list), defaultdict(list)
for r in rows("loss.csv"):
    train[r["run"]].append((int(r["step"]), float(r["train_loss"])))
for r in rows("eval.csv"):
    val[r["run"]].append((int(r["step"]), float(r["val_loss"])))
fig, ax = plt.subplots(1, 3, figsize=(17, 4.5))
for run, pts in train.items():
    xs, ys = zip(*pts)
    ax[0].plot(xs, smooth(list(ys)), label=f"{run} (train, 15-step mean)", color=COLORS.get(run), lw=1.2)
    if val[run]:
        vx, vy = zip(*val[run])
        ax[0].plot(vx, vy, "o--", color=COLORS.get(run), ms=3, lw=0.8)
        ax[1].plot(vx[1:], vy[1:], "o-", color=COLORS.get(run), ms=3, label=f"{run} (val)")
ax[0].set(xlabel="step", ylabel="loss (nats/char)", title="training loss (dots: validation)")
ax[0].set_ylim(top=3.6)
ax[0].legend(fontsize=8)
ax[1].set(xlabel="step", ylabel="validation loss", title="validation loss (zoom)")
ax[1].legend(fontsize=8)
for p, color in (("muS", "tab:red"), ("SP", "tab:orange")):
    a8, a32 = dict(val.get(f"{p}-fp8", [])), dict(val.get(f"{p}-f32", []))
    steps = sorted(set(a8) & set(a32))
    ax[2].plot(steps, [100 * (a8[s] / a32[s] - 1) for s in steps], "o-", ms=3, color=color, label=f"{p}: FP8 vs f32")
ax[2].axhline(0, color="gray", lw=0.8)
ax[2].set(xlabel="step", ylabel="validation loss, FP8 / f32 − 1 (%)", title="FP8 − f32 gap (same seed, same data)")
ax[2].legend(fontsize=8)
fig.tight_layout()
fig.savefig(os.path.join(out, "loss.png"), dpi=110)

if os.path.exists(os.path.join(out, "sweep.csv")):
    sweep = defaultdict(lambda: defaultdict(list))
    for r in rows("sweep.csv"):
        loss = float(r["final_val_loss"])
        if r["diverged"] == "true" or not math.isfinite(loss):
            loss = float("nan")
        sweep[r["run"]][int(r["width"])].append((float(r["lr"]), loss))
    fig, ax = plt.subplots(1, len(sweep), figsize=(6 * len(sweep), 4.5), squeeze=False)
    for a, (run, by_width) in zip(ax[0], sorted(sweep.items())):
        for w, pts in sorted(by_width.items()):
            pts.sort()
            xs, ys = zip(*pts)
            line, = a.plot(xs, ys, "o-", label=f"d = {w}")
            finite = [p for p in pts if math.isfinite(p[1])]
            if finite:
                best = min(finite, key=lambda p: p[1])
                a.plot([best[0]], [best[1]], "*", ms=14, color=line.get_color())
        a.set_xscale("log", base=2)
        a.set(xlabel="learning rate η", ylabel="validation loss after the sweep's steps", title=f"{run}: LR sweep (★ best)")
        a.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(os.path.join(out, "sweep.png"), dpi=110)
print("plots written to", out)
