//! Narrowing kernels: f32 (times a scale) → FP8, bf16, f16 and f32.

use super::tail_mask;
use crate::backend::EncodeArgs;
use crate::dtype::Rounding;
use crate::fp8::Fp8Format;
use crate::rng::StreamKey;
use core::arch::x86_64::*;

const ABS: i32 = 0x7FFF_FFFF;
const INF: i32 = 0x7F80_0000;

/// How far ahead of the current source vector the f32-source kernels prefetch, in bytes: one
/// prefetch per loop iteration, spread evenly instead of in bursts per block from the driver
/// (measured at 2^26 elements, f32 → E4M3 on 2 threads: 82-97% → 101-107% of copy bandwidth,
/// stochastic rounding 78-94% → 101-104%).
const PREFETCH_AHEAD: usize = 4096;

/// Prefetches the line `PREFETCH_AHEAD` bytes past `p` into L1.
#[inline(always)]
pub(super) fn prefetch_ahead(p: *const u8) {
    // SAFETY: a prefetch is a hint: it never faults, whatever the address.
    unsafe { _mm_prefetch::<_MM_HINT_T0>(p.wrapping_add(PREFETCH_AHEAD).cast()) }
}

/// `a | (b & c)`, the `vpternlogd` immediate.
const A_OR_B_AND_C: i32 = 0xF8;

#[inline]
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512dq")]
fn splat(v: u32) -> __m512i {
    _mm512_set1_epi32(v as i32)
}

/// Rounds magnitudes `a` (f32 bits, sign clear, at most the format's clamp, not NaN) to the
/// nearest even value of a binary format with `23 - SH` mantissa bits and exponent bias `BIAS`,
/// and returns its bits (no sign). A result that rounds past the largest binade carries into the
/// next exponent code, which is what the clamp relies on.
#[inline]
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512dq")]
fn round_nearest<const SH: u32, const BIAS: u32>(a: __m512i) -> __m512i {
    let mbits = 23 - SH;
    // Normal results: code = (a + half-ulp - 1 + odd) >> SH, minus the exponent rebias, which is
    // folded into the added constant (a ≥ min normal > rebias, so nothing wraps for these lanes).
    let rebias = ((127 - BIAS) << mbits) << SH;
    let add = ((1u32 << (SH - 1)) - 1).wrapping_sub(rebias);
    let odd = _mm512_and_si512(_mm512_srli_epi32::<SH>(a), splat(1));
    let normal = _mm512_srli_epi32::<SH>(_mm512_add_epi32(_mm512_add_epi32(a, splat(add)), odd));
    // Subnormal results: 2^k + |x| with ulp(2^k) = the smallest subnormal rounds |x| to nearest
    // even in the FPU (default rounding mode); the low bits of the sum are the code, up to
    // and including the smallest normal's code. An f32 denormal input gives 0 with or
    // without DAZ, and the sum is ≥ 2^-1, so FTZ cannot apply.
    let magic = (127 + 24 - BIAS - mbits) << 23;
    let sum = _mm512_add_ps(_mm512_castsi512_ps(a), _mm512_castsi512_ps(splat(magic)));
    let sub = _mm512_sub_epi32(_mm512_castps_si512(sum), splat(magic));
    let min_normal = (128 - BIAS) << 23;
    let is_sub = _mm512_cmplt_epu32_mask(a, splat(min_normal));
    _mm512_mask_blend_epi32(is_sub, normal, sub)
}

/// Stochastic rounding of magnitudes `a` (f32 bits, sign clear, at most the largest finite
/// value, not NaN) to FP8 with `23 - SH` mantissa bits and bias `BIAS`, with random bits `r`:
/// exactly `floor(m · 2^-s + r · 2^-32)` plus the exponent base, as in [`Fp8Format::encode`].
#[inline]
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512dq")]
fn round_stochastic<const SH: u32, const BIAS: u32>(a: __m512i, r: __m512i) -> __m512i {
    let mbits = 23 - SH;
    let min_exp = 128 - BIAS; // biased f32 exponent of the smallest normal
    let e = _mm512_srli_epi32::<23>(a);
    // 24-bit significand. The implicit bit is wrongly set for f32 denormals (e = 0), but their
    // shift is ≥ 56 for both formats, so every bit of m is discarded either way.
    let m = _mm512_ternarylogic_epi32::<A_OR_B_AND_C>(splat(0x80_0000), a, splat(0x7F_FFFF));
    // s = SH + (max(e, min_exp) - max(e, 1)): bits of m below the FP8 ulp.
    // (Signed max: the difference is negative for the top binades of E5M2.)
    let s = _mm512_max_epi32(
        _mm512_sub_epi32(splat(SH + min_exp), _mm512_max_epu32(e, splat(1))),
        splat(SH),
    );
    let int = _mm512_srlv_epi32(m, s);
    // The 32 bits of m · 2^(32 - s) below the point: one of the two shifts is by a "negative"
    // (huge unsigned) count and gives 0.
    let frac = _mm512_or_si512(
        _mm512_sllv_epi32(m, _mm512_sub_epi32(splat(32), s)),
        _mm512_srlv_epi32(m, _mm512_sub_epi32(s, splat(32))),
    );
    let carry = _mm512_cmplt_epu32_mask(_mm512_add_epi32(frac, r), r);
    let q = _mm512_mask_sub_epi32(int, carry, int, splat(u32::MAX));
    // code = q + ((max(e, min_exp) - min_exp) << mbits)
    let base = _mm512_sllv_epi32(_mm512_max_epu32(e, splat(min_exp)), splat(mbits));
    _mm512_add_epi32(q, _mm512_sub_epi32(base, splat(min_exp << mbits)))
}

/// The two multiply rounds of the lowbias32 hash ([`crate::rng::mix32`]) without its first
/// and last xorshift: `x1 · c1`, `^= >> 15`, `· c2`.
#[inline]
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512dq")]
fn mix32_core(x1: __m512i) -> __m512i {
    let x = _mm512_mullo_epi32(x1, splat(0x7FEB_352D));
    let x = _mm512_xor_si512(x, _mm512_srli_epi32::<15>(x));
    _mm512_mullo_epi32(x, splat(0x846C_A68B))
}

/// `key.bits(idx)` for each lane (see [`StreamKey`]), with `k1x = k1 ^ (k1 >> 16)` and
/// `k2x = k2 ^ (k2 >> 16)`. Two xorshifts fold into these constants: the first one of
/// `idx ^ k1` is `idx ^ (idx >> 16) ^ k1x` (a shift distributes over XOR); and with `x` the
/// core of the first hash, its output `y = x ^ (x >> 16) ^ k2` has `y ^ (y >> 16) = x ^ k2x`,
/// because `(x ^ (x >> 16)) >> 16 = x >> 16` cancels.
#[inline]
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512dq")]
fn random_bits(idx: __m512i, k1x: __m512i, k2x: __m512i) -> __m512i {
    let x1 = _mm512_ternarylogic_epi32::<0x96>(idx, _mm512_srli_epi32::<16>(idx), k1x);
    let x = mix32_core(_mm512_xor_si512(mix32_core(x1), k2x));
    _mm512_xor_si512(x, _mm512_srli_epi32::<16>(x))
}

/// Per-call constants of an FP8 encode.
#[derive(Clone, Copy)]
struct Fp8Consts {
    scale: __m512,
    /// Largest magnitude bits kept before rounding.
    clamp: __m512i,
    /// NaN code (no sign).
    nan: __m512i,
}

/// Encodes 16 values; returns `(codes in 32-bit lanes, |x| bits)`.
#[inline]
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512dq")]
fn encode16<const SH: u32, const BIAS: u32, const SR: bool>(
    x: __m512,
    c: &Fp8Consts,
    r: __m512i,
) -> (__m512i, __m512i) {
    let xabs = _mm512_and_si512(_mm512_castps_si512(x), splat(ABS as u32));
    let y = _mm512_castps_si512(_mm512_mul_ps(x, c.scale));
    let yabs = _mm512_and_si512(y, splat(ABS as u32));
    let a = _mm512_min_epu32(yabs, c.clamp);
    let code = if SR {
        // With m the significand and s the number of its bits below the FP8 ulp,
        // floor((m · 2^32 >> s) + r) >> 32 = (m + (r >> (32 - s))) >> s (m is an integer).
        // Normal results (s = SH) use a instead of m: the carry runs into the exponent field as
        // it should, and the exponent rebias is subtracted first (a ≥ min normal, no wrap).
        // Subnormal results (SH < s ≤ 31) use m, whose base is 0; both share one branch-free
        // formula. Only vectors with a lane of s > 31 (|y| < 2^-17 for E4M3, 2^-24 for E5M2,
        // f32 denormals, zeros), where the sum could overflow 32 bits, take the general path.
        let min_exp = 128 - BIAS;
        let min_normal = min_exp << 23;
        // s = max(SH + min_exp - e, SH)
        let s = _mm512_max_epi32(
            _mm512_sub_epi32(splat(SH + min_exp), _mm512_srli_epi32::<23>(a)),
            splat(SH),
        );
        if _mm512_cmpgt_epu32_mask(s, splat(31)) == 0 {
            let a2 = _mm512_sub_epi32(a, splat((127 - BIAS) << 23));
            // Subnormal lanes: m = 0x80_0000 | (a2 & 0x7F_FFFF) (a2 and a agree in the low 23
            // bits). Immediate 0xEC is B | (A & C).
            let is_sub = _mm512_cmplt_epu32_mask(a, splat(min_normal));
            let v = _mm512_mask_ternarylogic_epi32::<0xEC>(
                a2,
                is_sub,
                splat(0x80_0000),
                splat(0x7F_FFFF),
            );
            let rs = _mm512_srlv_epi32(r, _mm512_sub_epi32(splat(32), s));
            _mm512_srlv_epi32(_mm512_add_epi32(v, rs), s)
        } else {
            round_stochastic::<SH, BIAS>(a, r)
        }
    } else {
        round_nearest::<SH, BIAS>(a)
    };
    let code = _mm512_mask_mov_epi32(
        code,
        _mm512_cmpgt_epu32_mask(yabs, splat(INF as u32)),
        c.nan,
    );
    // code | ((y >> 24) & 0x80)
    let code =
        _mm512_ternarylogic_epi32::<A_OR_B_AND_C>(code, _mm512_srli_epi32::<24>(y), splat(0x80));
    (code, xabs)
}

/// Loads 16 source values as f32: f32 as is, bf16 (`BF16`) widened exactly.
///
/// # Safety
/// `src` valid for 16 elements of the source type.
#[inline]
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512dq")]
unsafe fn load16<const BF16: bool>(src: *const u8) -> __m512 {
    // SAFETY: per the contract; unaligned loads.
    unsafe {
        if BF16 {
            let h = _mm256_loadu_si256(src.cast());
            _mm512_castsi512_ps(_mm512_slli_epi32::<16>(_mm512_cvtepu16_epi32(h)))
        } else {
            _mm512_loadu_ps(src.cast())
        }
    }
}

/// Loads the first lanes of 16 source values selected by `k` (the others are 0), as [`load16`].
///
/// # Safety
/// `src` valid for the elements selected by `k`.
#[inline]
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512dq")]
unsafe fn load16_masked<const BF16: bool>(k: __mmask16, src: *const u8) -> __m512 {
    // SAFETY: per the contract; masked-off lanes are not read.
    unsafe {
        if BF16 {
            let h = _mm256_maskz_loadu_epi16(k, src.cast());
            _mm512_castsi512_ps(_mm512_slli_epi32::<16>(_mm512_cvtepu16_epi32(h)))
        } else {
            _mm512_maskz_loadu_ps(k, src.cast())
        }
    }
}

/// The per-call state of an FP8 encoder inside a fused kernel (see [`encode16_codes`]).
#[derive(Clone, Copy)]
pub(super) struct Fp8Encoder {
    c: Fp8Consts,
    /// `k1 ^ (k1 >> 16)` and `k2 ^ (k2 >> 16)` (see [`random_bits`]).
    k1x: __m512i,
    k2x: __m512i,
    /// The clamp and NaN code in 16-bit lanes, for [`encode32_bf16_codes`] (the f32 clamps
    /// all have 16 low zero bits).
    clamp16: __m512i,
    nan16: __m512i,
}

impl Fp8Encoder {
    /// The encoder for `args` (any format and rounding mode; the caller picks the matching
    /// const parameters of [`encode16_codes`] with [`with_encoder`]).
    #[inline]
    #[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512dq")]
    pub(super) fn new(args: &EncodeArgs) -> Fp8Encoder {
        let (clamp, nan) = fp8_clamp_and_nan(args);
        let key = args.key;
        Fp8Encoder {
            c: Fp8Consts {
                scale: _mm512_set1_ps(args.scale),
                clamp: splat(clamp),
                nan: splat(nan),
            },
            k1x: splat(key.k1 ^ (key.k1 >> 16)),
            k2x: splat(key.k2 ^ (key.k2 >> 16)),
            clamp16: _mm512_set1_epi16((clamp >> 16) as i16),
            nan16: _mm512_set1_epi16(nan as i16),
        }
    }
}

/// Evaluates `$body` with `$sh`, `$bias` and `$sr` bound (as `const` items) to the encoder
/// parameters of [`encode16_codes`] that encode `$args`: 20 and 7 for E4M3, 21 and 15 for
/// E5M2, and whether the rounding is stochastic. The one place that maps a format and rounding
/// to a kernel monomorphization.
macro_rules! with_encoder {
    ($args:expr, |$sh:ident, $bias:ident, $sr:ident| $body:expr) => {{
        let stochastic = $args.rounding == $crate::dtype::Rounding::StochasticSaturate;
        match ($args.format, stochastic) {
            ($crate::fp8::Fp8Format::E4M3, false) => {
                const $sh: u32 = 20;
                const $bias: u32 = 7;
                const $sr: bool = false;
                $body
            }
            ($crate::fp8::Fp8Format::E4M3, true) => {
                const $sh: u32 = 20;
                const $bias: u32 = 7;
                const $sr: bool = true;
                $body
            }
            ($crate::fp8::Fp8Format::E5M2, false) => {
                const $sh: u32 = 21;
                const $bias: u32 = 15;
                const $sr: bool = false;
                $body
            }
            ($crate::fp8::Fp8Format::E5M2, true) => {
                const $sh: u32 = 21;
                const $bias: u32 = 15;
                const $sr: bool = true;
                $body
            }
        }
    }};
}
pub(super) use with_encoder;

/// The FP8 codes (16 bytes) of 16 f32 values `x` whose element indices (low halves) are the
/// lanes of `idx`: exactly what [`f32_to_fp8`] stores for them. `SH`/`BIAS`/`SR` are 20/7 for
/// E4M3, 21/15 for E5M2, and whether the encoder's rounding is stochastic.
#[inline]
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512dq")]
pub(super) fn encode16_codes<const SH: u32, const BIAS: u32, const SR: bool>(
    e: &Fp8Encoder,
    x: __m512,
    idx: __m512i,
) -> __m128i {
    let r = if SR {
        random_bits(idx, e.k1x, e.k2x)
    } else {
        _mm512_setzero_si512()
    };
    _mm512_cvtepi32_epi8(encode16::<SH, BIAS, SR>(x, &e.c, r).0)
}

/// The FP8 codes (32 bytes) of 32 pairs of f32 values: element `2j` is lane `j` of `even`,
/// element `2j + 1` lane `j` of `odd`, with element indices (low halves) `idx_even + 2j` and
/// `idx_even + 2j + 1`; exactly what [`f32_to_fp8`] stores for them (constants as
/// [`encode16_codes`]).
#[inline]
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512dq")]
pub(super) fn encode32_pairs_codes<const SH: u32, const BIAS: u32, const SR: bool>(
    e: &Fp8Encoder,
    even: __m512,
    odd: __m512,
    idx_even: __m512i,
) -> __m256i {
    let (re, ro) = if SR {
        let idx_odd = _mm512_add_epi32(idx_even, splat(1));
        (
            random_bits(idx_even, e.k1x, e.k2x),
            random_bits(idx_odd, e.k1x, e.k2x),
        )
    } else {
        (_mm512_setzero_si512(), _mm512_setzero_si512())
    };
    let ce = encode16::<SH, BIAS, SR>(even, &e.c, re).0;
    let co = encode16::<SH, BIAS, SR>(odd, &e.c, ro).0;
    // Each 32-bit lane holds the codes of elements 2j and 2j + 1 in its two low bytes; the
    // 32 → 16-bit narrowing then leaves the bytes in element order.
    _mm512_cvtepi32_epi16(_mm512_or_si512(ce, _mm512_slli_epi32::<8>(co)))
}

/// The FP8 codes (32 bytes) of 32 bf16 values `h` (16-bit lanes, element order) for an
/// encoder with scale 1 that rounds to nearest even (`SR` false): exactly what
/// [`f32_to_fp8`] stores for their f32 values, computed in 16-bit lanes
/// ([`encode32_bf16_rne`]). `SH`/`BIAS` as in [`encode16_codes`].
#[inline]
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512dq")]
pub(super) fn encode32_bf16_codes<const SH: u32, const BIAS: u32>(
    e: &Fp8Encoder,
    h: __m512i,
) -> __m256i {
    // MBITS = 23 - SH, EMIN = 128 - BIAS: E4M3 (20, 7) → (3, 121), E5M2 (21, 15) → (2, 113).
    let code = if SH == 20 {
        encode32_bf16_rne::<3, 121>(h, e.clamp16, e.nan16).0
    } else {
        encode32_bf16_rne::<2, 113>(h, e.clamp16, e.nan16).0
    };
    _mm512_cvtepi16_epi8(code)
}

/// The clamp (largest magnitude bits kept before rounding) and NaN code of an FP8 encode.
fn fp8_clamp_and_nan(args: &EncodeArgs) -> (u32, u32) {
    // Clamps: the largest finite value when saturating; for E4M3 `Nearest`, 480 (its code is the
    // NaN 0x7F, and everything in (464, 480] rounds there); for E5M2 `Nearest`, 65536 (code
    // 0x7C = Inf, reached by rounding from 61440 on).
    match (args.format, args.rounding) {
        (Fp8Format::E4M3, Rounding::Nearest) => (0x43F0_0000, 0x7F),
        (Fp8Format::E4M3, _) => (0x43E0_0000, 0x7F),
        (Fp8Format::E5M2, Rounding::Nearest) => (0x4780_0000, 0x7E),
        (Fp8Format::E5M2, _) => (0x4760_0000, 0x7E),
    }
}

/// Encodes the lanes of `k` of the 16 source values at element `i` (element indices from the
/// lanes of `idx`) and stores their codes at element `i` of `dst` with a masked store; returns
/// their `|x|` bits (0 in the other lanes).
///
/// # Safety
/// The selected elements of `src` and `dst` are valid.
#[inline]
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512dq")]
#[allow(clippy::too_many_arguments)]
unsafe fn encode_masked<const SH: u32, const BIAS: u32, const SR: bool, const BF16: bool>(
    c: &Fp8Consts,
    k1: __m512i,
    k2: __m512i,
    idx: __m512i,
    src: *const u8,
    dst: *mut u8,
    i: usize,
    k: __mmask16,
) -> __m512i {
    let size = if BF16 { 2 } else { 4 };
    let r = if SR {
        random_bits(idx, k1, k2)
    } else {
        _mm512_setzero_si512()
    };
    // SAFETY: masked lanes are in bounds (contract); masked-off lanes are neither read nor
    // written (and load as 0, which leaves amax alone).
    unsafe {
        let x = load16_masked::<BF16>(k, src.add(i * size));
        let (code, xabs) = encode16::<SH, BIAS, SR>(x, c, r);
        _mm_mask_storeu_epi8(dst.add(i).cast(), k, _mm512_cvtepi32_epi8(code));
        xabs
    }
}

/// f32 (or, with `BF16`, exactly widened bf16) → FP8 over `n` elements; returns the amax bits.
/// With `stream`, the codes from the first 16-byte boundary of `dst` on leave through
/// streaming stores.
///
/// # Safety
/// The [`crate::backend::Kernels`] contract for `n` source elements.
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512dq")]
#[allow(clippy::too_many_arguments)]
unsafe fn encode_fp8<const SH: u32, const BIAS: u32, const SR: bool, const BF16: bool>(
    c: Fp8Consts,
    key: StreamKey,
    index_lo: u32,
    src: *const u8,
    dst: *mut u8,
    n: usize,
    stream: bool,
) -> u32 {
    let size = if BF16 { 2 } else { 4 };
    let (k1, k2) = (
        splat(key.k1 ^ (key.k1 >> 16)),
        splat(key.k2 ^ (key.k2 >> 16)),
    );
    let iota = _mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15);
    let mut idx = _mm512_add_epi32(splat(index_lo), iota);
    let mut amax = _mm512_setzero_si512();
    let mut i = 0;
    let head = if stream {
        ((16 - (dst as usize) % 16) % 16).min(n)
    } else {
        0
    };
    if head > 0 {
        // SAFETY: elements [0, head) are in bounds.
        let xabs = unsafe {
            encode_masked::<SH, BIAS, SR, BF16>(&c, k1, k2, idx, src, dst, 0, tail_mask(head))
        };
        amax = _mm512_max_epu32(amax, xabs);
        idx = _mm512_add_epi32(idx, splat(head as u32));
        i = head;
    }
    while i + 16 <= n {
        let r = if SR {
            random_bits(idx, k1, k2)
        } else {
            _mm512_setzero_si512()
        };
        if !BF16 {
            prefetch_ahead(src.wrapping_add(i * size));
        }
        // SAFETY: elements [i, i + 16) are in bounds (contract); unaligned loads are allowed;
        // with `stream`, dst + i is 16-byte aligned (the head aligned it).
        unsafe {
            let x = load16::<BF16>(src.add(i * size));
            let (code, xabs) = encode16::<SH, BIAS, SR>(x, &c, r);
            amax = _mm512_max_epu32(amax, xabs);
            let q = _mm512_cvtepi32_epi8(code);
            if stream {
                _mm_stream_si128(dst.add(i).cast(), q);
            } else {
                _mm_storeu_si128(dst.add(i).cast(), q);
            }
        }
        idx = _mm512_add_epi32(idx, splat(16));
        i += 16;
    }
    if i < n {
        // SAFETY: elements [i, n) are in bounds.
        let xabs = unsafe {
            encode_masked::<SH, BIAS, SR, BF16>(&c, k1, k2, idx, src, dst, i, tail_mask(n - i))
        };
        amax = _mm512_max_epu32(amax, xabs);
    }
    _mm512_reduce_max_epu32(amax)
}

/// See [`crate::backend::Kernels::f32_to_fp8`].
///
/// # Safety
/// The [`crate::backend::Kernels`] contract; the CPU has AVX-512 F/BW/VL/DQ.
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512dq")]
pub(super) unsafe fn f32_to_fp8(args: &EncodeArgs, src: *const f32, dst: *mut u8, n: usize) -> u32 {
    // SAFETY: forwarded contract.
    unsafe { encode_fp8_any::<false>(args, src.cast(), dst, n) }
}

/// [`f32_to_fp8`] on f32 or (`BF16`) exactly widened bf16 sources, through the f32 encoder.
///
/// # Safety
/// The [`crate::backend::Kernels`] contract for `n` source elements.
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512dq")]
unsafe fn encode_fp8_any<const BF16: bool>(
    args: &EncodeArgs,
    src: *const u8,
    dst: *mut u8,
    n: usize,
) -> u32 {
    let (clamp, nan) = fp8_clamp_and_nan(args);
    let c = Fp8Consts {
        scale: _mm512_set1_ps(args.scale),
        clamp: splat(clamp),
        nan: splat(nan),
    };
    let (key, lo, st) = (args.key, args.index_lo, args.stream);
    // SAFETY: forwarded contract.
    unsafe {
        with_encoder!(args, |SH, BIAS, SR| encode_fp8::<SH, BIAS, SR, BF16>(
            c, key, lo, src, dst, n, st
        ))
    }
}

/// Round to nearest even of 32 bf16 values `h` (16-bit lanes) to FP8 with `MBITS` mantissa
/// bits, at scale 1, entirely in 16-bit integer arithmetic; returns `(codes in 16-bit lanes,
/// |h|)`. `EMIN` is the biased bf16/f32 exponent of the format's smallest normal (121 for
/// E4M3, 113 for E5M2); `clamp` and `nan` are as in [`Fp8Consts`], in bf16 bits (the f32
/// clamps all have 16 low zero bits).
///
/// With `e` the exponent field of `a = min(|h|, clamp)`, `s = (7 - MBITS) + max(EMIN - e, 0)`
/// bits of the 8-bit significand lie below the FP8 ulp. The code is `rne(v >> s)` where, for a
/// normal result (`e ≥ EMIN`, `s = 7 - MBITS`), `v` is `a` with the exponent rebiased
/// (`a - ((127 - BIAS) << 7)`, no wrap since `a` ≥ the smallest normal), so the rounding carry
/// runs into the exponent field, as in the scalar formula of [`Fp8Format::encode`]; for a
/// subnormal result `v` is the significand `m = 0x80 | (a & 0x7F)`, whose exponent base is 0.
/// `rne(v >> s)` is `(v + 2^(s-1) - 1 + odd) >> s`, where `2^(s-1) - 1 = 0x7FFF >> (16 - s)`:
/// the variable 16-bit shifts give 0 for counts of 16 and more (including the "negative"
/// ones), so lanes with `s ≥ 16` (tiny values, bf16 denormals and zeros, whose implicit bit
/// is wrongly set) round to 0 without overflow.
#[inline]
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512dq")]
fn encode32_bf16_rne<const MBITS: u32, const EMIN: i16>(
    h: __m512i,
    clamp: __m512i,
    nan: __m512i,
) -> (__m512i, __m512i) {
    let w = _mm512_set1_epi16;
    let sh = 7 - MBITS as i16;
    // (127 - BIAS) << 7, with BIAS = 128 - EMIN.
    let rebias = (EMIN - 1) << 7;
    let a = _mm512_and_si512(h, w(0x7FFF));
    let ac = _mm512_min_epu16(a, clamp);
    // s = max(EMIN + sh - e, sh), signed (e ≤ 255).
    let s = _mm512_max_epi16(
        _mm512_sub_epi16(w(EMIN + sh), _mm512_srli_epi16::<7>(ac)),
        w(sh),
    );
    // v: a - rebias for a normal result (e ≥ EMIN); m = 0x80 | (a & 0x7F) for a subnormal
    // one. Both are max(ac, (EMIN << 7) | (ac & 0x7F)) - rebias: for e ≥ EMIN the maximum is
    // ac, below it the second term, whose exponent field EMIN becomes 1 after the rebias.
    let floor = _mm512_ternarylogic_epi32::<A_OR_B_AND_C>(w(EMIN << 7), ac, w(0x7F));
    let v = _mm512_sub_epi16(_mm512_max_epu16(ac, floor), w(rebias));
    let half_m1 = _mm512_srlv_epi16(w(0x7FFF), _mm512_sub_epi16(w(16), s));
    let odd = _mm512_and_si512(_mm512_srlv_epi16(v, s), w(1));
    let code = _mm512_srlv_epi16(_mm512_add_epi16(_mm512_add_epi16(v, half_m1), odd), s);
    let code = _mm512_mask_mov_epi16(code, _mm512_cmpgt_epu16_mask(a, w(0x7F80)), nan);
    // code | ((h >> 8) & 0x80)
    let code = _mm512_ternarylogic_epi32::<A_OR_B_AND_C>(code, _mm512_srli_epi16::<8>(h), w(0x80));
    (code, a)
}

/// bf16 → FP8, round to nearest even at scale 1, 32 elements per step ([`encode32_bf16_rne`]).
/// With `stream`, the codes from the first 32-byte boundary of `dst` on leave through
/// streaming stores.
///
/// # Safety
/// The [`crate::backend::Kernels`] contract.
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512dq")]
unsafe fn bf16_fp8_rne<const MBITS: u32, const EMIN: i16>(
    clamp: u16,
    nan: u16,
    src: *const u16,
    dst: *mut u8,
    n: usize,
    stream: bool,
) -> u32 {
    let clamp = _mm512_set1_epi16(clamp as i16);
    let nan = _mm512_set1_epi16(nan as i16);
    let mut amax = _mm512_setzero_si512();
    // The masked step: lanes [i, i + len) (len <= 32), plain masked store; returns |h|.
    let masked = |i: usize, len: usize| {
        let k = ((1u64 << len) - 1) as __mmask32;
        // SAFETY: masked lanes [i, i + len) are in bounds; masked-off lanes are neither read
        // nor written (and load as 0, which leaves amax alone).
        unsafe {
            let h = _mm512_maskz_loadu_epi16(k, src.add(i).cast());
            let (code, a) = encode32_bf16_rne::<MBITS, EMIN>(h, clamp, nan);
            _mm256_mask_storeu_epi8(dst.add(i).cast(), k, _mm512_cvtepi16_epi8(code));
            a
        }
    };
    let head = if stream {
        ((32 - (dst as usize) % 32) % 32).min(n)
    } else {
        0
    };
    if head > 0 {
        amax = _mm512_max_epu16(amax, masked(0, head));
    }
    let mut i = head;
    while i + 32 <= n {
        // SAFETY: elements [i, i + 32) are in bounds (contract); unaligned loads are allowed;
        // with `stream`, dst + i is 32-byte aligned (the head aligned it).
        unsafe {
            let h = _mm512_loadu_si512(src.add(i).cast());
            let (code, a) = encode32_bf16_rne::<MBITS, EMIN>(h, clamp, nan);
            amax = _mm512_max_epu16(amax, a);
            let q = _mm512_cvtepi16_epi8(code);
            if stream {
                _mm256_stream_si256(dst.add(i).cast(), q);
            } else {
                _mm256_storeu_si256(dst.add(i).cast(), q);
            }
        }
        i += 32;
    }
    if i < n {
        amax = _mm512_max_epu16(amax, masked(i, n - i));
    }
    // 16-bit lane maximum, as the f32 bits of the widened value.
    let lo = _mm512_and_si512(amax, _mm512_set1_epi32(0xFFFF));
    let hi = _mm512_srli_epi32::<16>(amax);
    _mm512_reduce_max_epu32(_mm512_max_epu32(lo, hi)) << 16
}

/// See [`crate::backend::Kernels::bf16_to_fp8`]. Round to nearest at scale 1 runs in 16-bit
/// lanes ([`encode32_bf16_rne`]); stochastic rounding or another scale widens each vector to
/// f32 in registers and runs the f32 encoder.
///
/// # Safety
/// The [`crate::backend::Kernels`] contract; the CPU has AVX-512 F/BW/VL/DQ.
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512dq")]
pub(super) unsafe fn bf16_to_fp8(
    args: &EncodeArgs,
    src: *const u16,
    dst: *mut u8,
    n: usize,
) -> u32 {
    // SAFETY: forwarded contract.
    unsafe {
        if args.scale != 1.0 || args.rounding == Rounding::StochasticSaturate {
            return encode_fp8_any::<true>(args, src.cast(), dst, n);
        }
        // The clamps of `f32_to_fp8`, in bf16 bits.
        let nearest = args.rounding == Rounding::Nearest;
        match args.format {
            Fp8Format::E4M3 => {
                let clamp = if nearest { 0x43F0 } else { 0x43E0 };
                bf16_fp8_rne::<3, 121>(clamp, 0x7F, src, dst, n, args.stream)
            }
            Fp8Format::E5M2 => {
                let clamp = if nearest { 0x4780 } else { 0x4760 };
                bf16_fp8_rne::<2, 113>(clamp, 0x7E, src, dst, n, args.stream)
            }
        }
    }
}

/// f32 → bf16 or f16 bits of 16 values (in 32-bit lanes); returns `(bits, |x| bits)`.
#[inline]
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512dq")]
pub(super) fn encode16_half<const BF16: bool>(
    x: __m512,
    scale: __m512,
    clamp: __m512i,
) -> (__m512i, __m512i) {
    let xabs = _mm512_and_si512(_mm512_castps_si512(x), splat(ABS as u32));
    let y = _mm512_castps_si512(_mm512_mul_ps(x, scale));
    let yabs = _mm512_and_si512(y, splat(ABS as u32));
    let (bits, nan) = if BF16 {
        // RNE on the low 16 bits; Inf stays Inf; `clamp` is 0x7F7F when saturating.
        let odd = _mm512_and_si512(_mm512_srli_epi32::<16>(yabs), splat(1));
        let r = _mm512_add_epi32(_mm512_add_epi32(yabs, splat(0x7FFF)), odd);
        let r = _mm512_min_epu32(_mm512_srli_epi32::<16>(r), clamp);
        (r, 0x7FC0)
    } else {
        // `clamp` is 65504 when saturating, else 65536 (which rounds to the Inf code).
        (
            round_nearest::<13, 15>(_mm512_min_epu32(yabs, clamp)),
            0x7E00,
        )
    };
    let bits = _mm512_mask_mov_epi32(
        bits,
        _mm512_cmpgt_epu32_mask(yabs, splat(INF as u32)),
        splat(nan),
    );
    // bits | ((y >> 16) & 0x8000)
    let bits =
        _mm512_ternarylogic_epi32::<A_OR_B_AND_C>(bits, _mm512_srli_epi32::<16>(y), splat(0x8000));
    (bits, xabs)
}

#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512dq")]
unsafe fn encode_half<const BF16: bool>(
    scale: f32,
    clamp: u32,
    src: *const f32,
    dst: *mut u16,
    n: usize,
) -> u32 {
    let scale = _mm512_set1_ps(scale);
    let clamp = splat(clamp);
    let mut amax = _mm512_setzero_si512();
    let mut i = 0;
    while i + 16 <= n {
        prefetch_ahead(src.wrapping_add(i).cast());
        // SAFETY: elements [i, i + 16) are in bounds (contract); unaligned access is allowed.
        let x = unsafe { _mm512_loadu_ps(src.add(i)) };
        let (bits, xabs) = encode16_half::<BF16>(x, scale, clamp);
        amax = _mm512_max_epu32(amax, xabs);
        // SAFETY: as above.
        unsafe { _mm256_storeu_si256(dst.add(i).cast(), _mm512_cvtepi32_epi16(bits)) };
        i += 16;
    }
    if i < n {
        let k = tail_mask(n - i);
        // SAFETY: masked lanes [i, n) are in bounds; masked-off lanes are neither read nor written.
        let x = unsafe { _mm512_maskz_loadu_ps(k, src.add(i)) };
        let (bits, xabs) = encode16_half::<BF16>(x, scale, clamp);
        amax = _mm512_max_epu32(amax, xabs);
        // SAFETY: as above.
        unsafe { _mm256_mask_storeu_epi16(dst.add(i).cast(), k, _mm512_cvtepi32_epi16(bits)) };
    }
    _mm512_reduce_max_epu32(amax)
}

/// See [`crate::backend::Kernels::f32_to_bf16`].
///
/// # Safety
/// The [`crate::backend::Kernels`] contract; the CPU has AVX-512 F/BW/VL/DQ.
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512dq")]
pub(super) unsafe fn f32_to_bf16(
    scale: f32,
    saturate: bool,
    src: *const f32,
    dst: *mut u16,
    n: usize,
) -> u32 {
    let clamp = if saturate { 0x7F7F } else { 0xFFFF };
    // SAFETY: forwarded contract.
    unsafe { encode_half::<true>(scale, clamp, src, dst, n) }
}

/// See [`crate::backend::Kernels::f32_to_f16`].
///
/// # Safety
/// The [`crate::backend::Kernels`] contract; the CPU has AVX-512 F/BW/VL/DQ.
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512dq")]
pub(super) unsafe fn f32_to_f16(
    scale: f32,
    saturate: bool,
    src: *const f32,
    dst: *mut u16,
    n: usize,
) -> u32 {
    let clamp = if saturate { 0x477F_E000 } else { 0x4780_0000 };
    // SAFETY: forwarded contract.
    unsafe { encode_half::<false>(scale, clamp, src, dst, n) }
}

/// `x · scale`, with ±Inf replaced by ±f32::MAX when `SAT`; returns `(y, |x| bits)`.
#[inline]
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512dq")]
fn scale16<const SAT: bool>(x: __m512, scale: __m512) -> (__m512, __m512i) {
    let xabs = _mm512_and_si512(_mm512_castps_si512(x), splat(ABS as u32));
    let y = _mm512_castps_si512(_mm512_mul_ps(x, scale));
    let y = if SAT {
        let inf =
            _mm512_cmpeq_epi32_mask(_mm512_and_si512(y, splat(ABS as u32)), splat(INF as u32));
        // (±Inf bits) - 1 = ±f32::MAX bits
        _mm512_mask_sub_epi32(y, inf, y, splat(1))
    } else {
        y
    };
    (_mm512_castsi512_ps(y), xabs)
}

#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512dq")]
unsafe fn scale_f32<const SAT: bool>(scale: f32, src: *const f32, dst: *mut f32, n: usize) -> u32 {
    let scale = _mm512_set1_ps(scale);
    let mut amax = _mm512_setzero_si512();
    let mut i = 0;
    while i + 16 <= n {
        prefetch_ahead(src.wrapping_add(i).cast());
        // SAFETY: elements [i, i + 16) are in bounds (contract); `dst` is `src` or disjoint, and
        // each vector is loaded before it is stored.
        unsafe {
            let (y, xabs) = scale16::<SAT>(_mm512_loadu_ps(src.add(i)), scale);
            amax = _mm512_max_epu32(amax, xabs);
            _mm512_storeu_ps(dst.add(i), y);
        }
        i += 16;
    }
    if i < n {
        let k = tail_mask(n - i);
        // SAFETY: masked lanes [i, n) are in bounds; masked-off lanes are neither read nor written.
        unsafe {
            let (y, xabs) = scale16::<SAT>(_mm512_maskz_loadu_ps(k, src.add(i)), scale);
            amax = _mm512_max_epu32(amax, xabs);
            _mm512_mask_storeu_ps(dst.add(i), k, y);
        }
    }
    _mm512_reduce_max_epu32(amax)
}

/// See [`crate::backend::Kernels::f32_to_f32`].
///
/// # Safety
/// The [`crate::backend::Kernels`] contract; the CPU has AVX-512 F/BW/VL/DQ.
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512dq")]
pub(super) unsafe fn f32_to_f32(
    scale: f32,
    saturate: bool,
    src: *const f32,
    dst: *mut f32,
    n: usize,
) -> u32 {
    // SAFETY: forwarded contract.
    unsafe {
        if saturate {
            scale_f32::<true>(scale, src, dst, n)
        } else {
            scale_f32::<false>(scale, src, dst, n)
        }
    }
}
