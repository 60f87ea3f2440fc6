//! Library information and process-wide settings.

use core::ffi::{CStr, c_char};

use super::{
    UNITFP8_ERROR_INTERNAL, UNITFP8_ERROR_INVALID_ARGUMENT, UNITFP8_ERROR_NULL_POINTER,
    UNITFP8_ERROR_OVERLAP, UNITFP8_ERROR_UNSUPPORTED, UNITFP8_OK,
};
use crate::backend::Backend;
use crate::exec::Exec;

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

/// A static English description of a status code returned by this library (for example
/// `"invalid argument"` for `UNITFP8_ERROR_INVALID_ARGUMENT`); an unknown code gets
/// `"unknown status"`. Never null; do not free it.
#[unsafe(no_mangle)]
pub extern "C" fn unitfp8_status_string(status: i32) -> *const c_char {
    let s: &'static CStr = match status {
        UNITFP8_OK => c"ok",
        UNITFP8_ERROR_NULL_POINTER => c"null pointer",
        UNITFP8_ERROR_INVALID_ARGUMENT => c"invalid argument",
        UNITFP8_ERROR_OVERLAP => c"illegal overlap of buffers",
        UNITFP8_ERROR_UNSUPPORTED => c"unsupported combination",
        UNITFP8_ERROR_INTERNAL => c"internal error",
        _ => c"unknown status",
    };
    s.as_ptr()
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

/// Sets the number of worker threads used by later calls, process-wide; 0 restores the default
/// (the environment variable `UNITFP8_NUM_THREADS`, else the number of CPUs). Results never
/// depend on the thread count. Thread-safe; calls already running are not affected.
#[unsafe(no_mangle)]
pub extern "C" fn unitfp8_set_num_threads(threads: usize) {
    crate::exec::set_num_threads(threads);
}

/// The number of worker threads later calls use (at least 1; see `unitfp8_set_num_threads`).
#[unsafe(no_mangle)]
pub extern "C" fn unitfp8_get_num_threads() -> usize {
    crate::exec::num_threads().max(1)
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
        for code in -3..10 {
            let expected = match code {
                0 => "ok",
                1..=5 => [
                    crate::Error::NullPointer,
                    crate::Error::InvalidArgument,
                    crate::Error::Overlap,
                    crate::Error::Unsupported,
                    crate::Error::Internal,
                ][code as usize - 1]
                    .message(),
                _ => "unknown status",
            };
            assert_eq!(text(unitfp8_status_string(code)), expected);
        }
        assert_eq!(text(unitfp8_backend()), Exec::global().backend().name());
    }
}
