/* Regression baselines for vector prompts (Garg et al.; Han et al.), in
 * double precision: given in-context points (x_i, y_i), i < k, predict y at
 * a query x. With k = 0 every baseline predicts 0.
 *
 *   least_squares  minimum-norm least squares w = X^+ y (pseudo-inverse by a
 *                  Householder QR and a one-sided Jacobi SVD; singular values below
 *                  max(k,d) * eps * s_max count as 0). Exact once k >= d on
 *                  noise-free linear data; when k < d it is the ridge solution
 *                  in the limit lambda -> 0, which is what Garg et al. report.
 *   ridge          w = (X^T X + lambda I)^-1 X^T y, lambda > 0.
 *   lasso          minimises (1/2k) |y - X w|^2 + alpha |w|_1 (scikit-learn's
 *                  scaling, as in Garg et al.'s alpha grid) by cyclic coordinate
 *                  descent until no weight moves by more than 1e-8 * max(1, max|w|)
 *                  in a sweep (at most 10000 sweeps).
 *   oracle         least squares on the given input coordinates only (for
 *                  basis_mixture: the prompt's basis), Han et al.'s r-dim regression.
 *   knn            mean y of the `neighbors` nearest x_i (Euclidean; ties to the
 *                  earlier example); all k when k < neighbors.
 *   averaging      Garg et al.'s averaging estimator w = (1/k) sum_i y_i x_i,
 *                  prediction w . x (unbiased for w when x ~ N(0, I)). */
#ifndef ICL_BASELINES_H
#define ICL_BASELINES_H

#include "icl/status.h"
#include "icl/task.h"

ICL_BEGIN_DECLS

typedef enum {
    ICL_BASELINE_LEAST_SQUARES = 0,
    ICL_BASELINE_RIDGE,
    ICL_BASELINE_LASSO,
    ICL_BASELINE_ORACLE,
    ICL_BASELINE_KNN,
    ICL_BASELINE_AVERAGING,
    ICL_BASELINE_COUNT
} icl_baseline_kind;

typedef struct {
    icl_baseline_kind kind;
    double lambda;     /* ridge */
    double alpha;      /* lasso */
    int neighbors;     /* knn */
    const int *coords; /* oracle: input coordinates to regress on (NULL: the prompt's basis) */
    int n_coords;
} icl_baseline;

/* "least_squares", "ridge", ... ; NULL for an invalid kind. */
const char *icl_baseline_name(icl_baseline_kind kind);

/* A baseline with default parameters: lambda 0.01 (the noise variance of
 * basis_mixture's default sigma 0.1 over unit-variance weights), alpha 0.01,
 * 3 neighbours, no coordinates. */
icl_baseline icl_baseline_default(icl_baseline_kind kind);

/* Parse "least_squares", "ridge:lambda=0.1", "lasso:alpha=0.01", "oracle",
 * "knn:k=3", "averaging". ICL_ERR_INVALID_ARG naming the bad part otherwise. */
icl_status icl_baseline_parse(const char *spec, icl_baseline *out);

/* Predict y at query (d) from xs (k,d) row-major and ys (k), k >= 0. */
icl_status icl_baseline_predict(const icl_baseline *b, const double *xs, const double *ys, int k, int d,
                                const double *query, double *pred);

/* For every prefix: pred[j] predicts ys[j] from the points before it,
 * j = 0..n-1 (pred[0] = 0). xs (n,d), ys (n). */
icl_status icl_baseline_predict_prefixes(const icl_baseline *b, const double *xs, const double *ys, int n, int d,
                                         double *pred);

/* icl_baseline_predict_prefixes on a vector prompt's points (the query last):
 * pred[j], j = 0..n_examples, predicts the (j+1)-th y. max_pred >= n_examples+1.
 * An oracle baseline without coords uses the basis of the prompt's task in f. */
icl_status icl_baseline_predict_prompt(const icl_baseline *b, const icl_task_family *f, const icl_prompt *p,
                                       double *pred, int max_pred);

ICL_END_DECLS
#endif
