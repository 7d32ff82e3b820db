/* Token and position embeddings: forward lookups and their scatter-add backward. */
#include "cpu_kernels.h"

/* Channel block owned by one thread in the scatter-adds: one 64-byte cache
 * line of floats, so threads never write to the same line. */
enum { EMBED_CHANNEL_BLOCK = 16 };

// out (B,T,C), tokens (B,T), wte (V,C), wpe (>=T,C)
void icl_cpu_embed_forward(float *out, const int32_t *tokens, const float *wte, const float *wpe, int B, int T,
                           int C) {
    long N = (long)B * T;
#pragma omp parallel for schedule(static)
    for (long n = 0; n < N; n++) {
        float *o = out + n * C;
        const float *te = wte + (long)tokens[n] * C;
        const float *pe = wpe + (n % T) * C;
#pragma omp simd
        for (int c = 0; c < C; c++)
            o[c] = te[c] + pe[c];
    }
}

void icl_cpu_embed_forward_naive(float *out, const int32_t *tokens, const float *wte, const float *wpe, int B,
                                 int T, int C) {
    for (int b = 0; b < B; b++)
        for (int t = 0; t < T; t++) {
            long n = (long)b * T + t;
            for (int c = 0; c < C; c++)
                out[n * C + c] = (float)((double)wte[(long)tokens[n] * C + c] + (double)wpe[(long)t * C + c]);
        }
}

// out (B,T,C) += wpe (>=T,C)
void icl_cpu_position_add_forward(float *out, const float *wpe, int B, int T, int C) {
    long N = (long)B * T;
#pragma omp parallel for schedule(static)
    for (long n = 0; n < N; n++) {
        float *o = out + n * C;
        const float *pe = wpe + (n % T) * C;
#pragma omp simd
        for (int c = 0; c < C; c++)
            o[c] += pe[c];
    }
}

void icl_cpu_position_add_forward_naive(float *out, const float *wpe, int B, int T, int C) {
    for (int b = 0; b < B; b++)
        for (int t = 0; t < T; t++)
            for (int c = 0; c < C; c++) {
                long i = ((long)b * T + t) * C + c;
                out[i] = (float)((double)out[i] + (double)wpe[(long)t * C + c]);
            }
}

/* dwpe (>=T,C) += sum over b of dout (B,T,C). Parallel over positions, each
 * summing its batch rows in order, so the result is thread-count invariant. */
static void position_grad(float *dwpe, const float *dout, int B, int T, int C) {
#pragma omp parallel for schedule(static)
    for (int t = 0; t < T; t++) {
        float *d = dwpe + (long)t * C;
        for (int b = 0; b < B; b++) {
            const float *g = dout + ((long)b * T + t) * C;
#pragma omp simd
            for (int c = 0; c < C; c++)
                d[c] += g[c];
        }
    }
}

/* dwte (V,C) scatter-add: rows with the same token collide, so threads split
 * the channels instead and each walks all rows in order. */
static void token_grad(float *dwte, const float *dout, const int32_t *tokens, long N, int C) {
    int n_blocks = (C + EMBED_CHANNEL_BLOCK - 1) / EMBED_CHANNEL_BLOCK;
#pragma omp parallel for schedule(static)
    for (int blk = 0; blk < n_blocks; blk++) {
        int c0 = blk * EMBED_CHANNEL_BLOCK;
        int c1 = c0 + EMBED_CHANNEL_BLOCK < C ? c0 + EMBED_CHANNEL_BLOCK : C;
        for (long n = 0; n < N; n++) {
            float *d = dwte + (long)tokens[n] * C;
            const float *g = dout + n * C;
#pragma omp simd
            for (int c = c0; c < c1; c++)
                d[c] += g[c];
        }
    }
}

// dwte (V,C) and dwpe (>=T,C) from dout (B,T,C); either nullable
void icl_cpu_embed_backward(float *dwte, float *dwpe, const float *dout, const int32_t *tokens, int B, int T,
                            int C) {
    if (dwte)
        token_grad(dwte, dout, tokens, (long)B * T, C);
    if (dwpe)
        position_grad(dwpe, dout, B, T, C);
}

void icl_cpu_embed_backward_naive(float *dwte, float *dwpe, const float *dout, const int32_t *tokens, int B,
                                  int T, int C) {
    long N = (long)B * T;
    if (dwte)
        for (long n = 0; n < N; n++) {
            int first = 1; /* each token's rows are summed once, at its first occurrence */
            for (long m = 0; m < n && first; m++)
                first = tokens[m] != tokens[n];
            if (!first)
                continue;
            for (int c = 0; c < C; c++) {
                double s = 0.0;
                for (long m = n; m < N; m++)
                    if (tokens[m] == tokens[n])
                        s += dout[m * C + c];
                long i = (long)tokens[n] * C + c;
                dwte[i] = (float)((double)dwte[i] + s);
            }
        }
    if (dwpe)
        icl_cpu_position_add_backward_naive(dwpe, dout, B, T, C);
}

// dwpe (>=T,C) += sum over b of dout (B,T,C)
void icl_cpu_position_add_backward(float *dwpe, const float *dout, int B, int T, int C) {
    position_grad(dwpe, dout, B, T, C);
}

void icl_cpu_position_add_backward_naive(float *dwpe, const float *dout, int B, int T, int C) {
    for (int t = 0; t < T; t++)
        for (int c = 0; c < C; c++) {
            double s = 0.0;
            for (int b = 0; b < B; b++)
                s += dout[((long)b * T + t) * C + c];
            dwpe[(long)t * C + c] = (float)((double)dwpe[(long)t * C + c] + s);
        }
}
