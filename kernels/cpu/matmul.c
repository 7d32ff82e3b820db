/* Dense layer: out = inp . w^T + bias, and its backward, on OpenBLAS sgemm. */
#include <cblas.h>
#include <string.h>
#include "cpu_kernels.h"

/* Output channels one thread owns while summing the bias gradient. */
enum { BIAS_CHANNEL_BLOCK = 64 };

// out (N,OC) = inp (N,C) . w (OC,C)^T + bias (OC, nullable)
void icl_cpu_matmul_forward(float *out, const float *inp, const float *w, const float *bias, int N, int C, int OC) {
    float beta = 0.0f;
    if (bias) {
        /* Start from the bias and let sgemm accumulate onto it (beta = 1):
         * cheaper than a separate pass adding it afterwards. */
#pragma omp parallel for schedule(static)
        for (int n = 0; n < N; n++)
            memcpy(out + (long)n * OC, bias, (size_t)OC * sizeof *out);
        beta = 1.0f;
    }
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, N, OC, C, 1.0f, inp, C, w, C, beta, out, OC);
}

void icl_cpu_matmul_forward_naive(float *out, const float *inp, const float *w, const float *bias, int N, int C,
                                  int OC) {
    for (int n = 0; n < N; n++)
        for (int o = 0; o < OC; o++) {
            double s = bias ? (double)bias[o] : 0.0;
            for (int c = 0; c < C; c++)
                s += (double)inp[(long)n * C + c] * (double)w[(long)o * C + c];
            out[(long)n * OC + o] = (float)s;
        }
}

/* dbias (OC) += column sums of dout (N,OC). Threads split the channels and
 * each sums all rows in order, so the result does not depend on thread count. */
static void bias_grad(float *dbias, const float *dout, int N, int OC) {
    int n_blocks = (OC + BIAS_CHANNEL_BLOCK - 1) / BIAS_CHANNEL_BLOCK;
#pragma omp parallel for schedule(static)
    for (int blk = 0; blk < n_blocks; blk++) {
        int o0 = blk * BIAS_CHANNEL_BLOCK;
        int width = OC - o0 < BIAS_CHANNEL_BLOCK ? OC - o0 : BIAS_CHANNEL_BLOCK;
        double acc[BIAS_CHANNEL_BLOCK] = {0};
        for (int n = 0; n < N; n++) {
            const float *g = dout + (long)n * OC + o0;
#pragma omp simd
            for (int j = 0; j < width; j++)
                acc[j] += g[j];
        }
        for (int j = 0; j < width; j++)
            dbias[o0 + j] = (float)((double)dbias[o0 + j] + acc[j]);
    }
}

// dinp (N,C, nullable) += dout (N,OC) . w (OC,C); dw (OC,C) += dout^T . inp (N,C); dbias (OC, nullable)
void icl_cpu_matmul_backward(float *dinp, float *dw, float *dbias, const float *dout, const float *inp,
                             const float *w, int N, int C, int OC) {
    if (dinp)
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, N, C, OC, 1.0f, dout, OC, w, C, 1.0f, dinp, C);
    cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, OC, C, N, 1.0f, dout, OC, inp, C, 1.0f, dw, C);
    if (dbias)
        bias_grad(dbias, dout, N, OC);
}

void icl_cpu_matmul_backward_naive(float *dinp, float *dw, float *dbias, const float *dout, const float *inp,
                                   const float *w, int N, int C, int OC) {
    if (dinp)
        for (int n = 0; n < N; n++)
            for (int c = 0; c < C; c++) {
                double s = 0.0;
                for (int o = 0; o < OC; o++)
                    s += (double)dout[(long)n * OC + o] * (double)w[(long)o * C + c];
                dinp[(long)n * C + c] = (float)((double)dinp[(long)n * C + c] + s);
            }
    for (int o = 0; o < OC; o++)
        for (int c = 0; c < C; c++) {
            double s = 0.0;
            for (int n = 0; n < N; n++)
                s += (double)dout[(long)n * OC + o] * (double)inp[(long)n * C + c];
            dw[(long)o * C + c] = (float)((double)dw[(long)o * C + c] + s);
        }
    if (dbias)
        for (int o = 0; o < OC; o++) {
            double s = 0.0;
            for (int n = 0; n < N; n++)
                s += dout[(long)n * OC + o];
            dbias[o] = (float)((double)dbias[o] + s);
        }
}
