/* icl probe linear: logistic and ridge probes per layer with k-fold
 * cross-validation, on the residual stream at the representation site,
 * at one or more numbers of in-context examples. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "icl_cli.h"

#define MAX_SHOTS 8

typedef struct {
    cli_site where;
    const char *shots_text, *targets_text;
    int prompts, folds, independent;
    float l2, alpha;
} linear_options;

/* What the options select: the shot counts and targets, and the set-up of the prompts and probes. */
typedef struct {
    int shots[MAX_SHOTS], n_shots, max_shots, same_queries, n_targets;
    icl_linear_target targets[ICL_LINEAR_COUNT];
    icl_repr_prompts_options po;
    icl_repr_site site;
    icl_linear_options lo;
} linear_plan;

/* Comma-separated target names into t (at most cap); -1 after printing the error. */
static int parse_targets(const char *text, icl_linear_target *t, int cap) {
    char buf[256];
    snprintf(buf, sizeof buf, "%s", text);
    int n = 0;
    for (char *tok = strtok(buf, ","); tok; tok = strtok(NULL, ",")) {
        if (n == cap || icl_linear_target_parse(tok, &t[n]) != ICL_OK) {
            cli_fail("--targets", ICL_ERR_INVALID_ARG);
            return -1;
        }
        n++;
    }
    return n;
}

/* Prints the error and returns 1 when an option is wrong. */
static int configure(cli_probe *p, const linear_options *a, linear_plan *q) {
    const icl_task_family *f = p->family;
    icl_linear_target all[ICL_LINEAR_COUNT] = {ICL_LINEAR_TASK, ICL_LINEAR_ANSWER, ICL_LINEAR_WEIGHTS};
    memcpy(q->targets, all, sizeof all);
    q->n_targets = icl_task_family_mode(f) == ICL_MODE_VECTOR ? 3 : 2;
    q->n_shots = 1;
    q->shots[0] = icl_task_family_default_examples(f);
    if (a->shots_text && (q->n_shots = cli_parse_counts(a->shots_text, q->shots, MAX_SHOTS)) < 1) {
        fprintf(stderr, "icl probe linear: --shots wants up to %d comma-separated counts\n", MAX_SHOTS);
        return 1;
    }
    if (a->targets_text && (q->n_targets = parse_targets(a->targets_text, q->targets, ICL_LINEAR_COUNT)) < 1)
        return 1;
    if (cli_probe_tasks(p, f, CLI_MAX_TASKS, 0))
        return 1;
    q->po = icl_repr_prompts_options_default();
    q->po.prompts_per_task = a->prompts;
    q->po.seed = (uint64_t)p->seed;
    q->po.tasks = p->tasks;
    q->po.n_tasks = p->n_tasks;
    q->lo = icl_linear_options_default();
    q->lo.folds = a->folds;
    q->lo.seed = (uint64_t)p->seed;
    if (a->l2 >= 0.0f)
        q->lo.l2 = a->l2;
    if (a->alpha >= 0.0f)
        q->lo.alpha = a->alpha;
    int min_shots = q->shots[0];
    q->max_shots = q->shots[0];
    for (int c = 1; c < q->n_shots; c++) {
        if (q->shots[c] < min_shots) min_shots = q->shots[c];
        if (q->shots[c] > q->max_shots) q->max_shots = q->shots[c];
    }
    q->same_queries = !a->independent;
    return cli_site_parse(&a->where, f, min_shots, &q->site);
}

/* --save-inputs: target t's values y (n, n_out) and held-out predictions
 * pred (levels, n, n_out) as shots<k>_<target>_y.npy and _pred.npy. */
static icl_status save_target(cli_probe *p, int shots, const char *name, const icl_repr_set *r, int n_out,
                              const double *y, const double *pred) {
    char file[128];
    size_t shape[3] = {(size_t)r->levels, (size_t)r->n, (size_t)n_out};
    snprintf(file, sizeof file, "shots%d_%s_y.npy", shots, name);
    CLI_TRY(cli_save_doubles(p, file, y, 2, shape + 1));
    snprintf(file, sizeof file, "shots%d_%s_pred.npy", shots, name);
    return cli_save_doubles(p, file, pred, 3, shape);
}

/* Every target's probe on one set of representations; rows into csv. With
 * --save-inputs also each target's values and held-out predictions. */
static icl_status probe_targets(cli_probe *p, const icl_repr_set *r, const icl_repr_prompts *set,
                                const linear_plan *q, int shots, icl_csv *csv) {
    double *metric = malloc((size_t)r->levels * sizeof *metric);
    if (!metric)
        return ICL_ERR_NOMEM;
    icl_status s = ICL_OK;
    int token = icl_task_family_mode(p->family) == ICL_MODE_TOKEN;
    for (int t = 0; s == ICL_OK && t < q->n_targets; t++) {
        double chance, *y = NULL, *pred = NULL;
        int n_out = icl_linear_target_outputs(set, q->targets[t]);
        if (p->save_inputs) {
            y = malloc((size_t)r->n * n_out * sizeof *y);
            pred = malloc((size_t)r->levels * r->n * n_out * sizeof *pred);
            s = y && pred ? ICL_OK : ICL_ERR_NOMEM;
        }
        if (s == ICL_OK)
            s = icl_linear_probe_levels_cv(r, set, q->targets[t], &q->lo, metric, &chance, y, pred, NULL);
        if (s == ICL_OK && p->save_inputs)
            s = save_target(p, shots, icl_linear_target_name(q->targets[t]), r, n_out, y, pred);
        free(y);
        free(pred);
        int logistic = q->targets[t] == ICL_LINEAR_TASK || (q->targets[t] == ICL_LINEAR_ANSWER && token);
        const char *kind = logistic ? "logistic" : "ridge", *name = icl_linear_target_name(q->targets[t]);
        if (s == ICL_OK)
            printf("%d-shot %-8s %-8s", shots, kind, name);
        for (int l = 0; s == ICL_OK && l < r->levels; l++) {
            printf("  L%d %6.3f", l, metric[l]);
            s = cli_csv_row(csv, cli_int(shots), cli_int(l), cli_str(kind), cli_str(name),
                            cli_str(logistic ? "cv_accuracy" : "cv_r2"), cli_num(metric[l]));
            if (logistic)
                s = cli_csv_row(csv, cli_int(shots), cli_int(l), cli_str(kind), cli_str(name), cli_str("chance"),
                                cli_num(chance));
        }
        if (s == ICL_OK)
            printf(logistic ? "   (chance %.3f)\n" : "\n", chance);
    }
    free(metric);
    return s;
}

/* --save-inputs for one shot count: its prompts, representations (levels, n, d)
 * and the fold of each item, as shots<k>_*.npy. */
static icl_status save_shots(cli_probe *p, const linear_plan *q, int shots, const icl_repr_prompts *set,
                             const icl_repr_set *r) {
    char prefix[32], file[64];
    snprintf(prefix, sizeof prefix, "shots%d_", shots);
    CLI_TRY(cli_save_prompts(p, prefix, set->prompts, NULL, set->n));
    CLI_TRY(cli_save_repr(p, prefix, r));
    int32_t *fold_of = malloc((size_t)set->n * sizeof *fold_of);
    if (!fold_of)
        return ICL_ERR_NOMEM;
    icl_rng rng;
    icl_rng_init(&rng, q->lo.seed, "linear-probe-folds");
    icl_status s = icl_probe_folds(fold_of, set->n, q->lo.folds, &rng);
    size_t n = (size_t)set->n;
    snprintf(file, sizeof file, "%sfolds.npy", prefix);
    if (s == ICL_OK)
        s = cli_save_array(p, file, ICL_DTYPE_I32, 1, &n, fold_of);
    free(fold_of);
    return s;
}

/* One shot count: prompts (the same queries at every count unless --independent), representations and
 * every target's probe. */
static icl_status run_shots(cli_probe *p, const linear_plan *q, int shots, icl_csv *csv) {
    icl_repr_prompts_options o;
    CLI_TRY(icl_linear_prompts_options(&q->po, shots, q->max_shots, q->same_queries, &o));
    icl_repr_prompts set;
    CLI_TRY(icl_repr_prompts_generate(p->family, &o, &set));
    icl_repr_set r;
    icl_status s = icl_repr_collect(p->model, set.prompts, set.n, &q->site, ICL_REPR_BATCH, &r);
    if (s == ICL_OK) {
        if (p->save_inputs)
            s = save_shots(p, q, shots, &set, &r);
        if (s == ICL_OK)
            s = probe_targets(p, &r, &set, q, shots, csv);
        icl_repr_set_free(&r);
    }
    icl_repr_prompts_free(&set);
    return s;
}

static void record(icl_sidecar *sc, const linear_options *a, const linear_plan *q) {
    icl_sidecar_set_number(sc, "prompts_per_task", a->prompts);
    double shots[MAX_SHOTS];
    char names[64] = "";
    for (int c = 0; c < q->n_shots; c++) shots[c] = q->shots[c];
    for (int t = 0; t < q->n_targets; t++) {
        size_t len = strlen(names);
        snprintf(names + len, sizeof names - len, "%s%s", t ? "," : "", icl_linear_target_name(q->targets[t]));
    }
    icl_sidecar_set_numbers(sc, "shots", shots, q->n_shots);
    icl_sidecar_set_number(sc, "same_queries", q->same_queries);
    icl_sidecar_set_string(sc, "targets", names);
    icl_sidecar_set_number(sc, "folds", q->lo.folds);
    icl_sidecar_set_number(sc, "l2", q->lo.l2);
    icl_sidecar_set_number(sc, "alpha", q->lo.alpha);
    cli_site_record(&a->where, sc, "all");
}

static int run(cli_probe *p, void *options) {
    const linear_options *a = options;
    linear_plan q;
    if (configure(p, a, &q) || cli_probe_outputs(p, p->family))
        return 1;
    record(p->o.sc, a, &q);
    const char *cols[] = {"shots", "layer", "probe", "target", "metric", "value"};
    icl_csv *csv;
    icl_status s = cli_table_create(&p->o, "linear.csv", 6, cols, &csv);
    if (s != ICL_OK)
        return cli_fail(p->o.path, s);
    printf("linear probes, %d-fold cross-validated accuracy (logistic) or R^2 (ridge) per layer; layer 0 = "
           "embeddings\n",
           a->folds);
    if (q.n_shots > 1)
        printf("%s\n", q.same_queries ? "same queries at every shot count (the first k examples of each prompt)"
                                      : "independent prompts per shot count");
    for (int c = 0; c < q.n_shots; c++)
        if ((s = run_shots(p, &q, q.shots[c], csv)) != ICL_OK) {
            icl_csv_abort(csv);
            return cli_fail("linear probe", s);
        }
    if ((s = icl_csv_close(csv)) != ICL_OK || (s = cli_probe_write_sidecar(p)) != ICL_OK)
        return cli_fail(p->o.path, s);
    printf("wrote %s/linear.csv and linear.json\n", p->out);
    return 0;
}

int probe_linear(int argc, char **argv) {
    static const cli_probe_spec spec = {
        "linear",
        "usage: icl probe linear --model M.safetensors [options]\n\n"
        "Linear probes per layer: multinomial logistic regression on the task (and token answers),\n"
        "ridge regression on vector answers and weights; k-fold cross-validated accuracy / R^2.\n"
        "With several --shots the counts share their queries: every prompt is drawn with the most\n"
        "examples and cut to the first k. A layer where every prompt has the same representation\n"
        "(the query separator's embedding) has nothing to decode and reports nan.",
        NULL, "seed of the prompts and folds [1]", 1};
    linear_options a = {.prompts = 100, .folds = 5, .l2 = -1.0f, .alpha = -1.0f};
    cli_option opts[] = {
        {"--prompts", OPT_INT, &a.prompts, "prompts per task [100]"},
        {"--shots", OPT_STRING, &a.shots_text, "comma-separated examples per prompt [family default]"},
        {"--targets", OPT_STRING, &a.targets_text, "task, answer, weights (vector families) [task,answer(,weights)]"},
        {"--independent", OPT_FLAG, &a.independent, "fresh prompts per shot count [same queries, fewer examples]"},
        {"--folds", OPT_INT, &a.folds, "cross-validation folds [5]"},
        {"--l2", OPT_FLOAT, &a.l2, "logistic L2 penalty [1e-3]"},
        {"--alpha", OPT_FLOAT, &a.alpha, "ridge penalty [1e-4]"},
        CLI_SITE_OPTIONS(a.where, "query_sep; vector: ex_answer, query_input at 0 shots", "all of them"),
    };
    return cli_probe_main(&spec, argc, argv, opts, sizeof opts / sizeof opts[0], run, &a);
}
