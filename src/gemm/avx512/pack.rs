//! AVX-512 packing: FP8 codes of A and B converted to bf16 (through [`super::primitives`]) into
//! VNNI-2 panels.
//!
//! Packed panels are arrays of 32-bit words `[p][w]`: word `(p, w)` holds the bf16 pair
//! `(k = 2p, k = 2p + 1)` of row (A) or column (B) `w`, the even element in the low half. A
//! panels are `MR` words wide, B panels `NR`, the short-problem kernel's A 16 or 32. Padding
//! (rows or columns past the edge, the odd element past an odd `k`) is bf16 `+0`.

use super::super::KB;
use super::super::registry::MC_MAX_PANELS;
use super::primitives::{Lut, cvt32, low_mask32};
use super::{MR, NR};
use core::arch::x86_64::*;

/// K pairs per micro-kernel call (a multiple of [`KB`]): the packed A block is laid out in K
/// chunks of this many pairs, and a chunk of a B micro-panel (`KC · 128` bytes) should stay in L1.
pub(crate) const KC: usize = KB;

/// How many K pairs ahead the row-block packer prefetches its (strided) source rows.
const ROW_PREFETCH_PAIRS: usize = 8;

/// How many 64-byte lines ahead the transposing packer prefetches each row.
const PACK_PREFETCH_LINES: usize = 4;

/// Transposes a 16×16 matrix of 32-bit words held in 16 zmm (row r in `v[r]`).
#[target_feature(enable = "avx512f")]
#[inline]
pub(super) fn transpose16(v: [__m512i; 16]) -> [__m512i; 16] {
    let mut t = [_mm512_setzero_si512(); 16];
    for i in 0..8 {
        t[2 * i] = _mm512_unpacklo_epi32(v[2 * i], v[2 * i + 1]);
        t[2 * i + 1] = _mm512_unpackhi_epi32(v[2 * i], v[2 * i + 1]);
    }
    // u[4i + c], 128-bit lane L: column 4L + c of rows 4i..4i+4.
    let mut u = [_mm512_setzero_si512(); 16];
    for i in 0..4 {
        u[4 * i] = _mm512_unpacklo_epi64(t[4 * i], t[4 * i + 2]);
        u[4 * i + 1] = _mm512_unpackhi_epi64(t[4 * i], t[4 * i + 2]);
        u[4 * i + 2] = _mm512_unpacklo_epi64(t[4 * i + 1], t[4 * i + 3]);
        u[4 * i + 3] = _mm512_unpackhi_epi64(t[4 * i + 1], t[4 * i + 3]);
    }
    let mut out = [_mm512_setzero_si512(); 16];
    for c in 0..4 {
        let v0 = _mm512_shuffle_i32x4::<0x44>(u[c], u[4 + c]);
        let v1 = _mm512_shuffle_i32x4::<0xEE>(u[c], u[4 + c]);
        let w0 = _mm512_shuffle_i32x4::<0x44>(u[8 + c], u[12 + c]);
        let w1 = _mm512_shuffle_i32x4::<0xEE>(u[8 + c], u[12 + c]);
        out[c] = _mm512_shuffle_i32x4::<0x88>(v0, w0);
        out[4 + c] = _mm512_shuffle_i32x4::<0xDD>(v0, w0);
        out[8 + c] = _mm512_shuffle_i32x4::<0x88>(v1, w1);
        out[12 + c] = _mm512_shuffle_i32x4::<0xDD>(v1, w1);
    }
    out
}

/// Word indices interleaving two vectors of 32 words: `[e0, o0, e1, o1, …]` from word `16h`.
const fn interleave_index(h: usize) -> [i16; 32] {
    let mut idx = [0i16; 32];
    let mut t = 0;
    while t < 16 {
        idx[2 * t] = (16 * h + t) as i16;
        idx[2 * t + 1] = (32 + 16 * h + t) as i16;
        t += 1;
    }
    idx
}
pub(super) static INTERLEAVE: [[i16; 32]; 2] = [interleave_index(0), interleave_index(1)];

/// Packs `wn ≤ width` rows (A: rows of A; B: columns of B) of `k` FP8 codes into a `[p][width]`
/// panel at `dst`, whose K blocks of [`KB`] pairs lie `bstride` words apart (`KB · width` for a
/// contiguous panel). Element `(w, t)` is at `src + w·ws + t·ks`. `width` is `MR`, 16 (the short-problem kernel's A) or `NR`.
///
/// # Safety
/// Every `(w, t)` with `w < wn`, `t < k` is readable; `dst` is writable for the panel.
#[allow(clippy::too_many_arguments)]
#[target_feature(enable = "avx512f,avx512bw,avx512vl")]
pub(super) unsafe fn pack_panel(
    src: *const u8,
    ws: isize,
    ks: isize,
    wn: usize,
    width: usize,
    k: usize,
    l: &Lut,
    table: &[u16; 256],
    dst: *mut u32,
    bstride: usize,
) {
    let kp = k.div_ceil(2);
    // Word offset of pair p's row in the panel: K blocks of KB pairs, `bstride` words apart.
    let at = |p: usize| (p / KC) * bstride + (p % KC) * width;
    let narrow: u16 = if width >= 16 {
        u16::MAX
    } else {
        (1u16 << width) - 1
    };
    // SAFETY: (whole body) reads stay at (w, t) with w < wn, t < k, through masked loads that
    // do not touch masked-out bytes; writes stay inside the panel.
    unsafe {
        if ws == 1 {
            let wmask = low_mask32(wn);
            let idx0 = _mm512_loadu_si512(INTERLEAVE[0].as_ptr().cast());
            let idx1 = _mm512_loadu_si512(INTERLEAVE[1].as_ptr().cast());
            for p in 0..kp {
                let r0 = src.wrapping_offset(2 * p as isize * ks);
                let e = cvt32(_mm256_maskz_loadu_epi8(wmask, r0.cast()), l);
                let o = if 2 * p + 1 < k {
                    cvt32(
                        _mm256_maskz_loadu_epi8(wmask, r0.wrapping_offset(ks).cast()),
                        l,
                    )
                } else {
                    _mm512_setzero_si512()
                };
                let lo = _mm512_permutex2var_epi16(e, idx0, o);
                let d = dst.add(at(p));
                if width == NR {
                    _mm512_storeu_si512(d.cast(), lo);
                    let hi = _mm512_permutex2var_epi16(e, idx1, o);
                    _mm512_storeu_si512(d.add(16).cast(), hi);
                } else {
                    _mm512_mask_storeu_epi32(d.cast(), narrow, lo);
                }
            }
        } else if ks == 1 {
            // One 64-byte line (32 pairs) per row and step, two 16×16 word transposes; the
            // rows are separate streams, so prefetch each a few lines ahead.
            for p0 in (0..kp).step_by(32) {
                let left = k - 2 * p0;
                let kmask = if left >= 64 {
                    u64::MAX
                } else {
                    (1u64 << left) - 1
                };
                for wb in (0..width).step_by(16) {
                    let rows = wn.saturating_sub(wb).min(16).min(width - wb);
                    // One half line (16 pairs) of each row at a time: 16 zmm of data, so
                    // that the transpose works in registers.
                    for h in 0..2 {
                        let ph = p0 + 16 * h;
                        if ph >= kp {
                            break;
                        }
                        let hmask = (kmask >> (32 * h)) as u32;
                        let mut v = [_mm512_setzero_si512(); 16];
                        for (r, vr) in v.iter_mut().enumerate().take(rows) {
                            let s = src.wrapping_offset(
                                (wb + r) as isize * ws + 2 * p0 as isize + 32 * h as isize,
                            );
                            if h == 0 {
                                _mm_prefetch::<_MM_HINT_T0>(
                                    s.wrapping_add(64 * PACK_PREFETCH_LINES).cast(),
                                );
                            }
                            *vr = cvt32(_mm256_maskz_loadu_epi8(hmask, s.cast()), l);
                        }
                        let t = transpose16(v);
                        for (q, tq) in t.iter().enumerate().take((kp - ph).min(16)) {
                            let d = dst.add(at(ph + q) + wb);
                            if width == NR {
                                _mm512_storeu_si512(d.cast(), *tq);
                            } else {
                                _mm512_mask_storeu_epi32(d.cast(), narrow, *tq);
                            }
                        }
                    }
                }
            }
        } else {
            for p in 0..kp {
                for w in 0..width {
                    let word = if w < wn {
                        let at = |t: usize| {
                            table[*src.offset(w as isize * ws + t as isize * ks) as usize] as u32
                        };
                        let odd = if 2 * p + 1 < k { at(2 * p + 1) } else { 0 };
                        at(2 * p) | odd << 16
                    } else {
                        0
                    };
                    *dst.add(at(p) + w) = word;
                }
            }
        }
    }
}

/// Packs a whole A row block whose rows are adjacent in memory (row stride 1, K stride `ks`):
/// per K pair, the block's codes of `k = 2p` and `2p + 1` are converted and interleaved 32 rows
/// at a time into a staging row, then copied into each row panel (`RowPanels` layout, panel
/// `ir` at `dst + ir·KC`, K chunks `bstride` words apart). Reads every source line once.
///
/// # Safety
/// Rows `< rows` and K `< k` readable; `rows ≤ MC_MAX_PANELS·MR`; `dst` holds the block.
#[target_feature(enable = "avx512f,avx512bw,avx512vl")]
#[allow(clippy::too_many_arguments)]
pub(super) unsafe fn pack_a_block_unit_rows(
    src: *const u8,
    ks: isize,
    rows: usize,
    k: usize,
    l: &Lut,
    dst: *mut u32,
    bstride: usize,
) {
    debug_assert!(rows <= MC_MAX_PANELS * MR);
    let kp = k.div_ceil(2);
    let mut stage = [0u32; MC_MAX_PANELS * MR + 32];
    let sp = stage.as_mut_ptr();
    // SAFETY: masked loads touch only rows < rows of pairs < k; the staging row holds rows + 32
    // words; panel stores stay inside each panel's h words of the pair's row.
    unsafe {
        let idx0 = _mm512_loadu_si512(INTERLEAVE[0].as_ptr().cast());
        let idx1 = _mm512_loadu_si512(INTERLEAVE[1].as_ptr().cast());
        for p in 0..kp {
            let r0 = src.wrapping_offset(2 * p as isize * ks);
            // Strided rows (often a page apart): prefetch the rows of a later pair.
            let ahead = r0.wrapping_offset(2 * ROW_PREFETCH_PAIRS as isize * ks);
            for c in (0..rows).step_by(64) {
                _mm_prefetch::<_MM_HINT_T0>(ahead.wrapping_add(c).cast());
                _mm_prefetch::<_MM_HINT_T0>(ahead.wrapping_offset(ks).wrapping_add(c).cast());
            }
            for c in (0..rows).step_by(32) {
                let mask = low_mask32(rows - c);
                let e = cvt32(_mm256_maskz_loadu_epi8(mask, r0.add(c).cast()), l);
                let o = if 2 * p + 1 < k {
                    cvt32(
                        _mm256_maskz_loadu_epi8(mask, r0.wrapping_offset(ks).add(c).cast()),
                        l,
                    )
                } else {
                    _mm512_setzero_si512()
                };
                _mm512_storeu_si512(sp.add(c).cast(), _mm512_permutex2var_epi16(e, idx0, o));
                _mm512_storeu_si512(sp.add(c + 16).cast(), _mm512_permutex2var_epi16(e, idx1, o));
            }
            let chunk = (p / KC) * bstride;
            for (ir, h) in RowPanels::new(rows) {
                let m = (1u16 << h) - 1;
                let v = _mm512_maskz_loadu_epi32(m, sp.add(ir).cast());
                let d = dst.add(ir * KC + chunk + (p % KC) * h);
                _mm512_mask_storeu_epi32(d.cast(), m, v);
            }
        }
    }
}

/// The row panels of a row block: `(first row, height)`, heights `MR` except that a remainder
/// below `MR / 2` rows is merged with the previous panel and the two split evenly (16 rows →
/// 8 + 8, not 12 + 4), so that every micro-kernel has at least 12 accumulators when it can.
/// A panel at row `ir` occupies `ir·KB` … words of each K block of the packed A block.
#[derive(Clone, Copy)]
pub(super) struct RowPanels {
    next: usize,
    rows: usize,
}

impl RowPanels {
    pub(super) fn new(rows: usize) -> RowPanels {
        RowPanels { next: 0, rows }
    }
}

impl Iterator for RowPanels {
    type Item = (usize, usize);
    fn next(&mut self) -> Option<(usize, usize)> {
        let left = self.rows - self.next;
        if left == 0 {
            return None;
        }
        let h = if left <= MR {
            left
        } else if left < MR + MR / 2 {
            left.div_ceil(2)
        } else {
            MR
        };
        let ir = self.next;
        self.next += h;
        Some((ir, h))
    }
}
