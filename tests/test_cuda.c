/* CUDA backend: every kernel of the shared table (kernel_table.c) against
 * the naive double-precision CPU reference on the table's awkward sizes,
 * forward and backward (gradients pre-filled with random values to check +=),
 * the fused kernels against the kernels they replace, run-to-run bitwise
 * determinism of the reductions, memory operations and error reporting.
 *
 * Without a CUDA device (or in a build without CUDA) the suite runs one test
 * that prints why it skipped and checks that asking for CUDA fails cleanly.
 *
 * Tolerances: the table's device column (why: see kernel_table.c). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "backend.h"
#include "cpu_kernels.h"
#include "icl/icl.h"
#include "kernel_table.h"
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

/* Download dev (n floats), compare with want, free the download. */
static void check_dev(icl_backend *be, const char *what, const shape *s, const float *dev, const float *want,
                      size_t n, double atol, double rtol) {
    char label[96];
    if (s)
        snprintf(label, sizeof label, "%s B%d T%d C%d NH%d V%d", what, s->B, s->T, s->C, s->NH, s->V);
    else
        snprintf(label, sizeof label, "%s", what);
    float *got = tk_download(be, dev, n);
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
    float *host = tu_rand_floats(n, 1.0f, &r);
    float *zeros = tu_floats(n);

    float *d = tk_upload(be, NULL, n * sizeof(float));
    float *got = tk_download(be, d, n);
    ck_assert_msg(memcmp(got, zeros, n * sizeof(float)) == 0, "alloc did not return zeroed memory");
    free(got);

    ck_assert(be->ops->to_device(be, d, host, n * sizeof(float)) == ICL_OK);
    got = tk_download(be, d, n);
    ck_assert_msg(memcmp(got, host, n * sizeof(float)) == 0, "to_device/to_host round trip changed the data");
    free(got);

    /* overlapping copy behaves like memmove */
    float *want = tu_dup_floats(host, n);
    memmove(want + 3, want, (n - 3) * sizeof(float));
    ck_assert(be->ops->copy(be, d + 3, d, (n - 3) * sizeof(float)) == ICL_OK);
    got = tk_download(be, d, n);
    ck_assert_msg(memcmp(got, want, n * sizeof(float)) == 0, "overlapping copy differs from memmove");
    free(got);

    ck_assert(be->ops->zero(be, d + 10, 20 * sizeof(float)) == ICL_OK);
    memset(want + 10, 0, 20 * sizeof(float));
    got = tk_download(be, d, n);
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

/* ---- every kernel of the shared table against its naive reference ---- */

START_TEST(test_kernel_matches_naive) {
    icl_backend *be = cuda_backend();
    tk_check_kernel(&tk_kernels[_i], TK_BACKEND, be);
    icl_backend_destroy(be);
}
END_TEST

/* ---- fused kernels: the same bits as the kernels they replace, and close to the CPU ---- */

/* Download n floats from each of two device buffers and require the same bits. */
static void check_same_bits(icl_backend *be, const char *what, const shape *s, const float *d_a, const float *d_b,
                            size_t n) {
    float *a = tk_download(be, d_a, n), *b = tk_download(be, d_b, n);
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
    float *x = tu_rand_floats(n, 2.0f, &r), *y = tu_rand_floats(n, 2.0f, &r), *w = tu_rand_floats(C, 1.0f, &r);
    float *b = tu_rand_floats(C, 1.0f, &r), *fw = tu_rand_floats((size_t)F * C, 0.3f, &r);
    float *fb = tu_rand_floats(F, 1.0f, &r);
    float *resid = tu_floats(n), *ln = tu_floats(n), *mean = tu_floats(N), *rstd = tu_floats(N);
    float *pre = tu_floats(nf), *post = tu_floats(nf);
    icl_cpu_residual_forward_naive(resid, x, y, n);
    icl_cpu_layernorm_forward_naive(ln, mean, rstd, resid, w, b, N, C);
    icl_cpu_matmul_forward_naive(pre, ln, fw, fb, 1, N, C, F);
    icl_cpu_gelu_forward_naive(post, pre, nf);

    float *d_x = tk_upload(be, x, n * 4), *d_y = tk_upload(be, y, n * 4), *d_w = tk_upload(be, w, (size_t)C * 4);
    float *d_b = tk_upload(be, b, (size_t)C * 4), *d_fw = tk_upload(be, fw, (size_t)F * C * 4);
    float *d_fb = tk_upload(be, fb, (size_t)F * 4);
    float *d[2][6]; /* [unfused, fused] x {resid, ln, mean, rstd, pre, post} */
    const size_t sizes[6] = {n, n, (size_t)N, (size_t)N, nf, nf};
    for (int k = 0; k < 2; k++)
        for (int j = 0; j < 6; j++)
            d[k][j] = tk_upload(be, NULL, sizes[j] * 4);
    be->ops->residual_forward(be, d[0][0], d_x, d_y, n);
    be->ops->layernorm_forward(be, d[0][1], d[0][2], d[0][3], d[0][0], d_w, d_b, N, C);
    be->ops->matmul_forward(be, d[0][4], d[0][1], d_fw, d_fb, 1, N, C, F);
    be->ops->gelu_forward(be, d[0][5], d[0][4], nf);
    be->ops->residual_layernorm_forward(be, d[1][0], d[1][1], d[1][2], d[1][3], d_x, d_y, d_w, d_b, N, C);
    be->ops->matmul_gelu_forward(be, d[1][4], d[1][5], d[1][1], d_fw, d_fb, 1, N, C, F);
    tk_sync(be, "fused kernels");
    const char *names[6] = {"residual_layernorm resid", "residual_layernorm out", "residual_layernorm mean",
                            "residual_layernorm rstd", "matmul_gelu pre",          "matmul_gelu post"};
    for (int j = 0; j < 6; j++)
        check_same_bits(be, names[j], s, d[0][j], d[1][j], sizes[j]);
    check_dev(be, "residual_layernorm out vs naive", s, d[1][1], ln, n, 1e-5, 1e-5);
    check_dev(be, "matmul_gelu post vs naive", s, d[1][5], post, nf, 5e-5, 1e-5);

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

/* ---- optimizer and reductions ---- */

/* The step scalars in device memory, from a host copy. */
static icl_step_scalars *up_scalars(icl_backend *be, const icl_step_scalars *host) {
    return tk_upload(be, host, sizeof *host);
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
    float *p = tu_rand_floats(n, 1.0f, &r), *m = tu_floats(n), *v = tu_floats(n);
    float *d_p = tk_upload(be, p, n * 4), *d_m = tk_upload(be, NULL, n * 4), *d_v = tk_upload(be, NULL, n * 4);
    float *g = tu_floats(n), *d_g = tk_upload(be, NULL, n * 4);
    /* three tensors of awkward sizes, the middle one without decay, and elements 3000..3004 frozen */
    const icl_adamw_span spans[3] = {{0, 1031, 1, 0}, {1031, 1969, 0, 0}, {3005, 1094, 1, 0}};
    icl_adamw_span *d_spans = tk_upload(be, spans, sizeof spans);
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
        tk_sync(be, "adamw_update");
        be->ops->release(be, d_sc);
    }
    check_dev(be, "adamw params after 3 steps", NULL, d_p, p, n, 1e-6, 1e-5);
    check_dev(be, "adamw m", NULL, d_m, m, n, 1e-7, 1e-5);
    check_dev(be, "adamw v", NULL, d_v, v, n, 1e-8, 1e-5);
    /* a skipped step changes nothing */
    icl_step_scalars skip = {.lr = 1.0f, .c1 = 1.0f, .c2 = 1.0f, .t = 4, .clip_scale = 1.0f, .skip = 1};
    icl_step_scalars *d_skip = up_scalars(be, &skip);
    float *before = tk_download(be, d_p, n);
    be->ops->adamw_update(be, d_p, d_m, d_v, d_g, d_spans, 3, 1969, d_skip, 0.9f, 0.95f, 1e-8f, 0.1f);
    tk_sync(be, "adamw_update (skip)");
    float *after = tk_download(be, d_p, n);
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
        float *x = tu_rand_floats(n, 1.0f, &r);
        float *d_x = tk_upload(be, x, n * 4);
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
        float *d_l = tk_upload(be, losses, sizeof losses), *d_w = tk_upload(be, weights, sizeof weights);
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
    float *x = tu_rand_floats(nx, 1.0f, &r), *w = tu_rand_floats(nw, 0.5f, &r), *dy = tu_rand_floats(ny, 1.0f, &r);
    float *lnw = tu_rand_floats(C, 1.0f, &r), *mean = tu_rand_floats(N, 0.1f, &r), *rstd = tu_rand_floats(N, 0.5f, &r);
    for (int i = 0; i < N; i++)
        rstd[i] += 1.0f;
    int32_t *d_tok = tk_upload(be, tokens, (size_t)N * 4);
    float *d_x = tk_upload(be, x, nx * 4), *d_w = tk_upload(be, w, nw * 4), *d_dy = tk_upload(be, dy, ny * 4);
    float *d_lnw = tk_upload(be, lnw, (size_t)C * 4), *d_mean = tk_upload(be, mean, (size_t)N * 4);
    float *d_rstd = tk_upload(be, rstd, (size_t)N * 4);
    /* outputs: dwte (V,C), dwpe (T,C), matmul dinp (N,C), dw (OC,C), dbias (OC), layernorm dinp (N,C), dw, db (C) */
    enum { N_OUT = 8 };
    const size_t sizes[N_OUT] = {(size_t)V * C, (size_t)T * C, nx, nw, (size_t)OC, nx, (size_t)C, (size_t)C};
    const char *names[N_OUT] = {"embed dwte",   "embed dwpe",     "matmul dinp",  "matmul dw",
                                "matmul dbias", "layernorm dinp", "layernorm dw", "layernorm db"};
    float *d_o[N_OUT], *run[2][N_OUT];
    for (int k = 0; k < N_OUT; k++)
        d_o[k] = tk_upload(be, NULL, sizes[k] * 4);
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
        tk_sync(be, "determinism run");
        for (int k = 0; k < N_OUT; k++)
            run[rep][k] = tk_download(be, d_o[k], sizes[k]);
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
    float *d = tk_upload(be, NULL, 64 * sizeof(float));
    be->ops->matmul_forward(be, d, d, d, NULL, 1, -1, 4, 4);
    icl_status s = be->ops->sync(be);
    ck_assert_int_eq(s, ICL_ERR_BACKEND);
    printf("  recorded error: %s\n", icl_last_error());
    ck_assert_msg(strstr(icl_last_error(), "matmul_forward") != NULL, "message does not name the op: %s",
                  icl_last_error());
    tk_sync(be, "sync after a reported error"); /* reported once, then cleared */
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
        tcase_add_loop_test(tc, test_kernel_matches_naive, 0, tk_n_kernels);
        tcase_add_test(tc, test_fused);
        tcase_add_test(tc, test_adamw);
        tcase_add_test(tc, test_reductions);
        tcase_add_test(tc, test_determinism);
        tcase_add_test(tc, test_errors_reported_at_sync);
    }
    suite_add_tcase(s, tc);
    return tu_run(s);
}
