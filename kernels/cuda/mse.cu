/* Per-row mean squared error and its backward. */
#include "common.cuh"

/* losses (N) = mean over D of (out - target)^2 where weights[n] != 0, else 0;
 * out, target (N,D), weights (N, nullable); one warp per row */
__global__ void mse_forward_kernel(float *losses, const float *out, const float *target, const float *weights, int N,
                                   int D) {
    int row = blockIdx.x * ICL_CUDA_WARPS_PER_BLOCK + threadIdx.x / ICL_CUDA_WARP;
    int lane = threadIdx.x % ICL_CUDA_WARP;
    if (row >= N)
        return; /* whole warp */
    if (weights && weights[row] == 0.0f) {
        if (lane == 0)
            losses[row] = 0.0f;
        return; /* uniform across the warp */
    }
    const float *o = out + (size_t)row * D;
    const float *y = target + (size_t)row * D;
    float sum = 0.0f;
    for (int d = lane; d < D; d += ICL_CUDA_WARP) {
        float e = o[d] - y[d];
        sum += e * e;
    }
    sum = icl_warp_sum(sum);
    if (lane == 0)
        losses[row] = sum / (float)D;
}

// dout (N,D) += dlosses[n] * 2 (out - target) / D where dlosses[n] != 0
__global__ void mse_backward_kernel(float *dout, const float *dlosses, const float *out, const float *target,
                                    size_t total, int D) {
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < total; i += (size_t)gridDim.x * blockDim.x) {
        float dl = dlosses[i / D];
        if (dl == 0.0f)
            continue;
        float g = 2.0f * dl / (float)D;
        dout[i] += g * (out[i] - target[i]);
    }
}

void icl_cuda_mse_forward(icl_backend *be, float *losses, const float *out, const float *target,
                          const float *weights, int N, int D) {
    icl_cuda_ctx *ctx = icl_cuda_ctx_of(be);
    if (!icl_cuda_args(ctx, "mse_forward", {N, D}, {losses, out, target}))
        return;
    mse_forward_kernel<<<icl_cuda_row_grid(N), ICL_CUDA_BLOCK, 0, ctx->stream>>>(losses, out, target, weights, N, D);
    icl_cuda_launched(ctx, "mse_forward");
}

void icl_cuda_mse_backward(icl_backend *be, float *dout, const float *dlosses, const float *out, const float *target,
                           int N, int D) {
    icl_cuda_ctx *ctx = icl_cuda_ctx_of(be);
    if (!icl_cuda_args(ctx, "mse_backward", {N, D}, {dout, dlosses, out, target}))
        return;
    size_t total = (size_t)N * D;
    mse_backward_kernel<<<icl_cuda_grid(total), ICL_CUDA_BLOCK, 0, ctx->stream>>>(dout, dlosses, out, target, total,
                                                                                  D);
    icl_cuda_launched(ctx, "mse_backward");
}
