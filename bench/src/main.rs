//! unitfp8 cast and residual-mix microbenchmarks.
//!
//! `cargo run --release -p unitfp8-bench -- [--quick] [--json PATH] [--filter SUBSTR]
//! [--no-python] [--rounds N]`
//!
//! Measures, in one run: the copy bandwidth (plain `copy_from_slice` and a non-temporal-store
//! copy), then every kernel at an in-cache size (4096 elements, i.e. 16 KiB of f32) and a DRAM
//! size (2^26 elements, 2^24 with `--quick`), on 1 thread and on all CPUs, for the best back end
//! and the scalar one, next to a copy of the same number of bytes and a plain-loop Rust peer
//! (`half` / `float8`), each round running every variant once in rotating order, so that the
//! host's noise hits all of them alike; ratios are medians over rounds of paired times. The
//! Python peers (ml_dtypes, PyTorch) run in a subprocess first. Prints a table and writes JSON
//! (default `bench/results/casts.json`).
//!
//! In-cache, "N threads" means N callers at once, each with its own buffers and a 1-thread
//! `Exec` (the library does not split inputs that small); at the DRAM size it means one call
//! with `Exec::with_threads(N)`.

mod copy;
mod kernels;
mod peers;
mod timing;

use kernels::{Bufs, Imp, Kernel};
use serde_json::{Value, json};
use std::path::PathBuf;
use std::time::{Instant, SystemTime, UNIX_EPOCH};
use timing::{Stats, timed_callers};
use unitfp8::{Backend, Exec};

/// Command-line options.
struct Args {
    quick: bool,
    json: PathBuf,
    filter: Option<String>,
    python: bool,
    rounds: Option<usize>,
}

fn parse_args() -> Args {
    let mut a = Args {
        quick: false,
        json: PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/out/casts.json")),
        filter: None,
        python: true,
        rounds: None,
    };
    let mut it = std::env::args().skip(1);
    while let Some(arg) = it.next() {
        match arg.as_str() {
            "--quick" => a.quick = true,
            "--json" => a.json = it.next().expect("--json needs a path").into(),
            "--filter" => a.filter = Some(it.next().expect("--filter needs a substring")),
            "--no-python" => a.python = false,
            "--rounds" => {
                a.rounds = Some(
                    it.next()
                        .and_then(|s| s.parse().ok())
                        .expect("--rounds needs a number"),
                )
            }
            // `cargo bench` passes --bench; ignore it.
            "--bench" => {}
            "-h" | "--help" => {
                println!(
                    "unitfp8-bench [--quick] [--json PATH] [--filter SUBSTR] [--no-python] \
                     [--rounds N]\n  --quick      smaller DRAM size (2^24 elements), fewer rounds\n  \
                     --json PATH  where to write the JSON (default bench/out/casts.json)\n  \
                     --filter S   only kernels whose id contains S\n  \
                     --no-python  skip the ml_dtypes / PyTorch peers\n  \
                     --rounds N   rounds per measurement (default 9 in-cache, 5 DRAM; quick 7/3)\n\
                     Env: PYTHON (interpreter for the Python peers, default python3); \
                     UNITFP8_BENCH_TORCH=1 adds the PyTorch peer"
                );
                std::process::exit(0);
            }
            other => {
                eprintln!("unknown argument {other:?} (try --help)");
                std::process::exit(2);
            }
        }
    }
    a
}

/// A problem size.
struct Size {
    label: &'static str,
    n: usize,
    rounds: usize,
    /// Fewest rounds: after the first round, the count drops towards this when `rounds` rounds
    /// would take longer than `budget_s`.
    min_rounds: usize,
    /// Seconds one (kernel, threads) measurement should take at most (0 = no limit).
    budget_s: f64,
    /// Seconds per timed sample; 0 = one call per sample.
    target_s: f64,
    in_cache: bool,
}

/// Per-variant results of one (kernel, size, threads) measurement.
struct Measured {
    /// Seconds per call, one per round.
    times: Vec<f64>,
    /// Elements per call.
    elems: usize,
    /// Threads working during a call (callers or library threads).
    threads: usize,
}

/// Times `variants` of `kernel` in `rounds` rounds of rotating order; `states` holds one buffer
/// set per concurrent caller.
fn measure(
    states: &mut [Bufs],
    size: &Size,
    kernel: Kernel,
    variants: &[Imp],
    threads: usize,
) -> Vec<Measured> {
    let (callers, inner) = if size.in_cache {
        (threads, 1)
    } else {
        (1, threads)
    };
    let states = &mut states[..callers];
    let run = |states: &mut [Bufs], imp: Imp, iters: usize| -> f64 {
        let op = move |b: &mut Bufs| {
            for _ in 0..iters {
                b.run(kernel, imp, inner);
            }
        };
        timed_callers(states, &op) / iters as f64
    };
    // In-cache: warm up every variant and calibrate the calls per sample. At the DRAM size every
    // page is already written (Bufs::new) and a call takes far longer than any warm-up effect,
    // so each sample is one call and none is thrown away.
    let iters: Vec<usize> = variants
        .iter()
        .map(|&imp| {
            if size.target_s <= 0.0 {
                return 1;
            }
            run(states, imp, 1);
            let mut it = 1;
            loop {
                let t = run(states, imp, it) * it as f64;
                if t >= size.target_s / 4.0 || it >= 1 << 24 {
                    break ((it as f64 * size.target_s / t.max(1e-9)).ceil() as usize).max(1);
                }
                it *= 2;
            }
        })
        .collect();
    let mut times = vec![Vec::with_capacity(size.rounds); variants.len()];
    let mut rounds = size.rounds;
    let started = Instant::now();
    let mut r = 0;
    while r < rounds {
        if r == 1 && size.budget_s > 0.0 {
            let per_round = started.elapsed().as_secs_f64();
            let fit = (size.budget_s / per_round).floor() as usize;
            rounds = fit.clamp(size.min_rounds.min(rounds), rounds);
        }
        for k in 0..variants.len() {
            let v = (k + r) % variants.len();
            times[v].push(run(states, variants[v], iters[v]));
        }
        r += 1;
    }
    std::hint::black_box(states.iter().map(Bufs::checksum).sum::<u64>());
    times
        .into_iter()
        .map(|times| Measured {
            times,
            elems: size.n * callers,
            threads: callers * inner,
        })
        .collect()
}

/// Clock probe: samples and milliseconds per sample.
const CLOCK_SAMPLES: usize = 21;
const CLOCK_MS: f64 = 5.0;

/// One line of the kernel table.
struct Row {
    kernel: Kernel,
    size: &'static str,
    threads: usize,
    callers: usize,
    name: String,
    kind: &'static str,
    /// Elements per call (all callers).
    elems: usize,
    /// Threads working during a call.
    busy_threads: usize,
    /// Per-call time statistics (None for the Python peers, whose JSON has them).
    stats: Option<Stats>,
    rounds: usize,
    median_s: f64,
    pct_copy: f64,
    vs_rust: Option<f64>,
    vs_py: Vec<(&'static str, Option<f64>)>,
}

impl Row {
    fn gbps(&self, seconds: f64) -> f64 {
        let (r, w) = self.kernel.bytes_per_elem();
        ((r + w) * self.elems) as f64 / seconds / 1e9
    }

    fn cycles_per_elem(&self, hz: f64) -> f64 {
        self.median_s * hz * self.busy_threads as f64 / self.elems as f64
    }

    fn line(&self, hz: f64) -> String {
        let range = self.stats.map_or(String::new(), |s| {
            format!("({:.2}..{:.2})", self.gbps(s.max), self.gbps(s.min))
        });
        let mut row = format!(
            "  {:<6} {:>3}  {:<18} {:>8.2} {:<18} {:>7.3} {:>8.2} {:>6.1}%",
            self.size,
            self.threads,
            self.name,
            self.gbps(self.median_s),
            range,
            self.elems as f64 / self.median_s / 1e9,
            self.cycles_per_elem(hz),
            self.pct_copy,
        );
        if self.kind == "unitfp8" {
            row += &format!("  {:>8}", fmt_ratio(self.vs_rust));
            for (_, r) in &self.vs_py {
                row += &format!("  {:>11}", fmt_ratio(*r));
            }
        }
        row
    }

    fn json(&self, hz: f64) -> Value {
        let (r, w) = self.kernel.bytes_per_elem();
        let mut v = json!({
            "kernel": self.kernel.id(),
            "label": self.kernel.label(),
            "size": self.size,
            "n_per_call": self.elems / self.callers,
            "callers": self.callers,
            "threads": self.threads,
            "impl": self.name,
            "kind": self.kind,
            "bytes_read_per_elem": r,
            "bytes_written_per_elem": w,
            "median_seconds_per_call": self.median_s,
            "gbps_median": self.gbps(self.median_s),
            "gelem_per_s": self.elems as f64 / self.median_s / 1e9,
            "cycles_per_elem_per_thread": self.cycles_per_elem(hz),
            "pct_of_copy": self.pct_copy,
        });
        if let Some(s) = self.stats {
            v["rounds"] = json!(self.rounds);
            v["seconds_per_call"] = json!({
                "median": s.median, "min": s.min, "max": s.max, "q1": s.q1, "q3": s.q3,
            });
            v["gbps"] = json!({
                "median": self.gbps(s.median), "min": self.gbps(s.max), "max": self.gbps(s.min),
                "q1": self.gbps(s.q3), "q3": self.gbps(s.q1),
            });
        }
        if self.kind == "unitfp8" {
            v["speedup_vs_rust_peer"] = json!(self.vs_rust);
            v["speedup_vs_python_peers"] = Value::Object(
                self.vs_py
                    .iter()
                    .map(|(n, r)| (n.to_string(), json!(r)))
                    .collect(),
            );
        }
        v
    }
}

/// Median over rounds of `a[r] / b[r]`.
fn paired_ratio(a: &[f64], b: &[f64]) -> f64 {
    let r: Vec<f64> = a.iter().zip(b).map(|(x, y)| x / y).collect();
    Stats::of(&r).median
}

fn cpu_model() -> String {
    std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("model name") || l.starts_with("Model"))
                .and_then(|l| l.split(':').nth(1))
                .map(|m| m.trim().to_string())
        })
        .unwrap_or_else(|| "unknown".to_string())
}

fn cpu_flags() -> Vec<String> {
    let want = [
        "avx2",
        "avx512f",
        "avx512bw",
        "avx512vl",
        "avx512dq",
        "avx512_vbmi",
        "avx512_bf16",
        "avx512_fp16",
        "asimd",
        "bf16",
    ];
    std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("flags") || l.starts_with("Features"))
                .map(|l| {
                    l.split(':')
                        .nth(1)
                        .unwrap_or("")
                        .split_whitespace()
                        .filter(|f| want.contains(f))
                        .map(str::to_string)
                        .collect()
                })
        })
        .unwrap_or_default()
}

/// UTC date and time, ISO 8601, from the system clock (days → civil date by the standard
/// era/day-of-era arithmetic).
fn utc_now() -> String {
    let secs = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs()) as i64;
    let (days, rem) = (secs.div_euclid(86400), secs.rem_euclid(86400));
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        rem / 60 % 60,
        rem % 60
    )
}

fn git_commit() -> Option<String> {
    let out = std::process::Command::new("git")
        .args(["rev-parse", "--short", "HEAD"])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).trim().to_string())
}

fn human_bytes(b: usize) -> String {
    if b >= 1 << 20 {
        format!("{} MiB", b >> 20)
    } else {
        format!("{} KiB", b >> 10)
    }
}

fn fmt_ratio(x: Option<f64>) -> String {
    match x {
        Some(v) if v >= 100.0 => format!("{v:.0}x"),
        Some(v) if v >= 10.0 => format!("{v:.1}x"),
        Some(v) => format!("{v:.2}x"),
        None => "-".to_string(),
    }
}

/// Why "% copy" can exceed 100%.
const PCT_COPY_NOTE: &str = "%copy above 100%: large kernels write their outputs with streaming \
(non-temporal) stores, which do not read the destination into the cache first; the \
copy_from_slice yardstick does (write-allocate), so it moves more bytes than it counts.";

fn main() {
    let args = parse_args();
    let started = Instant::now();
    let all = std::thread::available_parallelism().map_or(1, |n| n.get());
    let thread_counts: Vec<usize> = if all > 1 { vec![1, all] } else { vec![1] };
    let best = Backend::best();
    let mut backends = vec![best];
    if best != Backend::Scalar {
        backends.push(Backend::Scalar);
    }
    let execs: Vec<Exec> = backends
        .iter()
        .map(|&b| Exec::new(b).expect("available back end"))
        .collect();
    let kernels: Vec<Kernel> = Kernel::ALL
        .into_iter()
        .filter(|k| {
            args.filter
                .as_ref()
                .is_none_or(|f| k.id().contains(f.as_str()))
        })
        .collect();
    let (cache_rounds, dram_rounds) = if args.quick { (7, 3) } else { (9, 5) };
    let sizes = [
        Size {
            label: "cache",
            n: 64 * 64,
            rounds: args.rounds.unwrap_or(cache_rounds),
            min_rounds: args.rounds.unwrap_or(cache_rounds),
            budget_s: 0.0,
            target_s: if args.quick { 0.5e-3 } else { 2e-3 },
            in_cache: true,
        },
        Size {
            label: "dram",
            n: if args.quick { 1 << 24 } else { 1 << 26 },
            rounds: args.rounds.unwrap_or(dram_rounds),
            min_rounds: args.rounds.unwrap_or(3),
            budget_s: if args.quick { 2.0 } else { 5.0 },
            target_s: 0.0,
            in_cache: false,
        },
    ];

    eprintln!("measuring the clock...");
    let clock_start = timing::measure_clock(CLOCK_SAMPLES, CLOCK_MS);

    // Python peers first, while this process is idle.
    let py_config = json!({
        "kernels": kernels.iter().map(|k| k.id()).collect::<Vec<_>>(),
        "sizes": sizes.iter().map(|s| json!({
            "label": s.label, "n": s.n, "rounds": s.rounds.min(if s.in_cache { 7 } else { 3 }),
            "target_s": s.target_s,
        })).collect::<Vec<_>>(),
        "threads": thread_counts,
        "tau": kernels::TAU,
    });
    let py_peers: Vec<peers::PyPeer> = if args.python {
        let torch = peers::torch_enabled();
        if !torch {
            eprintln!("note: {}", peers::TORCH_OFF);
        }
        [
            ("ml_dtypes", "ml_dtypes_peer.py"),
            ("torch", "torch_peer.py"),
        ]
        .into_iter()
        .filter(|&(name, _)| torch || name != "torch")
        .map(|(name, script)| {
            eprintln!("running the {name} peer ({})...", peers::python());
            let p = peers::run(name, script, &py_config);
            if !p.available {
                eprintln!("note: {name} peer skipped: {}", p.note);
            }
            p
        })
        .collect()
    } else {
        eprintln!("note: Python peers skipped (--no-python)");
        Vec::new()
    };

    // Copy bandwidth of 4n bytes (the f32 input size) per size and thread count.
    let mut copy_json = Vec::new();
    let mut copy_lines = Vec::new();
    for size in &sizes {
        let bytes = size.n * 4;
        let mut states: Vec<(Vec<u8>, Vec<u8>)> = (0..all)
            .map(|_| (vec![0x5Au8; bytes], vec![0x55u8; bytes]))
            .collect();
        for &t in &thread_counts {
            let (callers, inner) = if size.in_cache { (t, 1) } else { (1, t) };
            let mut samples = [Vec::new(), Vec::new()];
            let mut iters = [1usize; 2];
            for r in 0..size.rounds * 2 + 2 {
                for k in 0..2 {
                    let v = (k + r) % 2;
                    let it = iters[v];
                    let op = move |(s, d): &mut (Vec<u8>, Vec<u8>)| {
                        for _ in 0..it {
                            if v == 0 {
                                copy::copy(s, d, inner);
                            } else {
                                copy::nt_copy(s, d, inner);
                            }
                        }
                    };
                    let dt = timed_callers(&mut states[..callers], &op) / it as f64;
                    if r < 2 {
                        // Warm-up rounds also size the samples in-cache.
                        if size.target_s > 0.0 {
                            iters[v] = ((size.target_s / dt).ceil() as usize).max(1);
                        }
                    } else {
                        samples[v].push(dt);
                    }
                }
            }
            let gbps = |s: &Stats| {
                let b = (2 * bytes * callers) as f64 / 1e9;
                (b / s.median, b / s.max, b / s.min)
            };
            let (pc, nc) = (Stats::of(&samples[0]), Stats::of(&samples[1]));
            let (p, n) = (gbps(&pc), gbps(&nc));
            copy_lines.push(format!(
                "  {:<6} {:>8} x{}  {:>3}  {:>7.1} ({:.1}..{:.1})   {:>7.1} ({:.1}..{:.1}){}",
                size.label,
                human_bytes(bytes),
                callers,
                t,
                p.0,
                p.1,
                p.2,
                n.0,
                n.1,
                n.2,
                if copy::NT_AVAILABLE {
                    ""
                } else {
                    "  (no NT stores here)"
                }
            ));
            copy_json.push(json!({
                "size": size.label, "bytes_per_caller": bytes, "callers": callers, "threads": t,
                "copy_gbps": {"median": p.0, "min": p.1, "max": p.2},
                "nt_copy_gbps": {"median": n.0, "min": n.1, "max": n.2},
                "nt_stores": copy::NT_AVAILABLE,
            }));
        }
    }

    // The kernels.
    let mut rows: Vec<Row> = Vec::new();
    for size in &sizes {
        let t0 = Instant::now();
        eprintln!(
            "allocating and filling {} buffers (n = {})...",
            size.label, size.n
        );
        let copies = if size.in_cache { all } else { 1 };
        let mut states: Vec<Bufs> = (0..copies).map(|_| Bufs::new(size.n, all)).collect();
        eprintln!("  ...{:.1} s", t0.elapsed().as_secs_f64());
        for &kernel in &kernels {
            for &t in &thread_counts {
                let t1 = Instant::now();
                let mut variants = vec![Imp::Copy];
                variants.extend(execs.iter().map(|&e| Imp::Lib(e)));
                if kernel.rust_peer().is_some() {
                    variants.push(Imp::Peer);
                }
                let m = measure(&mut states, size, kernel, &variants, t);
                let copy_times = &m[0].times;
                let peer_times = kernel.rust_peer().map(|_| &m[variants.len() - 1].times);
                for (imp, mm) in variants.iter().zip(&m) {
                    let is_lib = matches!(imp, Imp::Lib(_));
                    let stats = Stats::of(&mm.times);
                    let vs_py = py_peers
                        .iter()
                        .map(|p| {
                            let r = p
                                .lookup(kernel.id(), size.label, t)
                                .filter(|_| is_lib)
                                // Throughput ratio; the peer's call covers n elements.
                                .map(|(pt, _)| {
                                    (mm.elems as f64 / stats.median) / (size.n as f64 / pt)
                                });
                            (p.name, r)
                        })
                        .collect();
                    rows.push(Row {
                        kernel,
                        size: size.label,
                        threads: t,
                        callers: if size.in_cache { t } else { 1 },
                        name: match imp {
                            Imp::Copy => "copy (same bytes)".to_string(),
                            Imp::Lib(e) => e.backend().name().to_string(),
                            Imp::Peer => format!("rust:{}", kernel.rust_peer().unwrap_or("")),
                        },
                        kind: match imp {
                            Imp::Copy => "copy",
                            Imp::Lib(_) => "unitfp8",
                            Imp::Peer => "rust_peer",
                        },
                        elems: mm.elems,
                        busy_threads: mm.threads,
                        stats: Some(stats),
                        rounds: mm.times.len(),
                        median_s: stats.median,
                        pct_copy: 100.0 * paired_ratio(copy_times, &mm.times),
                        vs_rust: peer_times
                            .filter(|_| is_lib)
                            .map(|p| paired_ratio(p, &mm.times)),
                        vs_py,
                    });
                }
                // The Python peers' own rows (their % is of their own copy of the same bytes).
                for p in &py_peers {
                    if let Some((pt, pct)) = p.lookup(kernel.id(), size.label, t) {
                        rows.push(Row {
                            kernel,
                            size: size.label,
                            threads: t,
                            callers: 1,
                            name: format!("py:{}", p.name),
                            kind: "python_peer",
                            elems: size.n,
                            busy_threads: t,
                            stats: None,
                            rounds: 0,
                            median_s: pt,
                            pct_copy: pct,
                            vs_rust: None,
                            vs_py: Vec::new(),
                        });
                    }
                }
                eprintln!(
                    "  {} {} t={t}: {:.1} s",
                    kernel.id(),
                    size.label,
                    t1.elapsed().as_secs_f64()
                );
            }
        }
        drop(states);
    }
    let clock_end = timing::measure_clock(CLOCK_SAMPLES, CLOCK_MS);
    // The fastest sample of either probe: preemption only ever slows a sample down.
    let hz = clock_start.hz.max(clock_end.hz);
    let elapsed = started.elapsed().as_secs_f64();

    // Report.
    let model = cpu_model();
    let flags = cpu_flags();
    println!(
        "unitfp8 cast / residual-mix microbenchmarks  ({})",
        utc_now()
    );
    println!(
        "CPU: {model}; {all} CPUs; flags: {}; best back end: {}",
        flags.join(" "),
        best.name()
    );
    println!(
        "clock: {:.3} GHz used for cycles ({}; {:.3} GHz at start, {:.3} at end)",
        hz / 1e9,
        clock_start.method,
        clock_start.hz / 1e9,
        clock_end.hz / 1e9,
    );
    println!(
        "sizes: cache = {} elements per caller ({} of f32), {} rounds of ~{} ms samples; dram = {} \
         elements ({} of f32), {} rounds (down to {} where a measurement would pass {} s)",
        sizes[0].n,
        human_bytes(sizes[0].n * 4),
        sizes[0].rounds,
        sizes[0].target_s * 1e3,
        sizes[1].n,
        human_bytes(sizes[1].n * 4),
        sizes[1].rounds,
        sizes[1].min_rounds,
        sizes[1].budget_s,
    );
    println!();
    println!("Copy bandwidth, GB/s counted as read + write, median (min..max):");
    println!("  size   per-caller x callers thr  copy_from_slice           non-temporal copy");
    for l in &copy_lines {
        println!("{l}");
    }
    println!();
    println!(
        "Kernels: GB/s = (bytes read + written) / median time (min..max over rounds); \
         cyc/el = core cycles per element per thread;"
    );
    println!(
        "%copy = median over rounds of copy time / kernel time for a copy_from_slice of the same \
         bytes, same threads, interleaved;"
    );
    println!(
        "x peer = our throughput / peer's (Rust peer: paired per round; Python: separate \
         process, same n and threads). In-cache thr N = N callers."
    );
    println!("{}", PCT_COPY_NOTE);
    let mut head = format!(
        "  {:<6} {:>3}  {:<18} {:>8} {:<18} {:>7} {:>8} {:>7}  {:>8}",
        "size", "thr", "impl", "GB/s", "(min..max)", "Gel/s", "cyc/el", "%copy", "x rust"
    );
    for p in &py_peers {
        head += &format!("  {:>11}", format!("x {}", p.name));
    }
    for &k in &kernels {
        let (r, w) = k.bytes_per_elem();
        println!();
        println!(
            "{}  [{} B read + {} B written per element; id {}]",
            k.label(),
            r,
            w,
            k.id()
        );
        println!("{head}");
        for row in rows.iter().filter(|row| row.kernel == k) {
            println!("{}", row.line(hz));
        }
    }

    // Summary: the best back end only.
    let tmax = *thread_counts.last().unwrap_or(&1);
    let find = |k: Kernel, size: &str, t: usize| {
        rows.iter()
            .find(|r| r.kernel == k && r.size == size && r.threads == t && r.name == best.name())
    };
    println!();
    println!(
        "Summary ({} back end): GB/s (r+w) and % of the same-run copy; x = speedup over the \
         plain Rust loop / ml_dtypes (1 thread, DRAM)",
        best.name()
    );
    println!(
        "  {:<32} {:>8} {:>7} | {:>8} {:>6} | {:>8} {:>6} | {:>7} {:>11}",
        "kernel",
        "cache t1",
        "cyc/el",
        "dram t1",
        "%copy",
        format!("dram t{tmax}"),
        "%copy",
        "x rust",
        "x ml_dtypes"
    );
    for &k in &kernels {
        let c1 = find(k, "cache", 1);
        let d1 = find(k, "dram", 1);
        let dn = find(k, "dram", tmax);
        let g = |r: Option<&Row>| r.map_or(f64::NAN, |r| r.gbps(r.median_s));
        let pc = |r: Option<&Row>| r.map_or(f64::NAN, |r| r.pct_copy);
        let ml = d1.and_then(|r| {
            r.vs_py
                .iter()
                .find(|(n, _)| *n == "ml_dtypes")
                .and_then(|x| x.1)
        });
        println!(
            "  {:<32} {:>8.2} {:>7.2} | {:>8.2} {:>5.1}% | {:>8.2} {:>5.1}% | {:>7} {:>11}",
            k.label(),
            g(c1),
            c1.map_or(f64::NAN, |r| r.cycles_per_elem(hz)),
            g(d1),
            pc(d1),
            g(dn),
            pc(dn),
            fmt_ratio(d1.and_then(|r| r.vs_rust)),
            fmt_ratio(ml),
        );
    }
    println!();
    for p in &py_peers {
        println!(
            "peer {}: {}",
            p.name,
            if p.available {
                p.note.clone()
            } else {
                format!("skipped: {}", p.note)
            }
        );
    }
    if !py_peers.iter().any(|p| p.name == "torch") && args.python {
        println!("peer torch: {}", peers::TORCH_OFF);
    }
    println!("Rust peers: plain scalar loops over half 2 (bf16) and float8 0.7 (FP8).");
    println!("total run time: {elapsed:.1} s");

    let report = json!({
        "benchmark": "unitfp8 casts",
        "date_utc": utc_now(),
        "git_commit": git_commit(),
        "quick": args.quick,
        "total_seconds": elapsed,
        "machine": {
            "cpu_model": model,
            "cpus": all,
            "cpu_flags": flags,
            "os": std::fs::read_to_string("/proc/sys/kernel/osrelease").ok().map(|s| s.trim().to_string()),
            "best_backend": best.name(),
            "backends": backends.iter().map(|b| b.name()).collect::<Vec<_>>(),
        },
        "clock": {
            "hz_start": clock_start.hz,
            "hz_end": clock_end.hz,
            "method": clock_start.method,
            "samples_start": clock_start.samples,
            "samples_end": clock_end.samples,
            "hz_used_for_cycles": hz,
            "note": "the fastest sample of the start and end probes",
        },
        "config": {
            "sizes": sizes.iter().map(|s| json!({
                "label": s.label, "n": s.n, "rounds": s.rounds, "min_rounds": s.min_rounds,
                "budget_s_per_measurement": s.budget_s, "target_sample_s": s.target_s,
            })).collect::<Vec<_>>(),
            "threads": thread_counts,
            "tau": kernels::TAU,
            "in_cache_threads_meaning": "N concurrent callers, each with its own buffers and a 1-thread Exec",
            "dram_threads_meaning": "one call with Exec::with_threads(N)",
        },
        "copy": copy_json,
        "results": rows.iter().map(|r| r.json(hz)).collect::<Vec<_>>(),
        "python_peers": py_peers.iter().map(|p| p.raw.clone()).collect::<Vec<_>>(),
    });
    if let Some(dir) = args.json.parent() {
        let _ = std::fs::create_dir_all(dir);
    }
    match std::fs::write(
        &args.json,
        serde_json::to_string_pretty(&report).expect("JSON"),
    ) {
        Ok(()) => println!("JSON written to {}", args.json.display()),
        Err(e) => {
            eprintln!("could not write {}: {e}", args.json.display());
            std::process::exit(1);
        }
    }
}
