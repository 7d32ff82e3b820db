/* Evaluating a model on a task family: per-task loss and query accuracy (token
 * families) or query squared error (vector families), as a function of the
 * number of in-context examples, with regression baselines computed on the
 * very same prompts. */
#ifndef ICL_EVAL_H
#define ICL_EVAL_H

#include <stdint.h>
#include "icl/baselines.h"
#include "icl/model.h"
#include "icl/task.h"

ICL_BEGIN_DECLS

typedef struct {
    int prompts_per_task; /* >= 1 */
    int max_examples;     /* evaluate k = 0..max_examples; -1 = the family default */
    int batch;            /* prompts per forward pass */
    uint64_t seed;        /* the evaluation prompts depend only on (seed, task, k) */
    const int *tasks;     /* tasks to evaluate; NULL = all */
    int n_tasks;
    const icl_baseline *baselines; /* vector families: baselines to run on the same prompts */
    int n_baselines;
} icl_eval_options;

/* 100 prompts per task, the family's default examples, batch 64, seed 12345, all tasks, no baselines. */
icl_eval_options icl_eval_options_default(void);

typedef struct {
    icl_input_mode mode;
    int n_tasks, n_k;      /* rows: tasks; columns: k = 0..n_k-1 examples */
    int *tasks;            /* (n_tasks) task ids */
    double *loss;          /* (n_tasks, n_k) mean loss at the query answer (nats per token / squared error) */
    double *metric;        /* (n_tasks, n_k) token: fraction of queries answered exactly (argmax, teacher
                              forced); vector: mean squared error of the query prediction */
    int n_baselines;
    double *baseline_metric; /* (n_baselines, n_tasks, n_k) vector: the baselines' mean squared error */
    char (*baseline_names)[32];
    int prompts_per_task;
} icl_eval_result;

/* Token families: a fresh set of prompts with exactly k examples for each k.
 * Vector families: prompts with max_examples examples; the prediction at the
 * (k+1)-th x position uses k examples, so one pass gives every k (Garg et al.). */
icl_status icl_eval_by_examples(icl_model *m, const icl_task_family *f, const icl_eval_options *opt,
                                icl_eval_result *out);
void icl_eval_result_free(icl_eval_result *r);

/* Tidy CSV: task,k,metric_name,value rows for the model ("model") and every baseline. */
icl_status icl_eval_write_csv(const icl_eval_result *r, const icl_task_family *f, const char *path);

/* The training objective of each task on a fixed set of prompts (the family's
 * default examples; same prompts for the same seed): loss[t] is the mean
 * weighted loss (answers-only mask) and metric[t] the query accuracy / squared
 * error, for t in [0, num_tasks). */
icl_status icl_eval_tasks(icl_model *m, const icl_task_family *f, int prompts_per_task, uint64_t seed,
                          double *loss, double *metric);

/* What icl_eval_tasks computes its numbers from, prompt by prompt. Prompt i
 * is prompt i % prompts_per_task of task i / prompts_per_task. */
typedef struct {
    int n, T;             /* n = num_tasks * prompts_per_task prompts; T the longest */
    int prompts_per_task;
    icl_prompt *prompts;  /* (n) with their loss_weights w */
    float *losses;        /* (n, T) the loss of every position (0 past a prompt's end):
                             loss[t] = sum of w * losses / sum of w over task t's prompts */
    double *score;        /* (n) token: 1 when every query answer token is the argmax, else 0; vector: the
                             squared error at x_q (its position's loss). metric[t] = mean over task t's prompts */
} icl_eval_detail;

/* icl_eval_tasks (same prompts, same numbers), also filling *detail (free
 * with icl_eval_detail_free; freed and zeroed on failure). */
icl_status icl_eval_tasks_detail(icl_model *m, const icl_task_family *f, int prompts_per_task, uint64_t seed,
                                 double *loss, double *metric, icl_eval_detail *detail);
void icl_eval_detail_free(icl_eval_detail *d);

ICL_END_DECLS
#endif
