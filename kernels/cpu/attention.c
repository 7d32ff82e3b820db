/* Causal multi-head attention in three steps (scores, softmax, weighted
 * values) and their backward steps.
 *
 * qkv (B,T,3C): q, k, v at channel offsets 0, C, 2C; head h at h*HS (HS = C/NH).
 * scores, probs (B,NH,T,T): row t holds s <= t, zeros above the diagonal.
 * Every fast kernel computes each output row or vector in one thread in a
 * fixed order, so results do not depend on thread count or batch position. */
#include <math.h>
#include <string.h>
#include "cpu_kernels.h"
#include "fast_math.h"

/* Dot products use LANES independent partial sums combined in a fixed order
 * (vectorisable without reassociating, independent of alignment). */
enum { LANES = 8 };

static float combine(const float acc[LANES]) {
    return ((acc[0] + acc[1]) + (acc[2] + acc[3])) + ((acc[4] + acc[5]) + (acc[6] + acc[7]));
}

static float dot(const float *a, const float *b, int n) {
    float acc[LANES] = {0};
    int i = 0;
    for (; i + LANES <= n; i += LANES)
        for (int j = 0; j < LANES; j++)
            acc[j] += a[i + j] * b[i + j];
    float s = combine(acc);
    for (; i < n; i++)
        s += a[i] * b[i];
    return s;
}

static float sum(const float *a, int n) {
    float acc[LANES] = {0};
    int i = 0;
    for (; i + LANES <= n; i += LANES)
        for (int j = 0; j < LANES; j++)
            acc[j] += a[i + j];
    float s = combine(acc);
    for (; i < n; i++)
        s += a[i];
    return s;
}

// y (n) += a * x (n)
static void axpy(float *y, float a, const float *x, int n) {
#pragma omp simd
    for (int i = 0; i < n; i++)
        y[i] += a * x[i];
}

/* Start of q (part 0), k (1) or v (2) of head h at (b,t). */
static const float *qkv_at(const float *qkv, int part, int b, int t, int h, int T, int C, int HS) {
    return qkv + ((long)b * T + t) * 3 * C + (long)part * C + (long)h * HS;
}

static float *dqkv_at(float *dqkv, int part, int b, int t, int h, int T, int C, int HS) {
    return dqkv + ((long)b * T + t) * 3 * C + (long)part * C + (long)h * HS;
}

// scores (B,NH,T,T) from qkv (B,T,3C)
void icl_cpu_attention_scores_forward(float *scores, const float *qkv, int B, int T, int C, int NH) {
    int HS = C / NH;
    float scale = 1.0f / sqrtf((float)HS);
    long rows = (long)B * NH * T;
#pragma omp parallel for schedule(static)
    for (long r = 0; r < rows; r++) {
        int t = (int)(r % T), h = (int)(r / T % NH), b = (int)(r / T / NH);
        const float *q = qkv_at(qkv, 0, b, t, h, T, C, HS);
        float *row = scores + r * T;
        for (int s = 0; s <= t; s++)
            row[s] = dot(q, qkv_at(qkv, 1, b, s, h, T, C, HS), HS) * scale;
        memset(row + t + 1, 0, (size_t)(T - t - 1) * sizeof *row);
    }
}

void icl_cpu_attention_scores_forward_naive(float *scores, const float *qkv, int B, int T, int C, int NH) {
    int HS = C / NH;
    for (int b = 0; b < B; b++)
        for (int h = 0; h < NH; h++)
            for (int t = 0; t < T; t++)
                for (int s = 0; s < T; s++) {
                    double acc = 0.0;
                    if (s <= t) {
                        const float *q = qkv_at(qkv, 0, b, t, h, T, C, HS);
                        const float *k = qkv_at(qkv, 1, b, s, h, T, C, HS);
                        for (int i = 0; i < HS; i++)
                            acc += (double)q[i] * (double)k[i];
                        acc /= sqrt((double)HS);
                    }
                    scores[(((long)b * NH + h) * T + t) * T + s] = (float)acc;
                }
}

// probs (B,NH,T,T) = causal row softmax of scores (B,NH,T,T)
void icl_cpu_attention_softmax_forward(float *probs, const float *scores, int B, int NH, int T) {
    long rows = (long)B * NH * T;
#pragma omp parallel for schedule(static)
    for (long r = 0; r < rows; r++) {
        int t = (int)(r % T);
        const float *x = scores + r * T;
        float *p = probs + r * T;
        float mx = x[0];
        for (int s = 1; s <= t; s++)
            mx = x[s] > mx ? x[s] : mx;
#pragma omp simd
        for (int s = 0; s <= t; s++)
            p[s] = icl_fast_exp_minus_abs(x[s] - mx); /* x - mx <= 0 */
        float inv = 1.0f / sum(p, t + 1);
#pragma omp simd
        for (int s = 0; s <= t; s++)
            p[s] *= inv;
        memset(p + t + 1, 0, (size_t)(T - t - 1) * sizeof *p);
    }
}

void icl_cpu_attention_softmax_forward_naive(float *probs, const float *scores, int B, int NH, int T) {
    long rows = (long)B * NH * T;
    for (long r = 0; r < rows; r++) {
        int t = (int)(r % T);
        const float *x = scores + r * T;
        double mx = x[0], sum = 0.0;
        for (int s = 1; s <= t; s++)
            mx = x[s] > mx ? x[s] : mx;
        for (int s = 0; s <= t; s++)
            sum += exp((double)x[s] - mx);
        for (int s = 0; s < T; s++)
            probs[r * T + s] = s <= t ? (float)(exp((double)x[s] - mx) / sum) : 0.0f;
    }
}

// out (B,T,C) from probs (B,NH,T,T) and the v part of qkv (B,T,3C)
void icl_cpu_attention_values_forward(float *out, const float *probs, const float *qkv, int B, int T, int C,
                                      int NH) {
    int HS = C / NH;
    long rows = (long)B * NH * T;
#pragma omp parallel for schedule(static)
    for (long r = 0; r < rows; r++) {
        int t = (int)(r % T), h = (int)(r / T % NH), b = (int)(r / T / NH);
        const float *p = probs + r * T;
        float *o = out + ((long)b * T + t) * C + (long)h * HS;
        memset(o, 0, (size_t)HS * sizeof *o);
        for (int s = 0; s <= t; s++)
            axpy(o, p[s], qkv_at(qkv, 2, b, s, h, T, C, HS), HS);
    }
}

void icl_cpu_attention_values_forward_naive(float *out, const float *probs, const float *qkv, int B, int T, int C,
                                            int NH) {
    int HS = C / NH;
    for (int b = 0; b < B; b++)
        for (int t = 0; t < T; t++)
            for (int h = 0; h < NH; h++)
                for (int i = 0; i < HS; i++) {
                    double acc = 0.0;
                    for (int s = 0; s <= t; s++)
                        acc += (double)probs[(((long)b * NH + h) * T + t) * T + s] *
                               (double)qkv_at(qkv, 2, b, s, h, T, C, HS)[i];
                    out[((long)b * T + t) * C + (long)h * HS + i] = (float)acc;
                }
}

// dprobs (B,NH,T,T) and the v part of dqkv (B,T,3C) from dout (B,T,C)
void icl_cpu_attention_values_backward(float *dprobs, float *dqkv, const float *dout, const float *probs,
                                       const float *qkv, int B, int T, int C, int NH) {
    int HS = C / NH;
    long rows = (long)B * NH * T;
#pragma omp parallel
    {
        /* dprobs[t,s] += dout_t . v_s, one row t per iteration */
#pragma omp for schedule(static) nowait
        for (long r = 0; r < rows; r++) {
            int t = (int)(r % T), h = (int)(r / T % NH), b = (int)(r / T / NH);
            const float *g = dout + ((long)b * T + t) * C + (long)h * HS;
            float *dp = dprobs + r * T;
            for (int s = 0; s <= t; s++)
                dp[s] += dot(g, qkv_at(qkv, 2, b, s, h, T, C, HS), HS);
        }
        /* dv_s += sum over t >= s of probs[t,s] dout_t, one position s per iteration */
#pragma omp for schedule(static)
        for (long r = 0; r < rows; r++) {
            int s = (int)(r % T), h = (int)(r / T % NH), b = (int)(r / T / NH);
            const float *p = probs + (r - s) * T + s;
            float *dv = dqkv_at(dqkv, 2, b, s, h, T, C, HS);
            for (int t = s; t < T; t++)
                axpy(dv, p[(long)t * T], dout + ((long)b * T + t) * C + (long)h * HS, HS);
        }
    }
}

void icl_cpu_attention_values_backward_naive(float *dprobs, float *dqkv, const float *dout, const float *probs,
                                             const float *qkv, int B, int T, int C, int NH) {
    int HS = C / NH;
    for (int b = 0; b < B; b++)
        for (int h = 0; h < NH; h++) {
            const float *p = probs + ((long)b * NH + h) * T * T;
            float *dp = dprobs + ((long)b * NH + h) * T * T;
            for (int t = 0; t < T; t++)
                for (int s = 0; s <= t; s++) {
                    const float *g = dout + ((long)b * T + t) * C + (long)h * HS;
                    const float *v = qkv_at(qkv, 2, b, s, h, T, C, HS);
                    double acc = 0.0;
                    for (int i = 0; i < HS; i++)
                        acc += (double)g[i] * (double)v[i];
                    dp[(long)t * T + s] = (float)((double)dp[(long)t * T + s] + acc);
                }
            for (int s = 0; s < T; s++) {
                float *dv = dqkv_at(dqkv, 2, b, s, h, T, C, HS);
                for (int i = 0; i < HS; i++) {
                    double acc = 0.0;
                    for (int t = s; t < T; t++)
                        acc += (double)p[(long)t * T + s] * (double)dout[((long)b * T + t) * C + (long)h * HS + i];
                    dv[i] = (float)((double)dv[i] + acc);
                }
            }
        }
}

// dscores (B,NH,T,T) += causal softmax Jacobian^T . dprobs
void icl_cpu_attention_softmax_backward(float *dscores, const float *dprobs, const float *probs, int B, int NH,
                                        int T) {
    long rows = (long)B * NH * T;
#pragma omp parallel for schedule(static)
    for (long r = 0; r < rows; r++) {
        int t = (int)(r % T);
        const float *p = probs + r * T, *dp = dprobs + r * T;
        float *ds = dscores + r * T;
        float pd = dot(p, dp, t + 1);
        for (int s = 0; s <= t; s++)
            ds[s] += p[s] * (dp[s] - pd);
    }
}

void icl_cpu_attention_softmax_backward_naive(float *dscores, const float *dprobs, const float *probs, int B,
                                              int NH, int T) {
    long rows = (long)B * NH * T;
    for (long r = 0; r < rows; r++) {
        int t = (int)(r % T);
        const float *p = probs + r * T, *dp = dprobs + r * T;
        double pd = 0.0;
        for (int s = 0; s <= t; s++)
            pd += (double)p[s] * (double)dp[s];
        for (int s = 0; s <= t; s++)
            dscores[r * T + s] = (float)((double)dscores[r * T + s] + (double)p[s] * ((double)dp[s] - pd));
    }
}

// q and k parts of dqkv (B,T,3C) from dscores (B,NH,T,T)
void icl_cpu_attention_scores_backward(float *dqkv, const float *dscores, const float *qkv, int B, int T, int C,
                                       int NH) {
    int HS = C / NH;
    float scale = 1.0f / sqrtf((float)HS);
    long rows = (long)B * NH * T;
#pragma omp parallel
    {
        /* dq_t += scale * sum over s <= t of dscores[t,s] k_s */
#pragma omp for schedule(static) nowait
        for (long r = 0; r < rows; r++) {
            int t = (int)(r % T), h = (int)(r / T % NH), b = (int)(r / T / NH);
            const float *ds = dscores + r * T;
            float *dq = dqkv_at(dqkv, 0, b, t, h, T, C, HS);
            for (int s = 0; s <= t; s++)
                axpy(dq, ds[s] * scale, qkv_at(qkv, 1, b, s, h, T, C, HS), HS);
        }
        /* dk_s += scale * sum over t >= s of dscores[t,s] q_t */
#pragma omp for schedule(static)
        for (long r = 0; r < rows; r++) {
            int s = (int)(r % T), h = (int)(r / T % NH), b = (int)(r / T / NH);
            const float *ds = dscores + (r - s) * T + s;
            float *dk = dqkv_at(dqkv, 1, b, s, h, T, C, HS);
            for (int t = s; t < T; t++)
                axpy(dk, ds[(long)t * T] * scale, qkv_at(qkv, 0, b, t, h, T, C, HS), HS);
        }
    }
}

void icl_cpu_attention_scores_backward_naive(float *dqkv, const float *dscores, const float *qkv, int B, int T,
                                             int C, int NH) {
    int HS = C / NH;
    double scale = 1.0 / sqrt((double)HS);
    for (int b = 0; b < B; b++)
        for (int h = 0; h < NH; h++) {
            const float *ds = dscores + ((long)b * NH + h) * T * T;
            for (int t = 0; t < T; t++) {
                float *dq = dqkv_at(dqkv, 0, b, t, h, T, C, HS);
                float *dk = dqkv_at(dqkv, 1, b, t, h, T, C, HS);
                for (int i = 0; i < HS; i++) {
                    double acc_q = 0.0, acc_k = 0.0;
                    for (int s = 0; s <= t; s++)
                        acc_q += (double)ds[(long)t * T + s] * (double)qkv_at(qkv, 1, b, s, h, T, C, HS)[i];
                    for (int u = t; u < T; u++)
                        acc_k += (double)ds[(long)u * T + t] * (double)qkv_at(qkv, 0, b, u, h, T, C, HS)[i];
                    dq[i] = (float)((double)dq[i] + acc_q * scale);
                    dk[i] = (float)((double)dk[i] + acc_k * scale);
                }
            }
        }
}
