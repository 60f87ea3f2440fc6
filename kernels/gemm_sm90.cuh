// FP8 GEMM for sm_90a (Hopper): wgmma.mma_async m64n128k32 FP8 (QGMMA) with TMA
// (cp.async.bulk.tensor) loads into 128-byte-swizzled shared memory, mbarrier pipelines and
// warp specialisation: warpgroup 0 produces (one thread issues the TMA copies), warpgroups 1
// and 2 consume (each a 64 x 128 half of the 128 x 128 block tile). Persistent grid: each CTA
// walks tiles blockIdx.x, blockIdx.x + gridDim.x, ... in a grouped order (8 M-tiles per group)
// for L2 reuse; the producer runs ahead into the next tile while the consumers store C.
//
// Accumulation: within one 128-byte K stage the four k32 wgmmas chain in the tensor-core
// accumulator (scale-d = 0 on the first), then the stage's partial sum is added into f32
// registers (promotion every 128 K, BRIEF section 4).
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

// A CUtensorMap (128 opaque bytes), built on the host with cuTensorMapEncodeTiled.
struct __align__(64) TmaMap {
    u64 opaque[16];
};

#if defined(__CUDA_ARCH__) && (__CUDA_ARCH__ >= 900) && defined(__CUDA_ARCH_FEAT_SM90_ALL)
#define UNITFP8_SM90A 1
#endif

#ifdef UNITFP8_SM90A
static __device__ __forceinline__ void mbar_init(u32 bar, u32 count) {
    asm volatile("mbarrier.init.shared::cta.b64 [%0], %1;\n" ::"r"(bar), "r"(count) : "memory");
}
static __device__ __forceinline__ void mbar_expect_tx(u32 bar, u32 bytes) {
    asm volatile("mbarrier.arrive.expect_tx.shared::cta.b64 _, [%0], %1;\n" ::"r"(bar), "r"(bytes) : "memory");
}
static __device__ __forceinline__ void mbar_arrive(u32 bar) {
    asm volatile("mbarrier.arrive.shared::cta.b64 _, [%0];\n" ::"r"(bar) : "memory");
}
static __device__ __forceinline__ void mbar_wait(u32 bar, u32 parity) {
    u32 done;
    do {
        asm volatile(
            "{\n.reg .pred p;\nmbarrier.try_wait.parity.shared::cta.b64 p, [%1], %2;\nselp.u32 %0, 1, 0, p;\n}\n"
            : "=r"(done)
            : "r"(bar), "r"(parity)
            : "memory");
    } while (!done);
}
static __device__ __forceinline__ void tma_load_2d(u32 dst, const TmaMap *map, int c0, int c1, u32 bar) {
    asm volatile(
        "cp.async.bulk.tensor.2d.shared::cluster.global.mbarrier::complete_tx::bytes [%0], [%1, {%2, %3}], [%4];\n" ::"r"(dst),
        "l"((u64)map), "r"(c0), "r"(c1), "r"(bar)
        : "memory");
}
// wgmma shared-memory descriptor: K-major, 128-byte swizzle, 8-row groups 1024 bytes apart.
static __device__ __forceinline__ u64 wgmma_desc(u32 addr) {
    return (u64)((addr & 0x3FFFFu) >> 4) | ((u64)1 << 16) | ((u64)(1024 >> 4) << 32) | ((u64)1 << 62);
}
static __device__ __forceinline__ void wgmma_fence() { asm volatile("wgmma.fence.sync.aligned;\n" ::: "memory"); }
static __device__ __forceinline__ void wgmma_commit() { asm volatile("wgmma.commit_group.sync.aligned;\n" ::: "memory"); }
static __device__ __forceinline__ void wgmma_wait0() { asm volatile("wgmma.wait_group.sync.aligned 0;\n" ::: "memory"); }

template <int AT, int BT>
static __device__ __forceinline__ void wgmma_128(float d[64], u64 da, u64 db, u32 scale_d) {
    if (AT == T_E4M3 && BT == T_E4M3) {
    asm volatile("{\n.reg .pred p;\nsetp.ne.b32 p, %66, 0;\n"
                 "wgmma.mma_async.sync.aligned.m64n128k32.f32.e4m3.e4m3 "
                 "{%0, %1, %2, %3, %4, %5, %6, %7, %8, %9, %10, %11, %12, %13, %14, %15, %16, %17, %18, %19, %20, %21, %22, %23, %24, %25, %26, %27, %28, %29, %30, %31, %32, %33, %34, %35, %36, %37, %38, %39, %40, %41, %42, %43, %44, %45, %46, %47, %48, %49, %50, %51, %52, %53, %54, %55, %56, %57, %58, %59, %60, %61, %62, %63}, "
                 "%64, %65, p, 1, 1;\n}\n"
                 : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3]), "+f"(d[4]), "+f"(d[5]), "+f"(d[6]), "+f"(d[7]), "+f"(d[8]), "+f"(d[9]), "+f"(d[10]), "+f"(d[11]), "+f"(d[12]), "+f"(d[13]), "+f"(d[14]), "+f"(d[15]), "+f"(d[16]), "+f"(d[17]), "+f"(d[18]), "+f"(d[19]), "+f"(d[20]), "+f"(d[21]), "+f"(d[22]), "+f"(d[23]), "+f"(d[24]), "+f"(d[25]), "+f"(d[26]), "+f"(d[27]), "+f"(d[28]), "+f"(d[29]), "+f"(d[30]), "+f"(d[31]), "+f"(d[32]), "+f"(d[33]), "+f"(d[34]), "+f"(d[35]), "+f"(d[36]), "+f"(d[37]), "+f"(d[38]), "+f"(d[39]), "+f"(d[40]), "+f"(d[41]), "+f"(d[42]), "+f"(d[43]), "+f"(d[44]), "+f"(d[45]), "+f"(d[46]), "+f"(d[47]), "+f"(d[48]), "+f"(d[49]), "+f"(d[50]), "+f"(d[51]), "+f"(d[52]), "+f"(d[53]), "+f"(d[54]), "+f"(d[55]), "+f"(d[56]), "+f"(d[57]), "+f"(d[58]), "+f"(d[59]), "+f"(d[60]), "+f"(d[61]), "+f"(d[62]), "+f"(d[63])
                 : "l"(da), "l"(db), "r"(scale_d));
    } else if (AT == T_E4M3) {
    asm volatile("{\n.reg .pred p;\nsetp.ne.b32 p, %66, 0;\n"
                 "wgmma.mma_async.sync.aligned.m64n128k32.f32.e4m3.e5m2 "
                 "{%0, %1, %2, %3, %4, %5, %6, %7, %8, %9, %10, %11, %12, %13, %14, %15, %16, %17, %18, %19, %20, %21, %22, %23, %24, %25, %26, %27, %28, %29, %30, %31, %32, %33, %34, %35, %36, %37, %38, %39, %40, %41, %42, %43, %44, %45, %46, %47, %48, %49, %50, %51, %52, %53, %54, %55, %56, %57, %58, %59, %60, %61, %62, %63}, "
                 "%64, %65, p, 1, 1;\n}\n"
                 : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3]), "+f"(d[4]), "+f"(d[5]), "+f"(d[6]), "+f"(d[7]), "+f"(d[8]), "+f"(d[9]), "+f"(d[10]), "+f"(d[11]), "+f"(d[12]), "+f"(d[13]), "+f"(d[14]), "+f"(d[15]), "+f"(d[16]), "+f"(d[17]), "+f"(d[18]), "+f"(d[19]), "+f"(d[20]), "+f"(d[21]), "+f"(d[22]), "+f"(d[23]), "+f"(d[24]), "+f"(d[25]), "+f"(d[26]), "+f"(d[27]), "+f"(d[28]), "+f"(d[29]), "+f"(d[30]), "+f"(d[31]), "+f"(d[32]), "+f"(d[33]), "+f"(d[34]), "+f"(d[35]), "+f"(d[36]), "+f"(d[37]), "+f"(d[38]), "+f"(d[39]), "+f"(d[40]), "+f"(d[41]), "+f"(d[42]), "+f"(d[43]), "+f"(d[44]), "+f"(d[45]), "+f"(d[46]), "+f"(d[47]), "+f"(d[48]), "+f"(d[49]), "+f"(d[50]), "+f"(d[51]), "+f"(d[52]), "+f"(d[53]), "+f"(d[54]), "+f"(d[55]), "+f"(d[56]), "+f"(d[57]), "+f"(d[58]), "+f"(d[59]), "+f"(d[60]), "+f"(d[61]), "+f"(d[62]), "+f"(d[63])
                 : "l"(da), "l"(db), "r"(scale_d));
    } else if (BT == T_E4M3) {
    asm volatile("{\n.reg .pred p;\nsetp.ne.b32 p, %66, 0;\n"
                 "wgmma.mma_async.sync.aligned.m64n128k32.f32.e5m2.e4m3 "
                 "{%0, %1, %2, %3, %4, %5, %6, %7, %8, %9, %10, %11, %12, %13, %14, %15, %16, %17, %18, %19, %20, %21, %22, %23, %24, %25, %26, %27, %28, %29, %30, %31, %32, %33, %34, %35, %36, %37, %38, %39, %40, %41, %42, %43, %44, %45, %46, %47, %48, %49, %50, %51, %52, %53, %54, %55, %56, %57, %58, %59, %60, %61, %62, %63}, "
                 "%64, %65, p, 1, 1;\n}\n"
                 : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3]), "+f"(d[4]), "+f"(d[5]), "+f"(d[6]), "+f"(d[7]), "+f"(d[8]), "+f"(d[9]), "+f"(d[10]), "+f"(d[11]), "+f"(d[12]), "+f"(d[13]), "+f"(d[14]), "+f"(d[15]), "+f"(d[16]), "+f"(d[17]), "+f"(d[18]), "+f"(d[19]), "+f"(d[20]), "+f"(d[21]), "+f"(d[22]), "+f"(d[23]), "+f"(d[24]), "+f"(d[25]), "+f"(d[26]), "+f"(d[27]), "+f"(d[28]), "+f"(d[29]), "+f"(d[30]), "+f"(d[31]), "+f"(d[32]), "+f"(d[33]), "+f"(d[34]), "+f"(d[35]), "+f"(d[36]), "+f"(d[37]), "+f"(d[38]), "+f"(d[39]), "+f"(d[40]), "+f"(d[41]), "+f"(d[42]), "+f"(d[43]), "+f"(d[44]), "+f"(d[45]), "+f"(d[46]), "+f"(d[47]), "+f"(d[48]), "+f"(d[49]), "+f"(d[50]), "+f"(d[51]), "+f"(d[52]), "+f"(d[53]), "+f"(d[54]), "+f"(d[55]), "+f"(d[56]), "+f"(d[57]), "+f"(d[58]), "+f"(d[59]), "+f"(d[60]), "+f"(d[61]), "+f"(d[62]), "+f"(d[63])
                 : "l"(da), "l"(db), "r"(scale_d));
    } else {
    asm volatile("{\n.reg .pred p;\nsetp.ne.b32 p, %66, 0;\n"
                 "wgmma.mma_async.sync.aligned.m64n128k32.f32.e5m2.e5m2 "
                 "{%0, %1, %2, %3, %4, %5, %6, %7, %8, %9, %10, %11, %12, %13, %14, %15, %16, %17, %18, %19, %20, %21, %22, %23, %24, %25, %26, %27, %28, %29, %30, %31, %32, %33, %34, %35, %36, %37, %38, %39, %40, %41, %42, %43, %44, %45, %46, %47, %48, %49, %50, %51, %52, %53, %54, %55, %56, %57, %58, %59, %60, %61, %62, %63}, "
                 "%64, %65, p, 1, 1;\n}\n"
                 : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3]), "+f"(d[4]), "+f"(d[5]), "+f"(d[6]), "+f"(d[7]), "+f"(d[8]), "+f"(d[9]), "+f"(d[10]), "+f"(d[11]), "+f"(d[12]), "+f"(d[13]), "+f"(d[14]), "+f"(d[15]), "+f"(d[16]), "+f"(d[17]), "+f"(d[18]), "+f"(d[19]), "+f"(d[20]), "+f"(d[21]), "+f"(d[22]), "+f"(d[23]), "+f"(d[24]), "+f"(d[25]), "+f"(d[26]), "+f"(d[27]), "+f"(d[28]), "+f"(d[29]), "+f"(d[30]), "+f"(d[31]), "+f"(d[32]), "+f"(d[33]), "+f"(d[34]), "+f"(d[35]), "+f"(d[36]), "+f"(d[37]), "+f"(d[38]), "+f"(d[39]), "+f"(d[40]), "+f"(d[41]), "+f"(d[42]), "+f"(d[43]), "+f"(d[44]), "+f"(d[45]), "+f"(d[46]), "+f"(d[47]), "+f"(d[48]), "+f"(d[49]), "+f"(d[50]), "+f"(d[51]), "+f"(d[52]), "+f"(d[53]), "+f"(d[54]), "+f"(d[55]), "+f"(d[56]), "+f"(d[57]), "+f"(d[58]), "+f"(d[59]), "+f"(d[60]), "+f"(d[61]), "+f"(d[62]), "+f"(d[63])
                 : "l"(da), "l"(db), "r"(scale_d));
    }
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
    extern __shared__ __align__(1024) u8 g90_smem[];
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
        asm volatile("fence.mbarrier_init.release.cluster;\n" ::: "memory");
        asm volatile("fence.proxy.async.shared::cta;\n" ::: "memory");
    }
    __syncthreads();

    if (wg == 0) {
        asm volatile("setmaxnreg.dec.sync.aligned.u32 40;\n");
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
        asm volatile("setmaxnreg.inc.sync.aligned.u32 232;\n");
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
