/* icl probe attention: the share of the query position's attention on each
 * role and on the examples of each task, per layer and head, with
 * relevant / irrelevant ratios, 0-shot vs k-shot vs mixed prompts. */
#include <stdio.h>
#include <stdlib.h>
#include "icl_cli.h"

typedef struct {
    const char *from_role;
    int prompts, examples, from_nth, batch;
    float mix;
} attention_options;

/* The rows of one condition's statistics; head -1 = the mean over heads. */
static void condition_rows(icl_csv *csv, const icl_task_family *f, const icl_attn_result *r, int c) {
    const icl_attn_stats *st = &r->stats[c];
    int NH = st->n_head;
    size_t cells = (size_t)st->n_layer * (NH + 1);
#define ROW(kind, name, value)                                                                                \
    cli_csv_row(csv, cli_str(r->names[c]), cli_int(r->shots[c]), cli_int(l), cli_int(head), cli_str(kind), \
                cli_str(name), cli_num(value))
    for (int l = 0; l < st->n_layer; l++)
        for (int h = 0; h <= NH; h++) {
            size_t cell = (size_t)l * (NH + 1) + h;
            int head = h == NH ? -1 : h;
            for (int ro = 0; ro < ICL_ROLE_COUNT; ro++)
                ROW("role", icl_role_name((icl_role)ro), st->role[cell * ICL_ROLE_COUNT + ro]);
            for (int t = 0; t < st->n_tasks; t++)
                ROW("task", icl_task_family_task_name(f, t), st->task[cell * st->n_tasks + t]);
            for (int k = 0; k < ICL_ATTN_RATIO_COUNT; k++) {
                const char *name = icl_attn_ratio_name((icl_attn_ratio)k);
                ROW("relevant", name, st->relevant[k * cells + cell]);
                ROW("irrelevant", name, st->irrelevant[k * cells + cell]);
                ROW("ratio", name, st->ratio[k * cells + cell]);
            }
        }
#undef ROW
    cli_csv_row(csv, cli_str(r->names[c]), cli_int(r->shots[c]), cli_int(-1), cli_int(-1), cli_str("score"),
                cli_str(icl_task_family_mode(f) == ICL_MODE_TOKEN ? "accuracy" : "mse"), cli_num(st->score));
}

/* Every statistic of every condition, long format. */
static icl_status write_csv(cli_outputs *o, const char *path, const icl_task_family *f, const icl_attn_result *r) {
    const char *cols[] = {"condition", "shots", "layer", "head", "kind", "name", "value"};
    icl_csv *csv;
    CLI_TRY(icl_csv_create(path, 7, cols, &csv));
    for (int c = 0; c < r->n_cond; c++) condition_rows(csv, f, r, c);
    CLI_TRY(icl_csv_close(csv));
    return icl_sidecar_add_file(o->sc, "attention.csv");
}

/* roles (n_cond, L, NH+1, ICL_ROLE_COUNT) and ratios (n_cond, ICL_ATTN_RATIO_COUNT, L, NH+1) as float32. */
static icl_status write_npys(cli_outputs *o, const icl_attn_result *r) {
    const icl_attn_stats *s0 = &r->stats[0];
    size_t cells = (size_t)s0->n_layer * (s0->n_head + 1);
    size_t nr = cells * ICL_ROLE_COUNT, nq = cells * ICL_ATTN_RATIO_COUNT;
    float *buf = malloc((size_t)r->n_cond * (nr > nq ? nr : nq) * sizeof *buf);
    if (!buf)
        return ICL_ERR_NOMEM;
    for (int c = 0; c < r->n_cond; c++)
        for (size_t i = 0; i < nr; i++) buf[c * nr + i] = (float)r->stats[c].role[i];
    size_t shape[4] = {(size_t)r->n_cond, (size_t)s0->n_layer, (size_t)s0->n_head + 1, ICL_ROLE_COUNT};
    icl_status s = icl_npy_write(cli_out_path(o, "attention_roles.npy"), ICL_DTYPE_F32, 4, shape, buf);
    for (int c = 0; c < r->n_cond; c++)
        for (size_t i = 0; i < nq; i++) buf[c * nq + i] = (float)r->stats[c].ratio[i];
    size_t qshape[4] = {(size_t)r->n_cond, ICL_ATTN_RATIO_COUNT, (size_t)s0->n_layer, (size_t)s0->n_head + 1};
    if (s == ICL_OK)
        s = icl_npy_write(cli_out_path(o, "attention_ratios.npy"), ICL_DTYPE_F32, 4, qshape, buf);
    free(buf);
    return s;
}

/* Rows [first, first+B) of a condition: the attention row of every layer
 * and head at the first position `from` selects, into rows (n, L, NH, T),
 * that position into pos, the behaviour score into score. */
static icl_status capture_rows(icl_model *m, const icl_prompt *prompts, int first, int B, int T, icl_positions from,
                               float *rows, int32_t *pos, double *score) {
    const icl_config *cfg = icl_model_config(m);
    int L = cfg->n_layer, NH = cfg->n_head;
    const icl_prompt **ptrs = malloc((size_t)B * sizeof *ptrs);
    icl_task_batch tb = {0};
    icl_capture_plan *plan = NULL;
    icl_capture_set set = {0, NULL};
    icl_status s = ptrs ? ICL_OK : ICL_ERR_NOMEM;
    for (int b = 0; s == ICL_OK && b < B; b++) ptrs[b] = &prompts[first + b];
    if (s == ICL_OK)
        s = icl_task_batch_pack(&tb, ptrs, B, 0);
    icl_row_labels labels = {tb.roles, tb.prompt_len};
    if (s == ICL_OK)
        s = icl_forward_with(m, &tb.batch, &labels, NULL, 0, NULL);
    if (s == ICL_OK)
        s = icl_query_scores(m, &tb, score + first);
    if (s == ICL_OK && (s = icl_capture_plan_create(&plan)) == ICL_OK &&
        (s = icl_capture_plan_add(plan, ICL_POINT_ATTN_PROBS, -1, -1, from, NULL)) == ICL_OK)
        s = icl_capture_collect(plan, m, &labels, &set);
    for (int l = 0; s == ICL_OK && l < L; l++) {
        const icl_capture *c = icl_capture_set_find(&set, ICL_POINT_ATTN_PROBS, l);
        for (size_t i = 0; i < c->n; i++) {
            int b = c->rows[i], t = c->positions[i];
            if (i > 0 && c->rows[i - 1] == b)
                continue; /* the first selected position of each row, as the statistics */
            pos[first + b] = t;
            for (int h = 0; h < NH; h++)
                for (int k = 0; k <= t; k++)
                    rows[(((size_t)(first + b) * L + l) * NH + h) * T + k] = c->data[(i * NH + h) * tb.T + k];
        }
    }
    icl_capture_set_free(&set);
    icl_capture_plan_free(plan);
    icl_task_batch_free(&tb);
    free(ptrs);
    return s;
}

/* --save-inputs: per condition its prompts, each row's relevant task, the
 * attending position and the attention rows the statistics average. */
static icl_status save_inputs(cli_probe *p, const icl_attn_options *o, const icl_attn_result *r) {
    const icl_config *cfg = icl_model_config(p->model);
    int L = cfg->n_layer, NH = cfg->n_head;
    icl_status s = ICL_OK;
    for (int c = 0; s == ICL_OK && c < r->n_cond; c++) {
        int n = (int)r->stats[c].rows, T = 0;
        icl_prompt *prompts = calloc((size_t)n, sizeof *prompts);
        int32_t *relevant = malloc((size_t)n * sizeof *relevant), *pos = malloc((size_t)n * sizeof *pos);
        double *score = malloc((size_t)n * sizeof *score);
        float *rows = NULL;
        s = prompts && relevant && pos && score ? icl_attention_condition_prompts(p->family, o, c, n, prompts, relevant)
                                                : ICL_ERR_NOMEM;
        for (int i = 0; s == ICL_OK && i < n; i++) T = prompts[i].T > T ? prompts[i].T : T;
        if (s == ICL_OK && !(rows = calloc((size_t)n * L * NH * T, sizeof *rows)))
            s = ICL_ERR_NOMEM;
        for (int first = 0; s == ICL_OK && first < n; first += o->batch)
            s = capture_rows(p->model, prompts, first, n - first < o->batch ? n - first : o->batch, T, o->from, rows,
                             pos, score);
        char prefix[32], name[64];
        snprintf(prefix, sizeof prefix, "%s_", c == 0 ? "zero_shot" : c == 1 ? "k_shot" : "mixed");
        size_t len = (size_t)n, shape[4] = {len, (size_t)L, (size_t)NH, (size_t)T};
        if (s == ICL_OK)
            s = cli_save_prompts(p, prefix, prompts, NULL, n);
#define SAVE(what, call)                                      \
    if (s == ICL_OK) {                                        \
        snprintf(name, sizeof name, "%s%s.npy", prefix, what); \
        s = call;                                             \
    }
        SAVE("attention", cli_save_array(p, name, ICL_DTYPE_F32, 4, shape, rows));
        SAVE("from_pos", cli_save_array(p, name, ICL_DTYPE_I32, 1, &len, pos));
        SAVE("relevant_task", cli_save_array(p, name, ICL_DTYPE_I32, 1, &len, relevant));
        SAVE("score", cli_save_doubles(p, name, score, 1, &len));
#undef SAVE
        for (int i = 0; prompts && i < n; i++) icl_prompt_free(&prompts[i]);
        free(prompts);
        free(relevant);
        free(pos);
        free(score);
        free(rows);
    }
    return s;
}

static void print_summary(const icl_task_family *f, const icl_attn_result *r) {
    const icl_attn_stats *s0 = &r->stats[0];
    int L = s0->n_layer, NH = s0->n_head;
    size_t cells = (size_t)L * (NH + 1);
    printf("attention from the query position, mean over heads; share of attention per role\n");
    for (int c = 0; c < r->n_cond; c++) {
        const icl_attn_stats *st = &r->stats[c];
        printf("%s (%d examples, %ld prompts, %s %.3f)\n", r->names[c], r->shots[c], st->rows,
               icl_task_family_mode(f) == ICL_MODE_TOKEN ? "accuracy" : "query mse", st->score);
        for (int l = 0; l < L; l++) {
            size_t cell = (size_t)l * (NH + 1) + NH;
            printf("  layer %d:", l);
            for (int ro = 0; ro < ICL_ROLE_COUNT; ro++) {
                double v = st->role[cell * ICL_ROLE_COUNT + ro];
                if (v >= 0.005)
                    printf(" %s %.2f", icl_role_name((icl_role)ro), v);
            }
            printf(" | ratios:");
            for (int k = 0; k < ICL_ATTN_RATIO_COUNT; k++)
                if (st->ratio_rows[k] > 0)
                    printf(" %s %.3f", icl_attn_ratio_name((icl_attn_ratio)k), st->ratio[k * cells + cell]);
            printf("\n");
        }
    }
}

static void record(icl_sidecar *sc, const attention_options *a, const icl_attn_options *o, const icl_attn_result *r) {
    icl_sidecar_set_number(sc, "prompts_per_task", a->prompts);
    icl_sidecar_set_number(sc, "examples", r->shots[1]);
    icl_sidecar_set_number(sc, "mix_lambda", a->mix);
    icl_sidecar_set_string(sc, "from_role", icl_role_name((icl_role)o->from.role));
    icl_sidecar_set_number(sc, "from_nth", o->from.nth);
}

static int run(cli_probe *p, void *options) {
    const attention_options *a = options;
    const char *out = p->out;
    icl_attn_options o = icl_attn_options_default(p->family);
    o.prompts.prompts_per_task = a->prompts;
    o.prompts.n_examples = a->examples;
    o.prompts.seed = (uint64_t)p->seed;
    o.mix_lambda = a->mix;
    o.batch = a->batch;
    if (cli_probe_tasks(p, p->family, CLI_MAX_TASKS, 0))
        return 1;
    o.prompts.tasks = p->tasks;
    o.prompts.n_tasks = p->n_tasks;
    icl_status s;
    if (a->from_role) {
        int role;
        if ((s = icl_role_parse(a->from_role, &role)) != ICL_OK)
            return cli_fail("--from-role", s);
        o.from = icl_pos_role_nth(role, a->from_nth);
    }
    if (cli_probe_outputs(p, p->family))
        return 1;
    icl_attn_result r = {0};
    int rc = 0;
    if ((s = icl_attention_run(p->model, p->family, &o, &r)) != ICL_OK)
        rc = cli_fail("attention", s);
    if (rc == 0) {
        print_summary(p->family, &r);
        record(p->o.sc, a, &o, &r);
        char path[1024];
        snprintf(path, sizeof path, "%s/attention.csv", out);
        if ((s = write_csv(&p->o, path, p->family, &r)) != ICL_OK || (s = write_npys(&p->o, &r)) != ICL_OK)
            rc = cli_fail(path, s);
        else if (p->save_inputs && (s = save_inputs(p, &o, &r)) != ICL_OK)
            rc = cli_fail("--save-inputs", s);
        else if ((s = cli_probe_write_sidecar(p)) != ICL_OK)
            rc = cli_fail(p->o.path, s);
    }
    if (rc == 0)
        printf("wrote %s/{attention.csv,attention_roles.npy,attention_ratios.npy}; plots: gnuplot -e "
               "\"in='%s/attention.csv'; out='%s/attention.png'\" scripts/plot_attention.gp (plot='roles' for role "
               "shares)\n",
               out, out, out);
    icl_attn_result_free(&r);
    return rc;
}

int probe_attention(int argc, char **argv) {
    static const cli_probe_spec spec = {
        "attention",
        "usage: icl probe attention --model M.safetensors [options]\n\n"
        "Attention to roles (Yousefi et al.): share of the query position's attention on each role\n"
        "and on each task's examples, per layer and head, and relevant/irrelevant ratios;\n"
        "0-shot vs k-shot on the same queries, and mixed-task prompts.",
        NULL, NULL, 1};
    attention_options a = {.prompts = 50, .examples = -1, .batch = ICL_REPR_BATCH, .mix = 0.75f};
    cli_option opts[] = {
        {"--prompts", OPT_INT, &a.prompts, "prompts per task and condition [50]"},
        {"--examples", OPT_INT, &a.examples, "examples of the k-shot and mixed prompts [family default]"},
        {"--mix", OPT_FLOAT, &a.mix, "dominant task's share of the mixed prompts, 0 = no mixed prompts [0.75]"},
        {"--from-role", OPT_STRING, &a.from_role, "attending position's role [query_sep; vector: query_input]"},
        {"--from-nth", OPT_INT, &a.from_nth, "occurrence of that role, 0 first, -1 last [0]"},
        {"--batch", OPT_INT, &a.batch, "prompts per forward pass [64]"},
    };
    return cli_probe_main(&spec, argc, argv, opts, sizeof opts / sizeof opts[0], run, &a);
}
