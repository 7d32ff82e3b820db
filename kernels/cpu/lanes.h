/* Internal: row reductions in LANES independent partial sums combined in a
 * fixed order. The compiler vectorises them without reassociating anything
 * (no -ffast-math), and a sum depends only on the values and their count,
 * never on alignment, thread count or where the row sits in the batch. The
 * layernorms, softmaxes and attention's softmax backward share them, so that
 * two kernels computing the same sum agree to the bit. */
#ifndef ICL_CPU_LANES_H
#define ICL_CPU_LANES_H

enum { ICL_LANES = 8 };

static inline float icl_lanes_combine(const float acc[ICL_LANES]) {
    return ((acc[0] + acc[1]) + (acc[2] + acc[3])) + ((acc[4] + acc[5]) + (acc[6] + acc[7]));
}

/* sum of a[0..n): whole groups of LANES in lanes, then the rest in order */
static inline float icl_lanes_sum(const float *a, int n) {
    float acc[ICL_LANES] = {0};
    int i = 0;
    for (; i + ICL_LANES <= n; i += ICL_LANES)
        for (int j = 0; j < ICL_LANES; j++)
            acc[j] += a[i + j];
    float s = icl_lanes_combine(acc);
    for (; i < n; i++)
        s += a[i];
    return s;
}

/* a[0..n) . b[0..n), in the same order as icl_lanes_sum */
static inline float icl_lanes_dot(const float *a, const float *b, int n) {
    float acc[ICL_LANES] = {0};
    int i = 0;
    for (; i + ICL_LANES <= n; i += ICL_LANES)
        for (int j = 0; j < ICL_LANES; j++)
            acc[j] += a[i + j] * b[i + j];
    float s = icl_lanes_combine(acc);
    for (; i < n; i++)
        s += a[i] * b[i];
    return s;
}

#endif
