// The one translation unit build.rs compiles into the embedded fatbin (sm_89 and sm_90a
// machine code plus compute_89 PTX).
#include "elementwise.cuh"
#include "gemm_sm89.cuh"
#include "gemm_sm90.cuh"
