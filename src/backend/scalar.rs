//! The portable scalar back end: the reference semantics of every kernel.

use super::{EncodeArgs, Kernels};
use crate::dtype::DType;
use crate::fp8::{Fp8Format, f32_to_bf16_bits, f32_to_f16_bits};
use half::f16;

/// The scalar kernel table.
pub static KERNELS: Kernels = Kernels {
    bf16_to_f32,
    f16_to_f32,
    fp8_to_f32,
    f32_to_fp8,
    bf16_to_fp8,
    fp8_to_bf16,
    f32_to_bf16,
    f32_to_f16,
    f32_to_f32,
    mix,
    mix_backward,
    transpose_u8,
    stream_copy,
    mix_fp8,
    mix_backward_fp8,
    prefetches_f32_sources: false,
};

#[inline(always)]
fn abs_bits(x: f32) -> u32 {
    x.to_bits() & 0x7FFF_FFFF
}

/// See [`Kernels::bf16_to_f32`].
///
/// # Safety
/// As in the [`Kernels`] contract.
pub unsafe fn bf16_to_f32(src: *const u16, dst: *mut f32, n: usize) {
    for i in 0..n {
        // SAFETY: i < n and the caller guarantees n valid elements.
        unsafe {
            dst.add(i)
                .write_unaligned(f32::from_bits((src.add(i).read_unaligned() as u32) << 16))
        };
    }
}

/// See [`Kernels::f16_to_f32`].
///
/// # Safety
/// As in the [`Kernels`] contract.
pub unsafe fn f16_to_f32(src: *const u16, dst: *mut f32, n: usize) {
    for i in 0..n {
        // SAFETY: i < n and the caller guarantees n valid elements.
        unsafe {
            dst.add(i)
                .write_unaligned(f16_bits_to_f32(src.add(i).read_unaligned()));
        }
    }
}

/// f16 bits → f32, exactly; NaN payloads are kept (shifted) with the quiet bit set.
pub fn f16_bits_to_f32(h: u16) -> f32 {
    let x = f16::from_bits(h);
    if x.is_nan() {
        let sign = ((h as u32) & 0x8000) << 16;
        return f32::from_bits(sign | 0x7FC0_0000 | ((h as u32 & 0x03FF) << 13));
    }
    x.to_f32()
}

/// See [`Kernels::fp8_to_f32`].
///
/// # Safety
/// As in the [`Kernels`] contract.
pub unsafe fn fp8_to_f32(format: Fp8Format, src: *const u8, dst: *mut f32, n: usize) {
    for i in 0..n {
        // SAFETY: i < n and the caller guarantees n valid elements.
        unsafe { dst.add(i).write_unaligned(format.decode(*src.add(i))) };
    }
}

/// See [`Kernels::f32_to_fp8`].
///
/// # Safety
/// As in the [`Kernels`] contract.
pub unsafe fn f32_to_fp8(args: &EncodeArgs, src: *const f32, dst: *mut u8, n: usize) -> u32 {
    let mut amax = 0;
    for i in 0..n {
        // SAFETY: i < n and the caller guarantees n valid elements.
        let x = unsafe { src.add(i).read_unaligned() };
        amax = amax.max(abs_bits(x));
        let random = args.key.bits(args.index_lo.wrapping_add(i as u32));
        let code = args.format.encode(x * args.scale, args.rounding, random);
        // SAFETY: as above.
        unsafe { *dst.add(i) = code };
    }
    amax
}

/// See [`Kernels::bf16_to_fp8`]: [`f32_to_fp8`]'s formula on the widened values.
///
/// # Safety
/// As in the [`Kernels`] contract.
pub unsafe fn bf16_to_fp8(args: &EncodeArgs, src: *const u16, dst: *mut u8, n: usize) -> u32 {
    let mut amax = 0;
    for i in 0..n {
        // SAFETY: i < n and the caller guarantees n valid elements.
        let x = f32::from_bits((unsafe { src.add(i).read_unaligned() } as u32) << 16);
        amax = amax.max(abs_bits(x));
        let random = args.key.bits(args.index_lo.wrapping_add(i as u32));
        let code = args.format.encode(x * args.scale, args.rounding, random);
        // SAFETY: as above.
        unsafe { *dst.add(i) = code };
    }
    amax
}

/// See [`Kernels::fp8_to_bf16`].
///
/// # Safety
/// As in the [`Kernels`] contract.
pub unsafe fn fp8_to_bf16(format: Fp8Format, src: *const u8, dst: *mut u16, n: usize) {
    for i in 0..n {
        // SAFETY: i < n and the caller guarantees n valid elements.
        unsafe {
            dst.add(i)
                .write_unaligned(f32_to_bf16_bits(format.decode(*src.add(i)), false))
        };
    }
}

/// See [`Kernels::f32_to_bf16`].
///
/// # Safety
/// As in the [`Kernels`] contract.
pub unsafe fn f32_to_bf16(
    scale: f32,
    saturate: bool,
    src: *const f32,
    dst: *mut u16,
    n: usize,
) -> u32 {
    let mut amax = 0;
    for i in 0..n {
        // SAFETY: i < n and the caller guarantees n valid elements.
        let x = unsafe { src.add(i).read_unaligned() };
        amax = amax.max(abs_bits(x));
        // SAFETY: as above.
        unsafe {
            dst.add(i)
                .write_unaligned(f32_to_bf16_bits(x * scale, saturate))
        };
    }
    amax
}

/// See [`Kernels::f32_to_f16`].
///
/// # Safety
/// As in the [`Kernels`] contract.
pub unsafe fn f32_to_f16(
    scale: f32,
    saturate: bool,
    src: *const f32,
    dst: *mut u16,
    n: usize,
) -> u32 {
    let mut amax = 0;
    for i in 0..n {
        // SAFETY: i < n and the caller guarantees n valid elements.
        let x = unsafe { src.add(i).read_unaligned() };
        amax = amax.max(abs_bits(x));
        // SAFETY: as above.
        unsafe {
            dst.add(i)
                .write_unaligned(f32_to_f16_bits(x * scale, saturate))
        };
    }
    amax
}

/// `x · scale`, clipped to ±f32::MAX when `saturate`.
#[inline(always)]
pub fn scale_f32(x: f32, scale: f32, saturate: bool) -> f32 {
    let y = x * scale;
    if saturate && (y.to_bits() & 0x7FFF_FFFF) == 0x7F80_0000 {
        f32::from_bits((y.to_bits() & 0x8000_0000) | f32::MAX.to_bits())
    } else {
        y
    }
}

/// See [`Kernels::f32_to_f32`].
///
/// # Safety
/// As in the [`Kernels`] contract.
pub unsafe fn f32_to_f32(
    scale: f32,
    saturate: bool,
    src: *const f32,
    dst: *mut f32,
    n: usize,
) -> u32 {
    let mut amax = 0;
    for i in 0..n {
        // SAFETY: i < n and the caller guarantees n valid elements.
        let x = unsafe { src.add(i).read_unaligned() };
        amax = amax.max(abs_bits(x));
        // SAFETY: as above.
        unsafe { dst.add(i).write_unaligned(scale_f32(x, scale, saturate)) };
    }
    amax
}

/// See [`Kernels::mix`].
///
/// # Safety
/// As in the [`Kernels`] contract.
pub unsafe fn mix(a: f32, b: f32, x: *const f32, f: *const f32, out: *mut f32, n: usize) {
    for i in 0..n {
        // SAFETY: i < n and the caller guarantees n valid elements.
        unsafe {
            let y = a * x.add(i).read_unaligned() + b * f.add(i).read_unaligned();
            out.add(i).write_unaligned(crate::nan::canonical(y));
        }
    }
}

/// See [`Kernels::mix_backward`].
///
/// # Safety
/// As in the [`Kernels`] contract.
pub unsafe fn mix_backward(
    a: f32,
    b: f32,
    accumulate: bool,
    g: *const f32,
    gx: *mut f32,
    gf: *mut f32,
    n: usize,
) {
    for i in 0..n {
        // SAFETY: i < n and the caller guarantees n valid elements.
        unsafe {
            let gi = g.add(i).read_unaligned();
            let dx = if accumulate {
                gx.add(i).read_unaligned() + a * gi
            } else {
                a * gi
            };
            gx.add(i).write_unaligned(crate::nan::canonical(dx));
            gf.add(i).write_unaligned(crate::nan::canonical(b * gi));
        }
    }
}

// `mix_fp8` and `mix_backward_fp8`: the mixes, then `f32_to_fp8` on the stored values.
super::fused_mix_by_composition!();

/// See [`Kernels::transpose_u8`].
///
/// # Safety
/// As in the [`Kernels`] contract.
pub unsafe fn transpose_u8(
    src: *const u8,
    ld_src: usize,
    rows: usize,
    cols: usize,
    dst: *mut u8,
    ld_dst: usize,
    _stream: bool,
) {
    for c in 0..cols {
        for r in 0..rows {
            // SAFETY: r < rows and c < cols are inside both matrices (contract).
            unsafe { *dst.add(c * ld_dst + r) = *src.add(r * ld_src + c) };
        }
    }
}

/// See [`Kernels::stream_copy`] (a plain copy here).
///
/// # Safety
/// As in the [`Kernels`] contract.
pub unsafe fn stream_copy(src: *const u8, dst: *mut u8, bytes: usize) {
    // SAFETY: both ranges are valid and disjoint (contract).
    unsafe { core::ptr::copy_nonoverlapping(src, dst, bytes) };
}
