/* Function vectors (Todd et al. 2023; include/icl/task_vectors.h): mean head
 * outputs, their average indirect effect on shuffled-label prompts, and the
 * sum of the top heads' outputs through W_O added to the residual stream. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "error.h"
#include "icl/task_vectors.h"
#include "probe_internal.h"

icl_status icl_head_output_project(const icl_model *m, int layer, int head, const float *z, float *out) {
    if (!m || !z || !out)
        return icl_fail(ICL_ERR_INVALID_ARG, "icl_head_output_project: NULL argument");
    probe_dims d = probe_dims_of(m);
    if (layer < 0 || layer >= d.L || head < 0 || head >= d.NH)
        return icl_fail(ICL_ERR_INVALID_ARG, "icl_head_output_project: layer %d / head %d out of range [0, %d) / [0, %d)",
                        layer, head, d.L, d.NH);
    int C = d.C, HS = C / d.NH;
    char name[64];
    snprintf(name, sizeof name, "blocks.%d.attn.proj.weight", layer);
    float *w = malloc((size_t)C * C * sizeof *w);
    if (!w)
        return icl_fail(ICL_ERR_NOMEM, "icl_head_output_project: out of memory");
    /* proj_w (C_out, C_in): head h reads input channels [h*HS, (h+1)*HS) */
    icl_status s = icl_model_get_tensor(m, name, w, (size_t)C * C);
    for (int o = 0; s == ICL_OK && o < C; o++) {
        double acc = 0.0;
        for (int i = 0; i < HS; i++)
            acc += (double)w[(size_t)o * C + head * HS + i] * z[i];
        out[o] = (float)acc;
    }
    free(w);
    return s;
}

icl_status icl_fv_mean_head_outputs(icl_model *m, const icl_task_family *f, int task, int n_examples,
                                    int n_prompts, int batch, uint64_t seed, const char *stream, float *means) {
    probe_dims dims = probe_dims_of(m);
    const char *fn = "icl_fv_mean_head_outputs";
    if (!m || !f || !stream || !means)
        return icl_fail(ICL_ERR_INVALID_ARG, "%s: NULL argument", fn);
    if (dims.mode != ICL_MODE_TOKEN || icl_task_family_mode(f) != ICL_MODE_TOKEN)
        return icl_fail(ICL_ERR_UNSUPPORTED, "%s: function vectors need a token-mode model and family", fn);
    if (n_examples < 0 || n_prompts < 1 || batch < 1)
        return icl_fail(ICL_ERR_INVALID_ARG, "%s: need k >= 0, n_prompts >= 1 and batch >= 1, got %d, %d, %d", fn,
                        n_examples, n_prompts, batch);
    int L = dims.L, C = dims.C, chunk = batch < n_prompts ? batch : n_prompts;
    icl_prompt_set ps = {seed, stream, task, n_examples, 0, dims.ctx, ICL_LOSS_ANSWERS};
    icl_capture_plan *plan = NULL;
    icl_capture_set set = {0};
    icl_task_batch tb = {0};
    double *sum = calloc((size_t)L * C, sizeof *sum);
    icl_status s = sum ? icl_capture_plan_create(&plan) : icl_fail(ICL_ERR_NOMEM, "%s: out of memory", fn);
    if (s == ICL_OK)
        s = icl_capture_plan_add(plan, ICL_POINT_HEAD_OUT, -1, -1, icl_pos_role(ICL_ROLE_QUERY_SEP), NULL);
    for (int first = 0; s == ICL_OK && first < n_prompts; first += chunk) {
        int cnt = n_prompts - first < chunk ? n_prompts - first : chunk;
        s = icl_prompt_set_batch(f, &ps, first, cnt, &tb);
        icl_row_labels labels = {tb.roles, tb.prompt_len};
        if (s == ICL_OK)
            s = icl_model_forward(m, &tb.batch, NULL);
        if (s == ICL_OK)
            s = icl_capture_collect(plan, m, &labels, &set);
        for (int l = 0; s == ICL_OK && l < L; l++) {
            const icl_capture *c = icl_capture_set_find(&set, ICL_POINT_HEAD_OUT, l);
            for (size_t r = 0; r < c->n; r++)
                for (int j = 0; j < C; j++)
                    sum[(size_t)l * C + j] += c->data[r * C + j];
        }
        icl_capture_set_free(&set);
    }
    /* HEAD_OUT records are (NH, HS) per position, so (L, C) is already (L, NH, HS). */
    for (size_t j = 0; s == ICL_OK && j < (size_t)L * C; j++)
        means[j] = (float)(sum[j] / n_prompts);
    icl_capture_plan_free(plan);
    icl_task_batch_free(&tb);
    free(sum);
    return s;
}

icl_status icl_fv_head_effects(icl_model *m, const icl_task_batch *tb, const int32_t *answers,
                               const float *head_means, double *aie, double *row_p0, double *row_p) {
    probe_dims dims = probe_dims_of(m);
    if (!m || !tb || !answers || !head_means || !aie)
        return icl_fail(ICL_ERR_INVALID_ARG, "icl_fv_head_effects: NULL argument");
    int B = tb->B, L = dims.L, NH = dims.NH, HS = dims.C / dims.NH;
    double *p0 = malloc((size_t)(B > 0 ? B : 1) * sizeof *p0), *p = malloc((size_t)(B > 0 ? B : 1) * sizeof *p);
    icl_status s = (p0 && p) ? ICL_OK : icl_fail(ICL_ERR_NOMEM, "icl_fv_head_effects: out of memory");
    if (s == ICL_OK)
        s = icl_answer_probs(m, tb, answers, 1, NULL, 0, p0, NULL);
    if (s == ICL_OK && row_p0)
        memcpy(row_p0, p0, (size_t)B * sizeof *p0);
    for (int l = 0; s == ICL_OK && l < L; l++)
        for (int h = 0; s == ICL_OK && h < NH; h++) {
            icl_intervention iv = icl_intervention_make(ICL_POINT_HEAD_OUT, l, ICL_IV_SET);
            iv.head = h;
            iv.pos = icl_pos_role(ICL_ROLE_QUERY_SEP);
            iv.vector = head_means + ((size_t)l * NH + h) * HS;
            s = icl_answer_probs(m, tb, answers, 1, &iv, 1, p, NULL);
            double d = 0.0;
            for (int b = 0; s == ICL_OK && b < B; b++)
                d += p[b] - p0[b];
            aie[l * NH + h] = d / B;
            if (s == ICL_OK && row_p)
                memcpy(row_p + ((size_t)l * NH + h) * B, p, (size_t)B * sizeof *p);
        }
    free(p0);
    free(p);
    return s;
}

icl_status icl_function_vector(const icl_model *m, const float *head_means, const int *heads, int n_heads, float *fv) {
    probe_dims dims = probe_dims_of(m);
    if (!m || !head_means || !heads || !fv || n_heads < 1)
        return icl_fail(ICL_ERR_INVALID_ARG, "icl_function_vector: NULL argument or no heads");
    int C = dims.C, NH = dims.NH, HS = C / NH;
    double *acc = calloc((size_t)C, sizeof *acc);
    float *one = malloc((size_t)C * sizeof *one);
    icl_status s = (acc && one) ? ICL_OK : icl_fail(ICL_ERR_NOMEM, "icl_function_vector: out of memory");
    for (int k = 0; s == ICL_OK && k < n_heads; k++) {
        int l = heads[2 * k], h = heads[2 * k + 1];
        if (l < 0 || l >= dims.L || h < 0 || h >= NH) {
            s = icl_fail(ICL_ERR_INVALID_ARG, "icl_function_vector: head %d is (%d, %d), outside %d layers x %d heads",
                         k, l, h, dims.L, NH);
            break;
        }
        s = icl_head_output_project(m, l, h, head_means + ((size_t)l * NH + h) * HS, one);
        for (int c = 0; s == ICL_OK && c < C; c++)
            acc[c] += one[c];
    }
    for (int c = 0; s == ICL_OK && c < C; c++)
        fv[c] = (float)acc[c];
    free(acc);
    free(one);
    return s;
}

icl_fv_options icl_fv_options_default(const icl_task_family *f) {
    icl_fv_options o;
    memset(&o, 0, sizeof o);
    int k = f ? icl_task_family_default_examples(f) : 8;
    o.n_prompts = 100;
    o.n_examples = k > 0 ? k : 1;
    o.eval_prompts = 100;
    o.top_k = -1;
    o.fv_layer = -1;
    o.batch = 64;
    o.seed = 1;
    return o;
}

void icl_fv_result_free(icl_fv_result *r) {
    if (!r)
        return;
    free(r->tasks);
    free(r->head_means);
    free(r->aie);
    free(r->aie_mean);
    free(r->rank);
    free(r->heads);
    free(r->fv);
    free(r->acc);
    free(r->p);
    free(r->acc_prompt);
    free(r->p_prompt);
    free(r->aie_p0);
    free(r->aie_p);
    memset(r, 0, sizeof *r);
}

static icl_status check_fv_options(const icl_model *m, const icl_task_family *f, const icl_fv_options *o) {
    probe_dims dims = probe_dims_of(m);
    const char *fn = "icl_function_vectors_run";
    if (dims.mode != ICL_MODE_TOKEN || icl_task_family_mode(f) != ICL_MODE_TOKEN)
        return icl_fail(ICL_ERR_UNSUPPORTED, "%s: function vectors need a token-mode model and family", fn);
    if (icl_task_family_vocab_size(f) > dims.V)
        return icl_fail(ICL_ERR_INVALID_ARG, "%s: family %s needs %d tokens, the model has %d", fn,
                        icl_task_family_name(f), icl_task_family_vocab_size(f), dims.V);
    if (o->tasks && o->n_tasks < 1)
        return icl_fail(ICL_ERR_INVALID_ARG, "%s: the task set is empty", fn);
    for (int i = 0; o->tasks && i < o->n_tasks; i++)
        if (o->tasks[i] < 0 || o->tasks[i] >= icl_task_family_num_tasks(f))
            return icl_fail(ICL_ERR_INVALID_ARG, "%s: unknown task %d (family %s has tasks 0..%d)", fn, o->tasks[i],
                            icl_task_family_name(f), icl_task_family_num_tasks(f) - 1);
    if (o->n_examples < 1)
        return icl_fail(ICL_ERR_INVALID_ARG, "%s: shuffled labels need k >= 1 examples, got %d", fn, o->n_examples);
    if (o->n_prompts < 1 || o->eval_prompts < 1 || o->batch < 1)
        return icl_fail(ICL_ERR_INVALID_ARG, "%s: need n_prompts, eval_prompts and batch >= 1, got %d, %d, %d", fn,
                        o->n_prompts, o->eval_prompts, o->batch);
    if (o->top_k < -1 || o->top_k == 0)
        return icl_fail(ICL_ERR_INVALID_ARG, "%s: top_k must be >= 1 (or -1 for the default), got %d", fn, o->top_k);
    if (o->fv_layer < -1 || o->fv_layer >= dims.L)
        return icl_fail(ICL_ERR_INVALID_ARG, "%s: fv_layer %d out of range [0, %d) (-1 = default)", fn, o->fv_layer,
                        dims.L);
    if (o->fv_mid != 0 && o->fv_mid != 1)
        return icl_fail(ICL_ERR_INVALID_ARG, "%s: fv_mid must be 0 or 1, got %d", fn, o->fv_mid);
    return ICL_OK;
}

/* Heads by decreasing mean AIE; ties: lower layer, then lower head (a stable order). */
static void rank_heads(icl_fv_result *r) {
    int n = r->L * r->NH;
    for (int i = 0; i < n; i++) {
        int better = 0;
        for (int j = 0; j < n; j++)
            if (r->aie_mean[j] > r->aie_mean[i] || (r->aie_mean[j] == r->aie_mean[i] && j < i))
                better++;
        r->rank[i] = better + 1;
    }
    for (int i = 0; i < n; i++)
        if (r->rank[i] <= r->top_k) {
            r->heads[2 * (r->rank[i] - 1)] = i / r->NH;
            r->heads[2 * (r->rank[i] - 1) + 1] = i % r->NH;
        }
}

/* Accuracy and P(answer) of task index t's prompts of one condition, without and with its FV, and of each prompt. */
static icl_status evaluate(icl_model *m, const icl_task_family *f, const icl_fv_options *o, icl_fv_result *r, int t,
                           int cond, icl_task_batch *tb) {
    probe_dims dims = probe_dims_of(m);
    int A = icl_task_family_answer_len(f), n = o->eval_prompts, chunk = o->batch < n ? o->batch : n;
    icl_prompt_set ps = {o->seed, ICL_FV_STREAM_EVAL, r->tasks[t], cond == ICL_FV_ZERO_SHOT ? 0 : o->n_examples,
                         cond == ICL_FV_SHUFFLED, dims.ctx, ICL_LOSS_ANSWERS};
    icl_intervention iv = icl_intervention_make(r->fv_mid ? ICL_POINT_RESID_MID : ICL_POINT_RESID_POST, r->fv_layer,
                                                ICL_IV_ADD);
    iv.pos = icl_pos_role(ICL_ROLE_QUERY_SEP);
    iv.vector = r->fv + (size_t)t * r->C;
    int32_t *ans = malloc((size_t)chunk * A * sizeof *ans);
    double *p = malloc((size_t)chunk * sizeof *p), *hit = malloc((size_t)chunk * sizeof *hit);
    icl_status s = (ans && p && hit) ? ICL_OK : icl_fail(ICL_ERR_NOMEM, "icl_function_vectors_run: out of memory");
    size_t cell = ((size_t)t * ICL_FV_N_CONDITIONS + cond) * 2;
    for (int first = 0; s == ICL_OK && first < n; first += chunk) {
        int cnt = n - first < chunk ? n - first : chunk;
        s = icl_prompt_set_batch(f, &ps, first, cnt, tb);
        if (s == ICL_OK)
            s = icl_query_answers(f, tb, r->tasks[t], ans);
        for (int with = 0; s == ICL_OK && with < 2; with++) {
            s = icl_answer_probs(m, tb, ans, 1, with ? &iv : NULL, with, p, hit);
            for (int b = 0; s == ICL_OK && b < cnt; b++) {
                r->p[cell + with] += p[b] / n;
                r->acc[cell + with] += hit[b] / n;
                r->p_prompt[(cell + with) * n + first + b] = p[b];
                r->acc_prompt[(cell + with) * n + first + b] = hit[b];
            }
        }
    }
    free(ans);
    free(p);
    free(hit);
    return s;
}

/* AIE of every head for task index t over its shuffled-label evaluation prompts, and each prompt's P. */
static icl_status task_effects(icl_model *m, const icl_task_family *f, const icl_fv_options *o, icl_fv_result *r,
                               int t, icl_task_batch *tb) {
    probe_dims dims = probe_dims_of(m);
    int A = icl_task_family_answer_len(f), heads = r->L * r->NH, n = o->eval_prompts;
    int chunk = o->batch < n ? o->batch : n;
    icl_prompt_set ps = {o->seed, ICL_FV_STREAM_EVAL, r->tasks[t], o->n_examples, 1, dims.ctx, ICL_LOSS_ANSWERS};
    int32_t *ans = malloc((size_t)chunk * A * sizeof *ans);
    double *part = malloc((size_t)heads * sizeof *part), *rows = malloc((size_t)heads * chunk * sizeof *rows);
    icl_status s = (ans && part && rows) ? ICL_OK : icl_fail(ICL_ERR_NOMEM, "icl_function_vectors_run: out of memory");
    double *aie = r->aie + (size_t)t * heads, *p = r->aie_p + (size_t)t * heads * n;
    for (int first = 0; s == ICL_OK && first < n; first += chunk) {
        int cnt = n - first < chunk ? n - first : chunk;
        s = icl_prompt_set_batch(f, &ps, first, cnt, tb);
        if (s == ICL_OK)
            s = icl_query_answers(f, tb, r->tasks[t], ans);
        if (s == ICL_OK)
            s = icl_fv_head_effects(m, tb, ans, r->head_means + (size_t)t * r->L * r->C, part,
                                    r->aie_p0 + (size_t)t * n + first, rows);
        for (int j = 0; s == ICL_OK && j < heads; j++) {
            aie[j] += part[j] * cnt / n;
            memcpy(p + (size_t)j * n + first, rows + (size_t)j * cnt, (size_t)cnt * sizeof *rows);
        }
    }
    free(ans);
    free(part);
    free(rows);
    return s;
}

icl_status icl_function_vectors_run(icl_model *m, const icl_task_family *f, const icl_fv_options *opt,
                                    icl_fv_result *out) {
    probe_dims dims = probe_dims_of(m);
    if (!m || !f || !opt || !out)
        return icl_fail(ICL_ERR_INVALID_ARG, "icl_function_vectors_run: NULL argument");
    memset(out, 0, sizeof *out);
    ICL_TRY(check_fv_options(m, f, opt));
    icl_fv_result *r = out;
    r->n_tasks = opt->tasks ? opt->n_tasks : icl_task_family_num_tasks(f);
    r->L = dims.L;
    r->NH = dims.NH;
    r->C = dims.C;
    r->HS = dims.C / dims.NH;
    /* Todd et al. keep 10 of ~1000 heads; a tiny model keeps at most half of its heads so the ranking matters. */
    int half = r->L * r->NH / 2 > 0 ? r->L * r->NH / 2 : 1;
    r->top_k = opt->top_k < 0 ? (half < 10 ? half : 10) : opt->top_k < r->L * r->NH ? opt->top_k : r->L * r->NH;
    /* Todd et al. add the FV about a third of the way up: the residual after round(L/3) blocks. */
    r->fv_layer = opt->fv_layer >= 0 ? opt->fv_layer : (int)lround(r->L / 3.0) - 1;
    if (r->fv_layer < 0)
        r->fv_layer = 0;
    r->fv_mid = opt->fv_mid;
    size_t n = (size_t)r->n_tasks, heads = (size_t)r->L * r->NH;
    r->tasks = malloc(n * sizeof *r->tasks);
    r->head_means = malloc(n * r->L * r->C * sizeof *r->head_means);
    r->aie = calloc(n * heads, sizeof *r->aie);
    r->aie_mean = calloc(heads, sizeof *r->aie_mean);
    r->rank = malloc(heads * sizeof *r->rank);
    r->heads = malloc((size_t)r->top_k * 2 * sizeof *r->heads);
    r->fv = malloc(n * r->C * sizeof *r->fv);
    r->acc = calloc(n * ICL_FV_N_CONDITIONS * 2, sizeof *r->acc);
    r->p = calloc(n * ICL_FV_N_CONDITIONS * 2, sizeof *r->p);
    size_t per_prompt = (size_t)opt->eval_prompts;
    r->eval_prompts = opt->eval_prompts;
    r->acc_prompt = malloc(n * ICL_FV_N_CONDITIONS * 2 * per_prompt * sizeof *r->acc_prompt);
    r->p_prompt = malloc(n * ICL_FV_N_CONDITIONS * 2 * per_prompt * sizeof *r->p_prompt);
    r->aie_p0 = malloc(n * per_prompt * sizeof *r->aie_p0);
    r->aie_p = malloc(n * heads * per_prompt * sizeof *r->aie_p);
    icl_status s = (r->tasks && r->head_means && r->aie && r->aie_mean && r->rank && r->heads && r->fv && r->acc &&
                    r->p && r->acc_prompt && r->p_prompt && r->aie_p0 && r->aie_p)
                       ? ICL_OK
                       : icl_fail(ICL_ERR_NOMEM, "icl_function_vectors_run: out of memory");
    icl_task_batch tb = {0};
    for (size_t t = 0; s == ICL_OK && t < n; t++) {
        r->tasks[t] = opt->tasks ? opt->tasks[t] : (int)t;
        s = icl_fv_mean_head_outputs(m, f, r->tasks[t], opt->n_examples, opt->n_prompts, opt->batch, opt->seed,
                                     ICL_FV_STREAM_CLEAN, r->head_means + t * r->L * r->C);
        if (s == ICL_OK)
            s = task_effects(m, f, opt, r, (int)t, &tb);
        for (size_t j = 0; s == ICL_OK && j < heads; j++)
            r->aie_mean[j] += r->aie[t * heads + j] / (double)n;
    }
    if (s == ICL_OK)
        rank_heads(r);
    for (size_t t = 0; s == ICL_OK && t < n; t++)
        s = icl_function_vector(m, r->head_means + t * r->L * r->C, r->heads, r->top_k, r->fv + t * r->C);
    for (size_t t = 0; s == ICL_OK && t < n; t++)
        for (int cond = 0; s == ICL_OK && cond < ICL_FV_N_CONDITIONS; cond++)
            s = evaluate(m, f, opt, r, (int)t, cond, &tb);
    icl_task_batch_free(&tb);
    if (s != ICL_OK)
        icl_fv_result_free(r);
    return s;
}
