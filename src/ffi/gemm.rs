//! C ABI of the GEMM and the unit-scaled linear layer (filled in by the GEMM work).
