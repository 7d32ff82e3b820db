/* Attention to roles (Yousefi et al.): the share of the query position's
 * attention on each role and on the examples of each task, per layer and
 * head, and relevant / irrelevant attention ratios, before (0-shot) and
 * after (k-shot) in-context examples and on mixed-task prompts. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "error.h"
#include "icl/attention_roles.h"
#include "icl/readout.h"
#include "probe_internal.h"

static const char *const ratio_names[ICL_ATTN_RATIO_COUNT] = {"query_source", "example_source", "task"};

const char *icl_attn_ratio_name(icl_attn_ratio r) {
    return (unsigned)r < ICL_ATTN_RATIO_COUNT ? ratio_names[r] : NULL;
}

void icl_attn_stats_free(icl_attn_stats *s) {
    if (!s)
        return;
    free(s->role);
    free(s->task);
    free(s->relevant);
    free(s->irrelevant);
    free(s->ratio);
    memset(s, 0, sizeof *s);
}

icl_status icl_attn_stats_init(icl_attn_stats *s, const icl_model *m, int n_tasks) {
    if (!s || !m)
        return icl_fail(ICL_ERR_INVALID_ARG, "icl_attn_stats_init: NULL argument");
    memset(s, 0, sizeof *s);
    if (n_tasks < 1)
        return icl_fail(ICL_ERR_INVALID_ARG, "icl_attn_stats_init: n_tasks must be >= 1, got %d", n_tasks);
    const icl_config *cfg = icl_model_config(m);
    s->n_layer = cfg->n_layer;
    s->n_head = cfg->n_head;
    s->n_tasks = n_tasks;
    size_t cells = (size_t)s->n_layer * (s->n_head + 1);
    s->role = calloc(cells * ICL_ROLE_COUNT, sizeof *s->role);
    s->task = calloc(cells * n_tasks, sizeof *s->task);
    s->relevant = calloc(cells * ICL_ATTN_RATIO_COUNT, sizeof *s->relevant);
    s->irrelevant = calloc(cells * ICL_ATTN_RATIO_COUNT, sizeof *s->irrelevant);
    s->ratio = calloc(cells * ICL_ATTN_RATIO_COUNT, sizeof *s->ratio);
    if (!s->role || !s->task || !s->relevant || !s->irrelevant || !s->ratio) {
        icl_attn_stats_free(s);
        return icl_fail(ICL_ERR_NOMEM, "icl_attn_stats_init: out of memory");
    }
    return ICL_OK;
}

static int is_example_role(int role) {
    return role == ICL_ROLE_EX_INPUT || role == ICL_ROLE_EX_SEP || role == ICL_ROLE_EX_ANSWER || role == ICL_ROLE_DELIM;
}

/* 1 if token `tok` is one of the answer tokens of example `ex` (role `answer_role`) in the row. */
static int in_answer(const int32_t *tokens, const int32_t *roles, const int32_t *ex_ids, int len, int answer_role,
                     int ex, int32_t tok) {
    for (int u = 0; u < len; u++)
        if (roles[u] == answer_role && ex_ids[u] == ex && tokens[u] == tok)
            return 1;
    return 0;
}

/* Per-position labels of one row over [0, len): task of the example a
 * position belongs to (-1 outside examples), and for each ratio 0 =
 * relevant, 1 = irrelevant, -1 = neither. *has[r]: both sets non-empty. */
static void row_labels(const icl_task_batch *tb, int b, int len, int relevant_task, int32_t *task_lab,
                       int32_t *ratio_lab, int *has) {
    size_t o = (size_t)b * tb->T;
    const int32_t *roles = tb->roles + o, *ex = tb->example_ids + o, *tasks = tb->task_ids + o;
    const int32_t *tok = tb->mode == ICL_MODE_TOKEN ? tb->tokens + o : NULL;
    int seen[ICL_ATTN_RATIO_COUNT][2] = {{0}};
    for (int t = 0; t < len; t++) {
        int32_t *lab = ratio_lab + (size_t)t;
        for (int r = 0; r < ICL_ATTN_RATIO_COUNT; r++) lab[(size_t)r * len] = -1;
        task_lab[t] = is_example_role(roles[t]) ? tasks[t] : -1;
        if (tok && roles[t] == ICL_ROLE_QUERY_INPUT)
            lab[(size_t)ICL_ATTN_QUERY_SOURCE * len] =
                in_answer(tok, roles, ex, tb->prompt_len[b], ICL_ROLE_QUERY_ANSWER, ex[t], tok[t]) ? 0 : 1;
        if (tok && roles[t] == ICL_ROLE_EX_INPUT)
            lab[(size_t)ICL_ATTN_EXAMPLE_SOURCE * len] =
                in_answer(tok, roles, ex, tb->prompt_len[b], ICL_ROLE_EX_ANSWER, ex[t], tok[t]) ? 0 : 1;
        if (is_example_role(roles[t]) && relevant_task >= 0)
            lab[(size_t)ICL_ATTN_TASK * len] = tasks[t] == relevant_task ? 0 : 1;
        for (int r = 0; r < ICL_ATTN_RATIO_COUNT; r++)
            if (lab[(size_t)r * len] >= 0) seen[r][lab[(size_t)r * len]] = 1;
    }
    for (int r = 0; r < ICL_ATTN_RATIO_COUNT; r++) has[r] = seen[r][0] && seen[r][1];
}

typedef struct {
    int32_t *task_lab, *ratio_lab; /* (T), (ICL_ATTN_RATIO_COUNT, T) */
    float *mean_row;               /* (T) */
    double *frac;                  /* (max(ICL_ROLE_COUNT, n_tasks, 2)) */
    double *score;                 /* (B) */
} attn_work;

/* Add one attention row a (len) of (layer, head slot hs) to the sums. */
static icl_status add_row(icl_attn_stats *s, const float *a, int len, const int32_t *roles, const attn_work *w,
                          const int *has, int layer, int hs) {
    size_t cell = (size_t)layer * (s->n_head + 1) + hs, cells = (size_t)s->n_layer * (s->n_head + 1);
    ICL_TRY(icl_attention_fractions(a, len, roles, ICL_ROLE_COUNT, w->frac));
    for (int r = 0; r < ICL_ROLE_COUNT; r++) s->role[cell * ICL_ROLE_COUNT + r] += w->frac[r];
    ICL_TRY(icl_attention_fractions(a, len, w->task_lab, s->n_tasks, w->frac));
    for (int t = 0; t < s->n_tasks; t++) s->task[cell * s->n_tasks + t] += w->frac[t];
    for (int r = 0; r < ICL_ATTN_RATIO_COUNT; r++) {
        if (!has[r])
            continue;
        ICL_TRY(icl_attention_fractions(a, len, w->ratio_lab + (size_t)r * len, 2, w->frac));
        s->relevant[r * cells + cell] += w->frac[0];
        s->irrelevant[r * cells + cell] += w->frac[1];
    }
    return ICL_OK;
}

static icl_status add_batch_rows(icl_attn_stats *s, const icl_task_batch *tb, const icl_capture_set *set,
                                 const int32_t *relevant_task, attn_work *w) {
    int NH = s->n_head, T = tb->T;
    const icl_capture *c0 = icl_capture_set_find(set, ICL_POINT_ATTN_PROBS, 0);
    for (size_t i = 0; i < c0->n; i++) {
        int b = c0->rows[i], t = c0->positions[i], len = t + 1, has[ICL_ATTN_RATIO_COUNT];
        if (i > 0 && c0->rows[i - 1] == b)
            continue; /* the first selected position of each row */
        for (int tk = 0; tk < tb->prompt_len[b] && tk < len; tk++)
            if (tb->task_ids[(size_t)b * T + tk] >= s->n_tasks)
                return icl_fail(ICL_ERR_INVALID_ARG, "task id %d of row %d outside the %d tasks of the statistics",
                                tb->task_ids[(size_t)b * T + tk], b, s->n_tasks);
        int rel = relevant_task ? relevant_task[b] : tb->prompt_task[b];
        row_labels(tb, b, len, rel, w->task_lab, w->ratio_lab, has);
        const int32_t *roles = tb->roles + (size_t)b * T;
        for (int l = 0; l < s->n_layer; l++) {
            const float *rec = icl_capture_set_find(set, ICL_POINT_ATTN_PROBS, l)->data + i * (size_t)NH * T;
            for (int k = 0; k < len; k++) {
                double acc = 0.0;
                for (int h = 0; h < NH; h++) acc += rec[(size_t)h * T + k];
                w->mean_row[k] = (float)(acc / NH);
            }
            for (int h = 0; h < NH; h++) ICL_TRY(add_row(s, rec + (size_t)h * T, len, roles, w, has, l, h));
            ICL_TRY(add_row(s, w->mean_row, len, roles, w, has, l, NH));
        }
        for (int r = 0; r < ICL_ATTN_RATIO_COUNT; r++) s->ratio_rows[r] += has[r];
        s->score += w->score[b];
        s->rows++;
    }
    return ICL_OK;
}

icl_status icl_attn_stats_add(icl_attn_stats *s, icl_model *m, const icl_task_batch *tb, icl_positions from,
                              const int32_t *relevant_task, const icl_intervention *iv, int n_iv) {
    if (!s || !s->role || !m || !tb)
        return icl_fail(ICL_ERR_INVALID_ARG, "icl_attn_stats_add: NULL argument");
    const icl_config *cfg = icl_model_config(m);
    if (cfg->n_layer != s->n_layer || cfg->n_head != s->n_head)
        return icl_fail(ICL_ERR_INVALID_ARG,
                        "icl_attn_stats_add: statistics for %d layers x %d heads, model has %d x %d",
                        s->n_layer, s->n_head, cfg->n_layer, cfg->n_head);
    if ((from.kind == ICL_POS_ROLE || from.kind == ICL_POS_ROLE_NTH) && (from.role < 0 || from.role >= ICL_ROLE_COUNT))
        return icl_fail(ICL_ERR_INVALID_ARG, "unknown role %d (roles are 0..%d)", from.role, ICL_ROLE_COUNT - 1);
    icl_row_labels labels = {tb->roles, tb->prompt_len};
    ICL_TRY(icl_forward_with(m, &tb->batch, &labels, iv, n_iv, NULL));
    int T = tb->T, n_frac = s->n_tasks > ICL_ROLE_COUNT ? s->n_tasks : ICL_ROLE_COUNT;
    attn_work w;
    w.task_lab = malloc((size_t)T * sizeof *w.task_lab);
    w.ratio_lab = malloc((size_t)ICL_ATTN_RATIO_COUNT * T * sizeof *w.ratio_lab);
    w.mean_row = malloc((size_t)T * sizeof *w.mean_row);
    w.frac = malloc((size_t)n_frac * sizeof *w.frac);
    w.score = malloc((size_t)tb->B * sizeof *w.score);
    icl_capture_plan *plan = NULL;
    icl_capture_set set = {0, NULL};
    icl_status st = (w.task_lab && w.ratio_lab && w.mean_row && w.frac && w.score)
                        ? ICL_OK
                        : icl_fail(ICL_ERR_NOMEM, "icl_attn_stats_add: out of memory");
    if (st == ICL_OK)
        st = icl_query_scores(m, tb, w.score);
    if (st == ICL_OK)
        st = icl_capture_plan_create(&plan);
    if (st == ICL_OK)
        st = icl_capture_plan_add(plan, ICL_POINT_ATTN_PROBS, -1, -1, from, NULL);
    if (st == ICL_OK)
        st = icl_capture_collect(plan, m, &labels, &set);
    if (st == ICL_OK)
        st = add_batch_rows(s, tb, &set, relevant_task, &w);
    icl_capture_set_free(&set);
    icl_capture_plan_free(plan);
    free(w.task_lab);
    free(w.ratio_lab);
    free(w.mean_row);
    free(w.frac);
    free(w.score);
    return st;
}

icl_status icl_attn_stats_finish(icl_attn_stats *s) {
    if (!s || !s->role)
        return icl_fail(ICL_ERR_INVALID_ARG, "icl_attn_stats_finish: NULL or uninitialised statistics");
    size_t cells = (size_t)s->n_layer * (s->n_head + 1);
    double rows = s->rows > 0 ? (double)s->rows : NAN;
    for (size_t i = 0; i < cells * ICL_ROLE_COUNT; i++) s->role[i] /= rows;
    for (size_t i = 0; i < cells * s->n_tasks; i++) s->task[i] /= rows;
    for (int r = 0; r < ICL_ATTN_RATIO_COUNT; r++) {
        double n = s->ratio_rows[r] > 0 ? (double)s->ratio_rows[r] : NAN;
        for (size_t i = r * cells; i < (r + 1) * cells; i++) {
            s->relevant[i] /= n;
            s->irrelevant[i] /= n;
            s->ratio[i] = s->relevant[i] / s->irrelevant[i];
        }
    }
    s->score /= rows;
    return ICL_OK;
}

/* ---- the probe ---- */

icl_attn_options icl_attn_options_default(const icl_task_family *f) {
    icl_attn_options o;
    o.prompts = icl_repr_prompts_options_default();
    o.prompts.prompts_per_task = 50;
    o.from = (f && icl_task_family_mode(f) == ICL_MODE_VECTOR) ? icl_pos_role_nth(ICL_ROLE_QUERY_INPUT, 0)
                                                               : icl_pos_role_nth(ICL_ROLE_QUERY_SEP, 0);
    o.mix_lambda = 0.75;
    o.batch = ICL_REPR_BATCH;
    return o;
}

void icl_attn_result_free(icl_attn_result *r) {
    if (!r)
        return;
    for (int c = 0; c < ICL_ATTN_MAX_CONDITIONS; c++) icl_attn_stats_free(&r->stats[c]);
    memset(r, 0, sizeof *r);
}

/* Accumulate single-task prompts of a set, `batch` at a time. */
static icl_status add_prompt_set(icl_attn_stats *s, icl_model *m, const icl_repr_prompts *set,
                                 const icl_attn_options *o) {
    icl_task_batch tb;
    memset(&tb, 0, sizeof tb);
    const icl_prompt **ptrs = malloc((size_t)o->batch * sizeof *ptrs);
    icl_status st = ptrs ? ICL_OK : icl_fail(ICL_ERR_NOMEM, "attention probe: out of memory");
    for (int first = 0; st == ICL_OK && first < set->n; first += o->batch) {
        int B = set->n - first < o->batch ? set->n - first : o->batch;
        for (int b = 0; b < B; b++) ptrs[b] = &set->prompts[first + b];
        st = icl_task_batch_pack(&tb, ptrs, B, 0);
        if (st == ICL_OK)
            st = icl_attn_stats_add(s, m, &tb, o->from, NULL, NULL, 0);
    }
    icl_task_batch_free(&tb);
    free(ptrs);
    return st;
}

/* Mixed item `item` of a condition: (j, i) = (item / N, item % N) has
 * tasks[j] dominant with share mix and the other task cycling through the
 * rest; *relevant = tasks[j]. */
static icl_status mixed_item(const icl_task_family *f, const icl_repr_prompts *set, int n_ex,
                             const icl_attn_options *o, int item, icl_mixed_prompt *out, int32_t *relevant) {
    int nt = set->n_tasks, N = set->prompts_per_task, j = item / N, i = item % N;
    int pair[2] = {set->tasks[j], set->tasks[(j + 1 + i % (nt - 1)) % nt]};
    double lambda[2] = {o->mix_lambda, 1.0 - o->mix_lambda};
    icl_rng base, rng;
    icl_rng_init(&base, o->prompts.seed, "attention-mixed");
    icl_rng_split(&rng, &base, (uint64_t)item);
    *relevant = pair[0];
    return icl_task_generate_mixed(f, pair, lambda, 2, n_ex, &o->prompts.gen, &rng, out);
}

/* Mixed prompts: item (j, i) has tasks[j] dominant with share mix and the
 * other task cycling through the rest; relevant = tasks[j]. */
static icl_status add_mixed(icl_attn_stats *s, icl_model *m, const icl_task_family *f, const icl_repr_prompts *set,
                            int n_ex, const icl_attn_options *o) {
    int n = set->n;
    icl_mixed_prompt *mp = calloc((size_t)o->batch, sizeof *mp);
    const icl_prompt **ptrs = malloc((size_t)o->batch * sizeof *ptrs);
    int32_t *relevant = malloc((size_t)o->batch * sizeof *relevant);
    icl_task_batch tb;
    memset(&tb, 0, sizeof tb);
    icl_status st = (mp && ptrs && relevant) ? ICL_OK : icl_fail(ICL_ERR_NOMEM, "attention probe: out of memory");
    for (int first = 0; st == ICL_OK && first < n; first += o->batch) {
        int B = n - first < o->batch ? n - first : o->batch;
        for (int b = 0; st == ICL_OK && b < B; b++) {
            st = mixed_item(f, set, n_ex, o, first + b, &mp[b], &relevant[b]);
            ptrs[b] = &mp[b].prompt;
        }
        if (st == ICL_OK)
            st = icl_task_batch_pack(&tb, ptrs, B, 0);
        if (st == ICL_OK)
            st = icl_attn_stats_add(s, m, &tb, o->from, relevant, NULL, 0);
    }
    for (int b = 0; mp && b < o->batch; b++) icl_mixed_prompt_free(&mp[b]);
    free(mp);
    free(ptrs);
    free(relevant);
    icl_task_batch_free(&tb);
    return st;
}

static icl_status run_condition(icl_attn_result *out, icl_model *m, const icl_task_family *f, const char *name,
                                int shots, const icl_repr_prompts *set, const icl_attn_options *o) {
    int c = out->n_cond;
    snprintf(out->names[c], sizeof out->names[c], "%s", name);
    out->shots[c] = shots;
    ICL_TRY(icl_attn_stats_init(&out->stats[c], m, icl_task_family_num_tasks(f)));
    out->n_cond++;
    if (strcmp(name, "mixed") == 0)
        ICL_TRY(add_mixed(&out->stats[c], m, f, set, shots, o));
    else
        ICL_TRY(add_prompt_set(&out->stats[c], m, set, o));
    return icl_attn_stats_finish(&out->stats[c]);
}

icl_status icl_attention_condition_prompts(const icl_task_family *f, const icl_attn_options *opt, int c, int n,
                                           icl_prompt *prompts, int32_t *relevant) {
    static const char fn[] = "icl_attention_condition_prompts";
    if (!f || !opt || !prompts || !relevant)
        return icl_fail(ICL_ERR_INVALID_ARG, "%s: NULL argument", fn);
    if (c < 0 || c >= ICL_ATTN_MAX_CONDITIONS)
        return icl_fail(ICL_ERR_INVALID_ARG, "%s: condition %d outside [0, %d)", fn, c, ICL_ATTN_MAX_CONDITIONS);
    int k = opt->prompts.n_examples < 0 ? icl_task_family_default_examples(f) : opt->prompts.n_examples;
    icl_repr_prompts_options po = opt->prompts;
    po.n_examples = k;
    po.keep_examples = c == 0 ? 0 : -1;
    icl_repr_prompts set;
    ICL_TRY(icl_repr_prompts_generate(f, &po, &set));
    icl_status s = set.n == n ? ICL_OK : icl_fail(ICL_ERR_INVALID_ARG, "%s: the condition has %d prompts, not %d", fn,
                                                  set.n, n);
    if (s == ICL_OK && c == 2 && (set.n_tasks < 2 || !(opt->mix_lambda > 0.0)))
        s = icl_fail(ICL_ERR_INVALID_ARG, "%s: mixed prompts need at least 2 tasks and a mix share > 0", fn);
    icl_mixed_prompt mp;
    memset(&mp, 0, sizeof mp);
    for (int i = 0; s == ICL_OK && i < n; i++) {
        relevant[i] = set.prompts[i].task;
        if (c == 2 && (s = mixed_item(f, &set, k, opt, i, &mp, &relevant[i])) != ICL_OK)
            break;
        s = icl_prompt_copy(&prompts[i], c == 2 ? &mp.prompt : &set.prompts[i]);
    }
    icl_mixed_prompt_free(&mp);
    icl_repr_prompts_free(&set);
    return s;
}

icl_status icl_attention_run(icl_model *m, const icl_task_family *f, const icl_attn_options *opt,
                             icl_attn_result *out) {
    if (!m || !f || !opt || !out)
        return icl_fail(ICL_ERR_INVALID_ARG, "icl_attention_run: NULL argument");
    memset(out, 0, sizeof *out);
    if (opt->batch < 1)
        return icl_fail(ICL_ERR_INVALID_ARG, "attention probe: batch must be >= 1, got %d", opt->batch);
    if (!(opt->mix_lambda >= 0.0 && opt->mix_lambda <= 1.0))
        return icl_fail(ICL_ERR_INVALID_ARG, "attention probe: mix share %g outside [0, 1]", opt->mix_lambda);
    int k = opt->prompts.n_examples < 0 ? icl_task_family_default_examples(f) : opt->prompts.n_examples;
    if (k < 1)
        return icl_fail(ICL_ERR_INVALID_ARG, "attention probe: the k-shot condition needs >= 1 example, got %d", k);
    icl_repr_prompts_options po = opt->prompts;
    po.n_examples = k;
    po.keep_examples = -1;
    icl_repr_prompts kshot, zero;
    memset(&zero, 0, sizeof zero);
    ICL_TRY(icl_repr_prompts_generate(f, &po, &kshot));
    po.keep_examples = 0;
    icl_status s = icl_repr_prompts_generate(f, &po, &zero);
    if (s == ICL_OK)
        s = run_condition(out, m, f, "0-shot", 0, &zero, opt);
    if (s == ICL_OK)
        s = run_condition(out, m, f, "k-shot", k, &kshot, opt);
    if (s == ICL_OK && opt->mix_lambda > 0.0 && kshot.n_tasks >= 2)
        s = run_condition(out, m, f, "mixed", k, &kshot, opt);
    icl_repr_prompts_free(&kshot);
    icl_repr_prompts_free(&zero);
    if (s != ICL_OK)
        icl_attn_result_free(out);
    return s;
}
