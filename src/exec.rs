//! Execution settings: which back end runs and on how many threads.

use crate::backend::Backend;
use crate::error::Error;
use crate::gemm::GemmKernel;

/// Which back end (and GEMM kernel) and how many threads a call uses. The free functions of
/// this crate use [`Exec::global`]; tests and benchmarks build their own to force a path.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Exec {
    backend: Backend,
    gemm_kernel: GemmKernel,
    threads: usize,
}

impl Exec {
    /// Settings for `backend` on one thread, with the GEMM kernel of that back end
    /// ([`GemmKernel::for_backend`]: the scalar reference for [`Backend::Scalar`]);
    /// [`Status::Unsupported`](crate::error::Status::Unsupported) when the back end cannot run
    /// here.
    pub fn new(backend: Backend) -> Result<Exec, Error> {
        backend.kernels()?;
        Ok(Exec {
            backend,
            gemm_kernel: GemmKernel::for_backend(backend),
            threads: 1,
        })
    }

    /// The same settings with `threads` threads, 1 to [`MAX_THREADS`] (0 means 1, more means
    /// [`MAX_THREADS`]): the calling thread plus up to `threads - 1` workers of the
    /// process-wide pool (without the `std` feature the work always runs on the calling
    /// thread). Results never depend on the thread count.
    pub fn with_threads(self, threads: usize) -> Exec {
        Exec {
            threads: threads.clamp(1, MAX_THREADS),
            ..self
        }
    }

    /// The same settings with GEMM kernel `kernel` (e.g. the AVX2+FMA kernel with the scalar
    /// back end on a CPU without AVX-512);
    /// [`Status::Unsupported`](crate::error::Status::Unsupported) when this CPU lacks it.
    pub fn with_gemm_kernel(self, kernel: GemmKernel) -> Result<Exec, Error> {
        kernel.check_available()?;
        Ok(Exec {
            gemm_kernel: kernel,
            ..self
        })
    }

    /// The back end.
    pub fn backend(&self) -> Backend {
        self.backend
    }

    /// The thread count.
    pub fn threads(&self) -> usize {
        self.threads
    }

    /// The GEMM micro-kernel these settings use.
    pub fn gemm_kernel(&self) -> GemmKernel {
        self.gemm_kernel
    }

    /// The process-wide settings: the back end named by `UNITFP8_BACKEND` (`scalar`, `avx512`,
    /// `neon`) when it is available, with that back end's GEMM kernel
    /// ([`GemmKernel::for_backend`]: `scalar` runs the scalar GEMM too); else the best available
    /// back end with the fastest GEMM kernel ([`GemmKernel::best`]). The GEMM kernel set by
    /// [`set_gemm_kernel`] (or `UNITFP8_GEMM_KERNEL`) replaces that kernel. The thread count set
    /// by [`set_num_threads`], else `UNITFP8_NUM_THREADS`, else the number of CPUs.
    #[cfg(feature = "std")]
    pub fn global() -> Exec {
        let (backend, default_kernel) = global_backend();
        Exec {
            backend,
            gemm_kernel: gemm_kernel_override().unwrap_or(default_kernel),
            threads: num_threads(),
        }
    }

    /// The process-wide settings: the best back end and GEMM kernel the compile-time target
    /// features allow, on one thread.
    #[cfg(not(feature = "std"))]
    pub fn global() -> Exec {
        Exec {
            backend: Backend::best(),
            gemm_kernel: GemmKernel::best(),
            threads: 1,
        }
    }
}

/// The back end and GEMM kernel `UNITFP8_BACKEND` selects (read once).
#[cfg(feature = "std")]
fn global_backend() -> (Backend, GemmKernel) {
    static CHOSEN: std::sync::OnceLock<(Backend, GemmKernel)> = std::sync::OnceLock::new();
    *CHOSEN.get_or_init(|| {
        std::env::var("UNITFP8_BACKEND")
            .ok()
            .and_then(|name| Backend::from_name(name.trim().to_ascii_lowercase().as_str()))
            .filter(|b| b.is_available())
            .map_or_else(
                || (Backend::best(), GemmKernel::best()),
                |b| (b, GemmKernel::for_backend(b)),
            )
    })
}

/// The process-wide GEMM kernel choice: [`GEMM_UNSET`] until first read, [`GEMM_DEFAULT`] for
/// the back end's own kernel, else `GEMM_FIRST + i` for `GemmKernel::ALL[i]`.
#[cfg(feature = "std")]
static GEMM_CHOICE: core::sync::atomic::AtomicUsize =
    core::sync::atomic::AtomicUsize::new(GEMM_UNSET);
#[cfg(feature = "std")]
const GEMM_UNSET: usize = 0;
#[cfg(feature = "std")]
const GEMM_DEFAULT: usize = 1;
#[cfg(feature = "std")]
const GEMM_FIRST: usize = 2;

#[cfg(feature = "std")]
fn encode_choice(kernel: Option<GemmKernel>) -> usize {
    kernel
        .and_then(|k| GemmKernel::ALL.iter().position(|&x| x == k))
        .map_or(GEMM_DEFAULT, |i| GEMM_FIRST + i)
}

/// The GEMM kernel chosen process-wide in place of the back end's own, if any: the one set by
/// [`set_gemm_kernel`], else (read once) the one `UNITFP8_GEMM_KERNEL` names when this CPU runs
/// it (an unknown or unavailable name is ignored).
#[cfg(feature = "std")]
pub fn gemm_kernel_override() -> Option<GemmKernel> {
    use core::sync::atomic::Ordering;
    let mut choice = GEMM_CHOICE.load(Ordering::Relaxed);
    if choice == GEMM_UNSET {
        let from_env = std::env::var("UNITFP8_GEMM_KERNEL")
            .ok()
            .and_then(|name| GemmKernel::from_name(name.trim().to_ascii_lowercase().as_str()))
            .filter(|k| k.is_available());
        // A racing set_gemm_kernel wins over the environment.
        choice = match GEMM_CHOICE.compare_exchange(
            GEMM_UNSET,
            encode_choice(from_env),
            Ordering::Relaxed,
            Ordering::Relaxed,
        ) {
            Ok(_) => encode_choice(from_env),
            Err(now) => now,
        };
    }
    choice.checked_sub(GEMM_FIRST).map(|i| GemmKernel::ALL[i])
}

/// Sets the GEMM kernel of later calls process-wide (`None`: the back end's own kernel, which
/// is exact; the default unless `UNITFP8_GEMM_KERNEL` names one). Use it to opt in to
/// [`GemmKernel::AmxBf16`], which is faster on CPUs with AMX but not bit-identical to the
/// other kernels. [`Status::Unsupported`](crate::error::Status::Unsupported) (and no change)
/// when this CPU lacks the kernel. Thread-safe; calls already running are not affected.
#[cfg(feature = "std")]
pub fn set_gemm_kernel(kernel: Option<GemmKernel>) -> Result<(), Error> {
    if let Some(k) = kernel {
        k.check_available()?;
    }
    GEMM_CHOICE.store(encode_choice(kernel), core::sync::atomic::Ordering::Relaxed);
    Ok(())
}

#[cfg(feature = "std")]
static THREADS: core::sync::atomic::AtomicUsize = core::sync::atomic::AtomicUsize::new(0);

/// The most threads one call uses, the caller included: [`set_num_threads`] and
/// `UNITFP8_NUM_THREADS` above it mean this many.
pub const MAX_THREADS: usize = 256;

/// Sets the process-wide thread count; 0 restores the default (`UNITFP8_NUM_THREADS`, else the
/// number of CPUs). Counts above [`MAX_THREADS`] mean [`MAX_THREADS`].
#[cfg(feature = "std")]
pub fn set_num_threads(threads: usize) {
    THREADS.store(
        threads.min(MAX_THREADS),
        core::sync::atomic::Ordering::Relaxed,
    );
}

/// The process-wide thread count (see [`set_num_threads`]), 1 to [`MAX_THREADS`].
#[cfg(feature = "std")]
pub fn num_threads() -> usize {
    match THREADS.load(core::sync::atomic::Ordering::Relaxed) {
        0 => default_threads(),
        n => n,
    }
}

#[cfg(feature = "std")]
fn default_threads() -> usize {
    static DEFAULT: std::sync::OnceLock<usize> = std::sync::OnceLock::new();
    *DEFAULT.get_or_init(|| {
        std::env::var("UNITFP8_NUM_THREADS")
            .ok()
            .and_then(|s| s.trim().parse::<usize>().ok())
            .filter(|&n| n > 0)
            .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()))
            .min(MAX_THREADS)
    })
}
