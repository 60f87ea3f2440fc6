//! Errors: one status space for every entry point (CPU and CUDA), and a detail that names the
//! argument and the rule that failed.
//!
//! An [`Error`] is a [`Status`] (what kind of failure; the C ABI returns its code) plus a
//! [`Detail`]: a static template and up to four values, formatted only when displayed, so
//! building an error never allocates (the core is `no_std`). Its [`Display`](fmt::Display)
//! reads like `invalid argument: ld_src (4) must be >= cols (8)`; [`Error::detail`] alone is
//! the part after the colon, which the C ABI returns from `unitfp8_last_error()`.

use core::fmt;

/// The kind of a failure, with its C status code (`UNITFP8_ERROR_*`, `UNITFP8_CUDA_ERROR_*`).
/// One space for every entry point, CPU and CUDA.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[repr(i32)]
pub enum Status {
    /// A required pointer was null (C ABI and raw entry points).
    NullPointer = 1,
    /// A bad type or rounding code, a bad size, stride or leading dimension, a NaN or
    /// out-of-range τ, a non-finite scale, slices whose lengths do not match, or (CUDA) a
    /// misaligned device buffer.
    InvalidArgument = 2,
    /// Two buffers overlap in a way the operation does not allow.
    Overlap = 3,
    /// A valid combination that is not supported (for example stochastic rounding to a non-FP8
    /// type, a GEMM layout the CUDA kernels do not take, or a build without the `cuda` feature).
    Unsupported = 4,
    /// An internal error (a caught panic). Please report it.
    Internal = 5,
    /// CUDA: the driver library (`libcuda`) could not be loaded: no NVIDIA driver.
    CudaNoDriver = 10,
    /// CUDA: the driver reports no CUDA device.
    CudaNoDevice = 11,
    /// CUDA: the device's compute capability is below 8.9 (no FP8 tensor cores).
    CudaDeviceUnsupported = 12,
    /// CUDA: a driver call failed (an invalid stream, a launch failure, or an error left by
    /// earlier asynchronous work).
    CudaDriver = 13,
}

impl Status {
    /// Every status, in code order.
    pub const ALL: [Status; 9] = [
        Status::NullPointer,
        Status::InvalidArgument,
        Status::Overlap,
        Status::Unsupported,
        Status::Internal,
        Status::CudaNoDriver,
        Status::CudaNoDevice,
        Status::CudaDeviceUnsupported,
        Status::CudaDriver,
    ];

    /// The C status code: always nonzero (`UNITFP8_OK` is 0).
    pub const fn code(self) -> i32 {
        self as i32
    }

    /// The status with this C code, if any.
    pub fn from_code(code: i32) -> Option<Status> {
        Status::ALL.into_iter().find(|s| s.code() == code)
    }

    /// A short English description (what `unitfp8_status_string` returns).
    pub fn message(self) -> &'static str {
        self.message_c().to_str().unwrap_or("")
    }

    /// [`Status::message`] as a NUL-terminated string, for the C ABI.
    pub const fn message_c(self) -> &'static core::ffi::CStr {
        match self {
            Status::NullPointer => c"null pointer",
            Status::InvalidArgument => c"invalid argument",
            Status::Overlap => c"illegal overlap of buffers",
            Status::Unsupported => c"unsupported combination",
            Status::Internal => c"internal error",
            Status::CudaNoDriver => c"no CUDA driver (libcuda could not be loaded)",
            Status::CudaNoDevice => c"no CUDA device",
            Status::CudaDeviceUnsupported => {
                c"CUDA device unsupported (compute capability 8.9 or newer is needed)"
            }
            Status::CudaDriver => c"CUDA driver error",
        }
    }
}

/// A value quoted in a [`Detail`].
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Value {
    /// An unsigned count, size or code.
    U(u64),
    /// A signed stride.
    I(i64),
    /// A float (τ, scale, β).
    F(f32),
    /// A name (a type, a rounding mode, a back end).
    S(&'static str),
}

impl From<usize> for Value {
    fn from(v: usize) -> Value {
        Value::U(v as u64)
    }
}
impl From<u32> for Value {
    fn from(v: u32) -> Value {
        Value::U(u64::from(v))
    }
}
impl From<u64> for Value {
    fn from(v: u64) -> Value {
        Value::U(v)
    }
}
impl From<i32> for Value {
    fn from(v: i32) -> Value {
        Value::I(i64::from(v))
    }
}
impl From<isize> for Value {
    fn from(v: isize) -> Value {
        Value::I(v as i64)
    }
}
impl From<f32> for Value {
    fn from(v: f32) -> Value {
        Value::F(v)
    }
}
impl From<&'static str> for Value {
    fn from(v: &'static str) -> Value {
        Value::S(v)
    }
}

impl fmt::Display for Value {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Value::U(v) => write!(f, "{v}"),
            Value::I(v) => write!(f, "{v}"),
            Value::F(v) => write!(f, "{v}"),
            Value::S(v) => f.write_str(v),
        }
    }
}

/// The most values a [`Detail`] quotes.
const MAX_VALUES: usize = 4;

/// What exactly was wrong: a static template whose `{}` are replaced by the values in order,
/// e.g. `"ld_src ({}) must be >= cols ({})"` with 4 and 8. It names the argument and the rule.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Detail {
    template: &'static str,
    values: [Option<Value>; MAX_VALUES],
}

impl Detail {
    /// A detail without values.
    pub const fn text(template: &'static str) -> Detail {
        Detail {
            template,
            values: [None; MAX_VALUES],
        }
    }

    /// A detail with up to four values for the template's `{}` (more are dropped).
    pub fn new(template: &'static str, values: &[Value]) -> Detail {
        let mut v = [None; MAX_VALUES];
        for (slot, value) in v.iter_mut().zip(values) {
            *slot = Some(*value);
        }
        Detail {
            template,
            values: v,
        }
    }

    /// The template (the message with `{}` where the values go).
    pub const fn template(&self) -> &'static str {
        self.template
    }
}

impl fmt::Display for Detail {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut rest = self.template;
        let mut values = self.values.iter().flatten();
        while let Some(at) = rest.find("{}") {
            f.write_str(&rest[..at])?;
            match values.next() {
                Some(v) => write!(f, "{v}")?,
                None => f.write_str("?")?,
            }
            rest = &rest[at + 2..];
        }
        f.write_str(rest)
    }
}

/// Why a call failed: a [`Status`] and a [`Detail`] naming the argument and the rule. Every
/// failing call leaves its outputs untouched.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Error {
    status: Status,
    detail: Detail,
}

impl Error {
    /// An error of `status` with a detail.
    pub const fn with(status: Status, detail: Detail) -> Error {
        Error { status, detail }
    }

    /// [`Status::InvalidArgument`]: `template` with `values` (see [`Detail`]).
    pub fn invalid(template: &'static str, values: &[Value]) -> Error {
        Error::with(Status::InvalidArgument, Detail::new(template, values))
    }

    /// [`Status::Overlap`] with a fixed text (e.g. `"a and c overlap"`).
    pub const fn overlap(text: &'static str) -> Error {
        Error::with(Status::Overlap, Detail::text(text))
    }

    /// [`Status::NullPointer`] naming the argument (e.g. `"src is null"`).
    pub const fn null(text: &'static str) -> Error {
        Error::with(Status::NullPointer, Detail::text(text))
    }

    /// [`Status::Unsupported`]: `template` with `values`.
    pub fn unsupported(template: &'static str, values: &[Value]) -> Error {
        Error::with(Status::Unsupported, Detail::new(template, values))
    }

    /// [`Status::Internal`] (a caught panic).
    pub const fn internal(text: &'static str) -> Error {
        Error::with(Status::Internal, Detail::text(text))
    }

    /// The kind of failure.
    pub const fn status(&self) -> Status {
        self.status
    }

    /// The C status code (`UNITFP8_ERROR_*`): always nonzero.
    pub const fn code(&self) -> i32 {
        self.status.code()
    }

    /// What exactly was wrong (naming the argument and the rule, with the values).
    pub const fn detail(&self) -> &Detail {
        &self.detail
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.status.message(), self.detail)
    }
}

#[cfg(feature = "std")]
impl std::error::Error for Error {}

/// Checks a rule about one value: `Ok(())` when `ok`, else [`Status::InvalidArgument`] with
/// the detail.
pub(crate) fn require(ok: bool, template: &'static str, values: &[Value]) -> Result<(), Error> {
    if ok {
        Ok(())
    } else {
        Err(Error::invalid(template, values))
    }
}

#[cfg(all(test, feature = "std"))]
mod tests {
    use super::*;

    #[test]
    fn details_format_their_values_in_order() {
        let e = Error::invalid(
            "ld_src ({}) must be >= cols ({})",
            &[4usize.into(), 8usize.into()],
        );
        assert_eq!(
            e.to_string(),
            "invalid argument: ld_src (4) must be >= cols (8)"
        );
        assert_eq!(e.detail().to_string(), "ld_src (4) must be >= cols (8)");
        let e = Error::invalid("tau must be in [0, 1], got {}", &[1.5f32.into()]);
        assert_eq!(e.detail().to_string(), "tau must be in [0, 1], got 1.5");
        assert_eq!(Error::overlap("a and c overlap").code(), 3);
        // A missing value shows as `?` rather than panicking.
        assert_eq!(
            Detail::new("{} and {}", &[Value::S("x")]).to_string(),
            "x and ?"
        );
    }

    #[test]
    fn status_codes_round_trip() {
        for s in Status::ALL {
            assert_eq!(Status::from_code(s.code()), Some(s));
            assert_ne!(s.code(), 0);
        }
        assert_eq!(Status::from_code(0), None);
        assert_eq!(Status::from_code(6), None);
    }
}
