/* Partial finetuning: train only the first or the last n blocks of a model
 * (everything else frozen) and compare decodability and accuracy with the
 * original (include/icl/finetune.h). */
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include "error.h"
#include "icl/eval.h"
#include "icl/finetune.h"

const char *icl_ft_part_name(icl_ft_part p) {
    switch (p) {
    case ICL_FT_FIRST: return "first";
    case ICL_FT_LAST: return "last";
    }
    return NULL;
}

icl_finetune_options icl_finetune_options_default(void) {
    icl_finetune_options o;
    memset(&o, 0, sizeof o);
    o.n_layers = 1;
    o.steps = 200;
    o.batch = 32;
    o.optim = icl_optim_config_default();
    o.optim.total_steps = 0;
    o.optim.warmup_steps = -1;
    o.train_io = 0;
    o.tasks = NULL;
    o.n_tasks = 0;
    o.n_examples = -1;
    o.seed = 1;
    return o;
}

icl_finetune_eval_options icl_finetune_eval_options_default(void) {
    icl_finetune_eval_options e = {NULL, NULL, ICL_KNN_DEFAULT_K, 100, 12345, 0};
    return e;
}

/* The family's prompts must be valid inputs of the model. */
static icl_status check_fit(const icl_model *m, const icl_task_family *f, int n_examples) {
    const icl_config *cfg = icl_model_config(m);
    if (icl_task_family_mode(f) != cfg->mode)
        return icl_fail(ICL_ERR_INVALID_ARG, "family %s and the model differ in input mode", icl_task_family_name(f));
    if (cfg->mode == ICL_MODE_TOKEN && icl_task_family_vocab_size(f) > cfg->vocab_size)
        return icl_fail(ICL_ERR_INVALID_ARG, "family %s needs %d tokens, the model has %d", icl_task_family_name(f),
                        icl_task_family_vocab_size(f), cfg->vocab_size);
    if (cfg->mode == ICL_MODE_VECTOR &&
        (icl_task_family_d_in(f) != cfg->d_in || icl_task_family_d_out(f) != cfg->d_out))
        return icl_fail(ICL_ERR_INVALID_ARG, "family %s has d_in %d / d_out %d, the model %d / %d",
                        icl_task_family_name(f), icl_task_family_d_in(f), icl_task_family_d_out(f), cfg->d_in,
                        cfg->d_out);
    int T;
    ICL_TRY(icl_task_family_prompt_len(f, n_examples, &T));
    if (T > cfg->ctx)
        return icl_fail(ICL_ERR_INVALID_ARG, "prompts of %d positions exceed the model context %d", T, cfg->ctx);
    return ICL_OK;
}

/* Freeze everything, then unfreeze the blocks (and layers) `part` trains. */
static icl_status set_trainable(icl_optimizer *o, int L, icl_ft_part part, int n, int train_io) {
    static const icl_group_kind all[] = {ICL_GROUP_EMBED, ICL_GROUP_POSITION,   ICL_GROUP_ATTN, ICL_GROUP_MLP,
                                         ICL_GROUP_NORM,  ICL_GROUP_FINAL_NORM, ICL_GROUP_HEAD};
    for (size_t i = 0; i < sizeof all / sizeof all[0]; i++) ICL_TRY(icl_optimizer_freeze(o, all[i], -1, 1));
    ICL_TRY(icl_optimizer_freeze_layers(o, part == ICL_FT_FIRST ? 0 : L - n, n, 0));
    if (train_io && part == ICL_FT_FIRST) {
        ICL_TRY(icl_optimizer_freeze(o, ICL_GROUP_EMBED, -1, 0));
        ICL_TRY(icl_optimizer_freeze(o, ICL_GROUP_POSITION, -1, 0));
    }
    if (train_io && part == ICL_FT_LAST) {
        ICL_TRY(icl_optimizer_freeze(o, ICL_GROUP_FINAL_NORM, -1, 0));
        ICL_TRY(icl_optimizer_freeze(o, ICL_GROUP_HEAD, -1, 0));
    }
    return ICL_OK;
}

/* icl_finetune_layers, with the loss of every step into step_losses (opt->steps) when it is not NULL. */
static icl_status finetune(icl_model *m, const icl_task_family *f, icl_ft_part part, const icl_finetune_options *opt,
                           double *final_loss, double *step_losses) {
    if (!m || !f || !opt)
        return icl_fail(ICL_ERR_INVALID_ARG, "icl_finetune_layers: NULL argument");
    int L = icl_model_config(m)->n_layer;
    if ((unsigned)part > ICL_FT_LAST)
        return icl_fail(ICL_ERR_INVALID_ARG, "unknown finetuning part %d (first or last)", (int)part);
    if (opt->n_layers < 1 || opt->n_layers > L)
        return icl_fail(ICL_ERR_INVALID_ARG, "finetuning %d blocks: out of range [1, %d]", opt->n_layers, L);
    if (opt->steps < 1 || opt->batch < 1)
        return icl_fail(ICL_ERR_INVALID_ARG, "finetuning needs steps >= 1 and batch >= 1 (got %ld, %d)", opt->steps,
                        opt->batch);
    if (opt->tasks && opt->n_tasks < 1)
        return icl_fail(ICL_ERR_INVALID_ARG, "the task set is empty");
    int n_ex = opt->n_examples < 0 ? icl_task_family_default_examples(f) : opt->n_examples;
    ICL_TRY(check_fit(m, f, n_ex));
    icl_optim_config oc = opt->optim;
    if (oc.total_steps <= 0)
        oc.total_steps = (int)opt->steps;
    if (oc.warmup_steps < 0)
        oc.warmup_steps = opt->steps / 10 < 100 ? (int)(opt->steps / 10) : 100;
    icl_optimizer *o;
    ICL_TRY(icl_optimizer_create(&o, m, &oc));
    icl_status s = set_trainable(o, L, part, opt->n_layers, opt->train_io);
    icl_task_batch_options bo = icl_task_batch_options_default();
    bo.B = opt->batch;
    bo.n_examples = n_ex;
    bo.tasks = opt->tasks;
    bo.n_tasks = opt->tasks ? opt->n_tasks : 0;
    icl_task_batch tb;
    memset(&tb, 0, sizeof tb);
    icl_rng data;
    icl_rng_init(&data, opt->seed, "finetune-data");
    long tail = opt->steps < 10 ? opt->steps : 10;
    double loss_sum = 0.0;
    for (long step = 1; s == ICL_OK && step <= opt->steps; step++) {
        icl_step_stats st;
        s = icl_task_batch_generate(f, &bo, &data, &tb);
        if (s == ICL_OK)
            s = icl_train_step(m, o, &tb.batch, 1, &st);
        if (s == ICL_OK && step > opt->steps - tail)
            loss_sum += st.loss;
        if (s == ICL_OK && step_losses)
            step_losses[step - 1] = st.loss;
    }
    if (s == ICL_OK && final_loss)
        *final_loss = loss_sum / (double)tail;
    icl_task_batch_free(&tb);
    icl_optimizer_free(o);
    return s;
}

icl_status icl_finetune_layers(icl_model *m, const icl_task_family *f, icl_ft_part part,
                               const icl_finetune_options *opt, double *final_loss) {
    return finetune(m, f, part, opt, final_loss, NULL);
}

void icl_finetune_result_free(icl_finetune_result *r) {
    if (!r)
        return;
    free(r->td_mean);
    free(r->td_best_task);
    free(r->loss);
    free(r->metric);
    free(r->train_loss);
    icl_repr_prompts_free(&r->td_prompts);
    for (int v = 0; v < ICL_FT_VARIANTS; v++) {
        icl_repr_set_free(&r->td_repr[v]);
        icl_eval_detail_free(&r->eval[v]);
    }
    memset(r, 0, sizeof *r);
}

/* Decodability of the prompt set and accuracy of one variant into row v of the result; with keep_inputs its
 * representations and per-prompt evaluation stay in the result. */
static icl_status measure(icl_model *m, const icl_task_family *f, const icl_finetune_eval_options *ev,
                          const icl_repr_prompts *set, const icl_repr_site *site, int v, icl_finetune_result *out) {
    icl_td_options to = icl_td_options_default();
    to.k = ev->k;
    icl_repr_set r;
    icl_td_result td;
    ICL_TRY(icl_repr_collect(m, set->prompts, set->n, site, ICL_REPR_BATCH, &r));
    icl_status s = icl_td_from_repr(&r, set->labels, set->n_tasks, &to, &td);
    if (s == ICL_OK && out->td_mean == NULL) {
        out->levels = td.levels;
        out->n_td_tasks = td.n_tasks;
        out->td_mean = malloc((size_t)ICL_FT_VARIANTS * td.levels * sizeof *out->td_mean);
        out->td_best_task = malloc((size_t)ICL_FT_VARIANTS * td.n_tasks * sizeof *out->td_best_task);
        if (!out->td_mean || !out->td_best_task)
            s = icl_fail(ICL_ERR_NOMEM, "icl_finetune_run: out of memory");
    }
    if (s == ICL_OK) {
        memcpy(out->td_mean + (size_t)v * td.levels, td.td_mean, (size_t)td.levels * sizeof *td.td_mean);
        memcpy(out->td_best_task + (size_t)v * td.n_tasks, td.td + (size_t)td.best_level * td.n_tasks,
               (size_t)td.n_tasks * sizeof *td.td);
        out->best_level[v] = td.best_level;
        out->td_best[v] = td.td_mean[td.best_level];
    }
    icl_td_result_free(&td);
    if (s == ICL_OK && ev->keep_inputs)
        out->td_repr[v] = r;
    else
        icl_repr_set_free(&r);
    if (s != ICL_OK)
        return s;
    double *loss = out->loss + (size_t)v * out->n_tasks, *metric = out->metric + (size_t)v * out->n_tasks;
    return ev->keep_inputs ? icl_eval_tasks_detail(m, f, ev->eval_prompts, ev->eval_seed, loss, metric, &out->eval[v])
                           : icl_eval_tasks(m, f, ev->eval_prompts, ev->eval_seed, loss, metric);
}

icl_status icl_finetune_run(icl_model *m, const icl_task_family *f, const icl_finetune_options *opt,
                            const icl_finetune_eval_options *ev, icl_finetune_result *out) {
    if (!m || !f || !opt || !out)
        return icl_fail(ICL_ERR_INVALID_ARG, "icl_finetune_run: NULL argument");
    memset(out, 0, sizeof *out);
    icl_finetune_eval_options e = ev ? *ev : icl_finetune_eval_options_default();
    if (e.eval_prompts < 1)
        return icl_fail(ICL_ERR_INVALID_ARG, "evaluation prompts per task must be >= 1, got %d", e.eval_prompts);
    if (e.keep_inputs != 0 && e.keep_inputs != 1)
        return icl_fail(ICL_ERR_INVALID_ARG, "keep_inputs must be 0 or 1, got %d", e.keep_inputs);
    if (opt->steps < 1)
        return icl_fail(ICL_ERR_INVALID_ARG, "finetuning needs steps >= 1 (got %ld)", opt->steps);
    icl_repr_prompts_options po = e.td_prompts ? *e.td_prompts : icl_repr_prompts_options_default();
    icl_repr_site site = e.site ? *e.site : icl_repr_site_default(f);
    out->n_tasks = icl_task_family_num_tasks(f);
    out->variant_names[0] = "original";
    out->variant_names[1] = icl_ft_part_name(ICL_FT_FIRST);
    out->variant_names[2] = icl_ft_part_name(ICL_FT_LAST);
    out->final_loss[0] = NAN;
    out->steps = opt->steps;
    out->loss = malloc((size_t)ICL_FT_VARIANTS * out->n_tasks * sizeof *out->loss);
    out->metric = malloc((size_t)ICL_FT_VARIANTS * out->n_tasks * sizeof *out->metric);
    out->train_loss = malloc((size_t)ICL_FT_VARIANTS * opt->steps * sizeof *out->train_loss);
    icl_status s = (out->loss && out->metric && out->train_loss)
                       ? ICL_OK
                       : icl_fail(ICL_ERR_NOMEM, "icl_finetune_run: out of memory");
    for (long i = 0; s == ICL_OK && i < opt->steps; i++) out->train_loss[i] = NAN;
    if (s == ICL_OK)
        s = icl_repr_prompts_generate(f, &po, &out->td_prompts);
    if (s == ICL_OK && out->td_prompts.n_tasks < 2)
        s = icl_fail(ICL_ERR_INVALID_ARG, "task decodability needs at least 2 tasks");
    if (s == ICL_OK)
        s = measure(m, f, &e, &out->td_prompts, &site, 0, out);
    for (int v = 1; s == ICL_OK && v < ICL_FT_VARIANTS; v++) {
        icl_model *copy;
        if ((s = icl_model_clone(m, &copy)) != ICL_OK)
            break;
        icl_ft_part part = v == 1 ? ICL_FT_FIRST : ICL_FT_LAST;
        s = finetune(copy, f, part, opt, &out->final_loss[v], out->train_loss + (size_t)v * opt->steps);
        if (s == ICL_OK)
            s = measure(copy, f, &e, &out->td_prompts, &site, v, out);
        icl_model_free(copy);
    }
    if (s == ICL_OK && !e.keep_inputs)
        icl_repr_prompts_free(&out->td_prompts);
    if (s != ICL_OK)
        icl_finetune_result_free(out);
    return s;
}
