/* Internal: the register tile under the CPU matrix products (matmul.c,
 * attention.c).
 *
 * A tile updates an MR x NR block of C with one multiply-add chain per
 * element, k = 0 .. kc-1 in order, starting from the value already in C:
 *   c[i*ldc + j] += sum_k a[i*a_rs + k*a_cs] * bp[k*NR + j]
 * B comes packed as kc rows of NR floats; A is read through strides, in
 * place or from a packed panel. Each element's chain depends only on its own
 * row of A and column of B, so an element gets the same bits in any tile,
 * thread or batch position, and splitting k into slices (C stored and
 * reloaded in between, which is exact) changes nothing. */
#ifndef ICL_CPU_TILE_H
#define ICL_CPU_TILE_H

enum {
    ICL_TILE_MR = 6,  /* rows of a tile */
    ICL_TILE_NR = 16, /* columns of a tile */
    ICL_TILE_KC = 256 /* longest k slice callers pack at once */
};

typedef void (*icl_tile_fn)(int kc, const float *a, long a_rs, long a_cs, const float *bp, float *c, long ldc);

/* The tile for this CPU: AVX2 fused multiply-adds on x86-64 when the CPU has
 * them, else portable multiply-then-add. The choice is fixed per machine. */
icl_tile_fn icl_cpu_tile(void);

#endif
