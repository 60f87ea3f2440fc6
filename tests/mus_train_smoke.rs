//! Smoke test of the μS training example (examples/mus_train): a finite-difference check of
//! the hand-written backward pass on tiny f32 models (μS and SP), then a short training run in
//! μS-FP8 and μS-f32 that must reduce the loss and agree.

#[path = "../examples/mus_train/corpus.rs"]
mod corpus;
#[path = "../examples/mus_train/model.rs"]
mod model;
#[path = "../examples/mus_train/ops.rs"]
mod ops;

mod common;

use corpus::Rng;
use model::{Config, Data, Model, Param, Prec, train};

fn tiny(param: Param, prec: Prec, data: &Data) -> Config {
    Config {
        param,
        prec,
        vocab: data.vocab,
        width: 16,
        layers: 2,
        heads: 2,
        ctx: 8,
        batch: 2,
        tau: 0.4,
        lr: 0.01,
        d_base: 16,
        wd: 0.0,
        steps: 1,
        warmup: 1,
        seed: 3,
    }
}

/// Central differences on random entries of every tensor against the backward pass.
fn grad_check(param: Param) {
    let data = Data::new(&corpus::generate(20_000, 1));
    let mut cfg = tiny(param, Prec::F32, &data);
    let mut rng = Rng(common::test_seed("grad_check"));
    cfg.seed = rng.next_u64();
    let mut m = Model::new(cfg);
    // Move the parameters off their initial values (LayerNorm gains 1, biases 0) so that every
    // path of the backward pass carries a generic gradient.
    let scale = if param == Param::MuS { 0.3 } else { 0.01 };
    for p in &mut m.params {
        p.w.iter_mut().for_each(|w| *w += scale * rng.normal());
    }
    let (x, y) = data.batch(&mut rng, 2, 8);
    let (_, cache) = m.forward(&x, &y);
    m.backward(cache);
    let mut worst = 0.0f64;
    for t in 0..m.params.len() {
        // One step for all tensors: a single entry moved by 1e-2 changes one activation by about
        // 1e-2·|x|, well inside the smooth range, and keeps the f32 rounding noise of the
        // summed loss (~1e-6) at ~1e-4 in the difference quotient. SP's embeddings (tensors 0
        // and 1, N(0, 0.02²)) feed a LayerNorm directly, so a 1e-2 step is half their scale:
        // they get 2e-3.
        let h = if param == Param::Sp && t < 2 {
            2e-3f32
        } else {
            1e-2
        };
        let (mut num, mut den) = (0.0f64, 0.0f64);
        for _ in 0..6 {
            let i = rng.below(m.params[t].w.len());
            let w0 = m.params[t].w[i];
            m.params[t].w[i] = w0 + h;
            let lp = m.forward(&x, &y).0;
            m.params[t].w[i] = w0 - h;
            let lm = m.forward(&x, &y).0;
            m.params[t].w[i] = w0;
            let fd = (lp - lm) / (2.0 * h as f64);
            let g = f64::from(m.params[t].g[i]);
            num += (fd - g).powi(2);
            den += fd.powi(2).max(g.powi(2));
        }
        // Relative error, with an absolute floor of 1e-3 for the rounding noise of the
        // difference quotient (tensors whose sampled gradients are all ~0).
        let rel = num.sqrt() / den.sqrt().max(1e-12);
        let err = num.sqrt() / (den.sqrt() + 0.05);
        println!(
            "{param:?} tensor {t}: relative error {rel:.2e} (|g| {:.2e})",
            den.sqrt()
        );
        worst = worst.max(err);
    }
    assert!(
        worst < 2e-2,
        "{param:?}: gradient check failed, worst relative error {worst:.3e}"
    );
}

#[test]
fn gradients_mus() {
    grad_check(Param::MuS);
}

#[test]
fn gradients_sp() {
    grad_check(Param::Sp);
}

/// Tolerance of the FP8-vs-f32 final-loss comparison in this tiny run (relative).
const FP8_TOLERANCE: f64 = 0.03;

#[test]
fn fp8_training_matches_f32() {
    let data = Data::new(&corpus::generate(100_000, 1));
    let cfg = |prec| Config {
        width: 32,
        ctx: 32,
        batch: 8,
        steps: 60,
        warmup: 6,
        lr: 0.03,
        d_base: 32,
        ..tiny(Param::MuS, prec, &data)
    };
    let f8 = train(&cfg(Prec::Fp8), &data, 0, 0);
    let f32_ = train(&cfg(Prec::F32), &data, 0, 0);
    let (first, last8, last32) = (f8.train[0].1, f8.final_train(10), f32_.final_train(10));
    println!("muS-fp8 loss {first:.4} -> {last8:.4}; muS-f32 -> {last32:.4}");
    assert!(!f8.diverged && !f32_.diverged);
    assert!(
        last8 < first - 0.5,
        "FP8 loss did not decrease enough: {first} -> {last8}"
    );
    assert!(
        last32 < first - 0.5,
        "f32 loss did not decrease enough: {first} -> {last32}"
    );
    let rel = (last8 / last32 - 1.0).abs();
    assert!(
        rel < FP8_TOLERANCE,
        "FP8 {last8} vs f32 {last32}: {:.2}% apart",
        100.0 * rel
    );
}

/// The example's vectorisable `exp` against f64 over its whole range, in steps of 2^-12.
#[test]
fn exp_accuracy() {
    let mut worst = 0.0f64;
    let mut x = -87.0f32;
    while x <= 88.0 {
        let rel = (f64::from(ops::exp(x)) / f64::from(x).exp() - 1.0).abs();
        worst = worst.max(rel);
        x += 1.0 / 4096.0;
    }
    println!("exp: worst relative error {worst:.2e}");
    assert!(worst < 1e-6, "exp relative error {worst:.2e}");
    assert!(ops::exp(f32::NAN).is_nan());
}
