/* Internal: a branch-free exponential for the CPU kernels.
 *
 * glibc's expf and tanhf are scalar calls (tanhf costs ~25 ns here) and
 * dominated GELU and the softmaxes. This version is straight-line
 * arithmetic that the compiler vectorises inside `#pragma omp simd` loops
 * (clamps are done on integer bits: float compares block vectorisation under
 * the default -ftrapping-math). Being a fixed sequence of IEEE operations it
 * gives the same bits on every run and for any thread count. */
#ifndef ICL_CPU_FAST_MATH_H
#define ICL_CPU_FAST_MATH_H

#include <stdint.h>
#include <string.h>

/* Element loops marked ICL_WIDE_CLONES are compiled for AVX-512, AVX2 and
 * the baseline, the best one picked at load time. ISO C mode contracts
 * nothing into fused multiply-adds, so each version does the same IEEE
 * operations per element and gives the same bits; wider vectors only do more
 * elements at once. GCC only, and not under the sanitizers (their run-time
 * starts after ifunc resolvers run). */
#ifndef ICL_WIDE_CLONES /* a build may pin one version, e.g. to compare them */
#if defined(__GNUC__) && !defined(__clang__) && defined(__x86_64__) && !defined(__SANITIZE_ADDRESS__)
#define ICL_WIDE_CLONES __attribute__((target_clones("avx512f", "avx2", "default")))
#else
#define ICL_WIDE_CLONES
#endif
#endif

/* e^(-|x|) within 2 float ulps; |x| > 87 (infinity included) gives e^-87
 * (~1.6e-38, negligible next to the terms >= 1 it is summed with), NaN gives
 * NaN. Callers only need exponents <= 0: softmax's x - max, GELU's -2|u|. */
static inline float icl_fast_exp_minus_abs(float x) {
    const uint32_t abs_mask = 0x7fffffffu, limit_bits = 0x42ae0000u /* 87.0f */, inf_bits = 0x7f800000u;
    uint32_t bits;
    memcpy(&bits, &x, sizeof bits);
    uint32_t abs_bits = bits & abs_mask;
    /* Masks from sign bits instead of compares: a select here would let the
     * compiler branch around the arithmetic, which blocks vectorisation. */
    uint32_t nan_mask = (uint32_t)((int32_t)(inf_bits - abs_bits) >> 31);
    uint32_t excess = abs_bits - limit_bits;
    uint32_t below_mask = (uint32_t)((int32_t)excess >> 31);
    abs_bits = limit_bits + (excess & below_mask); /* min(|x|, 87) */
    float a;
    memcpy(&a, &abs_bits, sizeof a);
    a = -a;
    /* a = n ln2 + r with |r| <= ln2/2. Adding 1.5*2^23 rounds a/ln2 to the
     * integer n and leaves n in the low mantissa bits of `shifted`. */
    const float round_magic = 12582912.0f;
    const uint32_t round_magic_bits = 0x4b400000u;
    float shifted = a * 1.44269504088896341f + round_magic;
    float n = shifted - round_magic;
    /* ln2 in two parts (Cody-Waite) so that r keeps full float precision */
    float r = a - n * 0.693145751953125f;
    r = r - n * 1.428606765330187e-06f;
    /* Taylor series to r^7: truncation error below 1e-8 for |r| <= 0.347 */
    float p = 1.0f / 5040.0f;
    p = p * r + 1.0f / 720.0f;
    p = p * r + 1.0f / 120.0f;
    p = p * r + 1.0f / 24.0f;
    p = p * r + 1.0f / 6.0f;
    p = p * r + 0.5f;
    p = p * r + 1.0f;
    p = p * r + 1.0f;
    /* 2^n for n in [-126, 0], built in the exponent field (no float->int conversion) */
    uint32_t shifted_bits;
    memcpy(&shifted_bits, &shifted, sizeof shifted_bits);
    uint32_t scale_bits = (shifted_bits - round_magic_bits + 127u) << 23;
    float scale;
    memcpy(&scale, &scale_bits, sizeof scale);
    float result = p * scale;
    uint32_t result_bits;
    memcpy(&result_bits, &result, sizeof result_bits);
    result_bits |= nan_mask & 0x7fc00000u; /* NaN in, NaN out */
    memcpy(&result, &result_bits, sizeof result);
    return result;
}

#endif
