/* Task vectors (Hendel et al. 2023; Han et al. 2024; Xiong et al.'s
 * interpolation) and function vectors (Todd et al. 2023).
 *
 * Residual levels: level 0 is the embedding output and level l+1 the
 * resid_post of block l, as in icl_residuals_at; a model of L blocks has
 * L+1 levels. Task vectors are read and written at the query position: the
 * query separator (role QUERY_SEP) in token mode, where the model predicts
 * the query answer, and the x_q position (role QUERY_INPUT) in vector mode.
 *
 * Prompts come from prompt sets: prompt i of a set depends only on (seed,
 * stream, task, i), whatever batch it is generated in, so a test or a caller
 * can regenerate exactly the prompts a probe used.
 *
 * Answer scores ("accuracy", "P") are teacher-forced: P(answer) is the product
 * of the answer tokens' probabilities with the candidate written into the
 * query answer slots, and a candidate is answered exactly when every one of
 * its tokens is the argmax of its position (the lowest token wins ties). */
#ifndef ICL_TASK_VECTORS_H
#define ICL_TASK_VECTORS_H

#include <stdint.h>
#include "icl/model.h"
#include "icl/probe.h"
#include "icl/readout.h"
#include "icl/task.h"

ICL_BEGIN_DECLS

/* ---- prompt sets ---- */

/* Streams of the prompt sets the probes use (documented so that callers can regenerate them). */
#define ICL_TV_STREAM_DEMO "task_vectors/demo"       /* demonstrations the vectors are extracted from */
#define ICL_TV_STREAM_ZERO_SHOT "task_vectors/zero_shot" /* zero-shot targets (and their means for ADD) */
#define ICL_TV_STREAM_TARGET "task_vectors/target"   /* k-shot targets of the source x target matrix */
#define ICL_TV_STREAM_INTERP "task_vectors/interp"   /* zero-shot targets of the interpolation */
#define ICL_TV_STREAM_MIXED "task_vectors/mixed"     /* demonstrations mixing two tasks half and half */
#define ICL_FV_STREAM_CLEAN "function_vectors/clean" /* clean prompts the mean head outputs come from */
#define ICL_FV_STREAM_EVAL "function_vectors/eval"   /* prompts the AIE and the FV are evaluated on */

typedef struct {
    uint64_t seed;
    const char *stream;
    int task;
    int n_examples;     /* >= 0 */
    int shuffle_labels; /* 1: the example answers are permuted among the examples (token mode) */
    int ctx;            /* > 0: fail if a prompt is longer (the model's context) */
    icl_loss_mask loss; /* loss mask of the prompts */
} icl_prompt_set;

/* Prompts [first, first+count) of the set, packed into out (zero-initialised
 * before first use, reused, freed with icl_task_batch_free). */
icl_status icl_prompt_set_batch(const icl_task_family *f, const icl_prompt_set *ps, int first, int count,
                                icl_task_batch *out);


/* ---- task vectors ---- */

typedef enum {
    ICL_TV_REPLACE = 0, /* the residual at the query position becomes the vector (ICL_IV_SET) */
    ICL_TV_ADD          /* the vector is added to it (ICL_IV_ADD, alpha 1) */
} icl_tv_mode;

/* The query role of a mode: QUERY_SEP (token) or QUERY_INPUT (vector). */
icl_role icl_tv_query_role(icl_input_mode mode);

/* An intervention that writes `vector` (C) at residual `level` in [0, L] at
 * the query position of every row. The vector is not copied: it must outlive
 * the intervention. */
icl_status icl_tv_intervention(const icl_model *m, int level, icl_tv_mode mode, const float *vector,
                               icl_intervention *out);

typedef struct {
    const int *tasks;    /* tasks to study; NULL = every task of the family */
    int n_tasks;
    int n_prompts;       /* demonstration prompts per task the vectors are averaged over, >= 1 */
    int n_examples;      /* k >= 0 examples per demonstration (plus a dummy query) */
    int eval_prompts;    /* target prompts per task (and per matrix cell), >= 1 */
    int target_examples; /* k >= 0 of the target prompts of the source x target matrix */
    icl_tv_mode mode;
    int add_raw;         /* ADD: 1 adds the raw vector; 0 adds v - (mean residual of prompts like the
                            targets), i.e. moves the targets' mean onto v */
    int level;           /* level of the interpolation; -1 = the best level of the sweep */
    int n_alpha;         /* interpolation grid alpha = 0, 1/(n_alpha-1), ..., 1; >= 2 */
    int batch;           /* prompts per forward pass, >= 1 */
    uint64_t seed;
} icl_tv_options;

/* Every task, 100 demonstrations of the family's default k, 100 targets of
 * the same k, REPLACE, interpolation at the best level with 11 alphas, batch 64, seed 1. */
icl_tv_options icl_tv_options_default(const icl_task_family *f);

/* Matrices are (n_levels, n_tasks, n_tasks): [level][v][p] is the vector of
 * task v patched into prompts of task p ("vector task" into "prompt task").
 * Xiong/Hendel overriding: v != p. Han's Fig. 7 calls p the source and v the
 * target basis. */
typedef struct {
    icl_input_mode mode;
    int n_tasks, n_levels, C;
    int *tasks;          /* (n_tasks) */
    float *vectors;      /* (n_tasks, n_levels, C) the task vectors */
    int best_level;      /* token: highest mean patched zero-shot accuracy (then P); vector: lowest mean diagonal
                          * dMSE; 1..L (level 0 only for a model without blocks). Chosen whether or not
                          * patching helps there: see best_helps */
    /* token families */
    double *zs_p0, *zs_acc0;   /* (n_tasks) zero-shot prompts of task t, no vector: P / accuracy of t's answer */
    double *zs_p, *zs_acc;     /* (n_tasks, n_levels) the same with t's vector patched at each level */
    double *base_p, *base_acc; /* (n_tasks, n_tasks) [v][p]: unpatched prompts of task p, P / accuracy of v's answer */
    double *mat_p, *mat_acc;   /* (n_levels, n_tasks, n_tasks) [l][v][p]: patched, P / accuracy of v's answer */
    double *mat_p_own, *mat_acc_own; /* (n_levels, n_tasks, n_tasks) [l][v][p]: patched, P / accuracy of p's answer */
    int n_pairs, n_alpha, interp_level;
    int *pairs;                /* (n_pairs, 2) task indices (into tasks) i < j */
    double *alphas;            /* (n_alpha) */
    double *interp;            /* (n_pairs, n_alpha, 3): P(answer_i), P(answer_j), other = 1 - the two
                                  (an answer shared by both tasks counted once) for alpha v_i + (1-alpha) v_j */
    /* vector families */
    double *base_mse;          /* (n_tasks) query squared error of unpatched prompts of task p */
    double *mat_mse;           /* (n_levels, n_tasks, n_tasks) [l][v][p] patched */
    int best_helps;            /* icl_tv_level_helps at best_level. 0: no level helps, and best_level is only the
                                  least harmful one; the interpolation (level -1) still runs there */
    /* token families with n_examples >= 2: where the vector of a mixed prompt lies. For pair (i, j), m is the
       mean query residual, at each level, of n_prompts demonstrations whose k examples are split half and half
       between tasks i and j (icl_task_mix_counts; prompt q of the pair is icl_task_generate_mixed with tasks
       {i, j} and the stream split(split(split(rng(seed, ICL_TV_STREAM_MIXED), task i), task j), q)). NULL
       when k < 2; NaN at a level where v_i = v_j. */
    double *mix_alpha;         /* (n_pairs, n_levels) a* = <m - v_j, v_i - v_j> / |v_i - v_j|^2: m's position along
                                  the line from v_j (0) to v_i (1) */
    double *mix_offline;       /* (n_pairs, n_levels) |m - (a* v_i + (1 - a*) v_j)| / |v_i - v_j|: its distance
                                  from that line, in units of the distance between the two vectors */
} icl_tv_result;

/* Extract the vectors (means over demonstrations at every level), then:
 * token families: zero-shot patching at every level, the vector x prompt
 * matrices at every level, the interpolation of every pair of tasks on
 * zero-shot prompts, and (k >= 2) where each pair's mixed-prompt vector lies; vector families: the dMSE matrices at every level.
 * *out is filled (free with icl_tv_result_free). */
icl_status icl_task_vectors_run(icl_model *m, const icl_task_family *f, const icl_tv_options *opt,
                                icl_tv_result *out);
void icl_tv_result_free(icl_tv_result *r);

/* *helps = 1 when patching at `level` (0..n_levels-1) beats no patch on the
 * mean over tasks: token, mean zs_acc at level > mean zs_acc0 (strictly; equal
 * accuracy is no help); vector, mean diagonal mat_mse < mean base_mse. */
icl_status icl_tv_level_helps(const icl_tv_result *r, int level, int *helps);

/* ---- function vectors (Todd et al.) ---- */

typedef struct {
    const int *tasks;   /* NULL = every task */
    int n_tasks;
    int n_prompts;      /* clean prompts per task for the mean head outputs, >= 1 */
    int n_examples;     /* k >= 1 examples of the clean and the shuffled prompts */
    int eval_prompts;   /* shuffled / zero-shot / clean evaluation prompts per task, >= 1 */
    int top_k;          /* heads in the function vector, >= 1 (capped at L*NH); -1 = min(10, L*NH/2) */
    int fv_layer;       /* block whose residual receives the FV; -1 = round(L/3) - 1, at least 0 */
    int fv_mid;         /* 0: resid_post of fv_layer; 1: resid_mid of fv_layer */
    int batch;
    uint64_t seed;
} icl_fv_options;

/* Every task, 100 clean prompts of the family's default k (at least 1), 100
 * evaluation prompts, top_k -1 (10 heads, or half of a smaller model's), the
 * default layer, resid_post, batch 64, seed 1. */
icl_fv_options icl_fv_options_default(const icl_task_family *f);

enum { ICL_FV_CLEAN = 0, ICL_FV_ZERO_SHOT, ICL_FV_SHUFFLED, ICL_FV_N_CONDITIONS };

typedef struct {
    int n_tasks, L, NH, HS, C;
    int *tasks;           /* (n_tasks) */
    float *head_means;    /* (n_tasks, L, NH, HS) mean head outputs on clean prompts */
    double *aie;          /* (n_tasks, L, NH) per task, on its shuffled-label prompts */
    double *aie_mean;     /* (L, NH) averaged over tasks */
    int top_k;
    int *rank;            /* (L, NH) 1 = largest mean AIE (ties: lower layer, then head) */
    int *heads;           /* (top_k, 2) layer, head of the FV's heads by rank */
    int fv_layer, fv_mid;
    float *fv;            /* (n_tasks, C) */
    double *acc, *p;      /* (n_tasks, ICL_FV_N_CONDITIONS, 2): [..][cond][0 without, 1 with the FV] */
    /* What acc, p and aie average, prompt by prompt. Prompt i of a condition is prompt i of its prompt set
     * (stream ICL_FV_STREAM_EVAL; k examples, or 0 for ZERO_SHOT; labels shuffled for SHUFFLED). */
    int eval_prompts;
    double *acc_prompt, *p_prompt; /* (n_tasks, ICL_FV_N_CONDITIONS, 2, eval_prompts): 1 if answered exactly / P */
    double *aie_p0;       /* (n_tasks, eval_prompts) P on the shuffled-label prompts, no head patched */
    double *aie_p;        /* (n_tasks, L, NH, eval_prompts) the same with the head patched:
                             aie = mean over prompts of aie_p - aie_p0 */
} icl_fv_result;

/* Mean head outputs per task, AIE of every head on shuffled-label prompts,
 * heads ranked by mean AIE, the function vector of each task from the top_k
 * heads, and accuracy / P(answer) on clean, zero-shot and shuffled-label
 * prompts without and with the FV added at the query separator. Token families. */
icl_status icl_function_vectors_run(icl_model *m, const icl_task_family *f, const icl_fv_options *opt,
                                    icl_fv_result *out);
void icl_fv_result_free(icl_fv_result *r);

ICL_END_DECLS
#endif
