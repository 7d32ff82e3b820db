/* Dense layer: out = inp . w^T + bias, and its backward.
 *
 * The three matrix products run on a blocked GEMM over the register tile of
 * tile.h rather than on cblas_sgemm: OpenBLAS changes the summation order of
 * an output element with its thread count and with the element's position
 * in the matrix (edge tiles, and even rows within one full tile, round
 * differently), so the same prompt gave different bits at batch row 0 and
 * row 5. Here every output element is one chain of multiply-adds over
 * k = 0..K-1, started from the value already in C, whatever its tile, thread
 * or batch size. */
#include <omp.h>
#include <stdlib.h>
#include <string.h>
#include "cpu_kernels.h"
#include "tile.h"

enum {
    MR = ICL_TILE_MR,
    NR = ICL_TILE_NR,
    KC = ICL_TILE_KC, /* depth of one packed slice: a KC x NR B panel and MR x KC A panel fit in L1 */
    MC = 240,         /* most rows of C per thread task: B is packed once per task */
    NC = 256,         /* most columns of C per thread task */
    BIAS_CHANNEL_BLOCK = 64 /* output channels one thread sums for dbias */
};

/* C (M,N) += A (M,K) . B (K,N), with A[i][k] at a[i*a_rs + k*a_cs] and
 * B[k][j] at b[k*b_rs + j*b_cs]; C row-major with leading dimension ldc. */
typedef struct {
    int M, N, K;
    const float *a;
    long a_rs, a_cs;
    const float *b;
    long b_rs, b_cs;
    float *c;
    long ldc;
} gemm_args;

/* ap (kc, MR) = rows [i0, i0+rows) of A (rows <= MR) at depth [k0, k0+kc),
 * zero-padded to MR rows. */
static void pack_a(float *ap, const gemm_args *g, int i0, int rows, int k0, int kc) {
    const float *src = g->a + (long)i0 * g->a_rs + (long)k0 * g->a_cs;
    if (rows == MR && g->a_rs == 1) { /* a transposed view (dW = dout^T . inp): MR floats in a row per k */
        for (int k = 0; k < kc; k++)
            for (int r = 0; r < MR; r++)
                ap[k * MR + r] = src[k * g->a_cs + r];
        return;
    }
    for (int k = 0; k < kc; k++)
        for (int r = 0; r < MR; r++)
            ap[k * MR + r] = r < rows ? src[k * g->a_cs + r * g->a_rs] : 0.0f;
}

/* bp (kc, NR) = B[k0 .. k0+kc)[j0 .. j0+cols), zero-padded to NR columns */
static void pack_b(float *bp, const gemm_args *g, int k0, int kc, int j0, int cols) {
    if (g->b_cs == 1) {
        /* fixed-length copies: a variable-size memcpy per row costs more than the copy */
        for (int k = 0; k < kc; k++) {
            const float *src = g->b + (long)(k0 + k) * g->b_rs + j0;
            float *dst = bp + (long)k * NR;
            if (cols == NR) {
#pragma omp simd
                for (int j = 0; j < NR; j++)
                    dst[j] = src[j];
            } else {
                for (int j = 0; j < NR; j++)
                    dst[j] = j < cols ? src[j] : 0.0f;
            }
        }
        return;
    }
    memset(bp, 0, (size_t)kc * NR * sizeof *bp);
    for (int j = 0; j < cols; j++) { /* B transposed: walk each source row contiguously */
        const float *src = g->b + (long)(j0 + j) * g->b_cs + (long)k0 * g->b_rs;
        for (int k = 0; k < kc; k++)
            bp[(long)k * NR + j] = src[k * g->b_rs];
    }
}

/* Rows [i0, i0+rows) of C against the packed B panels of columns
 * [j0, j0+cols) at depth [k0, k0+kc). A rows contiguous in k are read in
 * place; a transposed A, and the last partial tile of rows, are packed into
 * MR-row panels first. Edge tiles run the same register tile on a scratch
 * copy of C (A and B zero-padded), so every element goes through the
 * identical sequence of operations wherever it sits. */
static void gemm_rows(const gemm_args *g, icl_tile_fn tile, float *ap, const float *bbuf, int i0, int rows, int j0,
                      int cols, int k0, int kc) {
    float edge[MR * NR];
    int in_place = g->a_cs == 1;
    for (int r0 = 0; r0 < rows; r0 += MR) {
        int tile_rows = rows - r0 < MR ? rows - r0 : MR;
        const float *a = ap;
        long a_rs = 1, a_cs = MR;
        if (in_place && tile_rows == MR) {
            a = g->a + (long)(i0 + r0) * g->a_rs + k0;
            a_rs = g->a_rs;
            a_cs = 1;
        } else {
            pack_a(ap, g, i0 + r0, tile_rows, k0, kc);
        }
        for (int q = 0; q * NR < cols; q++) {
            int tile_cols = cols - q * NR < NR ? cols - q * NR : NR;
            const float *bp = bbuf + (long)q * kc * NR;
            float *c = g->c + (long)(i0 + r0) * g->ldc + j0 + q * NR;
            if (tile_rows == MR && tile_cols == NR) {
                tile(kc, a, a_rs, a_cs, bp, c, g->ldc);
                continue;
            }
            for (int r = 0; r < tile_rows; r++)
                memcpy(edge + r * NR, c + r * g->ldc, (size_t)tile_cols * sizeof *c);
            tile(kc, a, a_rs, a_cs, bp, edge, NR);
            for (int r = 0; r < tile_rows; r++)
                memcpy(c + r * g->ldc, edge + r * NR, (size_t)tile_cols * sizeof *c);
        }
    }
}

/* One task: C rows [i0, i0+rows) x columns [j0, j0+cols) over the whole
 * depth, slice by slice in order. bbuf holds `cols` (rounded up to NR)
 * columns of a packed B slice; with less room (bbuf_cols < cols) the
 * columns go in chunks, at the cost of repacking A. */
static void gemm_task(const gemm_args *g, icl_tile_fn tile, float *ap, float *bbuf, int bbuf_cols, int i0, int rows,
                      int j0, int cols) {
    for (int k0 = 0; k0 < g->K; k0 += KC) {
        int kc = g->K - k0 < KC ? g->K - k0 : KC;
        for (int jc = j0; jc < j0 + cols; jc += bbuf_cols) {
            int chunk = j0 + cols - jc < bbuf_cols ? j0 + cols - jc : bbuf_cols;
            for (int q = 0; q * NR < chunk; q++)
                pack_b(bbuf + (long)q * kc * NR, g, k0, kc, jc + q * NR, chunk - q * NR < NR ? chunk - q * NR : NR);
            gemm_rows(g, tile, ap, bbuf, i0, rows, jc, chunk, k0, kc);
        }
    }
}

/* Threads take whole blocks of C (no barriers, no shared buffers): every
 * element of C is computed by one thread, its whole chain in order, so
 * nothing depends on the thread count. Blocks are as large as MC x NC to
 * amortise packing B, and smaller when needed to give every thread work. */
static void gemm(const gemm_args *g) {
    if (g->M <= 0 || g->N <= 0 || g->K <= 0)
        return;
    icl_tile_fn tile = icl_cpu_tile();
    int nc = g->N < NC ? (g->N + NR - 1) / NR * NR : NC;
    int col_blocks = (g->N + nc - 1) / nc;
    int want_row_blocks = (2 * omp_get_max_threads() + col_blocks - 1) / col_blocks;
    int mc = (g->M + want_row_blocks - 1) / want_row_blocks;
    mc = mc < MR ? MR : mc > MC ? MC : (mc + MR - 1) / MR * MR;
    int row_blocks = (g->M + mc - 1) / mc;
    int kc_max = g->K < KC ? g->K : KC;
#pragma omp parallel
    {
        /* per thread: a packed B slice for a whole block, or one panel on the stack if out of memory */
        float panel[KC * NR], ap[KC * MR];
        float *heap = malloc((size_t)kc_max * nc * sizeof *heap);
        float *bbuf = heap ? heap : panel;
        int bbuf_cols = heap ? nc : NR;
#pragma omp for schedule(dynamic)
        for (int blk = 0; blk < row_blocks * col_blocks; blk++) {
            int i0 = blk / col_blocks * mc, j0 = blk % col_blocks * nc;
            int rows = g->M - i0 < mc ? g->M - i0 : mc, cols = g->N - j0 < nc ? g->N - j0 : nc;
            gemm_task(g, tile, ap, bbuf, bbuf_cols, i0, rows, j0, cols);
        }
        free(heap);
    }
}

// out (N,OC) = inp (N,C) . w (OC,C)^T + bias (OC, nullable)
void icl_cpu_matmul_forward(float *out, const float *inp, const float *w, const float *bias, int N, int C, int OC) {
    /* start every row from the bias (or zero) and accumulate the product onto it */
#pragma omp parallel for schedule(static)
    for (int n = 0; n < N; n++) {
        if (bias)
            memcpy(out + (long)n * OC, bias, (size_t)OC * sizeof *out);
        else
            memset(out + (long)n * OC, 0, (size_t)OC * sizeof *out);
    }
    /* B = w^T: packing it straight from w is a strided gather repeated in
     * every task, so transpose w once when memory allows. Both layouts hold
     * the same values, so the results are identical either way. */
    float *wt = malloc((size_t)C * OC * sizeof *wt);
    if (wt) {
#pragma omp parallel for schedule(static)
        for (int c = 0; c < C; c++)
            for (int o = 0; o < OC; o++)
                wt[(long)c * OC + o] = w[(long)o * C + c];
    }
    gemm_args g = {N, OC, C, inp, C, 1, wt ? wt : w, wt ? OC : 1, wt ? 1 : C, out, OC};
    gemm(&g);
    free(wt);
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
    if (dinp) {
        gemm_args g = {N, C, OC, dout, OC, 1, w, C, 1, dinp, C};
        gemm(&g);
    }
    gemm_args g = {OC, C, N, dout, 1, OC, inp, C, 1, dw, C};
    gemm(&g);
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
