/* C99 test of unitfp8_gemm and the linear-layer entry points through the C ABI.
 * Build: see run.sh. Checks bit-exact agreement with a model in C of the documented
 * accumulation order, several layouts, error codes, untouched outputs on errors. */
#include <math.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* Prototypes of the entry points under test (as in include/unitfp8.h). */
int32_t unitfp8_gemm(size_t m, size_t n, size_t k, float alpha, const void *a, uint32_t a_type,
                     ptrdiff_t a_row_stride, ptrdiff_t a_col_stride, const void *b,
                     uint32_t b_type, ptrdiff_t b_row_stride, ptrdiff_t b_col_stride, float beta,
                     void *c, uint32_t c_type, ptrdiff_t c_row_stride, ptrdiff_t c_col_stride);
int32_t unitfp8_linear_forward(size_t batch, size_t fan_in, size_t fan_out, float alpha,
                               const void *x, const void *w, void *y, uint32_t y_type);
int32_t unitfp8_linear_backward_data(size_t batch, size_t fan_in, size_t fan_out, float alpha,
                                     const void *dy, const void *w, float beta, void *dx,
                                     uint32_t dx_type);
int32_t unitfp8_linear_backward_weight(size_t batch, size_t fan_in, size_t fan_out, float alpha,
                                       const void *dy, const void *x, float beta, float *dw);

enum { F32 = 0, BF16 = 1, F16 = 2, E4M3 = 3, E5M2 = 4 };
enum { OK = 0, ERR_NULL = 1, ERR_ARG = 2, ERR_OVERLAP = 3, ERR_UNSUPPORTED = 4 };

static int failures = 0;
#define CHECK(cond, ...)                                                                       \
    do {                                                                                       \
        if (!(cond)) {                                                                         \
            printf("FAIL %s:%d: ", __FILE__, __LINE__);                                        \
            printf(__VA_ARGS__);                                                               \
            printf("\n");                                                                      \
            failures++;                                                                        \
        }                                                                                      \
    } while (0)

static uint64_t rng_state;
static uint32_t rnd(void) {
    rng_state = rng_state * 6364136223846793005ULL + 1442695040888963407ULL;
    return (uint32_t)(rng_state >> 33);
}

static float bits_f32(uint32_t b) {
    float f;
    memcpy(&f, &b, 4);
    return f;
}
static uint32_t f32_bits(float f) {
    uint32_t b;
    memcpy(&b, &f, 4);
    return b;
}

/* Exact FP8 decode. */
static float decode(int type, uint8_t c) {
    int sign = c & 0x80, mag = c & 0x7F;
    int mb = type == E4M3 ? 3 : 2, bias = type == E4M3 ? 7 : 15;
    float v;
    if (type == E4M3 && mag == 0x7F) return bits_f32(0x7FC00000u | (sign ? 0x80000000u : 0));
    if (type == E5M2 && mag > 0x7C) return bits_f32(0x7FC00000u | (sign ? 0x80000000u : 0));
    if (type == E5M2 && mag == 0x7C) return sign ? -INFINITY : INFINITY;
    if ((mag >> mb) == 0)
        v = ldexpf((float)(mag & ((1 << mb) - 1)), 1 - bias - mb);
    else
        v = ldexpf(1.0f + (float)(mag & ((1 << mb) - 1)) / (float)(1 << mb), (mag >> mb) - bias);
    return sign ? -v : v;
}

static uint8_t finite_code(int type) {
    for (;;) {
        uint8_t c = (uint8_t)rnd();
        if (isfinite(decode(type, c))) return c;
    }
}

/* The documented order: blocks of 256, pairs odd-first, block sums added in order. */
static float model_dot(size_t k, const uint8_t *a, ptrdiff_t as, int at, const uint8_t *b,
                       ptrdiff_t bs, int bt) {
    float total = 0.0f;
    size_t s;
    for (s = 0; s < k; s += 256) {
        size_t e = s + 256 < k ? s + 256 : k, t;
        float acc = 0.0f;
        for (t = s; t < e; t += 2) {
            float even = decode(at, a[(ptrdiff_t)t * as]) * decode(bt, b[(ptrdiff_t)t * bs]);
            float odd = 0.0f;
            if (t + 1 < e)
                odd = decode(at, a[(ptrdiff_t)(t + 1) * as]) * decode(bt, b[(ptrdiff_t)(t + 1) * bs]);
            acc = even + (odd + acc);
        }
        total = s == 0 ? acc : total + acc;
    }
    return total;
}

static uint16_t to_bf16(float x) {
    uint32_t b = f32_bits(x), abs = b & 0x7FFFFFFFu, sign = (b >> 16) & 0x8000u;
    if (abs > 0x7F800000u) return (uint16_t)(sign | 0x7FC0u);
    return (uint16_t)(sign | ((abs + 0x7FFFu + ((abs >> 16) & 1u)) >> 16));
}

/* One GEMM with A, B in the given layouts (0 row-major, 1 column-major), C row- or column-
 * major f32 or bf16, compared bit-exactly with the model; guard elements around C checked. */
static void gemm_case(size_t m, size_t n, size_t k, int at, int bt, int ct, int la, int lb,
                      int lc, float alpha, float beta) {
    const size_t guard = 16;
    uint8_t *a = malloc(m * k + 1), *b = malloc(k * n + 1);
    size_t csz = ct == F32 ? 4 : 2, i, j;
    unsigned char *cbuf = malloc((m * n + 2 * guard) * csz), *orig;
    unsigned char *c = cbuf + guard * csz;
    ptrdiff_t ars = la ? 1 : (ptrdiff_t)k, acs = la ? (ptrdiff_t)m : 1;
    ptrdiff_t brs = lb ? 1 : (ptrdiff_t)n, bcs = lb ? (ptrdiff_t)k : 1;
    ptrdiff_t crs = lc ? 1 : (ptrdiff_t)n, ccs = lc ? (ptrdiff_t)m : 1;
    int32_t st;
    for (i = 0; i < m * k; i++) a[i] = finite_code(at);
    for (i = 0; i < k * n; i++) b[i] = finite_code(bt);
    for (i = 0; i < (m * n + 2 * guard) * csz; i++) cbuf[i] = (unsigned char)rnd();
    if (beta != 0.0f) {
        for (i = 0; i < m * n; i++) {
            float v = (float)((int)(rnd() % 200) - 100) / 16.0f;
            if (ct == F32)
                memcpy(c + 4 * i, &v, 4);
            else {
                uint16_t h = to_bf16(v);
                memcpy(c + 2 * i, &h, 2);
            }
        }
    }
    orig = malloc((m * n + 2 * guard) * csz);
    memcpy(orig, cbuf, (m * n + 2 * guard) * csz);
    st = unitfp8_gemm(m, n, k, alpha, a, (uint32_t)at, ars, acs, b, (uint32_t)bt, brs, bcs, beta,
                      c, (uint32_t)ct, crs, ccs);
    CHECK(st == OK, "status %d", st);
    CHECK(memcmp(cbuf, orig, guard * csz) == 0, "guard before C written");
    CHECK(memcmp(c + m * n * csz, orig + (guard + m * n) * csz, guard * csz) == 0,
          "guard after C written");
    for (i = 0; i < m; i++) {
        for (j = 0; j < n; j++) {
            ptrdiff_t e = (ptrdiff_t)i * crs + (ptrdiff_t)j * ccs;
            float acc = model_dot(k, a + (ptrdiff_t)i * ars, acs, at, b + (ptrdiff_t)j * bcs, brs, bt);
            float r = alpha * acc, old;
            if (beta != 0.0f) {
                if (ct == F32)
                    memcpy(&old, orig + (guard + (size_t)e) * 4, 4);
                else {
                    uint16_t h;
                    memcpy(&h, orig + (guard + (size_t)e) * 2, 2);
                    old = bits_f32((uint32_t)h << 16);
                }
                r = r + beta * old;
            }
            if (ct == F32) {
                float got;
                memcpy(&got, c + 4 * e, 4);
                CHECK(f32_bits(got) == f32_bits(r), "f32 (%zu,%zu) m=%zu n=%zu k=%zu: %a vs %a",
                      i, j, m, n, k, (double)got, (double)r);
            } else {
                uint16_t got;
                memcpy(&got, c + 2 * e, 2);
                CHECK(got == to_bf16(r), "bf16 (%zu,%zu): %x vs %x", i, j, got, to_bf16(r));
            }
            if (failures > 10) exit(1);
        }
    }
    free(a);
    free(b);
    free(cbuf);
    free(orig);
}

static void errors(void) {
    uint8_t a[64], b[64];
    float c[64];
    size_t i;
    int32_t st;
    for (i = 0; i < 64; i++) {
        a[i] = 0x38;
        b[i] = 0x38;
        c[i] = 12345.0f;
    }
    st = unitfp8_gemm(8, 8, 8, 1.0f, a, 99, 8, 1, b, E4M3, 8, 1, 0.0f, c, F32, 8, 1);
    CHECK(st == ERR_ARG, "bad type code: %d", st);
    st = unitfp8_gemm(8, 8, 8, 1.0f, a, E4M3, 8, 1, b, E4M3, 8, 1, 0.0f, c, 77, 8, 1);
    CHECK(st == ERR_ARG, "bad C type code: %d", st);
    st = unitfp8_gemm(8, 8, 8, 1.0f, NULL, E4M3, 8, 1, b, E4M3, 8, 1, 0.0f, c, F32, 8, 1);
    CHECK(st == ERR_NULL, "null A: %d", st);
    st = unitfp8_gemm(8, 8, 8, 1.0f, a, F32, 8, 1, b, E4M3, 8, 1, 0.0f, c, F32, 8, 1);
    CHECK(st == ERR_UNSUPPORTED, "f32 A: %d", st);
    st = unitfp8_gemm(8, 8, 8, 1.0f, a, E4M3, 8, 1, b, E4M3, 8, 1, 1.0f, a, E4M3, 8, 1);
    CHECK(st == ERR_ARG, "FP8 C with beta: %d", st);
    st = unitfp8_gemm(8, 8, 8, 1.0f, a, E4M3, 8, 1, b, E4M3, 8, 1, 0.0f, c, F32, 1, 1);
    CHECK(st == ERR_OVERLAP, "self-overlapping C: %d", st);
    st = unitfp8_gemm(4, 4, 4, 1.0f, a, E4M3, 4, 1, b, E4M3, 4, 1, 0.0f, a + 8, E4M3, 4, 1);
    CHECK(st == ERR_OVERLAP, "C overlaps A: %d", st);
    st = unitfp8_gemm(8, 8, 8, 1.0f, a, E4M3, PTRDIFF_MAX, 1, b, E4M3, 8, 1, 0.0f, c, F32, 8, 1);
    CHECK(st == ERR_ARG, "stride overflow: %d", st);
    st = unitfp8_linear_forward((size_t)-1, 2, 2, 0.0f, a, b, c, F32);
    CHECK(st != OK, "linear size overflow: %d", st);
    for (i = 0; i < 64; i++) CHECK(c[i] == 12345.0f && a[i] == 0x38, "output touched on error");
    st = unitfp8_gemm(0, 8, 8, 1.0f, NULL, E4M3, 8, 1, NULL, E4M3, 8, 1, 0.0f, NULL, F32, 8, 1);
    CHECK(st == OK, "empty gemm: %d", st);
}

/* Linear entry points equal the GEMM with the PyTorch layouts. */
static void linear(void) {
    const size_t bt = 37, fi = 70, fo = 45;
    uint8_t *x = malloc(bt * fi), *w = malloc(fo * fi), *dy = malloc(bt * fo);
    float *y = malloc(bt * fo * 4), *y2 = malloc(bt * fo * 4);
    float *dx = malloc(bt * fi * 4), *dx2 = malloc(bt * fi * 4);
    float *dw = malloc(fo * fi * 4), *dw2 = malloc(fo * fi * 4);
    float alpha = 1.0f / sqrtf((float)fi);
    size_t i;
    for (i = 0; i < bt * fi; i++) x[i] = finite_code(E4M3);
    for (i = 0; i < fo * fi; i++) w[i] = finite_code(E4M3);
    for (i = 0; i < bt * fo; i++) dy[i] = finite_code(E5M2);
    CHECK(unitfp8_linear_forward(bt, fi, fo, NAN, x, w, y, F32) == OK, "fwd");
    CHECK(unitfp8_gemm(bt, fo, fi, alpha, x, E4M3, (ptrdiff_t)fi, 1, w, E4M3, 1, (ptrdiff_t)fi,
                       0.0f, y2, F32, (ptrdiff_t)fo, 1) == OK, "fwd gemm");
    CHECK(memcmp(y, y2, bt * fo * 4) == 0, "forward != gemm");
    CHECK(unitfp8_linear_backward_data(bt, fi, fo, -1.0f, dy, w, 0.0f, dx, F32) == OK, "bwd data");
    CHECK(unitfp8_gemm(bt, fi, fo, alpha, dy, E5M2, (ptrdiff_t)fo, 1, w, E4M3, (ptrdiff_t)fi, 1,
                       0.0f, dx2, F32, (ptrdiff_t)fi, 1) == OK, "bwd data gemm");
    CHECK(memcmp(dx, dx2, bt * fi * 4) == 0, "backward data != gemm");
    for (i = 0; i < fo * fi; i++) dw[i] = dw2[i] = (float)(i % 7);
    CHECK(unitfp8_linear_backward_weight(bt, fi, fo, 0.5f, dy, x, 1.0f, dw) == OK, "bwd w");
    CHECK(unitfp8_gemm(fo, fi, bt, 0.5f, dy, E5M2, 1, (ptrdiff_t)fo, x, E4M3, (ptrdiff_t)fi, 1,
                       1.0f, dw2, F32, (ptrdiff_t)fi, 1) == OK, "bwd w gemm");
    CHECK(memcmp(dw, dw2, fo * fi * 4) == 0, "backward weight != gemm");
    free(x); free(w); free(dy); free(y); free(y2); free(dx); free(dx2); free(dw); free(dw2);
}

int main(void) {
    static const size_t sizes[] = {1, 2, 15, 16, 17, 33, 255, 257};
    int iter;
    rng_state = (uint64_t)time(NULL);
    printf("test_gemm: seed %llu\n", (unsigned long long)rng_state);
    for (iter = 0; iter < 60; iter++) {
        size_t m = sizes[rnd() % 8], n = sizes[rnd() % 8], k = sizes[rnd() % 8];
        int at = rnd() % 2 ? E4M3 : E5M2, bt = rnd() % 2 ? E4M3 : E5M2;
        int ct = rnd() % 2 ? F32 : BF16;
        float beta = rnd() % 2 ? 0.0f : 0.5f;
        if (m * n * k > 4000000) continue;
        gemm_case(m, n, k, at, bt, ct, (int)(rnd() % 2), (int)(rnd() % 2), (int)(rnd() % 2),
                  0.25f, beta);
    }
    errors();
    linear();
    printf("%s (%d failures)\n", failures ? "FAILED" : "ok", failures);
    return failures ? 1 : 0;
}
