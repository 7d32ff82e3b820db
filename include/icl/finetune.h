/* Partial finetuning (Han et al., Table 1, adapted to full-rank updates of
 * tiny models): train only the first n or only the last n blocks of a saved
 * model on a task family, then compare task decodability and accuracy of
 * the original and the two finetuned copies. */
#ifndef ICL_FINETUNE_H
#define ICL_FINETUNE_H

#include <stdint.h>
#include "icl/model.h"
#include "icl/decodability.h"
#include "icl/eval.h"
#include "icl/task.h"
#include "icl/train.h"

ICL_BEGIN_DECLS

typedef enum {
    ICL_FT_FIRST = 0, /* blocks [0, n) train */
    ICL_FT_LAST       /* blocks [L-n, L) train */
} icl_ft_part;

/* "first", "last"; NULL out of range. */
const char *icl_ft_part_name(icl_ft_part p);

typedef struct {
    int n_layers;           /* n: blocks that train, 1..L */
    long steps;             /* optimizer steps, >= 1 */
    int batch;              /* prompts per step */
    icl_optim_config optim; /* total_steps <= 0: `steps`; warmup_steps < 0: min(100, steps/10) */
    int train_io;           /* 1: the first-n variant also trains the token embedding / read-in and the
                               position embedding; the last-n variant the final layernorm and the
                               separate head / read-out (a tied head is the token embedding and stays
                               frozen). 0: only the blocks train. */
    const int *tasks;       /* training tasks; NULL = every task */
    int n_tasks;
    int n_examples;         /* examples per training prompt; -1 = the family default */
    uint64_t seed;          /* training data */
} icl_finetune_options;

/* n 1, 200 steps, batch 32, icl_optim_config_default() with the step-derived
 * schedule, blocks only, every task, family default examples, seed 1. */
icl_finetune_options icl_finetune_options_default(void);

/* Finetune m in place on prompts of f (answers-only loss): every parameter
 * is frozen except the blocks of `part` (and the input / output layers with
 * train_io). final_loss (optional): mean training loss of the last
 * min(10, steps) steps. The family must fit the model (same mode, vocabulary
 * / input width, prompts within the context). */
icl_status icl_finetune_layers(icl_model *m, const icl_task_family *f, icl_ft_part part,
                               const icl_finetune_options *opt, double *final_loss);

#define ICL_FT_VARIANTS 3 /* original, first-n finetuned, last-n finetuned */

typedef struct {
    const icl_repr_prompts_options *td_prompts; /* decodability prompts (NULL: 100 per task, seed 1) */
    const icl_repr_site *site;                /* NULL: icl_repr_site_default */
    int k;                                    /* kNN neighbours */
    int eval_prompts;                         /* icl_eval_tasks prompts per task */
    uint64_t eval_seed;
    int keep_inputs;                          /* 1: the result keeps what its figures are computed from
                                                 (td_prompts, td_repr, eval); 0: they stay empty */
} icl_finetune_eval_options;

/* Decodability with 100 prompts per task at the default site, k 10; 100 evaluation prompts, seed 12345;
 * keep_inputs 0. */
icl_finetune_eval_options icl_finetune_eval_options_default(void);

typedef struct {
    int levels, n_td_tasks, n_tasks;
    const char *variant_names[ICL_FT_VARIANTS]; /* "original", "first", "last" */
    double final_loss[ICL_FT_VARIANTS];        /* training loss at the end; NaN for the original */
    double *td_mean;                           /* (ICL_FT_VARIANTS, levels) mean TD per level */
    int best_level[ICL_FT_VARIANTS];
    double td_best[ICL_FT_VARIANTS];           /* mean TD at the best level */
    double *td_best_task;                      /* (ICL_FT_VARIANTS, n_td_tasks) TD per task at the best level */
    double *loss, *metric;                     /* (ICL_FT_VARIANTS, n_tasks) icl_eval_tasks on every task of f */
    long steps;
    double *train_loss;                        /* (ICL_FT_VARIANTS, steps) training loss of every step (NaN for the
                                                  original): final_loss is the mean of the last min(10, steps) */
    /* keep_inputs only (else zeroed): */
    icl_repr_prompts td_prompts;               /* the decodability prompts, the same for every variant */
    icl_repr_set td_repr[ICL_FT_VARIANTS];     /* their representations at the site, from which TD is computed */
    icl_eval_detail eval[ICL_FT_VARIANTS];     /* icl_eval_tasks prompt by prompt: loss and metric */
} icl_finetune_result;

/* Clone m twice, finetune the first n and the last n blocks, and measure
 * TD (as icl_decodability_run: one prompt set, collected at the site, then
 * icl_td_from_repr) and accuracy / squared error (icl_eval_tasks) of the
 * original and both copies on f. m itself is not changed. */
icl_status icl_finetune_run(icl_model *m, const icl_task_family *f, const icl_finetune_options *opt,
                            const icl_finetune_eval_options *ev, icl_finetune_result *out);
void icl_finetune_result_free(icl_finetune_result *r);

ICL_END_DECLS
#endif
