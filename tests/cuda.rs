//! The CUDA entry points on any machine: every `unitfp8_cuda_*` function validates its arguments
//! exactly like the CPU entry point (and reports an argument error as such in every build);
//! then a default build returns `UNITFP8_ERROR_UNSUPPORTED`, and a `--features cuda` build
//! without a usable GPU reports why the device is not usable, never panicking. The GPU correctness checks themselves run through the C ABI from
//! Python (`gpu/run_checks.sh`) on a machine with a GPU.

use core::ffi::{CStr, c_void};
use core::ptr::{null, null_mut};
use unitfp8::ffi::*;

fn available() -> i32 {
    unitfp8_cuda_available()
}

fn text(p: *const core::ffi::c_char) -> String {
    // SAFETY: the library returns NUL-terminated strings.
    unsafe { CStr::from_ptr(p) }.to_str().unwrap().to_owned()
}

/// Fake, well-aligned "device" addresses: no test below reaches the device with them (either
/// the build has no CUDA, or validation fails first, or no device is present).
fn addr(a: usize) -> *mut c_void {
    a as *mut c_void
}

/// The status a call with valid arguments must return on this machine.
fn device_status() -> i32 {
    if cfg!(feature = "cuda") {
        available()
    } else {
        UNITFP8_ERROR_UNSUPPORTED
    }
}

/// The status a call whose argument checks end in `err` gives: an argument error in every
/// build; a call that passes them (`UNITFP8_OK`, a no-op here) is "unsupported" in a build
/// without the `cuda` feature.
fn arg_status(err: i32) -> i32 {
    if err == UNITFP8_OK && !cfg!(feature = "cuda") {
        UNITFP8_ERROR_UNSUPPORTED
    } else {
        err
    }
}

#[test]
fn availability_is_a_clear_status() {
    let s = available();
    println!(
        "unitfp8_cuda_available() = {s}: {} ({})",
        text(unitfp8_cuda_status_string(s)),
        text(unitfp8_cuda_last_error())
    );
    if cfg!(feature = "cuda") {
        assert!(
            [
                UNITFP8_OK,
                UNITFP8_CUDA_ERROR_NO_DRIVER,
                UNITFP8_CUDA_ERROR_NO_DEVICE,
                UNITFP8_CUDA_ERROR_DEVICE_UNSUPPORTED,
                UNITFP8_CUDA_ERROR_DRIVER
            ]
            .contains(&s),
            "{s}"
        );
        if s == UNITFP8_OK {
            println!("a CUDA device is present: run gpu/run_checks.sh for the GPU tests");
        } else {
            assert!(!text(unitfp8_cuda_last_error()).is_empty());
        }
    } else {
        assert_eq!(s, UNITFP8_ERROR_UNSUPPORTED);
    }
    // Asking twice gives the same answer (the driver state is cached, not re-probed wrongly).
    assert_eq!(available(), s);
}

#[test]
fn cast_checks_then_reports_the_device() {
    if device_status() == UNITFP8_OK {
        println!("skipped: a usable GPU is present (the GPU script tests these calls)");
        return;
    }
    let (src, dst, amax) = (
        addr(0x10_0000),
        addr(0x20_0000),
        addr(0x30_0000).cast::<f32>(),
    );
    // SAFETY: for all calls below, the library validates before touching any buffer and, with no
    // usable device, never dereferences them.
    unsafe {
        let cast = |st: u32, dt: u32, n: usize, scale: f32, r: u32, s: *const c_void, d, a| {
            unitfp8_cuda_cast(s, st, d, dt, n, scale, r, 7, a, null_mut())
        };
        assert_eq!(
            cast(UNITFP8_F32, UNITFP8_E4M3, 100, 1.0, 0, src, dst, amax),
            device_status()
        );
        assert_eq!(
            cast(9, UNITFP8_E4M3, 100, 1.0, 0, src, dst, amax),
            arg_status(UNITFP8_ERROR_INVALID_ARGUMENT)
        );
        assert_eq!(
            cast(UNITFP8_F32, UNITFP8_E4M3, 100, 1.0, 7, src, dst, amax),
            arg_status(UNITFP8_ERROR_INVALID_ARGUMENT)
        );
        assert_eq!(
            cast(
                UNITFP8_F32,
                UNITFP8_E4M3,
                100,
                f32::INFINITY,
                0,
                src,
                dst,
                amax
            ),
            arg_status(UNITFP8_ERROR_INVALID_ARGUMENT)
        );
        assert_eq!(
            cast(
                UNITFP8_F32,
                UNITFP8_BF16,
                100,
                1.0,
                UNITFP8_ROUND_STOCHASTIC_SATURATE,
                src,
                dst,
                amax
            ),
            arg_status(UNITFP8_ERROR_UNSUPPORTED)
        );
        assert_eq!(
            cast(UNITFP8_F32, UNITFP8_E4M3, 100, 1.0, 0, null(), dst, amax),
            arg_status(UNITFP8_ERROR_NULL_POINTER)
        );
        // dst inside src (partial overlap) and amax inside dst.
        assert_eq!(
            cast(
                UNITFP8_F32,
                UNITFP8_E4M3,
                100,
                1.0,
                0,
                src,
                addr(0x10_0010),
                amax
            ),
            arg_status(UNITFP8_ERROR_OVERLAP)
        );
        assert_eq!(
            cast(
                UNITFP8_F32,
                UNITFP8_E4M3,
                100,
                1.0,
                0,
                src,
                dst,
                addr(0x20_0004).cast()
            ),
            arg_status(UNITFP8_ERROR_OVERLAP)
        );
        // Misaligned f32 source.
        assert_eq!(
            cast(
                UNITFP8_F32,
                UNITFP8_E4M3,
                100,
                1.0,
                0,
                addr(0x10_0001),
                dst,
                amax
            ),
            arg_status(UNITFP8_ERROR_INVALID_ARGUMENT)
        );
        // n = 0 without amax: a successful no-op that needs no device.
        assert_eq!(
            cast(
                UNITFP8_F32,
                UNITFP8_E4M3,
                0,
                1.0,
                0,
                null(),
                null_mut(),
                null_mut()
            ),
            arg_status(UNITFP8_OK)
        );
    }
}

#[test]
fn cast_transpose_and_mixes_check_then_report_the_device() {
    if device_status() == UNITFP8_OK {
        println!("skipped: a usable GPU is present");
        return;
    }
    let (src, dst, dst_t) = (addr(0x10_0000), addr(0x20_0000), addr(0x30_0000));
    // SAFETY: for all calls, validated before any use; no usable device.
    unsafe {
        let ct = |ld_src: usize, d: *mut c_void, t: *mut c_void, dt: u32| {
            unitfp8_cuda_cast_transpose(
                src,
                UNITFP8_BF16,
                48,
                40,
                ld_src,
                d,
                40,
                t,
                48,
                dt,
                1.0,
                0,
                1,
                null_mut(),
                null_mut(),
            )
        };
        assert_eq!(ct(40, dst, dst_t, UNITFP8_E4M3), device_status());
        assert_eq!(ct(40, null_mut(), dst_t, UNITFP8_E5M2), device_status());
        assert_eq!(
            ct(39, dst, dst_t, UNITFP8_E4M3),
            arg_status(UNITFP8_ERROR_INVALID_ARGUMENT)
        );
        assert_eq!(
            ct(40, dst, addr(0x20_0100), UNITFP8_E4M3),
            arg_status(UNITFP8_ERROR_OVERLAP)
        );

        let (x, f, out, q) = (
            addr(0x10_0000),
            addr(0x20_0000),
            addr(0x30_0000),
            addr(0x40_0000),
        );
        let mix = |io: u32, tau: f32, o: *mut c_void, q: *mut c_void| {
            unitfp8_cuda_residual_mix(x, f, o, io, 64, tau, q, UNITFP8_E4M3, 0, 3, null_mut())
        };
        assert_eq!(mix(UNITFP8_F32, 0.25, out, q), device_status());
        assert_eq!(mix(UNITFP8_BF16, 0.25, x, null_mut()), device_status()); // in place
        assert_eq!(
            mix(UNITFP8_F32, 1.5, out, q),
            arg_status(UNITFP8_ERROR_INVALID_ARGUMENT)
        );
        assert_eq!(
            mix(UNITFP8_F32, f32::NAN, out, q),
            arg_status(UNITFP8_ERROR_INVALID_ARGUMENT)
        );
        assert_eq!(
            mix(UNITFP8_E4M3, 0.25, out, q),
            arg_status(UNITFP8_ERROR_UNSUPPORTED)
        );
        assert_eq!(
            mix(UNITFP8_F32, 0.25, addr(0x10_0004), q),
            arg_status(UNITFP8_ERROR_OVERLAP)
        );
        let bwd = |gx: *mut c_void, gf: *mut c_void| {
            unitfp8_cuda_residual_mix_backward(
                x,
                gx,
                gf,
                UNITFP8_F16,
                64,
                0.1,
                1,
                q,
                UNITFP8_E5M2,
                0,
                0,
                null_mut(),
            )
        };
        assert_eq!(bwd(out, f), device_status());
        assert_eq!(bwd(out, out), arg_status(UNITFP8_ERROR_OVERLAP));
        assert_eq!(bwd(null_mut(), f), arg_status(UNITFP8_ERROR_NULL_POINTER));
    }
}

#[test]
fn gemm_checks_layout_then_reports_the_device() {
    if device_status() == UNITFP8_OK {
        println!("skipped: a usable GPU is present");
        return;
    }
    let (a, b, c) = (addr(0x10_0000), addr(0x20_0000), addr(0x30_0000));
    let (m, n, k) = (64usize, 48usize, 256usize);
    // SAFETY: for all calls, validated before any use; no usable device.
    unsafe {
        let gemm = |a_rs: isize, a_cs: isize, b_rs: isize, b_cs: isize, ct: u32, beta: f32| {
            unitfp8_cuda_gemm(
                m,
                n,
                k,
                1.0,
                a,
                UNITFP8_E4M3,
                a_rs,
                a_cs,
                b,
                UNITFP8_E5M2,
                b_rs,
                b_cs,
                beta,
                c,
                ct,
                n as isize,
                1,
                null_mut(),
            )
        };
        // K-major A (row-major m x k) and B (n x k row-major, i.e. row stride 1).
        assert_eq!(
            gemm(k as isize, 1, 1, k as isize, UNITFP8_F32, 0.0),
            device_status()
        );
        assert_eq!(
            gemm(k as isize, 1, 1, k as isize, UNITFP8_BF16, 1.0),
            device_status()
        );
        // Row-major B (k x n) is not K-major: unsupported; so is a column-major A.
        assert_eq!(
            gemm(k as isize, 1, n as isize, 1, UNITFP8_F32, 0.0),
            arg_status(UNITFP8_ERROR_UNSUPPORTED)
        );
        assert_eq!(
            gemm(1, m as isize, 1, k as isize, UNITFP8_F32, 0.0),
            arg_status(UNITFP8_ERROR_UNSUPPORTED)
        );
        // FP8 C needs beta = 0; f16 C is unsupported.
        assert_eq!(
            gemm(k as isize, 1, 1, k as isize, UNITFP8_E4M3, 1.0),
            arg_status(UNITFP8_ERROR_INVALID_ARGUMENT)
        );
        assert_eq!(
            gemm(k as isize, 1, 1, k as isize, UNITFP8_F16, 0.0),
            arg_status(UNITFP8_ERROR_UNSUPPORTED)
        );
        // C overlapping B.
        let s = unitfp8_cuda_gemm(
            m,
            n,
            k,
            1.0,
            a,
            UNITFP8_E4M3,
            k as isize,
            1,
            b,
            UNITFP8_E4M3,
            1,
            k as isize,
            0.0,
            addr(0x20_0040),
            UNITFP8_F32,
            n as isize,
            1,
            null_mut(),
        );
        assert_eq!(s, arg_status(UNITFP8_ERROR_OVERLAP));

        let (x, w, y) = (addr(0x10_0000), addr(0x20_0000), addr(0x30_0000));
        assert_eq!(
            unitfp8_cuda_linear_forward(32, 256, 128, 0.0, x, w, y, UNITFP8_BF16, null_mut()),
            device_status()
        );
        assert_eq!(
            unitfp8_cuda_linear_forward(32, 256, 128, 0.0, x, w, y, 17, null_mut()),
            arg_status(UNITFP8_ERROR_INVALID_ARGUMENT)
        );
        assert_eq!(
            unitfp8_cuda_linear_backward_data(
                32,
                256,
                128,
                0.0,
                x,
                w,
                0.0,
                y,
                UNITFP8_F32,
                null_mut()
            ),
            device_status()
        );
        assert_eq!(
            unitfp8_cuda_linear_backward_weight(32, 256, 128, 0.0, x, w, 1.0, y.cast(), null_mut()),
            device_status()
        );
        // Empty products need no device.
        assert_eq!(
            unitfp8_cuda_linear_forward(0, 256, 128, 0.0, x, w, y, UNITFP8_F32, null_mut()),
            arg_status(UNITFP8_OK)
        );
    }
    assert_eq!(
        unitfp8_cuda_set_gemm_kernel(UNITFP8_CUDA_GEMM_AUTO),
        arg_status(UNITFP8_OK)
    );
    assert_eq!(
        unitfp8_cuda_set_gemm_kernel(9),
        arg_status(UNITFP8_ERROR_INVALID_ARGUMENT)
    );
}
