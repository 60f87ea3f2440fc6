/*
 * A small μS (unit-scaled) network trained in FP8 from C, on the installed unitfp8 library.
 *
 *   cc -std=c11 -O2 mus_train.c $(pkg-config --cflags --libs unitfp8) -lm -o mus_train
 *   ./mus_train                 # 1500 steps; reaches a validation loss of about 0.65 (target: below 0.70)
 *   ./mus_train --steps 300 --target 0.80   # the quick run of the tests (about 0.73)
 *
 * Task: classify Gaussian inputs x (32 features) into 10 classes given by a fixed random
 * teacher network, label = argmax(T2·tanh(T1·x)). Chance is ln 10 = 2.30 nats.
 *
 * Model (batch 64, width 128):
 *   h0  = (1/sqrt(32))·x·W_inᵀ                        input layer, f32
 *   for each of 2 residual blocks:
 *     u8 = E4M3(h)                                    static clip-cast (fused into the mix)
 *     a  = sqrt(2)·relu((1/sqrt(128))·u8·W1ᵀ)         hidden linear 1 in FP8 (unitfp8_linear_forward)
 *     f  = (1/sqrt(128))·E4M3(a)·W2ᵀ                  hidden linear 2 in FP8
 *     h  = sqrt(1-τ)·h + sqrt(τ)·f, τ = 0.4           unitfp8_residual_mix (+ E4M3 copy of h)
 *   logits = (1/128)·h·W_outᵀ                         output head, f32
 * Backward: gradients cast to E5M2 (static, saturating) feed unitfp8_linear_backward_data and
 * unitfp8_linear_backward_weight; the mix's backward is unitfp8_residual_mix_backward (with a
 * fused E5M2 copy of the branch gradient). Every weight is unit-variance (N(0, 1)) and trained by
 * Adam from an f32 master copy, cast to E4M3 at each step. Gradients are scaled to unit size
 * (the loss gradient is softmax - onehot, the head's backward uses 1/sqrt(classes)); Adam is
 * invariant to such a constant factor per tensor.
 */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <unitfp8.h>

enum { BATCH = 64, D_IN = 32, WIDTH = 128, CLASSES = 10, BLOCKS = 2, TEACHER = 64, VAL = 512 };
static const float TAU = 0.4f;

/* Every library call goes through CHECK: a failure prints the call, the status and the
 * library's detail (which argument broke which rule), and exits. */
#define CHECK(call)                                                                         \
    do {                                                                                    \
        int32_t status_ = (call);                                                           \
        if (status_ != UNITFP8_OK) {                                                        \
            fprintf(stderr, "%s:%d: %s failed: %s (%s)\n", __FILE__, __LINE__, #call,       \
                    unitfp8_status_string(status_), unitfp8_last_error());                  \
            exit(2);                                                                        \
        }                                                                                   \
    } while (0)

/* ---- random numbers (splitmix64, Box-Muller) ---- */
static uint64_t rng_state = 0x2545F4914F6CDD1DULL;
static uint64_t next_u64(void) {
    uint64_t z = (rng_state += 0x9E3779B97F4A7C15ULL);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
    return z ^ (z >> 31);
}
static float uniform01(void) { return (float)((next_u64() >> 40) + 0.5) / 16777216.0f; }
static float normal(void) {
    return sqrtf(-2.0f * logf(uniform01())) * cosf(6.28318530718f * uniform01());
}

static void *xmalloc(size_t bytes) {
    void *p = malloc(bytes);
    if (!p) {
        fprintf(stderr, "out of memory\n");
        exit(2);
    }
    return p;
}
static float *randn(size_t n) {
    float *p = xmalloc(n * sizeof *p);
    for (size_t i = 0; i < n; i++) p[i] = normal();
    return p;
}
static float *zeros(size_t n) { return calloc(n, sizeof(float)); }

/* ---- the synthetic task ---- */
static float *teacher1, *teacher2; /* [TEACHER, D_IN], [CLASSES, TEACHER] */
static void make_batch(size_t n, float *x, int *label) {
    for (size_t b = 0; b < n; b++) {
        float hidden[TEACHER], best = -INFINITY;
        for (int i = 0; i < D_IN; i++) x[b * D_IN + i] = normal();
        for (int t = 0; t < TEACHER; t++) {
            float s = 0;
            for (int i = 0; i < D_IN; i++) s += teacher1[t * D_IN + i] * x[b * D_IN + i];
            hidden[t] = tanhf(s / sqrtf((float)D_IN));
        }
        for (int c = 0; c < CLASSES; c++) {
            float s = 0;
            for (int t = 0; t < TEACHER; t++) s += teacher2[c * TEACHER + t] * hidden[t];
            if (s > best) best = s, label[b] = c;
        }
    }
}

/* ---- f32 helpers for the input layer and the head ---- */
/* y[n, out] = alpha·x[n, in]·W[out, in]ᵀ */
static void matmul_nt(size_t n, size_t in, size_t out, float alpha, const float *x, const float *w,
                      float *y) {
    for (size_t b = 0; b < n; b++)
        for (size_t o = 0; o < out; o++) {
            float s = 0;
            for (size_t i = 0; i < in; i++) s += x[b * in + i] * w[o * in + i];
            y[b * out + o] = alpha * s;
        }
}

/* ---- Adam ---- */
typedef struct {
    float *w, *m, *v;
    size_t n;
} param;
static param new_param(size_t n) {
    param p = {randn(n), zeros(n), zeros(n), n};
    return p;
}
static void adam(param *p, const float *g, float lr, int step) {
    const float b1 = 0.9f, b2 = 0.999f, eps = 1e-8f;
    float c1 = 1.0f - powf(b1, (float)step), c2 = 1.0f - powf(b2, (float)step);
    for (size_t i = 0; i < p->n; i++) {
        p->m[i] = b1 * p->m[i] + (1 - b1) * g[i];
        p->v[i] = b2 * p->v[i] + (1 - b2) * g[i] * g[i];
        p->w[i] -= lr * (p->m[i] / c1) / (sqrtf(p->v[i] / c2) + eps);
    }
}

/* E4M3 copy of a master weight: the static clip-cast of μS (scale 1, saturating). */
static void cast_e4m3(const float *src, uint8_t *dst, size_t n) {
    CHECK(unitfp8_cast(src, UNITFP8_F32, dst, UNITFP8_E4M3, n, 1.0f, UNITFP8_ROUND_NEAREST_SATURATE, 0,
                       NULL));
}
static void cast_e5m2(const float *src, uint8_t *dst, size_t n) {
    CHECK(unitfp8_cast(src, UNITFP8_F32, dst, UNITFP8_E5M2, n, 1.0f, UNITFP8_ROUND_NEAREST_SATURATE, 0,
                       NULL));
}

typedef struct {
    param w_in, w_out, w1[BLOCKS], w2[BLOCKS];
    uint8_t *w1_8[BLOCKS], *w2_8[BLOCKS];
    /* activations of the last forward pass, kept for the backward */
    float *h[BLOCKS + 1];      /* residual stream before/after each block [n, WIDTH] */
    uint8_t *h8[BLOCKS];       /* E4M3 input of each block */
    float *z1[BLOCKS];         /* pre-activation of linear 1 */
    uint8_t *a8[BLOCKS];       /* E4M3 input of linear 2 */
    float *f[BLOCKS], *logits; /* branch outputs, logits */
} model;

static void model_init(model *m, size_t max_n) {
    m->w_in = new_param((size_t)WIDTH * D_IN);
    m->w_out = new_param((size_t)CLASSES * WIDTH);
    for (int l = 0; l < BLOCKS; l++) {
        m->w1[l] = new_param((size_t)WIDTH * WIDTH);
        m->w2[l] = new_param((size_t)WIDTH * WIDTH);
        m->w1_8[l] = xmalloc((size_t)WIDTH * WIDTH);
        m->w2_8[l] = xmalloc((size_t)WIDTH * WIDTH);
        m->h8[l] = xmalloc(max_n * WIDTH);
        m->a8[l] = xmalloc(max_n * WIDTH);
        m->z1[l] = xmalloc(max_n * WIDTH * sizeof(float));
        m->f[l] = xmalloc(max_n * WIDTH * sizeof(float));
    }
    for (int l = 0; l <= BLOCKS; l++) m->h[l] = xmalloc(max_n * WIDTH * sizeof(float));
    m->logits = xmalloc(max_n * CLASSES * sizeof(float));
}

/* Casts the master weights of the hidden linears to E4M3 (once per step). */
static void model_cast_weights(model *m) {
    for (int l = 0; l < BLOCKS; l++) {
        cast_e4m3(m->w1[l].w, m->w1_8[l], (size_t)WIDTH * WIDTH);
        cast_e4m3(m->w2[l].w, m->w2_8[l], (size_t)WIDTH * WIDTH);
    }
}

static void forward(model *m, size_t n, const float *x) {
    const float nan = NAN; /* alpha NaN: the library's default 1/sqrt(fan_in) */
    matmul_nt(n, D_IN, WIDTH, 1.0f / sqrtf((float)D_IN), x, m->w_in.w, m->h[0]);
    cast_e4m3(m->h[0], m->h8[0], n * WIDTH);
    for (int l = 0; l < BLOCKS; l++) {
        float *z = m->z1[l];
        CHECK(unitfp8_linear_forward(n, WIDTH, WIDTH, nan, m->h8[l], m->w1_8[l], z, UNITFP8_F32));
        float *a = m->f[l]; /* scratch for the activation, overwritten by f below */
        for (size_t i = 0; i < n * WIDTH; i++) a[i] = z[i] > 0 ? 1.41421356f * z[i] : 0.0f;
        cast_e4m3(a, m->a8[l], n * WIDTH);
        CHECK(unitfp8_linear_forward(n, WIDTH, WIDTH, nan, m->a8[l], m->w2_8[l], m->f[l], UNITFP8_F32));
        /* h[l+1] = sqrt(1-τ)·h[l] + sqrt(τ)·f, and its E4M3 copy: the next block's input */
        uint8_t *next8 = l + 1 < BLOCKS ? m->h8[l + 1] : NULL;
        CHECK(unitfp8_residual_mix(m->h[l], m->f[l], m->h[l + 1], UNITFP8_F32, n * WIDTH, TAU, next8,
                                   UNITFP8_E4M3, UNITFP8_ROUND_NEAREST_SATURATE, 0));
    }
    matmul_nt(n, WIDTH, CLASSES, 1.0f / WIDTH, m->h[BLOCKS], m->w_out.w, m->logits);
}

/* Mean cross-entropy of the last forward pass; dlogits (if not NULL) = softmax - onehot. */
static float cross_entropy(const model *m, size_t n, const int *label, float *dlogits) {
    double total = 0;
    for (size_t b = 0; b < n; b++) {
        const float *z = m->logits + b * CLASSES;
        float mx = z[0], sum = 0;
        for (int c = 1; c < CLASSES; c++) mx = z[c] > mx ? z[c] : mx;
        for (int c = 0; c < CLASSES; c++) sum += expf(z[c] - mx);
        total += logf(sum) + mx - z[label[b]];
        if (dlogits)
            for (int c = 0; c < CLASSES; c++)
                dlogits[b * CLASSES + c] = expf(z[c] - mx) / sum - (c == label[b] ? 1.0f : 0.0f);
    }
    return (float)(total / (double)n);
}

typedef struct {
    float *dlogits, *dh, *df, *da, *g_in, *g_out, *g1, *g2;
    uint8_t *df8, *da8;
} grads;

static void backward(model *m, grads *g, size_t n, const float *x) {
    const float nan = NAN;
    /* head: dh = (1/sqrt(CLASSES))·dlogits·W_out (unit-scaled), dW_out = dlogitsᵀ·h */
    for (size_t b = 0; b < n; b++)
        for (int i = 0; i < WIDTH; i++) {
            float s = 0;
            for (int c = 0; c < CLASSES; c++) s += g->dlogits[b * CLASSES + c] * m->w_out.w[c * WIDTH + i];
            g->dh[b * WIDTH + i] = s / sqrtf((float)CLASSES);
        }
    memset(g->g_out, 0, sizeof(float) * CLASSES * WIDTH);
    for (size_t b = 0; b < n; b++)
        for (int c = 0; c < CLASSES; c++)
            for (int i = 0; i < WIDTH; i++)
                g->g_out[c * WIDTH + i] += g->dlogits[b * CLASSES + c] * m->h[BLOCKS][b * WIDTH + i];

    for (int l = BLOCKS - 1; l >= 0; l--) {
        /* mix backward: dh ← sqrt(1-τ)·dh (in place), df = sqrt(τ)·dh and its E5M2 copy */
        CHECK(unitfp8_residual_mix_backward(g->dh, g->dh, g->df, UNITFP8_F32, n * WIDTH, TAU, 0, g->df8,
                                            UNITFP8_E5M2, UNITFP8_ROUND_NEAREST_SATURATE, 0));
        /* linear 2: da = α·df·W2, dW2 = α·dfᵀ·a */
        CHECK(unitfp8_linear_backward_data(n, WIDTH, WIDTH, nan, g->df8, m->w2_8[l], 0.0f, g->da, UNITFP8_F32));
        CHECK(unitfp8_linear_backward_weight(n, WIDTH, WIDTH, nan, g->df8, m->a8[l], 0.0f, g->g2 + (size_t)l * WIDTH * WIDTH));
        /* activation: dz = sqrt(2)·[z > 0]·da, cast to E5M2 */
        for (size_t i = 0; i < n * WIDTH; i++) g->da[i] = m->z1[l][i] > 0 ? 1.41421356f * g->da[i] : 0.0f;
        cast_e5m2(g->da, g->da8, n * WIDTH);
        /* linear 1: dh += α·dz·W1 (β = 1 adds the branch's gradient to the skip path's),
           dW1 = α·dzᵀ·u */
        CHECK(unitfp8_linear_backward_data(n, WIDTH, WIDTH, nan, g->da8, m->w1_8[l], 1.0f, g->dh, UNITFP8_F32));
        CHECK(unitfp8_linear_backward_weight(n, WIDTH, WIDTH, nan, g->da8, m->h8[l], 0.0f, g->g1 + (size_t)l * WIDTH * WIDTH));
    }
    /* input layer: dW_in = dh0ᵀ·x */
    memset(g->g_in, 0, sizeof(float) * WIDTH * D_IN);
    for (size_t b = 0; b < n; b++)
        for (int o = 0; o < WIDTH; o++)
            for (int i = 0; i < D_IN; i++) g->g_in[o * D_IN + i] += g->dh[b * WIDTH + o] * x[b * D_IN + i];
}

static void usage(const char *argv0) {
    printf("usage: %s [--steps N] [--target LOSS] [--lr LR] [--seed S]\n"
           "Trains a 2-block unit-scaled network (four FP8 hidden linears) on a synthetic\n"
           "10-class task; prints the loss; exits 1 if the final validation loss is not below\n"
           "LOSS (default 1500 steps, target 0.70, lr 0.004).\n",
           argv0);
}

int main(int argc, char **argv) {
    int steps = 1500;
    float target = 0.70f, lr = 0.004f;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
            usage(argv[0]);
            return 0;
        } else if (i + 1 < argc && !strcmp(argv[i], "--steps")) {
            steps = atoi(argv[++i]);
        } else if (i + 1 < argc && !strcmp(argv[i], "--target")) {
            target = strtof(argv[++i], NULL);
        } else if (i + 1 < argc && !strcmp(argv[i], "--lr")) {
            lr = strtof(argv[++i], NULL);
        } else if (i + 1 < argc && !strcmp(argv[i], "--seed")) {
            rng_state = strtoull(argv[++i], NULL, 0);
        } else {
            fprintf(stderr, "unknown or incomplete argument: %s\n", argv[i]);
            usage(argv[0]);
            return 2;
        }
    }
    if (steps < 1) {
        fprintf(stderr, "--steps must be at least 1\n");
        return 2;
    }
    printf("unitfp8 %s (header %d.%d.%d), back end %s\n", unitfp8_version(), UNITFP8_VERSION_MAJOR,
           UNITFP8_VERSION_MINOR, UNITFP8_VERSION_PATCH, unitfp8_backend());

    teacher1 = randn((size_t)TEACHER * D_IN);
    teacher2 = randn((size_t)CLASSES * TEACHER);
    float *val_x = xmalloc(sizeof(float) * VAL * D_IN), *x = xmalloc(sizeof(float) * BATCH * D_IN);
    int *val_y = xmalloc(sizeof(int) * VAL), *y = xmalloc(sizeof(int) * BATCH);
    make_batch(VAL, val_x, val_y);

    model m;
    model_init(&m, VAL);
    grads g = {
        .dlogits = xmalloc(sizeof(float) * BATCH * CLASSES),
        .dh = xmalloc(sizeof(float) * BATCH * WIDTH),
        .df = xmalloc(sizeof(float) * BATCH * WIDTH),
        .da = xmalloc(sizeof(float) * BATCH * WIDTH),
        .g_in = xmalloc(sizeof(float) * WIDTH * D_IN),
        .g_out = xmalloc(sizeof(float) * CLASSES * WIDTH),
        .g1 = xmalloc(sizeof(float) * BLOCKS * WIDTH * WIDTH),
        .g2 = xmalloc(sizeof(float) * BLOCKS * WIDTH * WIDTH),
        .df8 = xmalloc(BATCH * WIDTH),
        .da8 = xmalloc(BATCH * WIDTH),
    };

    float val_loss = 0;
    for (int step = 1; step <= steps; step++) {
        model_cast_weights(&m);
        make_batch(BATCH, x, y);
        forward(&m, BATCH, x);
        float loss = cross_entropy(&m, BATCH, y, g.dlogits);
        backward(&m, &g, BATCH, x);
        adam(&m.w_in, g.g_in, lr, step);
        adam(&m.w_out, g.g_out, lr, step);
        for (int l = 0; l < BLOCKS; l++) {
            adam(&m.w1[l], g.g1 + (size_t)l * WIDTH * WIDTH, lr, step);
            adam(&m.w2[l], g.g2 + (size_t)l * WIDTH * WIDTH, lr, step);
        }
        if (step % 100 == 0 || step == steps) {
            model_cast_weights(&m);
            forward(&m, VAL, val_x);
            val_loss = cross_entropy(&m, VAL, val_y, NULL);
            printf("step %5d  train loss %.4f  validation loss %.4f\n", step, loss, val_loss);
        }
        if (!isfinite(loss)) {
            fprintf(stderr, "the loss is not finite at step %d\n", step);
            return 1;
        }
    }
    int ok = val_loss < target;
    printf("final validation loss %.4f (chance %.4f): %s the target %.4f\n", val_loss, logf((float)CLASSES),
           ok ? "below" : "NOT below", target);
    return ok ? 0 : 1;
}
