/* icl probe function-vectors: average indirect effect of every head on
 * shuffled-label prompts, and the function vector of the top heads (Todd et al.). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "icl/task_vectors.h"
#include "icl_cli.h"

#define MAX_TASKS 64

/* Return a failing status from the enclosing writer. */
#define TRY(call)                          \
    do {                                   \
        icl_status try_s_ = (call);        \
        if (try_s_ != ICL_OK)              \
            return try_s_;                 \
    } while (0)

static const char *const condition_names[ICL_FV_N_CONDITIONS] = {"clean", "zero_shot", "shuffled"};



static icl_status write_aie(cli_outputs *o, const icl_task_family *f, const icl_fv_result *r) {
    const char *cols[] = {"layer", "head", "task", "aie", "rank"};
    icl_csv *csv;
    TRY(icl_csv_create(cli_out_path(o, "aie.csv"), 5, cols, &csv));
    int heads = r->L * r->NH;
    for (int t = -1; t < r->n_tasks; t++)
        for (int j = 0; j < heads; j++) {
            icl_csv_int(csv, j / r->NH);
            icl_csv_int(csv, j % r->NH);
            icl_csv_string(csv, t < 0 ? "mean" : icl_task_family_task_name(f, r->tasks[t]));
            icl_csv_number(csv, t < 0 ? r->aie_mean[j] : r->aie[(size_t)t * heads + j]);
            icl_csv_int(csv, r->rank[j]);
            icl_csv_end_row(csv);
        }
    TRY(icl_csv_close(csv));
    size_t s3[3] = {(size_t)r->n_tasks, (size_t)r->L, (size_t)r->NH};
    TRY(cli_write_doubles(o, "aie.npy", r->aie, 3, s3));
    return cli_write_doubles(o, "aie_mean.npy", r->aie_mean, 2, s3 + 1);
}

static icl_status write_eval(cli_outputs *o, const icl_task_family *f, const icl_fv_result *r) {
    const char *cols[] = {"task", "condition", "fv", "metric", "value"};
    icl_csv *csv;
    TRY(icl_csv_create(cli_out_path(o, "fv_eval.csv"), 5, cols, &csv));
    for (int t = 0; t < r->n_tasks; t++)
        for (int c = 0; c < ICL_FV_N_CONDITIONS; c++)
            for (int w = 0; w < 2; w++)
                for (int k = 0; k < 2; k++) {
                    size_t i = ((size_t)t * ICL_FV_N_CONDITIONS + c) * 2 + w;
                    icl_csv_string(csv, icl_task_family_task_name(f, r->tasks[t]));
                    icl_csv_string(csv, condition_names[c]);
                    icl_csv_int(csv, w);
                    icl_csv_string(csv, k ? "p" : "accuracy");
                    icl_csv_number(csv, k ? r->p[i] : r->acc[i]);
                    icl_csv_end_row(csv);
                }
    return icl_csv_close(csv);
}

static icl_status write_all(cli_outputs *o, icl_model *m, const icl_task_family *f, const icl_fv_result *r) {
    TRY(write_aie(o, f, r));
    TRY(write_eval(o, f, r));
    size_t hm[4] = {(size_t)r->n_tasks, (size_t)r->L, (size_t)r->NH, (size_t)r->HS};
    TRY(icl_npy_write(cli_out_path(o, "head_means.npy"), ICL_DTYPE_F32, 4, hm, r->head_means));
    size_t fv[2] = {(size_t)r->n_tasks, (size_t)r->C}, hd[2] = {(size_t)r->top_k, 2};
    TRY(icl_npy_write(cli_out_path(o, "fv.npy"), ICL_DTYPE_F32, 2, fv, r->fv));
    TRY(icl_npy_write(cli_out_path(o, "fv_heads.npy"), ICL_DTYPE_I32, 2, hd, r->heads));
    char json[2048];
    TRY(icl_config_to_json(icl_model_config(m), json, sizeof json));
    TRY(icl_sidecar_set_json(o->sc, "model_config", json));
    double heads[2 * 256];
    int nh = r->top_k < 256 ? r->top_k : 256;
    for (int i = 0; i < 2 * nh; i++) heads[i] = r->heads[i];
    TRY(icl_sidecar_set_numbers(o->sc, "fv_heads_layer_head", heads, 2 * nh));
    TRY(icl_sidecar_set_number(o->sc, "fv_layer", r->fv_layer));
    TRY(icl_sidecar_set_string(o->sc, "fv_point", r->fv_mid ? "resid_mid" : "resid_post"));
    snprintf(o->path, sizeof o->path, "%s/function_vectors.json", o->dir);
    return icl_sidecar_write(o->sc, o->path);
}

static void print_summary(const icl_task_family *f, const icl_fv_result *r) {
    printf("function vectors: %d heads ranked by mean AIE over %d tasks; FV = top %d added at %s of block %d\n",
           r->L * r->NH, r->n_tasks, r->top_k, r->fv_mid ? "resid_mid" : "resid_post", r->fv_layer);
    for (int i = 0; i < r->top_k && i < 10; i++) {
        int l = r->heads[2 * i], h = r->heads[2 * i + 1];
        printf("  #%d  layer %d head %d  AIE %+.3g\n", i + 1, l, h, r->aie_mean[l * r->NH + h]);
    }
    printf("accuracy without -> with the FV:\n  %-10s %17s %17s %17s\n", "task", "clean", "zero-shot", "shuffled");
    for (int t = 0; t < r->n_tasks; t++) {
        printf("  %-10s", icl_task_family_task_name(f, r->tasks[t]));
        for (int c = 0; c < ICL_FV_N_CONDITIONS; c++) {
            size_t i = ((size_t)t * ICL_FV_N_CONDITIONS + c) * 2;
            printf("    %.3f -> %.3f", r->acc[i], r->acc[i + 1]);
        }
        printf("\n");
    }
}

int probe_function_vectors(int argc, char **argv) {
    const char *point = "resid_post";
    int prompts = 100, eval_prompts = 100, k = -1, top_k = -1, layer = -1, batch = 64;
    cli_option opts[] = {
        {"--prompts", OPT_INT, &prompts, "clean prompts per task for the mean head outputs [100]"},
        {"--eval-prompts", OPT_INT, &eval_prompts, "shuffled / zero-shot / clean prompts per task [100]"},
        {"--examples", OPT_INT, &k, "examples per prompt, >= 1 [family default]"},
        {"--top-k", OPT_INT, &top_k, "heads summed into the function vector [min(10, half of the heads)]"},
        {"--layer", OPT_INT, &layer, "block whose residual receives the FV [round(L/3) - 1, at least 0]"},
        {"--point", OPT_STRING, &point, "resid_post | resid_mid of that block [resid_post]"},
        {"--batch", OPT_INT, &batch, "prompts per forward pass [64]"},
    };
    cli_probe p = {.out = "out/probe-function-vectors", .seed = 1, .seed_help = "seed of every prompt set [1]"};
    int rc;
    if (!cli_probe_begin(&p, argc, argv, opts, sizeof opts / sizeof opts[0],
                         "usage: icl probe function-vectors --model M.safetensors [--out DIR]\n\n"
                         "Average indirect effect of every head (its clean mean output patched into\n"
                         "shuffled-label prompts at the query separator) and the function vector of the\n"
                         "top heads, added to the residual stream. Plot: gnuplot -e \"dir='DIR'\"\n"
                         "scripts/plot_function_vectors.gp",
                         &rc))
        return rc;
    if (strcmp(point, "resid_post") != 0 && strcmp(point, "resid_mid") != 0) {
        fprintf(stderr, "icl probe function-vectors: --point must be resid_post or resid_mid, not \"%s\"\n", point);
        cli_probe_end(&p);
        return 2;
    }
    icl_model *m = p.model;
    icl_task_family *f = p.family;
    int ids[MAX_TASKS], n_ids = 0, result = 1;
    icl_fv_result r = {0};
    cli_outputs o = {p.out, NULL, {0}};
    icl_fv_options opt = icl_fv_options_default(f);
    icl_status s;
    if (p.tasks_list && (s = icl_task_family_parse_tasks(f, p.tasks_list, ids, MAX_TASKS, &n_ids)) != ICL_OK) {
        cli_fail("--tasks", s);
        goto done;
    }
    opt.tasks = p.tasks_list ? ids : NULL;
    opt.n_tasks = n_ids;
    opt.n_prompts = prompts;
    opt.eval_prompts = eval_prompts;
    if (k != -1)
        opt.n_examples = k;
    opt.top_k = top_k;
    opt.fv_layer = layer;
    opt.fv_mid = strcmp(point, "resid_mid") == 0;
    opt.batch = batch;
    opt.seed = (uint64_t)p.seed;
    if ((s = icl_function_vectors_run(m, f, &opt, &r)) != ICL_OK) {
        cli_fail("function-vectors", s);
        goto done;
    }
    if (cli_make_dir(p.out))
        goto done;
    if ((s = icl_sidecar_create("function-vectors", opt.seed, &o.sc)) != ICL_OK) {
        cli_fail("sidecar", s);
        goto done;
    }
    icl_sidecar_set_string(o.sc, "model", p.model_path);
    icl_sidecar_set_string(o.sc, "task", icl_task_family_spec(f));
    icl_sidecar_set_number(o.sc, "prompts", opt.n_prompts);
    icl_sidecar_set_number(o.sc, "eval_prompts", opt.eval_prompts);
    icl_sidecar_set_number(o.sc, "examples", opt.n_examples);
    icl_sidecar_set_number(o.sc, "top_k", r.top_k);
    if ((s = write_all(&o, m, f, &r)) != ICL_OK) {
        cli_fail(p.out, s);
        goto done;
    }
    print_summary(f, &r);
    printf("wrote %s/{aie.csv,fv_eval.csv,aie.npy,fv.npy,function_vectors.json,...}\n", p.out);
    result = 0;
done:
    icl_sidecar_free(o.sc);
    icl_fv_result_free(&r);
    cli_probe_end(&p);
    return result;
}
