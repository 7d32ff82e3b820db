/* Dense layer: out = inp . w^T + bias, and its backward, on the register
 * tile of tile.h.
 *
 * Every element of every product is one fused multiply-add chain over k in
 * order, starting from the bias (forward pass; zero without one, held in the
 * tile's registers) or from the value already in the output (the gradient
 * so far in the backward pass). An element's
 * bits therefore depend neither on the batch size, nor on the batch row,
 * nor on the thread count: the products run over all B*T rows at once and
 * threads take blocks of the output. The forward and dinp tasks own whole
 * rows, so no two threads write the same cache line (splitting rows by
 * columns cost up to 1.7x where rows are not 64-byte aligned); dw's tasks
 * split columns too, but store each tile only once per k slice:
 *   out  (N,OC) = bias + inp . w^T    tasks: ROWS rows; w transposed once
 *   dinp (N,C) += dout . w            tasks: ROWS rows
 *   dw  (OC,C) += dout^T . inp        tasks: groups of MR output channels x
 *                                     DW_COLS columns, each element summing
 *                                     all N rows (dw_block)
 *   dbias (OC) += rows of dout summed in order, per channel
 * Which thread runs a task cannot change its result, so tasks are handed out
 * dynamically. */
#include <omp.h>
#include <stdlib.h>
#include <string.h>
#include "cpu_kernels.h"
#include "tile.h"

enum {
    ROWS = 16 * ICL_TILE_MR,   /* output rows per task: many tasks, A and C blocks stay in cache */
    DW_COLS = 4 * ICL_TILE_NR, /* dw columns per task: a k slice of inp this wide stays in cache */
    DW_GROUPS = 8,             /* channel groups (MR each) per dw task at most */
    BIAS_BLOCK = 64,           /* channels per dbias task */
    TRANSPOSE_BLOCK = 32       /* side of the blocks w is transposed in */
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
    if (wt) /* in square blocks, so that the strided writes stay in L1 */
        for (int j0 = 0; j0 < OC; j0 += TRANSPOSE_BLOCK)
            for (int k0 = 0; k0 < C; k0 += TRANSPOSE_BLOCK)
                for (int j = j0; j < min_int(OC, j0 + TRANSPOSE_BLOCK); j++)
                    for (int k = k0; k < min_int(C, k0 + TRANSPOSE_BLOCK); k++)
                        wt[(long)k * OC + j] = w[(long)j * C + k];
    long chunks = (N + ROWS - 1) / ROWS;
    icl_tile_fn tile = icl_cpu_tile();
#pragma omp parallel for schedule(dynamic)
    for (long ch = 0; ch < chunks; ch++) {
        long r0 = ch * ROWS;
        int rows = (int)(N - r0 < ROWS ? N - r0 : ROWS);
        float *o = out + r0 * OC;
        /* the chains start from the bias in registers: no pass that copies it into out first */
        icl_product p = {rows, OC, C, inp + r0 * C, C, 1, ICL_MASK_NONE, wt ? wt : w, wt ? OC : 1, wt ? 1 : C,
                         1.0f, o, OC, 0, bias ? ICL_START_ROW : ICL_START_ZERO, bias};
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

/* dw (OC,C) += dout^T . inp over all N rows, for the channel groups
 * [g0, g1) (MR channels each) and the columns [j0, j1). Per k slice, each
 * group's MR columns of dout (A[o][i] = dout[i][o], strided) are packed once
 * and reused by every NR-column panel, and the slice of inp (read in place)
 * is reused by every group while it is in cache. Each element's chain is
 * the same as icl_cpu_product's would be. */
static void dw_block(float *dw, const float *dout, const float *inp, int N, int C, int OC, int g0, int g1, int j0,
                     int j1, icl_tile_fn tile) {
    enum { MR = ICL_TILE_MR, NR = ICL_TILE_NR, KC = ICL_TILE_KC };
    float ap[KC * MR], bp[KC * NR], ct[MR * NR];
    for (int k0 = 0; k0 < N; k0 += KC) {
        int kc = min_int(KC, N - k0);
        for (int g = g0; g < g1; g++) {
            int o0 = g * MR, rows = min_int(MR, OC - o0);
            for (int k = 0; k < kc; k++) {
                const float *src = dout + (long)(k0 + k) * OC + o0;
                if (rows == MR)
                    for (int r = 0; r < MR; r++)
                        ap[k * MR + r] = src[r];
                else
                    for (int r = 0; r < MR; r++)
                        ap[k * MR + r] = r < rows ? src[r] : 0.0f;
            }
            for (int jp = j0; jp < j1; jp += NR) {
                int cols = min_int(NR, j1 - jp);
                const float *b = inp + (long)k0 * C + jp;
                long b_rs = C;
                if (cols < NR) { /* the edge panel, zero-padded */
                    for (int k = 0; k < kc; k++)
                        for (int j = 0; j < NR; j++)
                            bp[k * NR + j] = j < cols ? b[(long)k * C + j] : 0.0f;
                    b = bp;
                    b_rs = NR;
                }
                float *c = dw + (long)o0 * C + jp;
                if (rows == MR && cols == NR) {
                    tile(kc, ap, 1, MR, b, b_rs, c, C, c, C);
                    continue;
                }
                for (int r = 0; r < MR; r++)
                    for (int j = 0; j < NR; j++)
                        ct[r * NR + j] = r < rows && j < cols ? c[(long)r * C + j] : 0.0f;
                tile(kc, ap, 1, MR, b, b_rs, ct, NR, ct, NR);
                for (int r = 0; r < rows; r++)
                    for (int j = 0; j < cols; j++)
                        c[(long)r * C + j] = ct[r * NR + j];
            }
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
                             dinp + (long)r0 * C, C, 0, ICL_START_C, NULL};
            icl_cpu_product(&p, tile);
        }
    }
    /* dw tasks: DW_COLS columns x a chunk of channel groups, chunks small
     * enough for about 4 tasks per thread (the split changes no element's chain) */
    int groups = (OC + ICL_TILE_MR - 1) / ICL_TILE_MR, col_blocks = (C + DW_COLS - 1) / DW_COLS;
    int threads = omp_in_parallel() ? 1 : omp_get_max_threads(); /* 1 inside a chunk of prompts */
    int chunks_wanted = (4 * threads + col_blocks - 1) / col_blocks;
    int per_chunk = (groups + chunks_wanted - 1) / chunks_wanted;
    per_chunk = per_chunk < 1 ? 1 : per_chunk > DW_GROUPS ? DW_GROUPS : per_chunk;
    int chunks = (groups + per_chunk - 1) / per_chunk;
#pragma omp parallel for schedule(dynamic)
    for (int task = 0; task < chunks * col_blocks; task++) {
        int g0 = task / col_blocks * per_chunk, j0 = task % col_blocks * DW_COLS;
        dw_block(dw, dout, inp, N, C, OC, g0, min_int(groups, g0 + per_chunk), j0, min_int(C, j0 + DW_COLS), tile);
    }
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
