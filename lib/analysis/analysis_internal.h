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

#endif
