/* AdamW with a warm-up + cosine schedule, global-norm clipping and per-tensor
 * freezing. The moments live in two buffers laid out like the parameters. */
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include "dist_internal.h"
#include "error.h"
#include "icl/train.h"
#include "model_internal.h"

/* What a recorded step graph depends on besides fixed buffers: the shape and
 * the allocation the activations are carved from, and the set of updated
 * tensors. An evaluation at another shape in between re-carves the views, and
 * the next training step carves them back to the same addresses. */
typedef struct {
    int B, T;
    long acts_generation, spans_version;
} step_key;

struct icl_optimizer {
    icl_model *model;
    icl_optim_config cfg;
    float *m, *v;          /* (num_params) each, backend memory */
    unsigned char *frozen; /* [n_tensors] */
    long t;                /* steps taken */

    icl_step_scalars *scalars;        /* backend memory */
    icl_step_scalars *staged_scalars; /* staging: uploaded before a step, downloaded after it */
    icl_adamw_span *spans;            /* [n_tensors] backend memory: the trainable tensors */
    int n_spans;
    size_t max_numel;
    int spans_dirty;
    long spans_version;

    int use_graphs;   /* record steps as graphs where the backend can */
    int graph_failed; /* a capture failed: run eagerly from now on */
    void *graph;      /* the recorded step, valid for graph_key */
    step_key graph_key, warm_key;

    icl_dist *dist; /* data-parallel steps over its ranks when it has more than one */
};

icl_optim_config icl_optim_config_default(void) {
    icl_optim_config c;
    c.lr = 1e-3f;
    c.min_lr_frac = 0.1f;
    c.warmup_steps = 100;
    c.total_steps = 1000;
    c.beta1 = 0.9f;
    c.beta2 = 0.99f;
    c.eps = 1e-8f;
    c.weight_decay = 0.01f;
    c.grad_clip = 1.0f;
    return c;
}

icl_status icl_optim_config_validate(const icl_optim_config *c) {
    if (!c)
        return icl_fail(ICL_ERR_INVALID_ARG, "icl_optim_config_validate: cfg is NULL");
    if (!(c->lr > 0.0f) || isinf(c->lr))
        return icl_fail(ICL_ERR_CONFIG, "optimizer: lr = %g must be positive and finite", (double)c->lr);
    if (!(c->min_lr_frac >= 0.0f && c->min_lr_frac <= 1.0f))
        return icl_fail(ICL_ERR_CONFIG, "optimizer: min_lr_frac = %g must be in [0, 1]", (double)c->min_lr_frac);
    if (c->warmup_steps < 0 || c->total_steps < 1)
        return icl_fail(ICL_ERR_CONFIG, "optimizer: warmup_steps = %d must be >= 0 and total_steps = %d >= 1",
                        c->warmup_steps, c->total_steps);
    if (!(c->beta1 >= 0.0f && c->beta1 < 1.0f) || !(c->beta2 >= 0.0f && c->beta2 < 1.0f))
        return icl_fail(ICL_ERR_CONFIG, "optimizer: betas (%g, %g) must be in [0, 1)", (double)c->beta1,
                        (double)c->beta2);
    if (!(c->eps > 0.0f))
        return icl_fail(ICL_ERR_CONFIG, "optimizer: eps = %g must be positive", (double)c->eps);
    if (!(c->weight_decay >= 0.0f) || isinf(c->weight_decay))
        return icl_fail(ICL_ERR_CONFIG, "optimizer: weight_decay = %g must be >= 0", (double)c->weight_decay);
    if (isnan(c->grad_clip))
        return icl_fail(ICL_ERR_CONFIG, "optimizer: grad_clip is NaN");
    return ICL_OK;
}

float icl_optim_lr_at(const icl_optim_config *c, long step) {
    if (step < c->warmup_steps)
        return c->lr * (float)(step + 1) / (float)c->warmup_steps;
    long decay_steps = c->total_steps - c->warmup_steps;
    double progress = decay_steps > 0 ? (double)(step - c->warmup_steps) / (double)decay_steps : 1.0;
    if (progress > 1.0)
        progress = 1.0;
    double cosine = 0.5 * (1.0 + cos(3.14159265358979323846 * progress)); /* 1 -> 0 */
    double min_lr = (double)c->lr * c->min_lr_frac;
    return (float)(min_lr + ((double)c->lr - min_lr) * cosine);
}

icl_status icl_optimizer_create(icl_optimizer **out, icl_model *m, const icl_optim_config *cfg) {
    if (!out || !m || !cfg)
        return icl_fail(ICL_ERR_INVALID_ARG, "icl_optimizer_create: NULL argument");
    *out = NULL;
    ICL_TRY(icl_optim_config_validate(cfg));
    icl_optimizer *o = calloc(1, sizeof *o);
    if (!o)
        return icl_fail(ICL_ERR_NOMEM, "icl_optimizer_create: out of memory");
    o->model = m;
    o->cfg = *cfg;
    o->frozen = calloc((size_t)m->n_tensors, 1);
    o->spans_dirty = 1;
    o->use_graphs = 1;
    size_t bytes = m->n_params * sizeof(float);
    const icl_backend_ops *ops = m->be->ops;
    icl_status s = o->frozen ? ICL_OK : icl_fail(ICL_ERR_NOMEM, "icl_optimizer_create: out of memory");
    if (s == ICL_OK)
        s = ops->alloc(m->be, (void **)&o->m, bytes);
    if (s == ICL_OK)
        s = ops->alloc(m->be, (void **)&o->v, bytes);
    if (s == ICL_OK)
        s = ops->alloc(m->be, (void **)&o->scalars, sizeof *o->scalars);
    if (s == ICL_OK)
        s = ops->alloc_staging(m->be, (void **)&o->staged_scalars, sizeof *o->staged_scalars);
    if (s == ICL_OK)
        s = ops->alloc(m->be, (void **)&o->spans, (size_t)m->n_tensors * sizeof *o->spans);
    if (s != ICL_OK) {
        icl_optimizer_free(o);
        return s;
    }
    *out = o;
    return ICL_OK;
}

void icl_optimizer_free(icl_optimizer *o) {
    if (!o)
        return;
    icl_backend *be = o->model->be;
    if (o->graph) be->ops->graph_free(be, o->graph);
    if (o->m) be->ops->release(be, o->m);
    if (o->v) be->ops->release(be, o->v);
    if (o->scalars) be->ops->release(be, o->scalars);
    if (o->staged_scalars) be->ops->release_staging(be, o->staged_scalars);
    if (o->spans) be->ops->release(be, o->spans);
    free(o->frozen);
    free(o);
}

const icl_optim_config *icl_optimizer_config(const icl_optimizer *o) { return o ? &o->cfg : NULL; }
long icl_optimizer_step_count(const icl_optimizer *o) { return o ? o->t : 0; }

int icl_optimizer_is_frozen(const icl_optimizer *o, int i) {
    return (o && i >= 0 && i < o->model->n_tensors) ? o->frozen[i] : 0;
}

icl_status icl_optimizer_freeze(icl_optimizer *o, icl_group_kind group, int layer, int frozen) {
    if (!o)
        return icl_fail(ICL_ERR_INVALID_ARG, "icl_optimizer_freeze: optimizer is NULL");
    if ((unsigned)group > ICL_GROUP_HEAD)
        return icl_fail(ICL_ERR_INVALID_ARG, "icl_optimizer_freeze: unknown group %d", (int)group);
    if (layer < -1 || layer >= o->model->L)
        return icl_fail(ICL_ERR_INVALID_ARG, "icl_optimizer_freeze: layer %d out of range [-1, %d)", layer,
                        o->model->L);
    for (int i = 0; i < o->model->n_tensors; i++) {
        const icl_param_info *t = &o->model->tensors[i];
        if (t->group == group && (layer == -1 || t->layer == layer))
            o->frozen[i] = frozen ? 1 : 0;
    }
    o->spans_dirty = 1;
    return ICL_OK;
}

icl_status icl_optimizer_freeze_layers(icl_optimizer *o, int first, int count, int frozen) {
    if (!o)
        return icl_fail(ICL_ERR_INVALID_ARG, "icl_optimizer_freeze_layers: optimizer is NULL");
    if (first < 0 || count < 0 || first + count > o->model->L)
        return icl_fail(ICL_ERR_INVALID_ARG, "icl_optimizer_freeze_layers: blocks [%d, %d) not within [0, %d)", first,
                        first + count, o->model->L);
    for (int l = first; l < first + count; l++) {
        ICL_TRY(icl_optimizer_freeze(o, ICL_GROUP_ATTN, l, frozen));
        ICL_TRY(icl_optimizer_freeze(o, ICL_GROUP_MLP, l, frozen));
        ICL_TRY(icl_optimizer_freeze(o, ICL_GROUP_NORM, l, frozen));
    }
    return ICL_OK;
}

void icl_optimizer_set_graphs(icl_optimizer *o, int enabled) {
    if (!o)
        return;
    o->use_graphs = enabled != 0;
    o->graph_failed = 0;
}

/* The trainable tensors as AdamW spans, uploaded when the frozen set changed. */
static icl_status refresh_spans(icl_optimizer *o) {
    if (!o->spans_dirty)
        return ICL_OK;
    const icl_model *m = o->model;
    icl_adamw_span *host = calloc((size_t)m->n_tensors + 1, sizeof *host);
    if (!host)
        return icl_fail(ICL_ERR_NOMEM, "optimizer: out of memory");
    int n = 0;
    size_t max_numel = 0;
    for (int i = 0; i < m->n_tensors; i++) {
        const icl_param_info *t = &m->tensors[i];
        if (o->frozen[i])
            continue;
        host[n].offset = (int64_t)t->offset;
        host[n].numel = (int64_t)t->numel;
        host[n].decay = t->decay;
        n++;
        if (t->numel > max_numel)
            max_numel = t->numel;
    }
    icl_status s = m->be->ops->to_device(m->be, o->spans, host, (size_t)n * sizeof *host);
    free(host);
    ICL_TRY(s);
    o->n_spans = n;
    o->max_numel = max_numel;
    o->spans_dirty = 0;
    o->spans_version++;
    return ICL_OK;
}

/* The host's half of the step scalars, for the step o->t + 1. */
static void stage_scalars(icl_optimizer *o) {
    icl_step_scalars *st = o->staged_scalars;
    long t = o->t + 1;
    memset(st, 0, sizeof *st);
    st->lr = icl_optim_lr_at(&o->cfg, o->t);
    /* bias corrections in double so large t stays accurate, as the CPU kernel does */
    st->c1 = (float)(1.0 / (1.0 - pow(o->cfg.beta1, (double)t)));
    st->c2 = (float)(1.0 / (1.0 - pow(o->cfg.beta2, (double)t)));
    st->grad_clip = o->cfg.grad_clip;
    st->t = t;
    st->clip_scale = 1.0f;
}

/* Queue the update from the gradients: global norm of the trainable tensors
 * (each run of consecutive trainable tensors is one reduction; a tied
 * embedding is one tensor, so it is counted once), clip factor, AdamW, and
 * the scalars back to the staging. */
static void queue_update(icl_optimizer *o) {
    icl_model *m = o->model;
    const icl_backend_ops *ops = m->be->ops;
    for (int i = 0; i < m->n_tensors;) {
        if (o->frozen[i]) {
            i++;
            continue;
        }
        size_t begin = m->tensors[i].offset, end = begin;
        for (; i < m->n_tensors && !o->frozen[i]; i++)
            end = m->tensors[i].offset + m->tensors[i].numel;
        ops->sum_squares_accumulate(m->be, &o->scalars->grad_sq, m->grads + begin, end - begin);
    }
    ops->clip_scale(m->be, o->scalars);
    ops->adamw_update(m->be, m->params, o->m, o->v, m->grads, o->spans, o->n_spans, o->max_numel, o->scalars,
                      o->cfg.beta1, o->cfg.beta2, o->cfg.eps, o->cfg.weight_decay);
    ops->download(m->be, o->staged_scalars, o->scalars, sizeof *o->scalars);
}

/* After the sync: count the step, or report why AdamW skipped it. */
static icl_status finish_update(icl_optimizer *o, icl_step_stats *stats) {
    const icl_step_scalars *r = o->staged_scalars;
    double norm = sqrt(r->grad_sq);
    if (r->skip)
        return icl_fail(ICL_ERR_NUMERIC, "optimizer step %ld: gradient norm is %g; no parameter was changed",
                        o->t + 1, norm);
    o->t++;
    o->model->forward_done = 0; /* the stored activations no longer match the parameters */
    if (stats) {
        memset(stats, 0, sizeof *stats);
        stats->step = o->t;
        stats->grad_norm = (float)norm;
        stats->lr = r->lr;
    }
    return ICL_OK;
}

icl_status icl_optimizer_update(icl_optimizer *o, icl_step_stats *stats) {
    if (!o)
        return icl_fail(ICL_ERR_INVALID_ARG, "icl_optimizer_update: optimizer is NULL");
    icl_backend *be = o->model->be;
    ICL_TRY(refresh_spans(o));
    stage_scalars(o);
    be->ops->upload(be, o->scalars, o->staged_scalars, sizeof *o->scalars);
    queue_update(o);
    ICL_TRY(be->ops->sync(be));
    return finish_update(o, stats);
}

icl_status icl_optimizer_get_state(const icl_optimizer *o, float *m_host, float *v_host, size_t n) {
    if (!o || !m_host || !v_host)
        return icl_fail(ICL_ERR_INVALID_ARG, "icl_optimizer_get_state: NULL argument");
    icl_model *m = o->model;
    if (n != m->n_params)
        return icl_fail(ICL_ERR_SHAPE, "icl_optimizer_get_state: buffers hold %zu floats, model has %zu", n,
                        m->n_params);
    ICL_TRY(m->be->ops->to_host(m->be, m_host, o->m, n * sizeof(float)));
    return m->be->ops->to_host(m->be, v_host, o->v, n * sizeof(float));
}

icl_status icl_optimizer_set_state(icl_optimizer *o, const float *m_host, const float *v_host, size_t n,
                                   long step_count) {
    if (!o || !m_host || !v_host)
        return icl_fail(ICL_ERR_INVALID_ARG, "icl_optimizer_set_state: NULL argument");
    icl_model *m = o->model;
    if (n != m->n_params)
        return icl_fail(ICL_ERR_SHAPE, "icl_optimizer_set_state: buffers hold %zu floats, model has %zu", n,
                        m->n_params);
    if (step_count < 0)
        return icl_fail(ICL_ERR_INVALID_ARG, "icl_optimizer_set_state: step_count %ld is negative", step_count);
    ICL_TRY(m->be->ops->to_device(m->be, o->m, m_host, n * sizeof(float)));
    ICL_TRY(m->be->ops->to_device(m->be, o->v, v_host, n * sizeof(float)));
    o->t = step_count;
    return ICL_OK;
}

/* Stage micro-batch b with its share 1/n_micro of the gradient. */
static icl_status stage_micro_batch(icl_model *m, const icl_batch *b, int n_micro) {
    ICL_TRY(icl_model_stage_batch(m, b));
    if (!m->staged_targets)
        return icl_fail(ICL_ERR_INVALID_ARG, "icl_train_step: the batch has no targets");
    icl_model_stage_dlosses(m, 1.0f / (float)n_micro);
    return ICL_OK;
}

/* Forward and backward on the staged micro-batch; a non-finite loss makes AdamW skip the step. */
static icl_status queue_micro_batch(icl_model *m, icl_optimizer *o) {
    ICL_TRY(icl_model_queue_forward(m));
    m->be->ops->flag_nonfinite_losses(m->be, o->scalars, m->a.losses, m->a.weights, m->B * m->T);
    return icl_model_queue_backward(m);
}

/* The step's scalars to the backend, and the gradients zeroed. */
static icl_status queue_step_start(icl_model *m, icl_optimizer *o) {
    m->be->ops->upload(m->be, o->scalars, o->staged_scalars, sizeof *o->scalars);
    return icl_model_zero_grad(m);
}

/* A whole step on one staged micro-batch, queued without waiting. */
static icl_status queue_step(icl_model *m, icl_optimizer *o) {
    ICL_TRY(queue_step_start(m, o));
    ICL_TRY(queue_micro_batch(m, o));
    queue_update(o);
    return ICL_OK;
}

icl_status icl_optimizer_set_dist(icl_optimizer *o, icl_dist *d) {
    if (!o)
        return icl_fail(ICL_ERR_INVALID_ARG, "icl_optimizer_set_dist: optimizer is NULL");
    o->dist = d;
    return ICL_OK;
}

icl_dist *icl_optimizer_dist(const icl_optimizer *o) { return o ? o->dist : NULL; }

/* Rows [lo, hi) of a batch, as a batch of their own. */
static icl_batch batch_rows(const icl_model *m, const icl_batch *b, int lo, int hi) {
    icl_batch s = *b;
    size_t off = (size_t)lo * (size_t)b->T;
    s.B = hi - lo;
    if (b->tokens) s.tokens = b->tokens + off;
    if (b->targets) s.targets = b->targets + off;
    if (b->inputs) s.inputs = b->inputs + off * (size_t)m->cfg.d_in;
    if (b->target_values) s.target_values = b->target_values + off * (size_t)m->cfg.d_out;
    if (b->loss_weights) s.loss_weights = b->loss_weights + off;
    return s;
}

/* Sum of a batch's loss weights, added as icl_model_stage_batch adds them. */
static double batch_weight(const icl_batch *b) {
    size_t N = (size_t)b->B * (size_t)b->T;
    if (!b->loss_weights)
        return (double)N;
    double w = 0.0;
    for (size_t i = 0; i < N; i++) w += b->loss_weights[i];
    return w;
}

/* Forward and backward on this rank's rows of every micro-batch; local[2+k]
 * gets micro-batch k's sum of w_i loss_i. The whole batch's weight stands in
 * for the rows' own, so d loss/d loss_i = w_i / (W n_micro) exactly as in one
 * process, and the ranks' gradients add up to the whole batch's. */
static icl_status dist_local_passes(icl_model *m, icl_optimizer *o, const icl_batch *micro, int n_micro,
                                    const double *wsum, double *local) {
    int rank = icl_dist_rank(o->dist), size = icl_dist_size(o->dist);
    ICL_TRY(refresh_spans(o));
    stage_scalars(o);
    ICL_TRY(queue_step_start(m, o));
    for (int k = 0; k < n_micro; k++) {
        const icl_batch *b = &micro[k];
        if (m->cfg.mode == ICL_MODE_TOKEN ? !b->targets : !b->target_values)
            return icl_fail(ICL_ERR_INVALID_ARG, "icl_train_step: the batch has no targets");
        if (!(wsum[k] > 0.0))
            return icl_fail(ICL_ERR_INVALID_ARG, "icl_train_step: every loss weight of micro-batch %d is zero", k);
        int lo = (int)((long)b->B * rank / size), hi = (int)((long)b->B * (rank + 1) / size);
        icl_batch rows = batch_rows(m, b, lo, hi);
        if (hi == lo || batch_weight(&rows) == 0.0)
            continue; /* nothing scored here: this rank adds zero */
        ICL_TRY(icl_model_stage_batch(m, &rows));
        m->weight_sum = wsum[k];
        icl_model_stage_dlosses(m, 1.0f / (float)n_micro);
        ICL_TRY(queue_micro_batch(m, o));
        ICL_TRY(m->be->ops->sync(m->be));
        double total = 0.0;
        for (int i = 0; i < m->B * m->T; i++) total += (double)m->staged.weights[i] * m->staged.losses[i];
        local[2 + k] = total;
    }
    return ICL_OK;
}

/* icl_train_step over the ranks of o->dist: each rank's rows, then one
 * exchange of (failed, non-finite, loss sums) so that every rank takes the
 * same decision, the gradient sum through the host, and the same update. */
static icl_status dist_train_step(icl_model *m, icl_optimizer *o, const icl_batch *micro, int n_micro,
                                  icl_step_stats *stats) {
    int size = icl_dist_size(o->dist), n = 2 + n_micro;
    double wsum[ICL_MAX_GRAD_ACCUM], local[2 + ICL_MAX_GRAD_ACCUM] = {0};
    if (n_micro > ICL_MAX_GRAD_ACCUM)
        return icl_fail(ICL_ERR_INVALID_ARG, "icl_train_step: n_micro = %d exceeds %d", n_micro, ICL_MAX_GRAD_ACCUM);
    for (int k = 0; k < n_micro; k++) wsum[k] = batch_weight(&micro[k]);
    icl_status s = dist_local_passes(m, o, micro, n_micro, wsum, local);
    local[0] = s != ICL_OK;
    for (int k = 0; k < n_micro; k++)
        if (!isfinite(local[2 + k]))
            local[1] = 1.0;
    double *all = malloc((size_t)size * (size_t)n * sizeof *all);
    if (!all)
        return icl_fail(ICL_ERR_NOMEM, "icl_train_step: out of memory");
    icl_status x = icl_dist_allgather_doubles(o->dist, all, local, n);
    int failed = -1, nonfinite = -1;
    double loss_sum = 0.0;
    for (int r = 0; x == ICL_OK && r < size; r++) {
        if (all[r * n] != 0.0 && failed < 0) failed = r;
        if (all[r * n + 1] != 0.0 && nonfinite < 0) nonfinite = r;
    }
    for (int k = 0; x == ICL_OK && k < n_micro; k++) {
        double total = 0.0;
        for (int r = 0; r < size; r++) total += all[r * n + 2 + k];
        loss_sum += (float)(total / wsum[k]);
    }
    free(all);
    ICL_TRY(x);
    if (s != ICL_OK)
        return s;
    if (failed >= 0)
        return icl_fail(ICL_ERR_STATE, "icl_train_step: rank %d of %d failed this step; no parameter was changed",
                        failed, size);
    if (nonfinite >= 0)
        return icl_fail(ICL_ERR_NUMERIC, "optimizer step %ld: the loss on rank %d is not finite; no parameter was "
                        "changed", o->t + 1, nonfinite);
    float *host;
    size_t bytes = m->n_params * sizeof(float);
    const icl_backend_ops *ops = m->be->ops;
    ICL_TRY(icl_dist_host_buffer(o->dist, m->n_params, &host));
    ICL_TRY(ops->to_host(m->be, host, m->grads, bytes));
    ICL_TRY(icl_dist_sum_floats(o->dist, host, m->n_params));
    ICL_TRY(ops->to_device(m->be, m->grads, host, bytes));
    queue_update(o);
    ICL_TRY(ops->sync(m->be));
    icl_step_stats st;
    ICL_TRY(finish_update(o, &st));
    st.loss = (float)(loss_sum / n_micro);
    st.graph = 0;
    if (stats)
        *stats = st;
    return ICL_OK;
}

static int same_key(step_key a, step_key b) {
    return a.B == b.B && a.T == b.T && a.acts_generation == b.acts_generation && a.spans_version == b.spans_version;
}

/* Run queue_step, from a recorded graph when possible. A tiny model's step is
 * hundreds of short kernels, so launching them one by one costs more than
 * running them; a graph launches them all at once. The first step of a shape
 * runs eagerly (buffers and scratch reach their size), the second is recorded,
 * and later ones replay it. Hooks read and write activations from the host
 * mid-pass, so a model with a hook always runs eagerly. */
static icl_status run_step(icl_model *m, icl_optimizer *o, int *replayed) {
    const icl_backend_ops *ops = m->be->ops;
    *replayed = 0;
    if (!o->use_graphs || o->graph_failed || !ops->graph_begin || m->hook)
        return queue_step(m, o);
    step_key key = {m->B, m->T, m->acts_generation, o->spans_version};
    if (o->graph && same_key(key, o->graph_key)) {
        ops->graph_launch(m->be, o->graph);
        *replayed = 1;
        return ICL_OK;
    }
    if (o->graph) {
        ops->graph_free(m->be, o->graph);
        o->graph = NULL;
    }
    if (!same_key(key, o->warm_key)) {
        o->warm_key = key;
        return queue_step(m, o);
    }
    void *graph = NULL;
    icl_status s = ops->graph_begin(m->be);
    if (s == ICL_OK) {
        icl_status queued = queue_step(m, o);
        s = ops->graph_end(m->be, &graph);
        if (s == ICL_OK && queued != ICL_OK) {
            ops->graph_free(m->be, graph);
            graph = NULL;
            s = queued;
        }
    }
    if (s != ICL_OK) {
        o->graph_failed = 1; /* nothing was queued: run this step eagerly, and the next ones */
        return queue_step(m, o);
    }
    o->graph = graph;
    o->graph_key = key;
    ops->graph_launch(m->be, graph);
    *replayed = 1;
    return ICL_OK;
}

icl_status icl_train_step(icl_model *m, icl_optimizer *o, const icl_batch *micro, int n_micro, icl_step_stats *stats) {
    if (!m || !o || !micro)
        return icl_fail(ICL_ERR_INVALID_ARG, "icl_train_step: NULL argument");
    if (o->model != m)
        return icl_fail(ICL_ERR_INVALID_ARG, "icl_train_step: the optimizer belongs to another model");
    if (n_micro < 1)
        return icl_fail(ICL_ERR_INVALID_ARG, "icl_train_step: n_micro = %d must be >= 1", n_micro);
    if (icl_dist_size(o->dist) > 1)
        return dist_train_step(m, o, micro, n_micro, stats);
    const icl_backend_ops *ops = m->be->ops;
    ICL_TRY(refresh_spans(o));
    stage_scalars(o);
    double loss_sum = 0.0;
    int replayed = 0;
    if (n_micro == 1) {
        ICL_TRY(stage_micro_batch(m, &micro[0], 1));
        ICL_TRY(run_step(m, o, &replayed));
        ICL_TRY(ops->sync(m->be));
        float loss;
        ICL_TRY(icl_model_staged_loss(m, &loss)); /* a non-finite loss made AdamW skip the step */
        loss_sum = loss;
    } else {
        /* the staging holds one micro-batch: wait for each before staging the next */
        ICL_TRY(queue_step_start(m, o));
        for (int k = 0; k < n_micro; k++) {
            float loss;
            ICL_TRY(stage_micro_batch(m, &micro[k], n_micro));
            ICL_TRY(queue_micro_batch(m, o));
            ICL_TRY(ops->sync(m->be));
            ICL_TRY(icl_model_staged_loss(m, &loss));
            loss_sum += loss;
        }
        queue_update(o);
        ICL_TRY(ops->sync(m->be));
    }
    icl_step_stats st;
    ICL_TRY(finish_update(o, &st));
    st.loss = (float)(loss_sum / n_micro);
    st.graph = replayed;
    if (stats)
        *stats = st;
    return ICL_OK;
}
