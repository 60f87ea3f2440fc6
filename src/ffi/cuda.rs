//! C entry points of the CUDA back end (`unitfp8_cuda_*`).
//!
//! Every function exists in every build. Without the `cuda` feature each checks its arguments
//! as in a CUDA build and then returns `UNITFP8_ERROR_UNSUPPORTED` (and
//! `unitfp8_cuda_available` says so). With it:
//!
//! - Buffers are device pointers (for example PyTorch's `tensor.data_ptr()`), aligned to their
//!   element size; `amax` is a device pointer to one `float` (4-byte aligned) or null.
//! - `stream` is a `cudaStream_t` / `CUstream` (for example
//!   `torch.cuda.current_stream().cuda_stream`); null is the legacy default stream. Work is
//!   queued on it and the call returns without waiting; outputs (and `amax`) are ready when
//!   the stream reaches that point. The library uses the stream's context, which for
//!   PyTorch, CuPy and CUDA.jl is the device's primary context.
//! - Arguments are checked exactly as the CPU entry point checks them (the same descriptors),
//!   plus alignment and the CUDA GEMM's K-major layouts, before any device work; a failing
//!   call queues nothing. Statuses are the library's one status space (the
//!   `UNITFP8_CUDA_ERROR_*` codes included); `unitfp8_status_string` describes them and
//!   `unitfp8_last_error` gives the details of this thread's last failure.
//! - Casts and mixes are bit-identical to the CPU library on x86-64 (all rounding modes,
//!   stochastic rounding with the same `(seed, index)` bits, NaN payloads).

use core::ffi::{c_char, c_void};

use super::{Failure, cast_codes, guard_any, mix_codes};
use crate::cuda::{self, CudaError, GemmKernel};
use crate::dtype::DType;
use crate::error::{Error, Status};
use crate::op::{LinearLayout, LinearOp, LinearShape, RawGemm, RawMatrix, linear_gemm};
use crate::residual::MixParams;

impl Failure for CudaError {
    fn status(&self) -> Status {
        CudaError::status(self)
    }
    fn detail(&self) -> String {
        self.to_string()
    }
}

/// GEMM kernel choice for `unitfp8_cuda_set_gemm_kernel`: the fastest one that applies.
pub const UNITFP8_CUDA_GEMM_AUTO: u32 = 0;
/// GEMM kernel choice: sm_90a `wgmma` + TMA (compute capability 9.0).
pub const UNITFP8_CUDA_GEMM_WGMMA: u32 = 1;
/// GEMM kernel choice: `mma.sync` FP8 + `cp.async` (compute capability 8.9 and newer).
pub const UNITFP8_CUDA_GEMM_MMA_SYNC: u32 = 2;
/// GEMM kernel choice: the portable fallback (one thread per output element).
pub const UNITFP8_CUDA_GEMM_NAIVE: u32 = 3;

const _: () = {
    assert!(UNITFP8_CUDA_GEMM_AUTO == GemmKernel::Auto as u32);
    assert!(UNITFP8_CUDA_GEMM_WGMMA == GemmKernel::Wgmma as u32);
    assert!(UNITFP8_CUDA_GEMM_MMA_SYNC == GemmKernel::MmaSync as u32);
    assert!(UNITFP8_CUDA_GEMM_NAIVE == GemmKernel::Naive as u32);
};

/// Whether the CUDA back end can run in this process: `UNITFP8_OK`, or why not:
/// `UNITFP8_ERROR_UNSUPPORTED` (built without the `cuda` feature),
/// `UNITFP8_CUDA_ERROR_NO_DRIVER`, `UNITFP8_CUDA_ERROR_NO_DEVICE`,
/// `UNITFP8_CUDA_ERROR_DEVICE_UNSUPPORTED` (compute capability below 8.9) or
/// `UNITFP8_CUDA_ERROR_DRIVER` (the kernels could not be loaded). It checks the device a
/// null-stream call from this thread would use (the current context's, else device 0).
#[unsafe(no_mangle)]
pub extern "C" fn unitfp8_cuda_available() -> i32 {
    guard_any(|| cuda::device_info().map(|_| ()))
}

/// The same as `unitfp8_status_string` (kept for existing callers).
#[unsafe(no_mangle)]
pub extern "C" fn unitfp8_cuda_status_string(status: i32) -> *const c_char {
    super::unitfp8_status_string(status)
}

/// The same as `unitfp8_last_error` (kept for existing callers): the detail of this thread's
/// last failed call, CPU or CUDA, or `""`.
#[unsafe(no_mangle)]
pub extern "C" fn unitfp8_cuda_last_error() -> *const c_char {
    super::last_error()
}

/// Forces the GEMM kernel of later calls, process-wide (`UNITFP8_CUDA_GEMM_*`; `_AUTO`
/// restores the default). A forced kernel the device or the operands' alignment cannot use
/// makes GEMM calls return `UNITFP8_ERROR_UNSUPPORTED`. For tests and benchmarks. Returns
/// `UNITFP8_ERROR_INVALID_ARGUMENT` for an unknown code (in every build), else
/// `UNITFP8_ERROR_UNSUPPORTED` in a build without the `cuda` feature.
#[unsafe(no_mangle)]
pub extern "C" fn unitfp8_cuda_set_gemm_kernel(kernel: u32) -> i32 {
    guard_any(|| -> Result<(), CudaError> {
        let kernel = GemmKernel::from_code(kernel)?;
        cuda::set_gemm_kernel(kernel)
    })
}

/// `unitfp8_cast` on the device: `n` elements of `src` cast into `dst` with `scale`,
/// `rounding` and `seed`; `amax` (nullable device `float*`) receives `max |src|`. Queued on
/// `stream`.
///
/// # Safety
/// Device buffers valid for `n` elements of their types; `amax` null or a device `float`;
/// `stream` null or a valid stream.
#[unsafe(no_mangle)]
#[allow(clippy::too_many_arguments)]
pub unsafe extern "C" fn unitfp8_cuda_cast(
    src: *const c_void,
    src_type: u32,
    dst: *mut c_void,
    dst_type: u32,
    n: usize,
    scale: f32,
    rounding: u32,
    seed: u64,
    amax: *mut f32,
    stream: *mut c_void,
) -> i32 {
    guard_any(|| {
        let (src_type, dst_type, params) = cast_codes(src_type, dst_type, scale, rounding, seed)?;
        // SAFETY: forwarded contract; arguments are validated before any device work.
        unsafe { cuda::cast_raw(src, src_type, dst, dst_type, n, &params, amax, stream) }
    })
}

/// `unitfp8_cast_transpose` on the device (same arguments and checks), queued on `stream`;
/// `amax` is a nullable device `float*`.
///
/// # Safety
/// Each non-null device buffer valid for its shape and leading dimension; `stream` null or
/// valid.
#[unsafe(no_mangle)]
#[allow(clippy::too_many_arguments)]
pub unsafe extern "C" fn unitfp8_cuda_cast_transpose(
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
    stream: *mut c_void,
) -> i32 {
    guard_any(|| {
        let (src_type, dst_type, params) = cast_codes(src_type, dst_type, scale, rounding, seed)?;
        // SAFETY: forwarded contract; arguments are validated before any device work.
        unsafe {
            cuda::cast_transpose_raw(
                src, src_type, rows, cols, ld_src, dst, ld_dst, dst_t, ld_dst_t, dst_type, &params,
                amax, stream,
            )
        }
    })
}

/// `unitfp8_residual_mix` on the device (same arguments and checks), queued on `stream`.
///
/// # Safety
/// Device buffers valid for `n` elements; `stream` null or valid.
#[unsafe(no_mangle)]
#[allow(clippy::too_many_arguments)]
pub unsafe extern "C" fn unitfp8_cuda_residual_mix(
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
    stream: *mut c_void,
) -> i32 {
    guard_any(|| {
        let (io_type, fp8_type, rounding) = mix_codes(io_type, fp8_type, rounding)?;
        let params = MixParams {
            tau,
            rounding,
            seed,
        };
        // SAFETY: forwarded contract; arguments are validated before any device work.
        unsafe { cuda::residual_mix_raw(x, f, out, io_type, n, out_fp8, fp8_type, &params, stream) }
    })
}

/// `unitfp8_residual_mix_backward` on the device (same arguments and checks), queued on
/// `stream`.
///
/// # Safety
/// Device buffers valid for `n` elements; `stream` null or valid.
#[unsafe(no_mangle)]
#[allow(clippy::too_many_arguments)]
pub unsafe extern "C" fn unitfp8_cuda_residual_mix_backward(
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
    stream: *mut c_void,
) -> i32 {
    guard_any(|| {
        let (io_type, fp8_type, rounding) = mix_codes(io_type, fp8_type, rounding)?;
        let params = MixParams {
            tau,
            rounding,
            seed,
        };
        // SAFETY: forwarded contract; arguments are validated before any device work.
        unsafe {
            cuda::residual_mix_backward_raw(
                grad_out,
                grad_x,
                grad_f,
                io_type,
                n,
                accumulate_grad_x != 0,
                grad_f_fp8,
                fp8_type,
                &params,
                stream,
            )
        }
    })
}

/// `unitfp8_gemm` on the device: `C <- alpha*A*B + beta*C` with the CPU GEMM's arguments
/// (element `(i, j)` at `ptr + i*row_stride + j*col_stride` elements), queued on `stream`.
///
/// Only K-major operands are supported: A (`m x k`) must have `a_col_stride == 1` (row-major)
/// and B (`k x n`) must have `b_row_stride == 1`, i.e. B stored as an `n x k` row-major matrix
/// (a linear layer's weight). C must have one unit stride (row- or column-major). Other
/// layouts return `UNITFP8_ERROR_UNSUPPORTED`: make the K-major copy with
/// `unitfp8_cuda_cast_transpose` (which fuses it with the FP8 cast). The fastest kernels need
/// A and B 16-byte aligned with row strides that are multiples of 16 bytes; other operands use
/// a slow fallback. Results match the CPU GEMM to f32 rounding, not bit for bit.
///
/// # Safety
/// Each device operand valid at every element its shape and strides address; `stream` null or
/// valid.
#[unsafe(no_mangle)]
#[allow(clippy::too_many_arguments)]
pub unsafe extern "C" fn unitfp8_cuda_gemm(
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
    stream: *mut c_void,
) -> i32 {
    guard_any(|| {
        let mat = |arg, ptr: *const c_void, t: u32, rs: isize, cs: isize| -> Result<_, Error> {
            Ok(RawMatrix {
                ptr: ptr.cast(),
                dtype: DType::parse(arg, t)?,
                row_stride: rs,
                col_stride: cs,
            })
        };
        let g = RawGemm {
            m,
            n,
            k,
            alpha,
            a: mat("a_type", a, a_type, a_row_stride, a_col_stride)?,
            b: mat("b_type", b, b_type, b_row_stride, b_col_stride)?,
            beta,
            c: mat("c_type", c.cast_const(), c_type, c_row_stride, c_col_stride)?,
        };
        // SAFETY: forwarded contract; arguments are validated before any device work.
        unsafe { cuda::gemm_raw(&g, stream) }
    })
}

/// One product of the linear layer on the device, with K-major operands.
///
/// # Safety
/// Each device buffer valid for its dense shape; `stream` null or valid.
#[allow(clippy::too_many_arguments)]
unsafe fn linear(
    which: LinearOp,
    s: LinearShape,
    alpha: f32,
    a: *const c_void,
    b: *const c_void,
    beta: f32,
    c: *const c_void,
    c_type: DType,
    stream: *mut c_void,
) -> Result<(), CudaError> {
    let op = linear_gemm(
        which,
        LinearLayout::KMajor,
        s,
        alpha,
        a.cast(),
        b.cast(),
        beta,
        c.cast(),
        c_type,
    )?;
    // SAFETY: forwarded contract.
    unsafe { cuda::run_gemm(op, stream) }
}

/// `unitfp8_linear_forward` on the device: `y[batch, fan_out] = alpha * x * W^T` with
/// `x[batch, fan_in]` and `W[fan_out, fan_in]` dense row-major E4M3 (already K-major), `y`
/// dense row-major of `y_type` (`UNITFP8_F32`, `_BF16`, `_E4M3`, `_E5M2`). `alpha` NaN or
/// <= 0 means `1/sqrt(fan_in)`. Queued on `stream`.
///
/// # Safety
/// Each device buffer valid for its dense shape; `stream` null or valid.
#[unsafe(no_mangle)]
#[allow(clippy::too_many_arguments)]
pub unsafe extern "C" fn unitfp8_cuda_linear_forward(
    batch: usize,
    fan_in: usize,
    fan_out: usize,
    alpha: f32,
    x: *const c_void,
    w: *const c_void,
    y: *mut c_void,
    y_type: u32,
    stream: *mut c_void,
) -> i32 {
    guard_any(|| {
        let yt = DType::parse("y_type", y_type)?;
        let s = LinearShape {
            batch,
            fan_in,
            fan_out,
        };
        // SAFETY: forwarded contract.
        unsafe {
            linear(
                LinearOp::Forward,
                s,
                alpha,
                x,
                w,
                0.0,
                y.cast_const(),
                yt,
                stream,
            )
        }
    })
}

/// Backward data on the device: `dx[batch, fan_in] = alpha * dy * W + beta * dx` with
/// `dy[batch, fan_out]` E5M2 and **`w_t` = W^T, `[fan_in, fan_out]` row-major E4M3** (the
/// K-major operand FP8 tensor cores need; `unitfp8_cuda_cast_transpose` produces W and W^T in
/// one pass). `dx` dense row-major of `dx_type`; `beta = 0` overwrites it without reading it
/// (FP8 `dx` needs `beta = 0`). `alpha` NaN or <= 0 means `1/sqrt(fan_in)`. Queued on
/// `stream`.
///
/// # Safety
/// Each device buffer valid for its dense shape; `stream` null or valid.
#[unsafe(no_mangle)]
#[allow(clippy::too_many_arguments)]
pub unsafe extern "C" fn unitfp8_cuda_linear_backward_data(
    batch: usize,
    fan_in: usize,
    fan_out: usize,
    alpha: f32,
    dy: *const c_void,
    w_t: *const c_void,
    beta: f32,
    dx: *mut c_void,
    dx_type: u32,
    stream: *mut c_void,
) -> i32 {
    guard_any(|| {
        let xt = DType::parse("dx_type", dx_type)?;
        let s = LinearShape {
            batch,
            fan_in,
            fan_out,
        };
        // SAFETY: forwarded contract.
        unsafe {
            linear(
                LinearOp::BackwardData,
                s,
                alpha,
                dy,
                w_t,
                beta,
                dx.cast_const(),
                xt,
                stream,
            )
        }
    })
}

/// Backward weight on the device: `dW[fan_out, fan_in] = alpha * dy^T * x + beta * dW` (f32,
/// dense row-major) with **`dy_t` = dy^T, `[fan_out, batch]` row-major E5M2** and **`x_t` =
/// x^T, `[fan_in, batch]` row-major E4M3** (K-major operands: the reduction runs over
/// `batch`). `beta = 0` overwrites dW; `beta = 1` accumulates. `alpha` NaN or <= 0 means
/// `1/sqrt(fan_in)`. Queued on `stream`.
///
/// # Safety
/// Each device buffer valid for its dense shape; `stream` null or valid.
#[unsafe(no_mangle)]
#[allow(clippy::too_many_arguments)]
pub unsafe extern "C" fn unitfp8_cuda_linear_backward_weight(
    batch: usize,
    fan_in: usize,
    fan_out: usize,
    alpha: f32,
    dy_t: *const c_void,
    x_t: *const c_void,
    beta: f32,
    dw: *mut f32,
    stream: *mut c_void,
) -> i32 {
    guard_any(|| {
        let s = LinearShape {
            batch,
            fan_in,
            fan_out,
        };
        let dw = dw.cast_const().cast();
        // SAFETY: forwarded contract.
        unsafe {
            linear(
                LinearOp::BackwardWeight,
                s,
                alpha,
                dy_t,
                x_t,
                beta,
                dw,
                DType::F32,
                stream,
            )
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use core::ffi::CStr;

    fn text(p: *const c_char) -> &'static str {
        // SAFETY: the status strings are static NUL-terminated strings.
        unsafe { CStr::from_ptr(p) }.to_str().unwrap()
    }

    #[test]
    fn status_strings_cover_cuda_codes() {
        for code in [
            super::super::UNITFP8_CUDA_ERROR_NO_DRIVER,
            super::super::UNITFP8_CUDA_ERROR_NO_DEVICE,
            super::super::UNITFP8_CUDA_ERROR_DEVICE_UNSUPPORTED,
            super::super::UNITFP8_CUDA_ERROR_DRIVER,
        ] {
            assert!(
                text(unitfp8_cuda_status_string(code)).contains("CUDA"),
                "{code}"
            );
            assert_eq!(
                text(unitfp8_cuda_status_string(code)),
                text(super::super::unitfp8_status_string(code))
            );
        }
        assert_eq!(text(unitfp8_cuda_status_string(0)), "ok");
    }

    #[test]
    fn set_gemm_kernel_rejects_unknown_codes_in_every_build() {
        assert_eq!(
            unitfp8_cuda_set_gemm_kernel(4),
            super::super::UNITFP8_ERROR_INVALID_ARGUMENT
        );
        assert!(text(unitfp8_cuda_last_error()).contains("kernel code 4"));
        let ok = unitfp8_cuda_set_gemm_kernel(0);
        if cfg!(feature = "cuda") {
            assert_eq!(ok, super::super::UNITFP8_OK);
        } else {
            assert_eq!(ok, super::super::UNITFP8_ERROR_UNSUPPORTED);
            assert!(text(unitfp8_cuda_last_error()).contains("without the `cuda` feature"));
        }
    }
}
