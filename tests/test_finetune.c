/* Partial finetuning: frozen blocks stay bit-identical while the chosen ones
 * change, clones are exact, the comparison's "original" row equals direct
 * measurements, and bad requests are rejected. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "icl/icl.h"
#include "icl/finetune.h"
#include "testutil.h"

static icl_task_family *family(const char *spec) {
    icl_task_family *f;
    ck_assert_int_eq(icl_task_family_create(&f, spec), ICL_OK);
    return f;
}

static icl_model *model_for(const icl_task_family *f, int layers, int ctx, int tied) {
    return tu_model((tu_model_shape){.n_layer = layers, .d_model = 16, .n_head = 2, .d_ff = 32, .ctx = ctx,
            .untied = !tied, .family = f}, 7);
}

static float *params_of(const icl_model *m) {
    size_t n = icl_model_num_params(m);
    float *p = tu_floats(n);
    ck_assert_int_eq(icl_model_get_params(m, p, n), ICL_OK);
    return p;
}

/* Should tensor t train when `part` of n blocks (of L) trains, with or without the input/output layers? */
static int trains(const icl_param_info *t, icl_ft_part part, int n, int L, int io) {
    if (t->layer >= 0)
        return part == ICL_FT_FIRST ? t->layer < n : t->layer >= L - n;
    if (!io)
        return 0;
    if (part == ICL_FT_FIRST)
        return t->group == ICL_GROUP_EMBED || t->group == ICL_GROUP_POSITION;
    return t->group == ICL_GROUP_FINAL_NORM || t->group == ICL_GROUP_HEAD;
}

/* Finetune and check every tensor: frozen ones bit-identical, trained ones changed. */
static void check_part(icl_ft_part part, int n, int io) {
    icl_task_family *f = family("retrieval:A=8,L=4,n=3");
    icl_model *m = model_for(f, 3, 28, 0);
    float *before = params_of(m);
    icl_finetune_options o = icl_finetune_options_default();
    o.n_layers = n;
    o.steps = 4;
    o.batch = 8;
    o.train_io = io;
    o.optim.lr = 1e-2f;
    double loss;
    ck_assert_int_eq(icl_finetune_layers(m, f, part, &o, &loss), ICL_OK);
    ck_assert(isfinite(loss) && loss > 0);
    float *after = params_of(m);
    int changed = 0, kept = 0;
    for (int i = 0; i < icl_model_num_tensors(m); i++) {
        const icl_param_info *t = icl_model_tensor(m, i);
        int same = memcmp(before + t->offset, after + t->offset, t->numel * sizeof(float)) == 0;
        if (trains(t, part, n, 3, io)) {
            ck_assert_msg(!same, "%s should have trained", t->name);
            changed++;
        } else {
            ck_assert_msg(same, "%s should be frozen", t->name);
            kept++;
        }
    }
    printf("  %s %d%s: %d tensors trained, %d bit-identical, final loss %.3f\n", icl_ft_part_name(part), n,
           io ? " (+io)" : "", changed, kept, loss);
    ck_assert(changed > 0 && kept > 0);
    free(before);
    free(after);
    icl_model_free(m);
    icl_task_family_free(f);
}

START_TEST(test_last_one_frozen_first) { check_part(ICL_FT_LAST, 1, 0); }
END_TEST

START_TEST(test_first_two_frozen_last) { check_part(ICL_FT_FIRST, 2, 0); }
END_TEST

START_TEST(test_io_layers) {
    check_part(ICL_FT_FIRST, 1, 1);
    check_part(ICL_FT_LAST, 1, 1);
}
END_TEST

START_TEST(test_clone_is_exact) {
    icl_task_family *f = family("basis_mixture_small:K=4");
    icl_model *m = model_for(f, 2, 10, 1), *c;
    ck_assert_int_eq(icl_model_clone(m, &c), ICL_OK);
    float *a = params_of(m), *b = params_of(c);
    ck_assert(memcmp(a, b, icl_model_num_params(m) * sizeof(float)) == 0);
    ck_assert(memcmp(icl_model_config(m), icl_model_config(c), sizeof(icl_config)) == 0);
    free(a);
    free(b);
    icl_model_free(c);
    icl_model_free(m);
    icl_task_family_free(f);
}
END_TEST

/* The comparison leaves the model as it was; its original row equals direct TD and evaluation. */
START_TEST(test_compare_original_row) {
    icl_task_family *f = family("basis_mixture_small:K=4");
    icl_model *m = model_for(f, 2, 10, 1);
    float *before = params_of(m);
    icl_finetune_options o = icl_finetune_options_default();
    o.steps = 3;
    o.batch = 8;
    icl_repr_prompts_options po = icl_repr_prompts_options_default();
    po.prompts_per_task = 10;
    icl_finetune_eval_options ev = icl_finetune_eval_options_default();
    ev.td_prompts = &po;
    ev.k = 5;
    ev.eval_prompts = 8;
    icl_finetune_result r;
    ck_assert_int_eq(icl_finetune_run(m, f, &o, &ev, &r), ICL_OK);
    float *after = params_of(m);
    ck_assert(memcmp(before, after, icl_model_num_params(m) * sizeof(float)) == 0);
    icl_td_options to = icl_td_options_default();
    to.k = 5;
    icl_td_result td;
    ck_assert_int_eq(icl_decodability_run(m, f, &po, NULL, &to, &td), ICL_OK);
    ck_assert(memcmp(r.td_mean, td.td_mean, (size_t)td.levels * sizeof(double)) == 0);
    ck_assert_int_eq(r.best_level[0], td.best_level);
    double loss[4], metric[4];
    ck_assert_int_eq(icl_eval_tasks(m, f, 8, ev.eval_seed, loss, metric), ICL_OK);
    ck_assert(memcmp(r.metric, metric, sizeof metric) == 0);
    ck_assert(isnan(r.final_loss[0]) && isfinite(r.final_loss[1]) && isfinite(r.final_loss[2]));
    for (int v = 0; v < ICL_FT_VARIANTS; v++)
        printf("  %-8s TD %.3f at level %d, MSE basis_0 %.3f\n", r.variant_names[v], r.td_best[v], r.best_level[v],
               r.metric[(size_t)v * r.n_tasks]);
    /* the finetuned copies differ from the original */
    ck_assert(memcmp(r.metric, r.metric + 4, sizeof metric) != 0);
    ck_assert(memcmp(r.metric, r.metric + 8, sizeof metric) != 0);
    /* without keep_inputs nothing is kept; the step losses always are */
    ck_assert(r.td_prompts.prompts == NULL && r.td_repr[1].X == NULL && r.eval[2].prompts == NULL);
    ck_assert_int_eq(r.steps, 3);
    ck_assert(isnan(r.train_loss[0]) && r.train_loss[3] > 0 && r.train_loss[8] > 0);
    icl_td_result_free(&td);
    icl_finetune_result_free(&r);
    free(before);
    free(after);
    icl_model_free(m);
    icl_task_family_free(f);
}
END_TEST

/* keep_inputs: the figures follow from what the result keeps (the representations give TD, each
 * prompt's losses and score give loss and metric, the step losses give the final loss), and keeping
 * changes no figure. */
START_TEST(test_kept_inputs) {
    icl_task_family *f = family("retrieval:A=8,L=4,tasks=3,n=3");
    icl_model *m = model_for(f, 2, 28, 1);
    icl_finetune_options o = icl_finetune_options_default();
    o.steps = 12;
    o.batch = 4;
    icl_repr_prompts_options po = icl_repr_prompts_options_default();
    po.prompts_per_task = 6;
    icl_finetune_eval_options ev = icl_finetune_eval_options_default();
    ev.td_prompts = &po;
    ev.k = 3;
    ev.eval_prompts = 70; /* two chunks of icl_eval_tasks' batch of 64 */
    icl_finetune_result plain, r;
    ck_assert_int_eq(icl_finetune_run(m, f, &o, &ev, &plain), ICL_OK);
    ev.keep_inputs = 1;
    ck_assert_int_eq(icl_finetune_run(m, f, &o, &ev, &r), ICL_OK);
    int nt = r.n_tasks, L1 = r.levels;
    ck_assert(memcmp(plain.td_mean, r.td_mean, (size_t)ICL_FT_VARIANTS * L1 * sizeof(double)) == 0);
    ck_assert(memcmp(plain.loss, r.loss, (size_t)ICL_FT_VARIANTS * nt * sizeof(double)) == 0);
    ck_assert(memcmp(plain.metric, r.metric, (size_t)ICL_FT_VARIANTS * nt * sizeof(double)) == 0);
    ck_assert(memcmp(plain.final_loss, r.final_loss, sizeof r.final_loss) == 0);
    ck_assert_int_eq(r.td_prompts.n, 18);
    double worst = 0.0;
    for (int v = 0; v < ICL_FT_VARIANTS; v++) {
        icl_td_options to = icl_td_options_default();
        to.k = 3;
        icl_td_result td;
        ck_assert_int_eq(icl_td_from_repr(&r.td_repr[v], r.td_prompts.labels, r.td_prompts.n_tasks, &to, &td),
                         ICL_OK);
        ck_assert(memcmp(td.td_mean, r.td_mean + (size_t)v * L1, (size_t)L1 * sizeof(double)) == 0);
        icl_td_result_free(&td);
        const icl_eval_detail *d = &r.eval[v];
        ck_assert_int_eq(d->n, nt * 70);
        for (int t = 0; t < nt; t++) {
            double wl = 0, w = 0, sc = 0;
            for (int i = t * 70; i < (t + 1) * 70; i++) {
                ck_assert_int_eq(d->prompts[i].task, t);
                for (int p = 0; p < d->prompts[i].T; p++) {
                    w += d->prompts[i].loss_weights[p];
                    wl += (double)d->prompts[i].loss_weights[p] * d->losses[(size_t)i * d->T + p];
                }
                sc += d->score[i];
            }
            worst = fmax(worst, fabs(wl / w - r.loss[(size_t)v * nt + t]));
            worst = fmax(worst, fabs(sc / 70 - r.metric[(size_t)v * nt + t]));
        }
        if (v > 0) {
            double tail = 0;
            for (int s = 2; s < 12; s++) tail += r.train_loss[(size_t)v * 12 + s];
            worst = fmax(worst, fabs(tail / 10 - r.final_loss[v]));
        }
    }
    printf("  figures from the kept inputs: max difference %.3g\n", worst);
    ck_assert(worst < 1e-12);
    icl_finetune_result_free(&plain);
    icl_finetune_result_free(&r);
    icl_model_free(m);
    icl_task_family_free(f);
}
END_TEST

START_TEST(test_bad_requests) {
    icl_task_family *f = family("retrieval:A=8,L=4,n=3"), *fv = family("basis_mixture_small:K=4");
    icl_task_family *big = family("retrieval:A=8,L=4,n=6");
    icl_model *m = model_for(f, 2, 28, 1);
    icl_finetune_options o = icl_finetune_options_default();
    o.steps = 1;
    o.batch = 2;
    o.n_layers = 0;
    ck_assert_int_eq(icl_finetune_layers(m, f, ICL_FT_FIRST, &o, NULL), ICL_ERR_INVALID_ARG);
    printf("  %s\n", icl_last_error());
    o.n_layers = 3;
    ck_assert_int_eq(icl_finetune_layers(m, f, ICL_FT_LAST, &o, NULL), ICL_ERR_INVALID_ARG);
    o.n_layers = 1;
    ck_assert_int_eq(icl_finetune_layers(m, f, (icl_ft_part)5, &o, NULL), ICL_ERR_INVALID_ARG);
    int none[1] = {0};
    o.tasks = none;
    o.n_tasks = 0;
    ck_assert_int_eq(icl_finetune_layers(m, f, ICL_FT_FIRST, &o, NULL), ICL_ERR_INVALID_ARG);
    printf("  %s\n", icl_last_error());
    o.tasks = NULL;
    o.steps = 0;
    ck_assert_int_eq(icl_finetune_layers(m, f, ICL_FT_FIRST, &o, NULL), ICL_ERR_INVALID_ARG);
    o.steps = 1;
    ck_assert_int_eq(icl_finetune_layers(m, fv, ICL_FT_FIRST, &o, NULL), ICL_ERR_INVALID_ARG);
    printf("  %s\n", icl_last_error());
    ck_assert_int_eq(icl_finetune_layers(m, big, ICL_FT_FIRST, &o, NULL), ICL_ERR_INVALID_ARG);
    printf("  %s\n", icl_last_error());
    icl_finetune_eval_options ev = icl_finetune_eval_options_default();
    ev.eval_prompts = 0;
    icl_finetune_result r;
    ck_assert_int_eq(icl_finetune_run(m, f, &o, &ev, &r), ICL_ERR_INVALID_ARG);
    ev = icl_finetune_eval_options_default();
    ev.keep_inputs = 2;
    ck_assert_int_eq(icl_finetune_run(m, f, &o, &ev, &r), ICL_ERR_INVALID_ARG);
    double loss[1], metric[1];
    ck_assert_int_eq(icl_eval_tasks_detail(m, f, 4, 1, loss, metric, NULL), ICL_ERR_INVALID_ARG);
    icl_eval_detail d;
    ck_assert_int_eq(icl_eval_tasks_detail(m, f, 0, 1, loss, metric, &d), ICL_ERR_INVALID_ARG);
    ck_assert(d.prompts == NULL && d.losses == NULL);
    icl_model_free(m);
    icl_task_family_free(f);
    icl_task_family_free(fv);
    icl_task_family_free(big);
}
END_TEST

int main(void) {
    Suite *s = suite_create("finetune");
    TCase *tc = tcase_create("core");
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, test_last_one_frozen_first);
    tcase_add_test(tc, test_first_two_frozen_last);
    tcase_add_test(tc, test_io_layers);
    tcase_add_test(tc, test_clone_is_exact);
    tcase_add_test(tc, test_compare_original_row);
    tcase_add_test(tc, test_kept_inputs);
    tcase_add_test(tc, test_bad_requests);
    suite_add_tcase(s, tc);
    return tu_run(s);
}
