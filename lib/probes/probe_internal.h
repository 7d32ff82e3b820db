/* Internal to lib/probes: position selection (probe_points.c) and a model's
 * sizes read from its public config. The probes see the model only through
 * the public API (include/icl/model.h), so this header includes nothing
 * private of another layer. */
#ifndef ICL_LIB_PROBE_INTERNAL_H
#define ICL_LIB_PROBE_INTERNAL_H

#include "icl/probe.h"
#include "icl/task.h"

/* Positions of row b selected by `pos`, in increasing order, into out[0..*n)
 * (out has room for T). ICL_ERR_INVALID_ARG for an index outside the row. */
icl_status icl_select_positions(const icl_positions *pos, const icl_row_labels *labels, int b, int T, int *out,
                                int *n);

/* Validate a selector against T (independent of the rows). */
icl_status icl_check_positions(const icl_positions *pos, const icl_row_labels *labels, int T);

/* Level `level` of the residual stream (0 = embedding, l+1 = resid_post of
 * block l) as a point view of the last forward pass. */
icl_status icl_residual_view(const icl_model *m, int level, icl_point_view *view);

/* Readouts shared by readout.c and the head ablation of probe_lens.c, with
 * the caller's row labels (the ablation selects every position of a row):
 * the checks of icl_answer_self_probs / icl_query_sq_errors, then the work. */
icl_status icl_readout_check_answer_slots(const icl_model *m, const icl_task_batch *tb, const char *fn);
icl_status icl_readout_self_probs(icl_model *m, const icl_task_batch *tb, const icl_row_labels *labels,
                                  const icl_intervention *iv, int n_iv, double *probs, uint8_t *correct);
icl_status icl_readout_check_query_batch(const icl_model *m, const icl_task_batch *tb, const double *err,
                                         const char *fn);
icl_status icl_readout_sq_errors(icl_model *m, const icl_task_batch *tb, const icl_row_labels *labels,
                                 const icl_intervention *iv, int n_iv, double *err);

/* 1 if the n items of X (n,d) are all the same vector, bit for bit: nothing
 * at that level tells the items apart, so every representation probe
 * (decodability, RSA, linear probes) reports NaN there rather than a score
 * that only reflects tie rules or the majority class. */
int icl_repr_items_identical(const float *X, int n, int d);

/* A model's sizes: L blocks, C = d_model, NH heads, F = d_ff, V vocabulary
 * (0 in vector mode), OUT outputs per position (V, or d_out in vector mode). */
typedef struct {
    icl_input_mode mode;
    int L, C, NH, F, V, OUT, ctx;
} probe_dims;

/* All zero for a NULL model. */
probe_dims probe_dims_of(const icl_model *m);

#endif
