/* AdamW step with bias correction and decoupled weight decay (lib/backend.h). */
#include <math.h>
#include "cpu_kernels.h"

// params, m, v, grads (n); t is the 1-based step
void icl_cpu_adamw_update(float *params, float *m, float *v, const float *grads, size_t n, float lr, float beta1,
                          float beta2, float eps, float weight_decay, float grad_scale, long t) {
    /* bias corrections once per call, in double so large t stays accurate */
    float c1 = (float)(1.0 / (1.0 - pow(beta1, (double)t)));
    float c2 = (float)(1.0 / (1.0 - pow(beta2, (double)t)));
#pragma omp parallel for simd schedule(static)
    for (size_t i = 0; i < n; i++) {
        float g = grads[i] * grad_scale;
        float mi = beta1 * m[i] + (1.0f - beta1) * g;
        float vi = beta2 * v[i] + (1.0f - beta2) * g * g;
        m[i] = mi;
        v[i] = vi;
        params[i] -= lr * (mi * c1 / (sqrtf(vi * c2) + eps) + weight_decay * params[i]);
    }
}

void icl_cpu_adamw_update_naive(float *params, float *m, float *v, const float *grads, size_t n, float lr,
                                float beta1, float beta2, float eps, float weight_decay, float grad_scale, long t) {
    double b1 = beta1, b2 = beta2;
    for (size_t i = 0; i < n; i++) {
        double g = (double)grads[i] * grad_scale;
        double mi = b1 * m[i] + (1.0 - b1) * g;
        double vi = b2 * v[i] + (1.0 - b2) * g * g;
        double mhat = mi / (1.0 - pow(b1, (double)t));
        double vhat = vi / (1.0 - pow(b2, (double)t));
        m[i] = (float)mi;
        v[i] = (float)vi;
        params[i] = (float)(params[i] - (double)lr * (mhat / (sqrt(vhat) + eps) + weight_decay * (double)params[i]));
    }
}
