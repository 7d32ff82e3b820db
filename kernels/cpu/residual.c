/* Residual connection: elementwise sum and its (fan-out) backward. */
#include "cpu_kernels.h"

// out (N) = a (N) + b (N)
void icl_cpu_residual_forward(float *out, const float *a, const float *b, size_t N) {
#pragma omp parallel for simd schedule(static)
    for (size_t i = 0; i < N; i++)
        out[i] = a[i] + b[i];
}

void icl_cpu_residual_forward_naive(float *out, const float *a, const float *b, size_t N) {
    for (size_t i = 0; i < N; i++)
        out[i] = (float)((double)a[i] + (double)b[i]);
}

// da (N) += dout (N), db (N) += dout (N)
void icl_cpu_residual_backward(float *da, float *db, const float *dout, size_t N) {
#pragma omp parallel for simd schedule(static)
    for (size_t i = 0; i < N; i++) {
        da[i] += dout[i];
        db[i] += dout[i];
    }
}

void icl_cpu_residual_backward_naive(float *da, float *db, const float *dout, size_t N) {
    for (size_t i = 0; i < N; i++) {
        da[i] = (float)((double)da[i] + (double)dout[i]);
        db[i] = (float)((double)db[i] + (double)dout[i]);
    }
}
