/* RSA (Yousefi et al.): per-level representational similarity matrices of
 * pooled residuals, their Spearman alignment with hypothesis matrices and a
 * permutation p-value, at several numbers of in-context examples. */
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include "error.h"
#include "icl/rsa.h"
#include "probe_internal.h"

icl_rsa_options icl_rsa_options_default(const icl_task_family *f) {
    icl_rsa_options o;
    memset(&o, 0, sizeof o);
    o.shots[0] = 0;
    o.shots[1] = f ? icl_task_family_default_examples(f) : 8;
    o.n_shots = 2;
    o.same_queries = 1;
    o.n_perm = 1000;
    o.keep_rsm = 0;
    o.labels = NULL;
    o.seed = 1;
    return o;
}

void icl_rsa_result_free(icl_rsa_result *r) {
    if (!r)
        return;
    free(r->shots);
    free(r->rho);
    free(r->p);
    free(r->score);
    free(r->task_labels);
    free(r->rsm);
    memset(r, 0, sizeof *r);
}

/* Centred average ranks (m) of the strict upper triangle of M (n,n), row by
 * row, and their sum of squares. */
static icl_status centred_triangle_ranks(const double *M, int n, double *tri, double *ranks, double *ss) {
    size_t m = (size_t)n * (n - 1) / 2, k = 0;
    for (int a = 0; a < n; a++)
        for (int b = a + 1; b < n; b++) tri[k++] = M[(size_t)a * n + b];
    ICL_TRY(icl_rank_average(tri, (int)m, ranks));
    double mean = 0.0;
    for (k = 0; k < m; k++) mean += ranks[k];
    mean /= (double)m;
    *ss = 0.0;
    for (k = 0; k < m; k++) {
        ranks[k] -= mean;
        *ss += ranks[k] * ranks[k];
    }
    return ICL_OK;
}

/* Spearman of S with a value hypothesis and its permutation p-value. The
 * hypothesis of permuted items is the original one with rows and columns
 * permuted, so its triangle holds the same ranks, moved: each permutation is
 * one pass over the pairs with the ranks computed once. */
static icl_status value_test(const double *S, const double *values, int n, int n_perm, icl_rng *rng, double *rho,
                             double *p) {
    size_t m = (size_t)n * (n - 1) / 2;
    double *H = malloc((size_t)n * n * sizeof *H), *tri = malloc(m * sizeof *tri);
    double *rs = malloc(m * sizeof *rs), *rh = malloc(m * sizeof *rh);
    double *rh_full = malloc((size_t)n * n * sizeof *rh_full);
    int *perm = malloc((size_t)n * sizeof *perm);
    icl_status s = (H && tri && rs && rh && rh_full && perm) ? ICL_OK : icl_fail(ICL_ERR_NOMEM, "RSA: out of memory");
    double ss_s = 0.0, ss_h = 0.0;
    if (s == ICL_OK)
        s = icl_rsa_hypothesis_values(values, n, H);
    if (s == ICL_OK)
        s = icl_rsa_alignment(S, H, n, rho);
    if (s == ICL_OK)
        s = centred_triangle_ranks(S, n, tri, rs, &ss_s);
    if (s == ICL_OK)
        s = centred_triangle_ranks(H, n, tri, rh, &ss_h);
    if (s == ICL_OK && (isnan(*rho) || ss_s == 0.0 || ss_h == 0.0)) {
        *rho = NAN;
        *p = NAN;
    } else if (s == ICL_OK) {
        size_t k = 0;
        for (int a = 0; a < n; a++) {
            rh_full[(size_t)a * n + a] = 0.0;
            for (int b = a + 1; b < n; b++, k++) rh_full[(size_t)a * n + b] = rh_full[(size_t)b * n + a] = rh[k];
        }
        double norm = sqrt(ss_s * ss_h);
        for (int a = 0; a < n; a++) perm[a] = a;
        int at_least = 0;
        for (int i = 0; i < n_perm; i++) {
            icl_rng_shuffle_int(rng, perm, n);
            double acc = 0.0;
            k = 0;
            for (int a = 0; a < n; a++) {
                const double *row = rh_full + (size_t)perm[a] * n;
                for (int b = a + 1; b < n; b++, k++) acc += rs[k] * row[perm[b]];
            }
            at_least += acc / norm >= *rho - 1e-12;
        }
        *p = (1.0 + at_least) / (1.0 + n_perm);
    }
    free(H);
    free(tri);
    free(rs);
    free(rh);
    free(rh_full);
    free(perm);
    return s;
}

icl_status icl_rsa_levels(const icl_repr_set *r, const icl_rsa_hypothesis *hyp, int n_hyp, int n_perm, icl_rng *rng,
                          double *rho, double *p, double *rsm) {
    if (!r || !r->X || !hyp || !rng || !rho || !p)
        return icl_fail(ICL_ERR_INVALID_ARG, "icl_rsa_levels: NULL argument");
    if (n_hyp < 1 || n_perm < 1 || r->n < 3)
        return icl_fail(ICL_ERR_INVALID_ARG,
                        "icl_rsa_levels: need a hypothesis, n_perm >= 1 and >= 3 items (got %d, %d, %d)",
                        n_hyp, n_perm, r->n);
    for (int h = 0; h < n_hyp; h++)
        if (!hyp[h].labels == !hyp[h].values)
            return icl_fail(ICL_ERR_INVALID_ARG, "RSA hypothesis %d (%s) needs exactly one of labels and values", h,
                            hyp[h].name ? hyp[h].name : "unnamed");
    int n = r->n;
    double *S = rsm ? NULL : malloc((size_t)n * n * sizeof *S);
    if (!rsm && !S)
        return icl_fail(ICL_ERR_NOMEM, "icl_rsa_levels: out of memory for a %d x %d matrix", n, n);
    icl_status s = ICL_OK;
    for (int level = 0; s == ICL_OK && level < r->levels; level++) {
        double *Sl = rsm ? rsm + (size_t)level * n * n : S;
        const float *X = r->X + (size_t)level * n * r->d;
        s = icl_rsa_rsm(X, n, r->d, Sl);
        int identical = icl_repr_items_identical(X, n, r->d);
        for (int h = 0; s == ICL_OK && h < n_hyp; h++) {
            /* one stream per (hypothesis, level): results do not depend on which others are computed */
            icl_rng child;
            icl_rng_split(&child, rng, (uint64_t)h * (uint64_t)r->levels + (uint64_t)level);
            size_t at = (size_t)h * r->levels + level;
            if (identical)
                rho[at] = p[at] = NAN;
            else if (hyp[h].labels)
                s = icl_rsa_permutation_test(Sl, hyp[h].labels, n, n_perm, &child, &rho[at], &p[at]);
            else
                s = value_test(Sl, hyp[h].values, n, n_perm, &child, &rho[at], &p[at]);
        }
    }
    free(S);
    return s;
}

/* The site of the RSA: the caller's, or the default one that exists at every shot count. */
static icl_status rsa_site(const icl_task_family *f, const icl_repr_site *site, const icl_rsa_options *o,
                           icl_repr_site *out) {
    if (site) {
        *out = *site;
        return ICL_OK;
    }
    int min_shots = o->shots[0];
    for (int c = 1; c < o->n_shots; c++)
        if (o->shots[c] < min_shots) min_shots = o->shots[c];
    return icl_repr_site_parse(f, NULL, NULL, NULL, min_shots, out);
}

static icl_status check_rsa_options(const icl_rsa_options *o) {
    if (o->n_shots < 1 || o->n_shots > ICL_RSA_MAX_SHOTS)
        return icl_fail(ICL_ERR_INVALID_ARG, "RSA: between 1 and %d shot counts, got %d", ICL_RSA_MAX_SHOTS,
                        o->n_shots);
    for (int c = 0; c < o->n_shots; c++)
        if (o->shots[c] < 0)
            return icl_fail(ICL_ERR_INVALID_ARG, "RSA: shot count %d is negative", o->shots[c]);
    if (o->n_perm < 1)
        return icl_fail(ICL_ERR_INVALID_ARG, "RSA: n_perm must be >= 1, got %d", o->n_perm);
    return ICL_OK;
}

icl_status icl_rsa_condition_prompts(const icl_task_family *f, const icl_repr_prompts_options *popt,
                                     const icl_rsa_options *ropt, int c, icl_repr_prompts *out) {
    if (!f || !popt || !ropt || !out)
        return icl_fail(ICL_ERR_INVALID_ARG, "icl_rsa_condition_prompts: NULL argument");
    ICL_TRY(check_rsa_options(ropt));
    if (c < 0 || c >= ropt->n_shots)
        return icl_fail(ICL_ERR_INVALID_ARG, "icl_rsa_condition_prompts: condition %d outside [0, %d)", c,
                        ropt->n_shots);
    icl_repr_prompts_options po = *popt;
    int max_shots = 0;
    for (int i = 0; i < ropt->n_shots; i++)
        if (ropt->shots[i] > max_shots) max_shots = ropt->shots[i];
    if (ropt->same_queries) {
        po.n_examples = max_shots;
        po.keep_examples = ropt->shots[c];
    } else {
        po.n_examples = ropt->shots[c];
        po.keep_examples = -1;
        po.seed = popt->seed ^ (0x9E3779B97F4A7C15ULL * (uint64_t)(ropt->shots[c] + 1));
    }
    return icl_repr_prompts_generate(f, &po, out);
}

/* One condition: prompts with `shots` examples, RSA of every level into row c of the result. */
static icl_status rsa_condition(icl_model *m, const icl_task_family *f, const icl_repr_prompts_options *popt,
                                const icl_repr_site *site, const icl_rsa_options *o, int c, icl_rsa_result *out) {
    icl_repr_prompts set;
    ICL_TRY(icl_rsa_condition_prompts(f, popt, o, c, &set));
    icl_repr_set r;
    memset(&r, 0, sizeof r);
    int32_t *answer_ids = malloc((size_t)set.n * sizeof *answer_ids);
    double *answer_values = malloc((size_t)set.n * sizeof *answer_values);
    icl_status s = (answer_ids && answer_values) ? ICL_OK : icl_fail(ICL_ERR_NOMEM, "RSA: out of memory");
    if (s == ICL_OK && out->n != set.n)
        s = icl_fail(ICL_ERR_INVALID_ARG, "RSA: conditions have %d and %d items", out->n, set.n);
    icl_rsa_hypothesis hyp[ICL_RSA_MAX_HYP];
    int n_hyp = 0, n_ids;
    if (s == ICL_OK) {
        memcpy(out->task_labels, set.labels, (size_t)set.n * sizeof *set.labels);
        hyp[n_hyp++] = (icl_rsa_hypothesis){"task", set.labels, NULL};
        if (icl_task_family_mode(f) == ICL_MODE_TOKEN) {
            s = icl_repr_prompts_answer_ids(&set, answer_ids, &n_ids);
            hyp[n_hyp++] = (icl_rsa_hypothesis){"answer", answer_ids, NULL};
        } else {
            s = icl_repr_prompts_answer_values(&set, answer_values);
            hyp[n_hyp++] = (icl_rsa_hypothesis){"answer", NULL, answer_values};
        }
        if (o->labels)
            hyp[n_hyp++] = (icl_rsa_hypothesis){"labels", o->labels, NULL};
    }
    if (s == ICL_OK)
        s = icl_repr_collect(m, set.prompts, set.n, site, ICL_REPR_BATCH, &r);
    if (s == ICL_OK) {
        icl_rng rng;
        icl_rng_init(&rng, o->seed, "rsa-permutations");
        size_t cell = (size_t)n_hyp * r.levels;
        double *rsm = out->rsm ? out->rsm + (size_t)c * r.levels * set.n * set.n : NULL;
        s = icl_rsa_levels(&r, hyp, n_hyp, o->n_perm, &rng, out->rho + c * cell, out->p + c * cell, rsm);
        double sum = 0.0;
        for (int i = 0; i < set.n; i++) sum += r.score[i];
        out->score[c] = sum / set.n;
        for (int h = 0; h < n_hyp; h++) out->hyp_names[h] = hyp[h].name;
        out->n_hyp = n_hyp;
    }
    icl_repr_set_free(&r);
    icl_repr_prompts_free(&set);
    free(answer_ids);
    free(answer_values);
    return s;
}

icl_status icl_rsa_run(icl_model *m, const icl_task_family *f, const icl_repr_prompts_options *popt,
                       const icl_repr_site *site, const icl_rsa_options *ropt, icl_rsa_result *out) {
    if (!m || !f || !popt || !ropt || !out)
        return icl_fail(ICL_ERR_INVALID_ARG, "icl_rsa_run: NULL argument");
    memset(out, 0, sizeof *out);
    ICL_TRY(check_rsa_options(ropt));
    if (popt->prompts_per_task < 1)
        return icl_fail(ICL_ERR_INVALID_ARG, "prompts per task must be >= 1, got %d", popt->prompts_per_task);
    if (popt->tasks && popt->n_tasks < 1)
        return icl_fail(ICL_ERR_INVALID_ARG, "the task set is empty");
    icl_repr_site st;
    ICL_TRY(rsa_site(f, site, ropt, &st));
    int nt = popt->tasks ? popt->n_tasks : icl_task_family_num_tasks(f);
    int levels = icl_model_config(m)->n_layer + 1, n = nt * popt->prompts_per_task, C = ropt->n_shots;
    out->n_shots = C;
    out->levels = levels;
    out->n = n;
    size_t cells = (size_t)C * ICL_RSA_MAX_HYP * levels;
    out->shots = malloc((size_t)C * sizeof *out->shots);
    out->rho = malloc(cells * sizeof *out->rho);
    out->p = malloc(cells * sizeof *out->p);
    out->score = malloc((size_t)C * sizeof *out->score);
    out->task_labels = malloc((size_t)n * sizeof *out->task_labels);
    if (ropt->keep_rsm)
        out->rsm = malloc((size_t)C * levels * n * n * sizeof *out->rsm);
    icl_status s = (out->shots && out->rho && out->p && out->score && out->task_labels && (out->rsm || !ropt->keep_rsm))
                       ? ICL_OK
                       : icl_fail(ICL_ERR_NOMEM, "icl_rsa_run: out of memory");
    for (int c = 0; s == ICL_OK && c < C; c++) {
        out->shots[c] = ropt->shots[c];
        s = rsa_condition(m, f, popt, &st, ropt, c, out);
    }
    if (s != ICL_OK)
        icl_rsa_result_free(out);
    return s;
}
