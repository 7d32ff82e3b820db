/* Linear probes: multinomial logistic regression (L-BFGS) and ridge
 * regression (Cholesky), each with seeded k-fold cross-validation. */
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include "analysis_internal.h"
#include "error.h"
#include "icl/analysis.h"

#define LBFGS_MEMORY 10
#define ARMIJO_C1 1e-4
#define MAX_HALVINGS 60

icl_logistic_options icl_logistic_options_default(void) {
    icl_logistic_options o;
    o.l2 = 1e-3;
    o.folds = 5;
    o.max_iter = 500;
    o.tol = 1e-6;
    return o;
}

icl_ridge_options icl_ridge_options_default(void) {
    icl_ridge_options o;
    o.alpha = 1e-4;
    o.folds = 5;
    return o;
}

/* ---- shared: folds and standardisation ---- */

icl_status icl_probe_folds(int32_t *fold_of, int n, int folds, icl_rng *rng) {
    static const char fn[] = "icl_probe_folds";
    ICL_TRY(icl_need_ptr(fn, "fold_of", fold_of));
    ICL_TRY(icl_need_ptr(fn, "rng", rng));
    ICL_TRY(icl_need_min(fn, "n", n, 2));
    if (folds < 2 || folds > n)
        return icl_fail(ICL_ERR_INVALID_ARG, "%s: folds = %d, must be in [2, n] = [2, %d]", fn, folds, n);
    int *perm = malloc((size_t)n * sizeof *perm);
    if (!perm)
        return icl_fail(ICL_ERR_NOMEM, "probe folds: out of memory for %d items", n);
    for (int i = 0; i < n; i++)
        perm[i] = i;
    icl_rng_shuffle_int(rng, perm, n);
    for (int f = 0; f < folds; f++) {
        int lo = (int)((int64_t)f * n / folds), hi = (int)((int64_t)(f + 1) * n / folds);
        for (int p = lo; p < hi; p++)
            fold_of[perm[p]] = f;
    }
    free(perm);
    return ICL_OK;
}

/* Mean and population std of each feature over the listed rows of X (n,d). */
static void feature_stats(const float *X, int d, const int *rows, int nr, double *mu, double *sd) {
    for (int j = 0; j < d; j++) {
        double s = 0.0, ss = 0.0;
        for (int r = 0; r < nr; r++)
            s += X[(size_t)rows[r] * d + j];
        mu[j] = s / nr;
        for (int r = 0; r < nr; r++) {
            double z = X[(size_t)rows[r] * d + j] - mu[j];
            ss += z * z;
        }
        sd[j] = sqrt(ss / nr);
    }
}

// Z (nr,d) = standardised rows; a constant feature (sd 0) becomes 0.
static void standardise_rows(const float *X, int d, const int *rows, int nr, const double *mu, const double *sd,
                             double *Z) {
    for (int r = 0; r < nr; r++)
        for (int j = 0; j < d; j++)
            Z[(size_t)r * d + j] = sd[j] > 0.0 ? (X[(size_t)rows[r] * d + j] - mu[j]) / sd[j] : 0.0;
}

/* Weights B (q,d) on standardised features -> W (q,d), b (q) on raw ones:
 * B (x - mu)/sd + c = (B/sd) x + (c - sum_j B_j mu_j / sd_j). */
static void to_raw(const double *B, const double *c, int q, int d, const double *mu, const double *sd, double *W,
                   double *b) {
    for (int o = 0; o < q; o++) {
        double shift = 0.0;
        for (int j = 0; j < d; j++) {
            double w = sd[j] > 0.0 ? B[(size_t)o * d + j] / sd[j] : 0.0;
            W[(size_t)o * d + j] = w;
            shift += w * mu[j];
        }
        b[o] = c[o] - shift;
    }
}

// X (n,d), W (q,d), b (q) -> out (n,q) = X W^T + b.
static void affine(const float *X, int n, int d, const double *W, const double *b, int q, double *out) {
    for (int i = 0; i < n; i++)
        for (int o = 0; o < q; o++) {
            double s = b[o];
            for (int j = 0; j < d; j++)
                s += W[(size_t)o * d + j] * X[(size_t)i * d + j];
            out[(size_t)i * q + o] = s;
        }
}

static int argmax(const double *v, int n) {
    int best = 0;
    for (int c = 1; c < n; c++)
        if (v[c] > v[best])
            best = c;
    return best;
}

static icl_status check_data(const char *fn, const float *X, int n, int d, int folds, icl_rng *rng) {
    ICL_TRY(icl_need_ptr(fn, "X", X));
    ICL_TRY(icl_need_ptr(fn, "rng", rng));
    ICL_TRY(icl_need_min(fn, "n", n, 2));
    ICL_TRY(icl_need_min(fn, "d", d, 1));
    if (folds < 2 || folds > n)
        return icl_fail(ICL_ERR_INVALID_ARG, "%s: folds = %d, must be in [2, n] = [2, %d]", fn, folds, n);
    return icl_check_finite_f(fn, "X", X, (size_t)n * d);
}

/* ---- logistic regression ---- */

typedef struct {
    const double *Z;   /* (nr,d) standardised training features */
    const int *y;      /* (nr) labels */
    int nr, d, C;
    double l2;
    double *logits;    /* (C) work */
} logistic_problem;

/* Objective and gradient at theta = [W (C,d), b (C)]:
 * mean cross-entropy + (l2/2)||W||^2. */
static double logistic_eval(const logistic_problem *lp, const double *theta, double *grad) {
    int d = lp->d, C = lp->C;
    const double *W = theta, *b = theta + (size_t)C * d;
    double *gW = grad, *gb = grad + (size_t)C * d;
    memset(grad, 0, (size_t)C * (d + 1) * sizeof *grad);
    double loss = 0.0;
    for (int i = 0; i < lp->nr; i++) {
        const double *z = lp->Z + (size_t)i * d;
        double mx = -INFINITY;
        for (int c = 0; c < C; c++) {
            double s = b[c];
            for (int j = 0; j < d; j++)
                s += W[(size_t)c * d + j] * z[j];
            lp->logits[c] = s;
            if (s > mx)
                mx = s;
        }
        double se = 0.0;
        for (int c = 0; c < C; c++)
            se += exp(lp->logits[c] - mx);
        loss += mx + log(se) - lp->logits[lp->y[i]];
        for (int c = 0; c < C; c++) {
            double r = exp(lp->logits[c] - mx) / se - (c == lp->y[i]);
            gb[c] += r;
            for (int j = 0; j < d; j++)
                gW[(size_t)c * d + j] += r * z[j];
        }
    }
    double inv = 1.0 / lp->nr, pen = 0.0;
    for (size_t k = 0; k < (size_t)C * d; k++) {
        gW[k] = gW[k] * inv + lp->l2 * W[k];
        pen += W[k] * W[k];
    }
    for (int c = 0; c < C; c++)
        gb[c] *= inv;
    return loss * inv + 0.5 * lp->l2 * pen;
}

static double dot(const double *a, const double *b, size_t n) {
    double s = 0.0;
    for (size_t i = 0; i < n; i++)
        s += a[i] * b[i];
    return s;
}

static double max_abs(const double *a, size_t n) {
    double m = 0.0;
    for (size_t i = 0; i < n; i++)
        if (fabs(a[i]) > m)
            m = fabs(a[i]);
    return m;
}

/* Minimise the convex logistic objective from theta = 0 with L-BFGS (two-loop
 * recursion, memory LBFGS_MEMORY) and a halving line search until the
 * Armijo condition holds. Pairs with non-positive curvature are skipped. */
static icl_status lbfgs(const logistic_problem *lp, int max_iter, double tol, double *theta, int *iterations,
                        int *converged) {
    size_t P = (size_t)lp->C * (lp->d + 1);
    double *buf = calloc(P * (4 + 2 * LBFGS_MEMORY), sizeof *buf);
    if (!buf)
        return icl_fail(ICL_ERR_NOMEM, "logistic probe: out of memory for %zu parameters", P);
    double *g = buf, *dir = g + P, *x_new = dir + P, *g_new = x_new + P;
    double *S = g_new + P, *Y = S + P * LBFGS_MEMORY;
    double rho[LBFGS_MEMORY], alpha[LBFGS_MEMORY];
    int stored = 0, head = 0; /* ring buffer of (s, y) pairs; head = next slot */
    memset(theta, 0, P * sizeof *theta);
    double f = logistic_eval(lp, theta, g);
    int it = 0;
    *converged = 0;
    for (; it < max_iter; it++) {
        if (max_abs(g, P) <= tol) {
            *converged = 1;
            break;
        }
        for (size_t k = 0; k < P; k++)
            dir[k] = -g[k];
        for (int m = 0; m < stored; m++) { /* newest to oldest */
            int s = (head - 1 - m + LBFGS_MEMORY) % LBFGS_MEMORY;
            alpha[s] = rho[s] * dot(S + s * P, dir, P);
            for (size_t k = 0; k < P; k++)
                dir[k] -= alpha[s] * Y[s * P + k];
        }
        if (stored > 0) { /* initial Hessian gamma*I with gamma = s'y / y'y of the newest pair */
            int s = (head - 1 + LBFGS_MEMORY) % LBFGS_MEMORY;
            double gamma = 1.0 / (rho[s] * dot(Y + s * P, Y + s * P, P));
            for (size_t k = 0; k < P; k++)
                dir[k] *= gamma;
        }
        for (int m = stored - 1; m >= 0; m--) { /* oldest to newest */
            int s = (head - 1 - m + LBFGS_MEMORY) % LBFGS_MEMORY;
            double beta = rho[s] * dot(Y + s * P, dir, P);
            for (size_t k = 0; k < P; k++)
                dir[k] += (alpha[s] - beta) * S[s * P + k];
        }
        double slope = dot(g, dir, P);
        if (!(slope < 0.0)) { /* not a descent direction: restart from steepest descent */
            stored = 0;
            for (size_t k = 0; k < P; k++)
                dir[k] = -g[k];
            slope = -dot(g, g, P);
        }
        double step = stored == 0 ? fmin(1.0, 1.0 / max_abs(g, P)) : 1.0;
        double f_new = f;
        int accepted = 0;
        for (int h = 0; h < MAX_HALVINGS; h++, step *= 0.5) {
            for (size_t k = 0; k < P; k++)
                x_new[k] = theta[k] + step * dir[k];
            f_new = logistic_eval(lp, x_new, g_new);
            if (f_new <= f + ARMIJO_C1 * step * slope) {
                accepted = 1;
                break;
            }
        }
        if (!accepted) /* no decrease left at machine precision */
            break;
        double sy = 0.0, yy = 0.0;
        for (size_t k = 0; k < P; k++) {
            double sk = x_new[k] - theta[k], yk = g_new[k] - g[k];
            S[head * P + k] = sk;
            Y[head * P + k] = yk;
            sy += sk * yk;
            yy += yk * yk;
        }
        if (sy > 1e-12 * yy && sy > 0.0) {
            rho[head] = 1.0 / sy;
            head = (head + 1) % LBFGS_MEMORY;
            if (stored < LBFGS_MEMORY)
                stored++;
        }
        memcpy(theta, x_new, P * sizeof *theta);
        memcpy(g, g_new, P * sizeof *g);
        f = f_new;
    }
    if (!*converged && max_abs(g, P) <= tol)
        *converged = 1;
    *iterations = it;
    free(buf);
    return ICL_OK;
}

/* Fit on the listed rows; W (C,d), b (C) on raw features. */
static icl_status logistic_fit_rows(const float *X, const int32_t *labels, int d, int C, const int *rows, int nr,
                                    const icl_logistic_options *o, double *W, double *b, int *iterations,
                                    int *converged) {
    size_t P = (size_t)C * (d + 1);
    double *mu = malloc((size_t)d * sizeof *mu), *sd = malloc((size_t)d * sizeof *sd);
    double *Z = malloc((size_t)nr * d * sizeof *Z), *theta = malloc(P * sizeof *theta);
    double *logits = malloc((size_t)C * sizeof *logits);
    int *y = malloc((size_t)nr * sizeof *y);
    icl_status st = ICL_OK;
    if (!mu || !sd || !Z || !theta || !logits || !y)
        st = icl_fail(ICL_ERR_NOMEM, "logistic probe: out of memory for %d x %d features", nr, d);
    if (st == ICL_OK) {
        feature_stats(X, d, rows, nr, mu, sd);
        standardise_rows(X, d, rows, nr, mu, sd, Z);
        for (int r = 0; r < nr; r++)
            y[r] = labels[rows[r]];
        logistic_problem lp = {Z, y, nr, d, C, o->l2, logits};
        st = lbfgs(&lp, o->max_iter, o->tol, theta, iterations, converged);
    }
    if (st == ICL_OK)
        to_raw(theta, theta + (size_t)C * d, C, d, mu, sd, W, b);
    free(mu);
    free(sd);
    free(Z);
    free(theta);
    free(logits);
    free(y);
    return st;
}

void icl_logistic_probe_free(icl_logistic_probe *p) {
    if (!p)
        return;
    free(p->W);
    free(p->b);
    free(p->fold_accuracy);
    free(p->cv_pred);
    free(p);
}

/* Count of rows whose argmax of X W^T + b equals their label; pred (n, optional) gets each row's argmax. */
static icl_status count_correct(const float *X, const int32_t *labels, int d, int C, const double *W, const double *b,
                                const int *rows, int nr, int *correct, int32_t *pred) {
    double *logits = malloc((size_t)C * sizeof *logits);
    if (!logits)
        return icl_fail(ICL_ERR_NOMEM, "logistic probe: out of memory");
    int c = 0;
    for (int r = 0; r < nr; r++) {
        affine(X + (size_t)rows[r] * d, 1, d, W, b, C, logits);
        int best = argmax(logits, C);
        if (pred)
            pred[rows[r]] = best;
        c += best == labels[rows[r]];
    }
    *correct = c;
    free(logits);
    return ICL_OK;
}

icl_status icl_logistic_probe_fit(const float *X, const int32_t *labels, int n, int d, int n_classes,
                                  const icl_logistic_options *opts, icl_rng *rng, icl_logistic_probe **out) {
    static const char fn[] = "icl_logistic_probe_fit";
    ICL_TRY(icl_need_ptr(fn, "out", out));
    *out = NULL;
    icl_logistic_options o;
    o = icl_logistic_options_default();
    if (opts)
        o = *opts;
    ICL_TRY(check_data(fn, X, n, d, o.folds, rng));
    ICL_TRY(icl_need_ptr(fn, "labels", labels));
    ICL_TRY(icl_need_min(fn, "n_classes", n_classes, 2));
    ICL_TRY(icl_check_labels(fn, labels, n, n_classes));
    if (!(o.l2 >= 0.0) || !isfinite(o.l2))
        return icl_fail(ICL_ERR_INVALID_ARG, "%s: l2 = %g, must be finite and >= 0", fn, o.l2);
    ICL_TRY(icl_need_min(fn, "max_iter", o.max_iter, 1));
    if (!(o.tol > 0.0))
        return icl_fail(ICL_ERR_INVALID_ARG, "%s: tol = %g, must be > 0", fn, o.tol);

    int C = n_classes;
    icl_logistic_probe *p = calloc(1, sizeof *p);
    int32_t *fold_of = malloc((size_t)n * sizeof *fold_of);
    int *rows = malloc((size_t)n * sizeof *rows);
    int *held = malloc((size_t)n * sizeof *held);
    if (p) {
        p->W = malloc((size_t)C * d * sizeof *p->W);
        p->b = malloc((size_t)C * sizeof *p->b);
        p->fold_accuracy = malloc((size_t)o.folds * sizeof *p->fold_accuracy);
        p->cv_pred = malloc((size_t)n * sizeof *p->cv_pred);
    }
    icl_status st = ICL_OK;
    if (!p || !p->W || !p->b || !p->fold_accuracy || !p->cv_pred || !fold_of || !rows || !held)
        st = icl_fail(ICL_ERR_NOMEM, "%s: out of memory", fn);
    if (st == ICL_OK) {
        p->d = d;
        p->n = n;
        p->n_classes = C;
        p->folds = o.folds;
        p->converged = 1;
        st = icl_probe_folds(fold_of, n, o.folds, rng);
    }
    int total_correct = 0;
    for (int f = 0; st == ICL_OK && f < o.folds; f++) {
        int nt = 0, nh = 0, it = 0, conv = 1, correct = 0;
        for (int i = 0; i < n; i++) {
            if (fold_of[i] == f)
                held[nh++] = i;
            else
                rows[nt++] = i;
        }
        st = logistic_fit_rows(X, labels, d, C, rows, nt, &o, p->W, p->b, &it, &conv);
        if (st == ICL_OK)
            st = count_correct(X, labels, d, C, p->W, p->b, held, nh, &correct, p->cv_pred);
        p->converged &= conv;
        p->fold_accuracy[f] = (double)correct / nh;
        total_correct += correct;
    }
    if (st == ICL_OK) {
        int conv = 1, correct = 0;
        p->cv_accuracy = (double)total_correct / n;
        for (int i = 0; i < n; i++)
            rows[i] = i;
        st = logistic_fit_rows(X, labels, d, C, rows, n, &o, p->W, p->b, &p->iterations, &conv);
        p->converged &= conv;
        if (st == ICL_OK)
            st = count_correct(X, labels, d, C, p->W, p->b, rows, n, &correct, NULL);
        p->train_accuracy = (double)correct / n;
    }
    free(fold_of);
    free(rows);
    free(held);
    if (st != ICL_OK) {
        icl_logistic_probe_free(p);
        return st;
    }
    *out = p;
    return ICL_OK;
}

icl_status icl_logistic_probe_predict(const icl_logistic_probe *p, const float *X, int n, int32_t *pred,
                                      double *proba) {
    static const char fn[] = "icl_logistic_probe_predict";
    ICL_TRY(icl_need_ptr(fn, "p", p));
    ICL_TRY(icl_need_ptr(fn, "X", X));
    ICL_TRY(icl_need_ptr(fn, "pred", pred));
    ICL_TRY(icl_need_min(fn, "n", n, 1));
    ICL_TRY(icl_check_finite_f(fn, "X", X, (size_t)n * p->d));
    int C = p->n_classes;
    double *logits = malloc((size_t)C * sizeof *logits);
    if (!logits)
        return icl_fail(ICL_ERR_NOMEM, "%s: out of memory", fn);
    for (int i = 0; i < n; i++) {
        affine(X + (size_t)i * p->d, 1, p->d, p->W, p->b, C, logits);
        int best = argmax(logits, C);
        pred[i] = best;
        if (proba) {
            double se = 0.0;
            for (int c = 0; c < C; c++)
                se += exp(logits[c] - logits[best]);
            for (int c = 0; c < C; c++)
                proba[(size_t)i * C + c] = exp(logits[c] - logits[best]) / se;
        }
    }
    free(logits);
    return ICL_OK;
}

/* ---- ridge regression ---- */

/* In-place Cholesky G = L L^T (lower triangle of G, d x d), then solve
 * G B = R for R (d,q) in place. ICL_ERR_NUMERIC if G is not positive definite. */
static icl_status cholesky_solve(double *G, int d, double *R, int q) {
    for (int j = 0; j < d; j++) {
        double diag = G[(size_t)j * d + j];
        double piv = diag;
        for (int k = 0; k < j; k++)
            piv -= G[(size_t)j * d + k] * G[(size_t)j * d + k];
        if (!(piv > 1e-13 * diag))
            return icl_fail(ICL_ERR_NUMERIC,
                            "ridge probe: the normal matrix is singular at feature %d (collinear features?); use "
                            "alpha > 0",
                            j);
        double l = sqrt(piv);
        G[(size_t)j * d + j] = l;
        for (int i = j + 1; i < d; i++) {
            double s = G[(size_t)i * d + j];
            for (int k = 0; k < j; k++)
                s -= G[(size_t)i * d + k] * G[(size_t)j * d + k];
            G[(size_t)i * d + j] = s / l;
        }
    }
    for (int o = 0; o < q; o++) {
        for (int i = 0; i < d; i++) { /* L z = r */
            double s = R[(size_t)i * q + o];
            for (int k = 0; k < i; k++)
                s -= G[(size_t)i * d + k] * R[(size_t)k * q + o];
            R[(size_t)i * q + o] = s / G[(size_t)i * d + i];
        }
        for (int i = d - 1; i >= 0; i--) { /* L^T b = z */
            double s = R[(size_t)i * q + o];
            for (int k = i + 1; k < d; k++)
                s -= G[(size_t)k * d + i] * R[(size_t)k * q + o];
            R[(size_t)i * q + o] = s / G[(size_t)i * d + i];
        }
    }
    return ICL_OK;
}

/* Fit on the listed rows: minimise mean ||y - B z - c||^2 + alpha ||B||^2 over
 * standardised z, i.e. (Z^T Z/nr + alpha I) B = Z^T (Y - ybar)/nr; a constant
 * feature gets weight 0. W (q,d), b (q) on raw features. */
static icl_status ridge_fit_rows(const float *X, const float *Y, int d, int q, const int *rows, int nr, double alpha,
                                 double *W, double *b) {
    double *mu = malloc((size_t)d * sizeof *mu), *sd = malloc((size_t)d * sizeof *sd);
    double *Z = malloc((size_t)nr * d * sizeof *Z), *G = calloc((size_t)d * d, sizeof *G);
    double *R = calloc((size_t)d * q, sizeof *R), *ybar = calloc((size_t)q, sizeof *ybar);
    double *Bt = malloc((size_t)q * d * sizeof *Bt);
    icl_status st = ICL_OK;
    if (!mu || !sd || !Z || !G || !R || !ybar || !Bt)
        st = icl_fail(ICL_ERR_NOMEM, "ridge probe: out of memory for %d x %d features", nr, d);
    if (st == ICL_OK) {
        feature_stats(X, d, rows, nr, mu, sd);
        standardise_rows(X, d, rows, nr, mu, sd, Z);
        for (int r = 0; r < nr; r++)
            for (int o = 0; o < q; o++)
                ybar[o] += Y[(size_t)rows[r] * q + o];
        for (int o = 0; o < q; o++)
            ybar[o] /= nr;
        // G (d,d) = Z^T Z / nr + alpha I, R (d,q) = Z^T (Y - ybar) / nr
        for (int r = 0; r < nr; r++) {
            const double *z = Z + (size_t)r * d;
            for (int i = 0; i < d; i++) {
                for (int j = 0; j <= i; j++)
                    G[(size_t)i * d + j] += z[i] * z[j];
                for (int o = 0; o < q; o++)
                    R[(size_t)i * q + o] += z[i] * (Y[(size_t)rows[r] * q + o] - ybar[o]);
            }
        }
        for (int i = 0; i < d; i++) {
            for (int j = 0; j <= i; j++)
                G[(size_t)i * d + j] /= nr;
            G[(size_t)i * d + i] += sd[i] > 0.0 ? alpha : 1.0; /* a constant feature's row is 0: pin it */
            for (int o = 0; o < q; o++)
                R[(size_t)i * q + o] /= nr;
        }
        st = cholesky_solve(G, d, R, q);
    }
    if (st == ICL_OK) {
        for (int o = 0; o < q; o++)
            for (int j = 0; j < d; j++)
                Bt[(size_t)o * d + j] = R[(size_t)j * q + o];
        to_raw(Bt, ybar, q, d, mu, sd, W, b);
    }
    free(mu);
    free(sd);
    free(Z);
    free(G);
    free(R);
    free(ybar);
    free(Bt);
    return st;
}

void icl_ridge_probe_free(icl_ridge_probe *p) {
    if (!p)
        return;
    free(p->W);
    free(p->b);
    free(p->cv_r2);
    free(p->cv_pred);
    free(p);
}

icl_status icl_ridge_probe_fit(const float *X, const float *Y, int n, int d, int n_out, const icl_ridge_options *opts,
                               icl_rng *rng, icl_ridge_probe **out) {
    static const char fn[] = "icl_ridge_probe_fit";
    ICL_TRY(icl_need_ptr(fn, "out", out));
    *out = NULL;
    icl_ridge_options o;
    o = icl_ridge_options_default();
    if (opts)
        o = *opts;
    ICL_TRY(check_data(fn, X, n, d, o.folds, rng));
    ICL_TRY(icl_need_ptr(fn, "Y", Y));
    ICL_TRY(icl_need_min(fn, "n_out", n_out, 1));
    ICL_TRY(icl_check_finite_f(fn, "Y", Y, (size_t)n * n_out));
    if (!(o.alpha >= 0.0) || !isfinite(o.alpha))
        return icl_fail(ICL_ERR_INVALID_ARG, "%s: alpha = %g, must be finite and >= 0", fn, o.alpha);

    int q = n_out;
    icl_ridge_probe *p = calloc(1, sizeof *p);
    int32_t *fold_of = malloc((size_t)n * sizeof *fold_of);
    int *rows = malloc((size_t)n * sizeof *rows);
    int *held = malloc((size_t)n * sizeof *held);
    double *yhat = NULL; /* pooled held-out predictions, kept as p->cv_pred */
    if (p) {
        p->cv_pred = yhat = malloc((size_t)n * q * sizeof *yhat);
        p->W = malloc((size_t)q * d * sizeof *p->W);
        p->b = malloc((size_t)q * sizeof *p->b);
        p->cv_r2 = malloc((size_t)q * sizeof *p->cv_r2);
    }
    icl_status st = ICL_OK;
    if (!p || !p->W || !p->b || !p->cv_r2 || !fold_of || !rows || !held || !yhat)
        st = icl_fail(ICL_ERR_NOMEM, "%s: out of memory", fn);
    if (st == ICL_OK) {
        p->d = d;
        p->n = n;
        p->n_out = q;
        p->folds = o.folds;
        st = icl_probe_folds(fold_of, n, o.folds, rng);
    }
    for (int f = 0; st == ICL_OK && f < o.folds; f++) {
        int nt = 0, nh = 0;
        for (int i = 0; i < n; i++) {
            if (fold_of[i] == f)
                held[nh++] = i;
            else
                rows[nt++] = i;
        }
        st = ridge_fit_rows(X, Y, d, q, rows, nt, o.alpha, p->W, p->b);
        for (int h = 0; st == ICL_OK && h < nh; h++)
            affine(X + (size_t)held[h] * d, 1, d, p->W, p->b, q, yhat + (size_t)held[h] * q);
    }
    if (st == ICL_OK) {
        double sum = 0.0;
        int defined = 0;
        for (int k = 0; k < q; k++) {
            double ybar = 0.0, ss_res = 0.0, ss_tot = 0.0;
            for (int i = 0; i < n; i++)
                ybar += Y[(size_t)i * q + k];
            ybar /= n;
            for (int i = 0; i < n; i++) {
                double e = Y[(size_t)i * q + k] - yhat[(size_t)i * q + k], t = Y[(size_t)i * q + k] - ybar;
                ss_res += e * e;
                ss_tot += t * t;
            }
            p->cv_r2[k] = ss_tot > 0.0 ? 1.0 - ss_res / ss_tot : NAN;
            if (ss_tot > 0.0) {
                sum += p->cv_r2[k];
                defined++;
            }
        }
        p->cv_r2_mean = defined ? sum / defined : NAN;
        for (int i = 0; i < n; i++)
            rows[i] = i;
        st = ridge_fit_rows(X, Y, d, q, rows, n, o.alpha, p->W, p->b);
    }
    free(fold_of);
    free(rows);
    free(held);
    if (st != ICL_OK) {
        icl_ridge_probe_free(p);
        return st;
    }
    *out = p;
    return ICL_OK;
}

icl_status icl_ridge_probe_predict(const icl_ridge_probe *p, const float *X, int n, double *Yhat) {
    static const char fn[] = "icl_ridge_probe_predict";
    ICL_TRY(icl_need_ptr(fn, "p", p));
    ICL_TRY(icl_need_ptr(fn, "X", X));
    ICL_TRY(icl_need_ptr(fn, "Yhat", Yhat));
    ICL_TRY(icl_need_min(fn, "n", n, 1));
    ICL_TRY(icl_check_finite_f(fn, "X", X, (size_t)n * p->d));
    affine(X, n, p->d, p->W, p->b, p->n_out, Yhat);
    return ICL_OK;
}
