//! The μS fixed(τ) residual mix, `out = sqrt(1-τ)·x + sqrt(τ)·f`, and its backward
//! `grad_x = sqrt(1-τ)·g` (or `+=`), `grad_f = sqrt(τ)·g`, each with an optional fused FP8 copy of
//! its output.
//!
//! Arithmetic is f32: inputs widen exactly, the coefficients are `a = sqrtf(1-τ)` and
//! `b = sqrtf(τ)` (correctly rounded), each product is rounded, then the sum (no FMA); bf16/f16
//! outputs round to nearest even. The FP8 copy is the cast of the stored output, so it equals a
//! separate [`crate::cast()`] of `out` bit for bit.
//!
//! Each call is one pass through the fused kernels ([`Kernels::mix_fp8`],
//! [`Kernels::mix_backward_fp8`]): the outputs and their FP8 codes are computed in registers.
//! Calls larger than the caches write the outputs with streaming stores, straight from the
//! kernel, from their first 64-byte boundary on (staging them and copying them out in bursts
//! measured 40% slower at DRAM sizes, since reads and writes then alternate instead of
//! overlapping).

use crate::backend::EncodeArgs;
use crate::backend::Kernels;
use crate::cast::{
    BLOCK, CastParams, PIECES_PER_THREAD, STREAM_CHUNK, STREAM_MIN_BYTES, fp8_args,
    split_at_key_boundaries,
};
use crate::dtype::{DType, Element};
#[allow(unused_imports)] // Status: linked from the docs
use crate::error::Status;
use crate::error::{Error, require};
use crate::exec::Exec;
use crate::fp8::{E4M3, E5M2};
use crate::op::{MixBackwardOp, MixOp};

pub use crate::op::MixParams;

/// An optional FP8 output buffer of either format.
#[derive(Debug, Default)]
pub enum Fp8Out<'a> {
    /// No FP8 copy.
    #[default]
    None,
    /// An E4M3 copy (forward activations).
    E4M3(&'a mut [E4M3]),
    /// An E5M2 copy (gradients).
    E5M2(&'a mut [E5M2]),
}

impl Fp8Out<'_> {
    fn parts(&mut self) -> (*mut u8, DType, Option<usize>) {
        match self {
            Fp8Out::None => (core::ptr::null_mut(), DType::E4M3, None),
            Fp8Out::E4M3(s) => (s.as_mut_ptr().cast(), DType::E4M3, Some(s.len())),
            Fp8Out::E5M2(s) => (s.as_mut_ptr().cast(), DType::E5M2, Some(s.len())),
        }
    }
}

/// A type the residual mix works on: f32, bf16 or f16.
pub trait MixFloat: Element {}
impl MixFloat for f32 {}
impl MixFloat for half::bf16 {}
impl MixFloat for half::f16 {}

/// `out = sqrt(1-τ)·x + sqrt(τ)·f`, plus an FP8 copy of `out` when `fp8` is given. All slices
/// must have the same length ([`Status::InvalidArgument`]).
pub fn residual_mix<T: MixFloat>(
    x: &[T],
    f: &[T],
    out: &mut [T],
    mut fp8: Fp8Out<'_>,
    params: &MixParams,
) -> Result<(), Error> {
    let n = x.len();
    let (q, q_type, q_len) = fp8.parts();
    same_length("f", f.len(), "x", n)?;
    same_length("out", out.len(), "x", n)?;
    same_length("fp8", q_len.unwrap_or(n), "x", n)?;
    // SAFETY: slices are valid for n elements; borrows guarantee no overlap.
    unsafe {
        Exec::global().residual_mix_raw(
            x.as_ptr().cast(),
            f.as_ptr().cast(),
            out.as_mut_ptr().cast(),
            T::DTYPE,
            n,
            q,
            q_type,
            params,
        )
    }
}

/// In-place update of the residual stream: `x = sqrt(1-τ)·x + sqrt(τ)·f`, plus an FP8 copy.
pub fn residual_mix_inplace<T: MixFloat>(
    x: &mut [T],
    f: &[T],
    mut fp8: Fp8Out<'_>,
    params: &MixParams,
) -> Result<(), Error> {
    let n = x.len();
    let (q, q_type, q_len) = fp8.parts();
    same_length("f", f.len(), "x", n)?;
    same_length("fp8", q_len.unwrap_or(n), "x", n)?;
    let xp = x.as_mut_ptr();
    // SAFETY: x is read and written at the same index only (exact aliasing is allowed).
    unsafe {
        Exec::global().residual_mix_raw(
            xp.cast_const().cast(),
            f.as_ptr().cast(),
            xp.cast(),
            T::DTYPE,
            n,
            q,
            q_type,
            params,
        )
    }
}

/// Backward of the mix: `grad_x = sqrt(1-τ)·g` (`grad_x += sqrt(1-τ)·g` when `accumulate`),
/// `grad_f = sqrt(τ)·g`, plus an FP8 copy of `grad_f` (normally E5M2).
pub fn residual_mix_backward<T: MixFloat>(
    grad_out: &[T],
    grad_x: &mut [T],
    grad_f: &mut [T],
    accumulate: bool,
    mut fp8: Fp8Out<'_>,
    params: &MixParams,
) -> Result<(), Error> {
    let n = grad_out.len();
    let (q, q_type, q_len) = fp8.parts();
    same_length("grad_x", grad_x.len(), "grad_out", n)?;
    same_length("grad_f", grad_f.len(), "grad_out", n)?;
    same_length("fp8", q_len.unwrap_or(n), "grad_out", n)?;
    // SAFETY: slices valid for n elements; borrows guarantee no overlap.
    unsafe {
        Exec::global().residual_mix_backward_raw(
            grad_out.as_ptr().cast(),
            grad_x.as_mut_ptr().cast(),
            grad_f.as_mut_ptr().cast(),
            T::DTYPE,
            n,
            accumulate,
            q,
            q_type,
            params,
        )
    }
}

/// [`Status::InvalidArgument`] unless slice `arg` has `n` elements, as `reference` has.
fn same_length(
    arg: &'static str,
    len: usize,
    reference: &'static str,
    n: usize,
) -> Result<(), Error> {
    require(
        len == n,
        "{} has {} elements, {} has {}",
        &[arg.into(), len.into(), reference.into(), n.into()],
    )
}

impl Exec {
    /// Residual mix on raw buffers. `out` may be exactly `x` or `f` (same start); `out_fp8`
    /// (nullable, `fp8_type` E4M3 or E5M2) must not overlap anything. Nothing is written when a
    /// check fails.
    ///
    /// # Safety
    /// Non-null buffers valid for `n` elements of their types.
    #[allow(clippy::too_many_arguments)]
    pub unsafe fn residual_mix_raw(
        &self,
        x: *const u8,
        f: *const u8,
        out: *mut u8,
        io_type: DType,
        n: usize,
        out_fp8: *mut u8,
        fp8_type: DType,
        params: &MixParams,
    ) -> Result<(), Error> {
        let op = MixOp::new(
            x as usize,
            f as usize,
            out as usize,
            io_type,
            n,
            out_fp8 as usize,
            fp8_type,
            params,
        )?;
        // SAFETY: the descriptor was validated; buffer validity is the caller's contract.
        unsafe { self.run_mix(&op) }
    }

    /// Runs a validated residual mix.
    ///
    /// # Safety
    /// The buffers of `op` are valid for `op.n` elements.
    pub(crate) unsafe fn run_mix(&self, op: &MixOp) -> Result<(), Error> {
        if op.n == 0 {
            return Ok(());
        }
        let (n, io_type, fp8_type, params) = (op.n, op.io_type, op.fp8_type, &op.params);
        let (a, b) = op.coefficients;
        let bytes = op.x.bytes;
        let (x, f, o, q) = (op.x.addr, op.f.addr, op.out.addr, op.q.addr);
        let k = self.backend().kernels()?;
        // Inputs and outputs larger than the last-level cache: stream the outputs.
        let stream = bytes.saturating_mul(3) >= STREAM_MIN_BYTES;
        let cast = CastParams {
            scale: 1.0,
            rounding: params.rounding,
            seed: params.seed,
        };
        self.run_ranges(n, BLOCK, 1, PIECES_PER_THREAD, |start, end| {
            // SAFETY: [start, end) within the validated buffers.
            unsafe {
                mix_range(
                    k, io_type, a, b, x, f, o, q, fp8_type, &cast, stream, start, end,
                )
            };
            0
        });
        Ok(())
    }

    /// Backward residual mix on raw buffers. `grad_x` and `grad_f` may each be exactly
    /// `grad_out` but must not overlap each other; `grad_f_fp8` (nullable) must not overlap
    /// anything. Nothing is written when a check fails.
    ///
    /// # Safety
    /// Non-null buffers valid for `n` elements of their types.
    #[allow(clippy::too_many_arguments)]
    pub unsafe fn residual_mix_backward_raw(
        &self,
        grad_out: *const u8,
        grad_x: *mut u8,
        grad_f: *mut u8,
        io_type: DType,
        n: usize,
        accumulate: bool,
        grad_f_fp8: *mut u8,
        fp8_type: DType,
        params: &MixParams,
    ) -> Result<(), Error> {
        let op = MixBackwardOp::new(
            grad_out as usize,
            grad_x as usize,
            grad_f as usize,
            io_type,
            n,
            accumulate,
            grad_f_fp8 as usize,
            fp8_type,
            params,
        )?;
        // SAFETY: the descriptor was validated; buffer validity is the caller's contract.
        unsafe { self.run_mix_backward(&op) }
    }

    /// Runs a validated residual mix backward.
    ///
    /// # Safety
    /// The buffers of `op` are valid for `op.n` elements.
    pub(crate) unsafe fn run_mix_backward(&self, op: &MixBackwardOp) -> Result<(), Error> {
        if op.n == 0 {
            return Ok(());
        }
        let (n, io_type, fp8_type, params, accumulate) =
            (op.n, op.io_type, op.fp8_type, &op.params, op.accumulate);
        let (a, b) = op.coefficients;
        let bytes = op.grad_out.bytes;
        let (g, gx, gf, q) = (op.grad_out.addr, op.grad_x.addr, op.grad_f.addr, op.q.addr);
        let k = self.backend().kernels()?;
        // Inputs and outputs larger than the last-level cache: stream the outputs.
        let stream = bytes.saturating_mul(3) >= STREAM_MIN_BYTES;
        let cast = CastParams {
            scale: 1.0,
            rounding: params.rounding,
            seed: params.seed,
        };
        self.run_ranges(n, BLOCK, 1, PIECES_PER_THREAD, |start, end| {
            // SAFETY: [start, end) within the validated buffers.
            unsafe {
                mix_backward_range(
                    k, io_type, a, b, accumulate, g, gx, gf, q, fp8_type, &cast, stream, start, end,
                )
            };
            0
        });
        Ok(())
    }
}

/// The pieces of a range `[start, end)` for the fused kernels: at most [`STREAM_CHUNK`]
/// elements each. When streaming, the first piece ends where the output `base` (the address of
/// element 0; elements of `size` bytes) reaches a 64-byte boundary, so every later piece
/// starts on one; a piece is `(start, len, streamed)`. Outputs not aligned to their element
/// size are never streamed.
fn pieces(
    base: usize,
    size: usize,
    stream: bool,
    start: usize,
    end: usize,
) -> impl Iterator<Item = (usize, usize, bool)> {
    let stream = stream && base.is_multiple_of(size);
    let head = if stream {
        ((64 - (base + size * start) % 64) % 64 / size).min(end - start)
    } else {
        0
    };
    let mut at = start;
    core::iter::from_fn(move || {
        if at >= end {
            return None;
        }
        let piece = if at == start && head > 0 {
            (at, head, false)
        } else {
            (at, STREAM_CHUNK.min(end - at), stream)
        };
        at += piece.1;
        Some(piece)
    })
}

/// The encode parameters of the FP8 copy for the elements from `index` (any format when
/// there is no copy: the kernels then ignore them).
fn copy_args(fp8_type: DType, cast: &CastParams, index: u64) -> EncodeArgs {
    fp8_args(
        fp8_type.fp8().unwrap_or(crate::Fp8Format::E4M3),
        cast,
        index,
        false,
    )
}

/// One call of a fused kernel: the piece's first element, its length, where its FP8 codes go
/// (null when there is no copy), their encode parameters, and whether the piece streams.
type FusedCall<'a> = &'a dyn Fn(usize, usize, *mut u8, &EncodeArgs, bool);

/// Runs a fused mix kernel over elements `[start, end)` of a call whose streamed output starts
/// at address `out` (elements of `size` bytes): in pieces that start on its 64-byte boundaries
/// when `stream` (see [`pieces`]), split where the stochastic-rounding key changes. The FP8
/// codes (`q` = 0 when absent) go straight to `q`, or, for streamed pieces, to a staging area
/// that then leaves with streaming stores.
///
/// # Safety
/// `q` valid for `[start, end)` codes; `call` valid for every piece it is given.
#[allow(clippy::too_many_arguments)]
unsafe fn run_fused(
    k: &Kernels,
    out: usize,
    size: usize,
    q: usize,
    fp8_type: DType,
    cast: &CastParams,
    stream: bool,
    start: usize,
    end: usize,
    call: FusedCall<'_>,
) {
    // Only codes written for a piece are read back (by `stream_copy`): no clearing needed.
    let mut sq = core::mem::MaybeUninit::<[u8; STREAM_CHUNK]>::uninit();
    let mut any_streamed = false;
    for (p0, plen, streamed) in pieces(out, size, stream, start, end) {
        any_streamed |= streamed;
        let codes = match (q, streamed) {
            (0, _) => core::ptr::null_mut(),
            (_, true) => sq.as_mut_ptr().cast::<u8>(),
            (_, false) => (q as *mut u8).wrapping_add(p0),
        };
        split_at_key_boundaries(plen, p0 as u64, |done, len, index| {
            let i = p0 + done;
            // A piece split where the stochastic key changes (at a multiple of 2^32 elements)
            // streams on only from a 64-byte boundary.
            let aligned = (out + i * size).is_multiple_of(64);
            let args = copy_args(fp8_type, cast, index);
            let piece_codes = if codes.is_null() {
                codes
            } else {
                codes.wrapping_add(done)
            };
            call(i, len, piece_codes, &args, streamed && aligned);
            0
        });
        if streamed && q != 0 {
            // SAFETY: the piece's codes are staged; [p0, p0 + plen) lies within `q`.
            unsafe { (k.stream_copy)(sq.as_ptr().cast(), (q as *mut u8).add(p0), plen) };
        }
    }
    if any_streamed {
        crate::backend::store_fence();
    }
}

/// Forward mix of elements `[start, end)` with the fused kernel: one pass computes `out` and
/// the FP8 codes, streamed as [`run_fused`] says (aligned on `out`).
///
/// # Safety
/// Buffers (addresses; `q` = 0 when absent) valid and aliased as [`Exec::residual_mix_raw`] allows.
#[allow(clippy::too_many_arguments)]
unsafe fn mix_range(
    k: &Kernels,
    io_type: DType,
    a: f32,
    b: f32,
    x: usize,
    f: usize,
    out: usize,
    q: usize,
    fp8_type: DType,
    cast: &CastParams,
    stream: bool,
    start: usize,
    end: usize,
) {
    let size = io_type.size();
    let (x, f, o) = (x as *const u8, f as *const u8, out as *mut u8);
    let call = |i: usize, len: usize, codes: *mut u8, args: &EncodeArgs, streamed: bool| {
        // SAFETY: [i, i + len) lies within the buffers; `codes` holds len codes; a streamed
        // piece starts on a 64-byte boundary of `out`.
        unsafe {
            let (xi, fi, oi) = (x.add(i * size), f.add(i * size), o.add(i * size));
            (k.mix_fp8)(io_type, a, b, xi, fi, oi, codes, args, streamed, len)
        }
    };
    // SAFETY: forwarded contract.
    unsafe { run_fused(k, out, size, q, fp8_type, cast, stream, start, end, &call) }
}

/// Backward mix of elements `[start, end)` with the fused kernel, streamed as [`run_fused`]
/// says (aligned on `grad_x`).
///
/// # Safety
/// As [`Exec::residual_mix_backward_raw`] allows.
#[allow(clippy::too_many_arguments)]
unsafe fn mix_backward_range(
    k: &Kernels,
    io_type: DType,
    a: f32,
    b: f32,
    accumulate: bool,
    g: usize,
    gx: usize,
    gf: usize,
    q: usize,
    fp8_type: DType,
    cast: &CastParams,
    stream: bool,
    start: usize,
    end: usize,
) {
    let size = io_type.size();
    let (g, x, fo) = (g as *const u8, gx as *mut u8, gf as *mut u8);
    let call = |i: usize, len: usize, codes: *mut u8, args: &EncodeArgs, streamed: bool| {
        // SAFETY: [i, i + len) lies within the buffers; `codes` holds len codes; a streamed
        // piece starts on a 64-byte boundary of `grad_x`.
        unsafe {
            let (gi, xi, fi) = (g.add(i * size), x.add(i * size), fo.add(i * size));
            (k.mix_backward_fp8)(
                io_type, a, b, accumulate, gi, xi, fi, codes, args, streamed, len,
            )
        }
    };
    // SAFETY: forwarded contract.
    unsafe { run_fused(k, gx, size, q, fp8_type, cast, stream, start, end, &call) }
}

#[cfg(all(test, feature = "std"))]
mod tests {
    use super::*;
    use std::cell::RefCell;

    /// The pieces handed to the fused kernels cover the range once, in order, and only those
    /// that start on a 64-byte boundary of the output stream, also where a piece is split at a
    /// 2^32 element boundary (where the stochastic key changes). No memory is touched: the
    /// kernel call is recorded.
    #[test]
    fn streamed_pieces_start_aligned_across_key_boundaries() {
        let k = &crate::backend::scalar::KERNELS;
        for (out, size) in [(16usize, 4usize), (64, 4), (6, 2), (1, 4), (0x1000, 2)] {
            let start = (1usize << 32) - 5000 - 3;
            let end = (1usize << 32) + 9001;
            let calls = RefCell::new(Vec::new());
            let call = |i: usize, len: usize, codes: *mut u8, _: &EncodeArgs, streamed: bool| {
                assert!(codes.is_null());
                calls.borrow_mut().push((i, len, streamed));
            };
            let cast = CastParams::default();
            // SAFETY: no codes (q = 0) and the recording call touches no memory.
            unsafe { run_fused(k, out, size, 0, DType::E4M3, &cast, true, start, end, &call) };
            let calls = calls.into_inner();
            let mut at = start;
            for &(i, len, streamed) in &calls {
                assert_eq!(i, at, "pieces cover the range in order");
                assert!(len > 0 && len <= STREAM_CHUNK);
                assert!(
                    i >> 32 == (i + len - 1) >> 32,
                    "a piece never crosses a key boundary"
                );
                if streamed {
                    assert_eq!((out + i * size) % 64, 0, "streamed piece at {i} unaligned");
                }
                at += len;
            }
            assert_eq!(at, end);
            // Streaming is used wherever the output can be aligned at all.
            assert_eq!(calls.iter().any(|c| c.2), out % size == 0);
        }
    }
}
