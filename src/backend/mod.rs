//! Back ends: one table of elementwise kernels per instruction set, chosen at run time.
//!
//! Every table computes exactly what [`scalar`] computes, bit for bit; the drivers in
//! [`crate::cast`](mod@crate::cast) and [`crate::residual`] split work into blocks and call these kernels.

use crate::dtype::DType;
use crate::error::Error;
use crate::fp8::Fp8Format;
use crate::rng::StreamKey;

pub mod scalar;

#[cfg(target_arch = "x86_64")]
pub mod avx512;

#[cfg(target_arch = "aarch64")]
pub mod neon;

/// A SIMD back end.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Backend {
    /// Portable scalar code: the reference.
    Scalar,
    /// x86-64 AVX-512 (F, BW, VL; VBMI and BF16 are used when present).
    Avx512,
    /// AArch64 Advanced SIMD.
    Neon,
}

impl Backend {
    /// All back ends, in order of preference (last is the fallback).
    pub const ALL: [Backend; 3] = [Backend::Avx512, Backend::Neon, Backend::Scalar];

    /// Lower-case name, as accepted by `UNITFP8_BACKEND`: `"scalar"`, `"avx512"`, `"neon"`.
    pub const fn name(self) -> &'static str {
        match self {
            Backend::Scalar => "scalar",
            Backend::Avx512 => "avx512",
            Backend::Neon => "neon",
        }
    }

    /// Parses a name as returned by [`Backend::name`].
    pub fn from_name(name: &str) -> Option<Backend> {
        Backend::ALL.into_iter().find(|b| b.name() == name)
    }

    /// Whether this CPU (and this build) can run the back end. With `std` this is a runtime
    /// check; without it, the compile-time target features decide.
    pub fn is_available(self) -> bool {
        match self {
            Backend::Scalar => true,
            Backend::Avx512 => crate::cpu::avx512(),
            Backend::Neon => crate::cpu::neon(),
        }
    }

    /// The fastest available back end.
    pub fn best() -> Backend {
        Backend::ALL
            .into_iter()
            .find(|b| b.is_available())
            .unwrap_or(Backend::Scalar)
    }

    /// The kernel table, or [`Status::Unsupported`](crate::error::Status::Unsupported) when the back end is not available.
    pub fn kernels(self) -> Result<&'static Kernels, Error> {
        let unavailable = || {
            Error::unsupported(
                "back end {} is not available on this CPU",
                &[self.name().into()],
            )
        };
        if !self.is_available() {
            return Err(unavailable());
        }
        match self {
            Backend::Scalar => Ok(&scalar::KERNELS),
            #[cfg(target_arch = "x86_64")]
            Backend::Avx512 => Ok(avx512::kernels()),
            #[cfg(target_arch = "aarch64")]
            Backend::Neon => Ok(&neon::KERNELS),
            #[allow(unreachable_patterns)]
            _ => Err(unavailable()),
        }
    }
}

/// Defines `mix_fp8` and `mix_backward_fp8` ([`Kernels::mix_fp8`],
/// [`Kernels::mix_backward_fp8`]) in the invoking back-end module from its own conversions,
/// `mix`, `mix_backward` and `f32_to_fp8`: per chunk, widen the inputs, mix, narrow the outputs,
/// then encode the stored values (plain stores only).
macro_rules! fused_mix_by_composition {
    () => {
        /// Elements per chunk of the composed fused mixes (f32 staging on the stack).
        const FUSED_CHUNK: usize = 256;

        /// `n <= FUSED_CHUNK` elements of `io` at `src` as f32 in `buf`.
        ///
        /// # Safety
        /// `src` valid for `n` elements of `io`.
        unsafe fn fused_widen(io: DType, src: *const u8, buf: &mut [f32; FUSED_CHUNK], n: usize) {
            // SAFETY: per the contract; buf holds FUSED_CHUNK >= n.
            unsafe {
                match io {
                    DType::BF16 => bf16_to_f32(src.cast(), buf.as_mut_ptr(), n),
                    DType::F16 => f16_to_f32(src.cast(), buf.as_mut_ptr(), n),
                    _ => core::ptr::copy_nonoverlapping(src.cast::<f32>(), buf.as_mut_ptr(), n),
                }
            }
        }

        /// Stores `n` f32 of `buf` as `io` at `dst` (bf16/f16 round to nearest even, no
        /// saturation), then reads the stored values back into `buf` as f32.
        ///
        /// # Safety
        /// `dst` valid for `n` elements of `io`.
        unsafe fn fused_store(io: DType, buf: &mut [f32; FUSED_CHUNK], dst: *mut u8, n: usize) {
            // SAFETY: per the contract; buf holds FUSED_CHUNK >= n.
            unsafe {
                match io {
                    DType::BF16 => {
                        f32_to_bf16(1.0, false, buf.as_ptr(), dst.cast(), n);
                    }
                    DType::F16 => {
                        f32_to_f16(1.0, false, buf.as_ptr(), dst.cast(), n);
                    }
                    _ => core::ptr::copy_nonoverlapping(buf.as_ptr(), dst.cast::<f32>(), n),
                }
                fused_widen(io, dst, buf, n);
            }
        }

        /// See [`Kernels::mix_fp8`]: per chunk, widen, `mix`, narrow, then `f32_to_fp8` on
        /// the stored values.
        ///
        /// # Safety
        /// As in the [`Kernels`] contract.
        #[allow(clippy::too_many_arguments)]
        unsafe fn mix_fp8(
            io: DType,
            a: f32,
            b: f32,
            x: *const u8,
            f: *const u8,
            out: *mut u8,
            codes: *mut u8,
            args: &EncodeArgs,
            _stream: bool,
            n: usize,
        ) {
            let size = io.size();
            let (mut bx, mut bf) = ([0f32; FUSED_CHUNK], [0f32; FUSED_CHUNK]);
            let mut i = 0;
            while i < n {
                let len = FUSED_CHUNK.min(n - i);
                // SAFETY: [i, i + len) is in bounds (contract); both inputs of the chunk are
                // read before its output (which may be one of them) is written.
                unsafe {
                    fused_widen(io, x.add(i * size), &mut bx, len);
                    fused_widen(io, f.add(i * size), &mut bf, len);
                    mix(a, b, bx.as_ptr(), bf.as_ptr(), bx.as_mut_ptr(), len);
                    fused_store(io, &mut bx, out.add(i * size), len);
                    if !codes.is_null() {
                        let piece = EncodeArgs {
                            index_lo: args.index_lo.wrapping_add(i as u32),
                            ..*args
                        };
                        f32_to_fp8(&piece, bx.as_ptr(), codes.add(i), len);
                    }
                }
                i += len;
            }
        }

        /// See [`Kernels::mix_backward_fp8`]: per chunk, widen, `mix_backward`, narrow, then
        /// `f32_to_fp8` on the stored `gf`.
        ///
        /// # Safety
        /// As in the [`Kernels`] contract.
        #[allow(clippy::too_many_arguments)]
        unsafe fn mix_backward_fp8(
            io: DType,
            a: f32,
            b: f32,
            accumulate: bool,
            g: *const u8,
            gx: *mut u8,
            gf: *mut u8,
            codes: *mut u8,
            args: &EncodeArgs,
            _stream: bool,
            n: usize,
        ) {
            let size = io.size();
            let (mut bg, mut bx, mut bf) = (
                [0f32; FUSED_CHUNK],
                [0f32; FUSED_CHUNK],
                [0f32; FUSED_CHUNK],
            );
            let mut i = 0;
            while i < n {
                let len = FUSED_CHUNK.min(n - i);
                // SAFETY: [i, i + len) is in bounds (contract); the chunk of `g` (and of `gx`
                // when accumulating) is read before its outputs (which may alias `g`) are
                // written.
                unsafe {
                    fused_widen(io, g.add(i * size), &mut bg, len);
                    if accumulate {
                        fused_widen(io, gx.add(i * size), &mut bx, len);
                    }
                    mix_backward(
                        a,
                        b,
                        accumulate,
                        bg.as_ptr(),
                        bx.as_mut_ptr(),
                        bf.as_mut_ptr(),
                        len,
                    );
                    fused_store(io, &mut bx, gx.add(i * size), len);
                    fused_store(io, &mut bf, gf.add(i * size), len);
                    if !codes.is_null() {
                        let piece = EncodeArgs {
                            index_lo: args.index_lo.wrapping_add(i as u32),
                            ..*args
                        };
                        f32_to_fp8(&piece, bf.as_ptr(), codes.add(i), len);
                    }
                }
                i += len;
            }
        }
    };
}
pub(crate) use fused_mix_by_composition;

/// Parameters of an f32 → FP8 encode over one block of elements.
#[derive(Clone, Copy, Debug)]
pub struct EncodeArgs {
    /// Target format.
    pub format: Fp8Format,
    /// Multiplier applied (as an f32 multiply) before rounding.
    pub scale: f32,
    /// Rounding mode.
    pub rounding: crate::dtype::Rounding,
    /// Stochastic-rounding keys for the high half of the element indices of this block.
    pub key: StreamKey,
    /// Low 32 bits of the index of the block's first element; the block never wraps them.
    pub index_lo: u32,
    /// The destination may be written with streaming stores (outputs larger than the caches;
    /// the caller ends a run of calls with [`store_fence`]). Back ends may ignore it.
    pub stream: bool,
}

/// The signature of [`Kernels::mix_fp8`].
pub type MixFp8Fn = unsafe fn(
    io: DType,
    a: f32,
    b: f32,
    x: *const u8,
    f: *const u8,
    out: *mut u8,
    codes: *mut u8,
    args: &EncodeArgs,
    stream: bool,
    n: usize,
);

/// The signature of [`Kernels::mix_backward_fp8`].
pub type MixBackwardFp8Fn = unsafe fn(
    io: DType,
    a: f32,
    b: f32,
    accumulate: bool,
    g: *const u8,
    gx: *mut u8,
    gf: *mut u8,
    codes: *mut u8,
    args: &EncodeArgs,
    stream: bool,
    n: usize,
);

/// The elementwise kernels of one back end.
///
/// Safety contract for every entry: pointers are valid for `n` elements (reads or writes as the
/// role says), need no particular alignment, and input/output ranges either coincide exactly
/// (where an entry says so) or do not overlap. Functions returning `u32` return the "amax bits":
/// the maximum over the block of `src[i].to_bits() & 0x7FFF_FFFF` (so NaN beats everything), or 0
/// for `n = 0`, computed on the input before scaling.
pub struct Kernels {
    /// bf16 bits → f32, exact.
    pub bf16_to_f32: unsafe fn(src: *const u16, dst: *mut f32, n: usize),
    /// f16 bits → f32, exact; a NaN keeps its sign and payload (shifted) and is made quiet, as
    /// `vcvtph2ps` does.
    pub f16_to_f32: unsafe fn(src: *const u16, dst: *mut f32, n: usize),
    /// FP8 codes → f32, exact ([`Fp8Format::decode`]).
    pub fp8_to_f32: unsafe fn(format: Fp8Format, src: *const u8, dst: *mut f32, n: usize),
    /// `dst[i] = encode(src[i] · scale)` ([`Fp8Format::encode`]; stochastic bits from
    /// `args.key.bits(args.index_lo + i)`). Returns the amax bits.
    pub f32_to_fp8: unsafe fn(args: &EncodeArgs, src: *const f32, dst: *mut u8, n: usize) -> u32,
    /// bf16 bits → FP8: exactly [`Kernels::f32_to_fp8`] applied to the exactly widened values
    /// (`f32::from_bits((src[i] as u32) << 16)`): the same f32 multiply by `args.scale`, the
    /// same rounding (stochastic bits from `args.key.bits(args.index_lo + i)`), and the same
    /// amax bits, the maximum of `widened(src[i]).to_bits() & 0x7FFF_FFFF` (so `(max |bits|
    /// & 0x7FFF) << 16`). bf16 denormals are ordinary inputs (they round to ±0 in both formats,
    /// but count in amax).
    pub bf16_to_fp8: unsafe fn(args: &EncodeArgs, src: *const u16, dst: *mut u8, n: usize) -> u32,
    /// FP8 codes → bf16 bits, exact (every FP8 value is a bf16 value): the high half of the
    /// [`Fp8Format::decode`] bits, i.e. what [`crate::fp8::f32_to_bf16_bits`] gives for the
    /// decoded f32 (NaN codes → `sign | 0x7FC0`, E5M2 ±Inf → `sign | 0x7F80`).
    pub fp8_to_bf16: unsafe fn(format: Fp8Format, src: *const u8, dst: *mut u16, n: usize),
    /// `dst[i] = bf16(src[i] · scale)` ([`crate::fp8::f32_to_bf16_bits`]). Returns the amax bits.
    pub f32_to_bf16:
        unsafe fn(scale: f32, saturate: bool, src: *const f32, dst: *mut u16, n: usize) -> u32,
    /// `dst[i] = f16(src[i] · scale)` ([`crate::fp8::f32_to_f16_bits`]). Returns the amax bits.
    pub f32_to_f16:
        unsafe fn(scale: f32, saturate: bool, src: *const f32, dst: *mut u16, n: usize) -> u32,
    /// `dst[i] = src[i] · scale`, clipped to ±f32::MAX when `saturate` (NaN stays NaN, as
    /// produced by the multiply). `dst` may equal `src`. Returns the amax bits.
    pub f32_to_f32:
        unsafe fn(scale: f32, saturate: bool, src: *const f32, dst: *mut f32, n: usize) -> u32,
    /// `out[i] = a·x[i] + b·f[i]`: both products rounded to f32, then the sum (no FMA).
    /// `out` may equal `x` or `f`.
    pub mix: unsafe fn(a: f32, b: f32, x: *const f32, f: *const f32, out: *mut f32, n: usize),
    /// Transposes a `rows × cols` byte matrix stored at `src` with row stride `ld_src`:
    /// `dst[c·ld_dst + r] = src[r·ld_src + c]`. Reads and writes nothing else. With `stream`
    /// (outputs too large for the caches) it may use streaming stores, and the caller ends a
    /// run of calls with [`store_fence`]; without, outputs stay in cache.
    pub transpose_u8: unsafe fn(
        src: *const u8,
        ld_src: usize,
        rows: usize,
        cols: usize,
        dst: *mut u8,
        ld_dst: usize,
        stream: bool,
    ),
    /// Copies `bytes` bytes from `src` to `dst` (no overlap), with non-temporal (streaming)
    /// stores where the back end has them: for outputs too large for the caches, which then
    /// need no read-for-ownership. The caller ends a run of these copies with [`store_fence`].
    pub stream_copy: unsafe fn(src: *const u8, dst: *mut u8, bytes: usize),
    /// `gx[i] = a·g[i]` (or `gx[i] + a·g[i]` when `accumulate`, product rounded first) and
    /// `gf[i] = b·g[i]`. `gx` or `gf` may equal `g`; `gx` and `gf` never overlap.
    pub mix_backward: unsafe fn(
        a: f32,
        b: f32,
        accumulate: bool,
        g: *const f32,
        gx: *mut f32,
        gf: *mut f32,
        n: usize,
    ),
    /// The residual mix over `io` elements (f32, bf16 or f16; 16-bit inputs widen exactly,
    /// outputs round to nearest even without saturation, as the drivers define it) with the FP8
    /// copy fused: when `codes` is non-null it also receives the FP8 codes of the stored `out`
    /// (exactly [`Kernels::f32_to_fp8`] with `args` on the stored values; no amax). With
    /// `stream`, `out` is 64-byte aligned and may be written with streaming stores (the caller
    /// ends a run of calls with [`store_fence`]); `codes` gets plain stores. `out` may equal
    /// `x` or `f`; `codes` overlaps nothing.
    pub mix_fp8: MixFp8Fn,
    /// The backward residual mix over `io` elements with the FP8 copy of the stored `gf`
    /// fused, as in [`Kernels::mix_fp8`]. With `stream`, `gx` is 64-byte aligned; `gx` and `gf`
    /// may be written with streaming stores.
    pub mix_backward_fp8: MixBackwardFp8Fn,
    /// Whether the kernels with f32 sources (`f32_to_fp8`, `f32_to_bf16`, `f32_to_f16`,
    /// `f32_to_f32`) prefetch their own sources ahead; otherwise the drivers prefetch for them.
    pub prefetches_f32_sources: bool,
}

/// Orders earlier non-temporal stores (from [`Kernels::stream_copy`]) before later stores, so
/// the data is visible to other threads once the call returns. A no-op where there are none.
#[inline(always)]
pub fn store_fence() {
    #[cfg(all(target_arch = "x86_64", target_feature = "sse"))]
    // SAFETY: sfence has no preconditions.
    unsafe {
        core::arch::x86_64::_mm_sfence()
    };
}
