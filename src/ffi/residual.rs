//! C entry points of the muS fixed(tau) residual mix.

use core::ffi::c_void;

use super::{guard, mix_codes};
use crate::exec::Exec;
use crate::residual::MixParams;

/// The muS fixed(tau) residual mix: `out[i] = sqrt(1-tau)*x[i] + sqrt(tau)*f[i]` for `n` elements,
/// plus an optional FP8 copy `out_fp8[i] = round(out[i])` of the stored output.
///
/// - `io_type`: the type of `x`, `f` and `out`: `UNITFP8_F32`, `UNITFP8_BF16` or `UNITFP8_F16`
///   (an FP8 `io_type` is `UNITFP8_ERROR_UNSUPPORTED`).
/// - Arithmetic is f32: inputs widen exactly; `a = sqrtf(1-tau)` and `b = sqrtf(tau)` are correctly
///   rounded; `a*x` and `b*f` are each rounded to f32, then added (no FMA); bf16/f16 outputs
///   round to nearest even (overflow to +-Inf).
/// - `tau`: tau in [0, 1]; NaN or out of range is `UNITFP8_ERROR_INVALID_ARGUMENT`.
/// - `out_fp8` (nullable): `n` bytes of type `fp8_type` (`UNITFP8_E4M3` or `UNITFP8_E5M2`,
///   else `UNITFP8_ERROR_INVALID_ARGUMENT` when `out_fp8` is not null), rounded with
///   `rounding` (a `UNITFP8_ROUND_*` code) and `seed` (element `i` keyed by `(seed, i)`); it
///   equals `unitfp8_cast` of `out` with scale 1 bit for bit. `fp8_type` and `rounding` must be
///   known codes even when `out_fp8` is null.
///
/// Aliasing: `out` may be exactly `x` or exactly `f` (same address: in-place update of the
/// residual stream); any other overlap of `out` with `x` or `f` is `UNITFP8_ERROR_OVERLAP`.
/// `x` and `f` may overlap freely (they are only read). `out_fp8` must not overlap any buffer.
///
/// Errors: `UNITFP8_ERROR_INVALID_ARGUMENT`, `UNITFP8_ERROR_UNSUPPORTED`, `UNITFP8_ERROR_OVERLAP`
/// as above; `UNITFP8_ERROR_NULL_POINTER` when `n` > 0 and `x`, `f` or `out` is null.
///
/// # Safety
/// When `n` > 0: `x` and `f` readable and `out` writable for `n` elements of `io_type`;
/// `out_fp8` null or writable for `n` bytes.
#[unsafe(no_mangle)]
#[allow(clippy::too_many_arguments)]
pub unsafe extern "C" fn unitfp8_residual_mix(
    x: *const c_void,
    f: *const c_void,
    out: *mut c_void,
    io_type: u32,
    n: usize,
    tau: f32,
    out_fp8: *mut c_void,
    fp8_type: u32,
    rounding: u32,
    seed: u64,
) -> i32 {
    guard(|| {
        let (io_type, fp8_type, rounding) = mix_codes(io_type, fp8_type, rounding)?;
        let params = MixParams {
            tau,
            rounding,
            seed,
        };
        // SAFETY: buffer validity is the caller's contract; the raw method checks tau, types,
        // null pointers, sizes and overlap before touching the buffers.
        unsafe {
            Exec::global().residual_mix_raw(
                x.cast(),
                f.cast(),
                out.cast(),
                io_type,
                n,
                out_fp8.cast(),
                fp8_type,
                &params,
            )
        }
    })
}

/// Backward of the residual mix, for `n` elements with `g = grad_out`:
/// `grad_x[i] = sqrt(1-tau)*g[i]` (or `grad_x[i] += sqrt(1-tau)*g[i]` when `accumulate_grad_x` is
/// nonzero) and `grad_f[i] = sqrt(tau)*g[i]`, plus an optional FP8 copy
/// `grad_f_fp8[i] = round(grad_f[i])` of the stored `grad_f` (normally E5M2).
///
/// - `io_type`: the type of `grad_out`, `grad_x` and `grad_f`: `UNITFP8_F32`, `UNITFP8_BF16` or
///   `UNITFP8_F16` (FP8 is `UNITFP8_ERROR_UNSUPPORTED`).
/// - Arithmetic is f32 as in `unitfp8_residual_mix`; the accumulation is
///   `f32(grad_x) + (a*g rounded to f32)`, one rounding each, then rounded to `io_type`.
/// - `tau`, `grad_f_fp8`, `fp8_type`, `rounding`, `seed`: as `unitfp8_residual_mix`'s `tau`,
///   `out_fp8`, `fp8_type`, `rounding` and `seed`.
///
/// Aliasing: `grad_x` and `grad_f` may each be exactly `grad_out` (same address) but must not
/// overlap each other; any other overlap with `grad_out` is `UNITFP8_ERROR_OVERLAP`.
/// `grad_f_fp8` must not overlap any buffer.
///
/// Errors: `UNITFP8_ERROR_INVALID_ARGUMENT` (unknown code, bad tau, FP8 copy of a non-FP8 type,
/// size overflow), `UNITFP8_ERROR_UNSUPPORTED` (FP8 `io_type`), `UNITFP8_ERROR_OVERLAP`,
/// `UNITFP8_ERROR_NULL_POINTER` when `n` > 0 and `grad_out`, `grad_x` or `grad_f` is null.
///
/// # Safety
/// When `n` > 0: `grad_out` readable, `grad_x` readable and writable, `grad_f` writable for `n`
/// elements of `io_type`; `grad_f_fp8` null or writable for `n` bytes.
#[unsafe(no_mangle)]
#[allow(clippy::too_many_arguments)]
pub unsafe extern "C" fn unitfp8_residual_mix_backward(
    grad_out: *const c_void,
    grad_x: *mut c_void,
    grad_f: *mut c_void,
    io_type: u32,
    n: usize,
    tau: f32,
    accumulate_grad_x: i32,
    grad_f_fp8: *mut c_void,
    fp8_type: u32,
    rounding: u32,
    seed: u64,
) -> i32 {
    guard(|| {
        let (io_type, fp8_type, rounding) = mix_codes(io_type, fp8_type, rounding)?;
        let params = MixParams {
            tau,
            rounding,
            seed,
        };
        // SAFETY: buffer validity is the caller's contract; the raw method checks tau, types,
        // null pointers, sizes and overlap before touching the buffers.
        unsafe {
            Exec::global().residual_mix_backward_raw(
                grad_out.cast(),
                grad_x.cast(),
                grad_f.cast(),
                io_type,
                n,
                accumulate_grad_x != 0,
                grad_f_fp8.cast(),
                fp8_type,
                &params,
            )
        }
    })
}
