/* icl probe finetune: finetune only the first n or only the last n blocks of
 * a saved model (Han et al., Table 1) and compare task decodability and
 * accuracy with the original. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "icl_cli.h"

typedef struct {
    const char *train_task;
    cli_site where;
    int n_layers, batch, train_io, prompts, eval_prompts, k;
    long steps;
    float lr;
} finetune_options;

static icl_status write_csvs(cli_outputs *o, const icl_task_family *f, const icl_finetune_result *r) {
    const char *cols[] = {"variant", "metric", "task", "value"};
    const char *score = icl_task_family_mode(f) == ICL_MODE_TOKEN ? "accuracy" : "mse";
    icl_csv *csv;
    CLI_TRY(cli_table_create(o, "finetune.csv", 4, cols, &csv));
    for (int v = 0; v < ICL_FT_VARIANTS; v++) {
        cli_cell name = cli_str(r->variant_names[v]), mean = cli_str("mean");
        cli_csv_row(csv, name, cli_str("td_best"), mean, cli_num(r->td_best[v]));
        cli_csv_row(csv, name, cli_str("best_layer"), mean, cli_num(r->best_level[v]));
        cli_csv_row(csv, name, cli_str("final_train_loss"), mean, cli_num(r->final_loss[v]));
        double sum = 0, loss = 0;
        for (int t = 0; t < r->n_tasks; t++) {
            size_t at = (size_t)v * r->n_tasks + t;
            cli_cell task = cli_str(icl_task_family_task_name(f, t));
            cli_csv_row(csv, name, cli_str(score), task, cli_num(r->metric[at]));
            cli_csv_row(csv, name, cli_str("loss"), task, cli_num(r->loss[at]));
            sum += r->metric[at];
            loss += r->loss[at];
        }
        cli_csv_row(csv, name, cli_str(score), mean, cli_num(sum / r->n_tasks));
        cli_csv_row(csv, name, cli_str("loss"), mean, cli_num(loss / r->n_tasks));
    }
    CLI_TRY(icl_csv_close(csv));

    const char *lcols[] = {"variant", "layer", "td"};
    CLI_TRY(cli_table_create(o, "td_layers.csv", 3, lcols, &csv));
    for (int v = 0; v < ICL_FT_VARIANTS; v++)
        for (int l = 0; l < r->levels; l++)
            cli_csv_row(csv, cli_str(r->variant_names[v]), cli_int(l), cli_num(r->td_mean[(size_t)v * r->levels + l]));
    CLI_TRY(icl_csv_close(csv));
    size_t shape[2] = {ICL_FT_VARIANTS, (size_t)r->levels};
    return cli_write_doubles(o, "td_layers.npy", r->td_mean, 2, shape);
}

static void print_summary(const icl_finetune_options *fo, const icl_task_family *fam, int L, double seconds,
                          const icl_finetune_result *r) {
    const char *score = icl_task_family_mode(fam) == ICL_MODE_TOKEN ? "accuracy" : "mse";
    printf("finetuning the first %d vs the last %d of %d blocks for %ld steps on %s (%.1f s)\n", fo->n_layers,
           fo->n_layers, L, fo->steps, icl_task_family_spec(fam), seconds);
    printf("%-9s %8s %6s %10s %10s\n", "variant", "TD best", "layer", score, "train loss");
    for (int v = 0; v < ICL_FT_VARIANTS; v++) {
        double sum = 0;
        for (int t = 0; t < r->n_tasks; t++) sum += r->metric[(size_t)v * r->n_tasks + t];
        printf("%-9s %8.3f %6d %10.4f %10.4f\n", r->variant_names[v], r->td_best[v], r->best_level[v],
               sum / r->n_tasks, r->final_loss[v]);
    }
}

static void record(icl_sidecar *sc, const char *tasks_list, const finetune_options *a,
                   const icl_finetune_options *fo) {
    cli_site_record(&a->where, sc, "default");
    icl_sidecar_set_number(sc, "n_layers", fo->n_layers);
    icl_sidecar_set_number(sc, "steps", (double)a->steps);
    icl_sidecar_set_number(sc, "batch", a->batch);
    icl_sidecar_set_number(sc, "lr", a->lr);
    icl_sidecar_set_number(sc, "train_io", a->train_io);
    icl_sidecar_set_string(sc, "training_tasks", tasks_list ? tasks_list : "all");
    icl_sidecar_set_number(sc, "td_prompts_per_task", a->prompts);
    icl_sidecar_set_number(sc, "eval_prompts_per_task", a->eval_prompts);
    icl_sidecar_set_number(sc, "k", a->k);
}

/* --save-inputs: the decodability prompts (td_*) with each variant's representations at the site
 * (td_<variant>_X.npy, the TD columns' input; td_labels.npy the task index of each item), the evaluation
 * prompts (eval_*, the same for every variant) with their loss weights and each variant's per-position
 * losses and per-prompt score (eval_losses.npy, eval_score.npy: the loss and accuracy / mse columns), and
 * the training loss of every finetuning step (train_loss.npy, the final_train_loss column). */
static icl_status save_inputs(cli_probe *p, const icl_finetune_result *r) {
    const icl_repr_prompts *td = &r->td_prompts;
    const icl_eval_detail *ev = r->eval;
    size_t n = (size_t)ev->n, T = (size_t)ev->T, len = (size_t)td->n;
    CLI_TRY(cli_save_prompts(p, "td_", td->prompts, NULL, td->n));
    CLI_TRY(cli_save_array(p, "td_labels.npy", ICL_DTYPE_I32, 1, &len, td->labels));
    char prefix[32];
    for (int v = 0; v < ICL_FT_VARIANTS; v++) {
        snprintf(prefix, sizeof prefix, "td_%s_", r->variant_names[v]);
        CLI_TRY(cli_save_repr(p, prefix, &r->td_repr[v]));
    }
    CLI_TRY(cli_save_prompts(p, "eval_", ev->prompts, NULL, ev->n));
    float *buf = calloc((size_t)ICL_FT_VARIANTS * n * T, sizeof *buf);
    double *score = malloc((size_t)ICL_FT_VARIANTS * n * sizeof *score);
    icl_status s = buf && score ? ICL_OK : ICL_ERR_NOMEM;
    for (size_t i = 0; s == ICL_OK && i < n; i++)
        memcpy(buf + i * T, ev->prompts[i].loss_weights, (size_t)ev->prompts[i].T * sizeof *buf);
    size_t wshape[2] = {n, T}, lshape[3] = {ICL_FT_VARIANTS, n, T}, sshape[2] = {ICL_FT_VARIANTS, n};
    size_t tshape[2] = {ICL_FT_VARIANTS, (size_t)r->steps};
    if (s == ICL_OK)
        s = cli_save_array(p, "eval_loss_weights.npy", ICL_DTYPE_F32, 2, wshape, buf);
    for (int v = 0; s == ICL_OK && v < ICL_FT_VARIANTS; v++) {
        memcpy(buf + (size_t)v * n * T, ev[v].losses, n * T * sizeof *buf);
        memcpy(score + (size_t)v * n, ev[v].score, n * sizeof *score);
    }
    if (s == ICL_OK && (s = cli_save_array(p, "eval_losses.npy", ICL_DTYPE_F32, 3, lshape, buf)) == ICL_OK &&
        (s = cli_save_doubles(p, "eval_score.npy", score, 2, sshape)) == ICL_OK)
        s = cli_save_doubles(p, "train_loss.npy", r->train_loss, 2, tshape);
    free(buf);
    free(score);
    return s;
}

/* Finetune on fam (the model's family or --train-task's), compare, and write. */
static int compare(cli_probe *p, const finetune_options *a, const icl_task_family *fam) {
    int L = icl_model_config(p->model)->n_layer;
    if (cli_probe_tasks(p, fam, CLI_MAX_TASKS, 0))
        return 1;
    icl_finetune_options fo = icl_finetune_options_default();
    fo.n_layers = a->n_layers > 0 ? a->n_layers : (L + 1) / 2;
    fo.steps = a->steps;
    fo.batch = a->batch;
    fo.optim.lr = a->lr;
    fo.train_io = a->train_io;
    fo.tasks = p->tasks;
    fo.n_tasks = p->n_tasks;
    fo.seed = (uint64_t)p->seed;
    icl_repr_prompts_options po = icl_repr_prompts_options_default();
    po.prompts_per_task = a->prompts;
    po.seed = (uint64_t)p->seed;
    icl_repr_site site;
    if (cli_site_parse(&a->where, fam, 1, &site))
        return 1;
    icl_finetune_eval_options ev = icl_finetune_eval_options_default();
    ev.td_prompts = &po;
    ev.site = &site;
    ev.k = a->k;
    ev.eval_prompts = a->eval_prompts;
    ev.keep_inputs = p->save_inputs;
    if (cli_probe_outputs(p, fam))
        return 1;
    icl_finetune_result r = {0};
    double t0 = cli_now();
    icl_status s;
    int rc = 0;
    if ((s = icl_finetune_run(p->model, fam, &fo, &ev, &r)) != ICL_OK)
        rc = cli_fail("finetune", s);
    if (rc == 0) {
        print_summary(&fo, fam, L, cli_now() - t0, &r);
        record(p->o.sc, p->tasks_list, a, &fo);
        if (p->save_inputs && (s = save_inputs(p, &r)) != ICL_OK)
            rc = cli_fail("--save-inputs", s);
        else if ((s = write_csvs(&p->o, fam, &r)) != ICL_OK || (s = cli_probe_write_sidecar(p)) != ICL_OK)
            rc = cli_fail(p->out, s);
    }
    icl_finetune_result_free(&r);
    return rc;
}

static int run(cli_probe *p, void *options) {
    const finetune_options *a = options;
    icl_task_family *ft = NULL;
    icl_status s;
    if (a->train_task && (s = icl_task_family_create(&ft, a->train_task)) != ICL_OK)
        return cli_fail("--train-task", s);
    int rc = compare(p, a, ft ? ft : p->family);
    icl_task_family_free(ft);
    if (rc == 0)
        printf("wrote %s/{finetune.csv,td_layers.csv,td_layers.npy}; plot: gnuplot -e \"in='%s/finetune.csv'; "
               "out='%s/finetune.png'\" scripts/plot_finetune.gp\n",
               p->out, p->out, p->out);
    return rc;
}

int probe_finetune(int argc, char **argv) {
    static const cli_probe_spec spec = {
        "finetune",
        "usage: icl probe finetune --model M.safetensors [options]\n\n"
        "Finetune only the first n or only the last n blocks (everything else frozen) and compare\n"
        "task decodability (best layer) and accuracy / mse with the original model.",
        "comma-separated training task names [all]", "seed of the training data and decodability prompts [1]", 1};
    finetune_options a = {.batch = 32, .prompts = 100, .eval_prompts = 100, .k = ICL_KNN_DEFAULT_K,
                          .steps = 200, .lr = 1e-3f};
    cli_option opts[] = {
        {"--train-task", OPT_STRING, &a.train_task, "family to finetune on and evaluate, e.g. a new task set [--task]"},
        {"--n", OPT_INT, &a.n_layers, "blocks finetuned: the first n vs the last n [half the blocks, at least 1]"},
        {"--steps", OPT_LONG, &a.steps, "finetuning steps [200]"},
        {"--batch", OPT_INT, &a.batch, "prompts per step [32]"},
        {"--lr", OPT_FLOAT, &a.lr, "peak learning rate [1e-3]"},
        {"--train-io", OPT_FLAG, &a.train_io,
         "also train the embeddings (first n) / final norm and untied head (last n)"},
        {"--prompts", OPT_INT, &a.prompts, "decodability prompts per task [100]"},
        {"--eval-prompts", OPT_INT, &a.eval_prompts, "accuracy / mse prompts per task [100]"},
        {"--k", OPT_INT, &a.k, "neighbours of the decodability vote [10]"},
        CLI_SITE_OPTIONS(a.where, "query_sep; vector: ex_answer", "token 0; vector -1"),
    };
    return cli_probe_main(&spec, argc, argv, opts, sizeof opts / sizeof opts[0], run, &a);
}
