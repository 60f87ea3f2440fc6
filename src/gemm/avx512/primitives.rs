//! Shared AVX-512 primitives of the GEMM kernels: the FP8 → bf16 lookup (32 codes per step), the
//! f32 → bf16 / FP8 output conversions and the vectorised write-back of a tile of block sums
//! into C (α, β, output rounding, NaN canonicalisation). Both the blocked kernel
//! ([`super::blocked`]) and the short-problem kernel ([`super::skinny`]) use them; this module
//! uses neither.

use super::super::{Problem, scalar};
use super::NR;
use crate::dtype::DType;
use crate::fp8::Fp8Format;
use core::arch::x86_64::*;

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

pub(super) fn low_mask32(n: usize) -> u32 {
    if n >= 32 { u32::MAX } else { (1u32 << n) - 1 }
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

use crate::nan::canonical_avx512 as canonical_nan;

/// Writes a tile into C where C's column stride is 1: `rows × cols` at `(i0, j0)`, tile row `i`
/// at `tile + i·NR`; each element as [`scalar::write_tile`] writes it (α, β, canonical NaN,
/// rounding to C's type).
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
                        _mm512_mask_storeu_ps(d, mask, canonical_nan(x));
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
                        _mm512_mask_cvtepi32_storeu_epi16(
                            d.cast(),
                            mask,
                            to_bf16(canonical_nan(x)),
                        );
                    }
                    DType::E4M3 | DType::E5M2 => {
                        let fmt = p.c_type.fp8().unwrap_or(Fp8Format::E4M3);
                        let d = row.add(16 * v);
                        _mm512_mask_cvtepi32_storeu_epi8(
                            d.cast(),
                            mask,
                            to_fp8(canonical_nan(x), fmt),
                        );
                    }
                    DType::F16 => unreachable!("f16 C is rejected by validation"),
                }
            }
        }
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
