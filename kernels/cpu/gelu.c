/* GELU, tanh approximation: 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3))). */
#include <math.h>
#include "cpu_kernels.h"
#include "fast_math.h"

#define GELU_K 0.7978845608028654 /* sqrt(2/pi) */
#define GELU_A 0.044715

/* With u = k (x + a x^3), e = e^(-2|u|) and s = sign(u):
 *   1 + tanh(u) = ((1 + s) + e (1 - s)) / (1 + e)   (2/(1+e) or 2e/(1+e))
 *   1 - tanh(u)^2 = 4e / (1 + e)^2
 * Both keep full relative precision in the tails, where 1 + tanh(u) and
 * 1 - tanh(u) computed directly would cancel. */
static inline float one_plus_tanh(float e, float u) {
    float s = copysignf(1.0f, u);
    return ((1.0f + s) + e * (1.0f - s)) / (1.0f + e);
}

enum { GELU_CHUNK = 4096 }; /* elements per thread task: whole cache lines, few tasks */

ICL_WIDE_CLONES void icl_cpu_gelu_range(float *out, const float *inp, size_t n) {
    const float k = (float)GELU_K, a = (float)GELU_A;
#pragma omp simd
    for (size_t i = 0; i < n; i++) {
        float x = inp[i], u = k * (x + a * x * x * x);
        out[i] = 0.5f * x * one_plus_tanh(icl_fast_exp_minus_abs(2.0f * u), u);
    }
}

ICL_WIDE_CLONES static void gelu_backward_range(float *dinp, const float *inp, const float *dout, size_t n) {
    const float k = (float)GELU_K, a = (float)GELU_A;
#pragma omp simd
    for (size_t i = 0; i < n; i++) {
        float x = inp[i], u = k * (x + a * x * x * x);
        float e = icl_fast_exp_minus_abs(2.0f * u);
        float sech2 = 4.0f * e / ((1.0f + e) * (1.0f + e));
        float grad = 0.5f * one_plus_tanh(e, u) + 0.5f * x * sech2 * k * (1.0f + 3.0f * a * x * x);
        dinp[i] += grad * dout[i];
    }
}

static size_t chunk_len(size_t N, long c) {
    size_t lo = (size_t)c * GELU_CHUNK;
    return N - lo < GELU_CHUNK ? N - lo : GELU_CHUNK;
}

// out (N) = GELU(inp (N))
void icl_cpu_gelu_forward(float *out, const float *inp, size_t N) {
    long chunks = (long)((N + GELU_CHUNK - 1) / GELU_CHUNK);
#pragma omp parallel for schedule(static)
    for (long c = 0; c < chunks; c++)
        icl_cpu_gelu_range(out + (size_t)c * GELU_CHUNK, inp + (size_t)c * GELU_CHUNK, chunk_len(N, c));
}

void icl_cpu_gelu_forward_naive(float *out, const float *inp, size_t N) {
    for (size_t i = 0; i < N; i++) {
        double x = inp[i];
        out[i] = (float)(0.5 * x * (1.0 + tanh(GELU_K * (x + GELU_A * x * x * x))));
    }
}

// dinp (N) += GELU'(inp) * dout (N)
void icl_cpu_gelu_backward(float *dinp, const float *inp, const float *dout, size_t N) {
    long chunks = (long)((N + GELU_CHUNK - 1) / GELU_CHUNK);
#pragma omp parallel for schedule(static)
    for (long c = 0; c < chunks; c++) {
        size_t lo = (size_t)c * GELU_CHUNK;
        gelu_backward_range(dinp + lo, inp + lo, dout + lo, chunk_len(N, c));
    }
}

void icl_cpu_gelu_backward_naive(float *dinp, const float *inp, const float *dout, size_t N) {
    for (size_t i = 0; i < N; i++) {
        double x = inp[i];
        double th = tanh(GELU_K * (x + GELU_A * x * x * x));
        double grad = 0.5 * (1.0 + th) + 0.5 * x * (1.0 - th * th) * GELU_K * (1.0 + 3.0 * GELU_A * x * x);
        dinp[i] = (float)((double)dinp[i] + grad * (double)dout[i]);
    }
}
