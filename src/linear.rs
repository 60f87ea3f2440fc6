//! The μS unit-scaled linear layer in PyTorch's layout, as thin entry points over the
//! [GEMM](crate::gemm).
//!
//! Shapes (all dense row-major): `x: [batch, fan_in]`, `W: [fan_out, fan_in]`,
//! `y, dy: [batch, fan_out]`, `dW: [fan_out, fan_in]`.
//!
//! - forward: `y = α·x·Wᵀ` (x, W in E4M3; y in f32, bf16, E4M3 or E5M2);
//! - backward data: `dx = α·dy·W` (dy in E5M2);
//! - backward weight: `dW = α·dyᵀ·x + β·dW` (f32; β = 1 accumulates).
//!
//! `α` NaN or ≤ 0 means the μS default `1/sqrt(fan_in)`; any other value is used as given
//! (Unit Scaling's separate backward scales).

#[cfg(feature = "std")]
use crate::DType;
use crate::dtype::Element;
use crate::error::Error;
use crate::exec::Exec;
use crate::fp8::{E4M3, E5M2};
use crate::gemm::{MatMut, MatRef};
#[cfg(feature = "std")]
use crate::gemm::{RawGemm, RawMatrix};

/// The α a call uses: `alpha` itself, or `1/sqrt(fan_in)` when `alpha` is NaN or ≤ 0.
pub fn effective_alpha(alpha: f32, fan_in: usize) -> f32 {
    if alpha.is_nan() || alpha <= 0.0 {
        1.0 / libm::sqrtf(fan_in as f32)
    } else {
        alpha
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

fn len(rows: usize, cols: usize) -> Result<usize, Error> {
    rows.checked_mul(cols).ok_or(Error::InvalidArgument)
}

fn exact<T>(s: &[T], rows: usize, cols: usize) -> Result<(), Error> {
    if s.len() == len(rows, cols)? {
        Ok(())
    } else {
        Err(Error::InvalidArgument)
    }
}

/// Forward `y = α·x·Wᵀ` with the global [`Exec`]. Slices must have exactly their shape's
/// length ([`Error::InvalidArgument`]).
pub fn linear_forward<Y: Element>(
    shape: LinearShape,
    alpha: f32,
    x: &[E4M3],
    w: &[E4M3],
    y: &mut [Y],
) -> Result<(), Error> {
    Exec::global().linear_forward(shape, alpha, x, w, y)
}

/// Backward data `dx = α·dy·W` with the global [`Exec`].
pub fn linear_backward_data<X: Element>(
    shape: LinearShape,
    alpha: f32,
    dy: &[E5M2],
    w: &[E4M3],
    dx: &mut [X],
) -> Result<(), Error> {
    Exec::global().linear_backward_data(shape, alpha, dy, w, dx)
}

/// Backward weight `dW = α·dyᵀ·x + β·dW` (f32) with the global [`Exec`].
pub fn linear_backward_weight(
    shape: LinearShape,
    alpha: f32,
    dy: &[E5M2],
    x: &[E4M3],
    beta: f32,
    dw: &mut [f32],
) -> Result<(), Error> {
    Exec::global().linear_backward_weight(shape, alpha, dy, x, beta, dw)
}

impl Exec {
    /// [`linear_forward`] with these settings.
    pub fn linear_forward<Y: Element>(
        &self,
        s: LinearShape,
        alpha: f32,
        x: &[E4M3],
        w: &[E4M3],
        y: &mut [Y],
    ) -> Result<(), Error> {
        exact(x, s.batch, s.fan_in)?;
        exact(w, s.fan_out, s.fan_in)?;
        exact(y, s.batch, s.fan_out)?;
        let a = MatRef::row_major(x, s.batch, s.fan_in)?;
        let b = MatRef::row_major(w, s.fan_out, s.fan_in)?.t();
        let c = MatMut::row_major(y, s.batch, s.fan_out)?;
        self.gemm(effective_alpha(alpha, s.fan_in), a, b, 0.0, c)
    }

    /// [`linear_backward_data`] with these settings.
    pub fn linear_backward_data<X: Element>(
        &self,
        s: LinearShape,
        alpha: f32,
        dy: &[E5M2],
        w: &[E4M3],
        dx: &mut [X],
    ) -> Result<(), Error> {
        exact(dy, s.batch, s.fan_out)?;
        exact(w, s.fan_out, s.fan_in)?;
        exact(dx, s.batch, s.fan_in)?;
        let a = MatRef::row_major(dy, s.batch, s.fan_out)?;
        let b = MatRef::row_major(w, s.fan_out, s.fan_in)?;
        let c = MatMut::row_major(dx, s.batch, s.fan_in)?;
        self.gemm(effective_alpha(alpha, s.fan_in), a, b, 0.0, c)
    }

    /// [`linear_backward_weight`] with these settings.
    pub fn linear_backward_weight(
        &self,
        s: LinearShape,
        alpha: f32,
        dy: &[E5M2],
        x: &[E4M3],
        beta: f32,
        dw: &mut [f32],
    ) -> Result<(), Error> {
        exact(dy, s.batch, s.fan_out)?;
        exact(x, s.batch, s.fan_in)?;
        exact(dw, s.fan_out, s.fan_in)?;
        let a = MatRef::row_major(dy, s.batch, s.fan_out)?.t();
        let b = MatRef::row_major(x, s.batch, s.fan_in)?;
        let c = MatMut::row_major(dw, s.fan_out, s.fan_in)?;
        self.gemm(effective_alpha(alpha, s.fan_in), a, b, beta, c)
    }

    /// The three linear-layer products on raw dense row-major buffers, for the C ABI.
    /// `which`: 0 forward (`a` = x, `b` = W, `c` = y), 1 backward data (`a` = dy, `b` = W,
    /// `c` = dx), 2 backward weight (`a` = dy, `b` = x, `c` = dW). Errors as
    /// [`Exec::gemm_raw`].
    ///
    /// # Safety
    /// Each non-null buffer must be valid for its dense shape.
    #[cfg(feature = "std")]
    #[allow(clippy::too_many_arguments)]
    pub unsafe fn linear_raw(
        &self,
        which: LinearOp,
        s: LinearShape,
        alpha: f32,
        a: *const u8,
        b: *const u8,
        beta: f32,
        c: *mut u8,
        c_type: DType,
    ) -> Result<(), Error> {
        let stride = |n: usize| isize::try_from(n).map_err(|_| Error::InvalidArgument);
        let (bi, fi, fo) = (s.batch, s.fan_in, s.fan_out);
        // Reject shapes whose element count overflows (the GEMM checks byte extents too).
        len(bi, fi)?;
        len(fo, fi)?;
        len(bi, fo)?;
        let mat = |ptr, dtype, rs, cs| RawMatrix {
            ptr,
            dtype,
            row_stride: rs,
            col_stride: cs,
        };
        let g = match which {
            LinearOp::Forward => RawGemm {
                m: bi,
                n: fo,
                k: fi,
                alpha: effective_alpha(alpha, fi),
                a: mat(a, DType::E4M3, stride(fi)?, 1),
                b: mat(b, DType::E4M3, 1, stride(fi)?),
                beta: 0.0,
                c: mat(c.cast_const(), c_type, stride(fo)?, 1),
            },
            LinearOp::BackwardData => RawGemm {
                m: bi,
                n: fi,
                k: fo,
                alpha: effective_alpha(alpha, fi),
                a: mat(a, DType::E5M2, stride(fo)?, 1),
                b: mat(b, DType::E4M3, stride(fi)?, 1),
                beta: 0.0,
                c: mat(c.cast_const(), c_type, stride(fi)?, 1),
            },
            LinearOp::BackwardWeight => RawGemm {
                m: fo,
                n: fi,
                k: bi,
                alpha: effective_alpha(alpha, fi),
                a: mat(a, DType::E5M2, 1, stride(fo)?),
                b: mat(b, DType::E4M3, stride(fi)?, 1),
                beta,
                c: mat(c.cast_const(), c_type, stride(fi)?, 1),
            },
        };
        // SAFETY: forwarded contract (dense buffers of these shapes).
        unsafe { self.gemm_raw(&g) }
    }
}

/// Which product of the linear layer [`Exec::linear_raw`] computes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LinearOp {
    /// `y = α·x·Wᵀ`.
    Forward,
    /// `dx = α·dy·W`.
    BackwardData,
    /// `dW = α·dyᵀ·x + β·dW`.
    BackwardWeight,
}
