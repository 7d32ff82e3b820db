/* Model-independent analysis for the probes: task decodability (k-NN), RSA,
 * linear probes, correlations, PCA, superposition
 * metrics and attention-to-role fractions. Everything works on host arrays
 * that other code captured from a model; docs/analysis.md gives each
 * method's definition, defaults and the paper it follows.
 *
 * Conventions shared by every function here:
 * - Data matrices (activations) are float, row-major, (n, d): item i is
 *   X[i*d .. i*d + d). Class labels are int32 in [0, n_classes).
 * - Probabilities, correlations and other derived vectors are double.
 * - All arithmetic is done in double; results are double.
 * - Every function validates its arguments and returns ICL_ERR_INVALID_ARG
 *   (NULL pointer, size <= 0, label out of range, non-finite input ...) with
 *   a message in icl_last_error(); ICL_ERR_NOMEM if a work buffer cannot be
 *   allocated. Output arrays are caller-allocated unless a function says
 *   otherwise; "optional" outputs may be NULL.
 * - A statistic that is mathematically undefined for valid input (e.g. a
 *   correlation with a constant vector) is returned as NaN with ICL_OK, so
 *   sweeps over layers do not stop at a degenerate layer.
 * - Deterministic: the same inputs give the same bits; the only randomness
 *   (cross-validation folds, permutations) comes from an icl_rng passed in. */
#ifndef ICL_ANALYSIS_H
#define ICL_ANALYSIS_H

#include <stdint.h>
#include "icl/rng.h"
#include "icl/status.h"

ICL_BEGIN_DECLS

/* ---- Task decodability (Han et al.): leave-one-out k-nearest neighbours ----
 * Each point i is classified by a majority vote of its k nearest other points
 * (Euclidean distance). Ties: neighbours at equal distance are ordered by
 * index (lower first); classes with equal votes are ordered by the smaller
 * sum of their voters' distances, then by the lower label. Requires
 * 1 <= k <= n-1 and at least one point in every class. */
#define ICL_KNN_DEFAULT_K 10

/* X (n,d), labels (n). per_class (n_classes): fraction of each class's points
 * classified correctly. mean: their unweighted mean over classes (optional).
 * pred (n): predicted label of each point (optional). O(n^2 d) time, O(n) memory. */
icl_status icl_knn_decodability(const float *X, const int32_t *labels, int n, int d, int n_classes, int k,
                                double *per_class, double *mean, int32_t *pred);

/* The same k nearest neighbours, each voting with weight 1/(d + ICL_KNN_WEIGHT_EPS)
 * (d its Euclidean distance): the class with the largest summed weight wins.
 * Equal vote counts, which the plain vote must break by rule (with 4 tasks
 * and k = 10, a fifth of the items), are decided by the distances; an exact
 * tie of the sums (e.g. duplicated points) goes to the lower label. The eps
 * keeps a neighbour at distance 0 finite and dominant. */
#define ICL_KNN_WEIGHT_EPS 1e-9
icl_status icl_knn_decodability_weighted(const float *X, const int32_t *labels, int n, int d, int n_classes, int k,
                                         double *per_class, double *mean, int32_t *pred);

/* Pairwise decodability: td (n_classes, n_classes). td[a][b] (a != b) is the
 * leave-one-out k-NN accuracy restricted to the points of classes a and b,
 * i.e. the mean of the two classes' accuracies; symmetric. The diagonal is 1
 * by definition (a class is never confused with itself). Requires
 * k <= n_a + n_b - 1 for every pair. */
icl_status icl_knn_pairwise(const float *X, const int32_t *labels, int n, int d, int n_classes, int k, double *td);

/* ---- RSA (Yousefi et al.) ---- */
typedef enum { ICL_POOL_LAST = 0, ICL_POOL_MEAN, ICL_POOL_MAX } icl_pool_mode;

/* Pool the rows [start, end) of h (T,d) into out (d): the last row, the
 * elementwise mean, or the elementwise max. 0 <= start < end <= T. */
icl_status icl_pool_span(const float *h, int T, int d, int start, int end, icl_pool_mode mode, float *out);

/* Z (n,d) = X standardised across items: per feature (x - mean) / std with the
 * population std (divide by n). A constant feature (std exactly 0) becomes 0. */
icl_status icl_standardize(const float *X, int n, int d, double *Z);

/* S (n,n): cosine similarity of the rows of Z (n,d). A row of norm 0 has
 * similarity 0 with every row, itself included. */
icl_status icl_cosine_similarity(const double *Z, int n, int d, double *S);

/* S (n,n) = representational similarity matrix of X (n,d):
 * icl_standardize, then icl_cosine_similarity. */
icl_status icl_rsa_rsm(const float *X, int n, int d, double *S);

/* Hypothesis matrices H (n,n). From labels: H[a][b] = 1 if labels match, else 0.
 * From a continuous value per item (e.g. a regression parameter):
 * H[a][b] = -|v_a - v_b| (more similar items get larger values). */
icl_status icl_rsa_hypothesis_labels(const int32_t *labels, int n, double *H);
icl_status icl_rsa_hypothesis_values(const double *v, int n, double *H);

/* Alignment: Spearman correlation (average ranks for ties) between the strict
 * upper triangles of S (n,n) and H (n,n), n >= 3. NaN if either triangle is constant. */
icl_status icl_rsa_alignment(const double *S, const double *H, int n, double *rho);

/* Alignment of S with the label hypothesis and its permutation p-value:
 * labels are shuffled n_perm times with `rng`, H rebuilt each time, and
 * p = (1 + #{rho_perm >= rho_obs - 1e-12}) / (1 + n_perm). rho and p are NaN
 * if every label is the same or every label differs (H constant). */
icl_status icl_rsa_permutation_test(const double *S, const int32_t *labels, int n, int n_perm, icl_rng *rng,
                                    double *rho, double *p_value);

/* ---- Linear probes ----
 * Features are standardised on the training data (population std; constant
 * features get weight 0). Folds: a permutation of 0..n-1 drawn with
 * icl_rng_shuffle_int from `rng` is cut into `folds` contiguous parts of
 * sizes differing by at most 1; fold f is held out while the model is fitted
 * on the rest. Cross-validated scores pool the held-out predictions of all
 * folds (every item is predicted exactly once). The returned weights are the
 * fit on all n items, expressed on the raw (unstandardised) features. */

/* fold_of (n): the fold in [0, folds) of each of n items, as the probe fits
 * below draw it from `rng` (so the same rng state gives their assignment);
 * 2 <= folds <= n. */
icl_status icl_probe_folds(int32_t *fold_of, int n, int folds, icl_rng *rng);

typedef struct {
    double l2;       /* penalty (l2/2)*||W||^2 on standardised-feature weights, bias unpenalised; default 1e-3 */
    int folds;       /* k-fold cross-validation, 2 <= folds <= n; default 5 */
    int max_iter;    /* L-BFGS iterations per fit; default 500 */
    double tol;      /* stop when the gradient's max-norm <= tol; default 1e-6 */
} icl_logistic_options;

typedef struct {
    int d, n, n_classes, folds;
    double *W;             /* (n_classes, d): logits = W x + b on raw features */
    double *b;             /* (n_classes) */
    double cv_accuracy;    /* fraction of held-out items predicted correctly */
    double *fold_accuracy; /* (folds) */
    int32_t *cv_pred;      /* (n): each item's held-out prediction; cv_accuracy = mean(cv_pred == labels) */
    double train_accuracy; /* of the all-data fit on its own training data */
    int iterations;        /* L-BFGS iterations of the all-data fit */
    int converged;         /* 1 if every fit reached tol before max_iter */
} icl_logistic_probe;

typedef struct {
    double alpha;   /* penalty alpha*||W||^2 on standardised-feature weights, loss = mean squared error; default 1e-4 */
    int folds;      /* default 5 */
} icl_ridge_options;

typedef struct {
    int d, n, n_out, folds;
    double *W;          /* (n_out, d): y = W x + b on raw features */
    double *b;          /* (n_out) */
    double *cv_r2;      /* (n_out): 1 - SS_res/SS_tot of the pooled held-out predictions; NaN if y_j is constant */
    double cv_r2_mean;  /* mean of the defined cv_r2 (NaN if none) */
    double *cv_pred;    /* (n, n_out): each item's held-out prediction, what cv_r2 scores */
} icl_ridge_probe;

/* The defaults given with each field. */
icl_logistic_options icl_logistic_options_default(void);
icl_ridge_options icl_ridge_options_default(void);

/* Multinomial logistic regression (softmax, mean cross-entropy + L2),
 * minimised by L-BFGS with a backtracking (Armijo) line search. X (n,d),
 * labels (n) in [0,n_classes), n_classes >= 2. opts NULL = defaults.
 * *out is allocated; free with icl_logistic_probe_free. */
icl_status icl_logistic_probe_fit(const float *X, const int32_t *labels, int n, int d, int n_classes,
                                  const icl_logistic_options *opts, icl_rng *rng, icl_logistic_probe **out);
/* pred (n) labels (argmax, lowest label on ties); proba (n, n_classes) optional. */
icl_status icl_logistic_probe_predict(const icl_logistic_probe *p, const float *X, int n, int32_t *pred,
                                      double *proba);
void icl_logistic_probe_free(icl_logistic_probe *p);

/* Ridge regression, closed form (Cholesky of the d x d normal matrix), with
 * an unpenalised intercept. X (n,d), Y (n,n_out). */
icl_status icl_ridge_probe_fit(const float *X, const float *Y, int n, int d, int n_out, const icl_ridge_options *opts,
                               icl_rng *rng, icl_ridge_probe **out);
/* Yhat (n, n_out). */
icl_status icl_ridge_probe_predict(const icl_ridge_probe *p, const float *X, int n, double *Yhat);
void icl_ridge_probe_free(icl_ridge_probe *p);

/* ---- Correlations and line fits (n >= 2, finite inputs) ---- */
/* ranks (n): 1-based ranks of x, tied values get the average of their ranks. */
icl_status icl_rank_average(const double *x, int n, double *ranks);
/* NaN if x or y is constant. */
icl_status icl_pearson(const double *x, const double *y, int n, double *r);
icl_status icl_spearman(const double *x, const double *y, int n, double *rho);
/* Least-squares line y = slope*x + intercept and its R^2 (any output may be
 * NULL). slope/intercept NaN if x is constant; r2 NaN if x or y is constant. */
icl_status icl_line_fit(const double *x, const double *y, int n, double *slope, double *intercept, double *r2);

/* ---- PCA ----
 * Top m principal components of X (n,d) from the population covariance,
 * found with cyclic Jacobi rotations (O(d^3); meant for d up to a few
 * hundred). components (m,d): unit vectors, by decreasing variance, each
 * signed so its largest-magnitude entry (lowest index on ties) is positive.
 * variance (m, optional): the eigenvalues. coords (n,m, optional): the
 * centred data projected on the components. 1 <= m <= d, n >= 2. */
icl_status icl_pca(const float *X, int n, int d, int m, double *components, double *variance, double *coords);

/* ---- Superposition (Xiong et al.) ----
 * P (n,K): per prompt, the probability of each of the K tasks' answers. */

/* mean (K) and sample variance (K, divide by n-1; 0 if n == 1) of P over
 * prompts; other (n, optional) = 1 - sum_j P_j per prompt; other_mean
 * (optional) = their mean. */
icl_status icl_superposition_summary(const double *P, int n, int K, double *mean, double *var, double *other,
                                     double *other_mean);

/* KL(lambda || p) = sum_j lambda_j log(lambda_j / p_j) for one prompt.
 * lambda (K): proportions, >= 0, summing to 1 within 1e-6. p (K): in [0,1].
 * renormalize = 0 uses p as is (Xiong's convention, the "other" mass counts
 * against calibration); 1 uses p / sum(p). Terms with lambda_j = 0 add 0;
 * p_j = 0 with lambda_j > 0 gives +inf (no floor). */
icl_status icl_kl_divergence(const double *lambda, const double *p, int K, int renormalize, double *kl);

/* Per-prompt KL of every row of P (n,K) against lambda: kl (n, optional)
 * and its mean over prompts kl_mean (optional; +inf if any row is +inf). */
icl_status icl_superposition_kl(const double *P, int n, int K, const double *lambda, int renormalize, double *kl,
                                double *kl_mean);

/* profile (K): each row of P sorted in decreasing order, then averaged over prompts. */
icl_status icl_superposition_sorted_mean(const double *P, int n, int K, double *profile);

/* Tasks solved. pK (n): per prompt, the K-th largest probability among all
 * candidate outputs (see icl_kth_largest). Task j is solved on a prompt if
 * P_j >= pK - 1e-5. solved (K, optional): fraction of prompts solving task j;
 * r = sum_j solved_j, in [0, K]. */
icl_status icl_tasks_solved(const double *P, const double *pK, int n, int K, double *solved, double *r);

/* out = the k-th largest of v (n), 1 <= k <= n (ties counted with multiplicity). */
icl_status icl_kth_largest(const double *v, int n, int k, double *out);

/* ---- Attention to roles (Yousefi et al.) ----
 * a (T): one attention row (from one query position, one head or the mean of
 * heads); entries >= 0, finite, not all 0. */

/* frac (n_labels): share of the row's total attention on the positions of
 * each label: frac[c] = sum_{t: labels[t] == c} a[t] / sum_t a[t]. labels (T)
 * in [-1, n_labels); -1 marks positions that belong to no label (they count in
 * the total only). Use it with role labels and with group (e.g. task) labels. */
icl_status icl_attention_fractions(const float *a, int T, const int32_t *labels, int n_labels, double *frac);

ICL_END_DECLS
#endif
