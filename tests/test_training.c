/* Training tests: the copy task is learned, the schedule is right, freezing
 * freezes, accumulation averages, a NaN gradient changes nothing, and a run is
 * bit-identical when repeated or resumed from a checkpoint. */
#include <float.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include "icl/icl.h"
#include "testutil.h"

typedef struct {
    icl_toy_task task;
    int B;
    int32_t *tokens, *targets;
    float *weights;
} toy_data;

static void toy_init(toy_data *d, icl_toy_kind kind, int n_symbols, int length, int B) {
    d->task = (icl_toy_task){kind, n_symbols, length};
    d->B = B;
    size_t N = (size_t)B * icl_toy_seq_len(&d->task);
    d->tokens = tu_ints(N);
    d->targets = tu_ints(N);
    d->weights = tu_floats(N);
}

static void toy_free(toy_data *d) {
    free(d->tokens);
    free(d->targets);
    free(d->weights);
}

static icl_status toy_next(void *user, long step, int micro, icl_rng *rng, icl_batch *batch) {
    (void)step;
    (void)micro;
    toy_data *d = user;
    return icl_toy_fill(&d->task, rng, d->B, d->tokens, d->targets, d->weights, batch);
}

/* A small model for d's task. */
static tu_model_shape toy_shape(const toy_data *d) {
    return (tu_model_shape){.n_layer = 2, .d_model = 32, .n_head = 2, .ctx = icl_toy_seq_len(&d->task),
            .vocab_size = icl_toy_vocab_size(&d->task)};
}

/* Token accuracy of the argmax prediction at the scored positions. */
static double toy_accuracy(icl_model *m, toy_data *d, uint64_t seed) {
    icl_rng r;
    icl_rng_init(&r, seed, "eval");
    icl_batch b;
    ck_assert_int_eq(icl_toy_fill(&d->task, &r, d->B, d->tokens, d->targets, d->weights, &b), ICL_OK);
    ck_assert_int_eq(icl_model_forward(m, &b, NULL), ICL_OK);
    int V = icl_model_config(m)->vocab_size;
    size_t N = (size_t)b.B * b.T;
    float *logits = tu_floats(N * V);
    ck_assert_int_eq(icl_model_outputs(m, logits, N * V), ICL_OK);
    long right = 0, total = 0;
    for (size_t i = 0; i < N; i++) {
        if (d->weights[i] == 0.0f) continue;
        int best = 0;
        for (int v = 1; v < V; v++)
            if (logits[i * V + v] > logits[i * V + best]) best = v;
        right += best == d->targets[i];
        total++;
    }
    free(logits);
    return (double)right / total;
}

START_TEST(test_copy_task_is_learned) {
    toy_data d;
    toy_init(&d, ICL_TOY_COPY, 8, 6, 32);
    icl_model *m = tu_model(toy_shape(&d), 1);
    icl_optimizer *o;
    icl_optim_config oc = icl_optim_config_default();
    oc.lr = 3e-3f;
    oc.warmup_steps = 30;
    oc.total_steps = 400;
    ck_assert_int_eq(icl_optimizer_create(&o, m, &oc), ICL_OK);
    double before = toy_accuracy(m, &d, 7);
    icl_rng data;
    icl_rng_init(&data, 1, "data");
    icl_train_loop_config lc = {.steps = 400, .grad_accum = 1, .next_batch = toy_next, .user = &d};
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    ck_assert_int_eq(icl_train_loop(m, o, &data, &lc), ICL_OK);
    clock_gettime(CLOCK_MONOTONIC, &t1);
    double after = toy_accuracy(m, &d, 7);
    double secs = (t1.tv_sec - t0.tv_sec) + 1e-9 * (t1.tv_nsec - t0.tv_nsec);
    printf("  copy task: accuracy %.4f before, %.4f after 400 steps (%.1f s); need >= 0.99\n", before, after, secs);
    ck_assert(before < 0.3);
    ck_assert(after >= 0.99);
    icl_optimizer_free(o);
    icl_model_free(m);
    toy_free(&d);
}
END_TEST

START_TEST(test_lr_schedule) {
    icl_optim_config c = icl_optim_config_default();
    c.lr = 1.0f;
    c.min_lr_frac = 0.1f;
    c.warmup_steps = 10;
    c.total_steps = 110;
    ck_assert(fabsf(icl_optim_lr_at(&c, 0) - 0.1f) < 1e-7f);
    ck_assert(fabsf(icl_optim_lr_at(&c, 9) - 1.0f) < 1e-7f);
    ck_assert(fabsf(icl_optim_lr_at(&c, 10) - 1.0f) < 1e-7f);
    ck_assert(fabsf(icl_optim_lr_at(&c, 60) - 0.55f) < 1e-6f); /* halfway down the cosine */
    ck_assert(fabsf(icl_optim_lr_at(&c, 110) - 0.1f) < 1e-7f);
    ck_assert(fabsf(icl_optim_lr_at(&c, 500) - 0.1f) < 1e-7f);
    icl_optim_config bad = c;
    bad.beta2 = 1.0f;
    ck_assert_int_eq(icl_optim_config_validate(&bad), ICL_ERR_CONFIG);
    bad = c;
    bad.lr = -1.0f;
    ck_assert_int_eq(icl_optim_config_validate(&bad), ICL_ERR_CONFIG);
}
END_TEST

/* Frozen tensors keep their values and Adam moments; the others move. */
START_TEST(test_freeze_layers) {
    toy_data d;
    toy_init(&d, ICL_TOY_REVERSE, 6, 4, 8);
    icl_model *m = tu_model(toy_shape(&d), 1);
    icl_optimizer *o;
    icl_optim_config oc = icl_optim_config_default();
    ck_assert_int_eq(icl_optimizer_create(&o, m, &oc), ICL_OK);
    ck_assert_int_eq(icl_optimizer_freeze_layers(o, 0, 1, 1), ICL_OK);
    ck_assert_int_eq(icl_optimizer_freeze(o, ICL_GROUP_POSITION, -1, 1), ICL_OK);
    ck_assert_int_eq(icl_optimizer_freeze_layers(o, 1, 5, 1), ICL_ERR_INVALID_ARG);
    ck_assert_int_eq(icl_optimizer_freeze(o, ICL_GROUP_ATTN, 7, 1), ICL_ERR_INVALID_ARG);
    size_t P = icl_model_num_params(m);
    float *p0 = tu_floats(P), *p1 = tu_floats(P), *mm = tu_floats(P), *vv = tu_floats(P);
    icl_model_get_params(m, p0, P);
    icl_rng data;
    icl_rng_init(&data, 1, "data");
    icl_train_loop_config lc = {.steps = 5, .grad_accum = 1, .next_batch = toy_next, .user = &d};
    ck_assert_int_eq(icl_train_loop(m, o, &data, &lc), ICL_OK);
    icl_model_get_params(m, p1, P);
    ck_assert_int_eq(icl_optimizer_get_state(o, mm, vv, P), ICL_OK);
    int n_frozen = 0;
    for (int i = 0; i < icl_model_num_tensors(m); i++) {
        const icl_param_info *t = icl_model_tensor(m, i);
        int frozen = (t->layer == 0) || t->group == ICL_GROUP_POSITION;
        ck_assert_int_eq(icl_optimizer_is_frozen(o, i), frozen);
        int same = memcmp(p0 + t->offset, p1 + t->offset, t->numel * sizeof(float)) == 0;
        int moments_zero = 1;
        for (size_t k = 0; k < t->numel; k++)
            moments_zero &= mm[t->offset + k] == 0.0f && vv[t->offset + k] == 0.0f;
        if (frozen) {
            ck_assert_msg(same && moments_zero, "frozen %s changed", t->name);
            n_frozen++;
        } else if (t->ndim == 2) {
            ck_assert_msg(!same, "trainable %s did not change", t->name);
        }
    }
    printf("  %d of %d tensors frozen and unchanged\n", n_frozen, icl_model_num_tensors(m));
    ck_assert_int_eq(n_frozen, 13);
    free(p0); free(p1); free(mm); free(vv);
    icl_optimizer_free(o);
    icl_model_free(m);
    toy_free(&d);
}
END_TEST

/* Two micro-batches of 4 accumulate to the gradient of one batch of 8 (the
 * two halves carry equal total weight, so the means agree). */
START_TEST(test_gradient_accumulation_averages) {
    toy_data d;
    toy_init(&d, ICL_TOY_COPY, 6, 4, 8);
    icl_model *m = tu_model(toy_shape(&d), 1);
    icl_rng r;
    icl_rng_init(&r, 5, "data");
    icl_batch full;
    ck_assert_int_eq(icl_toy_fill(&d.task, &r, 8, d.tokens, d.targets, d.weights, &full), ICL_OK);
    size_t P = icl_model_num_params(m);
    float *g_full = tu_floats(P), *g_acc = tu_floats(P);
    icl_model_zero_grad(m);
    ck_assert_int_eq(icl_model_forward(m, &full, NULL), ICL_OK);
    ck_assert_int_eq(icl_model_backward(m, 1.0f), ICL_OK);
    icl_model_get_grads(m, g_full, P);
    icl_model_zero_grad(m);
    for (int half = 0; half < 2; half++) {
        size_t off = (size_t)half * 4 * full.T;
        icl_batch h = {4, full.T, d.tokens + off, NULL, d.targets + off, NULL, d.weights + off};
        ck_assert_int_eq(icl_model_forward(m, &h, NULL), ICL_OK);
        ck_assert_int_eq(icl_model_backward(m, 0.5f), ICL_OK);
    }
    icl_model_get_grads(m, g_acc, P);
    TU_ASSERT_CLOSE("accumulated vs full-batch gradient", g_acc, g_full, P, 1e-7, 1e-4);
    free(g_full); free(g_acc);
    icl_model_free(m);
    toy_free(&d);
}
END_TEST

START_TEST(test_nan_gradient_rejected) {
    toy_data d;
    toy_init(&d, ICL_TOY_COPY, 6, 4, 4);
    icl_model *m = tu_model(toy_shape(&d), 1);
    icl_optimizer *o;
    icl_optim_config oc = icl_optim_config_default();
    ck_assert_int_eq(icl_optimizer_create(&o, m, &oc), ICL_OK);
    icl_rng r;
    icl_rng_init(&r, 5, "data");
    icl_batch b;
    icl_toy_fill(&d.task, &r, 4, d.tokens, d.targets, d.weights, &b);
    icl_model_zero_grad(m);
    ck_assert_int_eq(icl_model_forward(m, &b, NULL), ICL_OK);
    /* Accumulating the largest finite scale a few times overflows the gradients to Inf. */
    for (int k = 0; k < 4; k++)
        ck_assert_int_eq(icl_model_backward(m, FLT_MAX), ICL_OK);
    size_t P = icl_model_num_params(m);
    float *before = tu_floats(P), *after = tu_floats(P);
    icl_model_get_params(m, before, P);
    ck_assert_int_eq(icl_optimizer_update(o, NULL), ICL_ERR_NUMERIC);
    printf("  %s\n", icl_last_error());
    icl_model_get_params(m, after, P);
    ck_assert(memcmp(before, after, P * sizeof(float)) == 0);
    ck_assert_int_eq(icl_optimizer_step_count(o), 0);
    free(before); free(after);
    icl_optimizer_free(o);
    icl_model_free(m);
    toy_free(&d);
}
END_TEST

START_TEST(test_nan_loss_step_rejected) {
    ck_assert_int_eq(tu_check_nan_step_rejected(ICL_BACKEND_CPU, 3), 0); /* the CPU never records graphs */
}
END_TEST

/* Train `steps` steps from a fresh model (seed 3), or resume from `resume_path`. */
static void run(toy_data *d, long steps, const char *resume_path, const char *save_path, float *params_out) {
    icl_model *m;
    icl_optimizer *o;
    icl_rng data;
    icl_optim_config oc = icl_optim_config_default();
    oc.warmup_steps = 5;
    oc.total_steps = 20;
    if (resume_path) {
        ck_assert_int_eq(icl_checkpoint_load_model(resume_path, ICL_BACKEND_CPU, &m), ICL_OK);
        ck_assert_int_eq(icl_optimizer_create(&o, m, &oc), ICL_OK);
        ck_assert_int_eq(icl_checkpoint_load_state(resume_path, o, &data), ICL_OK);
    } else {
        m = tu_model(toy_shape(d), 3);
        ck_assert_int_eq(icl_optimizer_create(&o, m, &oc), ICL_OK);
        icl_rng_init(&data, 3, "data");
    }
    icl_train_loop_config lc = {.steps = steps, .grad_accum = 2, .next_batch = toy_next, .user = d};
    ck_assert_int_eq(icl_train_loop(m, o, &data, &lc), ICL_OK);
    if (save_path)
        ck_assert_int_eq(icl_checkpoint_save(save_path, m, o, &data), ICL_OK);
    ck_assert_int_eq(icl_model_get_params(m, params_out, icl_model_num_params(m)), ICL_OK);
    icl_optimizer_free(o);
    icl_model_free(m);
}

START_TEST(test_repeat_and_resume_are_bit_exact) {
    toy_data d;
    toy_init(&d, ICL_TOY_REVERSE, 6, 4, 4);
    icl_config c = tu_config(toy_shape(&d));
    size_t P = icl_config_num_params(&c);
    float *straight = tu_floats(P), *again = tu_floats(P), *resumed = tu_floats(P), *half = tu_floats(P);
    char path[256];
    ck_assert_ptr_nonnull(tu_tmpdir_create("resume"));
    tu_tmp_path(path, sizeof path, "resume.safetensors");
    run(&d, 12, NULL, NULL, straight);
    run(&d, 12, NULL, NULL, again);
    ck_assert(memcmp(straight, again, P * sizeof(float)) == 0);
    run(&d, 5, NULL, path, half);
    run(&d, 12, path, NULL, resumed);
    size_t differing = 0;
    for (size_t i = 0; i < P; i++) differing += memcmp(&straight[i], &resumed[i], sizeof(float)) != 0;
    printf("  12 steps straight vs 5 + save/load + 7: %zu of %zu parameters differ\n", differing, P);
    ck_assert_uint_eq(differing, 0);
    ck_assert(memcmp(straight, half, P * sizeof(float)) != 0);
    tu_tmpdir_remove();
    free(straight); free(again); free(resumed); free(half);
    toy_free(&d);
}
END_TEST

int main(void) {
    Suite *s = suite_create("training");
    TCase *tc = tcase_create("training");
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, test_lr_schedule);
    tcase_add_test(tc, test_copy_task_is_learned);
    tcase_add_test(tc, test_freeze_layers);
    tcase_add_test(tc, test_gradient_accumulation_averages);
    tcase_add_test(tc, test_nan_gradient_rejected);
    tcase_add_test(tc, test_nan_loss_step_rejected);
    tcase_add_test(tc, test_repeat_and_resume_are_bit_exact);
    suite_add_tcase(s, tc);
    return tu_run(s);
}
