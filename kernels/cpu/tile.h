/* Internal: the register tile under the CPU matrix products (matmul.c,
 * attention.c), and the blocked product built on it.
 *
 * A tile updates an MR x NR block of C with one multiply-add chain per
 * element, k = 0 .. kc-1 in order, starting from the value already in C:
 *   c[i*ldc + j] += sum_k a[i*a_rs + k*a_cs] * b[k*b_rs + j]
 * B is kc rows of NR floats, b_rs apart (packed: b_rs = NR); A is read
 * through strides, in place or from a packed panel. Each element's chain
 * depends only on its own row of A and column of B, so an element gets the
 * same bits in any tile, thread or batch position, and splitting k into
 * slices (C stored and reloaded in between, which is exact) changes
 * nothing. */
#ifndef ICL_CPU_TILE_H
#define ICL_CPU_TILE_H

enum {
    ICL_TILE_MR = 6,  /* rows of a tile */
    ICL_TILE_NR = 16, /* columns of a tile */
    ICL_TILE_KC = 256 /* longest k slice callers pack at once */
};

typedef void (*icl_tile_fn)(int kc, const float *a, long a_rs, long a_cs, const float *b, long b_rs,
                            const float *c_in, long c_in_rs, float *c, long ldc);

/* The tile for this CPU: AVX2 fused multiply-adds on x86-64 when the CPU has
 * them, else portable multiply-then-add. The choice is fixed per machine. */
icl_tile_fn icl_cpu_tile(void);

/* Which entries of A count; the others read as 0. Attention's rows of probs
 * and dscores hold k = s <= r = t; their transposes hold k = t >= r = s. */
typedef enum { ICL_MASK_NONE, ICL_MASK_K_LE_ROW, ICL_MASK_K_GE_ROW } icl_a_mask;

/* Where a product's chains start: C's own values (the default, C +=), zero
 * (C =), or one row for every row of C (C = row + ..., e.g. a bias). */
typedef enum { ICL_START_C, ICL_START_ZERO, ICL_START_ROW } icl_c_start;

/* C (rows, cols) += A (rows, depth) . (b_scale * B) (depth, cols), with
 * A[r][k] at a[r*a_rs + k*a_cs] and B[k][j] at b[k*b_rs + j*b_cs]. With
 * c_lower only C[r][j], j <= r, is updated (the rest is left untouched).
 * start other than ICL_START_C (then start_row (cols) for ICL_START_ROW)
 * needs mask ICL_MASK_NONE and no c_lower: every entry of C is written. */
typedef struct {
    int rows, cols, depth;
    const float *a;
    long a_rs, a_cs;
    icl_a_mask mask;
    const float *b;
    long b_rs, b_cs;
    float b_scale;
    float *c;
    long ldc;
    int c_lower;
    icl_c_start start;
    const float *start_row;
} icl_product;

/* One thread computes the whole product; callers split the work between
 * threads by rows or columns of C, which leaves every element's chain as is. */
void icl_cpu_product(const icl_product *p, icl_tile_fn tile);

#endif
