/* Regression baselines on problems with known solutions. */
#include <math.h>
#include <stdio.h>
#include <string.h>
#include "icl/baselines.h"
#include "testutil.h"

static void fill_normal(double *x, int n, icl_rng *r) {
    for (int i = 0; i < n; i++)
        x[i] = icl_rng_normal(r);
}

static double predict(const icl_baseline *b, const double *xs, const double *ys, int k, int d, const double *q) {
    double y = NAN;
    icl_status s = icl_baseline_predict(b, xs, ys, k, d, q, &y);
    ck_assert_msg(s == ICL_OK, "%s: %s", icl_baseline_name(b->kind), icl_last_error());
    return y;
}

/* Weights a linear baseline learned, read back by predicting at the unit vectors. */
static void weights_of(const icl_baseline *b, const double *xs, const double *ys, int k, int d, double *w) {
    for (int j = 0; j < d; j++) {
        double e[16] = {0};
        e[j] = 1.0;
        w[j] = predict(b, xs, ys, k, d, e);
    }
}

START_TEST(test_least_squares_exact) {
    icl_rng rng;
    icl_rng_init(&rng, 1, "ls");
    const int d = 5;
    double xs[12 * 5], ys[12], w[5], q[5], got[20], want[20];
    int m = 0;
    icl_baseline b = icl_baseline_default(ICL_BASELINE_LEAST_SQUARES);
    for (int rep = 0; rep < 10; rep++) {
        fill_normal(w, d, &rng);
        fill_normal(xs, 12 * d, &rng);
        fill_normal(q, d, &rng);
        for (int i = 0; i < 12; i++) {
            ys[i] = 0;
            for (int c = 0; c < d; c++)
                ys[i] += w[c] * xs[i * d + c];
        }
        double yq = 0;
        for (int c = 0; c < d; c++)
            yq += w[c] * q[c];
        for (int k = d; k <= 12; k += 7) { /* k = d and k > d */
            got[m] = predict(&b, xs, ys, k, d, q);
            want[m++] = yq;
        }
    }
    tu_assert_close_d("least squares, noise-free, k >= d", got, want, m, 1e-10);
}
END_TEST

START_TEST(test_least_squares_min_norm) {
    /* k < d: the minimum-norm solution w = X^T (X X^T)^-1 y, computed here by hand for k = 2. */
    icl_rng rng;
    icl_rng_init(&rng, 2, "minnorm");
    const int d = 4;
    double got[40], want[40];
    icl_baseline b = icl_baseline_default(ICL_BASELINE_LEAST_SQUARES);
    for (int rep = 0; rep < 10; rep++) {
        double xs[2 * 4], ys[2], q[4], w[4];
        fill_normal(xs, 8, &rng);
        fill_normal(ys, 2, &rng);
        fill_normal(q, 4, &rng);
        double g00 = 0, g01 = 0, g11 = 0;
        for (int c = 0; c < d; c++) {
            g00 += xs[c] * xs[c];
            g01 += xs[c] * xs[d + c];
            g11 += xs[d + c] * xs[d + c];
        }
        double det = g00 * g11 - g01 * g01;
        double a0 = (g11 * ys[0] - g01 * ys[1]) / det, a1 = (g00 * ys[1] - g01 * ys[0]) / det;
        weights_of(&b, xs, ys, 2, d, w);
        for (int c = 0; c < d; c++) {
            got[rep * 4 + c] = w[c];
            want[rep * 4 + c] = a0 * xs[c] + a1 * xs[d + c];
        }
    }
    tu_assert_close_d("least squares min-norm weights, k=2 < d=4", got, want, 40, 1e-10);
    /* Rank-deficient design: a zero column and a duplicated column get no / split weight. */
    const double xs[3 * 3] = {1, 0, 1, 2, 0, 2, -1, 0, -1};
    const double ys[3] = {2, 4, -2};
    double w[3];
    weights_of(&b, xs, ys, 3, 3, w);
    const double want_w[3] = {1, 0, 1};
    tu_assert_close_d("least squares rank-deficient weights", w, want_w, 3, 1e-12);
}
END_TEST

START_TEST(test_ridge_closed_form) {
    /* d = 2: (X^T X + lambda I)^-1 X^T y by the 2x2 inverse. */
    const double xs[3 * 2] = {1, 2, 3, -1, 0.5, 4};
    const double ys[3] = {1, -2, 3};
    double got[6], want[6];
    for (int li = 0; li < 3; li++) {
        double lambda = li == 0 ? 0.01 : li == 1 ? 1.0 : 10.0;
        double a = lambda, bb = 0, c = lambda, r0 = 0, r1 = 0;
        for (int i = 0; i < 3; i++) {
            a += xs[2 * i] * xs[2 * i];
            bb += xs[2 * i] * xs[2 * i + 1];
            c += xs[2 * i + 1] * xs[2 * i + 1];
            r0 += xs[2 * i] * ys[i];
            r1 += xs[2 * i + 1] * ys[i];
        }
        double det = a * c - bb * bb;
        want[2 * li] = (c * r0 - bb * r1) / det;
        want[2 * li + 1] = (a * r1 - bb * r0) / det;
        icl_baseline b = icl_baseline_default(ICL_BASELINE_RIDGE);
        b.lambda = lambda;
        weights_of(&b, xs, ys, 3, 2, got + 2 * li);
    }
    tu_assert_close_d("ridge weights vs 2x2 closed form", got, want, 6, 1e-12);
    /* Ridge with 5 dims agrees with least squares as lambda -> 0 when k >= d. */
    icl_rng rng;
    icl_rng_init(&rng, 3, "ridge");
    double X[9 * 5], y[9], q[5];
    fill_normal(X, 45, &rng);
    fill_normal(y, 9, &rng);
    fill_normal(q, 5, &rng);
    icl_baseline r = icl_baseline_default(ICL_BASELINE_RIDGE), ls = icl_baseline_default(ICL_BASELINE_LEAST_SQUARES);
    r.lambda = 1e-9;
    double pr = predict(&r, X, y, 9, 5, q), pl = predict(&ls, X, y, 9, 5, q);
    tu_assert_close_d("ridge lambda=1e-9 vs least squares", &pr, &pl, 1, 1e-6);
}
END_TEST

START_TEST(test_lasso) {
    /* Orthogonal design with X^T X = k I: w_j = soft_threshold(x_j . y / k, alpha). */
    const double xs[4 * 2] = {1, 1, 1, -1, 1, 1, 1, -1};
    const double ys[4] = {3, 1, 2, -0.4};
    double got[6], want[6];
    const double alphas[3] = {0.1, 0.5, 2.0};
    for (int a = 0; a < 3; a++) {
        double z0 = (3 + 1 + 2 - 0.4) / 4, z1 = (3 - 1 + 2 + 0.4) / 4, al = alphas[a];
        want[2 * a] = z0 > al ? z0 - al : z0 < -al ? z0 + al : 0;
        want[2 * a + 1] = z1 > al ? z1 - al : z1 < -al ? z1 + al : 0;
        icl_baseline b = icl_baseline_default(ICL_BASELINE_LASSO);
        b.alpha = al;
        weights_of(&b, xs, ys, 4, 2, got + 2 * a);
    }
    tu_assert_close_d("lasso vs soft threshold, orthogonal design", got, want, 6, 1e-12);
    ck_assert(got[4] == 0.0 && want[4] == 0.0); /* alpha = 2 zeroes the first weight exactly */

    /* A 3-sparse vector in 12 dims from 30 noise-free points: the support is recovered,
     * the zeros stay (near) zero, the active weights shrink by O(alpha). */
    icl_rng rng;
    icl_rng_init(&rng, 4, "lasso");
    const int d = 12, k = 30;
    double X[30 * 12], y[30], w_true[12] = {0}, w[12];
    w_true[1] = 1.5;
    w_true[6] = -2.0;
    w_true[10] = 0.8;
    fill_normal(X, k * d, &rng);
    for (int i = 0; i < k; i++) {
        y[i] = 0;
        for (int c = 0; c < d; c++)
            y[i] += X[i * d + c] * w_true[c];
    }
    icl_baseline b = icl_baseline_default(ICL_BASELINE_LASSO);
    b.alpha = 0.01;
    weights_of(&b, X, y, k, d, w);
    tu_assert_close_d("lasso alpha=0.01 recovers a 3-sparse w", w, w_true, d, 0.05);
    double off = 0;
    for (int c = 0; c < d; c++)
        if (w_true[c] == 0)
            off = fmax(off, fabs(w[c]));
    printf("  lasso: largest weight off the support %.3g (tolerance 1e-3)\n", off);
    ck_assert(off < 1e-3);
    /* Least squares with the same 30 points is exact; with 8 < d points it is not sparse. */
    icl_baseline ls = icl_baseline_default(ICL_BASELINE_LEAST_SQUARES);
    weights_of(&ls, X, y, 8, d, w);
    int nz = 0;
    for (int c = 0; c < d; c++)
        nz += fabs(w[c]) > 1e-3;
    ck_assert_int_gt(nz, 3);
}
END_TEST

START_TEST(test_oracle) {
    /* y = 1.5 x2 - 0.7 x5 in 8 dims: 2 points suffice for the oracle on {2, 5}. */
    icl_rng rng;
    icl_rng_init(&rng, 5, "oracle");
    const int d = 8;
    const int coords[2] = {2, 5};
    double xs[3 * 8], ys[3], q[8];
    fill_normal(xs, 24, &rng);
    fill_normal(q, 8, &rng);
    for (int i = 0; i < 3; i++)
        ys[i] = 1.5 * xs[i * d + 2] - 0.7 * xs[i * d + 5];
    double want = 1.5 * q[2] - 0.7 * q[5];
    icl_baseline b = icl_baseline_default(ICL_BASELINE_ORACLE);
    b.coords = coords;
    b.n_coords = 2;
    double got = predict(&b, xs, ys, 2, d, q);
    tu_assert_close_d("oracle basis with k = r = 2", &got, &want, 1, 1e-12);
    icl_baseline ls = icl_baseline_default(ICL_BASELINE_LEAST_SQUARES);
    double far = predict(&ls, xs, ys, 2, d, q);
    printf("  least squares with k=2 < d=8 misses by %.3g\n", fabs(far - want));
    ck_assert(fabs(far - want) > 1e-3);
    /* One point: the one-dimensional oracle is exact; the 2-dim one is the min-norm fit. */
    const int one[1] = {2};
    b.coords = one;
    b.n_coords = 1;
    for (int i = 0; i < 3; i++)
        ys[i] = -3.0 * xs[i * d + 2];
    got = predict(&b, xs, ys, 1, d, q);
    want = -3.0 * q[2];
    tu_assert_close_d("oracle basis with k = r = 1", &got, &want, 1, 1e-12);
    const int bad[1] = {8};
    b.coords = bad;
    ck_assert_int_eq(icl_baseline_predict(&b, xs, ys, 1, d, q, &got), ICL_ERR_INVALID_ARG);
    b.coords = NULL;
    ck_assert_int_eq(icl_baseline_predict(&b, xs, ys, 1, d, q, &got), ICL_ERR_INVALID_ARG);
}
END_TEST

START_TEST(test_knn_and_averaging) {
    const double xs[5] = {0, 1, 2, 3, 10};
    const double ys[5] = {0, 10, 20, 30, 100};
    icl_baseline b = icl_baseline_default(ICL_BASELINE_KNN);
    ck_assert_int_eq(b.neighbors, 3);
    double got[5], want[5] = {10, 10, 100, 32, 0};
    got[0] = predict(&b, xs, ys, 5, 1, (double[]){1.4}); /* 1, 2, 0 -> (10+20+0)/3 */
    b.neighbors = 1;
    got[1] = predict(&b, xs, ys, 5, 1, (double[]){1.5}); /* tie 1 vs 2: the earlier */
    got[2] = predict(&b, xs, ys, 5, 1, (double[]){8.0});
    b.neighbors = 10;
    got[3] = predict(&b, xs, ys, 5, 1, (double[]){0.0}); /* fewer points than neighbours: all */
    got[4] = predict(&b, xs, ys, 0, 1, (double[]){0.0});
    tu_assert_close_d("knn hand examples", got, want, 5, 1e-12);
    /* 2-d: distances are Euclidean ((2,2) is nearer the origin than (3,0); in L1 it is not). */
    const double x2[2 * 2] = {3, 0, 2, 2};
    b.neighbors = 1;
    double g2 = predict(&b, x2, (double[]){1, 2}, 2, 2, (double[]){0, 0}), w2 = 2;
    tu_assert_close_d("knn euclidean 2-d", &g2, &w2, 1, 0);

    /* Averaging: w = mean(y_i x_i) = ((3*1 + 4*0)/2, (3*0 + 4*2)/2) = (1.5, 4); w . (1,1) = 5.5. */
    icl_baseline a = icl_baseline_default(ICL_BASELINE_AVERAGING);
    double ga = predict(&a, (double[]){1, 0, 0, 2}, (double[]){3, 4}, 2, 2, (double[]){1, 1}), wa = 5.5;
    tu_assert_close_d("averaging hand example", &ga, &wa, 1, 1e-12);
}
END_TEST

START_TEST(test_zero_examples_and_prefixes) {
    icl_rng rng;
    icl_rng_init(&rng, 6, "prefix");
    const int n = 9, d = 3;
    double xs[9 * 3], ys[9], pred[9], want[9];
    fill_normal(xs, n * d, &rng);
    fill_normal(ys, n, &rng);
    const int coords[2] = {0, 2};
    for (int kind = 0; kind < ICL_BASELINE_COUNT; kind++) {
        icl_baseline b = icl_baseline_default((icl_baseline_kind)kind);
        b.coords = coords;
        b.n_coords = 2;
        ck_assert_int_eq(icl_baseline_predict_prefixes(&b, xs, ys, n, d, pred), ICL_OK);
        for (int j = 0; j < n; j++)
            want[j] = predict(&b, xs, ys, j, d, xs + j * d);
        ck_assert(pred[0] == 0.0);
        char label[64];
        snprintf(label, sizeof label, "%s prefixes vs one at a time", icl_baseline_name(b.kind));
        tu_assert_close_d(label, pred, want, n, 0);
    }
}
END_TEST

START_TEST(test_prompt_baselines) {
    /* basis_mixture_small without noise: the oracle is exact from r = 2 examples on,
     * least squares from D = 8, and least squares is not exact before that. */
    icl_task_family *f = NULL;
    ck_assert_int_eq(icl_task_family_create(&f, "basis_mixture_small:sigma=0"), ICL_OK);
    icl_rng rng;
    icl_rng_init(&rng, 7, "prompt");
    icl_prompt p = {0};
    icl_baseline oracle = icl_baseline_default(ICL_BASELINE_ORACLE);
    icl_baseline ls = icl_baseline_default(ICL_BASELINE_LEAST_SQUARES);
    icl_baseline lasso = icl_baseline_default(ICL_BASELINE_LASSO);
    double worst_oracle = 0, worst_ls = 0, ls_early = 0, lasso_mid = 0, ls_mid = 0, scale = 0;
    for (int rep = 0; rep < 20; rep++) {
        ck_assert_int_eq(icl_task_generate(f, rep % 4, 12, NULL, &rng, &p), ICL_OK);
        double po[13], pl[13], pa[13], xs[13 * 8], ys[13];
        ck_assert_int_eq(icl_baseline_predict_prompt(&oracle, f, &p, po, 13), ICL_OK);
        ck_assert_int_eq(icl_baseline_predict_prompt(&ls, f, &p, pl, 13), ICL_OK);
        ck_assert_int_eq(icl_baseline_predict_prompt(&lasso, f, &p, pa, 13), ICL_OK);
        ck_assert_int_eq(icl_prompt_points(&p, xs, ys, 13), ICL_OK);
        for (int j = 0; j < 13; j++) {
            scale = fmax(scale, fabs(ys[j]));
            if (j >= 2)
                worst_oracle = fmax(worst_oracle, fabs(po[j] - ys[j]));
            if (j >= 8)
                worst_ls = fmax(worst_ls, fabs(pl[j] - ys[j]));
            if (j >= 2 && j < 8) {
                ls_early = fmax(ls_early, fabs(pl[j] - ys[j]));
                ls_mid += pow(pl[j] - ys[j], 2);
                lasso_mid += pow(pa[j] - ys[j], 2);
            }
        }
    }
    /* The labels are float32: their rounding (~1e-7 |y|) is amplified by the
     * conditioning of the k x D design, worst at k = D. */
    const double tol = 1e-4 * scale;
    printf("  basis_mixture_small: oracle err (k>=2) %.3g (%.1f%% of tolerance %.2g), least squares err (k>=8) "
           "%.3g (%.1f%%), (2<=k<8) %.3g\n",
           worst_oracle, 100 * worst_oracle / tol, tol, worst_ls, 100 * worst_ls / tol, ls_early);
    printf("  squared error summed over 2<=k<8: lasso %.3g, least squares %.3g\n", lasso_mid, ls_mid);
    ck_assert(worst_oracle < tol);
    ck_assert(worst_ls < tol);
    ck_assert(ls_early > 0.1);
    ck_assert(lasso_mid < ls_mid); /* sparsity helps before D examples */
    /* Oracle needs a single-task prompt of a family with bases. */
    icl_mixed_prompt m = {0};
    ck_assert_int_eq(icl_task_generate_mixed(f, (int[]){0, 1}, (double[]){0.5, 0.5}, 2, 4, NULL, &rng, &m), ICL_OK);
    double pr[5];
    ck_assert_int_eq(icl_baseline_predict_prompt(&oracle, f, &m.prompt, pr, 5), ICL_ERR_INVALID_ARG);
    ck_assert_int_eq(icl_baseline_predict_prompt(&ls, f, &m.prompt, pr, 5), ICL_OK);
    ck_assert_int_eq(icl_baseline_predict_prompt(&ls, f, &m.prompt, pr, 4), ICL_ERR_INVALID_ARG);
    icl_task_family *g = NULL;
    ck_assert_int_eq(icl_task_family_create(&g, "linear:d=8"), ICL_OK);
    ck_assert_int_eq(icl_task_generate(g, 0, 4, NULL, &rng, &p), ICL_OK);
    ck_assert_int_eq(icl_baseline_predict_prompt(&oracle, g, &p, pr, 5), ICL_ERR_UNSUPPORTED);
    icl_task_family *t = NULL;
    ck_assert_int_eq(icl_task_family_create(&t, "retrieval"), ICL_OK);
    ck_assert_int_eq(icl_task_generate(t, 0, 4, NULL, &rng, &p), ICL_OK);
    ck_assert_int_eq(icl_baseline_predict_prompt(&ls, t, &p, pr, 5), ICL_ERR_INVALID_ARG);
    icl_task_family_free(t);
    icl_task_family_free(g);
    icl_mixed_prompt_free(&m);
    icl_prompt_free(&p);
    icl_task_family_free(f);
}
END_TEST

START_TEST(test_curriculum_prompt) {
    /* linear d=6 with 3 active dims: the design has 3 zero columns, so least
     * squares must find the minimum-norm fit and be exact from k = 3 on. */
    icl_task_family *f = NULL;
    ck_assert_int_eq(icl_task_family_create(&f, "linear:d=6"), ICL_OK);
    icl_rng rng;
    icl_rng_init(&rng, 8, "curriculum");
    icl_prompt p = {0};
    icl_gen_options opt = icl_gen_options_default();
    opt.active_dims = 3;
    icl_baseline ls = icl_baseline_default(ICL_BASELINE_LEAST_SQUARES);
    double got[10 * 8], want[10 * 8], pred[11], xs[11 * 6], ys[11];
    int m = 0;
    for (int rep = 0; rep < 10; rep++) {
        ck_assert_int_eq(icl_task_generate(f, 0, 10, &opt, &rng, &p), ICL_OK);
        ck_assert_int_eq(icl_baseline_predict_prompt(&ls, f, &p, pred, 11), ICL_OK);
        ck_assert_int_eq(icl_prompt_points(&p, xs, ys, 11), ICL_OK);
        for (int j = 3; j <= 10; j++) {
            got[m] = pred[j];
            want[m++] = ys[j];
        }
    }
    tu_assert_close_d("least squares, 3 of 6 dims active, k >= 3", got, want, m, 1e-5);
    icl_prompt_free(&p);
    icl_task_family_free(f);
}
END_TEST

START_TEST(test_parse_and_errors) {
    icl_baseline b;
    for (int kind = 0; kind < ICL_BASELINE_COUNT; kind++) {
        ck_assert_int_eq(icl_baseline_parse(icl_baseline_name((icl_baseline_kind)kind), &b), ICL_OK);
        ck_assert_int_eq(b.kind, kind);
    }
    ck_assert_int_eq(icl_baseline_parse("ridge:lambda=0.5", &b), ICL_OK);
    ck_assert(b.kind == ICL_BASELINE_RIDGE && b.lambda == 0.5);
    ck_assert_int_eq(icl_baseline_parse("lasso:alpha=0.1", &b), ICL_OK);
    ck_assert(b.kind == ICL_BASELINE_LASSO && b.alpha == 0.1);
    ck_assert_int_eq(icl_baseline_parse("knn:k=5", &b), ICL_OK);
    ck_assert(b.kind == ICL_BASELINE_KNN && b.neighbors == 5);
    const char *bad[] = {"ridge:alpha=1", "ridge:lambda=0", "ridge:lambda=-1", "knn:k=0", "knn:k=2.5", "lasso:alpha=",
                         "least_squares:k=1", "nope", "", "ridge:lambda=x"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        ck_assert_msg(icl_baseline_parse(bad[i], &b) == ICL_ERR_INVALID_ARG, "\"%s\" accepted", bad[i]);
        printf("  %-20s -> %s\n", bad[i], icl_last_error());
    }
    ck_assert_ptr_null(icl_baseline_name(ICL_BASELINE_COUNT));
    double xs[2] = {1, 2}, ys[2] = {1, 2}, q[1] = {1}, y;
    b = icl_baseline_default(ICL_BASELINE_RIDGE);
    b.lambda = 0;
    ck_assert_int_eq(icl_baseline_predict(&b, xs, ys, 2, 1, q, &y), ICL_ERR_INVALID_ARG);
    b = icl_baseline_default(ICL_BASELINE_KNN);
    b.neighbors = 0;
    ck_assert_int_eq(icl_baseline_predict(&b, xs, ys, 2, 1, q, &y), ICL_ERR_INVALID_ARG);
    b = icl_baseline_default(ICL_BASELINE_LASSO);
    b.alpha = -1;
    ck_assert_int_eq(icl_baseline_predict(&b, xs, ys, 2, 1, q, &y), ICL_ERR_INVALID_ARG);
    b = icl_baseline_default(ICL_BASELINE_LEAST_SQUARES);
    ck_assert_int_eq(icl_baseline_predict(&b, xs, ys, -1, 1, q, &y), ICL_ERR_INVALID_ARG);
    ck_assert_int_eq(icl_baseline_predict(&b, xs, ys, 2, 0, q, &y), ICL_ERR_INVALID_ARG);
    ck_assert_int_eq(icl_baseline_predict(&b, NULL, ys, 2, 1, q, &y), ICL_ERR_INVALID_ARG);
    ck_assert_int_eq(icl_baseline_predict(NULL, xs, ys, 2, 1, q, &y), ICL_ERR_INVALID_ARG);
    ck_assert_int_eq(icl_baseline_predict(&b, NULL, NULL, 0, 1, q, &y), ICL_OK);
    ck_assert(y == 0.0);
    ck_assert_int_eq(icl_baseline_predict_prefixes(&b, xs, ys, 0, 1, &y), ICL_ERR_INVALID_ARG);
    b.kind = (icl_baseline_kind)99;
    ck_assert_int_eq(icl_baseline_predict(&b, xs, ys, 2, 1, q, &y), ICL_ERR_INVALID_ARG);
}
END_TEST

int main(void) {
    Suite *s = suite_create("baselines");
    TCase *tc = tcase_create("baselines");
    tcase_add_test(tc, test_least_squares_exact);
    tcase_add_test(tc, test_least_squares_min_norm);
    tcase_add_test(tc, test_ridge_closed_form);
    tcase_add_test(tc, test_lasso);
    tcase_add_test(tc, test_oracle);
    tcase_add_test(tc, test_knn_and_averaging);
    tcase_add_test(tc, test_zero_examples_and_prefixes);
    tcase_add_test(tc, test_prompt_baselines);
    tcase_add_test(tc, test_curriculum_prompt);
    tcase_add_test(tc, test_parse_and_errors);
    suite_add_tcase(s, tc);
    return tu_run(s);
}
