//! Library information and process-wide settings.

use core::ffi::{CStr, c_char};

use crate::backend::Backend;
use crate::error::Status;
use crate::exec::Exec;
use crate::gemm::GemmKernel;

const VERSION_C: &CStr =
    match CStr::from_bytes_with_nul(concat!(env!("CARGO_PKG_VERSION"), "\0").as_bytes()) {
        Ok(s) => s,
        Err(_) => panic!("the crate version contains a NUL byte"),
    };

/// Major version of the library this header belongs to (`unitfp8_version()` gives the version
/// of the library actually loaded). The shared library's SONAME is `libunitfp8.so.0` for the
/// 0.x C ABI; an incompatible change of the C ABI changes it.
pub const UNITFP8_VERSION_MAJOR: u32 = 0;
/// Minor version of the library this header belongs to.
pub const UNITFP8_VERSION_MINOR: u32 = 1;
/// Patch version of the library this header belongs to.
pub const UNITFP8_VERSION_PATCH: u32 = 0;

/// Parses a decimal version component at compile time (panics, i.e. fails the build, on
/// anything else).
const fn parse_version_component(s: &str) -> u32 {
    let b = s.as_bytes();
    assert!(!b.is_empty(), "empty version component");
    let mut v = 0u32;
    let mut i = 0;
    while i < b.len() {
        assert!(
            b[i].is_ascii_digit(),
            "version component is not a decimal number"
        );
        v = v * 10 + (b[i] - b'0') as u32;
        i += 1;
    }
    v
}

// The header's version macros are literals (cbindgen copies them), so the build fails when they
// and Cargo.toml's version disagree.
const _: () = {
    assert!(UNITFP8_VERSION_MAJOR == parse_version_component(env!("CARGO_PKG_VERSION_MAJOR")));
    assert!(UNITFP8_VERSION_MINOR == parse_version_component(env!("CARGO_PKG_VERSION_MINOR")));
    assert!(UNITFP8_VERSION_PATCH == parse_version_component(env!("CARGO_PKG_VERSION_PATCH")));
};

/// The library version (`"MAJOR.MINOR.PATCH"`), a static NUL-terminated string. Never null;
/// do not free it.
#[unsafe(no_mangle)]
pub extern "C" fn unitfp8_version() -> *const c_char {
    VERSION_C.as_ptr()
}

/// A static English description of any status code this library returns, CPU and CUDA (for
/// example `"invalid argument"` for `UNITFP8_ERROR_INVALID_ARGUMENT`); an unknown code gets
/// `"unknown status"`. Never null; do not free it. `unitfp8_last_error()` says what exactly
/// was wrong with a failed call.
#[unsafe(no_mangle)]
pub extern "C" fn unitfp8_status_string(status: i32) -> *const c_char {
    let s: &'static CStr = match Status::from_code(status) {
        Some(s) => s.message_c(),
        None if status == 0 => c"ok",
        None => c"unknown status",
    };
    s.as_ptr()
}

/// What exactly was wrong with the last call on this thread that failed: the argument, the
/// rule and the values, for example `"ld_src (4) must be >= cols (8)"`, `"a and c overlap"`,
/// `"tau must be in [0, 1], got 1.5"`, or for CUDA the driver call and its error. `""` when
/// this thread's last call succeeded (or made none). Every entry point that returns a status
/// sets it. A NUL-terminated string owned by the library, valid until this thread's next call;
/// never null; do not free it.
#[unsafe(no_mangle)]
pub extern "C" fn unitfp8_last_error() -> *const c_char {
    super::last_error()
}

/// The name of the back end that runs the kernels in this process: `"scalar"`, `"avx512"` or
/// `"neon"`, a static NUL-terminated string. It is the one named by the environment variable
/// `UNITFP8_BACKEND` when that is available on this CPU, else the best available one; it is
/// fixed at the first call that needs it. Never null; do not free it.
#[unsafe(no_mangle)]
pub extern "C" fn unitfp8_backend() -> *const c_char {
    let s: &'static CStr = match Exec::global().backend() {
        Backend::Scalar => c"scalar",
        Backend::Avx512 => c"avx512",
        Backend::Neon => c"neon",
    };
    s.as_ptr()
}

/// Chooses the GEMM kernel of later calls process-wide, by name: `"amx-bf16"` opts in to the
/// AMX kernel (x86-64 CPUs with AMX, Linux), several times faster on large products but **not
/// bit-identical** to the other kernels (its hardware sums in an order of its own); NULL or
/// `"default"` restores the back end's own, exact kernel (the default unless the environment
/// variable `UNITFP8_GEMM_KERNEL` names one). Other names: `"avx512-bf16"`, `"avx512-fma"`,
/// `"avx2-fma"`, `"neon"`, `"scalar"`. Returns `UNITFP8_OK`, `UNITFP8_ERROR_INVALID_ARGUMENT`
/// for an unknown name (or one that is not UTF-8), `UNITFP8_ERROR_UNSUPPORTED` for a kernel this
/// CPU or system cannot run; on error the setting is unchanged. Thread-safe.
///
/// # Safety
/// `name` is NULL or a NUL-terminated string.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn unitfp8_set_gemm_kernel(name: *const c_char) -> i32 {
    super::guard(|| {
        let kernel = if name.is_null() {
            None
        } else {
            // SAFETY: a NUL-terminated string (caller's contract).
            let text = unsafe { CStr::from_ptr(name) }
                .to_str()
                .map_err(|_| crate::error::Error::invalid("gemm kernel name is not UTF-8", &[]))?;
            if text == "default" {
                None
            } else {
                Some(GemmKernel::from_name(text).ok_or_else(|| {
                    crate::error::Error::invalid(
                        "unknown gemm kernel name (amx-bf16, avx512-bf16, avx512-fma, avx2-fma, neon, scalar or default)",
                        &[],
                    )
                })?)
            }
        };
        crate::exec::set_gemm_kernel(kernel)
    })
}

/// The name of the GEMM kernel later calls use (for large products; problems of a few rows
/// may take a short-problem kernel of the same family): `"avx512-bf16"`, `"amx-bf16"`, … (see
/// `unitfp8_set_gemm_kernel`), a static NUL-terminated string. Never null; do not free it.
#[unsafe(no_mangle)]
pub extern "C" fn unitfp8_gemm_kernel() -> *const c_char {
    let s: &'static CStr = match Exec::global().gemm_kernel() {
        GemmKernel::Scalar => c"scalar",
        GemmKernel::Avx512Fma => c"avx512-fma",
        GemmKernel::Avx512Bf16 => c"avx512-bf16",
        GemmKernel::Avx2Fma => c"avx2-fma",
        GemmKernel::Neon => c"neon",
        GemmKernel::AmxBf16 => c"amx-bf16",
    };
    s.as_ptr()
}

/// Sets the number of worker threads used by later calls, process-wide; 0 restores the default
/// (the environment variable `UNITFP8_NUM_THREADS`, else the number of CPUs). Counts above 256
/// mean 256 (`unitfp8_get_num_threads` reports the count in use). Results never depend on the
/// thread count. Thread-safe; calls already running are not affected.
#[unsafe(no_mangle)]
pub extern "C" fn unitfp8_set_num_threads(threads: usize) {
    crate::exec::set_num_threads(threads);
}

/// The number of worker threads later calls use (at least 1; see `unitfp8_set_num_threads`).
#[unsafe(no_mangle)]
pub extern "C" fn unitfp8_get_num_threads() -> usize {
    crate::exec::num_threads().max(1)
}

/// Enables (`enabled` = 1) or disables (0) moving the worker threads off the caller's CPU,
/// process-wide; any other value restores the default, which is off unless the environment
/// variable `UNITFP8_MOVE_WORKERS` is `1` (or `true`, `yes`, `on`).
///
/// When enabled, a multi-threaded call that no awake worker helped with (Linux, x86-64 and
/// AArch64) moves each of the library's worker threads to another of its allowed CPUs by briefly
/// narrowing its affinity mask, which is restored at once; the caller's threads are never
/// touched. Off by default, as suits a library inside a runtime with threads of its own. Results
/// never depend on it. Thread-safe; takes effect from the next call.
#[unsafe(no_mangle)]
pub extern "C" fn unitfp8_set_move_workers(enabled: i32) {
    crate::set_move_workers(match enabled {
        0 => Some(false),
        1 => Some(true),
        _ => None,
    });
}

/// Whether the worker threads are moved off the caller's CPU (1) or not (0); see
/// `unitfp8_set_move_workers`.
#[unsafe(no_mangle)]
pub extern "C" fn unitfp8_get_move_workers() -> i32 {
    i32::from(crate::move_workers())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn text(p: *const c_char) -> &'static str {
        // SAFETY: every function above returns a static NUL-terminated string.
        unsafe { CStr::from_ptr(p) }.to_str().unwrap()
    }

    #[test]
    fn strings() {
        assert_eq!(text(unitfp8_version()), crate::VERSION);
        for code in -3..20 {
            let expected = match Status::from_code(code) {
                Some(s) => s.message(),
                None if code == 0 => "ok",
                None => "unknown status",
            };
            assert_eq!(text(unitfp8_status_string(code)), expected);
        }
        assert_eq!(text(unitfp8_backend()), Exec::global().backend().name());
    }
}
