/* AdamW with a warm-up + cosine schedule, global-norm clipping and per-tensor
 * freezing. The moments live in two buffers laid out like the parameters. */
#include <math.h>
#include <stdlib.h>
#include "error.h"
#include "icl/train.h"
#include "model_internal.h"

struct icl_optimizer {
    icl_model *model;
    icl_optim_config cfg;
    float *m, *v;        /* (num_params) each, backend memory */
    unsigned char *frozen; /* [n_tensors] */
    long t;              /* steps taken */
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
    size_t bytes = m->n_params * sizeof(float);
    icl_status s = o->frozen ? ICL_OK : icl_fail(ICL_ERR_NOMEM, "icl_optimizer_create: out of memory");
    if (s == ICL_OK)
        s = m->be->ops->alloc(m->be, (void **)&o->m, bytes);
    if (s == ICL_OK)
        s = m->be->ops->alloc(m->be, (void **)&o->v, bytes);
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
    if (o->m) be->ops->release(be, o->m);
    if (o->v) be->ops->release(be, o->v);
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

/* Global norm of the trainable tensors' gradients. Tensors are contiguous in
 * the gradient buffer, so each run of consecutive trainable tensors is one
 * reduction (one host round trip on a GPU). A tied embedding is one tensor,
 * so it is counted once. */
static double trainable_grad_norm(const icl_optimizer *o) {
    const icl_model *m = o->model;
    double ss = 0.0;
    for (int i = 0; i < m->n_tensors;) {
        if (o->frozen[i]) {
            i++;
            continue;
        }
        size_t begin = m->tensors[i].offset, end = begin;
        for (; i < m->n_tensors && !o->frozen[i]; i++)
            end = m->tensors[i].offset + m->tensors[i].numel;
        ss += m->be->ops->sum_squares(m->be, m->grads + begin, end - begin);
    }
    return sqrt(ss);
}

icl_status icl_optimizer_update(icl_optimizer *o, icl_step_stats *stats) {
    if (!o)
        return icl_fail(ICL_ERR_INVALID_ARG, "icl_optimizer_update: optimizer is NULL");
    icl_model *m = o->model;
    double norm = trainable_grad_norm(o);
    ICL_TRY(m->be->ops->sync(m->be));
    if (!isfinite(norm))
        return icl_fail(ICL_ERR_NUMERIC, "optimizer step %ld: gradient norm is %g; no parameter was changed",
                        o->t + 1, norm);
    float lr = icl_optim_lr_at(&o->cfg, o->t);
    float scale = (o->cfg.grad_clip > 0.0f && norm > o->cfg.grad_clip) ? (float)(o->cfg.grad_clip / norm) : 1.0f;
    o->t++;
    for (int i = 0; i < m->n_tensors; i++) {
        const icl_param_info *t = &m->tensors[i];
        if (o->frozen[i])
            continue;
        m->be->ops->adamw_update(m->be, m->params + t->offset, o->m + t->offset, o->v + t->offset,
                                 m->grads + t->offset, t->numel, lr, o->cfg.beta1, o->cfg.beta2, o->cfg.eps,
                                 t->decay ? o->cfg.weight_decay : 0.0f, scale, o->t);
    }
    m->forward_done = 0; /* the stored activations no longer match the parameters */
    if (stats) {
        stats->step = o->t;
        stats->grad_norm = (float)norm;
        stats->lr = lr;
    }
    return m->be->ops->sync(m->be);
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

icl_status icl_train_step(icl_model *m, icl_optimizer *o, const icl_batch *micro, int n_micro, icl_step_stats *stats) {
    if (!m || !o || !micro)
        return icl_fail(ICL_ERR_INVALID_ARG, "icl_train_step: NULL argument");
    if (o->model != m)
        return icl_fail(ICL_ERR_INVALID_ARG, "icl_train_step: the optimizer belongs to another model");
    if (n_micro < 1)
        return icl_fail(ICL_ERR_INVALID_ARG, "icl_train_step: n_micro = %d must be >= 1", n_micro);
    ICL_TRY(icl_model_zero_grad(m));
    double loss_sum = 0.0;
    for (int k = 0; k < n_micro; k++) {
        float loss;
        ICL_TRY(icl_model_forward(m, &micro[k], &loss));
        ICL_TRY(icl_model_backward(m, 1.0f / (float)n_micro));
        loss_sum += loss;
    }
    icl_step_stats st;
    ICL_TRY(icl_optimizer_update(o, &st));
    st.loss = (float)(loss_sum / n_micro);
    if (stats)
        *stats = st;
    return ICL_OK;
}
