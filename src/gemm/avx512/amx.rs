//! The AMX kernel (`amx-bf16`, opt-in): FP8 codes converted to bf16 tiles and multiplied with
//! `tdpbf16ps`, f32 accumulation in tile registers.
//!
//! **Not bit-identical to the other kernels.** `tdpbf16ps` adds 32 exact products into each
//! f32 accumulator per instruction with an internal order and rounding the library cannot
//! choose (measured on Sapphire Rapids: one pair is `acc + round(p0 + p1)`; longer runs match
//! neither sequential rounding in either pair order nor one rounding of the exact sum), so the
//! results differ from the library's defined summation order by rounding errors of f32
//! accumulation: `|c − c_exact| ≤ (k / 32 + 4)·2⁻²³·Σ|a·b|` in the tests. Like the CUDA GEMM, it
//! is a different summation, never a different product or a lower accumulation precision.
//! Problems of up to 32 rows with a K-contiguous B take its few-row path ([`super::amx_few`]).
//!
//! Layout: a micro-block is 32 × 32 of C in four 16 × 16 f32 tiles (`tmm0`–`tmm3`), fed by two
//! A tiles (`tmm4`, `tmm5`: 16 rows × 16 bf16 pairs) and two B tiles (`tmm6`, `tmm7`: 16 pairs
//! × 16 columns, the VNNI panels of [`super::pack::pack_panel`]). A is packed per row block
//! and K block (at most 2048 codes) into 1 KiB tiles (`[16-row group][tile step][row][pair]`),
//! about 1 MiB that stays in L2; B into the blocked kernel's 32-column panels over the whole K.
//! K runs in chunks of [`CHUNK_STEPS`] tile steps (16 KiB of a B panel, resident in L1) over
//! every row group of the A block, whose accumulators wait in an f32 buffer between chunks (and
//! between K blocks, for every panel of the column block). Software prefetches, a few lines per
//! tile step, bring the next B chunk into L1, the next panel's K block into L2 and the lines of
//! the next micro-block of C (for writing) ahead of their use; a transposed A (K rows of codes)
//! is packed reading whole K rows of the row block.

use super::super::registry::MC_MAX_PANELS;
use super::super::{Problem, scalar};
use super::NR;
use super::pack::{INTERLEAVE, KC, pack_panel, transpose16};
use super::primitives::{cvt32, low_mask32, lut, write_unit};
use core::arch::asm;
use core::arch::x86_64::*;

/// Rows of C per micro-block (two tiles of 16).
const TM: usize = 32;
/// K pairs per tile step (64 bytes of bf16 per tile row).
const STEP: usize = 16;
/// Words (pairs) of one packed A tile: 16 rows × 16 pairs.
pub(super) const A_TILE_WORDS: usize = 256;
/// Bytes of packed A per row block (about half of a 2 MiB L2: measured here, tile loads
/// streaming over 1 MiB ran at the full `tdpbf16ps` rate, over 1.5 MiB at 0.6×).
const A_BLOCK_BYTES: usize = 1 << 20;
/// Tile steps per K block at most: a longer K is split into (nearly) equal blocks, so that a
/// row block holds at least `A_BLOCK_BYTES / (TM · 4 · STEP · KB_STEPS_MAX)` = 8 row groups,
/// each of which reuses a B chunk loaded into L1.
const KB_STEPS_MAX: usize = 64;
/// Tile steps per K chunk: the chunk of a B panel (`CHUNK_STEPS · 2` KiB) stays in L1 while
/// every row group of the A block passes over it; the accumulators make one round trip
/// through memory per chunk and row group (measured: 8 steps ran 1.1–1.2× faster than 4;
/// 16 steps, 32 KiB of B next to the streaming A tiles, slower than 4).
const CHUNK_STEPS: usize = 8;
/// K pairs ahead that the packer of a transposed A prefetches its K rows.
const PACK_AHEAD: usize = 8;
/// Bytes of packed B per column block: the A block is packed once per column block (measured
/// at 8192 × 2048 × 4096 with a transposed A: 16 MiB and a 2 MiB accumulator buffer, one column
/// block, ran 1.25× faster than 8 MiB and 512 KiB, four column blocks).
const B_BLOCK_BYTES: usize = 16 << 20;
/// Bytes of the accumulator buffer when K is split into blocks (it then holds a row block's
/// accumulators for every panel of the column block; each K block passes over them once).
const ACC_BYTES: usize = 2 << 20;

/// The tile configuration (palette 1): all eight tiles 16 rows × 64 bytes.
#[repr(C, align(64))]
struct TileConfig {
    palette: u8,
    start_row: u8,
    reserved: [u8; 14],
    colsb: [u16; 16],
    rows: [u8; 16],
}

const CONFIG: TileConfig = TileConfig {
    palette: 1,
    start_row: 0,
    reserved: [0; 14],
    colsb: [64, 64, 64, 64, 64, 64, 64, 64, 0, 0, 0, 0, 0, 0, 0, 0],
    rows: [16, 16, 16, 16, 16, 16, 16, 16, 0, 0, 0, 0, 0, 0, 0, 0],
};

/// Loads [`CONFIG`] into the tile configuration of the calling thread (every AMX entry point
/// does, before its first tile instruction; [`release_tiles`] ends the use).
///
/// # Safety
/// AMX-TILE usable by this process ([`crate::cpu::amx_bf16`]).
#[inline(always)]
pub(super) unsafe fn configure_tiles() {
    // SAFETY: CONFIG is a valid palette-1 configuration; AMX is usable (caller's contract).
    unsafe { asm!("ldtilecfg [{}]", in(reg) &CONFIG, options(nostack, readonly)) };
}

/// Releases the tile state [`configure_tiles`] set up.
///
/// # Safety
/// AMX-TILE usable by this process.
#[inline(always)]
pub(super) unsafe fn release_tiles() {
    // SAFETY: the caller's contract; TILERELEASE touches no memory.
    unsafe { asm!("tilerelease", options(nostack, nomem)) };
}

/// K pairs rounded up to whole tile steps.
fn padded_pairs(k: usize) -> usize {
    k.div_ceil(2).div_ceil(STEP) * STEP
}

/// Cache blocking of a problem.
#[derive(Clone, Copy)]
struct Plan {
    /// Rows per row block: a multiple of [`TM`], at most the rounded-up `m`.
    mc: usize,
    /// Columns per column block: a multiple of [`NR`], at most the rounded-up `n`.
    nc: usize,
    /// Tile steps per K block.
    kb: usize,
    /// Panels whose accumulators the accumulator buffer holds: 1 with a single K block (the
    /// panels of a column block run one after another), else every panel of a column block.
    acc_panels: usize,
}

/// The blocking of an `m × n × k` problem; `mc` grows with `m` only, `nc` and `acc_panels`
/// with `n` only (so that [`workspace_size`] can bound both orientations).
fn plan(m: usize, n: usize, k: usize) -> Plan {
    let kpp = padded_pairs(k);
    let steps = kpp / STEP;
    let blocks = steps.div_ceil(KB_STEPS_MAX);
    let kb = steps.div_ceil(blocks);
    let mc_groups = (A_BLOCK_BYTES / (TM * kb * STEP * 4)).clamp(1, MC_MAX_PANELS);
    let mut nc_panels = (B_BLOCK_BYTES / (NR * 4 * kpp)).clamp(1, 128);
    if blocks > 1 {
        nc_panels = nc_panels.min((ACC_BYTES / (mc_groups * TM * NR * 4)).max(1));
    }
    let nc = (nc_panels * NR).min(n.div_ceil(NR) * NR);
    Plan {
        mc: (mc_groups * TM).min(m.div_ceil(TM) * TM),
        nc,
        kb,
        acc_panels: if blocks > 1 { nc / NR } else { 1 },
    }
}

/// Workspace bytes [`run`] needs for an `m × n × k` problem in either orientation: 64
/// alignment bytes, the accumulator buffer, the packed A block, the packed B block and a
/// staging area for A sources that are not K-contiguous (a 16-row panel over the K block, or
/// 16 pairs of a row block).
pub(crate) fn workspace_size(m: usize, n: usize, k: usize) -> usize {
    let pl = plan(m.max(n), m.max(n), k);
    let kpp = padded_pairs(k);
    let kbp = pl.kb * STEP;
    let words = pl.acc_panels * pl.mc * NR + pl.mc * kbp + pl.nc * kpp + 16 * kbp.max(pl.mc);
    words.saturating_mul(4).saturating_add(64)
}

/// The AMX GEMM of a validated problem with `k > 0` on the calling thread.
///
/// # Safety
/// `p` validated; AVX-512 F/BW/VL and AMX-TILE/AMX-BF16 usable by this process
/// ([`crate::cpu::amx_bf16`]); `ws` holds at least [`workspace_size`] bytes.
pub(crate) unsafe fn run(p: &Problem, ws: &mut [u8]) {
    // SAFETY: forwarded contract.
    unsafe { run_avx512(p, ws) }
}

#[target_feature(enable = "avx512f,avx512bw,avx512vl")]
unsafe fn run_avx512(p: &Problem, ws: &mut [u8]) {
    let (m, n, k) = (p.m, p.n, p.k);
    let kpp = padded_pairs(k);
    let steps = kpp / STEP;
    let pl = plan(m, n, k);
    let (mc, nc, kb) = (pl.mc, pl.nc, pl.kb);
    let base = ws.as_mut_ptr();
    // SAFETY: the workspace holds the alignment bytes and the four areas (see
    // workspace_size; m and n are at most max(m, n), and the plan grows with each).
    let (acc, apack, bpack, stage) = unsafe {
        let acc = base.add(base.align_offset(64)).cast::<f32>();
        let apack = acc.add(pl.acc_panels * mc * NR).cast::<u32>();
        let bpack = apack.add(mc * kb * STEP);
        (acc, apack, bpack, bpack.add(nc * kpp))
    };
    let (la, lb) = (lut(p.a_fmt), lut(p.b_fmt));
    let (ta, tb) = (scalar::bf16_lut(p.a_fmt), scalar::bf16_lut(p.b_fmt));
    // SAFETY: AMX is usable (caller's contract).
    unsafe { configure_tiles() };
    for jc in (0..n).step_by(nc) {
        let ncur = nc.min(n - jc);
        for ic in (0..m).step_by(mc) {
            let mcur = mc.min(m - ic);
            let groups = mcur.div_ceil(TM);
            for s0 in (0..steps).step_by(kb) {
                let s1 = (s0 + kb).min(steps);
                let nsteps = s1 - s0;
                // SAFETY: rows ic .. ic + mcur of A are inside the validated A; the packed
                // block (mc · kb · STEP words) and the staging panel fit the workspace.
                unsafe {
                    pack_a_tiles(p, ic, mcur, groups * 2, s0, nsteps, &la, ta, apack, stage);
                }
                for jr in (0..ncur).step_by(NR) {
                    let cols = NR.min(ncur - jr);
                    let panel = bpack.wrapping_add(jr * kpp);
                    if ic == 0 && s0 == 0 {
                        // SAFETY: columns jc + jr .. + cols of B are inside the validated B;
                        // the panel (kpp pairs of NR words) fits the packed B block.
                        unsafe {
                            pack_panel(
                                p.b.wrapping_offset((jc + jr) as isize * p.csb),
                                p.csb,
                                p.rsb,
                                cols,
                                NR,
                                k,
                                &lb,
                                tb,
                                panel,
                                KC * NR,
                            );
                            let kp = k.div_ceil(2);
                            core::ptr::write_bytes(panel.add(kp * NR), 0, (kpp - kp) * NR);
                        }
                    }
                    let acc_panel = acc.wrapping_add((jr / NR % pl.acc_panels) * mc * NR);
                    // The next panel's part of this K block, brought from L3 into L2 a few
                    // lines per step over this panel's steps (none after the last panel).
                    let l2_next = panel.wrapping_add((kpp + s0 * STEP) * NR).cast::<u8>();
                    let l2_lines = if jr + NR < ncur {
                        nsteps * STEP * NR * 4 / 64
                    } else {
                        0
                    };
                    let l2_ticks = nsteps * groups;
                    let mut tick = 0;
                    for kc in (s0..s1).step_by(CHUNK_STEPS) {
                        let kend = (kc + CHUNK_STEPS).min(s1);
                        // The B chunk of the next sweep (the next chunk of this panel, or the
                        // first of this K block in the next panel) comes from L3 when the
                        // block was packed for an earlier row block; its lines are
                        // prefetched, a share per row group, so that no tile load waits on L3.
                        let next = if kend < s1 {
                            panel.wrapping_add(kend * STEP * NR)
                        } else {
                            panel.wrapping_add((kpp + s0 * STEP) * NR)
                        }
                        .cast::<u8>();
                        let lines = CHUNK_STEPS * STEP * NR * 4 / 64;
                        let per_group = lines.div_ceil(groups);
                        for g in 0..groups {
                            let (b0, b1) =
                                ((g * per_group).min(lines), ((g + 1) * per_group).min(lines));
                            let tile = acc_panel.wrapping_add(g * TM * NR);
                            let a0 = apack.wrapping_add(2 * g * nsteps * A_TILE_WORDS);
                            let a1 = a0.wrapping_add(nsteps * A_TILE_WORDS);
                            // The micro-block of C written back after this one: its lines are
                            // fetched for writing while this one computes.
                            let (ng, njr) = if g + 1 < groups {
                                (g + 1, jr)
                            } else {
                                (0, jr + NR)
                            };
                            let c_rows = if kend == steps && p.csc == 1 && njr < ncur {
                                TM.min(mcur - ng * TM)
                            } else {
                                0
                            };
                            let c_cols = NR.min(ncur.saturating_sub(njr));
                            let span = kend - kc;
                            // SAFETY: the tiles read lie in the packed A block, the packed B
                            // panel and the accumulator buffer, all of them written before.
                            unsafe {
                                if kc == 0 {
                                    asm!(
                                        "tilezero tmm0",
                                        "tilezero tmm1",
                                        "tilezero tmm2",
                                        "tilezero tmm3",
                                        options(nostack, nomem)
                                    );
                                } else {
                                    load_acc(tile);
                                }
                                // The prefetches are spread over the steps: a burst of them
                                // fills the line fill buffers and stalls the tile loads.
                                for (i, c) in (kc..kend).enumerate() {
                                    let share =
                                        |lo: usize, hi: usize, j: usize| lo + (hi - lo) * j / span;
                                    for line in share(b0, b1, i)..share(b0, b1, i + 1) {
                                        // A prefetch never faults.
                                        _mm_prefetch::<_MM_HINT_T0>(
                                            next.wrapping_add(64 * line).cast(),
                                        );
                                    }
                                    let (q0, q1) = (
                                        l2_lines * tick / l2_ticks,
                                        l2_lines * (tick + 1) / l2_ticks,
                                    );
                                    tick += 1;
                                    for line in q0..q1 {
                                        // A prefetch never faults.
                                        _mm_prefetch::<_MM_HINT_T1>(
                                            l2_next.wrapping_add(64 * line).cast(),
                                        );
                                    }
                                    let (r0, r1) = (share(0, c_rows, i), share(0, c_rows, i + 1));
                                    if r1 > r0 {
                                        prefetch_c(p, ic + ng * TM + r0, jc + njr, r1 - r0, c_cols);
                                    }
                                    step(
                                        a0.add((c - s0) * A_TILE_WORDS),
                                        a1.add((c - s0) * A_TILE_WORDS),
                                        panel.add(c * STEP * NR),
                                    );
                                }
                                store_acc(tile);
                            }
                            if kend == steps {
                                let rows = TM.min(mcur - g * TM);
                                let (i0, j0) = (ic + g * TM, jc + jr);
                                // SAFETY: the block of C is inside the validated C.
                                unsafe {
                                    if p.csc == 1 {
                                        write_unit(p, tile, i0, j0, rows, cols);
                                    } else {
                                        let t = core::slice::from_raw_parts(tile, TM * NR);
                                        scalar::write_tile(p, t, NR, i0, j0, rows, cols);
                                    }
                                }
                            }
                        }
                    }
                }
            }
        }
    }
    // SAFETY: AMX is usable (caller's contract); ends this function's use of the tiles.
    unsafe { release_tiles() };
}

/// Prefetches for writing the lines of rows `i0 .. i0 + rows`, columns `j0 .. j0 + cols` of a
/// C with unit column stride (prefetches never fault).
#[inline(always)]
fn prefetch_c(p: &Problem, i0: usize, j0: usize, rows: usize, cols: usize) {
    let size = p.c_type.size();
    for i in 0..rows {
        let row =
            p.c.wrapping_offset(((i0 + i) as isize * p.rsc + j0 as isize) * size as isize);
        let first = row.wrapping_sub(row as usize % 64);
        let end = row.wrapping_add(cols * size);
        let mut line = first;
        while line < end {
            // SAFETY: a prefetch reads no architectural state and never faults; `prefetchw`
            // exists on every CPU with AMX.
            unsafe {
                asm!("prefetchw [{}]", in(reg) line, options(nostack, readonly, preserves_flags))
            };
            line = line.wrapping_add(64);
        }
    }
}

/// One tile step: `C[2×2 tiles] += A[2 tiles] · B[2 tiles]` over 16 K pairs.
///
/// # Safety
/// Tiles configured; `a0`, `a1` point to packed 1 KiB A tiles (rows 64 bytes apart), `b` to 16
/// rows of a B panel (`NR` words, 128 bytes apart).
#[inline(always)]
unsafe fn step(a0: *const u32, a1: *const u32, b: *const u32) {
    // SAFETY: the caller's contract; tile loads read 16 rows of 64 bytes at the given strides.
    unsafe {
        asm!(
            "tileloadd tmm4, [{a0} + {s64}*1]",
            "tileloadd tmm6, [{b} + {s128}*1]",
            "tileloadd tmm7, [{b} + {s128}*1 + 64]",
            "tdpbf16ps tmm0, tmm4, tmm6",
            "tileloadd tmm5, [{a1} + {s64}*1]",
            "tdpbf16ps tmm1, tmm4, tmm7",
            "tdpbf16ps tmm2, tmm5, tmm6",
            "tdpbf16ps tmm3, tmm5, tmm7",
            a0 = in(reg) a0,
            a1 = in(reg) a1,
            b = in(reg) b,
            s64 = in(reg) 64usize,
            s128 = in(reg) 128usize,
            options(nostack, readonly, preserves_flags)
        );
    }
}

/// Loads the four accumulator tiles from a 32 × [`NR`] f32 buffer.
///
/// # Safety
/// Tiles configured; `t` points to `TM · NR` readable floats.
#[inline(always)]
unsafe fn load_acc(t: *const f32) {
    // SAFETY: the caller's contract.
    unsafe {
        asm!(
            "tileloadd tmm0, [{t} + {s}*1]",
            "tileloadd tmm1, [{t} + {s}*1 + 64]",
            "tileloadd tmm2, [{t} + {s}*1 + 2048]",
            "tileloadd tmm3, [{t} + {s}*1 + 2112]",
            t = in(reg) t,
            s = in(reg) 4 * NR,
            options(nostack, readonly, preserves_flags)
        );
    }
}

/// Stores the four accumulator tiles into a 32 × [`NR`] f32 buffer.
///
/// # Safety
/// Tiles configured; `t` points to `TM · NR` writable floats.
#[inline(always)]
unsafe fn store_acc(t: *mut f32) {
    // SAFETY: the caller's contract.
    unsafe {
        asm!(
            "tilestored [{t} + {s}*1], tmm0",
            "tilestored [{t} + {s}*1 + 64], tmm1",
            "tilestored [{t} + {s}*1 + 2048], tmm2",
            "tilestored [{t} + {s}*1 + 2112], tmm3",
            t = in(reg) t,
            s = in(reg) 4 * NR,
            options(nostack, preserves_flags)
        );
    }
}

/// Packs rows `i0 .. i0 + rows` of A over the K block of tile steps `s0 .. s0 + nsteps`
/// (codes `32·s0 ..`) into `tiles16` 16-row groups of 1 KiB tiles, `[group][step][row][pair]`;
/// rows past `rows` and pairs past `k / 2` are bf16 `+0`. K-contiguous rows are converted
/// directly; other layouts go through a VNNI panel ([`pack_panel`], 16 wide) in `stage` and a
/// 16 × 16 word transpose per tile.
///
/// # Safety
/// AVX-512 F/BW/VL; rows `i0 ..` `i0 + rows` of A readable; `s0` below `k`'s tile steps;
/// `dst` holds `tiles16 · nsteps · 256` words, `stage` `max(nsteps, tiles16) · 256` words.
#[allow(clippy::too_many_arguments)]
#[target_feature(enable = "avx512f,avx512bw,avx512vl")]
unsafe fn pack_a_tiles(
    p: &Problem,
    i0: usize,
    rows: usize,
    tiles16: usize,
    s0: usize,
    nsteps: usize,
    l: &super::primitives::Lut,
    table: &[u16; 256],
    dst: *mut u32,
    stage: *mut u32,
) {
    if p.csa != 1 && p.rsa == 1 {
        // SAFETY: forwarded contract (the staging area holds 16 · 16 · tiles16 words).
        unsafe { pack_a_tiles_unit_rows(p, i0, rows, tiles16, s0, nsteps, l, dst, stage) };
        return;
    }
    let (k, chunks) = (p.k, nsteps);
    // First code of the block and codes in it (at least one: s0 is below k's tile steps).
    let k0 = 2 * STEP * s0;
    let klen = (2 * STEP * nsteps).min(k - k0);
    // SAFETY: (whole body) reads stay at rows < rows and codes < k through masked loads or
    // pack_panel's contract; writes stay in the group's tiles and the staging panel.
    unsafe {
        for t in 0..tiles16 {
            let r0 = 16 * t;
            let group = dst.add(t * chunks * A_TILE_WORDS);
            let live = rows.saturating_sub(r0).min(16);
            if live == 0 {
                core::ptr::write_bytes(group, 0, chunks * A_TILE_WORDS);
            } else if p.csa == 1 {
                for r in 0..16 {
                    let src = p.a.wrapping_offset((i0 + r0 + r) as isize * p.rsa);
                    for c in 0..chunks {
                        let d = group.add(c * A_TILE_WORDS + r * STEP);
                        let first = k0 + 2 * STEP * c;
                        let v = if r < live && first < k {
                            let mask = low_mask32(k - first);
                            cvt32(_mm256_maskz_loadu_epi8(mask, src.add(first).cast()), l)
                        } else {
                            _mm512_setzero_si512()
                        };
                        _mm512_storeu_si512(d.cast(), v);
                    }
                }
            } else {
                pack_panel(
                    p.a.wrapping_offset((i0 + r0) as isize * p.rsa + k0 as isize * p.csa),
                    p.rsa,
                    p.csa,
                    live,
                    16,
                    klen,
                    l,
                    table,
                    stage,
                    KC * 16,
                );
                let kp = klen.div_ceil(2);
                core::ptr::write_bytes(stage.add(kp * 16), 0, (nsteps * STEP - kp) * 16);
                for c in 0..chunks {
                    let mut v = [_mm512_setzero_si512(); 16];
                    for (q, vq) in v.iter_mut().enumerate() {
                        *vq = _mm512_loadu_si512(stage.add((c * STEP + q) * 16).cast());
                    }
                    let tr = transpose16(v);
                    for (r, row) in tr.iter().enumerate() {
                        let d = group.add(c * A_TILE_WORDS + r * STEP);
                        _mm512_storeu_si512(d.cast(), *row);
                    }
                }
            }
        }
    }
}

/// [`pack_a_tiles`] for rows adjacent in memory (row stride 1: a transposed A, K rows of
/// codes): per tile step, the 32 K rows of the block's codes are read whole (contiguous,
/// unlike one 16-row panel at a time, which uses a quarter of each line it reads), converted and
/// interleaved into pair words in `stage` (`[pair][row]`, 16 pairs), then transposed 16 × 16
/// into the block's tiles.
///
/// # Safety
/// As [`pack_a_tiles`], with `p.rsa == 1`.
#[allow(clippy::too_many_arguments)]
#[target_feature(enable = "avx512f,avx512bw,avx512vl")]
unsafe fn pack_a_tiles_unit_rows(
    p: &Problem,
    i0: usize,
    rows: usize,
    tiles16: usize,
    s0: usize,
    nsteps: usize,
    l: &super::primitives::Lut,
    dst: *mut u32,
    stage: *mut u32,
) {
    let k = p.k;
    let width = 16 * tiles16;
    let src = p.a.wrapping_add(i0);
    // The K row of code t.
    let row = |t: usize| src.wrapping_offset(t as isize * p.csa);
    // SAFETY: (whole body) loads are masked to rows < rows of codes < k; stores stay in the
    // staging area (16 · width words) and the block's tiles.
    unsafe {
        let idx0 = _mm512_loadu_si512(INTERLEAVE[0].as_ptr().cast());
        let idx1 = _mm512_loadu_si512(INTERLEAVE[1].as_ptr().cast());
        for st in 0..nsteps {
            for q in 0..STEP {
                let t = 2 * STEP * (s0 + st) + 2 * q;
                // The K rows of a later pair: strided (often a page apart), so prefetched.
                for c in (0..rows).step_by(64) {
                    _mm_prefetch::<_MM_HINT_T0>(row(t + 2 * PACK_AHEAD).wrapping_add(c).cast());
                    _mm_prefetch::<_MM_HINT_T0>(row(t + 2 * PACK_AHEAD + 1).wrapping_add(c).cast());
                }
                for c in (0..width).step_by(32) {
                    let mask = low_mask32(rows.saturating_sub(c));
                    let load = |tt: usize| {
                        if tt < k {
                            cvt32(
                                _mm256_maskz_loadu_epi8(mask, row(tt).wrapping_add(c).cast()),
                                l,
                            )
                        } else {
                            _mm512_setzero_si512()
                        }
                    };
                    let (e, o) = (load(t), load(t + 1));
                    let d = stage.add(q * width + c);
                    _mm512_storeu_si512(d.cast(), _mm512_permutex2var_epi16(e, idx0, o));
                    if c + 16 < width {
                        _mm512_storeu_si512(
                            d.add(16).cast(),
                            _mm512_permutex2var_epi16(e, idx1, o),
                        );
                    }
                }
            }
            for tile in 0..tiles16 {
                let mut v = [_mm512_setzero_si512(); 16];
                for (q, vq) in v.iter_mut().enumerate() {
                    *vq = _mm512_loadu_si512(stage.add(q * width + 16 * tile).cast());
                }
                let d = dst.add((tile * nsteps + st) * A_TILE_WORDS);
                for (r, w) in transpose16(v).iter().enumerate() {
                    _mm512_storeu_si512(d.add(r * STEP).cast(), *w);
                }
            }
        }
    }
}
