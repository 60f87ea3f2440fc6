//! # unitfp8
//!
//! FP8 kernels for μnit Scaling (μS) training: exact OCP E4M3/E5M2 formats and casts, a fused
//! cast-transpose, and the fixed(τ) residual mix, with SIMD back ends (AVX-512, NEON, portable
//! scalar) chosen at run time and a C ABI (`include/unitfp8.h`).
//!
//! The core is `no_std` and never allocates. The default-on `std` feature adds runtime CPU
//! detection, the `UNITFP8_BACKEND` / `UNITFP8_NUM_THREADS` environment variables, threads (a
//! worker pool that spins 50 µs after a call, `UNITFP8_SPIN_US`, and changes no CPU affinity
//! unless asked: [`set_move_workers`], `UNITFP8_MOVE_WORKERS`) and the C ABI ([`ffi`]).
//!
//! ```
//! use unitfp8::{cast, CastParams, E4M3};
//! let x = [0.1f32, -3.0, 1000.0];
//! let mut y = [E4M3::ZERO; 3];
//! cast(&x[..], &mut y[..], &CastParams::default()).unwrap();
//! assert_eq!(y[2], E4M3::MAX); // μS clip-cast: saturate to ±448
//! ```
#![cfg_attr(not(feature = "std"), no_std)]
#![warn(missing_docs)]

pub mod backend;
pub mod cast;
mod cpu;
#[cfg(feature = "std")]
pub mod cuda;
pub mod dtype;
pub mod error;
pub mod exec;
pub mod fp8;
pub mod gemm;
pub mod linear;
pub mod nan;
pub mod op;
pub mod residual;
pub mod rng;
pub mod rounding;

#[cfg(feature = "std")]
pub mod ffi;
#[cfg(feature = "std")]
mod parallel;

pub use backend::Backend;
pub use cast::{CastParams, cast, cast_amax, cast_transpose};
pub use dtype::{DType, Element};
pub use error::{Error, Status};
pub use exec::Exec;
#[cfg(feature = "std")]
pub use exec::{gemm_kernel_override, num_threads, set_gemm_kernel, set_num_threads};
pub use fp8::{E4M3, E5M2, Fp8Format};
pub use half::{bf16, f16};
#[cfg(feature = "std")]
pub use parallel::{move_workers, set_move_workers};
pub use residual::{Fp8Out, MixParams, residual_mix, residual_mix_backward, residual_mix_inplace};
pub use rounding::Rounding;

/// The crate version, as in `Cargo.toml`.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");

/// The README's Rust examples, compiled and run as doctests.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;
