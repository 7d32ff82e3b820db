/* GELU, tanh approximation: 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3))). */
#include "common.cuh"

constexpr float GELU_K = 0.7978845608028654f; /* sqrt(2/pi) */
constexpr float GELU_A = 0.044715f;

// out (N) = GELU(inp (N))
__global__ void gelu_forward_kernel(float *out, const float *inp, size_t N) {
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < N; i += (size_t)gridDim.x * blockDim.x) {
        float x = inp[i];
        out[i] = 0.5f * x * (1.0f + tanhf(GELU_K * (x + GELU_A * x * x * x)));
    }
}

// dinp (N) += GELU'(inp) * dout (N)
__global__ void gelu_backward_kernel(float *dinp, const float *inp, const float *dout, size_t N) {
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < N; i += (size_t)gridDim.x * blockDim.x) {
        float x = inp[i];
        float th = tanhf(GELU_K * (x + GELU_A * x * x * x));
        float grad = 0.5f * (1.0f + th) + 0.5f * x * (1.0f - th * th) * GELU_K * (1.0f + 3.0f * GELU_A * x * x);
        dinp[i] += grad * dout[i];
    }
}

void icl_cuda_gelu_forward(icl_backend *be, float *out, const float *inp, size_t N) {
    icl_cuda_ctx *ctx = icl_cuda_ctx_of(be);
    if (N == 0 || !icl_cuda_args(ctx, "gelu_forward", {}, {out, inp}))
        return;
    gelu_forward_kernel<<<icl_cuda_grid(N), ICL_CUDA_BLOCK, 0, ctx->stream>>>(out, inp, N);
    icl_cuda_launched(ctx, "gelu_forward");
}

void icl_cuda_gelu_backward(icl_backend *be, float *dinp, const float *inp, const float *dout, size_t N) {
    icl_cuda_ctx *ctx = icl_cuda_ctx_of(be);
    if (N == 0 || !icl_cuda_args(ctx, "gelu_backward", {}, {dinp, inp, dout}))
        return;
    gelu_backward_kernel<<<icl_cuda_grid(N), ICL_CUDA_BLOCK, 0, ctx->stream>>>(dinp, inp, dout, N);
    icl_cuda_launched(ctx, "gelu_backward");
}
