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

/// Whether this process holds the permission to use AMX tile data (Linux x86-64:
/// `arch_prctl(ARCH_GET_XCOMP_PERM)`, bit 18); `None` where that cannot be asked.
fn amx_permission() -> Option<bool> {
    #[cfg(all(target_os = "linux", target_arch = "x86_64"))]
    {
        let mut mask = 0u64;
        let ret: i64;
        // SAFETY: arch_prctl(ARCH_GET_XCOMP_PERM, &mask) writes one u64 to `mask`; the kernel
        // clobbers rcx and r11.
        unsafe {
            std::arch::asm!(
                "syscall",
                inlateout("rax") 158i64 => ret,
                in("rdi") 0x1022i64,
                in("rsi") &mut mask as *mut u64,
                lateout("rcx") _,
                lateout("r11") _,
                options(nostack),
            );
        }
        if ret == 0 {
            Some(mask & (1 << 18) != 0)
        } else {
            None
        }
    }
    #[cfg(not(all(target_os = "linux", target_arch = "x86_64")))]
    None
}

#[test]
fn gemm_kernel_setting() {
    // A process that never asks for the AMX kernel is not given the tile permission (which
    // enlarges its signal frames), even after a GEMM with the default kernel.
    let a = [unitfp8::E4M3::from_f32(1.5); 64 * 64];
    let mut c = [0f32; 64 * 64];
    unitfp8::gemm::gemm(
        1.0,
        unitfp8::gemm::MatRef::row_major(&a[..], 64, 64).unwrap(),
        unitfp8::gemm::MatRef::row_major(&a[..], 64, 64).unwrap(),
        0.0,
        unitfp8::gemm::MatMut::row_major(&mut c[..], 64, 64).unwrap(),
    )
    .unwrap();
    assert_eq!(c[0], 64.0 * 2.25);
    if let Some(p) = amx_permission() {
        assert!(!p, "the default GEMM requested the AMX tile permission");
    }
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
    if let Some(p) = amx_permission() {
        assert_eq!(p, GemmKernel::AmxBf16.is_available());
    }
}
