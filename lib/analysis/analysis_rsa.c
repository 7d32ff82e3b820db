/* Representational similarity analysis (Yousefi et al.): pooling,
 * standardisation, cosine similarity matrices, hypothesis matrices and the
 * rank correlation between them with a permutation p-value. */
#include <math.h>
#include <stdlib.h>
#include "analysis_internal.h"
#include "error.h"
#include "icl/analysis.h"

icl_status icl_pool_span(const float *h, int T, int d, int start, int end, icl_pool_mode mode, float *out) {
    static const char fn[] = "icl_pool_span";
    ICL_TRY(icl_need_ptr(fn, "h", h));
    ICL_TRY(icl_need_ptr(fn, "out", out));
    ICL_TRY(icl_need_min(fn, "T", T, 1));
    ICL_TRY(icl_need_min(fn, "d", d, 1));
    if (start < 0 || end > T || start >= end)
        return icl_fail(ICL_ERR_INVALID_ARG, "%s: span [%d, %d) is empty or outside [0, %d)", fn, start, end, T);
    if (mode != ICL_POOL_LAST && mode != ICL_POOL_MEAN && mode != ICL_POOL_MAX)
        return icl_fail(ICL_ERR_INVALID_ARG, "%s: unknown pooling mode %d", fn, (int)mode);
    // h (T,d)
    for (int c = 0; c < d; c++) {
        if (mode == ICL_POOL_LAST) {
            out[c] = h[(size_t)(end - 1) * d + c];
        } else if (mode == ICL_POOL_MEAN) {
            double s = 0.0;
            for (int t = start; t < end; t++)
                s += h[(size_t)t * d + c];
            out[c] = (float)(s / (end - start));
        } else {
            float m = h[(size_t)start * d + c];
            for (int t = start + 1; t < end; t++)
                if (h[(size_t)t * d + c] > m)
                    m = h[(size_t)t * d + c];
            out[c] = m;
        }
    }
    return ICL_OK;
}

icl_status icl_standardize(const float *X, int n, int d, double *Z) {
    static const char fn[] = "icl_standardize";
    ICL_TRY(icl_need_ptr(fn, "X", X));
    ICL_TRY(icl_need_ptr(fn, "Z", Z));
    ICL_TRY(icl_need_min(fn, "n", n, 1));
    ICL_TRY(icl_need_min(fn, "d", d, 1));
    ICL_TRY(icl_check_finite_f(fn, "X", X, (size_t)n * d));
    // X (n,d) -> Z (n,d), feature by feature, two passes for accuracy
    for (int c = 0; c < d; c++) {
        double mean = 0.0, ss = 0.0;
        for (int i = 0; i < n; i++)
            mean += X[(size_t)i * d + c];
        mean /= n;
        for (int i = 0; i < n; i++) {
            double z = X[(size_t)i * d + c] - mean;
            ss += z * z;
        }
        double sd = sqrt(ss / n);
        for (int i = 0; i < n; i++)
            Z[(size_t)i * d + c] = sd > 0.0 ? (X[(size_t)i * d + c] - mean) / sd : 0.0;
    }
    return ICL_OK;
}

icl_status icl_cosine_similarity(const double *Z, int n, int d, double *S) {
    static const char fn[] = "icl_cosine_similarity";
    ICL_TRY(icl_need_ptr(fn, "Z", Z));
    ICL_TRY(icl_need_ptr(fn, "S", S));
    ICL_TRY(icl_need_min(fn, "n", n, 1));
    ICL_TRY(icl_need_min(fn, "d", d, 1));
    ICL_TRY(icl_check_finite_d(fn, "Z", Z, (size_t)n * d));
    double *norm = malloc((size_t)n * sizeof *norm);
    if (!norm)
        return icl_fail(ICL_ERR_NOMEM, "%s: out of memory for %d rows", fn, n);
    for (int i = 0; i < n; i++) {
        double s = 0.0;
        for (int c = 0; c < d; c++)
            s += Z[(size_t)i * d + c] * Z[(size_t)i * d + c];
        norm[i] = sqrt(s);
    }
    // Z (n,d) -> S (n,n), computed once per pair so S is exactly symmetric
    for (int i = 0; i < n; i++)
        for (int j = i; j < n; j++) {
            double s = 0.0;
            if (norm[i] > 0.0 && norm[j] > 0.0) {
                for (int c = 0; c < d; c++)
                    s += Z[(size_t)i * d + c] * Z[(size_t)j * d + c];
                s /= norm[i] * norm[j];
            }
            S[(size_t)i * n + j] = s;
            S[(size_t)j * n + i] = s;
        }
    free(norm);
    return ICL_OK;
}

icl_status icl_rsa_rsm(const float *X, int n, int d, double *S) {
    static const char fn[] = "icl_rsa_rsm";
    ICL_TRY(icl_need_ptr(fn, "X", X));
    ICL_TRY(icl_need_ptr(fn, "S", S));
    ICL_TRY(icl_need_min(fn, "n", n, 1));
    ICL_TRY(icl_need_min(fn, "d", d, 1));
    double *Z = malloc((size_t)n * d * sizeof *Z);
    if (!Z)
        return icl_fail(ICL_ERR_NOMEM, "%s: out of memory for a %d x %d matrix", fn, n, d);
    icl_status st = icl_standardize(X, n, d, Z);
    if (st == ICL_OK)
        st = icl_cosine_similarity(Z, n, d, S);
    free(Z);
    return st;
}

icl_status icl_rsa_hypothesis_labels(const int32_t *labels, int n, double *H) {
    static const char fn[] = "icl_rsa_hypothesis_labels";
    ICL_TRY(icl_need_ptr(fn, "labels", labels));
    ICL_TRY(icl_need_ptr(fn, "H", H));
    ICL_TRY(icl_need_min(fn, "n", n, 1));
    for (int a = 0; a < n; a++)
        for (int b = 0; b < n; b++)
            H[(size_t)a * n + b] = labels[a] == labels[b] ? 1.0 : 0.0;
    return ICL_OK;
}

icl_status icl_rsa_hypothesis_values(const double *v, int n, double *H) {
    static const char fn[] = "icl_rsa_hypothesis_values";
    ICL_TRY(icl_need_ptr(fn, "v", v));
    ICL_TRY(icl_need_ptr(fn, "H", H));
    ICL_TRY(icl_need_min(fn, "n", n, 1));
    ICL_TRY(icl_check_finite_d(fn, "v", v, (size_t)n));
    for (int a = 0; a < n; a++)
        for (int b = 0; b < n; b++)
            H[(size_t)a * n + b] = -fabs(v[a] - v[b]);
    return ICL_OK;
}

// M (n,n) -> its strict upper triangle, row by row, into tri (n(n-1)/2).
static void upper_triangle(const double *M, int n, double *tri) {
    size_t k = 0;
    for (int a = 0; a < n; a++)
        for (int b = a + 1; b < n; b++)
            tri[k++] = M[(size_t)a * n + b];
}

icl_status icl_rsa_alignment(const double *S, const double *H, int n, double *rho) {
    static const char fn[] = "icl_rsa_alignment";
    ICL_TRY(icl_need_ptr(fn, "S", S));
    ICL_TRY(icl_need_ptr(fn, "H", H));
    ICL_TRY(icl_need_ptr(fn, "rho", rho));
    ICL_TRY(icl_need_min(fn, "n", n, 3));
    size_t m = (size_t)n * (n - 1) / 2;
    if (m > (size_t)INT32_MAX)
        return icl_fail(ICL_ERR_INVALID_ARG, "%s: n = %d gives too many pairs", fn, n);
    double *s = malloc(m * sizeof *s), *h = malloc(m * sizeof *h);
    icl_status st = !s || !h ? icl_fail(ICL_ERR_NOMEM, "%s: out of memory for %zu pairs", fn, m) : ICL_OK;
    if (st == ICL_OK) {
        upper_triangle(S, n, s);
        upper_triangle(H, n, h);
        st = icl_spearman(s, h, (int)m, rho);
    }
    free(s);
    free(h);
    return st;
}

/* With a 0/1 hypothesis the ranks of H are an increasing affine function of
 * the indicator "same label", so Spearman(S, H) = Pearson(rank S, indicator)
 * = sum over same-label pairs of the centred ranks of S, divided by
 * sqrt(sum of squared centred ranks * n_same * (M - n_same) / M). n_same does
 * not change under a permutation of the labels, so each permutation costs one
 * pass over the pairs instead of a sort. */
static double label_alignment(const double *rank_centred, double norm, const int *lab, int n) {
    double s = 0.0;
    size_t k = 0;
    for (int a = 0; a < n; a++)
        for (int b = a + 1; b < n; b++, k++)
            if (lab[a] == lab[b])
                s += rank_centred[k];
    return s / norm;
}

icl_status icl_rsa_permutation_test(const double *S, const int32_t *labels, int n, int n_perm, icl_rng *rng,
                                    double *rho, double *p_value) {
    static const char fn[] = "icl_rsa_permutation_test";
    ICL_TRY(icl_need_ptr(fn, "S", S));
    ICL_TRY(icl_need_ptr(fn, "labels", labels));
    ICL_TRY(icl_need_ptr(fn, "rng", rng));
    ICL_TRY(icl_need_ptr(fn, "rho", rho));
    ICL_TRY(icl_need_ptr(fn, "p_value", p_value));
    ICL_TRY(icl_need_min(fn, "n", n, 3));
    ICL_TRY(icl_need_min(fn, "n_perm", n_perm, 1));
    size_t m = (size_t)n * (n - 1) / 2;
    if (m > (size_t)INT32_MAX)
        return icl_fail(ICL_ERR_INVALID_ARG, "%s: n = %d gives too many pairs", fn, n);
    ICL_TRY(icl_check_finite_d(fn, "S", S, (size_t)n * n));
    double *r = malloc(m * sizeof *r), *tri = malloc(m * sizeof *tri);
    int *lab = malloc((size_t)n * sizeof *lab);
    icl_status st = !r || !tri || !lab ? icl_fail(ICL_ERR_NOMEM, "%s: out of memory for %zu pairs", fn, m) : ICL_OK;
    if (st == ICL_OK) {
        upper_triangle(S, n, tri);
        st = icl_rank_average(tri, (int)m, r);
    }
    if (st == ICL_OK) {
        double mean = 0.0, ss = 0.0;
        for (size_t k = 0; k < m; k++)
            mean += r[k];
        mean /= (double)m;
        for (size_t k = 0; k < m; k++) {
            r[k] -= mean;
            ss += r[k] * r[k];
        }
        size_t same = 0;
        for (int a = 0; a < n; a++) {
            lab[a] = labels[a];
            for (int b = a + 1; b < n; b++)
                same += labels[a] == labels[b];
        }
        if (ss == 0.0 || same == 0 || same == m) {
            *rho = NAN;
            *p_value = NAN;
        } else {
            double norm = sqrt(ss * (double)same * (double)(m - same) / (double)m);
            double obs = label_alignment(r, norm, lab, n);
            int at_least = 0;
            for (int i = 0; i < n_perm; i++) {
                icl_rng_shuffle_int(rng, lab, n);
                at_least += label_alignment(r, norm, lab, n) >= obs - 1e-12;
            }
            *rho = obs;
            *p_value = (1.0 + at_least) / (1.0 + n_perm);
        }
    }
    free(r);
    free(tri);
    free(lab);
    return st;
}
