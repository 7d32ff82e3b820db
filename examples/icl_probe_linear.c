/* icl probe linear: logistic and ridge probes per layer with k-fold
 * cross-validation, on the residual stream at the representation site,
 * at one or more numbers of in-context examples. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "icl/representations.h"
#include "icl_cli.h"

#define MAX_SHOTS 8

/* Comma-separated non-negative integers into v (at most cap); -1 on bad input. */
static int parse_list(const char *text, int *v, int cap) {
    int n = 0;
    const char *p = text;
    while (*p) {
        char *end;
        long x = strtol(p, &end, 10);
        if (end == p || x < 0 || x > 100000 || n == cap || (*end != ',' && *end != '\0'))
            return -1;
        v[n++] = (int)x;
        p = *end == ',' ? end + 1 : end;
    }
    return n;
}

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

/* One shot count: prompts, representations and every target's probe; rows into csv. */
static icl_status run_shots(icl_model *m, const icl_task_family *f, const icl_repr_prompts_options *po,
                            const icl_repr_site *site, const icl_linear_target *targets, int n_targets,
                            const icl_linear_options *lo, int shots, icl_csv *csv) {
    icl_repr_prompts_options o = *po;
    o.n_examples = shots;
    icl_repr_prompts set;
    icl_status s = icl_repr_prompts_generate(f, &o, &set);
    if (s != ICL_OK)
        return s;
    icl_repr_set r;
    if ((s = icl_repr_collect(m, set.prompts, set.n, site, ICL_REPR_BATCH, &r)) != ICL_OK) {
        icl_repr_prompts_free(&set);
        return s;
    }
    double *metric = malloc((size_t)r.levels * sizeof *metric);
    if (!metric)
        s = ICL_ERR_NOMEM;
    int token = icl_task_family_mode(f) == ICL_MODE_TOKEN;
    for (int t = 0; s == ICL_OK && t < n_targets; t++) {
        double chance;
        s = icl_linear_probe_levels(&r, &set, targets[t], lo, metric, &chance);
        int logistic = targets[t] == ICL_LINEAR_TASK || (targets[t] == ICL_LINEAR_ANSWER && token);
        const char *name = icl_linear_target_name(targets[t]);
        if (s == ICL_OK)
            printf("%d-shot %-8s %-8s", shots, logistic ? "logistic" : "ridge", name);
        for (int l = 0; s == ICL_OK && l < r.levels; l++) {
            printf("  L%d %6.3f", l, metric[l]);
            s = s ? s : icl_csv_int(csv, shots);
            s = s ? s : icl_csv_int(csv, l);
            s = s ? s : icl_csv_string(csv, logistic ? "logistic" : "ridge");
            s = s ? s : icl_csv_string(csv, name);
            s = s ? s : icl_csv_string(csv, logistic ? "cv_accuracy" : "cv_r2");
            s = s ? s : icl_csv_number(csv, metric[l]);
            s = s ? s : icl_csv_end_row(csv);
            if (logistic) {
                s = s ? s : icl_csv_int(csv, shots);
                s = s ? s : icl_csv_int(csv, l);
                s = s ? s : icl_csv_string(csv, "logistic");
                s = s ? s : icl_csv_string(csv, name);
                s = s ? s : icl_csv_string(csv, "chance");
                s = s ? s : icl_csv_number(csv, chance);
                s = s ? s : icl_csv_end_row(csv);
            }
        }
        if (s == ICL_OK)
            printf(logistic ? "   (chance %.3f)\n" : "\n", chance);
    }
    free(metric);
    icl_repr_set_free(&r);
    icl_repr_prompts_free(&set);
    return s;
}

int probe_linear(int argc, char **argv) {
    cli_site where = {0};
    const char *shots_text = NULL, *targets_text = NULL;
    int prompts = 100, folds = 5;
    float l2 = -1.0f, alpha = -1.0f;
    cli_option opts[] = {
        {"--prompts", OPT_INT, &prompts, "prompts per task [100]"},
        {"--shots", OPT_STRING, &shots_text, "comma-separated examples per prompt [family default]"},
        {"--targets", OPT_STRING, &targets_text, "task, answer, weights (vector families) [task,answer(,weights)]"},
        {"--folds", OPT_INT, &folds, "cross-validation folds [5]"},
        {"--l2", OPT_FLOAT, &l2, "logistic L2 penalty [1e-3]"},
        {"--alpha", OPT_FLOAT, &alpha, "ridge penalty [1e-4]"},
        CLI_SITE_OPTIONS(where, "query_sep; vector: ex_answer, query_input at 0 shots", "all of them"),
    };
    cli_probe p = {.out = "out/probe-linear", .seed = 1, .seed_help = "seed of the prompts and folds [1]"};
    int rc;
    if (!cli_probe_begin(&p, argc, argv, opts, sizeof opts / sizeof opts[0],
                         "usage: icl probe linear --model M.safetensors [options]\n\n"
                         "Linear probes per layer: multinomial logistic regression on the task (and token answers),\n"
                         "ridge regression on vector answers and weights; k-fold cross-validated accuracy / R^2.",
                         &rc))
        return rc;
    icl_model *m = p.model;
    icl_task_family *f = p.family;
    const char *out = p.out;
    int result = 1, task_ids[256], n_ids = 0, shots[MAX_SHOTS], n_shots = 1, n_targets;
    icl_linear_target targets[ICL_LINEAR_COUNT] = {ICL_LINEAR_TASK, ICL_LINEAR_ANSWER, ICL_LINEAR_WEIGHTS};
    icl_status s = ICL_OK;
    const char *what = "linear probe";
    icl_csv *csv = NULL;
    icl_sidecar *sc = NULL;
    int vector = icl_task_family_mode(f) == ICL_MODE_VECTOR;
    n_targets = vector ? 3 : 2;
    shots[0] = icl_task_family_default_examples(f);
    if (shots_text && (n_shots = parse_list(shots_text, shots, MAX_SHOTS)) < 1) {
        fprintf(stderr, "icl probe linear: --shots wants up to %d comma-separated counts\n", MAX_SHOTS);
        goto done;
    }
    if (targets_text && (n_targets = parse_targets(targets_text, targets, ICL_LINEAR_COUNT)) < 1)
        goto done;
    if (p.tasks_list && (s = icl_task_family_parse_tasks(f, p.tasks_list, task_ids, 256, &n_ids)) != ICL_OK) {
        what = "--tasks";
        goto done;
    }
    icl_repr_prompts_options po = icl_repr_prompts_options_default();
    po.prompts_per_task = prompts;
    po.seed = (uint64_t)p.seed;
    po.tasks = p.tasks_list ? task_ids : NULL;
    po.n_tasks = n_ids;
    icl_linear_options lo = icl_linear_options_default();
    lo.folds = folds;
    lo.seed = (uint64_t)p.seed;
    if (l2 >= 0.0f)
        lo.l2 = l2;
    if (alpha >= 0.0f)
        lo.alpha = alpha;
    int min_shots = shots[0];
    for (int c = 1; c < n_shots; c++)
        if (shots[c] < min_shots) min_shots = shots[c];
    icl_repr_site site;
    if ((s = icl_repr_site_parse(f, where.role, where.nth, where.pool, min_shots, &site)) != ICL_OK) {
        what = "representation site";
        goto done;
    }
    if (cli_make_dir(out))
        goto done;
    char path[1024];
    snprintf(path, sizeof path, "%s/linear.csv", out);
    const char *cols[] = {"shots", "layer", "probe", "target", "metric", "value"};
    what = path;
    if ((s = icl_csv_create(path, 6, cols, &csv)) != ICL_OK)
        goto done;
    printf("linear probes, %d-fold cross-validated accuracy (logistic) or R^2 (ridge) per layer; layer 0 = "
           "embeddings\n",
           folds);
    what = "linear probe";
    for (int c = 0; c < n_shots; c++)
        if ((s = run_shots(m, f, &po, &site, targets, n_targets, &lo, shots[c], csv)) != ICL_OK)
            goto done;
    what = path;
    s = icl_csv_close(csv);
    csv = NULL;
    if (s != ICL_OK || (s = icl_sidecar_create("linear", (uint64_t)p.seed, &sc)) != ICL_OK)
        goto done;
    icl_sidecar_set_string(sc, "model", p.model_path);
    icl_sidecar_set_string(sc, "task", icl_task_family_spec(f));
    icl_sidecar_set_number(sc, "prompts_per_task", prompts);
    double shots_d[MAX_SHOTS];
    char names[64] = "";
    for (int c = 0; c < n_shots; c++) shots_d[c] = shots[c];
    for (int t = 0; t < n_targets; t++) {
        size_t len = strlen(names);
        snprintf(names + len, sizeof names - len, "%s%s", t ? "," : "", icl_linear_target_name(targets[t]));
    }
    icl_sidecar_set_numbers(sc, "shots", shots_d, n_shots);
    icl_sidecar_set_string(sc, "targets", names);
    icl_sidecar_set_number(sc, "folds", lo.folds);
    icl_sidecar_set_number(sc, "l2", lo.l2);
    icl_sidecar_set_number(sc, "alpha", lo.alpha);
    cli_site_record(&where, sc, "all");
    icl_sidecar_add_file(sc, "linear.csv");
    snprintf(path, sizeof path, "%s/linear.json", out);
    if ((s = icl_sidecar_write(sc, path)) != ICL_OK)
        goto done;
    printf("wrote %s/linear.csv and linear.json\n", out);
    result = 0;
done:
    if (s != ICL_OK)
        cli_fail(what, s);
    if (csv)
        icl_csv_abort(csv);
    icl_sidecar_free(sc);
    cli_probe_end(&p);
    return result;
}
