//! NEON back end (placeholder: forwards to scalar until the SIMD kernels land).

use super::Kernels;
use super::scalar;

/// The NEON kernel table.
pub static KERNELS: Kernels = Kernels {
    bf16_to_f32: scalar::bf16_to_f32,
    f16_to_f32: scalar::f16_to_f32,
    fp8_to_f32: scalar::fp8_to_f32,
    f32_to_fp8: scalar::f32_to_fp8,
    f32_to_bf16: scalar::f32_to_bf16,
    f32_to_f16: scalar::f32_to_f16,
    f32_to_f32: scalar::f32_to_f32,
    mix: scalar::mix,
    mix_backward: scalar::mix_backward,
};
