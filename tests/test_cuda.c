/* CUDA backend: every kernel of the ops table against the CPU fast kernels
 * (kernels/cpu) on random inputs of awkward sizes, forward and backward
 * (gradients pre-filled with random values to check +=), run-to-run bitwise
 * determinism of the reductions, memory operations and error reporting.
 *
 * Without a CUDA device (or in a build without CUDA) the suite runs one test
 * that prints why it skipped and checks that asking for CUDA fails cleanly.
 *
 * Tolerances: element-wise kernels do the same float operations as the CPU
 * up to fused multiply-adds and the error of the exp/tanh used on each side
 * (CUDA expf/tanhf: 2 ulp; the CPU's icl_fast_* of kernels/cpu/fast_math.h:
 * a few ulp, tanh ~1e-7 absolute), so atol 1e-6..1e-5. GELU cancels: near
 * |x| = 4, 1 - tanh^2 loses most digits and its backward multiplies a tanh
 * error d by ~10, hence atol 4e-6 there (~2.5e-7 combined tanh error x 10,
 * plus margin). Products and row reductions
 * (cuBLAS vs OpenBLAS, warp trees vs the CPU's lanes) sum up to ~200 terms
 * of size ~0.1-1 in a different order: a few float ulps of the sum of
 * magnitudes, so atol 1e-5..5e-5. An indexing, transpose, masking or
 * accumulation bug moves values by O(0.1-1). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "backend.h"
#include "cpu_kernels.h"
#include "icl/icl.h"
#include "testutil.h"

/* ---- shapes ---- */

typedef struct {
    int B, T, C, NH, V;
} shape;

static const shape SHAPES[] = {
    {1, 1, 24, 1, 5}, {3, 7, 40, 4, 19}, {1, 33, 72, 3, 37}, {3, 33, 24, 4, 5}, {3, 1, 72, 4, 19},
};
enum { N_SHAPES = sizeof SHAPES / sizeof SHAPES[0] };

/* Larger rows than one column-sum chunk (128 rows) and more columns than one block tile. */
static const shape BIG = {8, 65, 160, 4, 7};

/* ---- helpers ---- */

static icl_backend *cuda_backend(void) {
    icl_backend *be = NULL;
    icl_status s = icl_backend_create(&be, ICL_BACKEND_CUDA);
    ck_assert_msg(s == ICL_OK, "creating the CUDA backend: %s", icl_last_error());
    return be;
}

static void synced(icl_backend *be, const char *what) {
    icl_status s = be->ops->sync(be);
    ck_assert_msg(s == ICL_OK, "%s: %s", what, icl_last_error());
}

/* Device copy of n bytes of host (zeros if host is NULL). */
static void *up(icl_backend *be, const void *host, size_t bytes) {
    void *d = NULL;
    ck_assert_msg(be->ops->alloc(be, &d, bytes) == ICL_OK, "alloc: %s", icl_last_error());
    if (host)
        ck_assert_msg(be->ops->to_device(be, d, host, bytes) == ICL_OK, "to_device: %s", icl_last_error());
    return d;
}

/* Host copy (freshly allocated) of n floats of device memory. */
static float *down(icl_backend *be, const float *dev, size_t n) {
    float *h = tu_floats(n);
    ck_assert_msg(be->ops->to_host(be, h, dev, n * sizeof(float)) == ICL_OK, "to_host: %s", icl_last_error());
    return h;
}

static float *rand_floats(size_t n, float scale, icl_rng *r) {
    float *x = tu_floats(n);
    tu_fill_uniform(x, n, scale, r);
    return x;
}

static float *copy_floats(const float *x, size_t n) {
    float *y = tu_floats(n);
    memcpy(y, x, n * sizeof *y);
    return y;
}

/* Download dev (n floats), compare with want, free the download. */
static void check_dev(icl_backend *be, const char *what, const shape *s, const float *dev, const float *want,
                      size_t n, double atol, double rtol) {
    char label[96];
    if (s)
        snprintf(label, sizeof label, "%s B%d T%d C%d NH%d V%d", what, s->B, s->T, s->C, s->NH, s->V);
    else
        snprintf(label, sizeof label, "%s", what);
    float *got = down(be, dev, n);
    TU_ASSERT_CLOSE(label, got, want, n, atol, rtol);
    free(got);
}

static void check_double(const char *label, double got, double want, double rtol) {
    double err = fabs(got - want), tol = rtol * fabs(want) + 1e-300;
    printf("  %-44s got %.17g, want %.17g, %.1f%% of tolerance\n", label, got, want, 100.0 * err / tol);
    ck_assert_msg(err <= tol, "%s: %.17g vs %.17g", label, got, want);
}

static void rng_for(icl_rng *r, const char *name, int index) {
    icl_rng base;
    icl_rng_init(&base, 20240611u, name);
    icl_rng_split(r, &base, (uint64_t)index);
}

/* ---- memory ---- */

START_TEST(test_memory) {
    icl_backend *be = cuda_backend();
    icl_rng r;
    rng_for(&r, "memory", 0);
    size_t n = 1003;
    float *host = rand_floats(n, 1.0f, &r);
    float *zeros = tu_floats(n);

    float *d = up(be, NULL, n * sizeof(float));
    float *got = down(be, d, n);
    ck_assert_msg(memcmp(got, zeros, n * sizeof(float)) == 0, "alloc did not return zeroed memory");
    free(got);

    ck_assert(be->ops->to_device(be, d, host, n * sizeof(float)) == ICL_OK);
    got = down(be, d, n);
    ck_assert_msg(memcmp(got, host, n * sizeof(float)) == 0, "to_device/to_host round trip changed the data");
    free(got);

    /* overlapping copy behaves like memmove */
    float *want = copy_floats(host, n);
    memmove(want + 3, want, (n - 3) * sizeof(float));
    ck_assert(be->ops->copy(be, d + 3, d, (n - 3) * sizeof(float)) == ICL_OK);
    got = down(be, d, n);
    ck_assert_msg(memcmp(got, want, n * sizeof(float)) == 0, "overlapping copy differs from memmove");
    free(got);

    ck_assert(be->ops->zero(be, d + 10, 20 * sizeof(float)) == ICL_OK);
    memset(want + 10, 0, 20 * sizeof(float));
    got = down(be, d, n);
    ck_assert_msg(memcmp(got, want, n * sizeof(float)) == 0, "zero touched the wrong range");
    free(got);

    void *empty = NULL;
    ck_assert(be->ops->alloc(be, &empty, 0) == ICL_OK);
    ck_assert_ptr_nonnull(empty);
    be->ops->release(be, empty);
    be->ops->release(be, d);
    free(want);
    free(zeros);
    free(host);
    icl_backend_destroy(be);
}
END_TEST

/* ---- embeddings ---- */

static void embed_case(icl_backend *be, const shape *s, int index) {
    icl_rng r;
    rng_for(&r, "embed", index);
    int B = s->B, T = s->T, C = s->C, V = s->V;
    size_t N = (size_t)B * T;
    int32_t *tokens = tu_ints(N);
    tu_fill_tokens(tokens, N, V, &r);
    float *wte = rand_floats((size_t)V * C, 1.0f, &r), *wpe = rand_floats((size_t)(T + 2) * C, 1.0f, &r);
    float *dout = rand_floats(N * C, 1.0f, &r);
    float *dwte = rand_floats((size_t)V * C, 1.0f, &r), *dwpe = rand_floats((size_t)(T + 2) * C, 1.0f, &r);

    int32_t *d_tok = up(be, tokens, N * sizeof(int32_t));
    float *d_wte = up(be, wte, (size_t)V * C * sizeof(float)), *d_wpe = up(be, wpe, (size_t)(T + 2) * C * 4);
    float *d_out = up(be, NULL, N * C * sizeof(float)), *d_dout = up(be, dout, N * C * sizeof(float));
    float *d_dwte = up(be, dwte, (size_t)V * C * 4), *d_dwpe = up(be, dwpe, (size_t)(T + 2) * C * 4);

    float *out = tu_floats(N * C);
    icl_cpu_embed_forward(out, tokens, wte, wpe, B, T, C);
    be->ops->embed_forward(be, d_out, d_tok, d_wte, d_wpe, B, T, C);
    synced(be, "embed_forward");
    check_dev(be, "embed_forward", s, d_out, out, N * C, 1e-6, 1e-6);

    icl_cpu_position_add_forward(out, wpe, B, T, C);
    be->ops->position_add_forward(be, d_out, d_wpe, B, T, C);
    synced(be, "position_add_forward");
    check_dev(be, "position_add_forward", s, d_out, out, N * C, 1e-6, 1e-6);

    /* both gradients, then dwte alone (dwpe NULL), then position_add_backward */
    icl_cpu_embed_backward(dwte, dwpe, dout, tokens, B, T, C);
    be->ops->embed_backward(be, d_dwte, d_dwpe, d_dout, d_tok, B, T, C);
    icl_cpu_embed_backward(dwte, NULL, dout, tokens, B, T, C);
    be->ops->embed_backward(be, d_dwte, NULL, d_dout, d_tok, B, T, C);
    icl_cpu_position_add_backward(dwpe, dout, B, T, C);
    be->ops->position_add_backward(be, d_dwpe, d_dout, B, T, C);
    synced(be, "embed_backward");
    check_dev(be, "embed_backward dwte", s, d_dwte, dwte, (size_t)V * C, 1e-6, 1e-6);
    check_dev(be, "embed_backward dwpe (+2 untouched rows)", s, d_dwpe, dwpe, (size_t)(T + 2) * C, 1e-6, 1e-6);

    void *dev[] = {d_tok, d_wte, d_wpe, d_out, d_dout, d_dwte, d_dwpe};
    for (size_t i = 0; i < sizeof dev / sizeof dev[0]; i++)
        be->ops->release(be, dev[i]);
    free(tokens);
    free(wte);
    free(wpe);
    free(dout);
    free(dwte);
    free(dwpe);
    free(out);
}

START_TEST(test_embed) {
    icl_backend *be = cuda_backend();
    for (int i = 0; i < N_SHAPES; i++)
        embed_case(be, &SHAPES[i], i);
    embed_case(be, &BIG, N_SHAPES);
    icl_backend_destroy(be);
}
END_TEST

/* ---- matmul ---- */

/* N rows, C in, OC out; bias / dinp / dbias present or NULL as flagged. */
static void matmul_case(icl_backend *be, const shape *s, int OC, int with_bias, int with_dinp, int index) {
    icl_rng r;
    rng_for(&r, "matmul", index);
    int N = s->B * s->T, C = s->C;
    size_t nin = (size_t)N * C, nw = (size_t)OC * C, nout = (size_t)N * OC;
    float *inp = rand_floats(nin, 1.0f, &r), *w = rand_floats(nw, 0.5f, &r), *bias = rand_floats(OC, 1.0f, &r);
    float *dout = rand_floats(nout, 1.0f, &r);
    float *dinp = rand_floats(nin, 1.0f, &r), *dw = rand_floats(nw, 1.0f, &r), *dbias = rand_floats(OC, 1.0f, &r);

    float *d_inp = up(be, inp, nin * 4), *d_w = up(be, w, nw * 4), *d_bias = up(be, bias, (size_t)OC * 4);
    float *d_out = up(be, NULL, nout * 4), *d_dout = up(be, dout, nout * 4);
    float *d_dinp = up(be, dinp, nin * 4), *d_dw = up(be, dw, nw * 4), *d_dbias = up(be, dbias, (size_t)OC * 4);

    float *out = tu_floats(nout);
    icl_cpu_matmul_forward(out, inp, w, with_bias ? bias : NULL, 1, N, C, OC);
    be->ops->matmul_forward(be, d_out, d_inp, d_w, with_bias ? d_bias : NULL, 1, N, C, OC);
    synced(be, "matmul_forward");
    check_dev(be, with_bias ? "matmul_forward (bias)" : "matmul_forward (no bias)", s, d_out, out, nout, 2e-5, 1e-5);

    /* The device sums dbias in double and rounds once; the CPU kernel sums in float, which over
       hundreds of rows drifts by more than a float ulp. So dbias is checked against double sums. */
    float *dbias_ref = tu_floats((size_t)OC);
    for (int o = 0; o < OC; o++) {
        double acc = dbias[o];
        for (int n = 0; n < N; n++)
            acc += dout[(size_t)n * OC + o];
        dbias_ref[o] = (float)acc;
    }
    icl_cpu_matmul_backward(with_dinp ? dinp : NULL, dw, NULL, dout, inp, w, N, C, OC);
    be->ops->matmul_backward(be, with_dinp ? d_dinp : NULL, d_dw, with_bias ? d_dbias : NULL, d_dout, d_inp, d_w, N,
                             C, OC);
    synced(be, "matmul_backward");
    check_dev(be, "matmul_backward dinp", s, d_dinp, dinp, nin, 5e-5, 1e-5);
    check_dev(be, "matmul_backward dw", s, d_dw, dw, nw, 5e-5, 1e-5);
    if (with_bias)
        check_dev(be, "matmul_backward dbias", s, d_dbias, dbias_ref, OC, 1e-6, 1e-6);
    else
        check_dev(be, "matmul_backward dbias untouched", s, d_dbias, dbias, OC, 1e-30, 0.0);
    free(dbias_ref);

    void *dev[] = {d_inp, d_w, d_bias, d_out, d_dout, d_dinp, d_dw, d_dbias};
    for (size_t i = 0; i < sizeof dev / sizeof dev[0]; i++)
        be->ops->release(be, dev[i]);
    float *host[] = {inp, w, bias, dout, dinp, dw, dbias, out};
    for (size_t i = 0; i < sizeof host / sizeof host[0]; i++)
        free(host[i]);
}

START_TEST(test_matmul) {
    icl_backend *be = cuda_backend();
    for (int i = 0; i < N_SHAPES; i++) {
        const shape *s = &SHAPES[i];
        matmul_case(be, s, 3 * s->C, 1, 1, 3 * i);
        matmul_case(be, s, s->V, 0, 1, 3 * i + 1); /* lm_head: no bias */
        matmul_case(be, s, s->C, 1, 0, 3 * i + 2); /* read-in: no dinp */
    }
    matmul_case(be, &BIG, 3 * BIG.C, 1, 1, 3 * N_SHAPES);
    icl_backend_destroy(be);
}
END_TEST

/* ---- layernorm ---- */

static void layernorm_case(icl_backend *be, const shape *s, int index) {
    icl_rng r;
    rng_for(&r, "layernorm", index);
    int N = s->B * s->T, C = s->C;
    size_t n = (size_t)N * C;
    float *inp = rand_floats(n, 2.0f, &r), *w = rand_floats(C, 1.0f, &r), *b = rand_floats(C, 1.0f, &r);
    for (int c = 0; c < C; c++)
        w[c] += 1.0f;
    float *dout = rand_floats(n, 1.0f, &r);
    float *dinp = rand_floats(n, 1.0f, &r), *dw = rand_floats(C, 1.0f, &r), *db = rand_floats(C, 1.0f, &r);
    float *out = tu_floats(n), *mean = tu_floats(N), *rstd = tu_floats(N);

    float *d_inp = up(be, inp, n * 4), *d_w = up(be, w, (size_t)C * 4), *d_b = up(be, b, (size_t)C * 4);
    float *d_out = up(be, NULL, n * 4), *d_mean = up(be, NULL, (size_t)N * 4), *d_rstd = up(be, NULL, (size_t)N * 4);
    float *d_dout = up(be, dout, n * 4), *d_dinp = up(be, dinp, n * 4);
    float *d_dw = up(be, dw, (size_t)C * 4), *d_db = up(be, db, (size_t)C * 4);

    icl_cpu_layernorm_forward(out, mean, rstd, inp, w, b, N, C);
    be->ops->layernorm_forward(be, d_out, d_mean, d_rstd, d_inp, d_w, d_b, N, C);
    synced(be, "layernorm_forward");
    check_dev(be, "layernorm_forward out", s, d_out, out, n, 1e-5, 1e-5);
    check_dev(be, "layernorm_forward mean", s, d_mean, mean, N, 1e-6, 1e-5);
    check_dev(be, "layernorm_forward rstd", s, d_rstd, rstd, N, 1e-6, 1e-5);

    /* backward from the CPU's saved statistics, so both sides see the same inputs */
    ck_assert(be->ops->to_device(be, d_mean, mean, (size_t)N * 4) == ICL_OK);
    ck_assert(be->ops->to_device(be, d_rstd, rstd, (size_t)N * 4) == ICL_OK);
    icl_cpu_layernorm_backward(dinp, dw, db, dout, inp, w, mean, rstd, N, C);
    be->ops->layernorm_backward(be, d_dinp, d_dw, d_db, d_dout, d_inp, d_w, d_mean, d_rstd, N, C);
    synced(be, "layernorm_backward");
    check_dev(be, "layernorm_backward dinp", s, d_dinp, dinp, n, 2e-5, 1e-5);
    check_dev(be, "layernorm_backward dw", s, d_dw, dw, C, 1e-5, 1e-6);
    check_dev(be, "layernorm_backward db", s, d_db, db, C, 1e-5, 1e-6);

    void *dev[] = {d_inp, d_w, d_b, d_out, d_mean, d_rstd, d_dout, d_dinp, d_dw, d_db};
    for (size_t i = 0; i < sizeof dev / sizeof dev[0]; i++)
        be->ops->release(be, dev[i]);
    float *host[] = {inp, w, b, dout, dinp, dw, db, out, mean, rstd};
    for (size_t i = 0; i < sizeof host / sizeof host[0]; i++)
        free(host[i]);
}

START_TEST(test_layernorm) {
    icl_backend *be = cuda_backend();
    for (int i = 0; i < N_SHAPES; i++)
        layernorm_case(be, &SHAPES[i], i);
    layernorm_case(be, &BIG, N_SHAPES);
    icl_backend_destroy(be);
}
END_TEST

/* ---- fused kernels: the same bits as the kernels they replace, and close to the CPU ---- */

/* Download n floats from each of two device buffers and require the same bits. */
static void check_same_bits(icl_backend *be, const char *what, const shape *s, const float *d_a, const float *d_b,
                            size_t n) {
    float *a = down(be, d_a, n), *b = down(be, d_b, n);
    ck_assert_msg(memcmp(a, b, n * sizeof *a) == 0, "%s B%d T%d C%d: fused and unfused differ", what, s->B, s->T,
                  s->C);
    printf("  %-44s fused = unfused, bitwise over %zu values\n", what, n);
    free(a);
    free(b);
}

static void fused_case(icl_backend *be, const shape *s, int index) {
    icl_rng r;
    rng_for(&r, "fused", index);
    int N = s->B * s->T, C = s->C, F = 4 * C;
    size_t n = (size_t)N * C, nf = (size_t)N * F;
    float *x = rand_floats(n, 2.0f, &r), *y = rand_floats(n, 2.0f, &r), *w = rand_floats(C, 1.0f, &r);
    float *b = rand_floats(C, 1.0f, &r), *fw = rand_floats((size_t)F * C, 0.3f, &r), *fb = rand_floats(F, 1.0f, &r);
    float *resid = tu_floats(n), *ln = tu_floats(n), *mean = tu_floats(N), *rstd = tu_floats(N);
    float *pre = tu_floats(nf), *post = tu_floats(nf);
    icl_cpu_residual_forward(resid, x, y, n);
    icl_cpu_layernorm_forward(ln, mean, rstd, resid, w, b, N, C);
    icl_cpu_matmul_forward(pre, ln, fw, fb, 1, N, C, F);
    icl_cpu_gelu_forward(post, pre, nf);

    float *d_x = up(be, x, n * 4), *d_y = up(be, y, n * 4), *d_w = up(be, w, (size_t)C * 4);
    float *d_b = up(be, b, (size_t)C * 4), *d_fw = up(be, fw, (size_t)F * C * 4), *d_fb = up(be, fb, (size_t)F * 4);
    float *d[2][6]; /* [unfused, fused] x {resid, ln, mean, rstd, pre, post} */
    const size_t sizes[6] = {n, n, (size_t)N, (size_t)N, nf, nf};
    for (int k = 0; k < 2; k++)
        for (int j = 0; j < 6; j++)
            d[k][j] = up(be, NULL, sizes[j] * 4);
    be->ops->residual_forward(be, d[0][0], d_x, d_y, n);
    be->ops->layernorm_forward(be, d[0][1], d[0][2], d[0][3], d[0][0], d_w, d_b, N, C);
    be->ops->matmul_forward(be, d[0][4], d[0][1], d_fw, d_fb, 1, N, C, F);
    be->ops->gelu_forward(be, d[0][5], d[0][4], nf);
    be->ops->residual_layernorm_forward(be, d[1][0], d[1][1], d[1][2], d[1][3], d_x, d_y, d_w, d_b, N, C);
    be->ops->matmul_gelu_forward(be, d[1][4], d[1][5], d[1][1], d_fw, d_fb, 1, N, C, F);
    synced(be, "fused kernels");
    const char *names[6] = {"residual_layernorm resid", "residual_layernorm out", "residual_layernorm mean",
                            "residual_layernorm rstd", "matmul_gelu pre",          "matmul_gelu post"};
    for (int j = 0; j < 6; j++)
        check_same_bits(be, names[j], s, d[0][j], d[1][j], sizes[j]);
    check_dev(be, "residual_layernorm out vs cpu", s, d[1][1], ln, n, 1e-5, 1e-5);
    check_dev(be, "matmul_gelu post vs cpu", s, d[1][5], post, nf, 5e-5, 1e-5);

    void *dev[] = {d_x, d_y, d_w, d_b, d_fw, d_fb};
    for (size_t i = 0; i < sizeof dev / sizeof dev[0]; i++)
        be->ops->release(be, dev[i]);
    for (int k = 0; k < 2; k++)
        for (int j = 0; j < 6; j++)
            be->ops->release(be, d[k][j]);
    float *host[] = {x, y, w, b, fw, fb, resid, ln, mean, rstd, pre, post};
    for (size_t i = 0; i < sizeof host / sizeof host[0]; i++)
        free(host[i]);
}

START_TEST(test_fused) {
    icl_backend *be = cuda_backend();
    for (int i = 0; i < N_SHAPES; i++)
        fused_case(be, &SHAPES[i], i);
    fused_case(be, &BIG, N_SHAPES);
    icl_backend_destroy(be);
}
END_TEST

/* ---- attention ---- */

/* (T,T) operands arrive with random values above the diagonal (as a hook
 * could leave them): the CPU ignores them, so must the GPU. */
static void attention_case(icl_backend *be, const shape *s, int index) {
    icl_rng r;
    rng_for(&r, "attention", index);
    int B = s->B, T = s->T, C = s->C, NH = s->NH;
    size_t nqkv = (size_t)B * T * 3 * C, natt = (size_t)B * NH * T * T, nout = (size_t)B * T * C;
    float *qkv = rand_floats(nqkv, 1.0f, &r), *dout = rand_floats(nout, 1.0f, &r);
    float *scores = rand_floats(natt, 1.0f, &r), *probs = rand_floats(natt, 1.0f, &r), *out = tu_floats(nout);
    float *dprobs = rand_floats(natt, 1.0f, &r), *dscores = rand_floats(natt, 1.0f, &r);
    float *dqkv = rand_floats(nqkv, 1.0f, &r);

    float *d_qkv = up(be, qkv, nqkv * 4), *d_dout = up(be, dout, nout * 4);
    float *d_scores = up(be, scores, natt * 4), *d_probs = up(be, probs, natt * 4), *d_out = up(be, NULL, nout * 4);
    float *d_dprobs = up(be, dprobs, natt * 4), *d_dscores = up(be, dscores, natt * 4);
    float *d_dqkv = up(be, dqkv, nqkv * 4);

    icl_cpu_attention_scores_forward(scores, qkv, B, T, C, NH);
    be->ops->attention_scores_forward(be, d_scores, d_qkv, B, T, C, NH);
    synced(be, "attention_scores_forward");
    check_dev(be, "attention_scores_forward", s, d_scores, scores, natt, 1e-5, 1e-5);

    icl_cpu_attention_softmax_forward(probs, scores, B, NH, T);
    ck_assert(be->ops->to_device(be, d_scores, scores, natt * 4) == ICL_OK);
    be->ops->attention_softmax_forward(be, d_probs, d_scores, B, NH, T);
    synced(be, "attention_softmax_forward");
    check_dev(be, "attention_softmax_forward", s, d_probs, probs, natt, 1e-6, 1e-5);

    /* values and backward from probs with garbage above the diagonal */
    float *probs_dirty = rand_floats(natt, 1.0f, &r);
    for (size_t row = 0; row < natt / T; row++)
        for (int k = 0; k <= (int)(row % T); k++)
            probs_dirty[row * T + k] = probs[row * T + k];
    ck_assert(be->ops->to_device(be, d_probs, probs_dirty, natt * 4) == ICL_OK);
    icl_cpu_attention_values_forward(out, probs_dirty, qkv, B, T, C, NH);
    be->ops->attention_values_forward(be, d_out, d_probs, d_qkv, B, T, C, NH);
    synced(be, "attention_values_forward");
    check_dev(be, "attention_values_forward", s, d_out, out, nout, 1e-5, 1e-5);

    icl_cpu_attention_values_backward(dprobs, dqkv, dout, probs_dirty, qkv, B, T, C, NH);
    be->ops->attention_values_backward(be, d_dprobs, d_dqkv, d_dout, d_probs, d_qkv, B, T, C, NH);
    synced(be, "attention_values_backward");
    check_dev(be, "attention_values_backward dprobs", s, d_dprobs, dprobs, natt, 2e-5, 1e-5);
    check_dev(be, "attention_values_backward dqkv", s, d_dqkv, dqkv, nqkv, 2e-5, 1e-5);

    icl_cpu_attention_softmax_backward(dscores, dprobs, probs_dirty, B, NH, T);
    be->ops->attention_softmax_backward(be, d_dscores, d_dprobs, d_probs, B, NH, T);
    synced(be, "attention_softmax_backward");
    check_dev(be, "attention_softmax_backward", s, d_dscores, dscores, natt, 2e-5, 1e-5);

    icl_cpu_attention_scores_backward(dqkv, dscores, qkv, B, T, C, NH);
    be->ops->attention_scores_backward(be, d_dqkv, d_dscores, d_qkv, B, T, C, NH);
    synced(be, "attention_scores_backward");
    check_dev(be, "attention_scores_backward dqkv", s, d_dqkv, dqkv, nqkv, 5e-5, 1e-5);

    void *dev[] = {d_qkv, d_dout, d_scores, d_probs, d_out, d_dprobs, d_dscores, d_dqkv};
    for (size_t i = 0; i < sizeof dev / sizeof dev[0]; i++)
        be->ops->release(be, dev[i]);
    float *host[] = {qkv, dout, scores, probs, out, dprobs, dscores, dqkv, probs_dirty};
    for (size_t i = 0; i < sizeof host / sizeof host[0]; i++)
        free(host[i]);
}

START_TEST(test_attention) {
    icl_backend *be = cuda_backend();
    for (int i = 0; i < N_SHAPES; i++)
        attention_case(be, &SHAPES[i], i);
    icl_backend_destroy(be);
}
END_TEST

/* ---- element-wise: GELU and residual ---- */

static void pointwise_case(icl_backend *be, const shape *s, int index) {
    icl_rng r;
    rng_for(&r, "pointwise", index);
    size_t n = (size_t)s->B * s->T * s->C;
    float *a = rand_floats(n, 4.0f, &r), *b = rand_floats(n, 1.0f, &r), *dout = rand_floats(n, 1.0f, &r);
    float *da = rand_floats(n, 1.0f, &r), *db = rand_floats(n, 1.0f, &r), *out = tu_floats(n);
    float *d_a = up(be, a, n * 4), *d_b = up(be, b, n * 4), *d_dout = up(be, dout, n * 4);
    float *d_da = up(be, da, n * 4), *d_db = up(be, db, n * 4), *d_out = up(be, NULL, n * 4);

    icl_cpu_gelu_forward(out, a, n);
    be->ops->gelu_forward(be, d_out, d_a, n);
    synced(be, "gelu_forward");
    check_dev(be, "gelu_forward", s, d_out, out, n, 1e-6, 1e-5);

    icl_cpu_gelu_backward(da, a, dout, n);
    be->ops->gelu_backward(be, d_da, d_a, d_dout, n);
    synced(be, "gelu_backward");
    check_dev(be, "gelu_backward", s, d_da, da, n, 4e-6, 1e-5);
    ck_assert(be->ops->to_device(be, d_da, da, n * 4) == ICL_OK); /* residual sees identical inputs */

    icl_cpu_residual_forward(out, a, b, n);
    be->ops->residual_forward(be, d_out, d_a, d_b, n);
    synced(be, "residual_forward");
    check_dev(be, "residual_forward", s, d_out, out, n, 1e-7, 1e-7);

    icl_cpu_residual_backward(da, db, dout, n);
    be->ops->residual_backward(be, d_da, d_db, d_dout, n);
    synced(be, "residual_backward");
    check_dev(be, "residual_backward da", s, d_da, da, n, 1e-6, 1e-6);
    check_dev(be, "residual_backward db", s, d_db, db, n, 1e-7, 1e-7);

    void *dev[] = {d_a, d_b, d_dout, d_da, d_db, d_out};
    for (size_t i = 0; i < sizeof dev / sizeof dev[0]; i++)
        be->ops->release(be, dev[i]);
    float *host[] = {a, b, dout, da, db, out};
    for (size_t i = 0; i < sizeof host / sizeof host[0]; i++)
        free(host[i]);
}

START_TEST(test_pointwise) {
    icl_backend *be = cuda_backend();
    for (int i = 0; i < N_SHAPES; i++)
        pointwise_case(be, &SHAPES[i], i);
    icl_backend_destroy(be);
}
END_TEST

/* ---- losses ---- */

/* Weights NULL or with zeros (where the class target is out of range and the
 * regression target NaN: neither may be read); dlosses with zeros (rows to skip). */
static void losses_case(icl_backend *be, const shape *s, int with_weights, int index) {
    icl_rng r;
    rng_for(&r, "losses", index);
    int N = s->B * s->T, V = s->V, D = s->C / 8 + 1;
    size_t nv = (size_t)N * V, nd = (size_t)N * D;
    float *logits = rand_floats(nv, 4.0f, &r), *weights = tu_floats(N), *dlosses = rand_floats(N, 1.0f, &r);
    int32_t *targets = tu_ints(N);
    tu_fill_tokens(targets, N, V, &r);
    for (int i = 0; i < N; i++) {
        weights[i] = (i % 3 == 1) ? 0.0f : 0.5f + icl_rng_uniform(&r);
        if (with_weights && weights[i] == 0.0f)
            targets[i] = 1 << 28;
        if (i % 4 == 2 || (with_weights && weights[i] == 0.0f))
            dlosses[i] = 0.0f;
    }
    const float *w = with_weights ? weights : NULL;
    float *losses = tu_floats(N), *probs = tu_floats(nv), *dlogits = rand_floats(nv, 1.0f, &r);
    float *out = rand_floats(nd, 1.0f, &r), *target = rand_floats(nd, 1.0f, &r), *dout = rand_floats(nd, 1.0f, &r);
    for (int i = 0; i < N; i++)
        if (with_weights && weights[i] == 0.0f)
            for (int d = 0; d < D; d++)
                target[(size_t)i * D + d] = NAN; /* masked rows: must not be read */

    float *d_logits = up(be, logits, nv * 4), *d_weights = up(be, weights, (size_t)N * 4);
    float *d_dlosses = up(be, dlosses, (size_t)N * 4);
    int32_t *d_targets = up(be, targets, (size_t)N * 4);
    float *d_losses = up(be, NULL, (size_t)N * 4), *d_probs = up(be, NULL, nv * 4);
    float *d_dlogits = up(be, dlogits, nv * 4);
    float *d_out = up(be, out, nd * 4), *d_target = up(be, target, nd * 4), *d_dout = up(be, dout, nd * 4);
    float *dw = with_weights ? d_weights : NULL;

    icl_cpu_crossentropy_forward(losses, probs, logits, targets, w, N, V);
    be->ops->crossentropy_forward(be, d_losses, d_probs, d_logits, d_targets, dw, N, V);
    synced(be, "crossentropy_forward");
    check_dev(be, "crossentropy_forward losses", s, d_losses, losses, N, 2e-6, 1e-5);
    check_dev(be, "crossentropy_forward probs", s, d_probs, probs, nv, 1e-6, 1e-5);

    ck_assert(be->ops->to_device(be, d_probs, probs, nv * 4) == ICL_OK);
    icl_cpu_crossentropy_backward(dlogits, dlosses, probs, targets, N, V);
    be->ops->crossentropy_backward(be, d_dlogits, d_dlosses, d_probs, d_targets, N, V);
    synced(be, "crossentropy_backward");
    check_dev(be, "crossentropy_backward", s, d_dlogits, dlogits, nv, 1e-6, 1e-6);

    icl_cpu_mse_forward(losses, out, target, w, N, D);
    be->ops->mse_forward(be, d_losses, d_out, d_target, dw, N, D);
    synced(be, "mse_forward");
    check_dev(be, "mse_forward", s, d_losses, losses, N, 1e-6, 1e-5);

    icl_cpu_mse_backward(dout, dlosses, out, target, N, D);
    be->ops->mse_backward(be, d_dout, d_dlosses, d_out, d_target, N, D);
    synced(be, "mse_backward");
    check_dev(be, "mse_backward", s, d_dout, dout, nd, 1e-6, 1e-6);

    void *dev[] = {d_logits, d_weights, d_dlosses, d_targets, d_losses, d_probs, d_dlogits, d_out, d_target, d_dout};
    for (size_t i = 0; i < sizeof dev / sizeof dev[0]; i++)
        be->ops->release(be, dev[i]);
    float *host[] = {logits, weights, dlosses, losses, probs, dlogits, out, target, dout};
    for (size_t i = 0; i < sizeof host / sizeof host[0]; i++)
        free(host[i]);
    free(targets);
}

START_TEST(test_losses) {
    icl_backend *be = cuda_backend();
    for (int i = 0; i < N_SHAPES; i++) {
        losses_case(be, &SHAPES[i], 0, 2 * i);
        losses_case(be, &SHAPES[i], 1, 2 * i + 1);
    }
    icl_backend_destroy(be);
}
END_TEST

/* ---- optimizer and reductions ---- */

/* The step scalars in device memory, from a host copy. */
static icl_step_scalars *up_scalars(icl_backend *be, const icl_step_scalars *host) {
    return up(be, host, sizeof *host);
}

static icl_step_scalars down_scalars(icl_backend *be, const icl_step_scalars *dev) {
    icl_step_scalars h;
    ck_assert_msg(be->ops->to_host(be, &h, dev, sizeof h) == ICL_OK, "to_host: %s", icl_last_error());
    return h;
}

START_TEST(test_adamw) {
    icl_backend *be = cuda_backend();
    icl_rng r;
    rng_for(&r, "adamw", 0);
    size_t n = 4099;
    float *p = rand_floats(n, 1.0f, &r), *m = tu_floats(n), *v = tu_floats(n);
    float *d_p = up(be, p, n * 4), *d_m = up(be, NULL, n * 4), *d_v = up(be, NULL, n * 4);
    float *g = tu_floats(n), *d_g = up(be, NULL, n * 4);
    /* three tensors of awkward sizes, the middle one without decay, and elements 3000..3004 frozen */
    const icl_adamw_span spans[3] = {{0, 1031, 1, 0}, {1031, 1969, 0, 0}, {3005, 1094, 1, 0}};
    icl_adamw_span *d_spans = up(be, spans, sizeof spans);
    for (long t = 1; t <= 3; t++) {
        tu_fill_uniform(g, n, 1.0f, &r);
        ck_assert(be->ops->to_device(be, d_g, g, n * 4) == ICL_OK);
        icl_step_scalars sc = {.lr = 1e-2f, .t = t, .clip_scale = 0.5f};
        sc.c1 = (float)(1.0 / (1.0 - pow(0.9, (double)t)));
        sc.c2 = (float)(1.0 / (1.0 - pow(0.95, (double)t)));
        icl_step_scalars *d_sc = up_scalars(be, &sc);
        for (int k = 0; k < 3; k++) {
            size_t o = (size_t)spans[k].offset;
            icl_cpu_adamw_update(p + o, m + o, v + o, g + o, (size_t)spans[k].numel, 1e-2f, 0.9f, 0.95f, 1e-8f,
                                 spans[k].decay ? 0.1f : 0.0f, 0.5f, t);
        }
        be->ops->adamw_update(be, d_p, d_m, d_v, d_g, d_spans, 3, 1969, d_sc, 0.9f, 0.95f, 1e-8f, 0.1f);
        synced(be, "adamw_update");
        be->ops->release(be, d_sc);
    }
    check_dev(be, "adamw params after 3 steps", NULL, d_p, p, n, 1e-6, 1e-5);
    check_dev(be, "adamw m", NULL, d_m, m, n, 1e-7, 1e-5);
    check_dev(be, "adamw v", NULL, d_v, v, n, 1e-8, 1e-5);
    /* a skipped step changes nothing */
    icl_step_scalars skip = {.lr = 1.0f, .c1 = 1.0f, .c2 = 1.0f, .t = 4, .clip_scale = 1.0f, .skip = 1};
    icl_step_scalars *d_skip = up_scalars(be, &skip);
    float *before = down(be, d_p, n);
    be->ops->adamw_update(be, d_p, d_m, d_v, d_g, d_spans, 3, 1969, d_skip, 0.9f, 0.95f, 1e-8f, 0.1f);
    synced(be, "adamw_update (skip)");
    float *after = down(be, d_p, n);
    ck_assert_msg(memcmp(before, after, n * 4) == 0, "a skipped AdamW step changed the parameters");
    printf("  adamw skip: parameters unchanged\n");
    void *dev[] = {d_p, d_m, d_v, d_g, d_spans, d_skip};
    for (size_t i = 0; i < sizeof dev / sizeof dev[0]; i++)
        be->ops->release(be, dev[i]);
    free(before);
    free(after);
    free(p);
    free(m);
    free(v);
    free(g);
    icl_backend_destroy(be);
}
END_TEST

START_TEST(test_reductions) {
    icl_backend *be = cuda_backend();
    const size_t sizes[] = {1, 1000, 300001};
    for (int k = 0; k < 3; k++) {
        icl_rng r;
        rng_for(&r, "reductions", k);
        size_t n = sizes[k];
        float *x = rand_floats(n, 1.0f, &r);
        float *d_x = up(be, x, n * 4);
        icl_step_scalars sc = {.grad_sq = 0.25};
        icl_step_scalars *d_sc = up_scalars(be, &sc);
        be->ops->sum_squares_accumulate(be, &d_sc->grad_sq, d_x, n);
        char label[64];
        snprintf(label, sizeof label, "sum_squares_accumulate n=%zu", n);
        check_double(label, down_scalars(be, d_sc).grad_sq, 0.25 + icl_cpu_sum_squares(x, n), 1e-12);
        be->ops->release(be, d_sc);
        be->ops->release(be, d_x);
        free(x);
    }
    /* clip factor and not-finite flags: the device against the CPU backend on the same scalars */
    icl_backend *cpu = NULL;
    ck_assert(icl_backend_cpu_create(&cpu) == ICL_OK);
    const icl_step_scalars cases[] = {{.grad_clip = 1.0f, .grad_sq = 16.0},  {.grad_clip = 8.0f, .grad_sq = 16.0},
                                      {.grad_clip = 0.0f, .grad_sq = 1e30},  {.grad_clip = 1.0f, .grad_sq = 2.0},
                                      {.grad_clip = 1.0f, .grad_sq = NAN},   {.grad_clip = 1.0f, .grad_sq = INFINITY}};
    for (size_t k = 0; k < sizeof cases / sizeof cases[0]; k++) {
        icl_step_scalars want = cases[k], *d_sc = up_scalars(be, &cases[k]);
        cpu->ops->clip_scale(cpu, &want);
        be->ops->clip_scale(be, d_sc);
        icl_step_scalars got = down_scalars(be, d_sc);
        printf("  clip_scale grad_sq %-8g clip %g: scale %.9g (cpu %.9g), skip %d (cpu %d)\n", cases[k].grad_sq,
               (double)cases[k].grad_clip, (double)got.clip_scale, (double)want.clip_scale, got.skip, want.skip);
        ck_assert(got.skip == want.skip && (want.skip || got.clip_scale == want.clip_scale));
        be->ops->release(be, d_sc);
    }
    enum { NL = 37 };
    float losses[NL], weights[NL];
    for (int i = 0; i < NL; i++) {
        losses[i] = (float)i;
        weights[i] = (float)(i % 3);
    }
    losses[3] = NAN; /* weight 0: not scored, so no flag */
    for (int bad = 0; bad < 2; bad++) {
        if (bad)
            losses[NL - 2] = INFINITY; /* weight 2 */
        float *d_l = up(be, losses, sizeof losses), *d_w = up(be, weights, sizeof weights);
        icl_step_scalars zero = {0}, *d_sc = up_scalars(be, &zero);
        be->ops->flag_nonfinite_losses(be, d_sc, d_l, d_w, NL);
        int got = down_scalars(be, d_sc).skip;
        printf("  flag_nonfinite_losses, scored infinity %s: skip %d\n", bad ? "present" : "absent", got);
        ck_assert_int_eq(got, bad);
        be->ops->release(be, d_sc);
        be->ops->release(be, d_l);
        be->ops->release(be, d_w);
    }
    icl_backend_destroy(cpu);
    icl_backend_destroy(be);
}
END_TEST

/* ---- determinism: the same op twice on the same inputs gives the same bits ---- */

START_TEST(test_determinism) {
    icl_backend *be = cuda_backend();
    icl_rng r;
    rng_for(&r, "determinism", 0);
    const shape *s = &BIG;
    int B = s->B, T = s->T, C = s->C, V = s->V, N = B * T, OC = 3 * C;
    size_t nx = (size_t)N * C, nw = (size_t)OC * C, ny = (size_t)N * OC;
    int32_t *tokens = tu_ints(N);
    tu_fill_tokens(tokens, N, V, &r);
    float *x = rand_floats(nx, 1.0f, &r), *w = rand_floats(nw, 0.5f, &r), *dy = rand_floats(ny, 1.0f, &r);
    float *lnw = rand_floats(C, 1.0f, &r), *mean = rand_floats(N, 0.1f, &r), *rstd = rand_floats(N, 0.5f, &r);
    for (int i = 0; i < N; i++)
        rstd[i] += 1.0f;
    int32_t *d_tok = up(be, tokens, (size_t)N * 4);
    float *d_x = up(be, x, nx * 4), *d_w = up(be, w, nw * 4), *d_dy = up(be, dy, ny * 4);
    float *d_lnw = up(be, lnw, (size_t)C * 4), *d_mean = up(be, mean, (size_t)N * 4);
    float *d_rstd = up(be, rstd, (size_t)N * 4);
    /* outputs: dwte (V,C), dwpe (T,C), matmul dinp (N,C), dw (OC,C), dbias (OC), layernorm dinp (N,C), dw, db (C) */
    enum { N_OUT = 8 };
    const size_t sizes[N_OUT] = {(size_t)V * C, (size_t)T * C, nx, nw, (size_t)OC, nx, (size_t)C, (size_t)C};
    const char *names[N_OUT] = {"embed dwte",   "embed dwpe",     "matmul dinp",  "matmul dw",
                                "matmul dbias", "layernorm dinp", "layernorm dw", "layernorm db"};
    float *d_o[N_OUT], *run[2][N_OUT];
    for (int k = 0; k < N_OUT; k++)
        d_o[k] = up(be, NULL, sizes[k] * 4);
    double ss[2];
    for (int rep = 0; rep < 2; rep++) {
        for (int k = 0; k < N_OUT; k++)
            ck_assert(be->ops->zero(be, d_o[k], sizes[k] * 4) == ICL_OK);
        be->ops->embed_backward(be, d_o[0], d_o[1], d_x, d_tok, B, T, C);
        be->ops->matmul_backward(be, d_o[2], d_o[3], d_o[4], d_dy, d_x, d_w, N, C, OC);
        be->ops->layernorm_backward(be, d_o[5], d_o[6], d_o[7], d_x, d_x, d_lnw, d_mean, d_rstd, N, C);
        icl_step_scalars zero = {0}, *d_sc = up_scalars(be, &zero);
        be->ops->sum_squares_accumulate(be, &d_sc->grad_sq, d_o[3], nw);
        ss[rep] = down_scalars(be, d_sc).grad_sq;
        be->ops->release(be, d_sc);
        synced(be, "determinism run");
        for (int k = 0; k < N_OUT; k++)
            run[rep][k] = down(be, d_o[k], sizes[k]);
    }
    for (int k = 0; k < N_OUT; k++) {
        ck_assert_msg(memcmp(run[0][k], run[1][k], sizes[k] * 4) == 0, "%s differs between two runs", names[k]);
        printf("  determinism %-32s bitwise equal over %zu values\n", names[k], sizes[k]);
        free(run[0][k]);
        free(run[1][k]);
        be->ops->release(be, d_o[k]);
    }
    ck_assert_msg(memcmp(&ss[0], &ss[1], sizeof ss[0]) == 0, "sum_squares differs between runs: %.17g vs %.17g",
                  ss[0], ss[1]);
    printf("  determinism sum_squares bitwise equal (%.17g)\n", ss[0]);
    void *dev[] = {d_tok, d_x, d_w, d_dy, d_lnw, d_mean, d_rstd};
    for (size_t i = 0; i < sizeof dev / sizeof dev[0]; i++)
        be->ops->release(be, dev[i]);
    free(tokens);
    free(x);
    free(w);
    free(dy);
    free(lnw);
    free(mean);
    free(rstd);
    icl_backend_destroy(be);
}
END_TEST

/* ---- error reporting ---- */

START_TEST(test_errors_reported_at_sync) {
    icl_backend *be = cuda_backend();
    float *d = up(be, NULL, 64 * sizeof(float));
    be->ops->matmul_forward(be, d, d, d, NULL, 1, -1, 4, 4);
    icl_status s = be->ops->sync(be);
    ck_assert_int_eq(s, ICL_ERR_BACKEND);
    printf("  recorded error: %s\n", icl_last_error());
    ck_assert_msg(strstr(icl_last_error(), "matmul_forward") != NULL, "message does not name the op: %s",
                  icl_last_error());
    synced(be, "sync after a reported error"); /* reported once, then cleared */
    be->ops->release(be, d);
    icl_backend_destroy(be);
}
END_TEST

/* ---- no device ---- */

static const char *skip_reason;

START_TEST(test_skipped_without_device) {
    printf("test_cuda: SKIPPED — no CUDA device present (%s)\n", skip_reason);
    icl_backend *be = NULL;
    icl_status s = icl_backend_create(&be, ICL_BACKEND_CUDA);
    ck_assert_int_eq(s, ICL_ERR_BACKEND);
    ck_assert_ptr_null(be);
    printf("  icl_backend_create(cuda): %s\n", icl_last_error());
#ifdef ICL_WITH_CUDA
    ck_assert_int_eq(icl_backend_cuda_device_count(), 0);
    ck_assert_msg(strstr(icl_last_error(), "CUDA requested but no CUDA device is available: ") == icl_last_error(),
                  "unexpected message: %s", icl_last_error());
#endif
}
END_TEST

int main(void) {
    Suite *s = suite_create("cuda");
    TCase *tc = tcase_create("cuda");
    tcase_set_timeout(tc, 120);
    skip_reason = tu_cuda_unavailable_reason();
    if (skip_reason) {
        tcase_add_test(tc, test_skipped_without_device);
    } else {
        tcase_add_test(tc, test_memory);
        tcase_add_test(tc, test_embed);
        tcase_add_test(tc, test_matmul);
        tcase_add_test(tc, test_layernorm);
        tcase_add_test(tc, test_fused);
        tcase_add_test(tc, test_attention);
        tcase_add_test(tc, test_pointwise);
        tcase_add_test(tc, test_losses);
        tcase_add_test(tc, test_adamw);
        tcase_add_test(tc, test_reductions);
        tcase_add_test(tc, test_determinism);
        tcase_add_test(tc, test_errors_reported_at_sync);
    }
    suite_add_tcase(s, tc);
    return tu_run(s);
}
