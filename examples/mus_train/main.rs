//! μS end to end: trains a small character-level transformer with the hidden linears in FP8
//! through unitfp8 and compares it with f32 and with the standard parametrisation.
//!
//! ```text
//! cargo run --release --example mus_train -- compare [--steps 400 --width 128 ...] [--out DIR]
//! cargo run --release --example mus_train -- sweep   [--widths 64,128,256 --steps 150 ...]
//! ```
//! `compare` trains μS-FP8, μS-f32, SP-f32 and SP-FP8 (same seed, same data order) and writes
//! `loss.csv`, `eval.csv` and `summary.csv` (to `--out`, default `target/mus_train`); `sweep` trains μS-FP8 and SP-f32 over widths ×
//! learning rates and writes `sweep.csv`. Options: `--layers --heads --ctx --batch --tau --lr
//! --sp-lr --d-base --wd --warmup --seed --threads --corpus-kb --eval-every --eval-batches --runs`
//! (`compare`: comma-separated subset of the four labels).
//! The model is in `model.rs`, the f32 building blocks in `ops.rs`, the corpus in `corpus.rs`.

mod corpus;
mod model;
mod ops;

use model::{Config, Data, Param, Prec, RunResult, train};
use std::collections::HashMap;
use std::io::Write;

const USAGE: &str = "\
usage: mus_train [compare | sweep] [--option value ...]

  compare   train muS-FP8, muS-f32, SP-f32 and SP-FP8 (same seed and data order); writes
            loss.csv, eval.csv and summary.csv to --out (default target/mus_train)
  sweep     train muS-FP8 and SP-f32 over widths x learning rates; writes sweep.csv

options (defaults in parentheses):
  --width (128) --layers (4) --heads (4) --ctx (64) --batch (16) --tau (0.4)
  --lr (2^-6, muS hidden LR) --sp-lr (2^-9) --d-base (128) --wd (1e-4) --steps (400)
  --warmup (steps/10) --seed (1) --threads (1) --corpus-kb (400) --eval-every (50)
  --eval-batches (8) --out DIR
  --runs LABELS         compare: comma-separated subset of muS-fp8,muS-f32,SP-f32,SP-fp8
  --widths LIST --lrs LIST --sp-lrs LIST   sweep: comma-separated values
  -h, --help            this text

The full experiment of the README: scripts/mus-train.sh.";

/// Prints an error and the usage hint, and exits with status 2.
fn fail(msg: &str) -> ! {
    eprintln!("mus_train: {msg}\nrun `mus_train --help` for the options");
    std::process::exit(2)
}

struct Args(HashMap<String, String>);

impl Args {
    fn get<T: std::str::FromStr>(&self, k: &str, default: T) -> T {
        self.0
            .get(k)
            .map(|v| {
                v.parse()
                    .unwrap_or_else(|_| fail(&format!("bad value for --{k}: {v:?}")))
            })
            .unwrap_or(default)
    }
    fn list(&self, k: &str, default: &str) -> Vec<f32> {
        self.0
            .get(k)
            .map_or(default, |s| s.as_str())
            .split(',')
            .map(|s| {
                s.trim()
                    .parse()
                    .unwrap_or_else(|_| fail(&format!("bad value in the list --{k}: {s:?}")))
            })
            .collect()
    }
}

fn base_config(a: &Args, data: &Data) -> Config {
    Config {
        param: Param::MuS,
        prec: Prec::Fp8,
        vocab: data.vocab,
        width: a.get("width", 128),
        layers: a.get("layers", 4),
        heads: a.get("heads", 4),
        ctx: a.get("ctx", 64),
        batch: a.get("batch", 16),
        tau: a.get("tau", 0.4),
        lr: a.get("lr", 2f32.powi(-6)),
        d_base: a.get("d-base", 128),
        wd: a.get("wd", 1e-4),
        steps: a.get("steps", 400),
        warmup: 0,
        seed: a.get("seed", 1),
    }
}

fn summary_line(cfg: &Config, r: &RunResult) -> String {
    let val = r.val.last().map_or(f64::NAN, |v| v.1);
    let steps = r.train.len();
    format!(
        "{},{},{},{},{:.5},{:.5},{},{:.2},{:.2},{:.3}",
        cfg.label(),
        cfg.width,
        cfg.lr,
        steps,
        r.final_train(20),
        val,
        r.diverged,
        r.train_s,
        1e3 * r.train_s / steps.max(1) as f64,
        r.lib_s / r.train_s
    )
}

const SUMMARY_HEADER: &str =
    "run,width,lr,steps,final_train_loss,final_val_loss,diverged,train_s,step_ms,lib_fraction";

fn main() {
    let argv: Vec<String> = std::env::args().skip(1).collect();
    if argv.iter().any(|a| a == "-h" || a == "--help") {
        println!("{USAGE}");
        return;
    }
    let (mode, rest) = match argv.first().map(String::as_str) {
        None => ("compare".to_string(), &argv[..]),
        Some(m @ ("compare" | "sweep")) => (m.to_string(), &argv[1..]),
        Some(m) if m.starts_with("--") => ("compare".to_string(), &argv[..]),
        Some(m) => fail(&format!("unknown mode {m:?} (compare | sweep)")),
    };
    let mut kv = HashMap::new();
    for pair in rest.chunks(2) {
        let k = pair[0]
            .strip_prefix("--")
            .unwrap_or_else(|| fail(&format!("expected --option, got {:?}", pair[0])));
        let v = pair
            .get(1)
            .unwrap_or_else(|| fail(&format!("--{k} needs a value")));
        kv.insert(k.to_string(), v.clone());
    }
    let a = Args(kv);
    unitfp8::set_num_threads(a.get("threads", 1));
    let out = std::path::PathBuf::from(a.get("out", "target/mus_train".to_string()));
    if let Err(e) = std::fs::create_dir_all(&out) {
        fail(&format!("cannot create {}: {e}", out.display()));
    }
    let text = corpus::generate(a.get("corpus-kb", 400usize) * 1024, 7);
    let data = Data::new(&text);
    let base = base_config(&a, &data);
    let (eval_every, eval_batches) = (a.get("eval-every", 50usize), a.get("eval-batches", 8usize));
    println!(
        "corpus {} KB, vocab {}, backend {:?}, GEMM kernel {}, threads {}",
        text.len() / 1024,
        data.vocab,
        unitfp8::Exec::global().backend(),
        unitfp8::Exec::global().gemm_kernel().name(),
        unitfp8::num_threads()
    );
    match mode.as_str() {
        "compare" => {
            let sp_lr = a.get("sp-lr", 2f32.powi(-9));
            let mut loss = std::fs::File::create(out.join("loss.csv")).unwrap();
            let mut eval = std::fs::File::create(out.join("eval.csv")).unwrap();
            let mut summ = std::fs::File::create(out.join("summary.csv")).unwrap();
            writeln!(loss, "run,step,train_loss").unwrap();
            writeln!(eval, "run,step,val_loss").unwrap();
            writeln!(summ, "{SUMMARY_HEADER}").unwrap();
            println!("{SUMMARY_HEADER}");
            let mut finals = HashMap::new();
            let runs = a.get("runs", "muS-fp8,muS-f32,SP-f32,SP-fp8".to_string());
            for (param, prec) in [
                (Param::MuS, Prec::Fp8),
                (Param::MuS, Prec::F32),
                (Param::Sp, Prec::F32),
                (Param::Sp, Prec::Fp8),
            ] {
                let lr = if param == Param::MuS { base.lr } else { sp_lr };
                let cfg = Config {
                    param,
                    prec,
                    lr,
                    warmup: a.get("warmup", base.steps / 10),
                    ..base.clone()
                };
                if !runs.split(',').any(|r| r == cfg.label()) {
                    continue;
                }
                let m = model::Model::new(cfg.clone());
                eprintln!(
                    "{}: {} parameters, {} steps",
                    cfg.label(),
                    m.num_params(),
                    cfg.steps
                );
                let r = train(&cfg, &data, eval_every, eval_batches);
                for (s, l) in &r.train {
                    writeln!(loss, "{},{s},{l:.5}", cfg.label()).unwrap();
                }
                for (s, l) in &r.val {
                    writeln!(eval, "{},{s},{l:.5}", cfg.label()).unwrap();
                }
                let line = summary_line(&cfg, &r);
                println!("{line}");
                writeln!(summ, "{line}").unwrap();
                finals.insert(
                    cfg.label(),
                    (r.final_train(20), r.val.last().map_or(f64::NAN, |v| v.1)),
                );
            }
            if let (Some(f8), Some(f32_)) = (finals.get("muS-fp8"), finals.get("muS-f32")) {
                println!(
                    "muS fp8 vs f32: train {:.4} vs {:.4} ({:+.2}%), val {:.4} vs {:.4} ({:+.2}%)",
                    f8.0,
                    f32_.0,
                    100.0 * (f8.0 / f32_.0 - 1.0),
                    f8.1,
                    f32_.1,
                    100.0 * (f8.1 / f32_.1 - 1.0)
                );
            }
        }
        "sweep" => {
            let widths: Vec<usize> = a
                .list("widths", "64,128,256")
                .iter()
                .map(|&w| w as usize)
                .collect();
            let mus_lrs = a.list("mus-lrs", "0.0039,0.0078,0.0156,0.03125,0.0625");
            let sp_lrs = a.list("sp-lrs", "0.00049,0.00098,0.00195,0.0039,0.0078");
            let precs: Vec<(Param, Prec)> = vec![(Param::MuS, Prec::Fp8), (Param::Sp, Prec::F32)];
            let mut f = std::fs::File::create(out.join("sweep.csv")).unwrap();
            writeln!(f, "{SUMMARY_HEADER}").unwrap();
            println!("{SUMMARY_HEADER}");
            for &(param, prec) in &precs {
                let lrs = if param == Param::MuS {
                    &mus_lrs
                } else {
                    &sp_lrs
                };
                for &width in &widths {
                    for &lr in lrs {
                        let cfg = Config {
                            param,
                            prec,
                            width,
                            lr,
                            warmup: a.get("warmup", base.steps / 10),
                            ..base.clone()
                        };
                        let r = train(&cfg, &data, cfg.steps, a.get("eval-batches", 4usize));
                        let line = summary_line(&cfg, &r);
                        println!("{line}");
                        writeln!(f, "{line}").unwrap();
                        f.flush().unwrap();
                    }
                }
            }
        }
        m => fail(&format!("unknown mode {m:?} (compare | sweep)")),
    }
}
