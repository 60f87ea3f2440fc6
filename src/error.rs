//! Errors and their C status codes.

use core::fmt;

/// Why a call failed. Every failing call leaves its outputs untouched.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Error {
    /// A required pointer was null (C ABI only).
    NullPointer,
    /// A bad dtype or rounding value, a bad size or leading dimension, a NaN or out-of-range τ,
    /// or slices whose lengths do not match.
    InvalidArgument,
    /// Two buffers overlap in a way the operation does not allow.
    Overlap,
    /// The combination of arguments is valid but not supported (for example stochastic rounding
    /// to a non-FP8 type, or a back end this CPU lacks).
    Unsupported,
    /// An internal error: a caught panic. Please report it.
    Internal,
}

impl Error {
    /// The C status code (`UNITFP8_ERROR_*`): always nonzero.
    pub const fn status(self) -> i32 {
        match self {
            Error::NullPointer => 1,
            Error::InvalidArgument => 2,
            Error::Overlap => 3,
            Error::Unsupported => 4,
            Error::Internal => 5,
        }
    }

    /// A short English description.
    pub const fn message(self) -> &'static str {
        match self {
            Error::NullPointer => "null pointer",
            Error::InvalidArgument => "invalid argument",
            Error::Overlap => "illegal overlap of buffers",
            Error::Unsupported => "unsupported combination",
            Error::Internal => "internal error",
        }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.message())
    }
}

#[cfg(feature = "std")]
impl std::error::Error for Error {}
