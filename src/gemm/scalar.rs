//! The portable GEMM: decode tables (generated at compile time from [`Fp8Format::decode_bits`]),
//! the reference dot product that defines the accumulation order of every back end, and the
//! element-wise write-back shared by all paths (with the NaN rule of [`crate::nan`]).

use super::registry::KernelEntry;
use super::{GemmKernel, KB, Problem};
use crate::backend::Backend;
use crate::dtype::{DType, Rounding};
use crate::fp8::Fp8Format;

/// Registry entry: the reference kernel, always available, no workspace.
pub(super) const ENTRY: KernelEntry = KernelEntry {
    kernel: GemmKernel::Scalar,
    backend: Some(Backend::Scalar),
    available: || true,
    tile: (1, 1),
    workspace_size: |_, _, _| 0,
    run: run_with_workspace,
    short: None,
};

/// [`run`] with the registry's signature (the workspace is not used).
///
/// # Safety
/// As [`run`].
unsafe fn run_with_workspace(p: &Problem, _ws: &mut [u8]) {
    // SAFETY: forwarded contract.
    unsafe { run(p) }
}

#[cfg_attr(
    not(all(target_arch = "x86_64", target_feature = "sse2")),
    allow(dead_code)
)]
const fn bf16_table(format: Fp8Format) -> [u16; 256] {
    let mut t = [0u16; 256];
    let mut i = 0;
    while i < 256 {
        t[i] = (format.decode_bits(i as u8) >> 16) as u16;
        i += 1;
    }
    t
}

const fn f32_table(format: Fp8Format) -> [f32; 256] {
    let mut t = [0f32; 256];
    let mut i = 0;
    while i < 256 {
        t[i] = format.decode(i as u8);
        i += 1;
    }
    t
}

/// FP8 code → bf16 bits, E4M3.
#[cfg_attr(
    not(all(target_arch = "x86_64", target_feature = "sse2")),
    allow(dead_code)
)]
pub(crate) static BF16_E4M3: [u16; 256] = bf16_table(Fp8Format::E4M3);
/// FP8 code → bf16 bits, E5M2.
#[cfg_attr(
    not(all(target_arch = "x86_64", target_feature = "sse2")),
    allow(dead_code)
)]
pub(crate) static BF16_E5M2: [u16; 256] = bf16_table(Fp8Format::E5M2);
static F32_E4M3: [f32; 256] = f32_table(Fp8Format::E4M3);
static F32_E5M2: [f32; 256] = f32_table(Fp8Format::E5M2);

/// The FP8 code → bf16 bits table of `format`.
#[cfg_attr(
    not(all(target_arch = "x86_64", target_feature = "sse2")),
    allow(dead_code)
)]
pub(crate) fn bf16_lut(format: Fp8Format) -> &'static [u16; 256] {
    match format {
        Fp8Format::E4M3 => &BF16_E4M3,
        Fp8Format::E5M2 => &BF16_E5M2,
    }
}

/// The FP8 code → f32 table of `format`.
pub(crate) fn f32_lut(format: Fp8Format) -> &'static [f32; 256] {
    match format {
        Fp8Format::E4M3 => &F32_E4M3,
        Fp8Format::E5M2 => &F32_E5M2,
    }
}

/// The reference dot product of `k` FP8 elements, in the order every back end uses. K is cut
/// into blocks of `2·KB` elements; within a block, `acc` starts at `+0` and runs over the pairs
/// `(2p, 2p+1)` in increasing `p`, the odd term first: `acc = a[2p]·b[2p] + (a[2p+1]·b[2p+1] +
/// acc)`, each `+` rounded to f32 (nearest even), the products exact (FP8 × FP8 fits in f32); a
/// missing odd term (odd `k`) is `+0`. The block sums are added in order into a running total
/// (the first block's sum is the initial total). Within a block this is exactly `vdpbf16ps` on
/// bf16 copies of the inputs (whose denormal flushing never triggers here: every nonzero partial
/// sum is a multiple of 2^-32).
///
/// # Safety
/// `a + t·a_step` and `b + t·b_step` must be readable for `t < k`.
pub(crate) unsafe fn dot(
    a: *const u8,
    a_step: isize,
    la: &[f32; 256],
    b: *const u8,
    b_step: isize,
    lb: &[f32; 256],
    k: usize,
) -> f32 {
    // SAFETY: every offset below is t·step with t < k (caller's contract).
    let at = |t: usize| unsafe { la[*a.offset(t as isize * a_step) as usize] };
    // SAFETY: as above.
    let bt = |t: usize| unsafe { lb[*b.offset(t as isize * b_step) as usize] };
    let mut total = 0.0f32;
    let mut start = 0;
    while start < k {
        let end = (start + 2 * KB).min(k);
        let mut acc = 0.0f32;
        let mut t = start;
        while t + 1 < end {
            let even = at(t) * bt(t);
            let odd = at(t + 1) * bt(t + 1);
            acc = even + (odd + acc);
            t += 2;
        }
        if t < end {
            acc = at(t) * bt(t) + (0.0 + acc);
        }
        total = if start == 0 { acc } else { total + acc };
        start = end;
    }
    total
}

/// `α·acc + β·c_old` as every path computes it: `β = 0` ignores (and does not read) `c_old`;
/// otherwise the two products are rounded to f32, then summed (no fused multiply-add). A NaN
/// result is the canonical NaN ([`crate::nan::canonical`]).
#[inline(always)]
pub(crate) fn finish(acc: f32, alpha: f32, beta: f32, c_old: impl FnOnce() -> f32) -> f32 {
    let r = alpha * acc;
    crate::nan::canonical(if beta != 0.0 { r + beta * c_old() } else { r })
}

/// Reads C element `idx` (in elements) as f32 (f32 or bf16 C only; FP8 C is never read).
///
/// # Safety
/// The element must be readable.
#[inline(always)]
pub(crate) unsafe fn load_c(c: *mut u8, c_type: DType, idx: isize) -> f32 {
    // SAFETY: caller's contract; unaligned reads.
    unsafe {
        match c_type {
            DType::F32 => (c as *const f32).offset(idx).read_unaligned(),
            DType::BF16 => {
                let bits = (c as *const u16).offset(idx).read_unaligned();
                f32::from_bits((bits as u32) << 16)
            }
            _ => 0.0,
        }
    }
}

/// Writes `x` rounded to `c_type` into C element `idx`: f32 as is, bf16 to nearest even (IEEE
/// overflow), FP8 to nearest even with saturation.
///
/// # Safety
/// The element must be writable.
#[inline(always)]
pub(crate) unsafe fn store_c(c: *mut u8, c_type: DType, idx: isize, x: f32) {
    // SAFETY: caller's contract; unaligned writes.
    unsafe {
        match c_type {
            DType::F32 => (c as *mut f32).offset(idx).write_unaligned(x),
            DType::BF16 => (c as *mut u16)
                .offset(idx)
                .write_unaligned(crate::fp8::f32_to_bf16_bits(x, false)),
            DType::E4M3 => *c.offset(idx) = Fp8Format::E4M3.encode(x, Rounding::NearestSaturate, 0),
            DType::E5M2 => *c.offset(idx) = Fp8Format::E5M2.encode(x, Rounding::NearestSaturate, 0),
            DType::F16 => (c as *mut u16)
                .offset(idx)
                .write_unaligned(crate::fp8::f32_to_f16_bits(x, false)),
        }
    }
}

/// Writes back one tile of raw accumulators (`tile[i·ld + j]`) into C at row `i0`, column `j0`
/// of the problem, element by element.
///
/// # Safety
/// The tile's target elements lie inside the problem's validated C.
#[allow(clippy::too_many_arguments)]
#[cfg_attr(
    not(all(target_arch = "x86_64", target_feature = "sse2")),
    allow(dead_code)
)]
pub(crate) unsafe fn write_tile(
    p: &Problem,
    tile: &[f32],
    ld: usize,
    i0: usize,
    j0: usize,
    rows: usize,
    cols: usize,
) {
    for i in 0..rows {
        for j in 0..cols {
            let idx = (i0 + i) as isize * p.rsc + (j0 + j) as isize * p.csc;
            // SAFETY: (i0 + i, j0 + j) is inside C (caller).
            unsafe {
                let x = finish(tile[i * ld + j], p.alpha, p.beta, || {
                    load_c(p.c, p.c_type, idx)
                });
                store_c(p.c, p.c_type, idx, x);
            }
        }
    }
}

/// The whole product with the reference [`dot`] (`k > 0`), rows `[0, m)`.
///
/// # Safety
/// The problem was validated.
pub(crate) unsafe fn run(p: &Problem) {
    let (la, lb) = (f32_lut(p.a_fmt), f32_lut(p.b_fmt));
    for i in 0..p.m {
        for j in 0..p.n {
            // SAFETY: row i of A, column j of B and C(i, j) lie in the validated ranges.
            unsafe {
                let a = p.a.offset(i as isize * p.rsa);
                let b = p.b.offset(j as isize * p.csb);
                let acc = dot(a, p.csa, la, b, p.rsb, lb, p.k);
                let idx = i as isize * p.rsc + j as isize * p.csc;
                let x = finish(acc, p.alpha, p.beta, || load_c(p.c, p.c_type, idx));
                store_c(p.c, p.c_type, idx, x);
            }
        }
    }
}
