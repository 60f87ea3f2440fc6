"""μS (unit scaling) FP8 training of a small character transformer in PyTorch with unitfp8.

Variants (same seed, data and batches):
  mus_fp8   μS, hidden linears are unitfp8 UnitScaledLinear (E4M3 x/W, E5M2 dy), ResidualMix
  mus_f32   μS in plain PyTorch, float32
  mus_bf16  μS in plain PyTorch, bfloat16 autocast
  sp_bf16   standard parametrisation (pre-LN, N(0, 0.02²) init, x + f(LN(x))), bfloat16 autocast

Commands:
  python train.py compare [--steps 400 --width 128 ...]      all variants -> loss.csv, summary.csv
  python train.py sweep   [--widths 64,128 --lrs ...]        μS-FP8 LR sweep -> sweep.csv
  python train.py run --variant mus_fp8                      one run (torchrun: DistributedDataParallel)
  python train.py seeds   [--seeds 10 --width 256]           μS-FP8 vs μS-f32 over initialisation seeds
  torchrun --nproc-per-node 2 train.py run --variant mus_fp8 the same run on 2 processes (gloo)

The loss given to backward is the cross-entropy summed over the tokens of the global batch
(reported per token); under DDP each rank sums its own tokens and the gradients are summed, so
two processes compute what one does with the same global batch.
"""

from __future__ import annotations

import argparse
import csv
import math
import os
import time

import numpy as np
import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import nn

import unitfp8
from unitfp8.torch.nn import ResidualMix, UnitScaledLinear, mus_param_groups

from corpus import make_corpus

HERE = os.path.dirname(os.path.abspath(__file__))


# ---------------------------------------------------------------------------------------------
# model


# the FFN activation; GELU's small negative outputs fall below E4M3's normal range more often
# than SiLU's (the FFN-down input is cast to E4M3)
ACTIVATIONS = {"gelu": F.gelu, "silu": F.silu}


class MuSLinear(nn.Module):
    """Plain-PyTorch μS linear (the high-precision reference): N(0, 1) init, y = x·Wᵀ/sqrt(fan_in)."""

    def __init__(self, fan_in: int, fan_out: int):
        super().__init__()
        self.weight = nn.Parameter(torch.randn(fan_out, fan_in))
        self.alpha = 1.0 / math.sqrt(fan_in)

    def forward(self, x, x_fp8=None):
        return F.linear(x, self.weight) * self.alpha


class PlainMix(nn.Module):
    """Plain-PyTorch fixed(τ) residual mix."""

    def __init__(self, tau: float):
        super().__init__()
        self.a, self.b = math.sqrt(1 - tau), math.sqrt(tau)

    def forward(self, x, f):
        return self.a * x + self.b * f


class Block(nn.Module):
    def __init__(self, d: int, heads: int, mus: bool, fp8: bool, tau: float, grad_rounding: str = "nearest_saturate",
                 activation: str = "gelu"):
        super().__init__()
        self.heads, self.mus, self.fp8 = heads, mus, fp8
        self.act = ACTIVATIONS[activation]
        if mus:
            lin = (lambda i, o: UnitScaledLinear(i, o, grad_rounding=grad_rounding)) if fp8 else MuSLinear  # noqa: E731
        else:
            lin = lambda i, o: nn.Linear(i, o, bias=False)  # noqa: E731
        self.qkv, self.proj = lin(d, 3 * d), lin(d, d)
        self.up, self.down = lin(d, 4 * d), lin(4 * d, d)
        self.ln1, self.ln2 = nn.LayerNorm(d), nn.LayerNorm(d)
        if mus:
            self.mix = ResidualMix(tau) if fp8 else PlainMix(tau)

    def attn(self, x, x8=None):
        B, T, D = x.shape
        qkv = self.qkv(x, x8) if x8 is not None else self.qkv(x)
        q, k, v = qkv.view(B, T, 3, self.heads, D // self.heads).permute(2, 0, 3, 1, 4)
        o = F.scaled_dot_product_attention(q, k, v, is_causal=True)
        return self.proj(o.transpose(1, 2).reshape(B, T, D))

    def mlp(self, x, x8=None):
        h = self.up(x, x8) if x8 is not None else self.up(x)
        return self.down(self.act(h))

    def forward(self, h, h8=None):
        if not self.mus:  # SP: pre-LN
            h = h + self.attn(self.ln1(h))
            return h + self.mlp(self.ln2(h)), None
        # μS Res-Post-LN: h ← sqrt(1-τ)·h + sqrt(τ)·LN(f(h)); the FP8 copy of the mixed stream
        # made by the mix is the next layer's E4M3 input
        f = self.ln1(self.attn(h, h8))
        if self.fp8:
            h, h8 = self.mix.forward_fp8(h, f)
        else:
            h = self.mix(h, f)
        f = self.ln2(self.mlp(h, h8))
        if self.fp8:
            return self.mix.forward_fp8(h, f)
        return self.mix(h, f), None


class CharTransformer(nn.Module):
    def __init__(self, vocab: int, d: int, layers: int, heads: int, ctx: int, variant: str, tau: float,
                 grad_rounding: str = "nearest_saturate", activation: str = "gelu"):
        super().__init__()
        self.mus = variant.startswith("mus")
        fp8 = variant == "mus_fp8"
        self.d = d
        self.tok = nn.Embedding(vocab, d)
        self.pos = nn.Embedding(ctx, d)
        self.blocks = nn.ModuleList(Block(d, heads, self.mus, fp8, tau, grad_rounding, activation) for _ in range(layers))
        self.ln_f = nn.LayerNorm(d)
        self.head = nn.Linear(d, vocab, bias=False)
        std = 1.0 if self.mus else 0.02
        for m in (self.tok, self.pos, self.head):
            nn.init.normal_(m.weight, 0.0, std)
        if not self.mus:
            for b in self.blocks:
                for lin in (b.qkv, b.proj, b.up, b.down):
                    nn.init.normal_(lin.weight, 0.0, 0.02)

    def forward(self, idx):
        T = idx.shape[1]
        h = self.tok(idx) + self.pos(torch.arange(T, device=idx.device))
        if self.mus:
            h = h / math.sqrt(2.0)  # unit variance: two unit-variance embeddings
        h8 = None
        for b in self.blocks:
            h, h8 = b(h, h8)
        logits = self.head(self.ln_f(h))
        return logits / self.d if self.mus else logits  # μS head multiplier 1/fan_in


# ---------------------------------------------------------------------------------------------
# data and training


class Data:
    def __init__(self, corpus_chars: int, seed: int):
        text = make_corpus(corpus_chars, seed)
        chars = sorted(set(text))
        self.vocab = len(chars)
        ids = np.array([chars.index(c) for c in text], dtype=np.int64)
        split = int(len(ids) * 0.9)
        self.train, self.val = torch.from_numpy(ids[:split]), torch.from_numpy(ids[split:])

    def batch(self, step: int, batch: int, ctx: int, seed: int, split: str = "train"):
        src = self.train if split == "train" else self.val
        rng = np.random.default_rng([seed, step, 0 if split == "train" else 1])
        starts = rng.integers(0, len(src) - ctx - 1, batch)
        return torch.stack([src[s : s + ctx + 1] for s in starts])


def lr_factor(step: int, steps: int, warmup: float = 0.1) -> float:
    w = max(1, int(steps * warmup))
    if step < w:
        return (step + 1) / w
    p = (step - w) / max(1, steps - w)
    return 0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * p))


def _sum_hook(state, bucket):
    """DDP hook that sums the gradients (each rank's loss is its part of a global sum)."""
    fut = dist.all_reduce(bucket.buffer(), async_op=True).get_future()
    return fut.then(lambda f: f.value()[0])


def train(args, variant: str, width: int, lr: float, log_path: str | None = None) -> dict:
    """One training run; returns the summary (final train/val loss, ms/step)."""
    world = dist.get_world_size() if dist.is_initialized() else 1
    rank = dist.get_rank() if dist.is_initialized() else 0
    data = Data(args.corpus_chars, args.seed)
    torch.manual_seed(args.seed if args.init_seed is None else args.init_seed)
    model = CharTransformer(data.vocab, width, args.layers, args.heads, args.ctx, variant, args.tau, args.grad_rounding,
                            args.activation)
    if variant.startswith("mus"):
        groups = mus_param_groups(model, lr, width=width, base_width=args.base_width, weight_decay=args.wd,
                                  hidden_types=(MuSLinear,))
    else:
        groups = [{"params": list(model.parameters()), "lr": lr, "weight_decay": args.wd}]
    for g in groups:
        g["base_lr"] = g["lr"]
    opt = torch.optim.AdamW(groups, betas=(0.9, 0.95), eps=1e-8)
    net = model
    if world > 1:
        net = nn.parallel.DistributedDataParallel(model)
        net.register_comm_hook(None, _sum_hook)
    amp = variant.endswith("bf16")
    per = args.batch // world
    tokens = args.batch * args.ctx

    def loss_sum(m, xy):
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=amp):
            logits = m(xy[:, :-1])
        return F.cross_entropy(logits.float().reshape(-1, data.vocab), xy[:, 1:].reshape(-1), reduction="sum")

    def evaluate():
        model.eval()
        tot = 0.0
        with torch.no_grad():
            for i in range(args.eval_batches):
                tot += loss_sum(model, data.batch(i, args.batch, args.ctx, args.seed, "val")).item()
        model.train()
        return tot / (args.eval_batches * tokens)

    rows, t_train, recent = [], 0.0, []
    for step in range(args.steps):
        for g in opt.param_groups:
            g["lr"] = g["base_lr"] * lr_factor(step, args.steps)
        xy = data.batch(step, args.batch, args.ctx, args.seed)[rank * per : (rank + 1) * per]
        t0 = time.perf_counter()
        loss = loss_sum(net, xy)
        opt.zero_grad(set_to_none=True)
        (loss * args.loss_scale).backward()
        opt.step()
        t_train += time.perf_counter() - t0
        lt = loss.detach().clone()
        if world > 1:
            dist.all_reduce(lt)
        train_loss = lt.item() / tokens
        if not math.isfinite(train_loss):
            break
        recent = (recent + [train_loss])[-20:]
        val = evaluate() if (step + 1) % args.eval_every == 0 or step + 1 == args.steps else float("nan")
        rows.append((step + 1, train_loss, val))
    summary = {
        "variant": variant, "width": width, "lr": lr, "steps": len(rows), "world": world,
        "final_train_loss": float(np.mean(recent)) if recent else float("nan"),
        "final_val_loss": rows[-1][2] if rows else float("nan"),
        "ms_per_step": 1000 * t_train / max(1, len(rows)),
    }
    if log_path and rank == 0:
        with open(log_path, "w", newline="") as fh:
            w = csv.writer(fh)
            w.writerow(["step", "train_loss", "val_loss"])
            w.writerows(rows)
    return summary


def _write(path, rows):
    with open(path, "w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)


def seeds(args):
    """μS-FP8 and μS-f32 for initialisation seeds 1..args.seeds (same data and batches), final
    validation losses and the gap -> seeds_w<width>[_<activation>].csv; prints mean and standard
    error of the gap over the seeds where neither run diverged (a diverged seed's gap is nan)."""
    if dist.is_initialized():
        raise SystemExit("train.py seeds runs in one process (use run under torchrun)")
    tag = f"w{args.width}" + ("" if args.activation == "gelu" else f"_{args.activation}")
    rows, gaps = [], []
    for s in range(1, args.seeds + 1):
        args.init_seed = s
        runs = [train(args, v, args.width, args.lr) for v in ("mus_fp8", "mus_f32")]
        diverged = [r["variant"] for r in runs if r["steps"] < args.steps or not math.isfinite(r["final_val_loss"])]
        f8, f32 = (r["final_val_loss"] for r in runs)
        gap = float("nan") if diverged else 100 * (f8 / f32 - 1)
        rows.append({"init_seed": s, "mus_fp8_val_loss": f"{f8:.5f}", "mus_f32_val_loss": f"{f32:.5f}",
                     "fp8_vs_f32_percent": f"{gap:.2f}"})
        print(rows[-1], flush=True)
        if diverged:
            print(f"seed {s}: {', '.join(diverged)} diverged; left out of the mean", flush=True)
        else:
            gaps.append(gap)
        _write(os.path.join(args.out, f"seeds_{tag}.csv"), rows)
    if len(gaps) > 1:
        mean, sd = float(np.mean(gaps)), float(np.std(gaps, ddof=1))
        print(f"width {args.width}: μS-FP8 vs μS-f32 final validation loss {mean:+.2f}% on average "
              f"(standard error {sd / math.sqrt(len(gaps)):.2f}, {len(gaps)} seeds)")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("command", choices=["compare", "sweep", "run", "seeds"])
    ap.add_argument("--variant", default="mus_fp8", choices=["mus_fp8", "mus_f32", "mus_bf16", "sp_bf16", "sp_f32"])
    ap.add_argument("--variants", default="mus_fp8,mus_f32,mus_bf16,sp_bf16")
    ap.add_argument("--steps", type=int, default=400)
    ap.add_argument("--width", type=int, default=128)
    ap.add_argument("--widths", default="64,128")
    ap.add_argument("--layers", type=int, default=4)
    ap.add_argument("--heads", type=int, default=4)
    ap.add_argument("--ctx", type=int, default=64)
    ap.add_argument("--batch", type=int, default=16, help="global batch (sequences)")
    ap.add_argument("--tau", type=float, default=0.4)
    ap.add_argument("--lr", type=float, default=2.0**-6, help="μS η (hidden LR at --base-width)")
    ap.add_argument("--sp-lr", type=float, default=2.0**-9)
    ap.add_argument("--lrs", default="0.00390625,0.0078125,0.015625,0.03125,0.0625")
    ap.add_argument("--base-width", type=int, default=64)
    ap.add_argument("--wd", type=float, default=0.0)
    ap.add_argument("--loss-scale", type=float, default=1.0,
                    help="static factor on the loss given to backward (all variants): brings the output "
                         "gradients of the hidden linears to unit scale for their E5M2 cast; AdamW is "
                         "invariant to it up to eps")
    ap.add_argument("--grad-rounding", default="nearest_saturate", choices=["nearest_saturate", "stochastic"],
                    help="rounding of the E5M2 output gradients in mus_fp8")
    ap.add_argument("--activation", default="gelu", choices=sorted(ACTIVATIONS), help="FFN activation (all variants)")
    ap.add_argument("--seed", type=int, default=1, help="corpus, batches and (unless --init-seed) initialisation")
    ap.add_argument("--init-seed", type=int, default=None, help="initialisation only (same data and batches)")
    ap.add_argument("--seeds", type=int, default=10, help="seeds: initialisation seeds 1..N")
    ap.add_argument("--gemm-kernel", default=None,
                    help="unitfp8 GEMM kernel, e.g. amx-bf16 (opt-in, faster on AMX CPUs, not bit-identical)")
    ap.add_argument("--threads", type=int, default=1, help="threads per process for PyTorch and unitfp8 (0: their defaults)")
    ap.add_argument("--corpus-chars", type=int, default=300_000)
    ap.add_argument("--eval-every", type=int, default=50)
    ap.add_argument("--eval-batches", type=int, default=8)
    ap.add_argument("--out", default=os.path.join(HERE, "results"))
    args = ap.parse_args()

    if "WORLD_SIZE" in os.environ and int(os.environ["WORLD_SIZE"]) > 1:
        dist.init_process_group("gloo")
    if args.gemm_kernel:
        unitfp8.set_gemm_kernel(args.gemm_kernel)
    if args.threads:
        torch.set_num_threads(args.threads)
        unitfp8.set_num_threads(args.threads)
    os.makedirs(args.out, exist_ok=True)
    rank0 = not dist.is_initialized() or dist.get_rank() == 0

    if args.command == "compare":
        summaries = []
        for v in args.variants.split(","):
            lr = args.sp_lr if v.startswith("sp") else args.lr
            s = train(args, v, args.width, lr, os.path.join(args.out, f"{v}.csv"))
            print(s, flush=True)
            summaries.append(s)
        _write(os.path.join(args.out, "summary.csv"), summaries)
    elif args.command == "sweep":
        rows = []
        for width in (int(w) for w in args.widths.split(",")):
            for lr in (float(x) for x in args.lrs.split(",")):
                s = train(args, args.variant, width, lr)
                print(s, flush=True)
                rows.append(s)
                _write(os.path.join(args.out, f"sweep_{args.variant}.csv"), rows)
    elif args.command == "seeds":
        seeds(args)
    else:
        world = dist.get_world_size() if dist.is_initialized() else 1
        lr = args.sp_lr if args.variant.startswith("sp") else args.lr
        tag = f"run_{args.variant}{'_sr' if args.grad_rounding == 'stochastic' else ''}_world{world}"
        s = train(args, args.variant, args.width, lr, os.path.join(args.out, f"{tag}.csv"))
        if rank0:
            print(s, flush=True)
            _write(os.path.join(args.out, f"{tag}_summary.csv"), [s])
    if dist.is_initialized():
        dist.destroy_process_group()


if __name__ == "__main__":
    main()
