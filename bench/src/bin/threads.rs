//! Thread hand-off benchmark: how much a second (third, …) thread gains on mid-size calls, where
//! the cost of handing work to other threads is not negligible.
//!
//! For a cast (f32 → E4M3, saturating) of n elements and an FP8 GEMM (E4M3, f32 output) of s³, it
//! times, interleaved round by round: the library on one thread; the library on all CPUs (its
//! worker pool); and the same split done by spawning a scoped thread per call that runs half the
//! work through the one-thread library (what the library did before it had a pool). Calls run
//! back to back ("hot", as in a training loop) and after a 5 ms idle gap ("cold": the pool's
//! workers have parked). Reports per-call medians and the speed-ups over one thread.
//!
//! `cargo run --release -p unitfp8-bench --bin threads -- [--quick] [--out DIR]` writes
//! `DIR/threads.json` (default `bench/out`).
//!
//! `-- --pool-settings [--quick] [--out DIR]` compares pool settings instead (spin window,
//! moving workers): each round runs this program once per setting, in turn, as a child process
//! with `UNITFP8_SPIN_US` / `UNITFP8_MOVE_WORKERS` set, which times a few calls on one thread and
//! on the pool back to back (hot), 20 µs and 200 µs apart (the caller busy meanwhile) and 5 ms
//! apart (idle: cold); the speed-ups of the pool over one thread are medians over rounds, as is
//! the CPU time the workers use per pool call (work and spinning). Writes
//! `DIR/threads-settings.json`.

use std::hint::black_box;
use std::time::{Duration, Instant};
use unitfp8::gemm::{MatMut, MatRef};
use unitfp8::{Backend, CastParams, E4M3, Exec};

/// How a call is run.
#[derive(Clone, Copy, PartialEq)]
enum Mode {
    /// The library on one thread.
    One,
    /// The library on all CPUs.
    Pool,
    /// One scoped thread spawned per call, each half through the one-thread library.
    Spawn,
}

const MODES: [(Mode, &str); 3] = [
    (Mode::One, "1 thread"),
    (Mode::Pool, "pool"),
    (Mode::Spawn, "spawn per call"),
];

/// Median of `v` (sorted in place).
fn median(v: &mut [f64]) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[v.len() / 2]
}

/// Per-call seconds of `call`: `calls` back to back (hot) or each after a 5 ms sleep (cold);
/// returns the median.
fn time_calls(calls: usize, cold: bool, call: &mut dyn FnMut()) -> f64 {
    call();
    let mut v = Vec::with_capacity(calls);
    for _ in 0..calls {
        if cold {
            std::thread::sleep(Duration::from_millis(5));
        }
        let t = Instant::now();
        call();
        v.push(t.elapsed().as_secs_f64());
    }
    median(&mut v)
}

struct Case {
    name: String,
    /// Median seconds per call, per mode (in `MODES` order), hot and cold.
    hot: [f64; 3],
    cold: [f64; 3],
}

fn cast_case(n: usize, all: usize, rounds: usize, calls: usize) -> Case {
    let src: Vec<f32> = (0..n)
        .map(|i| ((i * 7919 % 2003) as f32 - 1001.0) / 17.0)
        .collect();
    let mut dst = vec![E4M3(0); n];
    let one = Exec::new(Backend::best()).unwrap();
    let pool = one.with_threads(all);
    let params = CastParams::default();
    let run = |mode: Mode, dst: &mut [E4M3]| match mode {
        Mode::One => {
            one.cast(&src, dst, &params).unwrap();
        }
        Mode::Pool => {
            pool.cast(&src, dst, &params).unwrap();
        }
        Mode::Spawn => {
            let parts = all.max(1);
            let per = n.div_ceil(parts).div_ceil(1024) * 1024;
            std::thread::scope(|s| {
                let mut rest = &mut dst[..];
                let mut start = 0;
                let mut mine = None;
                while !rest.is_empty() {
                    let len = per.min(rest.len());
                    let (head, tail) = rest.split_at_mut(len);
                    let part = &src[start..start + len];
                    if mine.is_none() {
                        mine = Some((part, head));
                    } else {
                        s.spawn(move || one.cast(part, head, &params).unwrap());
                    }
                    rest = tail;
                    start += len;
                }
                if let Some((part, head)) = mine {
                    one.cast(part, head, &params).unwrap();
                }
            });
        }
    };
    measure(
        format!("cast f32→E4M3 n={n}"),
        rounds,
        calls,
        &mut |mode| {
            run(mode, &mut dst);
            black_box(&dst);
        },
    )
}

fn gemm_case(s: usize, all: usize, rounds: usize, calls: usize) -> Case {
    let a: Vec<E4M3> = (0..s * s)
        .map(|i| E4M3((i * 7 % 251) as u8 & 0x77))
        .collect();
    let b: Vec<E4M3> = (0..s * s)
        .map(|i| E4M3((i * 13 % 253) as u8 & 0x77))
        .collect();
    let mut c = vec![0f32; s * s];
    let one = Exec::new(Backend::best()).unwrap();
    let pool = one.with_threads(all);
    let bm = MatRef::row_major(&b[..], s, s).unwrap();
    let run = |mode: Mode, c: &mut [f32]| match mode {
        Mode::One | Mode::Pool => {
            let exec = if mode == Mode::One { one } else { pool };
            let am = MatRef::row_major(&a[..], s, s).unwrap();
            let cm = MatMut::row_major(c, s, s).unwrap();
            exec.gemm(1.0, am, bm, 0.0, cm).unwrap();
        }
        Mode::Spawn => {
            // Row blocks of A and C, one per thread.
            let parts = all.max(1);
            let per = s.div_ceil(parts);
            std::thread::scope(|sc| {
                let mut mine = None;
                for (i, (ca, cc)) in a.chunks(per * s).zip(c.chunks_mut(per * s)).enumerate() {
                    let rows = ca.len() / s;
                    let work = move || {
                        let am = MatRef::row_major(ca, rows, s).unwrap();
                        let cm = MatMut::row_major(cc, rows, s).unwrap();
                        one.gemm(1.0, am, bm, 0.0, cm).unwrap();
                    };
                    if i == 0 {
                        mine = Some(work);
                    } else {
                        sc.spawn(work);
                    }
                }
                if let Some(mut work) = mine {
                    work();
                }
            });
        }
    };
    measure(format!("GEMM {s}³"), rounds, calls, &mut |mode| {
        run(mode, &mut c);
        black_box(&c);
    })
}

/// Interleaves the modes over `rounds` rounds; each entry is the median over rounds of the
/// per-round median per call.
fn measure(name: String, rounds: usize, calls: usize, run: &mut dyn FnMut(Mode)) -> Case {
    let mut hot = vec![Vec::new(); 3];
    let mut cold = vec![Vec::new(); 3];
    for _ in 0..rounds {
        for (i, &(mode, _)) in MODES.iter().enumerate() {
            hot[i].push(time_calls(calls, false, &mut || run(mode)));
            cold[i].push(time_calls(calls.min(9), true, &mut || run(mode)));
        }
    }
    let med = |v: &mut Vec<Vec<f64>>| {
        let mut out = [0.0; 3];
        for (o, x) in out.iter_mut().zip(v.iter_mut()) {
            *o = median(x);
        }
        out
    };
    Case {
        name,
        hot: med(&mut hot),
        cold: med(&mut cold),
    }
}

/// The pool settings compared by `--pool-settings`: label and environment.
const SETTINGS: [(&str, &[(&str, &str)]); 4] = [
    ("default (50 µs spin)", &[]),
    (
        "500 µs spin, moves (old default)",
        &[("UNITFP8_SPIN_US", "500"), ("UNITFP8_MOVE_WORKERS", "1")],
    ),
    ("500 µs spin", &[("UNITFP8_SPIN_US", "500")]),
    ("no spin", &[("UNITFP8_SPIN_US", "0")]),
];

/// Gaps between the calls timed by `--pool-settings` (µs): back to back, inside the default
/// spin window, inside the old one, and idle (the workers have parked).
const GAPS_US: [u64; 4] = [0, 20, 200, 5000];

/// Median per-call seconds with a gap of `gap_us` before each call: the caller busy (spinning
/// on the clock, as if computing something else) for gaps under 1 ms, else sleeping.
fn time_with_gap(calls: usize, gap_us: u64, call: &mut dyn FnMut()) -> f64 {
    call();
    let mut v = Vec::with_capacity(calls);
    for _ in 0..calls {
        if gap_us >= 1000 {
            std::thread::sleep(Duration::from_micros(gap_us));
        } else if gap_us > 0 {
            let t = Instant::now();
            while t.elapsed() < Duration::from_micros(gap_us) {
                std::hint::spin_loop();
            }
        }
        let t = Instant::now();
        call();
        v.push(t.elapsed().as_secs_f64());
    }
    median(&mut v)
}

/// A call timed by `--pool-settings`: its name and a function running it on `threads` threads.
type NamedCall = (String, Box<dyn FnMut(usize)>);

/// Per-round (1-thread µs, pool µs, worker CPU µs per pool call) of one call at one gap.
struct SettingResult {
    call: String,
    gap_us: u64,
    rounds: Vec<(f64, f64, f64)>,
}

/// The calls `--pool-settings` times.
fn settings_calls() -> Vec<NamedCall> {
    let mut calls: Vec<NamedCall> = Vec::new();
    for n in [1usize << 18, 1 << 20] {
        let src: Vec<f32> = (0..n)
            .map(|i| ((i * 7919 % 2003) as f32 - 1001.0) / 17.0)
            .collect();
        let mut dst = vec![E4M3(0); n];
        let exec = Exec::new(Backend::best()).unwrap();
        calls.push((
            format!("cast f32→E4M3 n={n}"),
            Box::new(move |threads| {
                let params = CastParams::default();
                exec.with_threads(threads)
                    .cast(&src, &mut dst, &params)
                    .unwrap();
                black_box(&dst);
            }),
        ));
    }
    for s in [256usize, 512] {
        let a: Vec<E4M3> = (0..s * s)
            .map(|i| E4M3((i * 7 % 251) as u8 & 0x77))
            .collect();
        let b: Vec<E4M3> = (0..s * s)
            .map(|i| E4M3((i * 13 % 253) as u8 & 0x77))
            .collect();
        let mut c = vec![0f32; s * s];
        let exec = Exec::new(Backend::best()).unwrap();
        calls.push((
            format!("GEMM {s}³"),
            Box::new(move |threads| {
                let am = MatRef::row_major(&a[..], s, s).unwrap();
                let bm = MatRef::row_major(&b[..], s, s).unwrap();
                let cm = MatMut::row_major(&mut c[..], s, s).unwrap();
                exec.with_threads(threads)
                    .gemm(1.0, am, bm, 0.0, cm)
                    .unwrap();
                black_box(&c);
            }),
        ));
    }
    calls
}

/// CPU time (ns) used so far by this process's threads other than the main one (the library's
/// workers), from `/proc/self/task/*/schedstat` (Linux; 0 elsewhere).
fn workers_cpu_ns() -> u64 {
    let pid = std::process::id().to_string();
    let Ok(tasks) = std::fs::read_dir("/proc/self/task") else {
        return 0;
    };
    tasks
        .flatten()
        .filter(|t| t.file_name().to_str() != Some(pid.as_str()))
        .filter_map(|t| std::fs::read_to_string(t.path().join("schedstat")).ok())
        .filter_map(|s| s.split_whitespace().next()?.parse::<u64>().ok())
        .sum()
}

/// The child of `--pool-settings`: for every call and gap, prints
/// `call<TAB>gap µs<TAB>1-thread µs<TAB>pool µs<TAB>worker CPU µs per pool call` (medians; one
/// thread and the pool interleaved in blocks).
fn settings_child(threads: usize, calls: usize) {
    for (name, mut call) in settings_calls() {
        for gap in GAPS_US {
            let n = if gap >= 5000 { calls.min(9) } else { calls };
            let mut one = Vec::new();
            let mut pool = Vec::new();
            let mut cpu = Vec::new();
            for _ in 0..3 {
                one.push(time_with_gap(n, gap, &mut || call(1)));
                let before = workers_cpu_ns();
                pool.push(time_with_gap(n, gap, &mut || call(threads)));
                cpu.push((workers_cpu_ns() - before) as f64 * 1e-9 / (n + 1) as f64);
            }
            println!(
                "{name}\t{gap}\t{:.3}\t{:.3}\t{:.3}",
                median(&mut one) * 1e6,
                median(&mut pool) * 1e6,
                median(&mut cpu) * 1e6
            );
        }
    }
}

/// `--pool-settings`: runs [`settings_child`] once per setting per round, interleaved.
fn compare_settings(threads: usize, rounds: usize, calls: usize, out_dir: &str) {
    let exe = std::env::current_exe().expect("own path");
    // results[setting]: one entry per call and gap.
    let mut results: Vec<Vec<SettingResult>> = (0..SETTINGS.len()).map(|_| Vec::new()).collect();
    for _ in 0..rounds {
        for (i, (_, env)) in SETTINGS.iter().enumerate() {
            let mut cmd = std::process::Command::new(&exe);
            cmd.args(["--settings-child", &threads.to_string(), &calls.to_string()]);
            cmd.env_remove("UNITFP8_SPIN_US")
                .env_remove("UNITFP8_MOVE_WORKERS");
            for (k, v) in env.iter() {
                cmd.env(k, v);
            }
            let out = cmd.output().expect("run the child");
            assert!(out.status.success(), "child failed");
            for line in String::from_utf8_lossy(&out.stdout).lines() {
                let f: Vec<&str> = line.split('\t').collect();
                let (name, gap) = (f[0].to_string(), f[1].parse::<u64>().unwrap());
                let pair = (
                    f[2].parse().unwrap(),
                    f[3].parse().unwrap(),
                    f[4].parse().unwrap(),
                );
                match results[i]
                    .iter_mut()
                    .find(|r| r.call == name && r.gap_us == gap)
                {
                    Some(r) => r.rounds.push(pair),
                    None => results[i].push(SettingResult {
                        call: name,
                        gap_us: gap,
                        rounds: vec![pair],
                    }),
                }
            }
        }
    }
    println!(
        "pool ({threads} threads) vs 1 thread under each setting; medians over {rounds} interleaved rounds"
    );
    println!(
        "{:<24} {:<34} {:>9} {:>9} | pool speed-up: {:>6} {:>7} {:>7} {:>6} | worker CPU µs/call: {:>6} {:>6} {:>6} {:>6}",
        "call",
        "setting",
        "1 thr µs",
        "pool µs",
        "hot",
        "20 µs",
        "200 µs",
        "cold",
        "hot",
        "20 µs",
        "200 µs",
        "cold"
    );
    let mut json = Vec::new();
    let names: Vec<String> = results[0]
        .iter()
        .filter(|r| r.gap_us == 0)
        .map(|r| r.call.clone())
        .collect();
    for name in &names {
        for (i, (label, _)) in SETTINGS.iter().enumerate() {
            let mut row = Vec::new();
            let mut cpu_row = Vec::new();
            let mut hot = (0.0, 0.0);
            for gap in GAPS_US {
                let r = results[i]
                    .iter()
                    .find(|r| &r.call == name && r.gap_us == gap)
                    .unwrap();
                let mut speedups: Vec<f64> = r.rounds.iter().map(|(o, p, _)| o / p).collect();
                row.push(median(&mut speedups));
                let mut cpu: Vec<f64> = r.rounds.iter().map(|x| x.2).collect();
                cpu_row.push(median(&mut cpu));
                if gap == 0 {
                    let mut o: Vec<f64> = r.rounds.iter().map(|x| x.0).collect();
                    let mut p: Vec<f64> = r.rounds.iter().map(|x| x.1).collect();
                    hot = (median(&mut o), median(&mut p));
                }
            }
            println!(
                "{:<24} {:<34} {:>9.1} {:>9.1} | {:>20.2} {:>7.2} {:>7.2} {:>6.2} | {:>6.0} {:>6.0} {:>6.0} {:>6.0}",
                name,
                label,
                hot.0,
                hot.1,
                row[0],
                row[1],
                row[2],
                row[3],
                cpu_row[0],
                cpu_row[1],
                cpu_row[2],
                cpu_row[3]
            );
            json.push(format!(
                "    {{\"call\": \"{name}\", \"setting\": \"{label}\", \"hot_us\": {{\"1 thread\": {:.3}, \"pool\": {:.3}}}, \"speedup\": {{\"hot\": {:.3}, \"gap_20us\": {:.3}, \"gap_200us\": {:.3}, \"cold\": {:.3}}}, \"worker_cpu_us_per_call\": {{\"hot\": {:.1}, \"gap_20us\": {:.1}, \"gap_200us\": {:.1}, \"cold\": {:.1}}}}}",
                hot.0, hot.1, row[0], row[1], row[2], row[3], cpu_row[0], cpu_row[1], cpu_row[2], cpu_row[3]
            ));
        }
    }
    let text = format!(
        "{{\n  \"threads\": {threads},\n  \"rounds\": {rounds},\n  \"calls\": {calls},\n  \"cases\": [\n{}\n  ]\n}}\n",
        json.join(",\n")
    );
    let _ = std::fs::create_dir_all(out_dir);
    let path = format!("{out_dir}/threads-settings.json");
    std::fs::write(&path, text).expect("write threads-settings.json");
    println!("wrote {path}");
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if let Some(i) = args.iter().position(|a| a == "--settings-child") {
        let threads = args[i + 1].parse().expect("threads");
        let calls = args[i + 2].parse().expect("calls");
        settings_child(threads, calls);
        return;
    }
    let quick = args.iter().any(|a| a == "--quick");
    let out_dir = args
        .iter()
        .position(|a| a == "--out")
        .and_then(|i| args.get(i + 1))
        .cloned()
        .unwrap_or_else(|| "bench/out".into());
    let all = std::thread::available_parallelism().map_or(1, |n| n.get());
    let (rounds, calls) = if quick { (3, 15) } else { (7, 31) };
    if args.iter().any(|a| a == "--pool-settings") {
        compare_settings(all.max(2), rounds, calls, &out_dir);
        return;
    }
    println!(
        "threads: 1 and {all}; medians of {rounds} interleaved rounds of {calls} back-to-back calls (hot) / 9 calls after 5 ms idle (cold)"
    );
    let mut cases = Vec::new();
    for n in [1usize << 16, 1 << 17, 1 << 18, 1 << 20, 1 << 22] {
        cases.push(cast_case(n, all, rounds, calls));
    }
    for s in [128usize, 192, 256, 384, 512, 1024] {
        cases.push(gemm_case(s, all, rounds, if s >= 1024 { 7 } else { calls }));
    }
    println!(
        "{:<24} {:>10} {:>10} {:>10} | speed-up over 1 thread: {:>6} {:>6} | cold: {:>6} {:>6}",
        "call", "1 thr µs", "pool µs", "spawn µs", "pool", "spawn", "pool", "spawn"
    );
    let mut json = Vec::new();
    for c in &cases {
        println!(
            "{:<24} {:>10.1} {:>10.1} {:>10.1} | {:>28.2} {:>6.2} | {:>12.2} {:>6.2}",
            c.name,
            c.hot[0] * 1e6,
            c.hot[1] * 1e6,
            c.hot[2] * 1e6,
            c.hot[0] / c.hot[1],
            c.hot[0] / c.hot[2],
            c.cold[0] / c.cold[1],
            c.cold[0] / c.cold[2],
        );
        let modes = |t: &[f64; 3]| {
            MODES
                .iter()
                .zip(t)
                .map(|((_, label), s)| format!("\"{label}\": {:.3}", s * 1e6))
                .collect::<Vec<_>>()
                .join(", ")
        };
        json.push(format!(
            "    {{\"call\": \"{}\", \"hot_us\": {{{}}}, \"cold_us\": {{{}}}}}",
            c.name,
            modes(&c.hot),
            modes(&c.cold)
        ));
    }
    let text = format!(
        "{{\n  \"threads\": {all},\n  \"rounds\": {rounds},\n  \"calls\": {calls},\n  \"cases\": [\n{}\n  ]\n}}\n",
        json.join(",\n")
    );
    let _ = std::fs::create_dir_all(&out_dir);
    let path = format!("{out_dir}/threads.json");
    std::fs::write(&path, text).expect("write threads.json");
    println!("wrote {path}");
}
