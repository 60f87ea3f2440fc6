//! Every error path of every entry point: the status, and a detail (`unitfp8_last_error()` for
//! the C ABI, `Error::detail` for Rust) that names the argument and the rule. The CUDA entry
//! points check their arguments in every build (before reporting a build without CUDA or a
//! missing device), so their argument errors are tested here on any machine with fake,
//! never-dereferenced device addresses. Outputs are poisoned and must stay untouched.

use core::ffi::{CStr, c_void};
use core::ptr::{null, null_mut};
use unitfp8::ffi::*;
use unitfp8::gemm::{MatMut, MatRef};
use unitfp8::linear::LinearShape;
use unitfp8::{CastParams, E4M3, E5M2, Fp8Out, MixParams, Rounding, Status};

fn last_error() -> String {
    // SAFETY: the library returns a NUL-terminated string valid until this thread's next call.
    unsafe { CStr::from_ptr(unitfp8_last_error()) }
        .to_str()
        .unwrap()
        .to_owned()
}

/// Checks one failing call: its status, and that the detail contains every `needle` (the
/// argument's name and the rule's values). Also checks that a successful call clears it.
#[track_caller]
fn expect(what: &str, status: i32, want: i32, needles: &[&str]) {
    let detail = last_error();
    assert_eq!(status, want, "{what}: status {status}, detail '{detail}'");
    for n in needles {
        assert!(
            detail.contains(n),
            "{what}: detail '{detail}' does not mention '{n}'"
        );
    }
    // Reset: a successful call clears the detail.
    assert_eq!(unitfp8_set_num_threads_checked(), UNITFP8_OK);
    assert_eq!(last_error(), "", "{what}: not cleared by a successful call");
}

/// A successful no-op call through the C ABI (an empty cast).
fn unitfp8_set_num_threads_checked() -> i32 {
    // SAFETY: n = 0 touches no buffer.
    unsafe {
        unitfp8_cast(
            null(),
            UNITFP8_F32,
            null_mut(),
            UNITFP8_E4M3,
            0,
            1.0,
            0,
            0,
            null_mut(),
        )
    }
}

const POISON: u8 = 0xA5;

fn p<T>(v: &[T]) -> *const c_void {
    v.as_ptr().cast()
}
fn pm<T>(v: &mut [T]) -> *mut c_void {
    v.as_mut_ptr().cast()
}

const INV: i32 = UNITFP8_ERROR_INVALID_ARGUMENT;
const NUL: i32 = UNITFP8_ERROR_NULL_POINTER;
const OVL: i32 = UNITFP8_ERROR_OVERLAP;
const UNS: i32 = UNITFP8_ERROR_UNSUPPORTED;
const SAT: u32 = UNITFP8_ROUND_NEAREST_SATURATE;
const SR: u32 = UNITFP8_ROUND_STOCHASTIC_SATURATE;

#[test]
fn cast_errors() {
    let src = vec![1.5f32; 64];
    let mut dst = vec![POISON; 64];
    let mut amax = f32::from_bits(0x7FA5_A5A5);
    let (s, d) = (p(&src), pm(&mut dst));
    let am: *mut f32 = &mut amax;
    // SAFETY: for all calls, valid buffers, or arguments the checks reject before any access.
    unsafe {
        let cast = |src, st, dst, dt, n, scale, r, amax| {
            unitfp8_cast(src, st, dst, dt, n, scale, r, 7, amax)
        };
        let c = |cuda: bool, src, st, dst, dt, n, scale, r, amax: *mut f32| {
            if cuda {
                unitfp8_cuda_cast(src, st, dst, dt, n, scale, r, 7, amax, null_mut())
            } else {
                cast(src, st, dst, dt, n, scale, r, amax)
            }
        };
        for cuda in [false, true] {
            let e = |name: &str| format!("{}{name}", if cuda { "cuda " } else { "" });
            expect(
                &e("src_type"),
                c(cuda, s, 9, d, UNITFP8_E4M3, 64, 1.0, SAT, am),
                INV,
                &["src_type", "got 9"],
            );
            expect(
                &e("dst_type"),
                c(cuda, s, UNITFP8_F32, d, 5, 64, 1.0, SAT, am),
                INV,
                &["dst_type", "got 5"],
            );
            expect(
                &e("rounding"),
                c(cuda, s, UNITFP8_F32, d, UNITFP8_E4M3, 64, 1.0, 3, am),
                INV,
                &["rounding", "got 3"],
            );
            expect(
                &e("scale"),
                c(
                    cuda,
                    s,
                    UNITFP8_F32,
                    d,
                    UNITFP8_E4M3,
                    64,
                    f32::INFINITY,
                    SAT,
                    am,
                ),
                INV,
                &["scale", "finite", "inf"],
            );
            expect(
                &e("scale 0"),
                c(cuda, s, UNITFP8_F32, d, UNITFP8_E4M3, 64, -0.0, SAT, am),
                INV,
                &["scale", "nonzero", "-0"],
            );
            expect(
                &e("sr"),
                c(cuda, s, UNITFP8_F32, d, UNITFP8_BF16, 32, 1.0, SR, am),
                UNS,
                &["stochastic", "dst_type", "bf16"],
            );
            expect(
                &e("src null"),
                c(cuda, null(), UNITFP8_F32, d, UNITFP8_E4M3, 64, 1.0, SAT, am),
                NUL,
                &["src is null"],
            );
            expect(
                &e("dst null"),
                c(
                    cuda,
                    s,
                    UNITFP8_F32,
                    null_mut(),
                    UNITFP8_E4M3,
                    64,
                    1.0,
                    SAT,
                    am,
                ),
                NUL,
                &["dst is null"],
            );
            expect(
                &e("overflow"),
                c(
                    cuda,
                    s,
                    UNITFP8_F32,
                    d,
                    UNITFP8_E4M3,
                    usize::MAX / 2,
                    1.0,
                    SAT,
                    am,
                ),
                INV,
                &["src", "overflow"],
            );
            // dst starts inside src (not in place: different element sizes).
            let inside = (s as *mut u8).add(8).cast();
            expect(
                &e("overlap"),
                c(cuda, s, UNITFP8_F32, inside, UNITFP8_E4M3, 16, 1.0, SAT, am),
                OVL,
                &["src and dst overlap"],
            );
            let in_src = (s as *mut u8).add(4).cast::<f32>();
            expect(
                &e("amax/src"),
                c(cuda, s, UNITFP8_F32, d, UNITFP8_E4M3, 64, 1.0, SAT, in_src),
                OVL,
                &["amax overlaps src"],
            );
            let in_dst = d.cast::<u8>().add(8).cast::<f32>();
            expect(
                &e("amax/dst"),
                c(cuda, s, UNITFP8_F32, d, UNITFP8_E4M3, 64, 1.0, SAT, in_dst),
                OVL,
                &["amax overlaps dst"],
            );
        }
        // CUDA only: device buffers aligned to their element size, amax to 4 bytes.
        let odd = (s as *const u8).add(1).cast();
        expect(
            "cuda src align",
            unitfp8_cuda_cast(
                odd,
                UNITFP8_F32,
                d,
                UNITFP8_E4M3,
                8,
                1.0,
                SAT,
                0,
                null_mut(),
                null_mut(),
            ),
            INV,
            &["src", "aligned to 4"],
        );
        let odd_amax = (am as *mut u8).add(1).cast();
        expect(
            "cuda amax align",
            unitfp8_cuda_cast(
                s,
                UNITFP8_F32,
                d,
                UNITFP8_E4M3,
                0,
                1.0,
                SAT,
                0,
                odd_amax,
                null_mut(),
            ),
            INV,
            &["amax", "aligned to 4"],
        );
    }
    assert!(dst.iter().all(|&b| b == POISON));
    assert_eq!(amax.to_bits(), 0x7FA5_A5A5);
}

#[test]
fn cast_transpose_errors() {
    let src = vec![0.5f32; 8 * 16];
    let mut dst = vec![POISON; 8 * 16];
    let mut dst_t = vec![POISON; 8 * 16];
    let (s, d, t) = (p(&src), pm(&mut dst), pm(&mut dst_t));
    // SAFETY: for all calls, valid buffers, or arguments the checks reject before any access.
    unsafe {
        #[allow(clippy::too_many_arguments)]
        let c =
            |cuda: bool, src, st, rows, cols, lds, dst, ldd, dt_, ldt, dtype, amax: *mut f32| {
                if cuda {
                    unitfp8_cuda_cast_transpose(
                        src,
                        st,
                        rows,
                        cols,
                        lds,
                        dst,
                        ldd,
                        dt_,
                        ldt,
                        dtype,
                        1.0,
                        SAT,
                        0,
                        amax,
                        null_mut(),
                    )
                } else {
                    unitfp8_cast_transpose(
                        src, st, rows, cols, lds, dst, ldd, dt_, ldt, dtype, 1.0, SAT, 0, amax,
                    )
                }
            };
        let e4 = UNITFP8_E4M3;
        let f32t = UNITFP8_F32;
        for cuda in [false, true] {
            expect(
                "ld_src",
                c(cuda, s, f32t, 8, 16, 15, d, 16, t, 8, e4, null_mut()),
                INV,
                &["ld_src (15) must be >= cols (16)"],
            );
            expect(
                "ld_dst",
                c(cuda, s, f32t, 8, 16, 16, d, 12, t, 8, e4, null_mut()),
                INV,
                &["ld_dst (12) must be >= cols (16)"],
            );
            expect(
                "ld_dst_t",
                c(cuda, s, f32t, 8, 16, 16, d, 16, t, 7, e4, null_mut()),
                INV,
                &["ld_dst_t (7) must be >= rows (8)"],
            );
            expect(
                "src_type",
                c(cuda, s, 11, 8, 16, 16, d, 16, t, 8, e4, null_mut()),
                INV,
                &["src_type", "got 11"],
            );
            expect(
                "dst_type",
                c(cuda, s, f32t, 8, 16, 16, d, 16, t, 8, 77, null_mut()),
                INV,
                &["dst_type", "got 77"],
            );
            expect(
                "src null",
                c(cuda, null(), f32t, 8, 16, 16, d, 16, t, 8, e4, null_mut()),
                NUL,
                &["src is null"],
            );
            expect(
                "overflow",
                c(
                    cuda,
                    s,
                    f32t,
                    usize::MAX / 4,
                    16,
                    16,
                    d,
                    16,
                    null_mut(),
                    0,
                    e4,
                    null_mut(),
                ),
                INV,
                &["src", "overflow"],
            );
            let into_src = (s as *mut u8).add(64).cast();
            expect(
                "src/dst",
                c(cuda, s, f32t, 8, 16, 16, into_src, 16, t, 8, e4, null_mut()),
                OVL,
                &["src and dst overlap"],
            );
            expect(
                "src/dst_t",
                c(cuda, s, f32t, 8, 16, 16, d, 16, into_src, 8, e4, null_mut()),
                OVL,
                &["src and dst_t overlap"],
            );
            let into_d = d.cast::<u8>().add(32).cast();
            expect(
                "dst/dst_t",
                c(cuda, s, f32t, 8, 16, 16, d, 16, into_d, 8, e4, null_mut()),
                OVL,
                &["dst and dst_t overlap"],
            );
            let amax_in_t = t.cast::<u8>().add(4).cast();
            expect(
                "amax",
                c(cuda, s, f32t, 8, 16, 16, d, 16, t, 8, e4, amax_in_t),
                OVL,
                &["amax overlaps dst_t"],
            );
        }
        let odd = t.cast::<u8>().add(1).cast();
        expect(
            "cuda align",
            c(
                true,
                s,
                f32t,
                4,
                16,
                16,
                null_mut(),
                0,
                odd,
                4,
                UNITFP8_BF16,
                null_mut(),
            ),
            INV,
            &["dst_t", "aligned to 2"],
        );
    }
    assert!(dst.iter().chain(&dst_t).all(|&b| b == POISON));
}

#[test]
fn residual_mix_errors() {
    let x = vec![1.0f32; 64];
    let f = vec![2.0f32; 64];
    let mut out = vec![0xA5A5_A5A5u32; 80];
    let mut q = vec![POISON; 64];
    let (xp, fp, op, qp) = (p(&x), p(&f), pm(&mut out), pm(&mut q));
    let f32t = UNITFP8_F32;
    let e4 = UNITFP8_E4M3;
    // SAFETY: for all calls, valid buffers, or arguments the checks reject before any access.
    unsafe {
        #[allow(clippy::too_many_arguments)]
        let fwd = |cuda: bool, x, f, out, io, n, tau, q, qt, r| {
            if cuda {
                unitfp8_cuda_residual_mix(x, f, out, io, n, tau, q, qt, r, 0, null_mut())
            } else {
                unitfp8_residual_mix(x, f, out, io, n, tau, q, qt, r, 0)
            }
        };
        for cuda in [false, true] {
            expect(
                "tau",
                fwd(cuda, xp, fp, op, f32t, 64, 1.5, qp, e4, SAT),
                INV,
                &["tau must be in [0, 1], got 1.5"],
            );
            expect(
                "tau nan",
                fwd(cuda, xp, fp, op, f32t, 64, f32::NAN, qp, e4, SAT),
                INV,
                &["tau", "NaN"],
            );
            expect(
                "io_type",
                fwd(cuda, xp, fp, op, e4, 64, 0.5, qp, e4, SAT),
                UNS,
                &["io_type", "e4m3"],
            );
            expect(
                "io_type code",
                fwd(cuda, xp, fp, op, 8, 64, 0.5, qp, e4, SAT),
                INV,
                &["io_type", "got 8"],
            );
            expect(
                "fp8_type",
                fwd(cuda, xp, fp, op, f32t, 64, 0.5, qp, UNITFP8_BF16, SAT),
                INV,
                &["fp8_type", "out_fp8", "bf16"],
            );
            expect(
                "fp8_type code",
                fwd(cuda, xp, fp, op, f32t, 64, 0.5, null_mut(), 6, SAT),
                INV,
                &["fp8_type", "got 6"],
            );
            expect(
                "rounding",
                fwd(cuda, xp, fp, op, f32t, 64, 0.5, qp, e4, 4),
                INV,
                &["rounding", "got 4"],
            );
            expect(
                "x null",
                fwd(cuda, null(), fp, op, f32t, 64, 0.5, qp, e4, SAT),
                NUL,
                &["x is null"],
            );
            expect(
                "f null",
                fwd(cuda, xp, null(), op, f32t, 64, 0.5, qp, e4, SAT),
                NUL,
                &["f is null"],
            );
            expect(
                "out null",
                fwd(cuda, xp, fp, null_mut(), f32t, 64, 0.5, qp, e4, SAT),
                NUL,
                &["out is null"],
            );
            expect(
                "overflow",
                fwd(cuda, xp, fp, op, f32t, usize::MAX / 2, 0.5, qp, e4, SAT),
                INV,
                &["overflow"],
            );
            let shifted = op.cast::<f32>().add(4).cast();
            // out partially over x (x = out's buffer shifted).
            expect(
                "out/x",
                fwd(cuda, op, fp, shifted, f32t, 64, 0.5, qp, e4, SAT),
                OVL,
                &["out and x overlap"],
            );
            expect(
                "out/f",
                fwd(cuda, xp, op, shifted, f32t, 64, 0.5, qp, e4, SAT),
                OVL,
                &["out and f overlap"],
            );
            let q_in_out = op.cast::<u8>().add(8).cast();
            expect(
                "q/out",
                fwd(cuda, xp, fp, op, f32t, 64, 0.5, q_in_out, e4, SAT),
                OVL,
                &["out_fp8 and out overlap"],
            );
            let q_in_x = (xp as *mut u8).add(8).cast();
            expect(
                "q/x",
                fwd(cuda, xp, fp, op, f32t, 64, 0.5, q_in_x, e4, SAT),
                OVL,
                &["out_fp8 and x overlap"],
            );
        }
        let odd = op.cast::<u8>().add(2).cast();
        expect(
            "cuda align",
            fwd(true, xp, fp, odd, f32t, 16, 0.5, null_mut(), e4, SAT),
            INV,
            &["out", "aligned to 4"],
        );

        #[allow(clippy::too_many_arguments)]
        let bwd = |cuda: bool, g, gx, gf, io, n, tau, q, qt| {
            if cuda {
                unitfp8_cuda_residual_mix_backward(
                    g,
                    gx,
                    gf,
                    io,
                    n,
                    tau,
                    1,
                    q,
                    qt,
                    SAT,
                    0,
                    null_mut(),
                )
            } else {
                unitfp8_residual_mix_backward(g, gx, gf, io, n, tau, 1, q, qt, SAT, 0)
            }
        };
        let gx = op;
        let gf = op.cast::<f32>().add(64).cast::<c_void>();
        let mut gf_store = vec![0f32; 64];
        let gf2 = pm(&mut gf_store);
        let _ = gf;
        for cuda in [false, true] {
            expect(
                "bwd tau",
                bwd(cuda, xp, gx, gf2, f32t, 64, -0.25, qp, UNITFP8_E5M2),
                INV,
                &["tau must be in [0, 1], got -0.25"],
            );
            expect(
                "bwd io_type",
                bwd(cuda, xp, gx, gf2, UNITFP8_E5M2, 64, 0.5, qp, UNITFP8_E5M2),
                UNS,
                &["io_type", "e5m2"],
            );
            expect(
                "bwd fp8_type",
                bwd(cuda, xp, gx, gf2, f32t, 64, 0.5, qp, UNITFP8_F16),
                INV,
                &["fp8_type", "grad_f_fp8", "f16"],
            );
            expect(
                "bwd grad_out null",
                bwd(cuda, null(), gx, gf2, f32t, 64, 0.5, qp, UNITFP8_E5M2),
                NUL,
                &["grad_out is null"],
            );
            expect(
                "bwd grad_x null",
                bwd(cuda, xp, null_mut(), gf2, f32t, 64, 0.5, qp, UNITFP8_E5M2),
                NUL,
                &["grad_x is null"],
            );
            expect(
                "bwd grad_f null",
                bwd(cuda, xp, gx, null_mut(), f32t, 64, 0.5, qp, UNITFP8_E5M2),
                NUL,
                &["grad_f is null"],
            );
            let gx_shift = gx.cast::<f32>().add(3).cast();
            expect(
                "bwd grad_x/grad_out",
                bwd(
                    cuda,
                    p(&out),
                    gx_shift,
                    gf2,
                    f32t,
                    64,
                    0.5,
                    qp,
                    UNITFP8_E5M2,
                ),
                OVL,
                &["grad_x and grad_out overlap"],
            );
            expect(
                "bwd grad_f/grad_out",
                bwd(
                    cuda,
                    p(&out),
                    gf2,
                    gx_shift,
                    f32t,
                    64,
                    0.5,
                    qp,
                    UNITFP8_E5M2,
                ),
                OVL,
                &["grad_f and grad_out overlap"],
            );
            expect(
                "bwd grad_x/grad_f",
                bwd(cuda, xp, gx, gx_shift, f32t, 64, 0.5, qp, UNITFP8_E5M2),
                OVL,
                &["grad_x and grad_f overlap"],
            );
            let q_in_gf = gf2.cast::<u8>().add(4).cast();
            expect(
                "bwd q/grad_f",
                bwd(cuda, xp, gx, gf2, f32t, 64, 0.5, q_in_gf, UNITFP8_E5M2),
                OVL,
                &["grad_f_fp8 and grad_f overlap"],
            );
        }
    }
    assert!(out.iter().all(|&v| v == 0xA5A5_A5A5));
    assert!(q.iter().all(|&b| b == POISON));
}

#[test]
fn gemm_and_linear_errors() {
    let (m, n, k) = (4usize, 6usize, 8usize);
    let a = vec![0x38u8; m * k];
    let b = vec![0x38u8; k * n];
    let mut c = vec![0xA5A5_A5A5u32; m * n + 16];
    let (ap, bp, cp) = (p(&a), p(&b), pm(&mut c));
    let (e4, f32t) = (UNITFP8_E4M3, UNITFP8_F32);
    let (ki, ni) = (k as isize, n as isize);
    // SAFETY: for all calls, valid buffers, or arguments the checks reject before any access.
    unsafe {
        // A row-major m×k, B as n×k row-major (K-major, so CUDA accepts it), C row-major.
        #[allow(clippy::too_many_arguments)]
        let g = |cuda: bool, a, at, ars, acs, b, bt, brs, bcs, beta, c, ct, crs, ccs| {
            if cuda {
                unitfp8_cuda_gemm(
                    m,
                    n,
                    k,
                    1.0,
                    a,
                    at,
                    ars,
                    acs,
                    b,
                    bt,
                    brs,
                    bcs,
                    beta,
                    c,
                    ct,
                    crs,
                    ccs,
                    null_mut(),
                )
            } else {
                unitfp8_gemm(
                    m, n, k, 1.0, a, at, ars, acs, b, bt, brs, bcs, beta, c, ct, crs, ccs,
                )
            }
        };
        for cuda in [false, true] {
            expect(
                "a_type code",
                g(cuda, ap, 12, ki, 1, bp, e4, 1, ki, 0.0, cp, f32t, ni, 1),
                INV,
                &["a_type", "got 12"],
            );
            expect(
                "c_type code",
                g(cuda, ap, e4, ki, 1, bp, e4, 1, ki, 0.0, cp, 13, ni, 1),
                INV,
                &["c_type", "got 13"],
            );
            expect(
                "a type",
                g(
                    cuda,
                    ap,
                    UNITFP8_BF16,
                    ki,
                    1,
                    bp,
                    e4,
                    1,
                    ki,
                    0.0,
                    cp,
                    f32t,
                    ni,
                    1,
                ),
                UNS,
                &["type of a", "bf16"],
            );
            expect(
                "b type",
                g(cuda, ap, e4, ki, 1, bp, f32t, 1, ki, 0.0, cp, f32t, ni, 1),
                UNS,
                &["type of b", "f32"],
            );
            expect(
                "c type",
                g(
                    cuda,
                    ap,
                    e4,
                    ki,
                    1,
                    bp,
                    e4,
                    1,
                    ki,
                    0.0,
                    cp,
                    UNITFP8_F16,
                    ni,
                    1,
                ),
                UNS,
                &["type of c", "f16"],
            );
            expect(
                "beta",
                g(cuda, ap, e4, ki, 1, bp, e4, 1, ki, 0.5, cp, e4, ni, 1),
                INV,
                &["beta must be 0 when c is e4m3, got 0.5"],
            );
            expect(
                "c null",
                g(
                    cuda,
                    ap,
                    e4,
                    ki,
                    1,
                    bp,
                    e4,
                    1,
                    ki,
                    0.0,
                    null_mut(),
                    f32t,
                    ni,
                    1,
                ),
                NUL,
                &["c is null"],
            );
            expect(
                "a null",
                g(cuda, null(), e4, ki, 1, bp, e4, 1, ki, 0.0, cp, f32t, ni, 1),
                NUL,
                &["a is null"],
            );
            expect(
                "b null",
                g(cuda, ap, e4, ki, 1, null(), e4, 1, ki, 0.0, cp, f32t, ni, 1),
                NUL,
                &["b is null"],
            );
            expect(
                "c self",
                g(cuda, ap, e4, ki, 1, bp, e4, 1, ki, 0.0, cp, f32t, 2, 1),
                OVL,
                &["c maps two elements to one", "row_stride 2"],
            );
            expect(
                "c extent",
                g(
                    cuda,
                    ap,
                    e4,
                    ki,
                    1,
                    bp,
                    e4,
                    1,
                    ki,
                    0.0,
                    cp,
                    f32t,
                    isize::MAX / 2,
                    1,
                ),
                INV,
                &["c: strides", "address space"],
            );
            let c_on_a = (ap as *mut u8).add(4).cast();
            expect(
                "a/c",
                g(cuda, ap, e4, ki, 1, bp, e4, 1, ki, 0.0, c_on_a, f32t, ni, 1),
                OVL,
                &["a and c overlap"],
            );
            let c_on_b = (bp as *mut u8).add(4).cast();
            expect(
                "b/c",
                g(cuda, ap, e4, ki, 1, bp, e4, 1, ki, 0.0, c_on_b, f32t, ni, 1),
                OVL,
                &["b and c overlap"],
            );
        }
        // CUDA only: K-major operands, C with a unit stride, aligned C.
        expect(
            "cuda a layout",
            g(
                true, ap, e4, 1, m as isize, bp, e4, 1, ki, 0.0, cp, f32t, ni, 1,
            ),
            UNS,
            &["a must be K-major"],
        );
        expect(
            "cuda b layout",
            g(true, ap, e4, ki, 1, bp, e4, ni, 1, 0.0, cp, f32t, ni, 1),
            UNS,
            &["b must be K-major"],
        );
        expect(
            "cuda c layout",
            g(true, ap, e4, ki, 1, bp, e4, 1, ki, 0.0, cp, f32t, 2 * ni, 2),
            UNS,
            &["c must be row- or column-major"],
        );
        let c_odd = cp.cast::<u8>().add(2).cast();
        expect(
            "cuda c align",
            g(true, ap, e4, ki, 1, bp, e4, 1, ki, 0.0, c_odd, f32t, ni, 1),
            INV,
            &["c", "aligned to 4"],
        );
        expect(
            "cuda kernel code",
            unitfp8_cuda_set_gemm_kernel(4),
            INV,
            &["kernel code 4"],
        );

        // The linear layer names its own operands.
        let (bt, fi, fo) = (m, k, n);
        for cuda in [false, true] {
            let fwd = |x, w, y, yt| {
                if cuda {
                    unitfp8_cuda_linear_forward(bt, fi, fo, 0.0, x, w, y, yt, null_mut())
                } else {
                    unitfp8_linear_forward(bt, fi, fo, 0.0, x, w, y, yt)
                }
            };
            expect(
                "linear y_type",
                fwd(ap, bp, cp, 9),
                INV,
                &["y_type", "got 9"],
            );
            expect(
                "linear y f16",
                fwd(ap, bp, cp, UNITFP8_F16),
                UNS,
                &["type of y", "f16"],
            );
            expect(
                "linear x null",
                fwd(null(), bp, cp, f32t),
                NUL,
                &["x is null"],
            );
            expect(
                "linear w null",
                fwd(ap, null(), cp, f32t),
                NUL,
                &["w is null"],
            );
            expect(
                "linear y null",
                fwd(ap, bp, null_mut(), f32t),
                NUL,
                &["y is null"],
            );
            let y_on_x = (ap as *mut u8).add(1).cast();
            expect(
                "linear x/y",
                fwd(ap, bp, y_on_x, f32t),
                OVL,
                &["x and y overlap"],
            );
            let huge = if cuda {
                unitfp8_cuda_linear_forward(usize::MAX / 2, 4, 4, 0.0, ap, bp, cp, f32t, null_mut())
            } else {
                unitfp8_linear_forward(usize::MAX / 2, 4, 4, 0.0, ap, bp, cp, f32t)
            };
            expect(
                "linear overflow",
                huge,
                INV,
                &["batch x fan_in", "overflows"],
            );
            let bwd = |dy, w, beta, dx, dxt| {
                if cuda {
                    unitfp8_cuda_linear_backward_data(
                        bt,
                        fi,
                        fo,
                        0.0,
                        dy,
                        w,
                        beta,
                        dx,
                        dxt,
                        null_mut(),
                    )
                } else {
                    unitfp8_linear_backward_data(bt, fi, fo, 0.0, dy, w, beta, dx, dxt)
                }
            };
            let w_name = if cuda { "w_t is null" } else { "w is null" };
            expect(
                "bwd data dx_type",
                bwd(ap, bp, 0.0, cp, 99),
                INV,
                &["dx_type", "got 99"],
            );
            expect(
                "bwd data beta",
                bwd(ap, bp, 1.0, cp, UNITFP8_E5M2),
                INV,
                &["beta must be 0 when dx is e5m2, got 1"],
            );
            expect(
                "bwd data dy null",
                bwd(null(), bp, 0.0, cp, f32t),
                NUL,
                &["dy is null"],
            );
            expect(
                "bwd data w null",
                bwd(ap, null(), 0.0, cp, f32t),
                NUL,
                &[w_name],
            );
            let bww = |dy, x, dw: *mut f32| {
                if cuda {
                    unitfp8_cuda_linear_backward_weight(bt, fi, fo, 0.0, dy, x, 1.0, dw, null_mut())
                } else {
                    unitfp8_linear_backward_weight(bt, fi, fo, 0.0, dy, x, 1.0, dw)
                }
            };
            let (dy_name, x_name) = if cuda {
                ("dy_t is null", "x_t is null")
            } else {
                ("dy is null", "x is null")
            };
            expect(
                "bwd weight dy null",
                bww(null(), bp, cp.cast()),
                NUL,
                &[dy_name],
            );
            expect(
                "bwd weight x null",
                bww(ap, null(), cp.cast()),
                NUL,
                &[x_name],
            );
            expect(
                "bwd weight dw null",
                bww(ap, bp, null_mut()),
                NUL,
                &["dw is null"],
            );
        }
    }
    assert!(c.iter().all(|&v| v == 0xA5A5_A5A5));
}

/// The Rust API reports the same details through `Error`.
#[test]
fn rust_api_errors() {
    let detail = |e: unitfp8::Error| e.detail().to_string();
    let src = [1.0f32; 10];
    let mut dst = [E4M3::ZERO; 9];
    let e = unitfp8::cast(&src[..], &mut dst[..], &CastParams::default()).unwrap_err();
    assert_eq!(e.status(), Status::InvalidArgument);
    assert_eq!(detail(e), "dst has 9 elements, src has 10");
    assert_eq!(
        e.to_string(),
        "invalid argument: dst has 9 elements, src has 10"
    );

    let mut dst = [half::bf16::ZERO; 10];
    let p = CastParams {
        rounding: Rounding::StochasticSaturate,
        ..CastParams::default()
    };
    let e = unitfp8::cast(&src[..], &mut dst[..], &p).unwrap_err();
    assert_eq!(e.status(), Status::Unsupported);
    assert!(detail(e).contains("dst_type"));

    let mut t = [E4M3::ZERO; 8];
    let e = unitfp8::cast_transpose(
        &src[..],
        2,
        4,
        4,
        None,
        0,
        Some(&mut t[..]),
        1,
        &CastParams::default(),
    )
    .unwrap_err();
    assert_eq!(detail(e), "ld_dst_t (1) must be >= rows (2)");
    let e = unitfp8::cast_transpose(
        &src[..],
        3,
        4,
        4,
        None,
        0,
        Some(&mut t[..]),
        3,
        &CastParams::default(),
    )
    .unwrap_err();
    assert_eq!(detail(e), "src has 10 elements, its shape needs 12");

    let mut x = [1.0f32; 10];
    let f = [1.0f32; 11];
    let e = unitfp8::residual_mix_inplace(&mut x[..], &f[..], Fp8Out::None, &MixParams::new(0.5))
        .unwrap_err();
    assert_eq!(detail(e), "f has 11 elements, x has 10");
    let e = unitfp8::residual_mix_inplace(&mut x[..], &f[..10], Fp8Out::None, &MixParams::new(2.0))
        .unwrap_err();
    assert_eq!(detail(e), "tau must be in [0, 1], got 2");
    let mut q = [E5M2::ZERO; 10];
    let (mut gx, mut gf) = (vec![0f32; 10], vec![0f32; 9]);
    let e = unitfp8::residual_mix_backward(
        &x[..],
        &mut gx[..],
        &mut gf[..],
        false,
        Fp8Out::E5M2(&mut q[..]),
        &MixParams::new(0.5),
    )
    .unwrap_err();
    assert_eq!(detail(e), "grad_f has 9 elements, grad_out has 10");

    let a = [E4M3::ONE; 12];
    let mut c = [0f32; 12];
    let e = MatRef::row_major(&a[..], 4, 4).unwrap_err();
    assert!(detail(e).contains("reaches outside its 12 elements"));
    let e = unitfp8::gemm::gemm(
        1.0,
        MatRef::row_major(&a[..], 3, 4).unwrap(),
        MatRef::row_major(&a[..], 3, 4).unwrap(),
        0.0,
        MatMut::row_major(&mut c[..], 3, 4).unwrap(),
    )
    .unwrap_err();
    assert_eq!(e.status(), Status::InvalidArgument);
    assert_eq!(
        detail(e),
        "a has 4 columns, b has 3 rows (a is m x k, b is k x n)"
    );

    let s = LinearShape {
        batch: 2,
        fan_in: 3,
        fan_out: 4,
    };
    let (x8, w8) = (vec![E4M3::ONE; 6], vec![E4M3::ONE; 11]);
    let mut y = [0f32; 8];
    let e = unitfp8::linear::linear_forward(s, 0.0, &x8[..], &w8[..], &mut y[..]).unwrap_err();
    assert_eq!(detail(e), "w has 11 elements, its shape is 4 x 3");
}

/// Every status has a description, in one space; unknown codes are said to be unknown.
#[test]
fn status_strings() {
    let text = |c: i32| {
        // SAFETY: static NUL-terminated strings.
        unsafe { CStr::from_ptr(unitfp8_status_string(c)) }
            .to_str()
            .unwrap()
    };
    for s in Status::ALL {
        assert_eq!(text(s.code()), s.message());
        assert_ne!(text(s.code()), "unknown status");
    }
    for c in [6, 9, 14, -1] {
        assert_eq!(text(c), "unknown status");
    }
}
