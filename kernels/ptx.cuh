// PTX wrappers of the tensor-core GEMMs: every inline-asm instruction the kernels use, in one
// place, behind small functions. Built with UNITFP8_SIMT_EMU (the host emulator in kernels/emu,
// used by the checks that run without a GPU), the same functions come from emu/ptx_emu.hpp
// instead, and the architecture guards below admit both GEMM bodies.
#pragma once
#include "common.cuh"

// A CUtensorMap (128 opaque bytes), built on the host with cuTensorMapEncodeTiled.
struct __align__(64) TmaMap {
    u64 opaque[16];
};

#ifdef UNITFP8_SIMT_EMU
#include "emu/ptx_emu.hpp"
#define UNITFP8_SM89_CODE 1
#define UNITFP8_SM90A 1
#define DYNAMIC_SMEM(name, align) u8 *const name = emu_dynamic_smem()
#else

#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 890
#define UNITFP8_SM89_CODE 1
#endif
#if defined(__CUDA_ARCH__) && (__CUDA_ARCH__ >= 900) && defined(__CUDA_ARCH_FEAT_SM90_ALL)
#define UNITFP8_SM90A 1
#endif
// The kernel's dynamic shared memory, as a u8 array aligned to `align` bytes.
#define DYNAMIC_SMEM(name, align) extern __shared__ __align__(align) u8 name[]

// Shared-memory address of a generic pointer.
static __device__ __forceinline__ u32 smem_u32(const void *p) { return (u32)__cvta_generic_to_shared(p); }

// --- sm_89: cp.async, ldmatrix, mma.sync ------------------------------------------------------

// Copies `bytes` (0..16) from global `src` to shared `dst` and zero-fills the rest of 16 bytes.
static __device__ __forceinline__ void cp_async16(u32 dst, const void *src, int bytes) {
    asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;\n" ::"r"(dst), "l"(src), "r"(bytes) : "memory");
}
static __device__ __forceinline__ void cp_async_commit() { asm volatile("cp.async.commit_group;\n" ::: "memory"); }
// Waits until at most N committed groups of this thread are still in flight.
template <int N>
static __device__ __forceinline__ void cp_async_wait() { asm volatile("cp.async.wait_group %0;\n" ::"n"(N) : "memory"); }

// Four 8 x 16-byte matrices; lanes 8j..8j+7 give the row addresses of matrix j.
static __device__ __forceinline__ void ldmatrix_x4(u32 r[4], u32 addr) {
    asm volatile("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0, %1, %2, %3}, [%4];\n"
                 : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
                 : "r"(addr));
}

#define MMA_FP8(TA, TB)                                                                          \
    asm volatile("mma.sync.aligned.m16n8k32.row.col.f32." TA "." TB ".f32 {%0, %1, %2, %3}, "   \
                 "{%4, %5, %6, %7}, {%8, %9}, {%10, %10, %10, %10};\n"                            \
                 : "=f"(d[0]), "=f"(d[1]), "=f"(d[2]), "=f"(d[3])                               \
                 : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b[0]), "r"(b[1]), "f"(0.0f))

// d = A (16 x 32, row) * B (32 x 8, col) from zero, in the PTX fragment layouts.
template <int AT, int BT>
static __device__ __forceinline__ void mma_fp8(float d[4], const u32 a[4], const u32 b[2]) {
#ifdef UNITFP8_SM89_CODE
    if (AT == T_E4M3 && BT == T_E4M3) MMA_FP8("e4m3", "e4m3");
    else if (AT == T_E4M3) MMA_FP8("e4m3", "e5m2");
    else if (BT == T_E4M3) MMA_FP8("e5m2", "e4m3");
    else MMA_FP8("e5m2", "e5m2");
#endif
}

// --- sm_90a: mbarrier, TMA, wgmma, setmaxnreg -------------------------------------------------
#ifdef UNITFP8_SM90A
static __device__ __forceinline__ void mbar_init(u32 bar, u32 count) {
    asm volatile("mbarrier.init.shared::cta.b64 [%0], %1;\n" ::"r"(bar), "r"(count) : "memory");
}
// Makes the initialised barriers visible to the other threads and to the async (TMA) proxy.
static __device__ __forceinline__ void mbar_init_fence() {
    asm volatile("fence.mbarrier_init.release.cluster;\n" ::: "memory");
    asm volatile("fence.proxy.async.shared::cta;\n" ::: "memory");
}
static __device__ __forceinline__ void mbar_expect_tx(u32 bar, u32 bytes) {
    asm volatile("mbarrier.arrive.expect_tx.shared::cta.b64 _, [%0], %1;\n" ::"r"(bar), "r"(bytes) : "memory");
}
static __device__ __forceinline__ void mbar_arrive(u32 bar) {
    asm volatile("mbarrier.arrive.shared::cta.b64 _, [%0];\n" ::"r"(bar) : "memory");
}
// Spins until the phase of parity `parity` has completed.
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
// One box of `map` at (c0 along K, c1 along rows) into shared `dst`; completes bytes on `bar`.
static __device__ __forceinline__ void tma_load_2d(u32 dst, const TmaMap *map, int c0, int c1, u32 bar) {
    asm volatile(
        "cp.async.bulk.tensor.2d.shared::cluster.global.mbarrier::complete_tx::bytes [%0], [%1, {%2, %3}], [%4];\n" ::"r"(dst),
        "l"((u64)map), "r"(c0), "r"(c1), "r"(bar)
        : "memory");
}
static __device__ __forceinline__ void setmaxnreg_producer() { asm volatile("setmaxnreg.dec.sync.aligned.u32 40;\n"); }
static __device__ __forceinline__ void setmaxnreg_consumer() { asm volatile("setmaxnreg.inc.sync.aligned.u32 232;\n"); }
static __device__ __forceinline__ void wgmma_fence() { asm volatile("wgmma.fence.sync.aligned;\n" ::: "memory"); }
static __device__ __forceinline__ void wgmma_commit() { asm volatile("wgmma.commit_group.sync.aligned;\n" ::: "memory"); }
static __device__ __forceinline__ void wgmma_wait0() { asm volatile("wgmma.wait_group.sync.aligned 0;\n" ::: "memory"); }

#define WGMMA_128(TA, TB)                                                                        \
    asm volatile("{\n.reg .pred p;\nsetp.ne.b32 p, %66, 0;\n"                                     \
                 "wgmma.mma_async.sync.aligned.m64n128k32.f32." TA "." TB " "                      \
                 "{%0, %1, %2, %3, %4, %5, %6, %7, %8, %9, %10, %11, %12, %13, %14, %15, %16, %17, %18, %19, %20, %21, %22, %23, %24, %25, %26, %27, %28, %29, %30, %31, %32, %33, %34, %35, %36, %37, %38, %39, %40, %41, %42, %43, %44, %45, %46, %47, %48, %49, %50, %51, %52, %53, %54, %55, %56, %57, %58, %59, %60, %61, %62, %63}, "  \
                 "%64, %65, p, 1, 1;\n}\n"                                                         \
                 : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3]), "+f"(d[4]), "+f"(d[5]), "+f"(d[6]), "+f"(d[7]), "+f"(d[8]), "+f"(d[9]), "+f"(d[10]), "+f"(d[11]), "+f"(d[12]), "+f"(d[13]), "+f"(d[14]), "+f"(d[15]), "+f"(d[16]), "+f"(d[17]), "+f"(d[18]), "+f"(d[19]), "+f"(d[20]), "+f"(d[21]), "+f"(d[22]), "+f"(d[23]), "+f"(d[24]), "+f"(d[25]), "+f"(d[26]), "+f"(d[27]), "+f"(d[28]), "+f"(d[29]), "+f"(d[30]), "+f"(d[31]), "+f"(d[32]), "+f"(d[33]), "+f"(d[34]), "+f"(d[35]), "+f"(d[36]), "+f"(d[37]), "+f"(d[38]), "+f"(d[39]), "+f"(d[40]), "+f"(d[41]), "+f"(d[42]), "+f"(d[43]), "+f"(d[44]), "+f"(d[45]), "+f"(d[46]), "+f"(d[47]), "+f"(d[48]), "+f"(d[49]), "+f"(d[50]), "+f"(d[51]), "+f"(d[52]), "+f"(d[53]), "+f"(d[54]), "+f"(d[55]), "+f"(d[56]), "+f"(d[57]), "+f"(d[58]), "+f"(d[59]), "+f"(d[60]), "+f"(d[61]), "+f"(d[62]), "+f"(d[63]) \
                 : "l"(da), "l"(db), "r"(scale_d))

// d (64 x 128 f32, warpgroup fragment) = A * B^T (+ d when scale_d != 0); A (64 x 32) and B
// (128 x 32) are K-major in 128-byte-swizzled shared memory, described by da and db.
template <int AT, int BT>
static __device__ __forceinline__ void wgmma_128(float d[64], u64 da, u64 db, u32 scale_d) {
    if (AT == T_E4M3 && BT == T_E4M3) WGMMA_128("e4m3", "e4m3");
    else if (AT == T_E4M3) WGMMA_128("e4m3", "e5m2");
    else if (BT == T_E4M3) WGMMA_128("e5m2", "e4m3");
    else WGMMA_128("e5m2", "e5m2");
}
#endif  // UNITFP8_SM90A
#endif  // UNITFP8_SIMT_EMU
