/* icl probe logit-lens: each task's answer probability read out of every
 * layer, on single-task and mixed prompts.
 * icl probe head-ablation: change of each task's answer probability and
 * accuracy when one head at a time is zeroed or replaced by its mean. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "icl/lens.h"
#include "icl/superposition.h"
#include "icl_cli.h"

#define MAX_TASKS 64

/* ---- logit lens ---- */

typedef struct {
    int prompts, examples, batch, no_mixed;
} lens_options;

static const char *const lens_columns[] = {"prompts", "prompt_tasks", "level", "point", "task",
                                           "lambda",  "p_mean",       "p_sd",  "n_prompts"};

static void level_point(int level, char *buf, size_t size) {
    if (level == 0)
        snprintf(buf, size, "hook_embed");
    else
        snprintf(buf, size, "blocks.%d.hook_resid_post", level - 1);
}

static icl_status lens_rows(icl_csv *csv, const icl_task_family *f, const char *kind, const char *prompt_tasks,
                            const icl_superposition_result *r) {
    char point[64];
    icl_status s = ICL_OK;
    for (int l = 0; l < r->levels; l++) {
        level_point(l, point, sizeof point);
        for (int j = 0; j < r->K; j++)
            s = cli_csv_row(csv, cli_str(kind), cli_str(prompt_tasks), cli_int(l), cli_str(point),
                            cli_str(icl_task_family_task_name(f, r->tasks[j])), cli_num(r->lambda[j]),
                            cli_num(r->lens[l].mean[j]), cli_num(r->lens[l].sd[j]), cli_int(r->n));
    }
    return s;
}

static void lens_summary(const icl_task_family *f, const char *prompt_tasks, const icl_superposition_result *r) {
    printf("%-28s", prompt_tasks);
    for (int l = 0; l < r->levels; l++) {
        printf("  L%d:", l);
        for (int j = 0; j < r->K; j++) printf(" %.2f", r->lens[l].mean[j]);
    }
    printf("   (%s", icl_task_family_task_name(f, r->tasks[0]));
    for (int j = 1; j < r->K; j++) printf(",%s", icl_task_family_task_name(f, r->tasks[j]));
    printf(")\n");
}

/* --save-inputs for configuration c: its prompts (regenerated as
 * icl_superposition_run drew them) as config<c>_*.npy with every task's
 * answer to each, config<c>_answers_all.npy (n, K, answer_len). */
static icl_status lens_save_config(cli_probe *p, int c, const int *sel, const double *lambda, int K,
                                   const icl_rng *rng, const icl_superposition_result *r) {
    int n = r->n, A = r->answer_len;
    icl_mixed_prompt *mp = calloc((size_t)n, sizeof *mp);
    const icl_prompt **ptrs = malloc((size_t)n * sizeof *ptrs);
    int32_t *answers = malloc((size_t)n * K * A * sizeof *answers);
    icl_status s = mp && ptrs && answers ? ICL_OK : ICL_ERR_NOMEM;
    for (int q = 0; s == ICL_OK && q < n; q++) {
        s = icl_superposition_prompt(p->model, p->family, sel, lambda, K, r->n_examples, rng, q, &mp[q]);
        ptrs[q] = &mp[q].prompt;
        if (s == ICL_OK)
            memcpy(answers + (size_t)q * K * A, mp[q].answers, (size_t)K * A * sizeof *answers);
    }
    char name[64];
    snprintf(name, sizeof name, "config%d_", c);
    if (s == ICL_OK)
        s = cli_save_prompts(p, name, NULL, ptrs, n);
    snprintf(name, sizeof name, "config%d_answers_all.npy", c);
    if (s == ICL_OK)
        s = cli_save_array(p, name, ICL_DTYPE_I32, 3, (size_t[]){(size_t)n, (size_t)K, (size_t)A}, answers);
    for (int q = 0; mp && q < n; q++) icl_mixed_prompt_free(&mp[q]);
    free(mp);
    free(ptrs);
    free(answers);
    return s;
}

/* Every configuration: single-task prompts of each task, then their uniform
 * mixture; summaries printed, rows into csv and probabilities into P
 * (configs, levels, n, K). */
static int lens_configs(cli_probe *p, const lens_options *o, const int *sel, int K, icl_rng *rng, icl_csv *csv,
                        const char *csv_path, float *P) {
    icl_model *m = p->model;
    const icl_task_family *f = p->family;
    int n_configs = K + !o->no_mixed, levels = icl_model_config(m)->n_layer + 1, n = o->prompts;
    icl_superposition_options so;
    so = icl_superposition_options_default();
    so.n_prompts = n;
    so.n_examples = o->examples;
    so.batch = o->batch;
    so.lens = 1;
    so.solved = 0;
    for (int c = 0; c < n_configs; c++) {
        /* Single-task prompts are one-hot mixtures, so every task's answer to the query is known. */
        double lambda[MAX_TASKS];
        char prompt_tasks[512];
        for (int j = 0; j < K; j++) lambda[j] = c < K ? (j == c) : 1.0 / K;
        snprintf(prompt_tasks, sizeof prompt_tasks, "%s", c < K ? icl_task_family_task_name(f, sel[c]) : "uniform");
        icl_superposition_result r;
        icl_status s = icl_superposition_run(m, f, sel, lambda, K, &so, rng, &r);
        if (s != ICL_OK)
            return cli_fail("logit lens", s);
        lens_summary(f, prompt_tasks, &r);
        if (p->save_inputs && (s = lens_save_config(p, c, sel, lambda, K, rng, &r)) != ICL_OK) {
            icl_superposition_result_free(&r);
            return cli_fail("--save-inputs", s);
        }
        for (size_t i = 0; i < (size_t)levels * n * K; i++) P[(size_t)c * levels * n * K + i] = (float)r.lens_P[i];
        s = lens_rows(csv, f, c < K ? "single" : "mixed", prompt_tasks, &r);
        icl_superposition_result_free(&r);
        if (s != ICL_OK)
            return cli_fail(csv_path, s);
    }
    return 0;
}

static int lens_run(cli_probe *p, void *options) {
    const lens_options *o = options;
    icl_model *m = p->model;
    const icl_task_family *f = p->family;
    if (cli_probe_tasks(p, f, MAX_TASKS, 1))
        return 1;
    const int *sel = p->tasks;
    int K = p->n_tasks;
    if (K < 2) {
        fprintf(stderr, "icl probe logit-lens: needs at least 2 tasks to compare answers; --tasks selects %d\n", K);
        return 1;
    }
    if (cli_probe_outputs(p, f))
        return 1;
    icl_sidecar *sc = p->o.sc;
    icl_sidecar_set_string(sc, "tasks", p->tasks_list ? p->tasks_list : "all");
    icl_sidecar_set_number(sc, "prompts", o->prompts);
    icl_sidecar_set_number(sc, "examples", o->examples);
    icl_sidecar_set_number(sc, "mixed", !o->no_mixed);
    cli_sidecar_model_config(sc, m);
    int n_configs = K + !o->no_mixed, levels = icl_model_config(m)->n_layer + 1, n = o->prompts, rc = 0;
    icl_rng rng;
    icl_rng_init(&rng, (uint64_t)p->seed, "logit-lens");
    float *P = malloc((size_t)n_configs * levels * n * K * sizeof *P);
    icl_csv *csv = NULL;
    char csv_path[1024];
    snprintf(csv_path, sizeof csv_path, "%s/logit_lens.csv", p->out);
    icl_status s = ICL_OK;
    if (!P) {
        fprintf(stderr, "icl probe logit-lens: out of memory\n");
        rc = 1;
    } else if ((s = cli_table_create(&p->o, "logit_lens.csv", 9, lens_columns, &csv)) != ICL_OK) {
        rc = cli_fail(csv_path, s);
    }
    if (rc == 0)
        rc = lens_configs(p, o, sel, K, &rng, csv, csv_path, P);
    if (rc == 0) {
        s = icl_csv_close(csv);
        csv = NULL;
        if (s != ICL_OK)
            rc = cli_fail(csv_path, s);
    }
    size_t shape[4] = {(size_t)n_configs, (size_t)levels, (size_t)n, (size_t)K};
    if (rc == 0 && (s = icl_npy_write(cli_out_path(&p->o, "lens_P.npy"), ICL_DTYPE_F32, 4, shape, P)) != ICL_OK)
        rc = cli_fail(p->o.path, s);
    if (rc == 0 && (s = cli_probe_write_sidecar(p)) != ICL_OK)
        rc = cli_fail(p->o.path, s);
    if (rc == 0)
        printf("wrote %s/logit_lens.csv, lens_P.npy (configs, levels, prompts, tasks), logit_lens.json\n", p->out);
    if (csv)
        icl_csv_abort(csv);
    free(P);
    return rc;
}

int probe_logit_lens(int argc, char **argv) {
    static const cli_probe_spec spec = {
        "logit-lens",
        "usage: icl probe logit-lens --model M.safetensors [--tasks A,B,...] [--out DIR]\n\n"
        "Probability of every task's answer read out of each layer (final layernorm +\n"
        "unembedding), on single-task prompts of each task and on their uniform mixture.",
        "comma-separated tasks (at least 2) [all]", NULL, 1};
    lens_options o = {.prompts = 100, .examples = -1, .batch = 64};
    cli_option opts[] = {
        {"--prompts", OPT_INT, &o.prompts, "prompts per configuration [100]"},
        {"--examples", OPT_INT, &o.examples, "in-context examples per prompt [family default]"},
        {"--no-mixed", OPT_FLAG, &o.no_mixed, "skip the uniform mixture of the tasks"},
        {"--batch", OPT_INT, &o.batch, "prompts per forward pass [64]"},
    };
    return cli_probe_main(&spec, argc, argv, opts, sizeof opts / sizeof opts[0], lens_run, &o);
}

/* ---- head ablation ---- */

typedef struct {
    const char *mode;
    int prompts, examples, batch, layer;
} ablation_options;

/* Token families fill p and acc, vector families mse; the others stay NaN. */
typedef struct {
    double p, acc, mse;
} score;

#define N_METRICS 3
static const char *const metric_names[N_METRICS] = {"p", "acc", "mse"};

static const char *const ablation_columns[] = {"layer",       "head",      "mode",     "task",       "p_base",
                                               "p_ablated",   "delta_p",   "acc_base", "acc_ablated", "delta_acc",
                                               "mse_base",    "mse_ablated", "delta_mse", "n_prompts"};
#define N_ABLATION_COLUMNS ((int)(sizeof ablation_columns / sizeof ablation_columns[0]))

static double metric_of(const score *s, int k) { return k == 0 ? s->p : k == 1 ? s->acc : s->mse; }

/* Single-task prompts of each selected task, in batches. */
typedef struct {
    int n_tasks, per_task; /* batches per task */
    int token;             /* token family (else vector) */
    icl_task_batch *tb;    /* (n_tasks, per_task) */
    double *v;             /* (max batch) */
    uint8_t *ok;           /* (max batch) */
} ablation_data;

static void ablation_data_free(ablation_data *d) {
    for (int i = 0; d->tb && i < d->n_tasks * d->per_task; i++) icl_task_batch_free(&d->tb[i]);
    free(d->tb);
    free(d->v);
    free(d->ok);
}

static int make_prompts(const ablation_options *o, long seed, const icl_task_family *f, const int *sel,
                        ablation_data *d) {
    d->per_task = (o->prompts + o->batch - 1) / o->batch;
    d->tb = calloc((size_t)d->n_tasks * d->per_task, sizeof *d->tb);
    d->v = malloc((size_t)o->batch * sizeof *d->v);
    d->ok = malloc((size_t)o->batch * sizeof *d->ok);
    if (!d->tb || !d->v || !d->ok) {
        fprintf(stderr, "icl probe head-ablation: out of memory\n");
        return 1;
    }
    icl_rng root, r;
    icl_rng_init(&root, (uint64_t)seed, "head-ablation");
    for (int t = 0; t < d->n_tasks; t++) {
        icl_rng_split(&r, &root, (uint64_t)sel[t]);
        for (int k = 0; k < d->per_task; k++) {
            icl_task_batch_options bo = icl_task_batch_options_default();
            int left = o->prompts - k * o->batch;
            bo.B = left < o->batch ? left : o->batch;
            bo.n_examples = o->examples;
            bo.tasks = &sel[t];
            bo.n_tasks = 1;
            bo.gen.query_unseen = d->token;
            icl_status s = icl_task_batch_generate(f, &bo, &r, &d->tb[t * d->per_task + k]);
            if (s != ICL_OK)
                return cli_fail("prompts", s);
        }
    }
    return 0;
}

/* Scores of task t's prompts, averaged, with (layer, head) ablated, or without ablation for layer < 0;
 * pv and pok (prompts, optional) get each prompt's value (probability or squared error) and correctness. */
static icl_status task_scores(icl_model *m, ablation_data *d, int t, int layer, int head, icl_ablation_mode mode,
                              const icl_head_means *hm, score *out, float *pv, float *pok) {
    double sv = 0.0, sa = 0.0;
    int count = 0;
    for (int k = 0; k < d->per_task; k++) {
        const icl_task_batch *tb = &d->tb[t * d->per_task + k];
        icl_status s;
        if (d->token)
            s = layer < 0 ? icl_answer_self_probs(m, tb, NULL, 0, d->v, d->ok)
                          : icl_head_ablation(m, tb, layer, head, mode, hm, d->v, d->ok);
        else
            s = layer < 0 ? icl_query_sq_errors(m, tb, NULL, 0, d->v)
                          : icl_head_ablation_errors(m, tb, layer, head, mode, hm, d->v);
        if (s != ICL_OK)
            return s;
        for (int b = 0; b < tb->B; b++) {
            sv += d->v[b];
            sa += d->token ? d->ok[b] : 0;
            if (pv) {
                pv[count + b] = (float)d->v[b];
                pok[count + b] = d->token ? d->ok[b] : NAN;
            }
        }
        count += tb->B;
    }
    *out = d->token ? (score){sv / count, sa / count, NAN} : (score){NAN, NAN, sv / count};
    return ICL_OK;
}

static int parse_modes(const char *text, icl_ablation_mode *modes, int *n) {
    if (strcmp(text, "zero") == 0 || strcmp(text, "mean") == 0) {
        modes[0] = strcmp(text, "zero") == 0 ? ICL_ABLATE_ZERO : ICL_ABLATE_MEAN;
        *n = 1;
        return 0;
    }
    if (strcmp(text, "both") == 0) {
        modes[0] = ICL_ABLATE_ZERO;
        modes[1] = ICL_ABLATE_MEAN;
        *n = 2;
        return 0;
    }
    fprintf(stderr, "icl probe head-ablation: --mode must be zero, mean or both, got \"%s\"\n", text);
    return 1;
}

/* Head means over every prompt of every selected task. */
static int make_means(icl_model *m, const ablation_data *d, icl_head_means **hm) {
    int T = 0;
    for (int i = 0; i < d->n_tasks * d->per_task; i++)
        if (d->tb[i].T > T) T = d->tb[i].T;
    icl_status s = icl_head_means_create(m, T, hm);
    for (int i = 0; s == ICL_OK && i < d->n_tasks * d->per_task; i++) s = icl_head_means_add(*hm, m, &d->tb[i]);
    return s == ICL_OK ? 0 : cli_fail("head means", s);
}

typedef struct {
    int n_modes, L, NH, n_tasks;
    float *delta[N_METRICS]; /* (modes, L, NH, tasks) each */
    /* --save-inputs: each prompt's value and correctness, clean (tasks, n) and ablated
     * (modes, L, NH, tasks, n); NaN where not measured */
    float *base_v, *base_ok, *abl_v, *abl_ok;
} ablation_grid;

static size_t grid_at(const ablation_grid *g, int mi, int l, int h, int t) {
    return (((size_t)mi * g->L + l) * g->NH + h) * g->n_tasks + t;
}

static icl_status ablation_row(icl_csv *csv, int l, int h, icl_ablation_mode mode, const char *task,
                               const score *base, const score *abl, int n) {
    double v[3 * N_METRICS];
    for (int k = 0; k < N_METRICS; k++) {
        v[3 * k] = metric_of(base, k);
        v[3 * k + 1] = metric_of(abl, k);
        v[3 * k + 2] = metric_of(abl, k) - metric_of(base, k);
    }
    return cli_csv_row(csv, cli_int(l), cli_int(h), cli_str(icl_ablation_mode_name(mode)), cli_str(task),
                       cli_num(v[0]), cli_num(v[1]), cli_num(v[2]), cli_num(v[3]), cli_num(v[4]), cli_num(v[5]),
                       cli_num(v[6]), cli_num(v[7]), cli_num(v[8]), cli_int(n));
}

static int ablation_sweep(const ablation_options *o, icl_model *m, const icl_task_family *f, const int *sel,
                          ablation_data *d, const icl_ablation_mode *modes, const icl_head_means *hm,
                          ablation_grid *g, icl_csv *csv) {
    int first = o->layer < 0 ? 0 : o->layer, last = o->layer < 0 ? g->L - 1 : o->layer;
    score *base = malloc((size_t)g->n_tasks * sizeof *base);
    if (!base) {
        fprintf(stderr, "icl probe head-ablation: out of memory\n");
        return 1;
    }
    icl_status s = ICL_OK;
    size_t n = (size_t)o->prompts;
    for (int t = 0; s == ICL_OK && t < g->n_tasks; t++)
        s = task_scores(m, d, t, -1, 0, ICL_ABLATE_ZERO, NULL, &base[t], g->base_v ? g->base_v + t * n : NULL,
                        g->base_v ? g->base_ok + t * n : NULL);
    for (int mi = 0; s == ICL_OK && mi < g->n_modes; mi++)
        for (int l = first; s == ICL_OK && l <= last; l++)
            for (int h = 0; s == ICL_OK && h < g->NH; h++)
                for (int t = 0; s == ICL_OK && t < g->n_tasks; t++) {
                    score a;
                    size_t at = grid_at(g, mi, l, h, t) * n;
                    s = task_scores(m, d, t, l, h, modes[mi], hm, &a, g->abl_v ? g->abl_v + at : NULL,
                                    g->abl_v ? g->abl_ok + at : NULL);
                    if (s != ICL_OK)
                        break;
                    for (int k = 0; k < N_METRICS; k++)
                        g->delta[k][grid_at(g, mi, l, h, t)] = (float)(metric_of(&a, k) - metric_of(&base[t], k));
                    s = ablation_row(csv, l, h, modes[mi], icl_task_family_task_name(f, sel[t]), &base[t], &a,
                                     o->prompts);
                }
    if (s == ICL_OK) {
        printf("baseline:");
        for (int t = 0; t < g->n_tasks; t++)
            if (d->token)
                printf("  %s p %.3f acc %.3f", icl_task_family_task_name(f, sel[t]), base[t].p, base[t].acc);
            else
                printf("  %s mse %.4f", icl_task_family_task_name(f, sel[t]), base[t].mse);
        printf("\n");
    }
    free(base);
    return s == ICL_OK ? 0 : cli_fail("head ablation", s);
}

/* Mean change over tasks of the headline metric, per layer (rows) and head (columns). */
static void ablation_summary(const ablation_options *o, const icl_ablation_mode *modes, const ablation_grid *g,
                             int token) {
    int first = o->layer < 0 ? 0 : o->layer, last = o->layer < 0 ? g->L - 1 : o->layer, k = token ? 0 : 2;
    for (int mi = 0; mi < g->n_modes; mi++) {
        printf("%s ablation: mean change of %s over tasks; rows layer, columns head\n",
               icl_ablation_mode_name(modes[mi]), token ? "P(answer)" : "the query squared error");
        for (int l = first; l <= last; l++) {
            printf("  L%-3d", l);
            for (int h = 0; h < g->NH; h++) {
                double sum = 0.0;
                for (int t = 0; t < g->n_tasks; t++) sum += g->delta[k][grid_at(g, mi, l, h, t)];
                printf(" %+8.4f", sum / g->n_tasks);
            }
            printf("\n");
        }
    }
}

/* The head_ablation.csv table of the sweep over every selected head. */
static int ablation_table(cli_probe *p, const ablation_options *o, ablation_data *d, const icl_ablation_mode *modes,
                          const icl_head_means *hm, ablation_grid *g) {
    icl_csv *csv;
    icl_status s = cli_table_create(&p->o, "head_ablation.csv", N_ABLATION_COLUMNS, ablation_columns, &csv);
    if (s != ICL_OK)
        return cli_fail(p->o.path, s);
    int rc = ablation_sweep(o, p->model, p->family, p->tasks, d, modes, hm, g, csv);
    if (rc) {
        icl_csv_abort(csv);
        return rc;
    }
    return (s = icl_csv_close(csv)) == ICL_OK ? 0 : cli_fail(p->o.path, s);
}

/* The changes of each metric the family has as .npy files, and the sidecar. */
static int ablation_write(cli_probe *p, const ablation_options *o, const ablation_grid *g, int token) {
    size_t shape[4] = {(size_t)g->n_modes, (size_t)g->L, (size_t)g->NH, (size_t)g->n_tasks};
    char name[64];
    icl_status s;
    for (int k = 0; k < N_METRICS; k++) {
        if ((k < 2) != token)
            continue;
        snprintf(name, sizeof name, "delta_%s.npy", metric_names[k]);
        if ((s = icl_npy_write(cli_out_path(&p->o, name), ICL_DTYPE_F32, 4, shape, g->delta[k])) != ICL_OK)
            return cli_fail(p->o.path, s);
    }
    icl_sidecar *sc = p->o.sc;
    icl_sidecar_set_string(sc, "tasks", p->tasks_list ? p->tasks_list : "all");
    icl_sidecar_set_string(sc, "mode", o->mode);
    icl_sidecar_set_number(sc, "layer", o->layer);
    icl_sidecar_set_number(sc, "prompts", o->prompts);
    icl_sidecar_set_number(sc, "examples", o->examples);
    icl_sidecar_set_string(sc, "npy_axes", "(mode, layer, head, task); layers not swept are NaN");
    cli_sidecar_model_config(sc, p->model);
    return (s = cli_probe_write_sidecar(p)) == ICL_OK ? 0 : cli_fail(p->o.path, s);
}

/* A float array of `cells` NaNs; NULL when out of memory. */
static float *nan_array(size_t cells) {
    float *a = malloc(cells * sizeof *a);
    for (size_t i = 0; a && i < cells; i++) a[i] = NAN;
    return a;
}

/* The delta arrays of the grid, NaN where a layer is not swept; with --save-inputs (n prompts per task) also
 * the per-prompt arrays. */
static int grid_alloc(ablation_grid *g, int save_inputs, int n) {
    size_t cells = (size_t)g->n_modes * g->L * g->NH * g->n_tasks;
    int rc = 0;
    for (int k = 0; k < N_METRICS; k++)
        if (!(g->delta[k] = nan_array(cells)))
            rc = 1;
    if (save_inputs) {
        g->base_v = nan_array((size_t)g->n_tasks * n);
        g->base_ok = nan_array((size_t)g->n_tasks * n);
        g->abl_v = nan_array(cells * n);
        g->abl_ok = nan_array(cells * n);
        if (!g->base_v || !g->base_ok || !g->abl_v || !g->abl_ok)
            rc = 1;
    }
    if (rc)
        fprintf(stderr, "icl probe head-ablation: out of memory\n");
    return rc;
}

/* --save-inputs: task t's prompts as task<t>_*.npy, and each prompt's clean and ablated value
 * (probability or squared error) and correctness (NaN for vector families). */
static int ablation_save_inputs(cli_probe *p, const ablation_options *o, const ablation_data *d,
                                const ablation_grid *g) {
    size_t n = (size_t)o->prompts;
    const icl_prompt **ptrs = malloc(n * sizeof *ptrs);
    icl_status s = ptrs ? ICL_OK : ICL_ERR_NOMEM;
    char prefix[32];
    for (int t = 0; s == ICL_OK && t < d->n_tasks; t++) {
        size_t i = 0;
        for (int k = 0; k < d->per_task; k++) {
            const icl_task_batch *tb = &d->tb[t * d->per_task + k];
            for (int b = 0; b < tb->B; b++) ptrs[i++] = &tb->prompts[b];
        }
        snprintf(prefix, sizeof prefix, "task%d_", t);
        s = cli_save_prompts(p, prefix, NULL, ptrs, (int)n);
    }
    free(ptrs);
    size_t base[2] = {(size_t)g->n_tasks, n}, abl[5] = {(size_t)g->n_modes, (size_t)g->L, (size_t)g->NH,
                                                          (size_t)g->n_tasks, n};
    if (s == ICL_OK)
        s = cli_save_array(p, "base_value.npy", ICL_DTYPE_F32, 2, base, g->base_v);
    if (s == ICL_OK)
        s = cli_save_array(p, "base_correct.npy", ICL_DTYPE_F32, 2, base, g->base_ok);
    if (s == ICL_OK)
        s = cli_save_array(p, "ablated_value.npy", ICL_DTYPE_F32, 5, abl, g->abl_v);
    if (s == ICL_OK)
        s = cli_save_array(p, "ablated_correct.npy", ICL_DTYPE_F32, 5, abl, g->abl_ok);
    return s == ICL_OK ? 0 : cli_fail("--save-inputs", s);
}

static int ablation_run(cli_probe *p, void *options) {
    const ablation_options *o = options;
    int n_modes, rc;
    icl_ablation_mode modes[2];
    const icl_config *cfg = icl_model_config(p->model);
    if ((rc = cli_probe_tasks(p, p->family, MAX_TASKS, 1)) || (rc = parse_modes(o->mode, modes, &n_modes)))
        return rc;
    if (o->layer < -1 || o->layer >= cfg->n_layer) {
        fprintf(stderr, "icl probe head-ablation: --layer %d out of range [0, %d) (-1 = every layer)\n", o->layer,
                cfg->n_layer);
        return 1;
    }
    if (o->prompts < 1 || o->batch < 1) {
        fprintf(stderr, "icl probe head-ablation: --prompts and --batch must be >= 1\n");
        return 1;
    }
    if (cli_probe_outputs(p, p->family))
        return 1;
    ablation_data d = {p->n_tasks, 0, icl_task_family_mode(p->family) == ICL_MODE_TOKEN, NULL, NULL, NULL};
    ablation_grid g = {n_modes, cfg->n_layer, cfg->n_head, p->n_tasks, {NULL, NULL, NULL}, NULL, NULL, NULL, NULL};
    icl_head_means *hm = NULL;
    rc = grid_alloc(&g, p->save_inputs, o->prompts);
    double t0 = cli_now();
    if (rc == 0)
        rc = make_prompts(o, p->seed, p->family, p->tasks, &d);
    if (rc == 0)
        rc = make_means(p->model, &d, &hm);
    if (rc == 0)
        rc = ablation_table(p, o, &d, modes, hm, &g);
    if (rc == 0 && p->save_inputs)
        rc = ablation_save_inputs(p, o, &d, &g);
    if (rc == 0)
        rc = ablation_write(p, o, &g, d.token);
    if (rc == 0) {
        ablation_summary(o, modes, &g, d.token);
        printf("%d prompts per task in %.1f s; wrote %s/head_ablation.csv, delta_*.npy, head_ablation.json\n",
               o->prompts, cli_now() - t0, p->out);
    }
    icl_head_means_free(hm);
    ablation_data_free(&d);
    for (int k = 0; k < N_METRICS; k++) free(g.delta[k]);
    free(g.base_v);
    free(g.base_ok);
    free(g.abl_v);
    free(g.abl_ok);
    return rc;
}

int probe_head_ablation(int argc, char **argv) {
    static const cli_probe_spec spec = {
        "head-ablation",
        "usage: icl probe head-ablation --model M.safetensors [--mode zero|mean|both] [--out DIR]\n\n"
        "Change of each task's answer probability and accuracy (token families) or query\n"
        "squared error (vector families) when one attention head at a time is zeroed or\n"
        "replaced by its per-position mean over all the prompts.",
        NULL, NULL, 1};
    ablation_options o = {.mode = "both", .prompts = 100, .examples = -1, .batch = 64, .layer = -1};
    cli_option opts[] = {
        {"--mode", OPT_STRING, &o.mode, "zero | mean | both [both]"},
        {"--layer", OPT_INT, &o.layer, "ablate the heads of this layer only [-1 = every layer]"},
        {"--prompts", OPT_INT, &o.prompts, "single-task prompts per task [100]"},
        {"--examples", OPT_INT, &o.examples, "in-context examples per prompt [family default]"},
        {"--batch", OPT_INT, &o.batch, "prompts per forward pass [64]"},
    };
    return cli_probe_main(&spec, argc, argv, opts, sizeof opts / sizeof opts[0], ablation_run, &o);
}
