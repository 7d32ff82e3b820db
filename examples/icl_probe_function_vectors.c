/* icl probe function-vectors: average indirect effect of every head on
 * shuffled-label prompts, and the function vector of the top heads (Todd et al.). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "icl/task_vectors.h"
#include "icl_cli.h"

#define MAX_TASKS 64

static const char *const condition_names[ICL_FV_N_CONDITIONS] = {"clean", "zero_shot", "shuffled"};

static icl_status write_aie(cli_outputs *o, const icl_task_family *f, const icl_fv_result *r) {
    const char *cols[] = {"layer", "head", "task", "aie", "rank"};
    icl_csv *csv;
    CLI_TRY(cli_table_create(o, "aie.csv", 5, cols, &csv));
    int heads = r->L * r->NH;
    for (int t = -1; t < r->n_tasks; t++)
        for (int j = 0; j < heads; j++)
            cli_csv_row(csv, cli_int(j / r->NH), cli_int(j % r->NH),
                        cli_str(t < 0 ? "mean" : icl_task_family_task_name(f, r->tasks[t])),
                        cli_num(t < 0 ? r->aie_mean[j] : r->aie[(size_t)t * heads + j]), cli_int(r->rank[j]));
    CLI_TRY(icl_csv_close(csv));
    size_t s3[3] = {(size_t)r->n_tasks, (size_t)r->L, (size_t)r->NH};
    CLI_TRY(cli_write_doubles(o, "aie.npy", r->aie, 3, s3));
    return cli_write_doubles(o, "aie_mean.npy", r->aie_mean, 2, s3 + 1);
}

static icl_status write_eval(cli_outputs *o, const icl_task_family *f, const icl_fv_result *r) {
    const char *cols[] = {"task", "condition", "fv", "metric", "value"};
    icl_csv *csv;
    CLI_TRY(cli_table_create(o, "fv_eval.csv", 5, cols, &csv));
    for (int t = 0; t < r->n_tasks; t++)
        for (int c = 0; c < ICL_FV_N_CONDITIONS; c++)
            for (int w = 0; w < 2; w++)
                for (int k = 0; k < 2; k++) {
                    size_t i = ((size_t)t * ICL_FV_N_CONDITIONS + c) * 2 + w;
                    cli_csv_row(csv, cli_str(icl_task_family_task_name(f, r->tasks[t])), cli_str(condition_names[c]),
                                cli_int(w), cli_str(k ? "p" : "accuracy"), cli_num(k ? r->p[i] : r->acc[i]));
                }
    return icl_csv_close(csv);
}

static icl_status write_all(cli_probe *p, const icl_fv_result *r) {
    cli_outputs *o = &p->o;
    const icl_task_family *f = p->family;
    CLI_TRY(write_aie(o, f, r));
    CLI_TRY(write_eval(o, f, r));
    size_t hm[4] = {(size_t)r->n_tasks, (size_t)r->L, (size_t)r->NH, (size_t)r->HS};
    CLI_TRY(icl_npy_write(cli_out_path(o, "head_means.npy"), ICL_DTYPE_F32, 4, hm, r->head_means));
    size_t fv[2] = {(size_t)r->n_tasks, (size_t)r->C}, hd[2] = {(size_t)r->top_k, 2};
    CLI_TRY(icl_npy_write(cli_out_path(o, "fv.npy"), ICL_DTYPE_F32, 2, fv, r->fv));
    CLI_TRY(icl_npy_write(cli_out_path(o, "fv_heads.npy"), ICL_DTYPE_I32, 2, hd, r->heads));
    CLI_TRY(cli_sidecar_model_config(o->sc, p->model));
    double heads[2 * 256];
    int nh = r->top_k < 256 ? r->top_k : 256;
    for (int i = 0; i < 2 * nh; i++) heads[i] = r->heads[i];
    CLI_TRY(icl_sidecar_set_numbers(o->sc, "fv_heads_layer_head", heads, 2 * nh));
    CLI_TRY(icl_sidecar_set_number(o->sc, "fv_layer", r->fv_layer));
    CLI_TRY(icl_sidecar_set_string(o->sc, "fv_point", r->fv_mid ? "resid_mid" : "resid_post"));
    return cli_probe_write_sidecar(p);
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

/* Head outputs (point head_out, every layer and head) at the query separator of the n rows of the last
 * forward pass into z (n, L, NH, HS). */
static icl_status head_outputs(const cli_probe *p, const icl_fv_result *r, const icl_capture_plan *plan,
                               const icl_task_batch *tb, float *z) {
    icl_capture_set set = {0};
    icl_row_labels labels = {tb->roles, tb->prompt_len};
    icl_status s = icl_capture_collect(plan, p->model, &labels, &set);
    size_t width = (size_t)r->L * r->C;
    for (int l = 0; s == ICL_OK && l < r->L; l++) {
        const icl_capture *c = icl_capture_set_find(&set, ICL_POINT_HEAD_OUT, l);
        for (size_t k = 0; k < c->n; k++)
            memcpy(z + (size_t)c->rows[k] * width + (size_t)l * r->C, c->data + k * r->C, (size_t)r->C * sizeof *z);
    }
    icl_capture_set_free(&set);
    return s;
}

/* The per_task prompts of set ps for each task, task-major, generated in the probe's chunks and copied
 * into prompts; with z, also their head outputs at the query separator (n_tasks * per_task, L, NH, HS). */
static icl_status set_prompts(cli_probe *p, const icl_fv_result *r, icl_prompt_set ps, int per_task, int batch,
                              icl_task_batch *tb, icl_prompt *prompts, float *z) {
    int chunk = batch < per_task ? batch : per_task;
    icl_capture_plan *plan = NULL;
    icl_status s = z ? icl_capture_plan_create(&plan) : ICL_OK;
    if (s == ICL_OK && z)
        s = icl_capture_plan_add(plan, ICL_POINT_HEAD_OUT, -1, -1, icl_pos_role(ICL_ROLE_QUERY_SEP), NULL);
    for (int t = 0; s == ICL_OK && t < r->n_tasks; t++) {
        ps.task = r->tasks[t];
        for (int first = 0; s == ICL_OK && first < per_task; first += chunk) {
            int cnt = per_task - first < chunk ? per_task - first : chunk, item = t * per_task + first;
            s = icl_prompt_set_batch(p->family, &ps, first, cnt, tb);
            for (int b = 0; s == ICL_OK && b < cnt; b++) s = icl_prompt_copy(&prompts[item + b], &tb->prompts[b]);
            if (s == ICL_OK && z && (s = icl_model_forward(p->model, &tb->batch, NULL)) == ICL_OK)
                s = head_outputs(p, r, plan, tb, z + (size_t)item * r->L * r->C);
        }
    }
    icl_capture_plan_free(plan);
    return s;
}

/* --save-inputs: the clean prompts (stream ICL_FV_STREAM_CLEAN) with their head outputs at the query
 * separator (mean_*: head_means are their per-task means), the evaluation prompts of each condition
 * (clean_*, zero_shot_*, shuffled_*: stream ICL_FV_STREAM_EVAL; the AIE uses the shuffled ones), each
 * block's attn.proj.weight (the W_O the FV projects through), and every evaluation prompt's P and
 * correctness without and with the FV and with each head patched. */
static icl_status save_inputs(cli_probe *p, const icl_fv_options *opt, const icl_fv_result *r) {
    int ctx = icl_model_config(p->model)->ctx, N = opt->n_prompts, E = r->eval_prompts;
    int nm = r->n_tasks * N, ne = r->n_tasks * E, most = nm > ne ? nm : ne, C = r->C;
    icl_prompt *prompts = calloc((size_t)most, sizeof *prompts);
    float *z = malloc((size_t)nm * r->L * C * sizeof *z), *w = malloc((size_t)r->L * C * C * sizeof *w);
    int32_t *labels = malloc((size_t)nm * sizeof *labels);
    icl_task_batch tb = {0};
    icl_status s = prompts && z && w && labels ? ICL_OK : ICL_ERR_NOMEM;
    icl_prompt_set clean = {opt->seed, ICL_FV_STREAM_CLEAN, 0, opt->n_examples, 0, ctx, ICL_LOSS_ANSWERS};
    if (s == ICL_OK)
        s = set_prompts(p, r, clean, N, opt->batch, &tb, prompts, z);
    for (int i = 0; s == ICL_OK && i < nm; i++) labels[i] = i / N;
    size_t zshape[4] = {(size_t)nm, (size_t)r->L, (size_t)r->NH, (size_t)r->HS}, len = (size_t)nm;
    if (s == ICL_OK && (s = cli_save_prompts(p, "mean_", prompts, NULL, nm)) == ICL_OK &&
        (s = cli_save_array(p, "mean_head_out.npy", ICL_DTYPE_F32, 4, zshape, z)) == ICL_OK)
        s = cli_save_array(p, "mean_labels.npy", ICL_DTYPE_I32, 1, &len, labels);
    for (int c = 0; s == ICL_OK && c < ICL_FV_N_CONDITIONS; c++) {
        icl_prompt_set ps = {opt->seed, ICL_FV_STREAM_EVAL, 0, c == ICL_FV_ZERO_SHOT ? 0 : opt->n_examples,
                             c == ICL_FV_SHUFFLED, ctx, ICL_LOSS_ANSWERS};
        char prefix[32];
        snprintf(prefix, sizeof prefix, "%s_", condition_names[c]);
        if ((s = set_prompts(p, r, ps, E, opt->batch, &tb, prompts, NULL)) == ICL_OK)
            s = cli_save_prompts(p, prefix, prompts, NULL, ne);
    }
    char name[64];
    for (int l = 0; s == ICL_OK && l < r->L; l++) {
        snprintf(name, sizeof name, "blocks.%d.attn.proj.weight", l);
        s = icl_model_get_tensor(p->model, name, w + (size_t)l * C * C, (size_t)C * C);
    }
    size_t wshape[3] = {(size_t)r->L, (size_t)C, (size_t)C};
    size_t ev[4] = {(size_t)r->n_tasks, ICL_FV_N_CONDITIONS, 2, (size_t)E};
    size_t p0[2] = {(size_t)r->n_tasks, (size_t)E};
    size_t pl[4] = {(size_t)r->n_tasks, (size_t)r->L, (size_t)r->NH, (size_t)E};
    if (s == ICL_OK && (s = cli_save_array(p, "proj_w.npy", ICL_DTYPE_F32, 3, wshape, w)) == ICL_OK &&
        (s = cli_save_doubles(p, "eval_p.npy", r->p_prompt, 4, ev)) == ICL_OK &&
        (s = cli_save_doubles(p, "eval_correct.npy", r->acc_prompt, 4, ev)) == ICL_OK &&
        (s = cli_save_doubles(p, "aie_p_corrupted.npy", r->aie_p0, 2, p0)) == ICL_OK)
        s = cli_save_doubles(p, "aie_p_patched.npy", r->aie_p, 4, pl);
    for (int i = 0; prompts && i < most; i++) icl_prompt_free(&prompts[i]);
    icl_task_batch_free(&tb);
    free(prompts);
    free(z);
    free(w);
    free(labels);
    return s;
}

typedef struct {
    const char *point;
    int prompts, eval_prompts, k, top_k, layer, batch;
} fv_options;

static int run(cli_probe *p, void *options) {
    const fv_options *a = options;
    if (strcmp(a->point, "resid_post") != 0 && strcmp(a->point, "resid_mid") != 0) {
        fprintf(stderr, "icl probe function-vectors: --point must be resid_post or resid_mid, not \"%s\"\n", a->point);
        return 2;
    }
    icl_task_family *f = p->family;
    if (cli_probe_tasks(p, f, MAX_TASKS, 0))
        return 1;
    icl_fv_options opt = icl_fv_options_default(f);
    opt.tasks = p->tasks;
    opt.n_tasks = p->n_tasks;
    opt.n_prompts = a->prompts;
    opt.eval_prompts = a->eval_prompts;
    if (a->k != -1)
        opt.n_examples = a->k;
    opt.top_k = a->top_k;
    opt.fv_layer = a->layer;
    opt.fv_mid = strcmp(a->point, "resid_mid") == 0;
    opt.batch = a->batch;
    opt.seed = (uint64_t)p->seed;
    icl_fv_result r = {0};
    icl_status s;
    int rc = 0;
    if ((s = icl_function_vectors_run(p->model, f, &opt, &r)) != ICL_OK)
        rc = cli_fail("function-vectors", s);
    if (rc == 0)
        rc = cli_probe_outputs(p, f);
    if (rc == 0) {
        icl_sidecar_set_number(p->o.sc, "prompts", opt.n_prompts);
        icl_sidecar_set_number(p->o.sc, "eval_prompts", opt.eval_prompts);
        icl_sidecar_set_number(p->o.sc, "examples", opt.n_examples);
        icl_sidecar_set_number(p->o.sc, "top_k", r.top_k);
        if (p->save_inputs && (s = save_inputs(p, &opt, &r)) != ICL_OK)
            rc = cli_fail("--save-inputs", s);
        else if ((s = write_all(p, &r)) != ICL_OK)
            rc = cli_fail(p->out, s);
    }
    if (rc == 0) {
        print_summary(f, &r);
        printf("wrote %s/{aie.csv,fv_eval.csv,aie.npy,fv.npy,function_vectors.json,...}\n", p->out);
    }
    icl_fv_result_free(&r);
    return rc;
}

int probe_function_vectors(int argc, char **argv) {
    static const cli_probe_spec spec = {
        "function-vectors",
        "usage: icl probe function-vectors --model M.safetensors [--out DIR]\n\n"
        "Average indirect effect of every head (its clean mean output patched into\n"
        "shuffled-label prompts at the query separator) and the function vector of the\n"
        "top heads, added to the residual stream. Plot: gnuplot -e \"dir='DIR'\"\n"
        "scripts/plot_function_vectors.gp",
        NULL, "seed of every prompt set [1]", 1};
    fv_options a = {"resid_post", 100, 100, -1, -1, -1, 64};
    cli_option opts[] = {
        {"--prompts", OPT_INT, &a.prompts, "clean prompts per task for the mean head outputs [100]"},
        {"--eval-prompts", OPT_INT, &a.eval_prompts, "shuffled / zero-shot / clean prompts per task [100]"},
        {"--examples", OPT_INT, &a.k, "examples per prompt, >= 1 [family default]"},
        {"--top-k", OPT_INT, &a.top_k, "heads summed into the function vector [min(10, half of the heads)]"},
        {"--layer", OPT_INT, &a.layer, "block whose residual receives the FV [round(L/3) - 1, at least 0]"},
        {"--point", OPT_STRING, &a.point, "resid_post | resid_mid of that block [resid_post]"},
        {"--batch", OPT_INT, &a.batch, "prompts per forward pass [64]"},
    };
    return cli_probe_main(&spec, argc, argv, opts, sizeof opts / sizeof opts[0], run, &a);
}
