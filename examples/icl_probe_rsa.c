/* icl probe rsa: representational similarity analysis (Yousefi et al.) per
 * layer, 0-shot versus k-shot, against the same-task and same-answer
 * hypotheses (and the user's labels). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "icl/representations.h"
#include "icl_cli.h"

/* Comma-separated non-negative integers into v (at most cap); -1 on bad input. */
static int parse_list(const char *text, int *v, int cap) {
    int n = 0;
    const char *p = text;
    while (*p) {
        char *end;
        long x = strtol(p, &end, 10);
        if (end == p || x < 0 || x > 100000 || n == cap || (*end != ',' && *end != '\0'))
            return -1;
        v[n++] = (int)x;
        p = *end == ',' ? end + 1 : end;
    }
    return n;
}

static icl_status write_csvs(const char *out, icl_sidecar *sc, const icl_task_family *f, const icl_rsa_result *r,
                             int layer) {
    char path[1024];
    const char *cols[] = {"shots", "layer", "hypothesis", "rho", "p"};
    icl_csv *csv;
    snprintf(path, sizeof path, "%s/rsa.csv", out);
    icl_status s = icl_csv_create(path, 5, cols, &csv);
    if (s != ICL_OK)
        return s;
    icl_sidecar_add_file(sc, "rsa.csv");
    for (int c = 0; c < r->n_shots; c++)
        for (int h = 0; h < r->n_hyp; h++)
            for (int l = 0; l < r->levels; l++) {
                size_t at = ((size_t)c * r->n_hyp + h) * r->levels + l;
                s = s ? s : icl_csv_int(csv, r->shots[c]);
                s = s ? s : icl_csv_int(csv, l);
                s = s ? s : icl_csv_string(csv, r->hyp_names[h]);
                s = s ? s : icl_csv_number(csv, r->rho[at]);
                s = s ? s : icl_csv_number(csv, r->p[at]);
                s = s ? s : icl_csv_end_row(csv);
            }
    if (s != ICL_OK) {
        icl_csv_abort(csv);
        return s;
    }
    if ((s = icl_csv_close(csv)) != ICL_OK)
        return s;

    const char *scols[] = {"shots", "metric", "value"};
    snprintf(path, sizeof path, "%s/score.csv", out);
    if ((s = icl_csv_create(path, 3, scols, &csv)) != ICL_OK)
        return s;
    icl_sidecar_add_file(sc, "score.csv");
    for (int c = 0; c < r->n_shots; c++) {
        s = s ? s : icl_csv_int(csv, r->shots[c]);
        s = s ? s : icl_csv_string(csv, icl_task_family_mode(f) == ICL_MODE_TOKEN ? "accuracy" : "mse");
        s = s ? s : icl_csv_number(csv, r->score[c]);
        s = s ? s : icl_csv_end_row(csv);
    }
    if (s != ICL_OK) {
        icl_csv_abort(csv);
        return s;
    }
    if ((s = icl_csv_close(csv)) != ICL_OK)
        return s;

    /* the RSMs at one layer, long format, for the heatmap */
    const char *mcols[] = {"shots", "layer", "i", "j", "similarity"};
    snprintf(path, sizeof path, "%s/rsm_layer.csv", out);
    if ((s = icl_csv_create(path, 5, mcols, &csv)) != ICL_OK)
        return s;
    icl_sidecar_add_file(sc, "rsm_layer.csv");
    size_t n = (size_t)r->n;
    for (int c = 0; c < r->n_shots; c++)
        for (size_t i = 0; i < n; i++)
            for (size_t j = 0; j < n; j++) {
                s = s ? s : icl_csv_int(csv, r->shots[c]);
                s = s ? s : icl_csv_int(csv, layer);
                s = s ? s : icl_csv_int(csv, (int64_t)i);
                s = s ? s : icl_csv_int(csv, (int64_t)j);
                s = s ? s : icl_csv_number(csv, r->rsm[(((size_t)c * r->levels + layer) * n + i) * n + j]);
                s = s ? s : icl_csv_end_row(csv);
            }
    if (s != ICL_OK) {
        icl_csv_abort(csv);
        return s;
    }
    return icl_csv_close(csv);
}

static icl_status write_npys(const char *out, icl_sidecar *sc, const int *tasks, const icl_rsa_result *r) {
    char path[1024];
    size_t n = (size_t)r->n, total = (size_t)r->n_shots * r->levels * n * n;
    float *buf = malloc((total > n * n ? total : n * n) * sizeof *buf);
    int32_t *ids = malloc(n * sizeof *ids);
    icl_status s = (buf && ids) ? ICL_OK : ICL_ERR_NOMEM;
    if (s == ICL_OK) {
        for (size_t i = 0; i < total; i++) buf[i] = (float)r->rsm[i];
        size_t shape[4] = {(size_t)r->n_shots, (size_t)r->levels, n, n};
        snprintf(path, sizeof path, "%s/rsm.npy", out);
        s = icl_npy_write(path, ICL_DTYPE_F32, 4, shape, buf);
        icl_sidecar_add_file(sc, "rsm.npy");
    }
    if (s == ICL_OK) {
        for (size_t i = 0; i < n; i++)
            for (size_t j = 0; j < n; j++) buf[i * n + j] = r->task_labels[i] == r->task_labels[j];
        size_t shape[2] = {n, n};
        snprintf(path, sizeof path, "%s/hypothesis_task.npy", out);
        s = icl_npy_write(path, ICL_DTYPE_F32, 2, shape, buf);
        icl_sidecar_add_file(sc, "hypothesis_task.npy");
    }
    if (s == ICL_OK) {
        for (size_t i = 0; i < n; i++) ids[i] = tasks ? tasks[r->task_labels[i]] : r->task_labels[i];
        snprintf(path, sizeof path, "%s/labels.npy", out);
        s = icl_npy_write(path, ICL_DTYPE_I32, 1, &n, ids);
        icl_sidecar_add_file(sc, "labels.npy");
    }
    free(buf);
    free(ids);
    return s;
}

int probe_rsa(int argc, char **argv) {
    cli_site where = {0};
    const char *shots_text = NULL, *labels_path = NULL;
    int prompts = 50, n_perm = 1000, independent = 0, layer = -1;
    cli_option opts[] = {
        {"--prompts", OPT_INT, &prompts, "prompts per task [50]"},
        {"--shots", OPT_STRING, &shots_text, "comma-separated examples per prompt [0,<family default>]"},
        {"--independent", OPT_FLAG, &independent, "fresh prompts per shot count [same queries, fewer examples]"},
        {"--perm", OPT_INT, &n_perm, "permutations of the p-values [1000]"},
        CLI_SITE_OPTIONS(where, "query_sep; vector: query_input at 0 shots, else ex_answer", "all of them"),
        {"--labels", OPT_STRING, &labels_path, "int32 .npy of one label per prompt (task-major): extra hypothesis"},
        {"--layer", OPT_INT, &layer, "layer of the RSM heatmap CSV, 0..L [L]"},
    };
    cli_probe p = {.out = "out/probe-rsa", .seed = 1, .seed_help = "seed of the prompts and permutations [1]"};
    int rc;
    if (!cli_probe_begin(&p, argc, argv, opts, sizeof opts / sizeof opts[0],
                         "usage: icl probe rsa --model M.safetensors [options]\n\n"
                         "RSA (Yousefi et al.): cosine similarity matrices of standardised residuals per layer,\n"
                         "Spearman alignment with same-task / same-answer hypotheses, permutation p-values,\n"
                         "at each number of in-context examples.",
                         &rc))
        return rc;
    icl_model *m = p.model;
    icl_task_family *f = p.family;
    const char *out = p.out;
    int result = 1, task_ids[256], n_ids = 0;
    icl_status s = ICL_OK;
    const char *what = "rsa";
    icl_rsa_result r = {0};
    icl_array labels = {0};
    icl_sidecar *sc = NULL;
    icl_repr_prompts_options po = icl_repr_prompts_options_default();
    po.prompts_per_task = prompts;
    po.seed = (uint64_t)p.seed;
    icl_rsa_options ro = icl_rsa_options_default(f);
    ro.same_queries = !independent;
    ro.n_perm = n_perm;
    ro.keep_rsm = 1;
    ro.seed = (uint64_t)p.seed;
    if (shots_text && (ro.n_shots = parse_list(shots_text, ro.shots, ICL_RSA_MAX_SHOTS)) < 1) {
        fprintf(stderr, "icl probe rsa: --shots wants up to %d comma-separated counts, got \"%s\"\n",
                ICL_RSA_MAX_SHOTS, shots_text);
        goto done;
    }
    if (p.tasks_list && (s = icl_task_family_parse_tasks(f, p.tasks_list, task_ids, 256, &n_ids)) != ICL_OK) {
        what = "--tasks";
        goto done;
    }
    po.tasks = p.tasks_list ? task_ids : NULL;
    po.n_tasks = n_ids;
    int min_shots = ro.shots[0], nt = p.tasks_list ? n_ids : icl_task_family_num_tasks(f);
    for (int c = 1; c < ro.n_shots; c++)
        if (ro.shots[c] < min_shots) min_shots = ro.shots[c];
    icl_repr_site site;
    if ((s = icl_repr_site_parse(f, where.role, where.nth, where.pool, min_shots, &site)) != ICL_OK) {
        what = "representation site";
        goto done;
    }
    if (labels_path) {
        what = labels_path;
        if ((s = icl_npy_read(labels_path, &labels)) != ICL_OK)
            goto done;
        if (labels.dtype != ICL_DTYPE_I32 || labels.numel != (size_t)nt * prompts) {
            fprintf(stderr, "icl probe rsa: %s must hold %d int32 labels (tasks x prompts)\n", labels_path,
                    nt * prompts);
            goto done;
        }
        ro.labels = labels.data;
    }
    int L = icl_model_config(m)->n_layer;
    if (layer < 0)
        layer = L;
    if (layer > L) {
        fprintf(stderr, "icl probe rsa: --layer %d out of range [0, %d]\n", layer, L);
        goto done;
    }
    if (cli_make_dir(out))
        goto done;
    what = "rsa";
    if ((s = icl_rsa_run(m, f, &po, &site, &ro, &r)) != ICL_OK)
        goto done;
    printf("RSA alignment (Spearman rho, permutation p) per layer; layer 0 = embeddings; %d prompts, %s\n", r.n,
           ro.same_queries ? "same queries at every shot count" : "independent prompts per shot count");
    for (int c = 0; c < r.n_shots; c++) {
        printf("%d-shot (%s %.3f):\n", r.shots[c], icl_task_family_mode(f) == ICL_MODE_TOKEN ? "accuracy" : "query mse",
               r.score[c]);
        for (int h = 0; h < r.n_hyp; h++) {
            printf("  %-7s", r.hyp_names[h]);
            for (int l = 0; l < r.levels; l++) {
                size_t at = ((size_t)c * r.n_hyp + h) * r.levels + l;
                printf("  L%d %6.3f (p %.3f)", l, r.rho[at], r.p[at]);
            }
            printf("\n");
        }
    }
    if ((s = icl_sidecar_create("rsa", (uint64_t)p.seed, &sc)) != ICL_OK)
        goto done;
    icl_sidecar_set_string(sc, "model", p.model_path);
    icl_sidecar_set_string(sc, "task", icl_task_family_spec(f));
    icl_sidecar_set_number(sc, "prompts_per_task", prompts);
    double shots_d[ICL_RSA_MAX_SHOTS];
    for (int c = 0; c < r.n_shots; c++) shots_d[c] = r.shots[c];
    icl_sidecar_set_numbers(sc, "shots", shots_d, r.n_shots);
    icl_sidecar_set_number(sc, "same_queries", ro.same_queries);
    icl_sidecar_set_number(sc, "permutations", n_perm);
    cli_site_record(&where, sc, "all");
    icl_sidecar_set_number(sc, "heatmap_layer", layer);
    if (labels_path)
        icl_sidecar_set_string(sc, "labels", labels_path);
    what = out;
    if ((s = write_csvs(out, sc, f, &r, layer)) != ICL_OK || (s = write_npys(out, sc, po.tasks, &r)) != ICL_OK)
        goto done;
    char path[1024];
    snprintf(path, sizeof path, "%s/rsa.json", out);
    if ((s = icl_sidecar_write(sc, path)) != ICL_OK)
        goto done;
    printf("wrote %s/{rsa.csv,score.csv,rsm_layer.csv,rsm.npy,...}; plots: gnuplot -e \"in='%s/rsa.csv'; "
           "out='%s/rsa.png'\" scripts/plot_rsa.gp (plot='rsm' with in='%s/rsm_layer.csv' for the heatmap)\n",
           out, out, out, out);
    result = 0;
done:
    if (s != ICL_OK)
        cli_fail(what, s);
    icl_sidecar_free(sc);
    icl_array_free(&labels);
    icl_rsa_result_free(&r);
    cli_probe_end(&p);
    return result;
}
