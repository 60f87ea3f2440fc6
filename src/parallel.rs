//! Splitting work over threads (std only): a process-wide pool of parked worker threads.
//!
//! Spawning and joining a thread per call cost ≈ 50 µs on the development machine, as long as
//! a 512K-element cast takes on one core, so calls of that size ran up to 3× slower on two
//! threads than on one. The pool's workers are created on first need and then wait on a
//! condition variable between calls.
//!
//! The pool is meant to be a good guest in a process that has threads of its own (a Python
//! runtime, a trainer with its own pool): by default it never changes any thread's CPU
//! affinity, and its threads spin only briefly.
//!
//! - **Spinning.** Waking a parked thread is not cheap: on a 2-vCPU VM it took from a few µs to
//!   tens of µs, and now and then 300 µs. Workers therefore spin for up to
//!   [`SPIN_DEFAULT_US`] = 50 µs after each part before parking, and the caller spins for as
//!   long waiting for the last part: calls that follow each other closely (a training step)
//!   find the workers awake, and an idle process parks them within 50 µs. The window was 500 µs
//!   before: on a shared VM that cost 210–440 µs more of a core per isolated call, while calls
//!   up to 20 µs apart found the workers awake with either window. `UNITFP8_SPIN_US` sets the
//!   window in µs (0: park at once; at most 1 s; read once): a process that makes mid-size
//!   calls a few hundred µs apart and has a core to spare may want it longer.
//! - **Placement.** Where a worker lands when woken is the kernel's choice. On that VM a woken
//!   worker was often left on the caller's CPU, where it never helped; the pool can correct
//!   this by moving its workers off the caller's CPU (see [`placement`]), but does so only when
//!   enabled: `UNITFP8_MOVE_WORKERS=1` (read once), or [`set_move_workers`] /
//!   `unitfp8_set_move_workers`, which take precedence.
//!
//! A call splits its work into numbered parts; the calling thread and at most `threads - 1`
//! workers claim parts one at a time until none are left, so the result never depends on which
//! thread ran a part or on how many workers exist (with none, the caller runs every part). The pool runs one
//! call at a time: a call that finds it busy (another thread's call, or a part that itself
//! splits work) spawns scoped threads instead, as before the pool existed.
//!
//! After `fork` (Python's multiprocessing, data-loader processes) the child starts its own workers
//! on its first multi-threaded call. As with any library holding locks, forking while another
//! thread of the parent is inside a call is not supported.

use std::any::Any;
use std::panic::{AssertUnwindSafe, catch_unwind, resume_unwind};
use std::sync::atomic::{AtomicU8, AtomicU32, AtomicUsize, Ordering};
use std::sync::{Condvar, Mutex, MutexGuard, OnceLock, PoisonError};
use std::time::{Duration, Instant};

/// The most worker threads the pool creates: enough for a call on
/// [`MAX_THREADS`](crate::exec::MAX_THREADS) threads (a call asking for more parts still runs
/// them all, on fewer threads).
const MAX_WORKERS: usize = crate::exec::MAX_THREADS - 1;

/// How long (µs) a worker waits for the next call, and the caller for the last part, spinning
/// before parking on a condition variable, unless `UNITFP8_SPIN_US` says otherwise (read once).
pub(crate) const SPIN_DEFAULT_US: u64 = 50;

/// The least time between two rounds of moving workers off the caller's CPU (see [`placement`]).
const KICK_INTERVAL: Duration = Duration::from_millis(1);

/// The spin window: `UNITFP8_SPIN_US` microseconds (0: park at once) when set to a number, else
/// [`SPIN_DEFAULT_US`].
fn spin_window() -> Duration {
    static WINDOW: OnceLock<Duration> = OnceLock::new();
    *WINDOW.get_or_init(|| {
        let us = std::env::var("UNITFP8_SPIN_US").ok();
        Duration::from_micros(parse_spin_us(us.as_deref()))
    })
}

/// `UNITFP8_SPIN_US` as microseconds: a whole number (at most one second), else the default.
fn parse_spin_us(value: Option<&str>) -> u64 {
    value
        .and_then(|v| v.trim().parse::<u64>().ok())
        .map_or(SPIN_DEFAULT_US, |us| us.min(1_000_000))
}

/// Whether workers may be moved off the caller's CPU: [`MOVE_DEFAULT`] (follow
/// `UNITFP8_MOVE_WORKERS`), [`MOVE_OFF`] or [`MOVE_ON`] (set by [`set_move_workers`]).
static MOVE_WORKERS: AtomicU8 = AtomicU8::new(MOVE_DEFAULT);
const MOVE_DEFAULT: u8 = 0;
const MOVE_OFF: u8 = 1;
const MOVE_ON: u8 = 2;

/// Enables (`Some(true)`) or disables (`Some(false)`) moving the worker pool's threads off the
/// caller's CPU, process-wide; `None` restores the default, which is off unless the environment
/// variable `UNITFP8_MOVE_WORKERS` is `1` (or `true`, `yes`, `on`).
///
/// When enabled, a multi-threaded call that no worker helped with although workers were awake
/// (Linux, x86-64 and AArch64) moves each worker to another of its allowed CPUs by briefly
/// narrowing the worker's affinity mask and restoring it at once (net effect: one migration),
/// at most once per millisecond. Only the library's own worker threads are touched, never the
/// caller's. This helped on a small VM whose scheduler left a woken worker on the caller's CPU;
/// inside a host runtime with its own threads, leave it off. Results never depend on it.
/// Thread-safe; takes effect from the next call.
pub fn set_move_workers(enabled: Option<bool>) {
    let mode = match enabled {
        None => MOVE_DEFAULT,
        Some(false) => MOVE_OFF,
        Some(true) => MOVE_ON,
    };
    MOVE_WORKERS.store(mode, Ordering::Relaxed);
}

/// Whether the worker pool moves its threads off the caller's CPU (see [`set_move_workers`]).
pub fn move_workers() -> bool {
    match MOVE_WORKERS.load(Ordering::Relaxed) {
        MOVE_ON => true,
        MOVE_OFF => false,
        _ => {
            static FROM_ENV: OnceLock<bool> = OnceLock::new();
            *FROM_ENV.get_or_init(|| {
                let value = std::env::var("UNITFP8_MOVE_WORKERS").ok();
                parse_move_workers(value.as_deref())
            })
        }
    }
}

/// `UNITFP8_MOVE_WORKERS` as a switch: `1`, `true`, `yes` or `on` (any case) enable; anything
/// else, or unset, leaves moving off.
fn parse_move_workers(value: Option<&str>) -> bool {
    value.is_some_and(|v| {
        matches!(
            v.trim().to_ascii_lowercase().as_str(),
            "1" | "true" | "yes" | "on"
        )
    })
}

/// How many worker moves have been made (each a pair of affinity changes), for the tests.
#[cfg(test)]
static MOVES_MADE: AtomicUsize = AtomicUsize::new(0);

/// A part of a call: `task(part)`.
type Task = dyn Fn(usize) + Sync;

/// The call the pool is running.
struct Job {
    /// The caller's task with its lifetime erased: dereferenced only between the job's
    /// publication and the moment `unfinished` reaches 0, while the caller waits in
    /// [`run_parts`] and the task is alive.
    task: *const Task,
    /// How many parts the call has.
    parts: usize,
    /// The next part nobody has claimed.
    next: usize,
    /// Parts not yet finished (claimed or not).
    unfinished: usize,
    /// This job's number (the pool's epoch when it was published).
    epoch: usize,
    /// How many workers may take part (the call's thread count less the caller).
    max_helpers: usize,
    /// How many workers have taken part.
    helpers: usize,
    /// The first panic a part raised, re-raised on the caller.
    panic: Option<Box<dyn Any + Send>>,
}

// SAFETY: `task` points to a `Sync` closure, which may be called from any thread; the pointer is
// only used while the caller keeps the closure alive (see `Job::task`).
unsafe impl Send for Job {}

struct State {
    job: Option<Job>,
    /// The process the workers belong to: a child made by `fork` has none of them.
    pid: u32,
    workers: usize,
    /// Workers that have started running (and parked).
    started: usize,
    /// Workers parked on [`Pool::work`] (the others are running a part or spinning).
    parked: usize,
    /// Wake-ups sent to parked workers that no worker has returned from yet.
    notified: usize,
    /// The workers' thread ids, where the system has them (see [`placement`]).
    tids: Vec<i32>,
    /// When workers were last moved off a caller's CPU.
    last_kick: Option<Instant>,
}

struct Pool {
    state: Mutex<State>,
    /// Signalled when a job is published: workers wait on it for parts to claim.
    work: Condvar,
    /// Signalled when a job's last part finishes: the caller waits on it.
    done: Condvar,
    /// Signalled when a new worker has started: [`Pool::ensure_workers`] waits on it.
    ready: Condvar,
    /// Held by the call the pool is running.
    turn: Mutex<()>,
    /// Counts published jobs (changed under the lock): what spinning workers watch.
    epoch: AtomicUsize,
    /// The current job's unfinished parts (changed under the lock): what the spinning caller
    /// watches.
    pending: AtomicUsize,
}

impl Pool {
    fn lock(&self) -> MutexGuard<'_, State> {
        // Parts run outside the lock and their panics are caught, so it is never poisoned by
        // this module; tolerate it anyway.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Creates workers until there are `wanted` (at most [`MAX_WORKERS`]); a failed spawn stops
    /// early (the parts still all run, on fewer threads).
    ///
    /// Waits until the new workers have started and parked: Linux starts a new thread on its
    /// creator's CPU, where it would not run while the caller computes (measured: the first
    /// calls ran at one thread's speed), whereas a woken thread may be placed elsewhere.
    fn ensure_workers(&'static self, wanted: usize) {
        let wanted = wanted.min(MAX_WORKERS);
        let mut st = self.lock();
        let pid = std::process::id();
        if st.pid != pid {
            // A forked child (or the first call): the parent's workers were not copied.
            st.pid = pid;
            st.workers = 0;
            st.started = 0;
            st.parked = 0;
            st.notified = 0;
            st.tids.clear();
        }
        while st.workers < wanted {
            let spawned = std::thread::Builder::new()
                .name("unitfp8-worker".into())
                .spawn(move || self.worker());
            if spawned.is_err() {
                break;
            }
            st.workers += 1;
        }
        while st.started < st.workers {
            st = self.ready.wait(st).unwrap_or_else(PoisonError::into_inner);
        }
    }

    /// A worker: claims and runs parts; when there are none, spins for the next job for up to
    /// the spin window, then parks.
    fn worker(&'static self) {
        let mut st = self.lock();
        st.started += 1;
        st.tids.extend(placement::thread_id());
        self.ready.notify_all();
        // A new worker parks at once (see `ensure_workers`).
        let mut spin = false;
        // The epoch of the last job this worker took part in.
        let mut joined = usize::MAX;
        loop {
            if let Some((task, part)) = claim(&mut st, Some(&mut joined)) {
                st = self.run_claimed(st, task, part);
                continue;
            }
            let seen = self.epoch.load(Ordering::Relaxed);
            if spin {
                drop(st);
                spin_until(|| self.epoch.load(Ordering::Relaxed) != seen);
                st = self.lock();
            }
            spin = true;
            if self.epoch.load(Ordering::Relaxed) == seen {
                st.parked += 1;
                st = self.work.wait(st).unwrap_or_else(PoisonError::into_inner);
                st.parked -= 1;
                st.notified = st.notified.saturating_sub(1);
            }
        }
    }

    /// Runs a claimed part without the lock, then records that it finished.
    fn run_claimed<'a>(
        &'a self,
        st: MutexGuard<'a, State>,
        task: *const Task,
        part: usize,
    ) -> MutexGuard<'a, State> {
        drop(st);
        // SAFETY: the part was claimed from the current job, whose task stays alive until its
        // `unfinished` count (which includes this part) reaches 0 (see `Job::task`).
        let result = catch_unwind(AssertUnwindSafe(|| unsafe { (*task)(part) }));
        let mut st = self.lock();
        // The job cannot end while this part is unfinished.
        if let Some(job) = st.job.as_mut() {
            if let Err(payload) = result {
                job.panic.get_or_insert(payload);
            }
            job.unfinished -= 1;
            self.pending.store(job.unfinished, Ordering::Release);
            if job.unfinished == 0 {
                self.done.notify_all();
            }
        }
        st
    }

    /// After a call that awake workers did not help with: when moving is enabled (see
    /// [`move_workers`]), moves every worker off the caller's CPU, at most once per
    /// [`KICK_INTERVAL`] (see [`placement`]); else does nothing.
    fn kick_workers_off_this_cpu(&self) {
        if !move_workers() {
            return;
        }
        let Some(cpu) = placement::current_cpu() else {
            return;
        };
        let tids = {
            let mut st = self.lock();
            if st.last_kick.is_some_and(|t| t.elapsed() < KICK_INTERVAL) {
                return;
            }
            st.last_kick = Some(Instant::now());
            st.tids.clone()
        };
        for tid in tids {
            #[cfg(test)]
            MOVES_MADE.fetch_add(1, Ordering::Relaxed);
            placement::move_off(tid, cpu);
        }
    }
}

/// Claims the next part of the current job, if any is left: for the caller (`worker` = None),
/// or for a worker whose last joined job is `worker`; a worker joins a job only while fewer
/// than its `max_helpers` workers have.
fn claim(st: &mut State, worker: Option<&mut usize>) -> Option<(*const Task, usize)> {
    let job = st.job.as_mut()?;
    if job.next == job.parts {
        return None;
    }
    if let Some(joined) = worker
        && *joined != job.epoch
    {
        if job.helpers == job.max_helpers {
            return None;
        }
        job.helpers += 1;
        *joined = job.epoch;
    }
    job.next += 1;
    Some((job.task, job.next - 1))
}

fn pool() -> &'static Pool {
    static POOL: OnceLock<Pool> = OnceLock::new();
    POOL.get_or_init(|| Pool {
        state: Mutex::new(State {
            job: None,
            pid: 0,
            workers: 0,
            started: 0,
            parked: 0,
            notified: 0,
            tids: Vec::new(),
            last_kick: None,
        }),
        work: Condvar::new(),
        done: Condvar::new(),
        ready: Condvar::new(),
        turn: Mutex::new(()),
        epoch: AtomicUsize::new(0),
        pending: AtomicUsize::new(0),
    })
}

/// Spins until `ready()` or the spin window has passed; returns whether it became ready.
fn spin_until(ready: impl Fn() -> bool) -> bool {
    let window = spin_window();
    if window.is_zero() {
        return ready();
    }
    let start = Instant::now();
    loop {
        for _ in 0..16 {
            if ready() {
                return true;
            }
            std::hint::spin_loop();
        }
        if start.elapsed() > window {
            return ready();
        }
        // Should the thread it waits for share this CPU, let it run.
        std::thread::yield_now();
    }
}

/// Runs `task(0)`, …, `task(parts - 1)`, each exactly once, on the calling thread and up to
/// `threads - 1` pool workers, which claim parts one at a time, and returns when all have
/// finished. A panic in a part is re-raised on the calling thread after every part has finished
/// (the first one, when several panic).
pub(crate) fn run_parts(parts: usize, threads: usize, task: &(dyn Fn(usize) + Sync)) {
    let helpers = threads.min(parts).saturating_sub(1).min(MAX_WORKERS);
    if helpers == 0 {
        for part in 0..parts {
            task(part);
        }
        return;
    }
    let pool = pool();
    let Ok(_turn) = pool.turn.try_lock() else {
        return run_scoped(parts, helpers + 1, task);
    };
    pool.ensure_workers(helpers);
    // SAFETY: only the lifetime is erased (same fat pointer). The job is removed below, after
    // every part has finished and before `task` goes out of scope; no worker holds the pointer
    // past its part.
    let erased =
        unsafe { core::mem::transmute::<*const (dyn Fn(usize) + Sync + '_), *const Task>(task) };
    let mut st = pool.lock();
    let epoch = pool.epoch.load(Ordering::Relaxed).wrapping_add(1);
    st.job = Some(Job {
        task: erased,
        parts,
        next: 0,
        unfinished: parts,
        epoch,
        max_helpers: helpers,
        helpers: 0,
        panic: None,
    });
    // Workers not parked now are running or spinning: they should see the job at once. A
    // wake-up sent by an earlier call that no worker has returned from means a runnable worker
    // that has not been given a CPU since.
    let awake = st.workers - st.parked;
    let stalled = st.notified > 0;
    pool.pending.store(parts, Ordering::Relaxed);
    pool.epoch.store(epoch, Ordering::Relaxed);
    // Spinning workers see the new epoch; only parked ones need a (system-call) wake-up.
    let wake = st.parked.min(helpers);
    for _ in 0..wake {
        pool.work.notify_one();
    }
    st.notified += wake;
    while let Some((t, part)) = claim(&mut st, None) {
        st = pool.run_claimed(st, t, part);
    }
    if st.job.as_ref().is_some_and(|job| job.unfinished > 0) {
        drop(st);
        spin_until(|| pool.pending.load(Ordering::Acquire) == 0);
        st = pool.lock();
    }
    while st.job.as_ref().is_some_and(|job| job.unfinished > 0) {
        st = pool.done.wait(st).unwrap_or_else(PoisonError::into_inner);
    }
    let job = st.job.take();
    drop(st);
    let Some(job) = job else { return };
    if let Some(payload) = job.panic {
        resume_unwind(payload);
    }
    if job.helpers == 0 && (awake > 0 || stalled) {
        // Awake workers that did not help were not given a CPU: they share the caller's.
        // (Parked ones may just have been slow to wake; moving them costs tens of µs.)
        pool.kick_workers_off_this_cpu();
    }
}

/// Moving a worker off its caller's CPU (only when enabled: see [`set_move_workers`]).
///
/// On the development machine (a 2-vCPU VM, Linux 6.18) a woken worker was often placed on the
/// CPU of the thread that woke it, although the other CPU was idle (to the guest, an idle vCPU
/// can look preempted), and stayed there for dozens of back-to-back calls, which it then never
/// helped with: the caller ran every part itself. Measured on a 2^18-element cast: 24 µs so, 13 µs
/// with the worker on the other CPU, 25 µs on one thread. So after a call that no worker helped
/// with although some were awake (spinning, not parked), the caller moves each worker: it narrows
/// the worker's affinity to its allowed CPUs other than the caller's, which makes the kernel
/// migrate it, and restores the mask at once (net effect: one migration). Only the library's
/// worker threads are touched, never the caller's. A call whose workers were all parked does not
/// move them: they may only have been slow to wake (on the VM often longer than a 2^18-element
/// cast), and a move cost 30–40 µs there when the target CPU was idle.
#[cfg(all(
    target_os = "linux",
    any(target_arch = "x86_64", target_arch = "aarch64")
))]
mod placement {
    /// glibc's and musl's `cpu_set_t`: a bit per CPU, 1024 CPUs.
    #[repr(C)]
    struct CpuSet([u64; 16]);

    /// `SYS_gettid`.
    #[cfg(target_arch = "x86_64")]
    const SYS_GETTID: i64 = 186;
    #[cfg(target_arch = "aarch64")]
    const SYS_GETTID: i64 = 178;

    unsafe extern "C" {
        fn syscall(number: i64, ...) -> i64;
        fn sched_getcpu() -> i32;
        fn sched_getaffinity(tid: i32, size: usize, mask: *mut CpuSet) -> i32;
        fn sched_setaffinity(tid: i32, size: usize, mask: *const CpuSet) -> i32;
    }

    /// The calling thread's id (what the affinity calls take).
    pub(super) fn thread_id() -> Option<i32> {
        // SAFETY: gettid takes no arguments and cannot fail.
        let tid = unsafe { syscall(SYS_GETTID) };
        i32::try_from(tid).ok().filter(|&t| t > 0)
    }

    /// The CPU the calling thread runs on, where the system says.
    pub(super) fn current_cpu() -> Option<usize> {
        // SAFETY: no arguments; returns -1 on failure.
        let cpu = unsafe { sched_getcpu() };
        usize::try_from(cpu).ok()
    }

    /// Moves thread `tid` off `cpu` to another CPU it may run on, leaving its affinity mask as
    /// it was. Does nothing when `cpu` is its only CPU, lies past the mask's 1024 bits, or a
    /// call fails (the thread is gone, or the system refuses).
    pub(super) fn move_off(tid: i32, cpu: usize) {
        let size = core::mem::size_of::<CpuSet>();
        let mut allowed = CpuSet([0; 16]);
        // SAFETY: the mask is `size` writable bytes; a bad tid is an error return.
        if cpu >= 1024 || unsafe { sched_getaffinity(tid, size, &mut allowed) } != 0 {
            return;
        }
        let mut others = CpuSet(allowed.0);
        others.0[cpu / 64] &= !(1u64 << (cpu % 64));
        if others.0.iter().all(|&w| w == 0) {
            return;
        }
        // SAFETY: as above; the masks are `size` readable bytes. The first call migrates the
        // thread off `cpu` (if it is there); the second restores its mask without moving it.
        unsafe {
            if sched_setaffinity(tid, size, &others) == 0 {
                sched_setaffinity(tid, size, &allowed);
            }
        }
    }
}

/// Elsewhere the system's placement is left alone.
#[cfg(not(all(
    target_os = "linux",
    any(target_arch = "x86_64", target_arch = "aarch64")
)))]
mod placement {
    pub(super) fn thread_id() -> Option<i32> {
        None
    }

    pub(super) fn current_cpu() -> Option<usize> {
        None
    }

    pub(super) fn move_off(_tid: i32, _cpu: usize) {}
}

/// [`run_parts`] on up to `threads - 1` freshly spawned scoped threads and the caller, for calls
/// that find the pool busy. A thread the system refuses to start (a process or memory limit) is
/// not an error: the threads already running, the caller at least, claim every part.
fn run_scoped(parts: usize, threads: usize, task: &(dyn Fn(usize) + Sync)) {
    let next = AtomicUsize::new(0);
    let first_panic: Mutex<Option<Box<dyn Any + Send>>> = Mutex::new(None);
    let run = || {
        loop {
            let part = next.fetch_add(1, Ordering::Relaxed);
            if part >= parts {
                break;
            }
            if let Err(payload) = catch_unwind(AssertUnwindSafe(|| task(part))) {
                let mut slot = first_panic.lock().unwrap_or_else(PoisonError::into_inner);
                slot.get_or_insert(payload);
            }
        }
    };
    std::thread::scope(|scope| {
        for _ in 1..threads {
            if std::thread::Builder::new()
                .spawn_scoped(scope, run)
                .is_err()
            {
                break;
            }
        }
        run();
    });
    let payload = first_panic
        .into_inner()
        .unwrap_or_else(PoisonError::into_inner);
    if let Some(payload) = payload {
        resume_unwind(payload);
    }
}

/// Runs `work(start, end)` over `[0, n)` on up to `threads` threads and returns the maximum of
/// the results. The range is cut into up to `threads · pieces_per_thread` contiguous pieces whose
/// bounds are multiples of `grain`; it runs inline when one thread suffices. Every piece is
/// computed exactly as it would be on one thread. A panic in a piece is re-raised on the calling
/// thread.
pub(crate) fn max_over_ranges<F>(
    n: usize,
    grain: usize,
    threads: usize,
    pieces_per_thread: usize,
    work: F,
) -> u32
where
    F: Fn(usize, usize) -> u32 + Sync,
{
    let units = n.div_ceil(grain.max(1));
    let threads = threads.min(units).max(1);
    if threads == 1 {
        return work(0, n);
    }
    let per = units.div_ceil(threads * pieces_per_thread.max(1)) * grain;
    let pieces = n.div_ceil(per);
    let max = AtomicU32::new(0);
    run_parts(pieces, threads, &|p| {
        let r = work(p * per, ((p + 1) * per).min(n));
        max.fetch_max(r, Ordering::Relaxed);
    });
    max.into_inner()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicUsize;

    #[test]
    fn spin_window_setting() {
        assert_eq!(parse_spin_us(None), SPIN_DEFAULT_US);
        assert_eq!(parse_spin_us(Some("0")), 0);
        assert_eq!(parse_spin_us(Some(" 250 ")), 250);
        assert_eq!(parse_spin_us(Some("5000000")), 1_000_000);
        assert_eq!(parse_spin_us(Some("fast")), SPIN_DEFAULT_US);
        assert_eq!(parse_spin_us(Some("-1")), SPIN_DEFAULT_US);
    }

    #[test]
    fn move_workers_setting() {
        for off in [
            None,
            Some(""),
            Some("0"),
            Some("no"),
            Some("2"),
            Some("off"),
        ] {
            assert!(!parse_move_workers(off), "{off:?}");
        }
        for on in ["1", " 1 ", "true", "YES", "On"] {
            assert!(parse_move_workers(Some(on)), "{on}");
        }
    }

    /// Serializes the tests that change or depend on the process-wide move setting.
    static MOVE_SETTING: Mutex<()> = Mutex::new(());

    /// Restores the default move setting when dropped (also when an assertion fails).
    struct RestoreMoveSetting;
    impl Drop for RestoreMoveSetting {
        fn drop(&mut self) {
            set_move_workers(None);
        }
    }

    /// Makes sure the pool has two workers, lets the kick interval pass, asks the pool to move
    /// its workers off this CPU (what a call does when awake workers did not help), and returns
    /// how many moves were made.
    fn moves_made_by_a_kick() -> usize {
        pool().ensure_workers(2);
        std::thread::sleep(KICK_INTERVAL * 2);
        let before = MOVES_MADE.load(Ordering::SeqCst);
        pool().kick_workers_off_this_cpu();
        MOVES_MADE.load(Ordering::SeqCst) - before
    }

    #[test]
    fn by_default_no_worker_is_moved() {
        let _serial = MOVE_SETTING.lock().unwrap_or_else(PoisonError::into_inner);
        let _restore = RestoreMoveSetting;
        set_move_workers(None);
        // The default is off unless the environment enables it.
        let from_env = parse_move_workers(std::env::var("UNITFP8_MOVE_WORKERS").ok().as_deref());
        assert_eq!(move_workers(), from_env);
        let affinity = |tids: &[i32]| {
            tids.iter()
                .map(|tid| {
                    let status = std::fs::read_to_string(format!("/proc/self/task/{tid}/status"));
                    status.ok().and_then(|s| {
                        s.lines()
                            .find(|l| l.starts_with("Cpus_allowed_list"))
                            .map(str::to_string)
                    })
                })
                .collect::<Vec<_>>()
        };
        pool().ensure_workers(2);
        let tids = pool().lock().tids.clone();
        let masks = affinity(&tids);
        let before = MOVES_MADE.load(Ordering::SeqCst);
        // Many small two-thread calls (some find awake workers that do not help), then what
        // such a call does afterwards.
        for _ in 0..200 {
            run_parts(2, 2, &|_| {});
        }
        moves_made_by_a_kick();
        let moves = MOVES_MADE.load(Ordering::SeqCst) - before;
        if from_env {
            assert!(moves > 0 || placement::current_cpu().is_none());
        } else {
            assert_eq!(moves, 0, "workers were moved although moving is off");
        }
        assert_eq!(affinity(&tids), masks, "a worker's affinity changed");
        set_move_workers(Some(false));
        assert!(!move_workers());
        assert_eq!(moves_made_by_a_kick(), 0, "workers moved although disabled");
    }

    #[cfg(all(
        target_os = "linux",
        any(target_arch = "x86_64", target_arch = "aarch64")
    ))]
    #[test]
    fn enabled_moves_reach_every_worker() {
        let _serial = MOVE_SETTING.lock().unwrap_or_else(PoisonError::into_inner);
        let _restore = RestoreMoveSetting;
        set_move_workers(Some(true));
        assert!(move_workers());
        // Every known worker gets moved (workers are only ever added, so at least those known
        // before the kick). Another test's call may kick in between and make this kick wait for
        // the next interval: try a few times.
        pool().ensure_workers(2);
        let (mut moves, mut workers) = (0, 0);
        for _ in 0..5 {
            workers = pool().lock().tids.len();
            moves = moves_made_by_a_kick();
            if moves > 0 {
                break;
            }
        }
        assert!(workers >= 2, "{workers} workers");
        assert!(moves >= workers, "{moves} moves for {workers} workers");
    }

    #[cfg(all(
        target_os = "linux",
        any(target_arch = "x86_64", target_arch = "aarch64")
    ))]
    #[test]
    fn move_off_migrates_a_thread_and_keeps_its_mask() {
        use std::sync::atomic::AtomicBool;
        // The spinning thread answers request r by storing (r << 16) | its CPU, read after it
        // saw the request, hence after the move that preceded the request.
        let tid = AtomicUsize::new(0);
        let request = AtomicUsize::new(0);
        let answer = AtomicUsize::new(usize::MAX);
        let stop = AtomicBool::new(false);
        // Stops the spinning thread even when an assertion fails (else the scope never ends).
        struct StopOnDrop<'a>(&'a AtomicBool);
        impl Drop for StopOnDrop<'_> {
            fn drop(&mut self) {
                self.0.store(true, Ordering::SeqCst);
            }
        }
        let ask = |r: usize| {
            request.store(r, Ordering::SeqCst);
            loop {
                let a = answer.load(Ordering::SeqCst);
                if a != usize::MAX && a >> 16 == r {
                    return a & 0xFFFF;
                }
                std::thread::yield_now();
            }
        };
        std::thread::scope(|s| {
            let _stop = StopOnDrop(&stop);
            s.spawn(|| {
                tid.store(placement::thread_id().unwrap() as usize, Ordering::SeqCst);
                let mut served = usize::MAX;
                while !stop.load(Ordering::SeqCst) {
                    let r = request.load(Ordering::SeqCst);
                    if r != served {
                        let cpu = placement::current_cpu().unwrap();
                        answer.store((r << 16) | cpu, Ordering::SeqCst);
                        served = r;
                    }
                    std::hint::spin_loop();
                }
            });
            let first = ask(1);
            let tid = tid.load(Ordering::SeqCst) as i32;
            let mask = |tid: i32| {
                std::fs::read_to_string(format!("/proc/self/task/{tid}/status"))
                    .unwrap()
                    .lines()
                    .find(|l| l.starts_with("Cpus_allowed_list"))
                    .unwrap()
                    .to_string()
            };
            let before = mask(tid);
            let allowed_cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
            let (mut from, mut moved) = (first, 0);
            for attempt in 0..8 {
                placement::move_off(tid, from);
                assert_eq!(mask(tid), before, "the affinity mask must be restored");
                let now = ask(attempt + 2);
                moved += usize::from(now != from);
                from = now;
            }
            if allowed_cpus > 1 {
                // Right after a move the thread is elsewhere; the scheduler may move it back at
                // any time after (other tests run alongside), so allow a few misses.
                assert!(moved >= 5, "only {moved} of 8 moves left the CPU");
            }
        });
    }

    #[test]
    fn every_part_runs_once() {
        for parts in [0usize, 1, 2, 3, 7, 64, 300] {
            let counts: Vec<AtomicUsize> = (0..parts).map(|_| AtomicUsize::new(0)).collect();
            for threads in [1usize, 2, 5] {
                for c in &counts {
                    c.store(0, Ordering::Relaxed);
                }
                run_parts(parts, threads, &|p| {
                    counts[p].fetch_add(1, Ordering::Relaxed);
                });
                assert!(
                    counts.iter().all(|c| c.load(Ordering::Relaxed) == 1),
                    "parts {parts} threads {threads}"
                );
            }
        }
    }

    /// Distinct threads that ran a part of `run_parts(parts, threads, …)`. Until more than
    /// `MAX_THREADS` threads have joined, or for 300 ms, each part waits, so that every thread
    /// the call starts gets a part.
    fn threads_taking_part(parts: usize, threads: usize) -> usize {
        let ids = Mutex::new(std::collections::HashSet::new());
        let deadline = Instant::now() + Duration::from_millis(300);
        run_parts(parts, threads, &|_| {
            ids.lock().unwrap().insert(std::thread::current().id());
            while ids.lock().unwrap().len() <= crate::exec::MAX_THREADS && Instant::now() < deadline
            {
                std::thread::sleep(Duration::from_millis(1));
            }
        });
        ids.into_inner().unwrap().len()
    }

    #[test]
    fn no_call_takes_more_than_max_threads() {
        let most = crate::exec::MAX_THREADS;
        let pooled = threads_taking_part(3 * most, usize::MAX);
        assert!(pooled <= most, "{pooled} threads on the pool");
        // A call made while the pool is busy (from inside a part) spawns scoped threads.
        let scoped = AtomicUsize::new(0);
        run_parts(2, 2, &|part| {
            if part == 0 {
                scoped.store(threads_taking_part(3 * most, usize::MAX), Ordering::Relaxed);
            }
        });
        let scoped = scoped.into_inner();
        assert!(scoped > 1 && scoped <= most, "{scoped} scoped threads");
    }

    #[test]
    fn no_more_threads_than_asked_take_part() {
        // Workers left over from a wider call (and spinning) must not join a narrower one.
        run_parts(6, 6, &|_| {
            std::thread::sleep(std::time::Duration::from_millis(1))
        });
        for threads in [1usize, 2, 3] {
            let active = AtomicUsize::new(0);
            let most = AtomicUsize::new(0);
            run_parts(48, threads, &|_| {
                let now = active.fetch_add(1, Ordering::SeqCst) + 1;
                most.fetch_max(now, Ordering::SeqCst);
                std::thread::sleep(std::time::Duration::from_micros(300));
                active.fetch_sub(1, Ordering::SeqCst);
            });
            let most = most.into_inner();
            assert!(
                most <= threads,
                "{most} threads ran parts of a {threads}-thread call"
            );
        }
    }

    #[test]
    fn a_panicking_part_reaches_the_caller_after_the_others_finish() {
        let finished = AtomicUsize::new(0);
        let r = catch_unwind(AssertUnwindSafe(|| {
            run_parts(8, 8, &|p| {
                if p == 5 {
                    panic!("part 5");
                }
                std::thread::sleep(std::time::Duration::from_millis(2));
                finished.fetch_add(1, Ordering::Relaxed);
            })
        }));
        let payload = r.expect_err("the panic must propagate");
        assert_eq!(payload.downcast_ref::<&str>(), Some(&"part 5"));
        assert_eq!(finished.load(Ordering::Relaxed), 7);
        // The pool still works afterwards.
        let sum = AtomicUsize::new(0);
        run_parts(4, 4, &|p| {
            sum.fetch_add(p + 1, Ordering::Relaxed);
        });
        assert_eq!(sum.load(Ordering::Relaxed), 10);
    }

    #[test]
    fn concurrent_and_nested_calls_complete() {
        std::thread::scope(|s| {
            for t in 0..4usize {
                s.spawn(move || {
                    for round in 0..50usize {
                        let sum = AtomicUsize::new(0);
                        run_parts(3, 3, &|p| {
                            // A part that splits its own work finds the pool busy.
                            let inner = AtomicUsize::new(0);
                            run_parts(2, 2, &|q| {
                                inner.fetch_add(q + 1, Ordering::Relaxed);
                            });
                            sum.fetch_add(inner.into_inner() * (p + t + round), Ordering::Relaxed);
                        });
                        assert_eq!(sum.into_inner(), 3 * (3 * (t + round) + 3));
                    }
                });
            }
        });
    }

    #[test]
    fn max_over_ranges_covers_every_index_once() {
        const PIECES: usize = 4;
        for (n, grain, threads) in [
            (0usize, 16usize, 4usize),
            (1, 16, 4),
            (1000, 16, 3),
            (4096, 64, 2),
            (4097, 1, 7),
            (1 << 20, 1024, 2),
        ] {
            let seen: Vec<AtomicUsize> = (0..n).map(|_| AtomicUsize::new(0)).collect();
            let results = Mutex::new(Vec::new());
            let got = max_over_ranges(n, grain, threads, PIECES, |s, e| {
                assert!(s % grain == 0 && s <= e && e <= n, "piece {s}..{e}");
                assert!(e == n || e % grain == 0, "piece {s}..{e}");
                for c in &seen[s..e] {
                    c.fetch_add(1, Ordering::Relaxed);
                }
                let r = (e as u32).wrapping_mul(2654435761) >> 8;
                results.lock().unwrap().push(r);
                r
            });
            assert!(seen.iter().all(|c| c.load(Ordering::Relaxed) == 1));
            let results = results.into_inner().unwrap();
            assert_eq!(got, results.iter().copied().max().unwrap());
            assert!(results.len() <= threads * PIECES, "n {n}");
            if threads > 1 && n >= threads * PIECES * grain {
                // Finer than one piece per thread, so that late workers take little.
                assert!(results.len() > threads, "n {n}: {} pieces", results.len());
            }
        }
    }
}
