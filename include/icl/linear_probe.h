/* Linear probes per level: cross-validated logistic or ridge regression from
 * the representation at each level to the task, the query answer or the
 * prompt's least-squares weights. Shared definitions:
 * include/icl/representations.h. */
#ifndef ICL_LINEAR_PROBE_H
#define ICL_LINEAR_PROBE_H

#include <stdint.h>
#include "icl/representations.h"

ICL_BEGIN_DECLS

typedef enum {
    ICL_LINEAR_TASK = 0, /* multinomial logistic on the task; metric: cross-validated accuracy */
    ICL_LINEAR_ANSWER,   /* token: logistic on the query answer (icl_repr_prompts_answer_ids), accuracy;
                            vector: ridge on the query answer value, R^2 */
    ICL_LINEAR_WEIGHTS,  /* vector: ridge on the prompt's least-squares weights (icl_repr_prompts_weights),
                            mean R^2 over the D weights */
    ICL_LINEAR_COUNT
} icl_linear_target;

/* "task", "answer", "weights"; NULL out of range. */
const char *icl_linear_target_name(icl_linear_target t);
icl_status icl_linear_target_parse(const char *name, icl_linear_target *out);

typedef struct {
    int folds;       /* k-fold cross-validation; default 5 */
    double l2;       /* logistic penalty; default 1e-3 */
    double alpha;    /* ridge penalty; default 1e-4 */
    uint64_t seed;   /* folds; every level uses the same folds */
} icl_linear_options;

icl_linear_options icl_linear_options_default(void);

/* The prompt set of the condition with `shots` examples when the probe
 * compares several (e.g. 0-shot versus k-shot), max_shots the largest:
 * same_queries = 1 generates max_shots examples per prompt and keeps the
 * first `shots`, so every condition has the same queries and differs only in
 * its examples; 0 draws prompts of `shots` examples from the same seed
 * (independent queries). base's other fields are kept. ICL_ERR_INVALID_ARG
 * for shots outside [0, max_shots]. */
icl_status icl_linear_prompts_options(const icl_repr_prompts_options *base, int shots, int max_shots,
                                      int same_queries, icl_repr_prompts_options *out);

/* Fit the probe at every level of r (items of prompt set s): metric
 * (levels) = cross-validated accuracy or R^2, NaN at a level where every
 * item is the same vector (bit for bit: nothing to decode, e.g. the query
 * separator's embedding); chance (optional) = the accuracy of always
 * predicting the most frequent class (NaN for ridge).
 * ICL_ERR_INVALID_ARG for a target the set's mode has not, or a target with
 * a single class. */
icl_status icl_linear_probe_levels(const icl_repr_set *r, const icl_repr_prompts *s, icl_linear_target target,
                                   const icl_linear_options *opt, double *metric, double *chance);

/* The number of values the target has per item: the D weights, else 1. */
int icl_linear_target_outputs(const icl_repr_prompts *s, icl_linear_target target);

/* icl_linear_probe_levels with, optionally, what each metric is computed
 * from, n_out = icl_linear_target_outputs: y (n, n_out) the target (class
 * ids of a logistic probe), pred (levels, n, n_out) each item's held-out
 * prediction (a class id or a value; NaN at a NaN level) and fold_of (n) the
 * fold of each item, the same at every level. Logistic: metric = mean(pred
 * == y); ridge: metric = mean over outputs with var(y) > 0 of 1 -
 * sum (y - pred)^2 / sum (y - mean y)^2. */
icl_status icl_linear_probe_levels_cv(const icl_repr_set *r, const icl_repr_prompts *s, icl_linear_target target,
                                      const icl_linear_options *opt, double *metric, double *chance, double *y,
                                      double *pred, int32_t *fold_of);

ICL_END_DECLS
#endif
