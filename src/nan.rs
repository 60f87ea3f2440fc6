//! The NaN rule for results of arithmetic, defined once for every back end.
//!
//! A cast computes nothing: it keeps a NaN's sign (and gives the destination's canonical NaN).
//! An operation that computes — the residual mixes and the GEMM — stores **every NaN it
//! produces as the canonical positive quiet NaN**: f32 `0x7FC00000`, bf16 `0x7FC0`, f16
//! `0x7E00`, E4M3 `0x7F`, E5M2 `0x7E`. Which NaN IEEE arithmetic returns when two NaNs meet
//! (or how a GPU builds a NaN) differs between instruction sets; this rule makes the bits the
//! same on every back end, CUDA included. Kernels apply it to their f32 results before
//! rounding them to the output type.

/// The bits of the canonical positive quiet f32 NaN.
pub const CANONICAL_NAN_BITS: u32 = 0x7FC0_0000;

/// `x`, or the canonical positive quiet NaN when `x` is a NaN.
#[inline(always)]
pub fn canonical(x: f32) -> f32 {
    if x.is_nan() {
        f32::from_bits(CANONICAL_NAN_BITS)
    } else {
        x
    }
}
