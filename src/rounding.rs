//! Rounding modes, with their C ABI codes. A leaf module: the FP8 codecs ([`crate::fp8`]) and
//! the element types ([`crate::dtype`]) both use it.

use crate::error::{Error, Value};

/// How a value is rounded to a narrower type. The discriminants are the C ABI codes.
///
/// | mode | in range | beyond ±max, ±Inf | NaN |
/// |---|---|---|---|
/// | `NearestSaturate` | round to nearest, ties to even | ±max finite | NaN |
/// | `Nearest` | round to nearest, ties to even | E4M3: NaN; E5M2, bf16, f16: ±Inf | NaN |
/// | `StochasticSaturate` | up with probability (x − lo)/(hi − lo) | ±max finite | NaN |
///
/// `Nearest` equals `ml_dtypes` / PyTorch `.to()`. `NearestSaturate` is the μS clip-cast
/// (CUDA `satfinite`). Stochastic rounding is for FP8 destinations only; its random bits for
/// element `i` are a hash of `(seed, i)` (see [`crate::rng`]), so results do not depend on
/// the back end, the SIMD width or the thread count.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
#[repr(u32)]
pub enum Rounding {
    /// Round to nearest even, clip to ±max finite (the default; μS).
    #[default]
    NearestSaturate = 0,
    /// Round to nearest even, IEEE-style overflow (identical to ml_dtypes).
    Nearest = 1,
    /// Unbiased stochastic rounding with saturation.
    StochasticSaturate = 2,
}

impl Rounding {
    /// Parses a C ABI code; anything else is [`Status::InvalidArgument`](crate::error::Status::InvalidArgument).
    pub fn from_code(code: u32) -> Result<Rounding, Error> {
        match code {
            0 => Ok(Rounding::NearestSaturate),
            1 => Ok(Rounding::Nearest),
            2 => Ok(Rounding::StochasticSaturate),
            _ => Err(Error::invalid(
                "rounding must be a rounding code (0 nearest-saturate, 1 nearest, 2 stochastic-saturate), got {}",
                &[Value::U(u64::from(code))],
            )),
        }
    }

    /// Whether overflow clips to ±max finite.
    pub const fn saturates(self) -> bool {
        !matches!(self, Rounding::Nearest)
    }
}
