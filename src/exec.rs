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

    /// The same settings with `threads` threads (at least 1): the calling thread plus up to
    /// `threads - 1` workers of the process-wide pool (at most 256 are created; without the
    /// `std` feature the work always runs on the calling thread). Results never depend on the
    /// thread count.
    pub fn with_threads(self, threads: usize) -> Exec {
        Exec {
            threads: threads.max(1),
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
    /// back end with the fastest GEMM kernel ([`GemmKernel::best`]). The thread count set by
    /// [`set_num_threads`], else `UNITFP8_NUM_THREADS`, else the number of CPUs.
    #[cfg(feature = "std")]
    pub fn global() -> Exec {
        let (backend, gemm_kernel) = global_backend();
        Exec {
            backend,
            gemm_kernel,
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

#[cfg(feature = "std")]
static THREADS: core::sync::atomic::AtomicUsize = core::sync::atomic::AtomicUsize::new(0);

/// Sets the process-wide thread count; 0 restores the default (`UNITFP8_NUM_THREADS`, else the
/// number of CPUs).
#[cfg(feature = "std")]
pub fn set_num_threads(threads: usize) {
    THREADS.store(threads, core::sync::atomic::Ordering::Relaxed);
}

/// The process-wide thread count (see [`set_num_threads`]).
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
    })
}
