//! Element types, with their C ABI codes (and [`Rounding`], re-exported).

use crate::error::{Error, Value};
use crate::fp8::{E4M3, E5M2, Fp8Format};
/// Rounding modes live in [`crate::rounding`] (the FP8 codecs use them without depending on
/// this module); re-exported here with the element types they apply to.
pub use crate::rounding::Rounding;
use half::{bf16, f16};

/// An element type. The discriminants are the C ABI codes (`UNITFP8_F32` …).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[repr(u32)]
pub enum DType {
    /// IEEE binary32.
    F32 = 0,
    /// bfloat16 (the top half of a binary32).
    BF16 = 1,
    /// IEEE binary16.
    F16 = 2,
    /// OCP FP8 E4M3 (E4M3FN): bias 7, max 448, NaN = S.1111.111, no infinities.
    E4M3 = 3,
    /// OCP FP8 E5M2: bias 15, max 57344, infinities and NaNs as in binary16.
    E5M2 = 4,
}

impl DType {
    /// Parses a C ABI code; anything else is [`Status::InvalidArgument`](crate::error::Status::InvalidArgument).
    pub fn from_code(code: u32) -> Result<DType, Error> {
        DType::parse("dtype", code)
    }

    /// [`DType::from_code`] for the argument named `arg` (the name goes into the error).
    pub fn parse(arg: &'static str, code: u32) -> Result<DType, Error> {
        match code {
            0 => Ok(DType::F32),
            1 => Ok(DType::BF16),
            2 => Ok(DType::F16),
            3 => Ok(DType::E4M3),
            4 => Ok(DType::E5M2),
            _ => Err(Error::invalid(
                "{} must be an element type code (0 f32, 1 bf16, 2 f16, 3 e4m3, 4 e5m2), got {}",
                &[Value::S(arg), Value::U(u64::from(code))],
            )),
        }
    }

    /// Size of one element in bytes.
    pub const fn size(self) -> usize {
        match self {
            DType::F32 => 4,
            DType::BF16 | DType::F16 => 2,
            DType::E4M3 | DType::E5M2 => 1,
        }
    }

    /// The FP8 format, for the two FP8 types.
    pub const fn fp8(self) -> Option<Fp8Format> {
        match self {
            DType::E4M3 => Some(Fp8Format::E4M3),
            DType::E5M2 => Some(Fp8Format::E5M2),
            _ => None,
        }
    }

    /// Lower-case name (`"f32"`, `"bf16"`, `"f16"`, `"e4m3"`, `"e5m2"`).
    pub const fn name(self) -> &'static str {
        match self {
            DType::F32 => "f32",
            DType::BF16 => "bf16",
            DType::F16 => "f16",
            DType::E4M3 => "e4m3",
            DType::E5M2 => "e5m2",
        }
    }
}

mod sealed {
    pub trait Sealed {}
}

/// A type the kernels read and write: `f32`, [`bf16`], [`f16`](struct@half::f16), [`E4M3`] or [`E5M2`].
///
/// Sealed: all five are plain-old-data with the size of their [`DType`].
pub trait Element: Copy + sealed::Sealed + 'static {
    /// The matching [`DType`].
    const DTYPE: DType;
}

macro_rules! element {
    ($t:ty, $d:ident) => {
        impl sealed::Sealed for $t {}
        impl Element for $t {
            const DTYPE: DType = DType::$d;
        }
    };
}
element!(f32, F32);
element!(bf16, BF16);
element!(f16, F16);
element!(E4M3, E4M3);
element!(E5M2, E5M2);
