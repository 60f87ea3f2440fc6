//! The AMX kernel's few-row path (part of the opt-in `amx-bf16` kernel, not bit-identical):
//! up to [`ROWS`] rows of C with a K-contiguous B (`y = x·Wᵀ` for a few tokens), streaming B
//! once.
//!
//! B is decoded exactly as by the exact few-row kernel ([`super::decode::step`]: 16 columns, one
//! 64-byte line of each per step, transposed and converted in registers), but instead of one
//! `vdpbf16ps` per pair and row, the step's 32 pair vectors are stored as two 16-pair B tiles
//! (2 KiB, in L1) and multiplied with `tdpbf16ps` against A tiles packed once per call: the
//! arithmetic no longer grows with the number of rows, so every m up to 32 runs at about the
//! decoding rate of m = 1. The accumulation is AMX's (see [`super::amx`]): one f32 tile per 16
//! rows over the whole K.

use super::super::{Problem, scalar};
use super::NR;
use super::amx::{A_TILE_WORDS, configure_tiles, release_tiles};
use super::decode::{StepTables, step};
use super::primitives::{cvt32, low_mask32, lut, write_unit};
use core::arch::asm;
use core::arch::x86_64::*;

/// Most rows of C (two 16-row tiles).
pub(crate) const ROWS: usize = 32;
/// Columns of C per step (one tile width).
const COLS: usize = 16;
/// 16-pair chunks of A over depth `k`, rounded up to whole 32-pair steps.
fn chunks(k: usize) -> usize {
    k.div_ceil(2).div_ceil(32) * 2
}

/// Workspace bytes [`run`] needs for depth `k`: 64 alignment bytes, two 16-row groups of A
/// tiles, the 2 KiB B staging tiles and a `ROWS × NR` f32 tile for the write-back.
pub(crate) fn workspace_bytes(k: usize) -> usize {
    64 + 2 * chunks(k) * A_TILE_WORDS * 4 + 2048 + ROWS * NR * 4
}

/// The layout conditions [`run`] needs: B K-contiguous and `1 ≤ m ≤ ROWS`.
pub(crate) fn fits(p: &Problem) -> bool {
    p.rsb == 1 && (1..=ROWS).contains(&p.m)
}

/// `C ← α·A·B + β·C` for a validated problem with `k > 0` that [`fits`], on the calling thread.
///
/// # Safety
/// `p` validated, `k > 0`, `fits(p)`; AVX-512 F/BW/VL/BF16/VBMI and AMX-TILE/AMX-BF16 usable
/// by this process; `ws` holds at least [`workspace_bytes`]`(p.k)` bytes.
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512bf16,avx512vbmi")]
pub(crate) unsafe fn run(p: &Problem, ws: &mut [u8]) {
    let (m, n, k) = (p.m, p.n, p.k);
    debug_assert!(fits(p) && k > 0 && ws.len() >= workspace_bytes(k));
    let nch = chunks(k);
    let groups = m.div_ceil(16);
    let base = ws.as_mut_ptr();
    // SAFETY: the workspace holds the alignment bytes and the three areas (caller).
    let (apack, stage, tile) = unsafe {
        let apack = base.add(base.align_offset(64)).cast::<u32>();
        let stage = apack.add(2 * nch * A_TILE_WORDS).cast::<u8>();
        (apack, stage, stage.add(2048).cast::<f32>())
    };
    // SAFETY: rows < m of A are inside the validated A; the groups' tiles fit the workspace.
    unsafe { pack_a(p, groups, nch, apack) };
    let tables = StepTables::new(p.b_fmt);
    let col = |j: usize| p.b.wrapping_offset(j as isize * p.csb);
    // SAFETY: AMX is usable (caller's contract).
    unsafe { configure_tiles() };
    for j0 in (0..n).step_by(COLS) {
        let cols = COLS.min(n - j0);
        let next_cols = COLS.min(n.saturating_sub(j0 + COLS));
        // SAFETY: tile instructions on configured tiles; the loads read the staging tiles just
        // written and A tiles inside the packed groups; B reads stay in columns < n, codes < k.
        unsafe {
            asm!("tilezero tmm0", "tilezero tmm1", options(nostack, nomem));
            for q0 in (0..k.div_ceil(2)).step_by(32) {
                step(&tables, &col, j0, cols, next_cols, k, 2 * q0, |q, v| {
                    _mm512_store_si512(stage.add(64 * q).cast(), v);
                });
                let c = q0 / 16;
                let a0 = apack.add(c * A_TILE_WORDS);
                asm!(
                    "tileloadd tmm4, [{s} + {r}*1]",
                    "tileloadd tmm5, [{s} + {r}*1 + 1024]",
                    "tileloadd tmm2, [{a} + {r}*1]",
                    "tileloadd tmm3, [{a} + {r}*1 + 1024]",
                    "tdpbf16ps tmm0, tmm2, tmm4",
                    "tdpbf16ps tmm0, tmm3, tmm5",
                    s = in(reg) stage,
                    a = in(reg) a0,
                    r = in(reg) 64usize,
                    options(nostack, readonly, preserves_flags)
                );
                if groups == 2 {
                    let a1 = a0.add(nch * A_TILE_WORDS);
                    asm!(
                        "tileloadd tmm2, [{a} + {r}*1]",
                        "tileloadd tmm3, [{a} + {r}*1 + 1024]",
                        "tdpbf16ps tmm1, tmm2, tmm4",
                        "tdpbf16ps tmm1, tmm3, tmm5",
                        a = in(reg) a1,
                        r = in(reg) 64usize,
                        options(nostack, readonly, preserves_flags)
                    );
                }
            }
            asm!(
                "tilestored [{t} + {r}*1], tmm0",
                "tilestored [{t} + {r}*1 + 2048], tmm1",
                t = in(reg) tile,
                r = in(reg) 4 * NR,
                options(nostack, preserves_flags)
            );
            if p.csc == 1 {
                write_unit(p, tile, 0, j0, m, cols);
            } else {
                let t = core::slice::from_raw_parts(tile, ROWS * NR);
                scalar::write_tile(p, t, NR, 0, j0, m, cols);
            }
        }
    }
    // SAFETY: AMX is usable (caller's contract); ends this function's use of the tiles.
    unsafe { release_tiles() };
}

/// Packs the `m ≤ 32` rows of A into `groups` 16-row groups of 1 KiB tiles,
/// `[group][chunk][row][pair]` with `nch` chunks of 16 pairs; rows past `m` and pairs past
/// `k / 2` are bf16 `+0`. K-contiguous rows are converted 32 codes at a time, other layouts
/// element by element.
///
/// # Safety
/// AVX-512 F/BW/VL; `p` validated with `m ≤ 32`; `dst` holds `groups · nch` tiles.
#[target_feature(enable = "avx512f,avx512bw,avx512vl")]
unsafe fn pack_a(p: &Problem, groups: usize, nch: usize, dst: *mut u32) {
    let (m, k) = (p.m, p.k);
    let l = lut(p.a_fmt);
    let table = scalar::bf16_lut(p.a_fmt);
    // SAFETY: (whole body) reads stay at rows < m and codes < k (masked loads or explicit
    // bounds); writes stay in the groups' tiles.
    unsafe {
        for r in 0..16 * groups {
            let row = p.a.wrapping_offset(r as isize * p.rsa);
            for c in 0..nch {
                let d = dst.add(((r / 16) * nch + c) * A_TILE_WORDS + (r % 16) * 16);
                let first = 32 * c;
                if r >= m || first >= k {
                    _mm512_storeu_si512(d.cast(), _mm512_setzero_si512());
                } else if p.csa == 1 {
                    let mask = low_mask32(k - first);
                    let v = cvt32(_mm256_maskz_loadu_epi8(mask, row.add(first).cast()), &l);
                    _mm512_storeu_si512(d.cast(), v);
                } else {
                    for w in 0..16 {
                        let code = |t: usize| {
                            if t < k {
                                table[*row.offset(t as isize * p.csa) as usize] as u32
                            } else {
                                0
                            }
                        };
                        *d.add(w) = code(first + 2 * w) | code(first + 2 * w + 1) << 16;
                    }
                }
            }
        }
    }
}
