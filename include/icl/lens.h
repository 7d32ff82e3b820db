/* Logit lens and head ablation: at which depth each task's answer becomes
 * readable, and which attention heads it depends on.
 *
 * Logit lens. The residual stream h at level l (0 = embedding output,
 * l+1 = resid_post of block l; L+1 levels for L blocks) is decoded as if it
 * were the last block's output:
 *     p_l = softmax(W_U LN_f(h)),
 * with the model's own final layernorm LN_f (eps 1e-5, biased variance) and
 * unembedding W_U (lm_head, or the token embedding when tied). At level L
 * this is the model's output distribution. Computed on the host in double.
 *
 * Head ablation. The output of head h of block l (point HEAD_OUT, before the
 * output projection) is replaced at every position by 0 (ZERO, the same as
 * zeroing the head's columns of attn.proj) or by its mean at that position
 * over a set of prompts (MEAN, icl_intervention ICL_IV_MEAN); the readout is
 * each prompt's own query answer: its teacher-forced probability and whether
 * greedy decoding reproduces it (token mode), or the squared error of the
 * query prediction (vector mode; Han et al.'s head pruning). The logit lens
 * needs a token-mode model. */
#ifndef ICL_LENS_H
#define ICL_LENS_H

#include <stdint.h>
#include "icl/model.h"
#include "icl/probe.h"
#include "icl/task.h"

ICL_BEGIN_DECLS

/* ---- logit lens ---- */

/* A host copy of a model's LN_f and W_U, taken at creation: create it again
 * after the parameters change. */
typedef struct icl_lens icl_lens;

/* ICL_ERR_UNSUPPORTED for a vector-mode model. */
icl_status icl_lens_create(const icl_model *m, icl_lens **out);
void icl_lens_free(icl_lens *lens);
/* Number of levels, L+1 (0 for NULL). */
int icl_lens_levels(const icl_lens *lens);

/* probs (n,V) = softmax(W_U LN_f(h)) for residual vectors h (n,C). */
icl_status icl_lens_apply(const icl_lens *lens, const float *h, int n, double *probs);

/* Lens distributions after the model's last forward pass, at level `level`
 * in [0, L], for the n (rows[i], positions[i]) pairs: probs (n,V). The model
 * must be the one the lens was made from. */
icl_status icl_lens_read(const icl_lens *lens, const icl_model *m, int level, const int32_t *rows,
                         const int32_t *positions, int n, double *probs);

/* icl_answer_probs (include/icl/readout.h) read through the lens at every level:
 * probs (L+1, B, n_cand), probs[(l*B + b)*n_cand + c] = prod_j p_l(answer_j)
 * at query_pos + j, with candidate c teacher-forced into the answer slots.
 * One forward pass for one-token answers, else one per candidate. */
icl_status icl_lens_answer_probs(icl_model *m, const icl_lens *lens, const icl_task_batch *tb,
                                 const int32_t *answers, int n_cand, const icl_intervention *iv, int n_iv,
                                 double *probs);

/* ---- head ablation (token and vector mode) ---- */

typedef enum { ICL_ABLATE_ZERO = 0, ICL_ABLATE_MEAN = 1 } icl_ablation_mode;

/* "zero" / "mean"; NULL for an invalid mode. */
const char *icl_ablation_mode_name(icl_ablation_mode mode);

/* Mean output of every head at every position t < T over the prompts added
 * (each prompt counts at its own positions t < prompt_len), summed in double. */
typedef struct icl_head_means icl_head_means;

icl_status icl_head_means_create(const icl_model *m, int T, icl_head_means **out);
void icl_head_means_free(icl_head_means *hm);
/* Run tb forward (no interventions) and add its rows; tb->T <= the T of hm. */
icl_status icl_head_means_add(icl_head_means *hm, icl_model *m, const icl_task_batch *tb);
/* mean (T, HS) of head `head` of block `layer`; positions no prompt reached are 0.
 * ICL_ERR_STATE before anything was added. */
icl_status icl_head_means_get(const icl_head_means *hm, int layer, int head, float *mean);

/* icl_answer_self_probs (include/icl/readout.h) with head `head` of block `layer` ablated at every
 * position of every row. MEAN needs means from hm (of this model, made with
 * T >= tb->T); ZERO ignores hm. */
icl_status icl_head_ablation(icl_model *m, const icl_task_batch *tb, int layer, int head, icl_ablation_mode mode,
                             const icl_head_means *hm, double *probs, uint8_t *correct);

/* Vector mode: icl_query_sq_errors (include/icl/readout.h) with head `head` of block `layer` ablated at every
 * position, as in icl_head_ablation. */
icl_status icl_head_ablation_errors(icl_model *m, const icl_task_batch *tb, int layer, int head,
                                    icl_ablation_mode mode, const icl_head_means *hm, double *err);

ICL_END_DECLS
#endif
