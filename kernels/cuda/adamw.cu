/* AdamW step with bias correction and decoupled weight decay (lib/backend.h),
 * the same float arithmetic as the CPU kernel. */
#include <math.h>
#include "common.cuh"

/* params, m, v, grads (n); c1, c2 = 1 / (1 - beta^t), the bias corrections */
__global__ void adamw_kernel(float *params, float *m, float *v, const float *grads, size_t n, float lr, float beta1,
                             float beta2, float eps, float weight_decay, float grad_scale, float c1, float c2) {
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < n; i += (size_t)gridDim.x * blockDim.x) {
        float g = grads[i] * grad_scale;
        float mi = beta1 * m[i] + (1.0f - beta1) * g;
        float vi = beta2 * v[i] + (1.0f - beta2) * g * g;
        m[i] = mi;
        v[i] = vi;
        params[i] -= lr * (mi * c1 / (sqrtf(vi * c2) + eps) + weight_decay * params[i]);
    }
}

void icl_cuda_adamw_update(icl_backend *be, float *params, float *m, float *v, const float *grads, size_t n,
                           float lr, float beta1, float beta2, float eps, float weight_decay, float grad_scale,
                           long t) {
    icl_cuda_ctx *ctx = icl_cuda_ctx_of(be);
    if (n == 0 || !icl_cuda_args(ctx, "adamw_update", {}, {params, m, v, grads}))
        return;
    if (t < 1) {
        icl_cuda_record(ctx, "adamw_update", "step t must be >= 1 (bias correction)");
        return;
    }
    /* bias corrections once per call on the host, in double, exactly as the CPU kernel */
    float c1 = (float)(1.0 / (1.0 - pow(beta1, (double)t)));
    float c2 = (float)(1.0 / (1.0 - pow(beta2, (double)t)));
    adamw_kernel<<<icl_cuda_grid(n), ICL_CUDA_BLOCK, 0, ctx->stream>>>(params, m, v, grads, n, lr, beta1, beta2, eps,
                                                                       weight_decay, grad_scale, c1, c2);
    icl_cuda_launched(ctx, "adamw_update");
}
