//! AVX-512 BF16 GEMM for short problems with a K-contiguous B: 1 to 32 rows of C (after
//! orientation), e.g. a decode step `Y = X·Wᵀ` with a few tokens and W stored row-major.
//!
//! The blocked kernel vectorises along the columns of C, so each FP8 code of B must be moved
//! into a column-interleaved panel; for a K-contiguous B that is a transpose in registers, which
//! costs about as much as the 16 or 32 multiply-adds each code of B takes part in here. This
//! kernel runs the vectors along the rows instead: one zmm (two for m > 16) holds the pair
//! `(2p, 2p+1)` of 16 rows of A (A packed once, `[p][16·V]` words, rows past `m` zero), and each
//! pair of B is broadcast from memory into one `vdpbf16ps` per row vector, so B only needs
//! converting FP8 → bf16 in the order its pairs already lie.
//!
//! Work goes in blocks: a tile of 24 (one row vector) or 12 (two) columns × a K block of [`KB`]
//! pairs, 24 zmm accumulators either way. A block's B is converted into a 12 KiB buffer (one row
//! of `KB` words per column) that stays in L1; the accumulators run over the block in pair
//! order, summed from +0 and added to the tile totals: the same additions in the same order as
//! every other kernel (see the module documentation of [`crate::gemm`]). Columns past `n` are zero in
//! the buffer and never written. Two buffers alternate: while one block is computed, the next is
//! converted into the other (AVX512-VBMI byte lookups, spread over the pair loop so that they
//! overlap the multiply-adds), and the source of the block after that is prefetched into L2
//! (into L1 the columns of a power-of-two K would evict each other: they map to the same few
//! sets).

use super::super::{KB, Problem, scalar};
use super::NR;
use super::pack::pack_panel;
use super::primitives::{lut, write_unit};
use crate::fp8::Fp8Format;
use core::arch::x86_64::*;

/// Most rows of C (lanes of two zmm) the short-problem kernel handles.
pub(crate) const ROWS: usize = 32;
/// Accumulators (zmm) per tile: `24 / V` columns of C × `V` vectors of 16 rows.
const ACCUMULATORS: usize = 24;
/// Most columns per tile (one row vector).
const COLS: usize = ACCUMULATORS;

/// Words of packed A for `k` (pairs rounded up to whole K blocks), for up to [`ROWS`] rows.
fn a_words(k: usize) -> usize {
    k.div_ceil(2).div_ceil(KB) * KB * ROWS
}

/// Bytes of workspace [`run`] needs for depth `k`: 64 alignment bytes, packed A, two B block
/// buffers, the accumulator totals (`COLS` rows of `NR` floats) and the transposed tile
/// (`ROWS × NR` floats).
pub(crate) fn workspace_bytes(k: usize) -> usize {
    64 + (a_words(k) + 2 * COLS * KB + COLS * NR + ROWS * NR) * 4
}

/// Columns per tile for `m` rows: 24 with one row vector (m ≤ 16), 12 with two.
fn tile_cols(m: usize) -> usize {
    if m <= 16 {
        ACCUMULATORS
    } else {
        ACCUMULATORS / 2
    }
}

/// The layout and size conditions [`run`] needs: B K-contiguous, `1 ≤ m ≤ ROWS`, and at least
/// two tiles of columns (a single partial tile computes mostly padding). Whether it is also
/// fast enough (K long enough) is the registry's decision ([`super::SHORT`]).
pub(crate) fn fits(p: &Problem) -> bool {
    p.rsb == 1 && (1..=ROWS).contains(&p.m) && p.n >= 2 * tile_cols(p.m)
}

/// `C ← α·A·B + β·C` for a validated problem with `k > 0` that [`fits`] this kernel, on the
/// calling thread.
///
/// # Safety
/// `p` validated, `p.k > 0`, `fits(p)`; AVX-512
/// F/BW/VL/BF16/VBMI available; `ws` holds at least
/// [`workspace_bytes`]`(p.k)` bytes.
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512bf16,avx512vbmi")]
pub(crate) unsafe fn run(p: &Problem, ws: &mut [u8]) {
    // SAFETY: forwarded contract; tile_cols(m) columns of V·16 ≥ m rows.
    unsafe {
        if p.m <= 16 {
            run_tiles::<1, ACCUMULATORS>(p, ws)
        } else {
            run_tiles::<2, { ACCUMULATORS / 2 }>(p, ws)
        }
    }
}

/// [`run`] with tiles of `C` columns and `V` row vectors (`V·16 ≥ m`, `C = tile_cols(m)`).
///
/// # Safety
/// As [`run`].
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512bf16,avx512vbmi")]
unsafe fn run_tiles<const V: usize, const C: usize>(p: &Problem, ws: &mut [u8]) {
    let (m, n, k) = (p.m, p.n, p.k);
    debug_assert!(m <= 16 * V && C == tile_cols(m));
    debug_assert!(fits(p) && k > 0);
    debug_assert!(ws.len() >= workspace_bytes(k));
    let kp = k.div_ceil(2);
    let base = ws.as_mut_ptr();
    // SAFETY: the workspace holds the alignment bytes and the four areas (caller's contract).
    let (apack, bufs, totals, tile) = unsafe {
        let apack = base.add(base.align_offset(64)).cast::<u32>();
        let buf = apack.add(a_words(k));
        let totals = buf.add(2 * COLS * KB).cast::<f32>();
        (
            apack,
            [buf, buf.add(COLS * KB)],
            totals,
            totals.add(COLS * NR),
        )
    };
    let la = lut(p.a_fmt);
    let lb = ByteTables::of(p.b_fmt);
    let ta = scalar::bf16_lut(p.a_fmt);
    // SAFETY: rows < m of A are inside the validated A; the panel (kp pairs of 16·V words, K
    // blocks contiguous) fits in a_words(k).
    unsafe { pack_panel(p.a, p.rsa, p.csa, m, 16 * V, k, &la, ta, apack, KB * 16 * V) };
    // Blocks in order: (first column, first pair); the one after `(j0, kc)`, if any.
    let after = |(j0, kc): (usize, usize)| {
        if kc + KB < kp {
            Some((j0, kc + KB))
        } else if j0 + C < n {
            Some((j0 + C, 0))
        } else {
            None
        }
    };
    // The first block is converted up front; every block converts the next one into the other
    // buffer as it runs, and prefetches the source of the one after that.
    let mut cur = Some((0, 0));
    // SAFETY: block (0, 0) is inside B; the buffer holds COLS·KB words.
    unsafe { Conversion::of(p, 0, 0, C).run_all(&lb, bufs[0]) };
    let mut which = 0;
    while let Some((j0, kc)) = cur {
        let next = after((j0, kc));
        let convert = next.map_or(Conversion::NONE, |(j, c)| Conversion::of(p, j, c, C));
        let prefetch = next
            .and_then(after)
            .map_or(Conversion::NONE, |(j, c)| Conversion::of(p, j, c, C));
        let kb = KB.min(kp - kc);
        // SAFETY: kb pairs of A from pair kc; bufs[which] holds this block, converted; the
        // other buffer receives the next block (inside B); totals hold COLS·NR floats.
        unsafe {
            block::<V, C>(
                kb,
                apack.wrapping_add(kc * 16 * V),
                bufs[which],
                totals,
                kc > 0,
                (convert, bufs[1 - which], &lb),
                prefetch,
            )
        };
        if kc + KB >= kp {
            // SAFETY: the tile's block of C (rows < m, columns j0 .. j0 + cols) is inside the
            // validated C; totals hold cols rows of NR floats, tile ROWS rows of NR floats.
            unsafe { write_back(p, totals, tile, j0, m, C.min(n - j0)) };
        }
        cur = next;
        which = 1 - which;
    }
}

/// The FP8 → bf16 table split into bytes: low bytes of the 128 magnitudes in two zmm, high
/// bytes in two more (the sign is or-ed in separately). Also used by [`super::decode`].
pub(super) struct ByteTables(pub(super) [__m512i; 4]);

impl ByteTables {
    #[target_feature(enable = "avx512f")]
    pub(super) fn of(fmt: Fp8Format) -> ByteTables {
        let t = scalar::bf16_lut(fmt);
        let (mut lo, mut hi) = ([0u8; 128], [0u8; 128]);
        for c in 0..128 {
            lo[c] = t[c] as u8;
            hi[c] = (t[c] >> 8) as u8;
        }
        // SAFETY: two 64-byte loads from each 128-byte array.
        unsafe {
            ByteTables([
                _mm512_loadu_si512(lo.as_ptr().cast()),
                _mm512_loadu_si512(lo.as_ptr().add(64).cast()),
                _mm512_loadu_si512(hi.as_ptr().cast()),
                _mm512_loadu_si512(hi.as_ptr().add(64).cast()),
            ])
        }
    }
}

/// Where pair `q` of a block lies in its buffer row. A chunk of 64 codes (32 pairs) is converted
/// with byte lookups and interleaved with `vpunpck{l,h}bw`, which work within 128-bit lanes: the
/// low-half result holds pairs 0–3, 8–11, 16–19, 24–27 of the chunk, the high half the others.
/// So the four pairs of an aligned quad stay adjacent: quad `u` of the chunk starts at word
/// `4·(u / 2)`, plus 16 when `u` is odd.
#[inline]
fn pair_slot(q: usize) -> usize {
    let u = (q & 31) >> 2;
    (q & !31) + 4 * (u >> 1) + 16 * (u & 1) + (q & 3)
}

/// The conversion of one block of B (K-contiguous) into a buffer, word `(column j, pair q)` at
/// `j·KB + pair_slot(q)`, in chunks of 64 codes (32 pairs) of one column; columns past `cols`
/// become +0 (all at the start), as do the pairs past `k` within the last chunk.
#[derive(Clone, Copy)]
struct Conversion {
    /// Source of the block's first code of column 0.
    at: *const u8,
    /// Bytes between columns.
    stride: isize,
    /// Columns of B in the block (≤ `tile`).
    cols: usize,
    /// Columns of the tile (the buffer rows written).
    tile: usize,
    /// Pairs in the block (≤ KB).
    kb: usize,
    /// Codes of each column from the block's start to the end of K.
    left: usize,
}

impl Conversion {
    const NONE: Conversion = Conversion {
        at: core::ptr::null(),
        stride: 0,
        cols: 0,
        tile: 0,
        kb: 0,
        left: 0,
    };

    /// The block at column `j0`, pair `kc` (both inside the problem), `tile ≤ COLS` columns
    /// wide.
    fn of(p: &Problem, j0: usize, kc: usize, tile: usize) -> Conversion {
        Conversion {
            at: p.b.wrapping_offset(j0 as isize * p.csb + 2 * kc as isize),
            stride: p.csb,
            cols: tile.min(p.n - j0),
            tile,
            kb: KB.min(p.k.div_ceil(2) - kc),
            left: p.k - 2 * kc,
        }
    }

    /// Chunks per column.
    fn per_column(&self) -> usize {
        self.kb.div_ceil(32)
    }

    /// Zeroes the tile's columns past `cols` in `buf` (the slots of their first `kb` pairs).
    ///
    /// # Safety
    /// `buf` holds `COLS·KB` words.
    #[target_feature(enable = "avx512f")]
    unsafe fn zero_padding(&self, buf: *mut u32) {
        for j in self.cols..self.tile {
            for w in (0..32 * self.per_column()).step_by(16) {
                // SAFETY: w + 16 ≤ KB: inside row j of the buffer.
                unsafe { _mm512_storeu_si512(buf.add(j * KB + w).cast(), _mm512_setzero_si512()) };
            }
        }
    }

    /// Converts chunk `sub` of column `j`: bf16 high byte = table | sign, low byte = table.
    ///
    /// # Safety
    /// `j < cols`, `sub < per_column()`; the block is inside the validated B; `buf` holds
    /// `COLS·KB` words.
    #[target_feature(enable = "avx512f,avx512bw,avx512vbmi")]
    #[inline]
    unsafe fn chunk(&self, j: usize, sub: usize, t: &ByteTables, buf: *mut u32) {
        // SAFETY: the load is masked to codes < k of column j; the stores stay inside row j of
        // the buffer (32·sub + 32 ≤ KB).
        unsafe {
            let src = self
                .at
                .wrapping_offset(j as isize * self.stride)
                .wrapping_add(64 * sub);
            let left = self.left - 64 * sub;
            let mask = if left >= 64 {
                u64::MAX
            } else {
                (1u64 << left) - 1
            };
            let codes = _mm512_maskz_loadu_epi8(mask, src.cast());
            let lo = _mm512_permutex2var_epi8(t.0[0], codes, t.0[1]);
            let hi = _mm512_permutex2var_epi8(t.0[2], codes, t.0[3]);
            let hi = _mm512_ternarylogic_epi32::<0xF8>(hi, codes, _mm512_set1_epi8(-128));
            let d = buf.add(j * KB + 32 * sub);
            _mm512_storeu_si512(d.cast(), _mm512_unpacklo_epi8(lo, hi));
            _mm512_storeu_si512(d.add(16).cast(), _mm512_unpackhi_epi8(lo, hi));
        }
    }

    /// Converts the whole block.
    ///
    /// # Safety
    /// As [`Conversion::chunk`] for every column and chunk.
    #[target_feature(enable = "avx512f,avx512bw,avx512vbmi")]
    unsafe fn run_all(&self, t: &ByteTables, buf: *mut u32) {
        // SAFETY: forwarded contract.
        unsafe {
            self.zero_padding(buf);
            for j in 0..self.cols {
                for sub in 0..self.per_column() {
                    self.chunk(j, sub, t, buf);
                }
            }
        }
    }
}

/// One K block of `kb ≤ KB` pairs for the `C` columns of a tile and `V` vectors of 16 rows:
/// each accumulator (16 rows of one column) starts at +0 and takes the block's pairs in order,
/// one `vdpbf16ps` per pair with the B pair broadcast; the block sums are stored into `totals`
/// (row `j` of `NR` floats, vector `v` at `16·v`), or added to them when `add`. Meanwhile,
/// spread over the pairs so that it overlaps the multiply-adds, the next block is converted into
/// its buffer (`next`), and one column of `prefetch` (the block after it) is fetched into L2
/// per four pairs (`KB / 4 ≥ C` columns fit in a whole block).
///
/// # Safety
/// `a` holds `kb·16·V` words; `buf` a converted block; `totals` is writable for `C·NR` floats;
/// `next` names a block inside the validated B (or none) and a buffer of `COLS·KB` words other
/// than `buf`.
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512bf16,avx512vbmi")]
unsafe fn block<const V: usize, const C: usize>(
    kb: usize,
    a: *const u32,
    buf: *const u32,
    totals: *mut f32,
    add: bool,
    next: (Conversion, *mut u32, &ByteTables),
    prefetch: Conversion,
) {
    let (conv, dst, l) = next;
    let per_column = conv.per_column();
    // SAFETY: reads inside the packed A and the buffer, writes inside totals and the other
    // buffer, conversion loads inside the next block (caller); prefetches never fault.
    unsafe {
        conv.zero_padding(dst);
        let mut acc = [[_mm512_setzero_ps(); V]; C];
        // Pair q (at `slot` in the buffer rows).
        let step = |q: usize, slot: usize, acc: &mut [[__m512; V]; C]| {
            let mut av = [core::mem::transmute::<__m512i, __m512bh>(_mm512_setzero_si512()); V];
            for (v, x) in av.iter_mut().enumerate() {
                let words = _mm512_loadu_si512(a.add((q * V + v) * 16).cast());
                *x = core::mem::transmute::<__m512i, __m512bh>(words);
            }
            for (j, row) in acc.iter_mut().enumerate() {
                let bw: __m512bh =
                    core::mem::transmute(_mm512_set1_epi32(*buf.add(j * KB + slot) as i32));
                for (x, y) in row.iter_mut().zip(av.iter()) {
                    *x = _mm512_dpbf16_ps(*x, *y, bw);
                }
            }
        };
        // While the pairs of chunk g (32 pairs, 8 quads) are read from every buffer row, chunk
        // (g + 2) mod 4 of the next block is written, C / 8 columns per quad: the rows are
        // KB words apart, so the stores never share address bits 0–11 with the loads in
        // flight (which would stall the loads as possible conflicts: "4K aliasing").
        let groups = kb / 32;
        let mut converted = 0u32;
        // A column of the prefetched block: up to 256 bytes, at most five lines.
        let run_bytes = (2 * prefetch.kb).min(prefetch.left);
        let (mut run, mut run_at) = (0, prefetch.at);
        let mut q = 0;
        while q + 4 <= kb {
            if run < prefetch.cols {
                for off in [0, 64, 128, 192, run_bytes - 1] {
                    _mm_prefetch::<_MM_HINT_T1>(run_at.wrapping_add(off).cast());
                }
                run += 1;
                run_at = run_at.wrapping_offset(prefetch.stride);
            }
            let g = q / 32;
            let sub = (g + 2) % 4;
            if g < groups && sub < per_column {
                let u = (q % 32) / 4;
                for j in u * C / 8..((u + 1) * C / 8).min(conv.cols) {
                    conv.chunk(j, sub, l, dst);
                }
                converted |= 1 << sub;
            }
            let slot = pair_slot(q);
            for u in 0..4 {
                step(q + u, slot + u, &mut acc);
            }
            q += 4;
        }
        while q < kb {
            step(q, pair_slot(q), &mut acc);
            q += 1;
        }
        // What the schedule did not cover (this block has fewer chunks than the next).
        for sub in 0..per_column {
            if converted & (1 << sub) == 0 {
                for j in 0..conv.cols {
                    conv.chunk(j, sub, l, dst);
                }
            }
        }
        for (j, row) in acc.iter().enumerate() {
            for (v, x) in row.iter().enumerate() {
                let t = totals.add(j * NR + 16 * v);
                let total = if add {
                    _mm512_add_ps(_mm512_loadu_ps(t), *x)
                } else {
                    *x
                };
                _mm512_storeu_ps(t, total);
            }
        }
    }
}

/// Writes the totals of columns `j0 .. j0 + cols` (row `j` of `totals` holds column `j0 + j`
/// for rows `0 .. 16·V`) into rows `0 .. m` of C, through `tile` transposed to `[row][NR]`.
///
/// # Safety
/// As in [`run`]; `totals` holds `cols` rows of `NR` floats, `tile` `ROWS·NR` floats.
#[target_feature(enable = "avx512f,avx512bw,avx512vl")]
unsafe fn write_back(
    p: &Problem,
    totals: *const f32,
    tile: *mut f32,
    j0: usize,
    m: usize,
    cols: usize,
) {
    // SAFETY: elements of C's block (caller); reads and writes inside totals and tile.
    unsafe {
        for j in 0..cols {
            for i in 0..m {
                *tile.add(i * NR + j) = *totals.add(j * NR + i);
            }
        }
        if p.csc == 1 {
            write_unit(p, tile, 0, j0, m, cols);
        } else {
            let t = core::slice::from_raw_parts(tile, ROWS * NR);
            scalar::write_tile(p, t, NR, 0, j0, m, cols);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::kernel_tests::{Kernel, Rng, check_case};
    use super::*;
    use crate::dtype::DType;

    /// The kernel against the scalar reference (see [`check_case`]); finite codes; short K
    /// too (the registry leaves k < 128 to the blocked kernel for speed only).
    #[test]
    fn short_kernel_matches_reference() {
        if !crate::cpu::avx512_bf16_vbmi() {
            eprintln!(
                "short_kernel_matches_reference: SKIPPED, no AVX512-BF16 and VBMI on this CPU"
            );
            return;
        }
        let kernel = Kernel {
            name: "short-problem kernel",
            fits,
            workspace_bytes,
            run,
        };
        let mut rng = Rng::from_clock("short_kernel_matches_reference");
        let fp8 = [DType::E4M3, DType::E5M2];
        let outs = [DType::F32, DType::BF16, DType::E4M3, DType::E5M2];
        for case in 0..72 {
            let m = [1, 2, 5, 8, 9, 13, 16, 17, 24, 31, 32][rng.below(11)];
            let n = [48, 49, 71, 200, 1000][rng.below(5)];
            // Last K blocks of 1, 2, 16, 40, 70, 100 and 128 pairs (0, 1, 2, 3 and 4 full chunks
            // of 32 pairs: the in-loop conversion schedule covers what the block's chunks allow).
            let k = [1, 3, 31, 80, 140, 255, 256, 257, 456, 652, 1025, 4099][case % 12];
            let types = (fp8[rng.below(2)], fp8[rng.below(2)], outs[rng.below(4)]);
            check_case(&mut rng, &kernel, case, (m, n, k), types, 0.75, false);
        }
    }
}
