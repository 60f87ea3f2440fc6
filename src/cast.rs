//! Casts between f32, bf16, f16, E4M3 and E5M2, with a static scale, three rounding modes and an
//! optional amax; and the fused cast-transpose that μS needs for W and Wᵀ.
//!
//! Semantics of one element: `dst = round(f32(src) · scale)`, where `f32(src)` is exact, the
//! multiply is one f32 multiply (exact for power-of-two scales without over/underflow, and for
//! 1.0), and `round` is the [`Rounding`](crate::Rounding) mode applied to the destination type. f32
//! destinations are never clipped (`dst = src · scale`, IEEE), so decoding keeps ±Inf whatever the
//! mode; stochastic rounding needs an FP8 destination. amax is `max |src|` before scaling, NaN
//! when any element is NaN.

use crate::backend::{EncodeArgs, Kernels};
use crate::dtype::{DType, Element};
#[allow(unused_imports)] // Status: linked from the docs
use crate::error::Status;
use crate::error::{Error, require};
use crate::exec::Exec;
use crate::op::{CastOp, CastTransposeOp, matrix_extent};
use crate::rng::StreamKey;

/// Elements processed per block (the f32 staging buffer lives on the stack).
pub(crate) const BLOCK: usize = 1024;
/// Fewest elements per thread worth a thread.
pub(crate) const PER_THREAD_MIN: usize = 1 << 17;
/// Pieces per thread the streaming elementwise drivers (casts, residual mixes) cut a call into:
/// threads claim them one at a time, so a worker that wakes late takes what is left instead of a
/// whole share. (Cast-transpose keeps one piece per thread: eight pieces on two threads measured
/// 80–84% of copy bandwidth at DRAM size instead of 94–98%.)
pub(crate) const PIECES_PER_THREAD: usize = 4;
/// Calls that move at least this many bytes (inputs + outputs) write their outputs with
/// streaming stores (widening casts, residual mixes, cast-transpose): they are larger than the
/// last-level cache, and streaming measured about 10% faster on Zen 4. Smaller calls leave
/// their outputs in cache for the next kernel.
pub(crate) const STREAM_MIN_BYTES: usize = 48 << 20;

pub use crate::op::CastParams;

/// Casts `src` into `dst` (same length, else [`Status::InvalidArgument`]) with the global
/// [`Exec`]. Errors: a non-finite scale ([`Status::InvalidArgument`]), stochastic rounding to a
/// non-FP8 type ([`Status::Unsupported`]).
pub fn cast<S: Element, D: Element>(
    src: &[S],
    dst: &mut [D],
    params: &CastParams,
) -> Result<(), Error> {
    Exec::global().cast(src, dst, params).map(|_| ())
}

/// As [`cast`], and returns amax = max |src| (NaN if any element is NaN; 0 for empty input).
pub fn cast_amax<S: Element, D: Element>(
    src: &[S],
    dst: &mut [D],
    params: &CastParams,
) -> Result<f32, Error> {
    Exec::global().cast(src, dst, params)
}

/// Casts a row-major `[rows, cols]` matrix with leading dimension `ld_src` (elements between
/// row starts) into `dst` (`[rows, cols]`, leading dimension `ld_dst`) and/or its transpose
/// `dst_t` (`[cols, rows]`, leading dimension `ld_dst_t`), in one pass, with the global
/// [`Exec`]. Returns amax over the matrix. Stochastic rounding keys element `(r, c)` by index
/// `r · cols + c`, so `dst_t` is exactly the transpose of `dst`.
///
/// Errors: [`Status::InvalidArgument`] when a leading dimension is smaller than the row length
/// it holds or a slice is too short for its shape; as [`cast`] otherwise.
///
/// Memory: with the `std` feature, FP8 outputs with a transposed copy and up to 8192 columns stage
/// 64 whole rows (at most 512 KiB) on the heap per thread; without `std` nothing is allocated
/// (64 KiB of stack buffers).
#[allow(clippy::too_many_arguments)]
pub fn cast_transpose<S: Element, D: Element>(
    src: &[S],
    rows: usize,
    cols: usize,
    ld_src: usize,
    dst: Option<&mut [D]>,
    ld_dst: usize,
    dst_t: Option<&mut [D]>,
    ld_dst_t: usize,
    params: &CastParams,
) -> Result<f32, Error> {
    Exec::global().cast_transpose(
        src, rows, cols, ld_src, dst, ld_dst, dst_t, ld_dst_t, params,
    )
}

impl Exec {
    /// [`cast_amax`] with these settings.
    pub fn cast<S: Element, D: Element>(
        &self,
        src: &[S],
        dst: &mut [D],
        params: &CastParams,
    ) -> Result<f32, Error> {
        require(
            src.len() == dst.len(),
            "dst has {} elements, src has {}",
            &[dst.len().into(), src.len().into()],
        )?;
        // SAFETY: the slices are valid for their lengths and cannot overlap (borrow rules).
        unsafe {
            self.cast_raw(
                src.as_ptr().cast(),
                S::DTYPE,
                dst.as_mut_ptr().cast(),
                D::DTYPE,
                src.len(),
                params,
            )
        }
    }

    /// [`cast_transpose`] with these settings.
    #[allow(clippy::too_many_arguments)]
    pub fn cast_transpose<S: Element, D: Element>(
        &self,
        src: &[S],
        rows: usize,
        cols: usize,
        ld_src: usize,
        dst: Option<&mut [D]>,
        ld_dst: usize,
        dst_t: Option<&mut [D]>,
        ld_dst_t: usize,
        params: &CastParams,
    ) -> Result<f32, Error> {
        // The shapes are checked by the descriptor (in `cast_transpose_raw`); here only that
        // each slice holds its shape.
        let holds = |arg: &'static str, len: usize, r: usize, c: usize, ld: usize| {
            let need = matrix_extent(r, c, ld).unwrap_or(usize::MAX);
            require(
                ld < c || len >= need,
                "{} has {} elements, its shape needs {}",
                &[arg.into(), len.into(), need.into()],
            )
        };
        holds("src", src.len(), rows, cols, ld_src)?;
        if let Some(d) = &dst {
            holds("dst", d.len(), rows, cols, ld_dst)?;
        }
        if let Some(d) = &dst_t {
            holds("dst_t", d.len(), cols, rows, ld_dst_t)?;
        }
        let dst = dst.map_or(core::ptr::null_mut(), |d| d.as_mut_ptr().cast());
        let dst_t = dst_t.map_or(core::ptr::null_mut(), |d| d.as_mut_ptr().cast());
        // SAFETY: each slice holds its shape when the shape is valid (checked above), which the
        // raw method checks before touching memory; distinct borrows cannot overlap.
        unsafe {
            self.cast_transpose_raw(
                src.as_ptr().cast(),
                S::DTYPE,
                rows,
                cols,
                ld_src,
                dst,
                ld_dst,
                dst_t,
                ld_dst_t,
                D::DTYPE,
                params,
            )
        }
    }

    /// Cast on raw buffers; returns amax. `dst` may coincide exactly with `src` when both
    /// types have the same size; any other overlap is [`Status::Overlap`]. Null pointers with
    /// `n > 0` are [`Status::NullPointer`]. Nothing is written when an argument check fails
    /// (the rules: [`crate::op`]).
    ///
    /// # Safety
    /// `src` must be readable and `dst` writable for `n` elements of their types.
    pub unsafe fn cast_raw(
        &self,
        src: *const u8,
        src_type: DType,
        dst: *mut u8,
        dst_type: DType,
        n: usize,
        params: &CastParams,
    ) -> Result<f32, Error> {
        let op = CastOp::new(src as usize, src_type, dst as usize, dst_type, n, params, 0)?;
        // SAFETY: the descriptor was validated; buffer validity is the caller's contract.
        unsafe { self.run_cast(&op) }
    }

    /// Runs a validated cast; returns amax (0 when empty).
    ///
    /// # Safety
    /// The buffers of `op` are valid for its sizes.
    pub(crate) unsafe fn run_cast(&self, op: &CastOp) -> Result<f32, Error> {
        if op.n == 0 {
            return Ok(0.0);
        }
        let k = self.backend().kernels()?;
        let (src_type, dst_type, params) = (op.src_type, op.dst_type, &op.params);
        let (src_bytes, dst_bytes) = (op.src.bytes, op.dst.bytes);
        // Large widening casts stream their outputs (see `STREAM_CHUNK`): measured on the
        // development machine, E4M3 -> f32 went from ~75% to ~95% of copy bandwidth, while
        // narrowing casts (f32 -> E4M3, f32 -> bf16), whose reads dominate, lost 5-10%.
        let large = src_bytes.saturating_add(dst_bytes) >= STREAM_MIN_BYTES;
        let stream = large && dst_type.size() >= src_type.size();
        // Large narrowing casts to FP8 let the encoders stream their codes straight out (no
        // read-for-ownership of the destination): measured at 2^26 f32 -> E4M3, one thread
        // 80-88% -> 100-111% and two threads 81-102% -> 109-123% of copy bandwidth.
        let stream_fp8 = large && !stream && dst_type.fp8().is_some();
        let (src, dst) = (op.src.addr, op.dst.addr);
        let work = |start: usize, end: usize| {
            // SAFETY: [start, end) lies within [0, n), valid per the caller's contract.
            unsafe {
                cast_range(
                    k,
                    src as *const u8,
                    src_type,
                    dst as *mut u8,
                    dst_type,
                    params,
                    stream,
                    stream_fp8,
                    start,
                    end,
                )
            }
        };
        let amax = self.run_ranges(op.n, BLOCK, 1, PIECES_PER_THREAD, work);
        Ok(f32::from_bits(amax))
    }

    /// Cast-transpose on raw buffers (see [`cast_transpose`]); `dst` and/or `dst_t` may be null
    /// (the leading dimension of a null output is ignored). The bounding byte ranges of the
    /// source and the outputs must not overlap ([`Status::Overlap`]). Leading dimensions below
    /// the row length they hold, or shapes whose byte size overflows, are
    /// [`Status::InvalidArgument`]. Returns amax.
    ///
    /// # Safety
    /// Each non-null buffer must be valid for its shape and leading dimension.
    #[allow(clippy::too_many_arguments)]
    pub unsafe fn cast_transpose_raw(
        &self,
        src: *const u8,
        src_type: DType,
        rows: usize,
        cols: usize,
        ld_src: usize,
        dst: *mut u8,
        ld_dst: usize,
        dst_t: *mut u8,
        ld_dst_t: usize,
        dst_type: DType,
        params: &CastParams,
    ) -> Result<f32, Error> {
        let op = CastTransposeOp::new(
            src as usize,
            src_type,
            rows,
            cols,
            ld_src,
            dst as usize,
            ld_dst,
            dst_t as usize,
            ld_dst_t,
            dst_type,
            params,
            0,
        )?;
        // SAFETY: the descriptor was validated; buffer validity is the caller's contract.
        unsafe { self.run_cast_transpose(&op) }
    }

    /// Runs a validated cast-transpose; returns amax (0 when empty).
    ///
    /// # Safety
    /// The buffers of `op` are valid for its shapes.
    pub(crate) unsafe fn run_cast_transpose(&self, op: &CastTransposeOp) -> Result<f32, Error> {
        if op.is_empty() {
            return Ok(0.0);
        }
        let k = self.backend().kernels()?;
        let (rows, cols) = (op.rows, op.cols);
        let geometry = TransposeGeometry {
            cols,
            ld_src: op.ld_src,
            ld_dst: op.ld_dst,
            ld_dst_t: op.ld_dst_t,
            src_type: op.src_type,
            dst_type: op.dst_type,
            stream: op
                .src
                .bytes
                .saturating_add(op.dst.bytes)
                .saturating_add(op.dst_t.bytes)
                >= TRANSPOSE_STREAM_MIN_BYTES,
        };
        let (s, d, t) = (op.src.addr, op.dst.addr, op.dst_t.addr);
        let params = &op.params;
        let work = |start: usize, end: usize| {
            // SAFETY: rows [start, end) lie within the validated shapes.
            unsafe { cast_transpose_rows(k, &geometry, s, d, t, params, start, end) }
        };
        let grain = BAND_ROWS * (PER_THREAD_MIN / (cols * BAND_ROWS)).max(1);
        let amax = self.run_ranges(rows, grain, cols, 1, work);
        Ok(f32::from_bits(amax))
    }

    /// Runs `work` over `[0, n)` on up to `threads` threads, at least `PER_THREAD_MIN` elements
    /// each (an index standing for `unit` elements), cut into up to `pieces_per_thread` pieces
    /// per thread aligned to `grain`, and returns the maximum result.
    pub(crate) fn run_ranges<F>(
        &self,
        n: usize,
        grain: usize,
        unit: usize,
        pieces_per_thread: usize,
        work: F,
    ) -> u32
    where
        F: Fn(usize, usize) -> u32 + Sync,
    {
        #[cfg(feature = "std")]
        {
            let by_size = n.saturating_mul(unit) / PER_THREAD_MIN;
            let threads = self.threads().min(by_size).max(1);
            crate::parallel::max_over_ranges(n, grain, threads, pieces_per_thread, work)
        }
        #[cfg(not(feature = "std"))]
        {
            let _ = (grain, unit, pieces_per_thread);
            work(0, n)
        }
    }
}

/// Widens `n <= BLOCK` elements of `src_type` at `src` to f32, into `buf` unless the source is
/// already f32, and returns where the f32 values are.
///
/// # Safety
/// `src` valid for `n` elements.
pub(crate) unsafe fn widen_block(
    k: &Kernels,
    src_type: DType,
    src: *const u8,
    n: usize,
    buf: &mut [f32; BLOCK],
) -> *const f32 {
    debug_assert!(n <= BLOCK);
    let out = buf.as_mut_ptr();
    // SAFETY: src valid for n elements (caller); buf holds BLOCK >= n.
    unsafe {
        match src_type {
            DType::F32 => return src.cast(),
            DType::BF16 => (k.bf16_to_f32)(src.cast(), out, n),
            DType::F16 => (k.f16_to_f32)(src.cast(), out, n),
            DType::E4M3 | DType::E5M2 => (k.fp8_to_f32)(
                src_type.fp8().unwrap_or(crate::Fp8Format::E4M3),
                src,
                out,
                n,
            ),
        }
    }
    out
}

/// Calls `f(offset, len, index)` for consecutive pieces `[offset, offset + len)` of `[0, n)`
/// whose logical indices `index = index0 + offset ..` do not cross a multiple of 2^32 (each
/// kernel call sees one stochastic stream key); returns the maximum of the results.
#[inline(always)]
pub(crate) fn split_at_key_boundaries(
    n: usize,
    index0: u64,
    mut f: impl FnMut(usize, usize, u64) -> u32,
) -> u32 {
    let mut amax = 0;
    let mut done = 0;
    while done < n {
        let index = index0 + done as u64;
        let room = (1u64 << 32) - (index & 0xFFFF_FFFF);
        let len = ((n - done) as u64).min(room) as usize;
        amax = amax.max(f(done, len, index));
        done += len;
    }
    amax
}

/// The FP8 encode parameters of a piece starting at logical index `index` (which shares its
/// high 32 bits with the whole piece); `stream` lets the kernel use streaming stores.
pub(crate) fn fp8_args(
    format: crate::Fp8Format,
    params: &CastParams,
    index: u64,
    stream: bool,
) -> EncodeArgs {
    EncodeArgs {
        format,
        scale: params.scale,
        rounding: params.rounding,
        key: StreamKey::new(params.seed, (index >> 32) as u32),
        index_lo: index as u32,
        stream,
    }
}

/// Rounds `n` f32 values at `src` (logical indices `index0..index0 + n`) to `dst_type` at
/// `dst`, and returns their amax bits. Splits at 2^32 index boundaries so that each kernel call
/// sees one stochastic stream key. With `stream`, FP8 codes may leave through streaming stores
/// (the caller fences).
///
/// # Safety
/// `src` valid for `n` f32, `dst` for `n` elements of `dst_type`; exact aliasing only for f32.
#[allow(clippy::too_many_arguments)]
pub(crate) unsafe fn encode_block(
    k: &Kernels,
    dst_type: DType,
    params: &CastParams,
    src: *const f32,
    dst: *mut u8,
    n: usize,
    index0: u64,
    stream: bool,
) -> u32 {
    // f32 is the widest type: saturation clips only narrowing destinations.
    let saturate = params.rounding.saturates() && dst_type != DType::F32;
    split_at_key_boundaries(n, index0, |done, len, index| {
        // SAFETY: [done, done + len) is within the caller's n elements.
        unsafe {
            let (s, d) = (src.add(done), dst.add(done * dst_type.size()));
            match (dst_type, dst_type.fp8()) {
                (DType::F32, _) => (k.f32_to_f32)(params.scale, saturate, s, d.cast(), len),
                (DType::BF16, _) => (k.f32_to_bf16)(params.scale, saturate, s, d.cast(), len),
                (DType::F16, _) => (k.f32_to_f16)(params.scale, saturate, s, d.cast(), len),
                (_, Some(format)) => {
                    (k.f32_to_fp8)(&fp8_args(format, params, index, stream), s, d, len)
                }
                _ => unreachable!("every type is f32, bf16, f16 or FP8"),
            }
        }
    })
}

/// Rounds `n` bf16 values at `src` (logical indices `index0..index0 + n`) straight to FP8 at
/// `dst` with [`Kernels::bf16_to_fp8`] (no f32 staging); returns their amax bits. Splits as
/// [`encode_block`] does.
///
/// # Safety
/// `src` valid for `n` bf16 values, `dst` for `n` bytes; no overlap.
#[allow(clippy::too_many_arguments)]
unsafe fn encode_bf16_fp8_block(
    k: &Kernels,
    format: crate::Fp8Format,
    params: &CastParams,
    src: *const u16,
    dst: *mut u8,
    n: usize,
    index0: u64,
    stream: bool,
) -> u32 {
    split_at_key_boundaries(n, index0, |done, len, index| {
        // SAFETY: [done, done + len) is within the caller's n elements.
        unsafe {
            (k.bf16_to_fp8)(
                &fp8_args(format, params, index, stream),
                src.add(done),
                dst.add(done),
                len,
            )
        }
    })
}

/// Elements per streamed chunk: with streaming stores, outputs are staged in chunks of this
/// many elements (16 KiB of f32) and then leave with [`Kernels::stream_copy`]. 16 KiB measured
/// best on the development machine (8 KiB and 32 KiB were 15–25% slower).
pub(crate) const STREAM_CHUNK: usize = 4096;

/// An f32 block that is zeroed on first use (so calls that never need it skip the clearing).
pub(crate) struct LazyBlock {
    mem: core::mem::MaybeUninit<[f32; BLOCK]>,
    init: bool,
}

impl LazyBlock {
    /// An untouched block.
    pub(crate) fn new() -> LazyBlock {
        LazyBlock {
            mem: core::mem::MaybeUninit::uninit(),
            init: false,
        }
    }

    /// The block, zeroed the first time.
    #[inline(always)]
    pub(crate) fn get(&mut self) -> &mut [f32; BLOCK] {
        if !self.init {
            self.mem.write([0f32; BLOCK]);
            self.init = true;
        }
        // SAFETY: initialized above (now or by an earlier call).
        unsafe { self.mem.assume_init_mut() }
    }
}

/// A 64-byte-aligned staging buffer for streamed chunks (used only through raw pointers, so
/// that it needs no clearing).
#[repr(align(64))]
struct Staging(#[allow(dead_code)] [f32; STREAM_CHUNK]);

/// Casts elements `[start, end)`; returns their amax bits. With `stream`, outputs are staged
/// per [`STREAM_CHUNK`] and written with streaming stores; with `stream_fp8`, the FP8 encoders
/// write their codes with streaming stores themselves.
///
/// # Safety
/// Buffers valid for `end` elements of their types; `dst` equals `src` or does not overlap it.
#[allow(clippy::too_many_arguments)]
unsafe fn cast_range(
    k: &Kernels,
    src: *const u8,
    src_type: DType,
    dst: *mut u8,
    dst_type: DType,
    params: &CastParams,
    stream: bool,
    stream_fp8: bool,
    start: usize,
    end: usize,
) -> u32 {
    let (ss, ds) = (src_type.size(), dst_type.size());
    // Neither buffer is cleared up front: the direct paths of `cast_block` (bf16 <-> FP8) need
    // no f32 block, and staging is used only when streaming; zeroing 20 KiB per call measured
    // ~15% of a 4096-element bf16 -> E4M3 cast.
    let mut buf = LazyBlock::new();
    let mut staging = core::mem::MaybeUninit::<Staging>::uninit();
    // Streamed chunks fill the 16 KiB staging buffer whatever the output type.
    let chunk = if stream { STREAM_CHUNK * 4 / ds } else { BLOCK };
    // Sources narrower than f32 are prefetched further ahead (in blocks; 4 KiB of E4M3 or
    // 8 KiB of bf16): at 2^26 elements on one Zen 4 core, bf16 -> E4M3 went from ~87% to ~95%
    // of copy bandwidth and E4M3 -> bf16 from ~78% to ~92% (f32 sources keep 1 block, unless
    // the kernels prefetch them themselves).
    let ahead_blocks = match (ss, k.prefetches_f32_sources) {
        (4, true) => 0,
        (4, false) => PREFETCH_BLOCKS,
        _ => 4,
    };
    let mut amax = 0;
    let mut c = start;
    while c < end {
        let clen = chunk.min(end - c);
        // SAFETY: [c, c + clen) lies within the caller's buffers; the staging buffer holds
        // STREAM_CHUNK elements of any type.
        unsafe {
            // Only written chunks of the staging buffer are read back (by `stream_copy`).
            let out = if stream {
                staging.as_mut_ptr().cast::<u8>()
            } else {
                dst.add(c * ds)
            };
            let mut j = 0;
            while j < clen {
                let len = BLOCK.min(clen - j);
                let i = c + j;
                // Prefetch the next block's source (the hardware prefetcher alone leaves one
                // core short of its share of DRAM bandwidth on this kind of stream).
                if ahead_blocks > 0 {
                    let (ahead, ahead_len) = prefetch_window_blocks(i, end, ahead_blocks);
                    prefetch_next(src.wrapping_add(ahead * ss), ahead_len * ss);
                }
                let block_amax = cast_block(
                    k,
                    src.add(i * ss),
                    src_type,
                    out.add(j * ds),
                    dst_type,
                    params,
                    len,
                    i as u64,
                    &mut buf,
                    stream_fp8,
                );
                amax = amax.max(block_amax);
                j += len;
            }
            if stream {
                (k.stream_copy)(out, dst.add(c * ds), clen * ds);
            }
        }
        c += clen;
    }
    if stream || stream_fp8 {
        crate::backend::store_fence();
    }
    amax
}

/// Casts one block of `len <= BLOCK` elements (logical indices from `index0`) from `s` to `d`;
/// returns its amax bits.
///
/// # Safety
/// `s` valid for `len` elements of `src_type`, `d` for `len` of `dst_type`; they coincide or
/// do not overlap.
#[allow(clippy::too_many_arguments)]
#[inline(always)]
unsafe fn cast_block(
    k: &Kernels,
    s: *const u8,
    src_type: DType,
    d: *mut u8,
    dst_type: DType,
    params: &CastParams,
    len: usize,
    index0: u64,
    buf: &mut LazyBlock,
    stream_fp8: bool,
) -> u32 {
    // SAFETY: per the contract.
    unsafe {
        match (src_type, src_type.fp8(), dst_type, dst_type.fp8()) {
            // bf16 -> FP8 in one kernel (it widens in registers).
            (DType::BF16, _, _, Some(format)) => {
                return encode_bf16_fp8_block(
                    k,
                    format,
                    params,
                    s.cast(),
                    d,
                    len,
                    index0,
                    stream_fp8,
                );
            }
            // FP8 -> bf16 at scale 1 is exact; amax comes from the codes.
            (_, Some(format), DType::BF16, _) if params.scale == 1.0 => {
                (k.fp8_to_bf16)(format, s, d.cast(), len);
                let amax = fp8_amax_bits(format, s, len);
                // Saturation turns ±Inf (E5M2 only) into ±bf16::MAX, as `f32_to_bf16` does;
                // amax sees an Inf or NaN code whenever there is something to fix.
                if format == crate::Fp8Format::E5M2
                    && params.rounding.saturates()
                    && amax >= 0x7F80_0000
                {
                    saturate_bf16_infinities(d.cast(), len);
                }
                return amax;
            }
            _ => {}
        }
        if dst_type != DType::F32 || src_type == DType::F32 {
            let f = widen_block(k, src_type, s, len, buf.get());
            return encode_block(k, dst_type, params, f, d, len, index0, stream_fp8);
        }
        // Widen straight into the output, then scale it in place (only when needed for FP8).
        let o: *mut f32 = d.cast();
        match (src_type, src_type.fp8()) {
            (DType::BF16, _) => (k.bf16_to_f32)(s.cast(), o, len),
            (DType::F16, _) => (k.f16_to_f32)(s.cast(), o, len),
            (_, Some(format)) => {
                (k.fp8_to_f32)(format, s, o, len);
                if params.scale == 1.0 {
                    return fp8_amax_bits(format, s, len);
                }
            }
            _ => {}
        }
        (k.f32_to_f32)(params.scale, false, o, o, len)
    }
}

/// Replaces every ±Inf among `len` bf16 values at `p` with ±bf16::MAX (`sign | 0x7F7F`).
///
/// # Safety
/// `p` valid for reads and writes of `len` bf16 values.
unsafe fn saturate_bf16_infinities(p: *mut u16, len: usize) {
    // SAFETY: per the contract.
    let v = unsafe { core::slice::from_raw_parts_mut(p, len) };
    for x in v {
        if *x & 0x7FFF == 0x7F80 {
            *x = (*x & 0x8000) | 0x7F7F;
        }
    }
}

/// The amax bits of `len` FP8 codes: FP8 magnitudes order like their 7-bit codes (NaN codes
/// above Inf above the finite ones), so this is the decoded magnitude of the largest code, the
/// same value [`Kernels::f32_to_f32`] would report for the decoded block.
///
/// # Safety
/// `codes` valid for `len` bytes.
unsafe fn fp8_amax_bits(format: crate::Fp8Format, codes: *const u8, len: usize) -> u32 {
    // SAFETY: per the contract.
    let bytes = unsafe { core::slice::from_raw_parts(codes, len) };
    let top = bytes.iter().fold(0u8, |m, &b| m.max(b & 0x7F));
    format.decode(top).to_bits() & 0x7FFF_FFFF
}

/// How many blocks ahead of the current one the drivers prefetch their sources.
const PREFETCH_BLOCKS: usize = 1;

/// Cast-transposes that move at least this many bytes write their outputs with streaming
/// stores: lower than [`STREAM_MIN_BYTES`] because the transposed lines land scattered over the
/// whole output. Measured on one core, f32 → E4M3 with both outputs: 2048² 1.8 → 1.5 and
/// 4096² 1.6 → 1.2 cycles/element with streaming, 1024² (6 MiB) 0.65 → 0.75 (so not there).
const TRANSPOSE_STREAM_MIN_BYTES: usize = 16 << 20;

/// Rows per band when whole rows are staged on the heap (`std`, byte outputs).
const WIDE_ROWS: usize = 64;
/// Largest heap staging area (bytes): within a 1 MiB L2 cache.
const WIDE_MAX_BYTES: usize = 640 << 10;

/// Rows per cast-transpose band.
const BAND_ROWS: usize = 128;
/// Bytes of one band row in the staging buffer (the band is `BAND_ROWS × BAND_BYTES`, 32 KiB).
const BAND_BYTES: usize = 256;

struct TransposeGeometry {
    cols: usize,
    ld_src: usize,
    ld_dst: usize,
    ld_dst_t: usize,
    src_type: DType,
    dst_type: DType,
    /// Outputs larger than the caches: `dst` and `dst_t` are written with streaming stores.
    stream: bool,
}

/// Cast-transposes source rows `[r_start, r_end)`; returns their amax bits. Addresses are
/// passed as integers (0 = absent output) so the closure that calls this can cross threads.
///
/// Without `dst_t` each row is cast straight into `dst`. With it, bands of `BAND_ROWS` rows are
/// cast `BAND_BYTES / size` columns at a time into a staging buffer (copied to `dst` when
/// present), then transposed into `dst_t`: sources are read in long contiguous runs and each
/// transposed row receives `BAND_ROWS` contiguous elements. With `std` and byte outputs of
/// moderate width, whole rows are staged instead (`WIDE_ROWS` at a time).
///
/// # Safety
/// As [`Exec::cast_transpose_raw`], with validated geometry.
#[allow(clippy::too_many_arguments)]
unsafe fn cast_transpose_rows(
    k: &Kernels,
    g: &TransposeGeometry,
    src: usize,
    dst: usize,
    dst_t: usize,
    params: &CastParams,
    r_start: usize,
    r_end: usize,
) -> u32 {
    let (ss, ds) = (g.src_type.size(), g.dst_type.size());
    let stream = g.stream;
    let mut buf = LazyBlock::new();
    let mut amax = 0;
    if dst_t == 0 {
        let mut scratch = [0u8; BLOCK * 4];
        for row in r_start..r_end {
            let mut c0 = 0;
            while c0 < g.cols {
                let cw = BLOCK.min(g.cols - c0);
                // SAFETY: (row, c0..c0+cw) lies inside the validated shapes.
                unsafe {
                    let f = widen_block(
                        k,
                        g.src_type,
                        (src as *const u8).add((row * g.ld_src + c0) * ss),
                        cw,
                        buf.get(),
                    );
                    let index = (row * g.cols + c0) as u64;
                    // With no output at all (amax only) the values are encoded into scratch.
                    let out = if dst == 0 {
                        scratch.as_mut_ptr()
                    } else {
                        (dst as *mut u8).add((row * g.ld_dst + c0) * ds)
                    };
                    amax = amax.max(encode_block(
                        k, g.dst_type, params, f, out, cw, index, false,
                    ));
                }
                c0 += cw;
            }
        }
        return amax;
    }
    // Only the staged bytes written for a band are read back (by the transpose), so the band
    // buffer needs no clearing.
    let mut band = core::mem::MaybeUninit::<[u8; BAND_ROWS * BAND_BYTES]>::uninit();
    // The staging area: `band_rows` rows of `stride` bytes, `band_cols` columns per pass. With
    // `std`, byte outputs of moderate width stage whole rows on the heap (WIDE_ROWS × cols, at
    // most WIDE_MAX_BYTES, L2-resident) so sources are read as whole contiguous rows.
    let use_wide = cfg!(feature = "std")
        && ds == 1
        && g.cols > BAND_BYTES
        && (g.cols.next_multiple_of(64) + 64) * WIDE_ROWS <= WIDE_MAX_BYTES;
    // Staged rows are padded past a multiple of 64 bytes and off a multiple of 4 KiB: rows a
    // power of two apart share L1 sets, and the transpose reads 64 rows at once (measured: the
    // byte transpose of 64 × 8192 went from 0.21 to 0.10 cycles per element).
    let wide_stride = g.cols.next_multiple_of(64) + 64;
    #[cfg(feature = "std")]
    let mut wide: Vec<u8> = if use_wide {
        vec![0u8; WIDE_ROWS * wide_stride]
    } else {
        Vec::new()
    };
    #[cfg(feature = "std")]
    let wide_ptr = wide.as_mut_ptr();
    #[cfg(not(feature = "std"))]
    let wide_ptr = band.as_mut_ptr().cast::<u8>(); // never used: use_wide is false without std
    let (stage, stride, band_rows_max, band_cols) = if use_wide {
        (wide_ptr, wide_stride, WIDE_ROWS, g.cols)
    } else {
        (
            band.as_mut_ptr().cast::<u8>(),
            BAND_BYTES,
            BAND_ROWS,
            BAND_BYTES / ds,
        )
    };
    // With streamed byte outputs whose rows are whole cache lines apart, a short first band
    // moves the later bands onto 64-byte-aligned transposed addresses, so the transpose writes
    // whole lines with streaming stores (measured 32% -> 48% of copy bandwidth at 8192 x 8192).
    let first = if stream && ds == 1 && g.ld_dst_t.is_multiple_of(64) {
        (64 - dst_t.wrapping_add(r_start) % 64) % 64
    } else {
        0
    };
    let mut r0 = r_start;
    while r0 < r_end {
        let band_rows = if r0 == r_start && first > 0 {
            first
        } else {
            band_rows_max
        };
        let rh = band_rows.min(r_end - r0);
        let mut c0 = 0;
        while c0 < g.cols {
            let cw = band_cols.min(g.cols - c0);
            for r in 0..rh {
                let row = r0 + r;
                let mut j = 0;
                while j < cw {
                    let len = BLOCK.min(cw - j);
                    let col = c0 + j;
                    // SAFETY: (row, col..col+len) lies inside the validated source shape; the
                    // staging row holds `stride >= cw · ds` bytes.
                    unsafe {
                        let s_row = (src as *const u8).add((row * g.ld_src + col) * ss);
                        // The next piece of this row (the hardware prefetchers miss it when many
                        // rows are read a little at a time).
                        if !(ss == 4 && k.prefetches_f32_sources) {
                            let next = g.cols.saturating_sub(col + len).min(band_cols);
                            prefetch_next(s_row.wrapping_add(len * ss), next.min(BLOCK) * ss);
                        }
                        let f = widen_block(k, g.src_type, s_row, len, buf.get());
                        let out = stage.add(r * stride + j * ds);
                        amax = amax.max(encode_block(
                            k,
                            g.dst_type,
                            params,
                            f,
                            out,
                            len,
                            (row * g.cols + col) as u64,
                            false,
                        ));
                        if dst != 0 {
                            let d = (dst as *mut u8).add((row * g.ld_dst + col) * ds);
                            if stream {
                                (k.stream_copy)(out, d, len * ds);
                            } else {
                                core::ptr::copy_nonoverlapping(out, d, len * ds);
                            }
                        }
                    }
                    j += len;
                }
            }
            // SAFETY: the transposed block (c0..c0+cw, r0..r0+rh) lies inside dst_t's shape.
            unsafe {
                let t = (dst_t as *mut u8).add((c0 * g.ld_dst_t + r0) * ds);
                let b = stage.cast_const();
                match ds {
                    1 => (k.transpose_u8)(b, stride, rh, cw, t, g.ld_dst_t, stream),
                    2 => transpose_wide::<u16>(b.cast(), stride / 2, rh, cw, t.cast(), g.ld_dst_t),
                    _ => transpose_wide::<u32>(b.cast(), stride / 4, rh, cw, t.cast(), g.ld_dst_t),
                }
            }
            c0 += cw;
        }
        r0 += rh;
    }
    crate::backend::store_fence();
    amax
}

/// Transpose of a `rows × cols` matrix of 2- or 4-byte elements (row stride `ld_src`) into
/// `dst` (row stride `ld_dst`).
///
/// # Safety
/// Both matrices valid for their shapes and strides.
unsafe fn transpose_wide<T: Copy>(
    src: *const T,
    ld_src: usize,
    rows: usize,
    cols: usize,
    dst: *mut T,
    ld_dst: usize,
) {
    for c in 0..cols {
        for r in 0..rows {
            // SAFETY: indices are inside both matrices per the contract.
            unsafe {
                dst.add(c * ld_dst + r)
                    .write_unaligned(src.add(r * ld_src + c).read_unaligned())
            };
        }
    }
}

/// Hints the CPU to start loading `bytes` bytes at `p` (the next chunk of a source row, which
/// the hardware prefetchers miss when many rows are read a little at a time). No effect on
/// results; never faults.
#[inline(always)]
pub(crate) fn prefetch_next(p: *const u8, bytes: usize) {
    #[cfg(all(target_arch = "x86_64", target_feature = "sse"))]
    {
        let mut off = 0;
        while off < bytes {
            // SAFETY: prefetch is a hint: it never faults, even on an invalid address.
            unsafe {
                core::arch::x86_64::_mm_prefetch::<{ core::arch::x86_64::_MM_HINT_T0 }>(
                    p.wrapping_add(off).cast(),
                )
            };
            off += 64;
        }
    }
    #[cfg(not(all(target_arch = "x86_64", target_feature = "sse")))]
    let _ = (p, bytes);
}

/// The element range `(start, len)` to prefetch while the block at `i` of a range ending at
/// `end` runs: the block `blocks` blocks ahead, clipped to the range.
fn prefetch_window_blocks(i: usize, end: usize, blocks: usize) -> (usize, usize) {
    let start = (i + blocks * BLOCK).min(end);
    (start, (end - start).min(BLOCK))
}
