//! The AVX-512 GEMM kernels: FP8 → bf16 packing into VNNI-2 panels, the `vdpbf16ps` and
//! f32-FMA micro-kernels with the blocked loops, and the short-problem kernel.
//!
//! Imports run one way: [`primitives`] (lookups, output conversions, write-back) ← [`pack`]
//! (panels) ← [`micro`] and [`blocked`] (the blocked kernel's micro-kernels and loops);
//! [`skinny`] (the short-problem kernel) uses [`primitives`] and [`pack`] only. The kernel
//! registry ([`super::registry`]) decides which of the two runs a problem.

pub(super) mod blocked;
pub(super) mod micro;
pub(super) mod pack;
pub(super) mod primitives;
pub(super) mod skinny;

use super::registry::{KernelEntry, ShortKernel};
use super::{GemmKernel, Problem};
use crate::backend::Backend;

/// Rows of A per micro-panel of the blocked kernel (the broadcast side of the micro-kernel).
pub(crate) const MR: usize = 12;
/// Columns of B per micro-panel of the blocked kernel (the vector side: two zmm of 16 f32
/// accumulators); also the row length of the f32 tiles [`primitives::write_unit`] reads.
pub(crate) const NR: usize = 32;

/// The blocked kernel with `vdpbf16ps`.
///
/// # Safety
/// As [`blocked::run`] with AVX512-BF16.
unsafe fn run_bf16(p: &Problem, ws: &mut [u8]) {
    // SAFETY: forwarded contract.
    unsafe { blocked::run(true, p, ws) }
}

/// The blocked kernel with f32 FMAs.
///
/// # Safety
/// As [`blocked::run`].
unsafe fn run_fma(p: &Problem, ws: &mut [u8]) {
    // SAFETY: forwarded contract.
    unsafe { blocked::run(false, p, ws) }
}

/// The short-problem kernel ([`skinny`]): up to [`skinny::ROWS`] rows of C with a K-contiguous
/// B, when K is long enough to pay for its per-tile work: at least 128 with one row vector
/// (m ≤ 16) and 512 with two (measured: 16×8192×k with k = 16 ran at 0.75× the blocked kernel,
/// k = 96 at 1.06×; 32×4096×k with k = 256 at 0.6–1.0×, k = 512 at 1.2–1.6×). Even for m = 1
/// it beat the blocked kernel (1.0–1.3× for m = 1 to 7; about even at m = 17 to 20, where most
/// of the second row vector is padding): the lanes for missing rows cost less than the blocked
/// kernel's transpose of B.
const SHORT: ShortKernel = ShortKernel {
    name: "avx512-bf16-short",
    available: crate::cpu::avx512_bf16_vbmi,
    min_k_by_rows: &[(16, 128), (skinny::ROWS, 512)],
    fits: skinny::fits,
    workspace_size: skinny::workspace_bytes,
    run: skinny::run,
};

/// Registry entry: AVX-512 BF16 (`vdpbf16ps`), with the short-problem kernel.
pub(super) const BF16: KernelEntry = KernelEntry {
    kernel: GemmKernel::Avx512Bf16,
    backend: Some(Backend::Avx512),
    available: crate::cpu::avx512_bf16,
    tile: (MR, NR),
    workspace_size: blocked::workspace_size,
    run: run_bf16,
    short: Some(SHORT),
};

/// Registry entry: AVX-512F f32 FMAs over the same bf16 panels (CPUs without AVX512-BF16).
pub(super) const FMA: KernelEntry = KernelEntry {
    kernel: GemmKernel::Avx512Fma,
    backend: Some(Backend::Avx512),
    available: crate::cpu::avx512,
    tile: (MR, NR),
    workspace_size: blocked::workspace_size,
    run: run_fma,
    short: None,
};
