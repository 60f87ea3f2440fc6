//! The residual mix kernels. Products and sums are separate roundings (never fused), as in the
//! scalar code.
//!
//! Every NaN result becomes the canonical positive quiet NaN ([`crate::nan`]) before it is
//! rounded to the output type, as in the scalar code.

use super::encode::{EncoderKind, Fp8Encoder, encode16_codes, encode16_half, encoder_kind};
use super::tail_mask;
use crate::backend::EncodeArgs;
use crate::dtype::DType;
use core::arch::x86_64::*;

/// The NaN rule ([`crate::nan`]): NaN lanes of `v` become the canonical positive quiet NaN.
#[inline]
#[target_feature(enable = "avx512f")]
fn canonical_nan(v: __m512) -> __m512 {
    let nan = _mm512_cmp_ps_mask::<_CMP_UNORD_Q>(v, v);
    let canon = _mm512_castsi512_ps(_mm512_set1_epi32(crate::nan::CANONICAL_NAN_BITS as i32));
    _mm512_mask_mov_ps(v, nan, canon)
}

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

/// Loads 16 elements of type `IO` at element `i` of `p` (lanes of `k` only when given) as f32,
/// exactly.
///
/// # Safety
/// The selected elements are valid.
#[inline]
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512dq")]
unsafe fn load16_io<const IO: u8>(p: *const u8, i: usize, k: Option<__mmask16>) -> __m512 {
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
            if IO == IO_BF16 {
                _mm512_castsi512_ps(_mm512_slli_epi32::<16>(_mm512_cvtepu16_epi32(h)))
            } else {
                _mm512_cvtph_ps(h)
            }
        }
    }
}

/// Rounds 16 f32 to `IO` (bf16/f16: nearest even, no saturation, as `f32_to_bf16`/`f32_to_f16`
/// with scale 1) and stores them at element `i` of `p` (lanes of `k` only when given;
/// streaming when `nt`, then the address is aligned to the vector size); returns the stored
/// values as f32.
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
            let one = _mm512_set1_ps(1.0);
            let bits = if IO == IO_BF16 {
                encode16_half::<true>(y, one, _mm512_set1_epi32(0xFFFF)).0
            } else {
                encode16_half::<false>(y, one, _mm512_set1_epi32(0x4780_0000)).0
            };
            let h = _mm512_cvtepi32_epi16(bits);
            let q = p.cast::<u16>().add(i);
            match (k, nt) {
                (Some(k), _) => _mm256_mask_storeu_epi16(q.cast(), k, h),
                (None, true) => _mm256_stream_si256(q.cast(), h),
                (None, false) => _mm256_storeu_si256(q.cast(), h),
            }
            if IO == IO_BF16 {
                _mm512_castsi512_ps(_mm512_slli_epi32::<16>(_mm512_cvtepu16_epi32(h)))
            } else {
                _mm512_cvtph_ps(h)
            }
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
        match encoder_kind(args) {
            EncoderKind::E4m3 => {
                mix_fp8_impl::<IO, 20, 7, false, true>(a, b, x, f, out, codes, args, stream, n)
            }
            EncoderKind::E4m3Stochastic => {
                mix_fp8_impl::<IO, 20, 7, true, true>(a, b, x, f, out, codes, args, stream, n)
            }
            EncoderKind::E5m2 => {
                mix_fp8_impl::<IO, 21, 15, false, true>(a, b, x, f, out, codes, args, stream, n)
            }
            EncoderKind::E5m2Stochastic => {
                mix_fp8_impl::<IO, 21, 15, true, true>(a, b, x, f, out, codes, args, stream, n)
            }
        }
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
            IO_BF16 => mix_fp8_io::<IO_BF16>(a, b, x, f, out, codes, args, stream, n),
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
        match encoder_kind(args) {
            EncoderKind::E4m3 => mix_backward_fp8_impl::<IO, 20, 7, false, true, ACC>(
                a, b, g, gx, gf, codes, args, stream, n,
            ),
            EncoderKind::E4m3Stochastic => mix_backward_fp8_impl::<IO, 20, 7, true, true, ACC>(
                a, b, g, gx, gf, codes, args, stream, n,
            ),
            EncoderKind::E5m2 => mix_backward_fp8_impl::<IO, 21, 15, false, true, ACC>(
                a, b, g, gx, gf, codes, args, stream, n,
            ),
            EncoderKind::E5m2Stochastic => mix_backward_fp8_impl::<IO, 21, 15, true, true, ACC>(
                a, b, g, gx, gf, codes, args, stream, n,
            ),
        }
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
            IO_BF16 => {
                mix_backward_fp8_io::<IO_BF16>(a, b, accumulate, g, gx, gf, codes, args, stream, n)
            }
            IO_F16 => {
                mix_backward_fp8_io::<IO_F16>(a, b, accumulate, g, gx, gf, codes, args, stream, n)
            }
            _ => mix_backward_fp8_io::<IO_F32>(a, b, accumulate, g, gx, gf, codes, args, stream, n),
        }
    }
}
