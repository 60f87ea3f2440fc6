//! The AVX2+FMA micro-kernel (x86-64 CPUs without AVX-512): a 6×16 tile of f32 FMAs over the
//! f32 panels of [`super::fpanel`] (12 ymm accumulators, two B vectors, one broadcast).

use super::registry::KernelEntry;
use super::{GemmKernel, KB, Problem, fpanel};
use core::arch::x86_64::*;

/// Rows of A per micro-panel.
const MR: usize = 6;
/// Columns of B per micro-panel (two ymm).
const NR: usize = 16;

/// The blocked driver with this micro-kernel.
///
/// # Safety
/// As [`super::registry::RunFn`]; AVX2 and FMA available.
unsafe fn run(p: &Problem, ws: &mut [u8]) {
    // SAFETY: forwarded contract.
    unsafe { fpanel::run::<MR, NR>(p, ws, micro) }
}

/// Registry entry: the best kernel of x86-64 CPUs without AVX-512 (there is no AVX2 back end
/// for the element-wise kernels, so no back-end setting selects it).
pub(super) const ENTRY: KernelEntry = KernelEntry {
    kernel: GemmKernel::Avx2Fma,
    backend: None,
    available: crate::cpu::avx2_fma,
    tile: (MR, NR),
    workspace_size: fpanel::workspace_size::<MR, NR>,
    run,
    short: None,
};

/// One K block of `kp ≤ KB` pairs (see [`super::fpanel::Micro`]): per pair, the odd `k` first,
/// then the even one, each a fused multiply-add.
///
/// # Safety
/// AVX2 and FMA available; `a` holds `2kp·MR` floats, `b` `2kp·NR`, `tile` `MR·NR`.
#[target_feature(enable = "avx2,fma")]
unsafe fn micro(kp: usize, a: *const f32, b: *const f32, tile: *mut f32, add: bool) {
    debug_assert!(kp <= KB);
    // SAFETY: reads within the panels, writes within the tile (caller's contract).
    unsafe {
        let mut acc = [[_mm256_setzero_ps(); 2]; MR];
        let step = |a: *const f32, b: *const f32, acc: &mut [[__m256; 2]; MR]| {
            let b0 = _mm256_loadu_ps(b);
            let b1 = _mm256_loadu_ps(b.add(8));
            for (i, row) in acc.iter_mut().enumerate() {
                let ai = _mm256_broadcast_ss(&*a.add(i));
                row[0] = _mm256_fmadd_ps(ai, b0, row[0]);
                row[1] = _mm256_fmadd_ps(ai, b1, row[1]);
            }
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
                let t = tile.add(i * NR + 8 * v);
                let total = if add {
                    _mm256_add_ps(_mm256_loadu_ps(t), *x)
                } else {
                    *x
                };
                _mm256_storeu_ps(t, total);
            }
        }
    }
}
