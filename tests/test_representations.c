/* Representation probes: decodability and RSA pipelines against manual
 * computations from the lower-level APIs, RSA of identical prompts, linear
 * probes on planted data, attention fractions and ratios of planted
 * attention patterns, checkpoint sweeps, and bad requests. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include "icl/icl.h"
#include "icl/readout.h"
#include "icl/representations.h"
#include "probe_internal.h"
#include "testutil.h"

/* Largest |got - want| / atol over n doubles, printed; <= 1 passes. */
static double margin_d(const char *label, const double *got, const double *want, size_t n, double atol) {
    double worst = 0.0;
    size_t at = 0;
    for (size_t i = 0; i < n; i++) {
        double r = fabs(got[i] - want[i]) / atol;
        if (!(r <= worst)) {
            worst = isnan(r) ? INFINITY : r;
            at = i;
        }
    }
    printf("  %-44s worst at %zu (got %.12g, want %.12g), %.1f%% of tolerance %.0e\n", label, at, got[at], want[at],
           100.0 * worst, atol);
    return worst;
}
#define ASSERT_CLOSE_D(label, got, want, n, atol) ck_assert(margin_d((label), (got), (want), (n), (atol)) <= 1.0)

static icl_model *small_model(const icl_task_family *f, int layers, int ctx, uint64_t seed) {
    return tu_model((tu_model_shape){.n_layer = layers, .d_model = 24, .n_head = 3, .d_ff = 40, .ctx = ctx,
            .family = f}, seed);
}

static icl_task_family *family(const char *spec) {
    icl_task_family *f;
    ck_assert_int_eq(icl_task_family_create(&f, spec), ICL_OK);
    return f;
}

START_TEST(test_role_parse) {
    int r;
    ck_assert_int_eq(icl_role_parse("query_sep", &r), ICL_OK);
    ck_assert_int_eq(r, ICL_ROLE_QUERY_SEP);
    ck_assert_int_eq(icl_role_parse("ex_answer", &r), ICL_OK);
    ck_assert_int_eq(r, ICL_ROLE_EX_ANSWER);
    ck_assert_int_eq(icl_role_parse("query", &r), ICL_ERR_INVALID_ARG);
    printf("  %s\n", icl_last_error());
    ck_assert_ptr_nonnull(strstr(icl_last_error(), "query_sep"));
}
END_TEST

/* Keeping k examples drops exactly the later examples' positions and keeps the query. */
START_TEST(test_keep_examples) {
    icl_task_family *f = family("retrieval:A=8,L=4,n=3");
    icl_gen_options g = icl_gen_options_default();
    icl_rng r;
    icl_rng_init(&r, 3, "keep");
    icl_prompt p = {0}, q = {0};
    ck_assert_int_eq(icl_task_generate(f, 1, 3, &g, &r, &p), ICL_OK);
    ck_assert_int_eq(icl_prompt_keep_examples(&p, 1, &q), ICL_OK);
    int seg = 4 + 1 + 2; /* x, SEP, y, DELIM */
    ck_assert_int_eq(q.T, 1 + seg + (seg - 1));
    ck_assert_int_eq(q.n_examples, 1);
    ck_assert_int_eq(q.query_pos, 1 + seg + 4);
    ck_assert_int_eq(q.roles[q.query_pos], ICL_ROLE_QUERY_SEP);
    /* BOS and example 0 unchanged, then the query part of p */
    ck_assert(memcmp(q.tokens, p.tokens, (size_t)(1 + seg) * sizeof(int32_t)) == 0);
    ck_assert(memcmp(q.tokens + 1 + seg, p.tokens + p.T - (seg - 1), (size_t)(seg - 1) * sizeof(int32_t)) == 0);
    for (int t = 0; t < q.T; t++) {
        ck_assert_int_eq(q.targets[t], t + 1 < q.T ? q.tokens[t + 1] : -1);
        int want_ex = t == 0 ? -1 : t <= seg ? 0 : 1;
        ck_assert_int_eq(q.example_ids[t], want_ex);
    }
    /* 0 examples: BOS then the query */
    ck_assert_int_eq(icl_prompt_keep_examples(&p, 0, &q), ICL_OK);
    ck_assert_int_eq(q.T, seg);
    ck_assert_int_eq(q.tokens[0], ICL_TOKEN_BOS);
    ck_assert_int_eq(icl_prompt_keep_examples(&p, 4, &q), ICL_ERR_INVALID_ARG);
    icl_prompt_free(&p);
    icl_prompt_free(&q);

    /* vector prompts: the query x/y rows follow the kept examples */
    icl_task_family *fv = family("basis_mixture_small:K=4");
    ck_assert_int_eq(icl_task_generate(fv, 2, 4, &g, &r, &p), ICL_OK);
    ck_assert_int_eq(icl_prompt_keep_examples(&p, 2, &q), ICL_OK);
    ck_assert_int_eq(q.T, 6);
    ck_assert_int_eq(q.query_pos, 4);
    int d = p.d_in;
    ck_assert(memcmp(q.inputs, p.inputs, (size_t)4 * d * sizeof(float)) == 0);
    ck_assert(memcmp(q.inputs + 4 * d, p.inputs + 8 * d, (size_t)2 * d * sizeof(float)) == 0);
    ck_assert(q.target_values[4] == p.target_values[8]);
    icl_prompt_free(&p);
    icl_prompt_free(&q);
    icl_task_family_free(f);
    icl_task_family_free(fv);
}
END_TEST

/* Prompt j of task t does not depend on the other tasks of the set, and kept-example sets share queries. */
START_TEST(test_prompt_set_streams) {
    icl_task_family *f = family("retrieval:A=8,L=4,n=3");
    icl_repr_prompts_options o = icl_repr_prompts_options_default();
    o.prompts_per_task = 5;
    icl_repr_prompts all, one, zero;
    ck_assert_int_eq(icl_repr_prompts_generate(f, &o, &all), ICL_OK);
    int t2 = 2;
    o.tasks = &t2;
    o.n_tasks = 1;
    o.prompts_per_task = 3;
    ck_assert_int_eq(icl_repr_prompts_generate(f, &o, &one), ICL_OK);
    o.keep_examples = 0;
    ck_assert_int_eq(icl_repr_prompts_generate(f, &o, &zero), ICL_OK);
    ck_assert_int_eq(all.n, 4 * 5);
    for (int j = 0; j < 3; j++) {
        const icl_prompt *a = &all.prompts[2 * 5 + j], *b = &one.prompts[j], *z = &zero.prompts[j];
        ck_assert_int_eq(a->T, b->T);
        ck_assert(memcmp(a->tokens, b->tokens, (size_t)a->T * sizeof(int32_t)) == 0);
        ck_assert_int_eq(all.labels[2 * 5 + j], 2);
        /* same query input and answer tokens */
        ck_assert(memcmp(z->tokens + 1, b->tokens + b->T - 6, 6 * sizeof(int32_t)) == 0);
    }
    icl_repr_prompts_free(&all);
    icl_repr_prompts_free(&one);
    icl_repr_prompts_free(&zero);
    icl_task_family_free(f);
}
END_TEST

/* The decodability pipeline equals icl_residuals_at + icl_knn_decodability on
 * the same prompts: td keeps the plain vote now that td_weighted sits beside it. */
static void td_against_manual(const char *spec, int layers) {
    icl_task_family *f = family(spec);
    icl_repr_prompts_options o = icl_repr_prompts_options_default();
    o.prompts_per_task = 12; /* 4 tasks x 12 = 48 prompts: one forward pass either way */
    int T;
    ck_assert_int_eq(icl_task_family_prompt_len(f, icl_task_family_default_examples(f), &T), ICL_OK);
    icl_model *m = small_model(f, layers, T, 5);
    icl_td_options to = icl_td_options_default();
    to.k = 5;
    to.pca_dims = 2;
    icl_td_result td;
    ck_assert_int_eq(icl_decodability_run(m, f, &o, NULL, &to, &td), ICL_OK);

    icl_repr_prompts set;
    ck_assert_int_eq(icl_repr_prompts_generate(f, &o, &set), ICL_OK);
    const icl_prompt **ptrs = malloc((size_t)set.n * sizeof *ptrs);
    for (int i = 0; i < set.n; i++) ptrs[i] = &set.prompts[i];
    icl_task_batch tb = {0};
    ck_assert_int_eq(icl_task_batch_pack(&tb, ptrs, set.n, 0), ICL_OK);
    int L1 = layers + 1, C = icl_model_config(m)->d_model, nt = set.n_tasks;
    float *res = tu_floats((size_t)L1 * set.n * C);
    icl_repr_site site = icl_repr_site_default(f);
    ck_assert_int_eq(icl_residuals_at(m, &tb, site.pos, NULL, 0, res), ICL_OK);
    double *want = malloc((size_t)L1 * nt * sizeof *want), *want_mean = malloc((size_t)L1 * sizeof *want_mean);
    int best = -1, degenerate = 0, weighted_moved = 0;
    for (int l = 0; l < L1; l++) {
        const float *X = res + (size_t)l * set.n * C;
        int same = 1;
        for (int i = 1; i < set.n && same; i++) same = memcmp(X, X + (size_t)i * C, C * sizeof(float)) == 0;
        if (same) { /* every prompt alike (the SEP embedding): TD is undefined */
            for (int t = 0; t < nt; t++) ck_assert(isnan(td.td[(size_t)l * nt + t]));
            ck_assert(isnan(td.td_mean[l]) && isnan(td.td_weighted_mean[l]));
            degenerate++;
            continue;
        }
        ck_assert_int_eq(
            icl_knn_decodability(X, set.labels, set.n, C, nt, 5, want + (size_t)l * nt, &want_mean[l], NULL), ICL_OK);
        ck_assert(memcmp(td.td + (size_t)l * nt, want + (size_t)l * nt, (size_t)nt * sizeof *want) == 0);
        ck_assert(memcmp(&td.td_mean[l], &want_mean[l], sizeof *want_mean) == 0);
        double wmean;
        ck_assert_int_eq(icl_knn_decodability_weighted(X, set.labels, set.n, C, nt, 5, want + (size_t)l * nt, &wmean,
                                                       NULL), ICL_OK);
        ck_assert(memcmp(td.td_weighted + (size_t)l * nt, want + (size_t)l * nt, (size_t)nt * sizeof *want) == 0);
        ck_assert(memcmp(&td.td_weighted_mean[l], &wmean, sizeof wmean) == 0);
        weighted_moved += wmean != want_mean[l];
        ck_assert_int_eq(icl_knn_decodability(X, set.labels, set.n, C, nt, 5, want + (size_t)l * nt, &want_mean[l],
                                              NULL), ICL_OK);
        if (best < 0 || want_mean[l] > want_mean[best]) best = l;
    }
    /* token prompts: the query SEP embedding is the same token at the same position in every prompt */
    ck_assert_int_eq(degenerate, icl_task_family_mode(f) == ICL_MODE_TOKEN ? 1 : 0);
    ck_assert_int_eq(td.best_level, best);
    double *pw = malloc((size_t)nt * nt * sizeof *pw);
    ck_assert_int_eq(icl_knn_pairwise(res + (size_t)best * set.n * C, set.labels, set.n, C, nt, 5, pw), ICL_OK);
    ck_assert(memcmp(td.pairwise, pw, (size_t)nt * nt * sizeof *pw) == 0);
    double *coords = malloc((size_t)set.n * 2 * sizeof *coords), *comp = malloc((size_t)2 * C * sizeof *comp);
    ck_assert_int_eq(icl_pca(res + (size_t)L1 / 2 * set.n * C, set.n, C, 2, comp, NULL, coords), ICL_OK);
    ck_assert(memcmp(td.pca + (size_t)L1 / 2 * set.n * 2, coords, (size_t)set.n * 2 * sizeof *coords) == 0);
    printf("  %s: TD per level", spec);
    for (int l = 0; l < L1; l++) printf(" %.3f", td.td_mean[l]);
    printf(" (pipeline == manual, bitwise); weighted TD differs at %d levels\n", weighted_moved);
    free(coords);
    free(comp);
    free(pw);
    free(want);
    free(want_mean);
    free(res);
    free(ptrs);
    icl_task_batch_free(&tb);
    icl_repr_prompts_free(&set);
    icl_td_result_free(&td);
    icl_model_free(m);
    icl_task_family_free(f);
}

START_TEST(test_td_matches_manual_token) { td_against_manual("retrieval:A=8,L=4,n=3", 2); }
END_TEST

START_TEST(test_td_matches_manual_vector) { td_against_manual("basis_mixture_small:K=4", 2); }
END_TEST

START_TEST(test_td_bad_requests) {
    icl_task_family *f = family("retrieval:A=8,L=4,n=3");
    icl_model *m = small_model(f, 2, 28, 1);
    icl_repr_prompts_options o = icl_repr_prompts_options_default();
    o.prompts_per_task = 6;
    icl_td_options to = icl_td_options_default();
    to.k = 3;
    icl_td_result td;
    int none[1] = {0}, one[1] = {1}, bad[2] = {0, 9}, twice[2] = {1, 1};
    o.tasks = none;
    o.n_tasks = 0;
    ck_assert_int_eq(icl_decodability_run(m, f, &o, NULL, &to, &td), ICL_ERR_INVALID_ARG);
    printf("  empty: %s\n", icl_last_error());
    o.tasks = one;
    o.n_tasks = 1;
    ck_assert_int_eq(icl_decodability_run(m, f, &o, NULL, &to, &td), ICL_ERR_INVALID_ARG);
    printf("  one task: %s\n", icl_last_error());
    o.tasks = bad;
    o.n_tasks = 2;
    ck_assert_int_eq(icl_decodability_run(m, f, &o, NULL, &to, &td), ICL_ERR_INVALID_ARG);
    printf("  unknown task: %s\n", icl_last_error());
    o.tasks = twice;
    ck_assert_int_eq(icl_decodability_run(m, f, &o, NULL, &to, &td), ICL_ERR_INVALID_ARG);
    o.tasks = NULL;
    to.pairwise_level = 3;
    ck_assert_int_eq(icl_decodability_run(m, f, &o, NULL, &to, &td), ICL_ERR_INVALID_ARG);
    printf("  layer: %s\n", icl_last_error());
    to.pairwise_level = -1;
    to.k = 24;
    ck_assert_int_eq(icl_decodability_run(m, f, &o, NULL, &to, &td), ICL_ERR_INVALID_ARG);
    to.k = 3;
    icl_repr_site site = {icl_pos_role_nth(99, 0), ICL_POOL_LAST};
    ck_assert_int_eq(icl_decodability_run(m, f, &o, &site, &to, &td), ICL_ERR_INVALID_ARG);
    printf("  role: %s\n", icl_last_error());
    site.pos = icl_pos_role_nth(ICL_ROLE_EX_ANSWER, 5); /* only 3 examples */
    ck_assert_int_eq(icl_decodability_run(m, f, &o, &site, &to, &td), ICL_ERR_INVALID_ARG);
    printf("  missing position: %s\n", icl_last_error());
    icl_task_family *fv = family("basis_mixture_small:K=4");
    ck_assert_int_eq(icl_decodability_run(m, fv, &o, NULL, &to, &td), ICL_ERR_INVALID_ARG);
    printf("  mode: %s\n", icl_last_error());
    icl_task_family_free(fv);
    icl_model_free(m);
    icl_task_family_free(f);
}
END_TEST

/* Checkpoints are listed by step, other files ignored; the sweep equals TD of each model. */
START_TEST(test_td_over_checkpoints) {
    icl_task_family *f = family("retrieval:A=8,L=4,n=3");
    const char *dir = tu_tmpdir_create("reps");
    ck_assert_ptr_nonnull(dir);
    long steps[3] = {100, 5, 20};
    char path[256];
    for (int i = 0; i < 3; i++) {
        icl_model *m = small_model(f, 2, 28, 10 + (uint64_t)i);
        char name[64];
        snprintf(name, sizeof name, "step_%07ld.safetensors", steps[i]);
        tu_tmp_path(path, sizeof path, name);
        ck_assert_int_eq(icl_checkpoint_save(path, m, NULL, NULL), ICL_OK);
        icl_model_free(m);
    }
    tu_tmp_path(path, sizeof path, "model.safetensors");
    FILE *junk = fopen(path, "w");
    fputs("not a step", junk);
    fclose(junk);
    icl_checkpoint_list list;
    ck_assert_int_eq(icl_checkpoint_list_steps(dir, &list), ICL_OK);
    ck_assert_int_eq(list.n, 3);
    ck_assert_int_eq(list.steps[0], 5);
    ck_assert_int_eq(list.steps[1], 20);
    ck_assert_int_eq(list.steps[2], 100);
    icl_repr_prompts_options o = icl_repr_prompts_options_default();
    o.prompts_per_task = 8;
    icl_td_curve c;
    ck_assert_int_eq(icl_decodability_curve_run(&list, ICL_BACKEND_CPU, f, &o, NULL, 4, &c), ICL_OK);
    ck_assert_int_eq(c.n_ckpt, 3);
    ck_assert_int_eq(c.levels, 3);
    for (int i = 0; i < 3; i++) {
        icl_model *m;
        ck_assert_int_eq(icl_checkpoint_load_model(list.paths[i], ICL_BACKEND_CPU, &m), ICL_OK);
        icl_td_options to = icl_td_options_default();
        to.k = 4;
        icl_td_result td;
        ck_assert_int_eq(icl_decodability_run(m, f, &o, NULL, &to, &td), ICL_OK);
        ck_assert(memcmp(c.td + (size_t)i * 3 * 4, td.td, 3 * 4 * sizeof(double)) == 0);
        ck_assert(memcmp(c.score + (size_t)i * 4, td.score, 4 * sizeof(double)) == 0);
        icl_td_result_free(&td);
        icl_model_free(m);
    }
    icl_td_curve_free(&c);
    for (int i = 0; i < list.n; i++) unlink(list.paths[i]);
    icl_checkpoint_list_free(&list);
    unlink(path);
    ck_assert_int_eq(icl_checkpoint_list_steps(dir, &list), ICL_ERR_INVALID_ARG);
    printf("  %s\n", icl_last_error());
    char gone[256];
    snprintf(gone, sizeof gone, "%s", dir);
    tu_tmpdir_remove();
    ck_assert_int_eq(icl_checkpoint_list_steps(gone, &list), ICL_ERR_IO);
    icl_task_family_free(f);
}
END_TEST

/* Two tasks, every prompt of a task the same prompt: within-task similarity 1,
 * and the RSM ranks exactly like the same-task hypothesis (rho = 1) at every level. */
START_TEST(test_rsa_identical_prompts) {
    icl_task_family *f = family("retrieval:A=8,L=4,n=3");
    icl_model *m = small_model(f, 2, 28, 2);
    icl_gen_options g = icl_gen_options_default();
    icl_rng r;
    icl_rng_init(&r, 8, "rsa-identical");
    enum { N = 6 };
    icl_prompt proto[2] = {{0}}, prompts[2 * N];
    memset(prompts, 0, sizeof prompts);
    int32_t labels[2 * N];
    for (int t = 0; t < 2; t++) {
        ck_assert_int_eq(icl_task_generate(f, t, 3, &g, &r, &proto[t]), ICL_OK);
        for (int i = 0; i < N; i++) {
            ck_assert_int_eq(icl_prompt_copy(&prompts[t * N + i], &proto[t]), ICL_OK);
            labels[t * N + i] = t;
        }
    }
    icl_repr_site site = {icl_pos_all(), ICL_POOL_MEAN};
    icl_repr_set rs;
    ck_assert_int_eq(icl_repr_collect(m, prompts, 2 * N, &site, 5, &rs), ICL_OK);
    icl_rsa_hypothesis hyp = {"task", labels, NULL};
    double rho[3], p[3], *rsm = malloc((size_t)3 * 2 * N * 2 * N * sizeof *rsm);
    icl_rng pr;
    icl_rng_init(&pr, 1, "perm");
    ck_assert_int_eq(icl_rsa_levels(&rs, &hyp, 1, 200, &pr, rho, p, rsm), ICL_OK);
    double ones[3] = {1, 1, 1};
    ASSERT_CLOSE_D("rho of identical prompts", rho, ones, 3, 1e-12);
    for (int l = 0; l < 3; l++) {
        printf("  level %d: rho %.15f p %.4f\n", l, rho[l], p[l]);
        ck_assert(p[l] < 0.05);
        const double *S = rsm + (size_t)l * 4 * N * N;
        ck_assert(fabs(S[1] - 1.0) < 1e-12);              /* items 0 and 1: same task */
        ck_assert(fabs(S[(size_t)N] + 1.0) < 1e-12);       /* two standardised groups point opposite ways */
    }
    free(rsm);
    icl_repr_set_free(&rs);
    for (int i = 0; i < 2 * N; i++) icl_prompt_free(&prompts[i]);
    icl_prompt_free(&proto[0]);
    icl_prompt_free(&proto[1]);
    icl_model_free(m);
    icl_task_family_free(f);
}
END_TEST

/* The RSA probe equals icl_rsa_rsm + icl_rsa_permutation_test on the same prompts and streams. */
START_TEST(test_rsa_matches_manual) {
    icl_task_family *f = family("retrieval:A=8,L=4,n=3");
    icl_model *m = small_model(f, 2, 28, 3);
    icl_repr_prompts_options po = icl_repr_prompts_options_default();
    po.prompts_per_task = 8;
    icl_rsa_options ro = icl_rsa_options_default(f);
    ro.shots[1] = 3;
    ro.n_perm = 99;
    ro.keep_rsm = 1;
    icl_rsa_result res;
    ck_assert_int_eq(icl_rsa_run(m, f, &po, NULL, &ro, &res), ICL_OK);
    ck_assert_int_eq(res.n_hyp, 2);
    ck_assert_str_eq(res.hyp_names[0], "task");
    ck_assert_str_eq(res.hyp_names[1], "answer");
    for (int c = 0; c < 2; c++) {
        icl_repr_prompts_options o = po;
        o.n_examples = 3;
        o.keep_examples = res.shots[c];
        icl_repr_prompts set;
        ck_assert_int_eq(icl_repr_prompts_generate(f, &o, &set), ICL_OK);
        icl_repr_site site = icl_repr_site_default(f);
        icl_repr_set rs;
        ck_assert_int_eq(icl_repr_collect(m, set.prompts, set.n, &site, 64, &rs), ICL_OK);
        double *S = malloc((size_t)set.n * set.n * sizeof *S);
        icl_rng base;
        icl_rng_init(&base, ro.seed, "rsa-permutations");
        for (int l = 0; l < rs.levels; l++) {
            ck_assert_int_eq(icl_rsa_rsm(rs.X + (size_t)l * set.n * rs.d, set.n, rs.d, S), ICL_OK);
            ck_assert(memcmp(S, res.rsm + ((size_t)c * rs.levels + l) * set.n * set.n,
                             (size_t)set.n * set.n * sizeof *S) == 0);
            icl_rng child;
            icl_rng_split(&child, &base, (uint64_t)l); /* hypothesis 0 */
            double rho, p;
            ck_assert_int_eq(icl_rsa_permutation_test(S, set.labels, set.n, 99, &child, &rho, &p), ICL_OK);
            size_t at = ((size_t)c * 2 + 0) * rs.levels + l;
            printf("  shots %d level %d: task rho %.4f p %.3f, answer rho %.4f\n", res.shots[c], l, res.rho[at],
                   res.p[at], res.rho[at + rs.levels]);
            ck_assert(memcmp(&rho, &res.rho[at], sizeof rho) == 0 || (isnan(rho) && isnan(res.rho[at])));
            ck_assert(memcmp(&p, &res.p[at], sizeof p) == 0 || (isnan(p) && isnan(res.p[at])));
        }
        free(S);
        icl_repr_set_free(&rs);
        icl_repr_prompts_free(&set);
    }
    icl_rsa_result_free(&res);
    ro.n_shots = 0;
    ck_assert_int_eq(icl_rsa_run(m, f, &po, NULL, &ro, &res), ICL_ERR_INVALID_ARG);
    icl_model_free(m);
    icl_task_family_free(f);
}
END_TEST

/* A value hypothesis: the p-value of the rank shortcut equals brute-force permutations of the values. */
START_TEST(test_rsa_value_permutations) {
    enum { n = 14, d = 3 };
    icl_rng r;
    icl_rng_init(&r, 4, "rsa-values");
    icl_repr_set rs = {1, n, d, tu_floats(n * d), NULL};
    double v[n];
    for (int i = 0; i < n; i++) {
        v[i] = icl_rng_normal(&r);
        rs.X[i * d] = (float)(v[i] + 0.7 * icl_rng_normal(&r));
        rs.X[i * d + 1] = icl_rng_normal(&r);
        rs.X[i * d + 2] = icl_rng_normal(&r);
    }
    icl_rsa_hypothesis hyp = {"value", NULL, v};
    double rho, p;
    icl_rng base;
    icl_rng_init(&base, 2, "perm");
    ck_assert_int_eq(icl_rsa_levels(&rs, &hyp, 1, 300, &base, &rho, &p, NULL), ICL_OK);
    double S[n * n], H[n * n], vp[n], want_rho;
    ck_assert_int_eq(icl_rsa_rsm(rs.X, n, d, S), ICL_OK);
    ck_assert_int_eq(icl_rsa_hypothesis_values(v, n, H), ICL_OK);
    ck_assert_int_eq(icl_rsa_alignment(S, H, n, &want_rho), ICL_OK);
    icl_rng child;
    icl_rng_split(&child, &base, 0);
    int perm[n], at_least = 0;
    for (int i = 0; i < n; i++) perm[i] = i;
    for (int k = 0; k < 300; k++) {
        icl_rng_shuffle_int(&child, perm, n);
        for (int i = 0; i < n; i++) vp[i] = v[perm[i]];
        double rp;
        ck_assert_int_eq(icl_rsa_hypothesis_values(vp, n, H), ICL_OK);
        ck_assert_int_eq(icl_rsa_alignment(S, H, n, &rp), ICL_OK);
        at_least += rp >= want_rho - 1e-12;
    }
    double want_p = (1.0 + at_least) / 301.0;
    printf("  rho %.6f p %.4f (brute force %.6f, %.4f)\n", rho, p, want_rho, want_p);
    ck_assert(rho == want_rho);
    ck_assert(fabs(p - want_p) < 1e-15);
    ck_assert(rho > 0.2); /* the first feature follows v */
    free(rs.X);
}
END_TEST

/* Linear probes on planted representations: a feature that is the target gives accuracy / R^2 ~ 1. */
START_TEST(test_linear_planted) {
    icl_task_family *fv = family("basis_mixture_small:K=10");
    icl_repr_prompts_options o = icl_repr_prompts_options_default();
    o.prompts_per_task = 30;
    icl_repr_prompts set;
    ck_assert_int_eq(icl_repr_prompts_generate(fv, &o, &set), ICL_OK);
    int n = set.n, D = 8, d = D + 3;
    double *y = malloc((size_t)n * sizeof *y), *w = malloc((size_t)n * D * sizeof *w);
    ck_assert_int_eq(icl_repr_prompts_answer_values(&set, y), ICL_OK);
    ck_assert_int_eq(icl_repr_prompts_weights(&set, w), ICL_OK);
    /* the weights fit the prompt's own points: residual at the noise level */
    const icl_prompt *p0 = &set.prompts[0];
    double xs[11 * 8], ys[11], worst = 0.0;
    ck_assert_int_eq(icl_prompt_points(p0, xs, ys, 11), ICL_OK);
    for (int i = 0; i < 11; i++) {
        double pred = 0.0;
        for (int j = 0; j < D; j++) pred += w[j] * xs[i * D + j];
        if (fabs(pred - ys[i]) > worst) worst = fabs(pred - ys[i]);
    }
    printf("  least-squares weights: worst residual %.3f on the prompt's points (noise sigma 0.1)\n", worst);
    ck_assert(worst < 0.4);
    icl_rng r;
    icl_rng_init(&r, 6, "planted");
    /* level 0: noise; level 1: [y, the task's two bits (noisy), w] */
    icl_repr_set rs = {2, n, d, tu_floats((size_t)2 * n * d), NULL};
    tu_fill_uniform(rs.X, (size_t)n * d, 1.0f, &r);
    for (int i = 0; i < n; i++) {
        float *x = rs.X + ((size_t)n + i) * d;
        x[0] = (float)y[i];
        x[1] = (float)(set.labels[i] & 1) + 0.05f * icl_rng_normal(&r);
        x[2] = (float)(set.labels[i] >> 1) + 0.05f * icl_rng_normal(&r);
        for (int j = 0; j < D; j++) x[3 + j] = (float)w[(size_t)i * D + j];
    }
    icl_linear_options lo = icl_linear_options_default();
    double metric[2], chance;
    ck_assert_int_eq(icl_linear_probe_levels(&rs, &set, ICL_LINEAR_ANSWER, &lo, metric, &chance), ICL_OK);
    printf("  answer R^2: noise %.3f, planted %.6f\n", metric[0], metric[1]);
    ck_assert(metric[1] > 0.999 && metric[0] < 0.2 && isnan(chance));
    ck_assert_int_eq(icl_linear_probe_levels(&rs, &set, ICL_LINEAR_WEIGHTS, &lo, metric, NULL), ICL_OK);
    printf("  weights R^2: noise %.3f, planted %.6f\n", metric[0], metric[1]);
    ck_assert(metric[1] > 0.999 && metric[0] < 0.2);
    ck_assert_int_eq(icl_linear_probe_levels(&rs, &set, ICL_LINEAR_TASK, &lo, metric, &chance), ICL_OK);
    printf("  task accuracy: noise %.3f, planted %.3f, chance %.3f\n", metric[0], metric[1], chance);
    ck_assert(metric[1] == 1.0 && metric[0] < 0.6 && chance == 0.25);

    /* token prompts: the weights target does not exist */
    icl_task_family *f = family("retrieval:A=8,L=4,n=3");
    icl_repr_prompts ts;
    ck_assert_int_eq(icl_repr_prompts_generate(f, &o, &ts), ICL_OK);
    ck_assert_int_eq(icl_linear_probe_levels(&rs, &ts, ICL_LINEAR_WEIGHTS, &lo, metric, NULL), ICL_ERR_INVALID_ARG);
    printf("  %s\n", icl_last_error());
    icl_linear_target tgt;
    ck_assert_int_eq(icl_linear_target_parse("answer", &tgt), ICL_OK);
    ck_assert_int_eq(tgt, ICL_LINEAR_ANSWER);
    ck_assert_int_eq(icl_linear_target_parse("colour", &tgt), ICL_ERR_INVALID_ARG);
    icl_repr_prompts_free(&ts);
    icl_task_family_free(f);
    free(rs.X);
    free(y);
    free(w);
    icl_repr_prompts_free(&set);
    icl_task_family_free(fv);
}
END_TEST

/* A level where every item is the same vector (bit for bit) gives NaN in every
 * probe: TD, the linear probes' accuracy and R^2, and RSA's rho and p; the
 * other levels keep finite scores. Level 0 identical, level 1 noise plus the
 * task, level 2 identical to another vector. */
START_TEST(test_identical_level_is_nan) {
    icl_task_family *fv = family("basis_mixture_small:K=6");
    icl_repr_prompts_options o = icl_repr_prompts_options_default();
    o.prompts_per_task = 12;
    icl_repr_prompts set;
    ck_assert_int_eq(icl_repr_prompts_generate(fv, &o, &set), ICL_OK);
    int n = set.n, d = 5;
    icl_rng r;
    icl_rng_init(&r, 11, "identical");
    icl_repr_set rs = {3, n, d, tu_floats((size_t)3 * n * d), NULL};
    for (int i = 0; i < n; i++)
        for (int j = 0; j < d; j++) {
            rs.X[(size_t)i * d + j] = 0.3f * (float)(j + 1);
            rs.X[((size_t)n + i) * d + j] = j == 0 ? (float)set.labels[i] + 0.2f * icl_rng_normal(&r) : icl_rng_normal(&r);
            rs.X[((size_t)2 * n + i) * d + j] = -1.7f;
        }
    icl_linear_options lo = icl_linear_options_default();
    lo.folds = 3;
    double metric[3], chance;
    for (int t = 0; t < ICL_LINEAR_COUNT; t++) {
        ck_assert_int_eq(icl_linear_probe_levels(&rs, &set, (icl_linear_target)t, &lo, metric, &chance), ICL_OK);
        printf("  linear %-7s: %g %g %g\n", icl_linear_target_name((icl_linear_target)t), metric[0], metric[1],
               metric[2]);
        ck_assert(isnan(metric[0]) && isfinite(metric[1]) && isnan(metric[2]));
    }
    ck_assert_int_eq(icl_linear_probe_levels(&rs, &set, ICL_LINEAR_TASK, &lo, metric, &chance), ICL_OK);
    ck_assert(chance == 0.25 && metric[1] > 0.5); /* the planted task feature decodes */

    icl_td_result td;
    icl_td_options to = icl_td_options_default();
    to.k = 3;
    ck_assert_int_eq(icl_td_from_repr(&rs, set.labels, set.n_tasks, &to, &td), ICL_OK);
    printf("  TD: %g %g %g\n", td.td_mean[0], td.td_mean[1], td.td_mean[2]);
    ck_assert(isnan(td.td_mean[0]) && isfinite(td.td_mean[1]) && isnan(td.td_mean[2]));
    ck_assert_int_eq(td.best_level, 1);
    icl_td_result_free(&td);

    double values[64];
    ck_assert_int_le(n, 64);
    ck_assert_int_eq(icl_repr_prompts_answer_values(&set, values), ICL_OK);
    icl_rsa_hypothesis hyp[2] = {{"task", set.labels, NULL}, {"answer", NULL, values}};
    double rho[6], pv[6];
    icl_rng pr;
    icl_rng_init(&pr, 1, "perm");
    ck_assert_int_eq(icl_rsa_levels(&rs, hyp, 2, 50, &pr, rho, pv, NULL), ICL_OK);
    for (int h = 0; h < 2; h++) {
        printf("  RSA %-6s: rho %g %g %g\n", hyp[h].name, rho[h * 3], rho[h * 3 + 1], rho[h * 3 + 2]);
        ck_assert(isnan(rho[h * 3]) && isnan(pv[h * 3]) && isnan(rho[h * 3 + 2]) && isnan(pv[h * 3 + 2]));
        ck_assert(isfinite(rho[h * 3 + 1]) && isfinite(pv[h * 3 + 1]));
    }
    ck_assert(rho[1] > 0.1); /* the task feature aligns with the same-task hypothesis */
    free(rs.X);
    icl_repr_prompts_free(&set);
    icl_task_family_free(fv);
}
END_TEST

/* The last query tokens of a token prompt: query input, SEP and answer. */
static const int32_t *query_tokens(const icl_prompt *p, int len) { return p->tokens + p->T - len; }

/* The linear probe's conditions share their queries: the 0-shot set is the
 * k-shot set cut to no examples, with the same query tokens; the k-shot set is
 * the one drawn directly; independent conditions draw other queries. */
START_TEST(test_linear_conditions_share_queries) {
    icl_task_family *f = family("retrieval:A=8,L=4,tasks=3,n=3");
    icl_repr_prompts_options base = icl_repr_prompts_options_default(), o0, o3, direct = base;
    base.prompts_per_task = direct.prompts_per_task = 6;
    direct.n_examples = 3;
    int qlen = icl_task_family_input_len(f) + 1 + icl_task_family_answer_len(f);
    icl_repr_prompts s0, s3, sd;
    ck_assert_int_eq(icl_linear_prompts_options(&base, 0, 3, 1, &o0), ICL_OK);
    ck_assert_int_eq(icl_linear_prompts_options(&base, 3, 3, 1, &o3), ICL_OK);
    ck_assert_int_eq(icl_repr_prompts_generate(f, &o0, &s0), ICL_OK);
    ck_assert_int_eq(icl_repr_prompts_generate(f, &o3, &s3), ICL_OK);
    ck_assert_int_eq(icl_repr_prompts_generate(f, &direct, &sd), ICL_OK);
    ck_assert_int_eq(s0.n, s3.n);
    for (int i = 0; i < s0.n; i++) {
        ck_assert_int_eq(s0.prompts[i].n_examples, 0);
        ck_assert_int_eq(s3.prompts[i].n_examples, 3);
        ck_assert(memcmp(query_tokens(&s0.prompts[i], qlen), query_tokens(&s3.prompts[i], qlen),
                         (size_t)qlen * sizeof(int32_t)) == 0);
        ck_assert_int_eq(s3.prompts[i].T, sd.prompts[i].T);
        ck_assert(memcmp(s3.prompts[i].tokens, sd.prompts[i].tokens, (size_t)sd.prompts[i].T * sizeof(int32_t)) == 0);
    }
    icl_repr_prompts_free(&s0);
    ck_assert_int_eq(icl_linear_prompts_options(&base, 0, 3, 0, &o0), ICL_OK);
    ck_assert_int_eq(icl_repr_prompts_generate(f, &o0, &s0), ICL_OK);
    int differ = 0;
    for (int i = 0; i < s0.n; i++)
        differ += memcmp(query_tokens(&s0.prompts[i], qlen), query_tokens(&s3.prompts[i], qlen),
                         (size_t)qlen * sizeof(int32_t)) != 0;
    printf("  independent 0-shot prompts: %d of %d queries differ from the 3-shot ones\n", differ, s0.n);
    ck_assert_int_gt(differ, s0.n / 2);
    ck_assert_int_eq(icl_linear_prompts_options(&base, 4, 3, 1, &o0), ICL_ERR_INVALID_ARG);
    ck_assert_int_eq(icl_linear_prompts_options(NULL, 0, 3, 1, &o0), ICL_ERR_INVALID_ARG);
    icl_repr_prompts_free(&s0);
    icl_repr_prompts_free(&s3);
    icl_repr_prompts_free(&sd);
    icl_task_family_free(f);
}
END_TEST

/* Pack a prompt set into one batch. */
static void pack_set(const icl_repr_prompts *s, icl_task_batch *tb) {
    const icl_prompt **ptrs = malloc((size_t)s->n * sizeof *ptrs);
    for (int i = 0; i < s->n; i++) ptrs[i] = &s->prompts[i];
    ck_assert_int_eq(icl_task_batch_pack(tb, ptrs, s->n, 0), ICL_OK);
    free(ptrs);
}

/* Planted attention rows (SET on attn_probs at the query separator, every
 * layer) give the planted role fractions and source ratios.
 * Prompt (retrieval L=4, 3 examples): BOS, 3 x (4 inputs, SEP, answer, DELIM),
 * 4 query inputs, query SEP at q = 26. ret_2 answers the 2nd symbol. */
START_TEST(test_attention_planted_roles) {
    icl_task_family *f = family("retrieval:A=8,L=4,n=3");
    icl_model *m = small_model(f, 2, 28, 4);
    icl_repr_prompts_options o = icl_repr_prompts_options_default();
    int task = 1;
    o.tasks = &task;
    o.n_tasks = 1;
    o.prompts_per_task = 4;
    icl_repr_prompts set;
    ck_assert_int_eq(icl_repr_prompts_generate(f, &o, &set), ICL_OK);
    icl_task_batch tb = {0};
    pack_set(&set, &tb);
    int T = tb.T, q = 26, NH = 3;
    ck_assert_int_eq(T, 28);
    ck_assert_int_eq(tb.query_pos[0], q);
    float *pattern = tu_floats((size_t)NH * T);
    for (int t = 0; t <= q; t++) pattern[t] = 1.0f / 27; /* head 0: uniform */
    pattern[T + 0] = 1.0f;                              /* head 1: BOS */
    for (int t = q - 4; t < q; t++) pattern[2 * T + t] = (t == q - 3) ? 0.6f : 0.4f / 3; /* head 2: query input */
    icl_intervention iv[2];
    for (int l = 0; l < 2; l++) {
        iv[l] = icl_intervention_make(ICL_POINT_ATTN_PROBS, l, ICL_IV_SET);
        iv[l].pos = icl_pos_role_nth(ICL_ROLE_QUERY_SEP, 0);
        iv[l].vector = pattern;
    }
    icl_attn_stats st;
    ck_assert_int_eq(icl_attn_stats_init(&st, m, 4), ICL_OK);
    icl_positions from = icl_pos_role_nth(ICL_ROLE_QUERY_SEP, 0);
    ck_assert_int_eq(icl_attn_stats_add(&st, m, &tb, from, NULL, iv, 2), ICL_OK);
    ck_assert_int_eq(icl_attn_stats_finish(&st), ICL_OK);
    ck_assert_int_eq(st.rows, 4);
    /* expected role shares per head slot (0, 1, 2, mean) */
    double want[4][ICL_ROLE_COUNT] = {{0}};
    double counts[ICL_ROLE_COUNT] = {1, 12, 3, 3, 3, 4, 1, 0, 0};
    for (int r = 0; r < ICL_ROLE_COUNT; r++) want[0][r] = counts[r] / 27;
    want[1][ICL_ROLE_BOS] = 1.0;
    want[2][ICL_ROLE_QUERY_INPUT] = 1.0;
    for (int r = 0; r < ICL_ROLE_COUNT; r++) want[3][r] = (want[0][r] + want[1][r] + want[2][r]) / 3;
    for (int l = 0; l < 2; l++)
        for (int h = 0; h <= NH; h++) {
            char label[64];
            snprintf(label, sizeof label, "role shares layer %d head slot %d", l, h);
            ASSERT_CLOSE_D(label, st.role + ((size_t)l * (NH + 1) + h) * ICL_ROLE_COUNT, want[h], ICL_ROLE_COUNT, 1e-6);
        }
    size_t cells = (size_t)2 * (NH + 1);
    /* query source: uniform 1/27 vs 3/27; head 2: 0.6 vs 0.4; example source: uniform 3/27 vs 9/27 */
    double qs[4] = {1.0 / 3, NAN, 1.5, (1.0 / 27 + 0.6) / (3.0 / 27 + 0.4)};
    for (int l = 0; l < 2; l++) {
        const double *ratio_q = st.ratio + ICL_ATTN_QUERY_SOURCE * cells + (size_t)l * (NH + 1);
        const double *ratio_e = st.ratio + ICL_ATTN_EXAMPLE_SOURCE * cells + (size_t)l * (NH + 1);
        double got[3] = {ratio_q[0], ratio_q[2], ratio_q[3]}, exp[3] = {qs[0], qs[2], qs[3]};
        ASSERT_CLOSE_D("query-source ratio (heads 0, 2, mean)", got, exp, 3, 1e-6);
        ck_assert(isnan(ratio_q[1])); /* head 1 puts nothing on the query input: 0 / 0 */
        double e0 = 1.0 / 3;
        ASSERT_CLOSE_D("example-source ratio head 0", &ratio_e[0], &e0, 1, 1e-6);
        ck_assert(isnan(st.ratio[ICL_ATTN_TASK * cells + (size_t)l * (NH + 1)])); /* single task: no irrelevant set */
    }
    ck_assert_int_eq(st.ratio_rows[ICL_ATTN_QUERY_SOURCE], 4);
    ck_assert_int_eq(st.ratio_rows[ICL_ATTN_TASK], 0);
    /* task shares: uniform head: 21 example positions of task 1 out of 27 */
    double t1 = st.task[(size_t)0 * 4 + 1], want_t1 = 21.0 / 27;
    ASSERT_CLOSE_D("task share head 0", &t1, &want_t1, 1, 1e-6);
    icl_attn_stats_free(&st);
    free(pattern);
    icl_task_batch_free(&tb);
    icl_repr_prompts_free(&set);
    icl_model_free(m);
    icl_task_family_free(f);
}
END_TEST

/* Mixed prompts (3 examples of ret_1, 1 of ret_3) under uniform planted
 * attention: the relevant / irrelevant task ratio is 21 / 7 = 3. */
START_TEST(test_attention_planted_task_ratio) {
    icl_task_family *f = family("retrieval:A=8,L=4,n=4");
    icl_model *m = small_model(f, 2, 35, 4);
    enum { B = 5 };
    icl_mixed_prompt mp[B];
    memset(mp, 0, sizeof mp);
    const icl_prompt *ptrs[B];
    int tasks[2] = {0, 2};
    double lambda[2] = {0.75, 0.25};
    icl_gen_options g = icl_gen_options_default();
    icl_rng r;
    icl_rng_init(&r, 5, "mixed");
    int32_t relevant[B];
    for (int b = 0; b < B; b++) {
        ck_assert_int_eq(icl_task_generate_mixed(f, tasks, lambda, 2, 4, &g, &r, &mp[b]), ICL_OK);
        ptrs[b] = &mp[b].prompt;
        relevant[b] = 0;
    }
    icl_task_batch tb = {0};
    ck_assert_int_eq(icl_task_batch_pack(&tb, ptrs, B, 0), ICL_OK);
    int T = tb.T, q = tb.query_pos[0], NH = 3;
    ck_assert_int_eq(q, 33);
    float *pattern = tu_floats((size_t)NH * T);
    for (int h = 0; h < NH; h++)
        for (int t = 0; t <= q; t++) pattern[h * T + t] = 1.0f / (q + 1);
    icl_intervention iv = icl_intervention_make(ICL_POINT_ATTN_PROBS, 1, ICL_IV_SET);
    iv.pos = icl_pos_role_nth(ICL_ROLE_QUERY_SEP, 0);
    iv.vector = pattern;
    icl_attn_stats st;
    ck_assert_int_eq(icl_attn_stats_init(&st, m, 4), ICL_OK);
    icl_positions from = icl_pos_role_nth(ICL_ROLE_QUERY_SEP, 0);
    ck_assert_int_eq(icl_attn_stats_add(&st, m, &tb, from, relevant, &iv, 1), ICL_OK);
    ck_assert_int_eq(icl_attn_stats_finish(&st), ICL_OK);
    size_t cells = (size_t)2 * (NH + 1);
    const double *ratio = st.ratio + ICL_ATTN_TASK * cells + (size_t)1 * (NH + 1);
    double want[4] = {3, 3, 3, 3};
    ASSERT_CLOSE_D("task ratio, layer 1 (planted)", ratio, want, 4, 1e-6);
    const double *share = st.task + (size_t)1 * (NH + 1) * 4;
    double got[2] = {share[0], share[2]}, exp[2] = {21.0 / 34, 7.0 / 34};
    ASSERT_CLOSE_D("task shares, layer 1 head 0", got, exp, 2, 1e-6);
    /* layer 0 is the model's own attention: shares still sum to 1 over roles */
    for (int h = 0; h <= NH; h++) {
        double sum = 0;
        for (int rr = 0; rr < ICL_ROLE_COUNT; rr++) sum += st.role[(size_t)h * ICL_ROLE_COUNT + rr];
        ck_assert(fabs(sum - 1.0) < 1e-6);
    }
    ck_assert_int_eq(icl_attn_stats_add(&st, m, &tb, icl_pos_role_nth(42, 0), relevant, NULL, 0), ICL_ERR_INVALID_ARG);
    printf("  %s\n", icl_last_error());
    icl_attn_stats_free(&st);
    free(pattern);
    icl_task_batch_free(&tb);
    for (int b = 0; b < B; b++) icl_mixed_prompt_free(&mp[b]);
    icl_model_free(m);
    icl_task_family_free(f);
}
END_TEST

/* The driver: 0-shot puts no attention on examples; shares sum to 1; mixed condition present. */
START_TEST(test_attention_probe_conditions) {
    icl_task_family *f = family("retrieval:A=8,L=4,n=3");
    icl_model *m = small_model(f, 2, 28, 6);
    icl_attn_options o = icl_attn_options_default(f);
    o.prompts.prompts_per_task = 6;
    o.batch = 10;
    icl_attn_result res;
    ck_assert_int_eq(icl_attention_run(m, f, &o, &res), ICL_OK);
    ck_assert_int_eq(res.n_cond, 3);
    ck_assert_str_eq(res.names[0], "0-shot");
    ck_assert_str_eq(res.names[2], "mixed");
    ck_assert_int_eq(res.shots[1], 3);
    int NH = 3;
    for (int c = 0; c < 3; c++) {
        const icl_attn_stats *s = &res.stats[c];
        ck_assert_int_eq(s->rows, 24);
        for (int cell = 0; cell < 2 * (NH + 1); cell++) {
            double sum = 0, ex = 0;
            for (int r = 0; r < ICL_ROLE_COUNT; r++) sum += s->role[(size_t)cell * ICL_ROLE_COUNT + r];
            for (int r = ICL_ROLE_EX_INPUT; r <= ICL_ROLE_DELIM; r++) ex += s->role[(size_t)cell * ICL_ROLE_COUNT + r];
            ck_assert(fabs(sum - 1.0) < 1e-6);
            if (c == 0)
                ck_assert(ex == 0.0);
            else
                ck_assert(ex > 0.0);
        }
    }
    ck_assert_int_eq(res.stats[2].ratio_rows[ICL_ATTN_TASK], 24);
    ck_assert_int_eq(res.stats[1].ratio_rows[ICL_ATTN_TASK], 0);
    printf("  task ratio (mixed, layer 1, mean head) %.3f; query-source ratio 0-shot %.3f, k-shot %.3f\n",
           res.stats[2].ratio[ICL_ATTN_TASK * 8 + 7], res.stats[0].ratio[7], res.stats[1].ratio[7]);
    icl_attn_result_free(&res);
    o.prompts.n_examples = 0;
    ck_assert_int_eq(icl_attention_run(m, f, &o, &res), ICL_ERR_INVALID_ARG);
    printf("  %s\n", icl_last_error());
    icl_model_free(m);
    icl_task_family_free(f);
}
END_TEST

int main(void) {
    Suite *s = suite_create("representations");
    TCase *tc = tcase_create("core");
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, test_role_parse);
    tcase_add_test(tc, test_keep_examples);
    tcase_add_test(tc, test_prompt_set_streams);
    tcase_add_test(tc, test_td_matches_manual_token);
    tcase_add_test(tc, test_td_matches_manual_vector);
    tcase_add_test(tc, test_td_bad_requests);
    tcase_add_test(tc, test_td_over_checkpoints);
    tcase_add_test(tc, test_rsa_identical_prompts);
    tcase_add_test(tc, test_rsa_matches_manual);
    tcase_add_test(tc, test_rsa_value_permutations);
    tcase_add_test(tc, test_linear_planted);
    tcase_add_test(tc, test_identical_level_is_nan);
    tcase_add_test(tc, test_linear_conditions_share_queries);
    tcase_add_test(tc, test_attention_planted_roles);
    tcase_add_test(tc, test_attention_planted_task_ratio);
    tcase_add_test(tc, test_attention_probe_conditions);
    suite_add_tcase(s, tc);
    return tu_run(s);
}
