/* Fused row softmax + cross-entropy loss, and its backward. */
#include <math.h>
#include "cpu_kernels.h"
#include "fast_math.h"
#include "lanes.h"

/* p (n) = softmax of x (n); returns the sum of e^(x - max) and sets *mx_out to
 * the max. Shared with attention's causal rows. */
ICL_WIDE_CLONES float icl_cpu_softmax_row(float *p, const float *x, int n, float *mx_out) {
    /* The maximum is exact in any order, so it may be taken in vector lanes
     * (a NaN anywhere makes the whole row NaN through the sum either way). */
    float mx = x[0];
#pragma omp simd reduction(max : mx)
    for (int v = 1; v < n; v++)
        mx = x[v] > mx ? x[v] : mx;
#pragma omp simd
    for (int v = 0; v < n; v++)
        p[v] = icl_fast_exp_minus_abs(x[v] - mx); /* x - mx <= 0 */
    float sum = icl_lanes_sum(p, n);
    float inv = 1.0f / sum;
#pragma omp simd
    for (int v = 0; v < n; v++)
        p[v] *= inv;
    *mx_out = mx;
    return sum;
}

// losses (N), probs (N,V) from logits (N,V), targets (N), weights (N, nullable)
void icl_cpu_crossentropy_forward(float *losses, float *probs, const float *logits, const int32_t *targets,
                                  const float *weights, int N, int V) {
#pragma omp parallel for schedule(static)
    for (int n = 0; n < N; n++) {
        const float *x = logits + (long)n * V;
        float mx, sum = icl_cpu_softmax_row(probs + (long)n * V, x, V, &mx);
        /* -log softmax from the logits rather than log(p): exact for tiny p */
        losses[n] = (weights && weights[n] == 0.0f) ? 0.0f : logf(sum) - (x[targets[n]] - mx);
    }
}

void icl_cpu_crossentropy_forward_naive(float *losses, float *probs, const float *logits, const int32_t *targets,
                                        const float *weights, int N, int V) {
    for (int n = 0; n < N; n++) {
        const float *x = logits + (long)n * V;
        double mx = x[0], sum = 0.0;
        for (int v = 1; v < V; v++)
            mx = x[v] > mx ? x[v] : mx;
        for (int v = 0; v < V; v++)
            sum += exp((double)x[v] - mx);
        for (int v = 0; v < V; v++)
            probs[(long)n * V + v] = (float)(exp((double)x[v] - mx) / sum);
        losses[n] = (weights && weights[n] == 0.0f) ? 0.0f : (float)(log(sum) - ((double)x[targets[n]] - mx));
    }
}

// dlogits (N,V) += dlosses[n] * (probs - onehot(targets[n])) where dlosses[n] != 0
void icl_cpu_crossentropy_backward(float *dlogits, const float *dlosses, const float *probs, const int32_t *targets,
                                   int N, int V) {
#pragma omp parallel for schedule(static)
    for (int n = 0; n < N; n++) {
        float dl = dlosses[n];
        if (dl == 0.0f)
            continue; /* masked row: its target may be invalid */
        float *d = dlogits + (long)n * V;
        const float *p = probs + (long)n * V;
#pragma omp simd
        for (int v = 0; v < V; v++)
            d[v] += dl * p[v];
        d[targets[n]] -= dl;
    }
}

void icl_cpu_crossentropy_backward_naive(float *dlogits, const float *dlosses, const float *probs,
                                         const int32_t *targets, int N, int V) {
    for (int n = 0; n < N; n++) {
        if (dlosses[n] == 0.0f)
            continue;
        for (int v = 0; v < V; v++) {
            double g = (double)dlosses[n] * ((double)probs[(long)n * V + v] - (v == targets[n] ? 1.0 : 0.0));
            dlogits[(long)n * V + v] = (float)((double)dlogits[(long)n * V + v] + g);
        }
    }
}
