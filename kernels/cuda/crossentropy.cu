/* Fused row softmax + cross-entropy loss, and its backward. */
#include <math.h>
#include "common.cuh"

/* losses (N), probs (N,V) from logits (N,V), targets (N), weights (N, nullable); one warp per row.
 * A row with weight 0 gets loss 0 and its target is never read (it may be invalid). */
__global__ void crossentropy_forward_kernel(float *losses, float *probs, const float *logits,
                                            const int32_t *targets, const float *weights, int N, int V) {
    int row = blockIdx.x * ICL_CUDA_WARPS_PER_BLOCK + threadIdx.x / ICL_CUDA_WARP;
    int lane = threadIdx.x % ICL_CUDA_WARP;
    if (row >= N)
        return; /* whole warp */
    const float *x = logits + (size_t)row * V;
    float *p = probs + (size_t)row * V;
    float mx = -INFINITY;
    for (int v = lane; v < V; v += ICL_CUDA_WARP)
        mx = fmaxf(mx, x[v]);
    mx = icl_warp_max(mx);
    float sum = 0.0f;
    for (int v = lane; v < V; v += ICL_CUDA_WARP) {
        float e = expf(x[v] - mx);
        p[v] = e;
        sum += e;
    }
    sum = icl_warp_sum(sum);
    float inv = 1.0f / sum;
    for (int v = lane; v < V; v += ICL_CUDA_WARP) /* the entries this lane wrote above */
        p[v] *= inv;
    if (lane == 0)
        /* -log softmax from the logits rather than log(p): exact for tiny p */
        losses[row] = (weights && weights[row] == 0.0f) ? 0.0f : logf(sum) - (x[targets[row]] - mx);
}

// dlogits (N,V) += dlosses[n] * (probs - onehot(targets[n])) where dlosses[n] != 0; one thread per element
__global__ void crossentropy_backward_kernel(float *dlogits, const float *dlosses, const float *probs,
                                             const int32_t *targets, size_t total, int V) {
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < total; i += (size_t)gridDim.x * blockDim.x) {
        size_t n = i / V;
        float dl = dlosses[n];
        if (dl == 0.0f)
            continue; /* masked row: its target may be invalid */
        float d = dlogits[i] + dl * probs[i];
        if ((int)(i % V) == targets[n])
            d -= dl;
        dlogits[i] = d;
    }
}

void icl_cuda_crossentropy_forward(icl_backend *be, float *losses, float *probs, const float *logits,
                                   const int32_t *targets, const float *weights, int N, int V) {
    icl_cuda_ctx *ctx = icl_cuda_ctx_of(be);
    if (!icl_cuda_args(ctx, "crossentropy_forward", {N, V}, {losses, probs, logits, targets}))
        return;
    crossentropy_forward_kernel<<<icl_cuda_row_grid(N), ICL_CUDA_BLOCK, 0, ctx->stream>>>(losses, probs, logits,
                                                                                          targets, weights, N, V);
    icl_cuda_launched(ctx, "crossentropy_forward");
}

void icl_cuda_crossentropy_backward(icl_backend *be, float *dlogits, const float *dlosses, const float *probs,
                                    const int32_t *targets, int N, int V) {
    icl_cuda_ctx *ctx = icl_cuda_ctx_of(be);
    if (!icl_cuda_args(ctx, "crossentropy_backward", {N, V}, {dlogits, dlosses, probs, targets}))
        return;
    size_t total = (size_t)N * V;
    crossentropy_backward_kernel<<<icl_cuda_grid(total), ICL_CUDA_BLOCK, 0, ctx->stream>>>(dlogits, dlosses, probs,
                                                                                           targets, total, V);
    icl_cuda_launched(ctx, "crossentropy_backward");
}
