//! AVX-512 back end: every entry of [`Kernels`], bit-identical to [`super::scalar`].
//!
//! Two variants of the table exist; [`kernels`] picks the best one this CPU supports:
//!
//! * `"avx512"`: AVX-512 F, BW, VL and DQ only (the requirement of [`super::Backend::Avx512`]).
//!   FP8 decoding is arithmetic (shift + rebias, subnormals through an exact integer → float
//!   conversion and a power-of-two multiply).
//! * `"avx512vbmi"`: the same, but FP8 decoding is a 128-entry byte lookup (`vpermi2b`) of the
//!   two high bytes of each f32, 64 codes per step.
//!
//! Design notes (they hold for both variants):
//!
//! * f32 → FP8 / f16, round to nearest even, is integer SIMD on the bits of `|x · scale|`: the
//!   magnitude is first clamped (as an unsigned integer) at a per-mode limit, which turns
//!   saturation, E4M3 overflow to NaN and E5M2 overflow to ±Inf into the ordinary rounding
//!   carry; normal results round the dropped mantissa bits with an add and a shift; subnormal
//!   results add `2^k` in float (its ulp is the smallest subnormal), an exact RNE in the FPU;
//!   NaN and the sign are patched in last.
//! * Stochastic rounding follows the scalar formula `floor(m · 2^-s + r · 2^-32)` exactly: the
//!   integer part is `m >> s` and the carry comes from the 32 bits of `m · 2^(32 - s)` below the
//!   point plus `r` (variable shifts, which give 0 for counts ≥ 32). The random bits are the
//!   lowbias32 hash of [`crate::rng`], vectorized with `vpmulld`.
//! * The only float operations are the `· scale` multiply (the scalar reference does the same
//!   multiply), the mixes' products and sums (same as scalar), the subnormal-rounding add
//!   (correct whether or not MXCSR.DAZ/FTZ are set: an f32 denormal rounds to 0 either way and
//!   the sum is ≥ 2^-1) and, in decoding, `vcvtph2ps` (which ignores DAZ) and a product of two
//!   normal numbers. So results never depend on DAZ/FTZ beyond what the scalar code does.
//! * Tails use masked loads and stores: nothing is read or written past `n`; pointers need no
//!   alignment.
//!
//! On soft-float x86-64 targets (no SSE2 in the target's baseline, e.g. `x86_64-unknown-none`)
//! the SIMD code is not compiled: [`variants`] is empty and [`kernels`] is the scalar table.

use super::Kernels;

#[cfg(target_feature = "sse2")]
mod decode;
#[cfg(target_feature = "sse2")]
mod encode;
#[cfg(target_feature = "sse2")]
mod mix;
#[cfg(target_feature = "sse2")]
mod transpose;

/// One implementation of the [`Kernels`] table with the CPU features it needs.
pub struct Variant {
    /// Short name (`"avx512"`, `"avx512vbmi"`).
    pub name: &'static str,
    /// The table. Calling its entries on a CPU without the variant's features is undefined
    /// behaviour: check [`Variant::is_available`] first.
    pub kernels: &'static Kernels,
    available: fn() -> bool,
}

impl Variant {
    /// Whether this CPU (and this build) supports the variant.
    pub fn is_available(&self) -> bool {
        (self.available)()
    }
}

impl core::fmt::Debug for Variant {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Variant")
            .field("name", &self.name)
            .field("available", &self.is_available())
            .finish()
    }
}

/// Table for AVX-512 F/BW/VL/DQ.
#[cfg(target_feature = "sse2")]
static BASE: Kernels = Kernels {
    bf16_to_f32: decode::bf16_to_f32,
    f16_to_f32: decode::f16_to_f32,
    fp8_to_f32: decode::fp8_to_f32,
    f32_to_fp8: encode::f32_to_fp8,
    bf16_to_fp8: encode::bf16_to_fp8,
    fp8_to_bf16: decode::fp8_to_bf16,
    f32_to_bf16: encode::f32_to_bf16,
    f32_to_f16: encode::f32_to_f16,
    f32_to_f32: encode::f32_to_f32,
    mix: mix::mix,
    mix_backward: mix::mix_backward,
    transpose_u8: transpose::transpose_u8,
    stream_copy: transpose::stream_copy,
    mix_fp8: mix::mix_fp8,
    mix_backward_fp8: mix::mix_backward_fp8,
    prefetches_f32_sources: true,
};

/// Table for AVX-512 F/BW/VL/DQ + VBMI (byte-lookup FP8 decoding).
#[cfg(target_feature = "sse2")]
static VBMI: Kernels = Kernels {
    fp8_to_f32: decode::fp8_to_f32_vbmi,
    fp8_to_bf16: decode::fp8_to_bf16_vbmi,
    ..BASE
};

/// Every variant compiled into this build, the preferred one first.
#[cfg(target_feature = "sse2")]
static VARIANTS: [Variant; 2] = [
    Variant {
        name: "avx512vbmi",
        kernels: &VBMI,
        available: vbmi_available,
    },
    Variant {
        name: "avx512",
        kernels: &BASE,
        available: base_available,
    },
];

/// No SIMD variants on soft-float targets.
#[cfg(not(target_feature = "sse2"))]
static VARIANTS: [Variant; 0] = [];

/// Every variant of this back end, available on this CPU or not (the preferred one first); tests
/// and benchmarks use it to check each one against the scalar reference.
pub fn variants() -> &'static [Variant] {
    &VARIANTS
}

/// The AVX-512 kernel table: the best variant this CPU supports. Only meaningful when
/// [`super::Backend::Avx512`] is available.
pub fn kernels() -> &'static Kernels {
    VARIANTS
        .iter()
        .find(|v| v.is_available())
        .map_or(&super::scalar::KERNELS, |v| v.kernels)
}

/// AVX-512 F/BW/VL/DQ ([`crate::cpu`]).
#[cfg(target_feature = "sse2")]
fn base_available() -> bool {
    crate::cpu::avx512()
}

/// AVX-512 F/BW/VL/DQ and VBMI ([`crate::cpu`]).
#[cfg(target_feature = "sse2")]
fn vbmi_available() -> bool {
    crate::cpu::avx512_vbmi()
}

/// Mask of the first `rem` lanes of 16 (`rem < 16`).
#[cfg(target_feature = "sse2")]
#[inline(always)]
fn tail_mask(rem: usize) -> u16 {
    debug_assert!(rem < 16);
    ((1u32 << rem) - 1) as u16
}
