/* Internal: argument checks and sorting shared by the analysis_*.c files. */
#ifndef ICL_LIB_ANALYSIS_INTERNAL_H
#define ICL_LIB_ANALYSIS_INTERNAL_H

#include <stddef.h>
#include <stdint.h>
#include "icl/status.h"

/* ICL_ERR_INVALID_ARG naming `fn` and `what` if p is NULL. */
icl_status icl_need_ptr(const char *fn, const char *what, const void *p);
/* ICL_ERR_INVALID_ARG unless v >= min. */
icl_status icl_need_min(const char *fn, const char *what, int v, int min);
/* Every label in [0, n_classes). */
icl_status icl_check_labels(const char *fn, const int32_t *labels, int n, int n_classes);
/* Every element finite. */
icl_status icl_check_finite_f(const char *fn, const char *what, const float *x, size_t n);
icl_status icl_check_finite_d(const char *fn, const char *what, const double *x, size_t n);

/* idx (n) = 0..n-1 ordered by increasing v, equal values by index (stable
 * merge sort, so the order never depends on the platform's qsort). */
icl_status icl_argsort(const double *v, int n, int *idx);

/* Streaming mean and covariance (no probe uses it yet; the tests check it).
 * Accumulates vectors of dimension d in double without storing them
 * (Welford/Chan updates: each batch's own mean and centred scatter are merged
 * into the running ones). with_cov = 0 keeps only the mean (O(d) memory
 * instead of O(d^2)). */
typedef struct icl_moments icl_moments;

icl_status icl_moments_create(int d, int with_cov, icl_moments **out);
/* x (d): one vector. */
icl_status icl_moments_add(icl_moments *m, const float *x);
/* X (n,d): n vectors. */
icl_status icl_moments_add_batch(icl_moments *m, const float *X, int n);
/* dst += src; both of the same d; covariance kept only if both track it. */
icl_status icl_moments_merge(icl_moments *dst, const icl_moments *src);
int64_t icl_moments_count(const icl_moments *m);
int icl_moments_dim(const icl_moments *m);
/* mean (d); ICL_ERR_STATE if nothing was added. */
icl_status icl_moments_mean(const icl_moments *m, double *mean);
/* cov (d,d) = scatter / (count - ddof), ddof 0 (population) or 1 (sample);
 * ICL_ERR_STATE without covariance tracking or with count <= ddof. */
icl_status icl_moments_covariance(const icl_moments *m, int ddof, double *cov);
void icl_moments_free(icl_moments *m);

/* ratio = sum_{relevant} a / sum_{irrelevant} a over two disjoint, non-empty
 * masks (T, nonzero = in the set). A zero denominator gives +inf (numerator > 0) or NaN
 * (numerator 0); no floor is applied. */
icl_status icl_attention_ratio(const float *a, int T, const uint8_t *relevant, const uint8_t *irrelevant,
                               double *ratio);

#endif
