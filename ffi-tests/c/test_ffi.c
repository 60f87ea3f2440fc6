/*
 * C ABI tests of unitfp8 (include/unitfp8.h). Valid C99 and C++17: scripts/ffi-tests.sh builds
 * it as C (-std=c99 -pedantic) and as C++ (-std=c++17), each linked against the static and
 * the shared library, and runs it with the default back end and with UNITFP8_BACKEND=scalar.
 *
 * Results are checked against a small independent reference written here from the format
 * definitions (decode by formula; encode by rounding |x| / quantum to the nearest integer,
 * ties to even, in double precision) and against hand-derived codes. Every error path is
 * checked with poisoned outputs that must stay untouched.
 *
 * Random inputs are seeded from the time (or UNITFP8_TEST_SEED); the seed is printed.
 */
#include "unitfp8.h"

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static int failures = 0;
static int checks = 0;

#define CHECK(cond, ...)                                                             \
    do {                                                                             \
        checks++;                                                                    \
        if (!(cond)) {                                                               \
            failures++;                                                              \
            if (failures <= 40) {                                                    \
                fprintf(stderr, "%s:%d: FAILED %s: ", __FILE__, __LINE__, #cond);    \
                fprintf(stderr, __VA_ARGS__);                                        \
                fputc('\n', stderr);                                                 \
            }                                                                        \
        }                                                                            \
    } while (0)

#define CHECK_STATUS(call, expected)                                                 \
    do {                                                                             \
        int32_t st_ = (call);                                                        \
        CHECK(st_ == (expected), "status %d (%s), expected %d", (int)st_,            \
              unitfp8_status_string(st_), (int)(expected));                          \
    } while (0)

/* ---------------------------------------------------------------- helpers */

static uint32_t f2u(float x) {
    uint32_t u;
    memcpy(&u, &x, 4);
    return u;
}

static float u2f(uint32_t u) {
    float x;
    memcpy(&x, &u, 4);
    return x;
}

static uint64_t rng_state;

static uint64_t next_u64(void) {
    /* splitmix64 */
    uint64_t z = (rng_state += 0x9E3779B97F4A7C15ULL);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
    return z ^ (z >> 31);
}

static uint32_t next_u32(void) { return (uint32_t)(next_u64() >> 32); }

/* Uniform in (-1, 1) times 2^e, e in [lo, hi]. */
static float random_scaled(int lo, int hi) {
    double u = ((double)(next_u32() >> 8) + 0.5) / 16777216.0 * 2.0 - 1.0;
    int e = lo + (int)(next_u32() % (uint32_t)(hi - lo + 1));
    return (float)ldexp(u, e);
}

static void *xmalloc(size_t bytes) {
    void *p = malloc(bytes == 0 ? 1 : bytes);
    if (p == NULL) {
        fprintf(stderr, "out of memory\n");
        exit(2);
    }
    return p;
}

#define POISON 0xA5

static int all_poison(const void *p, size_t bytes) {
    const unsigned char *b = (const unsigned char *)p;
    size_t i;
    for (i = 0; i < bytes; i++) {
        if (b[i] != POISON) {
            return 0;
        }
    }
    return 1;
}

/* ---------------------------------------------------------------- reference */

typedef struct {
    const char *name;
    uint32_t code; /* UNITFP8_E4M3 / UNITFP8_E5M2 */
    int mant_bits;
    int bias;
    int emin; /* exponent of the smallest normal */
    double max;
    uint8_t max_code;
    uint8_t nan_code;
    uint8_t overflow_code; /* what round-to-nearest overflow (and +Inf) gives */
} Fp8;

static const Fp8 E4M3 = {"e4m3", UNITFP8_E4M3, 3, 7, -6, 448.0, 0x7E, 0x7F, 0x7F};
static const Fp8 E5M2 = {"e5m2", UNITFP8_E5M2, 2, 15, -14, 57344.0, 0x7B, 0x7E, 0x7C};

/* The value of an FP8 code, by the formula (NaN and Inf as double). */
static double ref_fp8_value(const Fp8 *f, uint8_t code) {
    int sign = code >> 7;
    int e = (code & 0x7F) >> f->mant_bits;
    int m = code & ((1 << f->mant_bits) - 1);
    int emax_field = (1 << (7 - f->mant_bits)) - 1;
    double v;
    if (f->code == UNITFP8_E4M3 && e == emax_field && m == (1 << f->mant_bits) - 1) {
        v = NAN;
    } else if (f->code == UNITFP8_E5M2 && e == emax_field) {
        v = m == 0 ? INFINITY : NAN;
    } else if (e == 0) {
        v = ldexp((double)m, f->emin - f->mant_bits);
    } else {
        v = ldexp((double)((1 << f->mant_bits) + m), e - f->bias - f->mant_bits);
    }
    if (isnan(v)) {
        return sign ? -NAN : NAN;
    }
    return sign ? -v : v;
}

/* |a| (finite, >= 0) rounded to a binary format with mant_bits stored bits and smallest normal
 * exponent emin, ties to even, unbounded above. */
static double ref_round(double a, int mant_bits, int emin) {
    int k, e;
    double quantum;
    if (a == 0.0) {
        return 0.0;
    }
    (void)frexp(a, &k);
    e = k - 1;
    if (e < emin) {
        e = emin;
    }
    quantum = ldexp(1.0, e - mant_bits);
    return nearbyint(a / quantum) * quantum; /* default rounding mode: to nearest even */
}

/* The FP8 values just below and above the finite magnitude a >= 0, clipped to max. */
static void ref_neighbours(const Fp8 *f, double a, double *lo, double *hi) {
    int k, e;
    double quantum;
    (void)frexp(a, &k);
    e = a == 0.0 ? f->emin : k - 1;
    if (e < f->emin) {
        e = f->emin;
    }
    quantum = ldexp(1.0, e - f->mant_bits);
    *lo = floor(a / quantum) * quantum;
    *hi = ceil(a / quantum) * quantum;
    if (*lo > f->max) {
        *lo = f->max;
    }
    if (*hi > f->max) {
        *hi = f->max;
    }
}

static uint8_t ref_encode_fp8(const Fp8 *f, float x, int saturate) {
    uint8_t sign = (uint8_t)((f2u(x) >> 24) & 0x80);
    double a = fabs((double)x), r;
    int c;
    if (isnan(x)) {
        return (uint8_t)(sign | f->nan_code);
    }
    r = isinf(a) ? INFINITY : ref_round(a, f->mant_bits, f->emin);
    if (r > f->max) {
        return (uint8_t)(sign | (saturate ? f->max_code : f->overflow_code));
    }
    for (c = 0; c <= f->max_code; c++) {
        if (ref_fp8_value(f, (uint8_t)c) == r) {
            return (uint8_t)(sign | c);
        }
    }
    fprintf(stderr, "reference: %.17g not representable in %s\n", r, f->name);
    exit(2);
}

/* f16 bits -> value, by the formula. */
static double ref_f16_value(uint16_t h) {
    int e = (h >> 10) & 31, m = h & 1023;
    double v;
    if (e == 31) {
        v = m ? NAN : INFINITY;
    } else if (e == 0) {
        v = ldexp((double)m, -24);
    } else {
        v = ldexp((double)(1024 + m), e - 25);
    }
    if (isnan(v)) {
        return (h & 0x8000) ? -NAN : NAN;
    }
    return (h & 0x8000) ? -v : v;
}

/* Non-NaN x to bf16 (bf16 != 0) or f16 bits, nearest even, overflow to Inf or max. */
static uint16_t ref_encode_16(double x, int bf16, int saturate) {
    uint16_t sign = signbit(x) ? 0x8000 : 0;
    double a = fabs(x), r;
    /* bf16 max = (2 - 2^-7) * 2^127, f16 max = 65504 */
    double max = bf16 ? ldexp(255.0, 120) : 65504.0;
    uint16_t max_bits = bf16 ? 0x7F7F : 0x7BFF, inf_bits = bf16 ? 0x7F80 : 0x7C00;
    r = isinf(a) ? INFINITY : ref_round(a, bf16 ? 7 : 10, bf16 ? -126 : -14);
    if (r > max) {
        return (uint16_t)(sign | (saturate ? max_bits : inf_bits));
    }
    if (bf16) {
        return (uint16_t)(sign | (f2u((float)r) >> 16));
    }
    if (r < ldexp(1.0, -14)) {
        return (uint16_t)(sign | (uint16_t)(r * 16777216.0));
    } else {
        int k;
        (void)frexp(r, &k);
        return (uint16_t)(sign | (uint16_t)((k - 1 + 15) << 10) |
                          (uint16_t)((ldexp(r, -(k - 1)) - 1.0) * 1024.0));
    }
}

/* ---------------------------------------------------------------- info */

static void test_info(void) {
    const char *v = unitfp8_version();
    const char *b = unitfp8_backend();
    const char *env = getenv("UNITFP8_BACKEND");
    int32_t s;
    CHECK(v != NULL && strlen(v) >= 5 && strchr(v, '.') != NULL, "version '%s'", v ? v : "(null)");
    CHECK(b != NULL && (strcmp(b, "scalar") == 0 || strcmp(b, "avx512") == 0 ||
                        strcmp(b, "neon") == 0),
          "backend '%s'", b ? b : "(null)");
    if (env != NULL && strcmp(env, "scalar") == 0) {
        CHECK(strcmp(b, "scalar") == 0, "UNITFP8_BACKEND=scalar but backend is %s", b);
    }
    CHECK(strcmp(unitfp8_status_string(UNITFP8_OK), "ok") == 0, "ok string");
    for (s = 1; s <= 5; s++) {
        const char *t = unitfp8_status_string(s);
        int32_t u;
        CHECK(t != NULL && strlen(t) > 0 && strcmp(t, "unknown status") != 0, "status %d", (int)s);
        for (u = 0; u < s; u++) {
            CHECK(strcmp(t, unitfp8_status_string(u)) != 0, "statuses %d and %d share a string",
                  (int)s, (int)u);
        }
    }
    CHECK(strcmp(unitfp8_status_string(6), "unknown status") == 0, "unknown 6");
    CHECK(strcmp(unitfp8_status_string(-1), "unknown status") == 0, "unknown -1");
    CHECK(strcmp(unitfp8_status_string(INT32_MIN), "unknown status") == 0, "unknown min");
    CHECK(strcmp(unitfp8_status_string(UNITFP8_ERROR_INVALID_ARGUMENT), "invalid argument") == 0,
          "invalid argument string");
    {
        /* One status space: the CUDA codes have strings too, and the CUDA alias agrees. */
        const int32_t cuda_codes[4] = {UNITFP8_CUDA_ERROR_NO_DRIVER, UNITFP8_CUDA_ERROR_NO_DEVICE,
                                       UNITFP8_CUDA_ERROR_DEVICE_UNSUPPORTED,
                                       UNITFP8_CUDA_ERROR_DRIVER};
        int i;
        for (i = 0; i < 4; i++) {
            const char *t = unitfp8_status_string(cuda_codes[i]);
            CHECK(strstr(t, "CUDA") != NULL, "status %d: '%s'", (int)cuda_codes[i], t);
            CHECK(strcmp(t, unitfp8_cuda_status_string(cuda_codes[i])) == 0, "alias %d",
                  (int)cuda_codes[i]);
        }
    }
    {
        /* A failing call says which argument broke which rule; a successful one clears it. */
        float src[8] = {1, 2, 3, 4, 5, 6, 7, 8};
        uint8_t dst[8];
        CHECK(unitfp8_cast_transpose(src, UNITFP8_F32, 2, 4, 3, dst, 4, NULL, 0, UNITFP8_E4M3,
                                     1.0f, UNITFP8_ROUND_NEAREST_SATURATE, 0, NULL) ==
                  UNITFP8_ERROR_INVALID_ARGUMENT,
              "ld_src < cols");
        CHECK(strcmp(unitfp8_last_error(), "ld_src (3) must be >= cols (4)") == 0,
              "last error '%s'", unitfp8_last_error());
        CHECK(strcmp(unitfp8_cuda_last_error(), unitfp8_last_error()) == 0, "last error alias");
        CHECK(unitfp8_cast(src, UNITFP8_F32, dst, UNITFP8_E4M3, 8, 1.0f,
                           UNITFP8_ROUND_NEAREST_SATURATE, 0, NULL) == UNITFP8_OK,
              "cast");
        CHECK(strcmp(unitfp8_last_error(), "") == 0, "cleared: '%s'", unitfp8_last_error());
    }
    unitfp8_set_num_threads(3);
    CHECK(unitfp8_get_num_threads() == 3, "threads %zu", unitfp8_get_num_threads());
    unitfp8_set_num_threads(0);
    CHECK(unitfp8_get_num_threads() >= 1, "default threads %zu", unitfp8_get_num_threads());
    unitfp8_set_move_workers(1);
    CHECK(unitfp8_get_move_workers() == 1, "move workers on");
    unitfp8_set_move_workers(0);
    CHECK(unitfp8_get_move_workers() == 0, "move workers off");
    unitfp8_set_move_workers(-1);
    if (getenv("UNITFP8_MOVE_WORKERS") == NULL) {
        CHECK(unitfp8_get_move_workers() == 0, "workers are not moved by default");
    }
    printf("  version %s, backend %s, %zu threads by default\n", v, b, unitfp8_get_num_threads());
}

/* ---------------------------------------------------------------- decode */

static void test_decode(const Fp8 *f) {
    uint8_t codes[256];
    float out[256];
    uint16_t h[256], bf[256];
    float amax = -1.0f;
    int i;
    for (i = 0; i < 256; i++) {
        codes[i] = (uint8_t)i;
    }
    memset(out, POISON, sizeof out);
    CHECK_STATUS(unitfp8_cast(codes, f->code, out, UNITFP8_F32, 256, 1.0f,
                              UNITFP8_ROUND_NEAREST, 0, &amax),
                 UNITFP8_OK);
    CHECK_STATUS(unitfp8_cast(codes, f->code, h, UNITFP8_F16, 256, 1.0f, UNITFP8_ROUND_NEAREST, 0,
                              NULL),
                 UNITFP8_OK);
    CHECK_STATUS(unitfp8_cast(codes, f->code, bf, UNITFP8_BF16, 256, 1.0f, UNITFP8_ROUND_NEAREST,
                              0, NULL),
                 UNITFP8_OK);
    CHECK(isnan(amax), "%s amax over all codes (NaNs included) is %g", f->name, amax);
    for (i = 0; i < 256; i++) {
        double v = ref_fp8_value(f, (uint8_t)i);
        uint32_t sign = (uint32_t)(i & 0x80) << 24;
        if (isnan(v)) {
            CHECK(f2u(out[i]) == (sign | 0x7FC00000u), "%s decode 0x%02x = 0x%08x", f->name, i,
                  f2u(out[i]));
            CHECK(h[i] == (uint16_t)((sign >> 16) | 0x7E00u), "%s->f16 0x%02x = 0x%04x", f->name,
                  i, h[i]);
            CHECK(bf[i] == (uint16_t)((sign >> 16) | 0x7FC0u), "%s->bf16 0x%02x = 0x%04x",
                  f->name, i, bf[i]);
        } else {
            CHECK((double)out[i] == v && !signbit(out[i]) == !signbit(v),
                  "%s decode 0x%02x = %.9g, expected %.9g", f->name, i, out[i], v);
            CHECK(h[i] == ref_encode_16(v, 0, 0), "%s->f16 0x%02x = 0x%04x", f->name, i, h[i]);
            CHECK(ref_f16_value(h[i]) == v, "%s->f16 0x%02x not exact", f->name, i);
            CHECK(bf[i] == (uint16_t)(f2u((float)v) >> 16), "%s->bf16 0x%02x = 0x%04x", f->name,
                  i, bf[i]);
        }
    }
}

/* ---------------------------------------------------------------- hand-derived encodes */

typedef struct {
    float x;
    uint8_t nearest;
    uint8_t saturate;
} Case;

static void run_cases(const Fp8 *f, const Case *cases, size_t n) {
    size_t i;
    for (i = 0; i < n; i++) {
        uint8_t got[2];
        int mode;
        for (mode = 0; mode < 2; mode++) {
            uint32_t r = mode ? UNITFP8_ROUND_NEAREST : UNITFP8_ROUND_NEAREST_SATURATE;
            uint8_t expected = mode ? cases[i].nearest : cases[i].saturate;
            got[mode] = POISON;
            CHECK_STATUS(unitfp8_cast(&cases[i].x, UNITFP8_F32, &got[mode], f->code, 1, 1.0f, r,
                                      0, NULL),
                         UNITFP8_OK);
            CHECK(got[mode] == expected, "%s(%.9g) mode %u = 0x%02x, expected 0x%02x", f->name,
                  cases[i].x, (unsigned)r, got[mode], expected);
            /* The independent reference must agree with the hand-derived value too. */
            CHECK(ref_encode_fp8(f, cases[i].x, !mode) == expected,
                  "reference %s(%.9g) mode %u disagrees with the hand-derived 0x%02x", f->name,
                  cases[i].x, (unsigned)r, expected);
        }
    }
}

static void test_hand_cases(void) {
    const float inf = INFINITY;
    /* E4M3: 1 = 0x38; ulp at 1 is 1/8, at 448 is 32; min subnormal 2^-9 = 0x01. */
    const Case e4m3[] = {
        {0.0f, 0x00, 0x00},
        {-0.0f, 0x80, 0x80},
        {1.0f, 0x38, 0x38},
        {-2.0f, 0xC0, 0xC0},
        {1.0625f, 0x38, 0x38},        /* tie 1 | 1.125: even 0x38 */
        {1.1875f, 0x3A, 0x3A},        /* tie 1.125 | 1.25: even 0x3A */
        {1.0625001f, 0x39, 0x39},     /* just above the tie */
        {448.0f, 0x7E, 0x7E},
        {464.0f, 0x7E, 0x7E},         /* tie 448 | (480): even 0x7E */
        {464.00003f, 0x7F, 0x7E},     /* just above: NaN / saturate */
        {465.0f, 0x7F, 0x7E},
        {-465.0f, 0xFF, 0xFE},
        {1e30f, 0x7F, 0x7E},
        {inf, 0x7F, 0x7E},
        {-inf, 0xFF, 0xFE},
        {0.001953125f, 0x01, 0x01},   /* 2^-9 */
        {0.0009765625f, 0x00, 0x00},  /* 2^-10: tie 0 | 2^-9, even 0 */
        {0.0009765626f, 0x01, 0x01},  /* just above */
        {-0.0009765625f, 0x80, 0x80}, /* -0 */
        {0.005859375f, 0x03, 0x03},   /* 3 * 2^-9 */
        {0.0048828125f, 0x02, 0x02},  /* 2.5 * 2^-9: tie 2 | 3, even 2 */
        {0.015625f, 0x08, 0x08},      /* 2^-6, min normal */
        {0.0146484375f, 0x08, 0x08},  /* 7.5 * 2^-9: tie 0x07 | 0x08, even 0x08 */
        {240.0f, 0x77, 0x77},         /* 1.875 * 128 */
        {248.0f, 0x78, 0x78},         /* tie 240 | 256: even 0x78 */
    };
    /* E5M2: 1 = 0x3C; ulp at 1 is 1/4, at 57344 is 8192; min subnormal 2^-16 = 0x01. */
    const Case e5m2[] = {
        {0.0f, 0x00, 0x00},
        {-0.0f, 0x80, 0x80},
        {1.0f, 0x3C, 0x3C},
        {1.125f, 0x3C, 0x3C},         /* tie 1 | 1.25: even 0x3C */
        {1.375f, 0x3E, 0x3E},         /* tie 1.25 | 1.5: even 0x3E */
        {57344.0f, 0x7B, 0x7B},
        {61439.0f, 0x7B, 0x7B},
        {61440.0f, 0x7C, 0x7B},       /* tie 57344 | (65536): even is Inf */
        {-61440.0f, 0xFC, 0xFB},
        {1e30f, 0x7C, 0x7B},
        {inf, 0x7C, 0x7B},
        {-inf, 0xFC, 0xFB},
        {1.52587890625e-05f, 0x01, 0x01},  /* 2^-16 */
        {7.62939453125e-06f, 0x00, 0x00},  /* 2^-17: tie, even 0 */
        {7.62939508e-06f, 0x01, 0x01},     /* just above */
        {2.288818359375e-05f, 0x02, 0x02}, /* 1.5 * 2^-16: tie 1 | 2, even 2 */
        {6.103515625e-05f, 0x04, 0x04},    /* 2^-14, min normal */
    };
    const float nan_pos = u2f(0x7FC00001u), nan_neg = u2f(0xFF812345u);
    uint8_t q = 0;
    run_cases(&E4M3, e4m3, sizeof e4m3 / sizeof e4m3[0]);
    run_cases(&E5M2, e5m2, sizeof e5m2 / sizeof e5m2[0]);
    /* NaN: canonical NaN of the format, with the input's sign, in every mode. */
    CHECK_STATUS(unitfp8_cast(&nan_pos, UNITFP8_F32, &q, UNITFP8_E4M3, 1, 1.0f,
                              UNITFP8_ROUND_NEAREST_SATURATE, 0, NULL),
                 UNITFP8_OK);
    CHECK(q == 0x7F, "e4m3(NaN) = 0x%02x", q);
    CHECK_STATUS(unitfp8_cast(&nan_neg, UNITFP8_F32, &q, UNITFP8_E4M3, 1, 1.0f,
                              UNITFP8_ROUND_STOCHASTIC_SATURATE, 7, NULL),
                 UNITFP8_OK);
    CHECK(q == 0xFF, "e4m3(-NaN) = 0x%02x", q);
    CHECK_STATUS(unitfp8_cast(&nan_pos, UNITFP8_F32, &q, UNITFP8_E5M2, 1, 1.0f,
                              UNITFP8_ROUND_NEAREST, 0, NULL),
                 UNITFP8_OK);
    CHECK(q == 0x7E, "e5m2(NaN) = 0x%02x", q);
    CHECK_STATUS(unitfp8_cast(&nan_neg, UNITFP8_F32, &q, UNITFP8_E5M2, 1, 1.0f,
                              UNITFP8_ROUND_NEAREST_SATURATE, 0, NULL),
                 UNITFP8_OK);
    CHECK(q == 0xFE, "e5m2(-NaN) = 0x%02x", q);
}

/* ---------------------------------------------------------------- sweeps vs the reference */

/* Values around every FP8 rounding boundary: each finite code, each midpoint between neighbours
 * (including the virtual neighbour above max), and the f32 values just around them. */
static size_t boundary_values(const Fp8 *f, float *out) {
    size_t n = 0;
    int c;
    double top_ulp = ldexp(1.0, (int)floor(log2(f->max)) - f->mant_bits);
    for (c = 0; c <= f->max_code; c++) {
        double lo = ref_fp8_value(f, (uint8_t)c);
        double hi = c < f->max_code ? ref_fp8_value(f, (uint8_t)(c + 1)) : f->max + top_ulp;
        float pts[2];
        int j, s;
        pts[0] = (float)lo;
        pts[1] = (float)((lo + hi) / 2.0);
        for (j = 0; j < 2; j++) {
            float p = pts[j];
            float around[3];
            around[0] = p;
            around[1] = nextafterf(p, INFINITY);
            around[2] = nextafterf(p, 0.0f);
            for (s = 0; s < 3; s++) {
                out[n++] = around[s];
                out[n++] = -around[s];
            }
        }
    }
    out[n++] = INFINITY;
    out[n++] = -INFINITY;
    out[n++] = 3.4028235e38f;
    out[n++] = 1e-45f;
    return n;
}

static void compare_fp8(const Fp8 *f, const float *x, size_t n, float scale, const char *what) {
    uint8_t *got = (uint8_t *)xmalloc(n);
    int mode;
    for (mode = 0; mode < 2; mode++) {
        uint32_t r = mode ? UNITFP8_ROUND_NEAREST : UNITFP8_ROUND_NEAREST_SATURATE;
        size_t i, bad = 0;
        memset(got, POISON, n);
        CHECK_STATUS(unitfp8_cast(x, UNITFP8_F32, got, f->code, n, scale, r, 0, NULL), UNITFP8_OK);
        for (i = 0; i < n; i++) {
            volatile float scaled = x[i] * scale;
            uint8_t e = ref_encode_fp8(f, scaled, !mode);
            if (got[i] != e) {
                if (bad++ < 5) {
                    CHECK(0, "%s %s x=%.9g (0x%08x) scale=%g mode %u: got 0x%02x expected 0x%02x",
                          what, f->name, x[i], f2u(x[i]), scale, (unsigned)r, got[i], e);
                }
            }
        }
        CHECK(bad == 0, "%s %s mode %u: %zu of %zu differ", what, f->name, (unsigned)r, bad, n);
    }
    free(got);
}

static void test_sweeps(void) {
    const size_t n_rand = 200000;
    float *x = (float *)xmalloc(n_rand * sizeof(float));
    float *bnd = (float *)xmalloc(4096 * sizeof(float));
    const Fp8 *fmts[2];
    size_t i;
    int k;
    fmts[0] = &E4M3;
    fmts[1] = &E5M2;
    for (k = 0; k < 2; k++) {
        size_t nb = boundary_values(fmts[k], bnd);
        compare_fp8(fmts[k], bnd, nb, 1.0f, "boundaries");
        compare_fp8(fmts[k], bnd, nb, 0.5f, "boundaries/2");
        for (i = 0; i < n_rand; i++) {
            x[i] = (i % 2) ? u2f(next_u32()) : random_scaled(-30, 20);
        }
        compare_fp8(fmts[k], x, n_rand, 1.0f, "random");
        compare_fp8(fmts[k], x, n_rand, 3.0f, "random*3");
        compare_fp8(fmts[k], x, 1001, 0.0625f, "random/16 (odd n)");
    }
    /* f32 -> bf16 / f16, both modes; NaN -> canonical NaN with the sign. */
    {
        uint16_t *got = (uint16_t *)xmalloc(n_rand * sizeof(uint16_t));
        int bf, mode;
        for (i = 0; i < n_rand; i++) {
            x[i] = (i % 2) ? u2f(next_u32()) : random_scaled(-30, 20);
        }
        x[0] = 65520.0f;           /* f16 tie max | Inf */
        x[1] = nextafterf(65520.0f, 0.0f);
        x[2] = 3.4028235e38f;      /* rounds to bf16 Inf */
        x[3] = 2.98023224e-08f;    /* 2^-25: f16 tie 0 | 2^-24 */
        x[4] = u2f(0x3F808000u);   /* bf16 tie, even down */
        x[5] = u2f(0x3F818000u);   /* bf16 tie, even up */
        for (bf = 0; bf < 2; bf++) {
            for (mode = 0; mode < 2; mode++) {
                size_t bad = 0;
                uint32_t r = mode ? UNITFP8_ROUND_NEAREST : UNITFP8_ROUND_NEAREST_SATURATE;
                CHECK_STATUS(unitfp8_cast(x, UNITFP8_F32, got, bf ? UNITFP8_BF16 : UNITFP8_F16,
                                          n_rand, 1.0f, r, 0, NULL),
                             UNITFP8_OK);
                for (i = 0; i < n_rand; i++) {
                    uint16_t e;
                    if (isnan(x[i])) {
                        e = (uint16_t)(((f2u(x[i]) >> 16) & 0x8000) | (bf ? 0x7FC0 : 0x7E00));
                    } else {
                        e = ref_encode_16((double)x[i], bf, !mode);
                    }
                    if (got[i] != e && bad++ < 5) {
                        CHECK(0, "f32->%s x=%.9g (0x%08x) mode %u: got 0x%04x expected 0x%04x",
                              bf ? "bf16" : "f16", x[i], f2u(x[i]), (unsigned)r, got[i], e);
                    }
                }
                CHECK(bad == 0, "f32->%s mode %u: %zu differ", bf ? "bf16" : "f16", (unsigned)r,
                      bad);
            }
        }
        free(got);
    }
    /* All 2^16 bf16 and f16 patterns -> both FP8 formats, both modes. */
    {
        uint16_t *src = (uint16_t *)xmalloc(65536 * sizeof(uint16_t));
        uint8_t *got = (uint8_t *)xmalloc(65536);
        int bf, mode;
        for (i = 0; i < 65536; i++) {
            src[i] = (uint16_t)i;
        }
        for (bf = 0; bf < 2; bf++) {
            for (k = 0; k < 2; k++) {
                for (mode = 0; mode < 2; mode++) {
                    size_t bad = 0;
                    uint32_t r = mode ? UNITFP8_ROUND_NEAREST : UNITFP8_ROUND_NEAREST_SATURATE;
                    CHECK_STATUS(unitfp8_cast(src, bf ? UNITFP8_BF16 : UNITFP8_F16, got,
                                              fmts[k]->code, 65536, 1.0f, r, 0, NULL),
                                 UNITFP8_OK);
                    for (i = 0; i < 65536; i++) {
                        float v = bf ? u2f((uint32_t)i << 16) : (float)ref_f16_value((uint16_t)i);
                        uint8_t e;
                        if (!bf && isnan(v)) {
                            v = (i & 0x8000) ? -NAN : NAN;
                        }
                        e = ref_encode_fp8(fmts[k], v, !mode);
                        if (got[i] != e && bad++ < 5) {
                            CHECK(0, "%s 0x%04x -> %s mode %u: got 0x%02x expected 0x%02x",
                                  bf ? "bf16" : "f16", (unsigned)i, fmts[k]->name, (unsigned)r,
                                  got[i], e);
                        }
                    }
                    CHECK(bad == 0, "all %s -> %s mode %u: %zu differ", bf ? "bf16" : "f16",
                          fmts[k]->name, (unsigned)r, bad);
                }
            }
        }
        free(src);
        free(got);
    }
    free(x);
    free(bnd);
}

/* ---------------------------------------------------------------- stochastic rounding */

static void test_stochastic(void) {
    const size_t n = 300001; /* enough for two threads */
    float *x = (float *)xmalloc(n * sizeof(float));
    uint8_t *a = (uint8_t *)xmalloc(n), *b = (uint8_t *)xmalloc(n), *c = (uint8_t *)xmalloc(n);
    size_t i, up = 0, diff = 0, bad = 0;
    uint64_t seed = next_u64();
    const float third = 1.0f + 1.0f / 24.0f; /* 1/3 of the way from 1 to 1.125 */
    for (i = 0; i < n; i++) {
        x[i] = random_scaled(-12, 10);
    }
    unitfp8_set_num_threads(1);
    CHECK_STATUS(unitfp8_cast(x, UNITFP8_F32, a, UNITFP8_E4M3, n, 1.0f,
                              UNITFP8_ROUND_STOCHASTIC_SATURATE, seed, NULL),
                 UNITFP8_OK);
    unitfp8_set_num_threads(2);
    CHECK_STATUS(unitfp8_cast(x, UNITFP8_F32, b, UNITFP8_E4M3, n, 1.0f,
                              UNITFP8_ROUND_STOCHASTIC_SATURATE, seed, NULL),
                 UNITFP8_OK);
    unitfp8_set_num_threads(0);
    CHECK(memcmp(a, b, n) == 0, "stochastic result depends on the thread count");
    CHECK_STATUS(unitfp8_cast(x, UNITFP8_F32, c, UNITFP8_E4M3, n, 1.0f,
                              UNITFP8_ROUND_STOCHASTIC_SATURATE, seed + 1, NULL),
                 UNITFP8_OK);
    for (i = 0; i < n; i++) {
        /* The magnitude is one of the two FP8 neighbours of |x| (clipped to max), sign kept. */
        double lo, hi, v = fabs(ref_fp8_value(&E4M3, a[i]));
        ref_neighbours(&E4M3, fabs((double)x[i]), &lo, &hi);
        if ((v != lo && v != hi) || (a[i] >> 7) != (f2u(x[i]) >> 31)) {
            if (bad++ < 5) {
                CHECK(0, "stochastic(%.9g) = 0x%02x, not in {%.9g, %.9g}", x[i], a[i], lo, hi);
            }
        }
        diff += a[i] != c[i];
    }
    CHECK(bad == 0, "%zu stochastic results are not neighbours of x", bad);
    CHECK(diff > n / 4, "another seed changed only %zu of %zu results", diff, n);
    /* Unbiased: x = 1 + 1/24 rounds up to 1.125 with probability 1/3. */
    for (i = 0; i < n; i++) {
        x[i] = third;
    }
    CHECK_STATUS(unitfp8_cast(x, UNITFP8_F32, a, UNITFP8_E4M3, n, 1.0f,
                              UNITFP8_ROUND_STOCHASTIC_SATURATE, seed, NULL),
                 UNITFP8_OK);
    for (i = 0; i < n; i++) {
        CHECK(a[i] == 0x38 || a[i] == 0x39, "stochastic(1+1/24) = 0x%02x", a[i]);
        up += a[i] == 0x39;
    }
    /* sd of the fraction is sqrt(2/9/n) ~ 0.00086: allow 6 sd. */
    CHECK(fabs((double)up / (double)n - 1.0 / 3.0) < 0.0052, "P(up) = %.5f, expected 1/3",
          (double)up / (double)n);
    /* Saturation: beyond max and Inf clip to max. */
    x[0] = 1e9f;
    x[1] = -INFINITY;
    x[2] = 57344.0f + 4000.0f;
    CHECK_STATUS(unitfp8_cast(x, UNITFP8_F32, a, UNITFP8_E4M3, 2, 1.0f,
                              UNITFP8_ROUND_STOCHASTIC_SATURATE, seed, NULL),
                 UNITFP8_OK);
    CHECK(a[0] == 0x7E && a[1] == 0xFE, "stochastic saturation 0x%02x 0x%02x", a[0], a[1]);
    CHECK_STATUS(unitfp8_cast(x + 2, UNITFP8_F32, a, UNITFP8_E5M2, 1, 1.0f,
                              UNITFP8_ROUND_STOCHASTIC_SATURATE, seed, NULL),
                 UNITFP8_OK);
    CHECK(a[0] == 0x7B, "stochastic e5m2 saturation 0x%02x", a[0]);
    free(x);
    free(a);
    free(b);
    free(c);
}

/* ---------------------------------------------------------------- amax and in-place */

static void test_amax_inplace(void) {
    float x[37], y[37], amax = -1.0f;
    uint8_t q[37], q2[37];
    int i;
    for (i = 0; i < 37; i++) {
        x[i] = random_scaled(-5, 5);
    }
    x[17] = -1000.0f;
    CHECK_STATUS(unitfp8_cast(x, UNITFP8_F32, q, UNITFP8_E4M3, 37, 0.25f,
                              UNITFP8_ROUND_NEAREST_SATURATE, 0, &amax),
                 UNITFP8_OK);
    CHECK(amax == 1000.0f, "amax %g (before scaling)", amax);
    x[3] = NAN;
    CHECK_STATUS(unitfp8_cast(x, UNITFP8_F32, q, UNITFP8_E4M3, 37, 1.0f,
                              UNITFP8_ROUND_NEAREST_SATURATE, 0, &amax),
                 UNITFP8_OK);
    CHECK(isnan(amax), "amax with a NaN is %g", amax);
    amax = -1.0f;
    CHECK_STATUS(unitfp8_cast(NULL, UNITFP8_F32, NULL, UNITFP8_E4M3, 0, 1.0f,
                              UNITFP8_ROUND_NEAREST_SATURATE, 0, &amax),
                 UNITFP8_OK);
    CHECK(amax == 0.0f, "amax of nothing %g", amax);
    /* f32 -> f32 in place: scale and saturate. */
    for (i = 0; i < 37; i++) {
        x[i] = random_scaled(-5, 5);
        y[i] = x[i];
    }
    x[0] = 3e38f;
    y[0] = 3e38f;
    x[1] = -INFINITY;
    y[1] = -INFINITY;
    CHECK_STATUS(unitfp8_cast(x, UNITFP8_F32, x, UNITFP8_F32, 37, 2.0f,
                              UNITFP8_ROUND_NEAREST_SATURATE, 0, NULL),
                 UNITFP8_OK);
    /* f32 destinations are never clipped: 3e38 * 2 overflows to +Inf, -Inf stays -Inf. */
    CHECK(isinf(x[0]) && x[0] > 0 && isinf(x[1]) && x[1] < 0, "f32 not clipped %g %g", x[0], x[1]);
    for (i = 2; i < 37; i++) {
        CHECK(x[i] == y[i] * 2.0f, "f32 in-place scale at %d", i);
    }
    /* E4M3 -> E5M2 in place equals the out-of-place result. */
    for (i = 0; i < 37; i++) {
        q[i] = (uint8_t)next_u32();
    }
    CHECK_STATUS(unitfp8_cast(q, UNITFP8_E4M3, q2, UNITFP8_E5M2, 37, 1.0f,
                              UNITFP8_ROUND_NEAREST_SATURATE, 0, NULL),
                 UNITFP8_OK);
    CHECK_STATUS(unitfp8_cast(q, UNITFP8_E4M3, q, UNITFP8_E5M2, 37, 1.0f,
                              UNITFP8_ROUND_NEAREST_SATURATE, 0, NULL),
                 UNITFP8_OK);
    CHECK(memcmp(q, q2, 37) == 0, "in-place e4m3->e5m2 differs from out-of-place");
}

/* ---------------------------------------------------------------- cast-transpose */

static void test_cast_transpose(void) {
    const size_t rows = 67, cols = 131, ld_src = 140, ld_dst = 133, ld_t = 70;
    float *src = (float *)xmalloc(rows * ld_src * sizeof(float));
    float *contig = (float *)xmalloc(rows * cols * sizeof(float));
    uint8_t *d = (uint8_t *)xmalloc(rows * ld_dst), *t = (uint8_t *)xmalloc(cols * ld_t);
    uint8_t *flat = (uint8_t *)xmalloc(rows * cols);
    uint16_t *tb = (uint16_t *)xmalloc(cols * ld_t * sizeof(uint16_t));
    float amax = -1.0f, amax_only = -1.0f, expected_amax = 0.0f;
    size_t r, c, bad = 0;
    uint64_t seed = next_u64();
    for (r = 0; r < rows; r++) {
        for (c = 0; c < ld_src; c++) {
            float v = c < cols ? random_scaled(-12, 10) : NAN; /* padding is never read */
            src[r * ld_src + c] = v;
            if (c < cols) {
                contig[r * cols + c] = v;
                if (fabsf(v) > expected_amax) {
                    expected_amax = fabsf(v);
                }
            }
        }
    }
    memset(d, POISON, rows * ld_dst);
    memset(t, POISON, cols * ld_t);
    CHECK_STATUS(unitfp8_cast_transpose(src, UNITFP8_F32, rows, cols, ld_src, d, ld_dst, t, ld_t,
                                        UNITFP8_E4M3, 1.0f, UNITFP8_ROUND_NEAREST_SATURATE, 0,
                                        &amax),
                 UNITFP8_OK);
    CHECK(amax == expected_amax, "cast_transpose amax %g, expected %g", amax, expected_amax);
    for (r = 0; r < rows; r++) {
        for (c = 0; c < cols; c++) {
            uint8_t e = ref_encode_fp8(&E4M3, src[r * ld_src + c], 1);
            bad += d[r * ld_dst + c] != e;
            bad += t[c * ld_t + r] != e;
        }
        for (c = cols; c < ld_dst; c++) {
            bad += d[r * ld_dst + c] != POISON;
        }
    }
    for (c = 0; c < cols; c++) {
        for (r = rows; r < ld_t; r++) {
            bad += t[c * ld_t + r] != POISON;
        }
    }
    CHECK(bad == 0, "cast_transpose: %zu wrong or clobbered bytes", bad);
    /* Stochastic: dst_t is the transpose of dst and both equal a flat cast with the seed. */
    CHECK_STATUS(unitfp8_cast_transpose(src, UNITFP8_F32, rows, cols, ld_src, d, ld_dst, t, ld_t,
                                        UNITFP8_E5M2, 4.0f, UNITFP8_ROUND_STOCHASTIC_SATURATE,
                                        seed, NULL),
                 UNITFP8_OK);
    CHECK_STATUS(unitfp8_cast(contig, UNITFP8_F32, flat, UNITFP8_E5M2, rows * cols, 4.0f,
                              UNITFP8_ROUND_STOCHASTIC_SATURATE, seed, NULL),
                 UNITFP8_OK);
    bad = 0;
    for (r = 0; r < rows; r++) {
        for (c = 0; c < cols; c++) {
            bad += d[r * ld_dst + c] != flat[r * cols + c];
            bad += t[c * ld_t + r] != flat[r * cols + c];
        }
    }
    CHECK(bad == 0, "stochastic cast_transpose differs from the flat cast in %zu bytes", bad);
    /* Only the transpose, to bf16; dst null with a meaningless leading dimension. */
    memset(tb, POISON, cols * ld_t * sizeof(uint16_t));
    CHECK_STATUS(unitfp8_cast_transpose(src, UNITFP8_F32, rows, cols, ld_src, NULL, 0, tb, ld_t,
                                        UNITFP8_BF16, 1.0f, UNITFP8_ROUND_NEAREST, 0, NULL),
                 UNITFP8_OK);
    bad = 0;
    for (r = 0; r < rows; r++) {
        for (c = 0; c < cols; c++) {
            bad += tb[c * ld_t + r] != ref_encode_16((double)src[r * ld_src + c], 1, 0);
        }
    }
    CHECK(bad == 0, "bf16 transpose: %zu wrong", bad);
    /* amax only. */
    CHECK_STATUS(unitfp8_cast_transpose(src, UNITFP8_F32, rows, cols, ld_src, NULL, 0, NULL, 0,
                                        UNITFP8_E4M3, 1.0f, UNITFP8_ROUND_NEAREST_SATURATE, 0,
                                        &amax_only),
                 UNITFP8_OK);
    CHECK(amax_only == expected_amax, "amax-only %g", amax_only);
    free(src);
    free(contig);
    free(d);
    free(t);
    free(flat);
    free(tb);
}

/* ---------------------------------------------------------------- residual mix */

static float widen16(uint16_t h, int bf) {
    return bf ? u2f((uint32_t)h << 16) : (float)ref_f16_value(h);
}

static void test_residual(void) {
    const size_t n = 3001;
    const float taus[4] = {0.0f, 0.1f, 0.4f, 1.0f};
    float *x = (float *)xmalloc(n * 4), *f = (float *)xmalloc(n * 4), *o = (float *)xmalloc(n * 4);
    float *gx = (float *)xmalloc(n * 4);
    uint16_t *x16 = (uint16_t *)xmalloc(n * 2), *f16 = (uint16_t *)xmalloc(n * 2);
    uint16_t *o16 = (uint16_t *)xmalloc(n * 2), *gx16 = (uint16_t *)xmalloc(n * 2);
    uint8_t *q = (uint8_t *)xmalloc(n);
    size_t i;
    int t, bf;
    for (t = 0; t < 4; t++) {
        const float tau = taus[t];
        const float a = sqrtf(1.0f - tau), b = sqrtf(tau);
        size_t bad = 0;
        for (i = 0; i < n; i++) {
            x[i] = random_scaled(-3, 3);
            f[i] = random_scaled(-3, 3);
            gx[i] = random_scaled(-3, 3);
        }
        /* f32 forward with an E4M3 copy. */
        memset(o, POISON, n * 4);
        memset(q, POISON, n);
        CHECK_STATUS(unitfp8_residual_mix(x, f, o, UNITFP8_F32, n, tau, q, UNITFP8_E4M3,
                                          UNITFP8_ROUND_NEAREST_SATURATE, 0),
                     UNITFP8_OK);
        for (i = 0; i < n; i++) {
            volatile float p1 = a * x[i];
            volatile float p2 = b * f[i];
            float e = p1 + p2;
            bad += f2u(o[i]) != f2u(e);
            bad += q[i] != ref_encode_fp8(&E4M3, e, 1);
        }
        CHECK(bad == 0, "f32 mix tau=%g: %zu wrong", tau, bad);
        /* In place into f. */
        memcpy(gx, f, n * 4);
        CHECK_STATUS(unitfp8_residual_mix(x, gx, gx, UNITFP8_F32, n, tau, NULL, 0, 0, 0),
                     UNITFP8_OK);
        CHECK(memcmp(gx, o, n * 4) == 0, "in-place (out = f) mix differs, tau=%g", tau);
        /* f32 backward, accumulate and not, E5M2 copy of grad_f. */
        {
            float *g = x, *gf = o;
            float *gx0 = (float *)xmalloc(n * 4);
            int acc;
            for (acc = 0; acc < 2; acc++) {
                for (i = 0; i < n; i++) {
                    gx[i] = random_scaled(-3, 3);
                }
                memcpy(gx0, gx, n * 4);
                memset(q, POISON, n);
                CHECK_STATUS(unitfp8_residual_mix_backward(g, gx, gf, UNITFP8_F32, n, tau, acc, q,
                                                           UNITFP8_E5M2,
                                                           UNITFP8_ROUND_NEAREST_SATURATE, 0),
                             UNITFP8_OK);
                bad = 0;
                for (i = 0; i < n; i++) {
                    volatile float p = a * g[i];
                    float ex = acc ? gx0[i] + p : p;
                    float ef = b * g[i];
                    bad += f2u(gx[i]) != f2u(ex);
                    bad += f2u(gf[i]) != f2u(ef);
                    bad += q[i] != ref_encode_fp8(&E5M2, ef, 1);
                }
                CHECK(bad == 0, "f32 mix backward tau=%g acc=%d: %zu wrong", tau, acc, bad);
            }
            free(gx0);
        }
        /* bf16 / f16 forward (out = x in place) and backward with accumulation. */
        for (bf = 0; bf < 2; bf++) {
            uint32_t io = bf ? UNITFP8_BF16 : UNITFP8_F16;
            for (i = 0; i < n; i++) {
                x16[i] = ref_encode_16((double)random_scaled(-3, 3), bf, 0);
                f16[i] = ref_encode_16((double)random_scaled(-3, 3), bf, 0);
                gx16[i] = ref_encode_16((double)random_scaled(-3, 3), bf, 0);
            }
            memcpy(o16, x16, n * 2);
            CHECK_STATUS(unitfp8_residual_mix(o16, f16, o16, io, n, tau, q, UNITFP8_E5M2,
                                              UNITFP8_ROUND_NEAREST, 0),
                         UNITFP8_OK);
            bad = 0;
            for (i = 0; i < n; i++) {
                volatile float p1 = a * widen16(x16[i], bf);
                volatile float p2 = b * widen16(f16[i], bf);
                uint16_t e = ref_encode_16((double)(p1 + p2), bf, 0);
                bad += o16[i] != e;
                bad += q[i] != ref_encode_fp8(&E5M2, widen16(e, bf), 0);
            }
            CHECK(bad == 0, "%s mix tau=%g: %zu wrong", bf ? "bf16" : "f16", tau, bad);
            memcpy(o16, gx16, n * 2);
            CHECK_STATUS(unitfp8_residual_mix_backward(x16, gx16, f16, io, n, tau, 1, NULL,
                                                       UNITFP8_E4M3, 0, 0),
                         UNITFP8_OK);
            bad = 0;
            for (i = 0; i < n; i++) {
                volatile float p = a * widen16(x16[i], bf);
                volatile float s = widen16(o16[i], bf) + p;
                bad += gx16[i] != ref_encode_16((double)s, bf, 0);
                bad += f16[i] != ref_encode_16((double)(b * widen16(x16[i], bf)), bf, 0);
            }
            CHECK(bad == 0, "%s mix backward tau=%g: %zu wrong", bf ? "bf16" : "f16", tau, bad);
        }
    }
    free(x);
    free(f);
    free(o);
    free(gx);
    free(x16);
    free(f16);
    free(o16);
    free(gx16);
    free(q);
}

/* ---------------------------------------------------------------- error paths */

/* Buffers for error tests: inputs hold ordinary values; outputs are poisoned. */
#define EN 64
static float in_a[EN], in_b[EN];
static unsigned char out_a[EN * 4], out_b[EN * 4], out_q[EN];
static float amax_slot;

static void poison_outputs(void) {
    memset(out_a, POISON, sizeof out_a);
    memset(out_b, POISON, sizeof out_b);
    memset(out_q, POISON, sizeof out_q);
    memset(&amax_slot, POISON, sizeof amax_slot);
}

static int outputs_untouched(void) {
    return all_poison(out_a, sizeof out_a) && all_poison(out_b, sizeof out_b) &&
           all_poison(out_q, sizeof out_q) && all_poison(&amax_slot, sizeof amax_slot);
}

#define EXPECT_FAIL(call, expected)                                                  \
    do {                                                                             \
        poison_outputs();                                                            \
        CHECK_STATUS(call, expected);                                                \
        CHECK(outputs_untouched(), "a failed call wrote its outputs: %s", #call);    \
    } while (0)

static void test_cast_errors(void) {
    const uint32_t S = UNITFP8_ROUND_NEAREST_SATURATE;
    float big[EN];
    int i;
    for (i = 0; i < EN; i++) {
        in_a[i] = (float)i - 20.5f;
        in_b[i] = (float)i * 0.25f;
    }
    memcpy(big, in_a, sizeof big);
    /* Null pointers. */
    EXPECT_FAIL(unitfp8_cast(NULL, UNITFP8_F32, out_a, UNITFP8_E4M3, 4, 1.0f, S, 0, &amax_slot),
                UNITFP8_ERROR_NULL_POINTER);
    EXPECT_FAIL(unitfp8_cast(in_a, UNITFP8_F32, NULL, UNITFP8_E4M3, 4, 1.0f, S, 0, &amax_slot),
                UNITFP8_ERROR_NULL_POINTER);
    /* n = 0: success, nothing written except amax = 0. */
    poison_outputs();
    CHECK_STATUS(unitfp8_cast(NULL, UNITFP8_F32, NULL, UNITFP8_E4M3, 0, 1.0f, S, 0, NULL),
                 UNITFP8_OK);
    CHECK_STATUS(unitfp8_cast(in_a, UNITFP8_F32, out_a, UNITFP8_E4M3, 0, 1.0f, S, 0, NULL),
                 UNITFP8_OK);
    CHECK(outputs_untouched(), "n = 0 wrote something");
    /* Bad codes (even with n = 0). */
    EXPECT_FAIL(unitfp8_cast(in_a, 5, out_a, UNITFP8_E4M3, 4, 1.0f, S, 0, &amax_slot),
                UNITFP8_ERROR_INVALID_ARGUMENT);
    EXPECT_FAIL(unitfp8_cast(in_a, UNITFP8_F32, out_a, 0xFFFFFFFFu, 4, 1.0f, S, 0, &amax_slot),
                UNITFP8_ERROR_INVALID_ARGUMENT);
    EXPECT_FAIL(unitfp8_cast(in_a, UNITFP8_F32, out_a, UNITFP8_E4M3, 4, 1.0f, 3, 0, &amax_slot),
                UNITFP8_ERROR_INVALID_ARGUMENT);
    EXPECT_FAIL(unitfp8_cast(NULL, UNITFP8_F32, NULL, 77, 0, 1.0f, S, 0, &amax_slot),
                UNITFP8_ERROR_INVALID_ARGUMENT);
    EXPECT_FAIL(unitfp8_cast(NULL, UNITFP8_F32, NULL, UNITFP8_E5M2, 0, 1.0f, 1000, 0, &amax_slot),
                UNITFP8_ERROR_INVALID_ARGUMENT);
    /* Bad scale. */
    EXPECT_FAIL(unitfp8_cast(in_a, UNITFP8_F32, out_a, UNITFP8_E4M3, 4, NAN, S, 0, &amax_slot),
                UNITFP8_ERROR_INVALID_ARGUMENT);
    EXPECT_FAIL(unitfp8_cast(in_a, UNITFP8_F32, out_a, UNITFP8_E4M3, 4, INFINITY, S, 0,
                             &amax_slot),
                UNITFP8_ERROR_INVALID_ARGUMENT);
    /* Stochastic rounding to a non-FP8 type. */
    EXPECT_FAIL(unitfp8_cast(in_a, UNITFP8_F32, out_a, UNITFP8_F32, 4, 1.0f,
                             UNITFP8_ROUND_STOCHASTIC_SATURATE, 0, &amax_slot),
                UNITFP8_ERROR_UNSUPPORTED);
    EXPECT_FAIL(unitfp8_cast(in_a, UNITFP8_F32, out_a, UNITFP8_BF16, 4, 1.0f,
                             UNITFP8_ROUND_STOCHASTIC_SATURATE, 0, &amax_slot),
                UNITFP8_ERROR_UNSUPPORTED);
    EXPECT_FAIL(unitfp8_cast(in_a, UNITFP8_E4M3, out_a, UNITFP8_F16, 4, 1.0f,
                             UNITFP8_ROUND_STOCHASTIC_SATURATE, 0, &amax_slot),
                UNITFP8_ERROR_UNSUPPORTED);
    /* Sizes whose byte count overflows. */
    EXPECT_FAIL(unitfp8_cast(in_a, UNITFP8_F32, out_a, UNITFP8_E4M3, SIZE_MAX / 2 + 1, 1.0f, S, 0,
                             &amax_slot),
                UNITFP8_ERROR_INVALID_ARGUMENT);
    EXPECT_FAIL(unitfp8_cast(in_a, UNITFP8_E4M3, out_a, UNITFP8_F32, SIZE_MAX / 4 + 1, 1.0f, S, 0,
                             NULL),
                UNITFP8_ERROR_INVALID_ARGUMENT);
    /* Partial overlap; the same address with different element sizes; amax inside a buffer. */
    memcpy(out_b, in_a, sizeof in_a);
    CHECK_STATUS(unitfp8_cast(out_b, UNITFP8_F32, out_b + 4, UNITFP8_F32, 8, 1.0f, S, 0, NULL),
                 UNITFP8_ERROR_OVERLAP);
    CHECK(memcmp(out_b, in_a, sizeof in_a) == 0, "overlapping f32 cast wrote");
    CHECK_STATUS(unitfp8_cast(out_b, UNITFP8_F32, out_b + 31, UNITFP8_E4M3, 8, 1.0f, S, 0, NULL),
                 UNITFP8_ERROR_OVERLAP);
    CHECK_STATUS(unitfp8_cast(out_b, UNITFP8_F32, out_b, UNITFP8_BF16, 8, 1.0f, S, 0, NULL),
                 UNITFP8_ERROR_OVERLAP);
    CHECK(memcmp(out_b, in_a, sizeof in_a) == 0, "overlapping casts wrote");
    EXPECT_FAIL(unitfp8_cast(in_a, UNITFP8_F32, out_a, UNITFP8_E4M3, 8, 1.0f, S, 0,
                             (float *)(void *)(out_a + 6)),
                UNITFP8_ERROR_OVERLAP);
    EXPECT_FAIL(unitfp8_cast(in_a, UNITFP8_F32, out_a, UNITFP8_E4M3, 8, 1.0f, S, 0,
                             (float *)(void *)(out_a + 5)),
                UNITFP8_ERROR_OVERLAP);
    CHECK_STATUS(unitfp8_cast(big, UNITFP8_F32, out_a, UNITFP8_E4M3, 8, 1.0f, S, 0, &big[7]),
                 UNITFP8_ERROR_OVERLAP);
    CHECK(memcmp(big, in_a, sizeof big) == 0, "amax-overlap failure wrote");
    /* amax adjacent to (not inside) the buffers is fine. */
    poison_outputs();
    CHECK_STATUS(unitfp8_cast(in_a, UNITFP8_F32, out_a, UNITFP8_E4M3, 8, 1.0f, S, 0,
                              (float *)(void *)(out_a + 8)),
                 UNITFP8_OK);
}

static void test_cast_transpose_errors(void) {
    const uint32_t S = UNITFP8_ROUND_NEAREST_SATURATE;
    /* A 4 x 6 f32 matrix (ld 8) into E4M3 out_a (ld 6) and out_q transposed (ld 4). */
    EXPECT_FAIL(unitfp8_cast_transpose(NULL, UNITFP8_F32, 4, 6, 8, out_a, 6, out_q, 4,
                                       UNITFP8_E4M3, 1.0f, S, 0, &amax_slot),
                UNITFP8_ERROR_NULL_POINTER);
    EXPECT_FAIL(unitfp8_cast_transpose(in_a, UNITFP8_F32, 4, 6, 5, out_a, 6, out_q, 4,
                                       UNITFP8_E4M3, 1.0f, S, 0, &amax_slot),
                UNITFP8_ERROR_INVALID_ARGUMENT);
    EXPECT_FAIL(unitfp8_cast_transpose(in_a, UNITFP8_F32, 4, 6, 8, out_a, 5, out_q, 4,
                                       UNITFP8_E4M3, 1.0f, S, 0, &amax_slot),
                UNITFP8_ERROR_INVALID_ARGUMENT);
    EXPECT_FAIL(unitfp8_cast_transpose(in_a, UNITFP8_F32, 4, 6, 8, out_a, 6, out_q, 3,
                                       UNITFP8_E4M3, 1.0f, S, 0, &amax_slot),
                UNITFP8_ERROR_INVALID_ARGUMENT);
    EXPECT_FAIL(unitfp8_cast_transpose(in_a, UNITFP8_F32, 4, 6, 8, out_a, 5, out_q, 4,
                                       UNITFP8_E4M3, 1.0f, S, 0, NULL),
                UNITFP8_ERROR_INVALID_ARGUMENT);
    EXPECT_FAIL(unitfp8_cast_transpose(in_a, UNITFP8_F32, 3, 6, SIZE_MAX / 2, out_a, 6, NULL, 0,
                                       UNITFP8_E4M3, 1.0f, S, 0, &amax_slot),
                UNITFP8_ERROR_INVALID_ARGUMENT);
    EXPECT_FAIL(unitfp8_cast_transpose(in_a, UNITFP8_F32, 4, 6, 8, out_a, 6, out_q, 4, 9, 1.0f,
                                       S, 0, &amax_slot),
                UNITFP8_ERROR_INVALID_ARGUMENT);
    EXPECT_FAIL(unitfp8_cast_transpose(in_a, 6, 4, 6, 8, out_a, 6, out_q, 4, UNITFP8_E4M3, 1.0f,
                                       S, 0, &amax_slot),
                UNITFP8_ERROR_INVALID_ARGUMENT);
    EXPECT_FAIL(unitfp8_cast_transpose(in_a, UNITFP8_F32, 4, 6, 8, out_a, 6, out_q, 4,
                                       UNITFP8_E4M3, 1.0f, 3, 0, &amax_slot),
                UNITFP8_ERROR_INVALID_ARGUMENT);
    EXPECT_FAIL(unitfp8_cast_transpose(in_a, UNITFP8_F32, 4, 6, 8, out_a, 6, out_q, 4,
                                       UNITFP8_E4M3, NAN, S, 0, &amax_slot),
                UNITFP8_ERROR_INVALID_ARGUMENT);
    EXPECT_FAIL(unitfp8_cast_transpose(in_a, UNITFP8_F32, 4, 6, 8, out_a, 6, NULL, 0,
                                       UNITFP8_F16, 1.0f, UNITFP8_ROUND_STOCHASTIC_SATURATE, 0,
                                       &amax_slot),
                UNITFP8_ERROR_UNSUPPORTED);
    /* dst and dst_t overlap; amax inside dst_t. */
    EXPECT_FAIL(unitfp8_cast_transpose(in_a, UNITFP8_F32, 4, 6, 8, out_a, 6, out_a + 20, 4,
                                       UNITFP8_E4M3, 1.0f, S, 0, &amax_slot),
                UNITFP8_ERROR_OVERLAP);
    EXPECT_FAIL(unitfp8_cast_transpose(in_a, UNITFP8_F32, 4, 6, 8, out_a, 6, out_q, 4,
                                       UNITFP8_E4M3, 1.0f, S, 0, (float *)(void *)(out_q + 20)),
                UNITFP8_ERROR_OVERLAP);
    /* src and dst overlap (src is out_b, copied from in_a). */
    memcpy(out_b, in_a, sizeof in_a);
    CHECK_STATUS(unitfp8_cast_transpose(out_b, UNITFP8_F32, 4, 6, 8, out_b + 100, 6, NULL, 0,
                                        UNITFP8_E4M3, 1.0f, S, 0, NULL),
                 UNITFP8_ERROR_OVERLAP);
    CHECK(memcmp(out_b, in_a, sizeof in_a) == 0, "overlapping cast_transpose wrote");
    /* Empty matrices: success, nothing written; leading dimensions of absent outputs ignored. */
    poison_outputs();
    CHECK_STATUS(unitfp8_cast_transpose(NULL, UNITFP8_F32, 0, 6, 8, NULL, 6, NULL, 0,
                                        UNITFP8_E4M3, 1.0f, S, 0, NULL),
                 UNITFP8_OK);
    CHECK_STATUS(unitfp8_cast_transpose(in_a, UNITFP8_F32, 4, 0, 8, out_a, 6, out_q, 4,
                                        UNITFP8_E4M3, 1.0f, S, 0, NULL),
                 UNITFP8_OK);
    CHECK(outputs_untouched(), "empty cast_transpose wrote");
    CHECK_STATUS(unitfp8_cast_transpose(in_a, UNITFP8_F32, 4, 6, 8, NULL, 1, out_q, 4,
                                        UNITFP8_E4M3, 1.0f, S, 0, &amax_slot),
                 UNITFP8_OK);
    CHECK(amax_slot == 20.5f, "cast_transpose amax %g", amax_slot);
}

static void test_residual_errors(void) {
    const uint32_t S = UNITFP8_ROUND_NEAREST_SATURATE, F = UNITFP8_F32;
    const float bad_taus[5] = {NAN, -0.01f, 1.01f, INFINITY, -INFINITY};
    int i;
    for (i = 0; i < 5; i++) {
        EXPECT_FAIL(unitfp8_residual_mix(in_a, in_b, out_a, F, 8, bad_taus[i], out_q,
                                         UNITFP8_E4M3, S, 0),
                    UNITFP8_ERROR_INVALID_ARGUMENT);
        EXPECT_FAIL(unitfp8_residual_mix_backward(in_a, out_a, out_b, F, 8, bad_taus[i], 0, out_q,
                                                  UNITFP8_E5M2, S, 0),
                    UNITFP8_ERROR_INVALID_ARGUMENT);
        EXPECT_FAIL(unitfp8_residual_mix(NULL, NULL, NULL, F, 0, bad_taus[i], NULL, 0, S, 0),
                    UNITFP8_ERROR_INVALID_ARGUMENT);
    }
    /* Null pointers. */
    EXPECT_FAIL(unitfp8_residual_mix(NULL, in_b, out_a, F, 8, 0.5f, NULL, 0, S, 0),
                UNITFP8_ERROR_NULL_POINTER);
    EXPECT_FAIL(unitfp8_residual_mix(in_a, NULL, out_a, F, 8, 0.5f, NULL, 0, S, 0),
                UNITFP8_ERROR_NULL_POINTER);
    EXPECT_FAIL(unitfp8_residual_mix(in_a, in_b, NULL, F, 8, 0.5f, out_q, UNITFP8_E4M3, S, 0),
                UNITFP8_ERROR_NULL_POINTER);
    EXPECT_FAIL(unitfp8_residual_mix_backward(NULL, out_a, out_b, F, 8, 0.5f, 0, NULL, 0, S, 0),
                UNITFP8_ERROR_NULL_POINTER);
    EXPECT_FAIL(unitfp8_residual_mix_backward(in_a, NULL, out_b, F, 8, 0.5f, 0, NULL, 0, S, 0),
                UNITFP8_ERROR_NULL_POINTER);
    EXPECT_FAIL(unitfp8_residual_mix_backward(in_a, out_a, NULL, F, 8, 0.5f, 1, NULL, 0, S, 0),
                UNITFP8_ERROR_NULL_POINTER);
    /* Types and codes. */
    EXPECT_FAIL(unitfp8_residual_mix(in_a, in_b, out_a, UNITFP8_E4M3, 8, 0.5f, NULL, 0, S, 0),
                UNITFP8_ERROR_UNSUPPORTED);
    EXPECT_FAIL(unitfp8_residual_mix_backward(in_a, out_a, out_b, UNITFP8_E5M2, 8, 0.5f, 0, NULL,
                                              0, S, 0),
                UNITFP8_ERROR_UNSUPPORTED);
    EXPECT_FAIL(unitfp8_residual_mix(in_a, in_b, out_a, 5, 8, 0.5f, NULL, 0, S, 0),
                UNITFP8_ERROR_INVALID_ARGUMENT);
    EXPECT_FAIL(unitfp8_residual_mix(in_a, in_b, out_a, F, 8, 0.5f, out_q, UNITFP8_F32, S, 0),
                UNITFP8_ERROR_INVALID_ARGUMENT);
    EXPECT_FAIL(unitfp8_residual_mix(in_a, in_b, out_a, F, 8, 0.5f, out_q, UNITFP8_BF16, S, 0),
                UNITFP8_ERROR_INVALID_ARGUMENT);
    EXPECT_FAIL(unitfp8_residual_mix(in_a, in_b, out_a, F, 8, 0.5f, NULL, 12345, S, 0),
                UNITFP8_ERROR_INVALID_ARGUMENT);
    EXPECT_FAIL(unitfp8_residual_mix(in_a, in_b, out_a, F, 8, 0.5f, out_q, UNITFP8_E4M3, 3, 0),
                UNITFP8_ERROR_INVALID_ARGUMENT);
    EXPECT_FAIL(unitfp8_residual_mix(in_a, in_b, out_a, F, 8, 0.5f, NULL, UNITFP8_E4M3, 99, 0),
                UNITFP8_ERROR_INVALID_ARGUMENT);
    EXPECT_FAIL(unitfp8_residual_mix_backward(in_a, out_a, out_b, F, 8, 0.5f, 0, out_q,
                                              UNITFP8_F16, S, 0),
                UNITFP8_ERROR_INVALID_ARGUMENT);
    EXPECT_FAIL(unitfp8_residual_mix(in_a, in_b, out_a, F, SIZE_MAX / 2, 0.5f, NULL, 0, S, 0),
                UNITFP8_ERROR_INVALID_ARGUMENT);
    /* Overlaps. */
    memcpy(out_b, in_a, sizeof in_a);
    CHECK_STATUS(unitfp8_residual_mix(out_b, in_b, out_b + 4, F, 8, 0.5f, NULL, 0, S, 0),
                 UNITFP8_ERROR_OVERLAP);
    CHECK_STATUS(unitfp8_residual_mix(in_b, out_b, out_b + 2, UNITFP8_BF16, 8, 0.5f, NULL, 0, S,
                                      0),
                 UNITFP8_ERROR_OVERLAP);
    CHECK_STATUS(unitfp8_residual_mix_backward(out_b, out_b + 8, out_a, F, 8, 0.5f, 0, NULL, 0, S,
                                               0),
                 UNITFP8_ERROR_OVERLAP);
    CHECK(memcmp(out_b, in_a, sizeof in_a) == 0, "overlapping mix wrote");
    EXPECT_FAIL(unitfp8_residual_mix(in_a, in_b, out_a, F, 8, 0.5f, out_a + 31, UNITFP8_E4M3, S,
                                     0),
                UNITFP8_ERROR_OVERLAP);
    EXPECT_FAIL(unitfp8_residual_mix_backward(in_a, out_a, out_a + 16, F, 8, 0.5f, 0, NULL, 0, S,
                                              0),
                UNITFP8_ERROR_OVERLAP);
    EXPECT_FAIL(unitfp8_residual_mix_backward(in_a, out_a, out_b, F, 8, 0.5f, 0, out_b + 3,
                                              UNITFP8_E5M2, S, 0),
                UNITFP8_ERROR_OVERLAP);
    EXPECT_FAIL(unitfp8_residual_mix_backward(in_a, out_a, out_a, F, 8, 0.5f, 0, NULL, 0, S, 0),
                UNITFP8_ERROR_OVERLAP);
    /* n = 0: success with null pointers; x and f may overlap each other. */
    poison_outputs();
    CHECK_STATUS(unitfp8_residual_mix(NULL, NULL, NULL, F, 0, 0.5f, NULL, 0, S, 0), UNITFP8_OK);
    CHECK_STATUS(unitfp8_residual_mix_backward(NULL, NULL, NULL, F, 0, 0.5f, 1, NULL, 0, S, 0),
                 UNITFP8_OK);
    CHECK(outputs_untouched(), "n = 0 mix wrote");
    CHECK_STATUS(unitfp8_residual_mix(in_a, in_a + 1, out_a, F, 8, 0.5f, NULL, 0, S, 0),
                 UNITFP8_OK);
}

/* ---------------------------------------------------------------- main */

int main(void) {
    const char *seed_env = getenv("UNITFP8_TEST_SEED");
    uint64_t seed = seed_env ? (uint64_t)strtoull(seed_env, NULL, 0)
                             : (uint64_t)time(NULL) ^ ((uint64_t)clock() << 32);
    rng_state = seed;
    printf("test_ffi (%s): seed %llu (set UNITFP8_TEST_SEED to repeat)\n",
#ifdef __cplusplus
           "C++",
#else
           "C",
#endif
           (unsigned long long)seed);
    test_info();
    test_decode(&E4M3);
    test_decode(&E5M2);
    test_hand_cases();
    test_sweeps();
    test_stochastic();
    test_amax_inplace();
    test_cast_transpose();
    test_residual();
    test_cast_errors();
    test_cast_transpose_errors();
    test_residual_errors();
    if (failures) {
        printf("FAILED: %d of %d checks\n", failures, checks);
        return 1;
    }
    printf("ok: %d checks\n", checks);
    return 0;
}
