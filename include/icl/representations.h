/* Representation probes, the shared part: where a prompt's representation is
 * read (a site), task-major prompt sets, and the residual stream of every
 * prompt pooled at the site on every level. The probes built on it have their
 * own headers: decodability.h (kNN task decodability, Han et al.), rsa.h
 * (representational similarity, Yousefi et al.), linear_probe.h (linear
 * probes per level) and attention_roles.h (attention to roles and tasks,
 * Yousefi et al.).
 *
 * Every probe works on "levels" of the residual stream: level 0 is the
 * embedding output, level l (1..L) the output of block l-1, so a model of L
 * blocks has L+1 levels (the layout of icl_residuals_at). Prompts come in
 * task-major sets: item i of a set of N prompts per task is prompt i % N of
 * the (i / N)-th task of the set. docs/probes.md gives the
 * formulas, defaults and output files of each probe. */
#ifndef ICL_REPRESENTATIONS_H
#define ICL_REPRESENTATIONS_H

#include <stdint.h>
#include "icl/analysis.h"
#include "icl/model.h"
#include "icl/probe.h"
#include "icl/task.h"

ICL_BEGIN_DECLS

/* ---- where a prompt's representation is read ---- */

/* The residuals of each prompt at the positions `pos` selects, pooled into
 * one vector: LAST = the last selected position, MEAN / MAX = elementwise
 * over all selected positions (icl_pool_span). */
typedef struct {
    icl_positions pos;
    icl_pool_mode pool;
} icl_repr_site;

/* Token families: the query separator (where the query answer is
 * predicted). Vector families: the last example answer, Han et al.'s
 * "y-token of the last demonstration". Pool LAST. */
icl_repr_site icl_repr_site_default(const icl_task_family *f);

/* A site from text, e.g. command-line options. role: a role name
 * (icl_role_parse), "all" for every position of the prompt, or NULL for the
 * family default (which, for a vector family probed at min_shots = 0 where
 * no example answer exists, becomes the query input x_q). nth: NULL = every
 * position of the role, else an occurrence ("0" first, "-1" last). pool:
 * "last" (NULL), "mean" or "max". ICL_ERR_INVALID_ARG naming the bad part. */
icl_status icl_repr_site_parse(const icl_task_family *f, const char *role, const char *nth, const char *pool,
                               int min_shots, icl_repr_site *out);

/* ---- prompt sets ---- */

typedef struct {
    const int *tasks;      /* task ids (distinct); NULL = every task of the family */
    int n_tasks;           /* entries of tasks (ignored when tasks is NULL) */
    int prompts_per_task;  /* N >= 1 */
    int n_examples;        /* examples generated per prompt; -1 = the family default */
    int keep_examples;     /* -1: all; 0..n_examples: keep only the first ones, so sets that differ only
                              here share their queries (0-shot vs k-shot on the same queries) */
    icl_gen_options gen;   /* loss mask and query redraw of the generator */
    uint64_t seed;         /* prompt j of task t depends only on (seed, t, j, n_examples) */
} icl_repr_prompts_options;

/* N 100, family default examples, keep all, every task, icl_gen_options_default(), seed 1. */
icl_repr_prompts_options icl_repr_prompts_options_default(void);

typedef struct {
    int n;                 /* prompts = n_tasks * prompts_per_task */
    int n_tasks;
    int prompts_per_task;
    int *tasks;            /* (n_tasks) task ids */
    int32_t *labels;       /* (n) index into tasks of each prompt's task: i / prompts_per_task */
    icl_prompt *prompts;   /* (n) */
} icl_repr_prompts;

/* Generate a task-major prompt set. ICL_ERR_INVALID_ARG for an empty or
 * repeated task list, a task out of range, N < 1, keep_examples out of
 * [-1, n_examples]. Free with icl_repr_prompts_free. */
icl_status icl_repr_prompts_generate(const icl_task_family *f, const icl_repr_prompts_options *opt,
                                     icl_repr_prompts *out);
void icl_repr_prompts_free(icl_repr_prompts *s);

/* Dense ids of each prompt's query answer: prompts with the same answer
 * tokens (token mode) share an id, ids numbered by first appearance.
 * ids (n); *n_ids receives the number of distinct answers. ICL_ERR_INVALID_ARG
 * for vector prompts (use icl_repr_prompts_answer_values). */
icl_status icl_repr_prompts_answer_ids(const icl_repr_prompts *s, int32_t *ids, int *n_ids);
/* Vector mode: the query's target y_q of each prompt (noise included), values (n). */
icl_status icl_repr_prompts_answer_values(const icl_repr_prompts *s, double *values);
/* Vector mode: least-squares weights w (n, D) of each prompt's n_examples+1
 * points (x_i, y_i), the query included (minimum-norm least squares, an
 * estimate of the drawn function's weights; exact for noise-free linear
 * prompts with at least D points). */
icl_status icl_repr_prompts_weights(const icl_repr_prompts *s, double *w);

/* ---- residual representations ---- */

/* Prompts per forward pass of the probe drivers below. */
#define ICL_REPR_BATCH 64

typedef struct {
    int levels;      /* L+1 */
    int n, d;        /* items, d_model */
    float *X;        /* (levels, n, d): X + (level*n + i)*d is item i at that level */
    double *score;   /* (n) behaviour on the same forward pass (icl_query_scores, include/icl/readout.h):
                        token mode 1 if every query answer token is the argmax at its teacher-forced
                        position, else 0; vector mode the squared error of the query prediction */
} icl_repr_set;

/* Run the prompts through the model, `batch` at a time (prompts of one
 * forward pass must have the same mode and d_in; shorter ones are padded),
 * and pool each prompt's residuals at `site` on every level. A prompt in
 * which the site selects no position fails with ICL_ERR_INVALID_ARG. */
icl_status icl_repr_collect(icl_model *m, const icl_prompt *prompts, int n, const icl_repr_site *site, int batch,
                            icl_repr_set *out);
void icl_repr_set_free(icl_repr_set *r);

ICL_END_DECLS
#endif
