/* Linear probes per level: multinomial logistic regression on a discrete
 * target (the task, a token answer) and ridge regression on continuous ones
 * (a vector answer, the prompt's weights), scored by k-fold cross-validation. */
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include "error.h"
#include "icl/linear_probe.h"
#include "probe_internal.h"

static const char *const target_names[ICL_LINEAR_COUNT] = {"task", "answer", "weights"};

const char *icl_linear_target_name(icl_linear_target t) {
    return (unsigned)t < ICL_LINEAR_COUNT ? target_names[t] : NULL;
}

icl_status icl_linear_target_parse(const char *name, icl_linear_target *out) {
    if (!name || !out)
        return icl_fail(ICL_ERR_INVALID_ARG, "icl_linear_target_parse: NULL argument");
    for (int t = 0; t < ICL_LINEAR_COUNT; t++)
        if (strcmp(name, target_names[t]) == 0) {
            *out = (icl_linear_target)t;
            return ICL_OK;
        }
    return icl_fail(ICL_ERR_INVALID_ARG, "unknown probe target \"%s\" (targets: task, answer, weights)", name);
}

icl_status icl_linear_prompts_options(const icl_repr_prompts_options *base, int shots, int max_shots,
                                      int same_queries, icl_repr_prompts_options *out) {
    if (!base || !out)
        return icl_fail(ICL_ERR_INVALID_ARG, "icl_linear_prompts_options: NULL argument");
    if (shots < 0 || shots > max_shots)
        return icl_fail(ICL_ERR_INVALID_ARG, "icl_linear_prompts_options: shots %d outside [0, max_shots = %d]", shots,
                        max_shots);
    *out = *base;
    /* the largest condition is the same prompt set either way */
    out->n_examples = same_queries ? max_shots : shots;
    out->keep_examples = same_queries && shots < max_shots ? shots : -1;
    return ICL_OK;
}

icl_linear_options icl_linear_options_default(void) {
    icl_linear_options o;
    icl_logistic_options lo;
    icl_ridge_options ro;
    lo = icl_logistic_options_default();
    ro = icl_ridge_options_default();
    o.folds = lo.folds;
    o.l2 = lo.l2;
    o.alpha = ro.alpha;
    o.seed = 1;
    return o;
}

/* The items (n, d) of one level, or NULL with the level's metric set to NaN
 * when they are all the same vector: there is nothing to decode there. */
static const float *level_items(const icl_repr_set *r, int level, double *metric) {
    const float *X = r->X + (size_t)level * r->n * r->d;
    if (icl_repr_items_identical(X, r->n, r->d)) {
        metric[level] = NAN;
        return NULL;
    }
    return X;
}

/* Logistic probe on labels (n) in [0, n_classes) at every level; pred (levels, n) optional. */
static icl_status logistic_levels(const icl_repr_set *r, const int32_t *labels, int n_classes,
                                  const icl_linear_options *o, double *metric, double *chance, double *pred) {
    if (n_classes < 2)
        return icl_fail(ICL_ERR_INVALID_ARG, "the probe target has a single class: nothing to decode");
    int *count = calloc((size_t)n_classes, sizeof *count);
    if (!count)
        return icl_fail(ICL_ERR_NOMEM, "linear probe: out of memory");
    int most = 0;
    for (int i = 0; i < r->n; i++)
        if (++count[labels[i]] > most) most = count[labels[i]];
    free(count);
    if (chance)
        *chance = (double)most / r->n;
    icl_logistic_options lo = icl_logistic_options_default();
    lo.folds = o->folds;
    lo.l2 = o->l2;
    for (int level = 0; level < r->levels; level++) {
        const float *X = level_items(r, level, metric);
        double *pl = pred ? pred + (size_t)level * r->n : NULL;
        for (int i = 0; pl && i < r->n; i++)
            pl[i] = X ? 0.0 : NAN;
        if (!X)
            continue;
        icl_rng rng;
        icl_rng_init(&rng, o->seed, "linear-probe-folds");
        icl_logistic_probe *p;
        ICL_TRY(icl_logistic_probe_fit(X, labels, r->n, r->d, n_classes, &lo, &rng, &p));
        metric[level] = p->cv_accuracy;
        for (int i = 0; pl && i < r->n; i++)
            pl[i] = p->cv_pred[i];
        icl_logistic_probe_free(p);
    }
    return ICL_OK;
}

/* Ridge probe on Y (n, n_out) at every level: mean cross-validated R^2; pred (levels, n, n_out) optional. */
static icl_status ridge_levels(const icl_repr_set *r, const float *Y, int n_out, const icl_linear_options *o,
                               double *metric, double *chance, double *pred) {
    if (chance)
        *chance = NAN;
    icl_ridge_options ro = icl_ridge_options_default();
    ro.folds = o->folds;
    ro.alpha = o->alpha;
    for (int level = 0; level < r->levels; level++) {
        const float *X = level_items(r, level, metric);
        size_t cells = (size_t)r->n * n_out;
        double *pl = pred ? pred + (size_t)level * cells : NULL;
        for (size_t i = 0; pl && !X && i < cells; i++)
            pl[i] = NAN;
        if (!X)
            continue;
        icl_rng rng;
        icl_rng_init(&rng, o->seed, "linear-probe-folds");
        icl_ridge_probe *p;
        ICL_TRY(icl_ridge_probe_fit(X, Y, r->n, r->d, n_out, &ro, &rng, &p));
        metric[level] = p->cv_r2_mean;
        if (pl)
            memcpy(pl, p->cv_pred, cells * sizeof *pl);
        icl_ridge_probe_free(p);
    }
    return ICL_OK;
}

int icl_linear_target_outputs(const icl_repr_prompts *s, icl_linear_target target) {
    if (!s || !s->prompts || s->n < 1)
        return 0;
    return target == ICL_LINEAR_WEIGHTS && s->prompts[0].mode == ICL_MODE_VECTOR ? s->prompts[0].d_in - 1 : 1;
}

icl_status icl_linear_probe_levels(const icl_repr_set *r, const icl_repr_prompts *s, icl_linear_target target,
                                   const icl_linear_options *opt, double *metric, double *chance) {
    return icl_linear_probe_levels_cv(r, s, target, opt, metric, chance, NULL, NULL, NULL);
}

icl_status icl_linear_probe_levels_cv(const icl_repr_set *r, const icl_repr_prompts *s, icl_linear_target target,
                                      const icl_linear_options *opt, double *metric, double *chance, double *y,
                                      double *pred, int32_t *fold_of) {
    if (!r || !r->X || !s || !s->prompts || !metric)
        return icl_fail(ICL_ERR_INVALID_ARG, "icl_linear_probe_levels: NULL argument");
    if (r->n != s->n)
        return icl_fail(ICL_ERR_INVALID_ARG, "icl_linear_probe_levels: %d representations for %d prompts", r->n, s->n);
    if ((unsigned)target >= ICL_LINEAR_COUNT)
        return icl_fail(ICL_ERR_INVALID_ARG, "unknown probe target %d", (int)target);
    icl_linear_options o = opt ? *opt : icl_linear_options_default();
    if (o.folds < 2 || o.folds > r->n)
        return icl_fail(ICL_ERR_INVALID_ARG, "folds = %d outside [2, %d items]", o.folds, r->n);
    int vector = s->prompts[0].mode == ICL_MODE_VECTOR, n = r->n;
    if (fold_of) {
        icl_rng rng;
        icl_rng_init(&rng, o.seed, "linear-probe-folds");
        ICL_TRY(icl_probe_folds(fold_of, n, o.folds, &rng));
    }
    if (target == ICL_LINEAR_TASK) {
        for (int i = 0; y && i < n; i++)
            y[i] = s->labels[i];
        return logistic_levels(r, s->labels, s->n_tasks, &o, metric, chance, pred);
    }
    if (target == ICL_LINEAR_ANSWER && !vector) {
        int32_t *ids = malloc((size_t)n * sizeof *ids);
        int n_ids;
        if (!ids)
            return icl_fail(ICL_ERR_NOMEM, "linear probe: out of memory");
        icl_status st = icl_repr_prompts_answer_ids(s, ids, &n_ids);
        for (int i = 0; st == ICL_OK && y && i < n; i++)
            y[i] = ids[i];
        if (st == ICL_OK)
            st = logistic_levels(r, ids, n_ids, &o, metric, chance, pred);
        free(ids);
        return st;
    }
    if (target == ICL_LINEAR_WEIGHTS && !vector)
        return icl_fail(ICL_ERR_INVALID_ARG,
                        "the weights target needs a vector family (token prompts have no weights)");
    int n_out = icl_linear_target_outputs(s, target);
    double *v = malloc((size_t)n * n_out * sizeof *v);
    float *Y = malloc((size_t)n * n_out * sizeof *Y);
    icl_status st = (v && Y) ? ICL_OK : icl_fail(ICL_ERR_NOMEM, "linear probe: out of memory");
    if (st == ICL_OK)
        st = target == ICL_LINEAR_WEIGHTS ? icl_repr_prompts_weights(s, v) : icl_repr_prompts_answer_values(s, v);
    for (size_t i = 0; st == ICL_OK && i < (size_t)n * n_out; i++) {
        Y[i] = (float)v[i];
        if (y)
            y[i] = Y[i];
    }
    if (st == ICL_OK)
        st = ridge_levels(r, Y, n_out, &o, metric, chance, pred);
    free(v);
    free(Y);
    return st;
}
