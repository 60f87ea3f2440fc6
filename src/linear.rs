//! The μS unit-scaled linear layer over the GEMM (in progress).
