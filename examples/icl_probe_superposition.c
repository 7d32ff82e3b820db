/* icl probe superposition: P(each task's answer) on mixed prompts against
 * the tasks' proportions (Xiong et al.), over 2-task lambda sweeps and
 * uniform mixtures of 2..K tasks, optionally per layer through the logit lens. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "icl/superposition.h"
#include "icl_cli.h"

#define MAX_TASKS 64
#define MAX_LAMBDAS 101

typedef struct {
    const char *sweep; /* "pairs", "uniform" or "custom" */
    int K;
    int tasks[MAX_TASKS];
    double lambda[MAX_TASKS];
} mixture;

typedef struct {
    mixture *items;
    int n, cap;
} mixture_list;

typedef struct {
    const char *pair, *lambdas, *custom;
    int prompts, examples, max_tasks, subsets, lens, beam, batch, no_pairs, no_uniform;
} options;

static int push(mixture_list *l, const mixture *m) {
    if (l->n == l->cap) {
        int cap = l->cap ? 2 * l->cap : 16;
        mixture *items = realloc(l->items, (size_t)cap * sizeof *items);
        if (!items) {
            fprintf(stderr, "icl probe superposition: out of memory\n");
            return 1;
        }
        l->items = items;
        l->cap = cap;
    }
    l->items[l->n++] = *m;
    return 0;
}

static int parse_lambdas(const char *text, double *out, int *n) {
    *n = 0;
    const char *p = text;
    while (*p) {
        char *end;
        double v = strtod(p, &end);
        if (end == p || (*end && *end != ',') || !(v >= 0.0 && v <= 1.0) || *n == MAX_LAMBDAS) {
            fprintf(stderr, "icl probe superposition: --lambdas wants up to %d numbers in [0,1] separated by commas, "
                    "got \"%s\"\n", MAX_LAMBDAS, text);
            return 1;
        }
        out[(*n)++] = v;
        p = *end ? end + 1 : end;
    }
    return *n ? 0 : (fprintf(stderr, "icl probe superposition: --lambdas is empty\n"), 1);
}

/* 2-task mixtures (a: lambda, b: 1 - lambda) of one pair. */
static int add_pair(mixture_list *l, int a, int b, const double *lambdas, int n_l) {
    mixture m = {"pairs", 2, {a, b}, {0}};
    for (int k = 0; k < n_l; k++) {
        m.lambda[0] = lambdas[k];
        m.lambda[1] = 1.0 - lambdas[k];
        if (push(l, &m))
            return 1;
    }
    return 0;
}

/* The given pair, or every pair of the selected tasks. */
static int add_pairs(mixture_list *l, const int *sel, int n_sel, const int *pair, const double *lambdas, int n_l) {
    if (pair)
        return add_pair(l, pair[0], pair[1], lambdas, n_l);
    for (int a = 0; a < n_sel; a++)
        for (int b = a + 1; b < n_sel; b++)
            if (add_pair(l, sel[a], sel[b], lambdas, n_l))
                return 1;
    return 0;
}

static double binomial(int n, int k) {
    double c = 1.0;
    for (int i = 1; i <= k; i++) c = c * (n - k + i) / i;
    return c;
}

/* Uniform mixtures of k = 2..max_k tasks: every k-subset of the selected
 * tasks when there are at most `cap` of them, else the n cyclic windows
 * {s, s+1, ..., s+k-1} (each task equally often). */
static int add_uniform(mixture_list *l, const int *sel, int n_sel, int max_k, int cap) {
    for (int k = 2; k <= max_k; k++) {
        mixture m = {"uniform", k, {0}, {0}};
        for (int j = 0; j < k; j++) m.lambda[j] = 1.0 / k;
        if (binomial(n_sel, k) > cap) {
            for (int s = 0; s < n_sel; s++) {
                for (int j = 0; j < k; j++) m.tasks[j] = sel[(s + j) % n_sel];
                if (push(l, &m))
                    return 1;
            }
            continue;
        }
        int idx[MAX_TASKS];
        for (int j = 0; j < k; j++) idx[j] = j;
        for (;;) {
            for (int j = 0; j < k; j++) m.tasks[j] = sel[idx[j]];
            if (push(l, &m))
                return 1;
            int j = k - 1;
            while (j >= 0 && idx[j] == n_sel - k + j) j--;
            if (j < 0)
                break;
            idx[j]++;
            for (int i = j + 1; i < k; i++) idx[i] = idx[i - 1] + 1;
        }
    }
    return 0;
}

static void join_tasks(const icl_task_family *f, const mixture *m, char *buf, size_t size) {
    size_t used = 0;
    buf[0] = '\0';
    for (int j = 0; j < m->K && used < size; j++)
        used += (size_t)snprintf(buf + used, size - used, "%s%s", j ? "+" : "", icl_task_family_task_name(f, m->tasks[j]));
}

/* Rows of one readout: one per task. */
static icl_status write_rows(icl_csv *csv, const icl_task_family *f, const mixture *mx, int index,
                             const icl_superposition_result *r, const char *readout, int level,
                             const icl_superposition_stats *st) {
    char tasks[512];
    join_tasks(f, mx, tasks, sizeof tasks);
    icl_status s = ICL_OK;
    for (int j = 0; j < r->K; j++)
        s = cli_csv_row(csv, cli_str(mx->sweep), cli_int(index), cli_int(r->K), cli_str(tasks), cli_str(readout),
                        cli_int(level), cli_str(icl_task_family_task_name(f, r->tasks[j])), cli_num(mx->lambda[j]),
                        cli_num(r->lambda[j]), cli_int(r->counts[j]), cli_num(st->mean[j]), cli_num(st->sd[j]),
                        cli_num(st->sorted[j]), cli_num(st->solved[j]), cli_num(st->other), cli_num(st->kl_raw),
                        cli_num(st->kl_renorm), cli_num(st->r), cli_num(st->pk_exact), cli_int(r->collisions),
                        cli_int(r->n));
    return s;
}

static const char *const csv_columns[] = {
    "sweep",  "mixture", "n_tasks", "tasks",  "readout", "level",       "task",   "lambda", "lambda_actual",
    "count",  "p_mean",  "p_sd",    "sorted_mean", "solved", "other", "kl_raw", "kl_renorm", "r",
    "pk_exact", "collisions", "n_prompts"};
#define N_COLUMNS ((int)(sizeof csv_columns / sizeof csv_columns[0]))

/* Per-sweep P arrays: (M, n, Kmax) and (M, levels, n, Kmax), NaN where a mixture has fewer tasks. */
typedef struct {
    const char *name;
    int M, Kmax;
    float *P, *lens_P;
} sweep_arrays;

static void store_P(sweep_arrays *sa, int i, const icl_superposition_result *r) {
    for (int p = 0; p < r->n; p++)
        for (int j = 0; j < r->K; j++) sa->P[((size_t)i * r->n + p) * sa->Kmax + j] = (float)r->P[(size_t)p * r->K + j];
    for (int l = 0; l < r->levels; l++)
        for (int p = 0; p < r->n; p++)
            for (int j = 0; j < r->K; j++)
                sa->lens_P[(((size_t)i * r->levels + l) * r->n + p) * sa->Kmax + j] =
                    (float)r->lens_P[((size_t)l * r->n + p) * r->K + j];
}

static void print_summary(const icl_task_family *f, const mixture *mx, const icl_superposition_result *r) {
    char tasks[512];
    join_tasks(f, mx, tasks, sizeof tasks);
    printf("%-8s %-28s lambda", mx->sweep, tasks);
    for (int j = 0; j < r->K; j++) printf(" %.3f", r->lambda[j]);
    printf("  P");
    for (int j = 0; j < r->K; j++) printf(" %.3f", r->out.mean[j]);
    printf("  other %.3f  KL %.3f/%.3f  r %.2f\n", r->out.other, r->out.kl_raw, r->out.kl_renorm, r->out.r);
}

static int write_npy(cli_outputs *o, const char *prefix, const char *sweep, int ndim, const size_t *shape,
                     const float *data) {
    char name[128];
    snprintf(name, sizeof name, "%s_%s.npy", prefix, sweep);
    icl_status s = icl_npy_write(cli_out_path(o, name), ICL_DTYPE_F32, ndim, shape, data);
    return s == ICL_OK ? 0 : cli_fail(o->path, s);
}

static int write_sweep_npys(cli_outputs *o, const mixture_list *l, const char *sweep, int n, int levels,
                            const icl_superposition_result *all) {
    sweep_arrays sa = {sweep, 0, 0, NULL, NULL};
    for (int i = 0; i < l->n; i++)
        if (strcmp(l->items[i].sweep, sweep) == 0) {
            sa.M++;
            if (l->items[i].K > sa.Kmax) sa.Kmax = l->items[i].K;
        }
    if (sa.M == 0)
        return 0;
    size_t np = (size_t)sa.M * n * sa.Kmax, nl = np * (size_t)levels;
    sa.P = malloc(np * sizeof *sa.P);
    sa.lens_P = malloc((nl ? nl : 1) * sizeof *sa.lens_P);
    if (!sa.P || !sa.lens_P) {
        free(sa.P);
        free(sa.lens_P);
        fprintf(stderr, "icl probe superposition: out of memory\n");
        return 1;
    }
    for (size_t i = 0; i < np; i++) sa.P[i] = NAN;
    for (size_t i = 0; i < nl; i++) sa.lens_P[i] = NAN;
    for (int i = 0, k = 0; i < l->n; i++)
        if (strcmp(l->items[i].sweep, sweep) == 0) store_P(&sa, k++, &all[i]);
    size_t shape[4] = {(size_t)sa.M, (size_t)n, (size_t)sa.Kmax, 0};
    size_t lshape[4] = {(size_t)sa.M, (size_t)levels, (size_t)n, (size_t)sa.Kmax};
    int rc = write_npy(o, "P", sweep, 3, shape, sa.P);
    if (rc == 0 && levels)
        rc = write_npy(o, "P_lens", sweep, 4, lshape, sa.lens_P);
    free(sa.P);
    free(sa.lens_P);
    return rc;
}

/* --save-inputs for one sweep: its prompts (regenerated as icl_superposition_run
 * drew them), every task's answer, the per-prompt p_(K) that defines "solved",
 * the actual proportions and the task ids, all in mixture order. */
static icl_status save_sweep(cli_probe *p, const mixture_list *l, const char *sweep, int n,
                             const icl_superposition_result *all) {
    int M = 0, Kmax = 0, A = 0, levels = 0;
    for (int i = 0; i < l->n; i++)
        if (strcmp(l->items[i].sweep, sweep) == 0) {
            M++;
            Kmax = l->items[i].K > Kmax ? l->items[i].K : Kmax;
            A = all[i].answer_len;
            levels = all[i].levels;
        }
    if (M == 0)
        return ICL_OK;
    size_t mn = (size_t)M * n, L1 = levels ? (size_t)levels : 1;
    icl_mixed_prompt *mp = calloc(mn, sizeof *mp);
    const icl_prompt **ptrs = malloc(mn * sizeof *ptrs);
    int32_t *answers = malloc(mn * Kmax * A * sizeof *answers), *exact = malloc(mn * L1 * sizeof *exact);
    int32_t *tasks = malloc((size_t)M * Kmax * sizeof *tasks);
    double *pK = malloc(mn * L1 * sizeof *pK), *lambda = malloc((size_t)M * Kmax * sizeof *lambda);
    icl_status s = mp && ptrs && answers && exact && tasks && pK && lambda ? ICL_OK : ICL_ERR_NOMEM;
    icl_rng rng;
    icl_rng_init(&rng, (uint64_t)p->seed, "superposition");
    for (int i = 0, m = 0; s == ICL_OK && i < l->n; i++) {
        const mixture *mx = &l->items[i];
        const icl_superposition_result *r = &all[i];
        if (strcmp(mx->sweep, sweep) != 0)
            continue;
        for (int j = 0; j < Kmax; j++) {
            tasks[(size_t)m * Kmax + j] = j < r->K ? r->tasks[j] : -1;
            lambda[(size_t)m * Kmax + j] = j < r->K ? r->lambda[j] : NAN;
        }
        for (int q = 0; s == ICL_OK && q < n; q++) {
            size_t at = (size_t)m * n + q;
            s = icl_superposition_prompt(p->model, p->family, mx->tasks, mx->lambda, mx->K, r->n_examples, &rng, q,
                                         &mp[at]);
            ptrs[at] = &mp[at].prompt;
            for (int j = 0; s == ICL_OK && j < Kmax; j++)
                for (int a = 0; a < A; a++)
                    answers[(at * Kmax + j) * A + a] = j < r->K ? mp[at].answers[(size_t)j * A + a] : -1;
            pK[at] = r->pK[q];
            exact[at] = r->pK_exact[q];
            for (int lv = 0; lv < levels; lv++) {
                pK[mn + ((size_t)m * levels + lv) * n + q] = r->lens_pK[(size_t)lv * n + q];
                exact[mn + ((size_t)m * levels + lv) * n + q] = r->lens_pK_exact[(size_t)lv * n + q];
            }
        }
        m++;
    }
    char name[128];
    size_t shape[4] = {(size_t)M, (size_t)n, (size_t)Kmax, (size_t)A}, lshape[3] = {(size_t)M, L1, (size_t)n};
    if (s == ICL_OK) {
        snprintf(name, sizeof name, "%s_", sweep);
        s = cli_save_prompts(p, name, NULL, ptrs, (int)mn);
    }
#define SAVE(what, call)                                          \
    if (s == ICL_OK) {                                            \
        snprintf(name, sizeof name, "%s_%s.npy", sweep, what);    \
        s = call;                                                 \
    }
    SAVE("answers_all", cli_save_array(p, name, ICL_DTYPE_I32, 4, shape, answers));
    SAVE("pK", cli_save_doubles(p, name, pK, 2, shape));
    SAVE("pK_exact", cli_save_array(p, name, ICL_DTYPE_I32, 2, shape, exact));
    SAVE("tasks", cli_save_array(p, name, ICL_DTYPE_I32, 2, (size_t[]){(size_t)M, (size_t)Kmax}, tasks));
    SAVE("lambda_actual", cli_save_doubles(p, name, lambda, 2, (size_t[]){(size_t)M, (size_t)Kmax}));
    if (levels) {
        SAVE("pK_lens", cli_save_doubles(p, name, pK + mn, 3, lshape));
        SAVE("pK_exact_lens", cli_save_array(p, name, ICL_DTYPE_I32, 3, lshape, exact + mn));
    }
#undef SAVE
    for (size_t i = 0; mp && i < mn; i++) icl_mixed_prompt_free(&mp[i]);
    free(mp);
    free(ptrs);
    free(answers);
    free(exact);
    free(tasks);
    free(pK);
    free(lambda);
    return s;
}

static int build_mixtures(cli_probe *p, const options *o, mixture_list *l) {
    const icl_task_family *f = p->family;
    int pair[2], n_pair = 0, n_l = 0;
    double lambdas[MAX_LAMBDAS];
    icl_status s;
    if (cli_probe_tasks(p, f, MAX_TASKS, 1))
        return 1;
    const int *sel = p->tasks;
    int n_sel = p->n_tasks;
    if (o->pair && (s = icl_task_family_parse_tasks(f, o->pair, pair, 2, &n_pair)) != ICL_OK)
        return cli_fail("--pair", s);
    if (o->pair && (n_pair != 2 || pair[0] == pair[1])) {
        fprintf(stderr, "icl probe superposition: --pair wants two different task names\n");
        return 1;
    }
    if (parse_lambdas(o->lambdas, lambdas, &n_l))
        return 1;
    if (n_sel < 2 && !o->no_uniform) {
        fprintf(stderr, "icl probe superposition: uniform mixtures need at least 2 tasks; --tasks selects %d\n", n_sel);
        return 1;
    }
    if (!o->no_pairs && add_pairs(l, sel, n_sel, o->pair ? pair : NULL, lambdas, n_l))
        return 1;
    int max_k = o->max_tasks > 0 && o->max_tasks < n_sel ? o->max_tasks : n_sel;
    if (!o->no_uniform && add_uniform(l, sel, n_sel, max_k, o->subsets))
        return 1;
    if (o->custom) {
        mixture m = {"custom", 0, {0}, {0}};
        if ((s = icl_superposition_parse_mixture(f, o->custom, m.tasks, m.lambda, MAX_TASKS, &m.K)) != ICL_OK)
            return cli_fail("--mixture", s);
        if (push(l, &m))
            return 1;
    }
    if (l->n == 0) {
        fprintf(stderr, "icl probe superposition: no mixtures to run\n");
        return 1;
    }
    int max_mix = 0;
    for (int i = 0; i < l->n; i++)
        if (l->items[i].K > max_mix) max_mix = l->items[i].K;
    if (icl_task_family_answer_len(f) > 1 && o->beam < max_mix) {
        fprintf(stderr, "icl probe superposition: --beam %d is narrower than the largest mixture (%d tasks)\n",
                o->beam, max_mix);
        return 1;
    }
    return 0;
}

static void record(cli_probe *p, const options *o) {
    icl_sidecar *sc = p->o.sc;
    icl_sidecar_set_string(sc, "tasks", p->tasks_list ? p->tasks_list : "all");
    icl_sidecar_set_string(sc, "pair", o->pair ? o->pair : "all pairs");
    icl_sidecar_set_string(sc, "lambdas", o->lambdas);
    icl_sidecar_set_string(sc, "mixture", o->custom ? o->custom : "");
    icl_sidecar_set_number(sc, "prompts", o->prompts);
    icl_sidecar_set_number(sc, "examples", o->examples);
    icl_sidecar_set_number(sc, "max_tasks", o->max_tasks);
    icl_sidecar_set_number(sc, "subsets", o->subsets);
    icl_sidecar_set_number(sc, "lens", o->lens);
    icl_sidecar_set_number(sc, "beam", o->beam);
    icl_sidecar_set_number(sc, "pairs", !o->no_pairs);
    icl_sidecar_set_number(sc, "uniform", !o->no_uniform);
    cli_sidecar_model_config(sc, p->model);
}

/* Every mixture of l: summaries printed, results into res (l->n), rows into superposition.csv. */
static int run_mixtures(cli_probe *p, const options *o, const mixture_list *l, icl_superposition_result *res) {
    const icl_task_family *f = p->family;
    int L = icl_model_config(p->model)->n_layer;
    icl_superposition_options so;
    so = icl_superposition_options_default();
    so.n_prompts = o->prompts;
    so.n_examples = o->examples;
    so.batch = o->batch;
    so.beam = o->beam;
    so.lens = o->lens;
    icl_rng rng;
    icl_rng_init(&rng, (uint64_t)p->seed, "superposition");
    icl_csv *csv;
    icl_status s = cli_table_create(&p->o, "superposition.csv", N_COLUMNS, csv_columns, &csv);
    if (s != ICL_OK)
        return cli_fail(p->o.path, s);
    for (int i = 0; i < l->n; i++) {
        const mixture *mx = &l->items[i];
        if ((s = icl_superposition_run(p->model, f, mx->tasks, mx->lambda, mx->K, &so, &rng, &res[i])) != ICL_OK) {
            icl_csv_abort(csv);
            return cli_fail("superposition", s);
        }
        print_summary(f, mx, &res[i]);
        s = write_rows(csv, f, mx, i, &res[i], "output", L, &res[i].out);
        for (int lv = 0; s == ICL_OK && lv < res[i].levels; lv++)
            s = write_rows(csv, f, mx, i, &res[i], "lens", lv, &res[i].lens[lv]);
        if (s != ICL_OK) {
            icl_csv_abort(csv);
            return cli_fail(p->o.path, s);
        }
    }
    return (s = icl_csv_close(csv)) == ICL_OK ? 0 : cli_fail(p->o.path, s);
}

static int run(cli_probe *p, void *user) {
    const options *o = user;
    mixture_list l = {NULL, 0, 0};
    icl_superposition_result *res = NULL;
    int rc = build_mixtures(p, o, &l), L = icl_model_config(p->model)->n_layer;
    if (rc == 0)
        rc = cli_probe_outputs(p, p->family);
    if (rc == 0 && !(res = calloc((size_t)l.n, sizeof *res))) {
        fprintf(stderr, "icl probe superposition: out of memory\n");
        rc = 1;
    }
    double t0 = cli_now();
    if (rc == 0) {
        record(p, o);
        rc = run_mixtures(p, o, &l, res);
    }
    const char *sweeps[] = {"pairs", "uniform", "custom"};
    for (int k = 0; rc == 0 && k < 3; k++)
        rc = write_sweep_npys(&p->o, &l, sweeps[k], o->prompts, o->lens ? L + 1 : 0, res);
    icl_status s;
    for (int k = 0; rc == 0 && p->save_inputs && k < 3; k++)
        if ((s = save_sweep(p, &l, sweeps[k], o->prompts, res)) != ICL_OK)
            rc = cli_fail("--save-inputs", s);
    if (rc == 0 && (s = cli_probe_write_sidecar(p)) != ICL_OK)
        rc = cli_fail(p->o.path, s);
    if (rc == 0)
        printf("%d mixtures x %d prompts in %.1f s; wrote %s/superposition.csv, P_*.npy, superposition.json\n", l.n,
               o->prompts, cli_now() - t0, p->out);
    for (int i = 0; res && i < l.n; i++) icl_superposition_result_free(&res[i]);
    free(res);
    free(l.items);
    return rc;
}

int probe_superposition(int argc, char **argv) {
    static const cli_probe_spec spec = {
        "superposition",
        "usage: icl probe superposition --model M.safetensors [--pair A,B] [--lens] [--out DIR]\n\n"
        "Probability of each task's answer on prompts mixing tasks in proportions lambda\n"
        "(Xiong et al.): other mass, KL(lambda||p) raw and renormalised, tasks solved r.",
        "comma-separated tasks to mix [all]", NULL, 1};
    options o = {.lambdas = "0,0.125,0.25,0.375,0.5,0.625,0.75,0.875,1",
                 .prompts = 100,
                 .examples = -1,
                 .subsets = 20,
                 .beam = 16,
                 .batch = 64};
    cli_option opts[] = {
        {"--pair", OPT_STRING, &o.pair, "lambda sweep of this pair only, e.g. ret_1,ret_2 [every pair]"},
        {"--lambdas", OPT_STRING, &o.lambdas, "proportions of the first task of a pair [0,0.125,...,1]"},
        {"--max-tasks", OPT_INT, &o.max_tasks, "uniform mixtures of 2..N tasks [all selected]"},
        {"--subsets", OPT_INT, &o.subsets, "most task subsets per size, else cyclic windows [20]"},
        {"--mixture", OPT_STRING, &o.custom, "one more mixture, e.g. ret_1=0.75,ret_2=0.25"},
        {"--no-pairs", OPT_FLAG, &o.no_pairs, "skip the 2-task lambda sweep"},
        {"--no-uniform", OPT_FLAG, &o.no_uniform, "skip the uniform mixtures"},
        {"--prompts", OPT_INT, &o.prompts, "mixed prompts per mixture [100]"},
        {"--examples", OPT_INT, &o.examples, "in-context examples per prompt [family default]"},
        {"--lens", OPT_FLAG, &o.lens, "also read every layer through the logit lens"},
        {"--beam", OPT_INT, &o.beam, "beam width for p_(K) with multi-token answers [16]"},
        {"--batch", OPT_INT, &o.batch, "prompts per forward pass [64]"},
    };
    return cli_probe_main(&spec, argc, argv, opts, sizeof opts / sizeof opts[0], run, &o);
}
