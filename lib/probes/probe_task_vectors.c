/* Task vectors (include/icl/task_vectors.h): prompt sets, answer scoring under
 * interventions, extraction of mean residuals, and the patching experiments of
 * Hendel et al., Han et al. and Xiong et al. */
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include "error.h"
#include "icl/readout.h"
#include "icl/task_vectors.h"
#include "probe_internal.h"

/* ---- prompt sets ---- */

/* Permute the example answers of a token prompt among its examples (each
 * answer is answer_len contiguous tokens), then refresh the targets. */
static icl_status shuffle_answers(icl_prompt *p, icl_rng *rng) {
    int A = p->answer_len, n = 0;
    int *start = malloc((size_t)(p->n_examples > 0 ? p->n_examples : 1) * sizeof *start);
    int *order = malloc((size_t)(p->n_examples > 0 ? p->n_examples : 1) * sizeof *order);
    int32_t *saved = malloc((size_t)(p->n_examples > 0 ? p->n_examples : 1) * A * sizeof *saved);
    if (!start || !order || !saved) {
        free(start);
        free(order);
        free(saved);
        return icl_fail(ICL_ERR_NOMEM, "shuffle labels: out of memory");
    }
    for (int t = 0; t < p->T && n < p->n_examples; t++)
        if (p->roles[t] == ICL_ROLE_EX_ANSWER && (t == 0 || p->roles[t - 1] != ICL_ROLE_EX_ANSWER))
            start[n++] = t;
    for (int e = 0; e < n; e++) {
        order[e] = e;
        memcpy(saved + (size_t)e * A, p->tokens + start[e], (size_t)A * sizeof *saved);
    }
    icl_rng_shuffle_int(rng, order, n);
    for (int e = 0; e < n; e++)
        memcpy(p->tokens + start[e], saved + (size_t)order[e] * A, (size_t)A * sizeof *saved);
    for (int t = 0; t + 1 < p->T; t++)
        p->targets[t] = p->tokens[t + 1];
    free(start);
    free(order);
    free(saved);
    return ICL_OK;
}

icl_status icl_prompt_set_batch(const icl_task_family *f, const icl_prompt_set *ps, int first, int count,
                                icl_task_batch *out) {
    if (!f || !ps || !ps->stream || !out)
        return icl_fail(ICL_ERR_INVALID_ARG, "icl_prompt_set_batch: NULL argument");
    if (ps->task < 0 || ps->task >= icl_task_family_num_tasks(f))
        return icl_fail(ICL_ERR_INVALID_ARG, "icl_prompt_set_batch: unknown task %d (family %s has tasks 0..%d)",
                        ps->task, icl_task_family_name(f), icl_task_family_num_tasks(f) - 1);
    if (ps->n_examples < 0)
        return icl_fail(ICL_ERR_INVALID_ARG, "icl_prompt_set_batch: n_examples must be >= 0, got %d", ps->n_examples);
    if (first < 0 || count < 1)
        return icl_fail(ICL_ERR_INVALID_ARG, "icl_prompt_set_batch: need first >= 0 and count >= 1, got %d and %d",
                        first, count);
    if (ps->shuffle_labels && icl_task_family_mode(f) != ICL_MODE_TOKEN)
        return icl_fail(ICL_ERR_UNSUPPORTED, "icl_prompt_set_batch: shuffled labels need a token family, not %s",
                        icl_task_family_name(f));
    icl_gen_options gen = icl_gen_options_default();
    gen.loss = ps->loss;
    gen.ctx = ps->ctx;
    icl_rng root, per_task;
    icl_rng_init(&root, ps->seed, ps->stream);
    icl_rng_split(&per_task, &root, (uint64_t)ps->task);
    icl_prompt *prompts = calloc((size_t)count, sizeof *prompts);
    const icl_prompt **rows = malloc((size_t)count * sizeof *rows);
    icl_status s = (prompts && rows) ? ICL_OK : icl_fail(ICL_ERR_NOMEM, "icl_prompt_set_batch: out of memory");
    for (int i = 0; s == ICL_OK && i < count; i++) {
        icl_rng r;
        icl_rng_split(&r, &per_task, (uint64_t)(first + i));
        s = icl_task_generate(f, ps->task, ps->n_examples, &gen, &r, &prompts[i]);
        if (s == ICL_OK && ps->shuffle_labels)
            s = shuffle_answers(&prompts[i], &r);
        rows[i] = &prompts[i];
    }
    if (s == ICL_OK)
        s = icl_task_batch_pack(out, rows, count, 0);
    icl_prompt_array_free(prompts, count);
    free(rows);
    return s;
}

/* ---- task vectors ---- */

icl_role icl_tv_query_role(icl_input_mode mode) {
    return mode == ICL_MODE_VECTOR ? ICL_ROLE_QUERY_INPUT : ICL_ROLE_QUERY_SEP;
}

icl_status icl_tv_intervention(const icl_model *m, int level, icl_tv_mode mode, const float *vector,
                               icl_intervention *out) {
    probe_dims dims = probe_dims_of(m);
    if (!m || !vector || !out)
        return icl_fail(ICL_ERR_INVALID_ARG, "icl_tv_intervention: NULL argument");
    if (level < 0 || level > dims.L)
        return icl_fail(ICL_ERR_INVALID_ARG, "icl_tv_intervention: level %d out of range [0, %d] (0 = embedding, "
                                             "l+1 = resid_post of block l)", level, dims.L);
    if (mode != ICL_TV_REPLACE && mode != ICL_TV_ADD)
        return icl_fail(ICL_ERR_INVALID_ARG, "icl_tv_intervention: unknown mode %d", (int)mode);
    *out = level == 0 ? icl_intervention_make(ICL_POINT_EMBED, -1, ICL_IV_SET)
                      : icl_intervention_make(ICL_POINT_RESID_POST, level - 1, ICL_IV_SET);
    out->op = mode == ICL_TV_REPLACE ? ICL_IV_SET : ICL_IV_ADD;
    out->pos = icl_pos_role(icl_tv_query_role(dims.mode));
    out->vector = vector;
    return ICL_OK;
}

/* The family's prompts fit the model: same mode, and the tokens or widths agree. */
static icl_status check_pair(const icl_model *m, const icl_task_family *f, const char *fn) {
    probe_dims dims = probe_dims_of(m);
    const icl_config *cfg = icl_model_config(m);
    const char *name = icl_task_family_name(f);
    if (dims.mode != icl_task_family_mode(f))
        return icl_fail(ICL_ERR_INVALID_ARG, "%s: the model is %s-mode but family %s is not", fn,
                        dims.mode == ICL_MODE_TOKEN ? "token" : "vector", name);
    if (dims.mode == ICL_MODE_TOKEN && icl_task_family_vocab_size(f) > dims.V)
        return icl_fail(ICL_ERR_INVALID_ARG, "%s: family %s needs %d tokens, the model has %d", fn, name,
                        icl_task_family_vocab_size(f), dims.V);
    int d_in = icl_task_family_d_in(f), d_out = icl_task_family_d_out(f);
    if (dims.mode == ICL_MODE_VECTOR && (d_in != cfg->d_in || d_out != cfg->d_out))
        return icl_fail(ICL_ERR_INVALID_ARG, "%s: family %s has d_in %d, d_out %d; the model %d, %d", fn, name,
                        d_in, d_out, cfg->d_in, cfg->d_out);
    return ICL_OK;
}

/* Task ids valid in f; tasks NULL means every task. */
static icl_status check_tasks(const icl_task_family *f, const int *tasks, int n_tasks, const char *fn) {
    if (!tasks)
        return ICL_OK;
    if (n_tasks < 1)
        return icl_fail(ICL_ERR_INVALID_ARG, "%s: the task set is empty", fn);
    for (int i = 0; i < n_tasks; i++)
        if (tasks[i] < 0 || tasks[i] >= icl_task_family_num_tasks(f))
            return icl_fail(ICL_ERR_INVALID_ARG, "%s: unknown task %d (family %s has tasks 0..%d)", fn, tasks[i],
                            icl_task_family_name(f), icl_task_family_num_tasks(f) - 1);
    return ICL_OK;
}

static icl_prompt_set prompt_set(const icl_model *m, uint64_t seed, const char *stream, int task, int k) {
    probe_dims dims = probe_dims_of(m);
    icl_prompt_set ps = {seed, stream, task, k, 0, dims.ctx,
                         dims.mode == ICL_MODE_VECTOR ? ICL_LOSS_QUERY : ICL_LOSS_ANSWERS};
    return ps;
}

icl_status icl_tv_mean_residuals(icl_model *m, const icl_task_family *f, const int *tasks, int n_tasks,
                                 int n_examples, int n_prompts, int batch, uint64_t seed, const char *stream,
                                 float *means) {
    probe_dims dims = probe_dims_of(m);
    const char *fn = "icl_tv_mean_residuals";
    if (!m || !f || !tasks || !stream || !means)
        return icl_fail(ICL_ERR_INVALID_ARG, "%s: NULL argument", fn);
    ICL_TRY(check_pair(m, f, fn));
    ICL_TRY(check_tasks(f, tasks, n_tasks, fn));
    if (n_examples < 0 || n_prompts < 1 || batch < 1)
        return icl_fail(ICL_ERR_INVALID_ARG, "%s: need k >= 0, n_prompts >= 1 and batch >= 1, got %d, %d, %d", fn,
                        n_examples, n_prompts, batch);
    int NL = dims.L + 1, C = dims.C, chunk = batch < n_prompts ? batch : n_prompts;
    size_t per_task = (size_t)NL * C;
    double *sum = malloc(per_task * sizeof *sum);
    float *res = malloc((size_t)NL * chunk * C * sizeof *res);
    icl_task_batch tb = {0};
    icl_status s = (sum && res) ? ICL_OK : icl_fail(ICL_ERR_NOMEM, "%s: out of memory", fn);
    icl_positions pos = icl_pos_role(icl_tv_query_role(dims.mode));
    for (int i = 0; s == ICL_OK && i < n_tasks; i++) {
        icl_prompt_set ps = prompt_set(m, seed, stream, tasks[i], n_examples);
        memset(sum, 0, per_task * sizeof *sum);
        for (int first = 0; s == ICL_OK && first < n_prompts; first += chunk) {
            int cnt = n_prompts - first < chunk ? n_prompts - first : chunk;
            s = icl_prompt_set_batch(f, &ps, first, cnt, &tb);
            if (s == ICL_OK)
                s = icl_residuals_at(m, &tb, pos, NULL, 0, res);
            for (int l = 0; s == ICL_OK && l < NL; l++)
                for (int b = 0; b < cnt; b++)
                    for (int c = 0; c < C; c++)
                        sum[(size_t)l * C + c] += res[((size_t)l * cnt + b) * C + c];
        }
        for (size_t j = 0; s == ICL_OK && j < per_task; j++)
            means[i * per_task + j] = (float)(sum[j] / n_prompts);
    }
    icl_task_batch_free(&tb);
    free(sum);
    free(res);
    return s;
}

icl_tv_options icl_tv_options_default(const icl_task_family *f) {
    icl_tv_options o;
    memset(&o, 0, sizeof o);
    o.n_prompts = 100;
    o.n_examples = f ? icl_task_family_default_examples(f) : 8;
    o.eval_prompts = 100;
    o.target_examples = o.n_examples;
    o.mode = ICL_TV_REPLACE;
    o.level = -1;
    o.n_alpha = 11;
    o.batch = 64;
    o.seed = 1;
    return o;
}

void icl_tv_result_free(icl_tv_result *r) {
    if (!r)
        return;
    free(r->tasks);
    free(r->vectors);
    free(r->zs_p0);
    free(r->zs_acc0);
    free(r->zs_p);
    free(r->zs_acc);
    free(r->base_p);
    free(r->base_acc);
    free(r->mat_p);
    free(r->mat_acc);
    free(r->mat_p_own);
    free(r->mat_acc_own);
    free(r->pairs);
    free(r->alphas);
    free(r->interp);
    free(r->base_mse);
    free(r->mat_mse);
    free(r->mix_alpha);
    free(r->mix_offline);
    memset(r, 0, sizeof *r);
}

static icl_status check_tv_options(const icl_model *m, const icl_task_family *f, const icl_tv_options *o) {
    probe_dims dims = probe_dims_of(m);
    const char *fn = "icl_task_vectors_run";
    ICL_TRY(check_pair(m, f, fn));
    ICL_TRY(check_tasks(f, o->tasks, o->n_tasks, fn));
    if (o->n_examples < 0 || o->target_examples < 0)
        return icl_fail(ICL_ERR_INVALID_ARG, "%s: examples per prompt must be >= 0, got k = %d, target k = %d", fn,
                        o->n_examples, o->target_examples);
    if (o->n_prompts < 1 || o->eval_prompts < 1 || o->batch < 1)
        return icl_fail(ICL_ERR_INVALID_ARG, "%s: need n_prompts, eval_prompts and batch >= 1, got %d, %d, %d", fn,
                        o->n_prompts, o->eval_prompts, o->batch);
    if (o->mode != ICL_TV_REPLACE && o->mode != ICL_TV_ADD)
        return icl_fail(ICL_ERR_INVALID_ARG, "%s: unknown mode %d", fn, (int)o->mode);
    if (o->level < -1 || o->level > dims.L)
        return icl_fail(ICL_ERR_INVALID_ARG, "%s: level %d out of range [0, %d] (-1 = the best level)", fn, o->level,
                        dims.L);
    if (o->n_alpha < 2)
        return icl_fail(ICL_ERR_INVALID_ARG, "%s: the interpolation needs n_alpha >= 2, got %d", fn, o->n_alpha);
    return ICL_OK;
}

/* Shared state of one run. */
typedef struct {
    icl_model *m;
    const icl_task_family *f;
    const icl_tv_options *o;
    icl_tv_result *r;
    int n, NL, C, A;
    icl_task_batch tb;
    float *vec;     /* (C) the vector being patched */
    float *base;    /* (n, NL, C) means of the current kind of targets, for ADD */
} tv_run;

/* The vector to patch: v, or for ADD (not raw) v - base. */
static const float *patch_vector(tv_run *x, const float *v, const float *base) {
    for (int c = 0; c < x->C; c++)
        x->vec[c] = (x->o->mode == ICL_TV_ADD && !x->o->add_raw) ? v[c] - base[c] : v[c];
    return x->vec;
}

static const float *vector_of(const tv_run *x, int task_index, int level) {
    return x->r->vectors + ((size_t)task_index * x->NL + level) * x->C;
}

/* Means of the targets (stream, k) of every task, when ADD subtracts them. */
static icl_status target_means(tv_run *x, const char *stream, int k, int n_prompts) {
    if (x->o->mode != ICL_TV_ADD || x->o->add_raw)
        return ICL_OK;
    return icl_tv_mean_residuals(x->m, x->f, x->r->tasks, x->n, k, n_prompts, x->o->batch, x->o->seed, stream,
                                 x->base);
}

/* The intervention that patches task v's vector at level l into prompts of
 * task pt (for ADD, not raw: minus pt's mean at that level). */
static icl_status patched(tv_run *x, int v, int pt, int l, icl_intervention *iv) {
    return icl_tv_intervention(x->m, l, x->o->mode,
                               patch_vector(x, vector_of(x, v, l), x->base + ((size_t)pt * x->NL + l) * x->C), iv);
}

/* Zero-shot prompts of each task, without and with its own vector at every level (Hendel). */
static icl_status zero_shot_sweep(tv_run *x) {
    const icl_tv_options *o = x->o;
    icl_tv_result *r = x->r;
    int n = x->n, NL = x->NL, A = x->A, chunk = o->batch < o->eval_prompts ? o->batch : o->eval_prompts;
    ICL_TRY(target_means(x, ICL_TV_STREAM_ZERO_SHOT, 0, o->eval_prompts));
    int32_t *ans = malloc((size_t)chunk * A * sizeof *ans);
    double *p = malloc((size_t)chunk * sizeof *p), *hit = malloc((size_t)chunk * sizeof *hit);
    icl_status s = (ans && p && hit) ? ICL_OK : icl_fail(ICL_ERR_NOMEM, "icl_task_vectors_run: out of memory");
    for (int i = 0; s == ICL_OK && i < n; i++) {
        icl_prompt_set ps = prompt_set(x->m, o->seed, ICL_TV_STREAM_ZERO_SHOT, r->tasks[i], 0);
        for (int first = 0; s == ICL_OK && first < o->eval_prompts; first += chunk) {
            int cnt = o->eval_prompts - first < chunk ? o->eval_prompts - first : chunk;
            s = icl_prompt_set_batch(x->f, &ps, first, cnt, &x->tb);
            if (s == ICL_OK)
                s = icl_query_answers(x->f, &x->tb, r->tasks[i], ans);
            if (s == ICL_OK)
                s = icl_answer_probs(x->m, &x->tb, ans, 1, NULL, 0, p, hit);
            for (int b = 0; s == ICL_OK && b < cnt; b++) {
                r->zs_p0[i] += p[b] / o->eval_prompts;
                r->zs_acc0[i] += hit[b] / o->eval_prompts;
            }
            for (int l = 0; s == ICL_OK && l < NL; l++) {
                icl_intervention iv;
                s = patched(x, i, i, l, &iv);
                if (s == ICL_OK)
                    s = icl_answer_probs(x->m, &x->tb, ans, 1, &iv, 1, p, hit);
                for (int b = 0; s == ICL_OK && b < cnt; b++) {
                    r->zs_p[(size_t)i * NL + l] += p[b] / o->eval_prompts;
                    r->zs_acc[(size_t)i * NL + l] += hit[b] / o->eval_prompts;
                }
            }
        }
    }
    free(ans);
    free(p);
    free(hit);
    return s;
}

/* Runs fn on every batch (x->tb, cnt rows) of the target prompts
 * (k = target_examples) of every task pt, once the targets' means are in place. */
typedef icl_status (*target_batch_fn)(tv_run *x, int pt, int cnt, void *work);

static icl_status each_target_batch(tv_run *x, target_batch_fn fn, void *work) {
    const icl_tv_options *o = x->o;
    int chunk = o->batch < o->eval_prompts ? o->batch : o->eval_prompts;
    icl_status s = target_means(x, ICL_TV_STREAM_TARGET, o->target_examples, o->eval_prompts);
    for (int pt = 0; s == ICL_OK && pt < x->n; pt++) {
        icl_prompt_set ps = prompt_set(x->m, o->seed, ICL_TV_STREAM_TARGET, x->r->tasks[pt], o->target_examples);
        for (int first = 0; s == ICL_OK && first < o->eval_prompts; first += chunk) {
            int cnt = o->eval_prompts - first < chunk ? o->eval_prompts - first : chunk;
            s = icl_prompt_set_batch(x->f, &ps, first, cnt, &x->tb);
            if (s == ICL_OK)
                s = fn(x, pt, cnt, work);
        }
    }
    return s;
}

typedef struct {
    int32_t *ans, *one; /* (chunk, n, A) every studied task's answer to each query; (chunk, A) one task's */
    double *p, *hit;    /* (chunk, n) */
} token_matrix_work;

static icl_status token_matrix_batch(tv_run *x, int pt, int cnt, void *work) {
    token_matrix_work *k = work;
    icl_tv_result *r = x->r;
    int n = x->n, NL = x->NL, A = x->A;
    const double w = 1.0 / x->o->eval_prompts;
    icl_status s = ICL_OK;
    for (int v = 0; s == ICL_OK && v < n; v++) {
        s = icl_query_answers(x->f, &x->tb, r->tasks[v], k->one);
        for (int b = 0; s == ICL_OK && b < cnt; b++)
            memcpy(k->ans + ((size_t)b * n + v) * A, k->one + (size_t)b * A, (size_t)A * sizeof *k->ans);
    }
    if (s == ICL_OK)
        s = icl_answer_probs(x->m, &x->tb, k->ans, n, NULL, 0, k->p, k->hit);
    for (int b = 0; s == ICL_OK && b < cnt; b++)
        for (int v = 0; v < n; v++) {
            r->base_p[(size_t)v * n + pt] += k->p[(size_t)b * n + v] * w;
            r->base_acc[(size_t)v * n + pt] += k->hit[(size_t)b * n + v] * w;
        }
    for (int l = 0; s == ICL_OK && l < NL; l++)
        for (int v = 0; s == ICL_OK && v < n; v++) {
            icl_intervention iv;
            s = patched(x, v, pt, l, &iv);
            if (s == ICL_OK)
                s = icl_answer_probs(x->m, &x->tb, k->ans, n, &iv, 1, k->p, k->hit);
            size_t cell = ((size_t)l * n + v) * n + pt;
            for (int b = 0; s == ICL_OK && b < cnt; b++) {
                r->mat_p[cell] += k->p[(size_t)b * n + v] * w;
                r->mat_acc[cell] += k->hit[(size_t)b * n + v] * w;
                r->mat_p_own[cell] += k->p[(size_t)b * n + pt] * w;
                r->mat_acc_own[cell] += k->hit[(size_t)b * n + pt] * w;
            }
        }
    return s;
}

/* k-shot prompts of each task p with each task v's vector at every level:
 * P / accuracy of v's answer and of p's own answer (token families). */
static icl_status token_matrix(tv_run *x) {
    int n = x->n, A = x->A, chunk = x->o->batch < x->o->eval_prompts ? x->o->batch : x->o->eval_prompts;
    token_matrix_work k = {malloc((size_t)chunk * n * A * sizeof *k.ans), malloc((size_t)chunk * A * sizeof *k.one),
                           malloc((size_t)chunk * n * sizeof *k.p), malloc((size_t)chunk * n * sizeof *k.hit)};
    icl_status s = (k.ans && k.one && k.p && k.hit) ? ICL_OK
                                                   : icl_fail(ICL_ERR_NOMEM, "icl_task_vectors_run: out of memory");
    if (s == ICL_OK)
        s = each_target_batch(x, token_matrix_batch, &k);
    free(k.ans);
    free(k.one);
    free(k.p);
    free(k.hit);
    return s;
}

static icl_status vector_matrix_batch(tv_run *x, int pt, int cnt, void *work) {
    double *err = work; /* (chunk) */
    icl_tv_result *r = x->r;
    int n = x->n;
    const double w = 1.0 / x->o->eval_prompts;
    icl_status s = icl_query_sq_errors(x->m, &x->tb, NULL, 0, err);
    for (int b = 0; s == ICL_OK && b < cnt; b++)
        r->base_mse[pt] += err[b] * w;
    for (int l = 0; s == ICL_OK && l < x->NL; l++)
        for (int v = 0; s == ICL_OK && v < n; v++) {
            icl_intervention iv;
            s = patched(x, v, pt, l, &iv);
            if (s == ICL_OK)
                s = icl_query_sq_errors(x->m, &x->tb, &iv, 1, err);
            for (int b = 0; s == ICL_OK && b < cnt; b++)
                r->mat_mse[((size_t)l * n + v) * n + pt] += err[b] * w;
        }
    return s;
}

/* Prompts of each basis p with each basis v's vector at every level: query squared error (Han, Fig. 7). */
static icl_status vector_matrix(tv_run *x) {
    int chunk = x->o->batch < x->o->eval_prompts ? x->o->batch : x->o->eval_prompts;
    double *err = malloc((size_t)chunk * sizeof *err);
    icl_status s = err ? ICL_OK : icl_fail(ICL_ERR_NOMEM, "icl_task_vectors_run: out of memory");
    if (s == ICL_OK)
        s = each_target_batch(x, vector_matrix_batch, err);
    free(err);
    return s;
}

/* Token: the level with the highest mean zero-shot accuracy (then P, then the
 * lower level). Vector: the lowest mean diagonal dMSE. Level 0 (the
 * embedding) is no candidate when a block follows it: at the patched position
 * it holds the same token at the same position in every prompt, so a patch
 * there changes nothing, and where no level helps it would win on noise and
 * ties while saying nothing about the model. */
static int best_level(const tv_run *x) {
    const icl_tv_result *r = x->r;
    int first = x->NL > 1 ? 1 : 0, best = first;
    double best_a = -INFINITY, best_b = -INFINITY;
    for (int l = first; l < x->NL; l++) {
        double a = 0.0, b = 0.0;
        for (int i = 0; i < x->n; i++) {
            if (r->mode == ICL_MODE_TOKEN) {
                a += r->zs_acc[(size_t)i * x->NL + l];
                b += r->zs_p[(size_t)i * x->NL + l];
            } else {
                a -= r->mat_mse[((size_t)l * x->n + i) * x->n + i] - r->base_mse[i];
            }
        }
        if (a > best_a || (a == best_a && b > best_b)) {
            best = l;
            best_a = a;
            best_b = b;
        }
    }
    return best;
}

icl_status icl_tv_level_helps(const icl_tv_result *r, int level, int *helps) {
    if (!r || !helps)
        return icl_fail(ICL_ERR_INVALID_ARG, "icl_tv_level_helps: NULL argument");
    int n = r->n_tasks, NL = r->n_levels, token = r->mode == ICL_MODE_TOKEN;
    if (n < 1 || level < 0 || level >= NL)
        return icl_fail(ICL_ERR_INVALID_ARG, "icl_tv_level_helps: level %d out of range [0, %d] or no task", level,
                        NL - 1);
    if (token ? !r->zs_acc || !r->zs_acc0 : !r->mat_mse || !r->base_mse)
        return icl_fail(ICL_ERR_INVALID_ARG, "icl_tv_level_helps: the result has no %s",
                        token ? "zero-shot sweep" : "MSE matrix");
    double with = 0.0, without = 0.0;
    for (int i = 0; i < n; i++) {
        with += token ? r->zs_acc[(size_t)i * NL + level] : r->mat_mse[((size_t)level * n + i) * n + i];
        without += token ? r->zs_acc0[i] : r->base_mse[i];
    }
    *helps = token ? with > without : with < without;
    return ICL_OK;
}

/* alpha v_i + (1 - alpha) v_j on zero-shot prompts of task i (Xiong). */
static icl_status interpolation(tv_run *x) {
    const icl_tv_options *o = x->o;
    icl_tv_result *r = x->r;
    int A = x->A, l = r->interp_level, C = x->C, chunk = o->batch < o->eval_prompts ? o->batch : o->eval_prompts;
    int32_t *ans = malloc((size_t)chunk * 2 * A * sizeof *ans), *one = malloc((size_t)chunk * A * sizeof *one);
    double *p = malloc((size_t)chunk * 2 * sizeof *p);
    float *mix = malloc((size_t)C * sizeof *mix);
    icl_status s = (ans && one && p && mix) ? ICL_OK : icl_fail(ICL_ERR_NOMEM, "icl_task_vectors_run: out of memory");
    if (s == ICL_OK)
        s = target_means(x, ICL_TV_STREAM_INTERP, 0, o->eval_prompts);
    const double w = 1.0 / o->eval_prompts;
    for (int pr = 0; s == ICL_OK && pr < r->n_pairs; pr++) {
        int ti = r->pairs[2 * pr], tj = r->pairs[2 * pr + 1];
        icl_prompt_set ps = prompt_set(x->m, o->seed, ICL_TV_STREAM_INTERP, r->tasks[ti], 0);
        for (int first = 0; s == ICL_OK && first < o->eval_prompts; first += chunk) {
            int cnt = o->eval_prompts - first < chunk ? o->eval_prompts - first : chunk;
            s = icl_prompt_set_batch(x->f, &ps, first, cnt, &x->tb);
            for (int side = 0; s == ICL_OK && side < 2; side++) {
                s = icl_query_answers(x->f, &x->tb, r->tasks[side ? tj : ti], one);
                for (int b = 0; s == ICL_OK && b < cnt; b++)
                    memcpy(ans + ((size_t)b * 2 + side) * A, one + (size_t)b * A, (size_t)A * sizeof *ans);
            }
            for (int a = 0; s == ICL_OK && a < r->n_alpha; a++) {
                float al = (float)r->alphas[a];
                const float *vi = vector_of(x, ti, l), *vj = vector_of(x, tj, l);
                for (int c = 0; c < C; c++)
                    mix[c] = al * vi[c] + (1.0f - al) * vj[c];
                icl_intervention iv;
                s = icl_tv_intervention(x->m, l, o->mode, patch_vector(x, mix, x->base + ((size_t)ti * x->NL + l) * C),
                                        &iv);
                if (s == ICL_OK)
                    s = icl_answer_probs(x->m, &x->tb, ans, 2, &iv, 1, p, NULL);
                double *cell = r->interp + ((size_t)pr * r->n_alpha + a) * 3;
                for (int b = 0; s == ICL_OK && b < cnt; b++) {
                    int same = memcmp(ans + (size_t)b * 2 * A, ans + ((size_t)b * 2 + 1) * A, (size_t)A * sizeof *ans) == 0;
                    double pi = p[2 * b], pj = p[2 * b + 1];
                    cell[0] += pi * w;
                    cell[1] += pj * w;
                    cell[2] += (1.0 - pi - (same ? 0.0 : pj)) * w;
                }
            }
        }
    }
    free(ans);
    free(one);
    free(p);
    free(mix);
    return s;
}

/* The mean query residual (NL, C) of n_prompts prompts whose k examples are split half and half between
 * tasks a and b (indices into tasks), from stream ICL_TV_STREAM_MIXED (see icl_tv_result.mix_alpha). */
static icl_status mixed_mean(tv_run *x, int a, int b, double *mean) {
    const icl_tv_options *o = x->o;
    probe_dims dims = probe_dims_of(x->m);
    int NL = x->NL, C = x->C, chunk = o->batch < o->n_prompts ? o->batch : o->n_prompts;
    int pair[2] = {x->r->tasks[a], x->r->tasks[b]};
    const double lambda[2] = {0.5, 0.5};
    icl_gen_options gen = icl_gen_options_default();
    gen.loss = ICL_LOSS_ANSWERS;
    gen.ctx = dims.ctx;
    icl_rng root, per_a, per_pair;
    icl_rng_init(&root, o->seed, ICL_TV_STREAM_MIXED);
    icl_rng_split(&per_a, &root, (uint64_t)pair[0]);
    icl_rng_split(&per_pair, &per_a, (uint64_t)pair[1]);
    icl_mixed_prompt *mp = calloc((size_t)chunk, sizeof *mp);
    const icl_prompt **rows = malloc((size_t)chunk * sizeof *rows);
    float *res = malloc((size_t)NL * chunk * C * sizeof *res);
    icl_status s = (mp && rows && res) ? ICL_OK : icl_fail(ICL_ERR_NOMEM, "icl_task_vectors_run: out of memory");
    memset(mean, 0, (size_t)NL * C * sizeof *mean);
    for (int first = 0; s == ICL_OK && first < o->n_prompts; first += chunk) {
        int cnt = o->n_prompts - first < chunk ? o->n_prompts - first : chunk;
        for (int q = 0; s == ICL_OK && q < cnt; q++) {
            icl_rng r;
            icl_rng_split(&r, &per_pair, (uint64_t)(first + q));
            icl_mixed_prompt_free(&mp[q]);
            s = icl_task_generate_mixed(x->f, pair, lambda, 2, o->n_examples, &gen, &r, &mp[q]);
            rows[q] = &mp[q].prompt;
        }
        if (s == ICL_OK)
            s = icl_task_batch_pack(&x->tb, rows, cnt, 0);
        if (s == ICL_OK)
            s = icl_residuals_at(x->m, &x->tb, icl_pos_role(ICL_ROLE_QUERY_SEP), NULL, 0, res);
        for (int l = 0; s == ICL_OK && l < NL; l++)
            for (int q = 0; q < cnt; q++)
                for (int c = 0; c < C; c++)
                    mean[(size_t)l * C + c] += res[((size_t)l * cnt + q) * C + c] / (double)o->n_prompts;
    }
    for (int q = 0; mp && q < chunk; q++)
        icl_mixed_prompt_free(&mp[q]);
    free(mp);
    free(rows);
    free(res);
    return s;
}

/* Where each pair's mixed-prompt vector lies relative to the line through its two task vectors (Xiong). */
static icl_status mixed_vectors(tv_run *x) {
    icl_tv_result *r = x->r;
    int NL = x->NL, C = x->C;
    double *m = malloc((size_t)NL * C * sizeof *m);
    icl_status s = m ? ICL_OK : icl_fail(ICL_ERR_NOMEM, "icl_task_vectors_run: out of memory");
    for (int pr = 0; s == ICL_OK && pr < r->n_pairs; pr++) {
        int ti = r->pairs[2 * pr], tj = r->pairs[2 * pr + 1];
        s = mixed_mean(x, ti, tj, m);
        for (int l = 0; s == ICL_OK && l < NL; l++) {
            const float *vi = vector_of(x, ti, l), *vj = vector_of(x, tj, l);
            const double *ml = m + (size_t)l * C;
            double dd = 0.0, md = 0.0, off = 0.0;
            for (int c = 0; c < C; c++) {
                double d = (double)vi[c] - vj[c];
                dd += d * d;
                md += (ml[c] - vj[c]) * d;
            }
            double a = dd > 0.0 ? md / dd : NAN;
            for (int c = 0; dd > 0.0 && c < C; c++) {
                double e = ml[c] - (a * vi[c] + (1.0 - a) * vj[c]);
                off += e * e;
            }
            r->mix_alpha[(size_t)pr * NL + l] = a;
            r->mix_offline[(size_t)pr * NL + l] = dd > 0.0 ? sqrt(off / dd) : NAN;
        }
    }
    free(m);
    return s;
}

static icl_status alloc_result(tv_run *x) {
    icl_tv_result *r = x->r;
    size_t n = (size_t)x->n, NL = (size_t)x->NL, C = (size_t)x->C, cells = NL * n * n;
    r->vectors = malloc(n * NL * C * sizeof *r->vectors);
    x->vec = malloc(C * sizeof *x->vec);
    x->base = calloc(n * NL * C, sizeof *x->base);
    int ok = r->vectors && x->vec && x->base;
    if (r->mode == ICL_MODE_TOKEN) {
        r->n_pairs = x->n * (x->n - 1) / 2;
        r->n_alpha = x->o->n_alpha;
        r->zs_p0 = calloc(n, sizeof(double));
        r->zs_acc0 = calloc(n, sizeof(double));
        r->zs_p = calloc(n * NL, sizeof(double));
        r->zs_acc = calloc(n * NL, sizeof(double));
        r->base_p = calloc(n * n, sizeof(double));
        r->base_acc = calloc(n * n, sizeof(double));
        r->mat_p = calloc(cells, sizeof(double));
        r->mat_acc = calloc(cells, sizeof(double));
        r->mat_p_own = calloc(cells, sizeof(double));
        r->mat_acc_own = calloc(cells, sizeof(double));
        r->pairs = malloc((size_t)(r->n_pairs ? r->n_pairs : 1) * 2 * sizeof(int));
        r->alphas = malloc((size_t)r->n_alpha * sizeof(double));
        r->interp = calloc((size_t)(r->n_pairs ? r->n_pairs : 1) * r->n_alpha * 3, sizeof(double));
        ok = ok && r->zs_p0 && r->zs_acc0 && r->zs_p && r->zs_acc && r->base_p && r->base_acc && r->mat_p &&
             r->mat_acc && r->mat_p_own && r->mat_acc_own && r->pairs && r->alphas && r->interp;
        if (x->o->n_examples >= 2) {
            r->mix_alpha = calloc((size_t)(r->n_pairs ? r->n_pairs : 1) * NL, sizeof(double));
            r->mix_offline = calloc((size_t)(r->n_pairs ? r->n_pairs : 1) * NL, sizeof(double));
            ok = ok && r->mix_alpha && r->mix_offline;
        }
        if (ok) {
            int k = 0;
            for (int i = 0; i < x->n; i++)
                for (int j = i + 1; j < x->n; j++) {
                    r->pairs[2 * k] = i;
                    r->pairs[2 * k + 1] = j;
                    k++;
                }
            for (int a = 0; a < r->n_alpha; a++)
                r->alphas[a] = (double)a / (r->n_alpha - 1);
        }
    } else {
        r->base_mse = calloc(n, sizeof(double));
        r->mat_mse = calloc(cells, sizeof(double));
        ok = ok && r->base_mse && r->mat_mse;
    }
    return ok ? ICL_OK : icl_fail(ICL_ERR_NOMEM, "icl_task_vectors_run: out of memory");
}

icl_status icl_task_vectors_run(icl_model *m, const icl_task_family *f, const icl_tv_options *opt,
                                icl_tv_result *out) {
    probe_dims dims = probe_dims_of(m);
    if (!m || !f || !opt || !out)
        return icl_fail(ICL_ERR_INVALID_ARG, "icl_task_vectors_run: NULL argument");
    memset(out, 0, sizeof *out);
    ICL_TRY(check_tv_options(m, f, opt));
    tv_run x = {.m = m, .f = f, .o = opt, .r = out, .n = opt->tasks ? opt->n_tasks : icl_task_family_num_tasks(f),
                .NL = dims.L + 1, .C = dims.C, .A = icl_task_family_answer_len(f)};
    out->mode = dims.mode;
    out->n_tasks = x.n;
    out->n_levels = x.NL;
    out->C = x.C;
    out->tasks = malloc((size_t)x.n * sizeof *out->tasks);
    icl_status s = out->tasks ? ICL_OK : icl_fail(ICL_ERR_NOMEM, "icl_task_vectors_run: out of memory");
    for (int i = 0; s == ICL_OK && i < x.n; i++)
        out->tasks[i] = opt->tasks ? opt->tasks[i] : i;
    if (s == ICL_OK)
        s = alloc_result(&x);
    if (s == ICL_OK)
        s = icl_tv_mean_residuals(m, f, out->tasks, x.n, opt->n_examples, opt->n_prompts, opt->batch, opt->seed,
                                  ICL_TV_STREAM_DEMO, out->vectors);
    if (s == ICL_OK && out->mode == ICL_MODE_TOKEN) {
        s = zero_shot_sweep(&x);
        if (s == ICL_OK)
            s = token_matrix(&x);
        out->best_level = best_level(&x);
        out->interp_level = opt->level >= 0 ? opt->level : out->best_level;
        if (s == ICL_OK)
            s = icl_tv_level_helps(out, out->best_level, &out->best_helps);
        if (s == ICL_OK)
            s = interpolation(&x);
        if (s == ICL_OK && out->mix_alpha)
            s = mixed_vectors(&x);
    } else if (s == ICL_OK) {
        s = vector_matrix(&x);
        out->best_level = best_level(&x);
        out->interp_level = -1;
        if (s == ICL_OK)
            s = icl_tv_level_helps(out, out->best_level, &out->best_helps);
    }
    icl_task_batch_free(&x.tb);
    free(x.vec);
    free(x.base);
    if (s != ICL_OK)
        icl_tv_result_free(out);
    return s;
}
