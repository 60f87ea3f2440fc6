//! AArch64 Advanced SIMD (NEON) back end.
//!
//! Every kernel computes exactly what [`super::scalar`] computes, bit for bit. Conversions are
//! done in integer SIMD (no `FCVT*`), so their results depend on no FPCR setting (flush-to-zero,
//! default NaN); the only floating-point operations are the multiplies and adds that the scalar
//! reference performs too (the scale multiply, the mix), in the same operand order and never
//! fused, plus one exact int → float conversion and multiply by 2^-24 for f16 subnormals.
//!
//! Kernels work on chunks of 16 elements with unaligned vector loads and stores; the last
//! partial chunk goes through zero-padded stack buffers, so nothing is read or written past
//! `n`. Base NEON is part of every AArch64 CPU, so no runtime detection is needed.

use super::{EncodeArgs, Kernels};
use crate::dtype::DType;
use crate::dtype::Rounding;
use crate::fp8::Fp8Format;
use core::arch::aarch64::*;

/// The NEON kernel table.
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
    // The byte transpose of cast-transpose is the portable one on NEON for now.
    transpose_u8: super::scalar::transpose_u8,
    stream_copy: super::scalar::stream_copy,
    mix_fp8,
    mix_backward_fp8,
    prefetches_f32_sources: false,
};

// `mix_fp8` and `mix_backward_fp8`: the NEON mixes, then the NEON `f32_to_fp8` on the stored
// values.
super::fused_mix_by_composition!();

/// Elements per chunk (four 128-bit vectors of f32).
const W: usize = 16;

// ------------------------------------------------------------------------------------------
// Memory helpers: unaligned vector access and byte-wise copies for the tails.

/// Loads four f32 lanes from `p` (any alignment).
///
/// # Safety
/// `p` readable for 4 f32.
#[inline(always)]
unsafe fn ld_f32(p: *const f32) -> float32x4_t {
    // SAFETY: the caller guarantees 16 readable bytes; read_unaligned needs no alignment.
    unsafe { p.cast::<float32x4_t>().read_unaligned() }
}

/// Stores four f32 lanes to `p` (any alignment).
///
/// # Safety
/// `p` writable for 4 f32.
#[inline(always)]
unsafe fn st_f32(p: *mut f32, v: float32x4_t) {
    // SAFETY: the caller guarantees 16 writable bytes; write_unaligned needs no alignment.
    unsafe { p.cast::<float32x4_t>().write_unaligned(v) }
}

/// Loads eight u16 lanes from `p` (any alignment).
///
/// # Safety
/// `p` readable for 8 u16.
#[inline(always)]
unsafe fn ld_u16(p: *const u16) -> uint16x8_t {
    // SAFETY: the caller guarantees 16 readable bytes.
    unsafe { p.cast::<uint16x8_t>().read_unaligned() }
}

/// Stores eight u16 lanes to `p` (any alignment).
///
/// # Safety
/// `p` writable for 8 u16.
#[inline(always)]
unsafe fn st_u16(p: *mut u16, v: uint16x8_t) {
    // SAFETY: the caller guarantees 16 writable bytes.
    unsafe { p.cast::<uint16x8_t>().write_unaligned(v) }
}

/// Copies `count` elements of `T` from `src` to `dst` byte by byte (no alignment needed).
///
/// # Safety
/// `src` readable and `dst` writable for `count` elements; the ranges do not overlap.
#[inline(always)]
unsafe fn copy_bytes<T>(src: *const T, dst: *mut T, count: usize) {
    // SAFETY: per the caller; u8 has alignment 1.
    unsafe {
        core::ptr::copy_nonoverlapping(
            src.cast::<u8>(),
            dst.cast::<u8>(),
            count * core::mem::size_of::<T>(),
        )
    }
}

// ------------------------------------------------------------------------------------------
// Lane-wise building blocks (pure register code).

/// `|x|` bits of four f32 lanes.
#[inline]
#[target_feature(enable = "neon")]
fn abs_bits(x: float32x4_t) -> uint32x4_t {
    vandq_u32(vreinterpretq_u32_f32(x), vdupq_n_u32(0x7FFF_FFFF))
}

/// `m / 2^s` rounded to nearest, ties to even, for `m < 2^24` and `1 <= s`; any `s >= 25`
/// gives 0, as the scalar `round_shift_even` does.
#[inline]
#[target_feature(enable = "neon")]
fn round_shift_even(m: uint32x4_t, s: uint32x4_t) -> uint32x4_t {
    let one = vdupq_n_u32(1);
    let s = vreinterpretq_s32_u32(vminq_u32(s, vdupq_n_u32(25)));
    let neg = vnegq_s32(s);
    // (m + half - 1 + lsb(m >> s)) >> s; cannot overflow since m < 2^24 and half <= 2^24.
    let lsb = vandq_u32(vshlq_u32(m, neg), one);
    let half_m1 = vsubq_u32(vshlq_u32(one, vsubq_s32(s, vdupq_n_s32(1))), one);
    vshlq_u32(vaddq_u32(vaddq_u32(m, half_m1), lsb), neg)
}

/// Splits f32 magnitude bits into `(field, m)`: `field = max(exponent field, 1)` and the 24-bit
/// significand `m` (implicit bit included for normals), so that `|x| = m · 2^(field - 150)`.
#[inline]
#[target_feature(enable = "neon")]
fn split(abs: uint32x4_t) -> (uint32x4_t, uint32x4_t) {
    let one = vdupq_n_u32(1);
    let ef = vshrq_n_u32::<23>(abs);
    let implicit = vshlq_n_u32::<23>(vminq_u32(ef, one));
    let m = vorrq_u32(vandq_u32(abs, vdupq_n_u32(0x7F_FFFF)), implicit);
    (vmaxq_u32(ef, one), m)
}

/// The two multiply rounds of the stochastic-rounding hash ([`crate::rng::mix32`]) on four
/// lanes, without its first and last xorshift.
#[inline]
#[target_feature(enable = "neon")]
fn mix32_core(x: uint32x4_t) -> uint32x4_t {
    let x = vmulq_u32(x, vdupq_n_u32(0x7FEB_352D));
    let x = veorq_u32(x, vshrq_n_u32::<15>(x));
    vmulq_u32(x, vdupq_n_u32(0x846C_A68B))
}

/// Random bits for four consecutive element indices ([`crate::rng::StreamKey::bits`]), with
/// `k2x = k2 ^ (k2 >> 16)`: with `x` the core of the first hash, its output
/// `y = x ^ (x >> 16) ^ k2` has `y ^ (y >> 16) = x ^ k2x` (the two middle xorshifts cancel).
#[inline]
#[target_feature(enable = "neon")]
fn random_bits(index: uint32x4_t, k1: uint32x4_t, k2x: uint32x4_t) -> uint32x4_t {
    let x = veorq_u32(index, k1);
    let x = mix32_core(veorq_u32(x, vshrq_n_u32::<16>(x)));
    let x = mix32_core(veorq_u32(x, k2x));
    veorq_u32(x, vshrq_n_u32::<16>(x))
}

/// Rounding mode codes for the const generic of the FP8 encoder.
const MODE_NEAREST_SAT: u8 = 0;
const MODE_NEAREST: u8 = 1;
const MODE_STOCHASTIC: u8 = 2;

/// [`Fp8Format::encode`] on four lanes of (already scaled) f32; the code is in the low byte of
/// each u32 lane. `E5` selects E5M2 (else E4M3); `rnd` is used by stochastic rounding only.
#[inline]
#[target_feature(enable = "neon")]
fn encode_fp8<const E5: bool, const MODE: u8>(y: float32x4_t, rnd: uint32x4_t) -> uint32x4_t {
    // Mantissa bits, smallest normal exponent field in f32 terms (1 - bias + 127), max code,
    // NaN code, non-saturating overflow code.
    let (mbits, field_min, max_code, nan_code, ovf_code): (i32, u32, u32, u32, u32) = if E5 {
        (2, 113, 0x7B, 0x7E, 0x7C)
    } else {
        (3, 121, 0x7E, 0x7F, 0x7F)
    };
    let bits = vreinterpretq_u32_f32(y);
    let abs = vandq_u32(bits, vdupq_n_u32(0x7FFF_FFFF));
    let sign = vandq_u32(vshrq_n_u32::<24>(bits), vdupq_n_u32(0x80));
    let (field, m) = split(abs);
    let field_eff = vmaxq_u32(field, vdupq_n_u32(field_min));
    // Bits of m below the FP8 ulp at the effective exponent: 23 - mbits + (e_eff - e).
    let shift = vaddq_u32(vsubq_u32(field_eff, field), vdupq_n_u32(23 - mbits as u32));
    let q = if MODE == MODE_STOCHASTIC {
        // q = (m · 2^32 / 2^shift (truncated) + rnd) >> 32 = (m >> shift) + carry of
        // (frac32 + rnd), with frac32 the 32 bits of m just below the ulp.
        let s = vreinterpretq_s32_u32(vminq_u32(shift, vdupq_n_u32(64)));
        let q0 = vshlq_u32(m, vnegq_s32(s));
        // Left by 32 - s (dropping the kept bits) when s <= 32, else right by s - 32.
        let frac = vshlq_u32(m, vsubq_s32(vdupq_n_s32(32), s));
        let sum = vaddq_u32(frac, rnd);
        let carry = vcltq_u32(sum, rnd); // all ones (= -1) where the add wrapped
        vsubq_u32(q0, carry)
    } else {
        round_shift_even(m, shift)
    };
    // (biased FP8 exponent - 1) << mbits, plus q (which holds the implicit bit for normals and
    // carries into the exponent on rounding overflow).
    let code = vaddq_u32(
        vshlq_u32(
            vsubq_u32(field_eff, vdupq_n_u32(field_min)),
            vdupq_n_s32(mbits),
        ),
        q,
    );
    let over = vcgtq_u32(code, vdupq_n_u32(max_code));
    let clip = if MODE == MODE_NEAREST {
        ovf_code
    } else {
        max_code
    };
    let code = vbslq_u32(over, vdupq_n_u32(clip), code);
    let nan = vcgtq_u32(abs, vdupq_n_u32(0x7F80_0000));
    let code = vbslq_u32(nan, vdupq_n_u32(nan_code), code);
    vorrq_u32(code, sign)
}

/// [`crate::fp8::f32_to_bf16_bits`] on four lanes (result in the low half of each lane).
#[inline]
#[target_feature(enable = "neon")]
fn encode_bf16(y: float32x4_t, saturate: bool) -> uint32x4_t {
    let bits = vreinterpretq_u32_f32(y);
    let abs = vandq_u32(bits, vdupq_n_u32(0x7FFF_FFFF));
    let sign = vandq_u32(vshrq_n_u32::<16>(bits), vdupq_n_u32(0x8000));
    let lsb = vandq_u32(vshrq_n_u32::<16>(abs), vdupq_n_u32(1));
    let r = vshrq_n_u32::<16>(vaddq_u32(vaddq_u32(abs, vdupq_n_u32(0x7FFF)), lsb));
    let r = if saturate {
        vminq_u32(r, vdupq_n_u32(0x7F7F))
    } else {
        r
    };
    let nan = vcgtq_u32(abs, vdupq_n_u32(0x7F80_0000));
    vorrq_u32(vbslq_u32(nan, vdupq_n_u32(0x7FC0), r), sign)
}

/// [`crate::fp8::f32_to_f16_bits`] on four lanes (result in the low half of each lane).
#[inline]
#[target_feature(enable = "neon")]
fn encode_f16(y: float32x4_t, saturate: bool) -> uint32x4_t {
    let bits = vreinterpretq_u32_f32(y);
    let abs = vandq_u32(bits, vdupq_n_u32(0x7FFF_FFFF));
    let sign = vandq_u32(vshrq_n_u32::<16>(bits), vdupq_n_u32(0x8000));
    let (field, m) = split(abs);
    // f16 exponent -14 is f32 field 113.
    let field_eff = vmaxq_u32(field, vdupq_n_u32(113));
    let shift = vaddq_u32(vsubq_u32(field_eff, field), vdupq_n_u32(13));
    let code = vaddq_u32(
        vshlq_n_u32::<10>(vsubq_u32(field_eff, vdupq_n_u32(113))),
        round_shift_even(m, shift),
    );
    let clip = if saturate { 0x7BFF } else { 0x7C00 };
    let over = vcgeq_u32(code, vdupq_n_u32(0x7C00));
    let code = vbslq_u32(over, vdupq_n_u32(clip), code);
    let nan = vcgtq_u32(abs, vdupq_n_u32(0x7F80_0000));
    vorrq_u32(vbslq_u32(nan, vdupq_n_u32(0x7E00), code), sign)
}

/// f16 bits (low half of each u32 lane) → f32, exact; NaN keeps its payload with the quiet
/// bit set ([`super::scalar::f16_bits_to_f32`]).
#[inline]
#[target_feature(enable = "neon")]
fn decode_f16(h: uint32x4_t) -> float32x4_t {
    let sign = vshlq_n_u32::<16>(vandq_u32(h, vdupq_n_u32(0x8000)));
    let a = vandq_u32(h, vdupq_n_u32(0x7FFF));
    let shifted = vshlq_n_u32::<13>(a);
    // Normal: rebias the exponent from 15 to 127.
    let normal = vaddq_u32(shifted, vdupq_n_u32(112 << 23));
    // Inf/NaN: all-ones exponent, quiet bit for NaN.
    let is_nan = vcgtq_u32(a, vdupq_n_u32(0x7C00));
    let special = vorrq_u32(
        vorrq_u32(shifted, vdupq_n_u32(0x7F80_0000)),
        vandq_u32(is_nan, vdupq_n_u32(0x0040_0000)),
    );
    // Subnormal (and zero): a · 2^-24; the int → float conversion and the multiply are exact
    // and produce normal f32 values (or +0), whatever the FPCR says.
    let sub = vreinterpretq_u32_f32(vmulq_f32(
        vcvtq_f32_u32(a),
        vdupq_n_f32(f32::from_bits(103 << 23)),
    ));
    let r = vbslq_u32(vcgeq_u32(a, vdupq_n_u32(0x7C00)), special, normal);
    let r = vbslq_u32(vcltq_u32(a, vdupq_n_u32(0x0400)), sub, r);
    vreinterpretq_f32_u32(vorrq_u32(r, sign))
}

/// Narrows four u32 vectors (values < 256) to sixteen bytes.
#[inline]
#[target_feature(enable = "neon")]
fn narrow_u8(c: [uint32x4_t; 4]) -> uint8x16_t {
    let lo = vcombine_u16(vmovn_u32(c[0]), vmovn_u32(c[1]));
    let hi = vcombine_u16(vmovn_u32(c[2]), vmovn_u32(c[3]));
    vcombine_u8(vmovn_u16(lo), vmovn_u16(hi))
}

/// Narrows two u32 vectors (values < 65536) to eight u16.
#[inline]
#[target_feature(enable = "neon")]
fn narrow_u16(a: uint32x4_t, b: uint32x4_t) -> uint16x8_t {
    vcombine_u16(vmovn_u32(a), vmovn_u32(b))
}

// ------------------------------------------------------------------------------------------
// FP8 → f32 lookup tables: the upper 16 bits of the f32 (every FP8 value is a bf16) of each
// 7-bit magnitude, split into low and high bytes for TBL.

/// Low and high bytes of the upper half of the f32 bits ([`Fp8Format::decode_bits`]) of all
/// 128 magnitudes of a format.
#[repr(C, align(16))]
struct Fp8Table {
    lo: [u8; 128],
    hi: [u8; 128],
}

const fn fp8_table(format: Fp8Format) -> Fp8Table {
    let mut t = Fp8Table {
        lo: [0; 128],
        hi: [0; 128],
    };
    let mut mag = 0;
    while mag < 128 {
        let v = (format.decode_bits(mag as u8) >> 16) as u16;
        t.lo[mag] = v as u8;
        t.hi[mag] = (v >> 8) as u8;
        mag += 1;
    }
    t
}

static E4M3_TABLE: Fp8Table = fp8_table(Fp8Format::E4M3);
static E5M2_TABLE: Fp8Table = fp8_table(Fp8Format::E5M2);

/// Loads 64 table bytes as a TBL operand.
#[inline]
#[target_feature(enable = "neon")]
fn table64(t: &[u8; 128], half: usize) -> uint8x16x4_t {
    let p = t[half * 64..half * 64 + 64].as_ptr();
    // SAFETY: the slice holds 64 readable bytes.
    unsafe { vld1q_u8_x4(p) }
}

// ------------------------------------------------------------------------------------------
// Chunk addressing: whole chunks are used in place; the last partial chunk goes through
// zero-padded local buffers, so nothing outside `[0, n)` is read or written. Each kernel calls
// its chunk body once per loop iteration (one call site, so it is always inlined).

/// Where input chunk `i..` is read from: in place when a whole chunk remains, else `buf`
/// holding a copy of the remaining `n - i` elements (zero padded).
///
/// # Safety
/// `i < n` and `p` readable for `n` elements.
#[inline(always)]
unsafe fn chunk_in<T>(p: *const T, i: usize, n: usize, buf: &mut [T; W]) -> *const T {
    // SAFETY: i < n; the copy is of the n - i < W remaining elements.
    unsafe {
        if n - i >= W {
            p.add(i)
        } else {
            copy_bytes(p.add(i), buf.as_mut_ptr(), n - i);
            buf.as_ptr()
        }
    }
}

/// Where output chunk `i..` is written: in place when a whole chunk remains, else `buf`
/// (then [`chunk_flush`] copies the valid part out).
///
/// # Safety
/// `i < n` and `p` writable for `n` elements.
#[inline(always)]
unsafe fn chunk_out<T>(p: *mut T, i: usize, n: usize, buf: &mut [T; W]) -> *mut T {
    if n - i >= W {
        // SAFETY: i < n.
        unsafe { p.add(i) }
    } else {
        buf.as_mut_ptr()
    }
}

/// Copies the valid part of a partial output chunk from `buf` to `p + i`.
///
/// # Safety
/// `i < n` and `p` writable for `n` elements.
#[inline(always)]
unsafe fn chunk_flush<T>(p: *mut T, i: usize, n: usize, buf: &[T; W]) {
    if n - i < W {
        // SAFETY: n - i elements remain at p + i.
        unsafe { copy_bytes(buf.as_ptr(), p.add(i), n - i) }
    }
}

// ------------------------------------------------------------------------------------------
// Kernels.

/// See [`Kernels::bf16_to_f32`].
///
/// # Safety
/// As in the [`Kernels`] contract.
#[target_feature(enable = "neon")]
unsafe fn bf16_to_f32(src: *const u16, dst: *mut f32, n: usize) {
    let (mut bs, mut bd) = ([0u16; W], [0f32; W]);
    let mut i = 0;
    while i < n {
        // SAFETY: i < n; chunk_in/chunk_out give W valid elements each.
        unsafe {
            let s = chunk_in(src, i, n, &mut bs);
            let d = chunk_out(dst, i, n, &mut bd);
            for k in 0..W / 8 {
                let h = ld_u16(s.add(8 * k));
                let lo = vshll_n_u16::<16>(vget_low_u16(h));
                let hi = vshll_high_n_u16::<16>(h);
                st_f32(d.add(8 * k), vreinterpretq_f32_u32(lo));
                st_f32(d.add(8 * k + 4), vreinterpretq_f32_u32(hi));
            }
            chunk_flush(dst, i, n, &bd);
        }
        i += W;
    }
}

/// See [`Kernels::f16_to_f32`].
///
/// # Safety
/// As in the [`Kernels`] contract.
#[target_feature(enable = "neon")]
unsafe fn f16_to_f32(src: *const u16, dst: *mut f32, n: usize) {
    let (mut bs, mut bd) = ([0u16; W], [0f32; W]);
    let mut i = 0;
    while i < n {
        // SAFETY: i < n; chunk_in/chunk_out give W valid elements each.
        unsafe {
            let s = chunk_in(src, i, n, &mut bs);
            let d = chunk_out(dst, i, n, &mut bd);
            for k in 0..W / 8 {
                let h = ld_u16(s.add(8 * k));
                st_f32(d.add(8 * k), decode_f16(vmovl_u16(vget_low_u16(h))));
                st_f32(d.add(8 * k + 4), decode_f16(vmovl_high_u16(h)));
            }
            chunk_flush(dst, i, n, &bd);
        }
        i += W;
    }
}

/// See [`Kernels::fp8_to_f32`].
///
/// # Safety
/// As in the [`Kernels`] contract.
#[target_feature(enable = "neon")]
unsafe fn fp8_to_f32(format: Fp8Format, src: *const u8, dst: *mut f32, n: usize) {
    let t = match format {
        Fp8Format::E4M3 => &E4M3_TABLE,
        Fp8Format::E5M2 => &E5M2_TABLE,
    };
    let (lo0, lo1) = (table64(&t.lo, 0), table64(&t.lo, 1));
    let (hi0, hi1) = (table64(&t.hi, 0), table64(&t.hi, 1));
    let (mut bs, mut bd) = ([0u8; W], [0f32; W]);
    let mut i = 0;
    while i < n {
        // SAFETY: i < n; chunk_in/chunk_out give W valid elements each.
        unsafe {
            let s = chunk_in(src, i, n, &mut bs);
            let d = chunk_out(dst, i, n, &mut bd);
            let c = s.cast::<uint8x16_t>().read_unaligned();
            let mag = vandq_u8(c, vdupq_n_u8(0x7F));
            // Magnitudes 0..63 index the first table; 64..127 the second (TBX leaves lanes
            // whose index is out of range, i.e. mag < 64 wrapped around, untouched).
            let idx2 = vsubq_u8(mag, vdupq_n_u8(64));
            let lo = vqtbx4q_u8(vqtbl4q_u8(lo0, mag), lo1, idx2);
            let hi = vqtbx4q_u8(vqtbl4q_u8(hi0, mag), hi1, idx2);
            let hi = vorrq_u8(hi, vandq_u8(c, vdupq_n_u8(0x80)));
            // Interleave to the 16-bit upper halves, then put them above 16 zero bits.
            let h0 = vreinterpretq_u16_u8(vzip1q_u8(lo, hi));
            let h1 = vreinterpretq_u16_u8(vzip2q_u8(lo, hi));
            let z = vdupq_n_u16(0);
            st_f32(d, vreinterpretq_f32_u16(vzip1q_u16(z, h0)));
            st_f32(d.add(4), vreinterpretq_f32_u16(vzip2q_u16(z, h0)));
            st_f32(d.add(8), vreinterpretq_f32_u16(vzip1q_u16(z, h1)));
            st_f32(d.add(12), vreinterpretq_f32_u16(vzip2q_u16(z, h1)));
            chunk_flush(dst, i, n, &bd);
        }
        i += W;
    }
}

/// See [`Kernels::fp8_to_bf16`]: the byte lookups of [`fp8_to_f32`], stored as 16-bit lanes.
///
/// # Safety
/// As in the [`Kernels`] contract.
#[target_feature(enable = "neon")]
unsafe fn fp8_to_bf16(format: Fp8Format, src: *const u8, dst: *mut u16, n: usize) {
    let t = match format {
        Fp8Format::E4M3 => &E4M3_TABLE,
        Fp8Format::E5M2 => &E5M2_TABLE,
    };
    let (lo0, lo1) = (table64(&t.lo, 0), table64(&t.lo, 1));
    let (hi0, hi1) = (table64(&t.hi, 0), table64(&t.hi, 1));
    let (mut bs, mut bd) = ([0u8; W], [0u16; W]);
    let mut i = 0;
    while i < n {
        // SAFETY: i < n; chunk_in/chunk_out give W valid elements each.
        unsafe {
            let s = chunk_in(src, i, n, &mut bs);
            let d = chunk_out(dst, i, n, &mut bd);
            let c = s.cast::<uint8x16_t>().read_unaligned();
            let mag = vandq_u8(c, vdupq_n_u8(0x7F));
            // As in `fp8_to_f32`: two 64-entry lookups per byte, the sign merged into the high.
            let idx2 = vsubq_u8(mag, vdupq_n_u8(64));
            let lo = vqtbx4q_u8(vqtbl4q_u8(lo0, mag), lo1, idx2);
            let hi = vqtbx4q_u8(vqtbl4q_u8(hi0, mag), hi1, idx2);
            let hi = vorrq_u8(hi, vandq_u8(c, vdupq_n_u8(0x80)));
            st_u16(d, vreinterpretq_u16_u8(vzip1q_u8(lo, hi)));
            st_u16(d.add(8), vreinterpretq_u16_u8(vzip2q_u8(lo, hi)));
            chunk_flush(dst, i, n, &bd);
        }
        i += W;
    }
}

/// See [`Kernels::bf16_to_fp8`]: [`bf16_to_f32`] into a stack buffer, then [`f32_to_fp8`], in
/// pieces of 256 elements.
///
/// # Safety
/// As in the [`Kernels`] contract.
#[target_feature(enable = "neon")]
unsafe fn bf16_to_fp8(args: &EncodeArgs, src: *const u16, dst: *mut u8, n: usize) -> u32 {
    const PIECE: usize = 256;
    let mut buf = [0f32; PIECE];
    let mut amax = 0;
    let mut i = 0;
    while i < n {
        let len = PIECE.min(n - i);
        let piece = EncodeArgs {
            index_lo: args.index_lo.wrapping_add(i as u32),
            ..*args
        };
        // SAFETY: [i, i + len) is within the caller's n elements; buf holds PIECE >= len.
        unsafe {
            bf16_to_f32(src.add(i), buf.as_mut_ptr(), len);
            amax = amax.max(f32_to_fp8(&piece, buf.as_ptr(), dst.add(i), len));
        }
        i += len;
    }
    amax
}

/// See [`Kernels::f32_to_fp8`].
///
/// # Safety
/// As in the [`Kernels`] contract.
#[target_feature(enable = "neon")]
unsafe fn f32_to_fp8(args: &EncodeArgs, src: *const f32, dst: *mut u8, n: usize) -> u32 {
    // SAFETY: forwarded contract.
    unsafe {
        match (args.format, args.rounding) {
            (Fp8Format::E4M3, Rounding::NearestSaturate) => {
                encode_fp8_impl::<false, MODE_NEAREST_SAT>(args, src, dst, n)
            }
            (Fp8Format::E4M3, Rounding::Nearest) => {
                encode_fp8_impl::<false, MODE_NEAREST>(args, src, dst, n)
            }
            (Fp8Format::E4M3, Rounding::StochasticSaturate) => {
                encode_fp8_impl::<false, MODE_STOCHASTIC>(args, src, dst, n)
            }
            (Fp8Format::E5M2, Rounding::NearestSaturate) => {
                encode_fp8_impl::<true, MODE_NEAREST_SAT>(args, src, dst, n)
            }
            (Fp8Format::E5M2, Rounding::Nearest) => {
                encode_fp8_impl::<true, MODE_NEAREST>(args, src, dst, n)
            }
            (Fp8Format::E5M2, Rounding::StochasticSaturate) => {
                encode_fp8_impl::<true, MODE_STOCHASTIC>(args, src, dst, n)
            }
        }
    }
}

/// [`f32_to_fp8`] for one format and rounding mode.
///
/// # Safety
/// As in the [`Kernels`] contract.
#[target_feature(enable = "neon")]
unsafe fn encode_fp8_impl<const E5: bool, const MODE: u8>(
    args: &EncodeArgs,
    src: *const f32,
    dst: *mut u8,
    n: usize,
) -> u32 {
    let scale = vdupq_n_f32(args.scale);
    let k2x = args.key.k2 ^ (args.key.k2 >> 16);
    let (k1, k2) = (vdupq_n_u32(args.key.k1), vdupq_n_u32(k2x));
    // Lanes index_lo + 0, 1, 2, 3 (wrapping, as the scalar `wrapping_add`).
    let iota = vcombine_u32(vcreate_u32(1 << 32), vcreate_u32(2 | 3 << 32));
    let mut index = vaddq_u32(vdupq_n_u32(args.index_lo), iota);
    let mut amax = vdupq_n_u32(0);
    let (mut bs, mut bd) = ([0f32; W], [0u8; W]);
    let mut i = 0;
    while i < n {
        // SAFETY: i < n; chunk_in/chunk_out give W valid elements each. Zero padding of a
        // partial chunk leaves amax unchanged.
        unsafe {
            let s = chunk_in(src, i, n, &mut bs);
            let d = chunk_out(dst, i, n, &mut bd);
            let mut codes = [vdupq_n_u32(0); 4];
            for (k, code) in codes.iter_mut().enumerate() {
                let x = ld_f32(s.add(4 * k));
                amax = vmaxq_u32(amax, abs_bits(x));
                let rnd = if MODE == MODE_STOCHASTIC {
                    random_bits(vaddq_u32(index, vdupq_n_u32(4 * k as u32)), k1, k2)
                } else {
                    vdupq_n_u32(0)
                };
                *code = encode_fp8::<E5, MODE>(vmulq_f32(x, scale), rnd);
            }
            d.cast::<uint8x16_t>().write_unaligned(narrow_u8(codes));
            chunk_flush(dst, i, n, &bd);
        }
        index = vaddq_u32(index, vdupq_n_u32(W as u32));
        i += W;
    }
    vmaxvq_u32(amax)
}

/// Shared loop of the f32 → 16-bit encoders.
///
/// # Safety
/// As in the [`Kernels`] contract.
#[inline]
#[target_feature(enable = "neon")]
unsafe fn encode16_loop(
    scale: f32,
    src: *const f32,
    dst: *mut u16,
    n: usize,
    encode: impl Fn(float32x4_t) -> uint32x4_t,
) -> u32 {
    let scale = vdupq_n_f32(scale);
    let mut amax = vdupq_n_u32(0);
    let (mut bs, mut bd) = ([0f32; W], [0u16; W]);
    let mut i = 0;
    while i < n {
        // SAFETY: i < n; chunk_in/chunk_out give W valid elements each.
        unsafe {
            let s = chunk_in(src, i, n, &mut bs);
            let d = chunk_out(dst, i, n, &mut bd);
            for k in 0..W / 8 {
                let x0 = ld_f32(s.add(8 * k));
                let x1 = ld_f32(s.add(8 * k + 4));
                amax = vmaxq_u32(amax, vmaxq_u32(abs_bits(x0), abs_bits(x1)));
                let r0 = encode(vmulq_f32(x0, scale));
                let r1 = encode(vmulq_f32(x1, scale));
                st_u16(d.add(8 * k), narrow_u16(r0, r1));
            }
            chunk_flush(dst, i, n, &bd);
        }
        i += W;
    }
    vmaxvq_u32(amax)
}

/// See [`Kernels::f32_to_bf16`].
///
/// # Safety
/// As in the [`Kernels`] contract.
#[target_feature(enable = "neon")]
unsafe fn f32_to_bf16(scale: f32, saturate: bool, src: *const f32, dst: *mut u16, n: usize) -> u32 {
    // SAFETY: forwarded contract.
    unsafe {
        if saturate {
            encode16_loop(scale, src, dst, n, |y| encode_bf16(y, true))
        } else {
            encode16_loop(scale, src, dst, n, |y| encode_bf16(y, false))
        }
    }
}

/// See [`Kernels::f32_to_f16`].
///
/// # Safety
/// As in the [`Kernels`] contract.
#[target_feature(enable = "neon")]
unsafe fn f32_to_f16(scale: f32, saturate: bool, src: *const f32, dst: *mut u16, n: usize) -> u32 {
    // SAFETY: forwarded contract.
    unsafe {
        if saturate {
            encode16_loop(scale, src, dst, n, |y| encode_f16(y, true))
        } else {
            encode16_loop(scale, src, dst, n, |y| encode_f16(y, false))
        }
    }
}

/// See [`Kernels::f32_to_f32`]. `dst` may equal `src`: each chunk is read before it is written.
///
/// # Safety
/// As in the [`Kernels`] contract.
#[target_feature(enable = "neon")]
unsafe fn f32_to_f32(scale: f32, saturate: bool, src: *const f32, dst: *mut f32, n: usize) -> u32 {
    let vscale = vdupq_n_f32(scale);
    let inf = vdupq_n_u32(0x7F80_0000);
    let sign_mask = vdupq_n_u32(0x8000_0000);
    let max = vdupq_n_u32(f32::MAX.to_bits());
    let mut amax = vdupq_n_u32(0);
    let (mut bs, mut bd) = ([0f32; W], [0f32; W]);
    let mut i = 0;
    while i < n {
        // SAFETY: i < n; chunk_in/chunk_out give W valid elements each (a partial source
        // chunk is copied out before anything of it is written, so src == dst is fine).
        unsafe {
            let s = chunk_in(src, i, n, &mut bs);
            let d = chunk_out(dst, i, n, &mut bd);
            let mut y = [vdupq_n_f32(0.0); 4];
            for (k, yk) in y.iter_mut().enumerate() {
                let x = ld_f32(s.add(4 * k));
                amax = vmaxq_u32(amax, abs_bits(x));
                let p = vmulq_f32(x, vscale);
                *yk = if saturate {
                    let bits = vreinterpretq_u32_f32(p);
                    let is_inf = vceqq_u32(abs_bits(p), inf);
                    let clipped = vorrq_u32(vandq_u32(bits, sign_mask), max);
                    vreinterpretq_f32_u32(vbslq_u32(is_inf, clipped, bits))
                } else {
                    p
                };
            }
            for (k, yk) in y.into_iter().enumerate() {
                st_f32(d.add(4 * k), yk);
            }
            chunk_flush(dst, i, n, &bd);
        }
        i += W;
    }
    vmaxvq_u32(amax)
}

use crate::nan::canonical_neon as canonical_nan;

/// See [`Kernels::mix`]. `out` may equal `x` or `f`: each chunk is read before it is written.
///
/// # Safety
/// As in the [`Kernels`] contract.
#[target_feature(enable = "neon")]
unsafe fn mix(a: f32, b: f32, x: *const f32, f: *const f32, out: *mut f32, n: usize) {
    let (va, vb) = (vdupq_n_f32(a), vdupq_n_f32(b));
    let (mut bx, mut bf, mut bo) = ([0f32; W], [0f32; W], [0f32; W]);
    let mut i = 0;
    while i < n {
        // SAFETY: i < n; chunk_in/chunk_out give W valid elements each.
        unsafe {
            let xs = chunk_in(x, i, n, &mut bx);
            let fs = chunk_in(f, i, n, &mut bf);
            let os = chunk_out(out, i, n, &mut bo);
            let mut y = [vdupq_n_f32(0.0); 4];
            for (k, yk) in y.iter_mut().enumerate() {
                let (xv, fv) = (ld_f32(xs.add(4 * k)), ld_f32(fs.add(4 * k)));
                // Same operand order as the scalar `a * x + b * f`; never fused.
                *yk = canonical_nan(vaddq_f32(vmulq_f32(va, xv), vmulq_f32(vb, fv)));
            }
            for (k, yk) in y.into_iter().enumerate() {
                st_f32(os.add(4 * k), yk);
            }
            chunk_flush(out, i, n, &bo);
        }
        i += W;
    }
}

/// See [`Kernels::mix_backward`]. `gx` or `gf` may equal `g`: each chunk of `g` (and of `gx`
/// when accumulating) is read before anything of the chunk is written.
///
/// # Safety
/// As in the [`Kernels`] contract.
#[target_feature(enable = "neon")]
unsafe fn mix_backward(
    a: f32,
    b: f32,
    accumulate: bool,
    g: *const f32,
    gx: *mut f32,
    gf: *mut f32,
    n: usize,
) {
    let (va, vb) = (vdupq_n_f32(a), vdupq_n_f32(b));
    let (mut bg, mut bx, mut bf) = ([0f32; W], [0f32; W], [0f32; W]);
    let mut i = 0;
    while i < n {
        // SAFETY: i < n; chunk_in/chunk_out give W valid elements each. gx is read only when
        // accumulating (otherwise it may hold anything).
        unsafe {
            let gs = chunk_in(g, i, n, &mut bg);
            if accumulate && n - i < W {
                copy_bytes(gx.add(i), bx.as_mut_ptr(), n - i);
            }
            let xs = chunk_out(gx, i, n, &mut bx);
            let fs = chunk_out(gf, i, n, &mut bf);
            let mut dx = [vdupq_n_f32(0.0); 4];
            let mut df = [vdupq_n_f32(0.0); 4];
            for k in 0..4 {
                let gv = ld_f32(gs.add(4 * k));
                let p = vmulq_f32(va, gv);
                // Same operand order as the scalar `gx + a * g`; never fused.
                dx[k] = canonical_nan(if accumulate {
                    vaddq_f32(ld_f32(xs.add(4 * k)), p)
                } else {
                    p
                });
                df[k] = canonical_nan(vmulq_f32(vb, gv));
            }
            for k in 0..4 {
                st_f32(xs.add(4 * k), dx[k]);
                st_f32(fs.add(4 * k), df[k]);
            }
            chunk_flush(gx, i, n, &bx);
            chunk_flush(gf, i, n, &bf);
        }
        i += W;
    }
}
