/* Whole-tensor sums (loss totals, gradient norms) in double.
 *
 * The input is cut into fixed CHUNK-element chunks whatever the thread
 * count; each chunk is summed by one thread in a fixed order and the chunk
 * sums are added serially in order, so the result is bit-identical for any
 * number of threads. */
#include "cpu_kernels.h"

enum {
    CHUNK = 4096,        /* elements per chunk */
    CHUNKS_PER_PASS = 256 /* chunk sums held on the stack at once */
};

/* Sum of squares of one chunk with four interleaved partial sums combined in a fixed order. */
static double chunk_sum_squares(const float *x, size_t n) {
    double a[4] = {0};
    size_t i = 0;
    for (; i + 4 <= n; i += 4)
        for (int j = 0; j < 4; j++)
            a[j] += (double)x[i + j] * (double)x[i + j];
    double s = (a[0] + a[1]) + (a[2] + a[3]);
    for (; i < n; i++)
        s += (double)x[i] * (double)x[i];
    return s;
}

static double chunked_sum_squares(const float *x, size_t n) {
    size_t n_chunks = (n + CHUNK - 1) / CHUNK;
    double total = 0.0;
    for (size_t first = 0; first < n_chunks; first += CHUNKS_PER_PASS) {
        double partial[CHUNKS_PER_PASS];
        int count = n_chunks - first < CHUNKS_PER_PASS ? (int)(n_chunks - first) : CHUNKS_PER_PASS;
#pragma omp parallel for schedule(static)
        for (int k = 0; k < count; k++) {
            size_t start = (first + (size_t)k) * CHUNK;
            size_t len = n - start < CHUNK ? n - start : CHUNK;
            partial[k] = chunk_sum_squares(x + start, len);
        }
        for (int k = 0; k < count; k++)
            total += partial[k];
    }
    return total;
}

// sum of x (n) squared
double icl_cpu_sum_squares(const float *x, size_t n) { return chunked_sum_squares(x, n); }

double icl_cpu_sum_squares_naive(const float *x, size_t n) {
    double s = 0.0;
    for (size_t i = 0; i < n; i++)
        s += (double)x[i] * x[i];
    return s;
}
