//! The NEON micro-kernel (AArch64): an 8×12 tile of f32 FMAs (`fmla` by element) over the f32
//! panels of [`super::fpanel`] (24 q-register accumulators, three B vectors, two A vectors).

use super::registry::KernelEntry;
use super::{GemmKernel, KB, Problem, fpanel};
use crate::backend::Backend;
use core::arch::aarch64::*;

/// Rows of A per micro-panel (two q registers, used by lane).
const MR: usize = 8;
/// Columns of B per micro-panel (three q registers).
const NR: usize = 12;

/// The blocked driver with this micro-kernel.
///
/// # Safety
/// As [`super::registry::RunFn`].
unsafe fn run(p: &Problem, ws: &mut [u8]) {
    // SAFETY: forwarded contract; NEON is part of AArch64.
    unsafe { fpanel::run::<MR, NR>(p, ws, micro) }
}

/// Registry entry: the NEON back end's kernel.
pub(super) const ENTRY: KernelEntry = KernelEntry {
    kernel: GemmKernel::Neon,
    backend: Some(Backend::Neon),
    available: crate::cpu::neon,
    tile: (MR, NR),
    workspace_size: fpanel::workspace_size::<MR, NR>,
    run,
    short: None,
};

/// One K block of `kp ≤ KB` pairs (see [`super::fpanel::Micro`]): per pair, the odd `k` first,
/// then the even one, each a fused multiply-add.
///
/// # Safety
/// `a` holds `2kp·MR` floats, `b` `2kp·NR`, `tile` `MR·NR`.
#[target_feature(enable = "neon")]
unsafe fn micro(kp: usize, a: *const f32, b: *const f32, tile: *mut f32, add: bool) {
    debug_assert!(kp <= KB);
    // SAFETY: reads within the panels, writes within the tile (caller's contract).
    unsafe {
        let mut acc = [[vdupq_n_f32(0.0); 3]; MR];
        let step = |a: *const f32, b: *const f32, acc: &mut [[float32x4_t; 3]; MR]| {
            let bv = [vld1q_f32(b), vld1q_f32(b.add(4)), vld1q_f32(b.add(8))];
            let a0 = vld1q_f32(a);
            let a1 = vld1q_f32(a.add(4));
            macro_rules! row {
                ($i:literal, $av:ident, $lane:literal) => {
                    for v in 0..3 {
                        acc[$i][v] = vfmaq_laneq_f32::<$lane>(acc[$i][v], bv[v], $av);
                    }
                };
            }
            row!(0, a0, 0);
            row!(1, a0, 1);
            row!(2, a0, 2);
            row!(3, a0, 3);
            row!(4, a1, 0);
            row!(5, a1, 1);
            row!(6, a1, 2);
            row!(7, a1, 3);
        };
        let (mut a, mut b) = (a, b);
        for _ in 0..kp {
            step(a.add(MR), b.add(NR), &mut acc);
            step(a, b, &mut acc);
            a = a.add(2 * MR);
            b = b.add(2 * NR);
        }
        for (i, row) in acc.iter().enumerate() {
            for (v, x) in row.iter().enumerate() {
                let t = tile.add(i * NR + 4 * v);
                let total = if add { vaddq_f32(vld1q_f32(t), *x) } else { *x };
                vst1q_f32(t, total);
            }
        }
    }
}
