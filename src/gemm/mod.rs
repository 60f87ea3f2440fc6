//! FP8 GEMM: `C ← α·A·B + β·C` with A (m×k) and B (k×n) in E4M3 or E5M2, exact products,
//! f32 accumulation, and C in f32, bf16, E4M3 or E5M2.
//!
//! # Layout
//! Every operand is a strided view: element `(i, j)` lives at `ptr + i·row_stride + j·col_stride`
//! (strides in elements, any sign), as in BLIS. Row-major (numpy), column-major (Julia) and
//! transposed views (`op(A)` = swap the strides) all work without copies.
//!
//! # Semantics (identical on every back end, bit for bit)
//! K is cut into blocks of 256 elements ([`KB`] pairs). For each element of C and each block,
//! `acc` starts at `+0.0` and runs over the pairs `(2p, 2p+1)` of the block in increasing order:
//! `acc = a[2p]·b[2p] + (a[2p+1]·b[2p+1] + acc)`, every product exact and every sum rounded to f32
//! (nearest even); for odd `k` the last pair's odd product is `+0`. The block sums are added in
//! order into the total (`total = s0`, then `total = total + s_j`). Within a block this is what
//! `vdpbf16ps` computes, so the AVX-512 BF16 micro-kernel, the f32 FMA micro-kernel and the
//! scalar reference agree exactly, for any cache blocking and any thread count; the two-level
//! sum keeps the relative error of random dot products below 1e-6 up to k = 8192. Then
//! `r = α·total` (β = 0) or `r = α·total + β·c` (both products rounded, then the sum), and `r` is
//! stored rounded to C's type: f32 as is, bf16 to nearest even (overflow to ±Inf), FP8 to nearest
//! even with saturation to ±max.
//!
//! **NaN results.** An element whose `r` is a NaN (a NaN input of either sign, `Inf − Inf`,
//! `0·Inf`, or a NaN in C read by `β ≠ 0`) is stored as the one canonical NaN, positive and
//! quiet: f32 `0x7FC00000`, bf16 `0x7FC0`, E4M3 `0x7F`, E5M2 `0x7E`. Which sign or payload the
//! hardware would give depends on operand order, so no kernel lets it through: every write-back
//! (scalar, AVX-512 blocked and short-problem, f32 FMA, AVX2, NEON, and the CUDA epilogue)
//! replaces NaNs by the canonical one ([`crate::nan::canonical`] and its vector form).
//!
//! - `β = 0` overwrites C without reading it (BLAS convention): NaN garbage in C does not
//!   propagate. FP8 outputs require `β = 0` (else [`Status::InvalidArgument`](crate::error::Status::InvalidArgument)).
//! - `k = 0` gives `C ← β·C` (zeros when `β = 0`); α is not used.
//! - `m = 0` or `n = 0` is a no-op.
//! - `α = 0` is not special-cased: NaN and Inf in A·B propagate as IEEE arithmetic says (a NaN
//!   result being the canonical NaN).
//! - C must not map two `(i, j)` to the same element, and the byte range C spans must not
//!   intersect the ranges A and B span ([`Status::Overlap`](crate::error::Status::Overlap)).
//!
//! # Implementation
//! BLIS-style. The problem is oriented so that C's unit stride (if any) runs along the SIMD
//! vector (computing `Cᵀ = Bᵀ·Aᵀ` when C is column-major; negative C strides are flipped), which
//! changes no element's arithmetic. B is packed per column block into micro-panels of 32
//! columns and A per row block into micro-panels of up to 12 rows, both converted FP8 → bf16
//! while packing (a 128-entry `vpermi2w` lookup) into the VNNI-2 layout: each 32-bit word holds
//! the bf16 pair `(k = 2p, 2p+1)`, the even element in the low half. K-contiguous sources are
//! transposed in registers (16×16 words). For each B micro-panel and each K block of [`KB`]
//! pairs (16 KiB of B, resident in L1), the 12×32 micro-kernel (24 zmm accumulators, one
//! `vdpbf16ps` per pair and 16 columns, or two f32 FMAs per pair without AVX512-BF16) sweeps
//! the row panels of the A block (one contiguous stream) and adds its block sums into one f32
//! tile per row panel; once K is done the write-back applies α, β and the output rounding
//! (vectorised when C's column stride is 1). B micro-panels are packed right before the first
//! row block uses them; the micro-kernel prefetches the B block of the next sweep (and, for a
//! single row block with K-contiguous B, the source of the next micro-panel), and C's lines
//! are prefetched before each tile's last K block. Short problems (up to 32 rows of C after
//! orientation, B K-contiguous, K and n not too small: a decode step `X·Wᵀ`) take a kernel of
//! their own with AVX512-BF16 and VBMI (`avx512/skinny.rs`): the vectors run along the rows of C and
//! each pair of B is broadcast into `vdpbf16ps`, so B is converted in its own order instead of
//! transposed, overlapped with the multiply-adds of the previous block. Few-row products (up to 8
//! rows of C, B K-contiguous, k ≥ 64: one decoded token) take a third kernel (`avx512/decode.rs`)
//! that streams B once: the vectors run along the columns of C, each 64-byte line of 16 columns
//! is transposed as code pairs in registers (`vpermt2b`) and converted with byte lookups, and
//! each row of A takes one `vdpbf16ps` per pair; bound by the bandwidth of B's bytes at m = 1.
//! The AVX2+FMA (6×16
//! tile) and NEON (8×12, `fmla` by lane) micro-kernels run the same loops over FP8 → f32 panels (two fused
//! multiply-adds per pair, odd element first, which rounds exactly as the reference). Threads
//! split C into disjoint blocks of whole
//! panels, each with its own packing buffers; with `std` up to 8 packing buffers are kept in a
//! pool for reuse between calls. Without `std`, [`Exec::gemm_raw_with_workspace`] runs on the
//! caller's workspace and allocates nothing.
//!
//! MXCSR must be in its default state (round to nearest, no flush-to-zero or
//! denormals-are-zero) for the f32 FMA kernel and the FP8 write-back, as for any IEEE code.
//!
//! # Kernels and how they are chosen
//! `registry.rs` holds one table of kernel entries, fastest first (each entry: the
//! [`GemmKernel`], the [`Backend`] whose setting selects it, availability from the CPU features
//! detected once at start, micro-tile, workspace size, entry point, and a list of
//! short-problem kernels, each with the row counts and K thresholds it suits). Everything else reads
//! the table: [`GemmKernel::is_available`], [`GemmKernel::for_backend`], [`GemmKernel::best`],
//! [`gemm_workspace_size`] (the kernel's own size function, and its short-problem kernels'),
//! and the dispatch, which per thread block runs the first short-problem kernel that fits and
//! whose K threshold is reached, else the blocked kernel. The cache-blocking parameters are defined
//! once there too: `BF16_PANEL_BLOCKING` (AVX-512: 448 KiB of packed A per row block, 8 MiB of
//! B) and `F32_PANEL_BLOCKING` (AVX2, NEON: 384 KiB of A, 8 MiB of B).
//!
//! | kernel | file(s) | tile | selected by |
//! |---|---|---|---|
//! | `avx512-bf16` | `avx512/` (`primitives`, `pack`, `micro`, `blocked`; short problems `decode` (m ≤ 8), `skinny` (m ≤ 32)) | 12×32 | `avx512` back end, AVX512-BF16 |
//! | `avx512-fma` | `avx512/` | 12×32 | `avx512` back end without BF16 |
//! | `avx2-fma` | `avx2.rs` + `fpanel.rs` | 6×16 | fastest kernel on CPUs without AVX-512 |
//! | `neon` | `neon.rs` + `fpanel.rs` | 8×12 | `neon` back end |
//! | `scalar` | `scalar.rs` | — | `scalar` back end (`UNITFP8_BACKEND=scalar`), fallback |
//! | `amx-bf16` | `avx512/amx.rs` (few rows: `amx_few.rs`, sharing `decode`'s step) | 32×32 | opt-in only: [`crate::set_gemm_kernel`], [`Exec::with_gemm_kernel`], `UNITFP8_GEMM_KERNEL` |
//!
//! **The AMX kernel is the one exception to the bit-for-bit rule.** `tdpbf16ps` adds the 32
//! exact products of each instruction with an internal order and rounding of its own (one pair:
//! `acc + round(p0 + p1)`; longer runs match no sequential order), so it cannot follow the
//! semantics above; its results differ by f32 rounding errors (tested against float64 within
//! `(k/32 + 4)·2⁻²³·|α|·Σ|a·b|`). [`GemmKernel::is_exact`] is false for it, and
//! [`GemmKernel::best`] / [`GemmKernel::for_backend`] never choose it.
//!
//! # How to add a GEMM kernel
//! A kernel for a new instruction set touches its own file and the registry:
//!
//! 1. Its file (e.g. `src/gemm/sve.rs`, declared in this module under the `cfg` of its
//!    architecture) computes a validated `Problem` with `k > 0` on the calling thread:
//!    an `unsafe fn(&Problem, &mut [u8])` (the [`RawGemm`] contract, plus "the CPU has my
//!    features" and "the workspace holds my size"). It must follow the semantics above **bit
//!    for bit**: the accumulation order (blocks of [`KB`] pairs from `+0`, the odd product of
//!    each pair first, block sums added in order), `α`/`β` as `scalar::finish`, the output
//!    rounding of `scalar::store_c`, the canonical NaN. The simplest way is to reuse a driver:
//!    `fpanel::run` takes an f32 FMA micro-kernel of any `MR × NR` tile (see `avx2.rs`, 60
//!    lines), and `scalar::write_tile` writes any tile back.
//! 2. The same file exports a `const ENTRY: KernelEntry` (kernel, back end, availability, tile,
//!    workspace size function, entry point, short-problem kernels if any).
//! 3. One line in `registry::KERNELS` (at its speed rank), and a variant of [`GemmKernel`] (with
//!    its name in [`GemmKernel::name`]). A CPU feature it needs is probed in `src/cpu.rs`.
//!
//! The GEMM test suite (`tests/gemm.rs`) runs every available kernel against an independent
//! model, bit for bit, over random shapes, every layout and type, NaN/Inf and threads; a new
//! kernel is covered once it is in the table (under qemu for other architectures).

#[cfg(all(target_arch = "x86_64", target_feature = "sse2"))]
mod avx2;
#[cfg(all(target_arch = "x86_64", target_feature = "sse2"))]
mod avx512;
#[cfg_attr(
    not(any(
        all(target_arch = "x86_64", target_feature = "sse2"),
        target_arch = "aarch64"
    )),
    allow(dead_code)
)]
mod fpanel;
#[cfg(target_arch = "aarch64")]
mod neon;
mod registry;
mod scalar;

use crate::backend::Backend;
use crate::dtype::{DType, Element};
use crate::error::{Error, require};
use crate::exec::Exec;
use crate::fp8::Fp8Format;
use crate::op::{GemmOp, span};

/// K pairs per accumulation block (256 elements): each block is summed from zero and then
/// added into the running total, which keeps the f32 rounding error of long dot products near
/// `2^-24·(sqrt(256) + sqrt(k/256))` instead of `2^-24·sqrt(k)`.
pub const KB: usize = 128;
/// Rows of C per unit of the thread partition ([`partition`]).
#[cfg(feature = "std")]
const PARTITION_ROWS: usize = 12;
/// Columns of C per unit of the thread partition ([`partition`]).
#[cfg(feature = "std")]
const PARTITION_COLS: usize = 32;
/// Multiply-adds per thread below which extra threads are not worth starting.
#[cfg(feature = "std")]
const MACS_PER_THREAD_MIN: usize = 1 << 21;

/// A micro-kernel family.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum GemmKernel {
    /// Portable scalar code (the reference).
    Scalar,
    /// AVX-512F: two f32 FMAs per K pair over bf16-packed panels.
    Avx512Fma,
    /// AVX-512 BF16: one `vdpbf16ps` per K pair (and, with AVX512-VBMI, a kernel of its own
    /// for short problems).
    Avx512Bf16,
    /// AVX2 and FMA (x86-64 without AVX-512): two f32 FMAs per K pair over FP8 → f32 panels.
    Avx2Fma,
    /// NEON (AArch64): two f32 FMAs per K pair over FP8 → f32 panels.
    Neon,
    /// AMX (x86-64 with AMX-TILE and AMX-BF16, e.g. Xeon Sapphire Rapids and later; Linux):
    /// `tdpbf16ps` on bf16 tiles. **Opt-in and not bit-identical** to the other kernels: the
    /// hardware's summation inside each instruction differs from the defined order (see
    /// "Kernels and how they are chosen" in the [module documentation](self)); never chosen by
    /// [`GemmKernel::best`] or [`GemmKernel::for_backend`]. Select it with
    /// [`Exec::with_gemm_kernel`] or `UNITFP8_GEMM_KERNEL=amx-bf16`.
    AmxBf16,
}

impl GemmKernel {
    /// All kernels: the exact ones fastest first, then the opt-in [`GemmKernel::AmxBf16`].
    pub const ALL: [GemmKernel; 6] = [
        GemmKernel::Avx512Bf16,
        GemmKernel::Avx512Fma,
        GemmKernel::Avx2Fma,
        GemmKernel::Neon,
        GemmKernel::Scalar,
        GemmKernel::AmxBf16,
    ];

    /// Lower-case name.
    pub const fn name(self) -> &'static str {
        match self {
            GemmKernel::Scalar => "scalar",
            GemmKernel::Avx512Fma => "avx512-fma",
            GemmKernel::Avx512Bf16 => "avx512-bf16",
            GemmKernel::Avx2Fma => "avx2-fma",
            GemmKernel::Neon => "neon",
            GemmKernel::AmxBf16 => "amx-bf16",
        }
    }

    /// The kernel named `name` (as [`GemmKernel::name`] spells it), if any.
    pub fn from_name(name: &str) -> Option<GemmKernel> {
        GemmKernel::ALL.into_iter().find(|k| k.name() == name)
    }

    /// Whether the kernel follows the defined summation order bit for bit (every kernel but
    /// [`GemmKernel::AmxBf16`]).
    pub const fn is_exact(self) -> bool {
        !matches!(self, GemmKernel::AmxBf16)
    }

    /// Whether this build and this CPU can run the kernel.
    pub fn is_available(self) -> bool {
        registry::available(self).is_some()
    }

    /// `Ok` when this CPU can run the kernel, else [`Status::Unsupported`](crate::error::Status)
    /// naming it.
    pub fn check_available(self) -> Result<(), Error> {
        if self.is_available() {
            Ok(())
        } else {
            Err(Error::unsupported(
                "GEMM kernel {} is not available on this CPU",
                &[self.name().into()],
            ))
        }
    }

    /// The kernel a back end setting selects: the fastest available kernel of that back end
    /// ([`Backend::Avx512`]: AVX-512 BF16, else AVX-512F; [`Backend::Neon`]: NEON), and the
    /// scalar reference for [`Backend::Scalar`] and for back ends this CPU lacks.
    pub fn for_backend(backend: Backend) -> GemmKernel {
        registry::for_backend(backend)
    }

    /// The fastest kernel this CPU runs: the AVX-512 or NEON kernel where there is one, the
    /// AVX2+FMA kernel on x86-64 CPUs with AVX2 and FMA but no AVX-512 (which have no SIMD
    /// back end for the element-wise kernels), else the scalar reference. Results are
    /// bit-identical whichever runs.
    pub fn best() -> GemmKernel {
        registry::best()
    }
}

/// A read-only strided matrix view: element `(i, j)` is `data[origin + i·row_stride +
/// j·col_stride]`.
#[derive(Clone, Copy, Debug)]
pub struct MatRef<'a, T> {
    data: &'a [T],
    origin: usize,
    rows: usize,
    cols: usize,
    row_stride: isize,
    col_stride: isize,
}

/// A mutable strided matrix view (see [`MatRef`]).
#[derive(Debug)]
pub struct MatMut<'a, T> {
    data: &'a mut [T],
    origin: usize,
    rows: usize,
    cols: usize,
    row_stride: isize,
    col_stride: isize,
}

/// Checks that every element of a `rows × cols` view at `origin` lies inside `len` elements.
fn check_view(
    len: usize,
    origin: usize,
    rows: usize,
    cols: usize,
    rs: isize,
    cs: isize,
) -> Result<(), Error> {
    if rows == 0 || cols == 0 {
        return Ok(());
    }
    let outside = || {
        Error::invalid(
            "a view with strides ({}, {}) reaches outside its {} elements",
            &[rs.into(), cs.into(), len.into()],
        )
    };
    let (lo, hi) = span(rows, cols, rs, cs).ok_or_else(outside)?;
    let o = isize::try_from(origin).map_err(|_| outside())?;
    let first = o.checked_add(lo).ok_or_else(outside)?;
    let last = o.checked_add(hi).ok_or_else(outside)?;
    if first < 0 || last as usize >= len {
        return Err(outside());
    }
    Ok(())
}

macro_rules! view_ctors {
    ($ty:ident, $slice:ty) => {
        impl<'a, T> $ty<'a, T> {
            /// A view with element `(i, j)` at `data[origin + i·row_stride + j·col_stride]`;
            /// [`Status::InvalidArgument`](crate::error::Status::InvalidArgument) when an element falls outside `data`.
            pub fn with_origin(
                data: $slice,
                origin: usize,
                rows: usize,
                cols: usize,
                row_stride: isize,
                col_stride: isize,
            ) -> Result<Self, Error> {
                check_view(data.len(), origin, rows, cols, row_stride, col_stride)?;
                Ok($ty {
                    data,
                    origin,
                    rows,
                    cols,
                    row_stride,
                    col_stride,
                })
            }

            /// A view with element `(i, j)` at `data[i·row_stride + j·col_stride]`.
            pub fn new(
                data: $slice,
                rows: usize,
                cols: usize,
                row_stride: isize,
                col_stride: isize,
            ) -> Result<Self, Error> {
                Self::with_origin(data, 0, rows, cols, row_stride, col_stride)
            }

            /// A dense row-major view (numpy's default).
            pub fn row_major(data: $slice, rows: usize, cols: usize) -> Result<Self, Error> {
                let ld = isize::try_from(cols)
                    .map_err(|_| Error::invalid("cols ({}) is too large", &[cols.into()]))?;
                Self::new(data, rows, cols, ld, 1)
            }

            /// A dense column-major view (Julia's and Fortran's).
            pub fn col_major(data: $slice, rows: usize, cols: usize) -> Result<Self, Error> {
                let ld = isize::try_from(rows)
                    .map_err(|_| Error::invalid("rows ({}) is too large", &[rows.into()]))?;
                Self::new(data, rows, cols, 1, ld)
            }

            /// Number of rows.
            pub fn rows(&self) -> usize {
                self.rows
            }

            /// Number of columns.
            pub fn cols(&self) -> usize {
                self.cols
            }

            /// The transposed view (no copy).
            pub fn t(self) -> Self {
                $ty {
                    rows: self.cols,
                    cols: self.rows,
                    row_stride: self.col_stride,
                    col_stride: self.row_stride,
                    ..self
                }
            }
        }
    };
}
view_ctors!(MatRef, &'a [T]);
view_ctors!(MatMut, &'a mut [T]);

pub use crate::op::{RawGemm, RawMatrix};

/// A validated, normalised problem (C strides non-negative). Strides in elements.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Problem {
    pub m: usize,
    pub n: usize,
    pub k: usize,
    pub alpha: f32,
    pub beta: f32,
    pub a: *const u8,
    pub a_fmt: Fp8Format,
    pub rsa: isize,
    pub csa: isize,
    pub b: *const u8,
    pub b_fmt: Fp8Format,
    pub rsb: isize,
    pub csb: isize,
    pub c: *mut u8,
    pub c_type: DType,
    pub rsc: isize,
    pub csc: isize,
}

// SAFETY: a Problem is only built from validated buffers; threads write disjoint elements of C
// and only read A and B, which do not overlap C.
unsafe impl Send for Problem {}
// SAFETY: as above.
unsafe impl Sync for Problem {}

impl Problem {
    /// The sub-problem of rows `[m0, m1)` and columns `[n0, n1)` of C.
    #[cfg_attr(not(feature = "std"), allow(dead_code))]
    fn sub(&self, m0: usize, m1: usize, n0: usize, n1: usize) -> Problem {
        let size = self.c_type.size() as isize;
        // wrapping_offset: the results are addresses inside the validated ranges (or one
        // element past nothing when the block is empty, which is never dereferenced).
        Problem {
            m: m1 - m0,
            n: n1 - n0,
            a: self.a.wrapping_offset(m0 as isize * self.rsa),
            b: self.b.wrapping_offset(n0 as isize * self.csb),
            c: self
                .c
                .wrapping_offset((m0 as isize * self.rsc + n0 as isize * self.csc) * size),
            ..*self
        }
    }

    /// `Cᵀ = Bᵀ·Aᵀ`: the same elements computed with the roles of rows and columns swapped.
    fn transposed(&self) -> Problem {
        Problem {
            m: self.n,
            n: self.m,
            a: self.b,
            a_fmt: self.b_fmt,
            rsa: self.csb,
            csa: self.rsb,
            b: self.a,
            b_fmt: self.a_fmt,
            rsb: self.csa,
            csb: self.rsa,
            rsc: self.csc,
            csc: self.rsc,
            ..*self
        }
    }
}

/// Validates a raw GEMM; `Ok(None)` when there is nothing to compute.
fn validate(g: &RawGemm) -> Result<Option<Problem>, Error> {
    Ok(GemmOp::new(g)?.map(orient))
}

/// The problem a validated GEMM is, oriented for the micro-kernels.
fn orient(op: GemmOp) -> Problem {
    let GemmOp { g, a_fmt, b_fmt } = op;
    let (m, n, k, c_type) = (g.m, g.n, g.k, g.c.dtype);
    let mut p = Problem {
        m,
        n,
        k,
        alpha: g.alpha,
        beta: g.beta,
        a: g.a.ptr,
        a_fmt,
        rsa: g.a.row_stride,
        csa: g.a.col_stride,
        b: g.b.ptr,
        b_fmt,
        rsb: g.b.row_stride,
        csb: g.b.col_stride,
        c: g.c.ptr as *mut u8,
        c_type,
        rsc: g.c.row_stride,
        csc: g.c.col_stride,
    };
    // Make C's strides non-negative by reversing the order of rows (columns) of A and C (B and
    // C); every element is computed exactly as before.
    let size = c_type.size() as isize;
    if p.rsc < 0 {
        let last = (m - 1) as isize;
        p.c = p.c.wrapping_offset(last * p.rsc * size);
        p.a = p.a.wrapping_offset(last * p.rsa);
        p.rsc = -p.rsc;
        p.rsa = -p.rsa;
    }
    if p.csc < 0 {
        let last = (n - 1) as isize;
        p.c = p.c.wrapping_offset(last * p.csc * size);
        p.b = p.b.wrapping_offset(last * p.csb);
        p.csc = -p.csc;
        p.csb = -p.csb;
    }
    // Put C's unit stride along the vector (column) dimension of the micro-kernel.
    let along_n = if p.csc == 1 { n } else { 0 };
    let along_m = if p.rsc == 1 { m } else { 0 };
    if along_m > along_n {
        p = p.transposed();
    }
    p
}

/// `C ← β·C` (zeros when β = 0) for `k = 0`.
///
/// # Safety
/// `p` was validated.
unsafe fn scale_c(p: &Problem) {
    for i in 0..p.m {
        for j in 0..p.n {
            let idx = i as isize * p.rsc + j as isize * p.csc;
            // SAFETY: (i, j) is inside the validated C.
            unsafe {
                let x = if p.beta != 0.0 {
                    crate::nan::canonical(p.beta * scalar::load_c(p.c, p.c_type, idx))
                } else {
                    0.0
                };
                scalar::store_c(p.c, p.c_type, idx, x);
            }
        }
    }
}

/// Bytes of workspace [`Exec::gemm_raw_with_workspace`] needs for a problem of this size (0 for
/// the scalar kernel and for kernels this build lacks).
pub fn gemm_workspace_size(kernel: GemmKernel, m: usize, n: usize, k: usize) -> usize {
    if m == 0 || n == 0 || k == 0 {
        return 0;
    }
    registry::entry(kernel).map_or(0, |e| registry::workspace_size(e, m, n, k))
}

/// Runs a validated problem with `k > 0` on one thread, using `ws` for packing.
///
/// # Safety
/// `p` was validated; `kernel` is available; `ws` holds at least
/// `gemm_workspace_size(kernel, p.m, p.n, p.k)` bytes.
unsafe fn run_serial(kernel: GemmKernel, p: &Problem, ws: &mut [u8]) {
    let entry = registry::entry(kernel).unwrap_or(&scalar::ENTRY);
    let run = registry::choose(entry, p);
    // SAFETY: forwarded contract (the workspace size covers the kernel chosen for any problem
    // of this size).
    unsafe { run(p, ws) }
}

/// Splits C into `parts` disjoint blocks along its larger dimension (in panel units), returning
/// `(m0, m1, n0, n1)`.
#[cfg(feature = "std")]
fn partition(m: usize, n: usize, parts: usize) -> Vec<(usize, usize, usize, usize)> {
    let (mp, np) = (m.div_ceil(PARTITION_ROWS), n.div_ceil(PARTITION_COLS));
    let by_n = np >= mp;
    let (units, unit, len) = if by_n {
        (np, PARTITION_COLS, n)
    } else {
        (mp, PARTITION_ROWS, m)
    };
    let parts = parts.min(units).max(1);
    (0..parts)
        .map(|t| {
            let s = (units * t / parts * unit).min(len);
            let e = (units * (t + 1) / parts * unit).min(len);
            if by_n { (0, m, s, e) } else { (s, e, 0, n) }
        })
        .filter(|b| b.0 < b.1 && b.2 < b.3)
        .collect()
}

/// Packing buffers kept for reuse between calls (fresh zeroed pages would cost page faults).
#[cfg(feature = "std")]
static POOL: std::sync::Mutex<Vec<Vec<u64>>> = std::sync::Mutex::new(Vec::new());
/// Most buffers [`POOL`] keeps.
#[cfg(feature = "std")]
const POOL_MAX: usize = 8;

/// Runs `f` on a workspace of at least `bytes` bytes (8-byte aligned; the kernels align
/// further), taken from and returned to [`POOL`]. Its contents are arbitrary: packing writes
/// every word the micro-kernels read.
#[cfg(feature = "std")]
fn with_workspace<R>(bytes: usize, f: impl FnOnce(&mut [u8]) -> R) -> R {
    let words = bytes.div_ceil(8);
    let mut v = POOL
        .lock()
        .ok()
        .and_then(|mut pool| pool.pop())
        .unwrap_or_default();
    if v.len() < words {
        v = vec![0; words];
    }
    // SAFETY: a u64 buffer viewed as bytes, same allocation and length in bytes.
    let view = unsafe { core::slice::from_raw_parts_mut(v.as_mut_ptr().cast::<u8>(), v.len() * 8) };
    let r = f(view);
    if let Ok(mut pool) = POOL.lock()
        && pool.len() < POOL_MAX
    {
        pool.push(v);
    }
    r
}

/// Runs a validated problem on up to `threads` threads.
///
/// # Safety
/// `p` was validated and `kernel` is available.
#[cfg(feature = "std")]
unsafe fn run_threads(kernel: GemmKernel, p: &Problem, threads: usize) {
    let macs = p.m.saturating_mul(p.n).saturating_mul(p.k);
    let threads = threads.min(macs / MACS_PER_THREAD_MIN).max(1);
    let blocks = partition(p.m, p.n, threads);
    let one = |b: (usize, usize, usize, usize)| {
        let sub = p.sub(b.0, b.1, b.2, b.3);
        let bytes = gemm_workspace_size(kernel, sub.m, sub.n, sub.k);
        // SAFETY: sub is a block of a validated problem; the workspace is large enough.
        with_workspace(bytes, |ws| unsafe { run_serial(kernel, &sub, ws) });
    };
    crate::parallel::run_parts(blocks.len(), blocks.len(), &|i| one(blocks[i]));
}

/// `C ← α·A·B + β·C` with the global [`Exec`] (see the [module documentation](self)).
///
/// A and B are E4M3 or E5M2 ([`Status::Unsupported`](crate::error::Status::Unsupported) otherwise); C is f32, bf16, E4M3 or E5M2.
/// Shapes must agree (A m×k, B k×n, C m×n), else [`Status::InvalidArgument`](crate::error::Status::InvalidArgument); a C view that maps
/// two elements to one is [`Status::Overlap`](crate::error::Status::Overlap). C is untouched on error.
pub fn gemm<A: Element, B: Element, C: Element>(
    alpha: f32,
    a: MatRef<'_, A>,
    b: MatRef<'_, B>,
    beta: f32,
    c: MatMut<'_, C>,
) -> Result<(), Error> {
    Exec::global().gemm(alpha, a, b, beta, c)
}

impl Exec {
    /// [`gemm`] with these settings.
    pub fn gemm<A: Element, B: Element, C: Element>(
        &self,
        alpha: f32,
        a: MatRef<'_, A>,
        b: MatRef<'_, B>,
        beta: f32,
        c: MatMut<'_, C>,
    ) -> Result<(), Error> {
        self.gemm_with_kernel(self.gemm_kernel(), alpha, a, b, beta, c)
    }

    /// [`gemm`] forced onto one micro-kernel family ([`Status::Unsupported`](crate::error::Status::Unsupported) when this CPU lacks
    /// it), with these settings' thread count. For tests and benchmarks.
    pub fn gemm_with_kernel<A: Element, B: Element, C: Element>(
        &self,
        kernel: GemmKernel,
        alpha: f32,
        a: MatRef<'_, A>,
        b: MatRef<'_, B>,
        beta: f32,
        c: MatMut<'_, C>,
    ) -> Result<(), Error> {
        require(
            a.rows == c.rows,
            "c has {} rows, a has {} (a is m x k, c is m x n)",
            &[c.rows.into(), a.rows.into()],
        )?;
        require(
            b.cols == c.cols,
            "c has {} columns, b has {} (b is k x n, c is m x n)",
            &[c.cols.into(), b.cols.into()],
        )?;
        require(
            a.cols == b.rows,
            "a has {} columns, b has {} rows (a is m x k, b is k x n)",
            &[a.cols.into(), b.rows.into()],
        )?;
        let raw = |ptr: *const u8, dtype, rs, cs| RawMatrix {
            ptr,
            dtype,
            row_stride: rs,
            col_stride: cs,
        };
        // The views were bounds-checked at construction; origin is an in-bounds index (or the
        // view is empty, in which case the pointer is never dereferenced).
        let g = RawGemm {
            m: c.rows,
            n: c.cols,
            k: a.cols,
            alpha,
            a: raw(
                a.data.as_ptr().wrapping_add(a.origin).cast(),
                A::DTYPE,
                a.row_stride,
                a.col_stride,
            ),
            b: raw(
                b.data.as_ptr().wrapping_add(b.origin).cast(),
                B::DTYPE,
                b.row_stride,
                b.col_stride,
            ),
            beta,
            c: raw(
                c.data
                    .as_mut_ptr()
                    .wrapping_add(c.origin)
                    .cast_const()
                    .cast(),
                C::DTYPE,
                c.row_stride,
                c.col_stride,
            ),
        };
        // SAFETY: every element of each view lies inside its slice; C is borrowed mutably and
        // so cannot overlap A or B.
        unsafe { self.gemm_raw_with_kernel(kernel, &g) }
    }

    /// The GEMM on raw pointers, with these settings (packing buffers are allocated per thread).
    /// Errors: bad types ([`Status::Unsupported`](crate::error::Status::Unsupported) for non-FP8 A/B or f16 C), β ≠ 0 with FP8 C
    /// ([`Status::InvalidArgument`](crate::error::Status::InvalidArgument)), null pointers ([`Status::NullPointer`](crate::error::Status::NullPointer); A and B may be null
    /// when `k = 0`, everything when `m·n = 0`), strides whose extent overflows
    /// ([`Status::InvalidArgument`](crate::error::Status::InvalidArgument)), overlaps ([`Status::Overlap`](crate::error::Status::Overlap)). C is untouched on error.
    ///
    /// # Safety
    /// Each operand must be valid (A, B readable, C readable and writable) at every element its
    /// shape and strides address.
    #[cfg(feature = "std")]
    pub unsafe fn gemm_raw(&self, g: &RawGemm) -> Result<(), Error> {
        // SAFETY: forwarded contract.
        unsafe { self.gemm_raw_with_kernel(self.gemm_kernel(), g) }
    }

    /// [`Exec::gemm_raw`] forced onto `kernel`.
    ///
    /// # Safety
    /// As [`Exec::gemm_raw`].
    #[cfg(feature = "std")]
    pub unsafe fn gemm_raw_with_kernel(
        &self,
        kernel: GemmKernel,
        g: &RawGemm,
    ) -> Result<(), Error> {
        // SAFETY: forwarded contract (`run_gemm` checks that the kernel is available).
        unsafe { self.run_gemm(kernel, GemmOp::new(g)?) }
    }

    /// Runs a validated GEMM (`None`: nothing to compute) with `kernel` on these settings'
    /// threads.
    ///
    /// # Safety
    /// The operands of `op` are valid for their shapes and strides.
    #[cfg(feature = "std")]
    pub(crate) unsafe fn run_gemm(
        &self,
        kernel: GemmKernel,
        op: Option<GemmOp>,
    ) -> Result<(), Error> {
        kernel.check_available()?;
        let Some(p) = op.map(orient) else {
            return Ok(());
        };
        if p.k == 0 {
            // SAFETY: validated.
            unsafe { scale_c(&p) };
            return Ok(());
        }
        // SAFETY: validated, kernel available.
        unsafe { run_threads(kernel, &p, self.threads()) };
        Ok(())
    }

    /// Without `std`: the GEMM on one thread with the scalar kernel whatever `kernel` says (the
    /// SIMD kernels need [`Exec::gemm_raw_with_workspace`]).
    ///
    /// # Safety
    /// As [`Exec::gemm_raw`].
    #[cfg(not(feature = "std"))]
    pub unsafe fn gemm_raw_with_kernel(
        &self,
        kernel: GemmKernel,
        g: &RawGemm,
    ) -> Result<(), Error> {
        kernel.check_available()?;
        let Some(p) = validate(g)? else {
            return Ok(());
        };
        // SAFETY: validated; the scalar kernel needs no workspace.
        unsafe {
            if p.k == 0 {
                scale_c(&p);
            } else {
                scalar::run(&p);
            }
        }
        Ok(())
    }

    /// The GEMM on the calling thread with `kernel`, packing into the caller's `workspace` (at
    /// least [`gemm_workspace_size`] bytes, else [`Status::InvalidArgument`](crate::error::Status::InvalidArgument)). Allocates nothing;
    /// available without `std`. Errors as [`Exec::gemm_raw`].
    ///
    /// # Safety
    /// As [`Exec::gemm_raw`].
    pub unsafe fn gemm_raw_with_workspace(
        &self,
        kernel: GemmKernel,
        g: &RawGemm,
        workspace: &mut [u8],
    ) -> Result<(), Error> {
        kernel.check_available()?;
        let need = gemm_workspace_size(kernel, g.m, g.n, g.k);
        require(
            workspace.len() >= need,
            "workspace has {} bytes, this problem needs {}",
            &[workspace.len().into(), need.into()],
        )?;
        let Some(p) = validate(g)? else {
            return Ok(());
        };
        // SAFETY: validated; the workspace is large enough (its size bounds any orientation).
        unsafe {
            if p.k == 0 {
                scale_c(&p);
            } else {
                run_serial(kernel, &p, workspace);
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::op::self_overlaps;

    #[test]
    fn bf16_table_matches_decode() {
        for fmt in [Fp8Format::E4M3, Fp8Format::E5M2] {
            for code in 0..=255u8 {
                let want = (fmt.decode(code).to_bits() >> 16) as u16;
                assert_eq!(
                    scalar::bf16_lut(fmt)[code as usize],
                    want,
                    "{fmt:?} {code:#x}"
                );
                assert_eq!(
                    fmt.decode(code).to_bits() & 0xFFFF,
                    0,
                    "{fmt:?} {code:#x} not bf16"
                );
            }
        }
    }

    #[test]
    fn self_overlap_is_exact() {
        // Brute force against the closed form.
        for rows in 1..6usize {
            for cols in 1..6usize {
                for rs in -7isize..=7 {
                    for cs in -7isize..=7 {
                        let mut seen = std::collections::HashSet::new();
                        let mut dup = false;
                        for i in 0..rows as isize {
                            for j in 0..cols as isize {
                                dup |= !seen.insert(i * rs + j * cs);
                            }
                        }
                        assert_eq!(
                            self_overlaps(rows, cols, rs, cs),
                            dup,
                            "{rows}x{cols} {rs} {cs}"
                        );
                    }
                }
            }
        }
    }
}
