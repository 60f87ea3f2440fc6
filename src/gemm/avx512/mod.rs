//! The AVX-512 GEMM kernels: FP8 → bf16 packing into VNNI-2 panels, the `vdpbf16ps` and
//! f32-FMA micro-kernels with the blocked loops, and two short-problem kernels.
//!
//! Imports run one way: [`primitives`] (lookups, output conversions, write-back) ← [`pack`]
//! (panels) ← [`micro`] and [`blocked`] (the blocked kernel's micro-kernels and loops);
//! [`amx`] (the opt-in AMX kernel) uses [`primitives`] and [`pack`], its few-row path
//! [`amx_few`] those and [`decode`]'s step;
//! [`skinny`] (the short-problem kernel, up to 32 rows) uses [`primitives`] and [`pack`] only,
//! and [`decode`] (few rows, up to 8) those and [`skinny`]'s byte tables. The kernel registry
//! ([`super::registry`]) decides which runs a problem.

pub(super) mod amx;
pub(super) mod amx_few;
pub(super) mod blocked;
pub(super) mod decode;
#[cfg(test)]
mod kernel_tests;
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

/// The few-row kernel ([`decode`]): up to [`decode::ROWS`] rows of C with a K-contiguous B (a
/// linear layer's weight), streamed once and decoded in registers; tried before [`SHORT`]. From
/// k = 64 (measured against the kernels it replaces, CPU time, 1 thread: 1.15× at 8×4096×64,
/// 1.6× at 8×4096×128 and 8×512×512, 2.4× at 4×2048×256, 3–4× at 1 and 2 × 8192 × 2048; at
/// k = 8 to 32 it ran at 0.4–0.7×: a 64-code line per column per step is mostly padding).
const DECODE: ShortKernel = ShortKernel {
    name: "avx512-bf16-decode",
    available: crate::cpu::avx512_bf16_vbmi,
    min_k_by_rows: &[(decode::ROWS, 64)],
    fits: decode::fits,
    workspace_size: decode::workspace_bytes,
    run: decode::run,
};

/// Registry entry: AVX-512 BF16 (`vdpbf16ps`), with the short-problem kernel.
pub(super) const BF16: KernelEntry = KernelEntry {
    kernel: GemmKernel::Avx512Bf16,
    backend: Some(Backend::Avx512),
    available: crate::cpu::avx512_bf16,
    tile: (MR, NR),
    workspace_size: blocked::workspace_size,
    run: run_bf16,
    short: &[DECODE, SHORT],
};

/// The AMX kernel's few-row path ([`amx_few`]): up to [`amx_few::ROWS`] rows of C with a
/// K-contiguous B, from k = 64 (as the exact few-row kernel, whose decoding it shares).
const AMX_FEW: ShortKernel = ShortKernel {
    name: "amx-bf16-few",
    available: amx_few_available,
    min_k_by_rows: &[(amx_few::ROWS, 64)],
    fits: amx_few::fits,
    workspace_size: amx_few::workspace_bytes,
    run: amx_few::run,
};

/// AMX plus the byte permutes (VBMI) of the shared decoding step.
fn amx_few_available() -> bool {
    crate::cpu::amx_bf16() && crate::cpu::avx512_bf16_vbmi()
}

/// Registry entry: AMX (`tdpbf16ps` on bf16 tiles), opt-in and not bit-identical to the
/// others ([`amx`]); few-row problems take its own few-row path ([`amx_few`]).
pub(super) const AMX: KernelEntry = KernelEntry {
    kernel: GemmKernel::AmxBf16,
    backend: None,
    available: crate::cpu::amx_bf16,
    tile: (32, NR),
    workspace_size: amx::workspace_size,
    run: amx::run,
    short: &[AMX_FEW],
};

/// Registry entry: AVX-512F f32 FMAs over the same bf16 panels (CPUs without AVX512-BF16).
pub(super) const FMA: KernelEntry = KernelEntry {
    kernel: GemmKernel::Avx512Fma,
    backend: Some(Backend::Avx512),
    available: crate::cpu::avx512,
    tile: (MR, NR),
    workspace_size: blocked::workspace_size,
    run: run_fma,
    short: &[],
};
