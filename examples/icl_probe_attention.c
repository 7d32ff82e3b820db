/* icl probe attention: the share of the query position's attention on each
 * role and on the examples of each task, per layer and head, with
 * relevant / irrelevant ratios, 0-shot vs k-shot vs mixed prompts. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "icl/representations.h"
#include "icl_cli.h"

typedef struct {
    icl_csv *csv;
    icl_status s;
} rows;

static void row(rows *w, const char *cond, int shots, int layer, int head, const char *kind, const char *name,
                double value) {
    icl_status s = w->s;
    s = s ? s : icl_csv_string(w->csv, cond);
    s = s ? s : icl_csv_int(w->csv, shots);
    s = s ? s : icl_csv_int(w->csv, layer);
    s = s ? s : icl_csv_int(w->csv, head);
    s = s ? s : icl_csv_string(w->csv, kind);
    s = s ? s : icl_csv_string(w->csv, name);
    s = s ? s : icl_csv_number(w->csv, value);
    s = s ? s : icl_csv_end_row(w->csv);
    w->s = s;
}

/* Every statistic of every condition, long format; head -1 = the mean over heads. */
static icl_status write_csv(const char *path, const icl_task_family *f, const icl_attn_result *r) {
    const char *cols[] = {"condition", "shots", "layer", "head", "kind", "name", "value"};
    rows w = {NULL, ICL_OK};
    icl_status s = icl_csv_create(path, 7, cols, &w.csv);
    if (s != ICL_OK)
        return s;
    for (int c = 0; c < r->n_cond; c++) {
        const icl_attn_stats *st = &r->stats[c];
        int NH = st->n_head;
        size_t cells = (size_t)st->n_layer * (NH + 1);
        for (int l = 0; l < st->n_layer; l++)
            for (int h = 0; h <= NH; h++) {
                size_t cell = (size_t)l * (NH + 1) + h;
                int head = h == NH ? -1 : h;
                for (int ro = 0; ro < ICL_ROLE_COUNT; ro++)
                    row(&w, r->names[c], r->shots[c], l, head, "role", icl_role_name((icl_role)ro),
                        st->role[cell * ICL_ROLE_COUNT + ro]);
                for (int t = 0; t < st->n_tasks; t++)
                    row(&w, r->names[c], r->shots[c], l, head, "task", icl_task_family_task_name(f, t),
                        st->task[cell * st->n_tasks + t]);
                for (int k = 0; k < ICL_ATTN_RATIO_COUNT; k++) {
                    const char *name = icl_attn_ratio_name((icl_attn_ratio)k);
                    row(&w, r->names[c], r->shots[c], l, head, "relevant", name, st->relevant[k * cells + cell]);
                    row(&w, r->names[c], r->shots[c], l, head, "irrelevant", name, st->irrelevant[k * cells + cell]);
                    row(&w, r->names[c], r->shots[c], l, head, "ratio", name, st->ratio[k * cells + cell]);
                }
            }
        row(&w, r->names[c], r->shots[c], -1, -1, "score",
            icl_task_family_mode(f) == ICL_MODE_TOKEN ? "accuracy" : "mse", st->score);
    }
    if (w.s != ICL_OK) {
        icl_csv_abort(w.csv);
        return w.s;
    }
    return icl_csv_close(w.csv);
}

/* roles (n_cond, L, NH+1, ICL_ROLE_COUNT) and ratios (n_cond, ICL_ATTN_RATIO_COUNT, L, NH+1) as float32. */
static icl_status write_npys(const char *out, icl_sidecar *sc, const icl_attn_result *r) {
    const icl_attn_stats *s0 = &r->stats[0];
    size_t cells = (size_t)s0->n_layer * (s0->n_head + 1);
    size_t nr = cells * ICL_ROLE_COUNT, nq = cells * ICL_ATTN_RATIO_COUNT;
    float *buf = malloc((size_t)r->n_cond * (nr > nq ? nr : nq) * sizeof *buf);
    if (!buf)
        return ICL_ERR_NOMEM;
    char path[1024];
    for (int c = 0; c < r->n_cond; c++)
        for (size_t i = 0; i < nr; i++) buf[c * nr + i] = (float)r->stats[c].role[i];
    size_t shape[4] = {(size_t)r->n_cond, (size_t)s0->n_layer, (size_t)s0->n_head + 1, ICL_ROLE_COUNT};
    snprintf(path, sizeof path, "%s/attention_roles.npy", out);
    icl_status s = icl_npy_write(path, ICL_DTYPE_F32, 4, shape, buf);
    icl_sidecar_add_file(sc, "attention_roles.npy");
    for (int c = 0; c < r->n_cond; c++)
        for (size_t i = 0; i < nq; i++) buf[c * nq + i] = (float)r->stats[c].ratio[i];
    size_t qshape[4] = {(size_t)r->n_cond, ICL_ATTN_RATIO_COUNT, (size_t)s0->n_layer, (size_t)s0->n_head + 1};
    snprintf(path, sizeof path, "%s/attention_ratios.npy", out);
    if (s == ICL_OK)
        s = icl_npy_write(path, ICL_DTYPE_F32, 4, qshape, buf);
    icl_sidecar_add_file(sc, "attention_ratios.npy");
    free(buf);
    return s;
}

static void print_summary(const icl_task_family *f, const icl_attn_result *r) {
    const icl_attn_stats *s0 = &r->stats[0];
    int L = s0->n_layer, NH = s0->n_head;
    size_t cells = (size_t)L * (NH + 1);
    printf("attention from the query position, mean over heads; share of attention per role\n");
    for (int c = 0; c < r->n_cond; c++) {
        const icl_attn_stats *st = &r->stats[c];
        printf("%s (%d examples, %ld prompts, %s %.3f)\n", r->names[c], r->shots[c], st->rows,
               icl_task_family_mode(f) == ICL_MODE_TOKEN ? "accuracy" : "query mse", st->score);
        for (int l = 0; l < L; l++) {
            size_t cell = (size_t)l * (NH + 1) + NH;
            printf("  layer %d:", l);
            for (int ro = 0; ro < ICL_ROLE_COUNT; ro++) {
                double v = st->role[cell * ICL_ROLE_COUNT + ro];
                if (v >= 0.005)
                    printf(" %s %.2f", icl_role_name((icl_role)ro), v);
            }
            printf(" | ratios:");
            for (int k = 0; k < ICL_ATTN_RATIO_COUNT; k++)
                if (st->ratio_rows[k] > 0)
                    printf(" %s %.3f", icl_attn_ratio_name((icl_attn_ratio)k), st->ratio[k * cells + cell]);
            printf("\n");
        }
    }
}

int probe_attention(int argc, char **argv) {
    const char *from_role = NULL;
    int prompts = 50, examples = -1, from_nth = 0, batch = ICL_REPR_BATCH;
    float mix = 0.75f;
    cli_option opts[] = {
        {"--prompts", OPT_INT, &prompts, "prompts per task and condition [50]"},
        {"--examples", OPT_INT, &examples, "examples of the k-shot and mixed prompts [family default]"},
        {"--mix", OPT_FLOAT, &mix, "dominant task's share of the mixed prompts, 0 = no mixed prompts [0.75]"},
        {"--from-role", OPT_STRING, &from_role, "attending position's role [query_sep; vector: query_input]"},
        {"--from-nth", OPT_INT, &from_nth, "occurrence of that role, 0 first, -1 last [0]"},
        {"--batch", OPT_INT, &batch, "prompts per forward pass [64]"},
    };
    cli_probe p = {.out = "out/probe-attention", .seed = 1};
    int rc;
    if (!cli_probe_begin(&p, argc, argv, opts, sizeof opts / sizeof opts[0],
                         "usage: icl probe attention --model M.safetensors [options]\n\n"
                         "Attention to roles (Yousefi et al.): share of the query position's attention on each role\n"
                         "and on each task's examples, per layer and head, and relevant/irrelevant ratios;\n"
                         "0-shot vs k-shot on the same queries, and mixed-task prompts.",
                         &rc))
        return rc;
    icl_model *m = p.model;
    icl_task_family *f = p.family;
    const char *out = p.out;
    int result = 1, task_ids[256], n_ids = 0;
    icl_status s = ICL_OK;
    const char *what = "attention";
    icl_attn_result r = {0};
    icl_sidecar *sc = NULL;
    icl_attn_options o = icl_attn_options_default(f);
    o.prompts.prompts_per_task = prompts;
    o.prompts.n_examples = examples;
    o.prompts.seed = (uint64_t)p.seed;
    o.mix_lambda = mix;
    o.batch = batch;
    if (p.tasks_list && (s = icl_task_family_parse_tasks(f, p.tasks_list, task_ids, 256, &n_ids)) != ICL_OK) {
        what = "--tasks";
        goto done;
    }
    o.prompts.tasks = p.tasks_list ? task_ids : NULL;
    o.prompts.n_tasks = n_ids;
    if (from_role) {
        int role;
        if ((s = icl_role_parse(from_role, &role)) != ICL_OK) {
            what = "--from-role";
            goto done;
        }
        o.from = icl_pos_role_nth(role, from_nth);
    }
    if (cli_make_dir(out))
        goto done;
    if ((s = icl_attention_run(m, f, &o, &r)) != ICL_OK)
        goto done;
    print_summary(f, &r);
    if ((s = icl_sidecar_create("attention", (uint64_t)p.seed, &sc)) != ICL_OK)
        goto done;
    icl_sidecar_set_string(sc, "model", p.model_path);
    icl_sidecar_set_string(sc, "task", icl_task_family_spec(f));
    icl_sidecar_set_number(sc, "prompts_per_task", prompts);
    icl_sidecar_set_number(sc, "examples", r.shots[1]);
    icl_sidecar_set_number(sc, "mix_lambda", mix);
    icl_sidecar_set_string(sc, "from_role", icl_role_name((icl_role)o.from.role));
    icl_sidecar_set_number(sc, "from_nth", o.from.nth);
    char path[1024];
    snprintf(path, sizeof path, "%s/attention.csv", out);
    what = path;
    if ((s = write_csv(path, f, &r)) != ICL_OK)
        goto done;
    icl_sidecar_add_file(sc, "attention.csv");
    if ((s = write_npys(out, sc, &r)) != ICL_OK)
        goto done;
    snprintf(path, sizeof path, "%s/attention.json", out);
    if ((s = icl_sidecar_write(sc, path)) != ICL_OK)
        goto done;
    printf("wrote %s/{attention.csv,attention_roles.npy,attention_ratios.npy}; plots: gnuplot -e "
           "\"in='%s/attention.csv'; out='%s/attention.png'\" scripts/plot_attention.gp (plot='roles' for role "
           "shares)\n",
           out, out, out);
    result = 0;
done:
    if (s != ICL_OK)
        cli_fail(what, s);
    icl_sidecar_free(sc);
    icl_attn_result_free(&r);
    cli_probe_end(&p);
    return result;
}
