//! The residual mix kernels. Products and sums are separate roundings (never fused), as in the
//! scalar code.
//!
//! Every NaN result becomes the canonical positive quiet NaN ([`crate::nan`]) before it is
//! rounded to the output type, as in the scalar code.

use super::encode::{
    Fp8Encoder, encode16_codes, encode32_bf16_codes, encode32_pairs_codes, prefetch_ahead,
    with_encoder,
};
use super::tail_mask;
use crate::backend::EncodeArgs;
use crate::dtype::{DType, Rounding};
use core::arch::x86_64::*;

use crate::nan::canonical_avx512 as canonical_nan;

/// See [`crate::backend::Kernels::mix`].
///
/// # Safety
/// The [`crate::backend::Kernels`] contract; the CPU has AVX-512 F/BW/VL/DQ.
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512dq")]
pub(super) unsafe fn mix(a: f32, b: f32, x: *const f32, f: *const f32, out: *mut f32, n: usize) {
    let (va, vb) = (_mm512_set1_ps(a), _mm512_set1_ps(b));
    let mut i = 0;
    while i + 16 <= n {
        // SAFETY: elements [i, i + 16) are in bounds (contract); `out` equals `x` or `f` or is
        // disjoint from both, and both inputs are loaded before the store.
        unsafe {
            let xv = _mm512_loadu_ps(x.add(i));
            let fv = _mm512_loadu_ps(f.add(i));
            let y = canonical_nan(_mm512_add_ps(_mm512_mul_ps(va, xv), _mm512_mul_ps(vb, fv)));
            _mm512_storeu_ps(out.add(i), y);
        }
        i += 16;
    }
    if i < n {
        let k = tail_mask(n - i);
        // SAFETY: masked lanes [i, n) are in bounds; masked-off lanes are neither read nor written.
        unsafe {
            let xv = _mm512_maskz_loadu_ps(k, x.add(i));
            let fv = _mm512_maskz_loadu_ps(k, f.add(i));
            let y = canonical_nan(_mm512_add_ps(_mm512_mul_ps(va, xv), _mm512_mul_ps(vb, fv)));
            _mm512_mask_storeu_ps(out.add(i), k, y);
        }
    }
}

#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512dq")]
unsafe fn mix_backward_impl<const ACC: bool>(
    a: f32,
    b: f32,
    g: *const f32,
    gx: *mut f32,
    gf: *mut f32,
    n: usize,
) {
    let (va, vb) = (_mm512_set1_ps(a), _mm512_set1_ps(b));
    let mut i = 0;
    while i + 16 <= n {
        // SAFETY: elements [i, i + 16) are in bounds (contract); `gx`/`gf` equal `g` or are
        // disjoint from it, and every load of a vector precedes its stores.
        unsafe {
            let gv = _mm512_loadu_ps(g.add(i));
            let mut dx = _mm512_mul_ps(va, gv);
            if ACC {
                dx = _mm512_add_ps(dx, _mm512_loadu_ps(gx.add(i)));
            }
            let (dx, df) = (canonical_nan(dx), canonical_nan(_mm512_mul_ps(vb, gv)));
            _mm512_storeu_ps(gx.add(i), dx);
            _mm512_storeu_ps(gf.add(i), df);
        }
        i += 16;
    }
    if i < n {
        let k = tail_mask(n - i);
        // SAFETY: masked lanes [i, n) are in bounds; masked-off lanes are neither read nor written.
        unsafe {
            let gv = _mm512_maskz_loadu_ps(k, g.add(i));
            let mut dx = _mm512_mul_ps(va, gv);
            if ACC {
                dx = _mm512_add_ps(dx, _mm512_maskz_loadu_ps(k, gx.add(i)));
            }
            let (dx, df) = (canonical_nan(dx), canonical_nan(_mm512_mul_ps(vb, gv)));
            _mm512_mask_storeu_ps(gx.add(i), k, dx);
            _mm512_mask_storeu_ps(gf.add(i), k, df);
        }
    }
}

/// See [`crate::backend::Kernels::mix_backward`].
///
/// # Safety
/// The [`crate::backend::Kernels`] contract; the CPU has AVX-512 F/BW/VL/DQ.
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512dq")]
pub(super) unsafe fn mix_backward(
    a: f32,
    b: f32,
    accumulate: bool,
    g: *const f32,
    gx: *mut f32,
    gf: *mut f32,
    n: usize,
) {
    // SAFETY: forwarded contract.
    unsafe {
        if accumulate {
            mix_backward_impl::<true>(a, b, g, gx, gf, n)
        } else {
            mix_backward_impl::<false>(a, b, g, gx, gf, n)
        }
    }
}

/// The lane indices `idx0 + 0..16` for the random bits of 16 consecutive elements.
#[inline]
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512dq")]
fn lane_indices(idx0: u32) -> __m512i {
    let iota = _mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15);
    _mm512_add_epi32(_mm512_set1_epi32(idx0 as i32), iota)
}

/// Element types of the fused mixes (the `IO` const parameter).
const IO_F32: u8 = 0;
const IO_BF16: u8 = 1;
const IO_F16: u8 = 2;

/// The `IO` const of an element type.
fn io_code(io: DType) -> u8 {
    match io {
        DType::BF16 => IO_BF16,
        DType::F16 => IO_F16,
        _ => IO_F32,
    }
}

/// Loads 16 elements of type `IO` (f32 or f16; bf16 runs in [`mix_bf16_impl`]) at element
/// `i` of `p` (lanes of `k` only when given) as f32, exactly.
///
/// # Safety
/// The selected elements are valid.
#[inline]
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512dq")]
unsafe fn load16_io<const IO: u8>(p: *const u8, i: usize, k: Option<__mmask16>) -> __m512 {
    debug_assert!(IO != IO_BF16);
    // SAFETY: per the contract; masked-off lanes are not read.
    unsafe {
        if IO == IO_F32 {
            let q = p.cast::<f32>().add(i);
            match k {
                Some(k) => _mm512_maskz_loadu_ps(k, q),
                None => _mm512_loadu_ps(q),
            }
        } else {
            let q = p.cast::<u16>().add(i);
            let h = match k {
                Some(k) => _mm256_maskz_loadu_epi16(k, q.cast()),
                None => _mm256_loadu_si256(q.cast()),
            };
            _mm512_cvtph_ps(h)
        }
    }
}

/// Rounds 16 f32 `y`, whose only NaN is the canonical one (the NaN rule applied), to `IO`
/// (f32 or f16; f16: nearest even, no saturation, as `f32_to_f16` with scale 1) and stores
/// them at element `i` of `p` (lanes of `k` only when given; streaming when `nt`, then the
/// address is aligned to the vector size); returns the stored values as f32.
///
/// The f16 rounding is the hardware conversion (`vcvtps2ph`, nearest even): subnormal
/// results round exactly, f32 denormals (far below half the smallest f16 subnormal) become ±0,
/// overflow gives ±Inf, and the canonical NaN 0x7FC00000 becomes 0x7E00, all as `f32_to_f16`
/// does; its only other NaN handling (quieting, payload kept) never sees another NaN here.
///
/// # Safety
/// The selected elements are valid; aligned when `nt`.
#[inline]
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512dq")]
unsafe fn store16_io<const IO: u8>(
    p: *mut u8,
    i: usize,
    y: __m512,
    k: Option<__mmask16>,
    nt: bool,
) -> __m512 {
    debug_assert!(IO != IO_BF16);
    // SAFETY: per the contract.
    unsafe {
        if IO == IO_F32 {
            let q = p.cast::<f32>().add(i);
            match (k, nt) {
                (Some(k), _) => _mm512_mask_storeu_ps(q, k, y),
                (None, true) => _mm512_stream_ps(q, y),
                (None, false) => _mm512_storeu_ps(q, y),
            }
            y
        } else {
            let h = _mm512_cvtps_ph::<{ _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC }>(y);
            let q = p.cast::<u16>().add(i);
            match (k, nt) {
                (Some(k), _) => _mm256_mask_storeu_epi16(q.cast(), k, h),
                (None, true) => _mm256_stream_si256(q.cast(), h),
                (None, false) => _mm256_storeu_si256(q.cast(), h),
            }
            _mm512_cvtph_ps(h)
        }
    }
}

/// Encodes the 16 stored values `stored` of elements `i..i + 16` (indices from `index_lo`)
/// and stores their FP8 codes at element `i` of `codes` (lanes of `k` only when given).
///
/// # Safety
/// The selected codes are valid for writes.
#[inline]
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512dq")]
unsafe fn store_codes<const SH: u32, const BIAS: u32, const SR: bool>(
    enc: &Fp8Encoder,
    stored: __m512,
    index_lo: u32,
    codes: *mut u8,
    i: usize,
    k: Option<__mmask16>,
) {
    let idx = lane_indices(index_lo.wrapping_add(i as u32));
    let q = encode16_codes::<SH, BIAS, SR>(enc, stored, idx);
    // SAFETY: per the contract.
    unsafe {
        match k {
            Some(k) => _mm_mask_storeu_epi8(codes.add(i).cast(), k, q),
            None => _mm_storeu_si128(codes.add(i).cast(), q),
        }
    }
}

/// [`mix_fp8`] for one element type and encoder (`CODES`: whether codes are written at all).
///
/// # Safety
/// As [`mix_fp8`].
#[allow(clippy::too_many_arguments)]
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512dq")]
unsafe fn mix_fp8_impl<
    const IO: u8,
    const SH: u32,
    const BIAS: u32,
    const SR: bool,
    const CODES: bool,
>(
    a: f32,
    b: f32,
    x: *const u8,
    f: *const u8,
    out: *mut u8,
    codes: *mut u8,
    args: &EncodeArgs,
    stream: bool,
    n: usize,
) {
    let (va, vb) = (_mm512_set1_ps(a), _mm512_set1_ps(b));
    let enc = Fp8Encoder::new(args);
    let mut i = 0;
    while i < n {
        let k = if i + 16 <= n {
            None
        } else {
            Some(tail_mask(n - i))
        };
        // f16 inputs: prefetched as in the bf16 kernels (at 2^26 elements on one thread, the
        // f16 mixes ran 18-36% faster with it; the f32 ones, whose vectors are whole lines,
        // gained with the FP8 copy and lost 4-7% without it, so they are left to the
        // hardware prefetchers).
        if IO == IO_F16 {
            prefetch_ahead(x.wrapping_add(2 * i));
            prefetch_ahead(f.wrapping_add(2 * i));
        }
        // SAFETY: elements [i, min(i + 16, n)) are in bounds (contract; the tail is masked);
        // `out` equals `x` or `f` or is disjoint from both, and both inputs are loaded before
        // the store; with `stream`, `out` is 64-byte aligned and i a multiple of 16, so whole
        // vectors are aligned.
        unsafe {
            let xv = load16_io::<IO>(x, i, k);
            let fv = load16_io::<IO>(f, i, k);
            let y = canonical_nan(_mm512_add_ps(_mm512_mul_ps(va, xv), _mm512_mul_ps(vb, fv)));
            let stored = store16_io::<IO>(out, i, y, k, stream);
            if CODES {
                store_codes::<SH, BIAS, SR>(&enc, stored, args.index_lo, codes, i, k);
            }
        }
        i += 16;
    }
}

/// How the bf16 kernels compute the FP8 codes of their stored values (the `CODES` const).
const CODES_NONE: u8 = 0;
/// The f32 encoder on the even and odd elements ([`encode32_pairs_codes`]): any encoder.
const CODES_F32: u8 = 1;
/// The 16-bit-lane encoder on the stored bf16 bits ([`encode32_bf16_codes`]): scale 1,
/// round to nearest even only.
const CODES_BF16: u8 = 2;

/// The mask of the first `len` (< 32) of 32 lanes.
#[inline]
fn tail_mask32(len: usize) -> __mmask32 {
    debug_assert!(len < 32);
    ((1u64 << len) - 1) as __mmask32
}

/// Loads 32 bf16 at element `i` of `p` (lanes of `k` only when given; the others are 0).
///
/// # Safety
/// The selected elements are valid.
#[inline]
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512dq")]
unsafe fn load32_bf16(p: *const u8, i: usize, k: Option<__mmask32>) -> __m512i {
    // SAFETY: per the contract; masked-off lanes are not read.
    unsafe {
        let q = p.cast::<u16>().add(i);
        match k {
            Some(k) => _mm512_maskz_loadu_epi16(k, q.cast()),
            None => _mm512_loadu_si512(q.cast()),
        }
    }
}

/// Stores 32 bf16 `h` at element `i` of `p` (lanes of `k` only when given; streaming when
/// `nt`, then the address is 64-byte aligned).
///
/// # Safety
/// The selected elements are valid; aligned when `nt`.
#[inline]
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512dq")]
unsafe fn store32_bf16(p: *mut u8, i: usize, h: __m512i, k: Option<__mmask32>, nt: bool) {
    // SAFETY: per the contract.
    unsafe {
        let q = p.cast::<u16>().add(i);
        match (k, nt) {
            (Some(k), _) => _mm512_mask_storeu_epi16(q.cast(), k, h),
            (None, true) => _mm512_stream_si512(q.cast(), h),
            (None, false) => _mm512_storeu_si512(q.cast(), h),
        }
    }
}

/// The exact f32 values of 32 bf16 `h` (element order): `(even elements, odd elements)`,
/// element `2j` or `2j + 1` in lane `j`. No lane crossing: each 32-bit lane holds one element
/// of each in its two halves.
#[inline]
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512dq")]
fn widen_pairs(h: __m512i) -> (__m512, __m512) {
    let even = _mm512_slli_epi32::<16>(h);
    let odd = _mm512_and_si512(h, _mm512_set1_epi32(0xFFFF_0000u32 as i32));
    (_mm512_castsi512_ps(even), _mm512_castsi512_ps(odd))
}

/// bf16 round to nearest even of `y`, whose only NaN is the canonical one (the NaN rule
/// applied): the bf16 bits in the high half of each 32-bit lane (the low half is garbage).
/// The same bits as [`store16_io`] stores for bf16: the sum cannot carry into the sign bit
/// (|y| ≤ Inf, or the canonical NaN 0x7FC00000, which rounds to 0x7FC0), Inf stays Inf and
/// a value that rounds past the largest finite one becomes Inf (no saturation).
#[inline]
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512dq")]
fn round_bf16_high(y: __m512) -> __m512i {
    let b = _mm512_castps_si512(y);
    let odd = _mm512_and_si512(_mm512_srli_epi32::<16>(b), _mm512_set1_epi32(1));
    _mm512_add_epi32(_mm512_add_epi32(b, _mm512_set1_epi32(0x7FFF)), odd)
}

/// Rounds the even and odd elements `even`, `odd` (as [`widen_pairs`] splits them) to bf16
/// ([`round_bf16_high`]) and returns the 32 bf16 in element order.
#[inline]
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512dq")]
fn round_pack_bf16(even: __m512, odd: __m512) -> __m512i {
    let (e, o) = (round_bf16_high(even), round_bf16_high(odd));
    _mm512_mask_blend_epi16(0xAAAA_AAAA, _mm512_srli_epi32::<16>(e), o)
}

/// Encodes the 32 stored bf16 `h` of elements `i..i + 32` (indices from `index_lo`) and
/// stores their FP8 codes at element `i` of `codes` (lanes of `k` only when given).
///
/// # Safety
/// The selected codes are valid for writes.
#[inline]
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512dq")]
unsafe fn store_codes32<const SH: u32, const BIAS: u32, const SR: bool, const CODES: u8>(
    enc: &Fp8Encoder,
    h: __m512i,
    index_lo: u32,
    codes: *mut u8,
    i: usize,
    k: Option<__mmask32>,
) {
    let q = if CODES == CODES_BF16 {
        encode32_bf16_codes::<SH, BIAS>(enc, h)
    } else {
        let (even, odd) = widen_pairs(h);
        let iota2 = _mm512_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30);
        let idx = _mm512_add_epi32(
            _mm512_set1_epi32(index_lo.wrapping_add(i as u32) as i32),
            iota2,
        );
        encode32_pairs_codes::<SH, BIAS, SR>(enc, even, odd, idx)
    };
    // SAFETY: per the contract.
    unsafe {
        match k {
            Some(k) => _mm256_mask_storeu_epi8(codes.add(i).cast(), k, q),
            None => _mm256_storeu_si256(codes.add(i).cast(), q),
        }
    }
}

/// [`mix_fp8`] on bf16, 32 elements per step, for one encoder (`CODES`: how the codes are
/// computed, if at all). The inputs widen to f32 and the results round back to bf16 within
/// 32-bit lanes (even and odd elements apart, [`widen_pairs`]), so that no step crosses
/// lanes but the narrowing of the codes; the codes come from the rounded bf16 bits.
///
/// # Safety
/// As [`mix_fp8`].
#[allow(clippy::too_many_arguments)]
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512dq")]
unsafe fn mix_bf16_impl<const SH: u32, const BIAS: u32, const SR: bool, const CODES: u8>(
    a: f32,
    b: f32,
    x: *const u8,
    f: *const u8,
    out: *mut u8,
    codes: *mut u8,
    args: &EncodeArgs,
    stream: bool,
    n: usize,
) {
    let (va, vb) = (_mm512_set1_ps(a), _mm512_set1_ps(b));
    let enc = Fp8Encoder::new(args);
    let mut i = 0;
    while i < n {
        let k = if i + 32 <= n {
            None
        } else {
            Some(tail_mask32(n - i))
        };
        prefetch_ahead(x.wrapping_add(2 * i));
        prefetch_ahead(f.wrapping_add(2 * i));
        // SAFETY: elements [i, min(i + 32, n)) are in bounds (contract; the tail is masked);
        // `out` equals `x` or `f` or is disjoint from both, and both inputs are loaded before
        // the store; with `stream`, `out` is 64-byte aligned and i a multiple of 32, so whole
        // vectors are aligned.
        unsafe {
            let (xe, xo) = widen_pairs(load32_bf16(x, i, k));
            let (fe, fo) = widen_pairs(load32_bf16(f, i, k));
            let ye = canonical_nan(_mm512_add_ps(_mm512_mul_ps(va, xe), _mm512_mul_ps(vb, fe)));
            let yo = canonical_nan(_mm512_add_ps(_mm512_mul_ps(va, xo), _mm512_mul_ps(vb, fo)));
            let h = round_pack_bf16(ye, yo);
            store32_bf16(out, i, h, k, stream);
            if CODES != CODES_NONE {
                store_codes32::<SH, BIAS, SR, CODES>(&enc, h, args.index_lo, codes, i, k);
            }
        }
        i += 32;
    }
}

/// Whether the 16-bit-lane encoder ([`CODES_BF16`]) encodes `args`.
fn bf16_codes_apply(args: &EncodeArgs) -> bool {
    args.scale == 1.0 && args.rounding != Rounding::StochasticSaturate
}

/// Picks the encoder monomorphization of [`mix_bf16_impl`].
///
/// # Safety
/// As [`mix_fp8`].
#[allow(clippy::too_many_arguments)]
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512dq")]
unsafe fn mix_bf16(
    a: f32,
    b: f32,
    x: *const u8,
    f: *const u8,
    out: *mut u8,
    codes: *mut u8,
    args: &EncodeArgs,
    stream: bool,
    n: usize,
) {
    let fast = bf16_codes_apply(args);
    // SAFETY: forwarded contract.
    unsafe {
        if codes.is_null() {
            return mix_bf16_impl::<20, 7, false, CODES_NONE>(
                a, b, x, f, out, codes, args, stream, n,
            );
        }
        // bf16 codes apply to nearest rounding only (`fast` is false for stochastic rounding)
        with_encoder!(args, |SH, BIAS, SR| if !SR && fast {
            mix_bf16_impl::<SH, BIAS, SR, CODES_BF16>(a, b, x, f, out, codes, args, stream, n)
        } else {
            mix_bf16_impl::<SH, BIAS, SR, CODES_F32>(a, b, x, f, out, codes, args, stream, n)
        })
    }
}

/// [`mix_backward_fp8`] on bf16, 32 elements per step, as [`mix_bf16_impl`].
///
/// # Safety
/// As [`mix_backward_fp8`].
#[allow(clippy::too_many_arguments)]
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512dq")]
unsafe fn mix_backward_bf16_impl<
    const SH: u32,
    const BIAS: u32,
    const SR: bool,
    const CODES: u8,
    const ACC: bool,
>(
    a: f32,
    b: f32,
    g: *const u8,
    gx: *mut u8,
    gf: *mut u8,
    codes: *mut u8,
    args: &EncodeArgs,
    stream: bool,
    n: usize,
) {
    let (va, vb) = (_mm512_set1_ps(a), _mm512_set1_ps(b));
    let enc = Fp8Encoder::new(args);
    // gx is aligned when streaming; gf streams only when its lines line up too.
    let nt_f = stream && (gf as usize).is_multiple_of(64);
    let mut i = 0;
    while i < n {
        let k = if i + 32 <= n {
            None
        } else {
            Some(tail_mask32(n - i))
        };
        prefetch_ahead(g.wrapping_add(2 * i));
        if ACC {
            prefetch_ahead(gx.wrapping_add(2 * i));
        }
        // SAFETY: elements [i, min(i + 32, n)) are in bounds (contract; the tail is masked);
        // `gx`/`gf` equal `g` or are disjoint from it, and every load of a vector precedes its
        // stores; streamed vectors are aligned (gx per the contract, gf checked above).
        unsafe {
            let (ge, go) = widen_pairs(load32_bf16(g, i, k));
            let (mut dxe, mut dxo) = (_mm512_mul_ps(va, ge), _mm512_mul_ps(va, go));
            if ACC {
                let (xe, xo) = widen_pairs(load32_bf16(gx, i, k));
                dxe = _mm512_add_ps(dxe, xe);
                dxo = _mm512_add_ps(dxo, xo);
            }
            let hx = round_pack_bf16(canonical_nan(dxe), canonical_nan(dxo));
            let dfe = canonical_nan(_mm512_mul_ps(vb, ge));
            let dfo = canonical_nan(_mm512_mul_ps(vb, go));
            let hf = round_pack_bf16(dfe, dfo);
            store32_bf16(gx, i, hx, k, stream);
            store32_bf16(gf, i, hf, k, nt_f);
            if CODES != CODES_NONE {
                store_codes32::<SH, BIAS, SR, CODES>(&enc, hf, args.index_lo, codes, i, k);
            }
        }
        i += 32;
    }
}

/// Picks the encoder monomorphization of [`mix_backward_bf16_impl`].
///
/// # Safety
/// As [`mix_backward_fp8`].
#[allow(clippy::too_many_arguments)]
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512dq")]
unsafe fn mix_backward_bf16<const ACC: bool>(
    a: f32,
    b: f32,
    g: *const u8,
    gx: *mut u8,
    gf: *mut u8,
    codes: *mut u8,
    args: &EncodeArgs,
    stream: bool,
    n: usize,
) {
    let fast = bf16_codes_apply(args);
    // SAFETY: forwarded contract.
    unsafe {
        if codes.is_null() {
            return mix_backward_bf16_impl::<20, 7, false, CODES_NONE, ACC>(
                a, b, g, gx, gf, codes, args, stream, n,
            );
        }
        // as in mix_bf16
        with_encoder!(args, |SH, BIAS, SR| if !SR && fast {
            mix_backward_bf16_impl::<SH, BIAS, SR, CODES_BF16, ACC>(
                a, b, g, gx, gf, codes, args, stream, n,
            )
        } else {
            mix_backward_bf16_impl::<SH, BIAS, SR, CODES_F32, ACC>(
                a, b, g, gx, gf, codes, args, stream, n,
            )
        })
    }
}

/// Picks the encoder monomorphization of [`mix_fp8_impl`] for an element type.
///
/// # Safety
/// As [`mix_fp8`].
#[allow(clippy::too_many_arguments)]
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512dq")]
unsafe fn mix_fp8_io<const IO: u8>(
    a: f32,
    b: f32,
    x: *const u8,
    f: *const u8,
    out: *mut u8,
    codes: *mut u8,
    args: &EncodeArgs,
    stream: bool,
    n: usize,
) {
    // SAFETY: forwarded contract.
    unsafe {
        if codes.is_null() {
            return mix_fp8_impl::<IO, 20, 7, false, false>(
                a, b, x, f, out, codes, args, stream, n,
            );
        }
        with_encoder!(args, |SH, BIAS, SR| mix_fp8_impl::<IO, SH, BIAS, SR, true>(
            a, b, x, f, out, codes, args, stream, n
        ))
    }
}

/// See [`crate::backend::Kernels::mix_fp8`]: one pass; the rounded outputs and their FP8 codes
/// are computed in registers.
///
/// # Safety
/// The [`crate::backend::Kernels`] contract; the CPU has AVX-512 F/BW/VL/DQ.
#[allow(clippy::too_many_arguments)]
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512dq")]
pub(super) unsafe fn mix_fp8(
    io: DType,
    a: f32,
    b: f32,
    x: *const u8,
    f: *const u8,
    out: *mut u8,
    codes: *mut u8,
    args: &EncodeArgs,
    stream: bool,
    n: usize,
) {
    // SAFETY: forwarded contract.
    unsafe {
        match io_code(io) {
            IO_BF16 => mix_bf16(a, b, x, f, out, codes, args, stream, n),
            IO_F16 => mix_fp8_io::<IO_F16>(a, b, x, f, out, codes, args, stream, n),
            _ => mix_fp8_io::<IO_F32>(a, b, x, f, out, codes, args, stream, n),
        }
    }
}

/// [`mix_backward_fp8`] for one element type, encoder, code output and accumulation mode.
///
/// # Safety
/// As [`mix_backward_fp8`].
#[allow(clippy::too_many_arguments)]
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512dq")]
unsafe fn mix_backward_fp8_impl<
    const IO: u8,
    const SH: u32,
    const BIAS: u32,
    const SR: bool,
    const CODES: bool,
    const ACC: bool,
>(
    a: f32,
    b: f32,
    g: *const u8,
    gx: *mut u8,
    gf: *mut u8,
    codes: *mut u8,
    args: &EncodeArgs,
    stream: bool,
    n: usize,
) {
    let (va, vb) = (_mm512_set1_ps(a), _mm512_set1_ps(b));
    let enc = Fp8Encoder::new(args);
    // gx is aligned when streaming; gf streams only when its lines line up too.
    let nt_f = stream && (gf as usize).is_multiple_of(64);
    let mut i = 0;
    while i < n {
        let k = if i + 16 <= n {
            None
        } else {
            Some(tail_mask(n - i))
        };
        // f16 inputs prefetched, as in the forward kernel.
        if IO == IO_F16 {
            prefetch_ahead(g.wrapping_add(2 * i));
            if ACC {
                prefetch_ahead(gx.wrapping_add(2 * i));
            }
        }
        // SAFETY: elements [i, min(i + 16, n)) are in bounds (contract; the tail is masked);
        // `gx`/`gf` equal `g` or are disjoint from it, and every load of a vector precedes its
        // stores; streamed vectors are aligned (gx per the contract, gf checked above).
        unsafe {
            let gv = load16_io::<IO>(g, i, k);
            let mut dx = _mm512_mul_ps(va, gv);
            if ACC {
                dx = _mm512_add_ps(dx, load16_io::<IO>(gx, i, k));
            }
            let (dx, df) = (canonical_nan(dx), canonical_nan(_mm512_mul_ps(vb, gv)));
            store16_io::<IO>(gx, i, dx, k, stream);
            let stored = store16_io::<IO>(gf, i, df, k, nt_f);
            if CODES {
                store_codes::<SH, BIAS, SR>(&enc, stored, args.index_lo, codes, i, k);
            }
        }
        i += 16;
    }
}

/// Picks the encoder monomorphization of [`mix_backward_fp8_impl`].
///
/// # Safety
/// As [`mix_backward_fp8`].
#[allow(clippy::too_many_arguments)]
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512dq")]
unsafe fn mix_backward_fp8_enc<const IO: u8, const ACC: bool>(
    a: f32,
    b: f32,
    g: *const u8,
    gx: *mut u8,
    gf: *mut u8,
    codes: *mut u8,
    args: &EncodeArgs,
    stream: bool,
    n: usize,
) {
    // SAFETY: forwarded contract.
    unsafe {
        if codes.is_null() {
            return mix_backward_fp8_impl::<IO, 20, 7, false, false, ACC>(
                a, b, g, gx, gf, codes, args, stream, n,
            );
        }
        with_encoder!(args, |SH, BIAS, SR| mix_backward_fp8_impl::<
            IO,
            SH,
            BIAS,
            SR,
            true,
            ACC,
        >(
            a, b, g, gx, gf, codes, args, stream, n
        ))
    }
}

/// [`mix_backward_fp8`] with the element type fixed.
///
/// # Safety
/// As [`mix_backward_fp8`].
#[allow(clippy::too_many_arguments)]
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512dq")]
unsafe fn mix_backward_fp8_io<const IO: u8>(
    a: f32,
    b: f32,
    accumulate: bool,
    g: *const u8,
    gx: *mut u8,
    gf: *mut u8,
    codes: *mut u8,
    args: &EncodeArgs,
    stream: bool,
    n: usize,
) {
    // SAFETY: forwarded contract.
    unsafe {
        if accumulate {
            mix_backward_fp8_enc::<IO, true>(a, b, g, gx, gf, codes, args, stream, n)
        } else {
            mix_backward_fp8_enc::<IO, false>(a, b, g, gx, gf, codes, args, stream, n)
        }
    }
}

/// See [`crate::backend::Kernels::mix_backward_fp8`]: one pass; the rounded outputs and the FP8
/// codes of `gf` are computed in registers.
///
/// # Safety
/// The [`crate::backend::Kernels`] contract; the CPU has AVX-512 F/BW/VL/DQ.
#[allow(clippy::too_many_arguments)]
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512dq")]
pub(super) unsafe fn mix_backward_fp8(
    io: DType,
    a: f32,
    b: f32,
    accumulate: bool,
    g: *const u8,
    gx: *mut u8,
    gf: *mut u8,
    codes: *mut u8,
    args: &EncodeArgs,
    stream: bool,
    n: usize,
) {
    // SAFETY: forwarded contract.
    unsafe {
        match io_code(io) {
            IO_BF16 if accumulate => {
                mix_backward_bf16::<true>(a, b, g, gx, gf, codes, args, stream, n)
            }
            IO_BF16 => mix_backward_bf16::<false>(a, b, g, gx, gf, codes, args, stream, n),
            IO_F16 => {
                mix_backward_fp8_io::<IO_F16>(a, b, accumulate, g, gx, gf, codes, args, stream, n)
            }
            _ => mix_backward_fp8_io::<IO_F32>(a, b, accumulate, g, gx, gf, codes, args, stream, n),
        }
    }
}
