// FP8 GEMM for sm_89 (Ada): mma.sync.m16n8k32 FP8 tensor-core instructions (QMMA), fed by a
// 3-stage cp.async pipeline through XOR-swizzled shared memory and ldmatrix. Also the
// fallback on sm_90 (there ptxas lowers the FP8 mma.sync to F2FP + HMMA: f16 rate at best).
//
// Block tile 128 x 128, K step 128 bytes per stage, 8 warps in a 2 x 4 grid of 64 x 32 warp
// tiles. Every mma starts from zero and its result is added into f32 registers, so the
// tensor core never sums more than 32 products (promotion every 32 K).
#pragma once
#include "gemm_common.cuh"

#define G89_BM 128
#define G89_BN 128
#define G89_BK 128
#define G89_STAGES 3
#define G89_THREADS 256
#define G89_SMEM (G89_STAGES * (G89_BM + G89_BN) * G89_BK)

// Byte offset of 16-byte chunk `kc` (0..7) of tile row `row` (rows of 128 bytes, swizzled).
static __device__ __forceinline__ u32 g89_off(int row, int kc) { return (u32)(row * G89_BK + ((kc ^ (row & 7)) << 4)); }

template <int AT, int BT>
static __device__ __forceinline__ void gemm_sm89_body(const GemmArgs &p) {
#ifdef UNITFP8_SM89_CODE
    DYNAMIC_SMEM(g89_smem, 128);
    const u32 base = smem_u32(g89_smem);
    const int tid = threadIdx.x, warp = tid >> 5, lane = tid & 31;
    const int wm = warp & 1, wn = warp >> 1;
    const int m0 = blockIdx.y * G89_BM, n0 = blockIdx.x * G89_BN;
    const int ktiles = (p.k + G89_BK - 1) / G89_BK;

    auto load_stage = [&](int stage, int kt) {
        const u32 sa = base + stage * (G89_BM + G89_BN) * G89_BK;
        const u32 sb = sa + G89_BM * G89_BK;
#pragma unroll
        for (int i = 0; i < 4; i++) {
            const int c = tid + i * G89_THREADS;
            const int row = c >> 3, kc = c & 7;
            const int kb = kt * G89_BK + kc * 16;
            const int krem = p.k - kb;
            const int kbytes = krem <= 0 ? 0 : (krem < 16 ? krem : 16);
            int bytes = m0 + row < p.m ? kbytes : 0;
            cp_async16(sa + g89_off(row, kc), bytes ? p.a + (i64)(m0 + row) * p.lda + kb : p.a, bytes);
            bytes = n0 + row < p.n ? kbytes : 0;
            cp_async16(sb + g89_off(row, kc), bytes ? p.b + (i64)(n0 + row) * p.ldb + kb : p.b, bytes);
        }
    };

    float acc[4][4][4];
#pragma unroll
    for (int i = 0; i < 4; i++)
#pragma unroll
        for (int j = 0; j < 4; j++)
#pragma unroll
            for (int q = 0; q < 4; q++) acc[i][j][q] = 0.0f;

#pragma unroll
    for (int s = 0; s < G89_STAGES - 1; s++) {
        if (s < ktiles) load_stage(s, s);
        cp_async_commit();
    }
    for (int kt = 0; kt < ktiles; kt++) {
        cp_async_wait<G89_STAGES - 2>();
        __syncthreads();
        {
            const int nt = kt + G89_STAGES - 1;
            if (nt < ktiles) load_stage(nt % G89_STAGES, nt);
            cp_async_commit();
        }
        const u32 sa = base + (kt % G89_STAGES) * (G89_BM + G89_BN) * G89_BK;
        const u32 sb = sa + G89_BM * G89_BK;
#pragma unroll
        for (int kk = 0; kk < G89_BK / 32; kk++) {
            u32 af[4][4], bfr[4][2];
#pragma unroll
            for (int mi = 0; mi < 4; mi++) {
                const int row = wm * 64 + mi * 16 + (lane & 7) + ((lane >> 3) & 1) * 8;
                ldmatrix_x4(af[mi], sa + g89_off(row, kk * 2 + (lane >> 4)));
            }
#pragma unroll
            for (int nj = 0; nj < 2; nj++) {
                const int row = wn * 32 + nj * 16 + (lane & 7) + ((lane >> 4) & 1) * 8;
                u32 r[4];
                ldmatrix_x4(r, sb + g89_off(row, kk * 2 + ((lane >> 3) & 1)));
                bfr[2 * nj][0] = r[0];
                bfr[2 * nj][1] = r[1];
                bfr[2 * nj + 1][0] = r[2];
                bfr[2 * nj + 1][1] = r[3];
            }
#pragma unroll
            for (int mi = 0; mi < 4; mi++)
#pragma unroll
                for (int ni = 0; ni < 4; ni++) {
                    float d[4];
                    mma_fp8<AT, BT>(d, af[mi], bfr[ni]);
#pragma unroll
                    for (int q = 0; q < 4; q++) acc[mi][ni][q] = __fadd_rn(acc[mi][ni][q], d[q]);
                }
        }
    }
    cp_async_wait<0>();

    const int g = lane >> 2, t = lane & 3;
#pragma unroll
    for (int mi = 0; mi < 4; mi++)
#pragma unroll
        for (int ni = 0; ni < 4; ni++)
#pragma unroll
            for (int q = 0; q < 4; q++) {
                const int row = m0 + wm * 64 + mi * 16 + g + (q >> 1) * 8;
                const int col = n0 + wn * 32 + ni * 8 + t * 2 + (q & 1);
                gemm_store(p, row, col, acc[mi][ni][q]);
            }
#endif
}

#define GEMM_SM89(AN, AT, BN, BT)                                                                 \
    extern "C" __global__ void __launch_bounds__(G89_THREADS) unitfp8_gemm_sm89_##AN##_##BN(const GemmArgs p) { \
        gemm_sm89_body<AT, BT>(p);                                                                \
    }
GEMM_SM89(e4m3, T_E4M3, e4m3, T_E4M3)
GEMM_SM89(e4m3, T_E4M3, e5m2, T_E5M2)
GEMM_SM89(e5m2, T_E5M2, e4m3, T_E4M3)
GEMM_SM89(e5m2, T_E5M2, e5m2, T_E5M2)
