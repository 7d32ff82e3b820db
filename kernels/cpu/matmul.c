/* Dense layer: out = inp . w^T + bias, and its backward, on OpenBLAS sgemm.
 *
 * OpenBLAS rounds an output element differently depending on the shape of
 * the call it belongs to (edge tiles use other kernels) and on how many
 * threads share the call. So every product here is cut into sgemm calls
 * whose shapes depend neither on the batch size nor on the thread count, and
 * the calls run inside our OpenMP loop, where OpenBLAS's OpenMP build runs
 * each one on a single thread:
 *   forward        one call per prompt (its T rows): a prompt's outputs are
 *                  the same bits at any batch row and for any B;
 *   dinp = dout.w  one call per block of ROW_BLOCK rows;
 *   dw += dout^T.inp  one call per block of CHANNEL_BLOCK output channels,
 *                  summing over all N rows;
 *   dbias          per channel, rows summed in order. */
#include <cblas.h>
#include "cpu_kernels.h"

enum {
    ROW_BLOCK = 64,    /* rows of dinp per sgemm call */
    CHANNEL_BLOCK = 16 /* rows of dw (output channels) per sgemm call */
};

static int min_int(int a, int b) { return a < b ? a : b; }

void icl_cpu_matmul_forward(float *out, const float *inp, const float *w, const float *bias, int B, int T, int C,
                            int OC) {
    // out (B,T,OC), inp (B,T,C), w (OC,C), bias (OC) or NULL
#pragma omp parallel for schedule(static)
    for (int b = 0; b < B; b++) {
        float *o = out + (size_t)b * T * OC;
        const float *x = inp + (size_t)b * T * C;
        /* Start from the bias and let sgemm accumulate onto it (beta = 1). */
        for (int t = 0; t < T; t++)
            for (int j = 0; j < OC; j++)
                o[(size_t)t * OC + j] = bias ? bias[j] : 0.0f;
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, T, OC, C, 1.0f, x, C, w, C, 1.0f, o, OC);
    }
}

void icl_cpu_matmul_forward_naive(float *out, const float *inp, const float *w, const float *bias, int B, int T,
                                  int C, int OC) {
    // out (B,T,OC), inp (B,T,C), w (OC,C), bias (OC) or NULL
    for (size_t i = 0; i < (size_t)B * T; i++)
        for (int o = 0; o < OC; o++) {
            double s = bias ? bias[o] : 0.0;
            for (int c = 0; c < C; c++)
                s += (double)inp[i * C + c] * w[(size_t)o * C + c];
            out[i * OC + o] = (float)s;
        }
}

void icl_cpu_matmul_backward(float *dinp, float *dw, float *dbias, const float *dout, const float *inp,
                             const float *w, int N, int C, int OC) {
    // dinp (N,C) or NULL, dw (OC,C), dbias (OC) or NULL; dout (N,OC), inp (N,C), w (OC,C); all +=
    int row_blocks = (N + ROW_BLOCK - 1) / ROW_BLOCK, channel_blocks = (OC + CHANNEL_BLOCK - 1) / CHANNEL_BLOCK;
    if (dinp) {
#pragma omp parallel for schedule(static)
        for (int rb = 0; rb < row_blocks; rb++) {
            int r0 = rb * ROW_BLOCK, rows = min_int(ROW_BLOCK, N - r0);
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, rows, C, OC, 1.0f, dout + (size_t)r0 * OC, OC, w,
                        C, 1.0f, dinp + (size_t)r0 * C, C);
        }
    }
#pragma omp parallel for schedule(static)
    for (int cb = 0; cb < channel_blocks; cb++) {
        int o0 = cb * CHANNEL_BLOCK, chans = min_int(CHANNEL_BLOCK, OC - o0);
        cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, chans, C, N, 1.0f, dout + o0, OC, inp, C, 1.0f,
                    dw + (size_t)o0 * C, C);
        if (dbias)
            for (int o = o0; o < o0 + chans; o++) {
                float s = 0.0f;
                for (int i = 0; i < N; i++)
                    s += dout[(size_t)i * OC + o];
                dbias[o] += s;
            }
    }
}

void icl_cpu_matmul_backward_naive(float *dinp, float *dw, float *dbias, const float *dout, const float *inp,
                                   const float *w, int N, int C, int OC) {
    // dinp (N,C) or NULL, dw (OC,C), dbias (OC) or NULL; dout (N,OC), inp (N,C), w (OC,C); all +=
    if (dinp)
        for (int i = 0; i < N; i++)
            for (int c = 0; c < C; c++) {
                double s = 0.0;
                for (int o = 0; o < OC; o++)
                    s += (double)dout[(size_t)i * OC + o] * w[(size_t)o * C + c];
                dinp[(size_t)i * C + c] += (float)s;
            }
    for (int o = 0; o < OC; o++) {
        for (int c = 0; c < C; c++) {
            double s = 0.0;
            for (int i = 0; i < N; i++)
                s += (double)dout[(size_t)i * OC + o] * inp[(size_t)i * C + c];
            dw[(size_t)o * C + c] += (float)s;
        }
        if (dbias) {
            double s = 0.0;
            for (int i = 0; i < N; i++)
                s += dout[(size_t)i * OC + o];
            dbias[o] += (float)s;
        }
    }
}
