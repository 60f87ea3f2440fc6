//! The residual mix kernels. Products and sums are separate roundings (never fused), as in the
//! scalar code.
//!
//! When both summands of an addition are NaN, which NaN comes out is not specified by Rust's
//! float semantics (the scalar reference's compiled code may take either); these kernels put the
//! product first, the operand x86 returns, as the scalar code compiles today.

use super::tail_mask;
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
