/* Logit lens and head ablation: the lens at the last level is the model's own
 * output, every level reads the residual it claims to, zero ablation equals
 * zeroing the head's columns of attn.proj, mean ablation with a prompt's own
 * means is a bitwise no-op (token and vector models), and bad requests are
 * rejected. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "icl/icl.h"
#include "icl/lens.h"
#include "icl/readout.h"
#include "testutil.h"

typedef struct {
    icl_task_family *f;
    icl_task_batch tb;
    icl_model *m;
} fixture;

/* A tiny random model on `spec`, B prompts of n examples; tied or untied unembedding. */
static void setup(fixture *x, const char *spec, int B, int n, int tied) {
    memset(x, 0, sizeof *x);
    ck_assert_int_eq(icl_task_family_create(&x->f, spec), ICL_OK);
    icl_task_batch_options o = icl_task_batch_options_default();
    o.B = B;
    o.n_examples = n;
    icl_rng r;
    icl_rng_init(&r, 11, "lens-test");
    ck_assert_int_eq(icl_task_batch_generate(x->f, &o, &r, &x->tb), ICL_OK);
    x->m = tu_model((tu_model_shape){.n_layer = 2, .d_model = 24, .n_head = 3, .d_ff = 40, .ctx = x->tb.T + 4,
            .untied = !tied, .family = x->f}, 5);
}

static void teardown(fixture *x) {
    icl_model_free(x->m);
    icl_task_batch_free(&x->tb);
    icl_task_family_free(x->f);
}

static float *to_float(const double *d, size_t n) {
    float *f = tu_floats(n);
    for (size_t i = 0; i < n; i++) f[i] = (float)d[i];
    return f;
}

/* Lens at level L, at every position, against icl_model_probs. */
static void check_last_level(int tied) {
    fixture x;
    setup(&x, "retrieval:A=8,L=4,tasks=3,n=3", 3, 3, tied);
    int B = x.tb.B, T = x.tb.T, V = icl_model_config(x.m)->vocab_size, L = 2;
    ck_assert_int_eq(icl_model_forward(x.m, &x.tb.batch, NULL), ICL_OK);
    icl_lens *lens;
    ck_assert_int_eq(icl_lens_create(x.m, &lens), ICL_OK);
    ck_assert_int_eq(icl_lens_levels(lens), L + 1);
    int32_t *rows = tu_ints((size_t)B * T), *pos = tu_ints((size_t)B * T);
    for (int i = 0; i < B * T; i++) {
        rows[i] = i / T;
        pos[i] = i % T;
    }
    double *lp = malloc((size_t)B * T * V * sizeof *lp);
    float *want = tu_floats((size_t)B * T * V);
    ck_assert_int_eq(icl_lens_read(lens, x.m, L, rows, pos, B * T, lp), ICL_OK);
    ck_assert_int_eq(icl_model_probs(x.m, want, (size_t)B * T * V), ICL_OK);
    float *got = to_float(lp, (size_t)B * T * V);
    TU_ASSERT_CLOSE(tied ? "lens level L vs output probs (tied)" : "lens level L vs output probs (untied)", got, want,
                    (size_t)B * T * V, 1e-6, 0.0);
    free(rows);
    free(pos);
    free(lp);
    free(want);
    free(got);
    icl_lens_free(lens);
    teardown(&x);
}

START_TEST(test_last_level_is_output_tied) { check_last_level(1); }
END_TEST

START_TEST(test_last_level_is_output_untied) { check_last_level(0); }
END_TEST

/* Level l reads the embedding (l = 0) or resid_post of block l-1, bit for bit. */
START_TEST(test_levels_read_their_residual) {
    fixture x;
    setup(&x, "retrieval:A=8,L=4,tasks=3,n=3", 2, 3, 1);
    int B = 2, T = x.tb.T, C = 24, V = icl_model_config(x.m)->vocab_size;
    ck_assert_int_eq(icl_model_forward(x.m, &x.tb.batch, NULL), ICL_OK);
    icl_lens *lens;
    ck_assert_int_eq(icl_lens_create(x.m, &lens), ICL_OK);
    float *h = tu_floats((size_t)B * T * C);
    int32_t rows[2] = {0, 1}, pos[2] = {x.tb.query_pos[0], 3};
    double got[2 * 64], want[2 * 64];
    for (int l = 0; l <= 2; l++) {
        if (l == 0)
            ck_assert_int_eq(icl_model_point_copy(x.m, ICL_POINT_EMBED, -1, h, (size_t)B * T * C), ICL_OK);
        else
            ck_assert_int_eq(icl_model_point_copy(x.m, ICL_POINT_RESID_POST, l - 1, h, (size_t)B * T * C), ICL_OK);
        float pick[2 * 24];
        for (int i = 0; i < 2; i++) memcpy(pick + i * C, h + ((size_t)rows[i] * T + pos[i]) * C, C * sizeof(float));
        ck_assert_int_eq(icl_lens_apply(lens, pick, 2, want), ICL_OK);
        ck_assert_int_eq(icl_lens_read(lens, x.m, l, rows, pos, 2, got), ICL_OK);
        ck_assert(memcmp(got, want, 2 * V * sizeof(double)) == 0);
        double sum = 0;
        for (int v = 0; v < V; v++) sum += got[v];
        ck_assert(fabs(sum - 1.0) < 1e-12);
    }
    printf("  levels 0..2 read embed / resid_post bit for bit\n");
    free(h);
    icl_lens_free(lens);
    teardown(&x);
}
END_TEST

/* icl_lens_answer_probs at level L equals icl_answer_probs, for one- and three-token answers. */
static void check_answer_probs(const char *spec, int n) {
    fixture x;
    setup(&x, spec, 3, n, 1);
    int B = 3, A = x.tb.prompts[0].answer_len, n_cand = 2, L = 2;
    int V = icl_model_config(x.m)->vocab_size;
    int32_t *ans = tu_ints((size_t)B * n_cand * A);
    icl_rng r;
    icl_rng_init(&r, 3, "cands");
    tu_fill_tokens(ans, (size_t)B * n_cand * A, V, &r);
    double want[6], *lp = malloc((size_t)(L + 1) * B * n_cand * sizeof *lp);
    ck_assert_int_eq(icl_answer_probs(x.m, &x.tb, ans, n_cand, NULL, 0, want, NULL), ICL_OK);
    icl_lens *lens;
    ck_assert_int_eq(icl_lens_create(x.m, &lens), ICL_OK);
    ck_assert_int_eq(icl_lens_answer_probs(x.m, lens, &x.tb, ans, n_cand, NULL, 0, lp), ICL_OK);
    float *g = to_float(lp + (size_t)L * B * n_cand, (size_t)B * n_cand), *w = to_float(want, (size_t)B * n_cand);
    char label[96];
    snprintf(label, sizeof label, "lens answer probs at level L vs icl_answer_probs (A=%d)", A);
    TU_ASSERT_CLOSE(label, g, w, (size_t)B * n_cand, 1e-9, 1e-5);
    free(g);
    free(w);
    free(lp);
    free(ans);
    icl_lens_free(lens);
    teardown(&x);
}

START_TEST(test_lens_answer_probs_one_token) { check_answer_probs("retrieval:A=8,L=4,tasks=3,n=3", 3); }
END_TEST

START_TEST(test_lens_answer_probs_multi_token) { check_answer_probs("two_operand:n=2", 2); }
END_TEST

/* Own-answer probability and greedy correctness by hand from icl_model_probs. */
START_TEST(test_answer_self_probs_manual) {
    fixture x;
    setup(&x, "two_operand:n=2", 4, 2, 1);
    int B = 4, T = x.tb.T, V = icl_model_config(x.m)->vocab_size, A = 3;
    double p[4];
    uint8_t ok[4];
    ck_assert_int_eq(icl_answer_self_probs(x.m, &x.tb, NULL, 0, p, ok), ICL_OK);
    float *probs = tu_floats((size_t)B * T * V);
    ck_assert_int_eq(icl_model_probs(x.m, probs, (size_t)B * T * V), ICL_OK);
    float got[4], want[4];
    for (int b = 0; b < B; b++) {
        int q = x.tb.query_pos[b], all = 1;
        double prod = 1;
        for (int j = 0; j < A; j++) {
            const float *row = probs + ((size_t)b * T + q + j) * V;
            int tok = x.tb.tokens[(size_t)b * T + q + 1 + j], best = 0;
            for (int v = 1; v < V; v++)
                if (row[v] > row[best]) best = v;
            prod *= row[tok];
            all &= best == tok;
        }
        got[b] = (float)p[b];
        want[b] = (float)prod;
        ck_assert_int_eq(ok[b], all);
    }
    TU_ASSERT_CLOSE("own answer probability vs manual product", got, want, 4, 0.0, 1e-6);
    free(probs);
    teardown(&x);
}
END_TEST

/* ZERO ablation of (layer 1, head 1) vs zeroing that head's input columns of attn.proj. */
START_TEST(test_zero_ablation_equals_weight_edit) {
    fixture x;
    setup(&x, "retrieval:A=8,L=4,tasks=3,n=3", 5, 3, 1);
    int B = 5, C = 24, HS = 8, layer = 1, head = 1;
    double base[5], abl[5], edit[5];
    uint8_t ok_abl[5], ok_edit[5];
    ck_assert_int_eq(icl_answer_self_probs(x.m, &x.tb, NULL, 0, base, NULL), ICL_OK);
    ck_assert_int_eq(icl_head_ablation(x.m, &x.tb, layer, head, ICL_ABLATE_ZERO, NULL, abl, ok_abl), ICL_OK);
    size_t P = icl_model_num_params(x.m);
    float *p = tu_floats(P);
    ck_assert_int_eq(icl_model_get_params(x.m, p, P), ICL_OK);
    const icl_param_info *t = icl_model_tensor(x.m, icl_model_find_tensor(x.m, "blocks.1.attn.proj.weight"));
    for (int o = 0; o < C; o++)
        for (int i = head * HS; i < (head + 1) * HS; i++) p[t->offset + (size_t)o * C + i] = 0.0f;
    ck_assert_int_eq(icl_model_set_params(x.m, p, P), ICL_OK);
    ck_assert_int_eq(icl_answer_self_probs(x.m, &x.tb, NULL, 0, edit, ok_edit), ICL_OK);
    float g[5], w[5];
    double moved = 0;
    for (int b = 0; b < B; b++) {
        g[b] = (float)abl[b];
        w[b] = (float)edit[b];
        moved += fabs(abl[b] - base[b]);
        ck_assert_int_eq(ok_abl[b], ok_edit[b]);
    }
    TU_ASSERT_CLOSE("zero ablation vs zeroed attn.proj columns", g, w, 5, 1e-9, 1e-5);
    printf("  ablation moved the answer probabilities by %.3g in total\n", moved);
    ck_assert(moved > 1e-6);
    free(p);
    teardown(&x);
}
END_TEST

/* Means over prompts of different lengths count each prompt at its own positions. */
START_TEST(test_head_means_by_hand) {
    fixture x;
    setup(&x, "retrieval:A=8,L=4,tasks=3,n=3", 1, 3, 1);
    icl_prompt a = {0}, b = {0};
    icl_rng r;
    icl_rng_init(&r, 8, "means");
    ck_assert_int_eq(icl_task_generate(x.f, 0, 2, NULL, &r, &a), ICL_OK);
    ck_assert_int_eq(icl_task_generate(x.f, 1, 3, NULL, &r, &b), ICL_OK);
    const icl_prompt *two[2] = {&a, &b};
    icl_task_batch tb = {0};
    ck_assert_int_eq(icl_task_batch_pack(&tb, two, 2, 0), ICL_OK);
    int T = tb.T, C = 24, HS = 8, layer = 1, head = 2, short_len = a.T;
    icl_head_means *hm;
    ck_assert_int_eq(icl_head_means_create(x.m, T, &hm), ICL_OK);
    float *mean = tu_floats((size_t)T * HS);
    ck_assert_int_eq(icl_head_means_get(hm, layer, head, mean), ICL_ERR_STATE);
    ck_assert_int_eq(icl_head_means_add(hm, x.m, &tb), ICL_OK);
    float *out = tu_floats((size_t)2 * T * C), *want = tu_floats((size_t)T * HS);
    ck_assert_int_eq(icl_model_point_copy(x.m, ICL_POINT_HEAD_OUT, layer, out, (size_t)2 * T * C), ICL_OK);
    for (int t = 0; t < T; t++)
        for (int i = 0; i < HS; i++) {
            float vb = out[((size_t)T + t) * C + head * HS + i];
            want[t * HS + i] = t < short_len ? (float)(((double)out[(size_t)t * C + head * HS + i] + vb) / 2) : vb;
        }
    ck_assert_int_eq(icl_head_means_get(hm, layer, head, mean), ICL_OK);
    TU_ASSERT_CLOSE("head means vs manual average (padded batch)", mean, want, (size_t)T * HS, 0.0, 1e-6);
    free(mean);
    free(out);
    free(want);
    icl_head_means_free(hm);
    icl_task_batch_free(&tb);
    icl_prompt_free(&a);
    icl_prompt_free(&b);
    teardown(&x);
}
END_TEST

/* MEAN ablation with the means of the single prompt itself changes nothing, bit
 * for bit; with the means of two prompts it does change the answer probabilities. */
START_TEST(test_mean_ablation_own_prompt_is_noop) {
    fixture x;
    setup(&x, "retrieval:A=8,L=4,tasks=3,n=3", 2, 3, 1);
    const icl_prompt *first[1] = {&x.tb.prompts[0]};
    icl_task_batch one = {0};
    ck_assert_int_eq(icl_task_batch_pack(&one, first, 1, 0), ICL_OK);
    icl_head_means *own, *both;
    ck_assert_int_eq(icl_head_means_create(x.m, one.T, &own), ICL_OK);
    ck_assert_int_eq(icl_head_means_add(own, x.m, &one), ICL_OK);
    ck_assert_int_eq(icl_head_means_create(x.m, x.tb.T, &both), ICL_OK);
    ck_assert_int_eq(icl_head_means_add(both, x.m, &x.tb), ICL_OK);
    double base, p;
    uint8_t ok_base, ok;
    ck_assert_int_eq(icl_answer_self_probs(x.m, &one, NULL, 0, &base, &ok_base), ICL_OK);
    double moved = 0;
    for (int l = 0; l < 2; l++)
        for (int h = 0; h < 3; h++) {
            ck_assert_int_eq(icl_head_ablation(x.m, &one, l, h, ICL_ABLATE_MEAN, own, &p, &ok), ICL_OK);
            ck_assert(memcmp(&p, &base, sizeof p) == 0);
            ck_assert_int_eq(ok, ok_base);
            ck_assert_int_eq(icl_head_ablation(x.m, &one, l, h, ICL_ABLATE_MEAN, both, &p, &ok), ICL_OK);
            moved += fabs(p - base);
        }
    printf("  own means: 6 heads bit-identical; two-prompt means moved P by %.3g in total\n", moved);
    ck_assert(moved > 1e-6);
    icl_head_means_free(own);
    icl_head_means_free(both);
    icl_task_batch_free(&one);
    teardown(&x);
}
END_TEST

/* Vector mode: query squared errors by hand from the outputs, and ZERO
 * ablation against the weight edit (Han et al.'s head pruning). */
START_TEST(test_vector_errors_and_zero_ablation) {
    fixture x;
    setup(&x, "basis_mixture_small:K=4", 3, 4, 1);
    int B = 3, T = x.tb.T, C = 24, HS = 8, head = 2;
    double err[3], abl[3], edit[3];
    ck_assert_int_eq(icl_query_sq_errors(x.m, &x.tb, NULL, 0, err), ICL_OK);
    float *out = tu_floats((size_t)B * T);
    ck_assert_int_eq(icl_model_outputs(x.m, out, (size_t)B * T), ICL_OK);
    float got[3], want[3];
    for (int b = 0; b < B; b++) {
        size_t at = (size_t)b * T + x.tb.query_pos[b];
        double e = (double)out[at] - x.tb.target_values[at];
        got[b] = (float)err[b];
        want[b] = (float)(e * e);
    }
    TU_ASSERT_CLOSE("query squared error vs manual", got, want, 3, 0.0, 1e-6);
    ck_assert_int_eq(icl_head_ablation_errors(x.m, &x.tb, 0, head, ICL_ABLATE_ZERO, NULL, abl), ICL_OK);
    size_t P = icl_model_num_params(x.m);
    float *p = tu_floats(P);
    ck_assert_int_eq(icl_model_get_params(x.m, p, P), ICL_OK);
    const icl_param_info *t = icl_model_tensor(x.m, icl_model_find_tensor(x.m, "blocks.0.attn.proj.weight"));
    for (int o = 0; o < C; o++)
        for (int i = head * HS; i < (head + 1) * HS; i++) p[t->offset + (size_t)o * C + i] = 0.0f;
    ck_assert_int_eq(icl_model_set_params(x.m, p, P), ICL_OK);
    ck_assert_int_eq(icl_query_sq_errors(x.m, &x.tb, NULL, 0, edit), ICL_OK);
    for (int b = 0; b < B; b++) {
        got[b] = (float)abl[b];
        want[b] = (float)edit[b];
    }
    TU_ASSERT_CLOSE("vector zero ablation vs zeroed attn.proj columns", got, want, 3, 1e-9, 1e-5);
    ck_assert_int_eq(icl_head_ablation(x.m, &x.tb, 0, head, ICL_ABLATE_ZERO, NULL, err, NULL), ICL_ERR_INVALID_ARG);
    printf("  token readout on a vector model: %s\n", icl_last_error());
    free(out);
    free(p);
    teardown(&x);
}
END_TEST

START_TEST(test_bad_requests_rejected) {
    fixture x;
    setup(&x, "retrieval:A=8,L=4,tasks=3,n=3", 2, 3, 1);
    double p[2 * 32];
    int32_t rows[1] = {0}, pos[1] = {0};
    icl_head_means *hm;
    ck_assert_int_eq(icl_head_means_create(x.m, x.tb.T, &hm), ICL_OK);
    ck_assert_int_eq(icl_head_ablation(x.m, &x.tb, 2, 0, ICL_ABLATE_ZERO, NULL, p, NULL), ICL_ERR_INVALID_ARG);
    printf("  layer: %s\n", icl_last_error());
    ck_assert_int_eq(icl_head_ablation(x.m, &x.tb, -1, 0, ICL_ABLATE_ZERO, NULL, p, NULL), ICL_ERR_INVALID_ARG);
    ck_assert_int_eq(icl_head_ablation(x.m, &x.tb, 0, 3, ICL_ABLATE_ZERO, NULL, p, NULL), ICL_ERR_INVALID_ARG);
    printf("  head: %s\n", icl_last_error());
    ck_assert_int_eq(icl_head_ablation(x.m, &x.tb, 0, 0, (icl_ablation_mode)7, NULL, p, NULL), ICL_ERR_INVALID_ARG);
    ck_assert_int_eq(icl_head_ablation(x.m, &x.tb, 0, 0, ICL_ABLATE_MEAN, NULL, p, NULL), ICL_ERR_INVALID_ARG);
    ck_assert_int_eq(icl_head_ablation(x.m, &x.tb, 0, 0, ICL_ABLATE_MEAN, hm, p, NULL), ICL_ERR_STATE);
    printf("  empty means: %s\n", icl_last_error());
    ck_assert_int_eq(icl_head_means_get(hm, 0, 5, (float *)p), ICL_ERR_INVALID_ARG);
    icl_head_means *big;
    ck_assert_int_eq(icl_head_means_create(x.m, x.tb.T + 100, &big), ICL_ERR_INVALID_ARG);
    ck_assert_ptr_null(icl_ablation_mode_name((icl_ablation_mode)9));

    icl_lens *lens;
    ck_assert_int_eq(icl_lens_create(x.m, &lens), ICL_OK);
    ck_assert_int_eq(icl_lens_read(lens, x.m, 0, rows, pos, 1, p), ICL_ERR_STATE);
    ck_assert_int_eq(icl_model_forward(x.m, &x.tb.batch, NULL), ICL_OK);
    ck_assert_int_eq(icl_lens_read(lens, x.m, 3, rows, pos, 1, p), ICL_ERR_INVALID_ARG);
    printf("  level: %s\n", icl_last_error());
    pos[0] = x.tb.T;
    ck_assert_int_eq(icl_lens_read(lens, x.m, 0, rows, pos, 1, p), ICL_ERR_INVALID_ARG);
    int32_t ans[2] = {0, 99};
    ck_assert_int_eq(icl_lens_answer_probs(x.m, lens, &x.tb, ans, 1, NULL, 0, p), ICL_ERR_INVALID_ARG);

    fixture other;
    setup(&other, "retrieval:A=10,L=4,tasks=3,n=3", 1, 3, 1);
    ck_assert_int_eq(icl_lens_answer_probs(other.m, lens, &other.tb, ans, 1, NULL, 0, p), ICL_ERR_INVALID_ARG);
    printf("  other model: %s\n", icl_last_error());
    teardown(&other);

    icl_model *vm = tu_model((tu_model_shape){.n_layer = 1, .d_model = 8, .n_head = 2, .ctx = 8, .d_in = 3,
            .d_out = 1}, 1);
    icl_lens *none;
    ck_assert_int_eq(icl_lens_create(vm, &none), ICL_ERR_UNSUPPORTED);
    icl_model_free(vm);
    icl_lens_free(lens);
    icl_head_means_free(hm);
    teardown(&x);
}
END_TEST

int main(void) {
    Suite *s = suite_create("lens");
    TCase *tc = tcase_create("lens+ablation");
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, test_last_level_is_output_tied);
    tcase_add_test(tc, test_last_level_is_output_untied);
    tcase_add_test(tc, test_levels_read_their_residual);
    tcase_add_test(tc, test_lens_answer_probs_one_token);
    tcase_add_test(tc, test_lens_answer_probs_multi_token);
    tcase_add_test(tc, test_answer_self_probs_manual);
    tcase_add_test(tc, test_zero_ablation_equals_weight_edit);
    tcase_add_test(tc, test_head_means_by_hand);
    tcase_add_test(tc, test_mean_ablation_own_prompt_is_noop);
    tcase_add_test(tc, test_vector_errors_and_zero_ablation);
    tcase_add_test(tc, test_bad_requests_rejected);
    suite_add_tcase(s, tc);
    return tu_run(s);
}
