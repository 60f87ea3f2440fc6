//! The AVX-512 micro-kernels of the blocked GEMM: `R × 16·V` tiles (`R ≤ MR`, `V ≤ 2`) over
//! packed VNNI-2 panels ([`super::pack`]), one `vdpbf16ps` per K pair ([`kernel_bf16`]) or two
//! f32 FMAs ([`kernel_fma`], without AVX512-BF16).

use super::super::KB;
use super::NR;
use core::arch::x86_64::*;

/// How far ahead (bytes) the micro-kernel prefetches its A stream.
const A_PREFETCH_BYTES: usize = 3072;

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
pub(super) struct Prefetch {
    pub(super) at: *const u8,
    pub(super) lines: usize,
}

/// Runs the micro-kernel for `rows ≤ MR` rows and `cols ≤ NR` columns.
///
/// # Safety
/// As [`kernel_bf16`]; the BF16 kernel needs AVX512-BF16.
#[allow(clippy::too_many_arguments)]
pub(super) unsafe fn micro(
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
