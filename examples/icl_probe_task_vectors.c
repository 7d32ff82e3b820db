/* icl probe task-vectors: extract task vectors, patch them into zero-shot and
 * other-task prompts at every level, interpolate pairs (Hendel, Han, Xiong). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "icl/task_vectors.h"
#include "icl_cli.h"

#define MAX_TASKS 64

static const char *task_name(const icl_task_family *f, const icl_tv_result *r, int i) {
    return icl_task_family_task_name(f, r->tasks[i]);
}

static icl_status write_zero_shot(cli_outputs *o, const icl_task_family *f, const icl_tv_result *r) {
    const char *cols[] = {"task", "level", "metric", "value"};
    icl_csv *csv;
    CLI_TRY(cli_table_create(o, "zero_shot.csv", 4, cols, &csv));
    int n = r->n_tasks, NL = r->n_levels;
    for (int i = 0; i < n; i++)
        for (int l = 0; l < NL; l++) {
            const char *names[] = {"p", "accuracy", "p_base", "accuracy_base"};
            double v[] = {r->zs_p[i * NL + l], r->zs_acc[i * NL + l], r->zs_p0[i], r->zs_acc0[i]};
            for (int k = 0; k < 4; k++)
                cli_csv_row(csv, cli_str(task_name(f, r, i)), cli_int(l), cli_str(names[k]), cli_num(v[k]));
        }
    CLI_TRY(icl_csv_close(csv));
    size_t shape[2] = {(size_t)n, (size_t)NL};
    CLI_TRY(cli_write_doubles(o, "zero_shot_p.npy", r->zs_p, 2, shape));
    return cli_write_doubles(o, "zero_shot_accuracy.npy", r->zs_acc, 2, shape);
}

static icl_status write_matrix(cli_outputs *o, const icl_task_family *f, const icl_tv_result *r) {
    const char *cols[] = {"level", "vector_task", "prompt_task", "vector_id", "prompt_id", "metric", "value"};
    icl_csv *csv;
    CLI_TRY(cli_table_create(o, "matrix.csv", 7, cols, &csv));
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
                for (int k = 0; k < (token ? 8 : 2); k++)
                    cli_csv_row(csv, cli_int(l), cli_str(task_name(f, r, v)), cli_str(task_name(f, r, p)), cli_int(v),
                                cli_int(p), cli_str(token ? tok_names[k] : vec_names[k]),
                                cli_num(token ? tok[k] : vec[k]));
            }
    CLI_TRY(icl_csv_close(csv));
    size_t shape[3] = {(size_t)NL, (size_t)n, (size_t)n}, base[2] = {(size_t)n, (size_t)n};
    if (!token) {
        CLI_TRY(cli_write_doubles(o, "matrix_mse.npy", r->mat_mse, 3, shape));
        return cli_write_doubles(o, "base_mse.npy", r->base_mse, 1, base);
    }
    CLI_TRY(cli_write_doubles(o, "matrix_p_vector_answer.npy", r->mat_p, 3, shape));
    CLI_TRY(cli_write_doubles(o, "matrix_accuracy_vector_answer.npy", r->mat_acc, 3, shape));
    CLI_TRY(cli_write_doubles(o, "matrix_p_prompt_answer.npy", r->mat_p_own, 3, shape));
    CLI_TRY(cli_write_doubles(o, "matrix_accuracy_prompt_answer.npy", r->mat_acc_own, 3, shape));
    CLI_TRY(cli_write_doubles(o, "base_p.npy", r->base_p, 2, base));
    return cli_write_doubles(o, "base_accuracy.npy", r->base_acc, 2, base);
}

static icl_status write_interpolation(cli_outputs *o, const icl_task_family *f, const icl_tv_result *r) {
    const char *cols[] = {"level", "task_1", "task_2", "alpha", "metric", "value"};
    const char *names[] = {"p_task_1", "p_task_2", "other"};
    icl_csv *csv;
    CLI_TRY(cli_table_create(o, "interpolation.csv", 6, cols, &csv));
    for (int pr = 0; pr < r->n_pairs; pr++)
        for (int a = 0; a < r->n_alpha; a++)
            for (int k = 0; k < 3; k++)
                cli_csv_row(csv, cli_int(r->interp_level), cli_str(task_name(f, r, r->pairs[2 * pr])),
                            cli_str(task_name(f, r, r->pairs[2 * pr + 1])), cli_num(r->alphas[a]), cli_str(names[k]),
                            cli_num(r->interp[((size_t)pr * r->n_alpha + a) * 3 + k]));
    CLI_TRY(icl_csv_close(csv));
    if (r->n_pairs == 0)
        return ICL_OK;
    size_t shape[3] = {(size_t)r->n_pairs, (size_t)r->n_alpha, 3};
    return cli_write_doubles(o, "interpolation.npy", r->interp, 3, shape);
}

/* Where each pair's mixed-prompt vector lies (k >= 2): mixed.csv, one row per level and pair. */
static icl_status write_mixed(cli_outputs *o, const icl_task_family *f, const icl_tv_result *r) {
    if (!r->mix_alpha)
        return ICL_OK;
    const char *cols[] = {"level", "task_1", "task_2", "alpha_star", "off_line"};
    icl_csv *csv;
    CLI_TRY(cli_table_create(o, "mixed.csv", 5, cols, &csv));
    for (int pr = 0; pr < r->n_pairs; pr++)
        for (int l = 0; l < r->n_levels; l++)
            cli_csv_row(csv, cli_int(l), cli_str(task_name(f, r, r->pairs[2 * pr])),
                        cli_str(task_name(f, r, r->pairs[2 * pr + 1])),
                        cli_num(r->mix_alpha[(size_t)pr * r->n_levels + l]),
                        cli_num(r->mix_offline[(size_t)pr * r->n_levels + l]));
    return icl_csv_close(csv);
}

static void print_summary(const icl_task_family *f, const icl_tv_result *r) {
    int n = r->n_tasks, NL = r->n_levels, l = r->best_level;
    printf("task vectors: %d tasks, levels 0..%d (0 = embedding, l+1 = after block l), best level %d%s\n", n, NL - 1, l,
           r->best_helps ? "" : " (least harmful: no level helps)");
    if (!r->best_helps)
        printf("no level %s above the unpatched baseline; level %d is the one with the %s, "
               "reported (and interpolated at, unless --level) as the least harmful\n",
               r->mode == ICL_MODE_TOKEN ? "raises zero-shot accuracy" : "lowers the diagonal query MSE", l,
               r->mode == ICL_MODE_TOKEN ? "highest patched accuracy" : "lowest diagonal dMSE");
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
    if (r->n_pairs > 0 && r->mix_alpha)
        printf("mixed prompts %s/%s (half each) at level %d: alpha* %.3f, distance from the line %.3f\n",
               task_name(f, r, r->pairs[0]), task_name(f, r, r->pairs[1]), r->interp_level,
               r->mix_alpha[r->interp_level], r->mix_offline[r->interp_level]);
}

static icl_status write_all(cli_probe *p, const icl_tv_result *r) {
    cli_outputs *o = &p->o;
    const icl_task_family *f = p->family;
    size_t shape[3] = {(size_t)r->n_tasks, (size_t)r->n_levels, (size_t)r->C};
    CLI_TRY(icl_npy_write(cli_out_path(o, "vectors.npy"), ICL_DTYPE_F32, 3, shape, r->vectors));
    if (r->mode == ICL_MODE_TOKEN) {
        CLI_TRY(write_zero_shot(o, f, r));
        CLI_TRY(write_interpolation(o, f, r));
        CLI_TRY(write_mixed(o, f, r));
    }
    CLI_TRY(write_matrix(o, f, r));
    CLI_TRY(cli_sidecar_model_config(o->sc, p->model));
    CLI_TRY(icl_sidecar_set_number(o->sc, "best_level", r->best_level));
    CLI_TRY(icl_sidecar_set_number(o->sc, "best_level_helps", r->best_helps));
    CLI_TRY(icl_sidecar_set_string(o->sc, "best_level_rule",
                                   r->mode == ICL_MODE_TOKEN
                                       ? "highest mean patched zero-shot accuracy (then P) over levels 1..L, whether "
                                         "or not above the unpatched accuracy (best_level_helps)"
                                       : "lowest mean diagonal dMSE over levels 1..L, whether or not below 0 "
                                         "(best_level_helps)"));
    CLI_TRY(icl_sidecar_set_number(o->sc, "interpolation_level", r->interp_level));
    double ids[MAX_TASKS];
    for (int i = 0; i < r->n_tasks; i++) ids[i] = r->tasks[i];
    CLI_TRY(icl_sidecar_set_numbers(o->sc, "task_ids", ids, r->n_tasks));
    return cli_probe_write_sidecar(p);
}

/* --save-inputs: the demonstration prompts of every task (the documented
 * stream ICL_TV_STREAM_DEMO) and their residuals at the query position, whose
 * per-task means are the vectors: demo_X.npy (levels, tasks x prompts, C),
 * task-major, demo_labels.npy the index into task_ids of each item. */
static icl_status save_inputs(cli_probe *p, const icl_tv_options *opt, const icl_tv_result *r) {
    const icl_config *cfg = icl_model_config(p->model);
    int N = opt->n_prompts, n = r->n_tasks * N, NL = r->n_levels, C = r->C;
    int chunk = opt->batch < N ? opt->batch : N;
    icl_prompt *prompts = calloc((size_t)n, sizeof *prompts);
    float *X = malloc((size_t)NL * n * C * sizeof *X), *res = malloc((size_t)NL * chunk * C * sizeof *res);
    int32_t *labels = malloc((size_t)n * sizeof *labels);
    icl_task_batch tb = {0};
    icl_status s = prompts && X && res && labels ? ICL_OK : ICL_ERR_NOMEM;
    icl_positions pos = icl_pos_role(icl_tv_query_role(r->mode));
    for (int t = 0; s == ICL_OK && t < r->n_tasks; t++) {
        icl_prompt_set ps = {opt->seed, ICL_TV_STREAM_DEMO, r->tasks[t], opt->n_examples, 0, cfg->ctx,
                             r->mode == ICL_MODE_VECTOR ? ICL_LOSS_QUERY : ICL_LOSS_ANSWERS};
        for (int first = 0; s == ICL_OK && first < N; first += chunk) {
            int cnt = N - first < chunk ? N - first : chunk;
            if ((s = icl_prompt_set_batch(p->family, &ps, first, cnt, &tb)) == ICL_OK)
                s = icl_residuals_at(p->model, &tb, pos, NULL, 0, res);
            for (int b = 0; s == ICL_OK && b < cnt; b++) {
                int item = t * N + first + b;
                labels[item] = t;
                s = icl_prompt_copy(&prompts[item], &tb.prompts[b]);
                for (int l = 0; l < NL; l++)
                    memcpy(X + ((size_t)l * n + item) * C, res + ((size_t)l * cnt + b) * C, (size_t)C * sizeof *X);
            }
        }
    }
    size_t shape[3] = {(size_t)NL, (size_t)n, (size_t)C}, len = (size_t)n;
    if (s == ICL_OK)
        s = cli_save_prompts(p, "demo_", prompts, NULL, n);
    if (s == ICL_OK)
        s = cli_save_array(p, "demo_X.npy", ICL_DTYPE_F32, 3, shape, X);
    if (s == ICL_OK)
        s = cli_save_array(p, "demo_labels.npy", ICL_DTYPE_I32, 1, &len, labels);
    for (int i = 0; prompts && i < n; i++) icl_prompt_free(&prompts[i]);
    icl_task_batch_free(&tb);
    free(prompts);
    free(X);
    free(res);
    free(labels);
    return s;
}

typedef struct {
    const char *mode;
    int prompts, eval_prompts, k, target_k, add_raw, level, alphas, batch;
} tv_options;

static void record(icl_sidecar *sc, const tv_options *a, const icl_tv_options *opt, const icl_tv_result *r) {
    icl_sidecar_set_number(sc, "prompts", opt->n_prompts);
    icl_sidecar_set_number(sc, "eval_prompts", opt->eval_prompts);
    icl_sidecar_set_number(sc, "examples", opt->n_examples);
    icl_sidecar_set_number(sc, "target_examples", opt->target_examples);
    icl_sidecar_set_string(sc, "mode", a->mode);
    icl_sidecar_set_number(sc, "add_raw", opt->add_raw);
    icl_sidecar_set_number(sc, "alphas", opt->n_alpha);
    icl_sidecar_set_string(sc, "levels", "0 = embedding output, l+1 = resid_post of block l");
    icl_sidecar_set_string(sc, "position", r->mode == ICL_MODE_TOKEN ? "query_sep" : "query_input");
}

static int run(cli_probe *p, void *options) {
    const tv_options *a = options;
    if (strcmp(a->mode, "replace") != 0 && strcmp(a->mode, "add") != 0) {
        fprintf(stderr, "icl probe task-vectors: --mode must be replace or add, not \"%s\"\n", a->mode);
        return 2;
    }
    icl_task_family *f = p->family;
    if (cli_probe_tasks(p, f, MAX_TASKS, 0))
        return 1;
    icl_tv_options opt = icl_tv_options_default(f);
    opt.tasks = p->tasks;
    opt.n_tasks = p->n_tasks;
    if (!p->tasks && icl_task_family_num_tasks(f) > MAX_TASKS) {
        fprintf(stderr, "icl probe task-vectors: the family has more than %d tasks; choose some with --tasks\n",
                MAX_TASKS);
        return 1;
    }
    opt.n_prompts = a->prompts;
    opt.eval_prompts = a->eval_prompts;
    if (a->k != -1)
        opt.n_examples = a->k;
    opt.target_examples = a->target_k != -1 ? a->target_k : opt.n_examples;
    opt.mode = strcmp(a->mode, "add") == 0 ? ICL_TV_ADD : ICL_TV_REPLACE;
    opt.add_raw = a->add_raw;
    opt.level = a->level;
    opt.n_alpha = a->alphas;
    opt.batch = a->batch;
    opt.seed = (uint64_t)p->seed;
    icl_tv_result r = {0};
    icl_status s;
    int rc = 0;
    if ((s = icl_task_vectors_run(p->model, f, &opt, &r)) != ICL_OK)
        rc = cli_fail("task-vectors", s);
    if (rc == 0)
        rc = cli_probe_outputs(p, f);
    if (rc == 0) {
        record(p->o.sc, a, &opt, &r);
        if (p->save_inputs && (s = save_inputs(p, &opt, &r)) != ICL_OK)
            rc = cli_fail("--save-inputs", s);
        else if ((s = write_all(p, &r)) != ICL_OK)
            rc = cli_fail(p->out, s);
    }
    if (rc == 0) {
        print_summary(f, &r);
        printf("wrote %s/{vectors.npy,%smatrix.csv,task_vectors.json,...}\n", p->out,
               r.mode == ICL_MODE_TOKEN ? "zero_shot.csv,interpolation.csv," : "");
    }
    icl_tv_result_free(&r);
    return rc;
}

int probe_task_vectors(int argc, char **argv) {
    static const cli_probe_spec spec = {
        "task-vectors",
        "usage: icl probe task-vectors --model M.safetensors [--out DIR]\n\n"
        "Task vectors: mean residual at the query separator of k-shot prompts, per level\n"
        "(0 = embedding, l+1 = after block l), patched into zero-shot and other-task prompts,\n"
        "and convex combinations of two tasks' vectors. Plot: gnuplot -e \"dir='DIR'\"\n"
        "scripts/plot_task_vectors.gp",
        NULL, "seed of every prompt set [1]", 1};
    tv_options a = {"replace", 100, 100, -1, -1, 0, -1, 11, 64};
    cli_option opts[] = {
        {"--prompts", OPT_INT, &a.prompts, "demonstration prompts per task the vectors average [100]"},
        {"--eval-prompts", OPT_INT, &a.eval_prompts, "target prompts per task and matrix cell [100]"},
        {"--examples", OPT_INT, &a.k, "examples per demonstration prompt [family default]"},
        {"--target-examples", OPT_INT, &a.target_k, "examples per target prompt of the matrix [--examples]"},
        {"--mode", OPT_STRING, &a.mode, "replace | add: how the vector enters the residual [replace]"},
        {"--add-raw", OPT_FLAG, &a.add_raw, "add: add v itself instead of v minus the targets' mean"},
        {"--level", OPT_INT, &a.level, "level of the interpolation, 0..L [best level of the sweep]"},
        {"--alphas", OPT_INT, &a.alphas, "interpolation grid points from 0 to 1 [11]"},
        {"--batch", OPT_INT, &a.batch, "prompts per forward pass [64]"},
    };
    return cli_probe_main(&spec, argc, argv, opts, sizeof opts / sizeof opts[0], run, &a);
}
