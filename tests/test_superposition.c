/* Superposition probe: P_j equals a manual teacher-forced computation from
 * icl_model_probs (one- and three-token answers), example counts match lambda
 * exactly, p_(K), r and KL match hand computations, the beam search agrees
 * with brute-force enumeration, the lens at the last level reproduces the
 * output, and bad requests are rejected. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "icl/icl.h"
#include "icl/superposition.h"
#include "testutil.h"

typedef struct {
    icl_task_family *f;
    icl_model *m;
    int T, V, A;
} fixture;

/* A tiny random model for prompts of n examples; the token embedding (tied
 * unembedding) is scaled by `sharpen` so that output distributions are peaked. */
static void setup(fixture *x, const char *spec, int n, float sharpen) {
    memset(x, 0, sizeof *x);
    ck_assert_int_eq(icl_task_family_create(&x->f, spec), ICL_OK);
    ck_assert_int_eq(icl_task_family_prompt_len(x->f, n, &x->T), ICL_OK);
    icl_config c = tu_config((tu_model_shape){.n_layer = 2, .d_model = 24, .n_head = 3, .d_ff = 40, .ctx = x->T,
            .family = x->f});
    ck_assert_int_eq(icl_model_create(&x->m, &c, ICL_BACKEND_CPU, 21), ICL_OK);
    x->V = c.vocab_size;
    x->A = icl_task_family_answer_len(x->f);
    size_t P = icl_model_num_params(x->m);
    float *p = tu_floats(P);
    ck_assert_int_eq(icl_model_get_params(x->m, p, P), ICL_OK);
    const icl_param_info *t = icl_model_tensor(x->m, icl_model_find_tensor(x->m, "tok_embed.weight"));
    for (size_t i = 0; i < t->numel; i++) p[t->offset + i] *= sharpen;
    ck_assert_int_eq(icl_model_set_params(x->m, p, P), ICL_OK);
    free(p);
}

static void teardown(fixture *x) {
    icl_model_free(x->m);
    icl_task_family_free(x->f);
}

/* Output distribution (T,V) of one prompt, alone in its batch. */
static float *prompt_probs(fixture *x, const icl_prompt *p) {
    const icl_prompt *one[1] = {p};
    icl_task_batch tb = {0};
    ck_assert_int_eq(icl_task_batch_pack(&tb, one, 1, 0), ICL_OK);
    ck_assert_int_eq(icl_model_forward(x->m, &tb.batch, NULL), ICL_OK);
    float *probs = tu_floats((size_t)tb.T * x->V);
    ck_assert_int_eq(icl_model_probs(x->m, probs, (size_t)tb.T * x->V), ICL_OK);
    icl_task_batch_free(&tb);
    return probs;
}

/* prod_j P(answer_j | prompt, answer_<j) with `answer` teacher-forced. */
static double manual_answer_prob(fixture *x, const icl_prompt *src, const int32_t *answer) {
    icl_prompt p = {0};
    ck_assert_int_eq(icl_prompt_copy(&p, src), ICL_OK);
    ck_assert_int_eq(icl_prompt_set_query_answer(&p, answer, NULL), ICL_OK);
    float *probs = prompt_probs(x, &p);
    double prod = 1.0;
    for (int j = 0; j < x->A; j++) prod *= probs[(size_t)(p.query_pos + j) * x->V + answer[j]];
    free(probs);
    icl_prompt_free(&p);
    return prod;
}

static int cmp_desc(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x < y) - (x > y);
}

/* One mixture through the probe and by hand: P, counts, p_(K) (one-token), r, KL. */
static void check_mixture(const char *spec, int n, const int *tasks, const double *lambda, int K, const int *want_counts) {
    fixture x;
    setup(&x, spec, n, 4.0f);
    icl_superposition_options o;
    o = icl_superposition_options_default();
    o.n_prompts = 5;
    o.n_examples = n;
    o.batch = 2; /* three batches, the last one short */
    o.beam = 4;
    icl_rng rng;
    icl_rng_init(&rng, 7, "mix");
    icl_superposition_result r;
    ck_assert_int_eq(icl_superposition_run(x.m, x.f, tasks, lambda, K, &o, &rng, &r), ICL_OK);
    ck_assert_int_eq(r.K, K);
    ck_assert_int_eq(r.n, 5);
    for (int j = 0; j < K; j++) {
        ck_assert_int_eq(r.counts[j], want_counts[j]);
        ck_assert(r.lambda[j] == (double)want_counts[j] / n);
    }
    float got[5 * 4], want[5 * 4], got_pk[5], want_pk[5];
    double kl_raw = 0, kl_renorm = 0, solved = 0;
    for (int i = 0; i < 5; i++) {
        icl_rng pr;
        icl_rng_split(&pr, &rng, (uint64_t)i);
        icl_mixed_prompt mp = {0};
        ck_assert_int_eq(icl_task_generate_mixed(x.f, tasks, lambda, K, n, NULL, &pr, &mp), ICL_OK);
        /* the prompt holds exactly counts[j] examples of task j */
        for (int j = 0; j < K; j++) {
            int seen = 0;
            for (int t = 0; t < mp.prompt.T; t++)
                seen += mp.prompt.roles[t] == ICL_ROLE_EX_SEP && mp.prompt.task_ids[t] == tasks[j];
            ck_assert_int_eq(seen, want_counts[j]);
        }
        double sum = 0, Pi[4];
        for (int j = 0; j < K; j++) {
            Pi[j] = manual_answer_prob(&x, &mp.prompt, mp.answers + (size_t)j * x.A);
            want[i * K + j] = (float)Pi[j];
            got[i * K + j] = (float)r.P[(size_t)i * K + j];
            sum += Pi[j];
        }
        for (int j = 0; j < K; j++)
            if (r.lambda[j] > 0) {
                kl_raw += r.lambda[j] * log(r.lambda[j] / Pi[j]) / 5;
                kl_renorm += r.lambda[j] * log(r.lambda[j] / (Pi[j] / sum)) / 5;
            }
        if (x.A == 1) {
            float *probs = prompt_probs(&x, &mp.prompt);
            double *row = malloc((size_t)x.V * sizeof *row);
            for (int v = 0; v < x.V; v++) row[v] = probs[(size_t)mp.prompt.query_pos * x.V + v];
            qsort(row, (size_t)x.V, sizeof *row, cmp_desc);
            want_pk[i] = (float)row[K - 1];
            got_pk[i] = (float)r.pK[i];
            ck_assert_int_eq(r.pK_exact[i], 1);
            for (int j = 0; j < K; j++) solved += Pi[j] >= row[K - 1] - 1e-5;
            free(row);
            free(probs);
        }
        icl_mixed_prompt_free(&mp);
    }
    char label[128];
    snprintf(label, sizeof label, "P_j vs manual teacher forcing (%s)", spec);
    TU_ASSERT_CLOSE(label, got, want, (size_t)5 * K, 1e-9, 1e-5);
    /* the sorted-mean profile decreases and has the same total as the per-task means */
    double total_sorted = 0, total_mean = 0;
    for (int j = 0; j < K; j++) {
        total_sorted += r.out.sorted[j];
        total_mean += r.out.mean[j];
        ck_assert(j == 0 || r.out.sorted[j] <= r.out.sorted[j - 1]);
    }
    ck_assert(fabs(total_sorted - total_mean) < 1e-12);
    float kl_got[2] = {(float)r.out.kl_raw, (float)r.out.kl_renorm}, kl_want[2] = {(float)kl_raw, (float)kl_renorm};
    TU_ASSERT_CLOSE("KL raw, renormalised vs manual", kl_got, kl_want, 2, 1e-7, 1e-5);
    if (x.A == 1) {
        TU_ASSERT_CLOSE("p_(K) vs sorted output distribution", got_pk, want_pk, 5, 1e-9, 1e-5);
        printf("  r = %.3f (manual %.3f) of K = %d\n", r.out.r, solved / 5, K);
        ck_assert(fabs(r.out.r - solved / 5) < 1e-12);
        ck_assert(r.out.pk_exact == 1.0);
    }
    icl_superposition_result_free(&r);
    teardown(&x);
}

START_TEST(test_one_token_mixture_by_hand) {
    int tasks[3] = {2, 0, 1}, counts[3] = {2, 1, 1};
    double lambda[3] = {0.5, 0.25, 0.25};
    check_mixture("retrieval:A=8,L=4,tasks=3", 4, tasks, lambda, 3, counts);
}
END_TEST

START_TEST(test_zero_proportion_task_is_scored) {
    int tasks[2] = {0, 1}, counts[2] = {4, 0};
    double lambda[2] = {1.0, 0.0};
    check_mixture("retrieval:A=8,L=4,tasks=3", 4, tasks, lambda, 2, counts);
}
END_TEST

START_TEST(test_three_token_mixture_by_hand) {
    int tasks[2] = {0, 2}, counts[2] = {1, 2};
    double lambda[2] = {1.0 / 3.0, 2.0 / 3.0};
    check_mixture("two_operand", 3, tasks, lambda, 2, counts);
}
END_TEST

/* Every answer string's probability for one row of tb by enumeration (A = 3): all (V^3). */
static void enumerate_strings(fixture *x, const icl_task_batch *tb, int b, double *all) {
    int V = x->V, T = tb->T, q = tb->query_pos[b], R = V * V;
    int32_t *tok = tu_ints((size_t)R * T);
    float *probs = tu_floats((size_t)R * T * V);
    for (int a = 0; a < V; a++) {
        for (int r = 0; r < R; r++) {
            memcpy(tok + (size_t)r * T, tb->tokens + (size_t)b * T, (size_t)T * sizeof *tok);
            tok[(size_t)r * T + q + 1] = a;
            tok[(size_t)r * T + q + 2] = r / V;
            tok[(size_t)r * T + q + 3] = r % V;
        }
        icl_batch batch = {R, T, tok, NULL, NULL, NULL, NULL};
        ck_assert_int_eq(icl_model_forward(x->m, &batch, NULL), ICL_OK);
        ck_assert_int_eq(icl_model_probs(x->m, probs, (size_t)R * T * V), ICL_OK);
        for (int r = 0; r < R; r++) {
            const float *pr = probs + (size_t)r * T * V;
            all[(size_t)a * R + r] = (double)pr[(size_t)q * V + a] * pr[(size_t)(q + 1) * V + r / V] *
                                     pr[(size_t)(q + 2) * V + r % V];
        }
    }
    free(tok);
    free(probs);
}

/* Beam search for p_(K) against brute force over all 14^3 answer strings of
 * 3 prompts. The wide beam (V^2) keeps every prefix; narrow beams of K = 2
 * and 3 run with 3 rows per pass, so K = 2 also exercises the filler rows.
 * sharpen 10: peaked distributions, narrow beams certify at least half the
 * rows; sharpen 1: nearly uniform ones, where pruned prefixes are as probable
 * as the K-th string, so the certificate must be withheld on some row. */
static void check_beam(float sharpen, int peaked) {
    fixture x;
    setup(&x, "two_operand", 2, sharpen);
    icl_task_batch tb = {0};
    icl_task_batch_options bo = icl_task_batch_options_default();
    bo.B = 3;
    bo.n_examples = 2;
    icl_rng r;
    icl_rng_init(&r, 5, "beam");
    ck_assert_int_eq(icl_task_batch_generate(x.f, &bo, &r, &tb), ICL_OK);
    int B = 3, N = x.V * x.V * x.V, certified = 0, narrow_rows = 0;
    double *all = malloc((size_t)B * N * sizeof *all), full[3], narrow[3], lensed[3];
    uint8_t ex_full[3], ex_narrow[3], ex_lens[3];
    float got[3], want[3];
    for (int b = 0; b < B; b++) {
        enumerate_strings(&x, &tb, b, all + (size_t)b * N);
        qsort(all + (size_t)b * N, (size_t)N, sizeof *all, cmp_desc);
    }
    icl_lens *lens;
    ck_assert_int_eq(icl_lens_create(x.m, &lens), ICL_OK);
    for (int K = 2; K <= 3; K++) {
        ck_assert_int_eq(icl_answer_kth_prob(x.m, &tb, K, x.V * x.V, NULL, -1, full, ex_full), ICL_OK);
        ck_assert_int_eq(icl_answer_kth_prob(x.m, &tb, K, K, NULL, -1, narrow, ex_narrow), ICL_OK);
        ck_assert_int_eq(icl_answer_kth_prob(x.m, &tb, K, x.V * x.V, lens, 2, lensed, ex_lens), ICL_OK);
        for (int b = 0; b < B; b++) {
            double truth = all[(size_t)b * N + K - 1];
            want[b] = (float)truth;
            got[b] = (float)full[b];
            ck_assert_int_eq(ex_full[b], 1); /* a beam of V^2 keeps every prefix */
            ck_assert_int_eq(ex_lens[b], 1);
            ck_assert(narrow[b] <= truth * (1 + 1e-5)); /* a lower bound ... */
            if (ex_narrow[b]) {                         /* ... exact when certified */
                certified++;
                ck_assert(fabs(narrow[b] - truth) <= 1e-5 * truth);
            }
            narrow_rows++;
        }
        char label[96];
        snprintf(label, sizeof label, "sharpen %g, K %d: beam of V^2 vs enumeration", sharpen, K);
        TU_ASSERT_CLOSE(label, got, want, 3, 0.0, 1e-5);
        /* The lens recomputes the logits from the captured residual with other
         * float32 rounding; a logit error is relative to the logits' size,
         * which grows with `sharpen`, and each of the K factors carries it. */
        for (int b = 0; b < B; b++) got[b] = (float)lensed[b];
        snprintf(label, sizeof label, "sharpen %g, K %d: beam through the lens at level L", sharpen, K);
        TU_ASSERT_CLOSE(label, got, want, 3, 0.0, 1e-5 * sharpen);
    }
    printf("  narrow beams (width K): %d of %d rows certified exact\n", certified, narrow_rows);
    if (peaked)
        ck_assert_int_ge(2 * certified, narrow_rows);
    else
        ck_assert_int_lt(certified, narrow_rows);
    free(all);
    icl_lens_free(lens);
    icl_task_batch_free(&tb);
    teardown(&x);
}

START_TEST(test_beam_matches_enumeration_peaked) { check_beam(10.0f, 1); }
END_TEST

START_TEST(test_beam_lower_bound_when_flat) { check_beam(1.0f, 0); }
END_TEST

/* With the lens on, the last level reproduces the output readout. */
START_TEST(test_lens_last_level_matches_output) {
    fixture x;
    setup(&x, "retrieval:A=8,L=4,tasks=3", 4, 4.0f);
    int tasks[3] = {0, 1, 2};
    double lambda[3] = {0.5, 0.25, 0.25};
    icl_superposition_options o;
    o = icl_superposition_options_default();
    o.n_prompts = 6;
    o.n_examples = 4;
    o.lens = 1;
    icl_rng rng;
    icl_rng_init(&rng, 2, "lens");
    icl_superposition_result r;
    ck_assert_int_eq(icl_superposition_run(x.m, x.f, tasks, lambda, 3, &o, &rng, &r), ICL_OK);
    ck_assert_int_eq(r.levels, 3);
    float *g = tu_floats(18), *w = tu_floats(18);
    for (int i = 0; i < 18; i++) {
        g[i] = (float)r.lens_P[(size_t)2 * 18 + i];
        w[i] = (float)r.P[i];
    }
    TU_ASSERT_CLOSE("lens level L P vs output P", g, w, 18, 1e-7, 1e-5);
    for (int i = 0; i < 6; i++) {
        g[i] = (float)r.lens_pK[2 * 6 + i];
        w[i] = (float)r.pK[i];
    }
    TU_ASSERT_CLOSE("lens level L p_(K) vs output p_(K)", g, w, 6, 1e-7, 1e-5);
    ck_assert(fabs(r.lens[2].kl_raw - r.out.kl_raw) < 1e-5);
    free(g);
    free(w);
    icl_superposition_result_free(&r);
    teardown(&x);
}
END_TEST

START_TEST(test_parse_mixture) {
    icl_task_family *f;
    ck_assert_int_eq(icl_task_family_create(&f, "retrieval:tasks=4"), ICL_OK);
    int tasks[4], K;
    double lambda[4];
    ck_assert_int_eq(icl_superposition_parse_mixture(f, "ret_3=0.75,ret_1=0.25", tasks, lambda, 4, &K), ICL_OK);
    ck_assert_int_eq(K, 2);
    ck_assert_int_eq(tasks[0], 2);
    ck_assert_int_eq(tasks[1], 0);
    ck_assert(lambda[0] == 0.75 && lambda[1] == 0.25);
    const char *bad[] = {"ret_9=0.5,ret_1=0.5", "ret_1=0.5,ret_2=0.4", "ret_1=1",         "ret_1=0.5,ret_1=0.5",
                         "ret_1=1.5,ret_2=-0.5", "ret_1=x,ret_2=1",   "ret_1,ret_2=1", ""};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        ck_assert_int_eq(icl_superposition_parse_mixture(f, bad[i], tasks, lambda, 4, &K), ICL_ERR_INVALID_ARG);
        printf("  \"%s\": %s\n", bad[i], icl_last_error());
    }
    icl_task_family_free(f);
}
END_TEST

START_TEST(test_bad_requests_rejected) {
    fixture x;
    setup(&x, "retrieval:A=8,L=4,tasks=3", 4, 1.0f);
    icl_superposition_options o;
    o = icl_superposition_options_default();
    o.n_prompts = 2;
    o.n_examples = 4;
    icl_rng rng;
    icl_rng_init(&rng, 1, "bad");
    icl_superposition_result r;
    int tasks[3] = {0, 1, 2}, dup[2] = {1, 1}, far[2] = {0, 7};
    double lambda[3] = {0.5, 0.25, 0.25}, short_sum[2] = {0.5, 0.4}, half[2] = {0.5, 0.5};
    ck_assert_int_eq(icl_superposition_run(x.m, x.f, tasks, lambda, 1, &o, &rng, &r), ICL_ERR_INVALID_ARG);
    printf("  one task: %s\n", icl_last_error());
    ck_assert_int_eq(icl_superposition_run(x.m, x.f, tasks, short_sum, 2, &o, &rng, &r), ICL_ERR_INVALID_ARG);
    printf("  sum: %s\n", icl_last_error());
    ck_assert_int_eq(icl_superposition_run(x.m, x.f, dup, half, 2, &o, &rng, &r), ICL_ERR_INVALID_ARG);
    ck_assert_int_eq(icl_superposition_run(x.m, x.f, far, half, 2, &o, &rng, &r), ICL_ERR_INVALID_ARG);
    printf("  task: %s\n", icl_last_error());
    o.n_examples = 9;
    ck_assert_int_eq(icl_superposition_run(x.m, x.f, tasks, lambda, 3, &o, &rng, &r), ICL_ERR_CONFIG);
    printf("  ctx: %s\n", icl_last_error());
    o.n_examples = 4;
    o.n_prompts = 0;
    ck_assert_int_eq(icl_superposition_run(x.m, x.f, tasks, lambda, 3, &o, &rng, &r), ICL_ERR_INVALID_ARG);
    o.n_prompts = 2;
    ck_assert_int_eq(icl_superposition_run(x.m, x.f, tasks, lambda, 3, NULL, &rng, &r), ICL_ERR_INVALID_ARG);

    icl_task_family *other;
    ck_assert_int_eq(icl_task_family_create(&other, "retrieval:A=12,L=4,tasks=3"), ICL_OK);
    ck_assert_int_eq(icl_superposition_run(x.m, other, tasks, lambda, 3, &o, &rng, &r), ICL_ERR_INVALID_ARG);
    printf("  vocabulary: %s\n", icl_last_error());
    icl_task_family_free(other);
    icl_task_family *vec;
    ck_assert_int_eq(icl_task_family_create(&vec, "basis_mixture_small"), ICL_OK);
    ck_assert_int_eq(icl_superposition_run(x.m, vec, tasks, half, 2, &o, &rng, &r), ICL_ERR_UNSUPPORTED);
    icl_task_family_free(vec);

    icl_task_batch tb = {0};
    icl_task_batch_options bo = icl_task_batch_options_default();
    bo.B = 2;
    bo.n_examples = 4;
    ck_assert_int_eq(icl_task_batch_generate(x.f, &bo, &rng, &tb), ICL_OK);
    double pk[2];
    uint8_t ex[2];
    icl_lens *lens;
    ck_assert_int_eq(icl_lens_create(x.m, &lens), ICL_OK);
    ck_assert_int_eq(icl_answer_kth_prob(x.m, &tb, 2, 4, lens, 3, pk, ex), ICL_ERR_INVALID_ARG);
    printf("  lens level: %s\n", icl_last_error());
    ck_assert_int_eq(icl_answer_kth_prob(x.m, &tb, 0, 4, NULL, -1, pk, ex), ICL_ERR_INVALID_ARG);
    ck_assert_int_eq(icl_answer_kth_prob(x.m, &tb, x.V + 1, 64, NULL, -1, pk, ex), ICL_ERR_INVALID_ARG);
    icl_lens_free(lens);
    icl_task_batch_free(&tb);
    teardown(&x);

    fixture y;
    setup(&y, "two_operand", 2, 1.0f);
    int ops[3] = {0, 1, 2};
    double third[3] = {1.0 / 3, 1.0 / 3, 1.0 / 3};
    o.n_examples = 2;
    o.beam = 2;
    ck_assert_int_eq(icl_superposition_run(y.m, y.f, ops, third, 3, &o, &rng, &r), ICL_ERR_INVALID_ARG);
    printf("  beam: %s\n", icl_last_error());
    teardown(&y);
}
END_TEST

int main(void) {
    Suite *s = suite_create("superposition");
    TCase *tc = tcase_create("superposition");
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, test_one_token_mixture_by_hand);
    tcase_add_test(tc, test_zero_proportion_task_is_scored);
    tcase_add_test(tc, test_three_token_mixture_by_hand);
    tcase_add_test(tc, test_beam_matches_enumeration_peaked);
    tcase_add_test(tc, test_beam_lower_bound_when_flat);
    tcase_add_test(tc, test_lens_last_level_matches_output);
    tcase_add_test(tc, test_parse_mixture);
    tcase_add_test(tc, test_bad_requests_rejected);
    suite_add_tcase(s, tc);
    return tu_run(s);
}
