// unitfp8 CUDA kernels: shared definitions.
//
// Device code only: no CUDA C++ host headers are included (nvcc's implicit device runtime
// declarations suffice), so the fatbin builds with the PyPI nvcc wheel and no host toolkit.
//
// Bit-exactness contract: every elementwise kernel computes exactly what the Rust scalar
// reference (src/fp8.rs, src/backend/scalar.rs, src/cast.rs, src/residual.rs) computes on
// x86-64, including NaN payloads. GPU arithmetic returns the canonical NaN 0x7FFFFFFF for any
// NaN result, while x86 SSE/AVX returns the quieted NaN operand (the first one when both are
// NaN) and the "default NaN" 0xFFC00000 for invalid operations (Inf*0, Inf-Inf): x86_mul and
// x86_add below reproduce those rules.
#pragma once

typedef unsigned char u8;
typedef unsigned short u16;
typedef unsigned int u32;
typedef unsigned long long u64;
typedef long long i64;

// Element type codes (= the C ABI's UNITFP8_F32 ...).
#define T_F32 0
#define T_BF16 1
#define T_F16 2
#define T_E4M3 3
#define T_E5M2 4

// Rounding codes (= UNITFP8_ROUND_*).
#define R_NEAREST_SAT 0
#define R_NEAREST 1
#define R_STOCH_SAT 2

static __device__ __forceinline__ u32 f2u(float x) { return __float_as_uint(x); }
static __device__ __forceinline__ float u2f(u32 x) { return __uint_as_float(x); }
static __device__ __forceinline__ bool nan_bits(u32 b) { return (b & 0x7FFFFFFFu) > 0x7F800000u; }

// x * c as on x86-64 (c is never NaN): a NaN x is returned quieted; an invalid product (Inf*0)
// is the x86 default NaN 0xFFC00000. No FMA contraction (__fmul_rn).
static __device__ __forceinline__ float x86_mul(float x, float c) {
    u32 xb = f2u(x);
    if (nan_bits(xb)) return u2f(xb | 0x00400000u);
    float r = __fmul_rn(x, c);
    if (nan_bits(f2u(r))) return u2f(0xFFC00000u);
    return r;
}

// p + q as on x86-64: the first NaN operand quieted, else Inf-Inf gives 0xFFC00000.
static __device__ __forceinline__ float x86_add(float p, float q) {
    u32 pb = f2u(p), qb = f2u(q);
    if (nan_bits(pb)) return u2f(pb | 0x00400000u);
    if (nan_bits(qb)) return u2f(qb | 0x00400000u);
    float r = __fadd_rn(p, q);
    if (nan_bits(f2u(r))) return u2f(0xFFC00000u);
    return r;
}

// ---------------------------------------------------------------------------------------------
// Widening (exact).

static __device__ __forceinline__ float bf16_to_f32(u16 h) { return u2f((u32)h << 16); }

// f16 -> f32 exactly; NaN payloads are kept (shifted) with the quiet bit set (as the reference).
static __device__ __forceinline__ float f16_to_f32(u16 h) {
    u32 sign = ((u32)h & 0x8000u) << 16;
    u32 e = (h >> 10) & 0x1Fu;
    u32 m = h & 0x3FFu;
    if (e == 0x1Fu) {
        if (m == 0) return u2f(sign | 0x7F800000u);
        return u2f(sign | 0x7FC00000u | (m << 13));
    }
    if (e == 0) {
        // m * 2^-24: exact (m < 2^10, the product is a normal f32).
        return u2f(sign | f2u(__fmul_rn((float)m, 5.9604644775390625e-8f)));
    }
    return u2f(sign | ((e + 112u) << 23) | (m << 13));
}

// FP8 code -> f32 exactly; NaN -> canonical quiet NaN with the code's sign.
template <int FMT>
static __device__ __forceinline__ float fp8_to_f32(u8 code) {
    const int mb = FMT == T_E4M3 ? 3 : 2;
    const int bias = FMT == T_E4M3 ? 7 : 15;
    u32 sign = ((u32)code & 0x80u) << 24;
    u32 mag = code & 0x7Fu;
    bool is_nan = FMT == T_E4M3 ? (mag == 0x7Fu) : (mag > 0x7Cu);
    if (is_nan) return u2f(sign | 0x7FC00000u);
    if (FMT == T_E5M2 && mag == 0x7Cu) return u2f(sign | 0x7F800000u);
    u32 exp = mag >> mb;
    u32 mant = mag & ((1u << mb) - 1u);
    if (exp == 0) {
        const float unit = FMT == T_E4M3 ? 1.953125e-3f /*2^-9*/ : 1.52587890625e-5f /*2^-16*/;
        return u2f(sign | f2u(__fmul_rn((float)mant, unit)));
    }
    return u2f(sign | ((exp - bias + 127u) << 23) | (mant << (23 - mb)));
}

template <int T>
static __device__ __forceinline__ float load_elem(const void *p, u64 i) {
    if (T == T_F32) return ((const float *)p)[i];
    if (T == T_BF16) return bf16_to_f32(((const u16 *)p)[i]);
    if (T == T_F16) return f16_to_f32(((const u16 *)p)[i]);
    return fp8_to_f32<T>(((const u8 *)p)[i]);
}

// ---------------------------------------------------------------------------------------------
// Narrowing (the reference's integer algorithms, ported).

// m / 2^shift rounded to nearest, ties to even, for m < 2^24.
static __device__ __forceinline__ u32 round_shift_even(u32 m, u32 shift) {
    if (shift == 0) return m;
    if (shift >= 25) return 0;  // m < 2^24 <= half
    u32 q = m >> shift;
    u32 rem = m & ((1u << shift) - 1u);
    u32 half = 1u << (shift - 1);
    return (rem > half || (rem == half && (q & 1u))) ? q + 1 : q;
}

// f32 -> FP8 code (Fp8Format::encode): `random` is used by stochastic rounding only.
template <int FMT>
static __device__ __forceinline__ u8 f32_to_fp8(float x, int rounding, u32 random) {
    const int mb = FMT == T_E4M3 ? 3 : 2;
    const int bias = FMT == T_E4M3 ? 7 : 15;
    const u32 max_code = FMT == T_E4M3 ? 0x7Eu : 0x7Bu;
    const u32 nan_code = FMT == T_E4M3 ? 0x7Fu : 0x7Eu;
    const u32 ovf_code = FMT == T_E4M3 ? 0x7Fu : 0x7Cu;
    u32 bits = f2u(x);
    u32 sign = (bits >> 24) & 0x80u;
    u32 abs = bits & 0x7FFFFFFFu;
    if (abs > 0x7F800000u) return (u8)(sign | nan_code);
    int exp_field = (int)(abs >> 23);
    int e;
    u32 m;
    if (exp_field == 0) {
        e = -126;
        m = abs & 0x7FFFFFu;
    } else {
        e = exp_field - 127;
        m = (abs & 0x7FFFFFu) | 0x800000u;
    }
    const int emin = 1 - bias;
    int e_eff = e < emin ? emin : e;
    u32 shift = (u32)(23 - mb + (e_eff - e));
    u32 q;
    if (rounding == R_STOCH_SAT) {
        u64 t = shift >= 64 ? 0ull : (((u64)m << 32) >> shift);
        q = (u32)((t + (u64)random) >> 32);
    } else {
        q = round_shift_even(m, shift);
    }
    u32 code = ((u32)(e_eff + bias - 1) << mb) + q;
    if (code > max_code) return (u8)(sign | (rounding == R_NEAREST ? ovf_code : max_code));
    return (u8)(sign | code);
}

// f32 -> bf16 bits (f32_to_bf16_bits).
static __device__ __forceinline__ u16 f32_to_bf16(float x, bool saturate) {
    u32 bits = f2u(x);
    u32 sign = (bits >> 16) & 0x8000u;
    u32 abs = bits & 0x7FFFFFFFu;
    if (abs > 0x7F800000u) return (u16)(sign | 0x7FC0u);
    u32 r = (abs + 0x7FFFu + ((abs >> 16) & 1u)) >> 16;
    if (saturate && r >= 0x7F80u) return (u16)(sign | 0x7F7Fu);
    return (u16)(sign | r);
}

// f32 -> f16 bits (f32_to_f16_bits).
static __device__ __forceinline__ u16 f32_to_f16(float x, bool saturate) {
    u32 bits = f2u(x);
    u32 sign = (bits >> 16) & 0x8000u;
    u32 abs = bits & 0x7FFFFFFFu;
    if (abs > 0x7F800000u) return (u16)(sign | 0x7E00u);
    int exp_field = (int)(abs >> 23);
    int e;
    u32 m;
    if (exp_field == 0) {
        e = -126;
        m = abs & 0x7FFFFFu;
    } else {
        e = exp_field - 127;
        m = (abs & 0x7FFFFFu) | 0x800000u;
    }
    int e_eff = e < -14 ? -14 : e;
    u32 shift = (u32)(13 + (e_eff - e));
    u32 code = ((u32)(e_eff + 14) << 10) + round_shift_even(m, shift);
    if (code >= 0x7C00u) return (u16)(sign | (saturate ? 0x7BFFu : 0x7C00u));
    return (u16)(sign | code);
}

// ---------------------------------------------------------------------------------------------
// The counter-based stochastic-rounding generator (src/rng.rs).

static __device__ __forceinline__ u32 mix32(u32 x) {
    x ^= x >> 16;
    x *= 0x7FEB352Du;
    x ^= x >> 15;
    x *= 0x846CA68Bu;
    x ^= x >> 16;
    return x;
}

struct SrKey {
    u64 seed;
    u32 k1, k2;  // the StreamKey for index_hi = 0, computed on the host
};

// Random bits of element `index` (stochastic_bits(seed, index)).
static __device__ __forceinline__ u32 sr_bits(const SrKey &key, u64 index) {
    u32 hi = (u32)(index >> 32);
    u32 k1 = key.k1, k2 = key.k2;
    if (hi != 0) {
        k1 = mix32((u32)key.seed ^ mix32((u32)(key.seed >> 32) ^ mix32(hi ^ 0x9E3779B9u)));
        k2 = mix32(k1 ^ 0x85EBCA6Bu);
    }
    return mix32(mix32((u32)index ^ k1) ^ k2);
}

// The bits of round(x) in destination type D (x is already widened and scaled); `index` keys
// stochastic rounding. f32 destinations are never clipped; bf16/f16 saturate unless the mode
// is R_NEAREST (stochastic rounding to them is rejected by the host).
template <int D>
static __device__ __forceinline__ u32 encode_bits(float x, int rounding, const SrKey &key,
                                                  u64 index) {
    if (D == T_F32) return f2u(x);
    if (D == T_BF16) return f32_to_bf16(x, rounding != R_NEAREST);
    if (D == T_F16) return f32_to_f16(x, rounding != R_NEAREST);
    u32 r = rounding == R_STOCH_SAT ? sr_bits(key, index) : 0u;
    return f32_to_fp8<D>(x, rounding, r);
}

template <int D>
static __device__ __forceinline__ void store_bits(void *dst, u64 i, u32 bits) {
    if (D == T_F32) ((u32 *)dst)[i] = bits;
    else if (D == T_BF16 || D == T_F16) ((u16 *)dst)[i] = (u16)bits;
    else ((u8 *)dst)[i] = (u8)bits;
}

// The f32 value of stored bits of type T (exact widening).
template <int T>
static __device__ __forceinline__ float bits_to_f32(u32 bits) {
    if (T == T_F32) return u2f(bits);
    if (T == T_BF16) return bf16_to_f32((u16)bits);
    if (T == T_F16) return f16_to_f32((u16)bits);
    return fp8_to_f32<T>((u8)bits);
}

// Four consecutive elements (group g) as raw bits; the group must be aligned to 4 elements.
template <int T>
static __device__ __forceinline__ void load4_bits(const void *p, u64 g, u32 v[4]) {
    if (T == T_F32) {
        uint4 w = ((const uint4 *)p)[g];
        v[0] = w.x; v[1] = w.y; v[2] = w.z; v[3] = w.w;
    } else if (T == T_BF16 || T == T_F16) {
        uint2 w = ((const uint2 *)p)[g];
        v[0] = w.x & 0xFFFFu; v[1] = w.x >> 16; v[2] = w.y & 0xFFFFu; v[3] = w.y >> 16;
    } else {
        u32 w = ((const u32 *)p)[g];
        v[0] = w & 0xFFu; v[1] = (w >> 8) & 0xFFu; v[2] = (w >> 16) & 0xFFu; v[3] = w >> 24;
    }
}

template <int T>
static __device__ __forceinline__ void store4_bits(void *p, u64 g, const u32 v[4]) {
    if (T == T_F32) {
        ((uint4 *)p)[g] = make_uint4(v[0], v[1], v[2], v[3]);
    } else if (T == T_BF16 || T == T_F16) {
        ((uint2 *)p)[g] = make_uint2(v[0] | (v[1] << 16), v[2] | (v[3] << 16));
    } else {
        ((u32 *)p)[g] = v[0] | (v[1] << 8) | (v[2] << 16) | (v[3] << 24);
    }
}

// Warp-reduce a u32 maximum and fold it into *amax (as u32 bits) with one atomic per warp.
static __device__ __forceinline__ void amax_commit(u32 *amax, u32 v) {
    for (int o = 16; o > 0; o >>= 1) {
        u32 w = __shfl_xor_sync(0xFFFFFFFFu, v, o);
        v = v > w ? v : w;
    }
    if ((threadIdx.x & 31) == 0 && v != 0) atomicMax(amax, v);
}
