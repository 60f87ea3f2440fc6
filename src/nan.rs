//! The NaN rule for results of arithmetic, defined once for every back end.
//!
//! A cast computes nothing: it keeps a NaN's sign (and gives the destination's canonical NaN).
//! An operation that computes — the residual mixes and the GEMM — stores **every NaN it
//! produces as the canonical positive quiet NaN**: f32 `0x7FC00000`, bf16 `0x7FC0`, f16
//! `0x7E00`, E4M3 `0x7F`, E5M2 `0x7E`. Which NaN IEEE arithmetic returns when two NaNs meet
//! (or how a GPU builds a NaN) differs between instruction sets; this rule makes the bits the
//! same on every back end, CUDA included. Kernels apply it to their f32 results before
//! rounding them to the output type.

/// The bits of the canonical positive quiet f32 NaN.
pub const CANONICAL_NAN_BITS: u32 = 0x7FC0_0000;

/// `x`, or the canonical positive quiet NaN when `x` is a NaN.
#[inline(always)]
pub fn canonical(x: f32) -> f32 {
    if x.is_nan() {
        f32::from_bits(CANONICAL_NAN_BITS)
    } else {
        x
    }
}

/// [`canonical`] on 16 f32 lanes (AVX-512F).
///
/// One `vfixupimmps` (a compare and a blend measured 13% slower in the in-cache residual mix):
/// lanes whose class is QNaN or SNaN take token 0, the destination operand (the canonical
/// NaN); every other class (zero, ±1, ±Inf, negative, positive; denormals as they are, DAZ
/// being off) takes token 1, the lane of `v` unchanged. One table nibble per class, QNaN in
/// the lowest.
#[cfg(target_arch = "x86_64")]
#[cfg_attr(not(feature = "std"), allow(dead_code))] // the AVX-512 kernels need `std`
#[inline]
#[target_feature(enable = "avx512f")]
pub(crate) fn canonical_avx512(v: core::arch::x86_64::__m512) -> core::arch::x86_64::__m512 {
    use core::arch::x86_64::*;
    let canon = _mm512_castsi512_ps(_mm512_set1_epi32(CANONICAL_NAN_BITS as i32));
    let table = _mm512_set1_epi32(0x1111_1100);
    _mm512_fixupimm_ps::<0>(canon, v, table)
}

/// [`canonical`] on 4 f32 lanes (NEON).
#[cfg(target_arch = "aarch64")]
#[cfg_attr(not(feature = "std"), allow(dead_code))] // the NEON kernels need `std`
#[inline]
#[target_feature(enable = "neon")]
pub(crate) fn canonical_neon(
    v: core::arch::aarch64::float32x4_t,
) -> core::arch::aarch64::float32x4_t {
    use core::arch::aarch64::*;
    let not_nan = vceqq_f32(v, v);
    vbslq_f32(
        not_nan,
        v,
        vreinterpretq_f32_u32(vdupq_n_u32(CANONICAL_NAN_BITS)),
    )
}
