#include "kernel_table.h"
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "cpu_kernels.h"
#include "testutil.h"

/* One call with the arguments the fast kernel, its naive twin and the ops entry share. */
#define TK_RUN(impl, be, op, ...)                                  \
    ((impl) == TK_FAST    ? icl_cpu_##op(__VA_ARGS__)              \
     : (impl) == TK_NAIVE ? icl_cpu_##op##_naive(__VA_ARGS__)      \
                          : (be)->ops->op((be), __VA_ARGS__))

/* An input, an output or an accumulated gradient; tolerances (fast vs naive, device vs naive). */
#define IN(n, s, o) {.name = n, .role = TK_IN, .scale = s, .offset = o}
#define TOKENS(n) {.name = n, .role = TK_TOKENS}
#define OUT(n, fa, fr, da, dr) {.name = n, .role = TK_OUT, .scale = 1.0f, .atol = {fa, da}, .rtol = {fr, dr}}
#define ACC(n, fa, fr, da, dr) {.name = n, .role = TK_ACC, .scale = 1.0f, .atol = {fa, da}, .rtol = {fr, dr}}
/* The same, accepted as NULL by the kernel. */
#define IN_OR_NULL(n, s) {.name = n, .role = TK_IN, .scale = s, .nullable = 1}
#define ACC_OR_NULL(n, fa, fr, da, dr) \
    {.name = n, .role = TK_ACC, .scale = 1.0f, .nullable = 1, .atol = {fa, da}, .rtol = {fr, dr}}

#define N_OF(a) (int)(sizeof a / sizeof a[0])

/* ---- sizes: awkward on purpose (1s, odd counts, head sizes 1..24, more rows
 * than a column-sum chunk, more depth than a 256-deep tile) ---- */

static const int embed_sizes[][TK_MAX_DIMS] = { /* B T C V */
    {1, 1, 24, 5}, {3, 7, 40, 19}, {3, 33, 72, 37}, {2, 33, 24, 5},
    {1, 33, 72, 37}, {3, 33, 24, 5}, {3, 1, 72, 19}, {8, 65, 160, 7}};

static const int matmul_sizes[][TK_MAX_DIMS] = { /* B T C OC; the backward takes N = B*T rows */
    {1, 1, 24, 5},   {3, 7, 40, 19},   {3, 33, 72, 37}, {3, 11, 24, 72},  {1, 7, 1, 3},    {1, 13, 300, 17},
    {3, 3, 7, 300},  {1, 1, 24, 72},   {1, 1, 24, 24},  {1, 21, 40, 120}, {1, 21, 40, 40}, {1, 33, 72, 216},
    {1, 33, 72, 72}, {1, 99, 24, 5},   {1, 99, 24, 24}, {1, 3, 72, 216},  {1, 3, 72, 19},  {1, 520, 160, 480}};

static const int layernorm_sizes[][TK_MAX_DIMS] = { /* N C */
    {1, 24}, {21, 40}, {99, 72}, {5, 3}, {33, 72}, {99, 24}, {3, 72}, {520, 160}};

static const int attention_sizes[][TK_MAX_DIMS] = { /* B T C NH */
    {1, 1, 24, 3}, {3, 7, 40, 4},  {1, 33, 72, 6}, {3, 33, 24, 1}, {2, 7, 6, 6},
    {1, 261, 12, 2}, {1, 1, 24, 1}, {1, 33, 72, 3}, {3, 33, 24, 4}, {3, 1, 72, 4}};

static const int pointwise_sizes[][TK_MAX_DIMS] = {{1}, {21}, {999}, {24}, {216}, {840}, {2376}}; /* N */

static const int xent_sizes[][TK_MAX_DIMS] = { /* N V */
    {1, 5}, {21, 19}, {99, 37}, {4, 1}, {33, 37}, {99, 5}, {3, 19}};

static const int mse_sizes[][TK_MAX_DIMS] = { /* N D */
    {1, 5}, {21, 19}, {99, 37}, {6, 1}, {1, 4}, {21, 6}, {33, 10}, {99, 4}, {3, 10}};

#define SIZES(a) .sizes = a, .n_sizes = N_OF(a)

/* ---- shared preparation ---- */

/* Zero-weight rows (every third): what the losses must skip. */
static int masked_row(int i) { return i % 3 == 1; }

/* Weights in [0.5, 1.5), 0 on masked rows. */
static void make_weights(float *w, int N) {
    for (int i = 0; i < N; i++)
        w[i] = masked_row(i) ? 0.0f : 1.0f + 0.5f * w[i];
}

/* dlosses 0 on masked rows and every fourth row (rows the backward skips). */
static void make_dlosses(float *dl, int N) {
    for (int i = 0; i < N; i++)
        if (masked_row(i) || i % 4 == 2)
            dl[i] = 0.0f;
}

/* A target class no kernel may read: alternately negative and far too large. */
static int32_t bad_class(int i) { return i % 2 ? -1 : 1 << 28; }

/* probs (rows, T): each row t a distribution over s <= t, with garbage above the
 * diagonal (as a hook could leave it) that the kernels must ignore. */
static void causal_probs(float *p, size_t rows, int T) {
    for (size_t row = 0; row < rows; row++) {
        float *q = p + row * T;
        int t = (int)(row % (size_t)T);
        double sum = 0.0;
        for (int s = 0; s <= t; s++)
            sum += q[s] = fabsf(q[s]) + 0.01f;
        for (int s = 0; s <= t; s++)
            q[s] = (float)(q[s] / sum);
    }
}

/* ---- embeddings: d = B T C V; wpe has T + 2 rows (the last two untouched) ---- */

static void embed_numel(size_t *n, const int *d) {
    size_t BT = (size_t)d[0] * d[1], C = (size_t)d[2];
    n[0] = BT * C, n[1] = BT, n[2] = (size_t)d[3] * C, n[3] = (size_t)(d[1] + 2) * C;
}
static void embed_forward_run(tk_impl i, icl_backend *be, void *const *x, const int *d) {
    TK_RUN(i, be, embed_forward, x[0], x[1], x[2], x[3], d[0], d[1], d[2]);
}

static void position_add_numel(size_t *n, const int *d) {
    n[0] = (size_t)d[0] * d[1] * d[2], n[1] = (size_t)(d[1] + 2) * d[2];
}
static void position_add_forward_run(tk_impl i, icl_backend *be, void *const *x, const int *d) {
    TK_RUN(i, be, position_add_forward, x[0], x[1], d[0], d[1], d[2]);
}
static void position_add_backward_numel(size_t *n, const int *d) {
    n[0] = (size_t)(d[1] + 2) * d[2], n[1] = (size_t)d[0] * d[1] * d[2];
}
static void position_add_backward_run(tk_impl i, icl_backend *be, void *const *x, const int *d) {
    TK_RUN(i, be, position_add_backward, x[0], x[1], d[0], d[1], d[2]);
}

static void embed_backward_numel(size_t *n, const int *d) {
    size_t BT = (size_t)d[0] * d[1], C = (size_t)d[2];
    n[0] = (size_t)d[3] * C, n[1] = (size_t)(d[1] + 2) * C, n[2] = BT * C, n[3] = BT;
}
static void embed_backward_run(tk_impl i, icl_backend *be, void *const *x, const int *d) {
    TK_RUN(i, be, embed_backward, x[0], x[1], x[2], x[3], d[0], d[1], d[2]);
}

/* ---- matmul: d = B T C OC ---- */

static void matmul_forward_numel(size_t *n, const int *d) {
    size_t N = (size_t)d[0] * d[1], C = (size_t)d[2], OC = (size_t)d[3];
    n[0] = N * OC, n[1] = N * C, n[2] = OC * C, n[3] = OC;
}
static void matmul_forward_run(tk_impl i, icl_backend *be, void *const *x, const int *d) {
    TK_RUN(i, be, matmul_forward, x[0], x[1], x[2], x[3], d[0], d[1], d[2], d[3]);
}

static void matmul_backward_numel(size_t *n, const int *d) {
    size_t N = (size_t)d[0] * d[1], C = (size_t)d[2], OC = (size_t)d[3];
    n[0] = N * C, n[1] = OC * C, n[2] = OC, n[3] = N * OC, n[4] = N * C, n[5] = OC * C;
}
static void matmul_backward_run(tk_impl i, icl_backend *be, void *const *x, const int *d) {
    TK_RUN(i, be, matmul_backward, x[0], x[1], x[2], x[3], x[4], x[5], d[0] * d[1], d[2], d[3]);
}

/* ---- layernorm: d = N C ---- */

static void layernorm_forward_numel(size_t *n, const int *d) {
    n[0] = (size_t)d[0] * d[1], n[1] = n[2] = (size_t)d[0], n[3] = n[0], n[4] = n[5] = (size_t)d[1];
}
static void layernorm_forward_run(tk_impl i, icl_backend *be, void *const *x, const int *d) {
    TK_RUN(i, be, layernorm_forward, x[0], x[1], x[2], x[3], x[4], x[5], d[0], d[1]);
}

static void layernorm_backward_numel(size_t *n, const int *d) {
    size_t NC = (size_t)d[0] * d[1];
    n[0] = NC, n[1] = n[2] = (size_t)d[1], n[3] = n[4] = NC, n[5] = (size_t)d[1], n[6] = n[7] = (size_t)d[0];
}
/* mean and rstd: the statistics the forward saved for these inputs. */
static void layernorm_backward_prepare(void *const *x, const int *d) {
    float *out = tu_floats((size_t)d[0] * d[1]), *zero = tu_floats((size_t)d[1]);
    icl_cpu_layernorm_forward_naive(out, x[6], x[7], x[4], x[5], zero, d[0], d[1]);
    free(out), free(zero);
}
static void layernorm_backward_run(tk_impl i, icl_backend *be, void *const *x, const int *d) {
    TK_RUN(i, be, layernorm_backward, x[0], x[1], x[2], x[3], x[4], x[5], x[6], x[7], d[0], d[1]);
}

/* ---- attention: d = B T C NH; (T,T) operands per batch row and head ---- */

static size_t att_numel(const int *d) { return (size_t)d[0] * d[3] * d[1] * d[1]; }
static size_t qkv_numel(const int *d) { return (size_t)d[0] * d[1] * 3 * d[2]; }
static size_t btc_numel(const int *d) { return (size_t)d[0] * d[1] * d[2]; }

static void scores_forward_numel(size_t *n, const int *d) { n[0] = att_numel(d), n[1] = qkv_numel(d); }
static void scores_forward_run(tk_impl i, icl_backend *be, void *const *x, const int *d) {
    TK_RUN(i, be, attention_scores_forward, x[0], x[1], d[0], d[1], d[2], d[3]);
}

static void softmax_forward_numel(size_t *n, const int *d) { n[0] = n[1] = att_numel(d); }
static void softmax_forward_run(tk_impl i, icl_backend *be, void *const *x, const int *d) {
    TK_RUN(i, be, attention_softmax_forward, x[0], x[1], d[0], d[3], d[1]);
}

static void values_forward_numel(size_t *n, const int *d) {
    n[0] = btc_numel(d), n[1] = att_numel(d), n[2] = qkv_numel(d);
}
static void values_forward_prepare(void *const *x, const int *d) { causal_probs(x[1], att_numel(d) / d[1], d[1]); }
static void values_forward_run(tk_impl i, icl_backend *be, void *const *x, const int *d) {
    TK_RUN(i, be, attention_values_forward, x[0], x[1], x[2], d[0], d[1], d[2], d[3]);
}

static void values_backward_numel(size_t *n, const int *d) {
    n[0] = att_numel(d), n[1] = qkv_numel(d), n[2] = btc_numel(d), n[3] = att_numel(d), n[4] = qkv_numel(d);
}
static void values_backward_prepare(void *const *x, const int *d) { causal_probs(x[3], att_numel(d) / d[1], d[1]); }
static void values_backward_run(tk_impl i, icl_backend *be, void *const *x, const int *d) {
    TK_RUN(i, be, attention_values_backward, x[0], x[1], x[2], x[3], x[4], d[0], d[1], d[2], d[3]);
}

static void softmax_backward_numel(size_t *n, const int *d) { n[0] = n[1] = n[2] = att_numel(d); }
static void softmax_backward_prepare(void *const *x, const int *d) { causal_probs(x[2], att_numel(d) / d[1], d[1]); }
static void softmax_backward_run(tk_impl i, icl_backend *be, void *const *x, const int *d) {
    TK_RUN(i, be, attention_softmax_backward, x[0], x[1], x[2], d[0], d[3], d[1]);
}

static void scores_backward_numel(size_t *n, const int *d) {
    n[0] = qkv_numel(d), n[1] = att_numel(d), n[2] = qkv_numel(d);
}
static void scores_backward_run(tk_impl i, icl_backend *be, void *const *x, const int *d) {
    TK_RUN(i, be, attention_scores_backward, x[0], x[1], x[2], d[0], d[1], d[2], d[3]);
}

/* ---- element-wise: d = N ---- */

static void pointwise_numel(size_t *n, const int *d) {
    for (int k = 0; k < TK_MAX_OPERANDS; k++)
        n[k] = (size_t)d[0];
}
static void gelu_forward_run(tk_impl i, icl_backend *be, void *const *x, const int *d) {
    TK_RUN(i, be, gelu_forward, x[0], x[1], (size_t)d[0]);
}
static void gelu_backward_run(tk_impl i, icl_backend *be, void *const *x, const int *d) {
    TK_RUN(i, be, gelu_backward, x[0], x[1], x[2], (size_t)d[0]);
}
static void residual_forward_run(tk_impl i, icl_backend *be, void *const *x, const int *d) {
    TK_RUN(i, be, residual_forward, x[0], x[1], x[2], (size_t)d[0]);
}

/* ---- losses: d = N V (cross-entropy) or N D (mse); weights nullable ---- */

/* Masked rows have loss exactly 0. */
static void check_masked_losses(const char *label, const float *losses, const float *weights, int N) {
    if (!weights)
        return;
    int n_masked = 0;
    for (int i = 0; i < N; i++)
        if (weights[i] == 0.0f) {
            ck_assert_msg(losses[i] == 0.0f, "%s: zero-weight row %d has loss %g", label, i, losses[i]);
            n_masked++;
        }
    printf("  %-44s %d zero-weight rows, each loss exactly 0\n", label, n_masked);
}

static void xent_forward_numel(size_t *n, const int *d) {
    n[0] = (size_t)d[0], n[1] = n[2] = (size_t)d[0] * d[1], n[3] = n[4] = (size_t)d[0];
}
static void xent_forward_prepare(void *const *x, const int *d) {
    int32_t *targets = x[3];
    if (!x[4])
        return;
    make_weights(x[4], d[0]);
    for (int i = 0; i < d[0]; i++)
        if (masked_row(i))
            targets[i] = bad_class(i);
}
static void xent_forward_run(tk_impl i, icl_backend *be, void *const *x, const int *d) {
    TK_RUN(i, be, crossentropy_forward, x[0], x[1], x[2], x[3], x[4], d[0], d[1]);
}
static void xent_forward_check(const char *label, void *const *x, const int *d) {
    check_masked_losses(label, x[0], x[4], d[0]);
}

static void xent_backward_numel(size_t *n, const int *d) {
    n[0] = (size_t)d[0] * d[1], n[1] = (size_t)d[0], n[2] = n[0], n[3] = (size_t)d[0];
}
static void xent_backward_prepare(void *const *x, const int *d) {
    int32_t *targets = x[3];
    make_dlosses(x[1], d[0]);
    for (int i = 0; i < d[0]; i++)
        if (masked_row(i))
            targets[i] = bad_class(i);
}
static void xent_backward_run(tk_impl i, icl_backend *be, void *const *x, const int *d) {
    TK_RUN(i, be, crossentropy_backward, x[0], x[1], x[2], x[3], d[0], d[1]);
}

/* Masked rows' targets are NaN: no kernel may read them. */
static void nan_masked_targets(float *target, int N, int D) {
    for (int i = 0; i < N; i++)
        if (masked_row(i))
            for (int k = 0; k < D; k++)
                target[(size_t)i * D + k] = NAN;
}

static void mse_forward_numel(size_t *n, const int *d) {
    n[0] = (size_t)d[0], n[1] = n[2] = (size_t)d[0] * d[1], n[3] = (size_t)d[0];
}
static void mse_forward_prepare(void *const *x, const int *d) {
    if (!x[3])
        return;
    make_weights(x[3], d[0]);
    nan_masked_targets(x[2], d[0], d[1]);
}
static void mse_forward_run(tk_impl i, icl_backend *be, void *const *x, const int *d) {
    TK_RUN(i, be, mse_forward, x[0], x[1], x[2], x[3], d[0], d[1]);
}
static void mse_forward_check(const char *label, void *const *x, const int *d) {
    check_masked_losses(label, x[0], x[3], d[0]);
}

static void mse_backward_numel(size_t *n, const int *d) {
    n[0] = (size_t)d[0] * d[1], n[1] = (size_t)d[0], n[2] = n[3] = n[0];
}
static void mse_backward_prepare(void *const *x, const int *d) {
    make_dlosses(x[1], d[0]);
    nan_masked_targets(x[3], d[0], d[1]);
}
static void mse_backward_run(tk_impl i, icl_backend *be, void *const *x, const int *d) {
    TK_RUN(i, be, mse_backward, x[0], x[1], x[2], x[3], d[0], d[1]);
}

/* ---- the table ----
 * Device tolerances: element-wise kernels differ from the double reference by
 * the error of CUDA's expf/tanhf (2 ulp) and fused multiply-adds, so atol
 * 1e-7..1e-6; GELU's backward multiplies a tanh error by ~10 near |x| = 4,
 * hence 4e-6. Products and row reductions (cuBLAS, warp trees) sum up to a few
 * hundred float terms: a few ulps of the sum of magnitudes, atol 1e-5..5e-5.
 * An indexing, transpose, masking or accumulation bug moves values by O(0.1-1). */

const tk_kernel tk_kernels[] = {
    {.name = "embed_forward", .dims = "B T C V", SIZES(embed_sizes), .token_dim = 3, .n_operands = 4,
     .op = {OUT("out", 1e-6, 1e-6, 1e-6, 1e-6), TOKENS("tokens"), IN("wte", 1.0f, 0), IN("wpe", 1.0f, 0)},
     .numel = embed_numel, .run = embed_forward_run},
    {.name = "position_add_forward", .dims = "B T C V", SIZES(embed_sizes), .n_operands = 2,
     .op = {ACC("out", 1e-6, 1e-6, 1e-6, 1e-6), IN("wpe", 1.0f, 0)},
     .numel = position_add_numel, .run = position_add_forward_run},
    {.name = "embed_backward", .dims = "B T C V", SIZES(embed_sizes), .token_dim = 3, .n_operands = 4,
     .device_vs_fast = 1,
     .op = {ACC_OR_NULL("dwte", 2e-5, 1e-4, 1e-6, 1e-6), ACC_OR_NULL("dwpe", 2e-5, 1e-4, 1e-6, 1e-6),
            IN("dout", 1.0f, 0), TOKENS("tokens")},
     .numel = embed_backward_numel, .run = embed_backward_run},
    {.name = "position_add_backward", .dims = "B T C V", SIZES(embed_sizes), .n_operands = 2,
     .op = {ACC("dwpe", 2e-5, 1e-4, 1e-6, 1e-6), IN("dout", 1.0f, 0)},
     .numel = position_add_backward_numel, .run = position_add_backward_run},
    {.name = "matmul_forward", .dims = "B T C OC", SIZES(matmul_sizes), .n_operands = 4,
     .op = {OUT("out", 2e-5, 1e-4, 2e-5, 1e-5), IN("inp", 1.0f, 0), IN("w", 1.0f, 0), IN_OR_NULL("bias", 1.0f)},
     .numel = matmul_forward_numel, .run = matmul_forward_run},
    {.name = "matmul_backward", .dims = "B T C OC", SIZES(matmul_sizes), .n_operands = 6,
     .op = {ACC_OR_NULL("dinp", 2e-5, 1e-4, 5e-5, 1e-5), ACC("dw", 2e-5, 1e-4, 5e-5, 1e-5),
            ACC_OR_NULL("dbias", 2e-5, 1e-4, 1e-6, 1e-6), IN("dout", 1.0f, 0), IN("inp", 1.0f, 0), IN("w", 1.0f, 0)},
     .numel = matmul_backward_numel, .run = matmul_backward_run},
    {.name = "layernorm_forward", .dims = "N C", SIZES(layernorm_sizes), .n_operands = 6,
     .op = {OUT("out", 2e-5, 1e-4, 1e-5, 1e-5), OUT("mean", 1e-6, 1e-5, 1e-6, 1e-5),
            OUT("rstd", 1e-6, 1e-5, 1e-6, 1e-5), IN("inp", 2.0f, 0.7f), IN("w", 1.0f, 1.0f), IN("b", 1.0f, 0)},
     .numel = layernorm_forward_numel, .run = layernorm_forward_run},
    {.name = "layernorm_backward", .dims = "N C", SIZES(layernorm_sizes), .n_operands = 8,
     .op = {ACC("dinp", 2e-5, 1e-4, 2e-5, 1e-5), ACC("dw", 2e-5, 1e-4, 1e-5, 1e-6), ACC("db", 2e-5, 1e-4, 1e-5, 1e-6),
            IN("dout", 1.0f, 0), IN("inp", 2.0f, 0.7f), IN("w", 1.0f, 1.0f), IN("mean", 1.0f, 0),
            IN("rstd", 1.0f, 0)},
     .numel = layernorm_backward_numel, .prepare = layernorm_backward_prepare, .run = layernorm_backward_run},
    {.name = "attention_scores_forward", .dims = "B T C NH", SIZES(attention_sizes), .n_operands = 2,
     .op = {OUT("scores", 2e-5, 1e-4, 1e-5, 1e-5), IN("qkv", 2.0f, 0)},
     .numel = scores_forward_numel, .run = scores_forward_run},
    {.name = "attention_softmax_forward", .dims = "B T C NH", SIZES(attention_sizes), .n_operands = 2,
     .op = {OUT("probs", 1e-6, 1e-5, 1e-6, 1e-5), IN("scores", 4.0f, 0)},
     .numel = softmax_forward_numel, .run = softmax_forward_run},
    {.name = "attention_values_forward", .dims = "B T C NH", SIZES(attention_sizes), .n_operands = 3,
     .op = {OUT("out", 2e-5, 1e-4, 1e-5, 1e-5), IN("probs", 1.0f, 0), IN("qkv", 2.0f, 0)},
     .numel = values_forward_numel, .prepare = values_forward_prepare, .run = values_forward_run},
    {.name = "attention_values_backward", .dims = "B T C NH", SIZES(attention_sizes), .n_operands = 5,
     .op = {ACC("dprobs", 2e-5, 1e-4, 2e-5, 1e-5), ACC("dqkv", 2e-5, 1e-4, 2e-5, 1e-5), IN("dout", 1.0f, 0),
            IN("probs", 1.0f, 0), IN("qkv", 2.0f, 0)},
     .numel = values_backward_numel, .prepare = values_backward_prepare, .run = values_backward_run},
    {.name = "attention_softmax_backward", .dims = "B T C NH", SIZES(attention_sizes), .n_operands = 3,
     .op = {ACC("dscores", 2e-5, 1e-4, 2e-5, 1e-5), IN("dprobs", 1.0f, 0), IN("probs", 1.0f, 0)},
     .numel = softmax_backward_numel, .prepare = softmax_backward_prepare, .run = softmax_backward_run},
    {.name = "attention_scores_backward", .dims = "B T C NH", SIZES(attention_sizes), .n_operands = 3,
     .op = {ACC("dqkv", 2e-5, 1e-4, 5e-5, 1e-5), IN("dscores", 1.0f, 0), IN("qkv", 2.0f, 0)},
     .numel = scores_backward_numel, .run = scores_backward_run},
    {.name = "gelu_forward", .dims = "N", SIZES(pointwise_sizes), .n_operands = 2,
     .op = {OUT("out", 1e-7, 1e-5, 1e-6, 1e-5), IN("inp", 6.0f, 0)},
     .numel = pointwise_numel, .run = gelu_forward_run},
    {.name = "gelu_backward", .dims = "N", SIZES(pointwise_sizes), .n_operands = 3,
     .op = {ACC("dinp", 1e-7, 1e-5, 4e-6, 1e-5), IN("inp", 6.0f, 0), IN("dout", 1.0f, 0)},
     .numel = pointwise_numel, .run = gelu_backward_run},
    {.name = "residual_forward", .dims = "N", SIZES(pointwise_sizes), .n_operands = 3,
     .op = {OUT("out", 1e-7, 1e-7, 1e-7, 1e-7), IN("a", 1.0f, 0), IN("b", 1.0f, 0)},
     .numel = pointwise_numel, .run = residual_forward_run},
    {.name = "crossentropy_forward", .dims = "N V", SIZES(xent_sizes), .token_dim = 1, .n_operands = 5,
     .op = {OUT("losses", 1e-5, 1e-5, 2e-6, 1e-5), OUT("probs", 1e-6, 1e-5, 1e-6, 1e-5), IN("logits", 3.0f, 0),
            TOKENS("targets"), IN_OR_NULL("weights", 1.0f)},
     .numel = xent_forward_numel, .prepare = xent_forward_prepare, .run = xent_forward_run,
     .check = xent_forward_check},
    /* large logits: the max subtraction must keep exp in range */
    {.name = "crossentropy_forward (logits in [-60,60])", .dims = "N V", SIZES(xent_sizes), .token_dim = 1,
     .n_operands = 5,
     .op = {OUT("losses", 1e-5, 1e-5, 2e-6, 1e-5), OUT("probs", 1e-6, 1e-5, 1e-6, 1e-5), IN("logits", 60.0f, 0),
            TOKENS("targets"), IN_OR_NULL("weights", 1.0f)},
     .numel = xent_forward_numel, .prepare = xent_forward_prepare, .run = xent_forward_run,
     .check = xent_forward_check},
    {.name = "crossentropy_backward", .dims = "N V", SIZES(xent_sizes), .token_dim = 1, .n_operands = 4,
     .op = {ACC("dlogits", 1e-6, 1e-5, 1e-6, 1e-6), IN("dlosses", 1.0f, 0), IN("probs", 0.5f, 0.5f),
            TOKENS("targets")},
     .numel = xent_backward_numel, .prepare = xent_backward_prepare, .run = xent_backward_run},
    {.name = "mse_forward", .dims = "N D", SIZES(mse_sizes), .n_operands = 4,
     .op = {OUT("losses", 1e-6, 1e-5, 1e-6, 1e-5), IN("out", 2.0f, 0), IN("target", 2.0f, 0),
            IN_OR_NULL("weights", 1.0f)},
     .numel = mse_forward_numel, .prepare = mse_forward_prepare, .run = mse_forward_run,
     .check = mse_forward_check},
    {.name = "mse_backward", .dims = "N D", SIZES(mse_sizes), .n_operands = 4,
     .op = {ACC("dout", 1e-6, 1e-5, 1e-6, 1e-6), IN("dlosses", 1.0f, 0), IN("out", 2.0f, 0), IN("target", 2.0f, 0)},
     .numel = mse_backward_numel, .prepare = mse_backward_prepare, .run = mse_backward_run},
};
const int tk_n_kernels = N_OF(tk_kernels);

/* "N=21 C=40" from the dims' names and values. */
static void dims_label(char *buf, size_t cap, const tk_kernel *k, const int *d) {
    const char *names = k->dims;
    size_t at = 0;
    for (int i = 0; *names && at < cap; i++) {
        size_t len = strcspn(names, " ");
        at += (size_t)snprintf(buf + at, cap - at, "%s%.*s=%d", i ? " " : "", (int)len, names, d[i]);
        names += len + (names[len] == ' ');
    }
}

static int is_output(tk_role role) { return role == TK_OUT || role == TK_ACC; }

/* Kernel k at sizes d with the operands in `left_out` (bit i: operand i) passed as NULL. */
static void check_variant(const tk_kernel *k, const int *d, unsigned left_out, uint64_t seed_index, tk_impl impl,
                          icl_backend *be) {
    size_t numel[TK_MAX_OPERANDS];
    void *ref[TK_MAX_OPERANDS] = {0}, *got[TK_MAX_OPERANDS] = {0}, *dev[TK_MAX_OPERANDS] = {0};
    k->numel(numel, d);
    icl_rng base, r;
    icl_rng_init(&base, 7, k->name);
    icl_rng_split(&r, &base, seed_index);
    for (int i = 0; i < k->n_operands; i++) {
        const tk_operand *o = &k->op[i];
        if (left_out >> i & 1)
            continue;
        if (o->role == TK_TOKENS) {
            ref[i] = tu_ints(numel[i]);
            tu_fill_tokens(ref[i], numel[i], d[k->token_dim], &r);
            continue;
        }
        float *x = tu_rand_floats(numel[i], o->scale, &r);
        for (size_t j = 0; j < numel[i]; j++)
            x[j] += o->offset;
        ref[i] = x;
    }
    if (k->prepare)
        k->prepare(ref, d);
    for (int i = 0; i < k->n_operands; i++)
        if (ref[i]) {
            got[i] = tu_ints(numel[i]);
            memcpy(got[i], ref[i], numel[i] * 4);
        }

    tk_impl reference = impl == TK_BACKEND && k->device_vs_fast ? TK_FAST : TK_NAIVE;
    k->run(reference, NULL, ref, d);
    if (impl == TK_BACKEND) {
        for (int i = 0; i < k->n_operands; i++)
            if (got[i])
                dev[i] = tk_upload(be, got[i], numel[i] * 4);
        k->run(TK_BACKEND, be, dev, d);
        tk_sync(be, k->name);
        for (int i = 0; i < k->n_operands; i++)
            if (got[i] && is_output(k->op[i].role))
                ck_assert_msg(be->ops->to_host(be, got[i], dev[i], numel[i] * 4) == ICL_OK, "to_host: %s",
                              icl_last_error());
        for (int i = 0; i < k->n_operands; i++)
            if (dev[i])
                be->ops->release(be, dev[i]);
    } else {
        k->run(TK_FAST, NULL, got, d);
    }

    char dims[64], label[160];
    dims_label(dims, sizeof dims, k, d);
    int tol = impl == TK_BACKEND ? TK_TOL_DEVICE : TK_TOL_FAST;
    for (int i = 0; i < k->n_operands; i++) {
        const tk_operand *o = &k->op[i];
        if (!got[i] || !is_output(o->role))
            continue;
        int at = snprintf(label, sizeof label, "%s %s %s%s", k->name, o->name, dims,
                          reference == TK_FAST ? " vs fast" : "");
        for (int j = 0; j < k->n_operands; j++)
            if (left_out >> j & 1)
                at += snprintf(label + at, sizeof label - (size_t)at, " %s=NULL", k->op[j].name);
        TU_ASSERT_CLOSE(label, got[i], ref[i], numel[i], o->atol[tol], o->rtol[tol]);
    }
    if (k->check) {
        snprintf(label, sizeof label, "%s %s", k->name, dims);
        k->check(label, got, d);
    }
    for (int i = 0; i < k->n_operands; i++)
        free(ref[i]), free(got[i]);
}

void tk_check_kernel(const tk_kernel *k, tk_impl impl, icl_backend *be) {
    ck_assert(impl == TK_FAST || (impl == TK_BACKEND && be));
    unsigned all_nullable = 0;
    int n_nullable = 0;
    for (int i = 0; i < k->n_operands; i++)
        if (k->op[i].nullable)
            all_nullable |= 1u << i, n_nullable++;
    for (int s = 0; s < k->n_sizes; s++) {
        /* everything present, each nullable operand left out alone, then all of them at once */
        check_variant(k, k->sizes[s], 0, (uint64_t)s, impl, be);
        for (int i = 0; i < k->n_operands; i++)
            if (all_nullable >> i & 1)
                check_variant(k, k->sizes[s], 1u << i, (uint64_t)s, impl, be);
        if (n_nullable > 1)
            check_variant(k, k->sizes[s], all_nullable, (uint64_t)s, impl, be);
    }
}

void *tk_upload(icl_backend *be, const void *host, size_t bytes) {
    void *d = NULL;
    ck_assert_msg(be->ops->alloc(be, &d, bytes) == ICL_OK, "alloc: %s", icl_last_error());
    if (host)
        ck_assert_msg(be->ops->to_device(be, d, host, bytes) == ICL_OK, "to_device: %s", icl_last_error());
    return d;
}

float *tk_download(icl_backend *be, const float *dev, size_t n) {
    float *h = tu_floats(n);
    ck_assert_msg(be->ops->to_host(be, h, dev, n * sizeof(float)) == ICL_OK, "to_host: %s", icl_last_error());
    return h;
}

void tk_sync(icl_backend *be, const char *what) {
    icl_status s = be->ops->sync(be);
    ck_assert_msg(s == ICL_OK, "%s: %s", what, icl_last_error());
}
