/* Internal: the compute backend interface.
 *
 * The model code never touches tensor memory directly: it allocates through
 * the backend and calls kernels through this table, so the CPU backend
 * (kernels/cpu, its own register-tile products) and the CUDA backend (kernels/cuda, cuBLAS) are
 * interchangeable. All float and int pointers passed to kernels are backend
 * memory. Kernels do not return a status: a backend records its first failure
 * and reports it from `sync` (the CPU kernels cannot fail).
 *
 * Shape letters: B batch, T positions, C channels (d_model), NH heads,
 * OC output channels, N rows (= B*T), V vocabulary, D per-row width.
 * Every *_backward kernel ACCUMULATES (+=) into each gradient it writes;
 * callers zero gradients explicitly. Gradient outputs documented as nullable
 * may be NULL, meaning "not needed". */
#ifndef ICL_LIB_BACKEND_H
#define ICL_LIB_BACKEND_H

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include "icl/model.h"
#include "icl/status.h"

typedef struct icl_backend icl_backend;

/* The scalars of one optimizer step, in backend memory, so that a whole step
 * can run without the host reading anything back (and be captured in a CUDA
 * graph). The host writes the first group before the step; the kernels write
 * the second. */
typedef struct {
    float lr;
    float c1, c2;      /* Adam's bias corrections 1/(1-beta1^t), 1/(1-beta2^t), in double then rounded */
    float grad_clip;   /* clip the global norm to this; <= 0: no clipping */
    int64_t t;         /* the 1-based step */
    double grad_sq;    /* sum of squares of the trainable gradients */
    float clip_scale;  /* factor applied to every gradient */
    int32_t skip;      /* nonzero: a loss or the gradient norm is not finite, so AdamW changes nothing */
} icl_step_scalars;

/* One tensor AdamW updates: elements [offset, offset+numel) of the
 * parameter, moment and gradient buffers, with or without weight decay. */
typedef struct {
    int64_t offset, numel;
    int32_t decay;
    int32_t pad_;
} icl_adamw_span;

typedef struct {
    const char *name;
    void (*destroy)(icl_backend *be);

    /* ---- memory ---- */
    icl_status (*alloc)(icl_backend *be, void **ptr, size_t bytes); /* zero-filled */
    void (*release)(icl_backend *be, void *ptr);
    icl_status (*zero)(icl_backend *be, void *ptr, size_t bytes);
    icl_status (*to_device)(icl_backend *be, void *dst, const void *host_src, size_t bytes);
    icl_status (*to_host)(icl_backend *be, void *host_dst, const void *src, size_t bytes);
    icl_status (*copy)(icl_backend *be, void *dst, const void *src, size_t bytes);
    /* Wait for queued work; return the first error recorded since the last sync. */
    icl_status (*sync)(icl_backend *be);
    /* Host memory the backend copies from and to without waiting (pinned on
     * CUDA): upload/download queue the copy, and the staging memory must stay
     * as it is (upload) or unread (download) until the next sync. */
    icl_status (*alloc_staging)(icl_backend *be, void **ptr, size_t bytes); /* zero-filled */
    void (*release_staging)(icl_backend *be, void *ptr);
    void (*upload)(icl_backend *be, void *dst, const void *staging_src, size_t bytes);
    void (*download)(icl_backend *be, void *staging_dst, const void *src, size_t bytes);

    /* ---- graphs (NULL where the backend has none) ----
     * Between graph_begin and graph_end nothing runs: the queued work is
     * recorded, and graph_launch replays it with the same pointers and sizes.
     * No sync, allocation or growth of backend scratch may happen in between;
     * if one does, graph_end fails and nothing was recorded. */
    icl_status (*graph_begin)(icl_backend *be);
    icl_status (*graph_end)(icl_backend *be, void **graph);
    void (*graph_launch)(icl_backend *be, void *graph);
    void (*graph_free)(icl_backend *be, void *graph);

    /* ---- forward kernels ---- */
    /* out (B,T,C) = wte[tokens[b,t]] + wpe[t]; tokens (B,T), wte (V,C), wpe (>=T,C) */
    void (*embed_forward)(icl_backend *be, float *out, const int32_t *tokens, const float *wte,
                          const float *wpe, int B, int T, int C);
    /* out (B,T,C) += wpe[t]; wpe (>=T,C) (vector mode: position after the read-in matmul) */
    void (*position_add_forward)(icl_backend *be, float *out, const float *wpe, int B, int T, int C);
    /* out (B,T,OC) = inp (B,T,C) . w(OC,C)^T + bias (OC, nullable). A prompt's outputs must not
     * depend on B or on its row in the batch (the model may run a batch in chunks of prompts). */
    void (*matmul_forward)(icl_backend *be, float *out, const float *inp, const float *w,
                           const float *bias, int B, int T, int C, int OC);
    /* out (N,C) = (inp - mean)/sqrt(var + 1e-5) * w + b; saves mean (N), rstd (N) */
    void (*layernorm_forward)(icl_backend *be, float *out, float *mean, float *rstd, const float *inp,
                              const float *w, const float *b, int N, int C);
    /* scores (B,NH,T,T): scores[b,h,t,s] = q(b,t,h).k(b,s,h) / sqrt(HS) for s <= t, 0 above;
     * qkv (B,T,3C) with q, k, v at channel offsets 0, C, 2C, head h at h*HS within each */
    void (*attention_scores_forward)(icl_backend *be, float *scores, const float *qkv, int B, int T,
                                     int C, int NH);
    /* probs (B,NH,T,T) = softmax over s <= t of scores; 0 above the diagonal */
    void (*attention_softmax_forward)(icl_backend *be, float *probs, const float *scores, int B, int NH,
                                      int T);
    /* out (B,T,C): out[b,t,h*HS+i] = sum_{s<=t} probs[b,h,t,s] * v(b,s,h)[i]; qkv (B,T,3C) */
    void (*attention_values_forward)(icl_backend *be, float *out, const float *probs, const float *qkv,
                                     int B, int T, int C, int NH);
    /* out (N) = GELU_tanh(inp (N)) */
    void (*gelu_forward)(icl_backend *be, float *out, const float *inp, size_t N);
    /* out (N) = a (N) + b (N) */
    void (*residual_forward)(icl_backend *be, float *out, const float *a, const float *b, size_t N);
    /* Fused softmax + cross-entropy over rows: probs (N,V) = softmax(logits (N,V));
     * losses (N) = -log probs[i, targets[i]] where weights[i] != 0, else 0.
     * weights (N) nullable = all ones. */
    void (*crossentropy_forward)(icl_backend *be, float *losses, float *probs, const float *logits,
                                 const int32_t *targets, const float *weights, int N, int V);
    /* losses (N) = mean_d (out[i,d] - target[i,d])^2 where weights[i] != 0, else 0;
     * out, target (N,D); weights nullable */
    void (*mse_forward)(icl_backend *be, float *losses, const float *out, const float *target,
                        const float *weights, int N, int D);

    /* ---- fused forward kernels ----
     * Each equals, bit for bit on the same backend, the sequence of the kernels above that it
     * replaces; the model uses them when no hook must see the tensor in between. */
    /* resid (N,C) = a + b, then out, mean, rstd = layernorm_forward(resid, w, bias) */
    void (*residual_layernorm_forward)(icl_backend *be, float *resid, float *out, float *mean, float *rstd,
                                       const float *a, const float *b, const float *w, const float *bias, int N,
                                       int C);
    /* pre (B,T,OC) = matmul_forward(inp (B,T,C), w (OC,C), bias (OC, nullable)), then post (B,T,OC) = GELU(pre) */
    void (*matmul_gelu_forward)(icl_backend *be, float *pre, float *post, const float *inp, const float *w,
                                const float *bias, int B, int T, int C, int OC);
    /* scores, probs (B,NH,T,T) and out (B,T,C) from qkv (B,T,3C): attention_scores_forward,
     * attention_softmax_forward, attention_values_forward; NULL where the backend has none */
    void (*attention_forward)(icl_backend *be, float *scores, float *probs, float *out, const float *qkv, int B,
                              int T, int C, int NH);

    /* ---- backward kernels (accumulate) ---- */
    /* dwte (V,C), dwpe (>=T,C) from dout (B,T,C); either gradient nullable */
    void (*embed_backward)(icl_backend *be, float *dwte, float *dwpe, const float *dout,
                           const int32_t *tokens, int B, int T, int C);
    /* dwpe (>=T,C) from dout (B,T,C) */
    void (*position_add_backward)(icl_backend *be, float *dwpe, const float *dout, int B, int T, int C);
    /* dinp (N,C, nullable), dw (OC,C), dbias (OC, nullable) from dout (N,OC) */
    void (*matmul_backward)(icl_backend *be, float *dinp, float *dw, float *dbias, const float *dout,
                            const float *inp, const float *w, int N, int C, int OC);
    /* dinp (N,C), dw (C), db (C) */
    void (*layernorm_backward)(icl_backend *be, float *dinp, float *dw, float *db, const float *dout,
                               const float *inp, const float *w, const float *mean, const float *rstd,
                               int N, int C);
    /* dprobs (B,NH,T,T) and dqkv's v part from dout (B,T,C) */
    void (*attention_values_backward)(icl_backend *be, float *dprobs, float *dqkv, const float *dout,
                                      const float *probs, const float *qkv, int B, int T, int C, int NH);
    /* dscores (B,NH,T,T) from dprobs and probs (causal softmax Jacobian) */
    void (*attention_softmax_backward)(icl_backend *be, float *dscores, const float *dprobs,
                                       const float *probs, int B, int NH, int T);
    /* dqkv's q and k parts from dscores (B,NH,T,T) */
    void (*attention_scores_backward)(icl_backend *be, float *dqkv, const float *dscores, const float *qkv,
                                      int B, int T, int C, int NH);
    /* dinp (N) from dout (N) at inp (N) */
    void (*gelu_backward)(icl_backend *be, float *dinp, const float *inp, const float *dout, size_t N);
    /* dlogits (N,V) += dlosses[i] * (probs[i,:] - onehot(targets[i])) for rows with dlosses[i] != 0 */
    void (*crossentropy_backward)(icl_backend *be, float *dlogits, const float *dlosses, const float *probs,
                                  const int32_t *targets, int N, int V);
    /* dout (N,D) += dlosses[i] * 2 (out - target) / D for rows with dlosses[i] != 0 */
    void (*mse_backward)(icl_backend *be, float *dout, const float *dlosses, const float *out,
                         const float *target, int N, int D);

    /* ---- fused backward kernels (NULL where the backend has none) ---- */
    /* dqkv += attention_values_backward, attention_softmax_backward and attention_scores_backward in
     * order, bit for bit, as if on zeroed dprobs and dscores (B,NH,T,T); those two are workspace,
     * undefined afterwards, so the caller need not zero them. */
    void (*attention_backward)(icl_backend *be, float *dqkv, float *dprobs, float *dscores, const float *dout,
                               const float *probs, const float *qkv, int B, int T, int C, int NH);

    /* ---- whole-prompt parallelism (NULL where the backend has none) ----
     * Short prompts and narrow layers make every kernel small, and splitting each one between
     * workers costs a synchronisation per kernel. With these the model instead hands each worker
     * whole chunks of prompts to run through every kernel; the kernels then run on that worker
     * alone. */
    /* How many workers parallel_for can use now (>= 1). */
    int (*workers)(icl_backend *be);
    /* run(ctx, i, worker) for every i in [0, n) on at most `width` workers, 0 <= worker < width, one
     * i at a time per worker; then, when `ordered` is not NULL, the same worker calls
     * ordered(ctx, i, worker) right after run(i) and only once ordered(i-1) has returned. */
    void (*parallel_for)(icl_backend *be, int n, int width, void (*run)(void *ctx, int i, int worker),
                         void (*ordered)(void *ctx, int i, int worker), void *ctx);

    /* ---- reductions and optimizer ---- */
    /* *acc (backend memory) += sum of x^2 (n), in double, in an order that does not depend on the thread count */
    void (*sum_squares_accumulate)(icl_backend *be, double *acc, const float *x, size_t n);
    /* s->skip = 1 if some losses[i] (N) with weights[i] != 0 is not finite; otherwise unchanged */
    void (*flag_nonfinite_losses)(icl_backend *be, icl_step_scalars *s, const float *losses, const float *weights,
                                  int N);
    /* From s->grad_sq: s->clip_scale = grad_clip / norm when clipping applies, else 1;
     * s->skip = 1 when the norm is not finite. */
    void (*clip_scale)(icl_backend *be, icl_step_scalars *s);
    /* AdamW on each span (spans in backend memory; max_numel the largest), unless s->skip: g = grad * s->clip_scale;
     * m = b1 m + (1-b1) g; v = b2 v + (1-b2) g^2;
     * p -= s->lr * ( m * s->c1 / (sqrt(v * s->c2) + eps) + wd * p ), wd = weight_decay where span.decay */
    void (*adamw_update)(icl_backend *be, float *params, float *m, float *v, const float *grads,
                         const icl_adamw_span *spans, int n_spans, size_t max_numel, const icl_step_scalars *s,
                         float beta1, float beta2, float eps, float weight_decay);
} icl_backend_ops;

struct icl_backend {
    const icl_backend_ops *ops;
    icl_backend_kind kind;
    void *impl; /* backend-private context (streams, handles, workspaces) */
};

/* Create/destroy a backend of the given kind. ICL_ERR_BACKEND with a message
 * naming what is missing (the CUDA plugin, the CUDA runtime, a device) and how
 * to fix it when CUDA is requested but cannot run. */
icl_status icl_backend_create(icl_backend **out, icl_backend_kind kind);
void icl_backend_destroy(icl_backend *be);

icl_status icl_backend_cpu_create(icl_backend **out);
/* CUDA devices the plugin's runtime reports; 0 when the plugin cannot be loaded. */
int icl_backend_cuda_device_count(void);

/* ---- the CUDA plugin ----
 * The CUDA backend lives in its own shared object (ICL_CUDA_PLUGIN_FILE, built
 * from kernels/cuda and linked against cudart and cuBLAS), so that libicl and
 * every program using only the CPU never load the CUDA libraries. backend.c
 * dlopen()s it the first time CUDA is asked for and looks it up in this order:
 *   1. each entry of $ICL_BACKEND_PATH (':'-separated directories, or the file itself);
 *   2. the directory of the binary holding libicl's code (libicl.so, or the program
 *      linked with libicl.a), then its ../lib and its parent (the build tree);
 *   3. the libdir compiled in (ICL_PLUGIN_LIBDIR, $(PREFIX)/lib of the build).
 * The plugin exports ICL_CUDA_PLUGIN_ENTRY, which returns its table below. */
#define ICL_CUDA_PLUGIN_FILE "libicl-cuda.so"
#define ICL_CUDA_PLUGIN_ENTRY "icl_cuda_plugin_entry"
/* Bump on any change to icl_backend_ops, icl_step_scalars, icl_adamw_span,
 * struct icl_backend or the two tables below. */
#define ICL_CUDA_PLUGIN_ABI 3

/* What libicl lends the plugin: its error recorder, so that the plugin's
 * messages reach the caller's icl_last_error(). */
typedef struct {
    uint32_t abi;
    icl_status (*failv)(icl_status s, const char *fmt, va_list ap);
} icl_plugin_host;

typedef struct {
    uint32_t abi;            /* ICL_CUDA_PLUGIN_ABI the plugin was built with */
    uint32_t ops_size;       /* sizeof(icl_backend_ops) there */
    int (*device_count)(void);
    icl_status (*create)(icl_backend **out);
} icl_cuda_plugin;

/* The entry: NULL if the plugin cannot serve `host`'s ABI. */
typedef const icl_cuda_plugin *(*icl_cuda_plugin_entry_fn)(const icl_plugin_host *host);

#endif
