//! Run-time side of the CUDA back end: loads `libcuda` dynamically (cudarc), finds the context
//! of the caller's stream, loads the embedded fatbin once per context, and launches kernels.

use super::{CudaError, CudaResult, DeviceInfo, GemmArgs, GemmKernel, Launch};
use crate::dtype::DType;
use crate::error::Error;
use core::ffi::c_void;
use cudarc::driver::{result, sys};
use std::collections::HashMap;
use std::ffi::CString;
use std::sync::{Mutex, OnceLock};

/// The kernels: sm_89 + sm_90a SASS and compute_89 PTX (built by build.rs).
static FATBIN: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/unitfp8.fatbin"));

/// Dynamic shared memory of the sm_89 GEMM (`G89_SMEM` in kernels/gemm_sm89.cuh).
const G89_SMEM: u32 = 3 * 256 * 128;
/// Dynamic shared memory of the sm_90a GEMM (`G90_SMEM` in kernels/gemm_sm90.cuh).
const G90_SMEM: u32 = 5 * 256 * 128 + 1024 + 256;
/// Block tile of both tensor-core GEMMs.
const TILE: u32 = 128;

/// The name of a CUDA GEMM kernel choice.
fn kernel_name(k: GemmKernel) -> &'static str {
    match k {
        GemmKernel::Auto => "auto",
        GemmKernel::Wgmma => "wgmma",
        GemmKernel::MmaSync => "mma.sync",
        GemmKernel::Naive => "naive",
    }
}

fn driver_err(what: &str, e: result::DriverError) -> CudaError {
    CudaError::Driver(format!("{what}: {e:?}"))
}

/// Loads the driver library and runs `cuInit` once per process.
fn init() -> CudaResult<()> {
    static INIT: OnceLock<CudaResult<()>> = OnceLock::new();
    INIT.get_or_init(|| {
        // SAFETY: only tries to open the library; no symbol is used.
        if !unsafe { sys::is_culib_present() } {
            return Err(CudaError::NoDriver);
        }
        match result::init() {
            Ok(()) => {}
            Err(result::DriverError(sys::CUresult::CUDA_ERROR_NO_DEVICE)) => {
                return Err(CudaError::NoDevice);
            }
            Err(e) => return Err(driver_err("cuInit", e)),
        }
        match result::device::get_count() {
            Ok(0) => Err(CudaError::NoDevice),
            Ok(_) => Ok(()),
            Err(e) => Err(driver_err("cuDeviceGetCount", e)),
        }
    })
    .clone()
}

/// A loaded module in one context.
struct Module {
    ctx: sys::CUcontext,
    module: sys::CUmodule,
    cc: (i32, i32),
    sms: i32,
    ordinal: i32,
    max_smem: i32,
    functions: HashMap<String, sys::CUfunction>,
}

// SAFETY: CUDA handles are process-wide and usable from any thread; access is serialised by
// the mutex around the cache.
unsafe impl Send for Module {}

/// One module per context (for contexts of supported devices), or the reason it cannot load.
static MODULES: Mutex<Vec<(usize, Result<Module, CudaError>)>> = Mutex::new(Vec::new());

/// The primary context of device 0, retained once (for callers with no current context).
fn primary_ctx0() -> CudaResult<sys::CUcontext> {
    static CTX: OnceLock<CudaResult<usize>> = OnceLock::new();
    CTX.get_or_init(|| {
        let dev = result::device::get(0).map_err(|e| driver_err("cuDeviceGet", e))?;
        // SAFETY: dev is a valid device; the retained context is never released.
        let ctx = unsafe { result::primary_ctx::retain(dev) }
            .map_err(|e| driver_err("cuDevicePrimaryCtxRetain", e))?;
        Ok(ctx as usize)
    })
    .clone()
    .map(|c| c as sys::CUcontext)
}

/// Makes `ctx` current on this thread for the guard's lifetime, then restores the previous one.
struct CurrentCtx {
    previous: Option<sys::CUcontext>,
}

impl CurrentCtx {
    fn set(ctx: sys::CUcontext) -> CudaResult<CurrentCtx> {
        let cur = result::ctx::get_current().map_err(|e| driver_err("cuCtxGetCurrent", e))?;
        if cur == Some(ctx) {
            return Ok(CurrentCtx { previous: None });
        }
        // SAFETY: ctx is a live context (retained primary or owned by the caller's stream).
        unsafe { result::ctx::set_current(ctx) }.map_err(|e| driver_err("cuCtxSetCurrent", e))?;
        Ok(CurrentCtx {
            previous: Some(cur.unwrap_or(core::ptr::null_mut())),
        })
    }
}

impl Drop for CurrentCtx {
    fn drop(&mut self) {
        if let Some(prev) = self.previous {
            // SAFETY: restores the context that was current before (or none).
            let _ = unsafe { result::ctx::set_current(prev) };
        }
    }
}

/// The context a call on `stream` uses: the stream's, else the thread's current one, else
/// device 0's primary context.
fn context_for(stream: sys::CUstream) -> CudaResult<sys::CUcontext> {
    init()?;
    let special = stream.is_null() || stream as usize <= 2; // null, CU_STREAM_LEGACY, PER_THREAD
    if !special {
        let mut ctx: sys::CUcontext = core::ptr::null_mut();
        // SAFETY: the caller guarantees a valid stream handle; ctx is a valid out-pointer.
        unsafe { sys::cuStreamGetCtx(stream, &mut ctx) }
            .result()
            .map_err(|e| driver_err("cuStreamGetCtx (is the stream valid?)", e))?;
        return Ok(ctx);
    }
    match result::ctx::get_current().map_err(|e| driver_err("cuCtxGetCurrent", e))? {
        Some(ctx) => Ok(ctx),
        None => primary_ctx0(),
    }
}

/// Loads the module into `ctx` (current) and reads the device's properties.
fn load(ctx: sys::CUcontext) -> CudaResult<Module> {
    let mut dev: sys::CUdevice = 0;
    // SAFETY: ctx is current; dev is a valid out-pointer.
    unsafe { sys::cuCtxGetDevice(&mut dev) }
        .result()
        .map_err(|e| driver_err("cuCtxGetDevice", e))?;
    let attr = |a: sys::CUdevice_attribute| {
        // SAFETY: dev comes from the driver.
        unsafe { result::device::get_attribute(dev, a) }
            .map_err(|e| driver_err("cuDeviceGetAttribute", e))
    };
    use sys::CUdevice_attribute::*;
    let cc = (
        attr(CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MAJOR)?,
        attr(CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MINOR)?,
    );
    if cc < (8, 9) {
        return Err(CudaError::UnsupportedDevice(cc.0, cc.1));
    }
    let sms = attr(CU_DEVICE_ATTRIBUTE_MULTIPROCESSOR_COUNT)?;
    let max_smem = attr(CU_DEVICE_ATTRIBUTE_MAX_SHARED_MEMORY_PER_BLOCK_OPTIN)?;
    // cuModuleLoadData needs an 8-byte-aligned image: copy into u64 storage.
    let mut image = vec![0u64; FATBIN.len().div_ceil(8)];
    // SAFETY: image holds at least FATBIN.len() bytes; the ranges do not overlap.
    unsafe {
        core::ptr::copy_nonoverlapping(FATBIN.as_ptr(), image.as_mut_ptr().cast(), FATBIN.len())
    };
    // SAFETY: a complete fatbin image; ctx is current.
    let module = unsafe { result::module::load_data(image.as_ptr().cast()) }
        .map_err(|e| driver_err("cuModuleLoadData", e))?;
    Ok(Module {
        ctx,
        module,
        cc,
        sms,
        ordinal: dev,
        max_smem,
        functions: HashMap::new(),
    })
}

/// Runs `f` with the module of `ctx` (loading it on first use); `ctx` must be current.
fn with_module<T>(
    ctx: sys::CUcontext,
    f: impl FnOnce(&mut Module) -> CudaResult<T>,
) -> CudaResult<T> {
    let mut cache = MODULES.lock().unwrap_or_else(|p| p.into_inner());
    let idx = match cache.iter().position(|(c, _)| *c == ctx as usize) {
        Some(i) => i,
        None => {
            let loaded = load(ctx);
            // A driver error is not cached (it may be transient); the others are facts.
            if let Err(CudaError::Driver(_)) = loaded {
                return Err(loaded
                    .err()
                    .unwrap_or(CudaError::Api(Error::internal("module load state lost"))));
            }
            cache.push((ctx as usize, loaded));
            cache.len() - 1
        }
    };
    match &mut cache[idx].1 {
        Ok(m) => {
            debug_assert_eq!(m.ctx, ctx);
            f(m)
        }
        Err(e) => Err(e.clone()),
    }
}

impl Module {
    /// The kernel `name`, with its dynamic shared-memory limit raised to `smem` bytes.
    fn function(&mut self, name: &str, smem: u32) -> CudaResult<sys::CUfunction> {
        if let Some(&f) = self.functions.get(name) {
            return Ok(f);
        }
        let cname = CString::new(name)
            .map_err(|_| CudaError::Api(Error::internal("kernel name contains a NUL byte")))?;
        // SAFETY: the module is loaded in the current context.
        let f = unsafe { result::module::get_function(self.module, cname) }
            .map_err(|e| driver_err(&format!("cuModuleGetFunction({name})"), e))?;
        if smem > 48 * 1024 {
            // SAFETY: f is a valid function.
            unsafe {
                result::function::set_function_attribute(
                    f,
                    sys::CUfunction_attribute::CU_FUNC_ATTRIBUTE_MAX_DYNAMIC_SHARED_SIZE_BYTES,
                    smem as i32,
                )
            }
            .map_err(|e| driver_err("cuFuncSetAttribute", e))?;
        }
        self.functions.insert(name.to_string(), f);
        Ok(f)
    }
}

/// See [`super::device_info`].
pub(super) fn device_info() -> CudaResult<DeviceInfo> {
    let ctx = context_for(core::ptr::null_mut())?;
    let _current = CurrentCtx::set(ctx)?;
    with_module(ctx, |m| {
        Ok(DeviceInfo {
            ordinal: m.ordinal,
            compute_capability: m.cc,
            multiprocessors: m.sms,
            name: result::device::get_name(m.ordinal)
                .map_err(|e| driver_err("cuDeviceGetName", e))?,
        })
    })
}

fn type_name(t: DType) -> &'static str {
    t.name()
}

/// One kernel launch: name, grid, block, dynamic shared memory, argument pointers.
struct Plan<'a> {
    name: String,
    grid: (u32, u32, u32),
    block: (u32, u32, u32),
    smem: u32,
    params: Vec<*mut c_void>,
    _args: core::marker::PhantomData<&'a ()>,
}

fn param<T>(v: &T) -> *mut c_void {
    (v as *const T).cast_mut().cast()
}

/// Blocks for `work` items of `per_block` each, capped at 16 blocks per multiprocessor
/// (the kernels loop).
fn blocks(work: u64, per_block: u64, sms: i32) -> u32 {
    let cap = (sms.max(1) as u64) * 16;
    work.div_ceil(per_block).clamp(1, cap) as u32
}

/// See [`super::run`].
///
/// # Safety
/// As [`super::run`].
pub(super) unsafe fn run(launch: Launch, amax: u64, stream: *mut c_void) -> CudaResult<()> {
    let stream: sys::CUstream = stream.cast();
    let ctx = context_for(stream)?;
    let _current = CurrentCtx::set(ctx)?;
    with_module(ctx, |m| {
        if amax != 0 {
            // SAFETY: amax is a device f32 (caller's contract), zeroed in stream order.
            unsafe { sys::cuMemsetD32Async(amax, 0, 1, stream) }
                .result()
                .map_err(|e| driver_err("cuMemsetD32Async(amax)", e))?;
        }
        // Argument storage lives until the launch returns (cuLaunchKernel copies it).
        let mut tma = [
            sys::CUtensorMap { opaque: [0; 16] },
            sys::CUtensorMap { opaque: [0; 16] },
        ];
        let plan = match &launch {
            Launch::Cast(s, d, args) => {
                if args.n == 0 {
                    return Ok(());
                }
                let work = if args.vec_ok != 0 { args.n / 4 } else { args.n };
                Plan {
                    name: format!("unitfp8_cast_{}_{}", type_name(*s), type_name(*d)),
                    grid: (blocks(work, 256, m.sms), 1, 1),
                    block: (256, 1, 1),
                    smem: 0,
                    params: vec![param(args)],
                    _args: core::marker::PhantomData,
                }
            }
            Launch::CastTranspose(s, d, args) => {
                let tiles = args.rows.div_ceil(64) * args.cols.div_ceil(64);
                Plan {
                    name: format!("unitfp8_cast_transpose_{}_{}", type_name(*s), type_name(*d)),
                    grid: (blocks(tiles, 1, m.sms), 1, 1),
                    block: (256, 1, 1),
                    smem: 0,
                    params: vec![param(args)],
                    _args: core::marker::PhantomData,
                }
            }
            Launch::Mix { backward, io, args } => {
                let work = if args.vec_ok != 0 { args.n / 4 } else { args.n };
                let kind = if *backward { "mix_bwd" } else { "mix" };
                Plan {
                    name: format!("unitfp8_{kind}_{}", type_name(*io)),
                    grid: (blocks(work, 256, m.sms), 1, 1),
                    block: (256, 1, 1),
                    smem: 0,
                    params: vec![param(args)],
                    _args: core::marker::PhantomData,
                }
            }
            Launch::Gemm { a, b, args } => gemm_plan(m, *a, *b, args, &mut tma)?,
        };
        let f = m.function(&plan.name, plan.smem)?;
        let mut params = plan.params;
        // SAFETY: f takes exactly these arguments (one struct, or two tensor maps and a struct)
        // laid out as the kernels declare them; the buffers are the caller's contract.
        unsafe { result::launch_kernel(f, plan.grid, plan.block, plan.smem, stream, &mut params) }
            .map_err(|e| driver_err(&format!("cuLaunchKernel({})", plan.name), e))
    })
}

/// Chooses and prepares the GEMM kernel.
fn gemm_plan<'a>(
    m: &Module,
    at: DType,
    bt: DType,
    args: &'a GemmArgs,
    tma: &'a mut [sys::CUtensorMap; 2],
) -> CudaResult<Plan<'a>> {
    let suffix = format!("{}_{}", type_name(at), type_name(bt));
    let aligned = args.a.is_multiple_of(16)
        && args.b.is_multiple_of(16)
        && args.lda % 16 == 0
        && args.ldb % 16 == 0;
    let (mm, nn) = (args.m as u32, args.n as u32);
    let wgmma_ok = m.cc == (9, 0) && aligned && args.k > 0 && m.max_smem >= G90_SMEM as i32;
    let mma_ok =
        aligned && args.k > 0 && m.max_smem >= G89_SMEM as i32 && mm.div_ceil(TILE) <= 65535;
    let naive_ok = mm.div_ceil(16) <= 65535;
    let kernel = match super::gemm_kernel() {
        GemmKernel::Auto if wgmma_ok => GemmKernel::Wgmma,
        GemmKernel::Auto if mma_ok => GemmKernel::MmaSync,
        GemmKernel::Auto => GemmKernel::Naive,
        k => k,
    };
    let ok = match kernel {
        GemmKernel::Wgmma => wgmma_ok,
        GemmKernel::MmaSync => mma_ok,
        _ => naive_ok,
    };
    if !ok {
        return Err(CudaError::Api(Error::unsupported(
            "CUDA GEMM kernel {} cannot run this problem on this device (needs 16-byte aligned \
             operands and row strides, k > 0, and for wgmma compute capability 9.0)",
            &[kernel_name(kernel).into()],
        )));
    }
    Ok(match kernel {
        GemmKernel::Wgmma => {
            encode_tma(&mut tma[0], args.a, args.k, args.m, args.lda)?;
            encode_tma(&mut tma[1], args.b, args.k, args.n, args.ldb)?;
            let tiles = mm.div_ceil(TILE) * nn.div_ceil(TILE);
            let [ta, tb] = tma;
            Plan {
                name: format!("unitfp8_gemm_sm90_{suffix}"),
                grid: (tiles.min(m.sms.max(1) as u32), 1, 1),
                block: (384, 1, 1),
                smem: G90_SMEM,
                params: vec![param(ta), param(tb), param(args)],
                _args: core::marker::PhantomData,
            }
        }
        GemmKernel::MmaSync => Plan {
            name: format!("unitfp8_gemm_sm89_{suffix}"),
            grid: (nn.div_ceil(TILE), mm.div_ceil(TILE), 1),
            block: (256, 1, 1),
            smem: G89_SMEM,
            params: vec![param(args)],
            _args: core::marker::PhantomData,
        },
        _ => Plan {
            name: format!("unitfp8_gemm_naive_{suffix}"),
            grid: (nn.div_ceil(16), mm.div_ceil(16), 1),
            block: (16, 16, 1),
            smem: 0,
            params: vec![param(args)],
            _args: core::marker::PhantomData,
        },
    })
}

/// A 2-D tensor map over a K-major FP8 matrix (`rows × k` bytes, row stride `ld`): 128 × 128
/// byte boxes, 128-byte swizzle, zero fill out of bounds.
fn encode_tma(map: &mut sys::CUtensorMap, ptr: u64, k: i32, rows: i32, ld: i64) -> CudaResult<()> {
    let dims = [k as u64, rows as u64];
    let strides = [ld as u64];
    let boxes = [128u32, 128u32];
    let elem = [1u32, 1u32];
    // SAFETY: all arrays have the rank's length; map is a valid out-pointer.
    unsafe {
        sys::cuTensorMapEncodeTiled(
            map,
            sys::CUtensorMapDataType::CU_TENSOR_MAP_DATA_TYPE_UINT8,
            2,
            ptr as *mut c_void,
            dims.as_ptr(),
            strides.as_ptr(),
            boxes.as_ptr(),
            elem.as_ptr(),
            sys::CUtensorMapInterleave::CU_TENSOR_MAP_INTERLEAVE_NONE,
            sys::CUtensorMapSwizzle::CU_TENSOR_MAP_SWIZZLE_128B,
            sys::CUtensorMapL2promotion::CU_TENSOR_MAP_L2_PROMOTION_L2_256B,
            sys::CUtensorMapFloatOOBfill::CU_TENSOR_MAP_FLOAT_OOB_FILL_NONE,
        )
    }
    .result()
    .map_err(|e| driver_err("cuTensorMapEncodeTiled", e))
}
