//! CPU features, detected once per process and cached: the one place the elementwise back ends
//! ([`crate::backend`]) and the GEMM kernel registry ([`crate::gemm`]) learn what this CPU runs.
//!
//! With `std` the features are probed at run time on first use (`is_x86_feature_detected!`) and
//! kept in an atomic; without `std` the compile-time target features decide (a bare-metal build
//! with `-C target-feature=+avx512f,...` gets the AVX-512 kernels). Each query below names every
//! feature its kernels need, so a caller never combines raw features itself.

// Feature bits of [`detected`] (x86-64 only, except `DETECTED`).
/// AVX-512 F, BW, VL and DQ (the AVX-512 back end's baseline).
const AVX512: u32 = 1 << 0;
/// AVX512-VBMI (byte permutes).
#[cfg_attr(
    not(all(target_arch = "x86_64", target_feature = "sse2")),
    allow(dead_code)
)]
const AVX512_VBMI: u32 = 1 << 1;
/// AVX512-BF16 (`vdpbf16ps`).
#[cfg_attr(
    not(all(target_arch = "x86_64", target_feature = "sse2")),
    allow(dead_code)
)]
const AVX512_BF16: u32 = 1 << 2;
/// AVX2 and FMA.
#[cfg_attr(
    not(all(target_arch = "x86_64", target_feature = "sse2")),
    allow(dead_code)
)]
const AVX2_FMA: u32 = 1 << 3;
/// Set once the other bits hold the probed features.
#[cfg(feature = "std")]
const DETECTED: u32 = 1 << 31;

/// Probes this CPU (run time, with `std`).
#[cfg(all(feature = "std", target_arch = "x86_64"))]
fn probe() -> u32 {
    use std::is_x86_feature_detected as has;
    let mut f = 0;
    if has!("avx512f") && has!("avx512bw") && has!("avx512vl") && has!("avx512dq") {
        f |= AVX512;
    }
    if has!("avx512vbmi") {
        f |= AVX512_VBMI;
    }
    if has!("avx512bf16") {
        f |= AVX512_BF16;
    }
    if has!("avx2") && has!("fma") {
        f |= AVX2_FMA;
    }
    f
}

/// No x86 features elsewhere.
#[cfg(all(feature = "std", not(target_arch = "x86_64")))]
fn probe() -> u32 {
    0
}

/// The feature bits, probed on first use.
#[cfg(feature = "std")]
fn detected() -> u32 {
    use core::sync::atomic::{AtomicU32, Ordering};
    static FEATURES: AtomicU32 = AtomicU32::new(0);
    let f = FEATURES.load(Ordering::Relaxed);
    if f & DETECTED != 0 {
        return f;
    }
    // Racing first calls probe twice and store the same value.
    let f = probe() | DETECTED;
    FEATURES.store(f, Ordering::Relaxed);
    f
}

/// The feature bits the compile-time target features guarantee (without `std`).
#[cfg(not(feature = "std"))]
fn detected() -> u32 {
    let mut f = 0;
    if cfg!(all(
        target_arch = "x86_64",
        target_feature = "avx512f",
        target_feature = "avx512bw",
        target_feature = "avx512vl",
        target_feature = "avx512dq"
    )) {
        f |= AVX512;
    }
    if cfg!(all(target_arch = "x86_64", target_feature = "avx512vbmi")) {
        f |= AVX512_VBMI;
    }
    if cfg!(all(target_arch = "x86_64", target_feature = "avx512bf16")) {
        f |= AVX512_BF16;
    }
    if cfg!(all(
        target_arch = "x86_64",
        target_feature = "avx2",
        target_feature = "fma"
    )) {
        f |= AVX2_FMA;
    }
    f
}

fn has(bits: u32) -> bool {
    detected() & bits == bits
}

/// AVX-512 F, BW, VL and DQ: the AVX-512 back end and the AVX-512 f32-FMA GEMM kernel.
pub(crate) fn avx512() -> bool {
    has(AVX512)
}

/// [`avx512`] plus VBMI: byte-lookup FP8 decoding.
#[cfg_attr(
    not(all(target_arch = "x86_64", target_feature = "sse2")),
    allow(dead_code)
)]
pub(crate) fn avx512_vbmi() -> bool {
    has(AVX512 | AVX512_VBMI)
}

/// [`avx512`] plus BF16: the `vdpbf16ps` GEMM kernel.
#[cfg_attr(
    not(all(target_arch = "x86_64", target_feature = "sse2")),
    allow(dead_code)
)]
pub(crate) fn avx512_bf16() -> bool {
    has(AVX512 | AVX512_BF16)
}

/// [`avx512`] plus BF16 and VBMI: the AVX-512 short-problem GEMM kernel.
#[cfg_attr(
    not(all(target_arch = "x86_64", target_feature = "sse2")),
    allow(dead_code)
)]
pub(crate) fn avx512_bf16_vbmi() -> bool {
    has(AVX512 | AVX512_BF16 | AVX512_VBMI)
}

/// AVX2 and FMA: the AVX2 GEMM kernel.
#[cfg_attr(
    not(all(target_arch = "x86_64", target_feature = "sse2")),
    allow(dead_code)
)]
pub(crate) fn avx2_fma() -> bool {
    has(AVX2_FMA)
}

/// Advanced SIMD, part of every AArch64 CPU.
pub(crate) const fn neon() -> bool {
    cfg!(target_arch = "aarch64")
}
