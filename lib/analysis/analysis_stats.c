/* Streaming mean/covariance, correlations, line fits and PCA. */
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include "analysis_internal.h"
#include "error.h"
#include "icl/analysis.h"

/* ---- streaming moments ---- */

struct icl_moments {
    int d;
    int with_cov;
    int64_t count;
    double *mean;     /* (d) */
    double *scatter;  /* (d,d) sum of centred outer products; upper triangle kept, NULL without covariance */
    double *bmean;    /* (d) work: mean of the batch being added */
    double *centred;  /* (d) work: one centred vector */
};

icl_status icl_moments_create(int d, int with_cov, icl_moments **out) {
    static const char fn[] = "icl_moments_create";
    ICL_TRY(icl_need_ptr(fn, "out", out));
    *out = NULL;
    ICL_TRY(icl_need_min(fn, "d", d, 1));
    icl_moments *m = calloc(1, sizeof *m);
    if (!m)
        return icl_fail(ICL_ERR_NOMEM, "%s: out of memory", fn);
    m->d = d;
    m->with_cov = with_cov != 0;
    m->mean = calloc((size_t)d, sizeof *m->mean);
    m->bmean = calloc((size_t)d, sizeof *m->bmean);
    m->centred = calloc((size_t)d, sizeof *m->centred);
    if (m->with_cov)
        m->scatter = calloc((size_t)d * d, sizeof *m->scatter);
    if (!m->mean || !m->bmean || !m->centred || (m->with_cov && !m->scatter)) {
        icl_moments_free(m);
        return icl_fail(ICL_ERR_NOMEM, "%s: out of memory for d = %d%s", fn, d, with_cov ? " with covariance" : "");
    }
    *out = m;
    return ICL_OK;
}

void icl_moments_free(icl_moments *m) {
    if (!m)
        return;
    free(m->mean);
    free(m->scatter);
    free(m->bmean);
    free(m->centred);
    free(m);
}

/* Chan et al.'s merge of (count, mean, scatter) with a group of nb vectors of
 * mean bmean whose own scatter was already added: the running mean moves by
 * delta*nb/n and the scatter gains delta delta^T * na*nb/n. */
static void merge_means(icl_moments *m, int64_t nb, const double *bmean) {
    int64_t na = m->count, n = na + nb;
    double wb = (double)nb / (double)n, cross = (double)na * (double)nb / (double)n;
    int d = m->d;
    for (int i = 0; i < d; i++)
        m->centred[i] = bmean[i] - m->mean[i];
    if (m->scatter)
        for (int i = 0; i < d; i++)
            for (int j = i; j < d; j++)
                m->scatter[(size_t)i * d + j] += m->centred[i] * m->centred[j] * cross;
    for (int i = 0; i < d; i++)
        m->mean[i] += m->centred[i] * wb;
    m->count = n;
}

icl_status icl_moments_add_batch(icl_moments *m, const float *X, int n) {
    static const char fn[] = "icl_moments_add_batch";
    ICL_TRY(icl_need_ptr(fn, "m", m));
    ICL_TRY(icl_need_ptr(fn, "X", X));
    ICL_TRY(icl_need_min(fn, "n", n, 1));
    int d = m->d;
    ICL_TRY(icl_check_finite_f(fn, "X", X, (size_t)n * d));
    // X (n,d): the batch's own mean, then its scatter about that mean, then merge
    for (int i = 0; i < d; i++)
        m->bmean[i] = 0.0;
    for (int r = 0; r < n; r++)
        for (int i = 0; i < d; i++)
            m->bmean[i] += X[(size_t)r * d + i];
    for (int i = 0; i < d; i++)
        m->bmean[i] /= n;
    if (m->scatter)
        for (int r = 0; r < n; r++) {
            for (int i = 0; i < d; i++)
                m->centred[i] = X[(size_t)r * d + i] - m->bmean[i];
            for (int i = 0; i < d; i++)
                for (int j = i; j < d; j++)
                    m->scatter[(size_t)i * d + j] += m->centred[i] * m->centred[j];
        }
    merge_means(m, n, m->bmean);
    return ICL_OK;
}

icl_status icl_moments_add(icl_moments *m, const float *x) { return icl_moments_add_batch(m, x, 1); }

icl_status icl_moments_merge(icl_moments *dst, const icl_moments *src) {
    static const char fn[] = "icl_moments_merge";
    ICL_TRY(icl_need_ptr(fn, "dst", dst));
    ICL_TRY(icl_need_ptr(fn, "src", src));
    if (dst == src)
        return icl_fail(ICL_ERR_INVALID_ARG, "%s: cannot merge an accumulator into itself", fn);
    if (dst->d != src->d)
        return icl_fail(ICL_ERR_SHAPE, "%s: dimensions differ (%d vs %d)", fn, dst->d, src->d);
    if (src->count == 0)
        return ICL_OK;
    if (dst->scatter && !src->scatter) {
        /* The merged scatter would be unknown: drop covariance tracking. */
        free(dst->scatter);
        dst->scatter = NULL;
        dst->with_cov = 0;
    }
    int d = dst->d;
    if (dst->scatter)
        for (int i = 0; i < d; i++)
            for (int j = i; j < d; j++)
                dst->scatter[(size_t)i * d + j] += src->scatter[(size_t)i * d + j];
    merge_means(dst, src->count, src->mean);
    return ICL_OK;
}

int64_t icl_moments_count(const icl_moments *m) { return m ? m->count : 0; }

int icl_moments_dim(const icl_moments *m) { return m ? m->d : 0; }

icl_status icl_moments_mean(const icl_moments *m, double *mean) {
    static const char fn[] = "icl_moments_mean";
    ICL_TRY(icl_need_ptr(fn, "m", m));
    ICL_TRY(icl_need_ptr(fn, "mean", mean));
    if (m->count == 0)
        return icl_fail(ICL_ERR_STATE, "%s: no vectors were added", fn);
    memcpy(mean, m->mean, (size_t)m->d * sizeof *mean);
    return ICL_OK;
}

icl_status icl_moments_covariance(const icl_moments *m, int ddof, double *cov) {
    static const char fn[] = "icl_moments_covariance";
    ICL_TRY(icl_need_ptr(fn, "m", m));
    ICL_TRY(icl_need_ptr(fn, "cov", cov));
    if (ddof != 0 && ddof != 1)
        return icl_fail(ICL_ERR_INVALID_ARG, "%s: ddof = %d, must be 0 or 1", fn, ddof);
    if (!m->scatter)
        return icl_fail(ICL_ERR_STATE, "%s: accumulator was created without covariance (or merged with one)", fn);
    if (m->count <= ddof)
        return icl_fail(ICL_ERR_STATE, "%s: %lld vectors are too few for ddof = %d", fn, (long long)m->count, ddof);
    int d = m->d;
    double denom = (double)(m->count - ddof);
    for (int i = 0; i < d; i++)
        for (int j = i; j < d; j++) {
            double c = m->scatter[(size_t)i * d + j] / denom;
            cov[(size_t)i * d + j] = c;
            cov[(size_t)j * d + i] = c;
        }
    return ICL_OK;
}

/* ---- correlations ---- */

static icl_status check_pair(const char *fn, const double *x, const double *y, int n) {
    ICL_TRY(icl_need_ptr(fn, "x", x));
    ICL_TRY(icl_need_ptr(fn, "y", y));
    ICL_TRY(icl_need_min(fn, "n", n, 2));
    ICL_TRY(icl_check_finite_d(fn, "x", x, (size_t)n));
    return icl_check_finite_d(fn, "y", y, (size_t)n);
}

/* Centred sums of squares and cross-products, two passes. */
static void centred_sums(const double *x, const double *y, int n, double *mx, double *my, double *sxx, double *syy,
                         double *sxy) {
    double ax = 0.0, ay = 0.0;
    for (int i = 0; i < n; i++) {
        ax += x[i];
        ay += y[i];
    }
    ax /= n;
    ay /= n;
    double xx = 0.0, yy = 0.0, xy = 0.0;
    for (int i = 0; i < n; i++) {
        double dx = x[i] - ax, dy = y[i] - ay;
        xx += dx * dx;
        yy += dy * dy;
        xy += dx * dy;
    }
    *mx = ax;
    *my = ay;
    *sxx = xx;
    *syy = yy;
    *sxy = xy;
}

static double correlation(double sxx, double syy, double sxy) {
    if (sxx == 0.0 || syy == 0.0)
        return NAN;
    double r = sxy / sqrt(sxx * syy);
    return r > 1.0 ? 1.0 : r < -1.0 ? -1.0 : r;
}

icl_status icl_rank_average(const double *x, int n, double *ranks) {
    static const char fn[] = "icl_rank_average";
    ICL_TRY(icl_need_ptr(fn, "x", x));
    ICL_TRY(icl_need_ptr(fn, "ranks", ranks));
    ICL_TRY(icl_need_min(fn, "n", n, 1));
    ICL_TRY(icl_check_finite_d(fn, "x", x, (size_t)n));
    int *idx = malloc((size_t)n * sizeof *idx);
    if (!idx)
        return icl_fail(ICL_ERR_NOMEM, "%s: out of memory for %d values", fn, n);
    icl_status st = icl_argsort(x, n, idx);
    for (int i = 0; st == ICL_OK && i < n;) {
        int j = i;
        while (j + 1 < n && x[idx[j + 1]] == x[idx[i]])
            j++;
        double r = 0.5 * (i + j) + 1.0; /* positions i..j hold ranks i+1..j+1 */
        for (int t = i; t <= j; t++)
            ranks[idx[t]] = r;
        i = j + 1;
    }
    free(idx);
    return st;
}

icl_status icl_pearson(const double *x, const double *y, int n, double *r) {
    ICL_TRY(check_pair("icl_pearson", x, y, n));
    ICL_TRY(icl_need_ptr("icl_pearson", "r", r));
    double mx, my, sxx, syy, sxy;
    centred_sums(x, y, n, &mx, &my, &sxx, &syy, &sxy);
    *r = correlation(sxx, syy, sxy);
    return ICL_OK;
}

icl_status icl_spearman(const double *x, const double *y, int n, double *rho) {
    static const char fn[] = "icl_spearman";
    ICL_TRY(check_pair(fn, x, y, n));
    ICL_TRY(icl_need_ptr(fn, "rho", rho));
    double *rx = malloc((size_t)n * sizeof *rx), *ry = malloc((size_t)n * sizeof *ry);
    icl_status st = !rx || !ry ? icl_fail(ICL_ERR_NOMEM, "%s: out of memory for %d values", fn, n) : ICL_OK;
    if (st == ICL_OK)
        st = icl_rank_average(x, n, rx);
    if (st == ICL_OK)
        st = icl_rank_average(y, n, ry);
    if (st == ICL_OK)
        st = icl_pearson(rx, ry, n, rho);
    free(rx);
    free(ry);
    return st;
}

icl_status icl_line_fit(const double *x, const double *y, int n, double *slope, double *intercept, double *r2) {
    ICL_TRY(check_pair("icl_line_fit", x, y, n));
    double mx, my, sxx, syy, sxy;
    centred_sums(x, y, n, &mx, &my, &sxx, &syy, &sxy);
    double b = sxx > 0.0 ? sxy / sxx : NAN;
    if (slope)
        *slope = b;
    if (intercept)
        *intercept = sxx > 0.0 ? my - b * mx : NAN;
    if (r2) {
        /* With an intercept, R^2 = 1 - SS_res/SS_tot equals the squared Pearson r. */
        double r = correlation(sxx, syy, sxy);
        *r2 = r * r;
    }
    return ICL_OK;
}

/* ---- PCA ---- */

#define JACOBI_MAX_SWEEPS 100

/* Eigen-decomposition of the symmetric A (d,d) by cyclic Jacobi rotations:
 * A is overwritten (its diagonal ends up holding the eigenvalues) and the
 * columns of V (d,d) receive the eigenvectors. */
static icl_status jacobi_eigen(double *A, double *V, int d) {
    for (int i = 0; i < d; i++)
        for (int j = 0; j < d; j++)
            V[(size_t)i * d + j] = i == j ? 1.0 : 0.0;
    double total = 0.0;
    for (size_t i = 0; i < (size_t)d * d; i++)
        total += A[i] * A[i];
    for (int sweep = 0; sweep < JACOBI_MAX_SWEEPS; sweep++) {
        double off = 0.0;
        for (int p = 0; p < d; p++)
            for (int q = p + 1; q < d; q++)
                off += A[(size_t)p * d + q] * A[(size_t)p * d + q];
        if (off <= 1e-24 * total)
            return ICL_OK;
        for (int p = 0; p < d; p++)
            for (int q = p + 1; q < d; q++) {
                double apq = A[(size_t)p * d + q];
                if (apq == 0.0)
                    continue;
                /* t = tan of the angle that zeroes A[p][q], the smaller root for stability. */
                double theta = (A[(size_t)q * d + q] - A[(size_t)p * d + p]) / (2.0 * apq);
                double t = fabs(theta) > 1e150 ? 0.5 / theta
                                                : (theta >= 0 ? 1.0 : -1.0) / (fabs(theta) + sqrt(theta * theta + 1.0));
                double c = 1.0 / sqrt(t * t + 1.0), s = t * c;
                for (int k = 0; k < d; k++) { /* A <- A P */
                    double akp = A[(size_t)k * d + p], akq = A[(size_t)k * d + q];
                    A[(size_t)k * d + p] = c * akp - s * akq;
                    A[(size_t)k * d + q] = s * akp + c * akq;
                }
                for (int k = 0; k < d; k++) { /* A <- P^T A */
                    double apk = A[(size_t)p * d + k], aqk = A[(size_t)q * d + k];
                    A[(size_t)p * d + k] = c * apk - s * aqk;
                    A[(size_t)q * d + k] = s * apk + c * aqk;
                }
                for (int k = 0; k < d; k++) { /* V <- V P */
                    double vkp = V[(size_t)k * d + p], vkq = V[(size_t)k * d + q];
                    V[(size_t)k * d + p] = c * vkp - s * vkq;
                    V[(size_t)k * d + q] = s * vkp + c * vkq;
                }
            }
    }
    return icl_fail(ICL_ERR_NUMERIC, "icl_pca: Jacobi eigensolver did not converge in %d sweeps", JACOBI_MAX_SWEEPS);
}

icl_status icl_pca(const float *X, int n, int d, int m, double *components, double *variance, double *coords) {
    static const char fn[] = "icl_pca";
    ICL_TRY(icl_need_ptr(fn, "X", X));
    ICL_TRY(icl_need_ptr(fn, "components", components));
    ICL_TRY(icl_need_min(fn, "n", n, 2));
    ICL_TRY(icl_need_min(fn, "d", d, 1));
    if (m < 1 || m > d)
        return icl_fail(ICL_ERR_INVALID_ARG, "%s: m = %d components, must be in [1, d] = [1, %d]", fn, m, d);
    ICL_TRY(icl_check_finite_f(fn, "X", X, (size_t)n * d));
    double *mu = calloc((size_t)d, sizeof *mu);
    double *A = calloc((size_t)d * d, sizeof *A);
    double *V = malloc((size_t)d * d * sizeof *V);
    double *neg = malloc((size_t)d * sizeof *neg);
    double *row = malloc((size_t)d * sizeof *row);
    int *order = malloc((size_t)d * sizeof *order);
    icl_status st = ICL_OK;
    if (!mu || !A || !V || !neg || !row || !order)
        st = icl_fail(ICL_ERR_NOMEM, "%s: out of memory for d = %d", fn, d);
    if (st == ICL_OK) {
        // X (n,d) -> population covariance A (d,d)
        for (int r = 0; r < n; r++)
            for (int i = 0; i < d; i++)
                mu[i] += X[(size_t)r * d + i];
        for (int i = 0; i < d; i++)
            mu[i] /= n;
        for (int r = 0; r < n; r++) {
            for (int i = 0; i < d; i++)
                row[i] = X[(size_t)r * d + i] - mu[i];
            for (int i = 0; i < d; i++)
                for (int j = i; j < d; j++)
                    A[(size_t)i * d + j] += row[i] * row[j];
        }
        for (int i = 0; i < d; i++)
            for (int j = i; j < d; j++) {
                A[(size_t)i * d + j] /= n;
                A[(size_t)j * d + i] = A[(size_t)i * d + j];
            }
        st = jacobi_eigen(A, V, d);
    }
    if (st == ICL_OK) {
        for (int i = 0; i < d; i++)
            neg[i] = -A[(size_t)i * d + i];
        st = icl_argsort(neg, d, order); /* decreasing eigenvalue; equal ones in index order */
    }
    if (st == ICL_OK) {
        for (int k = 0; k < m; k++) {
            int col = order[k];
            int big = 0;
            for (int i = 1; i < d; i++)
                if (fabs(V[(size_t)i * d + col]) > fabs(V[(size_t)big * d + col]))
                    big = i;
            double sign = V[(size_t)big * d + col] < 0.0 ? -1.0 : 1.0;
            for (int i = 0; i < d; i++)
                components[(size_t)k * d + i] = sign * V[(size_t)i * d + col];
            if (variance) {
                double ev = A[(size_t)col * d + col];
                variance[k] = ev > 0.0 ? ev : 0.0; /* a PSD matrix: negatives are rounding */
            }
        }
        if (coords)
            for (int r = 0; r < n; r++)
                for (int k = 0; k < m; k++) {
                    double s = 0.0;
                    for (int i = 0; i < d; i++)
                        s += (X[(size_t)r * d + i] - mu[i]) * components[(size_t)k * d + i];
                    coords[(size_t)r * m + k] = s;
                }
    }
    free(mu);
    free(A);
    free(V);
    free(neg);
    free(row);
    free(order);
    return st;
}
