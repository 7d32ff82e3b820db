/* CPU kernels: every fast kernel against its naive reference on the awkward
 * sizes of the shared table (kernel_table.c), the naive backward kernels against finite differences of their
 * forward kernels, thread-count determinism, batch-position independence,
 * the product's starting values, AdamW against a hand computation, and the CPU backend's ops table. */
#include <math.h>
#include <omp.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "backend.h"
#include "cpu_kernels.h"
#include "icl/status.h"
#include "kernel_table.h"
#include "testutil.h"
#include "tile.h"

static icl_rng stream(const char *name) {
    icl_rng r;
    icl_rng_init(&r, 7, name);
    return r;
}


static const char *fmt(const char *f, ...) __attribute__((format(printf, 1, 2)));
static const char *fmt(const char *f, ...) {
    static char buf[160];
    va_list ap;
    va_start(ap, f);
    vsnprintf(buf, sizeof buf, f, ap);
    va_end(ap);
    return buf;
}

/* Like TU_ASSERT_CLOSE for one double. */
static void assert_close_double(const char *label, double got, double want, double atol, double rtol) {
    double ratio = fabs(got - want) / (atol + rtol * fabs(want));
    printf("  %-44s got %.17g, want %.17g, %.1f%% of tolerance\n", label, got, want, 100.0 * ratio);
    ck_assert_msg(ratio <= 1.0, "%s: error is %.3g x the tolerance", label, ratio);
}

static void assert_bitwise_equal(const char *label, const void *a, const void *b, size_t bytes) {
    int same = memcmp(a, b, bytes) == 0;
    printf("  %-44s %s\n", label, same ? "bit-identical" : "DIFFERENT");
    ck_assert_msg(same, "%s: not bit-identical", label);
}

/* ---------------------------------------------------------------- fast vs naive */

/* Every kernel of the shared table, fast against naive at each of its sizes. */
START_TEST(test_kernel_matches_naive) { tk_check_kernel(&tk_kernels[_i], TK_FAST, NULL); }
END_TEST

START_TEST(test_attention_softmax_extreme_scores) {
    /* large score spreads: the max subtraction must keep exp in range */
    int B = 2, NH = 3, T = 9;
    size_t n = (size_t)B * NH * T * T;
    icl_rng r = stream("softmax-extreme");
    float *scores = tu_rand_floats(n, 80.0f, &r), *probs = tu_floats(n), *probs_ref = tu_floats(n);
    icl_cpu_attention_softmax_forward(probs, scores, B, NH, T);
    icl_cpu_attention_softmax_forward_naive(probs_ref, scores, B, NH, T);
    TU_ASSERT_CLOSE("attn softmax fwd scores in [-80,80]", probs, probs_ref, n, 1e-6, 1e-5);
    free(scores), free(probs), free(probs_ref);
}
END_TEST

/* Weights with zeros (targets -1 there) or NULL; dlosses = weight * random. */
static void loss_inputs(int N, int with_weights, float **weights, float **dlosses, icl_rng *r) {
    *weights = NULL;
    *dlosses = tu_rand_floats((size_t)N, 1.0f, r);
    if (!with_weights)
        return;
    *weights = tu_floats((size_t)N);
    for (int n = 0; n < N; n++) {
        (*weights)[n] = n % 3 == 1 ? 0.0f : 0.5f + icl_rng_uniform(r);
        (*dlosses)[n] *= (*weights)[n];
    }
}

START_TEST(test_sums_match_naive) {
    /* sizes around the 4096-element chunk and past one pass of 256 chunks */
    static const size_t sizes[] = {1, 21, 4095, 4096, 4097, 3 * 4096 + 5, 256 * 4096 + 4097};
    icl_rng r = stream("sums");
    for (size_t k = 0; k < sizeof sizes / sizeof sizes[0]; k++) {
        size_t n = sizes[k];
        float *x = tu_rand_floats(n, 1.0f, &r);
        for (size_t i = 0; i < n; i++)
            x[i] += 0.25f; /* a non-zero mean so the sum grows with n */
        /* both sum in double, in different orders: the naive serial sum itself drifts ~1e-12 over 1M terms */
        assert_close_double(fmt("sum_squares n=%zu", n), icl_cpu_sum_squares(x, n), icl_cpu_sum_squares_naive(x, n),
                            1e-12, 1e-11);
        free(x);
    }
    float one = 3.0f;
    ck_assert(icl_cpu_sum_squares(&one, 0) == 0.0);
}
END_TEST

START_TEST(test_adamw_matches_naive) {
    size_t n = 1003;
    icl_rng r = stream("adamw");
    float *p = tu_rand_floats(n, 1.0f, &r), *g = tu_rand_floats(n, 1.0f, &r);
    float *m = tu_floats(n), *v = tu_floats(n);
    float *p_ref = tu_dup_floats(p, n), *m_ref = tu_floats(n), *v_ref = tu_floats(n);
    for (long t = 1; t <= 5; t++) {
        tu_fill_uniform(g, n, 1.0f, &r);
        icl_cpu_adamw_update(p, m, v, g, n, 1e-2f, 0.9f, 0.95f, 1e-8f, 0.1f, 0.5f, t);
        icl_cpu_adamw_update_naive(p_ref, m_ref, v_ref, g, n, 1e-2f, 0.9f, 0.95f, 1e-8f, 0.1f, 0.5f, t);
    }
    TU_ASSERT_CLOSE("adamw 5 steps params", p, p_ref, n, 1e-6, 1e-5);
    TU_ASSERT_CLOSE("adamw 5 steps m", m, m_ref, n, 1e-7, 1e-5);
    TU_ASSERT_CLOSE("adamw 5 steps v", v, v_ref, n, 1e-8, 1e-5);
    free(p), free(g), free(m), free(v), free(p_ref), free(m_ref), free(v_ref);
}
END_TEST

START_TEST(test_adamw_hand_computed) {
    /* one step at t = 3: g = 0.2 * 0.5 = 0.1
     * m = 0.9*0.1 + 0.1*0.1 = 0.1;  v = 0.999*0.04 + 0.001*0.01 = 0.03997
     * mhat = 0.1 / (1 - 0.9^3) = 0.1 / 0.271
     * vhat = 0.03997 / (1 - 0.999^3) = 0.03997 / 0.002997001
     * p = 0.5 - 0.01 * (mhat / (sqrt(vhat) + 1e-8) + 0.1 * 0.5) */
    float p = 0.5f, m = 0.1f, v = 0.04f, g = 0.2f;
    double mhat = 0.1 / 0.271, vhat = 0.03997 / 0.002997001;
    double want_p = 0.5 - 0.01 * (mhat / (sqrt(vhat) + 1e-8) + 0.05);
    float want[3] = {(float)want_p, 0.1f, 0.03997f};
    for (int naive = 0; naive <= 1; naive++) {
        float got[3] = {p, m, v};
        (naive ? icl_cpu_adamw_update_naive : icl_cpu_adamw_update)(&got[0], &got[1], &got[2], &g, 1, 0.01f, 0.9f,
                                                                      0.999f, 1e-8f, 0.1f, 0.5f, 3);
        TU_ASSERT_CLOSE(naive ? "adamw naive vs hand (p, m, v)" : "adamw fast vs hand (p, m, v)", got, want, 3, 1e-7,
                        2e-6);
    }
}
END_TEST

/* ---------------------------------------------------------------- finite differences
 * The naive backward kernels against central differences of the naive
 * forward kernels, for L = sum(gout * out) with random gout. The step is
 * h = 1e-2 (the actual float step (x+h)-(x-h) is used as the denominator). */

#define FD_H 1e-2f

typedef double (*loss_fn)(void *ctx);

static double weighted_sum(const float *out, const float *gout, size_t n) {
    double s = 0.0;
    for (size_t i = 0; i < n; i++)
        s += (double)gout[i] * (double)out[i];
    return s;
}

/* fd[i] = dL/dx[i] by central differences; x is restored. */
static void finite_diff(float *fd, float *x, size_t n, loss_fn loss, void *ctx) {
    for (size_t i = 0; i < n; i++) {
        float x0 = x[i];
        float xp = x0 + FD_H, xm = x0 - FD_H;
        x[i] = xp;
        double lp = loss(ctx);
        x[i] = xm;
        double lm = loss(ctx);
        x[i] = x0;
        fd[i] = (float)((lp - lm) / ((double)xp - (double)xm));
    }
}

typedef struct {
    int N, C;
    float *inp, *w, *b, *out, *mean, *rstd, *gout;
} ln_ctx;

static double ln_loss(void *p) {
    ln_ctx *c = p;
    icl_cpu_layernorm_forward_naive(c->out, c->mean, c->rstd, c->inp, c->w, c->b, c->N, c->C);
    return weighted_sum(c->out, c->gout, (size_t)c->N * c->C);
}

START_TEST(test_layernorm_backward_finite_diff) {
    int N = 3, C = 7;
    size_t NC = (size_t)N * C;
    icl_rng r = stream("fd-layernorm");
    ln_ctx c = {N, C, tu_rand_floats(NC, 2.0f, &r), tu_rand_floats((size_t)C, 1.5f, &r), tu_rand_floats((size_t)C, 1.0f, &r),
                tu_floats(NC), tu_floats((size_t)N), tu_floats((size_t)N), tu_rand_floats(NC, 1.0f, &r)};
    float *dinp = tu_floats(NC), *dw = tu_floats((size_t)C), *db = tu_floats((size_t)C), *fd = tu_floats(NC);
    ln_loss(&c);
    icl_cpu_layernorm_backward_naive(dinp, dw, db, c.gout, c.inp, c.w, c.mean, c.rstd, N, C);
    finite_diff(fd, c.inp, NC, ln_loss, &c);
    TU_ASSERT_CLOSE("layernorm naive dinp vs finite diff", dinp, fd, NC, 2e-4, 1e-3);
    finite_diff(fd, c.w, (size_t)C, ln_loss, &c);
    TU_ASSERT_CLOSE("layernorm naive dw vs finite diff", dw, fd, (size_t)C, 2e-4, 1e-3);
    finite_diff(fd, c.b, (size_t)C, ln_loss, &c);
    TU_ASSERT_CLOSE("layernorm naive db vs finite diff", db, fd, (size_t)C, 2e-4, 1e-3);
    free(c.inp), free(c.w), free(c.b), free(c.out), free(c.mean), free(c.rstd), free(c.gout);
    free(dinp), free(dw), free(db), free(fd);
}
END_TEST

typedef struct {
    int B, T, C, NH;
    float *qkv, *scores, *probs, *out, *gout;
} attn_ctx;

static double attn_loss(void *p) {
    attn_ctx *c = p;
    icl_cpu_attention_scores_forward_naive(c->scores, c->qkv, c->B, c->T, c->C, c->NH);
    icl_cpu_attention_softmax_forward_naive(c->probs, c->scores, c->B, c->NH, c->T);
    icl_cpu_attention_values_forward_naive(c->out, c->probs, c->qkv, c->B, c->T, c->C, c->NH);
    return weighted_sum(c->out, c->gout, (size_t)c->B * c->T * c->C);
}

START_TEST(test_attention_backward_finite_diff) {
    int B = 2, T = 5, C = 12, NH = 3;
    size_t n_qkv = (size_t)B * T * 3 * C, n_att = (size_t)B * NH * T * T, n_out = (size_t)B * T * C;
    icl_rng r = stream("fd-attention");
    attn_ctx c = {B, T, C, NH, tu_rand_floats(n_qkv, 1.5f, &r), tu_floats(n_att), tu_floats(n_att), tu_floats(n_out),
                  tu_rand_floats(n_out, 1.0f, &r)};
    float *dprobs = tu_floats(n_att), *dscores = tu_floats(n_att), *dqkv = tu_floats(n_qkv), *fd = tu_floats(n_qkv);
    attn_loss(&c);
    icl_cpu_attention_values_backward_naive(dprobs, dqkv, c.gout, c.probs, c.qkv, B, T, C, NH);
    icl_cpu_attention_softmax_backward_naive(dscores, dprobs, c.probs, B, NH, T);
    icl_cpu_attention_scores_backward_naive(dqkv, dscores, c.qkv, B, T, C, NH);
    finite_diff(fd, c.qkv, n_qkv, attn_loss, &c);
    TU_ASSERT_CLOSE("attention chain naive dqkv vs finite diff", dqkv, fd, n_qkv, 2e-4, 1e-3);
    free(c.qkv), free(c.scores), free(c.probs), free(c.out), free(c.gout);
    free(dprobs), free(dscores), free(dqkv), free(fd);
}
END_TEST

typedef struct {
    size_t N;
    float *inp, *out, *gout;
} gelu_ctx;

static double gelu_loss(void *p) {
    gelu_ctx *c = p;
    icl_cpu_gelu_forward_naive(c->out, c->inp, c->N);
    return weighted_sum(c->out, c->gout, c->N);
}

START_TEST(test_gelu_backward_finite_diff) {
    size_t N = 41;
    icl_rng r = stream("fd-gelu");
    gelu_ctx c = {N, tu_rand_floats(N, 4.0f, &r), tu_floats(N), tu_rand_floats(N, 1.0f, &r)};
    float *dinp = tu_floats(N), *fd = tu_floats(N);
    icl_cpu_gelu_backward_naive(dinp, c.inp, c.gout, N);
    finite_diff(fd, c.inp, N, gelu_loss, &c);
    TU_ASSERT_CLOSE("gelu naive dinp vs finite diff", dinp, fd, N, 2e-4, 1e-3);
    free(c.inp), free(c.out), free(c.gout), free(dinp), free(fd);
}
END_TEST

typedef struct {
    int N, V;
    float *logits, *losses, *probs, *weights, *dlosses;
    int32_t *targets;
} xent_ctx;

static double xent_loss(void *p) {
    xent_ctx *c = p;
    icl_cpu_crossentropy_forward_naive(c->losses, c->probs, c->logits, c->targets, c->weights, c->N, c->V);
    return weighted_sum(c->losses, c->dlosses, (size_t)c->N);
}

START_TEST(test_crossentropy_backward_finite_diff) {
    int N = 5, V = 7;
    size_t NV = (size_t)N * V;
    icl_rng r = stream("fd-crossentropy");
    xent_ctx c = {N, V, tu_rand_floats(NV, 3.0f, &r), tu_floats((size_t)N), tu_floats(NV), NULL, NULL, tu_ints((size_t)N)};
    loss_inputs(N, 1, &c.weights, &c.dlosses, &r);
    tu_fill_tokens(c.targets, (size_t)N, V, &r);
    for (int n = 0; n < N; n++)
        if (c.weights[n] == 0.0f)
            c.targets[n] = -1;
    float *dlogits = tu_floats(NV), *fd = tu_floats(NV);
    xent_loss(&c);
    icl_cpu_crossentropy_backward_naive(dlogits, c.dlosses, c.probs, c.targets, N, V);
    finite_diff(fd, c.logits, NV, xent_loss, &c);
    TU_ASSERT_CLOSE("crossentropy naive dlogits vs finite diff", dlogits, fd, NV, 2e-4, 1e-3);
    free(c.logits), free(c.losses), free(c.probs), free(c.weights), free(c.dlosses), free(c.targets);
    free(dlogits), free(fd);
}
END_TEST

typedef struct {
    int N, D;
    float *out, *target, *weights, *losses, *dlosses;
} mse_ctx;

static double mse_loss(void *p) {
    mse_ctx *c = p;
    icl_cpu_mse_forward_naive(c->losses, c->out, c->target, c->weights, c->N, c->D);
    return weighted_sum(c->losses, c->dlosses, (size_t)c->N);
}

START_TEST(test_mse_backward_finite_diff) {
    int N = 5, D = 6;
    size_t ND = (size_t)N * D;
    icl_rng r = stream("fd-mse");
    mse_ctx c = {N, D, tu_rand_floats(ND, 2.0f, &r), tu_rand_floats(ND, 2.0f, &r), NULL, tu_floats((size_t)N), NULL};
    loss_inputs(N, 1, &c.weights, &c.dlosses, &r);
    float *dout = tu_floats(ND), *fd = tu_floats(ND);
    icl_cpu_mse_backward_naive(dout, c.dlosses, c.out, c.target, N, D);
    finite_diff(fd, c.out, ND, mse_loss, &c);
    TU_ASSERT_CLOSE("mse naive dout vs finite diff", dout, fd, ND, 2e-4, 1e-3);
    free(c.out), free(c.target), free(c.weights), free(c.losses), free(c.dlosses), free(dout), free(fd);
}
END_TEST

typedef struct {
    int N, C, OC;
    float *inp, *w, *bias, *out, *gout;
} mm_ctx;

static double mm_loss(void *p) {
    mm_ctx *c = p;
    icl_cpu_matmul_forward_naive(c->out, c->inp, c->w, c->bias, 1, c->N, c->C, c->OC);
    return weighted_sum(c->out, c->gout, (size_t)c->N * c->OC);
}

START_TEST(test_matmul_backward_finite_diff) {
    int N = 3, C = 5, OC = 4;
    icl_rng r = stream("fd-matmul");
    mm_ctx c = {N, C, OC, tu_rand_floats((size_t)N * C, 1.0f, &r), tu_rand_floats((size_t)OC * C, 1.0f, &r),
                tu_rand_floats((size_t)OC, 1.0f, &r), tu_floats((size_t)N * OC), tu_rand_floats((size_t)N * OC, 1.0f, &r)};
    float *dinp = tu_floats((size_t)N * C), *dw = tu_floats((size_t)OC * C), *dbias = tu_floats((size_t)OC);
    float *fd = tu_floats((size_t)OC * C);
    icl_cpu_matmul_backward_naive(dinp, dw, dbias, c.gout, c.inp, c.w, N, C, OC);
    finite_diff(fd, c.inp, (size_t)N * C, mm_loss, &c);
    TU_ASSERT_CLOSE("matmul naive dinp vs finite diff", dinp, fd, (size_t)N * C, 2e-4, 1e-3);
    finite_diff(fd, c.w, (size_t)OC * C, mm_loss, &c);
    TU_ASSERT_CLOSE("matmul naive dw vs finite diff", dw, fd, (size_t)OC * C, 2e-4, 1e-3);
    finite_diff(fd, c.bias, (size_t)OC, mm_loss, &c);
    TU_ASSERT_CLOSE("matmul naive dbias vs finite diff", dbias, fd, (size_t)OC, 2e-4, 1e-3);
    free(c.inp), free(c.w), free(c.bias), free(c.out), free(c.gout), free(dinp), free(dw), free(dbias), free(fd);
}
END_TEST

/* ---------------------------------------------------------------- determinism */

static const int thread_counts[] = {1, 2, 3};
enum { N_THREAD_COUNTS = sizeof thread_counts / sizeof thread_counts[0] };

static void set_threads(int n) { omp_set_num_threads(n); }

START_TEST(test_backward_thread_count_invariant) {
    /* big enough that the threads really split the work (dw is 777 deep: several k slices) */
    int N = 777, C = 72, OC = 200, V = 11, B = 21, T = 37;
    icl_rng r = stream("determinism");
    float *inp = tu_rand_floats((size_t)N * C, 1.0f, &r), *w = tu_rand_floats((size_t)OC * C, 1.0f, &r);
    float *dout_mm = tu_rand_floats((size_t)N * OC, 1.0f, &r), *dout = tu_rand_floats((size_t)N * C, 1.0f, &r);
    float *lnw = tu_rand_floats((size_t)C, 1.0f, &r), *mean = tu_floats((size_t)N), *rstd = tu_floats((size_t)N);
    float *scratch = tu_floats((size_t)N * C);
    icl_cpu_layernorm_forward(scratch, mean, rstd, inp, lnw, lnw, N, C);
    int32_t *tokens = tu_ints((size_t)N);
    tu_fill_tokens(tokens, (size_t)N, V, &r);
    float *big = tu_rand_floats((size_t)3 << 20, 1.0f, &r);

    float *res[N_THREAD_COUNTS][8];
    double sums[N_THREAD_COUNTS];
    size_t sizes[8] = {(size_t)N * C, (size_t)OC * C, (size_t)OC, (size_t)N * C, (size_t)C, (size_t)C,
                       (size_t)V * C, (size_t)T * C};
    for (int k = 0; k < N_THREAD_COUNTS; k++) {
        set_threads(thread_counts[k]);
        icl_rng fill = stream("determinism-prefill"); /* same pre-filled gradients every time */
        for (int j = 0; j < 8; j++)
            res[k][j] = tu_rand_floats(sizes[j], 1.0f, &fill);
        icl_cpu_matmul_backward(res[k][0], res[k][1], res[k][2], dout_mm, inp, w, N, C, OC);
        icl_cpu_layernorm_backward(res[k][3], res[k][4], res[k][5], dout, inp, lnw, mean, rstd, N, C);
        icl_cpu_embed_backward(res[k][6], res[k][7], dout, tokens, B, T, C);
        sums[k] = icl_cpu_sum_squares(big, (size_t)3 << 20);
    }
    static const char *names[8] = {"matmul dinp", "matmul dw", "matmul dbias", "layernorm dinp",
                                   "layernorm dw", "layernorm db", "embed dwte", "embed dwpe"};
    for (int k = 1; k < N_THREAD_COUNTS; k++) {
        for (int j = 0; j < 8; j++)
            assert_bitwise_equal(fmt("%s, 1 vs %d threads", names[j], thread_counts[k]), res[0][j], res[k][j],
                                 sizes[j] * sizeof(float));
        assert_bitwise_equal(fmt("sum_squares, 1 vs %d threads", thread_counts[k]), &sums[0], &sums[k],
                             sizeof(double));
    }
    for (int k = 0; k < N_THREAD_COUNTS; k++)
        for (int j = 0; j < 8; j++)
            free(res[k][j]);
    free(inp), free(w), free(dout_mm), free(dout), free(lnw), free(mean), free(rstd), free(scratch), free(tokens);
    free(big);
}
END_TEST

START_TEST(test_attention_thread_count_invariant) {
    int B = 3, T = 33, C = 72, NH = 6;
    size_t n_qkv = (size_t)B * T * 3 * C, n_att = (size_t)B * NH * T * T, n_out = (size_t)B * T * C;
    icl_rng r = stream("attn-determinism");
    float *qkv = tu_rand_floats(n_qkv, 2.0f, &r), *dout = tu_rand_floats(n_out, 1.0f, &r);
    float *out[N_THREAD_COUNTS], *dqkv[N_THREAD_COUNTS];
    for (int k = 0; k < N_THREAD_COUNTS; k++) {
        set_threads(thread_counts[k]);
        float *scores = tu_floats(n_att), *probs = tu_floats(n_att), *dprobs = tu_floats(n_att);
        out[k] = tu_floats(n_out), dqkv[k] = tu_floats(n_qkv);
        icl_cpu_attention_scores_forward(scores, qkv, B, T, C, NH);
        icl_cpu_attention_softmax_forward(probs, scores, B, NH, T);
        icl_cpu_attention_values_forward(out[k], probs, qkv, B, T, C, NH);
        icl_cpu_attention_values_backward(dprobs, dqkv[k], dout, probs, qkv, B, T, C, NH);
        memset(scores, 0, n_att * sizeof *scores);
        icl_cpu_attention_softmax_backward(scores, dprobs, probs, B, NH, T);
        icl_cpu_attention_scores_backward(dqkv[k], scores, qkv, B, T, C, NH);
        free(scores), free(probs), free(dprobs);
    }
    for (int k = 1; k < N_THREAD_COUNTS; k++) {
        assert_bitwise_equal(fmt("attention out, 1 vs %d threads", thread_counts[k]), out[0], out[k],
                             n_out * sizeof(float));
        assert_bitwise_equal(fmt("attention dqkv, 1 vs %d threads", thread_counts[k]), dqkv[0], dqkv[k],
                             n_qkv * sizeof(float));
    }
    for (int k = 0; k < N_THREAD_COUNTS; k++)
        free(out[k]), free(dqkv[k]);
    free(qkv), free(dout);
}
END_TEST

/* ---------------------------------------------------------------- batch position */

/* The forward product is issued per prompt: a prompt's outputs are the same
 * bits at any batch row and alone. (The backward products sum over rows, so
 * only their thread-count independence is required; tested above.) */
START_TEST(test_matmul_batch_position_independent) {
    int B = 4, T = 7, C = 40, OC = 72;
    size_t seq_in = (size_t)T * C, seq_out = (size_t)T * OC;
    icl_rng r = stream("row-position");
    float *inp = tu_rand_floats(B * seq_in, 1.0f, &r), *w = tu_rand_floats((size_t)OC * C, 1.0f, &r);
    float *bias = tu_rand_floats((size_t)OC, 1.0f, &r), *out = tu_floats(B * seq_out), *alone = tu_floats(seq_out);
    memcpy(inp + 3 * seq_in, inp, seq_in * sizeof *inp); /* prompt 3 = prompt 0 */
    icl_cpu_matmul_forward(out, inp, w, bias, B, T, C, OC);
    assert_bitwise_equal("matmul fwd prompt 0 vs prompt 3", out, out + 3 * seq_out, seq_out * sizeof *out);
    icl_cpu_matmul_forward(alone, inp, w, bias, 1, T, C, OC);
    assert_bitwise_equal("matmul fwd prompt 0 of 4 vs batch of 1", out, alone, seq_out * sizeof *out);
    free(inp), free(w), free(bias), free(out), free(alone);
}
END_TEST

START_TEST(test_attention_batch_position_independent) {
    int B = 6, T = 33, C = 72, NH = 6;
    size_t seq_qkv = (size_t)T * 3 * C, seq_out = (size_t)T * C;
    size_t n_qkv = B * seq_qkv, n_att = (size_t)B * NH * T * T, n_out = B * seq_out;
    icl_rng r = stream("attn-position");
    float *qkv = tu_rand_floats(n_qkv, 2.0f, &r), *dout = tu_rand_floats(n_out, 1.0f, &r);
    memcpy(qkv + 5 * seq_qkv, qkv, seq_qkv * sizeof *qkv); /* sequence 5 = sequence 0 */
    memcpy(dout + 5 * seq_out, dout, seq_out * sizeof *dout);
    float *scores = tu_floats(n_att), *probs = tu_floats(n_att), *dprobs = tu_floats(n_att);
    float *out = tu_floats(n_out), *dqkv = tu_floats(n_qkv);
    icl_cpu_attention_scores_forward(scores, qkv, B, T, C, NH);
    icl_cpu_attention_softmax_forward(probs, scores, B, NH, T);
    icl_cpu_attention_values_forward(out, probs, qkv, B, T, C, NH);
    icl_cpu_attention_values_backward(dprobs, dqkv, dout, probs, qkv, B, T, C, NH);
    memset(scores, 0, n_att * sizeof *scores);
    icl_cpu_attention_softmax_backward(scores, dprobs, probs, B, NH, T);
    icl_cpu_attention_scores_backward(dqkv, scores, qkv, B, T, C, NH);
    assert_bitwise_equal("attention out, batch 0 vs batch 5", out, out + 5 * seq_out, seq_out * sizeof *out);
    assert_bitwise_equal("attention dqkv, batch 0 vs batch 5", dqkv, dqkv + 5 * seq_qkv, seq_qkv * sizeof *dqkv);

    /* the same sequence alone in a batch of one */
    float *out1 = tu_floats(seq_out), *dqkv1 = tu_floats(seq_qkv);
    memset(scores, 0, n_att * sizeof *scores);
    memset(dprobs, 0, n_att * sizeof *dprobs);
    icl_cpu_attention_scores_forward(scores, qkv, 1, T, C, NH);
    icl_cpu_attention_softmax_forward(probs, scores, 1, NH, T);
    icl_cpu_attention_values_forward(out1, probs, qkv, 1, T, C, NH);
    icl_cpu_attention_values_backward(dprobs, dqkv1, dout, probs, qkv, 1, T, C, NH);
    memset(scores, 0, n_att * sizeof *scores);
    icl_cpu_attention_softmax_backward(scores, dprobs, probs, 1, NH, T);
    icl_cpu_attention_scores_backward(dqkv1, scores, qkv, 1, T, C, NH);
    assert_bitwise_equal("attention out, batch 0 of 6 vs batch of 1", out, out1, seq_out * sizeof *out);
    assert_bitwise_equal("attention dqkv, batch 0 of 6 vs batch of 1", dqkv, dqkv1, seq_qkv * sizeof *dqkv);
    free(qkv), free(dout), free(scores), free(probs), free(dprobs), free(out), free(dqkv), free(out1), free(dqkv1);
}
END_TEST

/* ---------------------------------------------------------------- two paths, same bits */

/* Short sequences run attention on zero-padded copies of each head and the
 * softmax over whole blocks; the strided versions read everything in place,
 * row by row. Every output must be the same bits: padding may only add exact
 * zero terms. Shapes: T = 1, one tile row short and over (5, 7), a tile column
 * over (17), the han and retrieval prompts (26, 81), the limit and past it
 * (128, 129); head sizes 1 to 48, not multiples of the tile width. */
/* The attention ops of one path: [0] the default (local for short sequences), [1] strided. */
typedef struct {
    void (*scores_forward)(float *, const float *, int, int, int, int);
    void (*softmax_forward)(float *, const float *, int, int, int);
    void (*values_forward)(float *, const float *, const float *, int, int, int, int);
    void (*values_backward)(float *, float *, const float *, const float *, const float *, int, int, int, int);
    void (*scores_backward)(float *, const float *, const float *, int, int, int, int);
} attn_path;

static const attn_path attn_paths[2] = {
    {icl_cpu_attention_scores_forward, icl_cpu_attention_softmax_forward, icl_cpu_attention_values_forward,
     icl_cpu_attention_values_backward, icl_cpu_attention_scores_backward},
    {icl_cpu_attention_scores_forward_strided, icl_cpu_attention_softmax_forward_strided,
     icl_cpu_attention_values_forward_strided, icl_cpu_attention_values_backward_strided,
     icl_cpu_attention_scores_backward_strided}};

/* B T C NH of the attention path tests: short and odd T, one head, head size 1 and 48, the last
 * local T (128) and the first past it (129) */
static const int attention_shapes[][4] = {{2, 1, 24, 3},   {3, 5, 6, 6},    {2, 7, 40, 4},
                                          {2, 17, 20, 1},  {3, 26, 64, 4},  {1, 81, 48, 3},
                                          {1, 128, 16, 2}, {1, 129, 24, 2}, {2, 12, 96, 2}};
enum { N_ATTENTION_SHAPES = sizeof attention_shapes / sizeof attention_shapes[0] };

START_TEST(test_attention_local_matches_strided) {
    for (size_t i = 0; i < N_ATTENTION_SHAPES; i++) {
        int B = attention_shapes[i][0], T = attention_shapes[i][1], C = attention_shapes[i][2],
            NH = attention_shapes[i][3];
        size_t n_qkv = (size_t)B * T * 3 * C, n_att = (size_t)B * NH * T * T, n_out = (size_t)B * T * C;
        icl_rng r = stream(fmt("attn-paths-%zu", i));
        float *qkv = tu_rand_floats(n_qkv, 2.0f, &r), *dout = tu_rand_floats(n_out, 1.0f, &r);
        /* Every buffer starts from the same noise: the forward steps must overwrite all of
         * their output, the backward steps add into what is there (dprobs only on the
         * triangle) and read only the triangle of dscores. */
        float *res[2][6];
        for (int path = 0; path < 2; path++) {
            icl_rng fill = stream(fmt("attn-paths-fill-%zu", i));
            float *scores = tu_rand_floats(n_att, 1.0f, &fill), *probs = tu_rand_floats(n_att, 1.0f, &fill);
            float *dprobs = tu_rand_floats(n_att, 0.5f, &fill), *dscores = tu_rand_floats(n_att, 0.5f, &fill);
            float *out = tu_rand_floats(n_out, 1.0f, &fill), *dqkv = tu_rand_floats(n_qkv, 0.5f, &fill);
            const attn_path *a = &attn_paths[path];
            a->scores_forward(scores, qkv, B, T, C, NH);
            a->softmax_forward(probs, scores, B, NH, T);
            a->values_forward(out, probs, qkv, B, T, C, NH);
            a->values_backward(dprobs, dqkv, dout, probs, qkv, B, T, C, NH);
            icl_cpu_attention_softmax_backward(dscores, dprobs, probs, B, NH, T); /* one path only */
            a->scores_backward(dqkv, dscores, qkv, B, T, C, NH);
            float *r6[6] = {scores, probs, out, dprobs, dscores, dqkv};
            memcpy(res[path], r6, sizeof r6);
        }
        static const char *names[6] = {"scores", "probs", "out", "dprobs", "dscores", "dqkv"};
        size_t sizes[6] = {n_att, n_att, n_out, n_att, n_att, n_qkv};
        for (int j = 0; j < 6; j++) {
            assert_bitwise_equal(fmt("attention %s, local vs strided, B %d T %d C %d NH %d", names[j], B, T, C, NH),
                                 res[0][j], res[1][j], sizes[j] * sizeof(float));
            free(res[0][j]), free(res[1][j]);
        }
        free(qkv), free(dout);
    }
}
END_TEST

/* The fused attention forward against the three kernels it replaces: scores,
 * probs and out bit for bit, on the local path and past it (T = 129). */
START_TEST(test_attention_forward_fused) {
    for (size_t i = 0; i < N_ATTENTION_SHAPES; i++) {
        int B = attention_shapes[i][0], T = attention_shapes[i][1], C = attention_shapes[i][2],
            NH = attention_shapes[i][3];
        size_t n_qkv = (size_t)B * T * 3 * C, n_att = (size_t)B * NH * T * T, n_out = (size_t)B * T * C;
        icl_rng r = stream(fmt("attn-fused-fwd-%zu", i));
        float *qkv = tu_rand_floats(n_qkv, 2.0f, &r);
        /* both start from noise: every entry must be written */
        float *want[3] = {tu_rand_floats(n_att, 1.0f, &r), tu_rand_floats(n_att, 1.0f, &r),
                          tu_rand_floats(n_out, 1.0f, &r)};
        float *got[3] = {tu_rand_floats(n_att, 1.0f, &r), tu_rand_floats(n_att, 1.0f, &r),
                         tu_rand_floats(n_out, 1.0f, &r)};
        icl_cpu_attention_scores_forward(want[0], qkv, B, T, C, NH);
        icl_cpu_attention_softmax_forward(want[1], want[0], B, NH, T);
        icl_cpu_attention_values_forward(want[2], want[1], qkv, B, T, C, NH);
        icl_cpu_attention_forward(got[0], got[1], got[2], qkv, B, T, C, NH);
        static const char *names[3] = {"scores", "probs", "out"};
        size_t sizes[3] = {n_att, n_att, n_out};
        for (int k = 0; k < 3; k++) {
            assert_bitwise_equal(fmt("attention forward %s, fused vs 3 kernels, B %d T %d C %d NH %d", names[k], B,
                                     T, C, NH),
                                 want[k], got[k], sizes[k] * sizeof(float));
            free(want[k]), free(got[k]);
        }
        free(qkv);
    }
}
END_TEST

/* The fused attention backward against the three kernels it replaces, run on
 * zeroed dprobs and dscores: dqkv bit for bit, whatever its workspace held
 * (noise here), on the local path and past it (T = 129). */
START_TEST(test_attention_backward_fused) {
    for (size_t i = 0; i < N_ATTENTION_SHAPES; i++) {
        int B = attention_shapes[i][0], T = attention_shapes[i][1], C = attention_shapes[i][2],
            NH = attention_shapes[i][3];
        size_t n_qkv = (size_t)B * T * 3 * C, n_att = (size_t)B * NH * T * T, n_out = (size_t)B * T * C;
        icl_rng r = stream(fmt("attn-fused-%zu", i));
        float *qkv = tu_rand_floats(n_qkv, 2.0f, &r), *dout = tu_rand_floats(n_out, 1.0f, &r);
        float *scores = tu_floats(n_att), *probs = tu_floats(n_att);
        icl_cpu_attention_scores_forward(scores, qkv, B, T, C, NH);
        icl_cpu_attention_softmax_forward(probs, scores, B, NH, T);
        float *want = tu_rand_floats(n_qkv, 0.5f, &r), *got = tu_dup_floats(want, n_qkv);
        float *dprobs = tu_floats(n_att), *dscores = tu_floats(n_att);
        icl_cpu_attention_values_backward(dprobs, want, dout, probs, qkv, B, T, C, NH);
        icl_cpu_attention_softmax_backward(dscores, dprobs, probs, B, NH, T);
        icl_cpu_attention_scores_backward(want, dscores, qkv, B, T, C, NH);
        float *ws1 = tu_rand_floats(n_att, 3.0f, &r), *ws2 = tu_rand_floats(n_att, 3.0f, &r);
        icl_cpu_attention_backward(got, ws1, ws2, dout, probs, qkv, B, T, C, NH);
        assert_bitwise_equal(fmt("attention backward, fused vs 3 kernels, B %d T %d C %d NH %d", B, T, C, NH), want,
                             got, n_qkv * sizeof *got);
        free(qkv), free(dout), free(scores), free(probs), free(want), free(got), free(dprobs), free(dscores);
        free(ws1), free(ws2);
    }
}
END_TEST

/* The tile's starting values (tile.h): ICL_START_ROW and ICL_START_ZERO must
 * give the bits of storing the row (or zeros) into C and accumulating, write
 * every entry of C whatever was there, and leave later k slices (depth > KC)
 * continuing from C. Shapes: partial row groups and column panels, B in
 * place, packed, scaled and transposed, and several k slices. */
START_TEST(test_product_start_modes) {
    static const int shapes[][5] = {/* rows cols depth b_transposed b_scaled */
                                    {1, 1, 1, 0, 0},   {6, 16, 64, 0, 0},  {7, 17, 5, 0, 0},  {13, 48, 64, 1, 0},
                                    {25, 30, 300, 0, 1}, {96, 64, 513, 1, 1}, {5, 256, 64, 0, 0}};
    icl_tile_fn tile = icl_cpu_tile();
    for (size_t i = 0; i < sizeof shapes / sizeof shapes[0]; i++) {
        int rows = shapes[i][0], cols = shapes[i][1], depth = shapes[i][2], bt = shapes[i][3];
        float scale = shapes[i][4] ? 0.37f : 1.0f;
        icl_rng r = stream(fmt("product-start-%zu", i));
        size_t nc = (size_t)rows * cols;
        float *a = tu_rand_floats((size_t)rows * depth, 1.0f, &r), *b = tu_rand_floats((size_t)depth * cols, 1.0f, &r);
        float *row = tu_rand_floats((size_t)cols, 1.0f, &r);
        float *want = malloc(nc * sizeof *want), *got = malloc(nc * sizeof *got);
        ck_assert(want && got);
        for (int mode = 0; mode < 2; mode++) { /* 0: ICL_START_ROW, 1: ICL_START_ZERO */
            for (size_t e = 0; e < nc; e++)
                want[e] = mode == 0 ? row[e % (size_t)cols] : 0.0f;
            for (size_t e = 0; e < nc; e++)
                got[e] = NAN; /* every entry must be overwritten */
            icl_product p = {rows, cols, depth, a, depth, 1, ICL_MASK_NONE, b, bt ? 1 : cols, bt ? depth : 1,
                             scale, want, cols, 0, ICL_START_C, NULL};
            icl_cpu_product(&p, tile);
            p.c = got;
            p.start = mode == 0 ? ICL_START_ROW : ICL_START_ZERO;
            p.start_row = mode == 0 ? row : NULL;
            icl_cpu_product(&p, tile);
            assert_bitwise_equal(fmt("product %s start, %d x %d x %d%s%s", mode == 0 ? "row" : "zero", rows, cols,
                                     depth, bt ? ", B^T" : "", shapes[i][4] ? ", scaled" : ""),
                                 want, got, nc * sizeof *got);
        }
        free(a), free(b), free(row), free(want), free(got);
    }
}
END_TEST

/* ---------------------------------------------------------------- backend */

START_TEST(test_cpu_backend_ops_table) {
    icl_backend *be = NULL;
    ck_assert_int_eq(icl_backend_cpu_create(&be), ICL_OK);
    ck_assert_ptr_nonnull(be);
    ck_assert_int_eq(be->kind, ICL_BACKEND_CPU);
    const icl_backend_ops *o = be->ops;
    ck_assert_ptr_nonnull(o);
    ck_assert_str_eq(o->name, "cpu");
    const void *entries[] = {
        (const void *)o->destroy, (const void *)o->alloc, (const void *)o->release, (const void *)o->zero,
        (const void *)o->to_device, (const void *)o->to_host, (const void *)o->copy, (const void *)o->sync,
        (const void *)o->embed_forward, (const void *)o->position_add_forward, (const void *)o->matmul_forward,
        (const void *)o->layernorm_forward, (const void *)o->attention_scores_forward,
        (const void *)o->attention_softmax_forward, (const void *)o->attention_values_forward,
        (const void *)o->gelu_forward, (const void *)o->residual_forward, (const void *)o->crossentropy_forward,
        (const void *)o->mse_forward, (const void *)o->residual_layernorm_forward,
        (const void *)o->matmul_gelu_forward, (const void *)o->attention_forward, (const void *)o->embed_backward, (const void *)o->position_add_backward,
        (const void *)o->matmul_backward, (const void *)o->layernorm_backward,
        (const void *)o->attention_values_backward, (const void *)o->attention_softmax_backward,
        (const void *)o->attention_scores_backward, (const void *)o->gelu_backward, (const void *)o->attention_backward,
        (const void *)o->crossentropy_backward, (const void *)o->mse_backward,
        (const void *)o->alloc_staging, (const void *)o->release_staging, (const void *)o->upload,
        (const void *)o->download, (const void *)o->sum_squares_accumulate, (const void *)o->flag_nonfinite_losses,
        (const void *)o->clip_scale, (const void *)o->adamw_update};
    for (size_t i = 0; i < sizeof entries / sizeof entries[0]; i++)
        ck_assert_msg(entries[i] != NULL, "ops entry %zu is NULL", i);
    /* the CPU has no graphs: training steps run eagerly */
    ck_assert(!o->graph_begin && !o->graph_end && !o->graph_launch && !o->graph_free);
    ck_assert_int_eq(o->sync(be), ICL_OK);
    icl_backend_destroy(be);
    ck_assert_int_eq(icl_backend_cpu_create(NULL), ICL_ERR_INVALID_ARG);
}
END_TEST

START_TEST(test_cpu_backend_memory) {
    icl_backend *be = NULL;
    ck_assert_int_eq(icl_backend_cpu_create(&be), ICL_OK);
    const icl_backend_ops *o = be->ops;
    static const size_t sizes[] = {0, 1, 63, 64, 1000, 100003};
    for (size_t k = 0; k < sizeof sizes / sizeof sizes[0]; k++) {
        size_t n = sizes[k];
        /* dirty a block of the same size first so a reused block would show */
        unsigned char *p = NULL;
        ck_assert_int_eq(o->alloc(be, (void **)&p, n), ICL_OK);
        memset(p, 0xab, n);
        o->release(be, p);
        ck_assert_int_eq(o->alloc(be, (void **)&p, n), ICL_OK);
        ck_assert_ptr_nonnull(p);
        ck_assert_msg((uintptr_t)p % 64 == 0, "alloc(%zu) not 64-byte aligned: %p", n, (void *)p);
        for (size_t i = 0; i < n; i++)
            ck_assert_msg(p[i] == 0, "alloc(%zu) byte %zu is %d, not 0", n, i, p[i]);
        o->release(be, p);
    }

    float host[37], back[37], *dev = NULL, *dev2 = NULL;
    for (int i = 0; i < 37; i++)
        host[i] = (float)i - 3.5f;
    ck_assert_int_eq(o->alloc(be, (void **)&dev, sizeof host), ICL_OK);
    ck_assert_int_eq(o->alloc(be, (void **)&dev2, sizeof host), ICL_OK);
    ck_assert_int_eq(o->to_device(be, dev, host, sizeof host), ICL_OK);
    ck_assert_int_eq(o->copy(be, dev2, dev, sizeof host), ICL_OK);
    ck_assert_int_eq(o->to_host(be, back, dev2, sizeof host), ICL_OK);
    ck_assert_mem_eq(back, host, sizeof host);
    ck_assert_int_eq(o->zero(be, dev2, sizeof host), ICL_OK);
    ck_assert_int_eq(o->to_host(be, back, dev2, sizeof host), ICL_OK);
    for (int i = 0; i < 37; i++)
        ck_assert(back[i] == 0.0f);

    /* argument validation and allocation failure */
    ck_assert_int_eq(o->alloc(be, NULL, 16), ICL_ERR_INVALID_ARG);
    ck_assert_int_eq(o->to_device(be, NULL, host, 4), ICL_ERR_INVALID_ARG);
    ck_assert_int_eq(o->to_host(be, back, NULL, 4), ICL_ERR_INVALID_ARG);
    ck_assert_int_eq(o->copy(be, dev, NULL, 4), ICL_ERR_INVALID_ARG);
    ck_assert_int_eq(o->zero(be, NULL, 4), ICL_ERR_INVALID_ARG);
    void *huge = dev;
    ck_assert_int_eq(o->alloc(be, &huge, SIZE_MAX - 8), ICL_ERR_NOMEM);
    ck_assert_ptr_null(huge);
    ck_assert_int_eq(o->alloc(be, &huge, (size_t)1 << 62), ICL_ERR_NOMEM);
    ck_assert_msg(strstr(icl_last_error(), "alloc") != NULL, "message: %s", icl_last_error());
    o->release(be, dev);
    o->release(be, dev2);
    o->release(be, NULL);
    icl_backend_destroy(be);
}
END_TEST

START_TEST(test_cpu_backend_dispatch) {
    /* each kernel entry runs the fast kernel with its arguments in order */
    int B = 2, T = 5, C = 12, NH = 3, V = 7, N = B * T, OC = 9;
    size_t NC = (size_t)N * C, n_qkv = NC * 3, n_att = (size_t)B * NH * T * T;
    icl_backend *be = NULL;
    ck_assert_int_eq(icl_backend_cpu_create(&be), ICL_OK);
    const icl_backend_ops *o = be->ops;
    icl_rng r = stream("dispatch");
    int32_t *tok = tu_ints((size_t)N);
    tu_fill_tokens(tok, (size_t)N, V, &r);
    float *x = tu_rand_floats(n_qkv, 1.0f, &r), *y = tu_rand_floats(n_qkv, 1.0f, &r), *z = tu_rand_floats(n_qkv, 1.0f, &r);
    float *probs = tu_floats(n_att), *wts = tu_rand_floats((size_t)N, 1.0f, &r);
    icl_cpu_attention_softmax_forward(probs, x, B, NH, T);
    float *a = tu_rand_floats(n_qkv, 1.0f, &r), *a2 = tu_dup_floats(a, n_qkv);
    float *b = tu_rand_floats(n_qkv, 1.0f, &r), *b2 = tu_dup_floats(b, n_qkv);
    float *c = tu_rand_floats(n_qkv, 1.0f, &r), *c2 = tu_dup_floats(c, n_qkv);
#define CHECK_SAME(what)                                                    \
    do {                                                                    \
        ck_assert_msg(memcmp(a, a2, n_qkv * sizeof *a) == 0, "%s: out 1", what); \
        ck_assert_msg(memcmp(b, b2, n_qkv * sizeof *b) == 0, "%s: out 2", what); \
        ck_assert_msg(memcmp(c, c2, n_qkv * sizeof *c) == 0, "%s: out 3", what); \
    } while (0)
    o->embed_forward(be, a, tok, x, y, B, T, C);
    icl_cpu_embed_forward(a2, tok, x, y, B, T, C);
    CHECK_SAME("embed_forward");
    o->position_add_forward(be, a, x, B, T, C);
    icl_cpu_position_add_forward(a2, x, B, T, C);
    CHECK_SAME("position_add_forward");
    o->matmul_forward(be, a, x, y, z, 1, N, C, OC);
    icl_cpu_matmul_forward(a2, x, y, z, 1, N, C, OC);
    CHECK_SAME("matmul_forward");
    o->layernorm_forward(be, a, b, c, x, y, z, N, C);
    icl_cpu_layernorm_forward(a2, b2, c2, x, y, z, N, C);
    CHECK_SAME("layernorm_forward");
    /* the fused entries run the sequence they replace */
    o->residual_layernorm_forward(be, a, b, c, c + N, x, y, z, z + C, N, C);
    icl_cpu_residual_forward(a2, x, y, NC);
    icl_cpu_layernorm_forward(b2, c2, c2 + N, a2, z, z + C, N, C);
    CHECK_SAME("residual_layernorm_forward");
    o->matmul_gelu_forward(be, a, b, x, y, z, 1, N, C, OC);
    icl_cpu_matmul_forward(a2, x, y, z, 1, N, C, OC);
    icl_cpu_gelu_forward(b2, a2, (size_t)N * OC);
    CHECK_SAME("matmul_gelu_forward");
    o->attention_forward(be, a, b, c, x, B, T, C, NH);
    icl_cpu_attention_scores_forward(a2, x, B, T, C, NH);
    icl_cpu_attention_softmax_forward(b2, a2, B, NH, T);
    icl_cpu_attention_values_forward(c2, b2, x, B, T, C, NH);
    CHECK_SAME("attention_forward");
    o->attention_scores_forward(be, a, x, B, T, C, NH);
    icl_cpu_attention_scores_forward(a2, x, B, T, C, NH);
    CHECK_SAME("attention_scores_forward");
    o->attention_softmax_forward(be, a, x, B, NH, T);
    icl_cpu_attention_softmax_forward(a2, x, B, NH, T);
    CHECK_SAME("attention_softmax_forward");
    o->attention_values_forward(be, a, probs, x, B, T, C, NH);
    icl_cpu_attention_values_forward(a2, probs, x, B, T, C, NH);
    CHECK_SAME("attention_values_forward");
    o->gelu_forward(be, a, x, NC);
    icl_cpu_gelu_forward(a2, x, NC);
    CHECK_SAME("gelu_forward");
    o->residual_forward(be, a, x, y, NC);
    icl_cpu_residual_forward(a2, x, y, NC);
    CHECK_SAME("residual_forward");
    o->crossentropy_forward(be, a, b, x, tok, wts, N, V);
    icl_cpu_crossentropy_forward(a2, b2, x, tok, wts, N, V);
    CHECK_SAME("crossentropy_forward");
    o->mse_forward(be, a, x, y, wts, N, C);
    icl_cpu_mse_forward(a2, x, y, wts, N, C);
    CHECK_SAME("mse_forward");
    o->embed_backward(be, a, b, x, tok, B, T, C);
    icl_cpu_embed_backward(a2, b2, x, tok, B, T, C);
    CHECK_SAME("embed_backward");
    o->position_add_backward(be, a, x, B, T, C);
    icl_cpu_position_add_backward(a2, x, B, T, C);
    CHECK_SAME("position_add_backward");
    o->matmul_backward(be, a, b, c, x, y, z, N, C, OC);
    icl_cpu_matmul_backward(a2, b2, c2, x, y, z, N, C, OC);
    CHECK_SAME("matmul_backward");
    o->layernorm_backward(be, a, b, c, x, y, z, wts, wts, N, C);
    icl_cpu_layernorm_backward(a2, b2, c2, x, y, z, wts, wts, N, C);
    CHECK_SAME("layernorm_backward");
    o->attention_values_backward(be, a, b, x, probs, y, B, T, C, NH);
    icl_cpu_attention_values_backward(a2, b2, x, probs, y, B, T, C, NH);
    CHECK_SAME("attention_values_backward");
    o->attention_softmax_backward(be, a, x, probs, B, NH, T);
    icl_cpu_attention_softmax_backward(a2, x, probs, B, NH, T);
    CHECK_SAME("attention_softmax_backward");
    o->attention_scores_backward(be, a, x, y, B, T, C, NH);
    icl_cpu_attention_scores_backward(a2, x, y, B, T, C, NH);
    CHECK_SAME("attention_scores_backward");
    o->gelu_backward(be, a, x, y, NC);
    icl_cpu_gelu_backward(a2, x, y, NC);
    CHECK_SAME("gelu_backward");
    /* the fused backward: dqkv as the three kernels on zeroed dprobs, dscores (its workspace, not compared) */
    o->attention_backward(be, a, b, c, x, probs, y, B, T, C, NH);
    memset(b2, 0, n_att * sizeof *b2);
    memset(c2, 0, n_att * sizeof *c2);
    icl_cpu_attention_values_backward(b2, a2, x, probs, y, B, T, C, NH);
    icl_cpu_attention_softmax_backward(c2, b2, probs, B, NH, T);
    icl_cpu_attention_scores_backward(a2, c2, y, B, T, C, NH);
    ck_assert_msg(memcmp(a, a2, n_qkv * sizeof *a) == 0, "attention_backward: dqkv");
    memcpy(b, b2, n_qkv * sizeof *b);
    memcpy(c, c2, n_qkv * sizeof *c);
    o->crossentropy_backward(be, a, wts, probs, tok, N, V);
    icl_cpu_crossentropy_backward(a2, wts, probs, tok, N, V);
    CHECK_SAME("crossentropy_backward");
    o->mse_backward(be, a, wts, x, y, N, C);
    icl_cpu_mse_backward(a2, wts, x, y, N, C);
    CHECK_SAME("mse_backward");
    /* two spans, the second without weight decay, and a gap between them that must not change */
    icl_step_scalars sc = {.lr = 0.1f, .t = 4, .clip_scale = 2.0f};
    size_t half = NC / 2, gap = 3;
    icl_adamw_span spans[2] = {{0, (int64_t)half, 1, 0}, {(int64_t)(half + gap), (int64_t)(NC - half - gap), 0, 0}};
    o->adamw_update(be, a, b, c, x, spans, 2, half, &sc, 0.8f, 0.9f, 1e-6f, 0.01f);
    icl_cpu_adamw_update(a2, b2, c2, x, half, 0.1f, 0.8f, 0.9f, 1e-6f, 0.01f, 2.0f, 4);
    icl_cpu_adamw_update(a2 + half + gap, b2 + half + gap, c2 + half + gap, x + half + gap, NC - half - gap, 0.1f,
                         0.8f, 0.9f, 1e-6f, 0.0f, 2.0f, 4);
    CHECK_SAME("adamw_update (spans)");
    sc.skip = 1;
    o->adamw_update(be, a, b, c, x, spans, 2, half, &sc, 0.8f, 0.9f, 1e-6f, 0.01f);
    CHECK_SAME("adamw_update (skipped)");
#undef CHECK_SAME
    double acc = 1.5;
    o->sum_squares_accumulate(be, &acc, x, n_qkv);
    ck_assert(acc == 1.5 + icl_cpu_sum_squares(x, n_qkv));

    icl_step_scalars cs = {.grad_clip = 1.0f, .grad_sq = 16.0};
    o->clip_scale(be, &cs);
    ck_assert(cs.clip_scale == 0.25f && cs.skip == 0); /* norm 4 clipped to 1 */
    cs.grad_clip = 8.0f;
    o->clip_scale(be, &cs);
    ck_assert(cs.clip_scale == 1.0f && cs.skip == 0); /* below the threshold */
    cs.grad_clip = 0.0f;
    cs.grad_sq = 1e30;
    o->clip_scale(be, &cs);
    ck_assert(cs.clip_scale == 1.0f && cs.skip == 0); /* clipping off */
    cs.grad_sq = NAN;
    o->clip_scale(be, &cs);
    ck_assert(cs.skip == 1);

    float losses[4] = {1.0f, INFINITY, NAN, 2.0f}, weights[4] = {1.0f, 0.0f, 0.0f, 1.0f};
    icl_step_scalars fs = {0};
    o->flag_nonfinite_losses(be, &fs, losses, weights, 4);
    ck_assert_int_eq(fs.skip, 0); /* non-finite losses at weight 0 are not scored */
    weights[2] = 0.5f;
    o->flag_nonfinite_losses(be, &fs, losses, weights, 4);
    ck_assert_int_eq(fs.skip, 1);
    free(tok), free(x), free(y), free(z), free(probs), free(wts), free(a), free(a2), free(b), free(b2), free(c);
    free(c2);
    icl_backend_destroy(be);
}
END_TEST

static Suite *kernels_suite(void) {
    Suite *s = suite_create("kernels");
    TCase *tc = tcase_create("fast_vs_naive");
    tcase_set_timeout(tc, 60);
    tcase_add_loop_test(tc, test_kernel_matches_naive, 0, tk_n_kernels);
    tcase_add_test(tc, test_attention_softmax_extreme_scores);
    tcase_add_test(tc, test_sums_match_naive);
    tcase_add_test(tc, test_adamw_matches_naive);
    tcase_add_test(tc, test_adamw_hand_computed);
    suite_add_tcase(s, tc);

    tc = tcase_create("finite_differences");
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, test_layernorm_backward_finite_diff);
    tcase_add_test(tc, test_attention_backward_finite_diff);
    tcase_add_test(tc, test_gelu_backward_finite_diff);
    tcase_add_test(tc, test_crossentropy_backward_finite_diff);
    tcase_add_test(tc, test_mse_backward_finite_diff);
    tcase_add_test(tc, test_matmul_backward_finite_diff);
    suite_add_tcase(s, tc);

    tc = tcase_create("determinism");
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, test_backward_thread_count_invariant);
    tcase_add_test(tc, test_attention_thread_count_invariant);
    tcase_add_test(tc, test_matmul_batch_position_independent);
    tcase_add_test(tc, test_attention_batch_position_independent);
    tcase_add_test(tc, test_attention_local_matches_strided);
    tcase_add_test(tc, test_product_start_modes);
    tcase_add_test(tc, test_attention_forward_fused);
    tcase_add_test(tc, test_attention_backward_fused);
    suite_add_tcase(s, tc);

    tc = tcase_create("backend");
    tcase_add_test(tc, test_cpu_backend_ops_table);
    tcase_add_test(tc, test_cpu_backend_memory);
    tcase_add_test(tc, test_cpu_backend_dispatch);
    suite_add_tcase(s, tc);
    return s;
}

int main(void) { return tu_run(kernels_suite()); }
