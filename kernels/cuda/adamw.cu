/* AdamW step with bias correction and decoupled weight decay (lib/backend.h),
 * the same float arithmetic as the CPU kernel. One launch updates every
 * trainable tensor: grid row y takes span y. The learning rate, the bias
 * corrections and the clip factor are read from the step scalars on the
 * device, so the launch can be replayed from a CUDA graph step after step. */
#include <math.h>
#include "common.cuh"

// params, m, v, grads: the whole buffers; spans (n_spans) pick the tensors, s the step's scalars
__global__ void adamw_kernel(float *params, float *m, float *v, const float *grads, const icl_adamw_span *spans,
                             const icl_step_scalars *s, float beta1, float beta2, float eps, float weight_decay) {
    if (s->skip)
        return;
    const icl_adamw_span span = spans[blockIdx.y];
    const float lr = s->lr, c1 = s->c1, c2 = s->c2, scale = s->clip_scale;
    const float wd = span.decay ? weight_decay : 0.0f;
    for (size_t k = blockIdx.x * (size_t)blockDim.x + threadIdx.x; k < (size_t)span.numel;
         k += (size_t)gridDim.x * blockDim.x) {
        size_t i = (size_t)span.offset + k;
        float g = grads[i] * scale;
        float mi = beta1 * m[i] + (1.0f - beta1) * g;
        float vi = beta2 * v[i] + (1.0f - beta2) * g * g;
        m[i] = mi;
        v[i] = vi;
        params[i] -= lr * (mi * c1 / (sqrtf(vi * c2) + eps) + wd * params[i]);
    }
}

/* Blocks along x cover the largest span; smaller spans leave some idle, which
 * for these model sizes costs less than a launch per tensor. */
void icl_cuda_adamw_update(icl_backend *be, float *params, float *m, float *v, const float *grads,
                           const icl_adamw_span *spans, int n_spans, size_t max_numel, const icl_step_scalars *s,
                           float beta1, float beta2, float eps, float weight_decay) {
    icl_cuda_ctx *ctx = icl_cuda_ctx_of(be);
    if (!icl_cuda_args(ctx, "adamw_update", {n_spans, (long long)max_numel}, {params, m, v, grads, spans, s}))
        return;
    if (n_spans > 65535) {
        icl_cuda_record(ctx, "adamw_update", "more than 65535 tensors");
        return;
    }
    dim3 grid(icl_cuda_grid(max_numel), (unsigned)n_spans);
    adamw_kernel<<<grid, ICL_CUDA_BLOCK, 0, ctx->stream>>>(params, m, v, grads, spans, s, beta1, beta2, eps,
                                                         weight_decay);
    icl_cuda_launched(ctx, "adamw_update");
}
