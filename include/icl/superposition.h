/* Task superposition (Xiong et al., "Everything Everywhere All at Once"):
 * on prompts whose examples mix K tasks in proportions lambda, how much
 * probability the model gives each task's answer to the query.
 *
 * For mixed prompts i = 1..n (icl_task_generate_mixed: example counts from
 * icl_task_mix_counts, random order, a query unlike every example) and tasks
 * j = 1..K:
 *   P_ij    teacher-forced probability of task j's answer string to query i
 *           (icl_answer_probs with the K answers as candidates);
 *   other_i = 1 - sum_j P_ij;
 *   KL_i    = KL(lambda || P_i) = sum_j lambda_j log(lambda_j / P_ij), raw
 *             (P as is) and renormalised (P_i / sum_j P_ij); lambda = the
 *             actual fractions counts_j / n_examples;
 *   p_(K),i the K-th largest probability over every answer string the model
 *           can emit (all A-token strings over the vocabulary); task j is
 *           solved on prompt i if P_ij >= p_(K),i - 1e-5, and r = sum_j of the
 *           fraction of prompts solving j (0 <= r <= K).
 * p_(K) is exact for one-token answers (icl_top_probs). For A > 1 tokens it
 * comes from a beam search (icl_answer_kth_prob) that also says whether the
 * value is provably exact. The same quantities can be read out of every
 * level of the residual stream through the logit lens (include/icl/lens.h).
 * Metrics: icl_superposition_summary, icl_superposition_kl, icl_tasks_solved
 * (include/icl/analysis.h). Token-mode models and families only. */
#ifndef ICL_SUPERPOSITION_H
#define ICL_SUPERPOSITION_H

#include <stdint.h>
#include "icl/lens.h"
#include "icl/model.h"
#include "icl/readout.h"
#include "icl/rng.h"
#include "icl/task.h"

ICL_BEGIN_DECLS

typedef struct {
    int n_prompts;  /* mixed prompts, >= 1 [100] */
    int n_examples; /* in-context examples per prompt; -1 = the family default [-1] */
    int batch;      /* prompts per forward pass [64] */
    int beam;       /* beam width for p_(K) with multi-token answers, >= K [16] */
    int lens;       /* 1: also read every level through the logit lens [0] */
    int solved;     /* 1: compute p_(K) and r; 0: leave them NaN [1] */
} icl_superposition_options;

/* The defaults in brackets above. */
icl_superposition_options icl_superposition_options_default(void);

/* Summary of one readout (the model output, or one lens level). */
typedef struct {
    double *mean, *sd; /* (K) of P_j over prompts (sample sd) */
    double *sorted;    /* (K) mean over prompts of the k-th largest P_ij (Xiong's sorted mean) */
    double *solved;    /* (K) fraction of prompts solving task j; NaN without opts.solved */
    double other;      /* mean of 1 - sum_j P_j */
    double kl_raw, kl_renorm; /* means over prompts; +inf if any prompt gives a task with lambda_j > 0 probability 0 */
    double r;          /* tasks solved, in [0, K]; NaN without opts.solved */
    double pk_exact;   /* fraction of prompts whose p_(K) is provably exact; NaN without opts.solved */
} icl_superposition_stats;

typedef struct {
    int K, n, levels;   /* tasks, prompts, lens levels (L+1 with opts.lens, else 0) */
    int answer_len, n_examples;
    int *tasks, *counts; /* (K) task ids and examples of each */
    double *lambda;      /* (K) counts / n_examples */
    int collisions;      /* prompts on which two tasks have the same answer string (P counts it twice) */
    double *P;           /* (n,K) */
    double *pK;          /* (n) p_(K), NaN without opts.solved */
    uint8_t *pK_exact;   /* (n) */
    icl_superposition_stats out;
    double *lens_P;      /* (levels,n,K) through the lens, or NULL */
    double *lens_pK;     /* (levels,n) */
    uint8_t *lens_pK_exact; /* (levels,n) */
    icl_superposition_stats *lens; /* (levels) */
} icl_superposition_result;

/* Run one mixture: K >= 2 distinct tasks with proportions lambda (each in
 * [0,1], summing to 1 within 1e-6; a zero is allowed: that task gets no
 * example but its answer is still scored). Prompt i is drawn from
 * icl_rng_split(rng, i), so the same stream gives the same queries and
 * strings for every mixture (common random numbers); rng is not advanced.
 * *out is allocated here; free it with icl_superposition_result_free (on
 * failure nothing is left to free). */
icl_status icl_superposition_run(icl_model *m, const icl_task_family *f, const int *tasks, const double *lambda,
                                 int K, const icl_superposition_options *opts, const icl_rng *rng,
                                 icl_superposition_result *out);
void icl_superposition_result_free(icl_superposition_result *r);

/* Prompt i (>= 0) of icl_superposition_run(m, f, tasks, lambda, K, ..., rng):
 * the mixed prompt it scores as its i-th, with n_examples = the result's
 * n_examples, so a caller can export exactly what was scored. out
 * zero-initialised or reused; free with icl_mixed_prompt_free. */
icl_status icl_superposition_prompt(const icl_model *m, const icl_task_family *f, const int *tasks,
                                    const double *lambda, int K, int n_examples, const icl_rng *rng, int i,
                                    icl_mixed_prompt *out);

/* Parse "ret_1=0.25,ret_2=0.75" into tasks[0..*K) and lambda (cap entries at
 * most). Unknown task names, repeated tasks, values outside [0,1], sums other
 * than 1 (within 1e-6) and fewer than 2 tasks fail with ICL_ERR_INVALID_ARG. */
icl_status icl_superposition_parse_mixture(const icl_task_family *f, const char *spec, int *tasks, double *lambda,
                                           int cap, int *K);

ICL_END_DECLS
#endif
