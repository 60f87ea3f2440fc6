//! A small decoder-only character transformer with a hand-written backward pass, in two
//! parametrisations (μS and SP) and two precisions (the hidden linears in FP8 through unitfp8,
//! or in plain f32).
//!
//! μS block (Res-Post-LN, fixed(τ) residual):
//!   `x ← sqrt(1-τ)·x + sqrt(τ)·LN(Attn(x))`, then `x ← sqrt(1-τ)·x + sqrt(τ)·LN(MLP(x))`,
//!   hidden weights N(0, 1) with `α = 1/sqrt(fan_in)` forward and backward, embeddings N(0, 1),
//!   LM head `logits = (1/d)·LN(x)·Uᵀ` with U N(0, 1), hidden LR `η·sqrt(d_base/d)`.
//! SP block (pre-LN, GPT-2 style): `x ← x + Attn(LN(x))`, `x ← x + MLP(LN(x))`, every weight
//!   N(0, 0.02²), no α, one LR for everything.
//!
//! In FP8 every hidden linear (QKV, attention out, MLP up, MLP down) runs through
//! `unitfp8::linear`: weights are clip-cast to E4M3 from f32 masters once per step, activations
//! are clip-cast to E4M3 (the μS residual stream's copy comes fused out of `residual_mix`),
//! output gradients are clip-cast to E5M2, all with scale 1. The μS residual mix runs through
//! `unitfp8::residual_mix{,_backward}` in both precisions. Everything else is plain f32 Rust.
//! Backward starts from the gradient of the *summed* token loss (softmax − onehot per token).
#![allow(dead_code)]

use crate::corpus::Rng;
use crate::ops::{
    LnCache, gelu, gelu_grad, ln_backward, ln_forward, mm_nn, mm_nt, mm_tn, softmax_xent,
};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;
use unitfp8::gemm::{MatMut, MatRef, gemm};
use unitfp8::linear::{LinearShape, linear_backward_data, linear_backward_weight, linear_forward};
use unitfp8::{
    CastParams, E4M3, E5M2, Fp8Out, MixParams, cast, residual_mix, residual_mix_backward,
};

static LIB_NS: AtomicU64 = AtomicU64::new(0);

/// Nanoseconds spent inside unitfp8 calls so far (all threads of this process).
pub fn lib_ns() -> u64 {
    LIB_NS.load(Ordering::Relaxed)
}

/// Runs a library call and adds its duration to [`lib_ns`].
fn lib<R>(f: impl FnOnce() -> R) -> R {
    let t = Instant::now();
    let r = f();
    LIB_NS.fetch_add(t.elapsed().as_nanos() as u64, Ordering::Relaxed);
    r
}

/// Parametrisation.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Param {
    /// μnit Scaling.
    MuS,
    /// Standard parametrisation (pre-LN, 0.02 init).
    Sp,
}

/// Precision of the hidden linears.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Prec {
    /// Plain f32.
    F32,
    /// E4M3 weights/activations, E5M2 gradients, through unitfp8.
    Fp8,
}

/// Model and training settings.
#[derive(Clone, Debug)]
pub struct Config {
    pub param: Param,
    pub prec: Prec,
    pub vocab: usize,
    pub width: usize,
    pub layers: usize,
    pub heads: usize,
    pub ctx: usize,
    pub batch: usize,
    /// fixed(τ) residual weight (μS).
    pub tau: f32,
    /// Peak learning rate η.
    pub lr: f32,
    /// Base width of the μS hidden-LR rule `η·sqrt(d_base/d)`.
    pub d_base: usize,
    /// Decoupled weight decay per step (hidden weights), times the LR schedule.
    pub wd: f32,
    pub steps: usize,
    pub warmup: usize,
    pub seed: u64,
}

impl Config {
    /// A short label, e.g. `muS-fp8`.
    pub fn label(&self) -> String {
        let p = if self.param == Param::MuS {
            "muS"
        } else {
            "SP"
        };
        let q = if self.prec == Prec::Fp8 { "fp8" } else { "f32" };
        format!("{p}-{q}")
    }
}

/// One parameter tensor `[rows, cols]` with its gradient, Adam moments and (hidden linears in
/// FP8 runs) its E4M3 copy.
pub struct Tensor {
    pub w: Vec<f32>,
    pub g: Vec<f32>,
    m: Vec<f32>,
    v: Vec<f32>,
    pub hidden: bool,
    pub rows: usize,
    pub cols: usize,
    w8: Vec<E4M3>,
}

struct LayerIdx {
    qkv: usize,
    o: usize,
    up: usize,
    down: usize,
    ln1: (usize, usize),
    ln2: (usize, usize),
}

/// An activation in f32 and (FP8 runs) its E4M3 copy.
struct Act {
    f: Vec<f32>,
    q: Vec<E4M3>,
}

struct LayerCache {
    in1: Act,
    ln1: LnCache,
    qkv: Vec<f32>,
    p: Vec<f32>,
    o: Act,
    in2: Act,
    ln2: LnCache,
    u: Vec<f32>,
    g: Act,
}

/// What the backward pass needs from the forward pass.
pub struct Cache {
    tokens: Vec<u8>,
    layers: Vec<LayerCache>,
    lnf: LnCache,
    hf: Vec<f32>,
    dlogits: Vec<f32>,
}

/// The model: parameters (all tensors in `params`) and settings.
pub struct Model {
    pub cfg: Config,
    pub params: Vec<Tensor>,
    emb: usize,
    pos: usize,
    head: usize,
    lnf: (usize, usize),
    layers: Vec<LayerIdx>,
}

impl Model {
    /// A freshly initialised model (deterministic in `cfg.seed`).
    pub fn new(cfg: Config) -> Model {
        let mut rng = Rng(cfg.seed);
        let (d, v) = (cfg.width, cfg.vocab);
        assert!(d % cfg.heads == 0);
        let mus = cfg.param == Param::MuS;
        let std = if mus { 1.0 } else { 0.02 };
        let mut params = Vec::new();
        let mut add = |rows: usize, cols: usize, init: Option<f32>, hidden: bool| {
            let w = (0..rows * cols)
                .map(|_| match init {
                    Some(s) => s * rng.normal(),
                    None => 0.0,
                })
                .collect();
            params.push(Tensor {
                w,
                g: vec![0.0; rows * cols],
                m: vec![0.0; rows * cols],
                v: vec![0.0; rows * cols],
                hidden,
                rows,
                cols,
                w8: Vec::new(),
            });
            params.len() - 1
        };
        let emb = add(v, d, Some(std), false);
        let pos = add(cfg.ctx, d, Some(std), false);
        let mut layers = Vec::new();
        for _ in 0..cfg.layers {
            let qkv = add(3 * d, d, Some(std), true);
            let o = add(d, d, Some(std), true);
            let up = add(4 * d, d, Some(std), true);
            let down = add(d, 4 * d, Some(std), true);
            let ln1 = (add(1, d, None, false), add(1, d, None, false));
            let ln2 = (add(1, d, None, false), add(1, d, None, false));
            layers.push(LayerIdx {
                qkv,
                o,
                up,
                down,
                ln1,
                ln2,
            });
        }
        let lnf = (add(1, d, None, false), add(1, d, None, false));
        let head = add(v, d, Some(std), false);
        let mut m = Model {
            cfg,
            params,
            emb,
            pos,
            head,
            lnf,
            layers,
        };
        for l in &m.layers {
            for g in [l.ln1.0, l.ln2.0] {
                m.params[g].w.fill(1.0);
            }
        }
        m.params[m.lnf.0].w.fill(1.0);
        m.refresh_fp8();
        m
    }

    /// Number of parameters.
    pub fn num_params(&self) -> usize {
        self.params.iter().map(|p| p.w.len()).sum()
    }

    fn fp8(&self) -> bool {
        self.cfg.prec == Prec::Fp8
    }

    fn mus(&self) -> bool {
        self.cfg.param == Param::MuS
    }

    /// α of a hidden linear.
    fn alpha(&self, fan_in: usize) -> f32 {
        if self.mus() {
            1.0 / (fan_in as f32).sqrt()
        } else {
            1.0
        }
    }

    /// Casts the f32 master weights of the hidden linears to E4M3 (FP8 runs).
    fn refresh_fp8(&mut self) {
        if !self.fp8() {
            return;
        }
        for p in self.params.iter_mut().filter(|p| p.hidden) {
            p.w8.resize(p.w.len(), E4M3::ZERO);
            lib(|| cast(&p.w, &mut p.w8, &CastParams::default())).unwrap();
        }
    }

    /// An activation with its E4M3 copy when the run is FP8.
    fn quant(&self, f: Vec<f32>) -> Act {
        let mut q = Vec::new();
        if self.fp8() {
            q = vec![E4M3::ZERO; f.len()];
            lib(|| cast(&f, &mut q, &CastParams::default())).unwrap();
        }
        Act { f, q }
    }

    /// `y = α·x·Wᵀ` for hidden linear `t`.
    fn linear(&self, t: usize, x: &Act, batch: usize) -> Vec<f32> {
        let p = &self.params[t];
        let (fo, fi) = (p.rows, p.cols);
        let alpha = self.alpha(fi);
        let mut y = vec![0.0; batch * fo];
        if self.fp8() {
            let s = LinearShape {
                batch,
                fan_in: fi,
                fan_out: fo,
            };
            lib(|| linear_forward(s, alpha, &x.q, &p.w8, &mut y)).unwrap();
        } else {
            mm_nt(batch, fi, fo, &x.f, &p.w, &mut y, alpha, false);
        }
        y
    }

    /// Backward of hidden linear `t`: writes dW into its gradient and `dx = α·dy·W` into `dx`
    /// (added when `acc`). FP8 runs cast `dy` to E5M2 first.
    fn linear_back(
        &mut self,
        t: usize,
        x: &Act,
        dy: &[f32],
        batch: usize,
        dx: &mut [f32],
        acc: bool,
    ) {
        let fp8 = self.fp8();
        let alpha = self.alpha(self.params[t].cols);
        let p = &mut self.params[t];
        let (fo, fi) = (p.rows, p.cols);
        if fp8 {
            let s = LinearShape {
                batch,
                fan_in: fi,
                fan_out: fo,
            };
            let mut dy8 = vec![E5M2::ZERO; dy.len()];
            lib(|| cast(dy, &mut dy8, &CastParams::default())).unwrap();
            lib(|| linear_backward_weight(s, alpha, &dy8, &x.q, 0.0, &mut p.g)).unwrap();
            if acc {
                // The library's backward-data has no β; the GEMM accumulates into dx directly.
                lib(|| {
                    let a = MatRef::row_major(&dy8[..], batch, fo)?;
                    let b = MatRef::row_major(&p.w8[..], fo, fi)?;
                    gemm(alpha, a, b, 1.0, MatMut::row_major(dx, batch, fi)?)
                })
                .unwrap();
            } else {
                lib(|| linear_backward_data(s, alpha, &dy8, &p.w8, 0.0, dx)).unwrap();
            }
        } else {
            mm_tn(fo, batch, fi, dy, &x.f, &mut p.g, alpha, false);
            mm_nn(batch, fo, fi, dy, &p.w, dx, alpha, acc);
        }
    }

    /// μS residual mix `sqrt(1-τ)·x + sqrt(τ)·f`, with the fused E4M3 copy in FP8 runs.
    fn mix(&self, x: &[f32], f: &[f32]) -> Act {
        let mut out = vec![0.0; x.len()];
        let mut q = if self.fp8() {
            vec![E4M3::ZERO; x.len()]
        } else {
            Vec::new()
        };
        let fp8 = if self.fp8() {
            Fp8Out::E4M3(&mut q)
        } else {
            Fp8Out::None
        };
        lib(|| residual_mix(x, f, &mut out, fp8, &MixParams::new(self.cfg.tau))).unwrap();
        Act { f: out, q }
    }

    /// Backward of the μS mix: returns (`sqrt(1-τ)·g`, `sqrt(τ)·g`).
    fn mix_back(&self, g: &[f32]) -> (Vec<f32>, Vec<f32>) {
        let (mut gx, mut gf) = (vec![0.0; g.len()], vec![0.0; g.len()]);
        lib(|| {
            residual_mix_backward(
                g,
                &mut gx,
                &mut gf,
                false,
                Fp8Out::None,
                &MixParams::new(self.cfg.tau),
            )
        })
        .unwrap();
        (gx, gf)
    }

    fn ln(&self, idx: (usize, usize), x: &[f32]) -> (Vec<f32>, LnCache) {
        let mut y = vec![0.0; x.len()];
        let c = ln_forward(
            x,
            self.cfg.width,
            &self.params[idx.0].w,
            &self.params[idx.1].w,
            &mut y,
        );
        (y, c)
    }

    fn ln_back(&mut self, idx: (usize, usize), c: &LnCache, dy: &[f32], dx: &mut [f32], acc: bool) {
        let d = self.cfg.width;
        let gain = std::mem::take(&mut self.params[idx.0].w);
        let mut dg = std::mem::take(&mut self.params[idx.0].g);
        ln_backward(dy, d, &gain, c, &mut dg, &mut self.params[idx.1].g, dx, acc);
        self.params[idx.0].w = gain;
        self.params[idx.0].g = dg;
    }

    /// Copies head `h` of sequence `b` (columns `col..col+dh` of `src`, row length `ld`).
    fn gather(&self, src: &[f32], ld: usize, b: usize, col: usize) -> Vec<f32> {
        let (t, dh) = (self.cfg.ctx, self.cfg.width / self.cfg.heads);
        let mut out = Vec::with_capacity(t * dh);
        for i in 0..t {
            let r = (b * t + i) * ld + col;
            out.extend_from_slice(&src[r..r + dh]);
        }
        out
    }

    fn scatter(&self, dst: &mut [f32], ld: usize, b: usize, col: usize, src: &[f32]) {
        let (t, dh) = (self.cfg.ctx, self.cfg.width / self.cfg.heads);
        for i in 0..t {
            let r = (b * t + i) * ld + col;
            dst[r..r + dh].copy_from_slice(&src[i * dh..(i + 1) * dh]);
        }
    }

    /// Causal multi-head attention on `qkv [n, 3d]`: returns the heads' outputs `[n, d]` and
    /// the probabilities `[batch, heads, T, T]`.
    fn attention(&self, qkv: &[f32]) -> (Vec<f32>, Vec<f32>) {
        let (d, t, h) = (self.cfg.width, self.cfg.ctx, self.cfg.heads);
        let dh = d / h;
        let scale = 1.0 / (dh as f32).sqrt();
        let mut o = vec![0.0; self.cfg.batch * t * d];
        let mut probs = vec![0.0; self.cfg.batch * h * t * t];
        for b in 0..self.cfg.batch {
            for hd in 0..h {
                let q = self.gather(qkv, 3 * d, b, hd * dh);
                let k = self.gather(qkv, 3 * d, b, d + hd * dh);
                let v = self.gather(qkv, 3 * d, b, 2 * d + hd * dh);
                let p = &mut probs[(b * h + hd) * t * t..][..t * t];
                mm_nt(t, dh, t, &q, &k, p, scale, false);
                for i in 0..t {
                    let row = &mut p[i * t..(i + 1) * t];
                    let mx = row[..=i].iter().fold(f32::NEG_INFINITY, |a, &x| a.max(x));
                    let mut z = 0.0;
                    for x in &mut row[..=i] {
                        *x = crate::ops::exp(*x - mx);
                        z += *x;
                    }
                    row[..=i].iter_mut().for_each(|x| *x /= z);
                    row[i + 1..].fill(0.0);
                }
                let mut oh = vec![0.0; t * dh];
                mm_nn(t, t, dh, p, &v, &mut oh, 1.0, false);
                self.scatter(&mut o, d, b, hd * dh, &oh);
            }
        }
        (o, probs)
    }

    /// Backward of [`Model::attention`]: returns `dqkv [n, 3d]`.
    fn attention_back(&self, qkv: &[f32], probs: &[f32], dout: &[f32]) -> Vec<f32> {
        let (d, t, h) = (self.cfg.width, self.cfg.ctx, self.cfg.heads);
        let dh = d / h;
        let scale = 1.0 / (dh as f32).sqrt();
        let mut dqkv = vec![0.0; self.cfg.batch * t * 3 * d];
        let (mut dp, mut dq, mut dk, mut dv) = (
            vec![0.0; t * t],
            vec![0.0; t * dh],
            vec![0.0; t * dh],
            vec![0.0; t * dh],
        );
        for b in 0..self.cfg.batch {
            for hd in 0..h {
                let q = self.gather(qkv, 3 * d, b, hd * dh);
                let k = self.gather(qkv, 3 * d, b, d + hd * dh);
                let v = self.gather(qkv, 3 * d, b, 2 * d + hd * dh);
                let dout_h = self.gather(dout, d, b, hd * dh);
                let p = &probs[(b * h + hd) * t * t..][..t * t];
                mm_nt(t, dh, t, &dout_h, &v, &mut dp, 1.0, false);
                mm_tn(t, t, dh, p, &dout_h, &mut dv, 1.0, false);
                for i in 0..t {
                    let (pr, dr) = (&p[i * t..(i + 1) * t], &mut dp[i * t..(i + 1) * t]);
                    let s: f32 = (0..=i).map(|j| pr[j] * dr[j]).sum();
                    for j in 0..t {
                        dr[j] = pr[j] * (dr[j] - s);
                    }
                }
                mm_nn(t, t, dh, &dp, &k, &mut dq, scale, false);
                mm_tn(t, t, dh, &dp, &q, &mut dk, scale, false);
                self.scatter(&mut dqkv, 3 * d, b, hd * dh, &dq);
                self.scatter(&mut dqkv, 3 * d, b, d + hd * dh, &dk);
                self.scatter(&mut dqkv, 3 * d, b, 2 * d + hd * dh, &dv);
            }
        }
        dqkv
    }

    /// Forward pass over `batch × ctx` tokens; returns the summed loss and the cache.
    pub fn forward(&self, tokens: &[u8], targets: &[u8]) -> (f64, Cache) {
        let (d, t, v) = (self.cfg.width, self.cfg.ctx, self.cfg.vocab);
        let n = tokens.len();
        assert_eq!(n, self.cfg.batch * t);
        let s = if self.mus() {
            std::f32::consts::FRAC_1_SQRT_2
        } else {
            1.0
        };
        let (e, p) = (&self.params[self.emb].w, &self.params[self.pos].w);
        let mut x0 = vec![0.0; n * d];
        for r in 0..n {
            let (tk, ps) = (tokens[r] as usize, r % t);
            for j in 0..d {
                x0[r * d + j] = s * (e[tk * d + j] + p[ps * d + j]);
            }
        }
        let mut layers = Vec::with_capacity(self.layers.len());
        let mut x = if self.mus() {
            self.quant(x0)
        } else {
            Act {
                f: x0,
                q: Vec::new(),
            }
        };
        for l in &self.layers {
            let (in1, ln1_pre) = if self.mus() {
                (x, None)
            } else {
                let (h1, c) = self.ln(l.ln1, &x.f);
                (self.quant(h1), Some((x.f, c)))
            };
            let qkv = self.linear(l.qkv, &in1, n);
            let (o, probs) = self.attention(&qkv);
            let o = self.quant(o);
            let a = self.linear(l.o, &o, n);
            let (xmid, ln1) = match ln1_pre {
                None => {
                    let (f1, c) = self.ln(l.ln1, &a);
                    (self.mix(&in1.f, &f1), c)
                }
                Some((xin, c)) => (
                    Act {
                        f: xin.iter().zip(&a).map(|(x, y)| x + y).collect(),
                        q: Vec::new(),
                    },
                    c,
                ),
            };
            let (in2, ln2_pre) = if self.mus() {
                (xmid, None)
            } else {
                let (h2, c) = self.ln(l.ln2, &xmid.f);
                (self.quant(h2), Some((xmid.f, c)))
            };
            let u = self.linear(l.up, &in2, n);
            let g = self.quant(u.iter().map(|&x| gelu(x)).collect());
            let m = self.linear(l.down, &g, n);
            let (xout, ln2) = match ln2_pre {
                None => {
                    let (f2, c) = self.ln(l.ln2, &m);
                    (self.mix(&in2.f, &f2), c)
                }
                Some((xm, c)) => (
                    Act {
                        f: xm.iter().zip(&m).map(|(x, y)| x + y).collect(),
                        q: Vec::new(),
                    },
                    c,
                ),
            };
            layers.push(LayerCache {
                in1,
                ln1,
                qkv,
                p: probs,
                o,
                in2,
                ln2,
                u,
                g,
            });
            x = xout;
        }
        let (hf, lnf) = self.ln(self.lnf, &x.f);
        let ah = if self.mus() { 1.0 / d as f32 } else { 1.0 };
        let mut logits = vec![0.0; n * v];
        mm_nt(
            n,
            d,
            v,
            &hf,
            &self.params[self.head].w,
            &mut logits,
            ah,
            false,
        );
        let mut dlogits = vec![0.0; n * v];
        let loss = softmax_xent(&logits, v, targets, &mut dlogits);
        (
            loss,
            Cache {
                tokens: tokens.to_vec(),
                layers,
                lnf,
                hf,
                dlogits,
            },
        )
    }

    /// Backward pass: fills every tensor's `g` with the gradient of the summed loss.
    pub fn backward(&mut self, c: Cache) {
        let (d, t, v) = (self.cfg.width, self.cfg.ctx, self.cfg.vocab);
        let n = c.tokens.len();
        for p in &mut self.params {
            p.g.fill(0.0);
        }
        let ah = if self.mus() { 1.0 / d as f32 } else { 1.0 };
        let mut dhf = vec![0.0; n * d];
        mm_nn(
            n,
            v,
            d,
            &c.dlogits,
            &self.params[self.head].w,
            &mut dhf,
            ah,
            false,
        );
        mm_tn(
            v,
            n,
            d,
            &c.dlogits,
            &c.hf,
            &mut self.params[self.head].g,
            ah,
            false,
        );
        let mut dx = vec![0.0; n * d];
        self.ln_back(self.lnf, &c.lnf, &dhf, &mut dx, false);
        for (li, lc) in c.layers.iter().enumerate().rev() {
            let (qkv, o, up, down, ln1, ln2) = {
                let l = &self.layers[li];
                (l.qkv, l.o, l.up, l.down, l.ln1, l.ln2)
            };
            // MLP branch.
            let (mut dxmid, dm) = if self.mus() {
                let (gx, gf) = self.mix_back(&dx);
                let mut dm = vec![0.0; n * d];
                self.ln_back(ln2, &lc.ln2, &gf, &mut dm, false);
                (gx, dm)
            } else {
                (dx.clone(), dx)
            };
            let mut dg = vec![0.0; n * 4 * d];
            self.linear_back(down, &lc.g, &dm, n, &mut dg, false);
            let du: Vec<f32> = dg
                .iter()
                .zip(&lc.u)
                .map(|(g, &u)| g * gelu_grad(u))
                .collect();
            if self.mus() {
                self.linear_back(up, &lc.in2, &du, n, &mut dxmid, true);
            } else {
                let mut dh2 = vec![0.0; n * d];
                self.linear_back(up, &lc.in2, &du, n, &mut dh2, false);
                self.ln_back(ln2, &lc.ln2, &dh2, &mut dxmid, true);
            }
            // Attention branch.
            let (mut dxin, da) = if self.mus() {
                let (gx, gf) = self.mix_back(&dxmid);
                let mut da = vec![0.0; n * d];
                self.ln_back(ln1, &lc.ln1, &gf, &mut da, false);
                (gx, da)
            } else {
                (dxmid.clone(), dxmid)
            };
            let mut dout = vec![0.0; n * d];
            self.linear_back(o, &lc.o, &da, n, &mut dout, false);
            let dqkv = self.attention_back(&lc.qkv, &lc.p, &dout);
            if self.mus() {
                self.linear_back(qkv, &lc.in1, &dqkv, n, &mut dxin, true);
            } else {
                let mut dh1 = vec![0.0; n * d];
                self.linear_back(qkv, &lc.in1, &dqkv, n, &mut dh1, false);
                self.ln_back(ln1, &lc.ln1, &dh1, &mut dxin, true);
            }
            dx = dxin;
        }
        let s = if self.mus() {
            std::f32::consts::FRAC_1_SQRT_2
        } else {
            1.0
        };
        for r in 0..n {
            let (tk, ps) = (c.tokens[r] as usize, r % t);
            for j in 0..d {
                self.params[self.emb].g[tk * d + j] += s * dx[r * d + j];
                self.params[self.pos].g[ps * d + j] += s * dx[r * d + j];
            }
        }
    }

    /// LR multiplier at `step`: linear warm-up, then cosine decay to 0.1.
    pub fn schedule(&self, step: usize) -> f32 {
        let (w, total) = (self.cfg.warmup.max(1), self.cfg.steps.max(1));
        if step < w {
            return (step + 1) as f32 / w as f32;
        }
        let f = (step - w) as f32 / (total - w).max(1) as f32;
        0.1 + 0.9 * 0.5 * (1.0 + (std::f32::consts::PI * f.min(1.0)).cos())
    }

    /// One Adam step (β = 0.9, 0.95; ε = 1e-8) on all tensors; μS hidden tensors use
    /// `η·sqrt(d_base/d)`; hidden weights decay by `wd·schedule` (decoupled). Then the FP8 copies
    /// are refreshed.
    pub fn update(&mut self, step: usize) {
        let (b1, b2, eps) = (0.9f32, 0.95f32, 1e-8f32);
        let sched = self.schedule(step);
        let hidden_mult = if self.mus() {
            (self.cfg.d_base as f32 / self.cfg.width as f32).sqrt()
        } else {
            1.0
        };
        let (bc1, bc2) = (
            1.0 - b1.powi(step as i32 + 1),
            1.0 - b2.powi(step as i32 + 1),
        );
        for p in &mut self.params {
            let lr = self.cfg.lr * sched * if p.hidden { hidden_mult } else { 1.0 };
            let decay = if p.hidden {
                1.0 - self.cfg.wd * sched
            } else {
                1.0
            };
            for i in 0..p.w.len() {
                let g = p.g[i];
                p.m[i] = b1 * p.m[i] + (1.0 - b1) * g;
                p.v[i] = b2 * p.v[i] + (1.0 - b2) * g * g;
                let upd = (p.m[i] / bc1) / ((p.v[i] / bc2).sqrt() + eps);
                p.w[i] = p.w[i] * decay - lr * upd;
            }
        }
        self.refresh_fp8();
    }
}

/// The corpus as token ids, split 90/10 into training and validation text.
pub struct Data {
    pub train: Vec<u8>,
    pub val: Vec<u8>,
    pub vocab: usize,
    pub chars: Vec<u8>,
}

impl Data {
    /// Tokenises `text` by character.
    pub fn new(text: &[u8]) -> Data {
        let mut chars: Vec<u8> = text.to_vec();
        chars.sort_unstable();
        chars.dedup();
        let mut id = [0u8; 256];
        for (i, &c) in chars.iter().enumerate() {
            id[c as usize] = i as u8;
        }
        let toks: Vec<u8> = text.iter().map(|&c| id[c as usize]).collect();
        let split = toks.len() * 9 / 10;
        Data {
            train: toks[..split].to_vec(),
            val: toks[split..].to_vec(),
            vocab: chars.len(),
            chars,
        }
    }

    /// A batch of `batch` random windows (inputs, next-token targets).
    pub fn batch(&self, rng: &mut Rng, batch: usize, ctx: usize) -> (Vec<u8>, Vec<u8>) {
        let (mut x, mut y) = (Vec::new(), Vec::new());
        for _ in 0..batch {
            let s = rng.below(self.train.len() - ctx - 1);
            x.extend_from_slice(&self.train[s..s + ctx]);
            y.extend_from_slice(&self.train[s + 1..s + ctx + 1]);
        }
        (x, y)
    }

    /// Validation batch `i` of `count` (windows evenly spaced through the validation text).
    pub fn val_batch(
        &self,
        i: usize,
        count: usize,
        batch: usize,
        ctx: usize,
    ) -> (Vec<u8>, Vec<u8>) {
        let (mut x, mut y) = (Vec::new(), Vec::new());
        let stride = (self.val.len() - ctx - 1) / (count * batch);
        for j in 0..batch {
            let s = (i * batch + j) * stride;
            x.extend_from_slice(&self.val[s..s + ctx]);
            y.extend_from_slice(&self.val[s + 1..s + ctx + 1]);
        }
        (x, y)
    }
}

/// What one training run produced.
pub struct RunResult {
    /// (step, mean train loss per token).
    pub train: Vec<(usize, f64)>,
    /// (step, mean validation loss per token).
    pub val: Vec<(usize, f64)>,
    /// Seconds in training steps (evaluation excluded).
    pub train_s: f64,
    /// Seconds of those inside unitfp8 calls.
    pub lib_s: f64,
    /// Whether the loss became NaN/Inf or exceeded 2·ln(vocab) (the run stopped).
    pub diverged: bool,
}

impl RunResult {
    /// Mean train loss over the last `k` logged steps.
    pub fn final_train(&self, k: usize) -> f64 {
        let tail = &self.train[self.train.len().saturating_sub(k)..];
        tail.iter().map(|x| x.1).sum::<f64>() / tail.len().max(1) as f64
    }
}

/// Mean validation loss over `count` fixed batches.
pub fn evaluate(m: &Model, data: &Data, count: usize) -> f64 {
    let (b, t) = (m.cfg.batch, m.cfg.ctx);
    let total: f64 = (0..count)
        .map(|i| {
            let (x, y) = data.val_batch(i, count, b, t);
            m.forward(&x, &y).0
        })
        .sum();
    total / (count * b * t) as f64
}

/// Trains `cfg.steps` steps on batches drawn with `cfg.seed`; evaluates every `eval_every`
/// steps (and at the end) on `eval_batches` validation batches.
pub fn train(cfg: &Config, data: &Data, eval_every: usize, eval_batches: usize) -> RunResult {
    let mut m = Model::new(cfg.clone());
    let mut rng = Rng(cfg.seed ^ 0xDA7A);
    let ntok = (cfg.batch * cfg.ctx) as f64;
    let mut r = RunResult {
        train: Vec::new(),
        val: Vec::new(),
        train_s: 0.0,
        lib_s: 0.0,
        diverged: false,
    };
    let limit = 2.0 * (cfg.vocab as f64).ln();
    for step in 0..cfg.steps {
        if eval_every > 0 && step % eval_every == 0 {
            r.val.push((step, evaluate(&m, data, eval_batches)));
        }
        let (x, y) = data.batch(&mut rng, cfg.batch, cfg.ctx);
        let (t0, l0) = (Instant::now(), lib_ns());
        let (loss, cache) = m.forward(&x, &y);
        m.backward(cache);
        m.update(step);
        r.train_s += t0.elapsed().as_secs_f64();
        r.lib_s += (lib_ns() - l0) as f64 * 1e-9;
        let loss = loss / ntok;
        r.train.push((step, loss));
        if !loss.is_finite() || loss > limit {
            r.diverged = true;
            return r;
        }
    }
    if eval_every > 0 {
        r.val.push((cfg.steps, evaluate(&m, data, eval_batches)));
    }
    r
}
