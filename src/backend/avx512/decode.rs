//! Widening kernels: bf16, f16 and FP8 → f32.

use super::tail_mask;
use crate::fp8::Fp8Format;
use core::arch::x86_64::*;

/// See [`crate::backend::Kernels::bf16_to_f32`].
///
/// # Safety
/// The [`crate::backend::Kernels`] contract; the CPU has AVX-512 F/BW/VL/DQ.
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512dq")]
pub(super) unsafe fn bf16_to_f32(src: *const u16, dst: *mut f32, n: usize) {
    let mut i = 0;
    while i + 16 <= n {
        // SAFETY: elements [i, i + 16) are in bounds (contract); unaligned access is allowed.
        unsafe {
            let h = _mm256_loadu_si256(src.add(i).cast());
            let w = _mm512_slli_epi32::<16>(_mm512_cvtepu16_epi32(h));
            _mm512_storeu_si512(dst.add(i).cast(), w);
        }
        i += 16;
    }
    if i < n {
        let k = tail_mask(n - i);
        // SAFETY: masked lanes [i, n) are in bounds; masked-off lanes are neither read nor written.
        unsafe {
            let h = _mm256_maskz_loadu_epi16(k, src.add(i).cast());
            let w = _mm512_slli_epi32::<16>(_mm512_cvtepu16_epi32(h));
            _mm512_mask_storeu_epi32(dst.add(i).cast(), k, w);
        }
    }
}

/// See [`crate::backend::Kernels::f16_to_f32`]. `vcvtph2ps` is exact, ignores MXCSR.DAZ and
/// turns a NaN into `sign | 0x7FC00000 | payload << 13`, which is what the scalar code does.
///
/// # Safety
/// The [`crate::backend::Kernels`] contract; the CPU has AVX-512 F/BW/VL/DQ.
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512dq")]
pub(super) unsafe fn f16_to_f32(src: *const u16, dst: *mut f32, n: usize) {
    let mut i = 0;
    while i + 16 <= n {
        // SAFETY: elements [i, i + 16) are in bounds (contract); unaligned access is allowed.
        unsafe {
            let h = _mm256_loadu_si256(src.add(i).cast());
            _mm512_storeu_ps(dst.add(i), _mm512_cvtph_ps(h));
        }
        i += 16;
    }
    if i < n {
        let k = tail_mask(n - i);
        // SAFETY: masked lanes [i, n) are in bounds; masked-off lanes are neither read nor written.
        unsafe {
            let h = _mm256_maskz_loadu_epi16(k, src.add(i).cast());
            _mm512_mask_storeu_ps(dst.add(i), k, _mm512_cvtph_ps(h));
        }
    }
}

/// Arithmetic FP8 → f32 of 16 codes (zero-extended into 32-bit lanes).
#[inline]
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512dq")]
fn decode16<const MBITS: u32>(c: __m512i) -> __m512i {
    let bias: u32 = if MBITS == 3 { 7 } else { 15 };
    let mag = _mm512_and_si512(c, _mm512_set1_epi32(0x7F));
    // Normal codes: move exponent and mantissa into place and rebias the exponent.
    let normal = _mm512_add_epi32(
        _mm512_sllv_epi32(mag, _mm512_set1_epi32((23 - MBITS) as i32)),
        _mm512_set1_epi32(((127 - bias) << 23) as i32),
    );
    // Subnormal codes (exponent 0, so `mag` is the mantissa): mag · 2^(1 - bias - MBITS), a
    // product of two normal floats that is exact and normal (or +0), so DAZ/FTZ cannot matter.
    let unit = f32::from_bits((128 - bias - MBITS) << 23);
    let sub = _mm512_castps_si512(_mm512_mul_ps(_mm512_cvtepi32_ps(mag), _mm512_set1_ps(unit)));
    let is_sub = _mm512_cmplt_epu32_mask(mag, _mm512_set1_epi32(1 << MBITS));
    let mut r = _mm512_mask_blend_epi32(is_sub, normal, sub);
    if MBITS == 3 {
        let is_nan = _mm512_cmpeq_epi32_mask(mag, _mm512_set1_epi32(0x7F));
        r = _mm512_mask_mov_epi32(r, is_nan, _mm512_set1_epi32(0x7FC0_0000));
    } else {
        let special = _mm512_cmpge_epu32_mask(mag, _mm512_set1_epi32(0x7C));
        r = _mm512_mask_mov_epi32(r, special, _mm512_set1_epi32(0x7F80_0000));
        let is_nan = _mm512_cmpgt_epu32_mask(mag, _mm512_set1_epi32(0x7C));
        r = _mm512_mask_mov_epi32(r, is_nan, _mm512_set1_epi32(0x7FC0_0000));
    }
    // r | (code << 24 & sign bit)
    _mm512_ternarylogic_epi32::<0xF8>(r, _mm512_slli_epi32::<24>(c), _mm512_set1_epi32(i32::MIN))
}

#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512dq")]
unsafe fn fp8_to_f32_arith<const MBITS: u32>(src: *const u8, dst: *mut f32, n: usize) {
    let mut i = 0;
    while i + 16 <= n {
        // SAFETY: elements [i, i + 16) are in bounds (contract); unaligned access is allowed.
        unsafe {
            let c = _mm512_cvtepu8_epi32(_mm_loadu_si128(src.add(i).cast()));
            _mm512_storeu_si512(dst.add(i).cast(), decode16::<MBITS>(c));
        }
        i += 16;
    }
    if i < n {
        let k = tail_mask(n - i);
        // SAFETY: masked lanes [i, n) are in bounds; masked-off lanes are neither read nor written.
        unsafe {
            let c = _mm512_cvtepu8_epi32(_mm_maskz_loadu_epi8(k, src.add(i).cast()));
            _mm512_mask_storeu_epi32(dst.add(i).cast(), k, decode16::<MBITS>(c));
        }
    }
}

/// See [`crate::backend::Kernels::fp8_to_f32`] (arithmetic variant).
///
/// # Safety
/// The [`crate::backend::Kernels`] contract; the CPU has AVX-512 F/BW/VL/DQ.
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512dq")]
pub(super) unsafe fn fp8_to_f32(format: Fp8Format, src: *const u8, dst: *mut f32, n: usize) {
    // SAFETY: forwarded contract.
    unsafe {
        match format {
            Fp8Format::E4M3 => fp8_to_f32_arith::<3>(src, dst, n),
            Fp8Format::E5M2 => fp8_to_f32_arith::<2>(src, dst, n),
        }
    }
}

/// One of the two byte tables of a format: byte `byte` (3 = high, 2 = low) of the f32 bits of
/// every magnitude, as two 64-byte halves.
const fn byte_table(format: Fp8Format, byte: u32) -> [[u8; 64]; 2] {
    let mut t = [[0u8; 64]; 2];
    let mut mag = 0;
    while mag < 128 {
        t[(mag / 64) as usize][(mag % 64) as usize] =
            (format.decode_bits(mag as u8) >> (8 * byte)) as u8;
        mag += 1;
    }
    t
}

/// The lookup tables of one format: `[high byte half 0, half 1, low byte half 0, half 1]`.
struct Tables([[u8; 64]; 4]);

const fn tables(format: Fp8Format) -> Tables {
    let hi = byte_table(format, 3);
    let lo = byte_table(format, 2);
    Tables([hi[0], hi[1], lo[0], lo[1]])
}

static E4M3_TABLES: Tables = tables(Fp8Format::E4M3);
static E5M2_TABLES: Tables = tables(Fp8Format::E5M2);

/// Byte permutation applied to 64 codes before the lookups so that the in-lane unpacks that
/// widen bytes to 32-bit lanes leave the results in order: position `16L + 4g + d` holds code
/// `16g + 4L + d`.
static VBMI_ORDER: [u8; 64] = {
    let mut p = [0u8; 64];
    let mut pos = 0;
    while pos < 64 {
        let (lane, g, d) = (pos / 16, (pos / 4) % 4, pos % 4);
        p[pos] = (16 * g + 4 * lane + d) as u8;
        pos += 1;
    }
    p
};

/// Decodes 64 codes into four vectors of 16 f32 bit patterns (codes 0-15, 16-31, ...).
#[inline]
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512dq,avx512vbmi")]
fn decode64_vbmi(codes: __m512i, t: &[__m512i; 4], order: __m512i) -> [__m512i; 4] {
    let p = _mm512_permutexvar_epi8(order, codes);
    // vpermi2b uses the low 7 bits of each index: the magnitude.
    let hi = _mm512_permutex2var_epi8(t[0], p, t[1]);
    // hi | (p & 0x80): merge the sign.
    let hi = _mm512_ternarylogic_epi32::<0xF8>(hi, p, _mm512_set1_epi8(i8::MIN));
    let lo = _mm512_permutex2var_epi8(t[2], p, t[3]);
    let w0 = _mm512_unpacklo_epi8(lo, hi);
    let w1 = _mm512_unpackhi_epi8(lo, hi);
    let z = _mm512_setzero_si512();
    [
        _mm512_unpacklo_epi16(z, w0),
        _mm512_unpackhi_epi16(z, w0),
        _mm512_unpacklo_epi16(z, w1),
        _mm512_unpackhi_epi16(z, w1),
    ]
}

/// See [`crate::backend::Kernels::fp8_to_f32`] (VBMI lookup variant).
///
/// # Safety
/// The [`crate::backend::Kernels`] contract; the CPU has AVX-512 F/BW/VL/DQ and VBMI.
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512dq,avx512vbmi")]
pub(super) unsafe fn fp8_to_f32_vbmi(format: Fp8Format, src: *const u8, dst: *mut f32, n: usize) {
    let tables = match format {
        Fp8Format::E4M3 => &E4M3_TABLES,
        Fp8Format::E5M2 => &E5M2_TABLES,
    };
    // SAFETY: the statics are 64-byte arrays; unaligned loads.
    let (t, order) = unsafe {
        (
            [
                _mm512_loadu_si512(tables.0[0].as_ptr().cast()),
                _mm512_loadu_si512(tables.0[1].as_ptr().cast()),
                _mm512_loadu_si512(tables.0[2].as_ptr().cast()),
                _mm512_loadu_si512(tables.0[3].as_ptr().cast()),
            ],
            _mm512_loadu_si512(VBMI_ORDER.as_ptr().cast()),
        )
    };
    let mut i = 0;
    while i + 64 <= n {
        // SAFETY: elements [i, i + 64) are in bounds (contract); unaligned access is allowed.
        unsafe {
            let codes = _mm512_loadu_si512(src.add(i).cast());
            let r = decode64_vbmi(codes, &t, order);
            for (g, v) in r.into_iter().enumerate() {
                _mm512_storeu_si512(dst.add(i + 16 * g).cast(), v);
            }
        }
        i += 64;
    }
    if i < n {
        let rem = n - i;
        let k: u64 = (1u64 << rem) - 1;
        // SAFETY: masked lanes [i, n) are in bounds; masked-off lanes are neither read nor written.
        unsafe {
            let codes = _mm512_maskz_loadu_epi8(k, src.add(i).cast());
            let r = decode64_vbmi(codes, &t, order);
            for (g, v) in r.into_iter().enumerate() {
                let kg = (k >> (16 * g)) as u16;
                if kg != 0 {
                    _mm512_mask_storeu_epi32(dst.add(i + 16 * g).cast(), kg, v);
                }
            }
        }
    }
}

/// The bf16 bits (sign excluded) of every FP8 magnitude of a format, as two pairs of 32-entry
/// halves: `[0..32, 32..64, 64..96, 96..128]`.
const fn bf16_table(format: Fp8Format) -> [[u16; 32]; 4] {
    let mut t = [[0u16; 32]; 4];
    let mut mag = 0;
    while mag < 128 {
        t[(mag / 32) as usize][(mag % 32) as usize] = (format.decode_bits(mag as u8) >> 16) as u16;
        mag += 1;
    }
    t
}

static E4M3_BF16: [[u16; 32]; 4] = bf16_table(Fp8Format::E4M3);
static E5M2_BF16: [[u16; 32]; 4] = bf16_table(Fp8Format::E5M2);

/// Decodes 32 codes (zero-extended into 16-bit lanes) to bf16 bits with two 64-entry word
/// lookups (`vpermi2w` uses the low 6 bits of each index; bit 6 picks the lookup).
#[inline]
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512dq")]
fn decode32_bf16(c: __m512i, t: &[__m512i; 4]) -> __m512i {
    let low = _mm512_permutex2var_epi16(t[0], c, t[1]);
    let high = _mm512_permutex2var_epi16(t[2], c, t[3]);
    let r = _mm512_mask_blend_epi16(
        _mm512_test_epi16_mask(c, _mm512_set1_epi16(0x40)),
        low,
        high,
    );
    // r | (code << 8 & 0x8000)
    _mm512_ternarylogic_epi32::<0xF8>(r, _mm512_slli_epi16::<8>(c), _mm512_set1_epi16(i16::MIN))
}

/// See [`crate::backend::Kernels::fp8_to_bf16`] (word-lookup variant).
///
/// # Safety
/// The [`crate::backend::Kernels`] contract; the CPU has AVX-512 F/BW/VL/DQ.
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512dq")]
pub(super) unsafe fn fp8_to_bf16(format: Fp8Format, src: *const u8, dst: *mut u16, n: usize) {
    let table = match format {
        Fp8Format::E4M3 => &E4M3_BF16,
        Fp8Format::E5M2 => &E5M2_BF16,
    };
    // SAFETY: the statics are 64-byte arrays; unaligned loads.
    let t = unsafe { table.map(|h| _mm512_loadu_si512(h.as_ptr().cast())) };
    let mut i = 0;
    while i + 32 <= n {
        // SAFETY: elements [i, i + 32) are in bounds (contract); unaligned access is allowed.
        unsafe {
            let c = _mm512_cvtepu8_epi16(_mm256_loadu_si256(src.add(i).cast()));
            _mm512_storeu_si512(dst.add(i).cast(), decode32_bf16(c, &t));
        }
        i += 32;
    }
    if i < n {
        let k = ((1u64 << (n - i)) - 1) as __mmask32;
        // SAFETY: masked lanes [i, n) are in bounds; masked-off lanes are neither read nor written.
        unsafe {
            let c = _mm512_cvtepu8_epi16(_mm256_maskz_loadu_epi8(k, src.add(i).cast()));
            _mm512_mask_storeu_epi16(dst.add(i).cast(), k, decode32_bf16(c, &t));
        }
    }
}

/// Byte permutation applied to 64 codes before the bf16 lookups so that the in-lane unpacks
/// to 16-bit lanes leave the results in order: position `16L + d` holds code `8L + d` for
/// `d < 8` and `32 + 8L + (d - 8)` otherwise.
static VBMI_ORDER_BF16: [u8; 64] = {
    let mut p = [0u8; 64];
    let mut pos = 0;
    while pos < 64 {
        let (lane, d) = (pos / 16, pos % 16);
        p[pos] = if d < 8 {
            8 * lane + d
        } else {
            32 + 8 * lane + d - 8
        } as u8;
        pos += 1;
    }
    p
};

/// Decodes 64 codes into two vectors of 32 bf16 bit patterns (codes 0-31, 32-63).
#[inline]
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512dq,avx512vbmi")]
fn decode64_bf16_vbmi(codes: __m512i, t: &[__m512i; 4], order: __m512i) -> [__m512i; 2] {
    let p = _mm512_permutexvar_epi8(order, codes);
    // vpermi2b uses the low 7 bits of each index: the magnitude.
    let hi = _mm512_permutex2var_epi8(t[0], p, t[1]);
    // hi | (p & 0x80): merge the sign.
    let hi = _mm512_ternarylogic_epi32::<0xF8>(hi, p, _mm512_set1_epi8(i8::MIN));
    let lo = _mm512_permutex2var_epi8(t[2], p, t[3]);
    [_mm512_unpacklo_epi8(lo, hi), _mm512_unpackhi_epi8(lo, hi)]
}

/// See [`crate::backend::Kernels::fp8_to_bf16`] (VBMI byte-lookup variant).
///
/// # Safety
/// The [`crate::backend::Kernels`] contract; the CPU has AVX-512 F/BW/VL/DQ and VBMI.
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512dq,avx512vbmi")]
pub(super) unsafe fn fp8_to_bf16_vbmi(format: Fp8Format, src: *const u8, dst: *mut u16, n: usize) {
    let tables = match format {
        Fp8Format::E4M3 => &E4M3_TABLES,
        Fp8Format::E5M2 => &E5M2_TABLES,
    };
    // SAFETY: the statics are 64-byte arrays; unaligned loads.
    let (t, order) = unsafe {
        (
            tables.0.map(|h| _mm512_loadu_si512(h.as_ptr().cast())),
            _mm512_loadu_si512(VBMI_ORDER_BF16.as_ptr().cast()),
        )
    };
    let mut i = 0;
    while i + 64 <= n {
        // SAFETY: elements [i, i + 64) are in bounds (contract); unaligned access is allowed.
        unsafe {
            let codes = _mm512_loadu_si512(src.add(i).cast());
            let [w0, w1] = decode64_bf16_vbmi(codes, &t, order);
            _mm512_storeu_si512(dst.add(i).cast(), w0);
            _mm512_storeu_si512(dst.add(i + 32).cast(), w1);
        }
        i += 64;
    }
    if i < n {
        let rem = n - i;
        let k: u64 = if rem == 64 {
            u64::MAX
        } else {
            (1u64 << rem) - 1
        };
        // SAFETY: masked lanes [i, n) are in bounds; masked-off lanes are neither read nor written.
        unsafe {
            let codes = _mm512_maskz_loadu_epi8(k, src.add(i).cast());
            let [w0, w1] = decode64_bf16_vbmi(codes, &t, order);
            _mm512_mask_storeu_epi16(dst.add(i).cast(), k as __mmask32, w0);
            let k1 = (k >> 32) as __mmask32;
            if k1 != 0 {
                _mm512_mask_storeu_epi16(dst.add(i + 32).cast(), k1, w1);
            }
        }
    }
}
