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
/// AMX-TILE and AMX-BF16, with the tile state enabled by the operating system (XCR0); the
/// process's permission to use it is requested separately, on first need ([`amx_bf16`]).
#[cfg_attr(
    not(all(target_arch = "x86_64", target_feature = "sse2")),
    allow(dead_code)
)]
const AMX_BF16: u32 = 1 << 4;
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
    if amx_bf16_usable() {
        f |= AMX_BF16;
    }
    f
}

/// Whether the CPU has AMX-TILE and AMX-BF16 and the operating system supports their state:
/// CPUID leaf 7 (EDX bits 22 and 24) and XCR0 bits 17 and 18 (tile state enabled).
#[cfg(all(feature = "std", target_arch = "x86_64"))]
fn amx_bf16_usable() -> bool {
    use core::arch::x86_64::__cpuid_count;
    let (leaf0, leaf1, leaf7) = (
        __cpuid_count(0, 0),
        __cpuid_count(1, 0),
        __cpuid_count(7, 0),
    );
    let osxsave = leaf1.ecx & (1 << 27) != 0;
    let cpu = leaf0.eax >= 7 && leaf7.edx & (1 << 22) != 0 && leaf7.edx & (1 << 24) != 0;
    if !(osxsave && cpu) {
        return false;
    }
    /// XCR0 (the state components the operating system saves).
    #[target_feature(enable = "xsave")]
    fn xcr0() -> u64 {
        // SAFETY: XGETBV is available (OSXSAVE checked by the caller).
        unsafe { core::arch::x86_64::_xgetbv(0) }
    }
    // SAFETY: OSXSAVE is set, so XSAVE and XGETBV are available.
    let xcr0 = unsafe { xcr0() };
    xcr0 & (3 << 17) == 3 << 17
}

/// Asks Linux for the permission to use AMX tile data (`arch_prctl(ARCH_REQ_XCOMP_PERM, 18)`);
/// true when granted (also when it was already granted).
#[cfg(all(feature = "std", target_arch = "x86_64", target_os = "linux"))]
fn request_tile_data() -> bool {
    const SYS_ARCH_PRCTL: i64 = 158;
    const ARCH_REQ_XCOMP_PERM: i64 = 0x1023;
    const XFEATURE_XTILEDATA: i64 = 18;
    let ret: i64;
    // SAFETY: the arch_prctl system call with a request that only changes this process's
    // permission to use a state component; it reads and writes no memory of ours. The
    // kernel clobbers rcx and r11.
    unsafe {
        core::arch::asm!(
            "syscall",
            inlateout("rax") SYS_ARCH_PRCTL => ret,
            in("rdi") ARCH_REQ_XCOMP_PERM,
            in("rsi") XFEATURE_XTILEDATA,
            lateout("rcx") _,
            lateout("r11") _,
            options(nostack),
        );
    }
    ret == 0
}

/// AMX tile data needs an operating-system permission this build does not request here.
#[cfg(all(feature = "std", target_arch = "x86_64", not(target_os = "linux")))]
fn request_tile_data() -> bool {
    false
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

/// [`avx512_bf16`] plus AMX-TILE and AMX-BF16 usable by this process: the AMX GEMM kernel.
/// The first call on a CPU that has them asks the operating system for the permission to use
/// the tile data (Linux: `arch_prctl(ARCH_REQ_XCOMP_PERM, XFEATURE_XTILEDATA)`, process-wide),
/// so a process that never asks for the AMX kernel is never changed (a granted permission
/// enlarges its signal frames). Never without `std`, and never on other systems.
#[cfg_attr(
    not(all(target_arch = "x86_64", target_feature = "sse2")),
    allow(dead_code)
)]
pub(crate) fn amx_bf16() -> bool {
    #[cfg(all(feature = "std", target_arch = "x86_64"))]
    {
        if !has(AVX512 | AVX512_BF16 | AMX_BF16) {
            return false;
        }
        static GRANTED: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
        *GRANTED.get_or_init(request_tile_data)
    }
    #[cfg(not(all(feature = "std", target_arch = "x86_64")))]
    false
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
