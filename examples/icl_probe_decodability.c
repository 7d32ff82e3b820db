/* icl probe decodability: task decodability (Han et al.) per layer and task,
 * the pairwise task x task matrix, optional PCA coordinates, and TD over the
 * periodic checkpoints of a training run. */
#include <stdio.h>
#include <stdlib.h>
#include "icl_cli.h"

/* PCA components written to pca.csv at most. */
#define MAX_PCA 16

typedef struct {
    const char *ckpt_dir;
    cli_site where;
    int prompts, examples, k, layer, pca;
} td_options;

static icl_status write_td(cli_outputs *o, const icl_task_family *f, const icl_repr_prompts *set, const icl_td_result *r) {
    const char *cols[] = {"layer", "task", "task_id", "metric", "value", "td_weighted"};
    icl_csv *csv;
    CLI_TRY(cli_table_create(o, "td.csv", 6, cols, &csv));
    for (int l = 0; l < r->levels; l++)
        for (int t = -1; t < r->n_tasks; t++)
            cli_csv_row(csv, cli_int(l), cli_str(t < 0 ? "mean" : icl_task_family_task_name(f, set->tasks[t])),
                        cli_int(t < 0 ? -1 : set->tasks[t]), cli_str("td"),
                        cli_num(t < 0 ? r->td_mean[l] : r->td[(size_t)l * r->n_tasks + t]),
                        cli_num(t < 0 ? r->td_weighted_mean[l] : r->td_weighted[(size_t)l * r->n_tasks + t]));
    CLI_TRY(icl_csv_close(csv));

    const char *pcols[] = {"layer", "task_a", "task_b", "td"};
    CLI_TRY(cli_table_create(o, "pairwise.csv", 4, pcols, &csv));
    for (int a = 0; a < r->n_tasks; a++)
        for (int b = 0; b < r->n_tasks; b++)
            cli_csv_row(csv, cli_int(r->pairwise_level), cli_str(icl_task_family_task_name(f, set->tasks[a])),
                        cli_str(icl_task_family_task_name(f, set->tasks[b])),
                        cli_num(r->pairwise[(size_t)a * r->n_tasks + b]));
    CLI_TRY(icl_csv_close(csv));

    const char *scols[] = {"task", "task_id", "metric", "value"};
    CLI_TRY(cli_table_create(o, "score.csv", 4, scols, &csv));
    int token = icl_task_family_mode(f) == ICL_MODE_TOKEN;
    for (int t = 0; t < r->n_tasks; t++)
        cli_csv_row(csv, cli_str(icl_task_family_task_name(f, set->tasks[t])), cli_int(set->tasks[t]),
                    cli_str(token ? "accuracy" : "mse"), cli_num(r->score[t]));
    CLI_TRY(icl_csv_close(csv));

    size_t shape[2] = {(size_t)r->levels, (size_t)r->n_tasks}, pshape[2] = {(size_t)r->n_tasks, (size_t)r->n_tasks};
    CLI_TRY(cli_write_doubles(o, "td.npy", r->td, 2, shape));
    CLI_TRY(cli_write_doubles(o, "td_weighted.npy", r->td_weighted, 2, shape));
    CLI_TRY(cli_write_doubles(o, "pairwise.npy", r->pairwise, 2, pshape));
    int32_t *ids = malloc((size_t)set->n * sizeof *ids);
    if (!ids)
        return ICL_ERR_NOMEM;
    for (int i = 0; i < set->n; i++) ids[i] = set->tasks[set->labels[i]];
    size_t len = (size_t)set->n;
    icl_status s = icl_npy_write(cli_out_path(o, "labels.npy"), ICL_DTYPE_I32, 1, &len, ids);
    free(ids);
    return s;
}

static icl_status write_pca(cli_outputs *o, const icl_task_family *f, const icl_repr_prompts *set, const icl_td_result *r) {
    int m = r->pca_dims;
    const char *cols[3 + MAX_PCA] = {"layer", "item", "task"};
    char names[MAX_PCA][16]; /* "pc" and any int */
    for (int k = 0; k < m; k++) {
        snprintf(names[k], sizeof names[k], "pc%d", k + 1);
        cols[3 + k] = names[k];
    }
    icl_csv *csv;
    CLI_TRY(cli_table_create(o, "pca.csv", 3 + m, cols, &csv));
    for (int l = 0; l < r->levels; l++)
        for (int i = 0; i < r->n; i++) {
            cli_cell cells[3 + MAX_PCA] = {cli_int(l), cli_int(i),
                                           cli_str(icl_task_family_task_name(f, set->tasks[set->labels[i]]))};
            for (int k = 0; k < m; k++) cells[3 + k] = cli_num(r->pca[((size_t)l * r->n + i) * m + k]);
            cli_csv_cells(csv, cells, 3 + m);
        }
    CLI_TRY(icl_csv_close(csv));
    size_t shape[3] = {(size_t)r->levels, (size_t)r->n, (size_t)m};
    return cli_write_doubles(o, "pca.npy", r->pca, 3, shape);
}

static icl_status write_curve(cli_outputs *o, const icl_task_family *f, const int *tasks, const icl_td_curve *c) {
    const char *cols[] = {"step", "layer", "task", "task_id", "metric", "value"};
    icl_csv *csv;
    CLI_TRY(cli_table_create(o, "td_steps.csv", 6, cols, &csv));
    const char *score_name = icl_task_family_mode(f) == ICL_MODE_TOKEN ? "accuracy" : "mse";
    for (int i = 0; i < c->n_ckpt; i++) {
        for (int l = 0; l < c->levels; l++)
            for (int t = -1; t < c->n_tasks; t++)
                cli_csv_row(csv, cli_int(c->steps[i]), cli_int(l),
                            cli_str(t < 0 ? "mean" : icl_task_family_task_name(f, tasks[t])),
                            cli_int(t < 0 ? -1 : tasks[t]), cli_str("td"),
                            cli_num(t < 0 ? c->td_mean[(size_t)i * c->levels + l]
                                          : c->td[((size_t)i * c->levels + l) * c->n_tasks + t]));
        for (int t = 0; t < c->n_tasks; t++)
            cli_csv_row(csv, cli_int(c->steps[i]), cli_int(-1), cli_str(icl_task_family_task_name(f, tasks[t])),
                        cli_int(tasks[t]), cli_str(score_name), cli_num(c->score[(size_t)i * c->n_tasks + t]));
    }
    CLI_TRY(icl_csv_close(csv));
    size_t shape[3] = {(size_t)c->n_ckpt, (size_t)c->levels, (size_t)c->n_tasks};
    return cli_write_doubles(o, "td_steps.npy", c->td, 3, shape);
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
    printf("\n%-12s", "mean weighted");
    for (int l = 0; l < r->levels; l++) printf(" %6.3f", r->td_weighted_mean[l]);
    printf("   (votes weighted by 1/distance: no ties)\nbest layer %d (TD %.3f, weighted %.3f); pairwise matrix at "
           "layer %d\n", r->best_level, r->td_mean[r->best_level], r->td_weighted_mean[r->best_level], r->pairwise_level);
}

static void print_curve(const icl_td_curve *c) {
    printf("\nmean TD over training (%d checkpoints), per layer:\n%-8s", c->n_ckpt, "step");
    for (int l = 0; l < c->levels; l++) printf(" %6d", l);
    printf("\n");
    for (int i = 0; i < c->n_ckpt; i++) {
        printf("%-8ld", c->steps[i]);
        for (int l = 0; l < c->levels; l++) printf(" %6.3f", c->td_mean[(size_t)i * c->levels + l]);
        printf("\n");
    }
}

/* --save-inputs: the prompts, their representations at the site (what
 * icl_decodability_run collects) and the class index of every item. */
static icl_status save_inputs(cli_probe *p, const icl_repr_prompts *set, const icl_repr_site *site) {
    icl_repr_set r;
    CLI_TRY(cli_save_prompts(p, "", set->prompts, NULL, set->n));
    CLI_TRY(icl_repr_collect(p->model, set->prompts, set->n, site, ICL_REPR_BATCH, &r));
    size_t n = (size_t)set->n;
    icl_status s = cli_save_repr(p, "", &r);
    if (s == ICL_OK)
        s = cli_save_array(p, "labels.npy", ICL_DTYPE_I32, 1, &n, set->labels);
    icl_repr_set_free(&r);
    return s;
}

/* TD over the checkpoints of --checkpoints: printed and written. */
static int over_checkpoints(cli_probe *p, const td_options *a, const icl_repr_prompts_options *po,
                            const icl_repr_site *site, const icl_repr_prompts *set) {
    icl_backend_kind backend;
    if (cli_backend(p->backend, &backend))
        return 1;
    icl_checkpoint_list list = {0};
    icl_td_curve curve = {0};
    icl_status s;
    int rc = 0;
    if ((s = icl_checkpoint_list_steps(a->ckpt_dir, &list)) != ICL_OK ||
        (s = icl_decodability_curve_run(&list, backend, p->family, po, site, a->k, &curve)) != ICL_OK)
        rc = cli_fail(a->ckpt_dir, s);
    if (rc == 0) {
        icl_sidecar_set_string(p->o.sc, "checkpoints", a->ckpt_dir);
        print_curve(&curve);
        if ((s = write_curve(&p->o, p->family, set->tasks, &curve)) != ICL_OK)
            rc = cli_fail(p->out, s);
    }
    icl_checkpoint_list_free(&list);
    icl_td_curve_free(&curve);
    return rc;
}

static void record(icl_sidecar *sc, const td_options *a, const icl_task_family *f) {
    icl_sidecar_set_number(sc, "prompts_per_task", a->prompts);
    icl_sidecar_set_number(sc, "examples", a->examples < 0 ? icl_task_family_default_examples(f) : a->examples);
    icl_sidecar_set_number(sc, "k", a->k);
    cli_site_record(&a->where, sc, "default");
}

static int run(cli_probe *p, void *options) {
    const td_options *a = options;
    icl_task_family *f = p->family;
    const char *out = p->out;
    icl_repr_prompts set = {0};
    icl_td_result td = {0};
    icl_repr_prompts_options po = icl_repr_prompts_options_default();
    po.prompts_per_task = a->prompts;
    po.n_examples = a->examples;
    po.seed = (uint64_t)p->seed;
    icl_repr_site site;
    icl_td_options to = icl_td_options_default();
    to.k = a->k;
    to.pairwise_level = a->layer;
    to.pca_dims = a->pca;
    if (cli_probe_tasks(p, f, CLI_MAX_TASKS, 0) ||
        cli_site_parse(&a->where, f, a->examples < 0 ? 1 : a->examples, &site))
        return 1;
    po.tasks = p->tasks;
    po.n_tasks = p->n_tasks;
    if (a->pca < 0 || a->pca > MAX_PCA) {
        fprintf(stderr, "icl probe decodability: --pca must be in [0, %d]\n", MAX_PCA);
        return 1;
    }
    if (cli_probe_outputs(p, f))
        return 1;
    record(p->o.sc, a, f);
    icl_status s;
    int rc = 0;
    if ((s = icl_repr_prompts_generate(f, &po, &set)) != ICL_OK ||
        (s = icl_decodability_run(p->model, f, &po, &site, &to, &td)) != ICL_OK)
        rc = cli_fail("decodability", s);
    if (rc == 0) {
        print_td(f, &set, &td);
        icl_sidecar_set_number(p->o.sc, "pairwise_layer", td.pairwise_level);
        icl_sidecar_set_numbers(p->o.sc, "td_mean", td.td_mean, td.levels);
        icl_sidecar_set_numbers(p->o.sc, "td_weighted_mean", td.td_weighted_mean, td.levels);
        if ((s = write_td(&p->o, f, &set, &td)) != ICL_OK || (a->pca > 0 && (s = write_pca(&p->o, f, &set, &td)) != ICL_OK))
            rc = cli_fail(out, s);
    }
    if (rc == 0 && p->save_inputs && (s = save_inputs(p, &set, &site)) != ICL_OK)
        rc = cli_fail("--save-inputs", s);
    if (rc == 0 && a->ckpt_dir)
        rc = over_checkpoints(p, a, &po, &site, &set);
    if (rc == 0 && (s = cli_probe_write_sidecar(p)) != ICL_OK)
        rc = cli_fail(out, s);
    if (rc == 0)
        printf("wrote %s/{td.csv,pairwise.csv,score.csv,...}; plots: gnuplot -e \"in='%s/td.csv'; out='%s/td.png'\" "
               "scripts/plot_decodability.gp (plot='pairwise' / 'steps' / 'pca' for the others)\n",
               out, out, out);
    icl_td_result_free(&td);
    icl_repr_prompts_free(&set);
    return rc;
}

int probe_decodability(int argc, char **argv) {
    static const cli_probe_spec spec = {
        "decodability",
        "usage: icl probe decodability --model M.safetensors [options]\n\n"
        "Task decodability (Han et al.): leave-one-out k-NN on the residual stream at the\n"
        "representation site, per layer and task; pairwise; over checkpoints with --checkpoints.",
        NULL, NULL, 1};
    td_options a = {.prompts = 100, .examples = -1, .k = ICL_KNN_DEFAULT_K, .layer = -1};
    cli_option opts[] = {
        {"--prompts", OPT_INT, &a.prompts, "prompts per task [100]"},
        {"--examples", OPT_INT, &a.examples, "in-context examples per prompt [family default]"},
        {"--k", OPT_INT, &a.k, "neighbours of the leave-one-out vote [10]"},
        {"--layer", OPT_INT, &a.layer, "layer of the pairwise matrix, 0..L [the best layer]"},
        CLI_SITE_OPTIONS(a.where, "query_sep; vector: ex_answer", "token 0; vector -1"),
        {"--pca", OPT_INT, &a.pca, "also write PCA coordinates on this many components [0 = off]"},
        {"--checkpoints", OPT_STRING, &a.ckpt_dir, "directory of step_*.safetensors: TD over training"},
    };
    return cli_probe_main(&spec, argc, argv, opts, sizeof opts / sizeof opts[0], run, &a);
}
