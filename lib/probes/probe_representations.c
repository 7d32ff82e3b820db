/* Shared by the representation probes: role names, representation sites,
 * task-major prompt sets, and residuals pooled at a site on every level
 * (include/icl/representations.h). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "error.h"
#include "icl/baselines.h"
#include "icl/readout.h"
#include "icl/representations.h"
#include "probe_internal.h"

icl_repr_site icl_repr_site_default(const icl_task_family *f) {
    icl_repr_site s;
    if (f && icl_task_family_mode(f) == ICL_MODE_VECTOR)
        s.pos = icl_pos_role_nth(ICL_ROLE_EX_ANSWER, -1);
    else
        s.pos = icl_pos_role_nth(ICL_ROLE_QUERY_SEP, 0);
    s.pool = ICL_POOL_LAST;
    return s;
}

icl_status icl_repr_site_parse(const icl_task_family *f, const char *role, const char *nth, const char *pool,
                               int min_shots, icl_repr_site *out) {
    if (!f || !out)
        return icl_fail(ICL_ERR_INVALID_ARG, "icl_repr_site_parse: NULL argument");
    icl_repr_site s = icl_repr_site_default(f);
    if (!role && icl_task_family_mode(f) == ICL_MODE_VECTOR && min_shots == 0)
        s.pos = icl_pos_role_nth(ICL_ROLE_QUERY_INPUT, 0);
    if (role && strcmp(role, "all") == 0) {
        if (nth)
            return icl_fail(ICL_ERR_INVALID_ARG, "an occurrence (nth) needs a role, not \"all\"");
        s.pos = icl_pos_all();
    } else if (role || nth) {
        int r = s.pos.role;
        if (role)
            ICL_TRY(icl_role_parse(role, &r));
        if (nth) {
            char *end;
            long k = strtol(nth, &end, 10);
            if (*nth == '\0' || *end != '\0' || k < -100000 || k > 100000)
                return icl_fail(ICL_ERR_INVALID_ARG, "occurrence \"%s\" is not an integer", nth);
            s.pos = icl_pos_role_nth(r, (int)k);
        } else {
            s.pos = icl_pos_role(r);
        }
    }
    if (pool) {
        static const char *const names[] = {"last", "mean", "max"};
        int found = -1;
        for (int i = 0; i < 3; i++)
            if (strcmp(pool, names[i]) == 0) found = i;
        if (found < 0)
            return icl_fail(ICL_ERR_INVALID_ARG, "unknown pooling \"%s\" (last, mean, max)", pool);
        s.pool = (icl_pool_mode)found;
    }
    *out = s;
    return ICL_OK;
}

/* ---- prompt sets ---- */

icl_repr_prompts_options icl_repr_prompts_options_default(void) {
    icl_repr_prompts_options o;
    memset(&o, 0, sizeof o);
    o.tasks = NULL;
    o.n_tasks = 0;
    o.prompts_per_task = 100;
    o.n_examples = -1;
    o.keep_examples = -1;
    o.gen = icl_gen_options_default();
    o.seed = 1;
    return o;
}

int icl_repr_items_identical(const float *X, int n, int d) {
    for (int i = 1; i < n; i++)
        if (memcmp(X, X + (size_t)i * d, (size_t)d * sizeof *X) != 0)
            return 0;
    return 1;
}

void icl_prompt_array_free(icl_prompt *prompts, int n) {
    for (int i = 0; prompts && i < n; i++)
        icl_prompt_free(&prompts[i]);
    free(prompts);
}

void icl_repr_prompts_free(icl_repr_prompts *s) {
    if (!s)
        return;
    icl_prompt_array_free(s->prompts, s->n);
    free(s->tasks);
    free(s->labels);
    memset(s, 0, sizeof *s);
}

static icl_status check_tasks(const icl_task_family *f, const int *tasks, int n_tasks) {
    if (!tasks)
        return ICL_OK;
    if (n_tasks < 1)
        return icl_fail(ICL_ERR_INVALID_ARG, "the task set is empty");
    int nt = icl_task_family_num_tasks(f);
    for (int j = 0; j < n_tasks; j++) {
        if (tasks[j] < 0 || tasks[j] >= nt)
            return icl_fail(ICL_ERR_INVALID_ARG, "task %d outside [0, %d) of family %s", tasks[j], nt,
                            icl_task_family_name(f));
        for (int i = 0; i < j; i++)
            if (tasks[i] == tasks[j])
                return icl_fail(ICL_ERR_INVALID_ARG, "task %s is listed twice", icl_task_family_task_name(f, tasks[j]));
    }
    return ICL_OK;
}

icl_status icl_repr_prompts_generate(const icl_task_family *f, const icl_repr_prompts_options *opt,
                                     icl_repr_prompts *out) {
    if (!f || !opt || !out)
        return icl_fail(ICL_ERR_INVALID_ARG, "icl_repr_prompts_generate: NULL argument");
    memset(out, 0, sizeof *out);
    ICL_TRY(check_tasks(f, opt->tasks, opt->n_tasks));
    if (opt->prompts_per_task < 1)
        return icl_fail(ICL_ERR_INVALID_ARG, "prompts per task must be >= 1, got %d", opt->prompts_per_task);
    int n_ex = opt->n_examples < 0 ? icl_task_family_default_examples(f) : opt->n_examples;
    if (opt->n_examples < -1)
        return icl_fail(ICL_ERR_INVALID_ARG, "examples per prompt must be >= 0 (or -1 for the default), got %d",
                        opt->n_examples);
    if (opt->keep_examples < -1 || opt->keep_examples > n_ex)
        return icl_fail(ICL_ERR_INVALID_ARG, "kept examples %d outside [-1, %d]", opt->keep_examples, n_ex);
    int nt = opt->tasks ? opt->n_tasks : icl_task_family_num_tasks(f), N = opt->prompts_per_task;
    out->n_tasks = nt;
    out->prompts_per_task = N;
    out->n = nt * N;
    out->tasks = malloc((size_t)nt * sizeof *out->tasks);
    out->labels = malloc((size_t)out->n * sizeof *out->labels);
    out->prompts = calloc((size_t)out->n, sizeof *out->prompts);
    if (!out->tasks || !out->labels || !out->prompts) {
        icl_repr_prompts_free(out);
        return icl_fail(ICL_ERR_NOMEM, "icl_repr_prompts_generate: out of memory for %d prompts", nt * N);
    }
    icl_rng base, task_rng, rng;
    icl_rng_init(&base, opt->seed, "prompt-set");
    icl_status s = ICL_OK;
    for (int j = 0; s == ICL_OK && j < nt; j++) {
        out->tasks[j] = opt->tasks ? opt->tasks[j] : j;
        icl_rng_split(&task_rng, &base, (uint64_t)out->tasks[j]);
        for (int i = 0; s == ICL_OK && i < N; i++) {
            icl_prompt *p = &out->prompts[(size_t)j * N + i];
            out->labels[(size_t)j * N + i] = j;
            icl_rng_split(&rng, &task_rng, (uint64_t)i);
            s = icl_task_generate(f, out->tasks[j], n_ex, &opt->gen, &rng, p);
            if (s == ICL_OK && opt->keep_examples >= 0)
                s = icl_prompt_keep_examples(p, opt->keep_examples, p);
        }
    }
    if (s != ICL_OK)
        icl_repr_prompts_free(out);
    return s;
}

icl_status icl_repr_prompts_answer_ids(const icl_repr_prompts *s, int32_t *ids, int *n_ids) {
    if (!s || !ids || !n_ids || s->n < 1 || !s->prompts)
        return icl_fail(ICL_ERR_INVALID_ARG, "icl_repr_prompts_answer_ids: NULL or empty argument");
    if (s->prompts[0].mode != ICL_MODE_TOKEN)
        return icl_fail(ICL_ERR_INVALID_ARG, "answer ids need token prompts; vector prompts have answer values");
    int A = s->prompts[0].answer_len, count = 0;
    /* first[c]: the item that introduced id c */
    int *first = malloc((size_t)s->n * sizeof *first);
    if (!first)
        return icl_fail(ICL_ERR_NOMEM, "icl_repr_prompts_answer_ids: out of memory");
    for (int i = 0; i < s->n; i++) {
        const icl_prompt *p = &s->prompts[i];
        const int32_t *ans = p->tokens + p->query_pos + 1;
        int c = 0;
        while (c < count) {
            const icl_prompt *q = &s->prompts[first[c]];
            if (memcmp(ans, q->tokens + q->query_pos + 1, (size_t)A * sizeof *ans) == 0)
                break;
            c++;
        }
        if (c == count)
            first[count++] = i;
        ids[i] = c;
    }
    free(first);
    *n_ids = count;
    return ICL_OK;
}

static icl_status check_vector_set(const icl_repr_prompts *s, const void *out, const char *fn) {
    if (!s || !out || s->n < 1 || !s->prompts)
        return icl_fail(ICL_ERR_INVALID_ARG, "%s: NULL or empty argument", fn);
    if (s->prompts[0].mode != ICL_MODE_VECTOR)
        return icl_fail(ICL_ERR_INVALID_ARG, "%s: needs vector prompts", fn);
    return ICL_OK;
}

icl_status icl_repr_prompts_answer_values(const icl_repr_prompts *s, double *values) {
    ICL_TRY(check_vector_set(s, values, "icl_repr_prompts_answer_values"));
    for (int i = 0; i < s->n; i++) {
        const icl_prompt *p = &s->prompts[i];
        values[i] = p->target_values[(size_t)p->query_pos * p->d_out];
    }
    return ICL_OK;
}

icl_status icl_repr_prompts_weights(const icl_repr_prompts *s, double *w) {
    ICL_TRY(check_vector_set(s, w, "icl_repr_prompts_weights"));
    int D = s->prompts[0].d_in - 1, max_points = 0;
    for (int i = 0; i < s->n; i++)
        if (s->prompts[i].n_examples + 1 > max_points) max_points = s->prompts[i].n_examples + 1;
    double *xs = malloc((size_t)max_points * D * sizeof *xs), *ys = malloc((size_t)max_points * sizeof *ys);
    double *unit = calloc((size_t)D, sizeof *unit);
    icl_status st = (xs && ys && unit) ? ICL_OK : icl_fail(ICL_ERR_NOMEM, "icl_repr_prompts_weights: out of memory");
    icl_baseline ls = icl_baseline_default(ICL_BASELINE_LEAST_SQUARES);
    /* A linear fit without intercept predicts w_j at the unit vector e_j. */
    for (int i = 0; st == ICL_OK && i < s->n; i++) {
        const icl_prompt *p = &s->prompts[i];
        st = icl_prompt_points(p, xs, ys, max_points);
        for (int j = 0; st == ICL_OK && j < D; j++) {
            unit[j] = 1.0;
            st = icl_baseline_predict(&ls, xs, ys, p->n_examples + 1, D, unit, &w[(size_t)i * D + j]);
            unit[j] = 0.0;
        }
    }
    free(xs);
    free(ys);
    free(unit);
    return st;
}

/* ---- residual representations ---- */

void icl_repr_set_free(icl_repr_set *r) {
    if (!r)
        return;
    free(r->X);
    free(r->score);
    memset(r, 0, sizeof *r);
}

static icl_status check_site(const icl_repr_site *site) {
    const icl_positions *p = &site->pos;
    if ((unsigned)p->kind > ICL_POS_LAST)
        return icl_fail(ICL_ERR_INVALID_ARG, "unknown position selector kind %d", (int)p->kind);
    if ((p->kind == ICL_POS_ROLE || p->kind == ICL_POS_ROLE_NTH) && (p->role < 0 || p->role >= ICL_ROLE_COUNT))
        return icl_fail(ICL_ERR_INVALID_ARG, "unknown role %d (roles are 0..%d)", p->role, ICL_ROLE_COUNT - 1);
    if ((unsigned)site->pool > ICL_POOL_MAX)
        return icl_fail(ICL_ERR_INVALID_ARG, "unknown pooling mode %d", (int)site->pool);
    return ICL_OK;
}

typedef struct {
    icl_task_batch tb;
    const icl_prompt **ptrs; /* (batch) */
    float *dense;            /* (batch, T, C) one level */
    float *gather;           /* (T, C) selected rows of one prompt */
    int *pos;                /* (T) */
    size_t cap_dense;
    int cap_T;
} collect_work;

static icl_status work_reserve(collect_work *w, int B, int T, int C) {
    size_t nd = (size_t)B * T * C;
    if (nd > w->cap_dense) {
        float *d = realloc(w->dense, nd * sizeof *d);
        if (!d)
            return icl_fail(ICL_ERR_NOMEM, "icl_repr_collect: out of memory for %zu floats", nd);
        w->dense = d;
        w->cap_dense = nd;
    }
    if (T > w->cap_T) {
        float *g = realloc(w->gather, (size_t)T * C * sizeof *g);
        int *p = g ? realloc(w->pos, (size_t)T * sizeof *p) : NULL;
        if (g)
            w->gather = g;
        if (p)
            w->pos = p;
        if (!g || !p)
            return icl_fail(ICL_ERR_NOMEM, "icl_repr_collect: out of memory");
        w->cap_T = T;
    }
    return ICL_OK;
}

/* Forward prompts [first, first+B) and pool every level into r. */
static icl_status collect_chunk(icl_model *m, const icl_prompt *prompts, int first, int B, const icl_repr_site *site,
                                collect_work *w, icl_repr_set *r) {
    for (int b = 0; b < B; b++) w->ptrs[b] = &prompts[first + b];
    ICL_TRY(icl_task_batch_pack(&w->tb, w->ptrs, B, 0));
    const icl_task_batch *tb = &w->tb;
    int T = tb->T, C = r->d, n_sel;
    ICL_TRY(work_reserve(w, B, T, C));
    ICL_TRY(icl_model_forward(m, &tb->batch, NULL));
    ICL_TRY(icl_query_scores(m, tb, r->score + first));
    icl_row_labels labels = {tb->roles, tb->prompt_len};
    for (int level = 0; level < r->levels; level++) {
        icl_point p = level == 0 ? ICL_POINT_EMBED : ICL_POINT_RESID_POST;
        ICL_TRY(icl_model_point_copy(m, p, level - 1, w->dense, (size_t)B * T * C));
        for (int b = 0; b < B; b++) {
            ICL_TRY(icl_select_positions(&site->pos, &labels, b, T, w->pos, &n_sel));
            if (n_sel < 1)
                return icl_fail(ICL_ERR_INVALID_ARG, "prompt %d has no position at the representation site",
                                first + b);
            for (int k = 0; k < n_sel; k++)
                memcpy(w->gather + (size_t)k * C, w->dense + ((size_t)b * T + w->pos[k]) * C,
                       (size_t)C * sizeof(float));
            ICL_TRY(icl_pool_span(w->gather, n_sel, C, 0, n_sel, site->pool,
                                  r->X + ((size_t)level * r->n + first + b) * C));
        }
    }
    return ICL_OK;
}

icl_status icl_repr_collect(icl_model *m, const icl_prompt *prompts, int n, const icl_repr_site *site, int batch,
                            icl_repr_set *out) {
    if (!m || !prompts || !site || !out)
        return icl_fail(ICL_ERR_INVALID_ARG, "icl_repr_collect: NULL argument");
    memset(out, 0, sizeof *out);
    if (n < 1 || batch < 1)
        return icl_fail(ICL_ERR_INVALID_ARG, "icl_repr_collect: need n >= 1 prompts and batch >= 1 (got %d, %d)", n,
                        batch);
    ICL_TRY(check_site(site));
    const icl_config *cfg = icl_model_config(m);
    for (int i = 0; i < n; i++)
        if (prompts[i].mode != cfg->mode)
            return icl_fail(ICL_ERR_INVALID_ARG, "prompt %d is in %s mode but the model in %s mode", i,
                            prompts[i].mode == ICL_MODE_TOKEN ? "token" : "vector",
                            cfg->mode == ICL_MODE_TOKEN ? "token" : "vector");
    out->levels = cfg->n_layer + 1;
    out->n = n;
    out->d = cfg->d_model;
    out->X = malloc((size_t)out->levels * n * out->d * sizeof *out->X);
    out->score = malloc((size_t)n * sizeof *out->score);
    collect_work w;
    memset(&w, 0, sizeof w);
    w.ptrs = malloc((size_t)(batch < n ? batch : n) * sizeof *w.ptrs);
    icl_status s =
        (out->X && out->score && w.ptrs) ? ICL_OK : icl_fail(ICL_ERR_NOMEM, "icl_repr_collect: out of memory");
    for (int first = 0; s == ICL_OK && first < n; first += batch)
        s = collect_chunk(m, prompts, first, n - first < batch ? n - first : batch, site, &w, out);
    icl_task_batch_free(&w.tb);
    free(w.ptrs);
    free(w.dense);
    free(w.gather);
    free(w.pos);
    if (s != ICL_OK)
        icl_repr_set_free(out);
    return s;
}
