/* Per-row mean squared error and its backward. */
#include "cpu_kernels.h"

// losses (N) = mean over D of (out - target)^2 where weights[n] != 0, else 0; out, target (N,D)
void icl_cpu_mse_forward(float *losses, const float *out, const float *target, const float *weights, int N, int D) {
#pragma omp parallel for schedule(static)
    for (int n = 0; n < N; n++) {
        if (weights && weights[n] == 0.0f) {
            losses[n] = 0.0f;
            continue;
        }
        const float *o = out + (long)n * D, *y = target + (long)n * D;
        float sum = 0.0f;
        for (int d = 0; d < D; d++)
            sum += (o[d] - y[d]) * (o[d] - y[d]);
        losses[n] = sum / (float)D;
    }
}

void icl_cpu_mse_forward_naive(float *losses, const float *out, const float *target, const float *weights, int N,
                               int D) {
    for (int n = 0; n < N; n++) {
        double sum = 0.0;
        if (!weights || weights[n] != 0.0f)
            for (int d = 0; d < D; d++) {
                double e = (double)out[(long)n * D + d] - (double)target[(long)n * D + d];
                sum += e * e;
            }
        losses[n] = (float)(sum / D);
    }
}

// dout (N,D) += dlosses[n] * 2 (out - target) / D where dlosses[n] != 0
void icl_cpu_mse_backward(float *dout, const float *dlosses, const float *out, const float *target, int N, int D) {
#pragma omp parallel for schedule(static)
    for (int n = 0; n < N; n++) {
        if (dlosses[n] == 0.0f)
            continue;
        float g = 2.0f * dlosses[n] / (float)D;
        float *dd = dout + (long)n * D;
        const float *o = out + (long)n * D, *y = target + (long)n * D;
#pragma omp simd
        for (int d = 0; d < D; d++)
            dd[d] += g * (o[d] - y[d]);
    }
}

void icl_cpu_mse_backward_naive(float *dout, const float *dlosses, const float *out, const float *target, int N,
                                int D) {
    for (int n = 0; n < N; n++) {
        if (dlosses[n] == 0.0f)
            continue;
        for (int d = 0; d < D; d++) {
            long i = (long)n * D + d;
            double g = 2.0 * (double)dlosses[n] * ((double)out[i] - (double)target[i]) / D;
            dout[i] = (float)((double)dout[i] + g);
        }
    }
}
