//! C entry points of the casts.

use core::ffi::c_void;

use super::{cast_codes, guard};
use crate::exec::Exec;
use crate::op::{CastOp, CastTransposeOp};

/// Writes `value` to the nullable `amax`.
///
/// # Safety
/// `amax` is null or valid for writing 4 bytes.
unsafe fn store_amax(amax: *mut f32, value: f32) {
    if !amax.is_null() {
        // SAFETY: non-null and writable per the contract; no alignment is assumed.
        unsafe { amax.write_unaligned(value) };
    }
}

/// Casts `n` elements: `dst[i] = round(src[i] * scale)`.
///
/// - `src`: `n` elements of type `src_type` (a `UNITFP8_F32` ... `UNITFP8_E5M2` code).
/// - `dst`: `n` elements of type `dst_type`.
/// - `scale`: multiplier applied in f32 before rounding (1 for muS); must be finite and nonzero
///   (`0 * Inf` would give a NaN whose sign depends on the CPU architecture). The source
///   value widens to f32 exactly, then one f32 multiply, then one rounding to `dst_type`.
/// - `rounding`: a `UNITFP8_ROUND_*` code, applied to FP8, bf16 and f16 destinations; f32
///   destinations are never rounded or clipped (`src * scale` in f32, so decoding keeps +-Inf).
///   Stochastic rounding needs an FP8 destination. `seed` keys it (element `i` uses `(seed, i)`); other modes ignore `seed`.
/// - `amax` (nullable): receives `max |src[i]|` before scaling (NaN when any element is NaN,
///   0 when `n` = 0), written after the cast. It must not overlap `src` or `dst`.
///
/// Aliasing: `dst` may be exactly `src` (same address) when both types have the same size
/// (in-place); any other overlap of `src` and `dst` is `UNITFP8_ERROR_OVERLAP`.
///
/// Errors: `UNITFP8_ERROR_INVALID_ARGUMENT` for an unknown type or rounding code, a non-finite
/// `scale` or a byte size that overflows; `UNITFP8_ERROR_UNSUPPORTED` for stochastic rounding
/// to f32/bf16/f16; `UNITFP8_ERROR_NULL_POINTER` when `n` > 0 and `src` or `dst` is null;
/// `UNITFP8_ERROR_OVERLAP` as above.
///
/// # Safety
/// When `n` > 0, `src` must be readable and `dst` writable for `n` elements of their types, and
/// `amax` null or writable for one `float`.
#[unsafe(no_mangle)]
#[allow(clippy::too_many_arguments)]
pub unsafe extern "C" fn unitfp8_cast(
    src: *const c_void,
    src_type: u32,
    dst: *mut c_void,
    dst_type: u32,
    n: usize,
    scale: f32,
    rounding: u32,
    seed: u64,
    amax: *mut f32,
) -> i32 {
    guard(|| {
        let (src_type, dst_type, params) = cast_codes(src_type, dst_type, scale, rounding, seed)?;
        let op = CastOp::new(
            src as usize,
            src_type,
            dst as usize,
            dst_type,
            n,
            &params,
            amax as usize,
        )?;
        // SAFETY: validated; buffer validity is the caller's contract.
        let value = unsafe { Exec::global().run_cast(&op)? };
        // SAFETY: amax is null or writable (contract) and overlaps no buffer (checked).
        unsafe { store_amax(amax, value) };
        Ok(())
    })
}

/// Casts a `rows x cols` row-major matrix into `dst` (same shape) and/or its transpose
/// `dst_t` (`cols x rows`), in one pass: `dst[r*ld_dst + c] = dst_t[c*ld_dst_t + r] =
/// round(src[r*ld_src + c] * scale)`.
///
/// - Leading dimensions are in elements, the distance between the starts of consecutive rows
///   (of `src`, `dst`, `dst_t`); `ld_src` >= `cols`, `ld_dst` >= `cols` (when `dst` is given),
///   `ld_dst_t` >= `rows` (when `dst_t` is given); the leading dimension of a null output is
///   ignored. A column-major `M x N` matrix is the row-major
///   `N x M` matrix with the same leading dimension, so column-major callers swap `rows` and
///   `cols`.
/// - `dst` and `dst_t` are each nullable (both null computes only `amax`); they share
///   `dst_type`, `scale`, `rounding` and `seed` (as for `unitfp8_cast`). Stochastic rounding
///   keys element `(r, c)` by index `r*cols + c`, so `dst_t` is exactly the transpose of `dst`
///   and equals `unitfp8_cast` of the contiguous matrix with the same seed.
/// - `amax` (nullable): `max |src|` over the matrix before scaling (NaN when any is NaN, 0 for
///   an empty matrix), written after the work; it must not overlap any of the buffers.
///
/// Aliasing: the byte ranges spanned by `src`, `dst` and `dst_t` (from the first element to
/// the last, gaps between rows included) must not overlap each other
/// (`UNITFP8_ERROR_OVERLAP`); there is no in-place mode.
///
/// Errors: `UNITFP8_ERROR_INVALID_ARGUMENT` for an unknown type or rounding code, a non-finite
/// `scale`, a leading dimension below the row length it holds, or a shape whose byte size
/// overflows; `UNITFP8_ERROR_UNSUPPORTED` for stochastic rounding to f32/bf16/f16;
/// `UNITFP8_ERROR_NULL_POINTER` when the matrix is not empty and `src` is null;
/// `UNITFP8_ERROR_OVERLAP` as above. `rows` = 0 or `cols` = 0 is a successful no-op (the
/// leading dimensions are checked first, as for any shape).
///
/// # Safety
/// Each non-null buffer must be valid (readable for `src`, writable for the outputs) for its
/// shape and leading dimension; `amax` null or writable for one `float`.
#[unsafe(no_mangle)]
#[allow(clippy::too_many_arguments)]
pub unsafe extern "C" fn unitfp8_cast_transpose(
    src: *const c_void,
    src_type: u32,
    rows: usize,
    cols: usize,
    ld_src: usize,
    dst: *mut c_void,
    ld_dst: usize,
    dst_t: *mut c_void,
    ld_dst_t: usize,
    dst_type: u32,
    scale: f32,
    rounding: u32,
    seed: u64,
    amax: *mut f32,
) -> i32 {
    guard(|| {
        let (src_type, dst_type, params) = cast_codes(src_type, dst_type, scale, rounding, seed)?;
        let op = CastTransposeOp::new(
            src as usize,
            src_type,
            rows,
            cols,
            ld_src,
            dst as usize,
            ld_dst,
            dst_t as usize,
            ld_dst_t,
            dst_type,
            &params,
            amax as usize,
        )?;
        // SAFETY: validated; buffer validity is the caller's contract.
        let value = unsafe { Exec::global().run_cast_transpose(&op)? };
        // SAFETY: amax is null or writable (contract) and overlaps no buffer (checked).
        unsafe { store_amax(amax, value) };
        Ok(())
    })
}
