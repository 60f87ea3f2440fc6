//! C entry points of the CUDA back end (`unitfp8_cuda_*`).
//!
//! Every function exists in every build. Without the `cuda` feature each returns
//! `UNITFP8_ERROR_UNSUPPORTED` (and `unitfp8_cuda_available` says so). With it:
//!
//! - Buffers are device pointers (for example PyTorch's `tensor.data_ptr()`), aligned to their
//!   element size; `amax` is a device pointer to one `float` (4-byte aligned) or null.
//! - `stream` is a `cudaStream_t` / `CUstream` (for example
//!   `torch.cuda.current_stream().cuda_stream`); null is the legacy default stream. Work is
//!   queued on it and the call returns without waiting; outputs (and `amax`) are ready when
//!   the stream reaches that point. The library uses the stream's context, which for
//!   PyTorch, CuPy and CUDA.jl is the device's primary context.
//! - Arguments are checked exactly as the CPU entry point checks them, before any device work;
//!   a failing call queues nothing. Status codes are the CPU's plus the `UNITFP8_CUDA_ERROR_*`
//!   codes below; `unitfp8_cuda_status_string` describes all of them and
//!   `unitfp8_cuda_last_error` gives the details of this thread's last failure.
//! - Casts and mixes are bit-identical to the CPU library on x86-64 (all rounding modes,
//!   stochastic rounding with the same `(seed, index)` bits, NaN payloads).

use core::ffi::{CStr, c_char, c_void};
use std::cell::RefCell;
use std::ffi::CString;

use super::{cast_codes, mix_codes};
use crate::cuda::{self, CudaError, CudaResult, DeviceMatrix, GemmKernel};
use crate::dtype::DType;
use crate::error::Error;
use crate::residual::MixParams;

/// CUDA status: the CUDA driver library (`libcuda`) could not be loaded (no NVIDIA driver).
pub const UNITFP8_CUDA_ERROR_NO_DRIVER: i32 = 10;
/// CUDA status: the driver reports no CUDA device.
pub const UNITFP8_CUDA_ERROR_NO_DEVICE: i32 = 11;
/// CUDA status: the device's compute capability is below 8.9 (no FP8 tensor cores).
pub const UNITFP8_CUDA_ERROR_DEVICE_UNSUPPORTED: i32 = 12;
/// CUDA status: a CUDA driver call failed (invalid stream, launch failure, or an error left by
/// earlier asynchronous work); `unitfp8_cuda_last_error` names the call and the error.
pub const UNITFP8_CUDA_ERROR_DRIVER: i32 = 13;

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

thread_local! {
    static LAST_ERROR: RefCell<CString> = RefCell::new(CString::default());
}

fn status_of(e: &CudaError) -> i32 {
    match e {
        CudaError::Api(e) => e.status(),
        CudaError::NoDriver => UNITFP8_CUDA_ERROR_NO_DRIVER,
        CudaError::NoDevice => UNITFP8_CUDA_ERROR_NO_DEVICE,
        CudaError::UnsupportedDevice(..) => UNITFP8_CUDA_ERROR_DEVICE_UNSUPPORTED,
        CudaError::Driver(_) => UNITFP8_CUDA_ERROR_DRIVER,
    }
}

/// Runs `body`, records the error text for `unitfp8_cuda_last_error`, and maps the result to a
/// status (a panic to `UNITFP8_ERROR_INTERNAL`).
/// Without the `cuda` feature nothing is checked: every call is `UNITFP8_ERROR_UNSUPPORTED`.
fn cuda_guard(body: impl FnOnce() -> CudaResult<()>) -> i32 {
    let run = || {
        if cfg!(feature = "cuda") {
            body()
        } else {
            Err(CudaError::Api(Error::Unsupported))
        }
    };
    let (status, text) = match std::panic::catch_unwind(std::panic::AssertUnwindSafe(run)) {
        Ok(Ok(())) => (super::UNITFP8_OK, String::new()),
        Ok(Err(e)) if !cfg!(feature = "cuda") => (
            status_of(&e),
            "unitfp8 was built without the `cuda` feature".to_string(),
        ),
        Ok(Err(e)) => (status_of(&e), e.to_string()),
        Err(_) => (
            super::UNITFP8_ERROR_INTERNAL,
            "internal error (caught panic)".to_string(),
        ),
    };
    if status != super::UNITFP8_OK {
        let text = CString::new(text.replace('\0', " ")).unwrap_or_default();
        let _ = LAST_ERROR.try_with(|l| *l.borrow_mut() = text);
    }
    status
}

/// Whether the CUDA back end can run in this process: `UNITFP8_OK`, or why not:
/// `UNITFP8_ERROR_UNSUPPORTED` (built without the `cuda` feature),
/// `UNITFP8_CUDA_ERROR_NO_DRIVER`, `UNITFP8_CUDA_ERROR_NO_DEVICE`,
/// `UNITFP8_CUDA_ERROR_DEVICE_UNSUPPORTED` (compute capability below 8.9) or
/// `UNITFP8_CUDA_ERROR_DRIVER` (the kernels could not be loaded). It checks the device a
/// null-stream call from this thread would use (the current context's, else device 0).
#[unsafe(no_mangle)]
pub extern "C" fn unitfp8_cuda_available() -> i32 {
    cuda_guard(|| cuda::device_info().map(|_| ()))
}

/// A static English description of any status code this library returns, the
/// `UNITFP8_CUDA_ERROR_*` codes included. Never null; do not free it.
#[unsafe(no_mangle)]
pub extern "C" fn unitfp8_cuda_status_string(status: i32) -> *const c_char {
    let s: &'static CStr = match status {
        UNITFP8_CUDA_ERROR_NO_DRIVER => c"no CUDA driver (libcuda could not be loaded)",
        UNITFP8_CUDA_ERROR_NO_DEVICE => c"no CUDA device",
        UNITFP8_CUDA_ERROR_DEVICE_UNSUPPORTED => {
            c"CUDA device unsupported (compute capability 8.9 or newer is needed)"
        }
        UNITFP8_CUDA_ERROR_DRIVER => c"CUDA driver error (see unitfp8_cuda_last_error)",
        _ => return super::unitfp8_status_string(status),
    };
    s.as_ptr()
}

/// Details of the last failed `unitfp8_cuda_*` call on this thread (for example the driver
/// call and CUDA error name), or `""`. Valid until the next failing call on this thread; do
/// not free it.
#[unsafe(no_mangle)]
pub extern "C" fn unitfp8_cuda_last_error() -> *const c_char {
    LAST_ERROR
        .try_with(|l| l.borrow().as_ptr())
        .unwrap_or(c"".as_ptr())
}

/// Forces the GEMM kernel of later calls, process-wide (`UNITFP8_CUDA_GEMM_*`; `_AUTO`
/// restores the default). A forced kernel the device or the operands' alignment cannot use
/// makes GEMM calls return `UNITFP8_ERROR_UNSUPPORTED`. For tests and benchmarks. Returns
/// `UNITFP8_ERROR_INVALID_ARGUMENT` for an unknown code.
#[unsafe(no_mangle)]
pub extern "C" fn unitfp8_cuda_set_gemm_kernel(kernel: u32) -> i32 {
    cuda_guard(|| {
        cuda::set_gemm_kernel(GemmKernel::from_code(kernel)?);
        Ok(())
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
    cuda_guard(|| {
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
    cuda_guard(|| {
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
    cuda_guard(|| {
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
    cuda_guard(|| {
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
    cuda_guard(|| {
        let mat = |ptr: *const c_void, t: u32, rs: isize, cs: isize| -> Result<_, Error> {
            Ok(DeviceMatrix {
                ptr,
                dtype: DType::from_code(t)?,
                row_stride: rs,
                col_stride: cs,
            })
        };
        let a = mat(a, a_type, a_row_stride, a_col_stride)?;
        let b = mat(b, b_type, b_row_stride, b_col_stride)?;
        let c = mat(c.cast_const(), c_type, c_row_stride, c_col_stride)?;
        // SAFETY: forwarded contract; arguments are validated before any device work.
        unsafe { cuda::gemm_raw(m, n, k, alpha, a, b, beta, c, stream) }
    })
}

/// The muS default: `alpha` itself, or `1/sqrt(fan_in)` when `alpha` is NaN or <= 0 (as the CPU
/// linear layer).
fn linear_alpha(alpha: f32, fan_in: usize) -> f32 {
    if alpha.is_nan() || alpha <= 0.0 {
        1.0 / libm::sqrtf(fan_in as f32)
    } else {
        alpha
    }
}

fn dense(ptr: *const c_void, dtype: DType, cols: usize) -> Result<DeviceMatrix, Error> {
    Ok(DeviceMatrix {
        ptr,
        dtype,
        row_stride: isize::try_from(cols).map_err(|_| Error::InvalidArgument)?,
        col_stride: 1,
    })
}

fn transposed(ptr: *const c_void, dtype: DType, rows: usize) -> Result<DeviceMatrix, Error> {
    Ok(DeviceMatrix {
        ptr,
        dtype,
        row_stride: 1,
        col_stride: isize::try_from(rows).map_err(|_| Error::InvalidArgument)?,
    })
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
    cuda_guard(|| {
        let yt = DType::from_code(y_type)?;
        let a = dense(x, DType::E4M3, fan_in)?;
        let b = transposed(w, DType::E4M3, fan_in)?;
        let c = dense(y.cast_const(), yt, fan_out)?;
        let alpha = linear_alpha(alpha, fan_in);
        // SAFETY: forwarded contract.
        unsafe { cuda::gemm_raw(batch, fan_out, fan_in, alpha, a, b, 0.0, c, stream) }
    })
}

/// Backward data on the device: `dx[batch, fan_in] = alpha * dy * W` with `dy[batch, fan_out]`
/// E5M2 and **`w_t` = W^T, `[fan_in, fan_out]` row-major E4M3** (the K-major operand FP8 tensor
/// cores need; `unitfp8_cuda_cast_transpose` produces W and W^T in one pass). `dx` dense
/// row-major of `dx_type`. `alpha` NaN or <= 0 means `1/sqrt(fan_in)`. Queued on `stream`.
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
    dx: *mut c_void,
    dx_type: u32,
    stream: *mut c_void,
) -> i32 {
    cuda_guard(|| {
        let xt = DType::from_code(dx_type)?;
        let a = dense(dy, DType::E5M2, fan_out)?;
        let b = transposed(w_t, DType::E4M3, fan_out)?;
        let c = dense(dx.cast_const(), xt, fan_in)?;
        let alpha = linear_alpha(alpha, fan_in);
        // SAFETY: forwarded contract.
        unsafe { cuda::gemm_raw(batch, fan_in, fan_out, alpha, a, b, 0.0, c, stream) }
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
    cuda_guard(|| {
        let a = dense(dy_t, DType::E5M2, batch)?;
        let b = transposed(x_t, DType::E4M3, batch)?;
        let c = dense(dw.cast_const().cast(), DType::F32, fan_in)?;
        let alpha = linear_alpha(alpha, fan_in);
        // SAFETY: forwarded contract.
        unsafe { cuda::gemm_raw(fan_out, fan_in, batch, alpha, a, b, beta, c, stream) }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_strings_cover_cuda_codes() {
        for code in [
            UNITFP8_CUDA_ERROR_NO_DRIVER,
            UNITFP8_CUDA_ERROR_NO_DEVICE,
            UNITFP8_CUDA_ERROR_DEVICE_UNSUPPORTED,
            UNITFP8_CUDA_ERROR_DRIVER,
        ] {
            // SAFETY: static NUL-terminated strings.
            let s = unsafe { CStr::from_ptr(unitfp8_cuda_status_string(code)) };
            assert!(s.to_str().unwrap().contains("CUDA"), "{code}");
        }
        // SAFETY: as above.
        let s = unsafe { CStr::from_ptr(unitfp8_cuda_status_string(0)) };
        assert_eq!(s.to_str().unwrap(), "ok");
    }
}
