/* Residual connection: elementwise sum. Its backward is no kernel: the model
 * passes the sum's gradient on to both terms as it is (lib/engine/backward.c). */
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
