/* icl probe rsa: representational similarity analysis (Yousefi et al.) per
 * layer, 0-shot versus k-shot, against the same-task and same-answer
 * hypotheses (and the user's labels). */
#include <stdio.h>
#include <stdlib.h>
#include "icl_cli.h"

typedef struct {
    cli_site where;
    const char *shots_text, *labels_path;
    int prompts, n_perm, independent, layer;
} rsa_options;

static icl_status write_csvs(cli_outputs *o, const icl_task_family *f, const icl_rsa_result *r, int layer) {
    const char *cols[] = {"shots", "layer", "hypothesis", "rho", "p"};
    icl_csv *csv;
    CLI_TRY(cli_table_create(o, "rsa.csv", 5, cols, &csv));
    for (int c = 0; c < r->n_shots; c++)
        for (int h = 0; h < r->n_hyp; h++)
            for (int l = 0; l < r->levels; l++) {
                size_t at = ((size_t)c * r->n_hyp + h) * r->levels + l;
                cli_csv_row(csv, cli_int(r->shots[c]), cli_int(l), cli_str(r->hyp_names[h]), cli_num(r->rho[at]),
                            cli_num(r->p[at]));
            }
    CLI_TRY(icl_csv_close(csv));

    const char *scols[] = {"shots", "metric", "value"};
    CLI_TRY(cli_table_create(o, "score.csv", 3, scols, &csv));
    for (int c = 0; c < r->n_shots; c++)
        cli_csv_row(csv, cli_int(r->shots[c]),
                    cli_str(icl_task_family_mode(f) == ICL_MODE_TOKEN ? "accuracy" : "mse"), cli_num(r->score[c]));
    CLI_TRY(icl_csv_close(csv));

    /* the RSMs at one layer, long format, for the heatmap */
    const char *mcols[] = {"shots", "layer", "i", "j", "similarity"};
    CLI_TRY(cli_table_create(o, "rsm_layer.csv", 5, mcols, &csv));
    size_t n = (size_t)r->n;
    for (int c = 0; c < r->n_shots; c++)
        for (size_t i = 0; i < n; i++)
            for (size_t j = 0; j < n; j++)
                cli_csv_row(csv, cli_int(r->shots[c]), cli_int(layer), cli_int((int64_t)i), cli_int((int64_t)j),
                            cli_num(r->rsm[(((size_t)c * r->levels + layer) * n + i) * n + j]));
    return icl_csv_close(csv);
}

static icl_status write_npys(cli_outputs *o, const int *tasks, const icl_rsa_result *r) {
    size_t n = (size_t)r->n, shape[4] = {(size_t)r->n_shots, (size_t)r->levels, n, n};
    CLI_TRY(cli_write_doubles(o, "rsm.npy", r->rsm, 4, shape));
    float *same = malloc(n * n * sizeof *same);
    int32_t *ids = malloc(n * sizeof *ids);
    icl_status s = (same && ids) ? ICL_OK : ICL_ERR_NOMEM;
    if (s == ICL_OK) {
        for (size_t i = 0; i < n; i++)
            for (size_t j = 0; j < n; j++) same[i * n + j] = r->task_labels[i] == r->task_labels[j];
        s = icl_npy_write(cli_out_path(o, "hypothesis_task.npy"), ICL_DTYPE_F32, 2, shape + 2, same);
    }
    if (s == ICL_OK) {
        for (size_t i = 0; i < n; i++) ids[i] = tasks ? tasks[r->task_labels[i]] : r->task_labels[i];
        s = icl_npy_write(cli_out_path(o, "labels.npy"), ICL_DTYPE_I32, 1, &n, ids);
    }
    free(same);
    free(ids);
    return s;
}

/* --save-inputs: per condition c the prompts, their representations at the
 * site and the hypotheses' labels / values, prefixed "shots<k>_". */
static icl_status save_inputs(cli_probe *p, const icl_repr_prompts_options *po, const icl_rsa_options *ro,
                              const icl_repr_site *site) {
    icl_status s = ICL_OK;
    for (int c = 0; s == ICL_OK && c < ro->n_shots; c++) {
        icl_repr_prompts set;
        CLI_TRY(icl_rsa_condition_prompts(p->family, po, ro, c, &set));
        char prefix[32], name[64];
        snprintf(prefix, sizeof prefix, "shots%d_", ro->shots[c]);
        size_t n = (size_t)set.n;
        int32_t *ids = malloc(n * sizeof *ids);
        double *values = malloc(n * sizeof *values);
        icl_repr_set r = {0};
        int n_ids;
        s = ids && values ? cli_save_prompts(p, prefix, set.prompts, NULL, set.n) : ICL_ERR_NOMEM;
        if (s == ICL_OK && (s = icl_repr_collect(p->model, set.prompts, set.n, site, ICL_REPR_BATCH, &r)) == ICL_OK)
            s = cli_save_repr(p, prefix, &r);
        if (s == ICL_OK) {
            snprintf(name, sizeof name, "%slabels.npy", prefix);
            s = cli_save_array(p, name, ICL_DTYPE_I32, 1, &n, set.labels);
        }
        if (s == ICL_OK && icl_task_family_mode(p->family) == ICL_MODE_TOKEN) {
            snprintf(name, sizeof name, "%sanswer_ids.npy", prefix);
            if ((s = icl_repr_prompts_answer_ids(&set, ids, &n_ids)) == ICL_OK)
                s = cli_save_array(p, name, ICL_DTYPE_I32, 1, &n, ids);
        } else if (s == ICL_OK) {
            snprintf(name, sizeof name, "%sanswer_values.npy", prefix);
            if ((s = icl_repr_prompts_answer_values(&set, values)) == ICL_OK)
                s = cli_save_doubles(p, name, values, 1, &n);
        }
        icl_repr_set_free(&r);
        icl_repr_prompts_free(&set);
        free(ids);
        free(values);
    }
    return s;
}

/* The shot counts, tasks, site, labels and heatmap layer of the options;
 * prints the error and returns 1 when one is wrong. */
static int configure(cli_probe *p, rsa_options *a, icl_repr_prompts_options *po, icl_rsa_options *ro,
                     icl_repr_site *site, icl_array *labels) {
    icl_task_family *f = p->family;
    po->prompts_per_task = a->prompts;
    po->seed = (uint64_t)p->seed;
    ro->same_queries = !a->independent;
    ro->n_perm = a->n_perm;
    ro->keep_rsm = 1;
    ro->seed = (uint64_t)p->seed;
    if (a->shots_text && (ro->n_shots = cli_parse_counts(a->shots_text, ro->shots, ICL_RSA_MAX_SHOTS)) < 1) {
        fprintf(stderr, "icl probe rsa: --shots wants up to %d comma-separated counts, got \"%s\"\n",
                ICL_RSA_MAX_SHOTS, a->shots_text);
        return 1;
    }
    if (cli_probe_tasks(p, f, CLI_MAX_TASKS, 0))
        return 1;
    po->tasks = p->tasks;
    po->n_tasks = p->n_tasks;
    int min_shots = ro->shots[0], nt = p->tasks ? p->n_tasks : icl_task_family_num_tasks(f);
    for (int c = 1; c < ro->n_shots; c++)
        if (ro->shots[c] < min_shots) min_shots = ro->shots[c];
    if (cli_site_parse(&a->where, f, min_shots, site))
        return 1;
    if (a->labels_path) {
        icl_status s = icl_npy_read(a->labels_path, labels);
        if (s != ICL_OK)
            return cli_fail(a->labels_path, s);
        if (labels->dtype != ICL_DTYPE_I32 || labels->numel != (size_t)nt * a->prompts) {
            fprintf(stderr, "icl probe rsa: %s must hold %d int32 labels (tasks x prompts)\n", a->labels_path,
                    nt * a->prompts);
            return 1;
        }
        ro->labels = labels->data;
    }
    int L = icl_model_config(p->model)->n_layer;
    if (a->layer < 0)
        a->layer = L;
    if (a->layer > L) {
        fprintf(stderr, "icl probe rsa: --layer %d out of range [0, %d]\n", a->layer, L);
        return 1;
    }
    return 0;
}

static void print_summary(const icl_task_family *f, const icl_rsa_options *ro, const icl_rsa_result *r) {
    printf("RSA alignment (Spearman rho, permutation p) per layer; layer 0 = embeddings; %d prompts, %s\n", r->n,
           ro->same_queries ? "same queries at every shot count" : "independent prompts per shot count");
    for (int c = 0; c < r->n_shots; c++) {
        printf("%d-shot (%s %.3f):\n", r->shots[c], icl_task_family_mode(f) == ICL_MODE_TOKEN ? "accuracy" : "query mse",
               r->score[c]);
        for (int h = 0; h < r->n_hyp; h++) {
            printf("  %-7s", r->hyp_names[h]);
            for (int l = 0; l < r->levels; l++) {
                size_t at = ((size_t)c * r->n_hyp + h) * r->levels + l;
                printf("  L%d %6.3f (p %.3f)", l, r->rho[at], r->p[at]);
            }
            printf("\n");
        }
    }
}

static void record(icl_sidecar *sc, const rsa_options *a, const icl_rsa_options *ro, const icl_rsa_result *r) {
    icl_sidecar_set_number(sc, "prompts_per_task", a->prompts);
    double shots[ICL_RSA_MAX_SHOTS];
    for (int c = 0; c < r->n_shots; c++) shots[c] = r->shots[c];
    icl_sidecar_set_numbers(sc, "shots", shots, r->n_shots);
    icl_sidecar_set_number(sc, "same_queries", ro->same_queries);
    icl_sidecar_set_number(sc, "permutations", a->n_perm);
    cli_site_record(&a->where, sc, "all");
    icl_sidecar_set_number(sc, "heatmap_layer", a->layer);
    if (a->labels_path)
        icl_sidecar_set_string(sc, "labels", a->labels_path);
}

static int run(cli_probe *p, void *options) {
    rsa_options *a = options;
    const char *out = p->out;
    icl_repr_prompts_options po = icl_repr_prompts_options_default();
    icl_rsa_options ro = icl_rsa_options_default(p->family);
    icl_repr_site site;
    icl_array labels = {0};
    icl_rsa_result r = {0};
    icl_status s;
    int rc = configure(p, a, &po, &ro, &site, &labels);
    if (rc == 0)
        rc = cli_probe_outputs(p, p->family);
    if (rc == 0 && (s = icl_rsa_run(p->model, p->family, &po, &site, &ro, &r)) != ICL_OK)
        rc = cli_fail("rsa", s);
    if (rc == 0) {
        print_summary(p->family, &ro, &r);
        record(p->o.sc, a, &ro, &r);
    }
    if (rc == 0 && ((s = write_csvs(&p->o, p->family, &r, a->layer)) != ICL_OK ||
                    (s = write_npys(&p->o, po.tasks, &r)) != ICL_OK ||
                    (p->save_inputs && (s = save_inputs(p, &po, &ro, &site)) != ICL_OK) ||
                    (s = cli_probe_write_sidecar(p)) != ICL_OK))
        rc = cli_fail(out, s);
    if (rc == 0)
        printf("wrote %s/{rsa.csv,score.csv,rsm_layer.csv,rsm.npy,...}; plots: gnuplot -e \"in='%s/rsa.csv'; "
               "out='%s/rsa.png'\" scripts/plot_rsa.gp (plot='rsm' with in='%s/rsm_layer.csv' for the heatmap)\n",
               out, out, out, out);
    icl_array_free(&labels);
    icl_rsa_result_free(&r);
    return rc;
}

int probe_rsa(int argc, char **argv) {
    static const cli_probe_spec spec = {
        "rsa",
        "usage: icl probe rsa --model M.safetensors [options]\n\n"
        "RSA (Yousefi et al.): cosine similarity matrices of standardised residuals per layer,\n"
        "Spearman alignment with same-task / same-answer hypotheses, permutation p-values,\n"
        "at each number of in-context examples.",
        NULL, "seed of the prompts and permutations [1]", 1};
    rsa_options a = {.prompts = 50, .n_perm = 1000, .layer = -1};
    cli_option opts[] = {
        {"--prompts", OPT_INT, &a.prompts, "prompts per task [50]"},
        {"--shots", OPT_STRING, &a.shots_text, "comma-separated examples per prompt [0,<family default>]"},
        {"--independent", OPT_FLAG, &a.independent, "fresh prompts per shot count [same queries, fewer examples]"},
        {"--perm", OPT_INT, &a.n_perm, "permutations of the p-values [1000]"},
        CLI_SITE_OPTIONS(a.where, "query_sep; vector: query_input at 0 shots, else ex_answer", "all of them"),
        {"--labels", OPT_STRING, &a.labels_path, "int32 .npy of one label per prompt (task-major): extra hypothesis"},
        {"--layer", OPT_INT, &a.layer, "layer of the RSM heatmap CSV, 0..L [L]"},
    };
    return cli_probe_main(&spec, argc, argv, opts, sizeof opts / sizeof opts[0], run, &a);
}
