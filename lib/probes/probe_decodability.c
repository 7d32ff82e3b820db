/* Task decodability (Han et al.): leave-one-out k-NN on pooled residuals,
 * per level and task, pairwise at one level, optional PCA coordinates, and
 * over the periodic checkpoints of a training run. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "error.h"
#include "icl/checkpoint.h"
#include "icl/decodability.h"
#include "probe_internal.h"

icl_td_options icl_td_options_default(void) {
    icl_td_options o = {ICL_KNN_DEFAULT_K, -1, 0};
    return o;
}

void icl_td_result_free(icl_td_result *r) {
    if (!r)
        return;
    free(r->td);
    free(r->td_mean);
    free(r->pairwise);
    free(r->score);
    free(r->pca);
    free(r->pca_var);
    free(r->td_weighted);
    free(r->td_weighted_mean);
    memset(r, 0, sizeof *r);
}

static icl_status check_repr(const icl_repr_set *r, const int32_t *labels, int n_tasks, const char *fn) {
    if (!r || !labels || !r->X)
        return icl_fail(ICL_ERR_INVALID_ARG, "%s: NULL argument", fn);
    if (n_tasks < 2)
        return icl_fail(ICL_ERR_INVALID_ARG, "%s: decoding the task needs at least 2 tasks, got %d", fn, n_tasks);
    for (int i = 0; i < r->n; i++)
        if (labels[i] < 0 || labels[i] >= n_tasks)
            return icl_fail(ICL_ERR_INVALID_ARG, "%s: label %d of item %d outside [0, %d)", fn, labels[i], i, n_tasks);
    return ICL_OK;
}

/* PCA coordinates of every level into out->pca / pca_var. */
static icl_status td_pca(const icl_repr_set *r, icl_td_result *out) {
    int m = out->pca_dims, n = r->n, d = r->d;
    double *components = malloc((size_t)m * d * sizeof *components);
    out->pca = malloc((size_t)r->levels * n * m * sizeof *out->pca);
    out->pca_var = malloc((size_t)r->levels * m * sizeof *out->pca_var);
    icl_status s = (components && out->pca && out->pca_var) ? ICL_OK : icl_fail(ICL_ERR_NOMEM, "TD PCA: out of memory");
    for (int level = 0; s == ICL_OK && level < r->levels; level++)
        s = icl_pca(r->X + (size_t)level * n * d, n, d, m, components, out->pca_var + (size_t)level * m,
                    out->pca + (size_t)level * n * m);
    free(components);
    return s;
}

icl_status icl_td_from_repr(const icl_repr_set *r, const int32_t *labels, int n_tasks, const icl_td_options *opt,
                            icl_td_result *out) {
    if (!out)
        return icl_fail(ICL_ERR_INVALID_ARG, "icl_td_from_repr: out is NULL");
    memset(out, 0, sizeof *out);
    ICL_TRY(check_repr(r, labels, n_tasks, "icl_td_from_repr"));
    icl_td_options o = opt ? *opt : icl_td_options_default();
    if (o.k < 1 || o.k > r->n - 1)
        return icl_fail(ICL_ERR_INVALID_ARG, "k = %d neighbours needs 1 <= k <= items - 1 = %d", o.k, r->n - 1);
    if (o.pairwise_level < -1 || o.pairwise_level >= r->levels)
        return icl_fail(ICL_ERR_INVALID_ARG, "layer %d out of range [0, %d] (0 = embeddings, l = output of block l)",
                        o.pairwise_level, r->levels - 1);
    if (o.pca_dims < 0 || o.pca_dims > r->d || (o.pca_dims > 0 && r->n < 2))
        return icl_fail(ICL_ERR_INVALID_ARG, "PCA dimensions %d outside [0, %d]", o.pca_dims, r->d);
    int L1 = r->levels, n = r->n, d = r->d;
    out->levels = L1;
    out->n_tasks = n_tasks;
    out->n = n;
    out->pca_dims = o.pca_dims;
    out->td = malloc((size_t)L1 * n_tasks * sizeof *out->td);
    out->td_mean = malloc((size_t)L1 * sizeof *out->td_mean);
    out->td_weighted = malloc((size_t)L1 * n_tasks * sizeof *out->td_weighted);
    out->td_weighted_mean = malloc((size_t)L1 * sizeof *out->td_weighted_mean);
    out->pairwise = malloc((size_t)n_tasks * n_tasks * sizeof *out->pairwise);
    out->score = calloc((size_t)n_tasks, sizeof *out->score);
    int *count = calloc((size_t)n_tasks, sizeof *count);
    icl_status s = (out->td && out->td_mean && out->td_weighted && out->td_weighted_mean && out->pairwise && out->score && count)
                       ? ICL_OK
                       : icl_fail(ICL_ERR_NOMEM, "icl_td_from_repr: out of memory");
    for (int level = 0; s == ICL_OK && level < L1; level++) {
        const float *X = r->X + (size_t)level * n * d;
        if (icl_repr_items_identical(X, n, d)) {
            for (int t = 0; t < n_tasks; t++)
                out->td[(size_t)level * n_tasks + t] = out->td_weighted[(size_t)level * n_tasks + t] = NAN;
            out->td_mean[level] = out->td_weighted_mean[level] = NAN;
            continue;
        }
        s = icl_knn_decodability(X, labels, n, d, n_tasks, o.k, out->td + (size_t)level * n_tasks,
                                 &out->td_mean[level], NULL);
        if (s == ICL_OK)
            s = icl_knn_decodability_weighted(X, labels, n, d, n_tasks, o.k, out->td_weighted + (size_t)level * n_tasks,
                                              &out->td_weighted_mean[level], NULL);
    }
    if (s == ICL_OK) {
        out->best_level = -1;
        for (int level = 0; level < L1; level++)
            if (!isnan(out->td_mean[level]) &&
                (out->best_level < 0 || out->td_mean[level] > out->td_mean[out->best_level]))
                out->best_level = level;
        if (out->best_level < 0)
            s = icl_fail(ICL_ERR_INVALID_ARG,
                         "every item has the same representation at every level: nothing to decode");
    }
    if (s == ICL_OK) {
        out->pairwise_level = o.pairwise_level >= 0 ? o.pairwise_level : out->best_level;
        const float *X = r->X + (size_t)out->pairwise_level * n * d;
        if (icl_repr_items_identical(X, n, d))
            for (int a = 0; a < n_tasks; a++)
                for (int b = 0; b < n_tasks; b++) out->pairwise[(size_t)a * n_tasks + b] = a == b ? 1.0 : NAN;
        else
            s = icl_knn_pairwise(X, labels, n, d, n_tasks, o.k, out->pairwise);
    }
    if (s == ICL_OK && r->score) {
        for (int i = 0; i < n; i++) {
            out->score[labels[i]] += r->score[i];
            count[labels[i]]++;
        }
        for (int t = 0; t < n_tasks; t++) out->score[t] = count[t] ? out->score[t] / count[t] : NAN;
    }
    if (s == ICL_OK && o.pca_dims > 0)
        s = td_pca(r, out);
    free(count);
    if (s != ICL_OK)
        icl_td_result_free(out);
    return s;
}

icl_status icl_decodability_run(icl_model *m, const icl_task_family *f, const icl_repr_prompts_options *popt,
                                const icl_repr_site *site, const icl_td_options *topt, icl_td_result *out) {
    if (!m || !f || !popt || !out)
        return icl_fail(ICL_ERR_INVALID_ARG, "icl_decodability_run: NULL argument");
    memset(out, 0, sizeof *out);
    icl_repr_site st = site ? *site : icl_repr_site_default(f);
    icl_repr_prompts set;
    ICL_TRY(icl_repr_prompts_generate(f, popt, &set));
    icl_repr_set r;
    icl_status s = set.n_tasks < 2 ? icl_fail(ICL_ERR_INVALID_ARG, "task decodability needs at least 2 tasks")
                                   : icl_repr_collect(m, set.prompts, set.n, &st, ICL_REPR_BATCH, &r);
    if (s == ICL_OK) {
        s = icl_td_from_repr(&r, set.labels, set.n_tasks, topt, out);
        icl_repr_set_free(&r);
    }
    icl_repr_prompts_free(&set);
    return s;
}

void icl_td_curve_free(icl_td_curve *c) {
    if (!c)
        return;
    free(c->steps);
    free(c->td);
    free(c->td_mean);
    free(c->score);
    memset(c, 0, sizeof *c);
}

/* TD of one checkpoint into row `i` of the curve. */
static icl_status curve_row(const char *path, icl_backend_kind backend, const icl_repr_prompts *set,
                            const icl_repr_site *site, int k, icl_td_curve *c, int i) {
    icl_model *m;
    ICL_TRY(icl_checkpoint_load_model(path, backend, &m));
    const icl_config *cfg = icl_model_config(m);
    icl_status s = ICL_OK;
    if (cfg->n_layer + 1 != c->levels)
        s = icl_fail(ICL_ERR_CONFIG, "%s has %d layers, the first checkpoint %d", path, cfg->n_layer, c->levels - 1);
    icl_repr_set r;
    icl_td_result td;
    icl_td_options o = icl_td_options_default();
    o.k = k;
    if (s == ICL_OK && (s = icl_repr_collect(m, set->prompts, set->n, site, ICL_REPR_BATCH, &r)) == ICL_OK) {
        if ((s = icl_td_from_repr(&r, set->labels, set->n_tasks, &o, &td)) == ICL_OK) {
            memcpy(c->td + (size_t)i * c->levels * c->n_tasks, td.td, (size_t)c->levels * c->n_tasks * sizeof *td.td);
            memcpy(c->td_mean + (size_t)i * c->levels, td.td_mean, (size_t)c->levels * sizeof *td.td_mean);
            memcpy(c->score + (size_t)i * c->n_tasks, td.score, (size_t)c->n_tasks * sizeof *td.score);
            icl_td_result_free(&td);
        }
        icl_repr_set_free(&r);
    }
    icl_model_free(m);
    return s;
}

icl_status icl_decodability_curve_run(const icl_checkpoint_list *list, icl_backend_kind backend,
                                      const icl_task_family *f, const icl_repr_prompts_options *popt,
                                      const icl_repr_site *site, int k, icl_td_curve *out) {
    if (!list || !f || !popt || !out)
        return icl_fail(ICL_ERR_INVALID_ARG, "icl_decodability_curve_run: NULL argument");
    memset(out, 0, sizeof *out);
    if (list->n < 1)
        return icl_fail(ICL_ERR_INVALID_ARG, "icl_decodability_curve_run: no checkpoint");
    icl_config cfg;
    ICL_TRY(icl_checkpoint_read_config(list->paths[0], &cfg));
    icl_repr_site st = site ? *site : icl_repr_site_default(f);
    icl_repr_prompts set;
    ICL_TRY(icl_repr_prompts_generate(f, popt, &set));
    out->n_ckpt = list->n;
    out->levels = cfg.n_layer + 1;
    out->n_tasks = set.n_tasks;
    size_t cells = (size_t)out->n_ckpt * out->levels;
    out->steps = malloc((size_t)list->n * sizeof *out->steps);
    out->td = malloc(cells * set.n_tasks * sizeof *out->td);
    out->td_mean = malloc(cells * sizeof *out->td_mean);
    out->score = malloc((size_t)list->n * set.n_tasks * sizeof *out->score);
    icl_status s = (out->steps && out->td && out->td_mean && out->score)
                       ? ICL_OK
                       : icl_fail(ICL_ERR_NOMEM, "icl_decodability_curve_run: out of memory");
    if (s == ICL_OK && set.n_tasks < 2)
        s = icl_fail(ICL_ERR_INVALID_ARG, "task decodability needs at least 2 tasks");
    for (int i = 0; s == ICL_OK && i < list->n; i++) {
        out->steps[i] = list->steps[i];
        s = curve_row(list->paths[i], backend, &set, &st, k, out, i);
    }
    icl_repr_prompts_free(&set);
    if (s != ICL_OK)
        icl_td_curve_free(out);
    return s;
}
