/* Layer normalisation over the last dimension (eps 1e-5, biased variance). */
#include <math.h>
#include "cpu_kernels.h"
#include "fast_math.h"
#include "lanes.h"

#define LN_EPS 1e-5

/* Channels one thread owns while summing the weight and bias gradients, and
 * rows per task of the row-wise loops (each task runs the widest clone of its
 * row function: ICL_WIDE_CLONES, the same bits in every version). */
enum { LN_CHANNEL_BLOCK = 64, LN_ROWS = 64 };

static int min_int(int a, int b) { return a < b ? a : b; }

static inline float row_sq_dev(const float *x, float m, int C) {
    float a[ICL_LANES] = {0};
    int c = 0;
    for (; c + ICL_LANES <= C; c += ICL_LANES)
        for (int j = 0; j < ICL_LANES; j++) {
            float d = x[c + j] - m;
            a[j] += d * d;
        }
    float s = icl_lanes_combine(a);
    for (; c < C; c++)
        s += (x[c] - m) * (x[c] - m);
    return s;
}

/* rows [n0, n1) of the forward */
ICL_WIDE_CLONES static void forward_rows(float *out, float *mean, float *rstd, const float *inp, const float *w,
                                         const float *b, int n0, int n1, int C) {
    for (int n = n0; n < n1; n++) {
        const float *x = inp + (long)n * C;
        float *o = out + (long)n * C;
        float m = icl_lanes_sum(x, C) / (float)C;
        float var = row_sq_dev(x, m, C) / (float)C;
        float s = 1.0f / sqrtf(var + (float)LN_EPS);
#pragma omp simd
        for (int c = 0; c < C; c++)
            o[c] = (x[c] - m) * s * w[c] + b[c];
        mean[n] = m;
        rstd[n] = s;
    }
}

// out (N,C), mean (N), rstd (N), inp (N,C), w (C), b (C)
void icl_cpu_layernorm_forward(float *out, float *mean, float *rstd, const float *inp, const float *w,
                               const float *b, int N, int C) {
    int tasks = (N + LN_ROWS - 1) / LN_ROWS;
#pragma omp parallel for schedule(static)
    for (int t = 0; t < tasks; t++)
        forward_rows(out, mean, rstd, inp, w, b, t * LN_ROWS, min_int(N, (t + 1) * LN_ROWS), C);
}

void icl_cpu_layernorm_forward_naive(float *out, float *mean, float *rstd, const float *inp, const float *w,
                                     const float *b, int N, int C) {
    for (int n = 0; n < N; n++) {
        const float *x = inp + (long)n * C;
        double m = 0.0, var = 0.0;
        for (int c = 0; c < C; c++)
            m += x[c];
        m /= C;
        for (int c = 0; c < C; c++)
            var += ((double)x[c] - m) * ((double)x[c] - m);
        var /= C;
        double s = 1.0 / sqrt(var + LN_EPS);
        for (int c = 0; c < C; c++)
            out[(long)n * C + c] = (float)(((double)x[c] - m) * s * (double)w[c] + (double)b[c]);
        mean[n] = (float)m;
        rstd[n] = (float)s;
    }
}

/* dinp (N,C) += d/dx of the normalisation, row by row, rows [n0, n1):
 * dinp = rstd * (g - mean(g) - xhat * mean(g * xhat)) with g = dout * w. */
ICL_WIDE_CLONES static void input_grad_rows(float *dinp, const float *dout, const float *inp, const float *w,
                                            const float *mean, const float *rstd, int n0, int n1, int C) {
    for (int n = n0; n < n1; n++) {
        const float *x = inp + (long)n * C;
        const float *g = dout + (long)n * C;
        float *d = dinp + (long)n * C;
        float m = mean[n], s = rstd[n];
        float a[ICL_LANES] = {0}, ax[ICL_LANES] = {0};
        int c = 0;
        for (; c + ICL_LANES <= C; c += ICL_LANES)
            for (int j = 0; j < ICL_LANES; j++) {
                float gw = g[c + j] * w[c + j];
                a[j] += gw;
                ax[j] += gw * (x[c + j] - m) * s;
            }
        float sum_g = icl_lanes_combine(a), sum_gx = icl_lanes_combine(ax);
        for (; c < C; c++) {
            float gw = g[c] * w[c];
            sum_g += gw;
            sum_gx += gw * (x[c] - m) * s;
        }
        float mean_g = sum_g / (float)C, mean_gx = sum_gx / (float)C;
#pragma omp simd
        for (int k = 0; k < C; k++)
            d[k] += s * (g[k] * w[k] - mean_g - (x[k] - m) * s * mean_gx);
    }
}

static void input_grad(float *dinp, const float *dout, const float *inp, const float *w, const float *mean,
                       const float *rstd, int N, int C) {
    int tasks = (N + LN_ROWS - 1) / LN_ROWS;
#pragma omp parallel for schedule(static)
    for (int t = 0; t < tasks; t++)
        input_grad_rows(dinp, dout, inp, w, mean, rstd, t * LN_ROWS, min_int(N, (t + 1) * LN_ROWS), C);
}

/* dw (C) += sum_n dout * xhat, db (C) += sum_n dout for the channels
 * [c0, c0 + width), all rows in order. */
ICL_WIDE_CLONES static void param_grad_block(float *dw, float *db, const float *dout, const float *inp,
                                             const float *mean, const float *rstd, int N, int C, int c0, int width) {
    double acc_w[LN_CHANNEL_BLOCK] = {0}, acc_b[LN_CHANNEL_BLOCK] = {0};
    for (int n = 0; n < N; n++) {
        const float *x = inp + (long)n * C + c0;
        const float *g = dout + (long)n * C + c0;
        float m = mean[n], s = rstd[n];
#pragma omp simd
        for (int j = 0; j < width; j++) {
            acc_w[j] += g[j] * ((x[j] - m) * s);
            acc_b[j] += g[j];
        }
    }
    for (int j = 0; j < width; j++) {
        dw[c0 + j] = (float)((double)dw[c0 + j] + acc_w[j]);
        db[c0 + j] = (float)((double)db[c0 + j] + acc_b[j]);
    }
}

/* Threads split the channels and each sums all rows in order (thread-count invariant). */
static void param_grad(float *dw, float *db, const float *dout, const float *inp, const float *mean,
                       const float *rstd, int N, int C) {
    int n_blocks = (C + LN_CHANNEL_BLOCK - 1) / LN_CHANNEL_BLOCK;
#pragma omp parallel for schedule(static)
    for (int blk = 0; blk < n_blocks; blk++)
        param_grad_block(dw, db, dout, inp, mean, rstd, N, C, blk * LN_CHANNEL_BLOCK,
                         min_int(LN_CHANNEL_BLOCK, C - blk * LN_CHANNEL_BLOCK));
}

// dinp (N,C), dw (C), db (C) from dout (N,C); inp (N,C), w (C), mean and rstd (N) from the forward
void icl_cpu_layernorm_backward(float *dinp, float *dw, float *db, const float *dout, const float *inp,
                                const float *w, const float *mean, const float *rstd, int N, int C) {
    input_grad(dinp, dout, inp, w, mean, rstd, N, C);
    param_grad(dw, db, dout, inp, mean, rstd, N, C);
}

void icl_cpu_layernorm_backward_naive(float *dinp, float *dw, float *db, const float *dout, const float *inp,
                                      const float *w, const float *mean, const float *rstd, int N, int C) {
    for (int n = 0; n < N; n++) {
        const float *x = inp + (long)n * C;
        const float *g = dout + (long)n * C;
        double m = mean[n], s = rstd[n], sum_g = 0.0, sum_gx = 0.0;
        for (int c = 0; c < C; c++) {
            double gw = (double)g[c] * (double)w[c];
            sum_g += gw;
            sum_gx += gw * ((double)x[c] - m) * s;
        }
        for (int c = 0; c < C; c++) {
            double xhat = ((double)x[c] - m) * s;
            double d = s * ((double)g[c] * (double)w[c] - sum_g / C - xhat * sum_gx / C);
            dinp[(long)n * C + c] = (float)((double)dinp[(long)n * C + c] + d);
        }
    }
    for (int c = 0; c < C; c++) {
        double sw = 0.0, sb = 0.0;
        for (int n = 0; n < N; n++) {
            double g = dout[(long)n * C + c];
            sw += g * ((double)inp[(long)n * C + c] - (double)mean[n]) * (double)rstd[n];
            sb += g;
        }
        dw[c] = (float)((double)dw[c] + sw);
        db[c] = (float)((double)db[c] + sb);
    }
}
