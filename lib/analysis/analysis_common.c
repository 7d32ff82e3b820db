/* Argument checks and a stable argsort for the analysis functions. */
#include <math.h>
#include <stdlib.h>
#include "analysis_internal.h"
#include "error.h"

icl_status icl_need_ptr(const char *fn, const char *what, const void *p) {
    if (!p)
        return icl_fail(ICL_ERR_INVALID_ARG, "%s: %s is NULL", fn, what);
    return ICL_OK;
}

icl_status icl_need_min(const char *fn, const char *what, int v, int min) {
    if (v < min)
        return icl_fail(ICL_ERR_INVALID_ARG, "%s: %s = %d, must be >= %d", fn, what, v, min);
    return ICL_OK;
}

icl_status icl_check_labels(const char *fn, const int32_t *labels, int n, int n_classes) {
    for (int i = 0; i < n; i++)
        if (labels[i] < 0 || labels[i] >= n_classes)
            return icl_fail(ICL_ERR_INVALID_ARG, "%s: label[%d] = %d is outside [0, %d)", fn, i, (int)labels[i],
                            n_classes);
    return ICL_OK;
}

icl_status icl_check_finite_f(const char *fn, const char *what, const float *x, size_t n) {
    for (size_t i = 0; i < n; i++)
        if (!isfinite(x[i]))
            return icl_fail(ICL_ERR_INVALID_ARG, "%s: %s[%zu] = %g is not finite", fn, what, i, (double)x[i]);
    return ICL_OK;
}

icl_status icl_check_finite_d(const char *fn, const char *what, const double *x, size_t n) {
    for (size_t i = 0; i < n; i++)
        if (!isfinite(x[i]))
            return icl_fail(ICL_ERR_INVALID_ARG, "%s: %s[%zu] = %g is not finite", fn, what, i, x[i]);
    return ICL_OK;
}

icl_status icl_argsort(const double *v, int n, int *idx) {
    int *tmp = malloc((size_t)(n > 0 ? n : 1) * sizeof *tmp);
    if (!tmp)
        return icl_fail(ICL_ERR_NOMEM, "icl_argsort: out of memory for %d items", n);
    for (int i = 0; i < n; i++)
        idx[i] = i;
    /* Bottom-up merge sort: taking from the left run on ties keeps it stable. */
    int *src = idx, *dst = tmp;
    for (int width = 1; width < n; width *= 2) {
        for (int lo = 0; lo < n; lo += 2 * width) {
            int mid = lo + width < n ? lo + width : n;
            int hi = lo + 2 * width < n ? lo + 2 * width : n;
            int i = lo, j = mid, o = lo;
            while (i < mid && j < hi)
                dst[o++] = v[src[j]] < v[src[i]] ? src[j++] : src[i++];
            while (i < mid)
                dst[o++] = src[i++];
            while (j < hi)
                dst[o++] = src[j++];
        }
        int *t = src;
        src = dst;
        dst = t;
    }
    if (src != idx)
        for (int i = 0; i < n; i++)
            idx[i] = src[i];
    free(tmp);
    return ICL_OK;
}
