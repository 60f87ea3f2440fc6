//! The CUDA kernels run on a device, through the C ABI, against the CPU reference.
//!
//! Runs on whatever device the driver offers: a real GPU (sm_89 / sm_90), or — in CI and on any
//! machine without one — the SIMT emulator (`scripts/cuda-emu.sh` builds the stand-in
//! `libcuda.so` from kernels/emu and runs this file with it: the kernels' own source compiled
//! for the host, every CUDA thread a fiber). Without a usable device every test says so and
//! returns (plain `cargo test` on a machine with no GPU), unless `UNITFP8_REQUIRE_DEVICE` is set
//! (the GPU script and the emulator runs set it): then they fail.
//!
//! - Casts, cast-transpose, residual mix forward/backward: every output byte equal to the CPU
//!   entry point's, with both outputs starting from the same random poison (so unwritten and
//!   over-written elements show), guard bytes around every device buffer, odd sizes,
//!   misaligned pointers, in-place mixes, absent outputs, the amax output.
//! - GEMM (each kernel: naive, mma.sync, wgmma on compute capability 9.0) and the linear layer:
//!   on the emulator bit for bit against a model of the kernel's accumulation order (exact
//!   tensor-core sums rounded once: the emulator's arithmetic), which any indexing, swizzle,
//!   fragment or pipeline error breaks; on a GPU, relative Frobenius error ≤ 1e-5 against
//!   float64 for f32 outputs and one unit in the last place for narrower ones.
//!
//! Random inputs are seeded from the clock (printed; `UNITFP8_TEST_SEED` reproduces).
#![cfg(feature = "cuda")]

use core::ffi::c_void;
use core::ptr::null_mut;
use cudarc::driver::result;
use unitfp8::ffi::*;
use unitfp8::fp8::f32_to_bf16_bits;
use unitfp8::{E4M3, E5M2, Fp8Format, Rounding, f16};

// ---------------------------------------------------------------------------------------------
// Infrastructure

mod common;
use common::{Rng, test_seed};

fn rng(name: &str) -> Rng {
    Rng(test_seed(name) ^ name.len() as u64)
}

/// The device, if one is usable: whether it is the emulator, and its compute capability.
struct Device {
    emulated: bool,
    cc: (i32, i32),
}

/// Binds the primary context of device 0 to this thread (the tests allocate with the driver
/// API) and describes the device; `None` (with a message) when there is none.
fn device(test: &str) -> Option<Device> {
    let s = unitfp8_cuda_available();
    if s != UNITFP8_OK {
        assert!(
            std::env::var_os("UNITFP8_REQUIRE_DEVICE").is_none(),
            "{test}: no usable CUDA device (status {s}) and UNITFP8_REQUIRE_DEVICE is set"
        );
        println!(
            "{test}: skipped, no usable CUDA device (status {s}); scripts/cuda-emu.sh runs these \
             tests on the SIMT emulator"
        );
        return None;
    }
    let info = unitfp8::cuda::device_info().expect("device_info after a successful probe");
    result::init().expect("cuInit");
    let dev = result::device::get(0).expect("cuDeviceGet");
    // SAFETY: dev comes from the driver; the retained primary context is never released.
    let ctx = unsafe { result::primary_ctx::retain(dev) }.expect("cuDevicePrimaryCtxRetain");
    // SAFETY: ctx is a live context.
    unsafe { result::ctx::set_current(ctx) }.expect("cuCtxSetCurrent");
    let emulated = info.name.contains("SIMT emulator");
    println!(
        "{test}: on {} (compute capability {}.{})",
        info.name, info.compute_capability.0, info.compute_capability.1
    );
    Some(Device {
        emulated,
        cc: info.compute_capability,
    })
}

const GUARD: usize = 256;

/// Serialises the tests that force a GEMM kernel (the choice is process-wide).
static GEMM_KERNEL_LOCK: std::sync::Mutex<()> = std::sync::Mutex::new(());

/// A device buffer holding `contents` at byte offset `off` past a guard zone, with random
/// guard bytes before and after that must survive every kernel.
struct DevBuf {
    base: u64,
    image: Vec<u8>,
    off: usize,
    len: usize,
}

impl DevBuf {
    fn new(rng: &mut Rng, contents: &[u8], off: usize) -> DevBuf {
        let mut image = rng.bytes(GUARD + off + contents.len() + GUARD);
        image[GUARD + off..GUARD + off + contents.len()].copy_from_slice(contents);
        // SAFETY: plain allocation and copy of `image.len()` bytes.
        let base = unsafe { result::malloc_sync(image.len()) }.expect("cuMemAlloc");
        // SAFETY: `base` was just allocated with `image.len()` bytes.
        unsafe { result::memcpy_htod_sync(base, &image) }.expect("cuMemcpyHtoD");
        DevBuf {
            base,
            image,
            off,
            len: contents.len(),
        }
    }
    fn ptr(&self) -> *mut c_void {
        (self.base + (GUARD + self.off) as u64) as *mut c_void
    }
    /// The contents now; panics if a guard byte changed.
    fn read(&self, what: &str) -> Vec<u8> {
        let mut now = vec![0u8; self.image.len()];
        // SAFETY: the allocation holds image.len() bytes; kernels ran on the null stream.
        unsafe { result::memcpy_dtoh_sync(&mut now, self.base) }.expect("cuMemcpyDtoH");
        let lo = GUARD + self.off;
        let hi = lo + self.len;
        for i in (0..lo).chain(hi..now.len()) {
            assert_eq!(
                now[i],
                self.image[i],
                "{what}: guard byte {} written",
                i as isize - lo as isize
            );
        }
        now[lo..hi].to_vec()
    }
}

impl Drop for DevBuf {
    fn drop(&mut self) {
        // SAFETY: allocated by malloc_sync, freed once.
        let _ = unsafe { result::free_sync(self.base) };
    }
}

fn size(t: u32) -> usize {
    match t {
        UNITFP8_F32 => 4,
        UNITFP8_BF16 | UNITFP8_F16 => 2,
        _ => 1,
    }
}

/// `n` random elements of type `t` as bytes: half arbitrary bit patterns (NaN payloads,
/// infinities, subnormals), half values of magnitude 2^-24 .. 2^12 (the FP8 ranges and their
/// rounding boundaries).
fn random_elements(rng: &mut Rng, t: u32, n: usize) -> Vec<u8> {
    let mut out = Vec::with_capacity(n * size(t));
    for _ in 0..n {
        let bits = if rng.below(2) == 0 {
            rng.u64() as u32
        } else {
            let mag = (rng.unit() * 36.0 - 24.0).exp2() as f32;
            let v = if rng.below(2) == 0 { -mag } else { mag };
            match t {
                UNITFP8_F32 => v.to_bits(),
                UNITFP8_BF16 => v.to_bits() >> 16,
                UNITFP8_F16 => f16::from_f32(v).to_bits() as u32,
                UNITFP8_E4M3 => E4M3::from_f32(v).to_bits() as u32,
                _ => E5M2::from_f32(v).to_bits() as u32,
            }
        };
        out.extend_from_slice(&bits.to_le_bytes()[..size(t)]);
    }
    out
}

fn fp8_of(t: u32) -> Fp8Format {
    if t == UNITFP8_E4M3 {
        Fp8Format::E4M3
    } else {
        Fp8Format::E5M2
    }
}

/// Compares two outputs byte for byte, except that element `i` may hold a different NaN where
/// `both_nan_addends(i)`: when two NaN addends meet, which payload wins is the compiler's choice
/// on the CPU (LLVM may commute an addition), so only "NaN" is defined there.
fn assert_same(
    what: &str,
    t: u32,
    got: &[u8],
    want: &[u8],
    both_nan_addends: &dyn Fn(usize) -> bool,
) {
    assert_eq!(got.len(), want.len());
    let w = size(t);
    for (i, (g, e)) in got.chunks(w).zip(want.chunks(w)).enumerate() {
        if g == e {
            continue;
        }
        let (gb, eb) = (bits_of(g), bits_of(e));
        if is_nan(t, gb) && is_nan(t, eb) && both_nan_addends(i) {
            continue;
        }
        panic!("{what}: element {i}: device {gb:#x}, CPU {eb:#x}");
    }
}

fn bits_of(b: &[u8]) -> u32 {
    b.iter().rev().fold(0u32, |acc, &x| (acc << 8) | x as u32)
}

fn is_nan(t: u32, b: u32) -> bool {
    match t {
        UNITFP8_F32 => (b & 0x7FFF_FFFF) > 0x7F80_0000,
        UNITFP8_BF16 => (b & 0x7FFF) > 0x7F80,
        UNITFP8_F16 => (b & 0x7FFF) > 0x7C00,
        _ => fp8_of(t).code_is_nan(b as u8),
    }
}

/// The value of element `i` of `bytes` (type f32, bf16 or f16).
fn io_value(t: u32, bytes: &[u8], i: usize) -> f32 {
    let w = size(t);
    let b = bits_of(&bytes[i * w..(i + 1) * w]);
    match t {
        UNITFP8_F32 => f32::from_bits(b),
        UNITFP8_BF16 => f32::from_bits(b << 16),
        _ => f16::from_bits(b as u16).to_f32(),
    }
}

/// Whether `v * coef` is NaN (a NaN, or infinity times zero).
fn nan_term(v: f32, coef_is_zero: bool) -> bool {
    v.is_nan() || (v.is_infinite() && coef_is_zero)
}

fn exact(_: usize) -> bool {
    false
}

// ---------------------------------------------------------------------------------------------
// Casts

const TYPES: [u32; 5] = [
    UNITFP8_F32,
    UNITFP8_BF16,
    UNITFP8_F16,
    UNITFP8_E4M3,
    UNITFP8_E5M2,
];
/// The rounding modes the tests draw from: the two nearest modes first, then stochastic.
const MODES: [u32; 3] = [
    UNITFP8_ROUND_NEAREST_SATURATE,
    UNITFP8_ROUND_NEAREST,
    UNITFP8_ROUND_STOCHASTIC_SATURATE,
];

/// One cast `n` elements `src` (of type `st`, on the device as `dsrc`) to `dt`, on the CPU and on
/// the device, both outputs starting from the same poison (the device's `dst_off` bytes past
/// an aligned address): the same status, the same output bytes, the same amax (or amax left
/// alone). Returns whether the cast was valid.
#[allow(clippy::too_many_arguments)]
fn cast_case(
    rng: &mut Rng,
    src: &[u8],
    dsrc: &DevBuf,
    st: u32,
    dt: u32,
    dst_off: usize,
    scale: f32,
    mode: u32,
    with_amax: bool,
) -> bool {
    let n = src.len() / size(st);
    let seed = rng.u64();
    let poison = rng.bytes(n * size(dt));
    let amax0 = rng.u64() as u32;
    let mut cpu_out = poison.clone();
    let mut cpu_amax = f32::from_bits(amax0);
    // SAFETY: buffers sized for n elements.
    let cpu_status = unsafe {
        unitfp8_cast(
            src.as_ptr().cast(),
            st,
            cpu_out.as_mut_ptr().cast(),
            dt,
            n,
            scale,
            mode,
            seed,
            if with_amax { &mut cpu_amax } else { null_mut() },
        )
    };
    let dout = DevBuf::new(rng, &poison, dst_off);
    let damax = DevBuf::new(rng, &amax0.to_le_bytes(), 0);
    let amax_ptr = if with_amax {
        damax.ptr().cast()
    } else {
        null_mut()
    };
    // SAFETY: device buffers sized for n elements.
    let status = unsafe {
        unitfp8_cuda_cast(
            dsrc.ptr(),
            st,
            dout.ptr(),
            dt,
            n,
            scale,
            mode,
            seed,
            amax_ptr,
            null_mut(),
        )
    };
    let what = format!(
        "cast {st}->{dt} mode {mode} n {n} offsets {}/{dst_off} scale {scale} seed {seed}",
        dsrc.off
    );
    assert_eq!(status, cpu_status, "{what}: status");
    assert_same(&what, dt, &dout.read(&what), &cpu_out, &exact);
    let got_amax = u32::from_le_bytes(damax.read(&what).try_into().unwrap());
    if cpu_status == UNITFP8_OK && with_amax {
        let want = cpu_amax.to_bits();
        assert_eq!(
            got_amax, want,
            "{what}: amax device {got_amax:#x}, CPU {want:#x}"
        );
    } else {
        assert_eq!(got_amax, amax0, "{what}: amax written");
    }
    cpu_status == UNITFP8_OK
}

#[test]
fn casts_match_the_cpu() {
    let Some(_dev) = device("casts_match_the_cpu") else {
        return;
    };
    let mut rng = rng("casts_match_the_cpu");
    let sizes = [1usize, 3, 4, 5, 31, 1000, 4099];
    let mut cases = 0;
    for st in TYPES {
        for dt in TYPES {
            for mode in MODES {
                // One random configuration per (source, destination, mode); large calls (more
                // groups than threads in the grid) from f32.
                let large = st == UNITFP8_F32 && mode != UNITFP8_ROUND_NEAREST;
                let n = if large { 70_001 } else { rng.pick(&sizes) };
                let src = random_elements(&mut rng, st, n);
                let src_off = rng.below(2) * size(st);
                let dsrc = DevBuf::new(&mut rng, &src, src_off);
                let dst_off = rng.below(2) * size(dt);
                let scale = rng.pick(&[1.0f32, 0.37, 3.5, 1.0 / 64.0]);
                let with_amax = rng.below(2) == 0;
                cases += cast_case(
                    &mut rng, &src, &dsrc, st, dt, dst_off, scale, mode, with_amax,
                ) as usize;
            }
        }
    }
    println!("{cases} cast configurations bit-exact");
    assert!(cases >= 40, "too few valid cast configurations: {cases}");
}

/// Every bf16, f16 and FP8 bit pattern (and 65536 f32 patterns spread over all exponents and
/// both signs) through every cast and rounding mode.
#[test]
fn casts_of_every_pattern_match_the_cpu() {
    let Some(_dev) = device("casts_of_every_pattern_match_the_cpu") else {
        return;
    };
    let mut rng = rng("casts_of_every_pattern_match_the_cpu");
    let mut cases = 0;
    for st in TYPES {
        let src: Vec<u8> = match size(st) {
            4 => (0..65536u32)
                .flat_map(|i| i.wrapping_mul(65537).wrapping_add(i >> 3).to_le_bytes())
                .collect(),
            2 => (0..=u16::MAX).flat_map(|i| i.to_le_bytes()).collect(),
            _ => (0..=u8::MAX).collect(),
        };
        let dsrc = DevBuf::new(&mut rng, &src, 0);
        for dt in TYPES {
            for mode in MODES {
                cases += cast_case(&mut rng, &src, &dsrc, st, dt, 0, 1.0, mode, true) as usize;
            }
        }
    }
    println!("{cases} exhaustive cast configurations bit-exact");
    assert!(cases >= 40, "too few valid configurations: {cases}");
}

#[test]
fn cast_transpose_matches_the_cpu() {
    let Some(_dev) = device("cast_transpose_matches_the_cpu") else {
        return;
    };
    let mut rng = rng("cast_transpose_matches_the_cpu");
    let shapes = [
        (1usize, 1usize),
        (63, 65),
        (64, 64),
        (130, 70),
        (7, 200),
        (200, 9),
    ];
    let (mut cases, mut valid) = (0, 0);
    for st in TYPES {
        for dt in TYPES {
            let mode = rng.pick(&MODES);
            // One shape with more tiles than blocks (each block loops over tiles).
            let (rows, cols) = if (st, dt) == (UNITFP8_F32, UNITFP8_E4M3) {
                (600, 700)
            } else {
                rng.pick(&shapes)
            };
            let ld_src = cols + rng.pick(&[0usize, 3]);
            let ld_dst = cols + rng.pick(&[0usize, 5]);
            let ld_dst_t = rows + rng.pick(&[0usize, 2]);
            let which = rng.below(3); // 0: both outputs, 1: no dst, 2: no dst_t
            let scale = rng.pick(&[1.0f32, 0.5, 3.0]);
            let seed = rng.u64();
            let with_amax = rng.below(2) == 0;
            let src = random_elements(&mut rng, st, rows * ld_src);
            let p_dst = rng.bytes(rows * ld_dst * size(dt));
            let p_dst_t = rng.bytes(cols * ld_dst_t * size(dt));
            let (mut c_dst, mut c_dst_t) = (p_dst.clone(), p_dst_t.clone());
            let mut c_amax = 0f32;
            let opt = |p: *mut u8, on: bool| if on { p.cast::<c_void>() } else { null_mut() };
            // SAFETY: buffers sized for their shapes and leading dimensions.
            let cpu_status = unsafe {
                unitfp8_cast_transpose(
                    src.as_ptr().cast(),
                    st,
                    rows,
                    cols,
                    ld_src,
                    opt(c_dst.as_mut_ptr(), which != 1),
                    ld_dst,
                    opt(c_dst_t.as_mut_ptr(), which != 2),
                    ld_dst_t,
                    dt,
                    scale,
                    mode,
                    seed,
                    if with_amax { &mut c_amax } else { null_mut() },
                )
            };
            let off = rng.below(2);
            let dsrc = DevBuf::new(&mut rng, &src, off * size(st));
            let ddst = DevBuf::new(&mut rng, &p_dst, 0);
            let ddst_t = DevBuf::new(&mut rng, &p_dst_t, off * size(dt));
            let damax = DevBuf::new(&mut rng, &[0xAB; 4], 0);
            let dopt = |b: &DevBuf, on: bool| if on { b.ptr() } else { null_mut() };
            // SAFETY: device buffers sized as the host ones.
            let status = unsafe {
                unitfp8_cuda_cast_transpose(
                    dsrc.ptr(),
                    st,
                    rows,
                    cols,
                    ld_src,
                    dopt(&ddst, which != 1),
                    ld_dst,
                    dopt(&ddst_t, which != 2),
                    ld_dst_t,
                    dt,
                    scale,
                    mode,
                    seed,
                    if with_amax {
                        damax.ptr().cast()
                    } else {
                        null_mut()
                    },
                    null_mut(),
                )
            };
            let what = format!(
                "cast_transpose {st}->{dt} mode {mode} {rows}x{cols} ld {ld_src}/{ld_dst}/{ld_dst_t} outputs {which} seed {seed}"
            );
            assert_eq!(status, cpu_status, "{what}: status");
            assert_same(&what, dt, &ddst.read(&what), &c_dst, &exact);
            assert_same(&what, dt, &ddst_t.read(&what), &c_dst_t, &exact);
            let got_amax = damax.read(&what);
            if cpu_status == UNITFP8_OK && with_amax {
                assert_eq!(got_amax, c_amax.to_le_bytes(), "{what}: amax");
            } else {
                assert_eq!(got_amax, [0xAB; 4], "{what}: amax written");
            }
            cases += (cpu_status == UNITFP8_OK) as usize;
            // Only stochastic rounding to a non-FP8 type is refused.
            let fp8 = dt == UNITFP8_E4M3 || dt == UNITFP8_E5M2;
            valid += (fp8 || mode != UNITFP8_ROUND_STOCHASTIC_SATURATE) as usize;
        }
    }
    println!("{cases} cast-transpose configurations bit-exact");
    // The modes are drawn at random; the 10 pairs with an FP8 destination are always valid.
    assert_eq!(cases, valid, "valid configurations refused");
    assert!(cases >= 10, "too few valid configurations: {cases}");
}

// ---------------------------------------------------------------------------------------------
// Residual mix

#[test]
fn residual_mixes_match_the_cpu() {
    let Some(_dev) = device("residual_mixes_match_the_cpu") else {
        return;
    };
    let mut rng = rng("residual_mixes_match_the_cpu");
    let mut cases = 0;
    for io in [UNITFP8_F32, UNITFP8_BF16, UNITFP8_F16] {
        for q_type in [0, UNITFP8_E4M3, UNITFP8_E5M2] {
            for backward in [false, true] {
                for variant in ["plain", "inplace", "misaligned"] {
                    // Aligned calls take the kernels' 4-element path: the plain one always
                    // with stochastic rounding of the copy, the in-place one always with a
                    // nearest mode, both long enough for it (a random pick left some runs
                    // without an aligned stochastic case, and a deliberately wrong element
                    // index there went unnoticed); misaligned calls draw anything.
                    let n = match variant {
                        "misaligned" => rng.pick(&[1usize, 2, 7, 64, 1001, 5003]),
                        _ => rng.pick(&[64usize, 1001, 5003]),
                    };
                    let u = rng.unit() as f32;
                    let tau = rng.pick(&[0.0f32, 1.0, 0.1, 0.4, u]);
                    let mode = match (q_type, variant) {
                        (0, _) => 0,
                        (_, "plain") => UNITFP8_ROUND_STOCHASTIC_SATURATE,
                        (_, "inplace") => rng.pick(&MODES[..2]),
                        _ => rng.pick(&MODES),
                    };
                    let seed = rng.u64();
                    let accumulate = rng.below(2) as i32;
                    let off = if variant == "misaligned" { size(io) } else { 0 };
                    let qoff = if variant == "misaligned" { 1 } else { 0 };
                    let x = random_elements(&mut rng, io, n);
                    let y = random_elements(&mut rng, io, n);
                    let p_out = rng.bytes(n * size(io));
                    let p_q = rng.bytes(n);
                    let inplace = variant == "inplace";
                    let what = format!(
                        "mix io {io} fp8 {q_type} backward {backward} {variant} n {n} tau {tau} mode {mode} acc {accumulate} seed {seed}"
                    );
                    // CPU: forward out = mix(x, y) (in place: out is x); backward
                    // grad_out = x, grad_x = y (read when accumulating), grad_f = out
                    // (in place: grad_f is grad_out).
                    let (mut c_x, mut c_y, mut c_out, mut c_q) =
                        (x.clone(), y.clone(), p_out.clone(), p_q.clone());
                    let qp = |p: *mut u8| {
                        if q_type == 0 {
                            null_mut()
                        } else {
                            p.cast::<c_void>()
                        }
                    };
                    // SAFETY: every buffer holds n elements; in-place calls alias exactly.
                    let cpu_status = unsafe {
                        if !backward {
                            let out = if inplace {
                                c_x.as_mut_ptr()
                            } else {
                                c_out.as_mut_ptr()
                            };
                            unitfp8_residual_mix(
                                c_x.as_ptr().cast(),
                                c_y.as_ptr().cast(),
                                out.cast(),
                                io,
                                n,
                                tau,
                                qp(c_q.as_mut_ptr()),
                                q_type,
                                mode,
                                seed,
                            )
                        } else {
                            let gf = if inplace {
                                c_x.as_mut_ptr()
                            } else {
                                c_out.as_mut_ptr()
                            };
                            unitfp8_residual_mix_backward(
                                c_x.as_ptr().cast(),
                                c_y.as_mut_ptr().cast(),
                                gf.cast(),
                                io,
                                n,
                                tau,
                                accumulate,
                                qp(c_q.as_mut_ptr()),
                                q_type,
                                mode,
                                seed,
                            )
                        }
                    };
                    let dx = DevBuf::new(&mut rng, &x, off);
                    let dy = DevBuf::new(&mut rng, &y, off);
                    let dout = DevBuf::new(&mut rng, &p_out, off);
                    let dq = DevBuf::new(&mut rng, &p_q, qoff);
                    let dqp = if q_type == 0 { null_mut() } else { dq.ptr() };
                    // SAFETY: device buffers as the host ones.
                    let status = unsafe {
                        if !backward {
                            let out = if inplace { dx.ptr() } else { dout.ptr() };
                            unitfp8_cuda_residual_mix(
                                dx.ptr(),
                                dy.ptr(),
                                out,
                                io,
                                n,
                                tau,
                                dqp,
                                q_type,
                                mode,
                                seed,
                                null_mut(),
                            )
                        } else {
                            let gf = if inplace { dx.ptr() } else { dout.ptr() };
                            unitfp8_cuda_residual_mix_backward(
                                dx.ptr(),
                                dy.ptr(),
                                gf,
                                io,
                                n,
                                tau,
                                accumulate,
                                dqp,
                                q_type,
                                mode,
                                seed,
                                null_mut(),
                            )
                        }
                    };
                    assert_eq!(status, cpu_status, "{what}: status");
                    // Two NaN addends: forward x*a + f*b; backward (accumulating) grad_x + g*a.
                    let (a0, b0) = (tau == 1.0, tau == 0.0);
                    let two_nans = |i: usize| {
                        if backward {
                            accumulate != 0
                                && io_value(io, &y, i).is_nan()
                                && nan_term(io_value(io, &x, i), a0)
                        } else {
                            nan_term(io_value(io, &x, i), a0) && nan_term(io_value(io, &y, i), b0)
                        }
                    };
                    assert_same(&what, io, &dx.read(&what), &c_x, &two_nans);
                    assert_same(&what, io, &dy.read(&what), &c_y, &two_nans);
                    assert_same(&what, io, &dout.read(&what), &c_out, &two_nans);
                    assert_same(
                        &what,
                        q_type.max(UNITFP8_E4M3),
                        &dq.read(&what),
                        &c_q,
                        &two_nans,
                    );
                    cases += (cpu_status == UNITFP8_OK) as usize;
                }
            }
        }
    }
    println!("{cases} residual-mix configurations bit-exact");
    assert!(cases >= 40, "too few valid configurations: {cases}");
}

// ---------------------------------------------------------------------------------------------
// GEMM

/// The accumulation order of one GEMM kernel.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Order {
    /// f32 FMAs in K order, a fresh partial sum per 128 K added into the total.
    Naive,
    /// Each 32-K tensor-core sum rounded once to f32, added into an f32 total.
    MmaSync,
    /// Four chained 32-K tensor-core sums per 128 K (each rounded once, accumulator included),
    /// the 128-K result added into an f32 total.
    Wgmma,
}

/// value * 2^16 of a finite FP8 code (exact: every FP8 value is a multiple of 2^-16).
fn fixed16(fmt: Fp8Format, code: u8) -> i128 {
    let v = fmt.decode(code) as f64 * 65536.0;
    assert!(v.is_finite() && v == v.trunc());
    v as i128
}

/// x * 2^-32 rounded to the nearest f32, ties to even.
fn round_fixed32(x: i128) -> f32 {
    if x == 0 {
        return 0.0;
    }
    let mut m = x.unsigned_abs();
    let bits = 128 - m.leading_zeros() as i32;
    let shift = (bits - 24).max(0);
    if shift > 0 {
        let rem = m & ((1u128 << shift) - 1);
        let half = 1u128 << (shift - 1);
        m >>= shift;
        if rem > half || (rem == half && m & 1 == 1) {
            m += 1;
        }
    }
    let r = m as f64 * 2f64.powi(shift - 32);
    (if x < 0 { -r } else { r }) as f32
}

/// An f32 multiple of 2^-32 as the integer value * 2^32.
fn to_fixed32(v: f32) -> i128 {
    let s = v as f64 * 2f64.powi(32);
    assert!(s == s.trunc() && s.abs() < 1e30, "{v}");
    s as i128
}

/// One output element of A * B^T (rows `a` and `b`, K codes each) summed in `order`.
fn dot(order: Order, fa: Fp8Format, fb: Fp8Format, a: &[u8], b: &[u8]) -> f32 {
    let k = a.len();
    let exact = |lo: usize, hi: usize| -> i128 {
        (lo..hi.min(k))
            .map(|i| fixed16(fa, a[i]) * fixed16(fb, b[i]))
            .sum()
    };
    let mut total = 0f32;
    match order {
        Order::Naive => {
            for k0 in (0..k).step_by(128) {
                let mut part = 0f32;
                for i in k0..(k0 + 128).min(k) {
                    part = fa.decode(a[i]).mul_add(fb.decode(b[i]), part);
                }
                total += part;
            }
        }
        Order::MmaSync => {
            for k0 in (0..k).step_by(32) {
                total += round_fixed32(exact(k0, k0 + 32));
            }
        }
        Order::Wgmma => {
            for k0 in (0..k).step_by(128) {
                let mut d = 0f32;
                for j in 0..4 {
                    let lo = k0 + 32 * j;
                    let prev = if j == 0 { 0 } else { to_fixed32(d) };
                    d = round_fixed32(prev + exact(lo, lo + 32));
                }
                total += d;
            }
        }
    }
    total
}

fn decode_c(t: u32, bytes: &[u8]) -> f32 {
    match t {
        UNITFP8_F32 => f32::from_le_bytes(bytes.try_into().unwrap()),
        UNITFP8_BF16 => {
            f32::from_bits((u16::from_le_bytes(bytes.try_into().unwrap()) as u32) << 16)
        }
        _ => fp8_of(t).decode(bytes[0]),
    }
}

fn encode_c(t: u32, v: f32) -> Vec<u8> {
    match t {
        UNITFP8_F32 => v.to_le_bytes().to_vec(),
        UNITFP8_BF16 => f32_to_bf16_bits(v, false).to_le_bytes().to_vec(),
        _ => vec![fp8_of(t).encode(v, Rounding::NearestSaturate, 0)],
    }
}

/// Finite FP8 codes of magnitude about 2^-3 .. 2^3 with random signs.
fn fp8_operand(rng: &mut Rng, fmt: Fp8Format, len: usize) -> Vec<u8> {
    (0..len)
        .map(|_| {
            let sign = if rng.below(2) == 0 { 1.0 } else { -1.0 };
            let v = ((rng.unit() * 6.0 - 3.0).exp2() * sign) as f32;
            fmt.encode(v, Rounding::NearestSaturate, 0)
        })
        .collect()
}

/// A product C = alpha * A * B^T + beta * C0 to check: A is m x k (row i at `a[i * lda..]`),
/// B is n x k (row j at `b[j * ldb..]`), C element (i, j) at index `i * c_rs + j * c_cs`.
struct Product<'a> {
    what: String,
    order: Order,
    a: &'a [u8],
    fa: Fp8Format,
    lda: usize,
    b: &'a [u8],
    fb: Fp8Format,
    ldb: usize,
    m: usize,
    n: usize,
    k: usize,
    alpha: f32,
    beta: f32,
    ct: u32,
    c_rs: usize,
    c_cs: usize,
}

/// Checks the device's C (`got`, started as `c0`): on the emulator every element equals the
/// model of the kernel's order; on a GPU, f32 C has relative Frobenius error <= 1e-5 against
/// float64 and narrower C is within one unit in the last place of the model. Elements outside
/// the m x n matrix must be untouched.
fn check_product(dev: &Device, p: &Product, c0: &[u8], got: &[u8]) {
    let what = &p.what;
    let cs = size(p.ct);
    let mut inside = vec![false; c0.len() / cs];
    let (mut err2, mut ref2) = (0f64, 0f64);
    for i in 0..p.m {
        for j in 0..p.n {
            let e = i * p.c_rs + j * p.c_cs;
            inside[e] = true;
            let (old, now) = (&c0[e * cs..(e + 1) * cs], &got[e * cs..(e + 1) * cs]);
            let arow = &p.a[i * p.lda..i * p.lda + p.k];
            let brow = &p.b[j * p.ldb..j * p.ldb + p.k];
            let v = dot(p.order, p.fa, p.fb, arow, brow);
            let mut r = if p.k == 0 { 0.0 } else { p.alpha * v };
            if p.beta != 0.0 {
                let c = decode_c(p.ct, old);
                r = if p.k == 0 { p.beta * c } else { r + p.beta * c };
            }
            let want = encode_c(p.ct, r);
            if dev.emulated {
                assert_eq!(now, &want[..], "{what}: C({i}, {j})");
                continue;
            }
            let exact: f64 = arow
                .iter()
                .zip(brow)
                .map(|(&x, &y)| p.fa.decode(x) as f64 * p.fb.decode(y) as f64)
                .sum::<f64>()
                * p.alpha as f64
                + if p.beta != 0.0 {
                    p.beta as f64 * decode_c(p.ct, old) as f64
                } else {
                    0.0
                };
            let d = decode_c(p.ct, now) as f64;
            if p.ct == UNITFP8_F32 {
                err2 += (d - exact).powi(2);
                ref2 += exact.powi(2);
            } else {
                let m = decode_c(p.ct, &want) as f64;
                let ulp = match p.ct {
                    UNITFP8_BF16 => 2f64.powi(-7),
                    UNITFP8_E4M3 => 2f64.powi(-3),
                    _ => 2f64.powi(-2),
                } * m.abs().max(2f64.powi(-6));
                assert!((d - m).abs() <= ulp, "{what}: C({i}, {j}) = {d}, model {m}");
            }
        }
    }
    for (e, &inn) in inside.iter().enumerate() {
        if !inn {
            assert_eq!(
                &got[e * cs..(e + 1) * cs],
                &c0[e * cs..(e + 1) * cs],
                "{what}: C element {e} outside the matrix written"
            );
        }
    }
    if !dev.emulated && p.ct == UNITFP8_F32 && ref2 > 0.0 {
        let rel = (err2 / ref2).sqrt();
        assert!(rel <= 1e-5, "{what}: relative Frobenius error {rel:e}");
    }
}

struct GemmCase {
    m: usize,
    n: usize,
    k: usize,
    lda: usize,
    ldb: usize,
    /// Leading dimension of C: its row stride, or its column stride when `col_major`.
    ldc: usize,
    col_major: bool,
    at: u32,
    bt: u32,
    ct: u32,
    alpha: f32,
    beta: f32,
}

/// Runs one `unitfp8_cuda_gemm` with kernel `kernel` forced and checks it; returns false when
/// that kernel reported "unsupported" for these operands (C must then be untouched).
fn gemm_case(dev: &Device, rng: &mut Rng, kernel: u32, order: Order, g: &GemmCase) -> bool {
    let (fa, fb) = (fp8_of(g.at), fp8_of(g.bt));
    let a = fp8_operand(rng, fa, g.m * g.lda);
    let b = fp8_operand(rng, fb, g.n * g.ldb);
    let c_len = if g.col_major {
        g.n * g.ldc
    } else {
        g.m * g.ldc
    };
    let c0: Vec<u8> = if g.beta != 0.0 {
        (0..c_len)
            .flat_map(|_| encode_c(g.ct, (rng.unit() * 4.0 - 2.0) as f32))
            .collect()
    } else {
        rng.bytes(c_len * size(g.ct))
    };
    let (c_rs, c_cs) = if g.col_major { (1, g.ldc) } else { (g.ldc, 1) };
    let da = DevBuf::new(rng, &a, 0);
    let db = DevBuf::new(rng, &b, 0);
    let dc = DevBuf::new(rng, &c0, 0);
    assert_eq!(unitfp8_cuda_set_gemm_kernel(kernel), UNITFP8_OK);
    // SAFETY: device buffers hold the K-major operands and C at the given strides.
    let status = unsafe {
        unitfp8_cuda_gemm(
            g.m,
            g.n,
            g.k,
            g.alpha,
            da.ptr(),
            g.at,
            g.lda as isize,
            1,
            db.ptr(),
            g.bt,
            1,
            g.ldb as isize,
            g.beta,
            dc.ptr(),
            g.ct,
            c_rs as isize,
            c_cs as isize,
            null_mut(),
        )
    };
    assert_eq!(unitfp8_cuda_set_gemm_kernel(0), UNITFP8_OK);
    let what = format!(
        "gemm kernel {kernel} {}x{}x{} ld {}/{}/{}{} types {}/{}->{} alpha {} beta {}",
        g.m,
        g.n,
        g.k,
        g.lda,
        g.ldb,
        g.ldc,
        if g.col_major { " (C column-major)" } else { "" },
        g.at,
        g.bt,
        g.ct,
        g.alpha,
        g.beta
    );
    if status == UNITFP8_ERROR_UNSUPPORTED {
        assert_eq!(
            dc.read(&what),
            c0,
            "{what}: C written by an unsupported call"
        );
        return false;
    }
    assert_eq!(status, UNITFP8_OK, "{what}");
    let got = dc.read(&what);
    let p = Product {
        what,
        order,
        a: &a,
        fa,
        lda: g.lda,
        b: &b,
        fb,
        ldb: g.ldb,
        m: g.m,
        n: g.n,
        k: g.k,
        alpha: g.alpha,
        beta: g.beta,
        ct: g.ct,
        c_rs,
        c_cs,
    };
    check_product(dev, &p, &c0, &got);
    true
}

/// The tensor-core kernels this device runs, fastest first, with their accumulation orders.
fn tensor_core_kernels(dev: &Device) -> Vec<(u32, Order)> {
    let mut kernels = Vec::new();
    if dev.cc == (9, 0) {
        kernels.push((1, Order::Wgmma));
    }
    kernels.push((2, Order::MmaSync));
    kernels
}

#[test]
fn gemm_kernels_match_their_model() {
    let Some(dev) = device("gemm_kernels_match_their_model") else {
        return;
    };
    let mut rng = rng("gemm_kernels_match_their_model");
    let _forced = GEMM_KERNEL_LOCK.lock().unwrap_or_else(|e| e.into_inner());
    let fp8 = [UNITFP8_E4M3, UNITFP8_E5M2];
    let outs = [UNITFP8_F32, UNITFP8_BF16, UNITFP8_E4M3, UNITFP8_E5M2];
    // (m, n, k, lda, ldb): one row; ragged tiles with a K tail; more K stages than pipeline
    // stages; more tiles than multiprocessors (the persistent wgmma grid loops); odd sizes.
    let shapes = [
        (1usize, 3usize, 16usize, 16usize, 16usize),
        (130, 200, 300, 304, 320),
        (64, 128, 1000, 1008, 1008),
        (300, 260, 256, 256, 272),
        (77, 45, 130, 144, 144),
    ];
    let mut kernels = vec![(3u32, Order::Naive)];
    kernels.extend(tensor_core_kernels(&dev));
    for (kernel, order) in kernels {
        let mut cases = 0;
        for (i, &(m, n, k, lda, ldb)) in shapes.iter().enumerate() {
            for j in 0..2 {
                let ct = outs[(i + 2 * j) % 4];
                let beta = if ct == UNITFP8_F32 || ct == UNITFP8_BF16 {
                    rng.pick(&[0.0f32, 0.5, -1.0])
                } else {
                    0.0
                };
                let col_major = (i + j) % 3 == 1 && m > 1;
                let g = GemmCase {
                    m,
                    n,
                    k,
                    lda,
                    ldb,
                    ldc: if col_major { m } else { n } + rng.pick(&[0usize, 3]),
                    col_major,
                    at: fp8[(i + j) % 2],
                    bt: fp8[(i / 2 + j) % 2],
                    ct,
                    alpha: rng.pick(&[1.0f32, 0.03125, -0.7]),
                    beta,
                };
                assert!(
                    gemm_case(&dev, &mut rng, kernel, order, &g),
                    "kernel {kernel} refused an aligned case"
                );
                cases += 1;
            }
        }
        println!("GEMM kernel {kernel} ({order:?}): {cases} cases exact");
    }
    // k = 0 (C = beta * C, only the naive kernel takes it) and misaligned operands: the
    // tensor-core kernels refuse them, the automatic choice falls back to the naive kernel.
    let mut g = GemmCase {
        m: 5,
        n: 7,
        k: 40,
        lda: 40,
        ldb: 41,
        ldc: 7,
        col_major: false,
        at: UNITFP8_E4M3,
        bt: UNITFP8_E4M3,
        ct: UNITFP8_F32,
        alpha: 1.0,
        beta: 0.0,
    };
    for (kernel, _) in tensor_core_kernels(&dev) {
        assert!(!gemm_case(&dev, &mut rng, kernel, Order::Naive, &g));
    }
    assert!(gemm_case(&dev, &mut rng, 0, Order::Naive, &g));
    (g.k, g.beta, g.ldb) = (0, 0.75, 48);
    for (kernel, _) in tensor_core_kernels(&dev) {
        assert!(!gemm_case(&dev, &mut rng, kernel, Order::Naive, &g));
    }
    assert!(gemm_case(&dev, &mut rng, 0, Order::Naive, &g));
}

/// NaN results are the canonical positive quiet NaN (f32 0x7FC00000, bf16 0x7FC0, E4M3 0x7F,
/// E5M2 0x7E), as on the CPU: NaN operands of both signs meeting in one dot product (the naive
/// kernel; the tensor-core kernels too on a GPU: the emulator's exact tensor-core model has no
/// NaN), and NaNs of both signs in C read by β ≠ 0 (every kernel). Other elements are exact:
/// sums of ones.
#[test]
fn gemm_nan_results_are_canonical() {
    let Some(dev) = device("gemm_nan_results_are_canonical") else {
        return;
    };
    let mut rng = rng("gemm_nan_results_are_canonical");
    let _forced = GEMM_KERNEL_LOCK.lock().unwrap_or_else(|e| e.into_inner());
    let (m, n, k) = (4usize, 16usize, 64usize);
    let mut kernels = vec![(3u32, true)];
    kernels.extend(
        tensor_core_kernels(&dev)
            .into_iter()
            .map(|(kernel, _)| (kernel, !dev.emulated)),
    );
    for (kernel, nan_operands) in kernels {
        for ct in [UNITFP8_F32, UNITFP8_BF16, UNITFP8_E4M3, UNITFP8_E5M2] {
            let (at, bt) = (UNITFP8_E4M3, UNITFP8_E5M2);
            // Ones; with NaN operands: row 0 of A holds +NaN and -NaN, row 1 -NaN; row 2 of B
            // (column 2 of C) holds +NaN, row 5 -NaN and +NaN.
            let mut a = vec![0x38u8; m * k];
            let mut b = vec![0x3Cu8; n * k];
            if nan_operands {
                (a[3], a[40], a[k + 7]) = (0x7F, 0xFF, 0xFF);
                (b[2 * k + 9], b[5 * k], b[5 * k + 63]) = (0x7F, 0xFE, 0x7D);
            }
            let beta = if ct == UNITFP8_F32 || ct == UNITFP8_BF16 {
                1.0
            } else {
                0.0
            };
            // C: zeros, with NaNs of both signs where β reads them (row 3).
            let mut c0 = vec![0u8; m * n * size(ct)];
            let c_nans: &[u32] = if ct == UNITFP8_F32 {
                &[0xFFC0_0000, 0x7FC0_0000, 0xFF80_0001, 0x7FFF_FFFF]
            } else {
                &[0xFFC0, 0x7FC0, 0xFF81, 0x7FFF]
            };
            let c_nan = |j: usize| beta != 0.0 && j.is_multiple_of(3);
            for j in (0..n).filter(|&j| c_nan(j)) {
                let e = (3 * n + j) * size(ct);
                let bits = c_nans[j % 4].to_le_bytes();
                c0[e..e + size(ct)].copy_from_slice(&bits[..size(ct)]);
            }
            let da = DevBuf::new(&mut rng, &a, 0);
            let db = DevBuf::new(&mut rng, &b, 0);
            let dc = DevBuf::new(&mut rng, &c0, 0);
            assert_eq!(unitfp8_cuda_set_gemm_kernel(kernel), UNITFP8_OK);
            // SAFETY: device buffers hold the K-major operands and row-major C.
            let status = unsafe {
                unitfp8_cuda_gemm(
                    m,
                    n,
                    k,
                    1.0,
                    da.ptr(),
                    at,
                    k as isize,
                    1,
                    db.ptr(),
                    bt,
                    1,
                    k as isize,
                    beta,
                    dc.ptr(),
                    ct,
                    n as isize,
                    1,
                    null_mut(),
                )
            };
            assert_eq!(unitfp8_cuda_set_gemm_kernel(0), UNITFP8_OK);
            let what = format!("gemm kernel {kernel} C type {ct} nan operands {nan_operands}");
            assert_eq!(status, UNITFP8_OK, "{what}");
            let got = dc.read(&what);
            let canonical = match ct {
                UNITFP8_F32 => vec![0x00, 0x00, 0xC0, 0x7F],
                UNITFP8_BF16 => vec![0xC0, 0x7F],
                UNITFP8_E4M3 => vec![0x7F],
                _ => vec![0x7E],
            };
            for i in 0..m {
                for j in 0..n {
                    let nan = (nan_operands && (i < 2 || j == 2 || j == 5)) || (i == 3 && c_nan(j));
                    // 1.0 (E4M3 0x38) times 1.0 (E5M2 0x3C), k times; old C is 0.
                    let want = if nan {
                        canonical.clone()
                    } else {
                        encode_c(ct, k as f32)
                    };
                    let e = (i * n + j) * size(ct);
                    assert_eq!(&got[e..e + size(ct)], &want[..], "{what}: C({i}, {j})");
                }
            }
        }
    }
}

#[test]
fn linear_layer_matches_its_model() {
    let Some(dev) = device("linear_layer_matches_its_model") else {
        return;
    };
    let mut rng = rng("linear_layer_matches_its_model");
    let _forced = GEMM_KERNEL_LOCK.lock().unwrap_or_else(|e| e.into_inner());
    let (batch, fan_in, fan_out) = (96usize, 272usize, 144usize);
    let (kernel, order) = tensor_core_kernels(&dev)[0];
    let (e4, e5) = (Fp8Format::E4M3, Fp8Format::E5M2);
    let x = fp8_operand(&mut rng, e4, batch * fan_in);
    let w = fp8_operand(&mut rng, e4, fan_out * fan_in);
    let w_t = fp8_operand(&mut rng, e4, fan_in * fan_out);
    let dy = fp8_operand(&mut rng, e5, batch * fan_out);
    let dy_t = fp8_operand(&mut rng, e5, fan_out * batch);
    let x_t = fp8_operand(&mut rng, e4, fan_in * batch);
    let alpha = 1.0 / (fan_in as f32).sqrt();
    let dev_buf = |rng: &mut Rng, v: &[u8]| DevBuf::new(rng, v, 0);
    assert_eq!(unitfp8_cuda_set_gemm_kernel(kernel), UNITFP8_OK);
    let product = |what: &str, a, fa, lda, b, fb, ldb, m, n, k, beta, ct| Product {
        what: format!("{what} (kernel {kernel})"),
        order,
        a,
        fa,
        lda,
        b,
        fb,
        ldb,
        m,
        n,
        k,
        alpha,
        beta,
        ct,
        c_rs: n,
        c_cs: 1,
    };
    // Forward: y = alpha x W^T, bf16 out; alpha given as 0 means 1/sqrt(fan_in).
    let y0 = rng.bytes(batch * fan_out * 2);
    let (dx, dw, dyb) = (
        dev_buf(&mut rng, &x),
        dev_buf(&mut rng, &w),
        dev_buf(&mut rng, &y0),
    );
    // SAFETY: dense device buffers of the documented shapes.
    let s = unsafe {
        unitfp8_cuda_linear_forward(
            batch,
            fan_in,
            fan_out,
            0.0,
            dx.ptr(),
            dw.ptr(),
            dyb.ptr(),
            UNITFP8_BF16,
            null_mut(),
        )
    };
    assert_eq!(s, UNITFP8_OK);
    let p = product(
        "linear_forward",
        &x,
        e4,
        fan_in,
        &w,
        e4,
        fan_in,
        batch,
        fan_out,
        fan_in,
        0.0,
        UNITFP8_BF16,
    );
    check_product(&dev, &p, &y0, &dyb.read("linear_forward"));
    // Backward data: dx = alpha dy W with W^T given, f32 out.
    let g0 = rng.bytes(batch * fan_in * 4);
    let (ddy, dwt, dgx) = (
        dev_buf(&mut rng, &dy),
        dev_buf(&mut rng, &w_t),
        dev_buf(&mut rng, &g0),
    );
    // SAFETY: as above.
    let s = unsafe {
        unitfp8_cuda_linear_backward_data(
            batch,
            fan_in,
            fan_out,
            alpha,
            ddy.ptr(),
            dwt.ptr(),
            0.0,
            dgx.ptr(),
            UNITFP8_F32,
            null_mut(),
        )
    };
    assert_eq!(s, UNITFP8_OK);
    let p = product(
        "linear_backward_data",
        &dy,
        e5,
        fan_out,
        &w_t,
        e4,
        fan_out,
        batch,
        fan_in,
        fan_out,
        0.0,
        UNITFP8_F32,
    );
    check_product(&dev, &p, &g0, &dgx.read("linear_backward_data"));
    // Backward weight, accumulating: dW = alpha dy^T x + dW.
    let w0: Vec<u8> = (0..fan_out * fan_in)
        .flat_map(|_| ((rng.unit() * 2.0 - 1.0) as f32).to_le_bytes())
        .collect();
    let (ddyt, dxt, ddw) = (
        dev_buf(&mut rng, &dy_t),
        dev_buf(&mut rng, &x_t),
        dev_buf(&mut rng, &w0),
    );
    // SAFETY: as above.
    let s = unsafe {
        unitfp8_cuda_linear_backward_weight(
            batch,
            fan_in,
            fan_out,
            alpha,
            ddyt.ptr(),
            dxt.ptr(),
            1.0,
            ddw.ptr().cast(),
            null_mut(),
        )
    };
    assert_eq!(s, UNITFP8_OK);
    let p = product(
        "linear_backward_weight",
        &dy_t,
        e5,
        batch,
        &x_t,
        e4,
        batch,
        fan_out,
        fan_in,
        batch,
        1.0,
        UNITFP8_F32,
    );
    check_product(&dev, &p, &w0, &ddw.read("linear_backward_weight"));
    assert_eq!(unitfp8_cuda_set_gemm_kernel(0), UNITFP8_OK);
    println!("linear forward / backward data / backward weight exact (kernel {kernel})");
}

// ---------------------------------------------------------------------------------------------
// The element functions on every f32 (emulator only)

/// `unitfp8_emu_encode_f32` of the emulator's libcuda.so: the kernels' own element encoder.
type EncodeHook =
    unsafe extern "C" fn(*const u32, *mut c_void, u64, i32, i32, u64, u32, u32, u64, f32);
/// `unitfp8_emu_sr_bits`: the kernels' stochastic-rounding bits of one element.
type SrBitsHook = unsafe extern "C" fn(u64, u32, u32, u64) -> u32;

/// Runs the kernels' encoder (host-compiled, through the emulator's hook) on f32 bit patterns
/// `lo..hi` in steps of `step`, as elements `index0 + i`, and compares every result with the
/// scalar reference; returns the number compared.
#[allow(clippy::too_many_arguments)]
fn sweep(
    encode: EncodeHook,
    dt: u32,
    mode: u32,
    seed: u64,
    index0: u64,
    lo: u64,
    hi: u64,
    step: u64,
) -> u64 {
    let key = unitfp8::rng::StreamKey::new(seed, 0);
    let rounding = Rounding::from_code(mode).unwrap();
    let chunk = 1u64 << 16;
    let mut src = Vec::with_capacity(chunk as usize);
    let mut got = vec![0u16; chunk as usize];
    let mut count = 0;
    let mut start = lo;
    while start < hi {
        src.clear();
        src.extend(
            (0..chunk)
                .map(|j| start + j * step)
                .take_while(|&b| b < hi)
                .map(|b| b as u32),
        );
        let n = src.len();
        // SAFETY: src holds n inputs; got has room for n outputs of up to 2 bytes.
        unsafe {
            encode(
                src.as_ptr(),
                got.as_mut_ptr().cast(),
                n as u64,
                dt as i32,
                mode as i32,
                seed,
                key.k1,
                key.k2,
                index0 + count,
                1.0,
            )
        };
        // SAFETY: got holds at least n * 2 initialized bytes (plain data).
        let bytes: &[u8] = unsafe { core::slice::from_raw_parts(got.as_ptr().cast(), n * 2) };
        for (j, &b) in src.iter().enumerate() {
            let x = f32::from_bits(b);
            let index = index0 + count + j as u64;
            let (dev, want) = match dt {
                UNITFP8_BF16 => (got[j], f32_to_bf16_bits(x, mode != UNITFP8_ROUND_NEAREST)),
                UNITFP8_F16 => (
                    got[j],
                    unitfp8::fp8::f32_to_f16_bits(x, mode != UNITFP8_ROUND_NEAREST),
                ),
                _ => {
                    let random = unitfp8::rng::stochastic_bits(seed, index);
                    (
                        bytes[j] as u16,
                        fp8_of(dt).encode(x, rounding, random) as u16,
                    )
                }
            };
            assert_eq!(
                dev, want,
                "type {dt} mode {mode}: f32 {b:#010x} (element {index}): kernel {dev:#x}, reference {want:#x}"
            );
        }
        count += n as u64;
        start += n as u64 * step;
    }
    count
}

#[test]
fn kernel_encoders_on_every_f32_match_the_reference() {
    let Some(dev) = device("kernel_encoders_on_every_f32_match_the_reference") else {
        return;
    };
    if !dev.emulated {
        println!(
            "skipped on a GPU: this test calls the emulator's hooks (the cast tests cover the GPU)"
        );
        return;
    }
    let mut rng = rng("kernel_encoders_on_every_f32_match_the_reference");
    // SAFETY: the driver library is loaded (a device answered); the hooks have these types.
    let (encode, sr_bits) = unsafe {
        let lib = cudarc::driver::sys::culib();
        let e: EncodeHook = *lib.get(b"unitfp8_emu_encode_f32\0").expect("emulator hook");
        let s: SrBitsHook = *lib.get(b"unitfp8_emu_sr_bits\0").expect("emulator hook");
        (e, s)
    };
    // Stochastic-rounding bits, also above 2^32 elements (where the kernels derive the key).
    let seed = rng.u64();
    let key = unitfp8::rng::StreamKey::new(seed, 0);
    let mut indices = vec![
        0u64,
        1,
        (1 << 32) - 1,
        1 << 32,
        (1 << 32) + 1,
        u64::MAX,
        7 << 40,
    ];
    indices.extend((0..10_000).map(|_| rng.u64() >> rng.below(40)));
    for &i in &indices {
        // SAFETY: plain function of its arguments.
        let got = unsafe { sr_bits(seed, key.k1, key.k2, i) };
        assert_eq!(
            got,
            unitfp8::rng::stochastic_bits(seed, i),
            "SR bits of element {i}, seed {seed}"
        );
    }
    // Every f32 through the saturating nearest encoders (the muS casts) on two threads when
    // UNITFP8_EMU_EXHAUSTIVE is set (scripts/cuda-emu.sh sets it for one run: about a minute),
    // else every 61st; the other modes and types on every 61st pattern, stochastic rounding at
    // element indices that cross 2^32.
    let full = 1u64 << 32;
    let exhaustive = std::env::var_os("UNITFP8_EMU_EXHAUSTIVE").is_some_and(|v| !v.is_empty());
    let every = if exhaustive { 1 } else { 61 };
    let mut jobs: Vec<(u32, u32, u64, u64, u64, u64)> = Vec::new(); // type, mode, index0, lo, hi, step
    for dt in [UNITFP8_E4M3, UNITFP8_E5M2] {
        jobs.push((dt, UNITFP8_ROUND_NEAREST_SATURATE, 0, 0, full / 2, every));
        jobs.push((dt, UNITFP8_ROUND_NEAREST_SATURATE, 0, full / 2, full, every));
        jobs.push((dt, UNITFP8_ROUND_NEAREST, 0, 0, full, 61));
        jobs.push((
            dt,
            UNITFP8_ROUND_STOCHASTIC_SATURATE,
            full - 30_000_000,
            0,
            full,
            61,
        ));
    }
    for dt in [UNITFP8_BF16, UNITFP8_F16] {
        for mode in [UNITFP8_ROUND_NEAREST_SATURATE, UNITFP8_ROUND_NEAREST] {
            jobs.push((dt, mode, 0, 0, full, 61));
        }
    }
    let next = std::sync::atomic::AtomicUsize::new(0);
    let total = std::sync::atomic::AtomicU64::new(0);
    std::thread::scope(|s| {
        for _ in 0..2 {
            s.spawn(|| {
                loop {
                    let j = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    let Some(&(dt, mode, index0, lo, hi, step)) = jobs.get(j) else {
                        break;
                    };
                    let n = sweep(encode, dt, mode, seed, index0, lo, hi, step);
                    total.fetch_add(n, std::sync::atomic::Ordering::Relaxed);
                }
            });
        }
    });
    println!(
        "{} f32 encodings by the kernels' code equal the reference ({} for E4M3/E5M2 saturating)",
        total.into_inner(),
        if every == 1 { "all 2^32" } else { "every 61st" }
    );
}
