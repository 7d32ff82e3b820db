/* Regression baselines in double precision (see include/icl/baselines.h). */
#include <float.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "error.h"
#include "icl/baselines.h"

#define MAX_SWEEPS 60
#define LASSO_MAX_SWEEPS 10000
#define LASSO_TOL 1e-8

static const char *const kind_names[ICL_BASELINE_COUNT] = {"least_squares", "ridge", "lasso",
                                                          "oracle",        "knn",   "averaging"};

const char *icl_baseline_name(icl_baseline_kind kind) {
    return (int)kind >= 0 && kind < ICL_BASELINE_COUNT ? kind_names[kind] : NULL;
}

icl_baseline icl_baseline_default(icl_baseline_kind kind) {
    icl_baseline b = {kind, 0.01, 0.01, 3, NULL, 0};
    return b;
}

icl_status icl_baseline_parse(const char *spec, icl_baseline *out) {
    if (!spec || !out)
        return icl_fail(ICL_ERR_INVALID_ARG, "icl_baseline_parse: NULL argument");
    const char *colon = strchr(spec, ':');
    size_t len = colon ? (size_t)(colon - spec) : strlen(spec);
    int kind = -1;
    for (int i = 0; i < ICL_BASELINE_COUNT; i++)
        if (strlen(kind_names[i]) == len && strncmp(kind_names[i], spec, len) == 0)
            kind = i;
    if (kind < 0)
        return icl_fail(ICL_ERR_INVALID_ARG,
                        "baseline \"%s\": unknown (least_squares, ridge, lasso, oracle, knn, averaging)", spec);
    *out = icl_baseline_default((icl_baseline_kind)kind);
    if (!colon)
        return ICL_OK;
    const char *key = kind == ICL_BASELINE_RIDGE   ? "lambda"
                      : kind == ICL_BASELINE_LASSO ? "alpha"
                      : kind == ICL_BASELINE_KNN   ? "k"
                                                   : NULL;
    const char *opt = colon + 1, *eq = strchr(opt, '=');
    if (!key || !eq || (size_t)(eq - opt) != strlen(key) || strncmp(opt, key, strlen(key)) != 0)
        return icl_fail(ICL_ERR_INVALID_ARG, "baseline \"%s\": expected %s%s%s", spec, key ? key : "no options",
                        key ? "=<value>" : "", key ? " as the only option" : "");
    char *stop;
    double v = strtod(eq + 1, &stop);
    if (eq[1] == '\0' || *stop != '\0' || !isfinite(v) || v < 0)
        return icl_fail(ICL_ERR_INVALID_ARG, "baseline \"%s\": %s must be a non-negative number", spec, key);
    if (kind == ICL_BASELINE_RIDGE && v == 0)
        return icl_fail(ICL_ERR_INVALID_ARG, "baseline \"%s\": lambda must be > 0 (lambda -> 0 is least_squares)", spec);
    if (kind == ICL_BASELINE_RIDGE)
        out->lambda = v;
    else if (kind == ICL_BASELINE_LASSO)
        out->alpha = v;
    else if (v != floor(v) || v < 1 || v > 1e6)
        return icl_fail(ICL_ERR_INVALID_ARG, "baseline \"%s\": k must be a positive integer", spec);
    else
        out->neighbors = (int)v;
    return ICL_OK;
}

static icl_status check_baseline(const icl_baseline *b, int d) {
    switch (b->kind) {
    case ICL_BASELINE_LEAST_SQUARES:
    case ICL_BASELINE_AVERAGING:
        return ICL_OK;
    case ICL_BASELINE_RIDGE:
        if (!(b->lambda > 0) || !isfinite(b->lambda))
            return icl_fail(ICL_ERR_INVALID_ARG, "ridge baseline: lambda must be > 0, got %g (use least_squares)",
                            b->lambda);
        return ICL_OK;
    case ICL_BASELINE_LASSO:
        if (!(b->alpha >= 0) || !isfinite(b->alpha))
            return icl_fail(ICL_ERR_INVALID_ARG, "lasso baseline: alpha must be >= 0, got %g", b->alpha);
        return ICL_OK;
    case ICL_BASELINE_KNN:
        if (b->neighbors < 1)
            return icl_fail(ICL_ERR_INVALID_ARG, "knn baseline: neighbors must be >= 1, got %d", b->neighbors);
        return ICL_OK;
    case ICL_BASELINE_ORACLE:
        if (!b->coords || b->n_coords < 1)
            return icl_fail(ICL_ERR_INVALID_ARG, "oracle baseline: needs coords (n_coords >= 1)");
        for (int i = 0; i < b->n_coords; i++)
            if (b->coords[i] < 0 || b->coords[i] >= d)
                return icl_fail(ICL_ERR_INVALID_ARG, "oracle baseline: coordinate %d outside [0, %d)", b->coords[i], d);
        return ICL_OK;
    default:
        return icl_fail(ICL_ERR_INVALID_ARG, "baseline: unknown kind %d", (int)b->kind);
    }
}

/* Scratch for one prediction with up to k points in d dimensions. */
typedef struct {
    double *a;   /* (k*d) the regressors, column-major X or X^T */
    double *v;   /* (d,d) Jacobi rotations, or the ridge / lasso Gram matrix */
    double *w;   /* (d) weights */
    double *norm2; /* (d) squared column norms */
    double *r;   /* (k) Q^T y or distances */
    double *h;   /* (k) Householder vector */
    char *used;  /* (k) */
} workspace;

static icl_status ws_alloc(workspace *ws, int k, int d) {
    size_t K = (size_t)(k > 0 ? k : 1), D = (size_t)d;
    ws->a = malloc(K * D * sizeof *ws->a);
    ws->v = malloc(D * D * sizeof *ws->v);
    ws->w = malloc(D * sizeof *ws->w);
    ws->norm2 = malloc(D * sizeof *ws->norm2);
    ws->r = malloc(K * sizeof *ws->r);
    ws->h = malloc(K * sizeof *ws->h);
    ws->used = malloc(K);
    if (!ws->a || !ws->v || !ws->w || !ws->norm2 || !ws->r || !ws->h || !ws->used)
        return icl_fail(ICL_ERR_NOMEM, "baseline: out of memory");
    return ICL_OK;
}

static void ws_free(workspace *ws) {
    free(ws->a);
    free(ws->v);
    free(ws->w);
    free(ws->norm2);
    free(ws->r);
    free(ws->h);
    free(ws->used);
}

static double dot(const double *a, const double *b, int n) {
    double s = 0.0;
    for (int i = 0; i < n; i++)
        s += a[i] * b[i];
    return s;
}

/* One-sided Jacobi (Hestenes): rotate column pairs of A (rows, cols;
 * column-major) until all are orthogonal, accumulating the rotations in V
 * (cols, cols), so that on return A = U S and the input was A V^T. */
static void jacobi_orthogonalize(double *A, int rows, int cols, double *V, double *norm2) {
    for (int i = 0; i < cols * cols; i++)
        V[i] = 0.0;
    double fro2 = 0.0;
    for (int c = 0; c < cols; c++) {
        V[(size_t)c * cols + c] = 1.0;
        fro2 += dot(A + (size_t)c * rows, A + (size_t)c * rows, rows);
    }
    /* Columns this small are numerically zero; rotating them only stirs rounding noise. */
    const double negligible = fro2 * 1e-30;
    for (int sweep = 0; sweep < MAX_SWEEPS; sweep++) {
        /* Norms are refreshed every sweep and updated exactly by each rotation in between. */
        for (int c = 0; c < cols; c++)
            norm2[c] = dot(A + (size_t)c * rows, A + (size_t)c * rows, rows);
        int rotated = 0;
        for (int p = 0; p < cols - 1; p++)
            for (int q = p + 1; q < cols; q++) {
                double *ap = A + (size_t)p * rows, *aq = A + (size_t)q * rows;
                double alpha = norm2[p], beta = norm2[q];
                if (alpha <= negligible || beta <= negligible)
                    continue;
                double gamma = dot(ap, aq, rows);
                if (fabs(gamma) <= 1e-15 * sqrt(alpha * beta))
                    continue;
                rotated = 1;
                double zeta = (beta - alpha) / (2.0 * gamma);
                double t = copysign(1.0, zeta) / (fabs(zeta) + sqrt(1.0 + zeta * zeta));
                double c = 1.0 / sqrt(1.0 + t * t), s = c * t;
                for (int i = 0; i < rows; i++) {
                    double x = ap[i], y = aq[i];
                    ap[i] = c * x - s * y;
                    aq[i] = s * x + c * y;
                }
                double *vp = V + (size_t)p * cols, *vq = V + (size_t)q * cols;
                for (int i = 0; i < cols; i++) {
                    double x = vp[i], y = vq[i];
                    vp[i] = c * x - s * y;
                    vq[i] = s * x + c * y;
                }
                norm2[p] = alpha - t * gamma;
                norm2[q] = beta + t * gamma;
            }
        if (!rotated)
            break;
    }
    for (int c = 0; c < cols; c++)
        norm2[c] = dot(A + (size_t)c * rows, A + (size_t)c * rows, rows);
}

/* Thin Householder QR of A (k,m), k >= m, column-major, applied to y (k) as
 * well: on return A's leading (m,m) block, packed contiguously, is R and
 * y[0..m) is Q^T y. h (k) is scratch. */
static void householder_qr(double *A, int k, int m, double *y, double *h) {
    for (int c = 0; c < m; c++) {
        double *ac = A + (size_t)c * k;
        double norm = sqrt(dot(ac + c, ac + c, k - c));
        if (norm == 0.0)
            continue;
        double alpha = -copysign(norm, ac[c]);
        for (int i = c; i < k; i++)
            h[i] = ac[i];
        h[c] -= alpha;
        double hh = dot(h + c, h + c, k - c);
        if (hh == 0.0)
            continue;
        for (int j = c; j < m; j++) {
            double *aj = A + (size_t)j * k;
            double f = 2.0 * dot(h + c, aj + c, k - c) / hh;
            for (int i = c; i < k; i++)
                aj[i] -= f * h[i];
        }
        double f = 2.0 * dot(h + c, y + c, k - c) / hh;
        for (int i = c; i < k; i++)
            y[i] -= f * h[i];
    }
    /* Pack R: column c moves from c*k to c*m (never ahead of unread data since m <= k). */
    for (int c = 0; c < m; c++) {
        memmove(A + (size_t)c * m, A + (size_t)c * k, (size_t)(c + 1) * sizeof *A);
        for (int i = c + 1; i < m; i++)
            A[(size_t)c * m + i] = 0.0;
    }
}

/* Back substitution R w = z for a packed upper-triangular R (m,m) whose
 * diagonal is far from zero (then X has full column rank, and the least
 * squares solution is unique and equal to the minimum-norm one). Returns 0,
 * leaving w alone, when some |R_ii| <= 1e-8 max|R_jj|: the SVD decides then. */
static int solve_well_conditioned(const double *R, int m, const double *z, double *w) {
    double dmax = 0.0, dmin = INFINITY;
    for (int i = 0; i < m; i++) {
        dmax = fmax(dmax, fabs(R[(size_t)i * m + i]));
        dmin = fmin(dmin, fabs(R[(size_t)i * m + i]));
    }
    if (!(dmin > 1e-8 * dmax))
        return 0;
    for (int i = m - 1; i >= 0; i--) {
        double t = z[i];
        for (int c = i + 1; c < m; c++)
            t -= R[(size_t)c * m + i] * w[c];
        w[i] = t / R[(size_t)i * m + i];
    }
    return 1;
}

/* Minimum-norm least squares w = X^+ y on columns cols[0..m) of xs (k,d)
 * (cols NULL: all d). When k >= m, X = QR first (X^+ y = R^+ Q^T y since Q
 * has orthonormal columns): a well-conditioned R is solved directly, any
 * other goes through an SVD of R by one-sided Jacobi. When k < m the SVD is
 * of X^T, whose k columns are fewer than X's. Singular values at or below
 * max(k,m) * eps * s_max count as zero. */
static void min_norm_lstsq(workspace *ws, const double *xs, const double *ys, int k, int d, const int *cols, int m,
                           double *w) {
    const int tall = k >= m, n = tall ? m : k;
    double *A = ws->a, *V = ws->v, *norm2 = ws->norm2, *qy = ws->r;
    for (int i = 0; i < k; i++)
        for (int c = 0; c < m; c++) {
            double x = xs[(size_t)i * d + (cols ? cols[c] : c)];
            if (tall)
                A[(size_t)c * k + i] = x; /* column c of X */
            else
                A[(size_t)i * m + c] = x; /* column i of X^T */
        }
    for (int i = 0; i < k; i++)
        qy[i] = ys[i];
    if (tall) {
        householder_qr(A, k, m, qy, ws->h);
        if (solve_well_conditioned(A, m, qy, w))
            return;
    }
    jacobi_orthogonalize(A, m, n, V, norm2); /* columns of length m either way */
    double smax = 0.0;
    for (int j = 0; j < n; j++)
        smax = fmax(smax, sqrt(norm2[j]));
    const double tol = (k > m ? k : m) * DBL_EPSILON * smax;
    for (int c = 0; c < m; c++)
        w[c] = 0.0;
    for (int j = 0; j < n; j++) {
        const double *aj = A + (size_t)j * m, *vj = V + (size_t)j * n;
        if (norm2[j] == 0.0 || sqrt(norm2[j]) <= tol)
            continue;
        if (tall) { /* R = A V^T: w = sum_j v_j (a_j . Q^T y) / |a_j|^2 */
            double coef = dot(aj, qy, m) / norm2[j];
            for (int c = 0; c < m; c++)
                w[c] += coef * vj[c];
        } else { /* X^T = A V^T: w = sum_j a_j (v_j . y) / |a_j|^2 */
            double coef = dot(vj, qy, k) / norm2[j];
            for (int c = 0; c < m; c++)
                w[c] += coef * aj[c];
        }
    }
}

/* Solve (X^T X + lambda I) w = X^T y by Cholesky (the matrix is positive definite). */
static void ridge(workspace *ws, const double *xs, const double *ys, int k, int d, double lambda, double *w) {
    double *G = ws->v;
    for (int p = 0; p < d; p++) {
        for (int q = 0; q <= p; q++) {
            double s = 0.0;
            for (int i = 0; i < k; i++)
                s += xs[(size_t)i * d + p] * xs[(size_t)i * d + q];
            G[(size_t)p * d + q] = s + (p == q ? lambda : 0.0);
        }
        double s = 0.0;
        for (int i = 0; i < k; i++)
            s += xs[(size_t)i * d + p] * ys[i];
        w[p] = s;
    }
    /* G = L L^T in place (lower triangle), then forward and back substitution. */
    for (int j = 0; j < d; j++) {
        double s = G[(size_t)j * d + j];
        for (int c = 0; c < j; c++)
            s -= G[(size_t)j * d + c] * G[(size_t)j * d + c];
        G[(size_t)j * d + j] = sqrt(s);
        for (int i = j + 1; i < d; i++) {
            double t = G[(size_t)i * d + j];
            for (int c = 0; c < j; c++)
                t -= G[(size_t)i * d + c] * G[(size_t)j * d + c];
            G[(size_t)i * d + j] = t / G[(size_t)j * d + j];
        }
    }
    for (int i = 0; i < d; i++) {
        double t = w[i];
        for (int c = 0; c < i; c++)
            t -= G[(size_t)i * d + c] * w[c];
        w[i] = t / G[(size_t)i * d + i];
    }
    for (int i = d - 1; i >= 0; i--) {
        double t = w[i];
        for (int c = i + 1; c < d; c++)
            t -= G[(size_t)c * d + i] * w[c];
        w[i] = t / G[(size_t)i * d + i];
    }
}

static double soft_threshold(double z, double alpha) { return z > alpha ? z - alpha : z < -alpha ? z + alpha : 0.0; }

/* Cyclic coordinate descent on (1/2k)|y - Xw|^2 + alpha |w|_1 over the Gram
 * matrix G = X^T X and c = X^T y, keeping g = G w up to date, so a
 * coordinate update costs O(d) whatever k is. */
static void lasso(workspace *ws, const double *xs, const double *ys, int k, int d, double alpha, double *w) {
    double *G = ws->v, *c = ws->norm2, *g = ws->a;
    for (int p = 0; p < d; p++) {
        for (int q = 0; q < d; q++) {
            double s = 0.0;
            for (int i = 0; i < k; i++)
                s += xs[(size_t)i * d + p] * xs[(size_t)i * d + q];
            G[(size_t)p * d + q] = s;
        }
        double s = 0.0;
        for (int i = 0; i < k; i++)
            s += xs[(size_t)i * d + p] * ys[i];
        c[p] = s;
        w[p] = 0.0;
        g[p] = 0.0;
    }
    for (int sweep = 0; sweep < LASSO_MAX_SWEEPS; sweep++) {
        double max_step = 0.0, max_w = 0.0;
        for (int j = 0; j < d; j++) {
            const double *Gj = G + (size_t)j * d;
            if (Gj[j] == 0.0)
                continue;
            double z = Gj[j] / k, rho = (c[j] - g[j]) / k + z * w[j];
            double next = soft_threshold(rho, alpha) / z, step = next - w[j];
            if (step != 0.0)
                for (int q = 0; q < d; q++)
                    g[q] += step * Gj[q];
            w[j] = next;
            max_step = fmax(max_step, fabs(step));
            max_w = fmax(max_w, fabs(next));
        }
        if (max_step <= LASSO_TOL * fmax(1.0, max_w))
            break;
    }
}

static double knn(workspace *ws, const double *xs, const double *ys, int k, int d, int neighbors,
                  const double *query) {
    double *dist = ws->r;
    for (int i = 0; i < k; i++) {
        double s = 0.0;
        for (int c = 0; c < d; c++) {
            double diff = xs[(size_t)i * d + c] - query[c];
            s += diff * diff;
        }
        dist[i] = s;
        ws->used[i] = 0;
    }
    int take = neighbors < k ? neighbors : k;
    double sum = 0.0;
    for (int n = 0; n < take; n++) {
        int best = -1;
        for (int i = 0; i < k; i++)
            if (!ws->used[i] && (best < 0 || dist[i] < dist[best]))
                best = i;
        ws->used[best] = 1;
        sum += ys[best];
    }
    return sum / take;
}

/* Prediction from the first k points with a checked baseline and a workspace for >= k points. */
static double predict(workspace *ws, const icl_baseline *b, const double *xs, const double *ys, int k, int d,
                      const double *query) {
    if (k == 0)
        return 0.0;
    double *w = ws->w;
    switch (b->kind) {
    case ICL_BASELINE_LEAST_SQUARES:
        min_norm_lstsq(ws, xs, ys, k, d, NULL, d, w);
        return dot(w, query, d);
    case ICL_BASELINE_RIDGE:
        ridge(ws, xs, ys, k, d, b->lambda, w);
        return dot(w, query, d);
    case ICL_BASELINE_LASSO:
        lasso(ws, xs, ys, k, d, b->alpha, w);
        return dot(w, query, d);
    case ICL_BASELINE_ORACLE: {
        min_norm_lstsq(ws, xs, ys, k, d, b->coords, b->n_coords, w);
        double y = 0.0;
        for (int c = 0; c < b->n_coords; c++)
            y += w[c] * query[b->coords[c]];
        return y;
    }
    case ICL_BASELINE_KNN:
        return knn(ws, xs, ys, k, d, b->neighbors, query);
    default: {
        double y = 0.0;
        for (int i = 0; i < k; i++)
            y += ys[i] * dot(xs + (size_t)i * d, query, d);
        return y / k;
    }
    }
}

icl_status icl_baseline_predict(const icl_baseline *b, const double *xs, const double *ys, int k, int d,
                                const double *query, double *pred) {
    if (!b || !query || !pred || (k > 0 && (!xs || !ys)))
        return icl_fail(ICL_ERR_INVALID_ARG, "icl_baseline_predict: NULL argument");
    if (k < 0 || d <= 0)
        return icl_fail(ICL_ERR_INVALID_ARG, "icl_baseline_predict: need k >= 0 and d > 0, got %d and %d", k, d);
    ICL_TRY(check_baseline(b, d));
    workspace ws = {0};
    icl_status s = ws_alloc(&ws, k, d);
    if (s == ICL_OK)
        *pred = predict(&ws, b, xs, ys, k, d, query);
    ws_free(&ws);
    return s;
}

icl_status icl_baseline_predict_prefixes(const icl_baseline *b, const double *xs, const double *ys, int n, int d,
                                         double *pred) {
    if (!b || !xs || !ys || !pred)
        return icl_fail(ICL_ERR_INVALID_ARG, "icl_baseline_predict_prefixes: NULL argument");
    if (n <= 0 || d <= 0)
        return icl_fail(ICL_ERR_INVALID_ARG, "icl_baseline_predict_prefixes: need n > 0 and d > 0, got %d and %d", n,
                        d);
    ICL_TRY(check_baseline(b, d));
    workspace ws = {0};
    icl_status s = ws_alloc(&ws, n, d);
    for (int j = 0; j < n && s == ICL_OK; j++)
        pred[j] = predict(&ws, b, xs, ys, j, d, xs + (size_t)j * d);
    ws_free(&ws);
    return s;
}

icl_status icl_baseline_predict_prompt(const icl_baseline *b, const icl_task_family *f, const icl_prompt *p,
                                       double *pred, int max_pred) {
    if (!b || !p || !pred)
        return icl_fail(ICL_ERR_INVALID_ARG, "icl_baseline_predict_prompt: NULL argument");
    if (p->mode != ICL_MODE_VECTOR || !p->inputs)
        return icl_fail(ICL_ERR_INVALID_ARG, "icl_baseline_predict_prompt: needs a vector prompt");
    const int n = p->n_examples + 1, D = p->d_in - 1;
    if (max_pred < n)
        return icl_fail(ICL_ERR_INVALID_ARG, "icl_baseline_predict_prompt: room for %d predictions, need %d", max_pred,
                        n);
    icl_baseline local = *b;
    int *coords = NULL;
    if (b->kind == ICL_BASELINE_ORACLE && !b->coords) {
        if (!f || p->task < 0)
            return icl_fail(ICL_ERR_INVALID_ARG,
                            "oracle baseline: without coords it needs the family and a single-task prompt");
        if (icl_task_family_dim(f) != D)
            return icl_fail(ICL_ERR_INVALID_ARG, "oracle baseline: family %s has D=%d, the prompt D=%d",
                            icl_task_family_name(f), icl_task_family_dim(f), D);
        coords = malloc((size_t)D * sizeof *coords);
        if (!coords)
            return icl_fail(ICL_ERR_NOMEM, "oracle baseline: out of memory");
        icl_status s = icl_task_family_basis(f, p->task, coords, D, &local.n_coords);
        if (s != ICL_OK) {
            free(coords);
            return s;
        }
        local.coords = coords;
    }
    double *xs = malloc((size_t)n * D * sizeof *xs), *ys = malloc((size_t)n * sizeof *ys);
    icl_status s = xs && ys ? ICL_OK : icl_fail(ICL_ERR_NOMEM, "icl_baseline_predict_prompt: out of memory");
    if (s == ICL_OK)
        s = icl_prompt_points(p, xs, ys, n);
    if (s == ICL_OK)
        s = icl_baseline_predict_prefixes(&local, xs, ys, n, D, pred);
    free(xs);
    free(ys);
    free(coords);
    return s;
}
