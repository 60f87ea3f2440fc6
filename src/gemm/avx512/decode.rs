//! AVX-512 BF16 GEMM for few-row products with a K-contiguous B: 1 to [`ROWS`] rows of C
//! (after orientation), e.g. one decoded token `y = x·Wᵀ` with W stored row-major (n × k).
//!
//! Such a product reads each weight once, so it is bound by the bandwidth of B's bytes, not by
//! arithmetic. This kernel streams B once, in groups of 16 columns (16 rows of W), and decodes
//! in registers: the vector lanes run along the columns of C. Per step it loads one 64-byte
//! line (32 pairs) of each of the group's 16 columns, transposes the 16 × 32 code pairs with
//! four rounds of byte permutes (`vpermt2b`, 64 in all), so that each zmm holds two pairs of
//! all 16 columns, and converts them FP8 → bf16 with byte lookups (`vpermi2b`) whose
//! interleave (`vpunpck{l,h}bw`) yields one vector per pair: lane `j` holds the bf16 pair
//! `(b[2p][j], b[2p+1][j])`. Each row of A then takes one `vdpbf16ps` per pair with its (bf16)
//! A pair broadcast from a small packed copy of A; up to [`ROWS`] accumulators, one per row.
//!
//! The accumulation is the library's defined order (see the module documentation of
//! [`crate::gemm`]): per K block of [`KB`] pairs each accumulator starts at +0 and takes the
//! pairs in increasing order; the block sums are added in order; pairs past `k` are zero in
//! both A and B and leave the sums unchanged (a sum that starts at +0 is never −0). Columns
//! past `n` are computed from zeros and never written. The rows of the next lines are
//! prefetched [`PREFETCH_BYTES`] ahead (at the end of a group, the start of the next group's).

use super::super::{KB, Problem, scalar};
use super::NR;
use super::pack::pack_panel;
use super::primitives::{lut, write_unit};
use super::skinny::ByteTables;
use core::arch::x86_64::*;

/// Most rows of C the kernel handles (one accumulator each).
pub(crate) const ROWS: usize = 8;
/// Columns of C per group (lanes of one zmm).
const COLS: usize = 16;
/// How far ahead of the current line each column's source is prefetched, in bytes (8 lines of
/// each of 16 columns in flight; 128 and 2048 measured no better with W in DRAM, within the
/// noise of a shared machine).
const PREFETCH_BYTES: usize = 512;

/// Pairs of A packed: rounded up to whole 32-pair steps.
fn a_pairs(k: usize) -> usize {
    k.div_ceil(2).div_ceil(32) * 32
}

/// Bytes of workspace [`run`] needs for depth `k`: 64 alignment bytes, packed A
/// (`[pair][ROWS]` bf16-pair words) and one tile of `ROWS × NR` floats.
pub(crate) fn workspace_bytes(k: usize) -> usize {
    64 + (a_pairs(k) * ROWS + ROWS * NR) * 4
}

/// The layout conditions [`run`] needs: B K-contiguous and `1 ≤ m ≤ ROWS`. Whether it is
/// also the fastest choice is the registry's decision.
pub(crate) fn fits(p: &Problem) -> bool {
    p.rsb == 1 && (1..=ROWS).contains(&p.m)
}

/// Logical bits of a code pair's place in a 16-column × 32-pair step: `q0..q4` (the pair,
/// 0–4) and `r0..r3` (the column, 5–8).
const R0: u8 = 5;
/// One round of the transpose: registers `i` and `i | bit` (whose register-index bit holds the
/// logical bit `reg_bit`) give two registers in which position bit `at` holds `reg_bit`
/// instead of the logical bit `pos_bit`, which becomes the register-index bit (`x` = its
/// value in output `x`); the other position bits are rearranged from `pos_in` to `pos_out`.
/// Returns the `vpermt2b` byte indices of output `x` (bit 6: second source).
const fn round_index(
    pos_in: [u8; 5],
    pos_out: [u8; 5],
    reg_bit: u8,
    pos_bit: u8,
    x: u8,
) -> [u8; 64] {
    let mut idx = [0u8; 64];
    let mut w = 0;
    while w < 32 {
        let mut val = [0u8; 9];
        let mut j = 0;
        while j < 5 {
            val[pos_out[j] as usize] = ((w >> j) & 1) as u8;
            j += 1;
        }
        val[pos_bit as usize] = x;
        let src = val[reg_bit as usize];
        let mut pin = 0;
        let mut j = 0;
        while j < 5 {
            pin |= (val[pos_in[j] as usize] as usize) << j;
            j += 1;
        }
        idx[2 * w] = src * 64 + 2 * pin as u8;
        idx[2 * w + 1] = src * 64 + 2 * pin as u8 + 1;
        w += 1;
    }
    idx
}

/// Position layouts (logical bit at position bits 0–4) before and after each round. Initially
/// register `r` holds pair `q` at word `q`; round `t` swaps column bit `3 − t` (register-index
/// bit `3 − t`) with pair bit `4 − t`. After the last round register `s` holds pairs `2s` and
/// `2s + 1`, word `8L + 4h + c` being pair `2s + h` of column `4L + c`, which is what the byte
/// interleave of the conversion turns into lane `4L + c` of pair `2s + h`.
const LAYOUTS: [[u8; 5]; 5] = [
    [0, 1, 2, 3, 4],
    [0, 1, 2, 3, R0 + 3],
    [0, 1, 2, R0 + 2, R0 + 3],
    [0, 1, R0 + 1, R0 + 2, R0 + 3],
    [R0, R0 + 1, 0, R0 + 2, R0 + 3],
];

const fn round(t: usize, x: u8) -> [u8; 64] {
    round_index(LAYOUTS[t], LAYOUTS[t + 1], R0 + 3 - t as u8, 4 - t as u8, x)
}

/// The byte indices of the four rounds, outputs 0 and 1.
static ROUNDS: [[[u8; 64]; 2]; 4] = [
    [round(0, 0), round(0, 1)],
    [round(1, 0), round(1, 1)],
    [round(2, 0), round(2, 1)],
    [round(3, 0), round(3, 1)],
];

/// What one decoding step needs besides the data: the byte indices of the four transpose rounds
/// and the FP8 → bf16 byte tables of B's format.
pub(super) struct StepTables {
    idx: [[__m512i; 2]; 4],
    lb: ByteTables,
    sign: __m512i,
}

impl StepTables {
    #[target_feature(enable = "avx512f")]
    pub(super) fn new(fmt: crate::fp8::Fp8Format) -> StepTables {
        StepTables {
            // SAFETY: 64-byte loads of the static index tables.
            idx: unsafe {
                core::array::from_fn(|t| {
                    core::array::from_fn(|x| _mm512_loadu_si512(ROUNDS[t][x].as_ptr().cast()))
                })
            },
            lb: ByteTables::of(fmt),
            sign: _mm512_set1_epi8(-128),
        }
    }
}

/// One step over B: loads the 64-byte line of codes `off .. off + 64` (masked to `k`) of each of
/// the `cols ≤ 16` columns `col(j0 + r)` (K-contiguous), prefetches [`PREFETCH_BYTES`] ahead (at
/// the end of the columns, the start of the next group's `next_cols` columns), transposes the
/// code pairs and converts them, and calls `f(q, v)` for the 32 pairs `q` of the step in
/// increasing order, lane `j` of `v` holding the bf16 pair `(b[off/2 + q][j])` (even element in
/// the low half; zeros past `k` and past `cols`).
///
/// # Safety
/// AVX-512 F/BW/VBMI; codes `< k` of columns `j0 .. j0 + cols` readable.
#[allow(clippy::too_many_arguments)]
#[inline(always)]
pub(super) unsafe fn step(
    t: &StepTables,
    col: &impl Fn(usize) -> *const u8,
    j0: usize,
    cols: usize,
    next_cols: usize,
    k: usize,
    off: usize,
    mut f: impl FnMut(usize, __m512i),
) {
    // SAFETY: (whole body) the CPU features and the readable codes are the caller's contract;
    // this function is inlined into callers compiled with those features.
    unsafe {
        let left = k - off;
        let mask = if left >= 64 {
            u64::MAX
        } else {
            (1u64 << left) - 1
        };
        let ahead = off + PREFETCH_BYTES;
        let mut v = [_mm512_setzero_si512(); COLS];
        for (r, vr) in v.iter_mut().enumerate().take(cols) {
            let src = col(j0 + r);
            // A masked load of codes < k of column j0 + r (caller's contract); prefetches never
            // fault.
            *vr = _mm512_maskz_loadu_epi8(mask, src.wrapping_add(off).cast());
            if ahead < k {
                _mm_prefetch::<_MM_HINT_T0>(src.wrapping_add(ahead).cast());
            } else if r < next_cols {
                _mm_prefetch::<_MM_HINT_T0>(col(j0 + COLS + r).wrapping_add(ahead - k).cast());
            }
        }
        for (round, ix) in t.idx.iter().enumerate() {
            let bit = 8 >> round;
            for i in 0..COLS {
                if i & bit == 0 {
                    let (a, b) = (v[i], v[i | bit]);
                    v[i] = _mm512_permutex2var_epi8(a, ix[0], b);
                    v[i | bit] = _mm512_permutex2var_epi8(a, ix[1], b);
                }
            }
        }
        for (s, codes) in v.iter().enumerate() {
            let lo = _mm512_permutex2var_epi8(t.lb.0[0], *codes, t.lb.0[1]);
            let hi = _mm512_permutex2var_epi8(t.lb.0[2], *codes, t.lb.0[3]);
            let hi = _mm512_ternarylogic_epi32::<0xF8>(hi, *codes, t.sign);
            f(2 * s, _mm512_unpacklo_epi8(lo, hi));
            f(2 * s + 1, _mm512_unpackhi_epi8(lo, hi));
        }
    }
}

/// `C ← α·A·B + β·C` for a validated problem with `k > 0` that [`fits`] this kernel, on the
/// calling thread.
///
/// # Safety
/// `p` validated, `p.k > 0`, `fits(p)`; AVX-512 F/BW/VL/BF16/VBMI available; `ws` holds at
/// least [`workspace_bytes`]`(p.k)` bytes.
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512bf16,avx512vbmi")]
pub(crate) unsafe fn run(p: &Problem, ws: &mut [u8]) {
    // SAFETY: forwarded contract; each arm has M = m rows.
    unsafe {
        match p.m {
            1 => run_rows::<1>(p, ws),
            2 => run_rows::<2>(p, ws),
            3 => run_rows::<3>(p, ws),
            4 => run_rows::<4>(p, ws),
            5 => run_rows::<5>(p, ws),
            6 => run_rows::<6>(p, ws),
            7 => run_rows::<7>(p, ws),
            _ => run_rows::<8>(p, ws),
        }
    }
}

/// [`run`] with `M = m` accumulators.
///
/// # Safety
/// As [`run`], and `p.m == M`.
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512bf16,avx512vbmi")]
unsafe fn run_rows<const M: usize>(p: &Problem, ws: &mut [u8]) {
    let (n, k) = (p.n, p.k);
    debug_assert!(fits(p) && p.m == M && k > 0);
    debug_assert!(ws.len() >= workspace_bytes(k));
    let kp = k.div_ceil(2);
    let ap = a_pairs(k);
    let base = ws.as_mut_ptr();
    // SAFETY: the workspace holds the alignment bytes, packed A and the tile (caller).
    let (apack, tile) = unsafe {
        let apack = base.add(base.align_offset(64)).cast::<u32>();
        (apack, apack.add(ap * ROWS).cast::<f32>())
    };
    let la = lut(p.a_fmt);
    // SAFETY: rows < M of A are inside the validated A; the panel ([pair][ROWS] words, K blocks
    // contiguous) and its zeroed padding up to `ap` pairs fit in the workspace.
    unsafe {
        for w in kp * ROWS..ap * ROWS {
            *apack.add(w) = 0;
        }
        pack_panel(
            p.a,
            p.rsa,
            p.csa,
            M,
            ROWS,
            k,
            &la,
            scalar::bf16_lut(p.a_fmt),
            apack,
            KB * ROWS,
        );
    }
    let tables = StepTables::new(p.b_fmt);
    let col = |j: usize| p.b.wrapping_offset(j as isize * p.csb);
    for j0 in (0..n).step_by(COLS) {
        let cols = COLS.min(n - j0);
        let next_cols = COLS.min(n.saturating_sub(j0 + COLS));
        let mut totals = [_mm512_setzero_ps(); M];
        let mut kc = 0;
        while kc < kp {
            let kb = KB.min(kp - kc);
            let mut acc = [_mm512_setzero_ps(); M];
            for q0 in (kc..kc + kb).step_by(32) {
                // SAFETY: columns j0 .. j0 + cols (< n) of the validated B, codes < k.
                unsafe {
                    step(&tables, &col, j0, cols, next_cols, k, 2 * q0, |q, bv| {
                        // SAFETY: a bit cast of 16 bf16 pairs.
                        let bv: __m512bh = core::mem::transmute(bv);
                        for (i, x) in acc.iter_mut().enumerate() {
                            // SAFETY: pair q0 + q < ap of row i < ROWS of the packed A.
                            let aw = *apack.add((q0 + q) * ROWS + i);
                            // SAFETY: a bit cast of 16 bf16 pairs.
                            let av: __m512bh = core::mem::transmute(_mm512_set1_epi32(aw as i32));
                            *x = _mm512_dpbf16_ps(*x, av, bv);
                        }
                    });
                }
            }
            for (t, x) in totals.iter_mut().zip(acc) {
                *t = if kc == 0 { x } else { _mm512_add_ps(*t, x) };
            }
            kc += KB;
        }
        // SAFETY: the tile holds ROWS rows of NR floats; C's block (rows < M, columns j0 ..
        // j0 + cols) is inside the validated C.
        unsafe {
            for (i, t) in totals.iter().enumerate() {
                _mm512_storeu_ps(tile.add(i * NR), *t);
            }
            if p.csc == 1 {
                write_unit(p, tile, 0, j0, M, cols);
            } else {
                let t = core::slice::from_raw_parts(tile, ROWS * NR);
                scalar::write_tile(p, t, NR, 0, j0, M, cols);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::kernel_tests::{Kernel, Rng, check_case};
    use super::*;
    use crate::dtype::DType;

    /// The kernel against the scalar reference (see [`check_case`]): every K tail (pairs within
    /// a 32-pair step and a K block), column tails (n not a multiple of 16, n < 16), every row
    /// count, strides, NaN and Inf codes.
    #[test]
    fn decode_kernel_matches_reference() {
        if !crate::cpu::avx512_bf16_vbmi() {
            eprintln!(
                "decode_kernel_matches_reference: SKIPPED, no AVX512-BF16 and VBMI on this CPU"
            );
            return;
        }
        let kernel = Kernel {
            name: "decode kernel",
            fits,
            workspace_bytes,
            run,
        };
        let mut rng = Rng::from_clock("decode_kernel_matches_reference");
        let fp8 = [DType::E4M3, DType::E5M2];
        let outs = [DType::F32, DType::BF16, DType::E4M3, DType::E5M2];
        for case in 0..160 {
            let m = 1 + case % ROWS;
            let n = [3, 7, 15, 16, 17, 33, 48, 71, 200][rng.below(9)];
            let k = [
                1, 2, 3, 63, 64, 65, 127, 255, 256, 257, 300, 511, 513, 1025, 2049,
            ][rng.below(15)];
            let types = (fp8[rng.below(2)], fp8[rng.below(2)], outs[case / 8 % 4]);
            check_case(
                &mut rng,
                &kernel,
                case,
                (m, n, k),
                types,
                -0.75,
                case % 5 == 0,
            );
        }
    }
}
