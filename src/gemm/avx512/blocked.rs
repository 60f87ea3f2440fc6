//! The blocked AVX-512 GEMM loops: column blocks of B, row blocks of A, micro-panels and K
//! blocks, calling the micro-kernels of [`super::micro`] on panels packed by [`super::pack`] and
//! writing C back through [`super::primitives`].

use super::super::registry::{BF16_PANEL_BLOCKING, MC_MAX_PANELS};
use super::super::{Problem, scalar};
use super::micro::{Prefetch, micro};
use super::pack::{KC, RowPanels, pack_a_block_unit_rows, pack_panel};
use super::primitives::{lut, write_unit};
use super::{MR, NR};
use core::arch::x86_64::*;

/// Floats of the per-block accumulator tiles (one `MR × NR` tile per row panel of a block).
const TILE_FLOATS: usize = MC_MAX_PANELS * MR * NR;

/// Row and column block sizes `(mc, nc)` for a problem (multiples of `MR` and `NR`): a packed
/// row (column) holds `k / 2` words, one per bf16 pair ([`BF16_PANEL_BLOCKING`]).
pub(crate) fn blocking(m: usize, n: usize, k: usize) -> (usize, usize) {
    let row_bytes = 4 * k.div_ceil(2).max(1);
    BF16_PANEL_BLOCKING.block_sizes(MR, NR, row_bytes, m, n)
}

/// Workspace bytes [`run`] needs for a problem of this size (any orientation: `m` and `n` are
/// bounded by their maximum): 64 alignment bytes, the tiles, and the packed A and B blocks,
/// A in whole K chunks of [`KC`] pairs.
pub(crate) fn workspace_size(m: usize, n: usize, k: usize) -> usize {
    let (mc, nc) = blocking(m.max(n), m.max(n), k);
    let kp = k.div_ceil(2).div_ceil(KC) * KC;
    (mc + nc)
        .saturating_mul(kp)
        .saturating_mul(4)
        .saturating_add(TILE_FLOATS * 4 + 128)
}

/// The blocked GEMM of a validated problem with `k > 0` on the calling thread.
///
/// Loops: column blocks of B (`nc`, packed once per block over the whole K), row blocks of A
/// (`mc`, packed over the whole K), then for each 32-column micro-panel of B and each K block of
/// [`KB`](super::super::KB) pairs (16 KiB of B, which stays in L1), every 12-row micro-panel of A; the block sums
/// accumulate in one f32 tile per row panel, written back once K is done.
///
/// # Safety
/// `p` validated; AVX-512 F/BW/VL (and BF16 when `bf16`) available; `ws` holds at least
/// [`workspace_size`] bytes for this problem.
pub(crate) unsafe fn run(bf16: bool, p: &Problem, ws: &mut [u8]) {
    let (m, n, k) = (p.m, p.n, p.k);
    let kp = k.div_ceil(2);
    let (mc, nc) = blocking(m, n, k);
    debug_assert!(mc <= MC_MAX_PANELS * MR);
    let base = ws.as_mut_ptr();
    // A block: [K block][row panel][pair][MR], every K block KB pairs long (the last padded),
    // so that one sweep over the row panels of a K block reads one contiguous stream.
    let a_bstride = mc.div_ceil(MR) * MR * KC;
    let a_words = kp.div_ceil(KC) * a_bstride;
    // SAFETY: the workspace holds 64 alignment bytes, the tiles and both panels (caller's
    // contract; see workspace_size).
    let (tiles, apack, bpack) = unsafe {
        let tiles = base.add(base.align_offset(64)).cast::<f32>();
        let apack = tiles.add(TILE_FLOATS).cast::<u32>();
        (tiles, apack, apack.add(a_words))
    };
    debug_assert!(ws.len() >= base.align_offset(64) + TILE_FLOATS * 4 + (a_words + nc * kp) * 4);
    // SAFETY: the AVX-512 features are available (caller's contract).
    let (la, lb) = unsafe { (lut(p.a_fmt), lut(p.b_fmt)) };
    let (ta, tb) = (scalar::bf16_lut(p.a_fmt), scalar::bf16_lut(p.b_fmt));
    for jc in (0..n).step_by(nc) {
        let ncur = nc.min(n - jc);
        // B micro-panels are packed just before the first row block uses them (hot in cache
        // then; a single row block, e.g. a decode shape, never reads them from memory).
        let pack_b = |jr: usize| {
            // SAFETY: columns jc + jr .. + NR of B are inside the validated B; the panel fits.
            unsafe {
                pack_panel(
                    p.b.wrapping_offset((jc + jr) as isize * p.csb),
                    p.csb,
                    p.rsb,
                    NR.min(ncur - jr),
                    NR,
                    k,
                    &lb,
                    tb,
                    bpack.add(jr * kp),
                    KC * NR,
                );
            }
        };
        for ic in (0..m).step_by(mc) {
            let mcur = mc.min(m - ic);
            let panels = RowPanels::new(mcur);
            if p.rsa == 1 {
                // SAFETY: rows ic .. ic + mcur of A are inside the validated A.
                unsafe {
                    pack_a_block_unit_rows(
                        p.a.wrapping_add(ic),
                        p.csa,
                        mcur,
                        k,
                        &la,
                        apack,
                        a_bstride,
                    );
                }
            } else {
                for (ir, rows) in panels {
                    // SAFETY: as for B.
                    unsafe {
                        pack_panel(
                            p.a.wrapping_offset((ic + ir) as isize * p.rsa),
                            p.rsa,
                            p.csa,
                            rows,
                            rows,
                            k,
                            &la,
                            ta,
                            apack.add(ir * KC),
                            a_bstride,
                        );
                    }
                }
            }
            let npanels = panels.count();
            let bend = bpack.wrapping_add(ncur.div_ceil(NR) * NR * kp);
            // With K-contiguous B columns and a single row block, the micro-kernel calls of one
            // micro-panel prefetch the source of the next (which is packed right before use).
            let src_pf = p.rsb == 1 && mcur == m;
            let row_lines = k.div_ceil(64);
            let src_lines = NR * row_lines;
            let src_per = src_lines.div_ceil(kp.div_ceil(KC) * npanels);
            for jr in (0..ncur).step_by(NR) {
                let cols = NR.min(ncur - jr);
                if ic == 0 {
                    pack_b(jr);
                }
                for kc in (0..kp).step_by(KC) {
                    let kb = KC.min(kp - kc);
                    let last = kc + kb == kp;
                    let bblock = bpack.wrapping_add(jr * kp + kc * NR);
                    // The B block of the next sweep follows this one in memory (or the block
                    // wraps to the first panel for the next row block); its lines are split
                    // among this sweep's micro-kernel calls.
                    let mut next = bblock.wrapping_add(kb * NR);
                    if next >= bend {
                        next = bpack;
                    }
                    let lines = (kb * NR * 4).div_ceil(64);
                    let per = lines.div_ceil(npanels);
                    for (q, (ir, rows)) in panels.enumerate() {
                        let pf = Prefetch {
                            at: next.cast::<u8>().wrapping_add(q * per * 64),
                            lines: per,
                        };
                        if last && p.csc == 1 {
                            // SAFETY: prefetches never fault.
                            unsafe { prefetch_c(p, ic + ir, jc + jr, rows, cols) };
                        }
                        if src_pf && jr + NR < ncur {
                            // Bring a slice of the next B micro-panel's source lines closer, so
                            // that packing it does not wait on memory.
                            let call = (kc / KC) * npanels + q;
                            let first = call * src_per;
                            let last_line = (first + src_per).min(src_lines);
                            for line in first..last_line {
                                let (w, t) = (line / row_lines, (line % row_lines) * 64);
                                let at = p.b.wrapping_offset(
                                    (jc + jr + NR + w) as isize * p.csb + t as isize,
                                );
                                // SAFETY: prefetches never fault.
                                unsafe { _mm_prefetch::<_MM_HINT_T0>(at.cast()) };
                            }
                        }
                        // SAFETY: the K block [kc, kc + kb) of both packed panels; tile ir/MR
                        // of the tile area.
                        unsafe {
                            micro(
                                bf16,
                                rows,
                                cols,
                                kb,
                                apack.add(kc * a_bstride / KC + ir * KC),
                                bblock,
                                tiles.add(ir * NR),
                                kc > 0,
                                pf,
                            );
                        }
                        if last {
                            // SAFETY: the tile's block of C is inside the validated C.
                            unsafe {
                                let tp = tiles.add(ir * NR);
                                if p.csc == 1 {
                                    write_unit(p, tp, ic + ir, jc + jr, rows, cols);
                                } else {
                                    let t = core::slice::from_raw_parts(tp, MR * NR);
                                    scalar::write_tile(p, t, NR, ic + ir, jc + jr, rows, cols);
                                }
                            }
                        }
                    }
                }
            }
        }
    }
}

/// Prefetches (for writing) the lines of C a `rows × cols` tile at `(i0, j0)` covers, when C's
/// column stride is 1.
///
/// # Safety
/// None needed beyond `p` describing C: prefetches never fault.
#[inline]
unsafe fn prefetch_c(p: &Problem, i0: usize, j0: usize, rows: usize, cols: usize) {
    let size = p.c_type.size();
    for i in 0..rows {
        let row =
            p.c.wrapping_offset(((i0 + i) as isize * p.rsc + j0 as isize) * size as isize);
        let bytes = cols * size;
        let mut off = 0;
        while off < bytes {
            // SAFETY: a prefetch hint; the address need not be valid.
            unsafe { _mm_prefetch::<_MM_HINT_ET0>(row.wrapping_add(off).cast()) };
            off += 64;
        }
        // SAFETY: as above.
        unsafe { _mm_prefetch::<_MM_HINT_ET0>(row.wrapping_add(bytes - 1).cast()) };
    }
}
