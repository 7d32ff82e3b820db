/* The CPU backend: host memory and the fast kernels of cpu_kernels.h behind
 * the icl_backend_ops table. Kernels here cannot fail, so sync always
 * succeeds and no backend state is needed (impl stays NULL). */
#include <math.h>
#include <omp.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include "backend.h"
#include "cpu_kernels.h"
#include "error.h"

/* Alignment of every allocation: a cache line and a full AVX-512 vector. */
enum { CPU_ALIGN = 64 };

/* ---- memory ---- */

static void cpu_destroy(icl_backend *be) { free(be); }

static icl_status cpu_alloc(icl_backend *be, void **ptr, size_t bytes) {
    (void)be;
    if (!ptr)
        return icl_fail(ICL_ERR_INVALID_ARG, "cpu backend alloc: ptr is NULL");
    *ptr = NULL;
    if (bytes > SIZE_MAX - CPU_ALIGN)
        return icl_fail(ICL_ERR_NOMEM, "cpu backend alloc: %zu bytes is too large", bytes);
    /* whole cache lines, at least one, so a zero-byte request still gets a distinct freeable block */
    size_t padded = bytes == 0 ? CPU_ALIGN : (bytes + CPU_ALIGN - 1) / CPU_ALIGN * CPU_ALIGN;
    void *p = NULL;
    if (posix_memalign(&p, CPU_ALIGN, padded) != 0)
        return icl_fail(ICL_ERR_NOMEM, "cpu backend alloc: out of memory allocating %zu bytes", bytes);
    memset(p, 0, padded);
    *ptr = p;
    return ICL_OK;
}

static void cpu_release(icl_backend *be, void *ptr) {
    (void)be;
    free(ptr);
}

static icl_status cpu_zero(icl_backend *be, void *ptr, size_t bytes) {
    (void)be;
    if (!ptr && bytes > 0)
        return icl_fail(ICL_ERR_INVALID_ARG, "cpu backend zero: ptr is NULL");
    if (bytes > 0)
        memset(ptr, 0, bytes);
    return ICL_OK;
}

static icl_status cpu_copy_bytes(const char *what, void *dst, const void *src, size_t bytes) {
    if ((!dst || !src) && bytes > 0)
        return icl_fail(ICL_ERR_INVALID_ARG, "cpu backend %s: NULL %s", what, dst ? "source" : "destination");
    /* memmove: a copy onto itself (or an overlapping view) is well defined */
    if (bytes > 0)
        memmove(dst, src, bytes);
    return ICL_OK;
}

static icl_status cpu_to_device(icl_backend *be, void *dst, const void *host_src, size_t bytes) {
    (void)be;
    return cpu_copy_bytes("to_device", dst, host_src, bytes);
}

static icl_status cpu_to_host(icl_backend *be, void *host_dst, const void *src, size_t bytes) {
    (void)be;
    return cpu_copy_bytes("to_host", host_dst, src, bytes);
}

static icl_status cpu_copy(icl_backend *be, void *dst, const void *src, size_t bytes) {
    (void)be;
    return cpu_copy_bytes("copy", dst, src, bytes);
}

static icl_status cpu_sync(icl_backend *be) {
    (void)be;
    return ICL_OK;
}

/* Staging memory is ordinary host memory, and a queued copy is done at once. */
static void cpu_upload(icl_backend *be, void *dst, const void *staging_src, size_t bytes) {
    (void)be;
    if (bytes > 0)
        memcpy(dst, staging_src, bytes);
}

/* ---- kernels: drop the backend argument ---- */

static void cpu_embed_forward(icl_backend *be, float *out, const int32_t *tokens, const float *wte,
                              const float *wpe, int B, int T, int C) {
    (void)be;
    icl_cpu_embed_forward(out, tokens, wte, wpe, B, T, C);
}

static void cpu_position_add_forward(icl_backend *be, float *out, const float *wpe, int B, int T, int C) {
    (void)be;
    icl_cpu_position_add_forward(out, wpe, B, T, C);
}

static void cpu_matmul_forward(icl_backend *be, float *out, const float *inp, const float *w, const float *bias,
                               int B, int T, int C, int OC) {
    (void)be;
    icl_cpu_matmul_forward(out, inp, w, bias, B, T, C, OC);
}

static void cpu_layernorm_forward(icl_backend *be, float *out, float *mean, float *rstd, const float *inp,
                                  const float *w, const float *b, int N, int C) {
    (void)be;
    icl_cpu_layernorm_forward(out, mean, rstd, inp, w, b, N, C);
}

static void cpu_attention_scores_forward(icl_backend *be, float *scores, const float *qkv, int B, int T, int C,
                                         int NH) {
    (void)be;
    icl_cpu_attention_scores_forward(scores, qkv, B, T, C, NH);
}

static void cpu_attention_softmax_forward(icl_backend *be, float *probs, const float *scores, int B, int NH,
                                          int T) {
    (void)be;
    icl_cpu_attention_softmax_forward(probs, scores, B, NH, T);
}

static void cpu_attention_values_forward(icl_backend *be, float *out, const float *probs, const float *qkv, int B,
                                         int T, int C, int NH) {
    (void)be;
    icl_cpu_attention_values_forward(out, probs, qkv, B, T, C, NH);
}

static void cpu_gelu_forward(icl_backend *be, float *out, const float *inp, size_t N) {
    (void)be;
    icl_cpu_gelu_forward(out, inp, N);
}

static void cpu_residual_forward(icl_backend *be, float *out, const float *a, const float *b, size_t N) {
    (void)be;
    icl_cpu_residual_forward(out, a, b, N);
}

static void cpu_crossentropy_forward(icl_backend *be, float *losses, float *probs, const float *logits,
                                     const int32_t *targets, const float *weights, int N, int V) {
    (void)be;
    icl_cpu_crossentropy_forward(losses, probs, logits, targets, weights, N, V);
}

static void cpu_mse_forward(icl_backend *be, float *losses, const float *out, const float *target,
                            const float *weights, int N, int D) {
    (void)be;
    icl_cpu_mse_forward(losses, out, target, weights, N, D);
}

static void cpu_embed_backward(icl_backend *be, float *dwte, float *dwpe, const float *dout, const int32_t *tokens,
                               int B, int T, int C) {
    (void)be;
    icl_cpu_embed_backward(dwte, dwpe, dout, tokens, B, T, C);
}

static void cpu_position_add_backward(icl_backend *be, float *dwpe, const float *dout, int B, int T, int C) {
    (void)be;
    icl_cpu_position_add_backward(dwpe, dout, B, T, C);
}

static void cpu_matmul_backward(icl_backend *be, float *dinp, float *dw, float *dbias, const float *dout,
                                const float *inp, const float *w, int N, int C, int OC) {
    (void)be;
    icl_cpu_matmul_backward(dinp, dw, dbias, dout, inp, w, N, C, OC);
}

static void cpu_layernorm_backward(icl_backend *be, float *dinp, float *dw, float *db, const float *dout,
                                   const float *inp, const float *w, const float *mean, const float *rstd, int N,
                                   int C) {
    (void)be;
    icl_cpu_layernorm_backward(dinp, dw, db, dout, inp, w, mean, rstd, N, C);
}

static void cpu_attention_values_backward(icl_backend *be, float *dprobs, float *dqkv, const float *dout,
                                          const float *probs, const float *qkv, int B, int T, int C, int NH) {
    (void)be;
    icl_cpu_attention_values_backward(dprobs, dqkv, dout, probs, qkv, B, T, C, NH);
}

static void cpu_attention_softmax_backward(icl_backend *be, float *dscores, const float *dprobs,
                                           const float *probs, int B, int NH, int T) {
    (void)be;
    icl_cpu_attention_softmax_backward(dscores, dprobs, probs, B, NH, T);
}

static void cpu_attention_scores_backward(icl_backend *be, float *dqkv, const float *dscores, const float *qkv,
                                          int B, int T, int C, int NH) {
    (void)be;
    icl_cpu_attention_scores_backward(dqkv, dscores, qkv, B, T, C, NH);
}

static void cpu_attention_forward(icl_backend *be, float *scores, float *probs, float *out, const float *qkv, int B,
                                  int T, int C, int NH) {
    (void)be;
    icl_cpu_attention_forward(scores, probs, out, qkv, B, T, C, NH);
}

static void cpu_attention_backward(icl_backend *be, float *dqkv, float *dprobs, float *dscores, const float *dout,
                                   const float *probs, const float *qkv, int B, int T, int C, int NH) {
    (void)be;
    icl_cpu_attention_backward(dqkv, dprobs, dscores, dout, probs, qkv, B, T, C, NH);
}

static void cpu_gelu_backward(icl_backend *be, float *dinp, const float *inp, const float *dout, size_t N) {
    (void)be;
    icl_cpu_gelu_backward(dinp, inp, dout, N);
}

static void cpu_crossentropy_backward(icl_backend *be, float *dlogits, const float *dlosses, const float *probs,
                                      const int32_t *targets, int N, int V) {
    (void)be;
    icl_cpu_crossentropy_backward(dlogits, dlosses, probs, targets, N, V);
}

static void cpu_mse_backward(icl_backend *be, float *dout, const float *dlosses, const float *out,
                             const float *target, int N, int D) {
    (void)be;
    icl_cpu_mse_backward(dout, dlosses, out, target, N, D);
}

/* The CPU gains nothing from fusing these (no launches to save): run the sequence. */
static void cpu_residual_layernorm_forward(icl_backend *be, float *resid, float *out, float *mean, float *rstd,
                                           const float *a, const float *b, const float *w, const float *bias, int N,
                                           int C) {
    (void)be;
    icl_cpu_residual_forward(resid, a, b, (size_t)N * C);
    icl_cpu_layernorm_forward(out, mean, rstd, resid, w, bias, N, C);
}

static void cpu_matmul_gelu_forward(icl_backend *be, float *pre, float *post, const float *inp, const float *w,
                                    const float *bias, int B, int T, int C, int OC) {
    (void)be;
    icl_cpu_matmul_gelu_forward(pre, post, inp, w, bias, B, T, C, OC);
}

static void cpu_sum_squares_accumulate(icl_backend *be, double *acc, const float *x, size_t n) {
    (void)be;
    *acc += icl_cpu_sum_squares(x, n);
}

static void cpu_flag_nonfinite_losses(icl_backend *be, icl_step_scalars *s, const float *losses,
                                      const float *weights, int N) {
    (void)be;
    for (int i = 0; i < N; i++)
        if (weights[i] != 0.0f && !isfinite(losses[i]))
            s->skip = 1;
}

static void cpu_clip_scale(icl_backend *be, icl_step_scalars *s) {
    (void)be;
    double norm = sqrt(s->grad_sq);
    if (!isfinite(norm))
        s->skip = 1;
    s->clip_scale = (s->grad_clip > 0.0f && norm > s->grad_clip) ? (float)(s->grad_clip / norm) : 1.0f;
}

static void cpu_adamw_update(icl_backend *be, float *params, float *m, float *v, const float *grads,
                             const icl_adamw_span *spans, int n_spans, size_t max_numel,
                             const icl_step_scalars *s, float beta1, float beta2, float eps, float weight_decay) {
    (void)be;
    (void)max_numel;
    if (s->skip)
        return;
    for (int k = 0; k < n_spans; k++) {
        size_t o = (size_t)spans[k].offset;
        icl_cpu_adamw_update(params + o, m + o, v + o, grads + o, (size_t)spans[k].numel, s->lr, beta1, beta2, eps,
                             spans[k].decay ? weight_decay : 0.0f, s->clip_scale, (long)s->t);
    }
}

/* ---- whole-prompt parallelism ---- */

/* Inside a caller's parallel region the kernels already run one per thread, so chunks do too. */
static int cpu_workers(icl_backend *be) {
    (void)be;
    return omp_in_parallel() ? 1 : omp_get_max_threads();
}

static void cpu_parallel_for(icl_backend *be, int n, int width, void (*run)(void *ctx, int i, int worker),
                             void (*ordered)(void *ctx, int i, int worker), void *ctx) {
    (void)be;
    /* Round-robin (chunk 1) keeps each worker's ordered call close behind its run. Nested
       parallelism is off by default, so the kernels inside run on the calling worker alone. */
#pragma omp parallel for ordered schedule(static, 1) num_threads(width < 1 ? 1 : width)
    for (int i = 0; i < n; i++) {
        int worker = omp_get_thread_num();
        run(ctx, i, worker);
        if (ordered) {
#pragma omp ordered
            ordered(ctx, i, worker);
        }
    }
}

static const icl_backend_ops cpu_ops = {
    .name = "cpu",
    .destroy = cpu_destroy,
    .alloc = cpu_alloc,
    .release = cpu_release,
    .zero = cpu_zero,
    .to_device = cpu_to_device,
    .to_host = cpu_to_host,
    .copy = cpu_copy,
    .sync = cpu_sync,
    .alloc_staging = cpu_alloc,
    .release_staging = cpu_release,
    .upload = cpu_upload,
    .download = cpu_upload,
    .embed_forward = cpu_embed_forward,
    .position_add_forward = cpu_position_add_forward,
    .matmul_forward = cpu_matmul_forward,
    .layernorm_forward = cpu_layernorm_forward,
    .attention_scores_forward = cpu_attention_scores_forward,
    .attention_softmax_forward = cpu_attention_softmax_forward,
    .attention_values_forward = cpu_attention_values_forward,
    .gelu_forward = cpu_gelu_forward,
    .residual_forward = cpu_residual_forward,
    .crossentropy_forward = cpu_crossentropy_forward,
    .mse_forward = cpu_mse_forward,
    .residual_layernorm_forward = cpu_residual_layernorm_forward,
    .matmul_gelu_forward = cpu_matmul_gelu_forward,
    .attention_forward = cpu_attention_forward,
    .embed_backward = cpu_embed_backward,
    .position_add_backward = cpu_position_add_backward,
    .matmul_backward = cpu_matmul_backward,
    .layernorm_backward = cpu_layernorm_backward,
    .attention_values_backward = cpu_attention_values_backward,
    .attention_softmax_backward = cpu_attention_softmax_backward,
    .attention_scores_backward = cpu_attention_scores_backward,
    .gelu_backward = cpu_gelu_backward,
    .crossentropy_backward = cpu_crossentropy_backward,
    .mse_backward = cpu_mse_backward,
    .attention_backward = cpu_attention_backward,
    .workers = cpu_workers,
    .parallel_for = cpu_parallel_for,
    .sum_squares_accumulate = cpu_sum_squares_accumulate,
    .flag_nonfinite_losses = cpu_flag_nonfinite_losses,
    .clip_scale = cpu_clip_scale,
    .adamw_update = cpu_adamw_update,
};

icl_status icl_backend_cpu_create(icl_backend **out) {
    if (!out)
        return icl_fail(ICL_ERR_INVALID_ARG, "icl_backend_cpu_create: out is NULL");
    *out = NULL;
    icl_backend *be = calloc(1, sizeof *be);
    if (!be)
        return icl_fail(ICL_ERR_NOMEM, "icl_backend_cpu_create: out of memory");
    be->ops = &cpu_ops;
    be->kind = ICL_BACKEND_CPU;
    be->impl = NULL;
    *out = be;
    return ICL_OK;
}
