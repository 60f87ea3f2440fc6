//! Clock estimation, sample statistics and timed runs on one or several threads.

use std::sync::Barrier;
use std::time::Instant;

/// How the core clock was obtained.
#[derive(Clone, Debug)]
pub struct Clock {
    /// Cycles per second used for cycles/element.
    pub hz: f64,
    /// How `hz` was obtained (printed and written to the JSON).
    pub method: &'static str,
    /// All samples, in Hz (empty when assumed).
    pub samples: Vec<f64>,
}

/// Integer adds per asm block of the dependency chain.
#[cfg(any(target_arch = "x86_64", target_arch = "aarch64"))]
const CHAIN_ADDS: u64 = 16;

/// Runs `blocks` blocks of `CHAIN_ADDS` dependent 1-cycle-latency integer adds; returns the sum
/// (so the chain is observable).
#[cfg(target_arch = "x86_64")]
fn add_chain(blocks: u64) -> u64 {
    let mut x = 0u64;
    for _ in 0..blocks {
        // SAFETY: register-only arithmetic on an owned value; no memory, stack or flags contract.
        unsafe {
            // A register operand, not an immediate: Intel cores from Golden Cove on fold
            // chains of `add reg, imm` at rename, so such a chain runs several adds per cycle
            // (it measured a 21 GHz "clock" on a Sapphire Rapids class Xeon).
            core::arch::asm!(
                "add {x}, {one}", "add {x}, {one}", "add {x}, {one}", "add {x}, {one}",
                "add {x}, {one}", "add {x}, {one}", "add {x}, {one}", "add {x}, {one}",
                "add {x}, {one}", "add {x}, {one}", "add {x}, {one}", "add {x}, {one}",
                "add {x}, {one}", "add {x}, {one}", "add {x}, {one}", "add {x}, {one}",
                x = inout(reg) x,
                one = in(reg) 1u64,
                options(nomem, nostack),
            );
        }
    }
    x
}

/// As the x86-64 version.
#[cfg(target_arch = "aarch64")]
fn add_chain(blocks: u64) -> u64 {
    let mut x = 0u64;
    for _ in 0..blocks {
        // SAFETY: register-only arithmetic on an owned value; no memory or stack access.
        unsafe {
            core::arch::asm!(
                "add {x}, {x}, #1", "add {x}, {x}, #1", "add {x}, {x}, #1", "add {x}, {x}, #1",
                "add {x}, {x}, #1", "add {x}, {x}, #1", "add {x}, {x}, #1", "add {x}, {x}, #1",
                "add {x}, {x}, #1", "add {x}, {x}, #1", "add {x}, {x}, #1", "add {x}, {x}, #1",
                "add {x}, {x}, #1", "add {x}, {x}, #1", "add {x}, {x}, #1", "add {x}, {x}, #1",
                x = inout(reg) x,
                options(nomem, nostack),
            );
        }
    }
    x
}

/// Measures the core clock on the calling thread: a chain of dependent integer adds (latency
/// 1 cycle on every x86-64 and AArch64 core of interest) runs one add per cycle, so adds/second
/// is the clock. Takes the highest of `samples` runs of ~`ms` milliseconds each, since
/// preemption by other work can only make a sample look slower.
#[cfg(any(target_arch = "x86_64", target_arch = "aarch64"))]
pub fn measure_clock(samples: usize, ms: f64) -> Clock {
    // Calibrate the block count on a short run (also warms the core up).
    let mut blocks = 1u64 << 16;
    loop {
        let t = Instant::now();
        std::hint::black_box(add_chain(std::hint::black_box(blocks)));
        if t.elapsed().as_secs_f64() * 1e3 > ms / 4.0 || blocks > 1 << 40 {
            break;
        }
        blocks *= 2;
    }
    let blocks = blocks * 4;
    let samples: Vec<f64> = (0..samples)
        .map(|_| {
            let t = Instant::now();
            let r = add_chain(std::hint::black_box(blocks));
            let s = t.elapsed().as_secs_f64();
            assert_eq!(r, blocks * CHAIN_ADDS, "add chain miscounted");
            (blocks * CHAIN_ADDS) as f64 / s
        })
        .collect();
    let hz = samples.iter().cloned().fold(0.0, f64::max);
    Clock {
        hz,
        method: "measured: dependent chain of 1-cycle integer adds, fastest sample",
        samples,
    }
}

/// No chain for this architecture: assume 3.6 GHz.
#[cfg(not(any(target_arch = "x86_64", target_arch = "aarch64")))]
pub fn measure_clock(_samples: usize, _ms: f64) -> Clock {
    Clock {
        hz: 3.6e9,
        method: "assumed 3.6 GHz (no add-chain probe for this architecture)",
        samples: Vec::new(),
    }
}

/// Summary of a set of samples.
#[derive(Clone, Copy, Debug, Default)]
pub struct Stats {
    /// Median.
    pub median: f64,
    /// Minimum.
    pub min: f64,
    /// Maximum.
    pub max: f64,
    /// First quartile.
    pub q1: f64,
    /// Third quartile.
    pub q3: f64,
}

/// Quantile `p` in [0, 1] of sorted `v` (linear interpolation).
fn quantile(v: &[f64], p: f64) -> f64 {
    if v.is_empty() {
        return f64::NAN;
    }
    let x = p * (v.len() - 1) as f64;
    let (lo, hi) = (x.floor() as usize, x.ceil() as usize);
    v[lo] + (v[hi] - v[lo]) * (x - lo as f64)
}

impl Stats {
    /// Statistics of `samples` (NaN entries are ignored).
    pub fn of(samples: &[f64]) -> Stats {
        let mut v: Vec<f64> = samples.iter().copied().filter(|x| !x.is_nan()).collect();
        v.sort_by(|a, b| a.total_cmp(b));
        Stats {
            median: quantile(&v, 0.5),
            min: v.first().copied().unwrap_or(f64::NAN),
            max: v.last().copied().unwrap_or(f64::NAN),
            q1: quantile(&v, 0.25),
            q3: quantile(&v, 0.75),
        }
    }
}

/// Runs `op(state, iters)` once per state, all states at the same time (one thread each, the
/// first on the calling thread), released together by a barrier; returns the wall time in
/// seconds from the earliest start to the latest end. With one state nothing is spawned.
pub fn timed_callers<S: Send>(states: &mut [S], op: &(dyn Fn(&mut S) + Sync)) -> f64 {
    if states.len() == 1 {
        let t = Instant::now();
        op(&mut states[0]);
        return t.elapsed().as_secs_f64();
    }
    let barrier = Barrier::new(states.len());
    let barrier = &barrier;
    let (first, rest) = states.split_first_mut().expect("at least one state");
    std::thread::scope(|scope| {
        let handles: Vec<_> = rest
            .iter_mut()
            .map(|s| {
                scope.spawn(move || {
                    barrier.wait();
                    let t0 = Instant::now();
                    op(s);
                    (t0, Instant::now())
                })
            })
            .collect();
        barrier.wait();
        let t0 = Instant::now();
        op(first);
        let mut start = t0;
        let mut end = Instant::now();
        for h in handles {
            let (s, e) = h.join().expect("benchmark thread panicked");
            start = start.min(s);
            end = end.max(e);
        }
        (end - start).as_secs_f64()
    })
}

/// Splits `parts` over threads (one part per thread, the first inline) and runs `f` on each.
pub fn par_for<I: Send>(parts: Vec<I>, f: &(dyn Fn(I) + Sync)) {
    let mut it = parts.into_iter();
    let Some(first) = it.next() else { return };
    let rest: Vec<I> = it.collect();
    if rest.is_empty() {
        f(first);
        return;
    }
    std::thread::scope(|scope| {
        let handles: Vec<_> = rest
            .into_iter()
            .map(|p| scope.spawn(move || f(p)))
            .collect();
        f(first);
        for h in handles {
            h.join().expect("benchmark thread panicked");
        }
    });
}

/// Chunk length that splits `n` items into `parts` pieces (at least 1).
pub fn chunk_len(n: usize, parts: usize) -> usize {
    n.div_ceil(parts.max(1)).max(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clock_probe_is_plausible() {
        let c = measure_clock(3, 2.0);
        assert!(
            (5e7..2e10).contains(&c.hz),
            "clock {} Hz ({})",
            c.hz,
            c.method
        );
    }

    #[test]
    fn stats_quartiles() {
        let s = Stats::of(&[5.0, 1.0, 3.0, 2.0, 4.0, f64::NAN]);
        assert_eq!(
            (s.min, s.q1, s.median, s.q3, s.max),
            (1.0, 2.0, 3.0, 4.0, 5.0)
        );
        let s = Stats::of(&[1.0, 2.0]);
        assert_eq!(s.median, 1.5);
    }

    #[test]
    fn callers_all_run() {
        let mut states = vec![0u32; 3];
        let t = timed_callers(&mut states, &|s: &mut u32| *s += 1);
        assert!(t >= 0.0);
        assert_eq!(states, vec![1, 1, 1]);
    }
}
