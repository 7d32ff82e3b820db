/* Dense layer: out = inp . w^T + bias, and its backward, on the register
 * tile of tile.h.
 *
 * Every element of every product is one fused multiply-add chain over k in
 * order, starting from the value already in the output (the bias in the
 * forward pass, the gradient so far in the backward pass). An element's
 * bits therefore depend neither on the batch size, nor on the batch row,
 * nor on the thread count: the products run over all B*T rows at once and
 * threads take whole rows of the output, so no two threads write the same
 * cache line (column splits would share lines wherever a row is not
 * 64-byte aligned):
 *   out  (N,OC) = bias + inp . w^T    tasks: ROWS rows; w transposed once
 *   dinp (N,C) += dout . w            tasks: ROWS rows
 *   dw  (OC,C) += dout^T . inp        tasks: MR output channels, each
 *                                     summing all N rows (dw_group)
 *   dbias (OC) += rows of dout summed in order, per channel
 * Which thread runs a task cannot change its result, so tasks are handed out
 * dynamically. */
#include <stdlib.h>
#include "cpu_kernels.h"
#include "tile.h"

enum {
    ROWS = 16 * ICL_TILE_MR, /* output rows per task: many tasks, A and C blocks stay in cache */
    BIAS_BLOCK = 64          /* channels per dbias task */
};

static int min_int(int a, int b) { return a < b ? a : b; }

/* out = bias + inp . w^T; with post, also post = GELU(out), each task's rows
 * while they are still in cache */
static void forward(float *out, float *post, const float *inp, const float *w, const float *bias, long N, int C,
                    int OC) {
    // out, post (N,OC), inp (N,C), w (OC,C), bias (OC) or NULL
    /* B[k][j] = w[j][k]. A transposed copy lets every task read B in place;
     * without memory for it the tasks pack B from w instead: slower, the same
     * bits (packing only moves values). */
    float *wt = malloc((size_t)OC * C * sizeof *wt);
    if (wt)
        for (int j = 0; j < OC; j++)
            for (int k = 0; k < C; k++)
                wt[(long)k * OC + j] = w[(long)j * C + k];
    long chunks = (N + ROWS - 1) / ROWS;
    icl_tile_fn tile = icl_cpu_tile();
#pragma omp parallel for schedule(dynamic)
    for (long ch = 0; ch < chunks; ch++) {
        long r0 = ch * ROWS;
        int rows = (int)(N - r0 < ROWS ? N - r0 : ROWS);
        float *o = out + r0 * OC;
        for (int r = 0; r < rows; r++) {
            float *row = o + (long)r * OC;
            if (bias)
                for (int j = 0; j < OC; j++)
                    row[j] = bias[j];
            else
                for (int j = 0; j < OC; j++)
                    row[j] = 0.0f;
        }
        icl_product p = {rows, OC, C, inp + r0 * C, C, 1, ICL_MASK_NONE, wt ? wt : w, wt ? OC : 1, wt ? 1 : C,
                         1.0f, o, OC, 0};
        icl_cpu_product(&p, tile);
        if (post)
            icl_cpu_gelu_range(post + r0 * OC, o, (size_t)rows * OC);
    }
    free(wt);
}

void icl_cpu_matmul_forward(float *out, const float *inp, const float *w, const float *bias, int B, int T, int C,
                            int OC) {
    // out (B,T,OC), inp (B,T,C), w (OC,C), bias (OC) or NULL
    forward(out, NULL, inp, w, bias, (long)B * T, C, OC);
}

void icl_cpu_matmul_gelu_forward(float *pre, float *post, const float *inp, const float *w, const float *bias, int B,
                                 int T, int C, int OC) {
    // pre, post (B,T,OC), inp (B,T,C), w (OC,C), bias (OC) or NULL
    forward(pre, post, inp, w, bias, (long)B * T, C, OC);
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

/* dw rows [o0, o0 + MR) += dout^T . inp over all N rows. The MR columns of
 * dout (A[o][i] = dout[i][o], strided) are packed once per k slice and
 * reused by every NR-column panel; inp is read in place. Each element's
 * chain is the same as icl_cpu_product's would be. */
static void dw_group(float *dw, const float *dout, const float *inp, int N, int C, int OC, int o0, icl_tile_fn tile) {
    enum { MR = ICL_TILE_MR, NR = ICL_TILE_NR, KC = ICL_TILE_KC };
    float ap[KC * MR], bp[KC * NR], ct[MR * NR];
    int rows = min_int(MR, OC - o0);
    for (int k0 = 0; k0 < N; k0 += KC) {
        int kc = min_int(KC, N - k0);
        for (int k = 0; k < kc; k++) {
            const float *src = dout + (long)(k0 + k) * OC + o0;
            if (rows == MR)
                for (int r = 0; r < MR; r++)
                    ap[k * MR + r] = src[r];
            else
                for (int r = 0; r < MR; r++)
                    ap[k * MR + r] = r < rows ? src[r] : 0.0f;
        }
        for (int j0 = 0; j0 < C; j0 += NR) {
            int cols = min_int(NR, C - j0);
            const float *b = inp + (long)k0 * C + j0;
            long b_rs = C;
            if (cols < NR) { /* the edge panel, zero-padded */
                for (int k = 0; k < kc; k++)
                    for (int j = 0; j < NR; j++)
                        bp[k * NR + j] = j < cols ? b[(long)k * C + j] : 0.0f;
                b = bp;
                b_rs = NR;
            }
            float *c = dw + (long)o0 * C + j0;
            if (rows == MR && cols == NR) {
                tile(kc, ap, 1, MR, b, b_rs, c, C);
                continue;
            }
            for (int r = 0; r < MR; r++)
                for (int j = 0; j < NR; j++)
                    ct[r * NR + j] = r < rows && j < cols ? c[(long)r * C + j] : 0.0f;
            tile(kc, ap, 1, MR, b, b_rs, ct, NR);
            for (int r = 0; r < rows; r++)
                for (int j = 0; j < cols; j++)
                    c[(long)r * C + j] = ct[r * NR + j];
        }
    }
}

void icl_cpu_matmul_backward(float *dinp, float *dw, float *dbias, const float *dout, const float *inp,
                             const float *w, int N, int C, int OC) {
    // dinp (N,C) or NULL, dw (OC,C), dbias (OC) or NULL; dout (N,OC), inp (N,C), w (OC,C); all +=
    icl_tile_fn tile = icl_cpu_tile();
    if (dinp) {
        int chunks = (N + ROWS - 1) / ROWS;
#pragma omp parallel for schedule(dynamic)
        for (int ch = 0; ch < chunks; ch++) {
            int r0 = ch * ROWS;
            icl_product p = {min_int(ROWS, N - r0), C, OC, dout + (long)r0 * OC, OC, 1, ICL_MASK_NONE, w, C, 1, 1.0f,
                             dinp + (long)r0 * C, C, 0};
            icl_cpu_product(&p, tile);
        }
    }
    int groups = (OC + ICL_TILE_MR - 1) / ICL_TILE_MR;
#pragma omp parallel for schedule(dynamic)
    for (int g = 0; g < groups; g++)
        dw_group(dw, dout, inp, N, C, OC, g * ICL_TILE_MR, tile);
    if (dbias) {
        int blocks = (OC + BIAS_BLOCK - 1) / BIAS_BLOCK;
#pragma omp parallel for schedule(static)
        for (int blk = 0; blk < blocks; blk++) {
            int o0 = blk * BIAS_BLOCK, n = min_int(BIAS_BLOCK, OC - o0);
            float s[BIAS_BLOCK] = {0};
            for (int i = 0; i < N; i++) {
                const float *d = dout + (long)i * OC + o0;
#pragma omp simd
                for (int o = 0; o < n; o++)
                    s[o] += d[o];
            }
            for (int o = 0; o < n; o++)
                dbias[o0 + o] += s[o];
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
