/* Capture and intervention tests: captures equal the stored activations,
 * self-patching is a bitwise no-op, interventions equal hand-made edits of
 * the weights or a manual computation, and bad requests are rejected. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "icl/icl.h"
#include "icl/probe.h"
#include "icl/task.h"
#include "testutil.h"

typedef struct {
    icl_task_family *f;
    icl_task_batch tb;
    icl_model *m;
    icl_row_labels labels;
} fixture;

static void setup(fixture *x, int B) {
    memset(x, 0, sizeof *x);
    ck_assert_int_eq(icl_task_family_create(&x->f, "retrieval:A=8,L=4,n=3"), ICL_OK);
    icl_task_batch_options o = icl_task_batch_options_default();
    o.B = B;
    icl_rng r;
    icl_rng_init(&r, 4, "probe-test");
    ck_assert_int_eq(icl_task_batch_generate(x->f, &o, &r, &x->tb), ICL_OK);
    x->m = tu_model((tu_model_shape){.n_layer = 2, .d_model = 24, .n_head = 3, .d_ff = 40, .ctx = x->tb.T,
            .family = x->f}, 9);
    x->labels = (icl_row_labels){x->tb.roles, x->tb.prompt_len};
}

static void teardown(fixture *x) {
    icl_model_free(x->m);
    icl_task_batch_free(&x->tb);
    icl_task_family_free(x->f);
}

static float *logits_of(fixture *x) {
    size_t n = (size_t)x->tb.B * x->tb.T * icl_model_config(x->m)->vocab_size;
    float *y = tu_floats(n);
    ck_assert_int_eq(icl_model_outputs(x->m, y, n), ICL_OK);
    return y;
}

START_TEST(test_point_names) {
    icl_point p;
    int l;
    ck_assert_int_eq(icl_point_parse("blocks.1.hook_resid_post", &p, &l), ICL_OK);
    ck_assert_int_eq(p, ICL_POINT_RESID_POST);
    ck_assert_int_eq(l, 1);
    ck_assert_int_eq(icl_point_parse("blocks.12.attn.hook_pattern", &p, &l), ICL_OK);
    ck_assert_int_eq(p, ICL_POINT_ATTN_PROBS);
    ck_assert_int_eq(l, 12);
    ck_assert_int_eq(icl_point_parse("mlp_post", &p, &l), ICL_OK);
    ck_assert_int_eq(p, ICL_POINT_MLP_POST);
    ck_assert_int_eq(l, -1);
    ck_assert_int_eq(icl_point_parse("hook_embed", &p, &l), ICL_OK);
    ck_assert_int_eq(p, ICL_POINT_EMBED);
    ck_assert_int_eq(icl_point_parse("blocks.x.hook_resid_post", &p, &l), ICL_ERR_INVALID_ARG);
    ck_assert_int_eq(icl_point_parse("resid_everything", &p, &l), ICL_ERR_INVALID_ARG);
    printf("  %s\n", icl_last_error());
}
END_TEST

static void count_line(void *user, const char *line) {
    (void)line;
    (*(int *)user)++;
}

START_TEST(test_catalogue) {
    fixture x;
    setup(&x, 2);
    int lines = 0;
    ck_assert_int_eq(icl_point_catalogue(x.m, 2, x.tb.T, count_line, &lines), ICL_OK);
    ck_assert_int_eq(lines, ICL_POINT_COUNT + 1);
    teardown(&x);
}
END_TEST

/* Captured records equal the dense copy of the stored activation at the selected positions. */
START_TEST(test_capture_matches_activations) {
    fixture x;
    setup(&x, 5);
    ck_assert_int_eq(icl_model_forward(x.m, &x.tb.batch, NULL), ICL_OK);
    icl_capture_plan *plan;
    ck_assert_int_eq(icl_capture_plan_create(&plan), ICL_OK);
    ck_assert_int_eq(icl_capture_plan_add(plan, ICL_POINT_RESID_POST, -1, -1, icl_pos_role(ICL_ROLE_QUERY_SEP), NULL),
                     ICL_OK);
    ck_assert_int_eq(icl_capture_plan_add(plan, ICL_POINT_HEAD_OUT, 1, 2, icl_pos_role(ICL_ROLE_EX_ANSWER), NULL),
                     ICL_OK);
    ck_assert_int_eq(icl_capture_plan_add(plan, ICL_POINT_ATTN_PROBS, 0, -1, icl_pos_last(), NULL), ICL_OK);
    size_t bytes;
    ck_assert_int_eq(icl_capture_plan_bytes(plan, x.m, 5, x.tb.T, &bytes), ICL_OK);
    icl_capture_set set;
    ck_assert_int_eq(icl_capture_collect(plan, x.m, &x.labels, &set), ICL_OK);
    ck_assert_int_eq(set.n, 2 + 1 + 1); /* resid_post expands to both layers */
    int B = 5, T = x.tb.T, C = 24, NH = 3, HS = 8;
    size_t used = 0;
    for (int i = 0; i < set.n; i++) used += set.items[i].n * (set.items[i].width * sizeof(float) + 8);
    printf("  plan estimate %zu bytes, used %zu\n", bytes, used);
    ck_assert_uint_ge(bytes, used);

    float *dense = tu_floats((size_t)B * T * C), *probs = tu_floats((size_t)B * NH * T * T);
    const icl_capture *c = icl_capture_set_find(&set, ICL_POINT_RESID_POST, 1);
    ck_assert_ptr_nonnull(c);
    ck_assert_uint_eq(c->n, (size_t)B); /* one query separator per prompt */
    ck_assert_int_eq(icl_model_point_copy(x.m, ICL_POINT_RESID_POST, 1, dense, (size_t)B * T * C), ICL_OK);
    for (size_t i = 0; i < c->n; i++) {
        ck_assert_int_eq(x.tb.roles[c->rows[i] * T + c->positions[i]], ICL_ROLE_QUERY_SEP);
        ck_assert(memcmp(c->data + i * C, dense + ((size_t)c->rows[i] * T + c->positions[i]) * C, C * sizeof(float)) == 0);
    }
    c = icl_capture_set_find(&set, ICL_POINT_HEAD_OUT, 1);
    ck_assert_uint_eq(c->n, (size_t)B * 3); /* 3 example answers per prompt */
    ck_assert_int_eq(icl_model_point_copy(x.m, ICL_POINT_HEAD_OUT, 1, dense, (size_t)B * T * C), ICL_OK);
    for (size_t i = 0; i < c->n; i++)
        ck_assert(memcmp(c->data + i * HS, dense + ((size_t)c->rows[i] * T + c->positions[i]) * C + 2 * HS,
                         HS * sizeof(float)) == 0);
    c = icl_capture_set_find(&set, ICL_POINT_ATTN_PROBS, 0);
    ck_assert_int_eq(c->width, NH * T);
    ck_assert_int_eq(icl_model_point_copy(x.m, ICL_POINT_ATTN_PROBS, 0, probs, (size_t)B * NH * T * T), ICL_OK);
    for (size_t i = 0; i < c->n; i++)
        for (int h = 0; h < NH; h++)
            ck_assert(memcmp(c->data + i * NH * T + h * T,
                             probs + (((size_t)c->rows[i] * NH + h) * T + c->positions[i]) * T, T * sizeof(float)) == 0);
    free(dense);
    free(probs);
    icl_capture_set_free(&set);
    icl_capture_plan_free(plan);
    teardown(&x);
}
END_TEST

/* Patching every point of every layer with the run's own activations (resampled
 * from a capture of the same run) leaves the logits bit-identical. */
START_TEST(test_self_patch_is_bitwise_noop) {
    fixture x;
    setup(&x, 3);
    ck_assert_int_eq(icl_model_forward(x.m, &x.tb.batch, NULL), ICL_OK);
    float *clean = logits_of(&x);
    icl_capture_plan *plan;
    icl_capture_plan_create(&plan);
    for (int p = 0; p < ICL_POINT_COUNT; p++)
        ck_assert_int_eq(icl_capture_plan_add(plan, p, -1, -1, icl_pos_all(), NULL), ICL_OK);
    icl_capture_set set;
    icl_row_labels dense_rows = {x.tb.roles, NULL}; /* every position, padded or not */
    ck_assert_int_eq(icl_capture_collect(plan, x.m, &dense_rows, &set), ICL_OK);
    icl_intervention *iv = calloc((size_t)set.n, sizeof *iv);
    for (int i = 0; i < set.n; i++) {
        iv[i] = icl_intervention_make(set.items[i].point, set.items[i].layer, ICL_IV_RESAMPLE);
        iv[i].source = set.items[i].data;
    }
    ck_assert_int_eq(icl_forward_with(x.m, &x.tb.batch, &dense_rows, iv, set.n, NULL), ICL_OK);
    float *patched = logits_of(&x);
    size_t n = (size_t)3 * x.tb.T * icl_model_config(x.m)->vocab_size;
    ck_assert(memcmp(clean, patched, n * sizeof(float)) == 0);
    printf("  %d captures patched back: logits bit-identical\n", set.n);
    /* patching row 0 with row 1's resid_post at the query separator changes row 0 only */
    icl_intervention cross = icl_intervention_make(ICL_POINT_RESID_POST, 0, ICL_IV_RESAMPLE);
    cross.row = 0;
    cross.source_row = 1;
    cross.pos = icl_pos_index(1);
    ck_assert_int_eq(icl_forward_with(x.m, &x.tb.batch, &x.labels, &cross, 1, NULL), ICL_OK);
    float *crossed = logits_of(&x);
    size_t row = n / 3;
    ck_assert(memcmp(clean + row, crossed + row, 2 * row * sizeof(float)) == 0);
    ck_assert(memcmp(clean, crossed, row * sizeof(float)) != 0);
    free(iv);
    free(clean);
    free(patched);
    free(crossed);
    icl_capture_set_free(&set);
    icl_capture_plan_free(plan);
    teardown(&x);
}
END_TEST

/* Zeroing head h's output equals zeroing the columns of the output projection
 * that read it; scaling by 0 equals zeroing. */
START_TEST(test_zero_head_matches_weight_edit) {
    fixture x;
    setup(&x, 2);
    int layer = 1, head = 1, C = 24, HS = 8;
    icl_intervention iv = icl_intervention_make(ICL_POINT_HEAD_OUT, layer, ICL_IV_ZERO);
    iv.head = head;
    ck_assert_int_eq(icl_forward_with(x.m, &x.tb.batch, &x.labels, &iv, 1, NULL), ICL_OK);
    float *zeroed = logits_of(&x);
    iv.op = ICL_IV_SCALE;
    iv.alpha = 0.0f;
    ck_assert_int_eq(icl_forward_with(x.m, &x.tb.batch, &x.labels, &iv, 1, NULL), ICL_OK);
    float *scaled = logits_of(&x);
    size_t P = icl_model_num_params(x.m), n = (size_t)2 * x.tb.T * icl_model_config(x.m)->vocab_size;
    float *p = tu_floats(P);
    icl_model_get_params(x.m, p, P);
    const icl_param_info *t = icl_model_tensor(x.m, icl_model_find_tensor(x.m, "blocks.1.attn.proj.weight"));
    for (int o = 0; o < C; o++)
        for (int i = head * HS; i < (head + 1) * HS; i++) p[t->offset + (size_t)o * C + i] = 0.0f;
    icl_model_set_params(x.m, p, P);
    ck_assert_int_eq(icl_model_forward(x.m, &x.tb.batch, NULL), ICL_OK);
    float *edited = logits_of(&x);
    TU_ASSERT_CLOSE("zero head vs zeroed proj columns", zeroed, edited, n, 1e-5, 1e-5);
    ck_assert(memcmp(zeroed, scaled, n * sizeof(float)) == 0);
    free(p);
    free(zeroed);
    free(scaled);
    free(edited);
    teardown(&x);
}
END_TEST

/* SET at the last block's resid_post: the logits there are ln_f(v) . tok_embed^T,
 * computed here by hand in double; ADD twice composes to ADD of the sum. */
START_TEST(test_set_and_add_match_manual_computation) {
    fixture x;
    setup(&x, 2);
    int C = 24, V = icl_model_config(x.m)->vocab_size, T = x.tb.T, t = 5;
    float v[24], w1[24], w2[24], sum[24];
    icl_rng r;
    icl_rng_init(&r, 2, "vec");
    tu_fill_uniform(v, C, 2.0f, &r);
    tu_fill_uniform(w1, C, 1.0f, &r);
    tu_fill_uniform(w2, C, 1.0f, &r);
    for (int i = 0; i < C; i++) sum[i] = w1[i] + w2[i];
    icl_intervention iv = icl_intervention_make(ICL_POINT_RESID_POST, 1, ICL_IV_SET);
    iv.vector = v;
    iv.row = 1;
    iv.pos = icl_pos_index(t);
    ck_assert_int_eq(icl_forward_with(x.m, &x.tb.batch, &x.labels, &iv, 1, NULL), ICL_OK);
    float *got = logits_of(&x);
    size_t P = icl_model_num_params(x.m);
    float *p = tu_floats(P);
    icl_model_get_params(x.m, p, P);
    const float *g = p + icl_model_tensor(x.m, icl_model_find_tensor(x.m, "ln_f.weight"))->offset;
    const float *bias = p + icl_model_tensor(x.m, icl_model_find_tensor(x.m, "ln_f.bias"))->offset;
    const float *emb = p + icl_model_tensor(x.m, icl_model_find_tensor(x.m, "tok_embed.weight"))->offset;
    double mean = 0, var = 0, ln[24];
    for (int i = 0; i < C; i++) mean += v[i];
    mean /= C;
    for (int i = 0; i < C; i++) var += (v[i] - mean) * (v[i] - mean);
    var /= C;
    for (int i = 0; i < C; i++) ln[i] = (v[i] - mean) / sqrt(var + 1e-5) * g[i] + bias[i];
    float want[64];
    for (int k = 0; k < V; k++) {
        double s = 0;
        for (int i = 0; i < C; i++) s += ln[i] * emb[(size_t)k * C + i];
        want[k] = (float)s;
    }
    TU_ASSERT_CLOSE("logits after SET vs manual", got + ((size_t)1 * T + t) * V, want, V, 1e-5, 1e-4);

    icl_intervention two[2] = {icl_intervention_make(ICL_POINT_RESID_MID, 0, ICL_IV_ADD),
                               icl_intervention_make(ICL_POINT_RESID_MID, 0, ICL_IV_ADD)};
    two[0].vector = w1;
    two[1].vector = w2;
    icl_intervention one = icl_intervention_make(ICL_POINT_RESID_MID, 0, ICL_IV_ADD);
    one.vector = sum;
    ck_assert_int_eq(icl_forward_with(x.m, &x.tb.batch, &x.labels, two, 2, NULL), ICL_OK);
    float *composed = logits_of(&x);
    ck_assert_int_eq(icl_forward_with(x.m, &x.tb.batch, &x.labels, &one, 1, NULL), ICL_OK);
    float *single = logits_of(&x);
    TU_ASSERT_CLOSE("ADD w1 then ADD w2 vs ADD (w1+w2)", composed, single, (size_t)2 * T * V, 1e-5, 1e-5);
    free(p);
    free(got);
    free(composed);
    free(single);
    teardown(&x);
}
END_TEST

START_TEST(test_bad_requests_rejected) {
    fixture x;
    setup(&x, 2);
    float v[24] = {0};
    icl_intervention iv = icl_intervention_make(ICL_POINT_RESID_POST, 2, ICL_IV_ZERO);
    ck_assert_int_eq(icl_forward_with(x.m, &x.tb.batch, &x.labels, &iv, 1, NULL), ICL_ERR_INVALID_ARG);
    printf("  layer: %s\n", icl_last_error());
    iv.layer = 0;
    iv.pos = icl_pos_index(x.tb.T);
    ck_assert_int_eq(icl_forward_with(x.m, &x.tb.batch, &x.labels, &iv, 1, NULL), ICL_ERR_INVALID_ARG);
    printf("  position: %s\n", icl_last_error());
    iv.pos = icl_pos_all();
    iv.head = 0;
    ck_assert_int_eq(icl_forward_with(x.m, &x.tb.batch, &x.labels, &iv, 1, NULL), ICL_ERR_INVALID_ARG);
    printf("  head: %s\n", icl_last_error());
    iv = icl_intervention_make(ICL_POINT_LN1, 0, ICL_IV_SET);
    ck_assert_int_eq(icl_forward_with(x.m, &x.tb.batch, &x.labels, &iv, 1, NULL), ICL_ERR_INVALID_ARG);
    iv.vector = v;
    iv.row = 5;
    ck_assert_int_eq(icl_forward_with(x.m, &x.tb.batch, &x.labels, &iv, 1, NULL), ICL_ERR_INVALID_ARG);
    iv.row = 0;
    iv.pos = icl_pos_role(ICL_ROLE_QUERY_SEP);
    ck_assert_int_eq(icl_forward_with(x.m, &x.tb.batch, NULL, &iv, 1, NULL), ICL_ERR_INVALID_ARG);
    iv.point = ICL_POINT_COUNT;
    ck_assert_int_eq(icl_forward_with(x.m, &x.tb.batch, &x.labels, &iv, 1, NULL), ICL_ERR_INVALID_ARG);
    icl_capture_plan *plan;
    icl_capture_plan_create(&plan);
    ck_assert_int_eq(icl_capture_plan_add(plan, ICL_POINT_LN1, 0, 1, icl_pos_all(), NULL), ICL_ERR_INVALID_ARG);
    ck_assert_int_eq(icl_capture_plan_add(plan, ICL_POINT_LN1, 7, -1, icl_pos_all(), NULL), ICL_OK);
    icl_capture_set set;
    ck_assert_int_eq(icl_model_forward(x.m, &x.tb.batch, NULL), ICL_OK);
    ck_assert_int_eq(icl_capture_collect(plan, x.m, &x.labels, &set), ICL_ERR_INVALID_ARG);
    printf("  capture layer: %s\n", icl_last_error());
    icl_capture_plan_free(plan);
    teardown(&x);
}
END_TEST

int main(void) {
    Suite *s = suite_create("probe");
    TCase *tc = tcase_create("capture+intervention");
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, test_point_names);
    tcase_add_test(tc, test_catalogue);
    tcase_add_test(tc, test_capture_matches_activations);
    tcase_add_test(tc, test_self_patch_is_bitwise_noop);
    tcase_add_test(tc, test_zero_head_matches_weight_edit);
    tcase_add_test(tc, test_set_and_add_match_manual_computation);
    tcase_add_test(tc, test_bad_requests_rejected);
    suite_add_tcase(s, tc);
    return tu_run(s);
}
