/* Training: AdamW with warm-up + cosine schedule, global-norm clipping,
 * gradient accumulation, per-group freezing, and a loop with callbacks. */
#ifndef ICL_TRAIN_H
#define ICL_TRAIN_H

#include <stdint.h>
#include "icl/model.h"
#include "icl/rng.h"

ICL_BEGIN_DECLS

typedef struct {
    float lr;            /* peak learning rate */
    float min_lr_frac;   /* cosine decays to lr * min_lr_frac */
    int warmup_steps;    /* linear warm-up from lr/warmup to lr */
    int total_steps;     /* length of the cosine; steps beyond it stay at the minimum */
    float beta1, beta2, eps;
    float weight_decay;  /* decoupled, on matrices only (icl_param_info.decay) */
    float grad_clip;     /* clip the global gradient norm to this; <= 0 disables */
} icl_optim_config;

/* lr 1e-3, min_lr_frac 0.1, warm-up 100, total 1000, betas (0.9, 0.99), eps 1e-8, wd 0.01, clip 1.0. */
icl_optim_config icl_optim_config_default(void);
icl_status icl_optim_config_validate(const icl_optim_config *cfg);
/* Learning rate at optimizer step `step` (0-based). */
float icl_optim_lr_at(const icl_optim_config *cfg, long step);

typedef struct icl_optimizer icl_optimizer;

/* Adam moments for every parameter of `m`, zero-initialised, on m's backend. */
icl_status icl_optimizer_create(icl_optimizer **out, icl_model *m, const icl_optim_config *cfg);
void icl_optimizer_free(icl_optimizer *o);
const icl_optim_config *icl_optimizer_config(const icl_optimizer *o);
/* Optimizer steps taken so far (the t of Adam's bias correction). */
long icl_optimizer_step_count(const icl_optimizer *o);

/* Freeze (1) or unfreeze (0) every tensor of a group kind; for per-layer
 * groups `layer` selects the block, -1 means all blocks. A frozen tensor gets
 * no update and its Adam moments do not change. */
icl_status icl_optimizer_freeze(icl_optimizer *o, icl_group_kind group, int layer, int frozen);
/* Freeze or unfreeze blocks [first, first+count) entirely (attention, MLP, norms). */
icl_status icl_optimizer_freeze_layers(icl_optimizer *o, int first, int count, int frozen);
int icl_optimizer_is_frozen(const icl_optimizer *o, int tensor_index);

typedef struct {
    long step;        /* optimizer step just taken (1-based) */
    float loss;       /* mean loss over the micro-batches */
    float grad_norm;  /* global norm before clipping (trainable tensors only) */
    float lr;
    int graph;        /* 1 if icl_train_step ran the step from a recorded CUDA graph */
} icl_step_stats;

/* Apply one AdamW update from the gradients currently in the model. Fails
 * with ICL_ERR_NUMERIC (and changes nothing) if the gradient norm is not finite. */
icl_status icl_optimizer_update(icl_optimizer *o, icl_step_stats *stats);

/* One full step: zero grads, forward + backward on each of the n_micro
 * batches (gradients averaged), then icl_optimizer_update. On a backend with
 * graphs (CUDA) a single-micro-batch step without a hook is recorded on its
 * second occurrence of a batch shape and replayed after that: same kernels,
 * same results, a fraction of the launch cost. A non-finite loss or gradient
 * norm fails with ICL_ERR_NUMERIC and changes no parameter. */
icl_status icl_train_step(icl_model *m, icl_optimizer *o, const icl_batch *micro, int n_micro,
                          icl_step_stats *stats);

/* Record and replay training steps as CUDA graphs (1, the default) or
 * always launch kernels one by one (0). No effect on the CPU backend. */
void icl_optimizer_set_graphs(icl_optimizer *o, int enabled);

/* Adam moment buffers (num_params floats each) to/from host, for checkpoints. */
icl_status icl_optimizer_get_state(const icl_optimizer *o, float *m_host, float *v_host, size_t n);
icl_status icl_optimizer_set_state(icl_optimizer *o, const float *m_host, const float *v_host, size_t n,
                                   long step_count);

/* ---- the loop ---- */

/* Fill `batch` (and the storage it points to, owned by the callback) for
 * optimizer step `step`, micro-batch `micro`. Draw randomness only from `rng`
 * so that resuming reproduces the same data. */
typedef icl_status (*icl_batch_fn)(void *user, long step, int micro, icl_rng *rng, icl_batch *batch);
/* Called after each step; return non-OK to stop the loop with that status. */
typedef icl_status (*icl_step_fn)(void *user, const icl_step_stats *stats);

#define ICL_MAX_GRAD_ACCUM 64

typedef struct {
    long steps;            /* run until the optimizer has taken this many steps */
    int grad_accum;        /* micro-batches per step, 1..ICL_MAX_GRAD_ACCUM */
    icl_batch_fn next_batch;
    icl_step_fn on_log;    /* every log_every steps (and the last) */
    long log_every;
    icl_step_fn on_eval;   /* every eval_every steps (0 = never) */
    long eval_every;
    icl_step_fn on_checkpoint; /* every checkpoint_every steps (0 = never) */
    long checkpoint_every;
    void *user;
    /* Optional: asked before each step; nonzero ends the loop there with
     * ICL_OK (the step in progress and its callbacks finish first). A caller
     * tells a stop from the end by icl_optimizer_step_count(o) < steps. */
    int (*should_stop)(void *user);
} icl_train_loop_config;

/* Run steps from icl_optimizer_step_count(o) + 1 to cfg->steps, drawing data
 * from `data_rng` (saved by checkpoints, so a resumed run continues the stream),
 * until should_stop asks to stop. */
icl_status icl_train_loop(icl_model *m, icl_optimizer *o, icl_rng *data_rng, const icl_train_loop_config *cfg);

ICL_END_DECLS
#endif
