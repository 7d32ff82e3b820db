/* Analysis functions on planted data with known answers: k-NN decodability,
 * RSA, linear probes, streaming moments, correlations, PCA, superposition
 * metrics, attention fractions, and rejection of bad requests. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "analysis_internal.h"
#include "icl/analysis.h"
#include "icl/rng.h"
#include "testutil.h"

/* |got - want| <= tol, printing how much of the tolerance was used. */
static void check_close(const char *label, double got, double want, double tol) {
    double err = fabs(got - want);
    printf("  %-48s got %.12g, want %.12g, err %.3g (%.1f%% of tol %.3g)\n", label, got, want, err,
           100.0 * err / tol, tol);
    ck_assert_msg(err <= tol, "%s: got %.12g, want %.12g (tol %.3g)", label, got, want, tol);
}

/* ICL_ERR_INVALID_ARG (or `want`) with a non-empty message, which is printed. */
static void check_rejected(const char *label, icl_status got, icl_status want) {
    printf("  rejected %-32s %s: %s\n", label, icl_status_name(got), icl_last_error());
    ck_assert_msg(got == want, "%s: got %s, want %s", label, icl_status_name(got), icl_status_name(want));
    ck_assert_msg(icl_last_error()[0] != '\0', "%s: no error message", label);
}

static double *doubles(size_t n) {
    double *p = calloc(n ? n : 1, sizeof *p);
    ck_assert_ptr_nonnull(p);
    return p;
}

/* n points in d dims: point i belongs to class i % C, sits at spread*e_{class}
 * plus uniform noise in [-noise, noise). */
static void clusters(float *X, int32_t *labels, int n, int d, int C, float spread, float noise, icl_rng *r) {
    for (int i = 0; i < n; i++) {
        labels[i] = i % C;
        for (int j = 0; j < d; j++)
            X[(size_t)i * d + j] = (j == labels[i] % d ? spread : 0.0f) + (2.0f * icl_rng_uniform(r) - 1.0f) * noise;
    }
}

/* ---- task decodability ---- */

START_TEST(knn_separated_clusters_decode_perfectly) {
    enum { N = 200, D = 8, C = 4 };
    float *X = tu_floats((size_t)N * D);
    int32_t *y = tu_ints(N);
    icl_rng r;
    icl_rng_init(&r, 1, "knn-clusters");
    clusters(X, y, N, D, C, 10.0f, 0.5f, &r);
    double per[C], mean, td[C * C];
    ck_assert_int_eq(icl_knn_decodability(X, y, N, D, C, ICL_KNN_DEFAULT_K, per, &mean, NULL), ICL_OK);
    for (int c = 0; c < C; c++)
        ck_assert_double_eq(per[c], 1.0);
    check_close("separated clusters: mean TD", mean, 1.0, 1e-15);
    ck_assert_int_eq(icl_knn_pairwise(X, y, N, D, C, ICL_KNN_DEFAULT_K, td), ICL_OK);
    double worst = 1.0;
    for (int i = 0; i < C * C; i++)
        worst = fmin(worst, td[i]);
    check_close("separated clusters: smallest pairwise TD", worst, 1.0, 1e-15);
    free(X);
    free(y);
}
END_TEST

START_TEST(knn_random_labels_near_chance) {
    enum { N = 400, D = 8, C = 4 };
    float *X = tu_floats((size_t)N * D);
    int32_t *y = tu_ints(N);
    icl_rng r;
    icl_rng_init(&r, 2, "knn-random");
    tu_fill_uniform(X, (size_t)N * D, 1.0f, &r);
    for (int i = 0; i < N; i++)
        y[i] = i % C; /* labels independent of the random points */
    double per[C], mean;
    ck_assert_int_eq(icl_knn_decodability(X, y, N, D, C, 10, per, &mean, NULL), ICL_OK);
    /* chance 0.25; the binomial sd over 400 points is 0.022, so +-0.1 is ~4.6 sd */
    check_close("random labels: mean TD vs chance 0.25", mean, 0.25, 0.1);
    free(X);
    free(y);
}
END_TEST

START_TEST(knn_hand_example) {
    /* 1-D points 0,1,3,10,11 with labels 0,0,1,1,1, k = 2.
     * x=0: neighbours 1 (label 0, d 1), 3 (label 1, d 3): 1-1 vote, label 0 has the smaller distance -> 0.
     * x=1: 0 (0, d 1), 3 (1, d 2) -> 0.   x=3: 1 (0, d 2), 0 (0, d 3) -> 0 (wrong).
     * x=10, x=11: both neighbours label 1 -> 1. Class 0: 2/2, class 1: 2/3. */
    const float X[] = {0, 1, 3, 10, 11};
    const int32_t y[] = {0, 0, 1, 1, 1};
    double per[3], mean;
    int32_t pred[5];
    ck_assert_int_eq(icl_knn_decodability(X, y, 5, 1, 2, 2, per, &mean, pred), ICL_OK);
    const int32_t want_pred[] = {0, 0, 0, 1, 1};
    for (int i = 0; i < 5; i++)
        ck_assert_int_eq(pred[i], want_pred[i]);
    check_close("5-point example: class 0 TD", per[0], 1.0, 1e-15);
    check_close("5-point example: class 1 TD", per[1], 2.0 / 3.0, 1e-15);
    check_close("5-point example: mean TD", mean, 5.0 / 6.0, 1e-15);

    /* Distance ties go to the lower index: x = 0,-1,1,2, labels 0,1,0,1, k = 1.
     * x=0 has -1 (index 1, label 1) and 1 (index 2, label 0) at distance 1 -> 1. */
    const float X2[] = {0, -1, 1, 2};
    const int32_t y2[] = {0, 1, 0, 1};
    int32_t pred2[4];
    ck_assert_int_eq(icl_knn_decodability(X2, y2, 4, 1, 2, 1, per, NULL, pred2), ICL_OK);
    const int32_t want2[] = {1, 0, 0, 0};
    for (int i = 0; i < 4; i++)
        ck_assert_int_eq(pred2[i], want2[i]);
    check_close("distance tie by index: class 0 TD", per[0], 0.5, 1e-15);

    /* Equal votes and equal summed distances go to the lower label: x = 0,-1,1
     * with labels 0,2,1, k = 2: x=0 sees label 2 and label 1 at distance 1 -> 1. */
    const float X3[] = {0, -1, 1};
    const int32_t y3[] = {0, 2, 1};
    int32_t pred3[3];
    ck_assert_int_eq(icl_knn_decodability(X3, y3, 3, 1, 3, 2, per, NULL, pred3), ICL_OK);
    ck_assert_int_eq(pred3[0], 1);
    ck_assert_int_eq(pred3[1], 0);
    ck_assert_int_eq(pred3[2], 0);
    printf("  k-NN tie rules: predictions {1,0,0,0} and {1,0,0} as derived by hand\n");
}
END_TEST

START_TEST(knn_weighted_vote_decides_plain_ties) {
    /* 1-D points 0,1,10,-5,5 with labels 1,1,1,0,0, k = 4 (every other point votes).
     * x=0:  label 1 at d 1,10 (sum 11), label 0 at d 5,5 (sum 10): plain 2-2 -> 0 (smaller sum);
     *       weighted 1/1+1/10 = 1.1 > 0.4 -> 1.
     * x=1:  label 1 at d 1,9, label 0 at d 6,4: plain 2-2, sums 10 = 10 -> lower label 0;
     *       weighted 1.111 > 0.417 -> 1.
     * x=10: label 1 at d 10,9 (sum 19), label 0 at d 15,5 (sum 20): plain -> 1;
     *       weighted 0.211 < 0.267 -> 0.
     * x=-5, x=5: three label-1 voters against one: both rules -> 1.
     * Plain TD: class 0 0/2, class 1 1/3; weighted: 0/2, 2/3. */
    const float X[] = {0, 1, 10, -5, 5};
    const int32_t y[] = {1, 1, 1, 0, 0};
    double per[2], mean, wper[2], wmean;
    int32_t pred[5], wpred[5];
    ck_assert_int_eq(icl_knn_decodability(X, y, 5, 1, 2, 4, per, &mean, pred), ICL_OK);
    ck_assert_int_eq(icl_knn_decodability_weighted(X, y, 5, 1, 2, 4, wper, &wmean, wpred), ICL_OK);
    const int32_t want[] = {0, 0, 1, 1, 1}, wwant[] = {1, 1, 0, 1, 1};
    for (int i = 0; i < 5; i++) {
        ck_assert_int_eq(pred[i], want[i]);
        ck_assert_int_eq(wpred[i], wwant[i]);
    }
    check_close("plain vote: class 0 TD", per[0], 0.0, 1e-15);
    check_close("plain vote: class 1 TD", per[1], 1.0 / 3.0, 1e-15);
    check_close("plain vote: mean TD", mean, 1.0 / 6.0, 1e-15);
    check_close("weighted vote: class 0 TD", wper[0], 0.0, 1e-15);
    check_close("weighted vote: class 1 TD", wper[1], 2.0 / 3.0, 1e-15);
    check_close("weighted vote: mean TD", wmean, 1.0 / 3.0, 1e-15);

    /* Duplicated points tie the weighted sums exactly: the lower label wins. x = 0,0,0 labels 0,2,1, k = 2:
     * x0 sees labels 2 and 1 at d 0 -> 1; x1 sees 0 and 1 -> 0; x2 sees 0 and 2 -> 0. */
    const float X2[] = {0, 0, 0};
    const int32_t y2[] = {0, 2, 1};
    double per3[3];
    int32_t pred2[3];
    ck_assert_int_eq(icl_knn_decodability_weighted(X2, y2, 3, 1, 3, 2, per3, NULL, pred2), ICL_OK);
    ck_assert_int_eq(pred2[0], 1);
    ck_assert_int_eq(pred2[1], 0);
    ck_assert_int_eq(pred2[2], 0);
    check_rejected("weighted knn k >= n", icl_knn_decodability_weighted(X2, y2, 3, 1, 3, 3, per3, NULL, NULL),
                   ICL_ERR_INVALID_ARG);
    printf("  weighted k-NN: plain {0,0,1,1,1} TD 1/6, weighted {1,1,0,1,1} TD 1/3, as derived by hand\n");
}
END_TEST

START_TEST(knn_pairwise_separates_only_distinct_classes) {
    /* Classes 0 and 1 share one cluster (labels alternate at random inside
     * it), class 2 is far away: td[0][2] = td[1][2] = 1, td[0][1] ~ 0.5. */
    enum { N = 300, D = 4, C = 3 };
    float *X = tu_floats((size_t)N * D);
    int32_t *y = tu_ints(N);
    icl_rng r;
    icl_rng_init(&r, 3, "knn-pairwise");
    tu_fill_uniform(X, (size_t)N * D, 1.0f, &r);
    for (int i = 0; i < N; i++) {
        y[i] = i % C;
        if (y[i] == 2)
            X[(size_t)i * D] += 20.0f;
    }
    double td[C * C];
    ck_assert_int_eq(icl_knn_pairwise(X, y, N, D, C, 10, td), ICL_OK);
    for (int a = 0; a < C; a++) {
        ck_assert_double_eq(td[a * C + a], 1.0);
        for (int b = 0; b < C; b++)
            ck_assert_double_eq(td[a * C + b], td[b * C + a]);
    }
    check_close("pairwise: far class 0 vs 2", td[0 * C + 2], 1.0, 1e-15);
    check_close("pairwise: far class 1 vs 2", td[1 * C + 2], 1.0, 1e-15);
    /* 200 points, binomial sd 0.035: +-0.15 is ~4 sd */
    check_close("pairwise: mixed classes 0 vs 1 near 0.5", td[0 * C + 1], 0.5, 0.15);
    free(X);
    free(y);
}
END_TEST

/* ---- RSA ---- */

START_TEST(pool_and_standardize_by_hand) {
    const float h[] = {1, -2, 3, 5, 2, 0}; /* (T=3, d=2) */
    float out[2];
    ck_assert_int_eq(icl_pool_span(h, 3, 2, 0, 3, ICL_POOL_LAST, out), ICL_OK);
    ck_assert(out[0] == 2.0f && out[1] == 0.0f);
    ck_assert_int_eq(icl_pool_span(h, 3, 2, 0, 2, ICL_POOL_MEAN, out), ICL_OK);
    ck_assert(out[0] == 2.0f && out[1] == 1.5f);
    ck_assert_int_eq(icl_pool_span(h, 3, 2, 1, 3, ICL_POOL_MAX, out), ICL_OK);
    ck_assert(out[0] == 3.0f && out[1] == 5.0f);
    printf("  pooling: last (2,0), mean of rows 0-1 (2,1.5), max of rows 1-2 (3,5)\n");

    /* feature 0: 1,2,3 -> mean 2, population sd sqrt(2/3); feature 1 constant -> 0 */
    const float X[] = {1, 7, 2, 7, 3, 7};
    double Z[6];
    ck_assert_int_eq(icl_standardize(X, 3, 2, Z), ICL_OK);
    check_close("standardize: (1-2)/sqrt(2/3)", Z[0], -1.0 / sqrt(2.0 / 3.0), 1e-14);
    check_close("standardize: middle value", Z[2], 0.0, 1e-15);
    for (int i = 0; i < 3; i++)
        ck_assert_double_eq(Z[i * 2 + 1], 0.0);

    /* cosine: (1,0), (1,1), (0,0) */
    const double V[] = {1, 0, 1, 1, 0, 0};
    double S[9];
    ck_assert_int_eq(icl_cosine_similarity(V, 3, 2, S), ICL_OK);
    check_close("cosine (1,0).(1,1)", S[1], 1.0 / sqrt(2.0), 1e-15);
    ck_assert_double_eq(S[1], S[3]);
    ck_assert_double_eq(S[0], 1.0);
    ck_assert_double_eq(S[8], 0.0); /* zero row */
}
END_TEST

START_TEST(rsa_self_and_reversed) {
    enum { N = 12 };
    double S[N * N], H[N * N];
    icl_rng r;
    icl_rng_init(&r, 4, "rsa-self");
    for (int a = 0; a < N; a++)
        for (int b = a; b < N; b++) {
            double v = icl_rng_uniform(&r);
            S[a * N + b] = S[b * N + a] = v;
            H[a * N + b] = H[b * N + a] = -v;
        }
    double rho;
    ck_assert_int_eq(icl_rsa_alignment(S, S, N, &rho), ICL_OK);
    check_close("RSA: matrix against itself", rho, 1.0, 1e-12);
    ck_assert_int_eq(icl_rsa_alignment(S, H, N, &rho), ICL_OK);
    check_close("RSA: matrix against reversed order", rho, -1.0, 1e-12);
}
END_TEST

START_TEST(ranks_and_spearman_with_ties) {
    const double x[] = {10, 20, 20, 5, 20};
    double rk[5];
    ck_assert_int_eq(icl_rank_average(x, 5, rk), ICL_OK);
    const double want[] = {2, 4, 4, 1, 4};
    for (int i = 0; i < 5; i++)
        ck_assert_double_eq(rk[i], want[i]);
    printf("  ranks of {10,20,20,5,20} = {2,4,4,1,4}\n");
    /* x ranks {1,2.5,2.5,4}, y ranks {1,3,2,4}: sxy 4.5, sxx 4.5, syy 5 */
    const double a[] = {1, 2, 2, 3}, b[] = {1, 3, 2, 4};
    double rho;
    ck_assert_int_eq(icl_spearman(a, b, 4, &rho), ICL_OK);
    check_close("Spearman with ties, by hand", rho, 4.5 / sqrt(4.5 * 5.0), 1e-15);
    const double c[] = {3, 3, 3, 3};
    ck_assert_int_eq(icl_spearman(a, c, 4, &rho), ICL_OK);
    ck_assert(isnan(rho));
}
END_TEST

START_TEST(rsa_permutation_p_values) {
    enum { N = 30, D = 6, C = 3, PERM = 199 };
    float *X = tu_floats((size_t)N * D);
    int32_t *y = tu_ints(N);
    double *S = doubles((size_t)N * N), *H = doubles((size_t)N * N);
    icl_rng r, perm;
    icl_rng_init(&r, 5, "rsa-structured");
    clusters(X, y, N, D, C, 3.0f, 1.0f, &r);
    ck_assert_int_eq(icl_rsa_rsm(X, N, D, S), ICL_OK);
    double rho, p, rho_direct;
    icl_rng_init(&perm, 5, "rsa-perm");
    ck_assert_int_eq(icl_rsa_permutation_test(S, y, N, PERM, &perm, &rho, &p), ICL_OK);
    ck_assert_int_eq(icl_rsa_hypothesis_labels(y, N, H), ICL_OK);
    ck_assert_int_eq(icl_rsa_alignment(S, H, N, &rho_direct), ICL_OK);
    check_close("RSA label shortcut == generic Spearman", rho, rho_direct, 1e-12);
    printf("  structured: rho %.4f, p %.4f (want <= 0.01)\n", rho, p);
    ck_assert(rho > 0.3);
    ck_assert(p <= 0.01);

    icl_rng_init(&r, 6, "rsa-random");
    tu_fill_uniform(X, (size_t)N * D, 1.0f, &r);
    ck_assert_int_eq(icl_rsa_rsm(X, N, D, S), ICL_OK);
    ck_assert_int_eq(icl_rsa_permutation_test(S, y, N, PERM, &perm, &rho, &p), ICL_OK);
    printf("  random labels: rho %.4f, p %.4f (want > 0.05)\n", rho, p);
    ck_assert(p > 0.05);

    /* continuous hypothesis: items on a line, similarity = -distance */
    double v[N];
    for (int i = 0; i < N; i++)
        v[i] = i * 0.5;
    ck_assert_int_eq(icl_rsa_hypothesis_values(v, N, H), ICL_OK);
    check_close("hypothesis from values: H[0][3]", H[3], -1.5, 1e-15);
    ck_assert_int_eq(icl_rsa_alignment(H, H, N, &rho), ICL_OK);
    check_close("value hypothesis against itself", rho, 1.0, 1e-12);

    /* every label distinct: the hypothesis is constant, rho undefined */
    for (int i = 0; i < N; i++)
        y[i] = i;
    ck_assert_int_eq(icl_rsa_permutation_test(S, y, N, 9, &perm, &rho, &p), ICL_OK);
    ck_assert(isnan(rho) && isnan(p));
    free(X);
    free(y);
    free(S);
    free(H);
}
END_TEST

/* ---- linear probes ---- */

START_TEST(logistic_separable_and_random) {
    enum { N = 150, D = 5, C = 3 };
    float *X = tu_floats((size_t)N * D);
    int32_t *y = tu_ints(N);
    icl_rng r, folds;
    icl_rng_init(&r, 7, "logistic");
    icl_rng_init(&folds, 7, "folds");
    clusters(X, y, N, D, C, 4.0f, 1.0f, &r);
    icl_logistic_probe *p;
    ck_assert_int_eq(icl_logistic_probe_fit(X, y, N, D, C, NULL, &folds, &p), ICL_OK);
    printf("  separable: %d L-BFGS iterations, converged %d, train acc %.4f\n", p->iterations, p->converged,
           p->train_accuracy);
    ck_assert_int_eq(p->converged, 1);
    check_close("separable: CV accuracy", p->cv_accuracy, 1.0, 0.01);
    int32_t pred[N];
    ck_assert_int_eq(icl_logistic_probe_predict(p, X, N, pred, NULL), ICL_OK);
    int correct = 0;
    for (int i = 0; i < N; i++)
        correct += pred[i] == y[i];
    check_close("predict() agrees with train accuracy", (double)correct / N, p->train_accuracy, 1e-15);
    icl_logistic_probe_free(p);

    /* Same seed, same folds, same bits. */
    icl_logistic_probe *p2;
    icl_rng f1, f2;
    icl_rng_init(&f1, 70, "folds");
    icl_rng_init(&f2, 70, "folds");
    ck_assert_int_eq(icl_logistic_probe_fit(X, y, N, D, C, NULL, &f1, &p), ICL_OK);
    ck_assert_int_eq(icl_logistic_probe_fit(X, y, N, D, C, NULL, &f2, &p2), ICL_OK);
    ck_assert_int_eq(memcmp(p->W, p2->W, sizeof(double) * C * D), 0);
    ck_assert_int_eq(memcmp(p->fold_accuracy, p2->fold_accuracy, sizeof(double) * p->folds), 0);
    /* cv_pred and icl_probe_folds from the same rng state give back every fold's accuracy. */
    int32_t fold_of[N];
    icl_rng f3;
    icl_rng_init(&f3, 70, "folds");
    ck_assert_int_eq(icl_probe_folds(fold_of, N, p->folds, &f3), ICL_OK);
    int total = 0;
    for (int f = 0; f < p->folds; f++) {
        int nf = 0, cf = 0;
        for (int i = 0; i < N; i++)
            if (fold_of[i] == f) {
                nf++;
                cf += p->cv_pred[i] == y[i];
            }
        ck_assert_int_ge(nf, N / p->folds);
        ck_assert_int_le(nf, N / p->folds + 1);
        check_close("fold accuracy from cv_pred", (double)cf / nf, p->fold_accuracy[f], 1e-15);
        total += cf;
    }
    check_close("CV accuracy from cv_pred", (double)total / N, p->cv_accuracy, 1e-15);
    check_rejected("one fold", icl_probe_folds(fold_of, N, 1, &f3), ICL_ERR_INVALID_ARG);
    icl_logistic_probe_free(p);
    icl_logistic_probe_free(p2);

    /* Random labels in 20 dimensions: the fit memorises part of its training
     * data, the held-out accuracy must stay at chance. */
    enum { NR = 150, DR = 20 };
    float *XR = tu_floats((size_t)NR * DR);
    int32_t *yr = tu_ints(NR);
    tu_fill_uniform(XR, (size_t)NR * DR, 1.0f, &r);
    for (int i = 0; i < NR; i++)
        yr[i] = (int32_t)icl_rng_below(&r, C);
    ck_assert_int_eq(icl_logistic_probe_fit(XR, yr, NR, DR, C, NULL, &folds, &p), ICL_OK);
    printf("  random labels: train accuracy %.3f (memorised), CV accuracy %.3f\n", p->train_accuracy, p->cv_accuracy);
    ck_assert(p->train_accuracy > 0.55); /* shows that scoring on training data would fail the check below */
    /* chance 1/3; the binomial sd over 150 points is 0.038, so +-0.15 is ~4 sd */
    check_close("random labels: CV accuracy vs chance 1/3", p->cv_accuracy, 1.0 / 3.0, 0.15);
    icl_logistic_probe_free(p);
    free(X);
    free(y);
    free(XR);
    free(yr);
}
END_TEST

START_TEST(logistic_matches_analytic_optimum) {
    /* x = -1 (class 0) and x = +1 (class 1), 10 copies each: standardised z = x.
     * By symmetry b0 = b1 and W = (-u/2, u/2); the objective
     * log(1 + e^-u) + l2 u^2/4 is minimal where sigmoid(-u) = l2 u / 2. */
    enum { N = 20 };
    float X[N];
    int32_t y[N];
    for (int i = 0; i < N; i++) {
        y[i] = i % 2;
        X[i] = y[i] ? 1.0f : -1.0f;
    }
    icl_logistic_options o;
    o = icl_logistic_options_default();
    o.l2 = 0.1;
    o.tol = 1e-10;
    o.folds = 2;
    double lo = 0.0, hi = 10.0;
    for (int it = 0; it < 200; it++) {
        double u = 0.5 * (lo + hi);
        if (1.0 / (1.0 + exp(u)) > o.l2 * u / 2.0)
            lo = u;
        else
            hi = u;
    }
    icl_rng folds;
    icl_rng_init(&folds, 8, "folds");
    icl_logistic_probe *p;
    ck_assert_int_eq(icl_logistic_probe_fit(X, y, N, 1, 2, &o, &folds, &p), ICL_OK);
    ck_assert_int_eq(p->converged, 1);
    check_close("logistic: W1 - W0 vs analytic optimum", p->W[1] - p->W[0], lo, 1e-7);
    check_close("logistic: W0 + W1 (symmetry)", p->W[0] + p->W[1], 0.0, 1e-7);
    check_close("logistic: b1 - b0 (symmetry)", p->b[1] - p->b[0], 0.0, 1e-7);
    icl_logistic_probe_free(p);
}
END_TEST

START_TEST(ridge_recovers_linear_map) {
    enum { N = 100, D = 4, Q = 2 };
    const double Wt[Q * D] = {1.5, -2.0, 0.5, 0.0, -0.25, 3.0, 1.0, 2.0}, bt[Q] = {0.5, -1.0};
    float *X = tu_floats((size_t)N * D), *Y = tu_floats((size_t)N * Q);
    icl_rng r, folds;
    icl_rng_init(&r, 9, "ridge");
    icl_rng_init(&folds, 9, "folds");
    tu_fill_uniform(X, (size_t)N * D, 2.0f, &r);
    for (int i = 0; i < N; i++)
        for (int o = 0; o < Q; o++) {
            double s = bt[o];
            for (int j = 0; j < D; j++)
                s += Wt[o * D + j] * X[i * D + j];
            Y[i * Q + o] = (float)s;
        }
    icl_ridge_options o;
    o = icl_ridge_options_default();
    o.alpha = 1e-10;
    icl_ridge_probe *p;
    ck_assert_int_eq(icl_ridge_probe_fit(X, Y, N, D, Q, &o, &folds, &p), ICL_OK);
    double werr = 0.0, berr = 0.0;
    for (int k = 0; k < Q * D; k++)
        werr = fmax(werr, fabs(p->W[k] - Wt[k]));
    for (int k = 0; k < Q; k++)
        berr = fmax(berr, fabs(p->b[k] - bt[k]));
    /* Y is rounded to float: errors of ~1e-7 relative are the noise floor */
    check_close("ridge: max |W - W_true|", werr, 0.0, 1e-5);
    check_close("ridge: max |b - b_true|", berr, 0.0, 1e-5);
    check_close("ridge: CV R^2 output 0", p->cv_r2[0], 1.0, 1e-9);
    check_close("ridge: CV R^2 mean", p->cv_r2_mean, 1.0, 1e-9);
    double yhat[Q];
    ck_assert_int_eq(icl_ridge_probe_predict(p, X, 1, yhat), ICL_OK);
    check_close("ridge: predict first item", yhat[1], Y[1], 1e-5);
    icl_ridge_probe_free(p);

    /* Shrinkage convention: y = 2x exactly and alpha = 1 on standardised x gives
     * beta = cov(z, y) / (1 + alpha) = 2 sd / 2, so the raw weight is exactly 1. */
    for (int i = 0; i < N; i++)
        Y[i] = 2.0f * X[i * D];
    o.alpha = 1.0;
    float *x1 = tu_floats(N);
    for (int i = 0; i < N; i++)
        x1[i] = X[i * D];
    ck_assert_int_eq(icl_ridge_probe_fit(x1, Y, N, 1, 1, &o, &folds, &p), ICL_OK);
    check_close("ridge alpha=1: weight halved to 1", p->W[0], 1.0, 1e-6);
    icl_ridge_probe_free(p);
    free(x1);
    free(X);
    free(Y);
}
END_TEST

/* ---- streaming statistics, correlations, PCA ---- */

START_TEST(moments_match_two_pass) {
    enum { N = 1000, D = 6 };
    float *X = tu_floats((size_t)N * D);
    icl_rng r;
    icl_rng_init(&r, 10, "moments");
    for (int i = 0; i < N; i++)
        for (int j = 0; j < D; j++) /* a large offset tests the centred updates */
            X[i * D + j] = 1000.0f + (j + 1) * icl_rng_normal(&r) + (j == 1 ? X[i * D] - 1000.0f : 0.0f);
    double mu[D] = {0}, cov[D * D] = {0};
    for (int i = 0; i < N; i++)
        for (int j = 0; j < D; j++)
            mu[j] += X[i * D + j];
    for (int j = 0; j < D; j++)
        mu[j] /= N;
    for (int i = 0; i < N; i++)
        for (int a = 0; a < D; a++)
            for (int b = 0; b < D; b++)
                cov[a * D + b] += (X[i * D + a] - mu[a]) * (X[i * D + b] - mu[b]) / (N - 1);

    icl_moments *m1, *m2;
    ck_assert_int_eq(icl_moments_create(D, 1, &m1), ICL_OK);
    ck_assert_int_eq(icl_moments_create(D, 1, &m2), ICL_OK);
    for (int i = 0; i < N / 2; i++) /* first half one vector at a time */
        ck_assert_int_eq(icl_moments_add(m1, X + i * D), ICL_OK);
    for (int i = N / 2; i < N; i += 100) /* second half in batches */
        ck_assert_int_eq(icl_moments_add_batch(m2, X + i * D, 100), ICL_OK);
    ck_assert_int_eq(icl_moments_merge(m1, m2), ICL_OK);
    ck_assert_int_eq(icl_moments_count(m1), N);
    double gm[D], gc[D * D];
    ck_assert_int_eq(icl_moments_mean(m1, gm), ICL_OK);
    ck_assert_int_eq(icl_moments_covariance(m1, 1, gc), ICL_OK);
    double em = 0.0, ec = 0.0;
    for (int j = 0; j < D; j++)
        em = fmax(em, fabs(gm[j] - mu[j]) / fabs(mu[j]));
    for (int k = 0; k < D * D; k++)
        ec = fmax(ec, fabs(gc[k] - cov[k]) / (fabs(cov[k]) + 1.0));
    check_close("streaming mean vs two-pass (rel)", em, 0.0, 1e-13);
    check_close("streaming+merged cov vs two-pass (rel)", ec, 0.0, 1e-10);
    check_close("cov[0][1] vs its planted value 1", gc[1], 1.0, 0.15);

    icl_moments *mo;
    ck_assert_int_eq(icl_moments_create(D, 0, &mo), ICL_OK);
    ck_assert_int_eq(icl_moments_add_batch(mo, X, N), ICL_OK);
    ck_assert_int_eq(icl_moments_mean(mo, gm), ICL_OK);
    check_close("mean-only accumulator: mean[5]", gm[5], mu[5], 1e-10);
    check_rejected("covariance without tracking", icl_moments_covariance(mo, 0, gc), ICL_ERR_STATE);
    icl_moments_free(mo);
    icl_moments_free(m1);
    icl_moments_free(m2);
    free(X);
}
END_TEST

START_TEST(correlations_and_line_fit) {
    const double x[] = {1, 2, 3, 4, 5}, y[] = {3, 5, 7, 9, 11};
    double r, slope, icpt, r2;
    ck_assert_int_eq(icl_pearson(x, y, 5, &r), ICL_OK);
    check_close("Pearson of an exact line", r, 1.0, 1e-15);
    ck_assert_int_eq(icl_line_fit(x, y, 5, &slope, &icpt, &r2), ICL_OK);
    check_close("line fit slope", slope, 2.0, 1e-14);
    check_close("line fit intercept", icpt, 1.0, 1e-14);
    check_close("line fit R^2", r2, 1.0, 1e-15);
    /* dx {-1,0,1}, dy {-1,1,0}: r = 1 / sqrt(2*2) */
    const double a[] = {1, 2, 3}, b[] = {1, 3, 2};
    ck_assert_int_eq(icl_pearson(a, b, 3, &r), ICL_OK);
    check_close("Pearson by hand", r, 0.5, 1e-15);
    ck_assert_int_eq(icl_line_fit(a, b, 3, &slope, NULL, &r2), ICL_OK);
    check_close("R^2 = r^2", r2, 0.25, 1e-15);
    const double c[] = {4, 4, 4};
    ck_assert_int_eq(icl_pearson(a, c, 3, &r), ICL_OK);
    ck_assert(isnan(r));
    ck_assert_int_eq(icl_line_fit(c, a, 3, &slope, &icpt, &r2), ICL_OK);
    ck_assert(isnan(slope) && isnan(icpt) && isnan(r2));
}
END_TEST

START_TEST(pca_finds_dominant_direction) {
    enum { N = 500, D = 5 };
    const double u_raw[D] = {1, 2, 0, -1, 1};
    double u[D], norm = 0.0;
    for (int j = 0; j < D; j++)
        norm += u_raw[j] * u_raw[j];
    for (int j = 0; j < D; j++)
        u[j] = u_raw[j] / sqrt(norm);
    float *X = tu_floats((size_t)N * D);
    icl_rng r;
    icl_rng_init(&r, 11, "pca");
    for (int i = 0; i < N; i++) {
        double t = 5.0 * icl_rng_normal(&r);
        for (int j = 0; j < D; j++)
            X[i * D + j] = (float)(3.0 + t * u[j] + 0.5 * icl_rng_normal(&r));
    }
    double comp[2 * D], var[2], *coords = doubles((size_t)N * 2);
    ck_assert_int_eq(icl_pca(X, N, D, 2, comp, var, coords), ICL_OK);
    double cosv = 0.0, n0 = 0.0, dot01 = 0.0;
    for (int j = 0; j < D; j++) {
        cosv += comp[j] * u[j];
        n0 += comp[j] * comp[j];
        dot01 += comp[j] * comp[D + j];
    }
    check_close("PCA: |cos(pc1, planted direction)|", fabs(cosv), 1.0, 0.01);
    check_close("PCA: pc1 unit norm", n0, 1.0, 1e-12);
    check_close("PCA: pc1 . pc2", dot01, 0.0, 1e-12);
    /* variance along u is 25 + 0.25; sampling error of 500 draws ~ 6% */
    check_close("PCA: top variance vs 25.25", var[0], 25.25, 25.25 * 0.2);
    ck_assert(var[1] < 0.5);
    double s = 0.0, ss = 0.0;
    for (int i = 0; i < N; i++) {
        s += coords[i * 2];
        ss += coords[i * 2] * coords[i * 2];
    }
    check_close("PCA: coords mean 0", s / N, 0.0, 1e-9);
    check_close("PCA: coords variance = eigenvalue", ss / N, var[0], 1e-9 * var[0]);

    /* Exact case: points +-2 e_0 and +-1 e_2 (d = 3): population covariance
     * diag(8/4, 0, 2/4); components +e_0, +e_2 by the sign convention. */
    const float P[] = {2, 0, 0, -2, 0, 0, 0, 0, 1, 0, 0, -1};
    double c3[3 * 3], v3[3];
    ck_assert_int_eq(icl_pca(P, 4, 3, 3, c3, v3, NULL), ICL_OK);
    check_close("PCA exact: variance 2", v3[0], 2.0, 1e-14);
    check_close("PCA exact: variance 0.5", v3[1], 0.5, 1e-14);
    check_close("PCA exact: variance 0", v3[2], 0.0, 1e-14);
    check_close("PCA exact: pc1 = +e0", c3[0], 1.0, 1e-14);
    check_close("PCA exact: pc2 = +e2", c3[3 + 2], 1.0, 1e-14);
    free(X);
    free(coords);
}
END_TEST

/* ---- superposition ---- */

START_TEST(superposition_metrics_by_hand) {
    const double lam[] = {0.5, 0.5}, same[] = {0.5, 0.5};
    double kl;
    ck_assert_int_eq(icl_kl_divergence(lam, same, 2, 0, &kl), ICL_OK);
    check_close("KL(lambda||lambda)", kl, 0.0, 1e-15);
    const double p[] = {0.4, 0.1};
    ck_assert_int_eq(icl_kl_divergence(lam, p, 2, 0, &kl), ICL_OK);
    check_close("KL raw: .5 ln(.5/.4) + .5 ln(.5/.1)", kl, 0.5 * log(1.25) + 0.5 * log(5.0), 1e-15);
    ck_assert_int_eq(icl_kl_divergence(lam, p, 2, 1, &kl), ICL_OK);
    check_close("KL renormalised: p = (.8,.2)", kl, 0.5 * log(0.625) + 0.5 * log(2.5), 1e-15);
    const double lam1[] = {1.0, 0.0}, pz[] = {0.5, 0.0};
    ck_assert_int_eq(icl_kl_divergence(lam1, pz, 2, 0, &kl), ICL_OK);
    check_close("KL with lambda_j = 0, p_j = 0 term", kl, log(2.0), 1e-15);
    const double pz2[] = {0.0, 0.5};
    ck_assert_int_eq(icl_kl_divergence(lam1, pz2, 2, 0, &kl), ICL_OK);
    ck_assert(isinf(kl) && kl > 0);

    /* P (2 prompts, 2 tasks) */
    const double P[] = {0.1, 0.6, 0.5, 0.2};
    double mean[2], var[2], other[2], om, prof[2], kls[2], klm;
    ck_assert_int_eq(icl_superposition_summary(P, 2, 2, mean, var, other, &om), ICL_OK);
    check_close("mean P task 0", mean[0], 0.3, 1e-15);
    check_close("sample var P task 0 (.1,.5)", var[0], 0.08, 1e-15);
    check_close("other mass prompt 0", other[0], 0.3, 1e-15);
    check_close("other mass mean", om, 0.3, 1e-15);
    ck_assert_int_eq(icl_superposition_sorted_mean(P, 2, 2, prof), ICL_OK);
    check_close("sorted mean: largest first", prof[0], 0.55, 1e-15);
    check_close("sorted mean: second", prof[1], 0.15, 1e-15);
    ck_assert_int_eq(icl_superposition_kl(P, 2, 2, lam, 0, kls, &klm), ICL_OK);
    check_close("per-prompt KL row 1", kls[1], 0.5 * log(1.0) + 0.5 * log(2.5), 1e-15);
    check_close("KL mean over prompts", klm, 0.5 * (kls[0] + kls[1]), 1e-15);
}
END_TEST

START_TEST(tasks_solved_by_hand) {
    /* pK: 2nd largest over all candidate outputs. Prompt 0: both >= .35;
     * prompt 1: .1 < .2; prompt 2: .3 >= .300005 - 1e-5. solved (1, 2/3), r 5/3. */
    const double P[] = {0.4, 0.35, 0.6, 0.1, 0.3, 0.3};
    const double pK[] = {0.35, 0.2, 0.300005};
    double solved[2], r;
    ck_assert_int_eq(icl_tasks_solved(P, pK, 3, 2, solved, &r), ICL_OK);
    check_close("solved fraction task 0", solved[0], 1.0, 1e-15);
    check_close("solved fraction task 1", solved[1], 2.0 / 3.0, 1e-15);
    check_close("r", r, 5.0 / 3.0, 1e-15);
    /* pK 2e-5 above prompt 2's answers, beyond the slack: prompt 2 solves
     * nothing, so solved (2/3, 1/3) and r = 1. */
    const double pK_far[] = {0.35, 0.2, 0.30002};
    ck_assert_int_eq(icl_tasks_solved(P, pK_far, 3, 2, solved, &r), ICL_OK);
    check_close("solved task 0, prompt 2 outside the slack", solved[0], 2.0 / 3.0, 1e-15);
    check_close("r with prompt 2 just outside the slack", r, 1.0, 1e-15);
    const double v[] = {0.1, 0.5, 0.3, 0.5};
    double kth;
    ck_assert_int_eq(icl_kth_largest(v, 4, 2, &kth), ICL_OK);
    ck_assert_double_eq(kth, 0.5);
    ck_assert_int_eq(icl_kth_largest(v, 4, 3, &kth), ICL_OK);
    ck_assert_double_eq(kth, 0.3);
}
END_TEST

/* ---- attention ---- */

START_TEST(attention_fractions_and_ratio) {
    /* positions: BOS, x0 sep0 y0, x1 sep1 y1, query; roles x=0, sep=1, y=2 */
    const float a[] = {0.1f, 0.05f, 0.05f, 0.2f, 0.1f, 0.1f, 0.3f, 0.1f};
    const int32_t roles[] = {-1, 0, 1, 2, 0, 1, 2, -1}, groups[] = {-1, 0, 0, 0, 1, 1, 1, -1};
    double fr[3], fg[2], ratio;
    ck_assert_int_eq(icl_attention_fractions(a, 8, roles, 3, fr), ICL_OK);
    check_close("attention on role x", fr[0], 0.15, 1e-7);
    check_close("attention on role sep", fr[1], 0.15, 1e-7);
    check_close("attention on role y", fr[2], 0.5, 1e-7);
    ck_assert_int_eq(icl_attention_fractions(a, 8, groups, 2, fg), ICL_OK);
    check_close("attention on example 0", fg[0], 0.3, 1e-7);
    check_close("attention on example 1", fg[1], 0.5, 1e-7);
    const uint8_t rel[] = {0, 0, 0, 0, 0, 0, 1, 0}, irr[] = {0, 0, 0, 1, 0, 0, 0, 0};
    ck_assert_int_eq(icl_attention_ratio(a, 8, rel, irr, &ratio), ICL_OK);
    check_close("ratio y1 / y0 = .3/.2", ratio, 1.5, 1e-6);
    const float z[] = {0.5f, 0.5f, 0.0f}, zz[] = {0.0f, 1.0f, 0.0f};
    const uint8_t r3[] = {1, 0, 0}, i3[] = {0, 0, 1};
    ck_assert_int_eq(icl_attention_ratio(z, 3, r3, i3, &ratio), ICL_OK);
    ck_assert(isinf(ratio) && ratio > 0);
    ck_assert_int_eq(icl_attention_ratio(zz, 3, r3, i3, &ratio), ICL_OK);
    ck_assert(isnan(ratio));
    printf("  zero denominator: +inf (numerator > 0), NaN (0/0)\n");
}
END_TEST

/* ---- bad requests ---- */

START_TEST(bad_requests_rejected) {
    const float X[] = {0, 1, 2, 3, 4, 5};
    const int32_t y[] = {0, 1, 0, 1, 0, 1}, y_bad[] = {0, 1, 2, 1, 0, 1}, y_one[] = {0, 0, 0, 0, 0, 0};
    double per[4], td[9], rho, p, kl, out[36] = {0};
    int32_t pred[6];
    icl_rng r;
    icl_rng_init(&r, 12, "bad");
    check_rejected("knn n = 0", icl_knn_decodability(X, y, 0, 1, 2, 1, per, NULL, NULL), ICL_ERR_INVALID_ARG);
    check_rejected("knn k >= n", icl_knn_decodability(X, y, 6, 1, 2, 6, per, NULL, NULL), ICL_ERR_INVALID_ARG);
    check_rejected("knn k = 0", icl_knn_decodability(X, y, 6, 1, 2, 0, per, NULL, pred), ICL_ERR_INVALID_ARG);
    check_rejected("knn label out of range", icl_knn_decodability(X, y_bad, 6, 1, 2, 1, per, NULL, NULL),
                   ICL_ERR_INVALID_ARG);
    check_rejected("knn NULL X", icl_knn_decodability(NULL, y, 6, 1, 2, 1, per, NULL, NULL), ICL_ERR_INVALID_ARG);
    check_rejected("knn empty class", icl_knn_decodability(X, y_one, 6, 1, 2, 1, per, NULL, NULL),
                   ICL_ERR_INVALID_ARG);
    const int32_t y3[] = {0, 1, 2, 0, 1, 2}; /* each pair of classes has 4 points: k <= 3 */
    check_rejected("pairwise k > pair size", icl_knn_pairwise(X, y3, 6, 1, 3, 4, td), ICL_ERR_INVALID_ARG);
    const float nan_x[] = {0, NAN, 2, 3, 4, 5};
    check_rejected("knn NaN input", icl_knn_decodability(nan_x, y, 6, 1, 2, 1, per, NULL, NULL),
                   ICL_ERR_INVALID_ARG);

    float pooled[2];
    check_rejected("pool span beyond T", icl_pool_span(X, 3, 2, 1, 4, ICL_POOL_MEAN, pooled), ICL_ERR_INVALID_ARG);
    check_rejected("pool empty span", icl_pool_span(X, 3, 2, 2, 2, ICL_POOL_MEAN, pooled), ICL_ERR_INVALID_ARG);
    check_rejected("RSA n < 3", icl_rsa_alignment(out, out, 2, &rho), ICL_ERR_INVALID_ARG);
    check_rejected("RSA permutations NULL rng", icl_rsa_permutation_test(out, y, 6, 10, NULL, &rho, &p),
                   ICL_ERR_INVALID_ARG);
    check_rejected("spearman NULL y", icl_spearman(out, NULL, 3, &rho), ICL_ERR_INVALID_ARG);

    icl_logistic_probe *lp;
    icl_ridge_probe *rp;
    icl_logistic_options lo;
    lo = icl_logistic_options_default();
    lo.folds = 7;
    check_rejected("logistic folds > n", icl_logistic_probe_fit(X, y, 6, 1, 2, &lo, &r, &lp), ICL_ERR_INVALID_ARG);
    ck_assert_ptr_null(lp);
    check_rejected("logistic one class", icl_logistic_probe_fit(X, y, 6, 1, 1, NULL, &r, &lp), ICL_ERR_INVALID_ARG);
    check_rejected("logistic label out of range", icl_logistic_probe_fit(X, y_bad, 6, 1, 2, NULL, &r, &lp),
                   ICL_ERR_INVALID_ARG);
    icl_ridge_options ro;
    ro = icl_ridge_options_default();
    ro.alpha = -1.0;
    check_rejected("ridge negative alpha", icl_ridge_probe_fit(X, X, 6, 1, 1, &ro, &r, &rp), ICL_ERR_INVALID_ARG);
    /* two identical features with alpha = 0: singular normal matrix */
    const float Xdup[] = {0, 0, 1, 1, 2, 2, 3, 3, 5, 5, 4, 4};
    ro.alpha = 0.0;
    ro.folds = 2;
    check_rejected("ridge collinear, alpha 0", icl_ridge_probe_fit(Xdup, X, 6, 2, 1, &ro, &r, &rp), ICL_ERR_NUMERIC);
    ck_assert_ptr_null(rp);

    icl_moments *m1, *m2;
    check_rejected("moments d = 0", icl_moments_create(0, 1, &m1), ICL_ERR_INVALID_ARG);
    ck_assert_int_eq(icl_moments_create(2, 1, &m1), ICL_OK);
    ck_assert_int_eq(icl_moments_create(3, 1, &m2), ICL_OK);
    check_rejected("moments mean before data", icl_moments_mean(m1, out), ICL_ERR_STATE);
    check_rejected("moments merge mismatched d", icl_moments_merge(m1, m2), ICL_ERR_SHAPE);
    ck_assert_int_eq(icl_moments_add(m1, X), ICL_OK);
    check_rejected("sample covariance of 1 vector", icl_moments_covariance(m1, 1, out), ICL_ERR_STATE);
    icl_moments_free(m1);
    icl_moments_free(m2);
    check_rejected("PCA m > d", icl_pca(X, 3, 2, 3, out, NULL, NULL), ICL_ERR_INVALID_ARG);

    const double lam_bad[] = {0.5, 0.6}, lam[] = {0.5, 0.5}, p_bad[] = {0.5, 1.5};
    check_rejected("KL lambda not summing to 1", icl_kl_divergence(lam_bad, lam, 2, 0, &kl), ICL_ERR_INVALID_ARG);
    check_rejected("KL p > 1", icl_kl_divergence(lam, p_bad, 2, 0, &kl), ICL_ERR_INVALID_ARG);
    check_rejected("tasks solved K = 0", icl_tasks_solved(lam, lam, 1, 0, NULL, &kl), ICL_ERR_INVALID_ARG);
    check_rejected("kth largest k > n", icl_kth_largest(lam, 2, 3, &kl), ICL_ERR_INVALID_ARG);

    const float a[] = {0.5f, 0.5f};
    const float a_neg[] = {1.5f, -0.5f};
    const int32_t lab_bad[] = {0, 2};
    const uint8_t both[] = {1, 0}, none[] = {0, 0};
    check_rejected("attention label out of range", icl_attention_fractions(a, 2, lab_bad, 2, per),
                   ICL_ERR_INVALID_ARG);
    check_rejected("attention negative weight", icl_attention_fractions(a_neg, 2, y, 2, per), ICL_ERR_INVALID_ARG);
    check_rejected("attention overlapping masks", icl_attention_ratio(a, 2, both, both, &rho), ICL_ERR_INVALID_ARG);
    check_rejected("attention empty mask", icl_attention_ratio(a, 2, both, none, &rho), ICL_ERR_INVALID_ARG);
}
END_TEST

int main(void) {
    Suite *s = suite_create("analysis");
    TCase *tc = tcase_create("analysis");
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, knn_separated_clusters_decode_perfectly);
    tcase_add_test(tc, knn_random_labels_near_chance);
    tcase_add_test(tc, knn_hand_example);
    tcase_add_test(tc, knn_weighted_vote_decides_plain_ties);
    tcase_add_test(tc, knn_pairwise_separates_only_distinct_classes);
    tcase_add_test(tc, pool_and_standardize_by_hand);
    tcase_add_test(tc, rsa_self_and_reversed);
    tcase_add_test(tc, ranks_and_spearman_with_ties);
    tcase_add_test(tc, rsa_permutation_p_values);
    tcase_add_test(tc, logistic_separable_and_random);
    tcase_add_test(tc, logistic_matches_analytic_optimum);
    tcase_add_test(tc, ridge_recovers_linear_map);
    tcase_add_test(tc, moments_match_two_pass);
    tcase_add_test(tc, correlations_and_line_fit);
    tcase_add_test(tc, pca_finds_dominant_direction);
    tcase_add_test(tc, superposition_metrics_by_hand);
    tcase_add_test(tc, tasks_solved_by_hand);
    tcase_add_test(tc, attention_fractions_and_ratio);
    tcase_add_test(tc, bad_requests_rejected);
    suite_add_tcase(s, tc);
    return tu_run(s);
}
