//! FP8 GEMM (in progress).
