/* Representation probes: what the residual stream at chosen prompt
 * positions says about the task. Task decodability by k-nearest neighbours
 * (Han et al.), representational similarity analysis against hypotheses
 * (Yousefi et al.), linear probes per layer, and the share of attention the
 * query position pays to each role and task (Yousefi et al.).
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

/* ---- roles by name ---- */

/* "query_sep" -> ICL_ROLE_QUERY_SEP, ... (the names of icl_role_name);
 * ICL_ERR_INVALID_ARG listing the valid names otherwise. */
icl_status icl_role_parse(const char *name, int *role);

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

/* dst = src with only its first k examples kept (k in [0, src->n_examples]),
 * followed by the same query: positions are dropped, labels, targets and
 * example ids renumbered. dst zero-initialised or previously used. */
icl_status icl_prompt_keep_examples(const icl_prompt *src, int k, icl_prompt *dst);

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
    double *score;   /* (n) behaviour on the same forward pass: token mode 1 if every query answer token
                        is the argmax at its teacher-forced position, else 0; vector mode the squared
                        error of the query prediction */
} icl_repr_set;

/* Behaviour of each row of the model's last forward pass, which must have
 * been of tb: score (B) as in icl_repr_set.score. */
icl_status icl_query_scores(const icl_model *m, const icl_task_batch *tb, double *score);

/* Run the prompts through the model, `batch` at a time (prompts of one
 * forward pass must have the same mode and d_in; shorter ones are padded),
 * and pool each prompt's residuals at `site` on every level. A prompt in
 * which the site selects no position fails with ICL_ERR_INVALID_ARG. */
icl_status icl_repr_collect(icl_model *m, const icl_prompt *prompts, int n, const icl_repr_site *site, int batch,
                            icl_repr_set *out);
void icl_repr_set_free(icl_repr_set *r);

/* ---- task decodability (Han et al.) ---- */

typedef struct {
    int k;               /* neighbours of the leave-one-out vote; ICL_KNN_DEFAULT_K */
    int pairwise_level;  /* level of the task x task matrix; -1 = the level with the highest mean TD */
    int pca_dims;        /* > 0: also the PCA coordinates of the items on this many components per level */
} icl_td_options;

/* k 10, pairwise at the best level, no PCA. */
icl_td_options icl_td_options_default(void);

typedef struct {
    int levels, n_tasks, n, pca_dims;
    double *td;          /* (levels, n_tasks): TD_t = fraction of task t's items whose k nearest others vote t;
                            NaN at a level where every item has the same representation (e.g. the
                            embedding of one token at one position), where the vote is only the tie rule */
    double *td_mean;     /* (levels): unweighted mean over tasks */
    int best_level;      /* argmax of td_mean over the defined levels, the lowest level on ties */
    int pairwise_level;
    double *pairwise;    /* (n_tasks, n_tasks) icl_knn_pairwise at pairwise_level */
    double *score;       /* (n_tasks) mean behaviour score of each task's items (icl_repr_set.score) */
    double *pca;         /* (levels, n, pca_dims) centred coordinates, or NULL */
    double *pca_var;     /* (levels, pca_dims) component variances, or NULL */
} icl_td_result;

/* TD of every level of `r`, whose items carry labels (n) in [0, n_tasks). */
icl_status icl_td_from_repr(const icl_repr_set *r, const int32_t *labels, int n_tasks, const icl_td_options *opt,
                            icl_td_result *out);
/* Generate the prompt set, collect it at `site` (NULL = icl_repr_site_default)
 * and compute TD. Needs at least 2 tasks. */
icl_status icl_task_decodability(icl_model *m, const icl_task_family *f, const icl_repr_prompts_options *popt,
                                 const icl_repr_site *site, const icl_td_options *topt, icl_td_result *out);
void icl_td_result_free(icl_td_result *r);

/* Periodic checkpoints of a training run: the files step_<digits>.safetensors
 * of `dir` (as `icl train --checkpoint-every` writes them), by increasing step. */
typedef struct {
    int n;
    long *steps;   /* (n) */
    char **paths;  /* (n) dir/step_....safetensors */
} icl_checkpoint_list;

/* ICL_ERR_IO if dir cannot be read, ICL_ERR_INVALID_ARG if it holds no step checkpoint. */
icl_status icl_checkpoint_list_steps(const char *dir, icl_checkpoint_list *out);
void icl_checkpoint_list_free(icl_checkpoint_list *l);

typedef struct {
    int n_ckpt, levels, n_tasks;
    long *steps;      /* (n_ckpt) */
    double *td;       /* (n_ckpt, levels, n_tasks) */
    double *td_mean;  /* (n_ckpt, levels) */
    double *score;    /* (n_ckpt, n_tasks) mean behaviour score on the same prompts */
} icl_td_curve;

/* TD per (checkpoint, level, task) on one prompt set for every checkpoint
 * of the list (each loaded on `backend`); the checkpoints must share one
 * config. Han et al.'s TD over training (their Figs. 9-10). */
icl_status icl_td_over_checkpoints(const icl_checkpoint_list *list, icl_backend_kind backend,
                                   const icl_task_family *f, const icl_repr_prompts_options *popt,
                                   const icl_repr_site *site, int k, icl_td_curve *out);
void icl_td_curve_free(icl_td_curve *c);

/* ---- RSA (Yousefi et al.) ---- */

/* A hypothesis about which items should be represented alike: labels (same
 * label = alike, H_ab = [l_a == l_b]) or continuous values (H_ab = -|v_a - v_b|);
 * exactly one of the two is non-NULL. */
typedef struct {
    const char *name;
    const int32_t *labels; /* (n) */
    const double *values;  /* (n) */
} icl_rsa_hypothesis;

/* RSM of every level (standardise, cosine: icl_rsa_rsm) and its Spearman
 * alignment with each hypothesis, with a permutation p-value from n_perm
 * shuffles of the labels / values drawn from `rng`: p = (1 + #{rho_perm >=
 * rho - 1e-12}) / (1 + n_perm). rho, p (n_hyp, levels); rsm (levels, n, n)
 * optional. A level whose RSM or hypothesis is constant gives NaN. */
icl_status icl_rsa_levels(const icl_repr_set *r, const icl_rsa_hypothesis *hyp, int n_hyp, int n_perm, icl_rng *rng,
                          double *rho, double *p, double *rsm);

#define ICL_RSA_MAX_SHOTS 8

typedef struct {
    int shots[ICL_RSA_MAX_SHOTS]; /* conditions: examples per prompt, e.g. {0, 8} */
    int n_shots;
    int same_queries;       /* 1: every condition keeps the first `shots` examples of prompts generated with
                               max(shots) examples, so conditions share their queries; 0: independent prompts */
    int n_perm;             /* permutations per p-value */
    int keep_rsm;           /* 1: return the RSMs */
    const int32_t *labels;  /* (n) optional extra hypothesis "labels" (item order: task-major) */
    uint64_t seed;          /* permutations */
} icl_rsa_options;

/* Shots {0, the family default}, same queries, 1000 permutations, no RSMs, no extra labels, seed 1. */
icl_rsa_options icl_rsa_options_default(const icl_task_family *f);

/* Hypotheses of the probe, in this order: "task" (same task), "answer"
 * (token: same query answer; vector: the query answer value), then "labels"
 * if given. */
#define ICL_RSA_MAX_HYP 3

typedef struct {
    int n_shots, n_hyp, levels, n;
    int *shots;              /* (n_shots) */
    const char *hyp_names[ICL_RSA_MAX_HYP];
    double *rho, *p;         /* (n_shots, n_hyp, levels) */
    double *score;           /* (n_shots) mean behaviour score */
    int32_t *task_labels;    /* (n) */
    double *rsm;             /* (n_shots, levels, n, n) if keep_rsm, else NULL */
} icl_rsa_result;

/* RSA per condition and level. popt->n_examples and keep_examples are set
 * from the shots (independent prompts use a seed derived from popt->seed and
 * the shot count); site NULL = icl_repr_site_parse(f, NULL, NULL, NULL,
 * min(shots)), a site that exists at every shot count. */
icl_status icl_rsa_probe(icl_model *m, const icl_task_family *f, const icl_repr_prompts_options *popt,
                         const icl_repr_site *site, const icl_rsa_options *ropt, icl_rsa_result *out);
void icl_rsa_result_free(icl_rsa_result *r);

/* ---- linear probes ---- */

typedef enum {
    ICL_LINEAR_TASK = 0, /* multinomial logistic on the task; metric: cross-validated accuracy */
    ICL_LINEAR_ANSWER,   /* token: logistic on the query answer (icl_repr_prompts_answer_ids), accuracy;
                            vector: ridge on the query answer value, R^2 */
    ICL_LINEAR_WEIGHTS,  /* vector: ridge on the prompt's least-squares weights (icl_repr_prompts_weights),
                            mean R^2 over the D weights */
    ICL_LINEAR_COUNT
} icl_linear_target;

/* "task", "answer", "weights"; NULL out of range. */
const char *icl_linear_target_name(icl_linear_target t);
icl_status icl_linear_target_parse(const char *name, icl_linear_target *out);

typedef struct {
    int folds;       /* k-fold cross-validation; default 5 */
    double l2;       /* logistic penalty; default 1e-3 */
    double alpha;    /* ridge penalty; default 1e-4 */
    uint64_t seed;   /* folds; every level uses the same folds */
} icl_linear_options;

icl_linear_options icl_linear_options_default(void);

/* Fit the probe at every level of r (items of prompt set s): metric
 * (levels) = cross-validated accuracy or R^2; chance (optional) = the
 * accuracy of always predicting the most frequent class (NaN for ridge).
 * ICL_ERR_INVALID_ARG for a target the set's mode has not, or a target with
 * a single class. */
icl_status icl_linear_probe_levels(const icl_repr_set *r, const icl_repr_prompts *s, icl_linear_target target,
                                   const icl_linear_options *opt, double *metric, double *chance);

/* ---- attention to roles (Yousefi et al.) ---- */

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

icl_status icl_attention_probe(icl_model *m, const icl_task_family *f, const icl_attn_options *opt,
                               icl_attn_result *out);
void icl_attn_result_free(icl_attn_result *r);

ICL_END_DECLS
#endif
