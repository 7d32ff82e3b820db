/* Dense layer: out = inp . w^T + bias, and its backward.
 *
 * The three matrix products run on one blocked GEMM written here rather than
 * on cblas_sgemm: OpenBLAS changes the summation order of an output element
 * with its thread count and with the element's position in the matrix (edge
 * tiles and the two halves of its 12-column Zen tile round differently), so
 * the same prompt gave different bits at batch row 0 and row 5. Here every
 * output element is one chain of multiply-adds over k = 0..K-1, started from
 * the value already in C, whatever its tile, thread or batch size. Blocking
 * only changes when the running sum is stored and reloaded, which is exact.
 * On x86-64 with AVX2+FMA (checked at run time) a 6x16 register tile uses
 * fused multiply-adds; elsewhere a portable tile uses multiply then add. */
#include <stdlib.h>
#include <string.h>
#include "cpu_kernels.h"

#if defined(__GNUC__) && (defined(__x86_64__) || defined(__i386__))
#include <immintrin.h>
#define ICL_HAVE_AVX2_PATH 1
#endif

enum {
    MR = 6,    /* rows of the register tile */
    NR = 16,   /* columns of the register tile (two 8-float vectors) */
    MC = 72,   /* rows of C per thread task: its A block stays in L2 */
    NC = 256,  /* columns of C per thread task */
    KC = 256,  /* depth of one packed B panel (16 KiB, L1-resident) */
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

/* Register tile: c (MR rows at stride ldc, NR columns) += sum over k < kc of
 * ap[k*MR + i] * bp[k*NR + j], one multiply-add chain per element. */
typedef void (*tile_fn)(int kc, const float *ap, const float *bp, float *c, long ldc);

static void tile_portable(int kc, const float *ap, const float *bp, float *c, long ldc) {
    float acc[MR][NR];
    for (int i = 0; i < MR; i++)
        memcpy(acc[i], c + i * ldc, sizeof acc[i]);
    for (int k = 0; k < kc; k++) {
        const float *a = ap + k * MR, *b = bp + k * NR;
        for (int i = 0; i < MR; i++)
            for (int j = 0; j < NR; j++)
                acc[i][j] += a[i] * b[j];
    }
    for (int i = 0; i < MR; i++)
        memcpy(c + i * ldc, acc[i], sizeof acc[i]);
}

#ifdef ICL_HAVE_AVX2_PATH
#define ROW_LOAD(i)                                          \
    __m256 c##i##0 = _mm256_loadu_ps(c + (i) * ldc);         \
    __m256 c##i##1 = _mm256_loadu_ps(c + (i) * ldc + 8)
#define ROW_FMA(i)                                           \
    do {                                                     \
        __m256 a_ = _mm256_broadcast_ss(ap + (i));           \
        c##i##0 = _mm256_fmadd_ps(a_, b0, c##i##0);          \
        c##i##1 = _mm256_fmadd_ps(a_, b1, c##i##1);          \
    } while (0)
#define ROW_STORE(i)                                         \
    do {                                                     \
        _mm256_storeu_ps(c + (i) * ldc, c##i##0);            \
        _mm256_storeu_ps(c + (i) * ldc + 8, c##i##1);        \
    } while (0)

__attribute__((target("avx2,fma"))) static void tile_avx2(int kc, const float *ap, const float *bp, float *c,
                                                          long ldc) {
    ROW_LOAD(0);
    ROW_LOAD(1);
    ROW_LOAD(2);
    ROW_LOAD(3);
    ROW_LOAD(4);
    ROW_LOAD(5);
    for (int k = 0; k < kc; k++, ap += MR, bp += NR) {
        __m256 b0 = _mm256_loadu_ps(bp), b1 = _mm256_loadu_ps(bp + 8);
        ROW_FMA(0);
        ROW_FMA(1);
        ROW_FMA(2);
        ROW_FMA(3);
        ROW_FMA(4);
        ROW_FMA(5);
    }
    ROW_STORE(0);
    ROW_STORE(1);
    ROW_STORE(2);
    ROW_STORE(3);
    ROW_STORE(4);
    ROW_STORE(5);
}
#undef ROW_LOAD
#undef ROW_FMA
#undef ROW_STORE
#endif

static tile_fn pick_tile(void) {
#ifdef ICL_HAVE_AVX2_PATH
    __builtin_cpu_init();
    if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma"))
        return tile_avx2;
#endif
    return tile_portable;
}

/* ap: rows i0 .. i0+rows of A, depth k0 .. k0+kc, as consecutive MR-row
 * panels laid out (kc, MR); rows past the end are zero. */
static void pack_a(float *ap, const gemm_args *g, int i0, int rows, int k0, int kc) {
    int padded = (rows + MR - 1) / MR * MR;
    if (padded > rows)
        memset(ap + (long)(padded - MR) * kc, 0, (size_t)kc * MR * sizeof *ap);
    const float *src = g->a + (long)i0 * g->a_rs + (long)k0 * g->a_cs;
    if (g->a_cs == 1) { /* rows contiguous in k */
        for (int i = 0; i < rows; i++) {
            float *dst = ap + (long)(i / MR) * kc * MR + i % MR;
            for (int k = 0; k < kc; k++)
                dst[k * MR] = src[i * g->a_rs + k];
        }
    } else { /* columns contiguous in i (A is a transposed view): read each k's rows in one sweep */
        for (int k = 0; k < kc; k++)
            for (int i = 0; i < rows; i++)
                ap[(long)(i / MR) * kc * MR + k * MR + i % MR] = src[k * g->a_cs + i * g->a_rs];
    }
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

/* One MC x NC block of C over the full depth K. Edge tiles run the same
 * register tile on a scratch copy of C (A and B zero-padded), so every
 * element goes through the identical sequence of operations. */
static void gemm_block(const gemm_args *g, tile_fn tile, int i0, int j0) {
    float ap[MC * KC], bp[KC * NR], edge[MR * NR];
    int rows = g->M - i0 < MC ? g->M - i0 : MC, i1 = i0 + rows;
    int j1 = j0 + NC < g->N ? j0 + NC : g->N;
    for (int k0 = 0; k0 < g->K; k0 += KC) {
        int kc = g->K - k0 < KC ? g->K - k0 : KC;
        pack_a(ap, g, i0, rows, k0, kc);
        for (int j = j0; j < j1; j += NR) {
            int cols = j1 - j < NR ? j1 - j : NR;
            pack_b(bp, g, k0, kc, j, cols);
            for (int i = i0; i < i1; i += MR) {
                int tile_rows = i1 - i < MR ? i1 - i : MR;
                const float *a = ap + (long)(i - i0) * kc;
                float *c = g->c + (long)i * g->ldc + j;
                if (tile_rows == MR && cols == NR) {
                    tile(kc, a, bp, c, g->ldc);
                    continue;
                }
                for (int r = 0; r < tile_rows; r++)
                    memcpy(edge + r * NR, c + r * g->ldc, (size_t)cols * sizeof *c);
                tile(kc, a, bp, edge, NR);
                for (int r = 0; r < tile_rows; r++)
                    memcpy(c + r * g->ldc, edge + r * NR, (size_t)cols * sizeof *c);
            }
        }
    }
}

/* Threads split C into MC x NC blocks; each block is owned by one thread for
 * the whole depth, so no sum is ever split across threads. */
static void gemm(const gemm_args *g) {
    if (g->M <= 0 || g->N <= 0 || g->K <= 0)
        return;
    tile_fn tile = pick_tile();
    int row_blocks = (g->M + MC - 1) / MC, col_blocks = (g->N + NC - 1) / NC;
#pragma omp parallel for schedule(dynamic)
    for (int blk = 0; blk < row_blocks * col_blocks; blk++)
        gemm_block(g, tile, blk / col_blocks * MC, blk % col_blocks * NC);
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
    /* B = w^T. Packing it column-wise from w is a strided gather repeated for
     * every row block, so transpose w once when memory allows; both layouts
     * hold the same values, so the results are identical either way. */
    float *wt = malloc((size_t)C * OC * sizeof *wt);
    if (wt) {
#pragma omp parallel for schedule(static)
        for (int c = 0; c < C; c++)
            for (int o = 0; o < OC; o++)
                wt[(long)c * OC + o] = w[(long)o * C + c];
        gemm_args g = {N, OC, C, inp, C, 1, wt, OC, 1, out, OC};
        gemm(&g);
        free(wt);
    } else {
        gemm_args g = {N, OC, C, inp, C, 1, w, 1, C, out, OC};
        gemm(&g);
    }
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
