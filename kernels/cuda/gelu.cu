/* GELU, tanh approximation: 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3))). */
#include "common.cuh"

constexpr float GELU_K = 0.7978845608028654f; /* sqrt(2/pi) */
constexpr float GELU_A = 0.044715f;

/* Shared by the plain and the fused kernel, so both give the same bits. */
__device__ __forceinline__ float gelu_value(float x) {
    return 0.5f * x * (1.0f + tanhf(GELU_K * (x + GELU_A * x * x * x)));
}

// out (N) = GELU(inp (N))
__global__ void gelu_forward_kernel(float *out, const float *inp, size_t N) {
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < N; i += (size_t)gridDim.x * blockDim.x)
        out[i] = gelu_value(inp[i]);
}

// pre (total) += bias (OC, nullable) broadcast over rows, post (total) = GELU(pre)
__global__ void bias_gelu_forward_kernel(float *pre, float *post, const float *bias, size_t total, int OC) {
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < total; i += (size_t)gridDim.x * blockDim.x) {
        float x = pre[i];
        if (bias) {
            x += bias[i % OC];
            pre[i] = x;
        }
        post[i] = gelu_value(x);
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

/* The product by cuBLAS, then one kernel for the bias and the GELU (instead of two). */
void icl_cuda_matmul_gelu_forward(icl_backend *be, float *pre, float *post, const float *inp, const float *w,
                                  const float *bias, int B, int T, int C, int OC) {
    icl_cuda_ctx *ctx = icl_cuda_ctx_of(be);
    if (!icl_cuda_args(ctx, "matmul_gelu_forward", {B, T, C, OC}, {pre, post, inp, w}))
        return;
    if (!icl_cuda_matmul_product(ctx, pre, inp, w, B * T, C, OC, "matmul_gelu_forward (cublasSgemm)"))
        return;
    size_t total = (size_t)B * T * OC;
    bias_gelu_forward_kernel<<<icl_cuda_grid(total), ICL_CUDA_BLOCK, 0, ctx->stream>>>(pre, post, bias, total, OC);
    icl_cuda_launched(ctx, "matmul_gelu_forward (bias, GELU)");
}
