//! The process-wide GEMM kernel setting (Rust and C ABI), in a test binary of its own: it
//! changes a global that the other GEMM tests rely on.

use std::ffi::{CStr, CString};
use unitfp8::ffi::*;
use unitfp8::gemm::GemmKernel;
use unitfp8::{Exec, Status};

fn text(p: *const std::ffi::c_char) -> String {
    // SAFETY: the library returns NUL-terminated strings.
    unsafe { CStr::from_ptr(p) }.to_str().unwrap().to_owned()
}

fn set(name: Option<&str>) -> i32 {
    let c = name.map(|n| CString::new(n).unwrap());
    // SAFETY: NULL or a NUL-terminated string.
    unsafe { unitfp8_set_gemm_kernel(c.as_ref().map_or(std::ptr::null(), |c| c.as_ptr())) }
}

#[test]
fn gemm_kernel_setting() {
    let default = Exec::global().gemm_kernel();
    assert!(
        default.is_exact(),
        "the default kernel must be exact, got {}",
        default.name()
    );
    assert_eq!(text(unitfp8_gemm_kernel()), default.name());

    // Unknown names and bad UTF-8 are rejected and change nothing.
    assert_eq!(set(Some("amx")), Status::InvalidArgument.code());
    assert!(text(unitfp8_last_error()).contains("unknown gemm kernel name"));
    let bad = [0xFFu8, 0];
    // SAFETY: a NUL-terminated byte string.
    let r = unsafe { unitfp8_set_gemm_kernel(bad.as_ptr().cast()) };
    assert_eq!(r, Status::InvalidArgument.code());
    assert!(text(unitfp8_last_error()).contains("UTF-8"));
    assert_eq!(Exec::global().gemm_kernel(), default);

    // The scalar reference can always be chosen; the default comes back with NULL or "default".
    assert_eq!(set(Some("scalar")), 0);
    assert_eq!(text(unitfp8_last_error()), "");
    assert_eq!(Exec::global().gemm_kernel(), GemmKernel::Scalar);
    assert_eq!(text(unitfp8_gemm_kernel()), "scalar");
    assert_eq!(unitfp8::gemm_kernel_override(), Some(GemmKernel::Scalar));
    assert_eq!(set(None), 0);
    assert_eq!(Exec::global().gemm_kernel(), default);
    assert_eq!(set(Some("scalar")), 0);
    assert_eq!(set(Some("default")), 0);
    assert_eq!(unitfp8::gemm_kernel_override(), None);

    // Every kernel: accepted exactly when this CPU runs it.
    for k in GemmKernel::ALL {
        let r = set(Some(k.name()));
        if k.is_available() {
            assert_eq!(r, 0, "{}", k.name());
            assert_eq!(Exec::global().gemm_kernel(), k);
        } else {
            assert_eq!(r, Status::Unsupported.code(), "{}", k.name());
            assert!(text(unitfp8_last_error()).contains(k.name()));
            assert_eq!(
                unitfp8::set_gemm_kernel(Some(k)).unwrap_err().status(),
                Status::Unsupported
            );
        }
        assert_eq!(set(None), 0);
    }
    unitfp8::set_gemm_kernel(None).unwrap();
    assert_eq!(Exec::global().gemm_kernel(), default);
}
