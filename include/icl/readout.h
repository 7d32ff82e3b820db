/* Readouts shared by the probes: teacher-forced answer probabilities and the
 * residual stream at one position per prompt, optionally under interventions. */
#ifndef ICL_READOUT_H
#define ICL_READOUT_H

#include <stdint.h>
#include "icl/model.h"
#include "icl/probe.h"
#include "icl/task.h"

ICL_BEGIN_DECLS

/* Teacher-forced probability of candidate answers to each prompt's query.
 * answers (B, n_cand, A) tokens, A = the family's answer length: candidate c of
 * row b is written into the query-answer slots (role QUERY_ANSWER) and
 * probs[b*n_cand + c] = prod_j P(answer_j | prompt, answer_<j), read at
 * query_pos + j. With A = 1 one forward pass serves every candidate; otherwise
 * one pass per candidate. Interventions (may be NULL) apply to every pass. */
icl_status icl_answer_probs(icl_model *m, const icl_task_batch *tb, const int32_t *answers, int n_cand,
                            const icl_intervention *iv, int n_iv, double *probs);

/* The K largest probabilities of the first answer token at each row's query
 * position after the last forward pass, descending: top (B, K). */
icl_status icl_top_probs(const icl_model *m, const icl_task_batch *tb, int K, double *top);

/* Residual stream at one position per row (the first match of `pos` in each
 * row) after a forward pass of tb with the interventions: out (L+1, B, C),
 * level 0 = embedding output, level l+1 = resid_post of block l. */
icl_status icl_residuals_at(icl_model *m, const icl_task_batch *tb, icl_positions pos, const icl_intervention *iv,
                            int n_iv, float *out);

ICL_END_DECLS
#endif
