//! Operation descriptors: the argument rules of every operation, written once.
//!
//! Each operation (cast, cast-transpose, residual mix forward and backward, GEMM and the linear
//! layer built on it) has one descriptor here, built by one function that checks shapes,
//! strides, byte extents, types, rounding and overlap, and fails with an [`Error`] whose detail
//! names the argument and the rule. The Rust API, the C ABI and the CUDA entry points all build
//! the same descriptor; the CUDA back end then adds only its own constraints (alignment,
//! K-major GEMM operands). Buffers are plain addresses here (host or device), never
//! dereferenced.
//!
//! The order of the checks is part of the contract: parameters and types first, then an empty
//! call succeeds without looking at pointers, then null pointers, then sizes that overflow the
//! address space, then overlap.

use crate::error::{Error, Status, Value, require};
use crate::{DType, Rounding};

/// Parameters of a cast.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct CastParams {
    /// Multiplier applied before rounding (1.0 for μS). Must be finite and nonzero: `0 · ±Inf`
    /// would give a NaN whose sign depends on the CPU architecture (negative on x86-64,
    /// positive on AArch64), and a zero scale has no use in a cast.
    pub scale: f32,
    /// Rounding mode; stochastic rounding needs an FP8 destination.
    pub rounding: Rounding,
    /// Seed of the stochastic-rounding generator (ignored by the other modes).
    pub seed: u64,
}

impl Default for CastParams {
    /// Scale 1, [`Rounding::NearestSaturate`], seed 0: the μS clip-cast.
    fn default() -> Self {
        CastParams {
            scale: 1.0,
            rounding: Rounding::NearestSaturate,
            seed: 0,
        }
    }
}

impl CastParams {
    /// Checks the parameters against the destination type: a finite, nonzero scale
    /// ([`Status::InvalidArgument`]) and stochastic rounding only to FP8
    /// ([`Status::Unsupported`]).
    pub fn check(&self, dst_type: DType) -> Result<(), Error> {
        require(
            self.scale.is_finite() && self.scale != 0.0,
            "scale must be finite and nonzero, got {}",
            &[self.scale.into()],
        )?;
        if self.rounding == Rounding::StochasticSaturate && dst_type.fp8().is_none() {
            return Err(Error::unsupported(
                "stochastic rounding needs dst_type e4m3 or e5m2, got {}",
                &[dst_type.name().into()],
            ));
        }
        Ok(())
    }
}

/// Parameters of a residual mix.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct MixParams {
    /// τ in [0, 1]: the weight of the branch; NaN or out of range is
    /// [`Status::InvalidArgument`].
    pub tau: f32,
    /// Rounding of the optional FP8 copy.
    pub rounding: Rounding,
    /// Stochastic-rounding seed of the FP8 copy (element `i` keyed by `(seed, i)`).
    pub seed: u64,
}

impl MixParams {
    /// τ with the μS clip-cast for the FP8 copy.
    pub fn new(tau: f32) -> MixParams {
        MixParams {
            tau,
            rounding: Rounding::NearestSaturate,
            seed: 0,
        }
    }

    /// The coefficients `(sqrt(1-τ), sqrt(τ))`, or [`Status::InvalidArgument`] for a bad τ.
    pub fn coefficients(&self) -> Result<(f32, f32), Error> {
        require(
            (0.0..=1.0).contains(&self.tau),
            "tau must be in [0, 1], got {}",
            &[self.tau.into()],
        )?;
        Ok((libm::sqrtf(1.0 - self.tau), libm::sqrtf(self.tau)))
    }
}

/// Whether two byte ranges share a byte (empty ranges never do).
pub(crate) fn ranges_overlap(a: usize, a_len: usize, b: usize, b_len: usize) -> bool {
    a_len != 0 && b_len != 0 && a < b.saturating_add(b_len) && b < a.saturating_add(a_len)
}

/// Elements a `[rows, cols]` matrix with leading dimension `ld` spans, or `None` on overflow.
pub(crate) fn matrix_extent(rows: usize, cols: usize, ld: usize) -> Option<usize> {
    if rows == 0 || cols == 0 {
        Some(0)
    } else {
        (rows - 1).checked_mul(ld)?.checked_add(cols)
    }
}

/// Bytes of `n` elements of `dtype` named `arg`, or [`Status::InvalidArgument`] on overflow.
fn vector_bytes(arg: &'static str, n: usize, dtype: DType) -> Result<usize, Error> {
    n.checked_mul(dtype.size()).ok_or_else(|| {
        Error::invalid(
            "{}: {} elements of {} overflow the address space",
            &[arg.into(), n.into(), dtype.name().into()],
        )
    })
}

/// Bytes a `[rows, cols]` matrix `arg` with leading dimension `ld` spans.
fn matrix_bytes(
    arg: &'static str,
    rows: usize,
    cols: usize,
    ld: usize,
    dtype: DType,
) -> Result<usize, Error> {
    matrix_extent(rows, cols, ld)
        .and_then(|e| e.checked_mul(dtype.size()))
        .ok_or_else(|| {
            Error::invalid(
                "{}: {} rows with leading dimension {} overflow the address space",
                &[arg.into(), rows.into(), ld.into()],
            )
        })
}

/// [`Status::NullPointer`] naming `arg` when `addr` is 0.
fn non_null(addr: usize, text: &'static str) -> Result<(), Error> {
    if addr == 0 {
        Err(Error::null(text))
    } else {
        Ok(())
    }
}

/// A buffer's address and the bytes it spans (address 0: absent).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Span {
    /// Address of the first byte (0 when the buffer is absent).
    pub addr: usize,
    /// Bytes from the first element to the end of the last.
    pub bytes: usize,
}

impl Span {
    fn meets(self, other: Span) -> bool {
        self.addr != 0
            && other.addr != 0
            && ranges_overlap(self.addr, self.bytes, other.addr, other.bytes)
    }

    /// Output `self` may be written while input `inp` is read: disjoint, or exactly the same
    /// range (in place).
    fn compatible_with(self, inp: Span) -> bool {
        self == inp || !self.meets(inp)
    }
}

/// The 4-byte `amax` output (address 0: not requested) must not overlap `buffers`.
fn check_amax(amax: usize, buffers: &[(&'static str, Span)]) -> Result<(), Error> {
    let a = Span {
        addr: amax,
        bytes: 4,
    };
    match buffers.iter().find(|(_, s)| a.meets(*s)) {
        Some((name, _)) => Err(Error::with(
            Status::Overlap,
            crate::error::Detail::new("amax overlaps {}", &[Value::S(name)]),
        )),
        None => Ok(()),
    }
}

/// [`Status::Overlap`] with the names of the two buffers.
fn overlap(a: &'static str, b: &'static str) -> Error {
    Error::with(
        Status::Overlap,
        crate::error::Detail::new("{} and {} overlap", &[a.into(), b.into()]),
    )
}

/// A validated cast of `n` elements (`n` may be 0: nothing to do).
#[derive(Clone, Copy, Debug)]
pub(crate) struct CastOp {
    pub src: Span,
    pub src_type: DType,
    pub dst: Span,
    pub dst_type: DType,
    pub n: usize,
    pub params: CastParams,
}

impl CastOp {
    /// Validates a cast; `amax` is the address of the `f32` amax output, or 0. `dst` may be
    /// exactly `src` when both types have the same size (in place).
    pub fn new(
        src: usize,
        src_type: DType,
        dst: usize,
        dst_type: DType,
        n: usize,
        params: &CastParams,
        amax: usize,
    ) -> Result<CastOp, Error> {
        params.check(dst_type)?;
        let mut op = CastOp {
            src: Span {
                addr: src,
                bytes: 0,
            },
            src_type,
            dst: Span {
                addr: dst,
                bytes: 0,
            },
            dst_type,
            n,
            params: *params,
        };
        if n == 0 {
            return Ok(op);
        }
        non_null(src, "src is null")?;
        non_null(dst, "dst is null")?;
        op.src.bytes = vector_bytes("src", n, src_type)?;
        op.dst.bytes = vector_bytes("dst", n, dst_type)?;
        let in_place = src == dst && src_type.size() == dst_type.size();
        if !in_place && op.src.meets(op.dst) {
            return Err(Error::overlap(
                "src and dst overlap (in place needs the same address and element size)",
            ));
        }
        check_amax(amax, &[("src", op.src), ("dst", op.dst)])?;
        Ok(op)
    }
}

/// A validated cast-transpose of a `[rows, cols]` matrix into `dst` (same shape) and/or
/// `dst_t` (`[cols, rows]`); absent outputs have address 0. Empty when `rows` or `cols` is 0.
#[derive(Clone, Copy, Debug)]
pub(crate) struct CastTransposeOp {
    pub src: Span,
    pub src_type: DType,
    pub rows: usize,
    pub cols: usize,
    pub ld_src: usize,
    pub dst: Span,
    pub ld_dst: usize,
    pub dst_t: Span,
    pub ld_dst_t: usize,
    pub dst_type: DType,
    pub params: CastParams,
}

impl CastTransposeOp {
    /// Validates a cast-transpose; the leading dimension of an absent output is ignored;
    /// `amax` is the address of the `f32` amax output, or 0.
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        src: usize,
        src_type: DType,
        rows: usize,
        cols: usize,
        ld_src: usize,
        dst: usize,
        ld_dst: usize,
        dst_t: usize,
        ld_dst_t: usize,
        dst_type: DType,
        params: &CastParams,
        amax: usize,
    ) -> Result<CastTransposeOp, Error> {
        params.check(dst_type)?;
        let ld_dst = if dst == 0 { cols } else { ld_dst };
        let ld_dst_t = if dst_t == 0 { rows } else { ld_dst_t };
        require(
            ld_src >= cols,
            "ld_src ({}) must be >= cols ({})",
            &[ld_src.into(), cols.into()],
        )?;
        require(
            ld_dst >= cols,
            "ld_dst ({}) must be >= cols ({})",
            &[ld_dst.into(), cols.into()],
        )?;
        require(
            ld_dst_t >= rows,
            "ld_dst_t ({}) must be >= rows ({})",
            &[ld_dst_t.into(), rows.into()],
        )?;
        let op = CastTransposeOp {
            src: Span {
                addr: src,
                bytes: matrix_bytes("src", rows, cols, ld_src, src_type)?,
            },
            src_type,
            rows,
            cols,
            ld_src,
            dst: Span {
                addr: dst,
                bytes: matrix_bytes("dst", rows, cols, ld_dst, dst_type)?,
            },
            ld_dst,
            dst_t: Span {
                addr: dst_t,
                bytes: matrix_bytes("dst_t", cols, rows, ld_dst_t, dst_type)?,
            },
            ld_dst_t,
            dst_type,
            params: *params,
        };
        if op.is_empty() {
            return Ok(op);
        }
        non_null(src, "src is null")?;
        if op.src.meets(op.dst) {
            return Err(overlap("src", "dst"));
        }
        if op.src.meets(op.dst_t) {
            return Err(overlap("src", "dst_t"));
        }
        if op.dst.meets(op.dst_t) {
            return Err(overlap("dst", "dst_t"));
        }
        check_amax(
            amax,
            &[("src", op.src), ("dst", op.dst), ("dst_t", op.dst_t)],
        )?;
        Ok(op)
    }

    /// Whether the matrix is empty (nothing but amax = 0 to write).
    pub fn is_empty(&self) -> bool {
        self.rows == 0 || self.cols == 0
    }
}

/// Checks a residual mix's element type and its FP8 copy's type (`fp8_name` is the copy's
/// argument name).
fn check_mix_types(
    io_type: DType,
    fp8: usize,
    fp8_type: DType,
    fp8_name: &'static str,
) -> Result<(), Error> {
    if io_type.fp8().is_some() {
        return Err(Error::unsupported(
            "io_type must be f32, bf16 or f16, got {}",
            &[io_type.name().into()],
        ));
    }
    require(
        fp8 == 0 || fp8_type.fp8().is_some(),
        "fp8_type must be e4m3 or e5m2 when {} is given, got {}",
        &[fp8_name.into(), fp8_type.name().into()],
    )
}

/// The FP8 copy `q` (`n` bytes) must not overlap any of `buffers`.
fn check_fp8_copy(
    q: Span,
    q_name: &'static str,
    buffers: &[(&'static str, Span)],
) -> Result<(), Error> {
    match buffers.iter().find(|(_, s)| q.meets(*s)) {
        Some((name, _)) => Err(overlap(q_name, name)),
        None => Ok(()),
    }
}

/// A validated residual mix forward `out = a·x + b·f` (+ FP8 copy `q`, address 0 when absent).
#[derive(Clone, Copy, Debug)]
pub(crate) struct MixOp {
    pub x: Span,
    pub f: Span,
    pub out: Span,
    pub q: Span,
    pub io_type: DType,
    pub fp8_type: DType,
    pub n: usize,
    /// `(sqrt(1-τ), sqrt(τ))`.
    pub coefficients: (f32, f32),
    pub params: MixParams,
}

impl MixOp {
    /// Validates a mix: `out` may be exactly `x` or `f`; `out_fp8` must not overlap anything.
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        x: usize,
        f: usize,
        out: usize,
        io_type: DType,
        n: usize,
        out_fp8: usize,
        fp8_type: DType,
        params: &MixParams,
    ) -> Result<MixOp, Error> {
        let coefficients = params.coefficients()?;
        check_mix_types(io_type, out_fp8, fp8_type, "out_fp8")?;
        let span = |addr, bytes| Span { addr, bytes };
        let mut op = MixOp {
            x: span(x, 0),
            f: span(f, 0),
            out: span(out, 0),
            q: span(out_fp8, 0),
            io_type,
            fp8_type,
            n,
            coefficients,
            params: *params,
        };
        if n == 0 {
            return Ok(op);
        }
        non_null(x, "x is null")?;
        non_null(f, "f is null")?;
        non_null(out, "out is null")?;
        let bytes = vector_bytes("x", n, io_type)?;
        (op.x.bytes, op.f.bytes, op.out.bytes, op.q.bytes) = (bytes, bytes, bytes, n);
        if !op.out.compatible_with(op.x) {
            return Err(Error::overlap(
                "out and x overlap (in place needs the same address)",
            ));
        }
        if !op.out.compatible_with(op.f) {
            return Err(Error::overlap(
                "out and f overlap (in place needs the same address)",
            ));
        }
        check_fp8_copy(
            op.q,
            "out_fp8",
            &[("x", op.x), ("f", op.f), ("out", op.out)],
        )?;
        Ok(op)
    }
}

/// A validated residual mix backward `grad_x (+)= a·g`, `grad_f = b·g` (+ FP8 copy `q` of
/// `grad_f`, address 0 when absent).
#[derive(Clone, Copy, Debug)]
pub(crate) struct MixBackwardOp {
    pub grad_out: Span,
    pub grad_x: Span,
    pub grad_f: Span,
    pub q: Span,
    pub io_type: DType,
    pub fp8_type: DType,
    pub n: usize,
    pub accumulate: bool,
    /// `(sqrt(1-τ), sqrt(τ))`.
    pub coefficients: (f32, f32),
    pub params: MixParams,
}

impl MixBackwardOp {
    /// Validates a mix backward: `grad_x` and `grad_f` may each be exactly `grad_out` but must
    /// not overlap each other; `grad_f_fp8` must not overlap anything.
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        grad_out: usize,
        grad_x: usize,
        grad_f: usize,
        io_type: DType,
        n: usize,
        accumulate: bool,
        grad_f_fp8: usize,
        fp8_type: DType,
        params: &MixParams,
    ) -> Result<MixBackwardOp, Error> {
        let coefficients = params.coefficients()?;
        check_mix_types(io_type, grad_f_fp8, fp8_type, "grad_f_fp8")?;
        let span = |addr, bytes| Span { addr, bytes };
        let mut op = MixBackwardOp {
            grad_out: span(grad_out, 0),
            grad_x: span(grad_x, 0),
            grad_f: span(grad_f, 0),
            q: span(grad_f_fp8, 0),
            io_type,
            fp8_type,
            n,
            accumulate,
            coefficients,
            params: *params,
        };
        if n == 0 {
            return Ok(op);
        }
        non_null(grad_out, "grad_out is null")?;
        non_null(grad_x, "grad_x is null")?;
        non_null(grad_f, "grad_f is null")?;
        let bytes = vector_bytes("grad_out", n, io_type)?;
        (
            op.grad_out.bytes,
            op.grad_x.bytes,
            op.grad_f.bytes,
            op.q.bytes,
        ) = (bytes, bytes, bytes, n);
        if !op.grad_x.compatible_with(op.grad_out) {
            return Err(Error::overlap(
                "grad_x and grad_out overlap (in place needs the same address)",
            ));
        }
        if !op.grad_f.compatible_with(op.grad_out) {
            return Err(Error::overlap(
                "grad_f and grad_out overlap (in place needs the same address)",
            ));
        }
        if op.grad_x.meets(op.grad_f) {
            return Err(overlap("grad_x", "grad_f"));
        }
        check_fp8_copy(
            op.q,
            "grad_f_fp8",
            &[
                ("grad_out", op.grad_out),
                ("grad_x", op.grad_x),
                ("grad_f", op.grad_f),
            ],
        )?;
        Ok(op)
    }
}

/// One operand of [`RawGemm`]: element `(i, j)` at `ptr + (i·row_stride + j·col_stride)·size`.
/// Host memory for the CPU entry points, device memory for the CUDA ones.
#[derive(Clone, Copy, Debug)]
pub struct RawMatrix {
    /// Address of element `(0, 0)`.
    pub ptr: *const u8,
    /// Element type.
    pub dtype: DType,
    /// Elements between rows.
    pub row_stride: isize,
    /// Elements between columns.
    pub col_stride: isize,
}

/// A GEMM on raw pointers (see [`crate::gemm`]); `C ← α·A·B + β·C`.
#[derive(Clone, Copy, Debug)]
pub struct RawGemm {
    /// Rows of A and C.
    pub m: usize,
    /// Columns of B and C.
    pub n: usize,
    /// Columns of A, rows of B.
    pub k: usize,
    /// Multiplier of A·B.
    pub alpha: f32,
    /// A (m×k), E4M3 or E5M2.
    pub a: RawMatrix,
    /// B (k×n), E4M3 or E5M2.
    pub b: RawMatrix,
    /// Multiplier of the old C; must be 0 for FP8 C.
    pub beta: f32,
    /// C (m×n), f32, bf16, E4M3 or E5M2; written through `c.ptr`.
    pub c: RawMatrix,
}

/// Offsets (in elements) of the first and last element of a non-empty `rows × cols` view, or
/// `None` on overflow.
pub(crate) fn span(rows: usize, cols: usize, rs: isize, cs: isize) -> Option<(isize, isize)> {
    let r = isize::try_from(rows - 1).ok()?.checked_mul(rs)?;
    let c = isize::try_from(cols - 1).ok()?.checked_mul(cs)?;
    let lo = r.min(0).checked_add(c.min(0))?;
    let hi = r.max(0).checked_add(c.max(0))?;
    Some((lo, hi))
}

/// The byte range `[start, end)` the non-empty `rows × cols` operand `arg` covers, or
/// [`Status::InvalidArgument`] when it leaves the address space.
fn operand_range(
    arg: &'static str,
    rows: usize,
    cols: usize,
    x: &RawMatrix,
) -> Result<(usize, usize), Error> {
    let too_large = || {
        Error::invalid(
            "{}: strides ({}, {}) reach outside the address space",
            &[arg.into(), x.row_stride.into(), x.col_stride.into()],
        )
    };
    let (lo, hi) = span(rows, cols, x.row_stride, x.col_stride).ok_or_else(too_large)?;
    let size = x.dtype.size() as isize;
    let lo_b = lo.checked_mul(size).ok_or_else(too_large)?;
    let hi_b = hi
        .checked_mul(size)
        .and_then(|h| h.checked_add(size))
        .ok_or_else(too_large)?;
    let ptr = x.ptr as usize;
    let start = ptr.checked_add_signed(lo_b).ok_or_else(too_large)?;
    let end = ptr.checked_add_signed(hi_b).ok_or_else(too_large)?;
    Ok((start, end))
}

fn gcd(mut a: usize, mut b: usize) -> usize {
    while b != 0 {
        (a, b) = (b, a % b);
    }
    a
}

/// Whether two distinct `(i, j)` of a `rows × cols` view share an element: some nonzero
/// `(di, dj)` with `|di| < rows`, `|dj| < cols` and `di·rs + dj·cs = 0`.
pub(crate) fn self_overlaps(rows: usize, cols: usize, rs: isize, cs: isize) -> bool {
    let (r, c) = (rs.unsigned_abs(), cs.unsigned_abs());
    match (rows > 1, cols > 1) {
        (false, false) => false,
        (true, false) => r == 0,
        (false, true) => c == 0,
        (true, true) => {
            if r == 0 || c == 0 {
                return true;
            }
            // The smallest solution is di = c/g, dj = r/g; all others are multiples.
            let g = gcd(r, c);
            c / g < rows && r / g < cols
        }
    }
}

fn ranges_meet(a: (usize, usize), b: (usize, usize)) -> bool {
    a.0 < b.1 && b.0 < a.1
}

/// A validated GEMM with work to do (`m`, `n` > 0).
#[derive(Clone, Copy, Debug)]
pub(crate) struct GemmOp {
    pub g: RawGemm,
    pub a_fmt: crate::Fp8Format,
    pub b_fmt: crate::Fp8Format,
}

/// The names a GEMM's operands go by in error messages: `["a", "b", "c"]` for the GEMM, the
/// linear layer's own names (`x`, `w`, `y`, ...) for its products.
pub(crate) type OperandNames = [&'static str; 3];

impl GemmOp {
    /// Validates a GEMM; `Ok(None)` when C is empty (nothing to compute).
    pub fn new(g: &RawGemm) -> Result<Option<GemmOp>, Error> {
        GemmOp::named(g, ["a", "b", "c"])
    }

    /// [`GemmOp::new`] with the operands called `names` (A, B, C) in error messages.
    pub fn named(g: &RawGemm, names: OperandNames) -> Result<Option<GemmOp>, Error> {
        let [na, nb, nc] = names;
        let fp8 = |arg: &'static str, t: DType| {
            t.fp8().ok_or_else(|| {
                Error::unsupported(
                    "the type of {} must be e4m3 or e5m2, got {}",
                    &[arg.into(), t.name().into()],
                )
            })
        };
        let a_fmt = fp8(na, g.a.dtype)?;
        let b_fmt = fp8(nb, g.b.dtype)?;
        let c_type = g.c.dtype;
        if c_type == DType::F16 {
            return Err(Error::unsupported(
                "the type of {} must be f32, bf16, e4m3 or e5m2, got {}",
                &[nc.into(), c_type.name().into()],
            ));
        }
        require(
            c_type.fp8().is_none() || g.beta == 0.0,
            "beta must be 0 when {} is {}, got {}",
            &[nc.into(), c_type.name().into(), g.beta.into()],
        )?;
        let (m, n, k) = (g.m, g.n, g.k);
        if m == 0 || n == 0 {
            return Ok(None);
        }
        let null = |arg: &'static str, p: *const u8| {
            if p.is_null() {
                Err(Error::with(
                    Status::NullPointer,
                    crate::error::Detail::new("{} is null", &[arg.into()]),
                ))
            } else {
                Ok(())
            }
        };
        null(nc, g.c.ptr)?;
        if k > 0 {
            null(na, g.a.ptr)?;
            null(nb, g.b.ptr)?;
        }
        let c_range = operand_range(nc, m, n, &g.c)?;
        if self_overlaps(m, n, g.c.row_stride, g.c.col_stride) {
            return Err(Error::with(
                Status::Overlap,
                crate::error::Detail::new(
                    "{} maps two elements to one (row_stride {}, col_stride {})",
                    &[nc.into(), g.c.row_stride.into(), g.c.col_stride.into()],
                ),
            ));
        }
        if k > 0 {
            let a_range = operand_range(na, m, k, &g.a)?;
            let b_range = operand_range(nb, k, n, &g.b)?;
            if ranges_meet(c_range, a_range) {
                return Err(overlap(na, nc));
            }
            if ranges_meet(c_range, b_range) {
                return Err(overlap(nb, nc));
            }
        }
        Ok(Some(GemmOp {
            g: *g,
            a_fmt,
            b_fmt,
        }))
    }
}

/// Sizes of a linear layer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LinearShape {
    /// Rows of x and y (tokens).
    pub batch: usize,
    /// Input features (columns of x and W).
    pub fan_in: usize,
    /// Output features (columns of y, rows of W).
    pub fan_out: usize,
}

/// Which product of the linear layer a linear-layer GEMM describes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LinearOp {
    /// `y = α·x·Wᵀ`.
    Forward,
    /// `dx = α·dy·W + β·dx`.
    BackwardData,
    /// `dW = α·dyᵀ·x + β·dW`.
    BackwardWeight,
}

/// The α a linear-layer call uses: `alpha` itself, or `1/sqrt(fan_in)` when `alpha` is NaN or
/// ≤ 0.
pub fn effective_alpha(alpha: f32, fan_in: usize) -> f32 {
    if alpha.is_nan() || alpha <= 0.0 {
        1.0 / libm::sqrtf(fan_in as f32)
    } else {
        alpha
    }
}

/// How a linear layer's operands are stored.
#[cfg_attr(not(feature = "std"), allow(dead_code))]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum LinearLayout {
    /// PyTorch's: `x [batch, fan_in]`, `W [fan_out, fan_in]`, `dy [batch, fan_out]` (the CPU).
    Natural,
    /// K-major (FP8 tensor cores): backward data takes `Wᵀ [fan_in, fan_out]`, backward weight
    /// takes `dyᵀ [fan_out, batch]` and `xᵀ [fan_in, batch]` (CUDA).
    KMajor,
}

/// The GEMM one product of a linear layer is, validated: dense row-major buffers `a`, `b` (the
/// two inputs in the order the C ABI takes them) and `c` of `c_type`; `α` NaN or ≤ 0 is
/// `1/sqrt(fan_in)`. Shapes whose element counts overflow are [`Status::InvalidArgument`];
/// everything else is checked by [`GemmOp::named`] with the layer's names for the operands.
/// `Ok(None)`: nothing to compute.
#[allow(clippy::too_many_arguments)]
#[cfg_attr(not(feature = "std"), allow(dead_code))]
pub(crate) fn linear_gemm(
    which: LinearOp,
    layout: LinearLayout,
    s: LinearShape,
    alpha: f32,
    a: *const u8,
    b: *const u8,
    beta: f32,
    c: *const u8,
    c_type: DType,
) -> Result<Option<GemmOp>, Error> {
    let (bi, fi, fo) = (s.batch, s.fan_in, s.fan_out);
    for (rows, cols, what) in [
        (bi, fi, "batch x fan_in"),
        (fo, fi, "fan_out x fan_in"),
        (bi, fo, "batch x fan_out"),
    ] {
        let fits = rows
            .checked_mul(cols)
            .is_some_and(|e| isize::try_from(e).is_ok());
        require(
            fits,
            "{} ({} x {}) overflows the address space",
            &[what.into(), rows.into(), cols.into()],
        )?;
    }
    // Every dimension fits in isize (checked above, each is a factor of a product that fits).
    let ld = |n: usize| n as isize;
    let mat = |ptr, dtype, row_stride, col_stride| RawMatrix {
        ptr,
        dtype,
        row_stride,
        col_stride,
    };
    let alpha = effective_alpha(alpha, fi);
    let c_mat = |cols| mat(c, c_type, ld(cols), 1);
    let names: OperandNames = match (which, layout) {
        (LinearOp::Forward, _) => ["x", "w", "y"],
        (LinearOp::BackwardData, LinearLayout::Natural) => ["dy", "w", "dx"],
        (LinearOp::BackwardData, LinearLayout::KMajor) => ["dy", "w_t", "dx"],
        (LinearOp::BackwardWeight, LinearLayout::Natural) => ["dy", "x", "dw"],
        (LinearOp::BackwardWeight, LinearLayout::KMajor) => ["dy_t", "x_t", "dw"],
    };
    let g = match (which, layout) {
        (LinearOp::Forward, _) => RawGemm {
            m: bi,
            n: fo,
            k: fi,
            alpha,
            a: mat(a, DType::E4M3, ld(fi), 1),
            b: mat(b, DType::E4M3, 1, ld(fi)),
            beta: 0.0,
            c: c_mat(fo),
        },
        (LinearOp::BackwardData, LinearLayout::Natural) => RawGemm {
            m: bi,
            n: fi,
            k: fo,
            alpha,
            a: mat(a, DType::E5M2, ld(fo), 1),
            b: mat(b, DType::E4M3, ld(fi), 1),
            beta,
            c: c_mat(fi),
        },
        (LinearOp::BackwardData, LinearLayout::KMajor) => RawGemm {
            m: bi,
            n: fi,
            k: fo,
            alpha,
            a: mat(a, DType::E5M2, ld(fo), 1),
            b: mat(b, DType::E4M3, 1, ld(fo)),
            beta,
            c: c_mat(fi),
        },
        (LinearOp::BackwardWeight, LinearLayout::Natural) => RawGemm {
            m: fo,
            n: fi,
            k: bi,
            alpha,
            a: mat(a, DType::E5M2, 1, ld(fo)),
            b: mat(b, DType::E4M3, ld(fi), 1),
            beta,
            c: c_mat(fi),
        },
        (LinearOp::BackwardWeight, LinearLayout::KMajor) => RawGemm {
            m: fo,
            n: fi,
            k: bi,
            alpha,
            a: mat(a, DType::E5M2, ld(bi), 1),
            b: mat(b, DType::E4M3, 1, ld(bi)),
            beta,
            c: c_mat(fi),
        },
    };
    GemmOp::named(&g, names)
}
