/* Register tiles for the CPU matrix products (see tile.h). */
#include "tile.h"
#include <string.h>

#if defined(__GNUC__) && (defined(__x86_64__) || defined(__i386__)) && !defined(ICL_CPU_PORTABLE_TILE)
#include <immintrin.h>
#define ICL_HAVE_AVX2_TILE 1
#endif

enum { MR = ICL_TILE_MR, NR = ICL_TILE_NR };

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

#define P_ROW_LOAD(i)                            \
    v4f c##i##0 = load4(ch + (i) * ldc);         \
    v4f c##i##1 = load4(ch + (i) * ldc + 4)
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

static void tile_portable(int kc, const float *a, long a_rs, long a_cs, const float *bp, float *c, long ldc) {
    for (int half = 0; half < 2; half++) {
        float *ch = c + half * 8;
        const float *bh = bp + half * 8, *ak = a;
        P_ROW_LOAD(0);
        P_ROW_LOAD(1);
        P_ROW_LOAD(2);
        P_ROW_LOAD(3);
        P_ROW_LOAD(4);
        P_ROW_LOAD(5);
        for (int k = 0; k < kc; k++, ak += a_cs, bh += NR) {
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
