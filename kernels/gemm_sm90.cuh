// FP8 GEMM for sm_90a (Hopper): wgmma.mma_async m64n128k32 FP8 (QGMMA) with TMA
// (cp.async.bulk.tensor) loads into 128-byte-swizzled shared memory, mbarrier pipelines and
// warp specialisation: warpgroup 0 produces (one thread issues the TMA copies), warpgroups 1
// and 2 consume (each a 64 x 128 half of the 128 x 128 block tile). Persistent grid: each CTA
// walks tiles blockIdx.x, blockIdx.x + gridDim.x, ... in a grouped order (8 M-tiles per group)
// for L2 reuse; the producer runs ahead into the next tile while the consumers store C.
//
// Accumulation: within one 128-byte K stage the four k32 wgmmas chain in the tensor-core
// accumulator (scale-d = 0 on the first), then the stage's partial sum is added into f32
// registers: partial sums are promoted to f32 at least every 128 K, which bounds the error of
// the tensor cores' reduced-precision internal accumulation on long K.
#pragma once
#include "gemm_common.cuh"

#define G90_BM 128
#define G90_BN 128
#define G90_BK 128
#define G90_STAGES 5
#define G90_THREADS 384
#define G90_STAGE_BYTES ((G90_BM + G90_BN) * G90_BK)
// Tiles + 1 KiB for aligning the base to 1024 bytes + barriers.
#define G90_SMEM (G90_STAGES * G90_STAGE_BYTES + 1024 + 256)
#define G90_GROUP_M 8

#ifdef UNITFP8_SM90A
// wgmma shared-memory descriptor: K-major, 128-byte swizzle, 8-row groups 1024 bytes apart.
static __device__ __forceinline__ u64 wgmma_desc(u32 addr) {
    return (u64)((addr & 0x3FFFFu) >> 4) | ((u64)1 << 16) | ((u64)(1024 >> 4) << 32) | ((u64)1 << 62);
}
// Tile t -> (m tile, n tile), grouped by G90_GROUP_M M-tiles.
static __device__ __forceinline__ void g90_tile(int t, int tm, int tn, int &im, int &in_) {
    const int per_group = G90_GROUP_M * tn;
    const int group = t / per_group;
    const int first = group * G90_GROUP_M;
    const int size = tm - first < G90_GROUP_M ? tm - first : G90_GROUP_M;
    const int r = t - group * per_group;
    im = first + r % size;
    in_ = r / size;
}
#endif

template <int AT, int BT>
static __device__ __forceinline__ void gemm_sm90_body(const TmaMap &map_a, const TmaMap &map_b, const GemmArgs &p) {
#ifdef UNITFP8_SM90A
    DYNAMIC_SMEM(g90_smem, 1024);
    const u32 raw = smem_u32(g90_smem);
    const u32 base = (raw + 1023u) & ~1023u;
    const u32 bars = base + G90_STAGES * G90_STAGE_BYTES;  // full[s] at bars + 8s, empty[s] at bars + 64 + 8s
    const int tid = threadIdx.x;
    const int wg = tid >> 7;
    const int tm = (p.m + G90_BM - 1) / G90_BM, tn = (p.n + G90_BN - 1) / G90_BN;
    const int ntiles = tm * tn;
    const int ktiles = (p.k + G90_BK - 1) / G90_BK;

    if (tid == 0) {
        for (int s = 0; s < G90_STAGES; s++) {
            mbar_init(bars + 8 * s, 1);
            mbar_init(bars + 64 + 8 * s, 8);  // one arrival per consumer warp
        }
        mbar_init_fence();
    }
    __syncthreads();

    if (wg == 0) {
        setmaxnreg_producer();
        if (tid == 0) {
            int stage = 0;
            u32 phase = 0;
            for (int t = blockIdx.x; t < ntiles; t += gridDim.x) {
                int im, in_;
                g90_tile(t, tm, tn, im, in_);
                for (int kt = 0; kt < ktiles; kt++) {
                    mbar_wait(bars + 64 + 8 * stage, phase ^ 1);
                    const u32 full = bars + 8 * stage;
                    const u32 sa = base + stage * G90_STAGE_BYTES;
                    mbar_expect_tx(full, G90_STAGE_BYTES);
                    tma_load_2d(sa, &map_a, kt * G90_BK, im * G90_BM, full);
                    tma_load_2d(sa + G90_BM * G90_BK, &map_b, kt * G90_BK, in_ * G90_BN, full);
                    if (++stage == G90_STAGES) {
                        stage = 0;
                        phase ^= 1;
                    }
                }
            }
        }
    } else {
        setmaxnreg_consumer();
        const int c = wg - 1;  // rows 64c .. 64c + 63 of the block tile
        const int lane = tid & 31, warp_in_wg = (tid >> 5) & 3;
        int stage = 0;
        u32 phase = 0;
        for (int t = blockIdx.x; t < ntiles; t += gridDim.x) {
            int im, in_;
            g90_tile(t, tm, tn, im, in_);
            float total[64], d[64];
#pragma unroll
            for (int i = 0; i < 64; i++) total[i] = 0.0f;
            for (int kt = 0; kt < ktiles; kt++) {
                mbar_wait(bars + 8 * stage, phase);
                const u32 sa = base + stage * G90_STAGE_BYTES + c * 64 * G90_BK;
                const u32 sb = base + stage * G90_STAGE_BYTES + G90_BM * G90_BK;
                const u64 da = wgmma_desc(sa), db = wgmma_desc(sb);
                wgmma_fence();
#pragma unroll
                for (int kk = 0; kk < G90_BK / 32; kk++) {
                    // +32 bytes along K inside the swizzled 128-byte rows: +2 in the address field.
                    wgmma_128<AT, BT>(d, da + 2 * kk, db + 2 * kk, kk > 0 ? 1u : 0u);
                }
                wgmma_commit();
                wgmma_wait0();
                if (lane == 0) mbar_arrive(bars + 64 + 8 * stage);
#pragma unroll
                for (int i = 0; i < 64; i++) total[i] = __fadd_rn(total[i], d[i]);
                if (++stage == G90_STAGES) {
                    stage = 0;
                    phase ^= 1;
                }
            }
            // Fragment: value i of thread (warp w, lane l) is row 16w + l/4 + 8*((i>>1)&1),
            // column 8*(i>>2) + 2*(l%4) + (i&1) of this warpgroup's 64 x 128 tile.
            const int row0 = im * G90_BM + c * 64 + warp_in_wg * 16 + (lane >> 2);
            const int col0 = in_ * G90_BN + 2 * (lane & 3);
#pragma unroll
            for (int i = 0; i < 64; i++)
                gemm_store(p, row0 + 8 * ((i >> 1) & 1), col0 + 8 * (i >> 2) + (i & 1), total[i]);
        }
    }
#endif
}

#define GEMM_SM90(AN, AT, BN, BT)                                                                  \
    extern "C" __global__ void __launch_bounds__(G90_THREADS, 1) unitfp8_gemm_sm90_##AN##_##BN(    \
        const __grid_constant__ TmaMap map_a, const __grid_constant__ TmaMap map_b, const GemmArgs p) { \
        gemm_sm90_body<AT, BT>(map_a, map_b, p);                                                   \
    }
GEMM_SM90(e4m3, T_E4M3, e4m3, T_E4M3)
GEMM_SM90(e4m3, T_E4M3, e5m2, T_E5M2)
GEMM_SM90(e5m2, T_E5M2, e4m3, T_E4M3)
GEMM_SM90(e5m2, T_E5M2, e5m2, T_E5M2)
