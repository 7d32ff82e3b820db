/* Attention to roles (Yousefi et al.): how one query position's attention
 * splits over labelled positions, and the relevant/irrelevant ratio. */
#include <math.h>
#include "analysis_internal.h"
#include "error.h"
#include "icl/analysis.h"

/* a (T): finite, non-negative; returns its sum through *total. */
static icl_status check_row(const char *fn, const float *a, int T, double *total) {
    ICL_TRY(icl_need_ptr(fn, "a", a));
    ICL_TRY(icl_need_min(fn, "T", T, 1));
    double s = 0.0;
    for (int t = 0; t < T; t++) {
        if (!(a[t] >= 0.0f) || !isfinite(a[t]))
            return icl_fail(ICL_ERR_INVALID_ARG, "%s: attention a[%d] = %g is negative or not finite", fn, t,
                            (double)a[t]);
        s += a[t];
    }
    *total = s;
    return ICL_OK;
}

icl_status icl_attention_fractions(const float *a, int T, const int32_t *labels, int n_labels, double *frac) {
    static const char fn[] = "icl_attention_fractions";
    double total;
    ICL_TRY(check_row(fn, a, T, &total));
    ICL_TRY(icl_need_ptr(fn, "labels", labels));
    ICL_TRY(icl_need_ptr(fn, "frac", frac));
    ICL_TRY(icl_need_min(fn, "n_labels", n_labels, 1));
    if (total == 0.0)
        return icl_fail(ICL_ERR_INVALID_ARG, "%s: the attention row sums to 0", fn);
    for (int t = 0; t < T; t++)
        if (labels[t] < -1 || labels[t] >= n_labels)
            return icl_fail(ICL_ERR_INVALID_ARG, "%s: labels[%d] = %d is outside [-1, %d)", fn, t, (int)labels[t],
                            n_labels);
    for (int c = 0; c < n_labels; c++)
        frac[c] = 0.0;
    for (int t = 0; t < T; t++)
        if (labels[t] >= 0)
            frac[labels[t]] += a[t];
    for (int c = 0; c < n_labels; c++)
        frac[c] /= total;
    return ICL_OK;
}

icl_status icl_attention_ratio(const float *a, int T, const uint8_t *relevant, const uint8_t *irrelevant,
                               double *ratio) {
    static const char fn[] = "icl_attention_ratio";
    double total;
    ICL_TRY(check_row(fn, a, T, &total));
    ICL_TRY(icl_need_ptr(fn, "relevant", relevant));
    ICL_TRY(icl_need_ptr(fn, "irrelevant", irrelevant));
    ICL_TRY(icl_need_ptr(fn, "ratio", ratio));
    double num = 0.0, den = 0.0;
    int n_rel = 0, n_irr = 0;
    for (int t = 0; t < T; t++) {
        if (relevant[t] && irrelevant[t])
            return icl_fail(ICL_ERR_INVALID_ARG, "%s: position %d is in both the relevant and irrelevant masks", fn,
                            t);
        if (relevant[t]) {
            num += a[t];
            n_rel++;
        } else if (irrelevant[t]) {
            den += a[t];
            n_irr++;
        }
    }
    if (n_rel == 0 || n_irr == 0)
        return icl_fail(ICL_ERR_INVALID_ARG, "%s: the %s mask is empty", fn, n_rel == 0 ? "relevant" : "irrelevant");
    *ratio = den > 0.0 ? num / den : num > 0.0 ? INFINITY : NAN;
    return ICL_OK;
}
