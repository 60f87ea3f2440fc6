//! The two OCP FP8 formats and their scalar conversions: the reference every SIMD and GPU path
//! is tested against, bit for bit.
//!
//! Encoding works on the exact binary32 value (bf16 and f16 inputs widen to f32 exactly first),
//! so there is never double rounding. NaN inputs give the canonical NaN of the format with the
//! input's sign (E4M3 `S.1111.111`, E5M2 `S.11111.10`); decoding a NaN gives the canonical quiet
//! NaN of the wider type with the same sign (f32 `0x7FC00000`), as ml_dtypes does.

use crate::rounding::Rounding;
use core::num::FpCategory;
use half::{bf16, f16};

/// Which FP8 format.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Fp8Format {
    /// OCP E4M3 (E4M3FN): 4 exponent bits (bias 7), 3 mantissa bits, max 448, no infinities.
    E4M3,
    /// OCP E5M2: 5 exponent bits (bias 15), 2 mantissa bits, max 57344, ±Inf and NaNs.
    E5M2,
}

impl Fp8Format {
    /// Number of stored mantissa bits (3 or 2).
    pub const fn mantissa_bits(self) -> u32 {
        match self {
            Fp8Format::E4M3 => 3,
            Fp8Format::E5M2 => 2,
        }
    }

    /// Exponent bias (7 or 15).
    pub const fn bias(self) -> i32 {
        match self {
            Fp8Format::E4M3 => 7,
            Fp8Format::E5M2 => 15,
        }
    }

    /// Code of the largest finite magnitude (0x7E = 448 or 0x7B = 57344).
    pub const fn max_code(self) -> u8 {
        match self {
            Fp8Format::E4M3 => 0x7E,
            Fp8Format::E5M2 => 0x7B,
        }
    }

    /// Code of the canonical positive NaN (0x7F or 0x7E).
    pub const fn nan_code(self) -> u8 {
        match self {
            Fp8Format::E4M3 => 0x7F,
            Fp8Format::E5M2 => 0x7E,
        }
    }

    /// Code that a non-saturating overflow produces (E4M3: NaN 0x7F; E5M2: +Inf 0x7C).
    pub const fn overflow_code(self) -> u8 {
        match self {
            Fp8Format::E4M3 => 0x7F,
            Fp8Format::E5M2 => 0x7C,
        }
    }

    /// Whether `code` is a NaN.
    pub const fn code_is_nan(self, code: u8) -> bool {
        match self {
            Fp8Format::E4M3 => code & 0x7F == 0x7F,
            Fp8Format::E5M2 => code & 0x7F > 0x7C,
        }
    }

    /// Decodes `code` exactly to f32.
    pub const fn decode(self, code: u8) -> f32 {
        f32::from_bits(self.decode_bits(code))
    }

    /// The f32 bits of `code`, decoded exactly: the one FP8 decoder of the crate, from which
    /// every lookup table (GEMM packing, the SIMD back ends) is generated at compile time.
    /// NaN codes give the quiet NaN `sign | 0x7FC0_0000`, E5M2 ±Inf `sign | 0x7F80_0000`. The
    /// low 16 bits are always 0 (every FP8 value is a bf16 value).
    pub const fn decode_bits(self, code: u8) -> u32 {
        let sign = ((code as u32) & 0x80) << 24;
        let mag = (code & 0x7F) as u32;
        let mbits = self.mantissa_bits();
        let exp = mag >> mbits;
        let mant = mag & ((1 << mbits) - 1);
        let bits = if self.code_is_nan(code) {
            0x7FC0_0000
        } else if matches!(self, Fp8Format::E5M2) && mag == 0x7C {
            0x7F80_0000
        } else if exp == 0 {
            if mant == 0 {
                0
            } else {
                // Subnormal: mant · 2^(1 - bias - mbits) with mant = 2^lead · 1.f, normalised.
                let lead = 31 - mant.leading_zeros();
                let field = (lead as i32 + 1 - self.bias() - mbits as i32 + 127) as u32;
                (field << 23) | ((mant - (1 << lead)) << (23 - lead))
            }
        } else {
            ((exp as i32 - self.bias() + 127) as u32) << 23 | mant << (23 - mbits)
        };
        sign | bits
    }

    /// Encodes an f32 value. `random` is used only by [`Rounding::StochasticSaturate`]: the
    /// value rounds away from zero when `random < 2^32 · (|x| − lo) / (hi − lo)`, i.e.
    /// `floor(|x|/ulp + random/2^32)`, computed exactly.
    pub fn encode(self, x: f32, rounding: Rounding, random: u32) -> u8 {
        let bits = x.to_bits();
        let sign = ((bits >> 24) & 0x80) as u8;
        let abs = bits & 0x7FFF_FFFF;
        if abs > 0x7F80_0000 {
            return sign | self.nan_code();
        }
        let mbits = self.mantissa_bits();
        let bias = self.bias();
        let exp_field = (abs >> 23) as i32;
        // x = m · 2^(e - 23) with m the 24-bit significand.
        let (e, m) = if exp_field == 0 {
            (-126, (abs & 0x7F_FFFF) as u64)
        } else {
            (exp_field - 127, ((abs & 0x7F_FFFF) | 0x80_0000) as u64)
        };
        let emin = 1 - bias;
        let e_eff = if e < emin { emin } else { e };
        // Bits of m below the FP8 unit in the last place at exponent e_eff.
        let shift = (23 - mbits as i32 + (e_eff - e)) as u32;
        let q = match rounding {
            Rounding::StochasticSaturate => {
                let t = if shift >= 64 { 0 } else { (m << 32) >> shift };
                (t + random as u64) >> 32
            }
            _ => round_shift_even(m, shift),
        };
        // e_eff + bias - 1 is the biased exponent minus one; adding q (which holds the implicit
        // bit for normals) carries into the exponent field exactly as a rounding overflow should.
        let code = (((e_eff + bias - 1) as u64) << mbits) + q;
        if code > self.max_code() as u64 {
            match rounding {
                Rounding::Nearest => sign | self.overflow_code(),
                _ => sign | self.max_code(),
            }
        } else {
            sign | code as u8
        }
    }
}

/// `m / 2^shift` rounded to nearest, ties to even.
fn round_shift_even(m: u64, shift: u32) -> u64 {
    if shift == 0 {
        return m;
    }
    if shift >= 64 {
        return 0;
    }
    let q = m >> shift;
    let rem = m & ((1u64 << shift) - 1);
    let half = 1u64 << (shift - 1);
    if rem > half || (rem == half && q & 1 == 1) {
        q + 1
    } else {
        q
    }
}

macro_rules! fp8_type {
    ($name:ident, $fmt:expr, $doc:literal) => {
        #[doc = $doc]
        #[derive(Clone, Copy, PartialEq, Eq, Hash, Default)]
        #[repr(transparent)]
        pub struct $name(pub u8);

        impl $name {
            /// The format of this type.
            pub const FORMAT: Fp8Format = $fmt;
            /// +0.
            pub const ZERO: Self = Self(0x00);
            /// −0.
            pub const NEG_ZERO: Self = Self(0x80);
            /// 1.0.
            pub const ONE: Self = Self(($fmt.bias() as u8) << $fmt.mantissa_bits());
            /// Largest finite value.
            pub const MAX: Self = Self($fmt.max_code());
            /// Most negative finite value (−MAX).
            pub const MIN: Self = Self($fmt.max_code() | 0x80);
            /// Smallest positive normal value.
            pub const MIN_POSITIVE: Self = Self(1 << $fmt.mantissa_bits());
            /// Smallest positive subnormal value.
            pub const MIN_POSITIVE_SUBNORMAL: Self = Self(0x01);
            /// The canonical NaN.
            pub const NAN: Self = Self($fmt.nan_code());

            /// Wraps raw bits.
            pub const fn from_bits(bits: u8) -> Self {
                Self(bits)
            }

            /// The raw bits.
            pub const fn to_bits(self) -> u8 {
                self.0
            }

            /// Exact value as f32.
            pub fn to_f32(self) -> f32 {
                $fmt.decode(self.0)
            }

            /// Exact value as bf16 (every FP8 value is a normal bf16).
            pub fn to_bf16(self) -> bf16 {
                bf16::from_bits((self.to_f32().to_bits() >> 16) as u16)
            }

            /// Exact value as f16 (every FP8 value is a normal f16).
            pub fn to_f16(self) -> f16 {
                f16::from_f32(self.to_f32())
            }

            /// Nearest value with saturation (the μS clip-cast).
            pub fn from_f32(x: f32) -> Self {
                Self($fmt.encode(x, Rounding::NearestSaturate, 0))
            }

            /// Encodes `x` in the given rounding mode; `random` is used only by stochastic
            /// rounding (see [`Fp8Format::encode`]).
            pub fn from_f32_with(x: f32, rounding: Rounding, random: u32) -> Self {
                Self($fmt.encode(x, rounding, random))
            }

            /// Encodes a bf16 value directly (it widens to f32 exactly; no double rounding).
            pub fn from_bf16_with(x: bf16, rounding: Rounding, random: u32) -> Self {
                Self::from_f32_with(x.to_f32(), rounding, random)
            }

            /// Encodes an f16 value directly (it widens to f32 exactly; no double rounding).
            pub fn from_f16_with(x: f16, rounding: Rounding, random: u32) -> Self {
                Self::from_f32_with(x.to_f32(), rounding, random)
            }

            /// Whether this is a NaN.
            pub const fn is_nan(self) -> bool {
                $fmt.code_is_nan(self.0)
            }

            /// Whether this is finite (not NaN, not ±Inf).
            pub fn is_finite(self) -> bool {
                self.classify() != FpCategory::Nan && self.classify() != FpCategory::Infinite
            }

            /// Whether the sign bit is set (also for −0 and negative NaN).
            pub const fn is_sign_negative(self) -> bool {
                self.0 & 0x80 != 0
            }

            /// The IEEE category of the value.
            pub fn classify(self) -> FpCategory {
                let mag = self.0 & 0x7F;
                if self.is_nan() {
                    FpCategory::Nan
                } else if $fmt == Fp8Format::E5M2 && mag == 0x7C {
                    FpCategory::Infinite
                } else if mag == 0 {
                    FpCategory::Zero
                } else if mag >> $fmt.mantissa_bits() == 0 {
                    FpCategory::Subnormal
                } else {
                    FpCategory::Normal
                }
            }
        }

        impl From<$name> for f32 {
            fn from(x: $name) -> f32 {
                x.to_f32()
            }
        }

        impl core::fmt::Debug for $name {
            fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
                write!(
                    f,
                    "{}({:?}, 0x{:02x})",
                    stringify!($name),
                    self.to_f32(),
                    self.0
                )
            }
        }

        impl core::fmt::Display for $name {
            fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
                core::fmt::Display::fmt(&self.to_f32(), f)
            }
        }
    };
}

fp8_type!(
    E4M3,
    Fp8Format::E4M3,
    "OCP FP8 E4M3 (E4M3FN), stored as its byte: max ±448, min subnormal 2^-9, NaN = S.1111.111, no infinities."
);
fp8_type!(
    E5M2,
    Fp8Format::E5M2,
    "OCP FP8 E5M2, stored as its byte: max ±57344, min subnormal 2^-16, ±Inf = S.11111.00, NaN = S.11111.{01,10,11}."
);

impl E5M2 {
    /// +Inf.
    pub const INFINITY: Self = Self(0x7C);
    /// −Inf.
    pub const NEG_INFINITY: Self = Self(0xFC);
}

/// f32 → bf16, round to nearest even; `saturate` clips overflow and ±Inf to ±max finite.
/// NaN gives the canonical quiet NaN with the input's sign.
pub fn f32_to_bf16_bits(x: f32, saturate: bool) -> u16 {
    let bits = x.to_bits();
    let sign = (bits >> 16) as u16 & 0x8000;
    let abs = bits & 0x7FFF_FFFF;
    if abs > 0x7F80_0000 {
        return sign | 0x7FC0;
    }
    let r = ((abs + 0x7FFF + ((abs >> 16) & 1)) >> 16) as u16;
    if saturate && r >= 0x7F80 {
        sign | 0x7F7F
    } else {
        sign | r
    }
}

/// f32 → f16, round to nearest even (IEEE); `saturate` clips overflow and ±Inf to ±65504.
/// NaN gives the canonical quiet NaN with the input's sign.
pub fn f32_to_f16_bits(x: f32, saturate: bool) -> u16 {
    let bits = x.to_bits();
    let sign = (bits >> 16) as u16 & 0x8000;
    let abs = bits & 0x7FFF_FFFF;
    if abs > 0x7F80_0000 {
        return sign | 0x7E00;
    }
    let exp_field = (abs >> 23) as i32;
    let (e, m) = if exp_field == 0 {
        (-126, (abs & 0x7F_FFFF) as u64)
    } else {
        (exp_field - 127, ((abs & 0x7F_FFFF) | 0x80_0000) as u64)
    };
    let e_eff = if e < -14 { -14 } else { e };
    let shift = (13 + (e_eff - e)) as u32;
    let code = (((e_eff + 14) as u64) << 10) + round_shift_even(m, shift);
    if code >= 0x7C00 {
        if saturate {
            sign | 0x7BFF
        } else {
            sign | 0x7C00
        }
    } else {
        sign | code as u16
    }
}
