/* Register tiles for the CPU matrix products (see tile.h). */
#include "tile.h"
#include <string.h>

#if defined(__GNUC__) && (defined(__x86_64__) || defined(__i386__)) && !defined(ICL_CPU_PORTABLE_TILE)
#include <immintrin.h>
#define ICL_HAVE_AVX2_TILE 1
#endif

enum { MR = ICL_TILE_MR, NR = ICL_TILE_NR };

static void tile_portable(int kc, const float *a, long a_rs, long a_cs, const float *bp, float *c, long ldc) {
    float acc[MR][NR];
    for (int i = 0; i < MR; i++)
        memcpy(acc[i], c + i * ldc, sizeof acc[i]);
    for (int k = 0; k < kc; k++, a += a_cs, bp += NR)
        for (int i = 0; i < MR; i++) {
            float ai = a[i * a_rs];
            for (int j = 0; j < NR; j++)
                acc[i][j] += ai * bp[j];
        }
    for (int i = 0; i < MR; i++)
        memcpy(c + i * ldc, acc[i], sizeof acc[i]);
}

#ifdef ICL_HAVE_AVX2_TILE
/* 12 accumulators (6 rows x 2 vectors of 8) stay in registers for the whole k loop */
#define ROW_LOAD(i)                                      \
    __m256 c##i##0 = _mm256_loadu_ps(c + (i) * ldc);     \
    __m256 c##i##1 = _mm256_loadu_ps(c + (i) * ldc + 8)
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
                                                          const float *bp, float *c, long ldc) {
    ROW_LOAD(0);
    ROW_LOAD(1);
    ROW_LOAD(2);
    ROW_LOAD(3);
    ROW_LOAD(4);
    ROW_LOAD(5);
    for (int k = 0; k < kc; k++, a += a_cs, bp += NR) {
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
