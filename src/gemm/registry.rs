//! The GEMM kernel registry: one table of kernels, the cache-blocking parameters, and the one
//! place that decides which kernel runs a problem (see "How to add a GEMM kernel" in the
//! [module documentation](super)).
//!
//! Each kernel module exports its [`KernelEntry`] (its own code: availability, tile shape,
//! workspace size, entry point, and its short-problem kernels with the problem sizes they
//! suit); [`KERNELS`] lists the entries compiled into this build, fastest first. Dispatch,
//! workspace sizing and back-end selection read the table and never name a kernel.

use super::{GemmKernel, Problem};
use crate::backend::Backend;

/// A kernel's entry point: computes a validated problem with `k > 0` on the calling thread.
///
/// # Safety
/// The problem was validated, the kernel is available on this CPU, and `ws` holds at least the
/// kernel's workspace size for the problem's `m`, `n`, `k` bytes.
pub(crate) type RunFn = unsafe fn(p: &Problem, ws: &mut [u8]);

/// A short-problem kernel attached to a blocked kernel: it runs a problem instead of the
/// blocked kernel when the problem [`fits`](ShortKernel::fits) it and K reaches the
/// threshold for its row count ([`ShortKernel::min_k_by_rows`]).
#[derive(Clone, Copy)]
pub(crate) struct ShortKernel {
    /// Name (for diagnostics and tests).
    #[cfg_attr(not(test), allow(dead_code))]
    pub name: &'static str,
    /// Whether this CPU runs it (it may need more features than its blocked kernel).
    pub available: fn() -> bool,
    /// `(rows, min_k)` pairs in increasing `rows`: a problem with `m ≤ rows` (the first pair
    /// that applies) takes the short kernel when `k ≥ min_k`; below, its per-tile work makes it
    /// slower than the blocked kernel.
    pub min_k_by_rows: &'static [(usize, usize)],
    /// The layout and size conditions the kernel needs (correctness, not speed).
    pub fits: fn(&Problem) -> bool,
    /// Workspace bytes for depth `k`.
    pub workspace_size: fn(k: usize) -> usize,
    /// The kernel.
    pub run: RunFn,
}

/// One GEMM kernel family.
#[derive(Clone, Copy)]
pub(crate) struct KernelEntry {
    /// Which kernel (its public name is [`GemmKernel::name`]).
    pub kernel: GemmKernel,
    /// The back end whose setting selects this kernel ([`GemmKernel::for_backend`]); `None`
    /// for a kernel chosen only as the fastest available one ([`GemmKernel::best`]).
    pub backend: Option<Backend>,
    /// Whether this CPU runs it ([`crate::cpu`]).
    pub available: fn() -> bool,
    /// Micro-tile: rows of A × columns of B per micro-kernel call (`(1, 1)` for the scalar
    /// reference).
    #[cfg_attr(not(test), allow(dead_code))]
    pub tile: (usize, usize),
    /// Workspace bytes for an `m × n × k` problem in either orientation (bounded by
    /// `max(m, n)`); 0 when the kernel packs nothing.
    pub workspace_size: fn(m: usize, n: usize, k: usize) -> usize,
    /// The (blocked) kernel.
    pub run: RunFn,
    /// The kernels for short problems, in order of preference: the first that suits a
    /// problem runs it.
    pub short: &'static [ShortKernel],
}

/// Every kernel of this build, fastest first among the exact ones (the opt-in, not
/// bit-identical AMX kernel is listed but never chosen by [`best`] or [`for_backend`]); the
/// scalar reference is last and always present.
pub(crate) static KERNELS: &[KernelEntry] = &[
    #[cfg(all(target_arch = "x86_64", target_feature = "sse2"))]
    super::avx512::BF16,
    #[cfg(all(target_arch = "x86_64", target_feature = "sse2"))]
    super::avx512::FMA,
    #[cfg(all(target_arch = "x86_64", target_feature = "sse2"))]
    super::avx512::AMX,
    #[cfg(all(target_arch = "x86_64", target_feature = "sse2"))]
    super::avx2::ENTRY,
    #[cfg(target_arch = "aarch64")]
    super::neon::ENTRY,
    super::scalar::ENTRY,
];

/// The entry of `kernel`, if this build has it.
pub(crate) fn entry(kernel: GemmKernel) -> Option<&'static KernelEntry> {
    KERNELS.iter().find(|e| e.kernel == kernel)
}

/// The entry of `kernel` when this CPU runs it.
pub(crate) fn available(kernel: GemmKernel) -> Option<&'static KernelEntry> {
    entry(kernel).filter(|e| (e.available)())
}

/// The fastest available kernel selected by `backend`, else the scalar reference.
pub(crate) fn for_backend(backend: Backend) -> GemmKernel {
    KERNELS
        .iter()
        .find(|e| e.backend == Some(backend) && e.kernel.is_exact() && (e.available)())
        .map_or(GemmKernel::Scalar, |e| e.kernel)
}

/// The fastest available kernel.
pub(crate) fn best() -> GemmKernel {
    KERNELS
        .iter()
        .find(|e| e.kernel.is_exact() && (e.available)())
        .map_or(GemmKernel::Scalar, |e| e.kernel)
}

/// Whether `short` takes `p` (see [`ShortKernel`]): the one place the blocked and short-problem
/// kernels are chosen between.
fn short_suits(short: &ShortKernel, p: &Problem) -> bool {
    let min_k = short
        .min_k_by_rows
        .iter()
        .find(|&&(rows, _)| p.m <= rows)
        .map(|&(_, k)| k);
    min_k.is_some_and(|min_k| p.k >= min_k) && (short.fits)(p) && (short.available)()
}

/// The kernel of `entry` that runs `p`: its first short-problem kernel that suits `p`, else
/// the blocked one.
pub(crate) fn choose(entry: &KernelEntry, p: &Problem) -> RunFn {
    entry
        .short
        .iter()
        .find(|s| short_suits(s, p))
        .map_or(entry.run, |s| s.run)
}

/// Workspace bytes `entry` needs for an `m × n × k` problem (`m, n, k > 0`): enough for its
/// blocked kernel and its short-problem kernel.
pub(crate) fn workspace_size(entry: &KernelEntry, m: usize, n: usize, k: usize) -> usize {
    let blocked = (entry.workspace_size)(m, n, k);
    entry
        .short
        .iter()
        .fold(blocked, |w, s| w.max((s.workspace_size)(k)))
}

/// Most row panels of A per row block (every blocked kernel): bounds the per-block tiles of
/// accumulators the blocked loops keep.
pub(crate) const MC_MAX_PANELS: usize = 24;

/// Cache-blocking parameters of a blocked kernel: how much packed A and B each block holds.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Blocking {
    /// Bytes of packed A per row block (aimed at most of the L2).
    pub a_block_bytes: usize,
    /// Bytes of packed B per column block.
    pub b_block_bytes: usize,
    /// Most row panels per row block ([`MC_MAX_PANELS`]).
    pub mc_max_panels: usize,
    /// Most column panels per column block.
    pub nc_max_panels: usize,
}

impl Blocking {
    /// Row and column block sizes `(mc, nc)` for `m × n` with `mr × nr` micro-panels whose
    /// packed rows (columns) take `row_bytes` bytes each over the whole K: multiples of `mr`
    /// and `nr`, at least one panel, at most the (rounded-up) problem.
    pub(crate) fn block_sizes(
        &self,
        mr: usize,
        nr: usize,
        row_bytes: usize,
        m: usize,
        n: usize,
    ) -> (usize, usize) {
        let mc_panels = (self.a_block_bytes / (mr * row_bytes)).clamp(1, self.mc_max_panels);
        let nc_panels = (self.b_block_bytes / (nr * row_bytes)).clamp(1, self.nc_max_panels);
        let mc = (mc_panels * mr).min(m.div_ceil(mr) * mr);
        let nc = (nc_panels * nr).min(n.div_ceil(nr) * nr);
        (mc, nc)
    }
}

/// Blocking of the AVX-512 kernels (bf16-pair panels, 4 bytes per K pair): 448 KiB of packed
/// A per row block (most of a 1 MiB or larger L2), 8 MiB of B, at most 128 column panels.
#[cfg_attr(
    not(all(target_arch = "x86_64", target_feature = "sse2")),
    allow(dead_code)
)]
pub(crate) const BF16_PANEL_BLOCKING: Blocking = Blocking {
    a_block_bytes: 448 * 1024,
    b_block_bytes: 8 << 20,
    mc_max_panels: MC_MAX_PANELS,
    nc_max_panels: 128,
};

/// Blocking of the f32-panel kernels (AVX2+FMA, NEON; 4 bytes per K element): 384 KiB of
/// packed A per row block, 8 MiB of B, at most 256 column panels.
#[cfg_attr(
    not(any(
        all(target_arch = "x86_64", target_feature = "sse2"),
        target_arch = "aarch64"
    )),
    allow(dead_code)
)]
pub(crate) const F32_PANEL_BLOCKING: Blocking = Blocking {
    a_block_bytes: 384 * 1024,
    b_block_bytes: 8 << 20,
    mc_max_panels: MC_MAX_PANELS,
    nc_max_panels: 256,
};

#[cfg(test)]
mod tests {
    use super::*;

    /// The table's invariants: each kernel once, the scalar reference last and always there,
    /// back-end selection and the short-problem thresholds well formed, workspace sizes that
    /// grow with the problem and are 0 only for the scalar kernel.
    #[test]
    fn table_is_well_formed() {
        for (i, e) in KERNELS.iter().enumerate() {
            assert!(
                KERNELS[..i].iter().all(|f| f.kernel != e.kernel),
                "{:?}",
                e.kernel
            );
            assert!(e.tile.0 > 0 && e.tile.1 > 0);
            let (small, large) = (
                (e.workspace_size)(1, 1, 1),
                (e.workspace_size)(100, 300, 5000),
            );
            assert_eq!(small == 0, e.kernel == GemmKernel::Scalar, "{:?}", e.kernel);
            assert!(large >= small);
            for s in e.short {
                assert!(!s.name.is_empty());
                assert!(s.min_k_by_rows.windows(2).all(|w| w[0].0 < w[1].0));
                assert!((s.workspace_size)(5000) >= (s.workspace_size)(1));
            }
        }
        let last = KERNELS.last().unwrap();
        assert_eq!(last.kernel, GemmKernel::Scalar);
        assert!((last.available)());
        assert_eq!(for_backend(Backend::Scalar), GemmKernel::Scalar);
        for b in Backend::ALL {
            let k = for_backend(b);
            assert!(available(k).is_some());
            assert!(k == GemmKernel::Scalar || entry(k).unwrap().backend == Some(b));
        }
        assert!(available(best()).is_some() && best().is_exact());
    }
}
