/* Register tiles for the CPU matrix products (see tile.h). */
#include "tile.h"
#include <string.h>

#if defined(__GNUC__) && (defined(__x86_64__) || defined(__i386__)) && !defined(ICL_CPU_PORTABLE_TILE)
#include <immintrin.h>
#define ICL_HAVE_AVX2_TILE 1
#endif

enum { MR = ICL_TILE_MR, NR = ICL_TILE_NR, KC = ICL_TILE_KC };

/* GCC/Clang vector extension: 4 floats, lowered to SSE on x86-64 and NEON on
 * arm64. Multiply then add (ISO C mode does not contract them into an FMA).
 * The tile runs as two 6 x 8 halves so that the 12 accumulators fit in the
 * 16 SSE registers; the split does not change any element's chain. */
typedef float v4f __attribute__((vector_size(16)));

static v4f load4(const float *p) {
    v4f v;
    memcpy(&v, p, sizeof v);
    return v;
}

static void store4(float *p, v4f v) { memcpy(p, &v, sizeof v); }

#define P_ROW_ZERO(i) v4f c##i##0 = {0}, c##i##1 = {0}
#define P_ROW_LOAD(i)                              \
    do {                                           \
        c##i##0 = load4(cin + (i) * c_in_rs);      \
        c##i##1 = load4(cin + (i) * c_in_rs + 4);  \
    } while (0)
#define P_ROW_MADD(i)                            \
    do {                                         \
        float ai_ = ak[(i) * a_rs];              \
        v4f a_ = {ai_, ai_, ai_, ai_};           \
        c##i##0 += a_ * b0;                      \
        c##i##1 += a_ * b1;                      \
    } while (0)
#define P_ROW_STORE(i)                           \
    do {                                         \
        store4(ch + (i) * ldc, c##i##0);         \
        store4(ch + (i) * ldc + 4, c##i##1);     \
    } while (0)

static void tile_portable(int kc, const float *a, long a_rs, long a_cs, const float *bp, long b_rs,
                          const float *c_in, long c_in_rs, float *c, long ldc) {
    for (int half = 0; half < 2; half++) {
        float *ch = c + half * 8;
        const float *cin = c_in ? c_in + half * 8 : NULL;
        const float *bh = bp + half * 8, *ak = a;
        P_ROW_ZERO(0);
        P_ROW_ZERO(1);
        P_ROW_ZERO(2);
        P_ROW_ZERO(3);
        P_ROW_ZERO(4);
        P_ROW_ZERO(5);
        if (cin) {
            P_ROW_LOAD(0);
            P_ROW_LOAD(1);
            P_ROW_LOAD(2);
            P_ROW_LOAD(3);
            P_ROW_LOAD(4);
            P_ROW_LOAD(5);
        }
        for (int k = 0; k < kc; k++, ak += a_cs, bh += b_rs) {
            v4f b0 = load4(bh), b1 = load4(bh + 4);
            P_ROW_MADD(0);
            P_ROW_MADD(1);
            P_ROW_MADD(2);
            P_ROW_MADD(3);
            P_ROW_MADD(4);
            P_ROW_MADD(5);
        }
        P_ROW_STORE(0);
        P_ROW_STORE(1);
        P_ROW_STORE(2);
        P_ROW_STORE(3);
        P_ROW_STORE(4);
        P_ROW_STORE(5);
    }
}

#ifdef ICL_HAVE_AVX2_TILE
/* 12 accumulators (6 rows x 2 vectors of 8) stay in registers for the whole k loop */
#define ROW_ZERO(i) __m256 c##i##0 = _mm256_setzero_ps(), c##i##1 = _mm256_setzero_ps()
#define ROW_LOAD(i)                                              \
    do {                                                         \
        c##i##0 = _mm256_loadu_ps(c_in + (i) * c_in_rs);         \
        c##i##1 = _mm256_loadu_ps(c_in + (i) * c_in_rs + 8);     \
    } while (0)
#define ROW_FMA(i)                                       \
    do {                                                 \
        __m256 a_ = _mm256_broadcast_ss(a + (i) * a_rs); \
        c##i##0 = _mm256_fmadd_ps(a_, b0, c##i##0);      \
        c##i##1 = _mm256_fmadd_ps(a_, b1, c##i##1);      \
    } while (0)
#define ROW_STORE(i)                                     \
    do {                                                 \
        _mm256_storeu_ps(c + (i) * ldc, c##i##0);        \
        _mm256_storeu_ps(c + (i) * ldc + 8, c##i##1);    \
    } while (0)

__attribute__((target("avx2,fma"))) static void tile_avx2(int kc, const float *a, long a_rs, long a_cs,
                                                          const float *bp, long b_rs, const float *c_in,
                                                          long c_in_rs, float *c, long ldc) {
    ROW_ZERO(0);
    ROW_ZERO(1);
    ROW_ZERO(2);
    ROW_ZERO(3);
    ROW_ZERO(4);
    ROW_ZERO(5);
    if (c_in) {
        ROW_LOAD(0);
        ROW_LOAD(1);
        ROW_LOAD(2);
        ROW_LOAD(3);
        ROW_LOAD(4);
        ROW_LOAD(5);
    }
    for (int k = 0; k < kc; k++, a += a_cs, bp += b_rs) {
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
#endif

icl_tile_fn icl_cpu_tile(void) {
#ifdef ICL_HAVE_AVX2_TILE
    __builtin_cpu_init();
    if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma"))
        return tile_avx2;
#endif
    return tile_portable;
}

static int min_int(int x, int y) { return x < y ? x : y; }
static int max_int(int x, int y) { return x > y ? x : y; }

/* bp (kc, NR) = b_scale * B[k0 .. k0+kc)[j0 .. j0+cols), zero-padded to NR columns */
static void pack_b(float *bp, const icl_product *p, int k0, int kc, int j0, int cols) {
    const float scale = p->b_scale; /* a local: stores to bp could otherwise alias p->b_scale */
    if (p->b_cs == 1) {
        for (int k = 0; k < kc; k++) {
            const float *src = p->b + (long)(k0 + k) * p->b_rs + j0;
            float *dst = bp + (long)k * NR;
            if (cols == NR) {
#pragma omp simd
                for (int j = 0; j < NR; j++)
                    dst[j] = src[j] * scale;
            } else {
                for (int j = 0; j < NR; j++)
                    dst[j] = j < cols ? src[j] * scale : 0.0f;
            }
        }
        return;
    }
    if (cols < NR)
        memset(bp, 0, (size_t)kc * NR * sizeof *bp);
    for (int j = 0; j < cols; j++) { /* B transposed: walk each source row contiguously */
        const float *src = p->b + (long)(j0 + j) * p->b_cs + (long)k0 * p->b_rs;
        for (int k = 0; k < kc; k++)
            bp[(long)k * NR + j] = src[k * p->b_rs] * scale;
    }
}

/* ap (kc, MR) = rows [r0, r0+rows) of A at depth [k0, k0+kc), masked, zero-padded to MR rows */
static void pack_a(float *ap, const icl_product *p, int r0, int rows, int k0, int kc) {
    for (int k = 0; k < kc; k++) {
        int col = k0 + k;
        const float *src = p->a + (long)r0 * p->a_rs + (long)col * p->a_cs;
        float *dst = ap + k * MR;
        int unmasked = rows == MR && (p->mask == ICL_MASK_NONE ||
                                      (p->mask == ICL_MASK_K_LE_ROW ? col <= r0 : col >= r0 + MR - 1));
        if (unmasked) {
            for (int r = 0; r < MR; r++)
                dst[r] = src[r * p->a_rs];
            continue;
        }
        for (int r = 0; r < MR; r++) {
            int row = r0 + r;
            int keep = r < rows && (p->mask == ICL_MASK_NONE || (p->mask == ICL_MASK_K_LE_ROW ? col <= row : col >= row));
            dst[r] = keep ? src[r * p->a_rs] : 0.0f;
        }
    }
}

/* Depth range [lo, hi) row group [r0, r0+rows) needs: masked entries beyond it are all zero. */
static void depth_range(const icl_product *p, int r0, int rows, int *lo, int *hi) {
    *lo = p->mask == ICL_MASK_K_GE_ROW ? r0 : 0;
    *hi = p->mask == ICL_MASK_K_LE_ROW ? min_int(p->depth, r0 + rows) : p->depth;
}

/* The product of icl_product, NR columns of C at a time: pack the B panel
 * slice, then run each MR-row group over the depth it needs, reading A in
 * place where no entry is masked and packing it (masked) elsewhere. Tiles
 * at the edges or across the c_lower diagonal go through a scratch copy of
 * C and only their valid entries are written back. The first k slice starts
 * from p->start; later slices continue from C. */
void icl_cpu_product(const icl_product *p, icl_tile_fn tile) {
    float bp[KC * NR], ap[KC * MR], scratch[MR * NR];
    for (int j0 = 0; j0 < p->cols; j0 += NR) {
        int cols = min_int(NR, p->cols - j0);
        /* with c_lower, groups whose rows all lie above column j0 have nothing to do */
        int first_group = p->c_lower ? j0 / MR * MR : 0;
        /* B is read in place only where one row group uses the panel: for more, a packed copy
           pays for itself, since the panel's rows lie b_rs apart in place, and strides of a
           few KiB map them to the same L1 sets (a 96 x 1024 x 256 product ran at 72 % of
           the packed speed in place) */
        int b_in_place = p->b_cs == 1 && cols == NR && p->b_scale == 1.0f && p->rows <= MR;
        for (int k0 = 0; k0 < p->depth; k0 += KC) {
            int kc = min_int(KC, p->depth - k0);
            icl_c_start start = k0 == 0 ? p->start : ICL_START_C;
            const float *bk = bp;
            long b_rs = NR;
            if (b_in_place) {
                bk = p->b + (long)k0 * p->b_rs + j0;
                b_rs = p->b_rs;
            } else {
                pack_b(bp, p, k0, kc, j0, cols);
            }
            for (int r0 = first_group; r0 < p->rows; r0 += MR) {
                int rows = min_int(MR, p->rows - r0), lo, hi;
                depth_range(p, r0, rows, &lo, &hi);
                lo = max_int(lo, k0);
                hi = min_int(hi, k0 + kc);
                if (lo >= hi)
                    continue;
                float *c = p->c + (long)r0 * p->ldc + j0;
                int crosses_diagonal = p->c_lower && j0 + cols - 1 > r0;
                int whole = rows == MR && cols == NR && !crosses_diagonal;
                float *ct = whole ? c : scratch;
                long ldct = whole ? p->ldc : NR;
                /* where the first tile's chains start; later ones continue from ct */
                const float *c_in = ct;
                long c_in_rs = ldct;
                if (start == ICL_START_ZERO) {
                    c_in = NULL;
                } else if (start == ICL_START_ROW) {
                    c_in = whole ? p->start_row + j0 : scratch;
                    c_in_rs = whole ? 0 : NR;
                }
                if (!whole && start != ICL_START_ZERO) { /* the start values, zeros past C's edge */
                    if (rows < MR || cols < NR)
                        memset(scratch, 0, sizeof scratch);
                    for (int r = 0; r < rows; r++)
                        memcpy(scratch + r * NR, start == ICL_START_ROW ? p->start_row + j0 : c + (long)r * p->ldc,
                               (size_t)cols * sizeof *c);
                }
                /* A is read in place up to `split` (the tile takes any strides); masked
                 * or partial row groups go through a packed, zero-filled copy */
                int split = lo;
                if (rows == MR && p->mask == ICL_MASK_NONE)
                    split = hi;
                else if (rows == MR && p->a_cs == 1 && p->mask == ICL_MASK_K_LE_ROW)
                    split = max_int(lo, min_int(hi, r0));
                if (split > lo) {
                    tile(split - lo, p->a + (long)r0 * p->a_rs + (long)lo * p->a_cs, p->a_rs, p->a_cs,
                         bk + (long)(lo - k0) * b_rs, b_rs, c_in, c_in_rs, ct, ldct);
                    c_in = ct;
                    c_in_rs = ldct;
                }
                if (hi > split) {
                    pack_a(ap, p, r0, rows, split, hi - split);
                    tile(hi - split, ap, 1, MR, bk + (long)(split - k0) * b_rs, b_rs, c_in, c_in_rs, ct, ldct);
                }
                if (!whole)
                    for (int r = 0; r < rows; r++) {
                        int n = p->c_lower ? min_int(cols, r0 + r - j0 + 1) : cols;
                        if (n > 0)
                            memcpy(c + (long)r * p->ldc, scratch + r * NR, (size_t)n * sizeof *c);
                    }
            }
        }
    }
}
