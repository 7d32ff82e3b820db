/* Whole-model tests: config validation, the tensor table, gradients against
 * central finite differences, hooks, determinism and batch independence. */
#include <math.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "icl/icl.h"
#include "model_internal.h" /* the carved layout, against icl_config_training_bytes */
#include "testutil.h"

static icl_config small_token(int tied) {
    return tu_config((tu_model_shape){.n_layer = 2, .d_model = 12, .n_head = 3, .d_ff = 20, .ctx = 9,
            .vocab_size = 7, .untied = !tied});
}

static icl_config small_vector(void) {
    icl_config c = small_token(0);
    c.mode = ICL_MODE_VECTOR;
    c.vocab_size = 0;
    c.d_in = 5;
    c.d_out = 2;
    return c;
}

/* A batch with random data and a loss mask holding zeros (targets -1 there). */
typedef struct {
    icl_batch batch;
    int32_t *tokens, *targets;
    float *inputs, *values, *weights;
} test_batch;

static void make_batch(test_batch *tb, const icl_config *c, int B, int T, uint64_t seed) {
    icl_rng r;
    icl_rng_init(&r, seed, "batch");
    size_t N = (size_t)B * T;
    memset(tb, 0, sizeof *tb);
    tb->weights = tu_floats(N);
    for (size_t i = 0; i < N; i++)
        tb->weights[i] = (i % 3 == 1) ? 0.0f : 0.5f + icl_rng_uniform(&r);
    if (c->mode == ICL_MODE_TOKEN) {
        tb->tokens = tu_ints(N);
        tb->targets = tu_ints(N);
        tu_fill_tokens(tb->tokens, N, c->vocab_size, &r);
        tu_fill_tokens(tb->targets, N, c->vocab_size, &r);
        for (size_t i = 0; i < N; i++)
            if (tb->weights[i] == 0.0f)
                tb->targets[i] = -1;
    } else {
        tb->inputs = tu_floats(N * c->d_in);
        tb->values = tu_floats(N * c->d_out);
        tu_fill_uniform(tb->inputs, N * c->d_in, 1.0f, &r);
        tu_fill_uniform(tb->values, N * c->d_out, 1.0f, &r);
    }
    tb->batch = (icl_batch){B, T, tb->tokens, tb->inputs, tb->targets, tb->values, tb->weights};
}

static void free_batch(test_batch *tb) {
    free(tb->tokens);
    free(tb->targets);
    free(tb->inputs);
    free(tb->values);
    free(tb->weights);
}

/* ---- configuration ---- */

typedef struct {
    const char *what;
    icl_config c;
} bad_config;

START_TEST(test_bad_configs_rejected) {
    bad_config bad[16];
    int n = 0;
    icl_config c;
    c = small_token(1); c.d_model = 10; c.n_head = 3; bad[n++] = (bad_config){"d_model % n_head", c};
    c = small_token(1); c.n_layer = 0; bad[n++] = (bad_config){"n_layer 0", c};
    c = small_token(1); c.d_model = 0; bad[n++] = (bad_config){"d_model 0", c};
    c = small_token(1); c.n_head = 0; bad[n++] = (bad_config){"n_head 0", c};
    c = small_token(1); c.ctx = 0; bad[n++] = (bad_config){"ctx 0", c};
    c = small_token(1); c.vocab_size = 0; bad[n++] = (bad_config){"vocab 0", c};
    c = small_token(1); c.d_ff = -4; bad[n++] = (bad_config){"d_ff < 0", c};
    c = small_token(1); c.tie_embeddings = 2; bad[n++] = (bad_config){"tie 2", c};
    c = small_token(1); c.mode = 7; bad[n++] = (bad_config){"mode 7", c};
    c = small_vector(); c.d_in = 0; bad[n++] = (bad_config){"d_in 0", c};
    c = small_vector(); c.d_out = -1; bad[n++] = (bad_config){"d_out -1", c};
    c = small_token(1); c.init_std = -0.1f; bad[n++] = (bad_config){"init_std < 0", c};
    c = small_token(1); c.init_std = NAN; bad[n++] = (bad_config){"init_std NaN", c};
    c = small_token(1); c.init_std = 1e3f; bad[n++] = (bad_config){"init_std 1000", c};
    for (int i = 0; i < n; i++) {
        icl_model *m = (icl_model *)0x1;
        icl_status s = icl_model_create(&m, &bad[i].c, ICL_BACKEND_CPU, 1);
        printf("  %-18s -> %s: %s\n", bad[i].what, icl_status_name(s), icl_last_error());
        ck_assert_int_eq(s, ICL_ERR_CONFIG);
        ck_assert_ptr_null(m);
        ck_assert(strlen(icl_last_error()) > 10);
    }
    ck_assert_int_eq(icl_config_validate(NULL), ICL_ERR_INVALID_ARG);
}
END_TEST

START_TEST(test_config_json_roundtrip) {
    icl_config c = small_vector(), back;
    char buf[512];
    ck_assert_int_eq(icl_config_to_json(&c, buf, sizeof buf), ICL_OK);
    ck_assert_int_eq(icl_config_from_json(&back, buf), ICL_OK);
    ck_assert(memcmp(&c, &back, sizeof c) == 0);
    ck_assert_int_eq(icl_config_to_json(&c, buf, 10), ICL_ERR_INVALID_ARG);
    ck_assert_int_eq(icl_config_from_json(&back, "{\"mode\":\"token\"}"), ICL_ERR_FORMAT);
    ck_assert_int_eq(icl_config_from_json(&back, "[1,2]"), ICL_ERR_FORMAT);
    ck_assert_int_eq(icl_config_from_json(&back, "{\"mode\":\"token\",\"n_layer\":1.5}"), ICL_ERR_FORMAT);
    c.init_std = 0.0375f;
    ck_assert_int_eq(icl_config_to_json(&c, buf, sizeof buf), ICL_OK);
    ck_assert_int_eq(icl_config_from_json(&back, buf), ICL_OK);
    ck_assert(memcmp(&c, &back, sizeof c) == 0);
    /* Checkpoints from before init_std existed were initialised with 0.02. */
    const char *old = "{\"mode\":\"token\",\"n_layer\":2,\"d_model\":16,\"n_head\":2,\"d_ff\":64,\"ctx\":8,"
                      "\"vocab_size\":12,\"tie_embeddings\":1,\"d_in\":0,\"d_out\":0}";
    ck_assert_int_eq(icl_config_from_json(&back, old), ICL_OK);
    ck_assert_float_eq(back.init_std, 0.02f);
    ck_assert_int_eq(icl_config_from_json(&back, "{\"mode\":\"token\",\"n_layer\":2,\"d_model\":16,\"n_head\":2,"
                                                  "\"d_ff\":64,\"ctx\":8,\"vocab_size\":12,\"tie_embeddings\":1,"
                                                  "\"d_in\":0,\"d_out\":0,\"init_std\":\"big\"}"),
                     ICL_ERR_FORMAT);
}
END_TEST

/* Sample standard deviation of tensor `name`. */
static double tensor_std(const icl_model *m, const float *params, const char *name) {
    const icl_param_info *t = icl_model_tensor(m, icl_model_find_tensor(m, name));
    double s = 0.0, s2 = 0.0;
    for (size_t k = 0; k < t->numel; k++) {
        s += params[t->offset + k];
        s2 += (double)params[t->offset + k] * params[t->offset + k];
    }
    double mean = s / (double)t->numel;
    return sqrt(s2 / (double)t->numel - mean * mean);
}

/* The weight matrices start at init_std (default 1/sqrt(d_model)) and the
 * residual projections at init_std / sqrt(2 n_layer). */
START_TEST(test_init_scale) {
    const float stds[2] = {0.0f, 0.05f};
    for (int i = 0; i < 2; i++) {
        icl_config c = icl_config_default();
        c.init_std = stds[i];
        icl_model *m;
        ck_assert_int_eq(icl_model_create(&m, &c, ICL_BACKEND_CPU, 5), ICL_OK);
        size_t P = icl_model_num_params(m);
        float *params = tu_floats(P);
        ck_assert_int_eq(icl_model_get_params(m, params, P), ICL_OK);
        double want = stds[i] > 0 ? stds[i] : 1.0 / sqrt(c.d_model), resid = want / sqrt(2.0 * c.n_layer);
        ck_assert_double_eq_tol(icl_config_init_std(&c), want, 1e-7);
        struct { const char *name; double want; } checks[] = {
            {"tok_embed.weight", want}, {"pos_embed.weight", want}, {"blocks.1.attn.qkv.weight", want},
            {"blocks.0.mlp.fc.weight", want}, {"blocks.0.attn.proj.weight", resid}, {"blocks.1.mlp.proj.weight", resid},
        };
        for (size_t k = 0; k < sizeof checks / sizeof checks[0]; k++) {
            double got = tensor_std(m, params, checks[k].name);
            printf("  init_std %.3f: %-26s std %.5f, expected %.5f (%.1f%% off, tolerance 4%%)\n", (double)stds[i],
                   checks[k].name, got, checks[k].want, 100 * fabs(got / checks[k].want - 1));
            ck_assert(fabs(got / checks[k].want - 1) < 0.04);
        }
        free(params);
        icl_model_free(m);
    }
}
END_TEST

START_TEST(test_tensor_table) {
    for (int variant = 0; variant < 3; variant++) {
        icl_config c = variant == 2 ? small_vector() : small_token(variant);
        icl_model *m;
        ck_assert_int_eq(icl_model_create(&m, &c, ICL_BACKEND_CPU, 3), ICL_OK);
        size_t total = 0;
        for (int i = 0; i < icl_model_num_tensors(m); i++) {
            const icl_param_info *t = icl_model_tensor(m, i);
            ck_assert_uint_eq(t->offset, total);
            ck_assert_int_eq(icl_model_find_tensor(m, t->name), i);
            total += t->numel;
        }
        ck_assert_uint_eq(total, icl_model_num_params(m));
        ck_assert_uint_eq(total, icl_config_num_params(&c));
        ck_assert_ptr_null(icl_model_tensor(m, icl_model_num_tensors(m)));
        int qkv = icl_model_find_tensor(m, "blocks.1.attn.qkv.weight");
        ck_assert_int_ge(qkv, 0);
        ck_assert_int_eq(icl_model_tensor(m, qkv)->shape[0], 3 * c.d_model);
        ck_assert_int_eq(icl_model_tensor(m, qkv)->shape[1], c.d_model);
        ck_assert_int_eq(icl_model_find_tensor(m, "lm_head.weight") >= 0, variant == 0);
        icl_model_free(m);
    }
}
END_TEST

/* ---- gradients ---- */

/* Central difference of the loss along unit direction u over elements
 * [lo, hi) of tensor t, compared with the analytic directional derivative. */
static void check_direction(icl_model *m, const icl_batch *batch, const float *params, const float *grads,
                            float *probe, size_t P, const icl_param_info *t, size_t lo, size_t hi, const char *label,
                            icl_rng *r) {
    const double h = 1e-2;
    double *u = calloc(t->numel, sizeof *u), norm = 0.0, analytic = 0.0;
    for (size_t k = lo; k < hi; k++) {
        u[k] = icl_rng_normal(r);
        norm += u[k] * u[k];
    }
    norm = sqrt(norm);
    for (size_t k = lo; k < hi; k++) {
        u[k] /= norm;
        analytic += u[k] * grads[t->offset + k];
    }
    double lp = 0.0, lm = 0.0;
    for (int sign = -1; sign <= 1; sign += 2) {
        memcpy(probe, params, P * sizeof *probe);
        for (size_t k = lo; k < hi; k++)
            probe[t->offset + k] = (float)(params[t->offset + k] + sign * h * u[k]);
        ck_assert_int_eq(icl_model_set_params(m, probe, P), ICL_OK);
        float l;
        ck_assert_int_eq(icl_model_forward(m, batch, &l), ICL_OK);
        if (sign < 0) lm = l; else lp = l;
    }
    double numeric = (lp - lm) / (2 * h);
    double tol = 5e-5 + 2e-3 * fabs(numeric);
    printf("  %-26s %-3s d/du analytic % .6f numeric % .6f  |diff| %.2e = %5.1f%% of tolerance\n", t->name, label,
           analytic, numeric, fabs(analytic - numeric), 100 * fabs(analytic - numeric) / tol);
    ck_assert_msg(fabs(analytic - numeric) <= tol, "%s %s: directional derivative %g vs finite difference %g",
                  t->name, label, analytic, numeric);
    free(u);
}

/* Compare the analytic gradient with central differences of the loss along a
 * random unit direction of each tensor (covers every element). The fused
 * qkv weight is also checked one third at a time: along a direction over all
 * of it the value gradient dominates, and an error confined to the query or
 * key gradient could hide inside the tolerance. */
static void gradient_check(const icl_config *c, int B, int T) {
    icl_model *m;
    ck_assert_int_eq(icl_model_create(&m, c, ICL_BACKEND_CPU, 11), ICL_OK);
    test_batch tb;
    make_batch(&tb, c, B, T, 5);

    size_t P = icl_model_num_params(m);
    float *params = tu_floats(P), *grads = tu_floats(P), *probe = tu_floats(P);
    ck_assert_int_eq(icl_model_get_params(m, params, P), ICL_OK);
    /* Move off the symmetric init (zero biases, unit gains) so every term is exercised. */
    icl_rng r;
    icl_rng_init(&r, 99, "perturb");
    for (size_t i = 0; i < P; i++)
        params[i] += 0.1f * icl_rng_normal(&r);
    ck_assert_int_eq(icl_model_set_params(m, params, P), ICL_OK);
    float loss;
    ck_assert_int_eq(icl_model_zero_grad(m), ICL_OK);
    ck_assert_int_eq(icl_model_forward(m, &tb.batch, &loss), ICL_OK);
    ck_assert_int_eq(icl_model_backward(m, 1.0f), ICL_OK);
    ck_assert_int_eq(icl_model_get_grads(m, grads, P), ICL_OK);
    int chunks = icl_model_chunk_count(m);
    printf("gradient check: %s mode, B=%d T=%d: %d chunk(s) of prompts\n",
           c->mode == ICL_MODE_TOKEN ? "token" : "vector", B, T, chunks);
    ck_assert_msg(B * T <= 512 ? chunks == 1 : chunks > 1, "B=%d T=%d ran as %d chunks", B, T, chunks);

    for (int ti = 0; ti < icl_model_num_tensors(m); ti++) {
        const icl_param_info *t = icl_model_tensor(m, ti);
        check_direction(m, &tb.batch, params, grads, probe, P, t, 0, t->numel, "all", &r);
        if (strstr(t->name, "attn.qkv.weight")) {
            static const char *const part[3] = {"q", "k", "v"};
            for (int j = 0; j < 3; j++)
                check_direction(m, &tb.batch, params, grads, probe, P, t, t->numel / 3 * j, t->numel / 3 * (j + 1),
                                part[j], &r);
        }
    }
    ck_assert_int_eq(icl_model_set_params(m, params, P), ICL_OK);
    free(params);
    free(grads);
    free(probe);
    free_batch(&tb);
    icl_model_free(m);
}

START_TEST(test_gradients_token_tied) { icl_config c = small_token(1); gradient_check(&c, 3, 7); }
END_TEST
START_TEST(test_gradients_token_untied) { icl_config c = small_token(0); gradient_check(&c, 3, 7); }
END_TEST
START_TEST(test_gradients_vector) { icl_config c = small_vector(); gradient_check(&c, 3, 7); }
END_TEST

/* Batches of several chunks: each worker's chunk gradients join in chunk order (backward.c). */
START_TEST(test_gradients_chunked_token) { icl_config c = small_token(1); gradient_check(&c, 70, 9); }
END_TEST

START_TEST(test_gradients_chunked_vector) { icl_config c = small_vector(); gradient_check(&c, 70, 9); }
END_TEST

/* Positions with weight 0 must not influence the gradient: changing their
 * targets leaves every gradient bit-identical. */
START_TEST(test_masked_targets_ignored) {
    icl_config c = small_vector();
    icl_model *m;
    ck_assert_int_eq(icl_model_create(&m, &c, ICL_BACKEND_CPU, 4), ICL_OK);
    test_batch tb;
    make_batch(&tb, &c, 2, 6, 8);
    size_t P = icl_model_num_params(m);
    float *g1 = tu_floats(P), *g2 = tu_floats(P);
    ck_assert_int_eq(icl_model_zero_grad(m), ICL_OK);
    ck_assert_int_eq(icl_model_forward(m, &tb.batch, NULL), ICL_OK);
    ck_assert_int_eq(icl_model_backward(m, 1.0f), ICL_OK);
    ck_assert_int_eq(icl_model_get_grads(m, g1, P), ICL_OK);
    for (int i = 0; i < 12; i++)
        if (tb.weights[i] == 0.0f)
            for (int d = 0; d < c.d_out; d++) tb.values[i * c.d_out + d] = 1e3f;
    ck_assert_int_eq(icl_model_zero_grad(m), ICL_OK);
    ck_assert_int_eq(icl_model_forward(m, &tb.batch, NULL), ICL_OK);
    ck_assert_int_eq(icl_model_backward(m, 1.0f), ICL_OK);
    ck_assert_int_eq(icl_model_get_grads(m, g2, P), ICL_OK);
    ck_assert(memcmp(g1, g2, P * sizeof(float)) == 0);
    free(g1);
    free(g2);
    free_batch(&tb);
    icl_model_free(m);
}
END_TEST

/* ---- forward behaviour ---- */

START_TEST(test_forward_rejects_bad_batches) {
    icl_config c = small_token(1);
    icl_model *m;
    ck_assert_int_eq(icl_model_create(&m, &c, ICL_BACKEND_CPU, 1), ICL_OK);
    test_batch tb;
    make_batch(&tb, &c, 2, 9, 1);
    icl_batch b = tb.batch;
    b.T = 10; /* > ctx */
    ck_assert_int_eq(icl_model_forward(m, &b, NULL), ICL_ERR_SHAPE);
    printf("  T > ctx: %s\n", icl_last_error());
    b = tb.batch; b.B = 0;
    ck_assert_int_eq(icl_model_forward(m, &b, NULL), ICL_ERR_SHAPE);
    b = tb.batch; b.tokens = NULL;
    ck_assert_int_eq(icl_model_forward(m, &b, NULL), ICL_ERR_INVALID_ARG);
    tb.tokens[3] = c.vocab_size;
    ck_assert_int_eq(icl_model_forward(m, &tb.batch, NULL), ICL_ERR_INVALID_ARG);
    tb.tokens[3] = 0;
    tb.targets[0] = 99; /* weight at 0 is non-zero */
    ck_assert_int_eq(icl_model_forward(m, &tb.batch, NULL), ICL_ERR_INVALID_ARG);
    tb.targets[0] = 1;
    for (int i = 0; i < 18; i++) tb.weights[i] = 0.0f;
    ck_assert_int_eq(icl_model_forward(m, &tb.batch, NULL), ICL_ERR_INVALID_ARG);
    tb.weights[0] = NAN;
    ck_assert_int_eq(icl_model_forward(m, &tb.batch, NULL), ICL_ERR_INVALID_ARG);
    ck_assert_int_eq(icl_model_forward(NULL, &tb.batch, NULL), ICL_ERR_INVALID_ARG);
    ck_assert_int_eq(icl_model_backward(m, 1.0f), ICL_ERR_STATE);
    free_batch(&tb);
    icl_model_free(m);
}
END_TEST

START_TEST(test_nan_parameters_give_numeric_error) {
    icl_config c = small_token(1);
    icl_model *m;
    ck_assert_int_eq(icl_model_create(&m, &c, ICL_BACKEND_CPU, 1), ICL_OK);
    size_t P = icl_model_num_params(m);
    float *p = tu_floats(P);
    ck_assert_int_eq(icl_model_get_params(m, p, P), ICL_OK);
    p[P / 2] = NAN;
    ck_assert_int_eq(icl_model_set_params(m, p, P), ICL_OK);
    test_batch tb;
    make_batch(&tb, &c, 2, 5, 1);
    ck_assert_int_eq(icl_model_forward(m, &tb.batch, NULL), ICL_ERR_NUMERIC);
    printf("  NaN parameter: %s\n", icl_last_error());
    free(p);
    free_batch(&tb);
    icl_model_free(m);
}
END_TEST

/* The same prompt gives bit-identical logits whatever its row in the batch. */
START_TEST(test_batch_position_independence) {
    icl_config c = small_token(0);
    icl_model *m;
    ck_assert_int_eq(icl_model_create(&m, &c, ICL_BACKEND_CPU, 2), ICL_OK);
    int B = 5, T = 9, V = c.vocab_size;
    test_batch tb;
    make_batch(&tb, &c, B, T, 3);
    float *logits = tu_floats((size_t)B * T * V), *single = tu_floats((size_t)T * V);
    ck_assert_int_eq(icl_model_forward(m, &tb.batch, NULL), ICL_OK);
    ck_assert_int_eq(icl_model_outputs(m, logits, (size_t)B * T * V), ICL_OK);
    for (int b = 0; b < B; b++) {
        icl_batch one = {1, T, tb.tokens + b * T, NULL, NULL, NULL, NULL};
        ck_assert_int_eq(icl_model_forward(m, &one, NULL), ICL_OK);
        ck_assert_int_eq(icl_model_outputs(m, single, (size_t)T * V), ICL_OK);
        ck_assert_msg(memcmp(single, logits + (size_t)b * T * V, (size_t)T * V * sizeof(float)) == 0,
                      "row %d differs when run alone", b);
    }
    free(logits);
    free(single);
    free_batch(&tb);
    icl_model_free(m);
}
END_TEST

/* Loss and gradients of one batch on a model that has seen other shapes (its
 * buffers re-carved or grown, not reallocated per shape) equal those of a fresh model. */
static void loss_and_grads(icl_model *m, const icl_batch *b, float *loss, float *grads, size_t P) {
    ck_assert_int_eq(icl_model_zero_grad(m), ICL_OK);
    ck_assert_int_eq(icl_model_forward(m, b, loss), ICL_OK);
    ck_assert_int_eq(icl_model_backward(m, 1.0f), ICL_OK);
    ck_assert_int_eq(icl_model_get_grads(m, grads, P), ICL_OK);
}

START_TEST(test_shape_changes_reuse_buffers_exactly) {
    icl_config configs[2] = {small_token(1), small_vector()};
    /* (B,T): allocate; grow wider than the first (more rows, shorter); shapes that fit
       into the grown buffers; the first shape again. */
    const int shapes[][2] = {{4, 9}, {12, 4}, {5, 7}, {3, 6}, {4, 9}};
    const int n_shapes = (int)(sizeof shapes / sizeof shapes[0]);
    for (int i = 0; i < 2; i++) {
        const icl_config *c = &configs[i];
        const char *mode = c->mode == ICL_MODE_TOKEN ? "token" : "vector";
        icl_model *used;
        ck_assert_int_eq(icl_model_create(&used, c, ICL_BACKEND_CPU, 9), ICL_OK);
        size_t P = icl_model_num_params(used);
        float *g_fresh = tu_floats(P), *g_used = tu_floats(P), l_fresh, l_used;
        for (int k = 0; k < n_shapes; k++) {
            test_batch tb;
            make_batch(&tb, c, shapes[k][0], shapes[k][1], 21 + (uint64_t)k);
            icl_model *fresh;
            ck_assert_int_eq(icl_model_create(&fresh, c, ICL_BACKEND_CPU, 9), ICL_OK);
            loss_and_grads(fresh, &tb.batch, &l_fresh, g_fresh, P);
            loss_and_grads(used, &tb.batch, &l_used, g_used, P);
            ck_assert_msg(l_used == l_fresh, "%s, shape %d (%d,%d): loss %.9g after other shapes, %.9g fresh", mode,
                          k, shapes[k][0], shapes[k][1], l_used, l_fresh);
            ck_assert_msg(memcmp(g_used, g_fresh, P * sizeof(float)) == 0,
                          "%s, shape %d (%d,%d): gradients differ after other shapes", mode, k, shapes[k][0],
                          shapes[k][1]);
            icl_model_free(fresh);
            free_batch(&tb);
        }
        free(g_fresh);
        free(g_used);
        icl_model_free(used);
    }
}
END_TEST

/* Same seed, same bits for any thread count: three training steps on a batch of several chunks of prompts
   (each worker runs whole chunks; their gradients join in chunk order) with 1, 2 and 3 threads. */
START_TEST(test_training_thread_count_invariant) {
    const icl_config configs[2] = {small_token(1), small_vector()};
    const int threads[] = {1, 2, 3}, B = 70, T = 9;
    int saved = omp_get_max_threads();
    for (int i = 0; i < 2; i++) {
        const icl_config *c = &configs[i];
        float *params[3], losses[3][3];
        size_t P = 0;
        for (int k = 0; k < 3; k++) {
            omp_set_num_threads(threads[k]);
            icl_model *m;
            icl_optimizer *o;
            ck_assert_int_eq(icl_model_create(&m, c, ICL_BACKEND_CPU, 4), ICL_OK);
            icl_optim_config oc = icl_optim_config_default();
            oc.lr = 1e-2f;
            ck_assert_int_eq(icl_optimizer_create(&o, m, &oc), ICL_OK);
            for (int step = 0; step < 3; step++) {
                test_batch tb;
                make_batch(&tb, c, B, T, 50 + (uint64_t)step);
                icl_step_stats st;
                ck_assert_int_eq(icl_train_step(m, o, &tb.batch, 1, &st), ICL_OK);
                losses[k][step] = st.loss;
                free_batch(&tb);
            }
            ck_assert_int_gt(icl_model_chunk_count(m), 1);
            P = icl_model_num_params(m);
            params[k] = tu_floats(P);
            ck_assert_int_eq(icl_model_get_params(m, params[k], P), ICL_OK);
            icl_optimizer_free(o);
            icl_model_free(m);
        }
        for (int k = 1; k < 3; k++) {
            ck_assert_msg(memcmp(losses[0], losses[k], sizeof losses[0]) == 0, "%s: losses differ, 1 vs %d threads",
                          c->mode == ICL_MODE_TOKEN ? "token" : "vector", threads[k]);
            ck_assert_msg(memcmp(params[0], params[k], P * sizeof(float)) == 0,
                          "%s: parameters after 3 steps differ, 1 vs %d threads",
                          c->mode == ICL_MODE_TOKEN ? "token" : "vector", threads[k]);
        }
        printf("training, %s mode: 3 steps bit-identical with 1, 2 and 3 threads (losses %.6f %.6f %.6f)\n",
               c->mode == ICL_MODE_TOKEN ? "token" : "vector", losses[0][0], losses[0][1], losses[0][2]);
        for (int k = 0; k < 3; k++)
            free(params[k]);
    }
    omp_set_num_threads(saved);
}
END_TEST

START_TEST(test_same_seed_same_model) {
    icl_config c = small_token(1);
    icl_model *a, *b, *d;
    ck_assert_int_eq(icl_model_create(&a, &c, ICL_BACKEND_CPU, 42), ICL_OK);
    ck_assert_int_eq(icl_model_create(&b, &c, ICL_BACKEND_CPU, 42), ICL_OK);
    ck_assert_int_eq(icl_model_create(&d, &c, ICL_BACKEND_CPU, 43), ICL_OK);
    size_t P = icl_model_num_params(a);
    float *pa = tu_floats(P), *pb = tu_floats(P), *pd = tu_floats(P);
    icl_model_get_params(a, pa, P);
    icl_model_get_params(b, pb, P);
    icl_model_get_params(d, pd, P);
    ck_assert(memcmp(pa, pb, P * sizeof(float)) == 0);
    ck_assert(memcmp(pa, pd, P * sizeof(float)) != 0);
    free(pa); free(pb); free(pd);
    icl_model_free(a); icl_model_free(b); icl_model_free(d);
}
END_TEST

/* ---- hooks ---- */

typedef struct {
    int count[ICL_POINT_COUNT];
    icl_point fail_at;
} hook_log;

static icl_status rewrite_hook(void *user, icl_model *m, const icl_point_view *v) {
    (void)m;
    hook_log *log = user;
    log->count[v->point]++;
    if (v->point == log->fail_at)
        return ICL_ERR_INVALID_ARG;
    /* Rewrite every element with itself: an in-place no-op the forward must not notice. */
    int square = v->point == ICL_POINT_ATTN_SCORES || v->point == ICL_POINT_ATTN_PROBS;
    size_t rows = square ? (size_t)v->B * v->n_head * v->T : (size_t)v->B * v->T;
    for (size_t r = 0; r < rows; r++)
        for (int k = 0; k < v->width; k++) {
            volatile float x = v->data[r * v->row_stride + k];
            v->data[r * v->row_stride + k] = x;
        }
    return ICL_OK;
}

START_TEST(test_hook_visits_every_point_and_noop_is_exact) {
    icl_config c = small_token(1);
    icl_model *m;
    ck_assert_int_eq(icl_model_create(&m, &c, ICL_BACKEND_CPU, 2), ICL_OK);
    test_batch tb;
    make_batch(&tb, &c, 2, 6, 3);
    size_t n = 2 * 6 * (size_t)c.vocab_size;
    float *plain = tu_floats(n), *hooked = tu_floats(n);
    float l1, l2;
    ck_assert_int_eq(icl_model_forward(m, &tb.batch, &l1), ICL_OK);
    ck_assert_int_eq(icl_model_outputs(m, plain, n), ICL_OK);
    hook_log log = {{0}, ICL_POINT_COUNT};
    icl_model_set_hook(m, rewrite_hook, &log);
    ck_assert_int_eq(icl_model_forward(m, &tb.batch, &l2), ICL_OK);
    ck_assert_int_eq(icl_model_outputs(m, hooked, n), ICL_OK);
    ck_assert(memcmp(plain, hooked, n * sizeof(float)) == 0);
    ck_assert(memcmp(&l1, &l2, sizeof l1) == 0);
    for (int p = 0; p < ICL_POINT_COUNT; p++)
        ck_assert_int_eq(log.count[p], icl_point_is_per_layer(p) ? c.n_layer : 1);
    log.fail_at = ICL_POINT_MLP_POST;
    ck_assert_int_eq(icl_model_forward(m, &tb.batch, NULL), ICL_ERR_INVALID_ARG);
    printf("  hook abort: %s\n", icl_last_error());
    ck_assert_int_eq(icl_model_outputs(m, hooked, n), ICL_ERR_STATE);
    icl_model_set_hook(m, NULL, NULL);
    free(plain);
    free(hooked);
    free_batch(&tb);
    icl_model_free(m);
}
END_TEST

/* Zeroing the MLP output of the last block through the hook equals a model
 * whose last MLP projection (weights and bias) is zero. */
static icl_status zero_mlp_out_hook(void *user, icl_model *m, const icl_point_view *v) {
    (void)m;
    int layer = *(int *)user;
    if (v->point == ICL_POINT_MLP_OUT && v->layer == layer)
        for (size_t r = 0; r < (size_t)v->B * v->T; r++)
            memset(v->data + r * v->row_stride, 0, (size_t)v->width * sizeof(float));
    return ICL_OK;
}

START_TEST(test_hook_intervention_matches_edited_weights) {
    icl_config c = small_token(1);
    icl_model *m;
    ck_assert_int_eq(icl_model_create(&m, &c, ICL_BACKEND_CPU, 2), ICL_OK);
    test_batch tb;
    make_batch(&tb, &c, 2, 6, 3);
    size_t n = 2 * 6 * (size_t)c.vocab_size, P = icl_model_num_params(m);
    float *hooked = tu_floats(n), *edited = tu_floats(n), *p = tu_floats(P);
    int layer = 1;
    icl_model_set_hook(m, zero_mlp_out_hook, &layer);
    ck_assert_int_eq(icl_model_forward(m, &tb.batch, NULL), ICL_OK);
    ck_assert_int_eq(icl_model_outputs(m, hooked, n), ICL_OK);
    icl_model_set_hook(m, NULL, NULL);
    icl_model_get_params(m, p, P);
    const char *names[] = {"blocks.1.mlp.proj.weight", "blocks.1.mlp.proj.bias"};
    for (int i = 0; i < 2; i++) {
        const icl_param_info *t = icl_model_tensor(m, icl_model_find_tensor(m, names[i]));
        memset(p + t->offset, 0, t->numel * sizeof(float));
    }
    icl_model_set_params(m, p, P);
    ck_assert_int_eq(icl_model_forward(m, &tb.batch, NULL), ICL_OK);
    ck_assert_int_eq(icl_model_outputs(m, edited, n), ICL_OK);
    TU_ASSERT_CLOSE("zeroed mlp_out vs zeroed weights", hooked, edited, n, 1e-6, 1e-6);
    free(hooked); free(edited); free(p);
    free_batch(&tb);
    icl_model_free(m);
}
END_TEST

START_TEST(test_point_copy_shapes) {
    icl_config c = small_token(1);
    icl_model *m;
    ck_assert_int_eq(icl_model_create(&m, &c, ICL_BACKEND_CPU, 2), ICL_OK);
    test_batch tb;
    make_batch(&tb, &c, 2, 6, 3);
    ck_assert_int_eq(icl_model_point_copy(m, ICL_POINT_LN1, 0, NULL, 0), ICL_ERR_STATE);
    ck_assert_int_eq(icl_model_forward(m, &tb.batch, NULL), ICL_OK);
    icl_point_view v;
    ck_assert_int_eq(icl_model_point(m, ICL_POINT_ATTN_PROBS, 1, &v), ICL_OK);
    /* causal softmax rows sum to 1 and are 0 above the diagonal */
    size_t n = 2 * 3 * 6 * 6;
    float *probs = tu_floats(n);
    ck_assert_int_eq(icl_model_point_copy(m, ICL_POINT_ATTN_PROBS, 1, probs, n), ICL_OK);
    for (size_t r = 0; r < 2 * 3 * 6; r++) {
        int t = (int)(r % 6);
        double sum = 0;
        for (int s = 0; s < 6; s++) {
            if (s > t) ck_assert(probs[r * 6 + s] == 0.0f);
            sum += probs[r * 6 + s];
        }
        ck_assert(fabs(sum - 1.0) < 1e-5);
    }
    float q[2 * 6 * 12];
    ck_assert_int_eq(icl_model_point_copy(m, ICL_POINT_Q, 0, q, 2 * 6 * 12), ICL_OK);
    ck_assert_int_eq(icl_model_point_copy(m, ICL_POINT_Q, 0, q, 5), ICL_ERR_SHAPE);
    ck_assert_int_eq(icl_model_point_copy(m, ICL_POINT_Q, 2, q, 2 * 6 * 12), ICL_ERR_INVALID_ARG);
    ck_assert_int_eq(icl_model_point_copy(m, ICL_POINT_COUNT, 0, q, 2 * 6 * 12), ICL_ERR_INVALID_ARG);
    free(probs);
    free_batch(&tb);
    icl_model_free(m);
}
END_TEST

/* icl_config_training_bytes counts the layout the model really carves: after
 * a forward pass of (B,T), activations + the activation gradients the
 * backward keeps + 4 parameter-sized buffers, exactly; in token and in vector
 * mode. */
START_TEST(test_training_bytes_match_the_model) {
    const tu_model_shape shapes[] = {{.n_layer = 2, .d_model = 24, .n_head = 3, .vocab_size = 11, .ctx = 16},
                                     {.n_layer = 1, .d_model = 16, .n_head = 2, .d_in = 5, .d_out = 2, .ctx = 16}};
    for (int i = 0; i < 2; i++) {
        icl_model *m = tu_model(shapes[i], 1);
        const int B = 3, T = 7;
        ck_assert_int_eq(icl_model_ensure_acts(m, B, T), ICL_OK);
        double bytes = 0.0;
        ck_assert_int_eq(icl_config_training_bytes(icl_model_config(m), B, T, &bytes), ICL_OK);
        double want = 4.0 * ((double)m->n_acts + (double)m->n_dacts + 4.0 * (double)icl_model_num_params(m));
        printf("  shape %d: %.0f bytes, model layout %.0f\n", i, bytes, want);
        ck_assert(bytes == want);
        /* and the count is where the carved gradient views end (the block's probs is last) */
        ck_assert((size_t)(m->da.layer.probs + (size_t)B * m->NH * T * T - m->dacts) == m->n_dacts);
        icl_model_free(m);
    }
    double bytes;
    ck_assert_int_eq(icl_config_training_bytes(NULL, 1, 1, &bytes), ICL_ERR_INVALID_ARG);
    icl_config bad = icl_config_default();
    bad.n_head = 5; /* 64 is not divisible by 5 */
    ck_assert_int_ne(icl_config_training_bytes(&bad, 1, 1, &bytes), ICL_OK);
}
END_TEST

/* Found by fuzz/fuzz_config: a number outside int's (or float's) range was
 * converted before it was checked, which is undefined behaviour. */
START_TEST(test_config_json_out_of_range_numbers) {
    const char *head = "{\"mode\":\"token\",\"n_layer\":1,\"d_model\":4,\"n_head\":1,\"d_ff\":4,\"ctx\":8,"
                       "\"vocab_size\":5,\"tie_embeddings\":1,\"d_in\":0,";
    const char *tails[] = {"\"d_out\":1e86}", "\"d_out\":-3e9}", "\"d_out\":2147483648}",
                           "\"d_out\":0,\"init_std\":1e300}", "\"d_out\":0,\"init_std\":-1e39}"};
    icl_config back;
    char json[256];
    for (int i = 0; i < 5; i++) {
        snprintf(json, sizeof json, "%s%s", head, tails[i]);
        ck_assert_int_eq(icl_config_from_json(&back, json), ICL_ERR_FORMAT);
        ck_assert(strstr(icl_last_error(), i < 3 ? "d_out" : "init_std") != NULL);
    }
    snprintf(json, sizeof json, "%s%s", head, "\"d_out\":0,\"init_std\":0.5}");
    ck_assert_int_eq(icl_config_from_json(&back, json), ICL_OK);
    ck_assert(back.init_std == 0.5f);
}
END_TEST

int main(void) {
    Suite *s = suite_create("model");
    TCase *tc = tcase_create("model");
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, test_bad_configs_rejected);
    tcase_add_test(tc, test_config_json_roundtrip);
    tcase_add_test(tc, test_init_scale);
    tcase_add_test(tc, test_tensor_table);
    tcase_add_test(tc, test_gradients_token_tied);
    tcase_add_test(tc, test_gradients_token_untied);
    tcase_add_test(tc, test_gradients_vector);
    tcase_add_test(tc, test_gradients_chunked_token);
    tcase_add_test(tc, test_gradients_chunked_vector);
    tcase_add_test(tc, test_training_thread_count_invariant);
    tcase_add_test(tc, test_masked_targets_ignored);
    tcase_add_test(tc, test_forward_rejects_bad_batches);
    tcase_add_test(tc, test_nan_parameters_give_numeric_error);
    tcase_add_test(tc, test_batch_position_independence);
    tcase_add_test(tc, test_shape_changes_reuse_buffers_exactly);
    tcase_add_test(tc, test_same_seed_same_model);
    tcase_add_test(tc, test_hook_visits_every_point_and_noop_is_exact);
    tcase_add_test(tc, test_hook_intervention_matches_edited_weights);
    tcase_add_test(tc, test_point_copy_shapes);
    tcase_add_test(tc, test_config_json_out_of_range_numbers);
    tcase_add_test(tc, test_training_bytes_match_the_model);
    suite_add_tcase(s, tc);
    return tu_run(s);
}
