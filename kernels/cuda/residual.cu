/* Residual connection: elementwise sum. Its backward is no kernel: the model
 * passes the sum's gradient on to both terms as it is (lib/engine/backward.c). */
#include "common.cuh"

// out (N) = a (N) + b (N)
__global__ void residual_forward_kernel(float *out, const float *a, const float *b, size_t N) {
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < N; i += (size_t)gridDim.x * blockDim.x)
        out[i] = a[i] + b[i];
}

void icl_cuda_residual_forward(icl_backend *be, float *out, const float *a, const float *b, size_t N) {
    icl_cuda_ctx *ctx = icl_cuda_ctx_of(be);
    if (N == 0 || !icl_cuda_args(ctx, "residual_forward", {}, {out, a, b}))
        return;
    residual_forward_kernel<<<icl_cuda_grid(N), ICL_CUDA_BLOCK, 0, ctx->stream>>>(out, a, b, N);
    icl_cuda_launched(ctx, "residual_forward");
}
