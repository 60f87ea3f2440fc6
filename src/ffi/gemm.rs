//! C ABI of the GEMM and the unit-scaled linear layer.

use super::guard;
use crate::dtype::DType;
use crate::exec::Exec;
use crate::gemm::{RawGemm, RawMatrix};
use crate::linear::{LinearOp, LinearShape};
use core::ffi::c_void;

/// `C ← α·A·B + β·C` with FP8 A (m×k) and B (k×n) and C in f32, bf16, E4M3 or E5M2.
///
/// Element `(i, j)` of each operand is at `ptr + i·row_stride + j·col_stride` elements (any
/// sign), so row-major, column-major and transposed views need no copies. `a_type`/`b_type`:
/// `UNITFP8_E4M3` or `UNITFP8_E5M2`; `c_type`: `UNITFP8_F32`, `UNITFP8_BF16`, `UNITFP8_E4M3` or
/// `UNITFP8_E5M2` (FP8 C needs `beta == 0`). `beta == 0` overwrites C without reading it;
/// `k == 0` gives `C ← β·C`; `m == 0` or `n == 0` does nothing (null pointers allowed); A and B
/// may be null when `k == 0`. Results are bit-identical for any thread count and back end.
///
/// Returns `UNITFP8_OK`, or `UNITFP8_ERROR_NULL_POINTER`, `_INVALID_ARGUMENT` (bad type code,
/// FP8 C with β ≠ 0, strides whose extent overflows), `_OVERLAP` (C maps two elements to one,
/// or C's byte range meets A's or B's), `_UNSUPPORTED` (non-FP8 A/B, f16 C). C is untouched
/// on error.
///
/// # Safety
/// Each operand must be valid at every element its shape and strides address.
#[unsafe(no_mangle)]
#[allow(clippy::too_many_arguments)]
pub unsafe extern "C" fn unitfp8_gemm(
    m: usize,
    n: usize,
    k: usize,
    alpha: f32,
    a: *const c_void,
    a_type: u32,
    a_row_stride: isize,
    a_col_stride: isize,
    b: *const c_void,
    b_type: u32,
    b_row_stride: isize,
    b_col_stride: isize,
    beta: f32,
    c: *mut c_void,
    c_type: u32,
    c_row_stride: isize,
    c_col_stride: isize,
) -> i32 {
    guard(|| {
        let g = RawGemm {
            m,
            n,
            k,
            alpha,
            a: RawMatrix {
                ptr: a.cast(),
                dtype: DType::parse("a_type", a_type)?,
                row_stride: a_row_stride,
                col_stride: a_col_stride,
            },
            b: RawMatrix {
                ptr: b.cast(),
                dtype: DType::parse("b_type", b_type)?,
                row_stride: b_row_stride,
                col_stride: b_col_stride,
            },
            beta,
            c: RawMatrix {
                ptr: c.cast_const().cast(),
                dtype: DType::parse("c_type", c_type)?,
                row_stride: c_row_stride,
                col_stride: c_col_stride,
            },
        };
        // SAFETY: the caller guarantees the operands are valid for their shapes and strides.
        unsafe { Exec::global().gemm_raw(&g) }
    })
}

/// μS linear forward, PyTorch layout: `y[batch, fan_out] = α·x·Wᵀ` with `x[batch, fan_in]` and
/// `W[fan_out, fan_in]` dense row-major E4M3, `y` dense row-major of `y_type` (`UNITFP8_F32`,
/// `_BF16`, `_E4M3`, `_E5M2`). `alpha` NaN or ≤ 0 means `1/sqrt(fan_in)`. Errors as
/// [`unitfp8_gemm`].
///
/// # Safety
/// Each buffer must be valid for its dense shape.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn unitfp8_linear_forward(
    batch: usize,
    fan_in: usize,
    fan_out: usize,
    alpha: f32,
    x: *const c_void,
    w: *const c_void,
    y: *mut c_void,
    y_type: u32,
) -> i32 {
    guard(|| {
        let s = LinearShape {
            batch,
            fan_in,
            fan_out,
        };
        let t = DType::parse("y_type", y_type)?;
        // SAFETY: forwarded contract.
        unsafe {
            Exec::global().linear_raw(
                LinearOp::Forward,
                s,
                alpha,
                x.cast(),
                w.cast(),
                0.0,
                y.cast(),
                t,
            )
        }
    })
}

/// μS linear backward data: `dx[batch, fan_in] = α·dy·W + β·dx` with `dy[batch, fan_out]`
/// dense row-major E5M2 and `W[fan_out, fan_in]` E4M3; `dx` of `dx_type`. `beta = 0`
/// overwrites dx without reading it; `beta = 1` accumulates (f32/bf16 `dx` only: FP8 `dx`
/// needs `beta = 0`). `alpha` NaN or ≤ 0 means `1/sqrt(fan_in)`. Errors as [`unitfp8_gemm`].
///
/// # Safety
/// Each buffer must be valid for its dense shape.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn unitfp8_linear_backward_data(
    batch: usize,
    fan_in: usize,
    fan_out: usize,
    alpha: f32,
    dy: *const c_void,
    w: *const c_void,
    beta: f32,
    dx: *mut c_void,
    dx_type: u32,
) -> i32 {
    guard(|| {
        let s = LinearShape {
            batch,
            fan_in,
            fan_out,
        };
        let t = DType::parse("dx_type", dx_type)?;
        // SAFETY: forwarded contract.
        unsafe {
            Exec::global().linear_raw(
                LinearOp::BackwardData,
                s,
                alpha,
                dy.cast(),
                w.cast(),
                beta,
                dx.cast(),
                t,
            )
        }
    })
}

/// μS linear backward weight: `dW[fan_out, fan_in] = α·dyᵀ·x + β·dW` (f32, dense row-major)
/// with `dy[batch, fan_out]` E5M2 and `x[batch, fan_in]` E4M3. `beta = 0` overwrites dW
/// without reading it; `beta = 1` accumulates. `alpha` NaN or ≤ 0 means `1/sqrt(fan_in)`.
/// Errors as [`unitfp8_gemm`].
///
/// # Safety
/// Each buffer must be valid for its dense shape.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn unitfp8_linear_backward_weight(
    batch: usize,
    fan_in: usize,
    fan_out: usize,
    alpha: f32,
    dy: *const c_void,
    x: *const c_void,
    beta: f32,
    dw: *mut f32,
) -> i32 {
    guard(|| {
        let s = LinearShape {
            batch,
            fan_in,
            fan_out,
        };
        // SAFETY: forwarded contract.
        unsafe {
            Exec::global().linear_raw(
                LinearOp::BackwardWeight,
                s,
                alpha,
                dy.cast(),
                x.cast(),
                beta,
                dw.cast(),
                DType::F32,
            )
        }
    })
}
