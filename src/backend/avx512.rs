//! AVX-512 back end (placeholder: forwards to scalar until the SIMD kernels land).

use super::Kernels;

/// The AVX-512 kernel table.
pub fn kernels() -> &'static Kernels {
    &super::scalar::KERNELS
}
