/* Task-superposition metrics (Xiong et al.): per-task answer probabilities,
 * the "other" mass, calibration KL(lambda || p), the sorted-mean profile and
 * the number of tasks solved. */
#include <math.h>
#include <stdlib.h>
#include "analysis_internal.h"
#include "error.h"
#include "icl/analysis.h"

/* A task is solved when its answer is within this of the K-th best output
 * (Xiong et al.'s calculate_topk). */
#define SOLVED_SLACK 1e-5
/* Proportions must sum to 1 within this. */
#define LAMBDA_SUM_TOL 1e-6

/* P (n,K) holds probabilities: finite and in [0, 1]. */
static icl_status check_probs(const char *fn, const char *what, const double *P, size_t count) {
    ICL_TRY(icl_need_ptr(fn, what, P));
    for (size_t i = 0; i < count; i++)
        if (!(P[i] >= 0.0 && P[i] <= 1.0))
            return icl_fail(ICL_ERR_INVALID_ARG, "%s: %s[%zu] = %g is not a probability in [0, 1]", fn, what, i,
                            P[i]);
    return ICL_OK;
}

static icl_status check_matrix(const char *fn, const double *P, int n, int K) {
    ICL_TRY(icl_need_min(fn, "n", n, 1));
    ICL_TRY(icl_need_min(fn, "K", K, 1));
    return check_probs(fn, "P", P, (size_t)n * K);
}

static icl_status check_lambda(const char *fn, const double *lambda, int K) {
    ICL_TRY(icl_need_ptr(fn, "lambda", lambda));
    double sum = 0.0;
    for (int j = 0; j < K; j++) {
        if (!(lambda[j] >= 0.0 && lambda[j] <= 1.0))
            return icl_fail(ICL_ERR_INVALID_ARG, "%s: lambda[%d] = %g is not a proportion in [0, 1]", fn, j,
                            lambda[j]);
        sum += lambda[j];
    }
    if (fabs(sum - 1.0) > LAMBDA_SUM_TOL)
        return icl_fail(ICL_ERR_INVALID_ARG, "%s: proportions lambda sum to %.9g, not 1", fn, sum);
    return ICL_OK;
}

icl_status icl_superposition_summary(const double *P, int n, int K, double *mean, double *var, double *other,
                                     double *other_mean) {
    static const char fn[] = "icl_superposition_summary";
    ICL_TRY(check_matrix(fn, P, n, K));
    ICL_TRY(icl_need_ptr(fn, "mean", mean));
    ICL_TRY(icl_need_ptr(fn, "var", var));
    // P (n,K) -> mean, var (K) over prompts, two passes
    for (int j = 0; j < K; j++) {
        double s = 0.0;
        for (int i = 0; i < n; i++)
            s += P[(size_t)i * K + j];
        mean[j] = s / n;
        double ss = 0.0;
        for (int i = 0; i < n; i++) {
            double dv = P[(size_t)i * K + j] - mean[j];
            ss += dv * dv;
        }
        var[j] = n > 1 ? ss / (n - 1) : 0.0;
    }
    double total_other = 0.0;
    for (int i = 0; i < n; i++) {
        double s = 0.0;
        for (int j = 0; j < K; j++)
            s += P[(size_t)i * K + j];
        if (other)
            other[i] = 1.0 - s;
        total_other += 1.0 - s;
    }
    if (other_mean)
        *other_mean = total_other / n;
    return ICL_OK;
}

/* KL(lambda || p / scale) for validated inputs. */
static double kl_terms(const double *lambda, const double *p, int K, double scale) {
    double kl = 0.0;
    for (int j = 0; j < K; j++) {
        if (lambda[j] == 0.0)
            continue;
        double q = p[j] / scale;
        if (!(q > 0.0))
            return INFINITY;
        kl += lambda[j] * log(lambda[j] / q);
    }
    return kl;
}

static double kl_one(const double *lambda, const double *p, int K, int renormalize) {
    double scale = 1.0;
    if (renormalize) {
        scale = 0.0;
        for (int j = 0; j < K; j++)
            scale += p[j];
        if (scale == 0.0)
            return INFINITY;
    }
    return kl_terms(lambda, p, K, scale);
}

icl_status icl_kl_divergence(const double *lambda, const double *p, int K, int renormalize, double *kl) {
    static const char fn[] = "icl_kl_divergence";
    ICL_TRY(icl_need_min(fn, "K", K, 1));
    ICL_TRY(check_lambda(fn, lambda, K));
    ICL_TRY(check_probs(fn, "p", p, (size_t)K));
    ICL_TRY(icl_need_ptr(fn, "kl", kl));
    *kl = kl_one(lambda, p, K, renormalize);
    return ICL_OK;
}

icl_status icl_superposition_kl(const double *P, int n, int K, const double *lambda, int renormalize, double *kl,
                                double *kl_mean) {
    static const char fn[] = "icl_superposition_kl";
    ICL_TRY(check_matrix(fn, P, n, K));
    ICL_TRY(check_lambda(fn, lambda, K));
    if (!kl && !kl_mean)
        return icl_fail(ICL_ERR_INVALID_ARG, "%s: both outputs are NULL", fn);
    double sum = 0.0;
    for (int i = 0; i < n; i++) {
        double v = kl_one(lambda, P + (size_t)i * K, K, renormalize);
        if (kl)
            kl[i] = v;
        sum += v;
    }
    if (kl_mean)
        *kl_mean = sum / n;
    return ICL_OK;
}

icl_status icl_superposition_sorted_mean(const double *P, int n, int K, double *profile) {
    static const char fn[] = "icl_superposition_sorted_mean";
    ICL_TRY(check_matrix(fn, P, n, K));
    ICL_TRY(icl_need_ptr(fn, "profile", profile));
    double *row = malloc((size_t)K * sizeof *row);
    if (!row)
        return icl_fail(ICL_ERR_NOMEM, "%s: out of memory for K = %d", fn, K);
    for (int j = 0; j < K; j++)
        profile[j] = 0.0;
    for (int i = 0; i < n; i++) {
        /* insertion sort, decreasing: K is the number of tasks, a handful */
        for (int j = 0; j < K; j++) {
            double v = P[(size_t)i * K + j];
            int pos = j;
            while (pos > 0 && row[pos - 1] < v) {
                row[pos] = row[pos - 1];
                pos--;
            }
            row[pos] = v;
        }
        for (int j = 0; j < K; j++)
            profile[j] += row[j];
    }
    for (int j = 0; j < K; j++)
        profile[j] /= n;
    free(row);
    return ICL_OK;
}

icl_status icl_tasks_solved(const double *P, const double *pK, int n, int K, double *solved, double *r) {
    static const char fn[] = "icl_tasks_solved";
    ICL_TRY(check_matrix(fn, P, n, K));
    ICL_TRY(check_probs(fn, "pK", pK, (size_t)n));
    ICL_TRY(icl_need_ptr(fn, "r", r));
    double total = 0.0;
    for (int j = 0; j < K; j++) {
        int count = 0;
        for (int i = 0; i < n; i++)
            count += P[(size_t)i * K + j] >= pK[i] - SOLVED_SLACK;
        double frac = (double)count / n;
        if (solved)
            solved[j] = frac;
        total += frac;
    }
    *r = total;
    return ICL_OK;
}

icl_status icl_kth_largest(const double *v, int n, int k, double *out) {
    static const char fn[] = "icl_kth_largest";
    ICL_TRY(icl_need_ptr(fn, "v", v));
    ICL_TRY(icl_need_ptr(fn, "out", out));
    ICL_TRY(icl_need_min(fn, "n", n, 1));
    if (k < 1 || k > n)
        return icl_fail(ICL_ERR_INVALID_ARG, "%s: k = %d must be in [1, n] = [1, %d]", fn, k, n);
    ICL_TRY(icl_check_finite_d(fn, "v", v, (size_t)n));
    int *idx = malloc((size_t)n * sizeof *idx);
    if (!idx)
        return icl_fail(ICL_ERR_NOMEM, "%s: out of memory for %d values", fn, n);
    icl_status st = icl_argsort(v, n, idx);
    if (st == ICL_OK)
        *out = v[idx[n - k]];
    free(idx);
    return st;
}
