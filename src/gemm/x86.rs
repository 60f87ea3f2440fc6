//! AVX-512 GEMM: FP8 → bf16 packing into VNNI-2 panels, the `vdpbf16ps` and f32-FMA
//! micro-kernels, and the vectorised write-back (α, β, bf16/FP8 rounding).
//!
//! Packed panels are arrays of 32-bit words `[p][w]`: word `(p, w)` holds the bf16 pair
//! `(k = 2p, k = 2p + 1)` of row (A) or column (B) `w`, the even element in the low half. A
//! panels are `MR` words wide, B panels `NR`. Padding (rows or columns past the edge, the odd
//! element past an odd `k`) is bf16 `+0`.

use super::scalar;
use super::{KB, MC_MAX_PANELS, MR, NR, Problem, blocking};
use crate::dtype::DType;
use crate::fp8::Fp8Format;
use core::arch::x86_64::*;

/// K pairs per micro-kernel call (a multiple of [`KB`]): the packed A block is laid out in K
/// chunks of this many pairs, and a chunk of a B micro-panel (`KC · 128` bytes) should stay in L1.
pub(crate) const KC: usize = KB;

/// How far ahead (bytes) the micro-kernel prefetches its A stream.
const A_PREFETCH_BYTES: usize = 3072;

/// How many K pairs ahead the row-block packer prefetches its (strided) source rows.
const ROW_PREFETCH_PAIRS: usize = 8;

/// How many 64-byte lines ahead the transposing packer prefetches each row.
const PACK_PREFETCH_LINES: usize = 4;

/// The FP8 magnitude → bf16 table as four zmm of 32 words (entries 0..128).
#[derive(Clone, Copy)]
pub(super) struct Lut([__m512i; 4]);

#[target_feature(enable = "avx512f,avx512bw,avx512vl")]
#[inline]
pub(super) fn lut(fmt: Fp8Format) -> Lut {
    let t = scalar::bf16_lut(fmt);
    // SAFETY: the table has 256 entries; we read the first 128.
    unsafe {
        Lut([
            _mm512_loadu_si512(t.as_ptr().cast()),
            _mm512_loadu_si512(t.as_ptr().add(32).cast()),
            _mm512_loadu_si512(t.as_ptr().add(64).cast()),
            _mm512_loadu_si512(t.as_ptr().add(96).cast()),
        ])
    }
}

/// 32 FP8 codes → 32 bf16 words.
#[target_feature(enable = "avx512f,avx512bw,avx512vl")]
#[inline]
pub(super) fn cvt32(bytes: __m256i, l: &Lut) -> __m512i {
    let x = _mm512_cvtepu8_epi16(bytes);
    let lo = _mm512_permutex2var_epi16(l.0[0], x, l.0[1]);
    let hi = _mm512_permutex2var_epi16(l.0[2], x, l.0[3]);
    let upper = _mm512_test_epi16_mask(x, _mm512_set1_epi16(0x40));
    let mag = _mm512_mask_blend_epi16(upper, lo, hi);
    // mag | (x << 8 & 0x8000): the sign.
    _mm512_ternarylogic_epi32::<0xF8>(
        mag,
        _mm512_slli_epi16::<8>(x),
        _mm512_set1_epi16(0x8000u16 as i16),
    )
}

/// Transposes a 16×16 matrix of 32-bit words held in 16 zmm (row r in `v[r]`).
#[target_feature(enable = "avx512f")]
#[inline]
fn transpose16(v: [__m512i; 16]) -> [__m512i; 16] {
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

pub(super) fn low_mask32(n: usize) -> u32 {
    if n >= 32 { u32::MAX } else { (1u32 << n) - 1 }
}

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
unsafe fn pack_a_block_unit_rows(
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

/// The `vdpbf16ps` micro-kernel over `kp` pairs, for `R` rows and `16·V` columns, in blocks of
/// [`KB`] pairs each summed from zero: the first block's sums are stored into the tile
/// (`tile[i·NR + j]`), or added to it when `add`; later blocks are added.
///
/// # Safety
/// `a` holds `kp·R` words (a panel of height `R`), `b` `kp·NR` words; `tile` is writable for
/// `R·NR` floats.
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512bf16")]
unsafe fn kernel_bf16<const R: usize, const V: usize>(
    kp: usize,
    a: *const u32,
    b: *const u32,
    tile: *mut f32,
    add: bool,
    pf: Prefetch,
) {
    // SAFETY: reads within the panels, writes within the tile (caller's contract); prefetches
    // never fault.
    unsafe {
        let (mut a, mut b) = (a, b);
        let (mut pf_at, mut pf_left) = (pf.at, pf.lines);
        let mut done = 0;
        while done < kp {
            let block = KB.min(kp - done);
            let mut acc = [[_mm512_setzero_ps(); V]; R];
            let step = |a: *const u32, b: *const u32, acc: &mut [[__m512; V]; R]| {
                let mut bv = [_mm512_setzero_si512(); V];
                for (v, x) in bv.iter_mut().enumerate() {
                    *x = _mm512_loadu_si512(b.add(16 * v).cast());
                }
                for (i, row) in acc.iter_mut().enumerate() {
                    let ai: __m512bh = core::mem::transmute(_mm512_set1_epi32(*a.add(i) as i32));
                    for (x, y) in row.iter_mut().zip(bv.iter()) {
                        *x =
                            _mm512_dpbf16_ps(*x, ai, core::mem::transmute::<__m512i, __m512bh>(*y));
                    }
                }
            };
            for _ in 0..block / 2 {
                if pf_left > 0 {
                    _mm_prefetch::<_MM_HINT_T0>(pf_at.cast());
                    _mm_prefetch::<_MM_HINT_T0>(pf_at.wrapping_add(64).cast());
                    pf_at = pf_at.wrapping_add(128);
                    pf_left = pf_left.saturating_sub(2);
                }
                _mm_prefetch::<_MM_HINT_T0>(a.cast::<u8>().wrapping_add(A_PREFETCH_BYTES).cast());
                _mm_prefetch::<_MM_HINT_T0>(
                    a.cast::<u8>().wrapping_add(A_PREFETCH_BYTES + 64).cast(),
                );
                step(a, b, &mut acc);
                step(a.add(R), b.add(NR), &mut acc);
                a = a.add(2 * R);
                b = b.add(2 * NR);
            }
            if block % 2 == 1 {
                step(a, b, &mut acc);
                a = a.add(R);
                b = b.add(NR);
            }
            for (i, row) in acc.iter().enumerate() {
                for (v, x) in row.iter().enumerate() {
                    let t = tile.add(i * NR + 16 * v);
                    let total = if done == 0 && !add {
                        *x
                    } else {
                        _mm512_add_ps(_mm512_loadu_ps(t), *x)
                    };
                    _mm512_storeu_ps(t, total);
                }
            }
            done += block;
        }
    }
}

/// The f32 FMA micro-kernel (AVX-512F without BF16): per pair, `acc = fma(a_odd, b_odd, acc)`
/// then `acc = fma(a_even, b_even, acc)`: bit-identical to [`kernel_bf16`] since the products
/// are exact.
///
/// # Safety
/// As [`kernel_bf16`].
#[target_feature(enable = "avx512f,avx512bw,avx512vl")]
unsafe fn kernel_fma<const R: usize, const V: usize>(
    kp: usize,
    a: *const u32,
    b: *const u32,
    tile: *mut f32,
    add: bool,
    pf: Prefetch,
) {
    let _ = pf;
    let high = _mm512_set1_epi32(0xFFFF_0000u32 as i32);
    // SAFETY: as kernel_bf16.
    unsafe {
        let (mut a, mut b) = (a, b);
        let mut done = 0;
        while done < kp {
            let block = KB.min(kp - done);
            let mut acc = [[_mm512_setzero_ps(); V]; R];
            for _ in 0..block {
                let mut be = [_mm512_setzero_ps(); V];
                let mut bo = [_mm512_setzero_ps(); V];
                for v in 0..V {
                    let w = _mm512_loadu_si512(b.add(16 * v).cast());
                    be[v] = _mm512_castsi512_ps(_mm512_slli_epi32::<16>(w));
                    bo[v] = _mm512_castsi512_ps(_mm512_and_si512(w, high));
                }
                for (i, row) in acc.iter_mut().enumerate() {
                    let w = *a.add(i);
                    let ae = _mm512_set1_ps(f32::from_bits(w << 16));
                    let ao = _mm512_set1_ps(f32::from_bits(w & 0xFFFF_0000));
                    for v in 0..V {
                        row[v] = _mm512_fmadd_ps(ao, bo[v], row[v]);
                        row[v] = _mm512_fmadd_ps(ae, be[v], row[v]);
                    }
                }
                a = a.add(R);
                b = b.add(NR);
            }
            for (i, row) in acc.iter().enumerate() {
                for (v, x) in row.iter().enumerate() {
                    let t = tile.add(i * NR + 16 * v);
                    let total = if done == 0 && !add {
                        *x
                    } else {
                        _mm512_add_ps(_mm512_loadu_ps(t), *x)
                    };
                    _mm512_storeu_ps(t, total);
                }
            }
            done += block;
        }
    }
}

/// Cache lines a micro-kernel call prefetches into L1 as it runs (two per two K pairs): a
/// slice of the B block the next sweep uses.
#[derive(Clone, Copy)]
struct Prefetch {
    at: *const u8,
    lines: usize,
}

/// Runs the micro-kernel for `rows ≤ MR` rows and `cols ≤ NR` columns.
///
/// # Safety
/// As [`kernel_bf16`]; the BF16 kernel needs AVX512-BF16.
#[allow(clippy::too_many_arguments)]
unsafe fn micro(
    bf16: bool,
    rows: usize,
    cols: usize,
    kp: usize,
    a: *const u32,
    b: *const u32,
    tile: *mut f32,
    add: bool,
    pf: Prefetch,
) {
    macro_rules! go {
        ($($r:literal)*) => {
            // SAFETY: forwarded contract.
            unsafe {
                match (rows, cols > 16, bf16) {
                    $(
                        ($r, true, true) => kernel_bf16::<$r, 2>(kp, a, b, tile, add, pf),
                        ($r, false, true) => kernel_bf16::<$r, 1>(kp, a, b, tile, add, pf),
                        ($r, true, false) => kernel_fma::<$r, 2>(kp, a, b, tile, add, pf),
                        ($r, false, false) => kernel_fma::<$r, 1>(kp, a, b, tile, add, pf),
                    )*
                    _ => unreachable!("micro-tile rows out of range"),
                }
            }
        };
    }
    go!(1 2 3 4 5 6 7 8 9 10 11 12)
}

/// f32 → bf16 bits in the low half of each lane, as [`crate::fp8::f32_to_bf16_bits`] with
/// `saturate = false`.
#[target_feature(enable = "avx512f,avx512bw,avx512vl")]
#[inline]
fn to_bf16(x: __m512) -> __m512i {
    let bits = _mm512_castps_si512(x);
    let abs = _mm512_and_si512(bits, _mm512_set1_epi32(0x7FFF_FFFF));
    let sign = _mm512_srli_epi32::<16>(_mm512_andnot_si512(_mm512_set1_epi32(0x7FFF_FFFF), bits));
    let lsb = _mm512_and_si512(_mm512_srli_epi32::<16>(abs), _mm512_set1_epi32(1));
    let r = _mm512_srli_epi32::<16>(_mm512_add_epi32(
        _mm512_add_epi32(abs, _mm512_set1_epi32(0x7FFF)),
        lsb,
    ));
    let nan = _mm512_cmpgt_epu32_mask(abs, _mm512_set1_epi32(0x7F80_0000));
    let r = _mm512_mask_mov_epi32(r, nan, _mm512_set1_epi32(0x7FC0));
    _mm512_or_si512(r, sign)
}

/// f32 → FP8 code (round to nearest even, saturating) in the low byte of each lane, as
/// [`Fp8Format::encode`] with [`crate::Rounding::NearestSaturate`]. Needs MXCSR in its default
/// state (round to nearest, no denormals-are-zero).
#[target_feature(enable = "avx512f,avx512bw,avx512vl")]
#[inline]
fn to_fp8(x: __m512, fmt: Fp8Format) -> __m512i {
    // (max bits, min normal bits, dropped mantissa bits, exponent rebias, subnormal magic)
    let (max, min_normal, shift, rebias, magic, nan) = match fmt {
        Fp8Format::E4M3 => (0x43E0_0000, 0x3C80_0000, 20, 120 << 3, 0x4680_0000, 0x7F),
        Fp8Format::E5M2 => (0x4760_0000, 0x3880_0000, 21, 112 << 2, 0x4300_0000, 0x7E),
    };
    let bits = _mm512_castps_si512(x);
    let abs = _mm512_and_si512(bits, _mm512_set1_epi32(0x7FFF_FFFF));
    let sign = _mm512_and_si512(_mm512_srli_epi32::<24>(bits), _mm512_set1_epi32(0x80));
    let is_nan = _mm512_cmpgt_epu32_mask(abs, _mm512_set1_epi32(0x7F80_0000));
    let a = _mm512_min_epu32(abs, _mm512_set1_epi32(max));
    let normal = _mm512_cmpge_epu32_mask(a, _mm512_set1_epi32(min_normal));
    let sh = _mm512_set1_epi64(shift as i64);
    let lsb = _mm512_and_si512(
        _mm512_srl_epi32(a, _mm512_castsi512_si128(sh)),
        _mm512_set1_epi32(1),
    );
    let half = _mm512_set1_epi32((1i32 << (shift - 1)) - 1);
    let rounded = _mm512_srl_epi32(
        _mm512_add_epi32(_mm512_add_epi32(a, half), lsb),
        _mm512_castsi512_si128(sh),
    );
    let code_n = _mm512_sub_epi32(rounded, _mm512_set1_epi32(rebias));
    let y = _mm512_add_ps(
        _mm512_castsi512_ps(a),
        _mm512_castsi512_ps(_mm512_set1_epi32(magic)),
    );
    let code_s = _mm512_sub_epi32(_mm512_castps_si512(y), _mm512_set1_epi32(magic));
    let code = _mm512_mask_blend_epi32(normal, code_s, code_n);
    let code = _mm512_mask_mov_epi32(code, is_nan, _mm512_set1_epi32(nan));
    _mm512_or_si512(code, sign)
}

/// Writes a tile into C where C's column stride is 1: `rows × cols` at `(i0, j0)`.
///
/// # Safety
/// The elements lie inside the validated C of `p`, and `p.csc == 1`.
#[target_feature(enable = "avx512f,avx512bw,avx512vl")]
pub(super) unsafe fn write_unit(
    p: &Problem,
    tile: *const f32,
    i0: usize,
    j0: usize,
    rows: usize,
    cols: usize,
) {
    let size = p.c_type.size() as isize;
    let alpha = _mm512_set1_ps(p.alpha);
    let beta = _mm512_set1_ps(p.beta);
    let read = p.beta != 0.0;
    // SAFETY: every access is a masked access to an element of the tile's block of C.
    unsafe {
        for i in 0..rows {
            let row = p.c.offset(((i0 + i) as isize * p.rsc + j0 as isize) * size);
            for v in 0..cols.div_ceil(16) {
                let lanes = (cols - 16 * v).min(16);
                let mask = low_mask32(lanes) as u16;
                let mut x = _mm512_mul_ps(alpha, _mm512_loadu_ps(tile.add(i * NR + 16 * v)));
                match p.c_type {
                    DType::F32 => {
                        let d = row.cast::<f32>().add(16 * v);
                        if read {
                            let old = _mm512_maskz_loadu_ps(mask, d);
                            x = _mm512_add_ps(x, _mm512_mul_ps(beta, old));
                        }
                        _mm512_mask_storeu_ps(d, mask, x);
                    }
                    DType::BF16 => {
                        let d = row.cast::<u16>().add(16 * v);
                        if read {
                            let old = _mm256_maskz_loadu_epi16(mask, d.cast());
                            let old = _mm512_castsi512_ps(_mm512_slli_epi32::<16>(
                                _mm512_cvtepu16_epi32(old),
                            ));
                            x = _mm512_add_ps(x, _mm512_mul_ps(beta, old));
                        }
                        _mm512_mask_cvtepi32_storeu_epi16(d.cast(), mask, to_bf16(x));
                    }
                    DType::E4M3 | DType::E5M2 => {
                        let fmt = p.c_type.fp8().unwrap_or(Fp8Format::E4M3);
                        let d = row.add(16 * v);
                        _mm512_mask_cvtepi32_storeu_epi8(d.cast(), mask, to_fp8(x, fmt));
                    }
                    DType::F16 => unreachable!("f16 C is rejected by validation"),
                }
            }
        }
    }
}

/// The row panels of a row block: `(first row, height)`, heights `MR` except that a remainder
/// below `MR / 2` rows is merged with the previous panel and the two split evenly (16 rows →
/// 8 + 8, not 12 + 4), so that every micro-kernel has at least 12 accumulators when it can.
/// A panel at row `ir` occupies `ir·KB` … words of each K block of the packed A block.
#[derive(Clone, Copy)]
struct RowPanels {
    next: usize,
    rows: usize,
}

impl RowPanels {
    fn new(rows: usize) -> RowPanels {
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

/// Floats of the per-block accumulator tiles (one `MR × NR` tile per row panel of a block).
pub(crate) const TILE_FLOATS: usize = MC_MAX_PANELS * MR * NR;

/// The blocked GEMM of a validated problem with `k > 0` on the calling thread.
///
/// Loops: column blocks of B (`nc`, packed once per block over the whole K), row blocks of A
/// (`mc`, packed over the whole K), then for each 32-column micro-panel of B and each K block of
/// [`KB`] pairs (16 KiB of B, which stays in L1), every 12-row micro-panel of A; the block sums
/// accumulate in one f32 tile per row panel, written back once K is done.
///
/// # Safety
/// `p` validated; AVX-512 F/BW/VL (and BF16 when `bf16`) available; `ws` holds at least
/// `gemm_workspace_size` bytes for this problem.
pub(crate) unsafe fn run(bf16: bool, p: &Problem, ws: &mut [u8]) {
    if bf16 && super::skinny::suits(p) {
        // SAFETY: forwarded contract (the workspace size covers the short-problem kernel).
        return unsafe { super::skinny::run(p, ws) };
    }
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
    // contract; see gemm_workspace_size).
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

#[cfg(all(test, feature = "std"))]
mod tests {
    use super::*;
    use crate::dtype::Rounding;

    /// f32 bit patterns that stress rounding: every sign, exponent and top-3 mantissa bits,
    /// combined with low bits at every boundary (2^b − 1, 2^b, 2^b + 1), plus random patterns.
    fn patterns(seed: u64) -> Vec<u32> {
        let mut v = Vec::new();
        for sign in [0u32, 1] {
            for exp in 0..256u32 {
                for top in 0..8u32 {
                    for b in 0..20u32 {
                        for low in [(1u32 << b) - 1, 1 << b, (1 << b) + 1] {
                            let m = (top << 20) | (low & 0xF_FFFF);
                            v.push(sign << 31 | exp << 23 | m);
                        }
                    }
                }
            }
        }
        let mut s = seed;
        for _ in 0..4_000_000 {
            s = s
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            v.push((s >> 32) as u32);
        }
        v
    }

    #[test]
    fn simd_encoders_match_scalar() {
        if !crate::gemm::GemmKernel::Avx512Fma.is_available() {
            return;
        }
        let seed = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos() as u64;
        println!("seed {seed}");
        let xs = patterns(seed);
        #[target_feature(enable = "avx512f,avx512bw,avx512vl")]
        fn run(xs: &[u32]) {
            for chunk in xs.chunks_exact(16) {
                // SAFETY: 16 readable words.
                let x = unsafe { _mm512_loadu_ps(chunk.as_ptr().cast()) };
                let mut e4 = [0u32; 16];
                let mut e5 = [0u32; 16];
                let mut h = [0u32; 16];
                // SAFETY: 16 writable words each.
                unsafe {
                    _mm512_storeu_si512(e4.as_mut_ptr().cast(), to_fp8(x, Fp8Format::E4M3));
                    _mm512_storeu_si512(e5.as_mut_ptr().cast(), to_fp8(x, Fp8Format::E5M2));
                    _mm512_storeu_si512(h.as_mut_ptr().cast(), to_bf16(x));
                }
                for (i, &bits) in chunk.iter().enumerate() {
                    let f = f32::from_bits(bits);
                    let r = Rounding::NearestSaturate;
                    assert_eq!(
                        e4[i],
                        Fp8Format::E4M3.encode(f, r, 0) as u32,
                        "e4m3 {bits:#x}"
                    );
                    assert_eq!(
                        e5[i],
                        Fp8Format::E5M2.encode(f, r, 0) as u32,
                        "e5m2 {bits:#x}"
                    );
                    let want = crate::fp8::f32_to_bf16_bits(f, false) as u32;
                    assert_eq!(h[i] & 0xFFFF, want, "bf16 {bits:#x}");
                    assert_eq!(h[i] >> 16, 0, "bf16 high bits {bits:#x}");
                }
            }
        }
        // SAFETY: the features were checked above.
        unsafe { run(&xs) };
    }

    #[test]
    fn fp8_to_bf16_lookup_matches_table() {
        if !crate::gemm::GemmKernel::Avx512Fma.is_available() {
            return;
        }
        #[target_feature(enable = "avx512f,avx512bw,avx512vl")]
        fn run(fmt: Fp8Format) {
            let l = lut(fmt);
            let t = scalar::bf16_lut(fmt);
            for base in (0..256).step_by(32) {
                let codes: [u8; 32] = core::array::from_fn(|i| (base + i) as u8);
                let mut out = [0u16; 32];
                // SAFETY: 32 readable bytes, 32 writable words.
                unsafe {
                    let v = cvt32(_mm256_loadu_si256(codes.as_ptr().cast()), &l);
                    _mm512_storeu_si512(out.as_mut_ptr().cast(), v);
                }
                for i in 0..32 {
                    assert_eq!(out[i], t[base + i], "{fmt:?} {:#x}", base + i);
                }
            }
        }
        for fmt in [Fp8Format::E4M3, Fp8Format::E5M2] {
            // SAFETY: the features were checked above.
            unsafe { run(fmt) };
        }
    }
}
