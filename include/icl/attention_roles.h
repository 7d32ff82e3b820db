/* Attention to roles and tasks (Yousefi et al.): the share of attention the
 * query position pays to each prompt role and to the examples of each task,
 * and relevant / irrelevant ratios. Shared definitions:
 * include/icl/representations.h. */
#ifndef ICL_ATTENTION_ROLES_H
#define ICL_ATTENTION_ROLES_H

#include <stdint.h>
#include "icl/representations.h"

ICL_BEGIN_DECLS

/* Relevant / irrelevant position sets of the attention ratio (from the query
 * position; positions of other roles belong to neither set):
 *   QUERY_SOURCE:   query-input positions whose token occurs in the query answer
 *                   vs the other query-input positions (token mode; for
 *                   retrieval: the retrieved symbol vs the rest of the string).
 *   EXAMPLE_SOURCE: the same inside the example inputs, each against its own
 *                   example's answer.
 *   TASK:           all positions of examples of the row's relevant task (the
 *                   task the query answer belongs to, e.g. the dominant task of
 *                   a mixed prompt) vs the positions of examples of other tasks.
 * A row counts toward a ratio only if both of its sets are non-empty. */
typedef enum {
    ICL_ATTN_QUERY_SOURCE = 0,
    ICL_ATTN_EXAMPLE_SOURCE,
    ICL_ATTN_TASK,
    ICL_ATTN_RATIO_COUNT
} icl_attn_ratio;

/* "query_source", "example_source", "task"; NULL out of range. */
const char *icl_attn_ratio_name(icl_attn_ratio r);

/* Attention statistics of one condition, accumulated over batches. Head
 * index NH stands for the mean over heads (the fractions of the head-averaged
 * attention row). Means are over rows, each row weighing 1. */
typedef struct {
    int n_layer, n_head, n_tasks;
    long rows;
    double *role;        /* (L, NH+1, ICL_ROLE_COUNT) mean share of the row's attention on each role */
    double *task;        /* (L, NH+1, n_tasks) mean share on the positions of examples of each task */
    long ratio_rows[ICL_ATTN_RATIO_COUNT];
    double *relevant;    /* (ICL_ATTN_RATIO_COUNT, L, NH+1) mean share on the relevant set */
    double *irrelevant;  /* (ICL_ATTN_RATIO_COUNT, L, NH+1) mean share on the irrelevant set */
    double *ratio;       /* (ICL_ATTN_RATIO_COUNT, L, NH+1) relevant / irrelevant (NaN without rows) */
    double score;        /* mean behaviour score (see icl_repr_set.score) */
} icl_attn_stats;

typedef struct {
    icl_repr_prompts_options prompts; /* single-task prompts of the k-shot condition */
    icl_positions from;             /* attending position; default: the query position */
    double mix_lambda;              /* > 0: add a mixed condition whose prompts give this share of the examples
                                       to a dominant task and the rest to one other task; default 0.75 */
    int batch;                      /* prompts per forward pass; default 64 */
} icl_attn_options;

/* 50 prompts per task, family default examples, from = the query position, mix 0.75, batch 64. */
icl_attn_options icl_attn_options_default(const icl_task_family *f);

#define ICL_ATTN_MAX_CONDITIONS 3

/* Conditions: "0-shot" and "k-shot" on the same queries, then "mixed"
 * (if mix_lambda > 0 and there are at least 2 tasks): prompt j of task t has
 * t dominant, the other task cycling through the rest; relevant = t. */
typedef struct {
    int n_cond;
    char names[ICL_ATTN_MAX_CONDITIONS][16];
    int shots[ICL_ATTN_MAX_CONDITIONS];
    icl_attn_stats stats[ICL_ATTN_MAX_CONDITIONS];
} icl_attn_result;

icl_status icl_attention_run(icl_model *m, const icl_task_family *f, const icl_attn_options *opt,
                             icl_attn_result *out);
void icl_attn_result_free(icl_attn_result *r);

/* The n = tasks x prompts_per_task prompts of condition c (0 "0-shot",
 * 1 "k-shot", 2 "mixed") of icl_attention_run with opt, in the order it
 * accumulates them, copied into prompts (n, zero-initialised or reused; free
 * each with icl_prompt_free), and the relevant task id of each (n) (the
 * prompt's task; the dominant task of a mixed prompt). ICL_ERR_INVALID_ARG
 * for an n other than the condition's. */
icl_status icl_attention_condition_prompts(const icl_task_family *f, const icl_attn_options *opt, int c, int n,
                                           icl_prompt *prompts, int32_t *relevant);

ICL_END_DECLS
#endif
