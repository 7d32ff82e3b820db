/* CUDA backend internals shared by the .cu files of kernels/cuda: the backend
 * context, first-error recording, launch helpers, warp reductions, and the
 * entry points each file provides to the ops table in backend_cuda.cu.
 *
 * Every kernel entry point returns void (see lib/backend.h): a failure is
 * recorded in the context, the first one wins, and `sync` reports it. All
 * work goes to the context's one stream, so consecutive ops are ordered and
 * may share the scratch buffer. */
#ifndef ICL_CUDA_COMMON_CUH
#define ICL_CUDA_COMMON_CUH

#include <cublas_v2.h>
#include <cuda_runtime.h>
#include <stddef.h>
#include <stdint.h>
#include <initializer_list>

extern "C" {
#include "backend.h"
#include "error.h"
}

/* Threads per block for element-wise and row kernels (8 warps). */
constexpr int ICL_CUDA_BLOCK = 256;
constexpr int ICL_CUDA_WARP = 32;
constexpr int ICL_CUDA_WARPS_PER_BLOCK = ICL_CUDA_BLOCK / ICL_CUDA_WARP;
/* Cap on grid-stride grids: enough blocks to fill any current GPU. */
constexpr unsigned ICL_CUDA_MAX_GRID = 65536;
/* Deterministic column sums (bias and layernorm gains): a block covers
 * COLSUM_TILE columns and COLSUM_ROWS rows with COLSUM_TILE x COLSUM_LANES
 * threads; per-chunk partials are then summed in chunk order. */
constexpr int ICL_CUDA_COLSUM_TILE = 32;
constexpr int ICL_CUDA_COLSUM_LANES = 8;
constexpr int ICL_CUDA_COLSUM_ROWS = 128;

typedef struct {
    cudaStream_t stream;
    cublasHandle_t blas;
    void *blas_workspace; /* given to cuBLAS so it never allocates (graph capture, determinism) */
    void *scratch;        /* reduction partials and masked attention copies; grows on demand */
    size_t scratch_bytes;
    int capturing;        /* between graph_begin and graph_end: scratch must not grow */
    int failed;
    char error[256]; /* first failure since the last sync */
} icl_cuda_ctx;

static inline icl_cuda_ctx *icl_cuda_ctx_of(icl_backend *be) { return (icl_cuda_ctx *)be->impl; }

/* Record "<what>: <detail>" unless an earlier failure is pending. */
void icl_cuda_record(icl_cuda_ctx *ctx, const char *what, const char *detail);
/* Record a failed CUDA runtime / cuBLAS call; return whether it succeeded. */
bool icl_cuda_ok(icl_cuda_ctx *ctx, cudaError_t err, const char *what);
bool icl_cuda_blas_ok(icl_cuda_ctx *ctx, cublasStatus_t st, const char *what);
/* Check the launch that was just queued (configuration errors only; faults
 * inside the kernel surface at the next sync). */
static inline void icl_cuda_launched(icl_cuda_ctx *ctx, const char *what) {
    icl_cuda_ok(ctx, cudaGetLastError(), what);
}
/* Scratch of at least `bytes` (cudaMalloc alignment), or NULL after recording
 * the failure. Growing frees the old buffer, which waits for queued work, so
 * it is a failure during a graph capture. */
void *icl_cuda_scratch(icl_cuda_ctx *ctx, size_t bytes, const char *what);

/* Kernel argument check: false (launch nothing) if any size is zero; records
 * a failure and returns false if any is negative or a required pointer is NULL. */
bool icl_cuda_args(icl_cuda_ctx *ctx, const char *what, std::initializer_list<long long> sizes,
                   std::initializer_list<const void *> required);

/* Blocks for a grid-stride loop over n elements. */
static inline unsigned icl_cuda_grid(size_t n) {
    size_t blocks = (n + ICL_CUDA_BLOCK - 1) / ICL_CUDA_BLOCK;
    return blocks < ICL_CUDA_MAX_GRID ? (unsigned)blocks : ICL_CUDA_MAX_GRID;
}

/* Blocks for one warp per row. */
static inline unsigned icl_cuda_row_grid(long long rows) {
    return (unsigned)((rows + ICL_CUDA_WARPS_PER_BLOCK - 1) / ICL_CUDA_WARPS_PER_BLOCK);
}

/* Butterfly reductions: every lane ends with the same value, combined in an
 * order fixed by the lane numbering (deterministic). The whole warp must be active. */
__device__ __forceinline__ float icl_warp_sum(float v) {
    for (int off = ICL_CUDA_WARP / 2; off > 0; off /= 2)
        v += __shfl_xor_sync(0xffffffffu, v, off);
    return v;
}

__device__ __forceinline__ float icl_warp_max(float v) {
    for (int off = ICL_CUDA_WARP / 2; off > 0; off /= 2)
        v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, off));
    return v;
}

/* out (C) += per-column sums whose per-chunk partials (nchunks, C) are in
 * `partials` (device memory), summed in chunk order (reduce.cu). */
void icl_cuda_finish_column_sums(icl_cuda_ctx *ctx, float *out, const double *partials, int nchunks, int C);
/* out (C) += column sums of x (N,C), deterministic (reduce.cu). */
void icl_cuda_add_column_sums(icl_cuda_ctx *ctx, float *out, const float *x, int N, int C, const char *what);
static inline int icl_cuda_colsum_chunks(int N) { return (N + ICL_CUDA_COLSUM_ROWS - 1) / ICL_CUDA_COLSUM_ROWS; }

/* ---- entry points of the ops table (semantics in lib/backend.h) ---- */
/* embed.cu */
void icl_cuda_embed_forward(icl_backend *be, float *out, const int32_t *tokens, const float *wte, const float *wpe,
                            int B, int T, int C);
void icl_cuda_position_add_forward(icl_backend *be, float *out, const float *wpe, int B, int T, int C);
void icl_cuda_embed_backward(icl_backend *be, float *dwte, float *dwpe, const float *dout, const int32_t *tokens,
                             int B, int T, int C);
void icl_cuda_position_add_backward(icl_backend *be, float *dwpe, const float *dout, int B, int T, int C);
/* matmul.cu */
/* out (N,OC) = inp (N,C) . w (OC,C)^T without bias, one cuBLAS call; false after recording a failure */
bool icl_cuda_matmul_product(icl_cuda_ctx *ctx, float *out, const float *inp, const float *w, int N, int C, int OC,
                             const char *what);
void icl_cuda_matmul_forward(icl_backend *be, float *out, const float *inp, const float *w, const float *bias, int B,
                             int T, int C, int OC);
void icl_cuda_matmul_backward(icl_backend *be, float *dinp, float *dw, float *dbias, const float *dout,
                              const float *inp, const float *w, int N, int C, int OC);
/* layernorm.cu */
void icl_cuda_residual_layernorm_forward(icl_backend *be, float *resid, float *out, float *mean, float *rstd,
                                         const float *a, const float *b, const float *w, const float *bias, int N,
                                         int C);
void icl_cuda_layernorm_forward(icl_backend *be, float *out, float *mean, float *rstd, const float *inp,
                                const float *w, const float *b, int N, int C);
void icl_cuda_layernorm_backward(icl_backend *be, float *dinp, float *dw, float *db, const float *dout,
                                 const float *inp, const float *w, const float *mean, const float *rstd, int N,
                                 int C);
/* attention.cu */
void icl_cuda_attention_scores_forward(icl_backend *be, float *scores, const float *qkv, int B, int T, int C,
                                       int NH);
void icl_cuda_attention_softmax_forward(icl_backend *be, float *probs, const float *scores, int B, int NH, int T);
void icl_cuda_attention_values_forward(icl_backend *be, float *out, const float *probs, const float *qkv, int B,
                                       int T, int C, int NH);
void icl_cuda_attention_values_backward(icl_backend *be, float *dprobs, float *dqkv, const float *dout,
                                        const float *probs, const float *qkv, int B, int T, int C, int NH);
void icl_cuda_attention_softmax_backward(icl_backend *be, float *dscores, const float *dprobs, const float *probs,
                                         int B, int NH, int T);
void icl_cuda_attention_scores_backward(icl_backend *be, float *dqkv, const float *dscores, const float *qkv,
                                        int B, int T, int C, int NH);
/* gelu.cu */
void icl_cuda_matmul_gelu_forward(icl_backend *be, float *pre, float *post, const float *inp, const float *w,
                                  const float *bias, int B, int T, int C, int OC);
void icl_cuda_gelu_forward(icl_backend *be, float *out, const float *inp, size_t N);
void icl_cuda_gelu_backward(icl_backend *be, float *dinp, const float *inp, const float *dout, size_t N);
/* residual.cu */
void icl_cuda_residual_forward(icl_backend *be, float *out, const float *a, const float *b, size_t N);
/* crossentropy.cu */
void icl_cuda_crossentropy_forward(icl_backend *be, float *losses, float *probs, const float *logits,
                                   const int32_t *targets, const float *weights, int N, int V);
void icl_cuda_crossentropy_backward(icl_backend *be, float *dlogits, const float *dlosses, const float *probs,
                                    const int32_t *targets, int N, int V);
/* mse.cu */
void icl_cuda_mse_forward(icl_backend *be, float *losses, const float *out, const float *target,
                          const float *weights, int N, int D);
void icl_cuda_mse_backward(icl_backend *be, float *dout, const float *dlosses, const float *out, const float *target,
                           int N, int D);
/* reduce.cu */
void icl_cuda_sum_squares_accumulate(icl_backend *be, double *acc, const float *x, size_t n);
void icl_cuda_flag_nonfinite_losses(icl_backend *be, icl_step_scalars *s, const float *losses, const float *weights,
                                    int N);
void icl_cuda_clip_scale(icl_backend *be, icl_step_scalars *s);
/* adamw.cu */
void icl_cuda_adamw_update(icl_backend *be, float *params, float *m, float *v, const float *grads,
                           const icl_adamw_span *spans, int n_spans, size_t max_numel, const icl_step_scalars *s,
                           float beta1, float beta2, float eps, float weight_decay);

#endif
