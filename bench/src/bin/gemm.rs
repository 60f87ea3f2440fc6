//! GEMM benchmark: GFLOP/s of the FP8 GEMM next to the `vdpbf16ps` and f32 FMA peaks measured in
//! the same run (same thread count), and numpy/OpenBLAS sgemm through a Python subprocess.
//!
//! `cargo run --release -p unitfp8-bench --bin gemm -- [--quick] [--max N] [--out DIR]
//! [--threads T] [--squares 512,2048] [--squares-only] [--shape m,n,k[,nt|nn|tn]]
//! [--kernel avx512-bf16|avx512-fma|scalar] [--decode [--rounds R]]`
//! writes `DIR/gemm.json` and `DIR/gemm.svg` (default `bench/out`).
//!
//! `--decode` measures the decode shapes instead (`y = x·Wᵀ`, x m × k with m = 1, 2, 4, 8, 16,
//! W n × k E4M3 row-major: 8192 × 2048, 2048 × 8192, 14336 × 4096, and 512 × 512 in L2): the time
//! per call and the GB/s of W read, with W cycled over copies that together exceed the
//! last-level cache (so W comes from DRAM) and, for comparison, one W reused (cache-resident),
//! next to the DRAM read bandwidth of a plain parallel sum over 1 GiB measured in the same
//! rounds; medians over rounds, shapes interleaved within each round.

use std::hint::black_box;
use std::time::Instant;
use unitfp8::gemm::{GemmKernel, MatMut, MatRef};
use unitfp8::{Backend, E4M3, E5M2, Exec};

/// Bytes the decode rows cycle W over (and the read-bandwidth probe reads): more than the
/// last-level cache of the machines this runs on, so that each call reads W from DRAM.
const DECODE_POOL_BYTES: usize = 1 << 30;

/// Seconds for one parallel sum over `buf` on `threads` threads (a read-only stream).
fn read_secs(buf: &[u64], threads: usize) -> f64 {
    let c = buf.len().div_ceil(threads);
    let t0 = Instant::now();
    std::thread::scope(|s| {
        let hs: Vec<_> = buf
            .chunks(c)
            .map(|part| s.spawn(move || sum_stream(part)))
            .collect();
        for h in hs {
            black_box(h.join().unwrap());
        }
    });
    t0.elapsed().as_secs_f64()
}

/// The sum of `part`, read as fast as this core reads memory: with AVX-512, four 64-byte loads
/// per step into four accumulators (full-line loads keep more lines in flight than 16-byte ones:
/// on a Sapphire Rapids core 13.5 GB/s from DRAM against 9–10 GB/s for a plain summing loop).
fn sum_stream(part: &[u64]) -> u64 {
    #[cfg(target_arch = "x86_64")]
    if std::is_x86_feature_detected!("avx512f") {
        // SAFETY: AVX-512F is available.
        return unsafe { sum_stream_avx512(part) };
    }
    part.iter().fold(0u64, |a, &x| a.wrapping_add(x))
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
fn sum_stream_avx512(part: &[u64]) -> u64 {
    use std::arch::x86_64::*;
    let mut acc = [_mm512_setzero_si512(); 4];
    let blocks = part.chunks_exact(32);
    let rest = blocks
        .remainder()
        .iter()
        .fold(0u64, |a, &x| a.wrapping_add(x));
    for b in blocks {
        for (i, a) in acc.iter_mut().enumerate() {
            // SAFETY: 8 of the block's 32 words.
            let v = unsafe { _mm512_loadu_si512(b.as_ptr().add(8 * i).cast()) };
            *a = _mm512_add_epi64(*a, v);
        }
    }
    let s = _mm512_add_epi64(
        _mm512_add_epi64(acc[0], acc[1]),
        _mm512_add_epi64(acc[2], acc[3]),
    );
    rest.wrapping_add(_mm512_reduce_add_epi64(s) as u64)
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    v[v.len() / 2]
}

/// The `--decode` rows (see the crate documentation).
fn decode_bench(kernel: GemmKernel, threads: &[usize], rounds: usize) {
    let pool: Vec<u64> = (0..DECODE_POOL_BYTES / 8).map(|i| i as u64).collect();
    let ms = [1usize, 2, 4, 8, 16];
    for &t in threads {
        let exec = Exec::new(Backend::best()).unwrap().with_threads(t);
        for (n, k) in [(8192, 2048), (2048, 8192), (14336, 4096), (512, 512)] {
            let in_l2 = n * k <= 1 << 20;
            let copies = if in_l2 {
                1
            } else {
                (DECODE_POOL_BYTES / (n * k)).max(2)
            };
            let ws: Vec<Vec<E4M3>> = (0..copies)
                .map(|c| {
                    (0..n * k)
                        .map(|i| E4M3(((i * 13 + c) % 253) as u8 & 0x77))
                        .collect()
                })
                .collect();
            let x: Vec<E4M3> = (0..16 * k)
                .map(|i| E4M3((i * 7 % 251) as u8 & 0x77))
                .collect();
            let mut c = vec![0f32; 16 * n];
            let call = |m: usize, w: &[E4M3], c: &mut [f32]| {
                let a = MatRef::row_major(&x[..m * k], m, k).unwrap();
                let b = MatRef::row_major(w, n, k).unwrap().t();
                let cm = MatMut::row_major(&mut c[..m * n], m, n).unwrap();
                exec.gemm_with_kernel(kernel, 1.0, a, b, 0.0, cm).unwrap();
            };
            // Per round: the read probe, then each m streaming W from DRAM (one pass over the
            // copies) and reusing one W (as many calls).
            let (mut bw, mut dram, mut hot) =
                (Vec::new(), vec![Vec::new(); 5], vec![Vec::new(); 5]);
            for w in &ws {
                call(1, w, &mut c);
            }
            for _ in 0..rounds {
                bw.push(DECODE_POOL_BYTES as f64 / read_secs(&pool, t) / 1e9);
                for (i, &m) in ms.iter().enumerate() {
                    let reps = if in_l2 { 200 } else { copies };
                    if !in_l2 {
                        let t0 = Instant::now();
                        for w in &ws {
                            call(m, w, &mut c);
                        }
                        dram[i].push(t0.elapsed().as_secs_f64() / copies as f64);
                    }
                    call(m, &ws[0], &mut c);
                    let (t0, c0) = (Instant::now(), cpu_secs());
                    for _ in 0..reps {
                        call(m, &ws[0], &mut c);
                    }
                    let cpu = (cpu_secs() - c0) / t as f64;
                    hot[i].push((t0.elapsed().as_secs_f64() / reps as f64, cpu / reps as f64));
                    black_box(&c);
                }
            }
            let bw = median(bw);
            let bytes = (n * k) as f64;
            for (i, &m) in ms.iter().enumerate() {
                let h = median(hot[i].iter().map(|x| x.0).collect());
                let hc = median(hot[i].iter().map(|x| x.1).collect());
                let hot_s = format!(
                    "W reused: {:8.3} ms {:6.1} GB/s (CPU-time rate {:6.1} GB/s)",
                    h * 1e3,
                    bytes / h / 1e9,
                    bytes / hc / 1e9
                );
                if in_l2 {
                    println!("decode m={m:<2} n={n:<5} k={k:<5} threads {t}: {hot_s}");
                } else {
                    let d = median(dram[i].clone());
                    println!(
                        "decode m={m:<2} n={n:<5} k={k:<5} threads {t}: W from DRAM: {:8.3} ms {:6.1} GB/s = {:4.2}× read bandwidth {:5.1} GB/s | {hot_s}",
                        d * 1e3,
                        bytes / d / 1e9,
                        bytes / d / 1e9 / bw,
                        bw
                    );
                }
            }
        }
    }
}

/// Process CPU time in seconds (all threads), where the OS provides it.
#[cfg(target_os = "linux")]
fn cpu_secs() -> f64 {
    #[repr(C)]
    struct Timespec {
        sec: i64,
        nsec: i64,
    }
    unsafe extern "C" {
        fn clock_gettime(clock: i32, ts: *mut Timespec) -> i32;
    }
    const CLOCK_PROCESS_CPUTIME_ID: i32 = 2;
    let mut ts = Timespec { sec: 0, nsec: 0 };
    // SAFETY: a valid out-pointer; glibc's clock_gettime.
    unsafe { clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &mut ts) };
    ts.sec as f64 + ts.nsec as f64 * 1e-9
}

#[cfg(not(target_os = "linux"))]
fn cpu_secs() -> f64 {
    f64::NAN
}

/// Timing of one measurement: medians of wall-clock seconds and of process CPU seconds.
#[derive(Clone, Copy)]
struct Timing {
    wall: f64,
    cpu: f64,
}

impl Timing {
    /// (wall-clock GFLOP/s, CPU-time GFLOP/s) for `flops` on `threads` threads. The CPU-time
    /// figure divides the process CPU time by the thread count: it removes time lost to other
    /// processes on a shared machine (but also hides load imbalance between threads).
    fn gflops(self, flops: f64, threads: usize) -> (f64, f64) {
        (
            flops / self.wall / 1e9,
            flops / (self.cpu / threads as f64) / 1e9,
        )
    }
}

/// Median timings of `f` over `reps` runs after one warm-up, stopping early past `budget` s.
fn measure(reps: usize, budget: f64, mut f: impl FnMut()) -> Timing {
    f();
    let start = Instant::now();
    let (mut walls, mut cpus) = (Vec::new(), Vec::new());
    for _ in 0..reps {
        let (t, c) = (Instant::now(), cpu_secs());
        f();
        cpus.push(cpu_secs() - c);
        walls.push(t.elapsed().as_secs_f64());
        if start.elapsed().as_secs_f64() > budget && walls.len() >= 3 {
            break;
        }
    }
    let median = |v: &mut Vec<f64>| {
        v.sort_by(|a, b| a.partial_cmp(b).unwrap());
        v[v.len() / 2]
    };
    Timing {
        wall: median(&mut walls),
        cpu: median(&mut cpus),
    }
}

#[cfg(target_arch = "x86_64")]
mod peak {
    use std::arch::x86_64::*;

    /// `iters` × 24 independent `vdpbf16ps` (64 FLOP each), on normal bf16 operands (denormal
    /// operands can take a slow path).
    #[target_feature(enable = "avx512f,avx512bf16")]
    pub fn dpbf16(iters: usize) -> f32 {
        // SAFETY: __m512i and __m512bh are both 64 bytes of plain bits.
        let a: __m512bh = unsafe { core::mem::transmute(_mm512_set1_epi32(0x3F80_3F80)) };
        // SAFETY: as above.
        let b: __m512bh = unsafe { core::mem::transmute(_mm512_set1_epi32(0x3580_3580)) };
        let mut acc = [_mm512_setzero_ps(); 24];
        for _ in 0..iters {
            for x in acc.iter_mut() {
                *x = _mm512_dpbf16_ps(*x, a, b);
            }
        }
        let mut s = _mm512_setzero_ps();
        for x in acc {
            s = _mm512_add_ps(s, x);
        }
        _mm512_reduce_add_ps(s)
    }

    /// `iters` × 4 independent `tdpbf16ps` on zeroed 16 × 16 tiles (16 384 FLOP each), the
    /// AMX kernel's limit.
    ///
    /// # Safety
    /// AMX-TILE and AMX-BF16 usable by this process (the library has been granted the tile
    /// permission: `GemmKernel::AmxBf16.is_available()` returned true).
    pub unsafe fn amx(iters: usize) -> f32 {
        #[repr(C, align(64))]
        struct Config([u8; 64]);
        let mut cfg = Config([0; 64]);
        cfg.0[0] = 1;
        for t in 0..8 {
            cfg.0[16 + 2 * t] = 64;
            cfg.0[48 + t] = 16;
        }
        // SAFETY: a valid palette-1 configuration; the caller's contract; the tiles are zeroed
        // before use and released at the end.
        unsafe {
            std::arch::asm!(
                "ldtilecfg [{c}]",
                "tilezero tmm0", "tilezero tmm1", "tilezero tmm2", "tilezero tmm3",
                "tilezero tmm4", "tilezero tmm5", "tilezero tmm6", "tilezero tmm7",
                c = in(reg) &cfg,
                options(nostack, readonly)
            );
            for _ in 0..iters {
                std::arch::asm!(
                    "tdpbf16ps tmm0, tmm4, tmm6",
                    "tdpbf16ps tmm1, tmm4, tmm7",
                    "tdpbf16ps tmm2, tmm5, tmm6",
                    "tdpbf16ps tmm3, tmm5, tmm7",
                    options(nostack, nomem)
                );
            }
            std::arch::asm!("tilerelease", options(nostack, nomem));
        }
        0.0
    }

    /// `iters` × 24 independent `vfmadd231ps zmm` (32 FLOP each).
    #[target_feature(enable = "avx512f")]
    pub fn fma(iters: usize) -> f32 {
        let a = _mm512_set1_ps(1.0);
        let b = _mm512_set1_ps(1e-30);
        let mut acc = [_mm512_setzero_ps(); 24];
        for _ in 0..iters {
            for x in acc.iter_mut() {
                *x = _mm512_fmadd_ps(a, b, *x);
            }
        }
        let mut s = _mm512_setzero_ps();
        for x in acc {
            s = _mm512_add_ps(s, x);
        }
        _mm512_reduce_add_ps(s)
    }
}

/// The instruction whose peak the rows of `kernel` are compared with.
fn peak_name(kernel: &str) -> &'static str {
    if kernel == GemmKernel::AmxBf16.name() {
        "tdpbf16ps"
    } else {
        "vdpbf16ps"
    }
}

/// GFLOP/s (wall, CPU time) of a peak loop on `threads` threads (each running the loop), timed
/// in short bursts so that a busy machine preempts few of them.
fn peak_gflops(threads: usize, flop_per_iter: f64, f: fn(usize) -> f32) -> (f64, f64) {
    // Short bursts on one thread (a busy machine preempts few of them); longer ones with
    // several threads, so that starting the threads is negligible.
    let (iters, reps) = if threads == 1 {
        (100_000, 41)
    } else {
        (1_000_000, 11)
    };
    let t = measure(reps, 2.0, || {
        if threads == 1 {
            black_box(f(black_box(iters)));
        } else {
            std::thread::scope(|s| {
                for _ in 0..threads {
                    s.spawn(|| black_box(f(black_box(iters))));
                }
            });
        }
    });
    t.gflops(threads as f64 * iters as f64 * flop_per_iter, threads)
}

struct Row {
    name: String,
    m: usize,
    n: usize,
    k: usize,
    threads: usize,
    gflops: f64,
    gflops_cpu: f64,
    /// The `vdpbf16ps` peak measured right before this row (wall, CPU time).
    peak: (f64, f64),
}

/// GFLOP/s of `C(m×n) = A·B` with A row-major m×k E4M3, B given by `b_layout` ("nn": B row-major
/// k×n; "nt": B = Wᵀ with W row-major n×k), f32 C.
#[allow(clippy::too_many_arguments)]
fn bench_gemm(
    exec: &Exec,
    kernel: GemmKernel,
    m: usize,
    n: usize,
    k: usize,
    a_rows: bool,
    b_rows: bool,
    e5m2_a: bool,
) -> (f64, f64) {
    let a8: Vec<E4M3> = (0..m * k)
        .map(|i| E4M3((i * 7 % 251) as u8 & 0x77))
        .collect();
    let a5: Vec<E5M2> = (0..m * k)
        .map(|i| E5M2((i * 7 % 251) as u8 & 0x73))
        .collect();
    let b: Vec<E4M3> = (0..k * n)
        .map(|i| E4M3((i * 13 % 253) as u8 & 0x77))
        .collect();
    let mut c = vec![0f32; m * n];
    let bm = if b_rows {
        MatRef::row_major(&b[..], k, n).unwrap()
    } else {
        MatRef::row_major(&b[..], n, k).unwrap().t()
    };
    let flops = 2.0 * m as f64 * n as f64 * k as f64;
    let reps = if flops > 1e11 { 3 } else { 7 };
    let t = measure(reps, 4.0, || {
        let cm = MatMut::row_major(&mut c[..], m, n).unwrap();
        if e5m2_a {
            let am = if a_rows {
                MatRef::row_major(&a5[..], m, k).unwrap()
            } else {
                MatRef::row_major(&a5[..], k, m).unwrap().t()
            };
            exec.gemm_with_kernel(kernel, 1.0, am, bm, 0.0, cm).unwrap();
        } else {
            let am = if a_rows {
                MatRef::row_major(&a8[..], m, k).unwrap()
            } else {
                MatRef::row_major(&a8[..], k, m).unwrap().t()
            };
            exec.gemm_with_kernel(kernel, 1.0, am, bm, 0.0, cm).unwrap();
        }
        black_box(&c);
    });
    t.gflops(flops, exec.threads())
}

/// Python helper shared by the peers: `med(f, n)` returns the (wall-clock, CPU-time) GFLOP/s
/// medians of an n³ product; CPU time is the process's, divided by the thread count.
fn py_timer(threads: usize) -> String {
    format!(
        "import time, sys\n\
         def med(f, n):\n\
         \x20   f(); w = []; c = []\n\
         \x20   for _ in range(5 if n <= 2048 else 3):\n\
         \x20       t = time.perf_counter(); p = time.process_time(); f()\n\
         \x20       c.append(time.process_time() - p); w.append(time.perf_counter() - t)\n\
         \x20   w.sort(); c.sort(); fl = 2 * n**3\n\
         \x20   return fl / w[len(w) // 2] / 1e9, fl / (c[len(c) // 2] / {threads}) / 1e9\n"
    )
}

/// One peer measurement.
struct Peer {
    threads: usize,
    op: String,
    n: usize,
    wall: f64,
    cpu: f64,
}

/// Runs a Python script printing `op n wall_gflops cpu_gflops` lines.
fn run_python(python: &str, script: &str, threads: usize) -> Option<Vec<Peer>> {
    let out = std::process::Command::new(python)
        .arg("-c")
        .arg(script)
        .env("OPENBLAS_NUM_THREADS", threads.to_string())
        .env("OMP_NUM_THREADS", threads.to_string())
        .env_remove("OPENBLAS_CORETYPE")
        .env_remove("OPENBLAS_L2_SIZE")
        .output()
        .ok()?;
    if !out.status.success() {
        return None;
    }
    Some(
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .filter_map(|l| {
                let mut it = l.split_whitespace();
                Some(Peer {
                    threads,
                    op: it.next()?.to_string(),
                    n: it.next()?.parse().ok()?,
                    wall: it.next()?.parse().ok()?,
                    cpu: it.next()?.parse().ok()?,
                })
            })
            .collect(),
    )
}

/// The Python interpreter of the peers: `$PYTHON`, else `python3`.
fn python() -> String {
    std::env::var("PYTHON")
        .ok()
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "python3".into())
}

/// numpy/OpenBLAS f32 sgemm (`$PYTHON`, else python3).
fn numpy_sgemm(sizes: &[usize], threads: usize) -> Vec<Peer> {
    let script = py_timer(threads)
        + &format!(
            "import numpy as np\n\
             for n in {sizes:?}:\n\
             \x20   a = np.random.rand(n, n).astype(np.float32); b = np.random.rand(n, n).astype(np.float32)\n\
             \x20   print('numpy_sgemm', n, *med(lambda: a @ b, n)); sys.stdout.flush()\n"
        );
    let python = python();
    run_python(&python, &script, threads).unwrap_or_else(|| {
        eprintln!("note: numpy not available ({python}); skipping the OpenBLAS baseline");
        Vec::new()
    })
}

/// PyTorch CPU peers (with `UNITFP8_BENCH_TORCH=1`; `$PYTHON`, else python3): bf16 matmul
/// and `torch._scaled_mm` on E4M3 with f32 output.
fn torch_peers(sizes: &[usize], threads: usize) -> Vec<Peer> {
    if !std::env::var("UNITFP8_BENCH_TORCH").is_ok_and(|v| v == "1") {
        return Vec::new();
    }
    let script = py_timer(threads)
        + &format!(
            "import torch\n\
             torch.set_num_threads({threads})\n\
             one = torch.tensor(1.0)\n\
             for n in {sizes:?}:\n\
             \x20   a = torch.randn(n, n).to(torch.bfloat16); b = torch.randn(n, n).to(torch.bfloat16)\n\
             \x20   print('torch_bf16', n, *med(lambda: a @ b, n)); sys.stdout.flush()\n\
             \x20   a8 = torch.randn(n, n).to(torch.float8_e4m3fn)\n\
             \x20   b8 = torch.randn(n, n).to(torch.float8_e4m3fn).t().contiguous().t()\n\
             \x20   try:\n\
             \x20       print('torch_scaled_mm', n, *med(lambda: torch._scaled_mm(a8, b8, one, one, out_dtype=torch.float32), n))\n\
             \x20   except Exception:\n\
             \x20       pass\n\
             \x20   sys.stdout.flush()\n"
        );
    let python = python();
    run_python(&python, &script, threads).unwrap_or_else(|| {
        eprintln!("note: PyTorch not importable by {python}; skipping its peers");
        Vec::new()
    })
}

fn svg(rows: &[Row], peaks: &[(usize, f64, f64)], peers: &[Peer], kernel: &str) -> String {
    // Plot area: x from `l` to `w - 20`, y from `top` to `h - b`; the legend sits in its own
    // column to the right of the plot, so no line can cross it.
    let (w, h, l, b, top, legend_w) = (640.0, 420.0, 60.0, 40.0, 50.0, 300.0);
    let max_y = peaks
        .iter()
        .map(|p| p.1)
        .chain(rows.iter().map(|r| r.gflops.max(r.peak.0)))
        .fold(1.0, f64::max)
        * 1.1;
    let mut sizes: Vec<usize> = rows
        .iter()
        .filter(|r| r.name == "square")
        .map(|r| r.m)
        .collect();
    sizes.sort_unstable();
    sizes.dedup();
    let (lo, hi) = (
        *sizes.iter().min().unwrap_or(&256) as f64,
        *sizes.iter().max().unwrap_or(&4096) as f64,
    );
    let x =
        |s: f64| l + (s.log2() - lo.log2()) / (hi.log2() - lo.log2()).max(1e-9) * (w - l - 20.0);
    let y = |g: f64| h - b - g / max_y * (h - b - top);
    let mut s = format!(
        "<svg xmlns='http://www.w3.org/2000/svg' width='{}' height='{h}' font-family='sans-serif' font-size='12'>\n\
         <rect width='100%' height='100%' fill='white'/>\n\
         <text x='{}' y='22' text-anchor='middle' font-size='15'>FP8 GEMM (E4M3, f32 C, {kernel}): GFLOP/s of square products</text>\n\
         <line x1='{l}' y1='{}' x2='{}' y2='{}' stroke='black'/>\n<line x1='{l}' y1='{top}' x2='{l}' y2='{}' stroke='black'/>\n\
         <text x='{}' y='{}' text-anchor='middle'>m = n = k (log scale)</text>\n\
         <text x='14' y='{}' transform='rotate(-90 14 {})' text-anchor='middle'>GFLOP/s</text>\n",
        w + legend_w,
        (w + legend_w) / 2.0,
        h - b,
        w - 20.0,
        h - b,
        h - b,
        (w + l) / 2.0,
        h - 8.0,
        h / 2.0,
        h / 2.0
    );
    for &sz in &sizes {
        s += &format!(
            "<text x='{:.1}' y='{}' text-anchor='middle'>{sz}</text>\n",
            x(sz as f64),
            h - b + 15.0
        );
    }
    for t in 0..=5 {
        let g = max_y * t as f64 / 5.0;
        s += &format!(
            "<text x='{}' y='{:.1}' text-anchor='end'>{:.0}</text>\n",
            l - 4.0,
            y(g) + 4.0,
            g
        );
    }
    let colors = [
        "#1f77b4", "#2ca02c", "#ff7f0e", "#7f7f7f", "#d62728", "#9467bd", "#8c564b", "#17becf",
    ];
    let mut legend = 0;
    let mut line =
        |pts: Vec<(f64, f64)>, color: &str, dash: bool, label: String, s: &mut String| {
            if pts.is_empty() {
                return;
            }
            let path: Vec<String> = pts
                .iter()
                .map(|(a, g)| format!("{:.1},{:.1}", x(*a), y(*g)))
                .collect();
            *s += &format!(
                "<polyline fill='none' stroke='{color}' stroke-width='2' {} points='{}'/>\n",
                if dash { "stroke-dasharray='6,4'" } else { "" },
                path.join(" ")
            );
            let ly = top + 15.0 * legend as f64;
            *s += &format!(
                "<line x1='{}' y1='{ly}' x2='{}' y2='{ly}' stroke='{color}' stroke-width='2' {}/>\n\
                 <text x='{}' y='{}' fill='{color}'>{label}</text>\n",
                w,
                w + 24.0,
                if dash { "stroke-dasharray='6,4'" } else { "" },
                w + 30.0,
                ly + 4.0
            );
            legend += 1;
        };
    for (ci, &(threads, first_peak, _)) in peaks.iter().enumerate() {
        // The median of the peaks measured next to each row (the load varies during a run).
        let mut near: Vec<f64> = rows
            .iter()
            .filter(|r| r.threads == threads && r.peak.0.is_finite())
            .map(|r| r.peak.0)
            .collect();
        near.sort_by(|a, b| a.partial_cmp(b).unwrap());
        let peak = near.get(near.len() / 2).copied().unwrap_or(first_peak);
        let c = colors[(4 * ci) % colors.len()];
        line(
            vec![(lo, peak), (hi, peak)],
            c,
            true,
            format!("{} peak, {threads} thread(s): {peak:.0}", peak_name(kernel)),
            &mut s,
        );
        let pts: Vec<(f64, f64)> = rows
            .iter()
            .filter(|r| r.name == "square" && r.threads == threads)
            .map(|r| (r.m as f64, r.gflops))
            .collect();
        line(
            pts,
            c,
            false,
            format!("unitfp8 FP8 GEMM, {threads} thread(s)"),
            &mut s,
        );
        for (off, op, label) in [
            (1, "numpy_sgemm", "numpy/OpenBLAS sgemm"),
            (2, "torch_bf16", "PyTorch bf16 matmul"),
        ] {
            let pts: Vec<(f64, f64)> = peers
                .iter()
                .filter(|p| p.threads == threads && p.op == op)
                .map(|p| (p.n as f64, p.wall))
                .collect();
            line(
                pts,
                colors[(4 * ci + off) % colors.len()],
                false,
                format!("{label}, {threads} thread(s)"),
                &mut s,
            );
        }
    }
    s += "</svg>\n";
    s
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let quick = args.iter().any(|a| a == "--quick");
    let max = args
        .iter()
        .position(|a| a == "--max")
        .and_then(|i| args.get(i + 1))
        .and_then(|s| s.parse().ok())
        .unwrap_or(if quick { 1024 } else { 4096usize });
    let out_dir = args
        .iter()
        .position(|a| a == "--out")
        .and_then(|i| args.get(i + 1))
        .cloned()
        .unwrap_or_else(|| "bench/out".into());
    let all = std::thread::available_parallelism().map_or(1, |n| n.get());
    let kernel = args
        .iter()
        .position(|a| a == "--kernel")
        .and_then(|i| args.get(i + 1))
        .and_then(|name| {
            GemmKernel::ALL
                .into_iter()
                .find(|k| k.name() == name.as_str())
        })
        .filter(|k| k.is_available())
        .unwrap_or_else(GemmKernel::best);
    println!("kernel: {}, threads: 1 and {all}", kernel.name());
    println!(
        "GFLOP/s are wall-clock; the CPU-time rate divides the process CPU time by the thread \
         count, which leaves out time the threads were descheduled (on a shared machine it can \
         exceed the wall-clock peak)"
    );
    if !std::env::var("UNITFP8_BENCH_TORCH").is_ok_and(|v| v == "1") {
        println!(
            "note: PyTorch peers off: set UNITFP8_BENCH_TORCH=1 to add them \
             (bench/run.sh then installs torch into .venv when it is missing)"
        );
    }
    let mut thread_counts = vec![1];
    if all > 1 {
        thread_counts.push(all);
    }
    if let Some(t) = args
        .iter()
        .position(|a| a == "--threads")
        .and_then(|i| args.get(i + 1))
        .and_then(|s| s.parse().ok())
    {
        thread_counts = vec![t];
    }

    if args.iter().any(|a| a == "--decode") {
        let rounds = args
            .iter()
            .position(|a| a == "--rounds")
            .and_then(|i| args.get(i + 1))
            .and_then(|s| s.parse().ok())
            .unwrap_or(5);
        decode_bench(kernel, &thread_counts, rounds);
        return;
    }

    // --shape m,n,k[,nt|nn|tn]: one product in the forward (nt), backward-data (nn) or
    // backward-weight (tn) layout, then exit.
    if let Some(shape) = args
        .iter()
        .position(|a| a == "--shape")
        .and_then(|i| args.get(i + 1))
    {
        let d: Vec<usize> = shape.split(',').filter_map(|s| s.parse().ok()).collect();
        // Optional fourth field: nt (forward, default), nn (backward data), tn (backward weight).
        let layout = shape.split(',').nth(3).unwrap_or("nt");
        let (a_rows, b_rows, e5) = match layout {
            "nn" => (true, true, true),
            "tn" => (false, true, true),
            _ => (true, false, false),
        };
        let t = thread_counts[0];
        let exec = Exec::new(Backend::best()).unwrap().with_threads(t);
        for _ in 0..3 {
            let g = bench_gemm(&exec, kernel, d[0], d[1], d[2], a_rows, b_rows, e5);
            #[cfg(target_arch = "x86_64")]
            let pk = if kernel == GemmKernel::AmxBf16 {
                // SAFETY: the AMX kernel is available, so the tile permission was granted.
                peak_gflops(t, 4.0 * 16384.0, |n| unsafe { peak::amx(n) }).0
            } else if std::is_x86_feature_detected!("avx512bf16") {
                // SAFETY: the target features of `dpbf16` were detected.
                peak_gflops(t, 24.0 * 64.0, |n| unsafe { peak::dpbf16(n) }).0
            } else {
                f64::NAN
            };
            #[cfg(not(target_arch = "x86_64"))]
            let pk = f64::NAN;
            println!(
                "shape {shape} threads {t}: {:.1} GFLOP/s (CPU-time rate {:.1} GFLOP/s) = {:.1}% of the {} peak ({pk:.0} GFLOP/s)",
                g.0,
                g.1,
                100.0 * g.0 / pk,
                peak_name(kernel.name()),
            );
        }
        return;
    }
    let mut rows = Vec::new();
    let mut peaks = Vec::new();
    let mut fma_peaks = Vec::new();
    let mut peers: Vec<Peer> = Vec::new();
    let mut squares: Vec<usize> = [256, 512, 1024, 2048, 3072, 4096]
        .into_iter()
        .filter(|&s| s <= max)
        .collect();
    if let Some(list) = args
        .iter()
        .position(|a| a == "--squares")
        .and_then(|i| args.get(i + 1))
    {
        squares = list.split(',').filter_map(|s| s.parse().ok()).collect();
    }
    let squares_only = args.iter().any(|a| a == "--squares-only");
    for &t in &thread_counts {
        let exec = Exec::new(Backend::best()).unwrap().with_threads(t);
        #[cfg(target_arch = "x86_64")]
        let (pk, fk) = if std::is_x86_feature_detected!("avx512bf16") {
            (
                // SAFETY: the target features of `dpbf16` were detected.
                peak_gflops(t, 24.0 * 64.0, |n| unsafe { peak::dpbf16(n) }),
                // SAFETY: AVX-512 F (and so FMA) is implied by AVX512-BF16, detected.
                peak_gflops(t, 24.0 * 32.0, |n| unsafe { peak::fma(n) }),
            )
        } else {
            ((f64::NAN, f64::NAN), (f64::NAN, f64::NAN))
        };
        #[cfg(not(target_arch = "x86_64"))]
        let (pk, fk) = ((f64::NAN, f64::NAN), (f64::NAN, f64::NAN));
        println!(
            "threads {t}: vdpbf16ps peak {:.1} GFLOP/s (CPU-time rate {:.1}), FMA peak {:.1} GFLOP/s (CPU-time rate {:.1})",
            pk.0, pk.1, fk.0, fk.1
        );
        if kernel == GemmKernel::AmxBf16 {
            println!("  (rows: % of the tdpbf16ps peak, measured next to each row)");
        }
        peaks.push((t, pk.0, pk.1));
        fma_peaks.push((t, fk.0, fk.1));
        // The machine is shared: re-measure the peak next to every row, so that the wall-clock
        // ratio compares runs under the same load.
        let peak_now = || {
            #[cfg(target_arch = "x86_64")]
            if kernel == GemmKernel::AmxBf16 {
                // SAFETY: the AMX kernel is available, so the tile permission was granted.
                return peak_gflops(t, 4.0 * 16384.0, |n| unsafe { peak::amx(n) });
            }
            #[cfg(target_arch = "x86_64")]
            if std::is_x86_feature_detected!("avx512bf16") {
                // SAFETY: the target features of `dpbf16` were detected.
                return peak_gflops(t, 24.0 * 64.0, |n| unsafe { peak::dpbf16(n) });
            }
            (f64::NAN, f64::NAN)
        };
        let mut push = |name: &str, m: usize, n: usize, k: usize, g: (f64, f64), pk: (f64, f64)| {
            println!(
                "  {name:<22} m={m:<5} n={n:<5} k={k:<5} {:7.1} GFLOP/s {:5.1}% of peak | CPU-time rate {:7.1} GFLOP/s",
                g.0,
                100.0 * g.0 / pk.0,
                g.1,
            );
            rows.push(Row {
                name: name.into(),
                m,
                n,
                k,
                threads: t,
                gflops: g.0,
                gflops_cpu: g.1,
                peak: pk,
            });
        };
        for &s in &squares {
            let pk = peak_now();
            let g = bench_gemm(&exec, kernel, s, s, s, true, true, false);
            push("square", s, s, s, g, pk);
        }
        if squares_only {
            continue;
        }
        // μS 1B: tokens 4096, d 2048, MLP 4d. Forward y = x·Wᵀ (NT), backward data dx = dy·W
        // (NN, dy E5M2), backward weight dW = dyᵀ·x (TN, dy E5M2).
        let tokens = if quick { 1024 } else { 4096 };
        let d = 2048;
        for (name, fan_out, fan_in) in [("up", 4 * d, d), ("down", d, 4 * d)] {
            let pk = peak_now();
            let g = bench_gemm(&exec, kernel, tokens, fan_out, fan_in, true, false, false);
            push(&format!("muS fwd {name}"), tokens, fan_out, fan_in, g, pk);
            let pk = peak_now();
            let g = bench_gemm(&exec, kernel, tokens, fan_in, fan_out, true, true, true);
            push(
                &format!("muS bwd-data {name}"),
                tokens,
                fan_in,
                fan_out,
                g,
                pk,
            );
            let pk = peak_now();
            let g = bench_gemm(&exec, kernel, fan_out, fan_in, tokens, false, true, true);
            let label = format!("muS bwd-weight {name}");
            push(&label, fan_out, fan_in, tokens, g, pk);
        }
        let pk = peak_now();
        let g = bench_gemm(&exec, kernel, 16, 4 * d, d, true, false, false);
        push("skinny m=16", 16, 4 * d, d, g, pk);
        for p in numpy_sgemm(&squares, t)
            .into_iter()
            .chain(torch_peers(&squares, t))
        {
            println!(
                "  {:<22} n={:<5} {:7.1} GFLOP/s                | CPU-time rate {:7.1} GFLOP/s",
                p.op, p.n, p.wall, p.cpu
            );
            peers.push(p);
        }
    }

    // Summary ratios (wall clock).
    for &(t, _, _) in &peaks {
        for s in [512, 2048, 4096] {
            let Some(r) = rows
                .iter()
                .find(|r| r.name == "square" && r.threads == t && r.m == s)
            else {
                continue;
            };
            print!(
                "threads {t}, {s}³: {:.1}% of {} peak",
                100.0 * r.gflops / r.peak.0,
                peak_name(kernel.name()),
            );
            for p in peers.iter().filter(|p| p.threads == t && p.n == s) {
                print!("; {:.2}× {}", r.gflops / p.wall, p.op);
            }
            println!();
        }
    }

    let mut json = String::from("{\n  \"kernel\": \"");
    json += kernel.name();
    json += "\",\n  \"peaks\": [";
    json += &peaks
        .iter()
        .zip(&fma_peaks)
        .map(|(p, f)| {
            format!(
                "{{\"threads\": {}, \"vdpbf16ps_gflops\": {:.2}, \"vdpbf16ps_gflops_cpu\": {:.2}, \"fma_gflops\": {:.2}, \"fma_gflops_cpu\": {:.2}}}",
                p.0, p.1, p.2, f.1, f.2
            )
        })
        .collect::<Vec<_>>()
        .join(", ");
    json += "],\n  \"gemm\": [\n";
    json += &rows
        .iter()
        .map(|r| {
            format!(
                "    {{\"name\": \"{}\", \"m\": {}, \"n\": {}, \"k\": {}, \"threads\": {}, \"gflops\": {:.2}, \"gflops_cpu\": {:.2}, \"peak_gflops\": {:.2}, \"peak_gflops_cpu\": {:.2}}}",
                r.name, r.m, r.n, r.k, r.threads, r.gflops, r.gflops_cpu, r.peak.0, r.peak.1
            )
        })
        .collect::<Vec<_>>()
        .join(",\n");
    json += "\n  ],\n  \"peers\": [";
    json += &peers
        .iter()
        .map(|p| {
            format!(
                "{{\"threads\": {}, \"op\": \"{}\", \"n\": {}, \"gflops\": {:.2}, \"gflops_cpu\": {:.2}}}",
                p.threads, p.op, p.n, p.wall, p.cpu
            )
        })
        .collect::<Vec<_>>()
        .join(", ");
    json += "]\n}\n";
    let _ = std::fs::create_dir_all(&out_dir);
    let jp = format!("{out_dir}/gemm.json");
    let sp = format!("{out_dir}/gemm.svg");
    std::fs::write(&jp, json).expect("write json");
    std::fs::write(&sp, svg(&rows, &peaks, &peers, kernel.name())).expect("write svg");
    println!("wrote {jp} and {sp}");
}
