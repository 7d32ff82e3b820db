/* The convenience training loop: batches from a callback, steps, and the
 * log / eval / checkpoint callbacks at their intervals. */
#include "error.h"
#include "icl/train.h"

static int due(long step, long every, long last) { return every > 0 && (step % every == 0 || step == last); }

icl_status icl_train_loop(icl_model *m, icl_optimizer *o, icl_rng *data_rng, const icl_train_loop_config *cfg) {
    if (!m || !o || !data_rng || !cfg)
        return icl_fail(ICL_ERR_INVALID_ARG, "icl_train_loop: NULL argument");
    if (!cfg->next_batch)
        return icl_fail(ICL_ERR_INVALID_ARG, "icl_train_loop: next_batch callback is required");
    if (cfg->grad_accum < 1 || cfg->grad_accum > ICL_MAX_GRAD_ACCUM)
        return icl_fail(ICL_ERR_INVALID_ARG, "icl_train_loop: grad_accum = %d must be in [1, %d]", cfg->grad_accum, ICL_MAX_GRAD_ACCUM);
    if (cfg->steps < 0 || cfg->log_every < 0 || cfg->eval_every < 0 || cfg->checkpoint_every < 0)
        return icl_fail(ICL_ERR_INVALID_ARG, "icl_train_loop: step counts and intervals must be >= 0");

    icl_batch micro[ICL_MAX_GRAD_ACCUM];
    for (long step = icl_optimizer_step_count(o) + 1; step <= cfg->steps; step++) {
        if (cfg->should_stop && cfg->should_stop(cfg->user))
            break;
        for (int k = 0; k < cfg->grad_accum; k++) {
            /* Each micro-batch draws from its own child of the data stream, so the
             * data of step s is the same whether or not the run was resumed. */
            icl_rng rng;
            icl_rng_split(&rng, data_rng, (uint64_t)step * (uint64_t)cfg->grad_accum + (uint64_t)k);
            ICL_TRY(cfg->next_batch(cfg->user, step, k, &rng, &micro[k]));
        }
        icl_step_stats stats;
        ICL_TRY(icl_train_step(m, o, micro, cfg->grad_accum, &stats));
        if (cfg->on_log && due(step, cfg->log_every, cfg->steps))
            ICL_TRY(cfg->on_log(cfg->user, &stats));
        if (cfg->on_eval && due(step, cfg->eval_every, cfg->steps))
            ICL_TRY(cfg->on_eval(cfg->user, &stats));
        if (cfg->on_checkpoint && due(step, cfg->checkpoint_every, cfg->steps))
            ICL_TRY(cfg->on_checkpoint(cfg->user, &stats));
    }
    return ICL_OK;
}
