/* Synthetic in-context-learning tasks: prompt generators, labels, mixed-task
 * prompts, batches and a curriculum.
 *
 * A task family (retrieval, bitwise, basis_mixture, ...) is created from a
 * spec string "name[:key=value,...]" and holds several tasks (ret_1, AND,
 * basis_0, ...); a task id in [0, num_tasks) selects one. Full reference with
 * example prompts: docs/tasks.md.
 *
 * Token prompts: BOS x1 SEP y1 DELIM x2 SEP y2 DELIM ... xq SEP yq. Every
 * input has input_len tokens and every answer answer_len tokens, so the length
 * depends only on the number of examples n: T = (n+1)(input_len+answer_len+2).
 * The query answer is included so the prompt can be teacher-forced.
 *
 * Vector prompts (Garg et al. interleaving): x1 y1 x2 y2 ... xq yq, T = 2(n+1),
 * d_in = D+1 reals per position, d_out = 1:
 *   x position: channels [0,D) = x, channel D = 0;
 *   y position: channel 0 = y, channels [1,D) = 0, channel D = 1.
 * The prediction at x_i's position is scored against y_i (target_values). */
#ifndef ICL_TASK_H
#define ICL_TASK_H

#include <stddef.h>
#include <stdint.h>
#include "icl/config.h"
#include "icl/model.h"
#include "icl/rng.h"
#include "icl/status.h"

ICL_BEGIN_DECLS

/* Special tokens, the same in every token family; content tokens start at 3. */
#define ICL_TOKEN_BOS 0
#define ICL_TOKEN_SEP 1
#define ICL_TOKEN_DELIM 2 /* also the token of PAD positions */
#define ICL_TOKEN_FIRST_CONTENT 3

/* What a position of a prompt is. A DELIM belongs to the example it ends. */
typedef enum {
    ICL_ROLE_BOS = 0,
    ICL_ROLE_EX_INPUT,     /* token of x_i (i < n), or the x_i position in vector mode */
    ICL_ROLE_EX_SEP,       /* SEP after x_i */
    ICL_ROLE_EX_ANSWER,    /* token of y_i, or the y_i position */
    ICL_ROLE_DELIM,        /* DELIM after y_i */
    ICL_ROLE_QUERY_INPUT,  /* token of x_q, or the x_q position */
    ICL_ROLE_QUERY_SEP,    /* SEP after x_q: its output predicts the first query answer token */
    ICL_ROLE_QUERY_ANSWER, /* token of y_q, or the y_q position */
    ICL_ROLE_PAD,          /* right padding in a batch */
    ICL_ROLE_COUNT
} icl_role;

/* "bos", "ex_input", ..., "pad"; NULL for an invalid role. */
const char *icl_role_name(icl_role r);
/* "query_sep" -> ICL_ROLE_QUERY_SEP, ... (the names of icl_role_name);
 * ICL_ERR_INVALID_ARG listing the valid names otherwise. */
icl_status icl_role_parse(const char *name, int *role);

/* Which positions the loss counts (weight 1, all others 0).
 * Token mode: position t counts when its target token[t+1] is
 *   QUERY: a query answer token; ANSWERS: any answer token; ALL: any token.
 * Vector mode: QUERY: the x_q position; ANSWERS and ALL: every x position. */
typedef enum { ICL_LOSS_QUERY = 0, ICL_LOSS_ANSWERS, ICL_LOSS_ALL } icl_loss_mask;

/* ---- families ---- */

typedef struct icl_task_family icl_task_family;

/* Create a family from a spec: "retrieval", "retrieval:A=16,L=6,tasks=4",
 * "basis_mixture_small:sigma=0", ... Unknown family or option, a value that
 * is not a number: ICL_ERR_INVALID_ARG; a value out of range or options that
 * do not fit together (L > A): ICL_ERR_CONFIG. The message names the option. */
icl_status icl_task_family_create(icl_task_family **out, const char *spec);
void icl_task_family_free(icl_task_family *f);

/* Registered family and preset names, i in [0, count); NULL out of range. */
int icl_task_registry_count(void);
const char *icl_task_registry_name(int i);

/* The family's name ("retrieval") and canonical spec with every option
 * spelled out ("retrieval:A=16,L=6,tasks=4,n=8"): the spec recreates it. */
const char *icl_task_family_name(const icl_task_family *f);
const char *icl_task_family_spec(const icl_task_family *f);
icl_input_mode icl_task_family_mode(const icl_task_family *f);

int icl_task_family_num_tasks(const icl_task_family *f);
/* Name of task `task` ("ret_1", "AND", "basis_0"); NULL out of range. */
const char *icl_task_family_task_name(const icl_task_family *f, int task);
/* Task id of a task name; ICL_ERR_INVALID_ARG listing the valid names if unknown. */
icl_status icl_task_family_find_task(const icl_task_family *f, const char *name, int *task);
/* Parse a comma-separated list of task names into ids[0..*n) (cap entries at most). */
icl_status icl_task_family_parse_tasks(const icl_task_family *f, const char *list, int *ids, int cap, int *n);

/* Token mode: vocabulary size V (specials included) and printable token names. */
int icl_task_family_vocab_size(const icl_task_family *f);
const char *icl_task_family_token_name(const icl_task_family *f, int token);
/* Tokens per input x and per answer y (token mode); 1 and 1 in vector mode. */
int icl_task_family_input_len(const icl_task_family *f);
int icl_task_family_answer_len(const icl_task_family *f);
/* Vector mode: reals per position in (D+1) and out (1); 0 in token mode. */
int icl_task_family_d_in(const icl_task_family *f);
int icl_task_family_d_out(const icl_task_family *f);
/* Dimension D of the inputs x (vector mode); 0 in token mode. */
int icl_task_family_dim(const icl_task_family *f);
/* In-context examples per prompt the family was configured with (option n, K for basis_mixture). */
int icl_task_family_default_examples(const icl_task_family *f);
/* Positions T of a prompt with n_examples examples (n_examples >= 0). */
icl_status icl_task_family_prompt_len(const icl_task_family *f, int n_examples, int *T);
/* Set cfg's mode and vocab_size (token) or d_in/d_out (vector); other fields untouched. */
icl_status icl_task_family_fill_config(const icl_task_family *f, icl_config *cfg);
/* basis_mixture: the r input coordinates basis `task` uses, written to coords[0..*r)
 * (cap entries at most). ICL_ERR_UNSUPPORTED for other families. */
icl_status icl_task_family_basis(const icl_task_family *f, int task, int *coords, int cap, int *r);

/* ---- prompts ---- */

typedef struct {
    icl_loss_mask loss;
    int active_dims;  /* vector mode: x coordinates >= active_dims are 0 (curriculum); 0 = all */
    int query_unseen; /* 1: redraw the query until its input is none of the examples' inputs */
    int ctx;          /* > 0: fail with ICL_ERR_CONFIG if the prompt would be longer */
} icl_gen_options;

/* loss ANSWERS, all dims, query may repeat an example, no ctx limit. */
icl_gen_options icl_gen_options_default(void);

/* One prompt with per-position labels. Zero-initialise (icl_prompt p = {0};)
 * before the first use; generators reuse its storage; free with icl_prompt_free. */
typedef struct {
    icl_input_mode mode;
    int T;            /* positions */
    int n_examples;   /* in-context examples before the query */
    int task;         /* task of every example and the query; -1 in a mixed prompt */
    int answer_len;   /* tokens per answer (token mode), d_out (vector mode) */
    int d_in, d_out;  /* vector mode widths; 0 in token mode */
    int query_pos;    /* position whose output predicts the (first token of the) query answer */
    int32_t *tokens;      /* (T) token mode */
    int32_t *targets;     /* (T) token mode: tokens[t+1], -1 at the last position */
    float *inputs;        /* (T,d_in) vector mode */
    float *target_values; /* (T,d_out) vector mode: y_i at x_i's position, 0 elsewhere */
    float *loss_weights;  /* (T) */
    int32_t *roles;       /* (T) icl_role */
    int32_t *example_ids; /* (T) example index, n_examples for the query, -1 for BOS and PAD */
    int32_t *task_ids;    /* (T) task of that example; -1 for BOS, PAD and a mixed prompt's query */
} icl_prompt;

void icl_prompt_free(icl_prompt *p);
/* Deep copy src into dst (dst zero-initialised or previously used). */
icl_status icl_prompt_copy(icl_prompt *dst, const icl_prompt *src);
/* dst = src with only its first k examples kept (k in [0, src->n_examples]),
 * followed by the same query: positions are dropped, labels, targets and
 * example ids renumbered. dst zero-initialised or previously used. */
icl_status icl_prompt_keep_examples(const icl_prompt *src, int k, icl_prompt *dst);

/* A prompt of n_examples >= 0 examples of task `task` (all draws from rng). */
icl_status icl_task_generate(const icl_task_family *f, int task, int n_examples, const icl_gen_options *opt,
                             icl_rng *rng, icl_prompt *out);

/* Overwrite the query answer: answer_len tokens (token mode) or d_out values
 * (vector mode; pass NULL for the other pointer). Targets follow; weights stay. */
icl_status icl_prompt_set_query_answer(icl_prompt *p, const int32_t *tokens, const float *values);

/* Readable text ("<bos> c f a -> f | ...", vector values with 2 decimals)
 * into buf; ICL_ERR_INVALID_ARG if it does not fit in size bytes. */
icl_status icl_prompt_render(const icl_task_family *f, const icl_prompt *p, char *buf, size_t size);

/* Inputs and answers of a vector prompt as doubles: xs (n_examples+1, D), ys
 * (n_examples+1), the query last; max_points >= n_examples+1 is the room in
 * xs (max_points*D) and ys. For the regression baselines. */
icl_status icl_prompt_points(const icl_prompt *p, double *xs, double *ys, int max_points);

/* ---- mixed-task prompts ---- */

/* Example counts for proportions lambda (each >= 0, summing to 1 within 1e-6)
 * and n examples: floor(lambda_j n + 1e-9) each, then the remaining examples
 * one each to the largest fractional parts, ties to the lower index.
 * The counts sum to n, and count_j == lambda_j n whenever that is an integer. */
icl_status icl_task_mix_counts(const double *lambda, int n_tasks, int n_examples, int *counts);

typedef struct {
    icl_prompt prompt; /* query answer slots hold tasks[0]'s answer; query task ids are -1 */
    int n_tasks;
    int *tasks;            /* (n_tasks) */
    int *counts;           /* (n_tasks) examples of each task */
    int32_t *answers;      /* (n_tasks, answer_len) token mode: every task's answer to the query */
    float *answer_values;  /* (n_tasks, d_out) vector mode: every task's noise-free answer */
} icl_mixed_prompt;

void icl_mixed_prompt_free(icl_mixed_prompt *m);

/* A prompt whose n_examples >= 1 examples are split over distinct `tasks`
 * by icl_task_mix_counts, in random order, with a query input that is none of
 * the examples' inputs (opt->query_unseen is implied). Vector families draw
 * one function per task. */
icl_status icl_task_generate_mixed(const icl_task_family *f, const int *tasks, const double *lambda, int n_tasks,
                                   int n_examples, const icl_gen_options *opt, icl_rng *rng, icl_mixed_prompt *out);

/* ---- batches ---- */

typedef struct {
    int B;            /* prompts */
    int n_examples;   /* examples per prompt; -1 = the family default */
    const int *tasks; /* each prompt's task drawn uniformly from tasks[0..n_tasks); NULL = all tasks */
    int n_tasks;
    int pad_to;       /* > 0: right-pad every prompt to this length (fail if one is longer) */
    icl_gen_options gen;
} icl_task_batch_options;

/* B 32, family default examples, all tasks, no padding, icl_gen_options_default(). */
icl_task_batch_options icl_task_batch_options_default(void);

/* B prompts packed row-major for the model. Zero-initialise before the first
 * use; storage is reused; free with icl_task_batch_free. */
typedef struct {
    icl_batch batch;      /* B, T and the arrays below, ready for icl_model_forward */
    icl_input_mode mode;
    int B, T, d_in, d_out;
    int32_t *tokens, *targets;     /* (B,T) token mode */
    float *inputs;                 /* (B,T,d_in) vector mode */
    float *target_values;          /* (B,T,d_out) vector mode */
    float *loss_weights;           /* (B,T) */
    int32_t *roles, *example_ids, *task_ids; /* (B,T), padding: PAD, -1, -1 */
    int32_t *prompt_task;          /* (B) task of each prompt (-1 for mixed prompts) */
    int32_t *prompt_len;           /* (B) unpadded length */
    int32_t *query_pos;            /* (B) see icl_prompt.query_pos */
    icl_prompt *prompts;           /* (B) the unpadded prompts */
    int cap_prompts;
} icl_task_batch;

void icl_task_batch_free(icl_task_batch *b);

/* Generate opt->B single-task prompts. Prompt i draws its task and content
 * from its own stream icl_rng_split(base, i), where base is derived from one
 * draw of rng: prompt i does not depend on B or on the other prompts, and
 * consecutive calls give fresh prompts. */
icl_status icl_task_batch_generate(const icl_task_family *f, const icl_task_batch_options *opt, icl_rng *rng,
                                   icl_task_batch *out);

/* Pack B existing prompts of one mode (and one d_in) into a batch, right-padding
 * to the longest (or to pad_to > 0). The prompts are copied. */
icl_status icl_task_batch_pack(icl_task_batch *out, const icl_prompt *const *prompts, int B, int pad_to);

/* The answer task `task` gives to each row's query input: answers (B, answer_len).
 * Where `task` is the row's own task this is the prompt's query answer. Token mode only. */
icl_status icl_query_answers(const icl_task_family *f, const icl_task_batch *tb, int task, int32_t *answers);

/* ---- curriculum (Garg et al.) ---- */

/* Active input dimensions and examples per prompt grow by `inc` every `every`
 * training steps from `start` until they reach `end` (every = 0: always end). */
typedef struct {
    int dims_start, dims_end, dims_inc;
    long dims_every;
    int examples_start, examples_end, examples_inc;
    long examples_every;
} icl_curriculum;

/* Garg's schedule scaled to D dims and n examples: dims min(5,D) -> D by 1,
 * examples n*dims_start/D -> n by the increment that ends together with the
 * dims, both every 2000 steps. */
icl_status icl_curriculum_default(int dims, int n_examples, icl_curriculum *out);
/* A short-prompt phase: the first `short_steps` steps use `short_examples`
 * examples per prompt, then every step uses `n_examples`; the dims stay at
 * `dims` (a vector family's D; 1 for token families). Composed circuits such
 * as retrieval's escape their loss plateau far sooner on short prompts
 * (docs/tasks.md, Results). Needs 0 <= short_examples < n_examples, short_steps > 0. */
icl_status icl_curriculum_short_prompts(int dims, int short_examples, long short_steps, int n_examples,
                                        icl_curriculum *out);
icl_status icl_curriculum_validate(const icl_curriculum *c);
/* Values at training step `step` >= 0. */
icl_status icl_curriculum_at(const icl_curriculum *c, long step, int *active_dims, int *n_examples);

ICL_END_DECLS
#endif
