//! The CUDA back end: the casts, the cast-transpose, the residual mix and the FP8 GEMM on NVIDIA
//! GPUs of compute capability 8.9 (Ada) and 9.0 (Hopper), on device pointers and the caller's
//! stream.
//!
//! # Build and load
//! With the `cuda` feature, `build.rs` compiles `kernels/` with `nvcc` into one fatbin (sm_89 and
//! sm_90a machine code plus compute_89 PTX) embedded in the library. At run time `libcuda` is
//! loaded dynamically (cudarc): a machine without the driver, without a GPU or with an older GPU
//! gets a [`CudaError`], never a panic. Without the feature every function here checks its
//! arguments as in a CUDA build and then returns [`Status::Unsupported`].
//!
//! # Contexts and streams
//! Work is enqueued on the caller's stream (a `cudaStream_t` / `CUstream`; null is the legacy
//! default stream) and is asynchronous: a call returns once the kernels are queued. The module is
//! loaded into the context that owns the stream, or for the null stream the context current on
//! the calling thread, or else the primary context of device 0 (which becomes current). PyTorch,
//! CuPy and CUDA.jl use primary contexts, so their tensors and streams work directly.
//!
//! # Semantics
//! Casts and mixes compute exactly what the CPU functions ([`crate::cast`](mod@crate::cast), [`crate::residual`](mod@crate::residual))
//! compute on x86-64, bit for bit, including stochastic rounding (same `(seed, index)` bits) and
//! NaN payloads. Argument checks are those of the CPU entry points and run before any device
//! work; device buffers must also be aligned to their element size and `amax` to 4 bytes
//! ([`Status::InvalidArgument`]). `amax` is a device pointer to one `f32`, zeroed and then
//! written on the stream.
//!
//! The GEMM takes K-major operands only (A row-major `m × k`, B given as `n × k` row-major, the
//! layout of a linear layer's weight): FP8 tensor cores take no other. Other layouts are
//! [`Status::Unsupported`]; produce the transposed copy with [`cast_transpose_raw`] (μS does this
//! in the same pass as the clip-cast). It is not bit-identical to the CPU GEMM (different
//! summation order); tensor-core partial sums are promoted into f32 at least every 128 K.

use crate::dtype::DType;
use crate::error::{Error, Status, Value, require};
use crate::op::{CastOp, CastParams, CastTransposeOp, GemmOp, MixBackwardOp, MixOp, MixParams};
pub use crate::op::{RawGemm, RawMatrix};
use core::ffi::c_void;

#[cfg(feature = "cuda")]
mod driver;

/// Why a CUDA call failed.
#[derive(Clone, Debug, PartialEq)]
pub enum CudaError {
    /// An argument error, or [`Status::Unsupported`] (also: a build without the `cuda` feature).
    Api(Error),
    /// The CUDA driver library (`libcuda`) could not be loaded: no NVIDIA driver.
    NoDriver,
    /// The driver is present but reports no usable CUDA device.
    NoDevice,
    /// The device's compute capability is below 8.9 (no FP8 tensor cores); `(major, minor)`.
    UnsupportedDevice(i32, i32),
    /// A CUDA driver call failed (an invalid stream, a launch failure, or an error left by earlier
    /// asynchronous work); the text names the call and the driver's error.
    Driver(String),
}

impl CudaError {
    /// The status of this error (`UNITFP8_CUDA_ERROR_*` for the CUDA-specific ones).
    pub fn status(&self) -> Status {
        match self {
            CudaError::Api(e) => e.status(),
            CudaError::NoDriver => Status::CudaNoDriver,
            CudaError::NoDevice => Status::CudaNoDevice,
            CudaError::UnsupportedDevice(..) => Status::CudaDeviceUnsupported,
            CudaError::Driver(_) => Status::CudaDriver,
        }
    }
}

impl From<Error> for CudaError {
    fn from(e: Error) -> Self {
        CudaError::Api(e)
    }
}

impl core::fmt::Display for CudaError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            CudaError::Api(e) => write!(f, "{}", e.detail()),
            CudaError::NoDriver => f.write_str("no CUDA driver (libcuda could not be loaded)"),
            CudaError::NoDevice => f.write_str("no CUDA device"),
            CudaError::UnsupportedDevice(ma, mi) => write!(
                f,
                "CUDA device of compute capability {ma}.{mi}: 8.9 or newer is needed"
            ),
            CudaError::Driver(s) => write!(f, "CUDA driver error: {s}"),
        }
    }
}

impl std::error::Error for CudaError {}

/// Result of the CUDA functions.
pub type CudaResult<T> = Result<T, CudaError>;

/// What [`device_info`] reports about the device a call would use.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DeviceInfo {
    /// Device ordinal.
    pub ordinal: i32,
    /// Compute capability (major, minor).
    pub compute_capability: (i32, i32),
    /// Number of multiprocessors.
    pub multiprocessors: i32,
    /// The device's name.
    pub name: String,
}

/// Which GEMM kernel [`gemm_raw`] uses.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
#[repr(u32)]
pub enum GemmKernel {
    /// The fastest kernel the device and the operands' alignment allow.
    #[default]
    Auto = 0,
    /// sm_90a `wgmma` + TMA (compute capability 9.0; A, B 16-byte aligned with row strides
    /// multiple of 16 bytes).
    Wgmma = 1,
    /// `mma.sync` FP8 with a `cp.async` pipeline (compute capability 8.9 or newer; the same
    /// alignment).
    MmaSync = 2,
    /// The portable fallback (one thread per output element; any alignment).
    Naive = 3,
}

impl GemmKernel {
    /// Parses a code (0 = auto, 1 = wgmma, 2 = mma.sync, 3 = naive).
    pub fn from_code(code: u32) -> Result<GemmKernel, Error> {
        match code {
            0 => Ok(GemmKernel::Auto),
            1 => Ok(GemmKernel::Wgmma),
            2 => Ok(GemmKernel::MmaSync),
            3 => Ok(GemmKernel::Naive),
            _ => Err(Error::invalid(
                "unknown CUDA GEMM kernel code {} (0 auto, 1 wgmma, 2 mma.sync, 3 naive)",
                &[Value::U(u64::from(code))],
            )),
        }
    }
}

static GEMM_KERNEL: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);

/// Forces the GEMM kernel for later calls, process-wide ([`GemmKernel::Auto`] restores the
/// default). A forced kernel the device or the operands cannot use makes [`gemm_raw`] return
/// [`Status::Unsupported`]. For tests and benchmarks.
pub fn set_gemm_kernel(kernel: GemmKernel) -> CudaResult<()> {
    built()?;
    GEMM_KERNEL.store(kernel as u32, std::sync::atomic::Ordering::Relaxed);
    Ok(())
}

/// The kernel set by [`set_gemm_kernel`].
pub fn gemm_kernel() -> GemmKernel {
    GemmKernel::from_code(GEMM_KERNEL.load(std::sync::atomic::Ordering::Relaxed))
        .unwrap_or_default()
}

/// Whether the CUDA back end can run here: the driver loads, a device is present and has
/// compute capability 8.9 or newer, and the kernels load. Returns the device a null-stream call
/// from this thread would use.
pub fn device_info() -> CudaResult<DeviceInfo> {
    #[cfg(feature = "cuda")]
    {
        driver::device_info()
    }
    #[cfg(not(feature = "cuda"))]
    {
        Err(not_built())
    }
}

/// The error of every call in a build without the `cuda` feature.
fn not_built() -> CudaError {
    CudaError::Api(Error::unsupported(
        "this unitfp8 was built without the `cuda` feature",
        &[],
    ))
}

/// The CUDA back end's own rule: device buffer `arg` (address 0: absent) aligned to `align`
/// bytes.
fn aligned(arg: &'static str, addr: usize, align: usize) -> Result<(), Error> {
    require(
        addr.is_multiple_of(align),
        "{} (device address {}) must be aligned to {} bytes",
        &[arg.into(), addr.into(), align.into()],
    )
}

/// The stochastic-rounding key passed to the kernels.
#[derive(Clone, Copy, Debug)]
#[repr(C)]
pub(crate) struct SrKey {
    pub seed: u64,
    pub k1: u32,
    pub k2: u32,
}

impl SrKey {
    fn new(seed: u64) -> SrKey {
        let k = crate::rng::StreamKey::new(seed, 0);
        SrKey {
            seed,
            k1: k.k1,
            k2: k.k2,
        }
    }
}

/// Arguments of the cast kernels (`CastArgs` in `kernels/elementwise.cuh`).
#[derive(Clone, Copy, Debug)]
#[repr(C)]
pub(crate) struct CastArgs {
    pub src: u64,
    pub dst: u64,
    pub n: u64,
    pub amax: u64,
    pub key: SrKey,
    pub scale: f32,
    pub rounding: i32,
    pub vec_ok: i32,
    pub pad: i32,
}

/// Arguments of the cast-transpose kernels (`CastTransposeArgs`).
#[derive(Clone, Copy, Debug)]
#[repr(C)]
pub(crate) struct CastTransposeArgs {
    pub src: u64,
    pub dst: u64,
    pub dst_t: u64,
    pub amax: u64,
    pub rows: u64,
    pub cols: u64,
    pub ld_src: u64,
    pub ld_dst: u64,
    pub ld_dst_t: u64,
    pub key: SrKey,
    pub scale: f32,
    pub rounding: i32,
}

/// Arguments of the residual-mix kernels (`MixArgs`).
#[derive(Clone, Copy, Debug)]
#[repr(C)]
pub(crate) struct MixArgs {
    pub x: u64,
    pub f: u64,
    pub out: u64,
    pub out2: u64,
    pub q: u64,
    pub n: u64,
    pub key: SrKey,
    pub a: f32,
    pub b: f32,
    pub q_type: i32,
    pub rounding: i32,
    pub accumulate: i32,
    pub vec_ok: i32,
}

/// Arguments of the GEMM kernels (`GemmArgs` in `kernels/gemm_common.cuh`): K-major A (m×k)
/// and B (n×k), row-major C.
#[derive(Clone, Copy, Debug)]
#[repr(C)]
pub(crate) struct GemmArgs {
    pub a: u64,
    pub b: u64,
    pub c: u64,
    pub lda: i64,
    pub ldb: i64,
    pub ldc: i64,
    pub m: i32,
    pub n: i32,
    pub k: i32,
    pub c_type: i32,
    pub alpha: f32,
    pub beta: f32,
}

/// A kernel launch the back end is asked to perform.
#[allow(dead_code)]
pub(crate) enum Launch {
    /// `unitfp8_cast_<src>_<dst>`.
    Cast(DType, DType, CastArgs),
    /// `unitfp8_cast_transpose_<src>_<dst>`.
    CastTranspose(DType, DType, CastTransposeArgs),
    /// `unitfp8_mix_<io>` (forward) or `unitfp8_mix_bwd_<io>`.
    Mix {
        backward: bool,
        io: DType,
        args: MixArgs,
    },
    /// A GEMM with its operand types.
    Gemm { a: DType, b: DType, args: GemmArgs },
}

/// Runs `launch` on `stream` (zeroing `amax` first when it is not 0).
///
/// # Safety
/// The pointers inside `launch` are valid device buffers for the shapes they describe.
unsafe fn run(launch: Launch, amax: u64, stream: *mut c_void) -> CudaResult<()> {
    #[cfg(feature = "cuda")]
    {
        // SAFETY: forwarded contract.
        unsafe { driver::run(launch, amax, stream) }
    }
    #[cfg(not(feature = "cuda"))]
    {
        let _ = (launch, amax, stream);
        Err(not_built())
    }
}

/// Fails in builds without the `cuda` feature ([`Status::Unsupported`]); every entry point
/// calls it right after its argument checks, so a wrong argument is reported as such in every
/// build.
fn built() -> CudaResult<()> {
    if cfg!(feature = "cuda") {
        Ok(())
    } else {
        Err(not_built())
    }
}

/// Cast of `n` elements on the device (see `unitfp8_cast` for the semantics): `src` and `dst` are
/// device addresses, `amax` a device address of one `f32` or null.
///
/// # Safety
/// `src` readable and `dst` writable for `n` elements of their types on the device that owns
/// `stream`; `amax` null or a device `f32`; `stream` a valid stream or null.
#[allow(clippy::too_many_arguments)]
pub unsafe fn cast_raw(
    src: *const c_void,
    src_type: DType,
    dst: *mut c_void,
    dst_type: DType,
    n: usize,
    params: &CastParams,
    amax: *mut f32,
    stream: *mut c_void,
) -> CudaResult<()> {
    let (s, d, am) = (src as usize, dst as usize, amax as usize);
    CastOp::new(s, src_type, d, dst_type, n, params, am)?;
    if n > 0 {
        aligned("src", s, src_type.size())?;
        aligned("dst", d, dst_type.size())?;
    }
    aligned("amax", am, 4)?;
    built()?;
    if n == 0 && am == 0 {
        return Ok(());
    }
    let vec_ok = s.is_multiple_of(4 * src_type.size()) && d.is_multiple_of(4 * dst_type.size());
    let args = CastArgs {
        src: s as u64,
        dst: d as u64,
        n: n as u64,
        amax: am as u64,
        key: SrKey::new(params.seed),
        scale: params.scale,
        rounding: params.rounding as i32,
        vec_ok: vec_ok as i32,
        pad: 0,
    };
    // SAFETY: validated above; buffer validity is the caller's contract.
    unsafe { run(Launch::Cast(src_type, dst_type, args), am as u64, stream) }
}

/// Cast-transpose on the device (see `unitfp8_cast_transpose`): `dst` and/or `dst_t` may be
/// null; `amax` a device `f32` or null.
///
/// # Safety
/// Each non-null buffer valid on the device for its shape and leading dimension.
#[allow(clippy::too_many_arguments)]
pub unsafe fn cast_transpose_raw(
    src: *const c_void,
    src_type: DType,
    rows: usize,
    cols: usize,
    ld_src: usize,
    dst: *mut c_void,
    ld_dst: usize,
    dst_t: *mut c_void,
    ld_dst_t: usize,
    dst_type: DType,
    params: &CastParams,
    amax: *mut f32,
    stream: *mut c_void,
) -> CudaResult<()> {
    let (s, d, t, am) = (src as usize, dst as usize, dst_t as usize, amax as usize);
    let op = CastTransposeOp::new(
        s, src_type, rows, cols, ld_src, d, ld_dst, t, ld_dst_t, dst_type, params, am,
    )?;
    let (ld_dst, ld_dst_t) = (op.ld_dst, op.ld_dst_t);
    let empty = op.is_empty();
    if !empty {
        aligned("src", s, src_type.size())?;
        aligned("dst", d, dst_type.size())?;
        aligned("dst_t", t, dst_type.size())?;
    }
    aligned("amax", am, 4)?;
    built()?;
    if empty {
        if am == 0 {
            return Ok(());
        }
        // Only the amax (0) is written: an empty cast does that.
        // SAFETY: amax validated; n = 0 touches no other buffer.
        return unsafe {
            cast_raw(
                core::ptr::null(),
                src_type,
                core::ptr::null_mut(),
                dst_type,
                0,
                params,
                amax,
                stream,
            )
        };
    }
    let args = CastTransposeArgs {
        src: s as u64,
        dst: d as u64,
        dst_t: t as u64,
        amax: am as u64,
        rows: rows as u64,
        cols: cols as u64,
        ld_src: ld_src as u64,
        ld_dst: ld_dst as u64,
        ld_dst_t: ld_dst_t as u64,
        key: SrKey::new(params.seed),
        scale: params.scale,
        rounding: params.rounding as i32,
    };
    // SAFETY: validated above; buffer validity is the caller's contract.
    unsafe {
        run(
            Launch::CastTranspose(src_type, dst_type, args),
            am as u64,
            stream,
        )
    }
}

/// Residual mix on the device (see `unitfp8_residual_mix`).
///
/// # Safety
/// Non-null buffers valid on the device for `n` elements of their types.
#[allow(clippy::too_many_arguments)]
pub unsafe fn residual_mix_raw(
    x: *const c_void,
    f: *const c_void,
    out: *mut c_void,
    io_type: DType,
    n: usize,
    out_fp8: *mut c_void,
    fp8_type: DType,
    params: &MixParams,
    stream: *mut c_void,
) -> CudaResult<()> {
    let (x, f, o, q) = (x as usize, f as usize, out as usize, out_fp8 as usize);
    let op = MixOp::new(x, f, o, io_type, n, q, fp8_type, params)?;
    let size = io_type.size();
    if n > 0 {
        aligned("x", x, size)?;
        aligned("f", f, size)?;
        aligned("out", o, size)?;
    }
    built()?;
    if n == 0 {
        return Ok(());
    }
    let (a, b) = op.coefficients;
    let vec_ok = [x, f, o].iter().all(|&p| p.is_multiple_of(4 * size)) && q.is_multiple_of(4);
    let args = MixArgs {
        x: x as u64,
        f: f as u64,
        out: o as u64,
        out2: 0,
        q: q as u64,
        n: n as u64,
        key: SrKey::new(params.seed),
        a,
        b,
        q_type: fp8_type as i32,
        rounding: params.rounding as i32,
        accumulate: 0,
        vec_ok: vec_ok as i32,
    };
    // SAFETY: validated above; buffer validity is the caller's contract.
    unsafe {
        run(
            Launch::Mix {
                backward: false,
                io: io_type,
                args,
            },
            0,
            stream,
        )
    }
}

/// Backward residual mix on the device (see `unitfp8_residual_mix_backward`).
///
/// # Safety
/// Non-null buffers valid on the device for `n` elements of their types.
#[allow(clippy::too_many_arguments)]
pub unsafe fn residual_mix_backward_raw(
    grad_out: *const c_void,
    grad_x: *mut c_void,
    grad_f: *mut c_void,
    io_type: DType,
    n: usize,
    accumulate: bool,
    grad_f_fp8: *mut c_void,
    fp8_type: DType,
    params: &MixParams,
    stream: *mut c_void,
) -> CudaResult<()> {
    let (g, gx, gf, q) = (
        grad_out as usize,
        grad_x as usize,
        grad_f as usize,
        grad_f_fp8 as usize,
    );
    let op = MixBackwardOp::new(g, gx, gf, io_type, n, accumulate, q, fp8_type, params)?;
    let size = io_type.size();
    if n > 0 {
        aligned("grad_out", g, size)?;
        aligned("grad_x", gx, size)?;
        aligned("grad_f", gf, size)?;
    }
    built()?;
    if n == 0 {
        return Ok(());
    }
    let (a, b) = op.coefficients;
    let vec_ok = [g, gx, gf].iter().all(|&p| p.is_multiple_of(4 * size)) && q.is_multiple_of(4);
    let args = MixArgs {
        x: g as u64,
        f: 0,
        out: gx as u64,
        out2: gf as u64,
        q: q as u64,
        n: n as u64,
        key: SrKey::new(params.seed),
        a,
        b,
        q_type: fp8_type as i32,
        rounding: params.rounding as i32,
        accumulate: accumulate as i32,
        vec_ok: vec_ok as i32,
    };
    // SAFETY: validated above; buffer validity is the caller's contract.
    unsafe {
        run(
            Launch::Mix {
                backward: true,
                io: io_type,
                args,
            },
            0,
            stream,
        )
    }
}

/// `C ← α·A·B + β·C` on the device, with A `m×k`, B `k×n` (the CPU GEMM's conventions and
/// checks, [`crate::op`]), for K-major operands: A's column stride and B's row stride must be 1
/// (when `k > 1`), i.e. A is row-major and B is stored as `n×k` row-major. C must be row-major
/// or column-major (one unit stride) and aligned to its element size. Other layouts are
/// [`Status::Unsupported`]. Types: A and B E4M3 or E5M2; C f32, bf16, E4M3 or E5M2 (FP8 C
/// needs `β = 0`). `β = 0` does not read C; `k = 0` gives `C ← β·C`.
///
/// # Safety
/// Each operand valid on the device at every element its shape and strides address.
pub unsafe fn gemm_raw(g: &RawGemm, stream: *mut c_void) -> CudaResult<()> {
    // SAFETY: forwarded contract.
    unsafe { run_gemm(GemmOp::new(g)?, stream) }
}

/// Runs a validated GEMM (`None`: nothing to compute) on the device, after the CUDA-only
/// checks.
///
/// # Safety
/// As [`gemm_raw`].
pub(crate) unsafe fn run_gemm(op: Option<GemmOp>, stream: *mut c_void) -> CudaResult<()> {
    let Some(GemmOp { g, .. }) = op else {
        return built();
    };
    let (m, n, k) = (g.m, g.n, g.k);
    let (a, b, c) = (g.a, g.b, g.c);
    // C's layout: row-major (unit column stride) or column-major (unit row stride, computed as
    // the transposed product Cᵀ = Bᵀ·Aᵀ, which swaps the operands' roles). The descriptor
    // has ruled out a C that maps two elements to one.
    let c_rs = if m == 1 { n as isize } else { c.row_stride };
    let c_cs = if n == 1 { 1 } else { c.col_stride };
    let (row_major, ldc) = if c_cs == 1 && c_rs >= n as isize {
        (true, c_rs)
    } else if c_rs == 1 && c_cs >= m as isize && m > 1 {
        (false, c_cs)
    } else {
        return Err(Error::unsupported(
            "CUDA GEMM: c must be row- or column-major (one unit stride), got strides ({}, {})",
            &[c.row_stride.into(), c.col_stride.into()],
        )
        .into());
    };
    // K-major operands: A (m×k) with unit column stride, B (k×n) with unit row stride.
    let lda = if m == 1 {
        k.max(1) as isize
    } else {
        a.row_stride
    };
    let ldb = if n == 1 {
        k.max(1) as isize
    } else {
        b.col_stride
    };
    if !(k <= 1 || a.col_stride == 1) || lda <= 0 {
        return Err(Error::unsupported(
            "CUDA GEMM: a must be K-major (col_stride 1, row_stride > 0), got strides ({}, {})",
            &[a.row_stride.into(), a.col_stride.into()],
        )
        .into());
    }
    if !(k <= 1 || b.row_stride == 1) || ldb <= 0 {
        return Err(Error::unsupported(
            "CUDA GEMM: b must be K-major (row_stride 1, col_stride > 0), got strides ({}, {})",
            &[b.row_stride.into(), b.col_stride.into()],
        )
        .into());
    }
    aligned("c", c.ptr as usize, c.dtype.size())?;
    for (name, v) in [("m", m), ("n", n), ("k", k)] {
        if i32::try_from(v).is_err() {
            return Err(Error::unsupported(
                "CUDA GEMM: {} ({}) must be below 2^31",
                &[name.into(), v.into()],
            )
            .into());
        }
    }
    built()?;
    let (pa, pb, pc) = (a.ptr as usize, b.ptr as usize, c.ptr as usize);
    let (lda, ldb) = (lda as usize, ldb as usize);
    // Row-major C = A·B; column-major C is the row-major Cᵀ = (B as n×k)·(A as m×k)ᵀ.
    let (m2, n2, a2, b2, lda2, ldb2, at, bt) = if row_major {
        (m, n, pa, pb, lda, ldb, a.dtype, b.dtype)
    } else {
        (n, m, pb, pa, ldb, lda, b.dtype, a.dtype)
    };
    let args = GemmArgs {
        a: a2 as u64,
        b: b2 as u64,
        c: pc as u64,
        lda: lda2 as i64,
        ldb: ldb2 as i64,
        ldc: ldc as i64,
        m: m2 as i32,
        n: n2 as i32,
        k: k as i32,
        c_type: c.dtype as i32,
        alpha: g.alpha,
        beta: g.beta,
    };
    // SAFETY: validated above; buffer validity is the caller's contract.
    unsafe { run(Launch::Gemm { a: at, b: bt, args }, 0, stream) }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn arg_structs_match_the_kernels_layout() {
        // Sizes of the CUDA structs (natural C layout, 8-byte aligned).
        assert_eq!(core::mem::size_of::<SrKey>(), 16);
        assert_eq!(core::mem::size_of::<CastArgs>(), 64);
        assert_eq!(core::mem::size_of::<CastTransposeArgs>(), 96);
        assert_eq!(core::mem::size_of::<MixArgs>(), 88);
        assert_eq!(core::mem::size_of::<GemmArgs>(), 72);
    }

    #[test]
    fn sr_key_matches_rng() {
        for seed in [0u64, 1, 0xDEAD_BEEF_0123_4567] {
            let k = SrKey::new(seed);
            let s = crate::rng::StreamKey::new(seed, 0);
            assert_eq!((k.k1, k.k2), (s.k1, s.k2));
            assert_eq!(s.bits(7), crate::rng::stochastic_bits(seed, 7));
        }
    }
}
