/* Answer readouts: what the model says about each prompt's query, after a
 * forward pass of a task batch, optionally under interventions
 * (include/icl/probe.h). Every probe reads answers through these.
 *
 * Token mode ("teacher-forced"): a candidate answer of A tokens is written
 * into the query answer slots (role QUERY_ANSWER) and scored as
 * prod_j P(answer_j | prompt, answer_<j), read at query_pos + j; it is the
 * greedy answer when each of its tokens is the argmax of its position (the
 * lowest token id wins ties). Vector mode: the prediction at the query
 * position against its target. */
#ifndef ICL_READOUT_H
#define ICL_READOUT_H

#include <stdint.h>
#include "icl/lens.h"
#include "icl/model.h"
#include "icl/probe.h"
#include "icl/task.h"

ICL_BEGIN_DECLS

/* ---- token mode ---- */

/* Candidate answers (B, n_cand, A) of each row, A = the family's answer
 * length: probs (B, n_cand) their teacher-forced probabilities; exact
 * (B, n_cand, optional) 1 where the candidate is the greedy answer, else 0.
 * With A = 1 one forward pass serves every candidate; otherwise one pass per
 * candidate. Interventions (may be NULL) apply to every pass. */
icl_status icl_answer_probs(icl_model *m, const icl_task_batch *tb, const int32_t *answers, int n_cand,
                            const icl_intervention *iv, int n_iv, double *probs, double *exact);

/* Each row's own query answer (the tokens in its answer slots) after a
 * forward pass with the interventions: probs (B) its teacher-forced
 * probability; correct (B, optional) 1 if greedy decoding reproduces it. */
icl_status icl_answer_self_probs(icl_model *m, const icl_task_batch *tb, const icl_intervention *iv, int n_iv,
                                 double *probs, uint8_t *correct);

/* The K largest probabilities of the first answer token at each row's query
 * position after the last forward pass, which must have been of tb,
 * descending: top (B, K). */
icl_status icl_top_probs(const icl_model *m, const icl_task_batch *tb, int K, double *top);

/* p_(K) per row of tb: the K-th largest probability of an answer string
 * (answer_len tokens, each any vocabulary token) after the row's query
 * separator, from the model output (lens NULL) or through the lens at
 * `level`. One-token answers: exact. Longer answers: a beam search keeping
 * the `beam` >= K most probable prefixes at each step; a string outside the
 * beam is at most as probable as its pruned prefix, so the result is exact
 * (exact[b] = 1) when no pruned prefix beats it, and a lower bound otherwise. */
icl_status icl_answer_kth_prob(icl_model *m, const icl_task_batch *tb, int K, int beam, const icl_lens *lens,
                               int level, double *pK, uint8_t *exact);

/* ---- vector mode ---- */

/* Squared error of each row's query prediction, mean over d_out, against its
 * target (tb->target_values at query_pos), after a forward pass with the
 * interventions: err (B). */
icl_status icl_query_sq_errors(icl_model *m, const icl_task_batch *tb, const icl_intervention *iv, int n_iv,
                               double *err);

/* ---- both modes ---- */

/* Behaviour of each row of the model's last forward pass, which must have
 * been of tb: score (B) = 1 if every query answer token is the argmax at its
 * teacher-forced position, else 0 (token mode); the squared error of the
 * query prediction (vector mode). */
icl_status icl_query_scores(const icl_model *m, const icl_task_batch *tb, double *score);

/* Residual stream at one position per row (the first match of `pos` in each
 * row) after a forward pass of tb with the interventions: out (L+1, B, C),
 * level 0 = embedding output, level l+1 = resid_post of block l. */
icl_status icl_residuals_at(icl_model *m, const icl_task_batch *tb, icl_positions pos, const icl_intervention *iv,
                            int n_iv, float *out);

ICL_END_DECLS
#endif
