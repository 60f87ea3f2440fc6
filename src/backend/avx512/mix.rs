//! The residual mix kernels. Products and sums are separate roundings (never fused), as in the
//! scalar code.
//!
//! When both summands of an addition are NaN, which NaN comes out is not specified by Rust's
//! float semantics (the scalar reference's compiled code may take either); these kernels put the
//! product first, the operand x86 returns, as the scalar code compiles today.

use super::encode::{EncoderKind, Fp8Encoder, encode16_codes, encoder_kind};
use super::tail_mask;
use crate::backend::EncodeArgs;
use core::arch::x86_64::*;

/// See [`crate::backend::Kernels::mix`].
///
/// # Safety
/// The [`crate::backend::Kernels`] contract; the CPU has AVX-512 F/BW/VL/DQ.
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512dq")]
pub(super) unsafe fn mix(a: f32, b: f32, x: *const f32, f: *const f32, out: *mut f32, n: usize) {
    let (va, vb) = (_mm512_set1_ps(a), _mm512_set1_ps(b));
    let mut i = 0;
    while i + 16 <= n {
        // SAFETY: elements [i, i + 16) are in bounds (contract); `out` equals `x` or `f` or is
        // disjoint from both, and both inputs are loaded before the store.
        unsafe {
            let xv = _mm512_loadu_ps(x.add(i));
            let fv = _mm512_loadu_ps(f.add(i));
            let y = _mm512_add_ps(_mm512_mul_ps(va, xv), _mm512_mul_ps(vb, fv));
            _mm512_storeu_ps(out.add(i), y);
        }
        i += 16;
    }
    if i < n {
        let k = tail_mask(n - i);
        // SAFETY: masked lanes [i, n) are in bounds; masked-off lanes are neither read nor written.
        unsafe {
            let xv = _mm512_maskz_loadu_ps(k, x.add(i));
            let fv = _mm512_maskz_loadu_ps(k, f.add(i));
            let y = _mm512_add_ps(_mm512_mul_ps(va, xv), _mm512_mul_ps(vb, fv));
            _mm512_mask_storeu_ps(out.add(i), k, y);
        }
    }
}

#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512dq")]
unsafe fn mix_backward_impl<const ACC: bool>(
    a: f32,
    b: f32,
    g: *const f32,
    gx: *mut f32,
    gf: *mut f32,
    n: usize,
) {
    let (va, vb) = (_mm512_set1_ps(a), _mm512_set1_ps(b));
    let mut i = 0;
    while i + 16 <= n {
        // SAFETY: elements [i, i + 16) are in bounds (contract); `gx`/`gf` equal `g` or are
        // disjoint from it, and every load of a vector precedes its stores.
        unsafe {
            let gv = _mm512_loadu_ps(g.add(i));
            let mut dx = _mm512_mul_ps(va, gv);
            if ACC {
                dx = _mm512_add_ps(dx, _mm512_loadu_ps(gx.add(i)));
            }
            let df = _mm512_mul_ps(vb, gv);
            _mm512_storeu_ps(gx.add(i), dx);
            _mm512_storeu_ps(gf.add(i), df);
        }
        i += 16;
    }
    if i < n {
        let k = tail_mask(n - i);
        // SAFETY: masked lanes [i, n) are in bounds; masked-off lanes are neither read nor written.
        unsafe {
            let gv = _mm512_maskz_loadu_ps(k, g.add(i));
            let mut dx = _mm512_mul_ps(va, gv);
            if ACC {
                dx = _mm512_add_ps(dx, _mm512_maskz_loadu_ps(k, gx.add(i)));
            }
            let df = _mm512_mul_ps(vb, gv);
            _mm512_mask_storeu_ps(gx.add(i), k, dx);
            _mm512_mask_storeu_ps(gf.add(i), k, df);
        }
    }
}

/// See [`crate::backend::Kernels::mix_backward`].
///
/// # Safety
/// The [`crate::backend::Kernels`] contract; the CPU has AVX-512 F/BW/VL/DQ.
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512dq")]
pub(super) unsafe fn mix_backward(
    a: f32,
    b: f32,
    accumulate: bool,
    g: *const f32,
    gx: *mut f32,
    gf: *mut f32,
    n: usize,
) {
    // SAFETY: forwarded contract.
    unsafe {
        if accumulate {
            mix_backward_impl::<true>(a, b, g, gx, gf, n)
        } else {
            mix_backward_impl::<false>(a, b, g, gx, gf, n)
        }
    }
}

/// The lane indices `idx0 + 0..16` for the random bits of 16 consecutive elements.
#[inline]
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512dq")]
fn lane_indices(idx0: u32) -> __m512i {
    let iota = _mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15);
    _mm512_add_epi32(_mm512_set1_epi32(idx0 as i32), iota)
}

/// Stores 16 f32 at `p`: streaming when `nt` (then `p` is 64-byte aligned), plain otherwise.
///
/// # Safety
/// `p` valid for 16 f32; 64-byte aligned when `nt`.
#[inline]
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512dq")]
unsafe fn store16(p: *mut f32, v: __m512, nt: bool) {
    // SAFETY: per the contract.
    unsafe {
        if nt {
            _mm512_stream_ps(p, v);
        } else {
            _mm512_storeu_ps(p, v);
        }
    }
}

/// [`mix_fp8`] for one encoder (`CODES`: whether codes are written at all).
///
/// # Safety
/// As [`mix_fp8`].
#[allow(clippy::too_many_arguments)]
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512dq")]
unsafe fn mix_fp8_impl<const SH: u32, const BIAS: u32, const SR: bool, const CODES: bool>(
    a: f32,
    b: f32,
    x: *const f32,
    f: *const f32,
    out: *mut f32,
    codes: *mut u8,
    args: &EncodeArgs,
    stream: bool,
    n: usize,
) {
    let (va, vb) = (_mm512_set1_ps(a), _mm512_set1_ps(b));
    let enc = Fp8Encoder::new(args);
    let mut i = 0;
    while i + 16 <= n {
        // SAFETY: elements [i, i + 16) are in bounds (contract); `out` equals `x` or `f` or is
        // disjoint from both, and both inputs are loaded before the store; with `stream`, out
        // + i is 64-byte aligned (out is, and i is a multiple of 16).
        unsafe {
            let xv = _mm512_loadu_ps(x.add(i));
            let fv = _mm512_loadu_ps(f.add(i));
            let y = _mm512_add_ps(_mm512_mul_ps(va, xv), _mm512_mul_ps(vb, fv));
            store16(out.add(i), y, stream);
            if CODES {
                let idx = lane_indices(args.index_lo.wrapping_add(i as u32));
                let q = encode16_codes::<SH, BIAS, SR>(&enc, y, idx);
                _mm_storeu_si128(codes.add(i).cast(), q);
            }
        }
        i += 16;
    }
    if i < n {
        let k = tail_mask(n - i);
        // SAFETY: masked lanes [i, n) are in bounds; masked-off lanes are neither read nor written.
        unsafe {
            let xv = _mm512_maskz_loadu_ps(k, x.add(i));
            let fv = _mm512_maskz_loadu_ps(k, f.add(i));
            let y = _mm512_add_ps(_mm512_mul_ps(va, xv), _mm512_mul_ps(vb, fv));
            _mm512_mask_storeu_ps(out.add(i), k, y);
            if CODES {
                let idx = lane_indices(args.index_lo.wrapping_add(i as u32));
                let q = encode16_codes::<SH, BIAS, SR>(&enc, y, idx);
                _mm_mask_storeu_epi8(codes.add(i).cast(), k, q);
            }
        }
    }
}

/// See [`crate::backend::Kernels::mix_fp8`]: one pass, the FP8 codes encoded from the sums in
/// registers.
///
/// # Safety
/// The [`crate::backend::Kernels`] contract; the CPU has AVX-512 F/BW/VL/DQ.
#[allow(clippy::too_many_arguments)]
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512dq")]
pub(super) unsafe fn mix_fp8(
    a: f32,
    b: f32,
    x: *const f32,
    f: *const f32,
    out: *mut f32,
    codes: *mut u8,
    args: &EncodeArgs,
    stream: bool,
    n: usize,
) {
    // SAFETY: forwarded contract.
    unsafe {
        if codes.is_null() {
            return mix_fp8_impl::<20, 7, false, false>(a, b, x, f, out, codes, args, stream, n);
        }
        match encoder_kind(args) {
            EncoderKind::E4m3 => {
                mix_fp8_impl::<20, 7, false, true>(a, b, x, f, out, codes, args, stream, n)
            }
            EncoderKind::E4m3Stochastic => {
                mix_fp8_impl::<20, 7, true, true>(a, b, x, f, out, codes, args, stream, n)
            }
            EncoderKind::E5m2 => {
                mix_fp8_impl::<21, 15, false, true>(a, b, x, f, out, codes, args, stream, n)
            }
            EncoderKind::E5m2Stochastic => {
                mix_fp8_impl::<21, 15, true, true>(a, b, x, f, out, codes, args, stream, n)
            }
        }
    }
}

/// [`mix_backward_fp8`] for one encoder, accumulation mode and code output.
///
/// # Safety
/// As [`mix_backward_fp8`].
#[allow(clippy::too_many_arguments)]
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512dq")]
unsafe fn mix_backward_fp8_impl<
    const SH: u32,
    const BIAS: u32,
    const SR: bool,
    const CODES: bool,
    const ACC: bool,
>(
    a: f32,
    b: f32,
    g: *const f32,
    gx: *mut f32,
    gf: *mut f32,
    codes: *mut u8,
    args: &EncodeArgs,
    stream: bool,
    n: usize,
) {
    let (va, vb) = (_mm512_set1_ps(a), _mm512_set1_ps(b));
    let enc = Fp8Encoder::new(args);
    // gx is aligned when streaming; gf streams only when its lines line up with gx's.
    let nt_f = stream && (gf as usize).is_multiple_of(64);
    let mut i = 0;
    while i + 16 <= n {
        // SAFETY: elements [i, i + 16) are in bounds (contract); `gx`/`gf` equal `g` or are
        // disjoint from it, and every load of a vector precedes its stores; streamed stores
        // are 64-byte aligned (gx per the contract, gf checked above; i is a multiple of 16).
        unsafe {
            let gv = _mm512_loadu_ps(g.add(i));
            let mut dx = _mm512_mul_ps(va, gv);
            if ACC {
                dx = _mm512_add_ps(dx, _mm512_loadu_ps(gx.add(i)));
            }
            let df = _mm512_mul_ps(vb, gv);
            store16(gx.add(i), dx, stream);
            store16(gf.add(i), df, nt_f);
            if CODES {
                let idx = lane_indices(args.index_lo.wrapping_add(i as u32));
                let q = encode16_codes::<SH, BIAS, SR>(&enc, df, idx);
                _mm_storeu_si128(codes.add(i).cast(), q);
            }
        }
        i += 16;
    }
    if i < n {
        let k = tail_mask(n - i);
        // SAFETY: masked lanes [i, n) are in bounds; masked-off lanes are neither read nor written.
        unsafe {
            let gv = _mm512_maskz_loadu_ps(k, g.add(i));
            let mut dx = _mm512_mul_ps(va, gv);
            if ACC {
                dx = _mm512_add_ps(dx, _mm512_maskz_loadu_ps(k, gx.add(i)));
            }
            let df = _mm512_mul_ps(vb, gv);
            _mm512_mask_storeu_ps(gx.add(i), k, dx);
            _mm512_mask_storeu_ps(gf.add(i), k, df);
            if CODES {
                let idx = lane_indices(args.index_lo.wrapping_add(i as u32));
                let q = encode16_codes::<SH, BIAS, SR>(&enc, df, idx);
                _mm_mask_storeu_epi8(codes.add(i).cast(), k, q);
            }
        }
    }
}

/// [`mix_backward_fp8`] with the accumulation mode fixed.
///
/// # Safety
/// As [`mix_backward_fp8`].
#[allow(clippy::too_many_arguments)]
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512dq")]
unsafe fn mix_backward_fp8_acc<const ACC: bool>(
    a: f32,
    b: f32,
    g: *const f32,
    gx: *mut f32,
    gf: *mut f32,
    codes: *mut u8,
    args: &EncodeArgs,
    stream: bool,
    n: usize,
) {
    // SAFETY: forwarded contract.
    unsafe {
        if codes.is_null() {
            return mix_backward_fp8_impl::<20, 7, false, false, ACC>(
                a, b, g, gx, gf, codes, args, stream, n,
            );
        }
        match encoder_kind(args) {
            EncoderKind::E4m3 => mix_backward_fp8_impl::<20, 7, false, true, ACC>(
                a, b, g, gx, gf, codes, args, stream, n,
            ),
            EncoderKind::E4m3Stochastic => mix_backward_fp8_impl::<20, 7, true, true, ACC>(
                a, b, g, gx, gf, codes, args, stream, n,
            ),
            EncoderKind::E5m2 => mix_backward_fp8_impl::<21, 15, false, true, ACC>(
                a, b, g, gx, gf, codes, args, stream, n,
            ),
            EncoderKind::E5m2Stochastic => mix_backward_fp8_impl::<21, 15, true, true, ACC>(
                a, b, g, gx, gf, codes, args, stream, n,
            ),
        }
    }
}

/// See [`crate::backend::Kernels::mix_backward_fp8`]: one pass, the FP8 codes encoded from
/// `gf` in registers.
///
/// # Safety
/// The [`crate::backend::Kernels`] contract; the CPU has AVX-512 F/BW/VL/DQ.
#[allow(clippy::too_many_arguments)]
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512dq")]
pub(super) unsafe fn mix_backward_fp8(
    a: f32,
    b: f32,
    accumulate: bool,
    g: *const f32,
    gx: *mut f32,
    gf: *mut f32,
    codes: *mut u8,
    args: &EncodeArgs,
    stream: bool,
    n: usize,
) {
    // SAFETY: forwarded contract.
    unsafe {
        if accumulate {
            mix_backward_fp8_acc::<true>(a, b, g, gx, gf, codes, args, stream, n)
        } else {
            mix_backward_fp8_acc::<false>(a, b, g, gx, gf, codes, args, stream, n)
        }
    }
}
