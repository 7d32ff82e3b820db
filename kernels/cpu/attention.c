/* Causal multi-head attention in three steps (scores, softmax, weighted
 * values) and their backward steps.
 *
 * qkv (B,T,3C): q, k, v at channel offsets 0, C, 2C; head h at h*HS (HS = C/NH).
 * scores, probs (B,NH,T,T): row t holds s <= t, zeros above the diagonal.
 *
 * The four matrix products per (batch, head) run on icl_cpu_product (tile.h),
 * restricted to the causal triangle: masked entries of A read as 0 and tiles
 * wholly above the diagonal are skipped. Every output element is
 * one multiply-add chain in a fixed order that depends only on T and its
 * own position within the sequence, so results do not depend on thread
 * count or on which batch row holds the sequence. Threads split the
 * (batch, head) pairs. */
#include <math.h>
#include <string.h>
#include "cpu_kernels.h"
#include "fast_math.h"
#include "tile.h"

/* The softmax backward's dot products use LANES independent partial sums
 * combined in a fixed order (vectorisable without reassociating, independent
 * of alignment). */
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
    icl_tile_fn tile = icl_cpu_tile();
#pragma omp parallel for schedule(static, NH)
    for (int bh = 0; bh < B * NH; bh++) {
        int b = bh / NH, h = bh % NH;
        float *s = scores + (long)bh * T * T;
        memset(s, 0, (size_t)T * T * sizeof *s);
        /* scores = q . (scale k)^T */
        icl_product p = {T, T, HS, qkv_at(qkv, 0, b, 0, h, T, C, HS), 3L * C, 1, ICL_MASK_NONE,
                          qkv_at(qkv, 1, b, 0, h, T, C, HS), 1, 3L * C, scale, s, T, 1};
        icl_cpu_product(&p, tile);
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
        int n = (int)(r % T) + 1; /* row t sees s <= t */
        float mx;
        icl_cpu_softmax_row(probs + r * T, scores + r * T, n, &mx);
        memset(probs + r * T + n, 0, (size_t)(T - n) * sizeof *probs);
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
    icl_tile_fn tile = icl_cpu_tile();
#pragma omp parallel for schedule(static, NH)
    for (int bh = 0; bh < B * NH; bh++) {
        int b = bh / NH, h = bh % NH;
        float *o = out + (long)b * T * C + (long)h * HS;
        for (int t = 0; t < T; t++)
            memset(o + (long)t * C, 0, (size_t)HS * sizeof *o);
        /* out = probs . v */
        icl_product p = {T, HS, T, probs + (long)bh * T * T, T, 1, ICL_MASK_K_LE_ROW,
                          qkv_at(qkv, 2, b, 0, h, T, C, HS), 3L * C, 1, 1.0f, o, C, 0};
        icl_cpu_product(&p, tile);
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
    icl_tile_fn tile = icl_cpu_tile();
#pragma omp parallel for schedule(static, NH)
    for (int bh = 0; bh < B * NH; bh++) {
        int b = bh / NH, h = bh % NH;
        const float *g = dout + (long)b * T * C + (long)h * HS;
        const float *pr = probs + (long)bh * T * T;
        /* dprobs += dout . v^T on the causal triangle */
        icl_product dp = {T, T, HS, g, C, 1, ICL_MASK_NONE, qkv_at(qkv, 2, b, 0, h, T, C, HS), 1, 3L * C, 1.0f,
                           dprobs + (long)bh * T * T, T, 1};
        icl_cpu_product(&dp, tile);
        /* dv += probs^T . dout */
        icl_product dv = {T, HS, T, pr, 1, T, ICL_MASK_K_GE_ROW, g, C, 1, 1.0f, dqkv_at(dqkv, 2, b, 0, h, T, C, HS),
                           3L * C, 0};
        icl_cpu_product(&dv, tile);
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

/* ds[0..n) += p * (dp - p . dp) */
ICL_WIDE_CLONES static void softmax_backward_row(float *ds, const float *dp, const float *p, int n) {
    float pd = dot(p, dp, n);
    for (int s = 0; s < n; s++)
        ds[s] += p[s] * (dp[s] - pd);
}

// dscores (B,NH,T,T) += causal softmax Jacobian^T . dprobs
void icl_cpu_attention_softmax_backward(float *dscores, const float *dprobs, const float *probs, int B, int NH,
                                        int T) {
    long rows = (long)B * NH * T;
#pragma omp parallel for schedule(static)
    for (long r = 0; r < rows; r++)
        softmax_backward_row(dscores + r * T, dprobs + r * T, probs + r * T, (int)(r % T) + 1);
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
    icl_tile_fn tile = icl_cpu_tile();
#pragma omp parallel for schedule(static, NH)
    for (int bh = 0; bh < B * NH; bh++) {
        int b = bh / NH, h = bh % NH;
        const float *ds = dscores + (long)bh * T * T;
        /* dq += dscores . (scale k) */
        icl_product dq = {T, HS, T, ds, T, 1, ICL_MASK_K_LE_ROW, qkv_at(qkv, 1, b, 0, h, T, C, HS), 3L * C, 1, scale,
                           dqkv_at(dqkv, 0, b, 0, h, T, C, HS), 3L * C, 0};
        icl_cpu_product(&dq, tile);
        /* dk += dscores^T . (scale q) */
        icl_product dk = {T, HS, T, ds, 1, T, ICL_MASK_K_GE_ROW, qkv_at(qkv, 0, b, 0, h, T, C, HS), 3L * C, 1, scale,
                           dqkv_at(dqkv, 1, b, 0, h, T, C, HS), 3L * C, 0};
        icl_cpu_product(&dk, tile);
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
