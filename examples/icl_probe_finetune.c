/* icl probe finetune: finetune only the first n or only the last n blocks of
 * a saved model (Han et al., Table 1) and compare task decodability and
 * accuracy with the original. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "icl/finetune.h"
#include "icl_cli.h"

typedef struct {
    icl_csv *csv;
    icl_status s;
} rows;

static void row(rows *w, const char *variant, const char *metric, const char *task, double value) {
    icl_status s = w->s;
    s = s ? s : icl_csv_string(w->csv, variant);
    s = s ? s : icl_csv_string(w->csv, metric);
    s = s ? s : icl_csv_string(w->csv, task);
    s = s ? s : icl_csv_number(w->csv, value);
    s = s ? s : icl_csv_end_row(w->csv);
    w->s = s;
}

static icl_status write_csvs(const char *out, icl_sidecar *sc, const icl_task_family *f,
                             const icl_finetune_result *r) {
    char path[1024];
    const char *cols[] = {"variant", "metric", "task", "value"};
    const char *score = icl_task_family_mode(f) == ICL_MODE_TOKEN ? "accuracy" : "mse";
    rows w = {NULL, ICL_OK};
    snprintf(path, sizeof path, "%s/finetune.csv", out);
    icl_status s = icl_csv_create(path, 4, cols, &w.csv);
    if (s != ICL_OK)
        return s;
    icl_sidecar_add_file(sc, "finetune.csv");
    for (int v = 0; v < ICL_FT_VARIANTS; v++) {
        const char *name = r->variant_names[v];
        row(&w, name, "td_best", "mean", r->td_best[v]);
        row(&w, name, "best_layer", "mean", r->best_level[v]);
        row(&w, name, "final_train_loss", "mean", r->final_loss[v]);
        double sum = 0, loss = 0;
        for (int t = 0; t < r->n_tasks; t++) {
            row(&w, name, score, icl_task_family_task_name(f, t), r->metric[(size_t)v * r->n_tasks + t]);
            row(&w, name, "loss", icl_task_family_task_name(f, t), r->loss[(size_t)v * r->n_tasks + t]);
            sum += r->metric[(size_t)v * r->n_tasks + t];
            loss += r->loss[(size_t)v * r->n_tasks + t];
        }
        row(&w, name, score, "mean", sum / r->n_tasks);
        row(&w, name, "loss", "mean", loss / r->n_tasks);
    }
    if (w.s != ICL_OK) {
        icl_csv_abort(w.csv);
        return w.s;
    }
    if ((s = icl_csv_close(w.csv)) != ICL_OK)
        return s;

    const char *lcols[] = {"variant", "layer", "td"};
    snprintf(path, sizeof path, "%s/td_layers.csv", out);
    if ((s = icl_csv_create(path, 3, lcols, &w.csv)) != ICL_OK)
        return s;
    icl_sidecar_add_file(sc, "td_layers.csv");
    for (int v = 0; v < ICL_FT_VARIANTS; v++)
        for (int l = 0; l < r->levels; l++) {
            s = s ? s : icl_csv_string(w.csv, r->variant_names[v]);
            s = s ? s : icl_csv_int(w.csv, l);
            s = s ? s : icl_csv_number(w.csv, r->td_mean[(size_t)v * r->levels + l]);
            s = s ? s : icl_csv_end_row(w.csv);
        }
    if (s != ICL_OK) {
        icl_csv_abort(w.csv);
        return s;
    }
    if ((s = icl_csv_close(w.csv)) != ICL_OK)
        return s;
    size_t n = (size_t)ICL_FT_VARIANTS * r->levels, shape[2] = {ICL_FT_VARIANTS, (size_t)r->levels};
    float *buf = malloc(n * sizeof *buf);
    if (!buf)
        return ICL_ERR_NOMEM;
    for (size_t i = 0; i < n; i++) buf[i] = (float)r->td_mean[i];
    snprintf(path, sizeof path, "%s/td_layers.npy", out);
    s = icl_npy_write(path, ICL_DTYPE_F32, 2, shape, buf);
    icl_sidecar_add_file(sc, "td_layers.npy");
    free(buf);
    return s;
}

int probe_finetune(int argc, char **argv) {
    const char *train_task = NULL;
    cli_site where = {0};
    int n_layers = 0, batch = 32, train_io = 0, prompts = 100, eval_prompts = 100, k = ICL_KNN_DEFAULT_K;
    long steps = 200;
    float lr = 1e-3f;
    cli_option opts[] = {
        {"--train-task", OPT_STRING, &train_task, "family to finetune on and evaluate, e.g. a new task set [--task]"},
        {"--n", OPT_INT, &n_layers, "blocks finetuned: the first n vs the last n [half the blocks, at least 1]"},
        {"--steps", OPT_LONG, &steps, "finetuning steps [200]"},
        {"--batch", OPT_INT, &batch, "prompts per step [32]"},
        {"--lr", OPT_FLOAT, &lr, "peak learning rate [1e-3]"},
        {"--train-io", OPT_FLAG, &train_io,
         "also train the embeddings (first n) / final norm and untied head (last n)"},
        {"--prompts", OPT_INT, &prompts, "decodability prompts per task [100]"},
        {"--eval-prompts", OPT_INT, &eval_prompts, "accuracy / mse prompts per task [100]"},
        {"--k", OPT_INT, &k, "neighbours of the decodability vote [10]"},
        CLI_SITE_OPTIONS(where, "query_sep; vector: ex_answer", "token 0; vector -1"),
    };
    cli_probe p = {.out = "out/probe-finetune",
                   .seed = 1,
                   .tasks_help = "comma-separated training task names [all]",
                   .seed_help = "seed of the training data and decodability prompts [1]"};
    int rc;
    if (!cli_probe_begin(&p, argc, argv, opts, sizeof opts / sizeof opts[0],
                         "usage: icl probe finetune --model M.safetensors [options]\n\n"
                         "Finetune only the first n or only the last n blocks (everything else frozen) and compare\n"
                         "task decodability (best layer) and accuracy / mse with the original model.",
                         &rc))
        return rc;
    icl_model *m = p.model;
    icl_task_family *f = p.family, *ft = NULL;
    const char *out = p.out;
    int result = 1, task_ids[256], n_ids = 0, L = icl_model_config(m)->n_layer;
    icl_status s = ICL_OK;
    const char *what = "finetune";
    icl_finetune_result r = {0};
    icl_sidecar *sc = NULL;
    if (train_task && (s = icl_task_family_create(&ft, train_task)) != ICL_OK) {
        what = "--train-task";
        goto done;
    }
    const icl_task_family *fam = ft ? ft : f;
    if (p.tasks_list && (s = icl_task_family_parse_tasks(fam, p.tasks_list, task_ids, 256, &n_ids)) != ICL_OK) {
        what = "--tasks";
        goto done;
    }
    icl_finetune_options fo = icl_finetune_options_default();
    fo.n_layers = n_layers > 0 ? n_layers : (L + 1) / 2;
    fo.steps = steps;
    fo.batch = batch;
    fo.optim.lr = lr;
    fo.train_io = train_io;
    fo.tasks = p.tasks_list ? task_ids : NULL;
    fo.n_tasks = n_ids;
    fo.seed = (uint64_t)p.seed;
    icl_repr_prompts_options po = icl_repr_prompts_options_default();
    po.prompts_per_task = prompts;
    po.seed = (uint64_t)p.seed;
    icl_repr_site site;
    if ((s = icl_repr_site_parse(fam, where.role, where.nth, where.pool, 1, &site)) != ICL_OK) {
        what = "representation site";
        goto done;
    }
    icl_finetune_eval_options ev = icl_finetune_eval_options_default();
    ev.td_prompts = &po;
    ev.site = &site;
    ev.k = k;
    ev.eval_prompts = eval_prompts;
    if (cli_make_dir(out))
        goto done;
    double t0 = cli_now();
    if ((s = icl_finetune_run(m, fam, &fo, &ev, &r)) != ICL_OK)
        goto done;
    const char *score = icl_task_family_mode(fam) == ICL_MODE_TOKEN ? "accuracy" : "mse";
    printf("finetuning the first %d vs the last %d of %d blocks for %ld steps on %s (%.1f s)\n", fo.n_layers,
           fo.n_layers, L, steps, icl_task_family_spec(fam), cli_now() - t0);
    printf("%-9s %8s %6s %10s %10s\n", "variant", "TD best", "layer", score, "train loss");
    for (int v = 0; v < ICL_FT_VARIANTS; v++) {
        double sum = 0;
        for (int t = 0; t < r.n_tasks; t++) sum += r.metric[(size_t)v * r.n_tasks + t];
        printf("%-9s %8.3f %6d %10.4f %10.4f\n", r.variant_names[v], r.td_best[v], r.best_level[v], sum / r.n_tasks,
               r.final_loss[v]);
    }
    if ((s = icl_sidecar_create("finetune", (uint64_t)p.seed, &sc)) != ICL_OK)
        goto done;
    icl_sidecar_set_string(sc, "model", p.model_path);
    icl_sidecar_set_string(sc, "task", icl_task_family_spec(fam));
    cli_site_record(&where, sc, "default");
    icl_sidecar_set_number(sc, "n_layers", fo.n_layers);
    icl_sidecar_set_number(sc, "steps", (double)steps);
    icl_sidecar_set_number(sc, "batch", batch);
    icl_sidecar_set_number(sc, "lr", lr);
    icl_sidecar_set_number(sc, "train_io", train_io);
    icl_sidecar_set_string(sc, "training_tasks", p.tasks_list ? p.tasks_list : "all");
    icl_sidecar_set_number(sc, "td_prompts_per_task", prompts);
    icl_sidecar_set_number(sc, "eval_prompts_per_task", eval_prompts);
    icl_sidecar_set_number(sc, "k", k);
    what = out;
    if ((s = write_csvs(out, sc, fam, &r)) != ICL_OK)
        goto done;
    char path[1024];
    snprintf(path, sizeof path, "%s/finetune.json", out);
    if ((s = icl_sidecar_write(sc, path)) != ICL_OK)
        goto done;
    printf("wrote %s/{finetune.csv,td_layers.csv,td_layers.npy}; plot: gnuplot -e \"in='%s/finetune.csv'; "
           "out='%s/finetune.png'\" scripts/plot_finetune.gp\n",
           out, out, out);
    result = 0;
done:
    if (s != ICL_OK)
        cli_fail(what, s);
    icl_sidecar_free(sc);
    icl_finetune_result_free(&r);
    icl_task_family_free(ft);
    cli_probe_end(&p);
    return result;
}
