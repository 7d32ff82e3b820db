/* icl probe decodability: task decodability (Han et al.) per layer and task,
 * the pairwise task x task matrix, optional PCA coordinates, and TD over the
 * periodic checkpoints of a training run. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "icl/representations.h"
#include "icl_cli.h"

/* Return the status of a failing call. */
#define TRY(call)                        \
    do {                                 \
        icl_status try_s_ = (call);      \
        if (try_s_ != ICL_OK)            \
            return try_s_;               \
    } while (0)

/* PCA components written to pca.csv at most. */
#define MAX_PCA 16


static icl_status write_td(cli_outputs *o, const icl_task_family *f, const icl_repr_prompts *set, const icl_td_result *r) {
    const char *cols[] = {"layer", "task", "task_id", "metric", "value"};
    icl_csv *csv;
    TRY(icl_csv_create(cli_out_path(o, "td.csv"), 5, cols, &csv));
    icl_status s = ICL_OK;
    for (int l = 0; l < r->levels; l++)
        for (int t = -1; t < r->n_tasks; t++) {
            s = s ? s : icl_csv_int(csv, l);
            s = s ? s : icl_csv_string(csv, t < 0 ? "mean" : icl_task_family_task_name(f, set->tasks[t]));
            s = s ? s : icl_csv_int(csv, t < 0 ? -1 : set->tasks[t]);
            s = s ? s : icl_csv_string(csv, "td");
            s = s ? s : icl_csv_number(csv, t < 0 ? r->td_mean[l] : r->td[(size_t)l * r->n_tasks + t]);
            s = s ? s : icl_csv_end_row(csv);
        }
    if (s != ICL_OK) {
        icl_csv_abort(csv);
        return s;
    }
    TRY(icl_csv_close(csv));

    const char *pcols[] = {"layer", "task_a", "task_b", "td"};
    TRY(icl_csv_create(cli_out_path(o, "pairwise.csv"), 4, pcols, &csv));
    for (int a = 0; a < r->n_tasks; a++)
        for (int b = 0; b < r->n_tasks; b++) {
            s = s ? s : icl_csv_int(csv, r->pairwise_level);
            s = s ? s : icl_csv_string(csv, icl_task_family_task_name(f, set->tasks[a]));
            s = s ? s : icl_csv_string(csv, icl_task_family_task_name(f, set->tasks[b]));
            s = s ? s : icl_csv_number(csv, r->pairwise[(size_t)a * r->n_tasks + b]);
            s = s ? s : icl_csv_end_row(csv);
        }
    if (s != ICL_OK) {
        icl_csv_abort(csv);
        return s;
    }
    TRY(icl_csv_close(csv));

    const char *scols[] = {"task", "task_id", "metric", "value"};
    TRY(icl_csv_create(cli_out_path(o, "score.csv"), 4, scols, &csv));
    int token = icl_task_family_mode(f) == ICL_MODE_TOKEN;
    for (int t = 0; t < r->n_tasks; t++) {
        s = s ? s : icl_csv_string(csv, icl_task_family_task_name(f, set->tasks[t]));
        s = s ? s : icl_csv_int(csv, set->tasks[t]);
        s = s ? s : icl_csv_string(csv, token ? "accuracy" : "mse");
        s = s ? s : icl_csv_number(csv, r->score[t]);
        s = s ? s : icl_csv_end_row(csv);
    }
    if (s != ICL_OK) {
        icl_csv_abort(csv);
        return s;
    }
    TRY(icl_csv_close(csv));

    size_t n = (size_t)r->levels * r->n_tasks, pn = (size_t)r->n_tasks * r->n_tasks;
    float *buf = malloc((n > pn ? n : pn) * sizeof *buf);
    if (!buf)
        return ICL_ERR_NOMEM;
    for (size_t i = 0; i < n; i++) buf[i] = (float)r->td[i];
    size_t shape[2] = {(size_t)r->levels, (size_t)r->n_tasks};
    s = icl_npy_write(cli_out_path(o, "td.npy"), ICL_DTYPE_F32, 2, shape, buf);
    for (size_t i = 0; i < pn; i++) buf[i] = (float)r->pairwise[i];
    shape[0] = shape[1] = (size_t)r->n_tasks;
    if (s == ICL_OK)
        s = icl_npy_write(cli_out_path(o, "pairwise.npy"), ICL_DTYPE_F32, 2, shape, buf);
    free(buf);
    if (s == ICL_OK) {
        int32_t *ids = malloc((size_t)set->n * sizeof *ids);
        if (!ids)
            return ICL_ERR_NOMEM;
        for (int i = 0; i < set->n; i++) ids[i] = set->tasks[set->labels[i]];
        size_t len = (size_t)set->n;
        s = icl_npy_write(cli_out_path(o, "labels.npy"), ICL_DTYPE_I32, 1, &len, ids);
        free(ids);
    }
    return s;
}

static icl_status write_pca(cli_outputs *o, const icl_task_family *f, const icl_repr_prompts *set, const icl_td_result *r) {
    int m = r->pca_dims;
    const char *cols[3 + MAX_PCA] = {"layer", "item", "task"};
    char names[MAX_PCA][8];
    for (int k = 0; k < m; k++) {
        snprintf(names[k], sizeof names[k], "pc%d", k + 1);
        cols[3 + k] = names[k];
    }
    icl_csv *csv;
    TRY(icl_csv_create(cli_out_path(o, "pca.csv"), 3 + m, cols, &csv));
    icl_status s = ICL_OK;
    for (int l = 0; l < r->levels; l++)
        for (int i = 0; i < r->n; i++) {
            s = s ? s : icl_csv_int(csv, l);
            s = s ? s : icl_csv_int(csv, i);
            s = s ? s : icl_csv_string(csv, icl_task_family_task_name(f, set->tasks[set->labels[i]]));
            for (int k = 0; k < m; k++)
                s = s ? s : icl_csv_number(csv, r->pca[((size_t)l * r->n + i) * m + k]);
            s = s ? s : icl_csv_end_row(csv);
        }
    if (s != ICL_OK) {
        icl_csv_abort(csv);
        return s;
    }
    TRY(icl_csv_close(csv));
    size_t n = (size_t)r->levels * r->n * m;
    float *buf = malloc(n * sizeof *buf);
    if (!buf)
        return ICL_ERR_NOMEM;
    for (size_t i = 0; i < n; i++) buf[i] = (float)r->pca[i];
    size_t shape[3] = {(size_t)r->levels, (size_t)r->n, (size_t)m};
    s = icl_npy_write(cli_out_path(o, "pca.npy"), ICL_DTYPE_F32, 3, shape, buf);
    free(buf);
    return s;
}

static icl_status write_curve(cli_outputs *o, const icl_task_family *f, const int *tasks, const icl_td_curve *c) {
    const char *cols[] = {"step", "layer", "task", "task_id", "metric", "value"};
    icl_csv *csv;
    TRY(icl_csv_create(cli_out_path(o, "td_steps.csv"), 6, cols, &csv));
    icl_status s = ICL_OK;
    const char *score_name = icl_task_family_mode(f) == ICL_MODE_TOKEN ? "accuracy" : "mse";
    for (int i = 0; i < c->n_ckpt; i++) {
        for (int l = 0; l < c->levels; l++)
            for (int t = -1; t < c->n_tasks; t++) {
                s = s ? s : icl_csv_int(csv, c->steps[i]);
                s = s ? s : icl_csv_int(csv, l);
                s = s ? s : icl_csv_string(csv, t < 0 ? "mean" : icl_task_family_task_name(f, tasks[t]));
                s = s ? s : icl_csv_int(csv, t < 0 ? -1 : tasks[t]);
                s = s ? s : icl_csv_string(csv, "td");
                s = s ? s : icl_csv_number(csv, t < 0 ? c->td_mean[(size_t)i * c->levels + l]
                                                      : c->td[((size_t)i * c->levels + l) * c->n_tasks + t]);
                s = s ? s : icl_csv_end_row(csv);
            }
        for (int t = 0; t < c->n_tasks; t++) {
            s = s ? s : icl_csv_int(csv, c->steps[i]);
            s = s ? s : icl_csv_int(csv, -1);
            s = s ? s : icl_csv_string(csv, icl_task_family_task_name(f, tasks[t]));
            s = s ? s : icl_csv_int(csv, tasks[t]);
            s = s ? s : icl_csv_string(csv, score_name);
            s = s ? s : icl_csv_number(csv, c->score[(size_t)i * c->n_tasks + t]);
            s = s ? s : icl_csv_end_row(csv);
        }
    }
    if (s != ICL_OK) {
        icl_csv_abort(csv);
        return s;
    }
    TRY(icl_csv_close(csv));
    size_t n = (size_t)c->n_ckpt * c->levels * c->n_tasks;
    float *buf = malloc(n * sizeof *buf);
    if (!buf)
        return ICL_ERR_NOMEM;
    for (size_t i = 0; i < n; i++) buf[i] = (float)c->td[i];
    size_t shape[3] = {(size_t)c->n_ckpt, (size_t)c->levels, (size_t)c->n_tasks};
    s = icl_npy_write(cli_out_path(o, "td_steps.npy"), ICL_DTYPE_F32, 3, shape, buf);
    free(buf);
    return s;
}

static void print_td(const icl_task_family *f, const icl_repr_prompts *set, const icl_td_result *r) {
    printf("task decodability (leave-one-out kNN) per layer; layer 0 = embeddings, l = output of block l\n");
    printf("%-12s", "task \\ layer");
    for (int l = 0; l < r->levels; l++) printf(" %6d", l);
    printf("   %s\n", icl_task_family_mode(f) == ICL_MODE_TOKEN ? "accuracy" : "query mse");
    for (int t = 0; t < r->n_tasks; t++) {
        printf("%-12s", icl_task_family_task_name(f, set->tasks[t]));
        for (int l = 0; l < r->levels; l++) printf(" %6.3f", r->td[(size_t)l * r->n_tasks + t]);
        printf("   %.3f\n", r->score[t]);
    }
    printf("%-12s", "mean");
    for (int l = 0; l < r->levels; l++) printf(" %6.3f", r->td_mean[l]);
    printf("\nbest layer %d (TD %.3f); pairwise matrix at layer %d\n", r->best_level, r->td_mean[r->best_level],
           r->pairwise_level);
}

int probe_decodability(int argc, char **argv) {
    const char *ckpt_dir = NULL;
    cli_site where = {0};
    int prompts = 100, examples = -1, k = ICL_KNN_DEFAULT_K, layer = -1, pca = 0;
    cli_option opts[] = {
        {"--prompts", OPT_INT, &prompts, "prompts per task [100]"},
        {"--examples", OPT_INT, &examples, "in-context examples per prompt [family default]"},
        {"--k", OPT_INT, &k, "neighbours of the leave-one-out vote [10]"},
        {"--layer", OPT_INT, &layer, "layer of the pairwise matrix, 0..L [the best layer]"},
        CLI_SITE_OPTIONS(where, "query_sep; vector: ex_answer", "token 0; vector -1"),
        {"--pca", OPT_INT, &pca, "also write PCA coordinates on this many components [0 = off]"},
        {"--checkpoints", OPT_STRING, &ckpt_dir, "directory of step_*.safetensors: TD over training"},
    };
    cli_probe p = {.out = "out/probe-decodability", .seed = 1};
    int rc;
    if (!cli_probe_begin(&p, argc, argv, opts, sizeof opts / sizeof opts[0],
                         "usage: icl probe decodability --model M.safetensors [options]\n\n"
                         "Task decodability (Han et al.): leave-one-out k-NN on the residual stream at the\n"
                         "representation site, per layer and task; pairwise; over checkpoints with --checkpoints.",
                         &rc))
        return rc;
    icl_model *m = p.model;
    icl_task_family *f = p.family;
    const char *out = p.out;
    int result = 1, task_ids[256], n_ids = 0;
    icl_status s = ICL_OK;
    const char *what = "decodability";
    icl_repr_prompts set = {0};
    icl_td_result td = {0};
    icl_td_curve curve = {0};
    icl_checkpoint_list list = {0};
    cli_outputs o = {out, NULL, {0}};
    icl_repr_prompts_options po = icl_repr_prompts_options_default();
    po.prompts_per_task = prompts;
    po.n_examples = examples;
    po.seed = (uint64_t)p.seed;
    icl_repr_site site;
    icl_td_options to = icl_td_options_default();
    to.k = k;
    to.pairwise_level = layer;
    to.pca_dims = pca;
    if (p.tasks_list && (s = icl_task_family_parse_tasks(f, p.tasks_list, task_ids, 256, &n_ids)) != ICL_OK) {
        what = "--tasks";
        goto done;
    }
    po.tasks = p.tasks_list ? task_ids : NULL;
    po.n_tasks = n_ids;
    if ((s = icl_repr_site_parse(f, where.role, where.nth, where.pool, examples < 0 ? 1 : examples, &site)) != ICL_OK) {
        what = "representation site";
        goto done;
    }
    if (pca < 0 || pca > MAX_PCA) {
        fprintf(stderr, "icl probe decodability: --pca must be in [0, %d]\n", MAX_PCA);
        goto done;
    }
    if (cli_make_dir(out))
        goto done;
    if ((s = icl_sidecar_create("decodability", (uint64_t)p.seed, &o.sc)) != ICL_OK)
        goto done;
    icl_sidecar_set_string(o.sc, "model", p.model_path);
    icl_sidecar_set_string(o.sc, "task", icl_task_family_spec(f));
    icl_sidecar_set_number(o.sc, "prompts_per_task", prompts);
    icl_sidecar_set_number(o.sc, "examples", examples < 0 ? icl_task_family_default_examples(f) : examples);
    icl_sidecar_set_number(o.sc, "k", k);
    cli_site_record(&where, o.sc, "default");
    if ((s = icl_repr_prompts_generate(f, &po, &set)) != ICL_OK)
        goto done;
    if ((s = icl_decodability_run(m, f, &po, &site, &to, &td)) != ICL_OK)
        goto done;
    print_td(f, &set, &td);
    icl_sidecar_set_number(o.sc, "pairwise_layer", td.pairwise_level);
    what = out;
    if ((s = write_td(&o, f, &set, &td)) != ICL_OK)
        goto done;
    if (pca > 0 && (s = write_pca(&o, f, &set, &td)) != ICL_OK)
        goto done;
    if (ckpt_dir) {
        icl_backend_kind backend;
        if (cli_backend(p.backend, &backend))
            goto done;
        what = ckpt_dir;
        if ((s = icl_checkpoint_list_steps(ckpt_dir, &list)) != ICL_OK ||
            (s = icl_decodability_curve_run(&list, backend, f, &po, &site, k, &curve)) != ICL_OK)
            goto done;
        icl_sidecar_set_string(o.sc, "checkpoints", ckpt_dir);
        printf("\nmean TD over training (%d checkpoints), per layer:\n%-8s", curve.n_ckpt, "step");
        for (int l = 0; l < curve.levels; l++) printf(" %6d", l);
        printf("\n");
        for (int i = 0; i < curve.n_ckpt; i++) {
            printf("%-8ld", curve.steps[i]);
            for (int l = 0; l < curve.levels; l++) printf(" %6.3f", curve.td_mean[(size_t)i * curve.levels + l]);
            printf("\n");
        }
        what = out;
        if ((s = write_curve(&o, f, set.tasks, &curve)) != ICL_OK)
            goto done;
    }
    snprintf(o.path, sizeof o.path, "%s/decodability.json", out);
    if ((s = icl_sidecar_write(o.sc, o.path)) != ICL_OK)
        goto done;
    printf("wrote %s/{td.csv,pairwise.csv,score.csv,...}; plots: gnuplot -e \"in='%s/td.csv'; out='%s/td.png'\" "
           "scripts/plot_decodability.gp (plot='pairwise' / 'steps' / 'pca' for the others)\n",
           out, out, out);
    result = 0;
done:
    if (s != ICL_OK)
        cli_fail(what, s);
    icl_sidecar_free(o.sc);
    icl_checkpoint_list_free(&list);
    icl_td_curve_free(&curve);
    icl_td_result_free(&td);
    icl_repr_prompts_free(&set);
    cli_probe_end(&p);
    return result;
}
