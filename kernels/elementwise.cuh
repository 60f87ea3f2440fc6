// Elementwise kernels: cast, cast-transpose, residual mix forward and backward.
//
// Each kernel takes one argument struct (mirrored by #[repr(C)] structs in src/cuda/mod.rs).
// Grids are grid-stride loops; the host sizes them. amax is accumulated as u32 "abs bits"
// (f32 bits & 0x7FFFFFFF, so NaN beats everything, as in the reference) with atomicMax into a
// 4-byte device word the host zeroes first (on the same stream).
#pragma once
#include "common.cuh"

struct CastArgs {
    const void *src;
    void *dst;
    u64 n;
    u32 *amax;  // null: no amax
    SrKey key;
    float scale;
    int rounding;
    int vec_ok;  // src and dst aligned to 4 elements: use 4-element vector accesses
    int pad_;
};

template <int S, int D>
static __device__ __forceinline__ void cast_body(const CastArgs &p) {
    u32 am = 0;
    const u64 tid = (u64)blockIdx.x * blockDim.x + threadIdx.x;
    const u64 stride = (u64)gridDim.x * blockDim.x;
    const u64 groups = p.vec_ok ? p.n / 4 : 0;
    for (u64 g = tid; g < groups; g += stride) {
        u32 v[4];
        load4_bits<S>(p.src, g, v);
#pragma unroll
        for (int j = 0; j < 4; j++) {
            float x = bits_to_f32<S>(v[j]);
            u32 ab = f2u(x) & 0x7FFFFFFFu;
            am = am > ab ? am : ab;
            v[j] = encode_bits<D>(x86_mul(x, p.scale), p.rounding, p.key, g * 4 + j);
        }
        store4_bits<D>(p.dst, g, v);
    }
    for (u64 i = groups * 4 + tid; i < p.n; i += stride) {
        float x = load_elem<S>(p.src, i);
        u32 ab = f2u(x) & 0x7FFFFFFFu;
        am = am > ab ? am : ab;
        store_bits<D>(p.dst, i, encode_bits<D>(x86_mul(x, p.scale), p.rounding, p.key, i));
    }
    if (p.amax) amax_commit(p.amax, am);
}

struct CastTransposeArgs {
    const void *src;
    void *dst;    // nullable
    void *dst_t;  // nullable
    u32 *amax;    // nullable
    u64 rows, cols, ld_src, ld_dst, ld_dst_t;
    SrKey key;
    float scale;
    int rounding;
};

#define CT_TILE 64
#define CT_THREADS 256

// 64x64 tiles; 8 warps; each lane handles columns lane and lane + 32 of 8 rows (coalesced
// reads and row-major writes), then the transposed tile is written from shared memory (row
// stride 65 words: conflict-free column reads).
template <int S, int D>
static __device__ __forceinline__ void cast_transpose_body(const CastTransposeArgs &p) {
    __shared__ u32 tile[CT_TILE][CT_TILE + 1];
    const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
    const u64 tiles_c = (p.cols + CT_TILE - 1) / CT_TILE;
    const u64 ntiles = tiles_c * ((p.rows + CT_TILE - 1) / CT_TILE);
    u32 am = 0;
    for (u64 t = blockIdx.x; t < ntiles; t += gridDim.x) {
        const u64 r0 = (t / tiles_c) * CT_TILE, c0 = (t % tiles_c) * CT_TILE;
#pragma unroll 1
        for (int rr = warp; rr < CT_TILE; rr += CT_THREADS / 32) {
            const u64 r = r0 + rr;
#pragma unroll
            for (int h = 0; h < 2; h++) {
                const int cc = lane + 32 * h;
                const u64 c = c0 + cc;
                if (r < p.rows && c < p.cols) {
                    float x = load_elem<S>(p.src, r * p.ld_src + c);
                    u32 ab = f2u(x) & 0x7FFFFFFFu;
                    am = am > ab ? am : ab;
                    u32 code = encode_bits<D>(x86_mul(x, p.scale), p.rounding, p.key, r * p.cols + c);
                    if (p.dst) store_bits<D>(p.dst, r * p.ld_dst + c, code);
                    tile[rr][cc] = code;
                }
            }
        }
        if (p.dst_t) {
            __syncthreads();
#pragma unroll 1
            for (int cc = warp; cc < CT_TILE; cc += CT_THREADS / 32) {
                const u64 c = c0 + cc;
#pragma unroll
                for (int h = 0; h < 2; h++) {
                    const int rr = lane + 32 * h;
                    const u64 r = r0 + rr;
                    if (c < p.cols && r < p.rows) store_bits<D>(p.dst_t, c * p.ld_dst_t + r, tile[rr][cc]);
                }
            }
            __syncthreads();
        }
    }
    if (p.amax) amax_commit(p.amax, am);
}

struct MixArgs {
    const void *x;  // forward: x; backward: grad_out
    const void *f;  // forward: f; backward: unused
    void *out;      // forward: out; backward: grad_x
    void *out2;     // backward: grad_f
    u8 *q;          // optional FP8 copy of out (forward) or grad_f (backward)
    u64 n;
    SrKey key;
    float a, b;
    int q_type;  // T_E4M3 or T_E5M2
    int rounding;
    int accumulate;
    int vec_ok;  // every buffer aligned to 4 elements
};

template <int IO>
static __device__ __forceinline__ u32 narrow_io(float y) {
    if (IO == T_F32) return f2u(y);
    if (IO == T_BF16) return f32_to_bf16(y, false);
    return f32_to_f16(y, false);
}

static __device__ __forceinline__ u32 fp8_copy(float stored, int q_type, int rounding, const SrKey &key, u64 i) {
    return q_type == T_E4M3 ? encode_bits<T_E4M3>(stored, rounding, key, i)
                            : encode_bits<T_E5M2>(stored, rounding, key, i);
}

// The NaN rule of the library (src/nan.rs): every NaN an operation computes is stored as the
// canonical positive quiet NaN, on every back end.
static __device__ __forceinline__ float canonical_nan(float y) {
    return nan_bits(f2u(y)) ? u2f(0x7FC00000u) : y;
}

template <int IO>
static __device__ __forceinline__ u32 mix_one(const MixArgs &p, u32 xb, u32 fb, u64 i, u32 *qcode) {
    float y = x86_add(x86_mul(bits_to_f32<IO>(xb), p.a), x86_mul(bits_to_f32<IO>(fb), p.b));
    u32 o = narrow_io<IO>(canonical_nan(y));
    if (p.q) *qcode = fp8_copy(bits_to_f32<IO>(o), p.q_type, p.rounding, p.key, i);
    return o;
}

template <int IO>
static __device__ __forceinline__ void mix_body(const MixArgs &p) {
    const u64 tid = (u64)blockIdx.x * blockDim.x + threadIdx.x;
    const u64 stride = (u64)gridDim.x * blockDim.x;
    const u64 groups = p.vec_ok ? p.n / 4 : 0;
    for (u64 g = tid; g < groups; g += stride) {
        u32 xv[4], fv[4], o[4], q[4];
        load4_bits<IO>(p.x, g, xv);
        load4_bits<IO>(p.f, g, fv);
#pragma unroll
        for (int j = 0; j < 4; j++) o[j] = mix_one<IO>(p, xv[j], fv[j], g * 4 + j, &q[j]);
        store4_bits<IO>(p.out, g, o);
        if (p.q) store4_bits<T_E4M3>(p.q, g, q);
    }
    for (u64 i = groups * 4 + tid; i < p.n; i += stride) {
        u32 q = 0;
        u32 xr, fr;
        if (IO == T_F32) { xr = ((const u32 *)p.x)[i]; fr = ((const u32 *)p.f)[i]; }
        else { xr = ((const u16 *)p.x)[i]; fr = ((const u16 *)p.f)[i]; }
        u32 o = mix_one<IO>(p, xr, fr, i, &q);
        store_bits<IO>(p.out, i, o);
        if (p.q) p.q[i] = (u8)q;
    }
}

template <int IO>
static __device__ __forceinline__ void mix_bwd_one(const MixArgs &p, u32 gb, u32 xb, u64 i, u32 *dx, u32 *df, u32 *qcode) {
    float g = bits_to_f32<IO>(gb);
    float ag = x86_mul(g, p.a);
    float x = p.accumulate ? x86_add(bits_to_f32<IO>(xb), ag) : ag;
    *dx = narrow_io<IO>(canonical_nan(x));
    *df = narrow_io<IO>(canonical_nan(x86_mul(g, p.b)));
    if (p.q) *qcode = fp8_copy(bits_to_f32<IO>(*df), p.q_type, p.rounding, p.key, i);
}

template <int IO>
static __device__ __forceinline__ void mix_bwd_body(const MixArgs &p) {
    const u64 tid = (u64)blockIdx.x * blockDim.x + threadIdx.x;
    const u64 stride = (u64)gridDim.x * blockDim.x;
    const u64 groups = p.vec_ok ? p.n / 4 : 0;
    for (u64 g = tid; g < groups; g += stride) {
        u32 gv[4], xv[4] = {0, 0, 0, 0}, dx[4], df[4], q[4];
        load4_bits<IO>(p.x, g, gv);
        if (p.accumulate) load4_bits<IO>(p.out, g, xv);
#pragma unroll
        for (int j = 0; j < 4; j++) mix_bwd_one<IO>(p, gv[j], xv[j], g * 4 + j, &dx[j], &df[j], &q[j]);
        store4_bits<IO>(p.out, g, dx);
        store4_bits<IO>(p.out2, g, df);
        if (p.q) store4_bits<T_E4M3>(p.q, g, q);
    }
    for (u64 i = groups * 4 + tid; i < p.n; i += stride) {
        u32 gr, xr = 0, dx, df, q = 0;
        if (IO == T_F32) { gr = ((const u32 *)p.x)[i]; if (p.accumulate) xr = ((const u32 *)p.out)[i]; }
        else { gr = ((const u16 *)p.x)[i]; if (p.accumulate) xr = ((const u16 *)p.out)[i]; }
        mix_bwd_one<IO>(p, gr, xr, i, &dx, &df, &q);
        store_bits<IO>(p.out, i, dx);
        store_bits<IO>(p.out2, i, df);
        if (p.q) p.q[i] = (u8)q;
    }
}

// ---------------------------------------------------------------------------------------------
// Entry points: unitfp8_cast_<src>_<dst>, unitfp8_cast_transpose_<src>_<dst>,
// unitfp8_mix_<io>, unitfp8_mix_bwd_<io>.

#define EW_CAST(SN, S, DN, D)                                                                   \
    extern "C" __global__ void __launch_bounds__(256) unitfp8_cast_##SN##_##DN(const CastArgs p) { \
        cast_body<S, D>(p);                                                                   \
    }                                                                                         \
    extern "C" __global__ void __launch_bounds__(CT_THREADS)                                  \
        unitfp8_cast_transpose_##SN##_##DN(const CastTransposeArgs p) {                       \
        cast_transpose_body<S, D>(p);                                                         \
    }

#define EW_CAST_FROM(SN, S)         \
    EW_CAST(SN, S, f32, T_F32)      \
    EW_CAST(SN, S, bf16, T_BF16)    \
    EW_CAST(SN, S, f16, T_F16)      \
    EW_CAST(SN, S, e4m3, T_E4M3)    \
    EW_CAST(SN, S, e5m2, T_E5M2)

EW_CAST_FROM(f32, T_F32)
EW_CAST_FROM(bf16, T_BF16)
EW_CAST_FROM(f16, T_F16)
EW_CAST_FROM(e4m3, T_E4M3)
EW_CAST_FROM(e5m2, T_E5M2)

#define EW_MIX(N, IO)                                                                                   \
    extern "C" __global__ void __launch_bounds__(256) unitfp8_mix_##N(const MixArgs p) { mix_body<IO>(p); } \
    extern "C" __global__ void __launch_bounds__(256) unitfp8_mix_bwd_##N(const MixArgs p) { mix_bwd_body<IO>(p); }

EW_MIX(f32, T_F32)
EW_MIX(bf16, T_BF16)
EW_MIX(f16, T_F16)
