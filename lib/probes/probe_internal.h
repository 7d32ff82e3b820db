/* Internal to lib/probes: position selection (probe_points.c) and a model's
 * sizes read from its public config. The probes see the model only through
 * the public API (include/icl/model.h), so this header includes nothing
 * private of another layer. */
#ifndef ICL_LIB_PROBE_INTERNAL_H
#define ICL_LIB_PROBE_INTERNAL_H

#include "icl/attention_roles.h"
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

/* Free prompts[0..n) and the array (NULL: nothing). */
void icl_prompt_array_free(icl_prompt *prompts, int n);

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

/* The steps of the task-vector, function-vector and attention probes
 * (probe_task_vectors.c, probe_function_vectors.c, probe_attention.c),
 * internal so that the tests can check each one on its own. */

/* Mean residual at the query position over prompts [0, n_prompts) of the
 * prompt set (stream, seed, task, n_examples) of each task: means
 * (n_tasks, L+1, C), accumulated in double. `batch` prompts per forward pass. */
icl_status icl_tv_mean_residuals(icl_model *m, const icl_task_family *f, const int *tasks, int n_tasks,
                                 int n_examples, int n_prompts, int batch, uint64_t seed, const char *stream,
                                 float *means);

/* out (C) = W_O[:, head*HS:(head+1)*HS] . z, z (HS): what head `head` of block
 * `layer` contributes to attn_out (the projection bias excluded). */
icl_status icl_head_output_project(const icl_model *m, int layer, int head, const float *z, float *out);

/* Mean per-head output (HEAD_OUT) at the query separator over prompts
 * [0, n_prompts) of the prompt set (stream, seed, task, n_examples), clean labels:
 * means (L, NH, HS). */
icl_status icl_fv_mean_head_outputs(icl_model *m, const icl_task_family *f, int task, int n_examples,
                                    int n_prompts, int batch, uint64_t seed, const char *stream, float *means);

/* Indirect effect of every head on the rows of tb: for head (l, h), head_means
 * (L, NH, HS)'s record of that head is SET at the query separator, and
 * aie[l*NH + h] = mean over rows of P(answer) patched - P(answer) unpatched,
 * answers (B, answer_len). Optional: row_p0 (B) each row's unpatched P,
 * row_p (L, NH, B) its patched P. */
icl_status icl_fv_head_effects(icl_model *m, const icl_task_batch *tb, const int32_t *answers,
                               const float *head_means, double *aie, double *row_p0, double *row_p);

/* fv (C) = sum over the n_heads heads (layer, head pairs in heads (n_heads, 2))
 * of icl_head_output_project of their mean outputs head_means (L, NH, HS). */
icl_status icl_function_vector(const icl_model *m, const float *head_means, const int *heads, int n_heads, float *fv);

/* n_tasks: the family's task count (task ids label the example positions). */
icl_status icl_attn_stats_init(icl_attn_stats *s, const icl_model *m, int n_tasks);
/* Forward tb with the interventions (may be NULL) and add the attention row
 * of every layer and head at the first position `from` selects in each row.
 * relevant_task (B, optional): task id whose examples are relevant in each
 * row; NULL = each row's prompt task (tb->prompt_task). */
icl_status icl_attn_stats_add(icl_attn_stats *s, icl_model *m, const icl_task_batch *tb, icl_positions from,
                              const int32_t *relevant_task, const icl_intervention *iv, int n_iv);
/* Turn the sums into means and ratios; call once after the last add. */
icl_status icl_attn_stats_finish(icl_attn_stats *s);
void icl_attn_stats_free(icl_attn_stats *s);

#endif
