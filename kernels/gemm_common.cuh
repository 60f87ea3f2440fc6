// FP8 GEMM shared parts: arguments, epilogue, and the portable fallback kernel.
//
// C (m x n, row stride ldc, unit column stride) <- alpha * A * B^T + beta * C where A is m x k
// and B is n x k, both row-major with K contiguous ("K-major", the only layout FP8 tensor
// cores take). Products of FP8 values are exact in f32; partial sums from the tensor cores are
// promoted into f32 registers at least every 128 K.
#pragma once
#include "ptx.cuh"

struct GemmArgs {
    const u8 *a;
    const u8 *b;
    void *c;
    i64 lda, ldb, ldc;
    int m, n, k;
    int c_type;  // T_F32, T_BF16, T_E4M3 or T_E5M2
    float alpha, beta;
};

// C[row, col] <- alpha * v + beta * C[row, col] (beta == 0: C is not read; k == 0: beta * C);
// a NaN result is stored as the canonical NaN.
static __device__ __forceinline__ void gemm_store(const GemmArgs &p, int row, int col, float v) {
    if (row >= p.m || col >= p.n) return;
    const i64 i = (i64)row * p.ldc + col;
    float r;
    if (p.k == 0) {
        r = 0.0f;
    } else {
        r = __fmul_rn(p.alpha, v);
    }
    if (p.beta != 0.0f) {
        float c = p.c_type == T_F32 ? ((const float *)p.c)[i] : bf16_to_f32(((const u16 *)p.c)[i]);
        r = p.k == 0 ? __fmul_rn(p.beta, c) : __fadd_rn(r, __fmul_rn(p.beta, c));
    }
    // Every NaN result is the canonical positive quiet NaN (bf16 0x7FC0, E4M3 0x7F, E5M2 0x7E
    // once rounded), as on every CPU back end.
    if (r != r) r = __uint_as_float(0x7FC00000u);
    switch (p.c_type) {
    case T_F32: ((float *)p.c)[i] = r; break;
    case T_BF16: ((u16 *)p.c)[i] = f32_to_bf16(r, false); break;
    case T_E4M3: ((u8 *)p.c)[i] = f32_to_fp8<T_E4M3>(r, R_NEAREST_SAT, 0); break;
    default: ((u8 *)p.c)[i] = f32_to_fp8<T_E5M2>(r, R_NEAREST_SAT, 0); break;
    }
}

// Portable fallback (any alignment, any K-major strides; also k == 0): one thread per element
// of C, f32 FMAs of exact products, a fresh partial sum per 128 K added into the total.
template <int AT, int BT>
static __device__ __forceinline__ void gemm_naive_body(const GemmArgs &p) {
    const int col = blockIdx.x * blockDim.x + threadIdx.x;
    const int row = blockIdx.y * blockDim.y + threadIdx.y;
    if (row >= p.m || col >= p.n) return;
    const u8 *a = p.a + (i64)row * p.lda;
    const u8 *b = p.b + (i64)col * p.ldb;
    float total = 0.0f;
    for (int k0 = 0; k0 < p.k; k0 += 128) {
        float part = 0.0f;
        const int k1 = p.k - k0 < 128 ? p.k : k0 + 128;
        for (int kk = k0; kk < k1; kk++) part = __fmaf_rn(fp8_to_f32<AT>(a[kk]), fp8_to_f32<BT>(b[kk]), part);
        total = __fadd_rn(total, part);
    }
    gemm_store(p, row, col, total);
}

#define GEMM_NAIVE(AN, AT, BN, BT)                                                                  \
    extern "C" __global__ void __launch_bounds__(256) unitfp8_gemm_naive_##AN##_##BN(const GemmArgs p) { \
        gemm_naive_body<AT, BT>(p);                                                                 \
    }
GEMM_NAIVE(e4m3, T_E4M3, e4m3, T_E4M3)
GEMM_NAIVE(e4m3, T_E4M3, e5m2, T_E5M2)
GEMM_NAIVE(e5m2, T_E5M2, e4m3, T_E4M3)
GEMM_NAIVE(e5m2, T_E5M2, e5m2, T_E5M2)
