/* icl probe task-vectors: extract task vectors, patch them into zero-shot and
 * other-task prompts at every level, interpolate pairs (Hendel, Han, Xiong). */
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



static const char *task_name(const icl_task_family *f, const icl_tv_result *r, int i) {
    return icl_task_family_task_name(f, r->tasks[i]);
}

static icl_status write_zero_shot(cli_outputs *o, const icl_task_family *f, const icl_tv_result *r) {
    const char *cols[] = {"task", "level", "metric", "value"};
    icl_csv *csv;
    TRY(icl_csv_create(cli_out_path(o, "zero_shot.csv"), 4, cols, &csv));
    int n = r->n_tasks, NL = r->n_levels;
    for (int i = 0; i < n; i++)
        for (int l = 0; l < NL; l++) {
            const char *names[] = {"p", "accuracy", "p_base", "accuracy_base"};
            double v[] = {r->zs_p[i * NL + l], r->zs_acc[i * NL + l], r->zs_p0[i], r->zs_acc0[i]};
            for (int k = 0; k < 4; k++) {
                icl_csv_string(csv, task_name(f, r, i));
                icl_csv_int(csv, l);
                icl_csv_string(csv, names[k]);
                icl_csv_number(csv, v[k]);
                icl_csv_end_row(csv);
            }
        }
    TRY(icl_csv_close(csv));
    size_t shape[2] = {(size_t)n, (size_t)NL};
    TRY(cli_write_doubles(o, "zero_shot_p.npy", r->zs_p, 2, shape));
    return cli_write_doubles(o, "zero_shot_accuracy.npy", r->zs_acc, 2, shape);
}

static icl_status write_matrix(cli_outputs *o, const icl_task_family *f, const icl_tv_result *r) {
    const char *cols[] = {"level", "vector_task", "prompt_task", "vector_id", "prompt_id", "metric", "value"};
    icl_csv *csv;
    TRY(icl_csv_create(cli_out_path(o, "matrix.csv"), 7, cols, &csv));
    int n = r->n_tasks, NL = r->n_levels, token = r->mode == ICL_MODE_TOKEN;
    for (int l = 0; l < NL; l++)
        for (int v = 0; v < n; v++)
            for (int p = 0; p < n; p++) {
                size_t c = ((size_t)l * n + v) * n + p;
                const char *tok_names[] = {"p_vector_answer", "accuracy_vector_answer", "p_prompt_answer",
                                           "accuracy_prompt_answer", "dp_vector_answer", "daccuracy_vector_answer",
                                           "dp_prompt_answer", "daccuracy_prompt_answer"};
                const char *vec_names[] = {"mse", "dmse"};
                double tok[8], vec[2];
                if (token) {
                    double bp = r->base_p[v * n + p], ba = r->base_acc[v * n + p];
                    double op = r->base_p[p * n + p], oa = r->base_acc[p * n + p];
                    double t[8] = {r->mat_p[c],      r->mat_acc[c],      r->mat_p_own[c],      r->mat_acc_own[c],
                                   r->mat_p[c] - bp, r->mat_acc[c] - ba, r->mat_p_own[c] - op, r->mat_acc_own[c] - oa};
                    memcpy(tok, t, sizeof tok);
                } else {
                    vec[0] = r->mat_mse[c];
                    vec[1] = r->mat_mse[c] - r->base_mse[p];
                }
                for (int k = 0; k < (token ? 8 : 2); k++) {
                    icl_csv_int(csv, l);
                    icl_csv_string(csv, task_name(f, r, v));
                    icl_csv_string(csv, task_name(f, r, p));
                    icl_csv_int(csv, v);
                    icl_csv_int(csv, p);
                    icl_csv_string(csv, token ? tok_names[k] : vec_names[k]);
                    icl_csv_number(csv, token ? tok[k] : vec[k]);
                    icl_csv_end_row(csv);
                }
            }
    TRY(icl_csv_close(csv));
    size_t shape[3] = {(size_t)NL, (size_t)n, (size_t)n}, base[2] = {(size_t)n, (size_t)n};
    if (!token) {
        TRY(cli_write_doubles(o, "matrix_mse.npy", r->mat_mse, 3, shape));
        return cli_write_doubles(o, "base_mse.npy", r->base_mse, 1, base);
    }
    TRY(cli_write_doubles(o, "matrix_p_vector_answer.npy", r->mat_p, 3, shape));
    TRY(cli_write_doubles(o, "matrix_accuracy_vector_answer.npy", r->mat_acc, 3, shape));
    TRY(cli_write_doubles(o, "matrix_p_prompt_answer.npy", r->mat_p_own, 3, shape));
    TRY(cli_write_doubles(o, "matrix_accuracy_prompt_answer.npy", r->mat_acc_own, 3, shape));
    TRY(cli_write_doubles(o, "base_p.npy", r->base_p, 2, base));
    return cli_write_doubles(o, "base_accuracy.npy", r->base_acc, 2, base);
}

static icl_status write_interpolation(cli_outputs *o, const icl_task_family *f, const icl_tv_result *r) {
    const char *cols[] = {"level", "task_1", "task_2", "alpha", "metric", "value"};
    const char *names[] = {"p_task_1", "p_task_2", "other"};
    icl_csv *csv;
    TRY(icl_csv_create(cli_out_path(o, "interpolation.csv"), 6, cols, &csv));
    for (int pr = 0; pr < r->n_pairs; pr++)
        for (int a = 0; a < r->n_alpha; a++)
            for (int k = 0; k < 3; k++) {
                icl_csv_int(csv, r->interp_level);
                icl_csv_string(csv, task_name(f, r, r->pairs[2 * pr]));
                icl_csv_string(csv, task_name(f, r, r->pairs[2 * pr + 1]));
                icl_csv_number(csv, r->alphas[a]);
                icl_csv_string(csv, names[k]);
                icl_csv_number(csv, r->interp[((size_t)pr * r->n_alpha + a) * 3 + k]);
                icl_csv_end_row(csv);
            }
    TRY(icl_csv_close(csv));
    if (r->n_pairs == 0)
        return ICL_OK;
    size_t shape[3] = {(size_t)r->n_pairs, (size_t)r->n_alpha, 3};
    return cli_write_doubles(o, "interpolation.npy", r->interp, 3, shape);
}

static void print_summary(const icl_task_family *f, const icl_tv_result *r) {
    int n = r->n_tasks, NL = r->n_levels, l = r->best_level;
    printf("task vectors: %d tasks, levels 0..%d (0 = embedding, l+1 = after block l), best level %d\n", n, NL - 1, l);
    if (r->mode == ICL_MODE_VECTOR) {
        printf("dMSE at level %d (rows: vector basis, columns: prompt basis):\n%10s", l, "");
        for (int p = 0; p < n; p++) printf(" %10s", task_name(f, r, p));
        printf("\n");
        for (int v = 0; v < n; v++) {
            printf("%10s", task_name(f, r, v));
            for (int p = 0; p < n; p++)
                printf(" %10.4f", r->mat_mse[((size_t)l * n + v) * n + p] - r->base_mse[p]);
            printf("\n");
        }
        return;
    }
    printf("zero-shot accuracy of the task's answer: without -> with its vector at level %d\n", l);
    for (int i = 0; i < n; i++)
        printf("  %-10s %.3f -> %.3f   (P %.3f -> %.3f)\n", task_name(f, r, i), r->zs_acc0[i], r->zs_acc[i * NL + l],
               r->zs_p0[i], r->zs_p[i * NL + l]);
    printf("accuracy of the vector task's answer at level %d (rows: vector, columns: prompts; unpatched in []):\n%10s",
           l, "");
    for (int p = 0; p < n; p++) printf(" %14s", task_name(f, r, p));
    printf("\n");
    for (int v = 0; v < n; v++) {
        printf("%10s", task_name(f, r, v));
        for (int p = 0; p < n; p++)
            printf("  %5.3f [%5.3f]", r->mat_acc[((size_t)l * n + v) * n + p], r->base_acc[v * n + p]);
        printf("\n");
    }
    if (r->n_pairs > 0) {
        const double *c = r->interp;
        printf("interpolation %s/%s at level %d: alpha=0 P %.3f/%.3f, alpha=1 P %.3f/%.3f\n", task_name(f, r, r->pairs[0]),
               task_name(f, r, r->pairs[1]), r->interp_level, c[0], c[1], c[(r->n_alpha - 1) * 3],
               c[(r->n_alpha - 1) * 3 + 1]);
    }
}

static icl_status write_all(cli_outputs *o, icl_model *m, const icl_task_family *f, const icl_tv_result *r) {
    size_t shape[3] = {(size_t)r->n_tasks, (size_t)r->n_levels, (size_t)r->C};
    TRY(icl_npy_write(cli_out_path(o, "vectors.npy"), ICL_DTYPE_F32, 3, shape, r->vectors));
    if (r->mode == ICL_MODE_TOKEN) {
        TRY(write_zero_shot(o, f, r));
        TRY(write_interpolation(o, f, r));
    }
    TRY(write_matrix(o, f, r));
    char json[2048];
    TRY(icl_config_to_json(icl_model_config(m), json, sizeof json));
    TRY(icl_sidecar_set_json(o->sc, "model_config", json));
    TRY(icl_sidecar_set_number(o->sc, "best_level", r->best_level));
    TRY(icl_sidecar_set_number(o->sc, "interpolation_level", r->interp_level));
    double ids[MAX_TASKS];
    for (int i = 0; i < r->n_tasks; i++) ids[i] = r->tasks[i];
    TRY(icl_sidecar_set_numbers(o->sc, "task_ids", ids, r->n_tasks));
    snprintf(o->path, sizeof o->path, "%s/task_vectors.json", o->dir);
    return icl_sidecar_write(o->sc, o->path);
}

int probe_task_vectors(int argc, char **argv) {
    const char *mode = "replace";
    int prompts = 100, eval_prompts = 100, k = -1, target_k = -1, add_raw = 0, level = -1, alphas = 11, batch = 64;
    cli_option opts[] = {
        {"--prompts", OPT_INT, &prompts, "demonstration prompts per task the vectors average [100]"},
        {"--eval-prompts", OPT_INT, &eval_prompts, "target prompts per task and matrix cell [100]"},
        {"--examples", OPT_INT, &k, "examples per demonstration prompt [family default]"},
        {"--target-examples", OPT_INT, &target_k, "examples per target prompt of the matrix [--examples]"},
        {"--mode", OPT_STRING, &mode, "replace | add: how the vector enters the residual [replace]"},
        {"--add-raw", OPT_FLAG, &add_raw, "add: add v itself instead of v minus the targets' mean"},
        {"--level", OPT_INT, &level, "level of the interpolation, 0..L [best level of the sweep]"},
        {"--alphas", OPT_INT, &alphas, "interpolation grid points from 0 to 1 [11]"},
        {"--batch", OPT_INT, &batch, "prompts per forward pass [64]"},
    };
    cli_probe p = {.out = "out/probe-task-vectors", .seed = 1, .seed_help = "seed of every prompt set [1]"};
    int rc;
    if (!cli_probe_begin(&p, argc, argv, opts, sizeof opts / sizeof opts[0],
                         "usage: icl probe task-vectors --model M.safetensors [--out DIR]\n\n"
                         "Task vectors: mean residual at the query separator of k-shot prompts, per level\n"
                         "(0 = embedding, l+1 = after block l), patched into zero-shot and other-task prompts,\n"
                         "and convex combinations of two tasks' vectors. Plot: gnuplot -e \"dir='DIR'\"\n"
                         "scripts/plot_task_vectors.gp",
                         &rc))
        return rc;
    if (strcmp(mode, "replace") != 0 && strcmp(mode, "add") != 0) {
        fprintf(stderr, "icl probe task-vectors: --mode must be replace or add, not \"%s\"\n", mode);
        cli_probe_end(&p);
        return 2;
    }
    icl_model *m = p.model;
    icl_task_family *f = p.family;
    int ids[MAX_TASKS], n_ids = 0, result = 1;
    icl_tv_result r = {0};
    cli_outputs o = {p.out, NULL, {0}};
    icl_tv_options opt = icl_tv_options_default(f);
    icl_status s = ICL_OK;
    if (p.tasks_list && (s = icl_task_family_parse_tasks(f, p.tasks_list, ids, MAX_TASKS, &n_ids)) != ICL_OK) {
        cli_fail("--tasks", s);
        goto done;
    }
    opt.tasks = p.tasks_list ? ids : NULL;
    opt.n_tasks = n_ids;
    if (!p.tasks_list && icl_task_family_num_tasks(f) > MAX_TASKS) {
        fprintf(stderr, "icl probe task-vectors: the family has more than %d tasks; choose some with --tasks\n",
                MAX_TASKS);
        goto done;
    }
    opt.n_prompts = prompts;
    opt.eval_prompts = eval_prompts;
    if (k != -1)
        opt.n_examples = k;
    opt.target_examples = target_k != -1 ? target_k : opt.n_examples;
    opt.mode = strcmp(mode, "add") == 0 ? ICL_TV_ADD : ICL_TV_REPLACE;
    opt.add_raw = add_raw;
    opt.level = level;
    opt.n_alpha = alphas;
    opt.batch = batch;
    opt.seed = (uint64_t)p.seed;
    if ((s = icl_task_vectors_run(m, f, &opt, &r)) != ICL_OK) {
        cli_fail("task-vectors", s);
        goto done;
    }
    if (cli_make_dir(p.out))
        goto done;
    if ((s = icl_sidecar_create("task-vectors", opt.seed, &o.sc)) != ICL_OK) {
        cli_fail("sidecar", s);
        goto done;
    }
    icl_sidecar_set_string(o.sc, "model", p.model_path);
    icl_sidecar_set_string(o.sc, "task", icl_task_family_spec(f));
    icl_sidecar_set_number(o.sc, "prompts", opt.n_prompts);
    icl_sidecar_set_number(o.sc, "eval_prompts", opt.eval_prompts);
    icl_sidecar_set_number(o.sc, "examples", opt.n_examples);
    icl_sidecar_set_number(o.sc, "target_examples", opt.target_examples);
    icl_sidecar_set_string(o.sc, "mode", mode);
    icl_sidecar_set_number(o.sc, "add_raw", opt.add_raw);
    icl_sidecar_set_number(o.sc, "alphas", opt.n_alpha);
    icl_sidecar_set_string(o.sc, "levels", "0 = embedding output, l+1 = resid_post of block l");
    icl_sidecar_set_string(o.sc, "position", r.mode == ICL_MODE_TOKEN ? "query_sep" : "query_input");
    if ((s = write_all(&o, m, f, &r)) != ICL_OK) {
        cli_fail(p.out, s);
        goto done;
    }
    print_summary(f, &r);
    printf("wrote %s/{vectors.npy,%smatrix.csv,task_vectors.json,...}\n", p.out,
           r.mode == ICL_MODE_TOKEN ? "zero_shot.csv,interpolation.csv," : "");
    result = 0;
done:
    icl_sidecar_free(o.sc);
    icl_tv_result_free(&r);
    cli_probe_end(&p);
    return result;
}
