//! The μS unit-scaled linear layer in PyTorch's layout, as thin entry points over the
//! [GEMM](crate::gemm).
//!
//! Shapes (all dense row-major): `x: [batch, fan_in]`, `W: [fan_out, fan_in]`,
//! `y, dy: [batch, fan_out]`, `dW: [fan_out, fan_in]`.
//!
//! - forward: `y = α·x·Wᵀ` (x, W in E4M3; y in f32, bf16, E4M3 or E5M2);
//! - backward data: `dx = α·dy·W + β·dx` (dy in E5M2; β = 0 overwrites);
//! - backward weight: `dW = α·dyᵀ·x + β·dW` (f32; β = 1 accumulates).
//!
//! `α` NaN or ≤ 0 means the μS default `1/sqrt(fan_in)`; any other value is used as given
//! (Unit Scaling's separate backward scales).

#[cfg(feature = "std")]
use crate::DType;
use crate::dtype::Element;
#[allow(unused_imports)] // Status: linked from the docs
use crate::error::Status;
use crate::error::{Error, require};
use crate::exec::Exec;
use crate::fp8::{E4M3, E5M2};
use crate::gemm::{MatMut, MatRef};
#[cfg(feature = "std")]
use crate::op::{LinearLayout, linear_gemm};

pub use crate::op::{LinearOp, LinearShape, effective_alpha};

/// [`Status::InvalidArgument`] unless slice `arg` has exactly `rows·cols` elements.
fn exact<T>(arg: &'static str, s: &[T], rows: usize, cols: usize) -> Result<(), Error> {
    let need = rows.checked_mul(cols);
    require(
        need == Some(s.len()),
        "{} has {} elements, its shape is {} x {}",
        &[arg.into(), s.len().into(), rows.into(), cols.into()],
    )
}

/// Forward `y = α·x·Wᵀ` with the global [`Exec`]. Slices must have exactly their shape's
/// length ([`Status::InvalidArgument`]).
pub fn linear_forward<Y: Element>(
    shape: LinearShape,
    alpha: f32,
    x: &[E4M3],
    w: &[E4M3],
    y: &mut [Y],
) -> Result<(), Error> {
    Exec::global().linear_forward(shape, alpha, x, w, y)
}

/// Backward data `dx = α·dy·W + β·dx` with the global [`Exec`] (β = 0 overwrites dx without
/// reading it; FP8 dx needs β = 0).
pub fn linear_backward_data<X: Element>(
    shape: LinearShape,
    alpha: f32,
    dy: &[E5M2],
    w: &[E4M3],
    beta: f32,
    dx: &mut [X],
) -> Result<(), Error> {
    Exec::global().linear_backward_data(shape, alpha, dy, w, beta, dx)
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
        exact("x", x, s.batch, s.fan_in)?;
        exact("w", w, s.fan_out, s.fan_in)?;
        exact("y", y, s.batch, s.fan_out)?;
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
        beta: f32,
        dx: &mut [X],
    ) -> Result<(), Error> {
        exact("dy", dy, s.batch, s.fan_out)?;
        exact("w", w, s.fan_out, s.fan_in)?;
        exact("dx", dx, s.batch, s.fan_in)?;
        let a = MatRef::row_major(dy, s.batch, s.fan_out)?;
        let b = MatRef::row_major(w, s.fan_out, s.fan_in)?;
        let c = MatMut::row_major(dx, s.batch, s.fan_in)?;
        self.gemm(effective_alpha(alpha, s.fan_in), a, b, beta, c)
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
        exact("dy", dy, s.batch, s.fan_out)?;
        exact("x", x, s.batch, s.fan_in)?;
        exact("dw", dw, s.fan_out, s.fan_in)?;
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
        let op = linear_gemm(
            which,
            LinearLayout::Natural,
            s,
            alpha,
            a,
            b,
            beta,
            c.cast_const(),
            c_type,
        )?;
        // SAFETY: forwarded contract (dense buffers of these shapes).
        unsafe { self.run_gemm(self.gemm_kernel(), op) }
    }
}
