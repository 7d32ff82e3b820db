/* Model lifecycle: the tensor table, buffer carving, initialisation and the
 * accessors of the public model API. The forward pass is in forward.c, the
 * backward pass in backward.c. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "error.h"
#include "icl/rng.h"
#include "model_internal.h"

/* ---- the tensor table ---- */

typedef struct {
    icl_param_info *tensors;
    char *names;
    int n;
    size_t offset;
} table_builder;

static void add_tensor(table_builder *tb, const char *name, int rows, int cols, icl_group_kind group, int layer) {
    icl_param_info *t = &tb->tensors[tb->n];
    char *slot = tb->names + (size_t)tb->n * ICL_NAME_LEN;
    snprintf(slot, ICL_NAME_LEN, "%s", name);
    t->name = slot;
    t->ndim = cols > 0 ? 2 : 1;
    t->shape[0] = rows;
    t->shape[1] = cols > 0 ? cols : 0;
    t->numel = (size_t)rows * (size_t)(cols > 0 ? cols : 1);
    t->offset = tb->offset;
    t->group = group;
    t->layer = layer;
    t->decay = t->ndim == 2;
    tb->offset += t->numel;
    tb->n++;
}

/* Tensor order = layout of the parameter buffer and of checkpoints. */
static void build_table(table_builder *tb, const icl_config *c) {
    int C = c->d_model, F = icl_config_d_ff(c);
    char name[ICL_NAME_LEN];
    if (c->mode == ICL_MODE_TOKEN) {
        add_tensor(tb, "tok_embed.weight", c->vocab_size, C, ICL_GROUP_EMBED, -1);
    } else {
        add_tensor(tb, "read_in.weight", C, c->d_in, ICL_GROUP_EMBED, -1);
        add_tensor(tb, "read_in.bias", C, 0, ICL_GROUP_EMBED, -1);
    }
    add_tensor(tb, "pos_embed.weight", c->ctx, C, ICL_GROUP_POSITION, -1);
    static const struct {
        const char *suffix;
        int rows_mult, rows_ff, cols_mult, cols_ff; /* rows = rows_mult*C + rows_ff*F, same for cols */
        icl_group_kind group;
    } block[] = {
        {"ln1.weight", 1, 0, 0, 0, ICL_GROUP_NORM},       {"ln1.bias", 1, 0, 0, 0, ICL_GROUP_NORM},
        {"attn.qkv.weight", 3, 0, 1, 0, ICL_GROUP_ATTN},  {"attn.qkv.bias", 3, 0, 0, 0, ICL_GROUP_ATTN},
        {"attn.proj.weight", 1, 0, 1, 0, ICL_GROUP_ATTN}, {"attn.proj.bias", 1, 0, 0, 0, ICL_GROUP_ATTN},
        {"ln2.weight", 1, 0, 0, 0, ICL_GROUP_NORM},       {"ln2.bias", 1, 0, 0, 0, ICL_GROUP_NORM},
        {"mlp.fc.weight", 0, 1, 1, 0, ICL_GROUP_MLP},     {"mlp.fc.bias", 0, 1, 0, 0, ICL_GROUP_MLP},
        {"mlp.proj.weight", 1, 0, 0, 1, ICL_GROUP_MLP},   {"mlp.proj.bias", 1, 0, 0, 0, ICL_GROUP_MLP},
    };
    for (int l = 0; l < c->n_layer; l++)
        for (size_t i = 0; i < sizeof block / sizeof block[0]; i++) {
            snprintf(name, sizeof name, "blocks.%d.%s", l, block[i].suffix);
            add_tensor(tb, name, block[i].rows_mult * C + block[i].rows_ff * F,
                       block[i].cols_mult * C + block[i].cols_ff * F, block[i].group, l);
        }
    add_tensor(tb, "ln_f.weight", C, 0, ICL_GROUP_FINAL_NORM, -1);
    add_tensor(tb, "ln_f.bias", C, 0, ICL_GROUP_FINAL_NORM, -1);
    if (c->mode == ICL_MODE_TOKEN) {
        if (!c->tie_embeddings)
            add_tensor(tb, "lm_head.weight", c->vocab_size, C, ICL_GROUP_HEAD, -1);
    } else {
        add_tensor(tb, "read_out.weight", c->d_out, C, ICL_GROUP_HEAD, -1);
        add_tensor(tb, "read_out.bias", c->d_out, 0, ICL_GROUP_HEAD, -1);
    }
}

static int max_tensors(const icl_config *c) { return 4 + 12 * c->n_layer + 4; }

/* Point the views at `base` following the tensor table (walks it in order). */
static void carve_params(const icl_model *m, float *base, icl_param_views *v) {
    const icl_param_info *t = m->tensors;
    int i = 0;
#define NEXT() (base + t[i++].offset)
    if (m->cfg.mode == ICL_MODE_TOKEN) {
        v->tok_embed = NEXT();
    } else {
        v->read_in_w = NEXT();
        v->read_in_b = NEXT();
    }
    v->pos_embed = NEXT();
    for (int l = 0; l < m->L; l++) {
        icl_layer_params *p = &v->layers[l];
        p->ln1_w = NEXT(); p->ln1_b = NEXT();
        p->qkv_w = NEXT(); p->qkv_b = NEXT();
        p->proj_w = NEXT(); p->proj_b = NEXT();
        p->ln2_w = NEXT(); p->ln2_b = NEXT();
        p->fc_w = NEXT(); p->fc_b = NEXT();
        p->fcproj_w = NEXT(); p->fcproj_b = NEXT();
    }
    v->lnf_w = NEXT();
    v->lnf_b = NEXT();
    if (m->cfg.mode == ICL_MODE_TOKEN) {
        v->lm_head = m->cfg.tie_embeddings ? v->tok_embed : NEXT();
    } else {
        v->read_out_w = NEXT();
        v->read_out_b = NEXT();
    }
#undef NEXT
}

/* ---- initialisation ---- */

/* GPT-2's scheme with a width-aware scale: weights N(0, init_std), whose
 * default 1/sqrt(d_model) replaces GPT-2's 0.02 (tuned for d_model 768; at
 * d_model 64 it leaves attention so flat that circuits composing two heads
 * stall for thousands of steps, see docs/tasks.md); projections into the
 * residual stream scaled by 1/sqrt(2 n_layer) so the stream's variance does
 * not grow with depth; biases 0; layernorm gains 1. Each tensor draws from
 * its own child stream, so its values do not depend on the tensors before it. */
static void init_params(const icl_model *m, float *host, uint64_t seed) {
    icl_rng root, r;
    icl_rng_init(&root, seed, "init");
    const float std = icl_config_init_std(&m->cfg), resid_std = std / sqrtf(2.0f * (float)m->L);
    for (int i = 0; i < m->n_tensors; i++) {
        const icl_param_info *t = &m->tensors[i];
        float *x = host + t->offset;
        const char *name = t->name;
        int is_norm = t->group == ICL_GROUP_NORM || t->group == ICL_GROUP_FINAL_NORM;
        if (is_norm && strstr(name, ".weight")) {
            for (size_t k = 0; k < t->numel; k++) x[k] = 1.0f;
        } else if (t->ndim == 1) {
            memset(x, 0, t->numel * sizeof *x);
        } else {
            float s = (strstr(name, "attn.proj") || strstr(name, "mlp.proj")) ? resid_std : std;
            icl_rng_split(&r, &root, (uint64_t)i);
            for (size_t k = 0; k < t->numel; k++) x[k] = s * icl_rng_normal(&r);
        }
    }
}

/* ---- create / free ---- */

icl_status icl_model_create(icl_model **out, const icl_config *cfg, icl_backend_kind backend, uint64_t seed) {
    if (!out)
        return icl_fail(ICL_ERR_INVALID_ARG, "icl_model_create: out is NULL");
    *out = NULL;
    ICL_TRY(icl_config_validate(cfg));
    icl_model *m = calloc(1, sizeof *m);
    if (!m)
        return icl_fail(ICL_ERR_NOMEM, "icl_model_create: out of memory");
    m->cfg = *cfg;
    m->cfg.d_ff = icl_config_d_ff(cfg);
    m->L = cfg->n_layer;
    m->C = cfg->d_model;
    m->NH = cfg->n_head;
    m->F = m->cfg.d_ff;
    m->V = cfg->mode == ICL_MODE_TOKEN ? cfg->vocab_size : 0;
    m->OUT = cfg->mode == ICL_MODE_TOKEN ? cfg->vocab_size : cfg->d_out;

    icl_status s = ICL_OK;
    int cap = max_tensors(cfg);
    m->tensors = calloc((size_t)cap, sizeof *m->tensors);
    m->names = calloc((size_t)cap, ICL_NAME_LEN);
    m->p.layers = calloc((size_t)m->L, sizeof(icl_layer_params));
    m->g.layers = calloc((size_t)m->L, sizeof(icl_layer_params));
    if (!m->tensors || !m->names || !m->p.layers || !m->g.layers) {
        icl_model_free(m);
        return icl_fail(ICL_ERR_NOMEM, "icl_model_create: out of memory");
    }
    table_builder tb = {m->tensors, m->names, 0, 0};
    build_table(&tb, &m->cfg);
    m->n_tensors = tb.n;
    m->n_params = tb.offset;

    float *host = malloc(m->n_params * sizeof *host);
    if (!host)
        s = icl_fail(ICL_ERR_NOMEM, "icl_model_create: cannot allocate %zu parameters", m->n_params);
    if (s == ICL_OK)
        s = icl_backend_create(&m->be, backend);
    if (s == ICL_OK)
        s = m->be->ops->alloc(m->be, (void **)&m->params, m->n_params * sizeof(float));
    if (s == ICL_OK)
        s = m->be->ops->alloc(m->be, (void **)&m->grads, m->n_params * sizeof(float));
    if (s == ICL_OK) {
        init_params(m, host, seed);
        s = m->be->ops->to_device(m->be, m->params, host, m->n_params * sizeof(float));
    }
    free(host);
    if (s != ICL_OK) {
        icl_model_free(m);
        return s;
    }
    carve_params(m, m->params, &m->p);
    carve_params(m, m->grads, &m->g);
    *out = m;
    return ICL_OK;
}

static void free_grad_slots(icl_model *m);

static void free_acts(icl_model *m) {
    if (m->be) {
        const icl_backend_ops *ops = m->be->ops;
        if (m->acts) ops->release(m->be, m->acts);
        if (m->dacts) ops->release(m->be, m->dacts);
        if (m->tokens) ops->release(m->be, m->tokens);
        if (m->dlosses) ops->release(m->be, m->dlosses);
        if (m->staging_block) ops->release_staging(m->be, m->staging_block);
    }
    free(m->a.resid);
    free(m->a.layers);
    m->acts = m->dacts = m->dlosses = NULL;
    m->staging_block = NULL;
    memset(&m->staged, 0, sizeof m->staged);
    memset(&m->da, 0, sizeof m->da);
    m->tokens = m->targets = NULL;
    m->a.resid = NULL;
    m->a.layers = NULL;
    m->B = m->T = 0;
    m->n_acts = m->n_dacts = m->acts_cap = m->dacts_cap = m->rows_cap = 0;
    m->forward_done = 0;
}

void icl_model_free(icl_model *m) {
    if (!m)
        return;
    free_acts(m);
    if (m->be) {
        free_grad_slots(m);
        if (m->params) m->be->ops->release(m->be, m->params);
        if (m->grads) m->be->ops->release(m->be, m->grads);
        icl_backend_destroy(m->be);
    }
    free(m->p.layers);
    free(m->g.layers);
    free(m->tensors);
    free(m->names);
    free(m);
}

/* ---- activations ---- */

/* Point `field` at the next `count` floats of the layout being walked (when there is a base). */
#define TAKE(field, count) do { if (base) (field) = base + off; off += (count); } while (0)

/* Walk the activation layout. With base == NULL only counts floats. */
static size_t carve_acts(const icl_model *m, int B, int T, float *base, icl_act_views *v) {
    size_t N = (size_t)B * T, C = (size_t)m->C, F = (size_t)m->F, att = (size_t)B * m->NH * T * T;
    size_t off = 0;
    int vec = m->cfg.mode == ICL_MODE_VECTOR;
    TAKE(v->inputs, vec ? N * m->cfg.d_in : 0);
    TAKE(v->target_values, vec ? N * m->cfg.d_out : 0);
    TAKE(v->weights, N);
    TAKE(v->losses, N);
    for (int l = 0; l <= m->L; l++)
        TAKE(v->resid[l], N * C);
    for (int l = 0; l < m->L; l++) {
        icl_layer_acts *a = base ? &v->layers[l] : NULL; /* only counting: no views to fill */
        TAKE(a->ln1, N * C); TAKE(a->ln1_mean, N); TAKE(a->ln1_rstd, N);
        TAKE(a->qkv, 3 * N * C);
        TAKE(a->scores, att); TAKE(a->probs, att);
        TAKE(a->head_out, N * C); TAKE(a->attn_out, N * C); TAKE(a->resid_mid, N * C);
        TAKE(a->ln2, N * C); TAKE(a->ln2_mean, N); TAKE(a->ln2_rstd, N);
        TAKE(a->mlp_pre, N * F); TAKE(a->mlp_post, N * F); TAKE(a->mlp_out, N * C);
    }
    TAKE(v->lnf, N * C); TAKE(v->lnf_mean, N); TAKE(v->lnf_rstd, N);
    TAKE(v->logits, N * (size_t)m->OUT);
    TAKE(v->probs, vec ? 0 : N * (size_t)m->V);
    return off;
}

/* Walk the layout of the activation gradients (icl_act_grads). With base == NULL only counts floats. */
static size_t carve_dacts(const icl_model *m, int B, int T, float *base, icl_act_grads *v) {
    size_t N = (size_t)B * T, C = (size_t)m->C, F = (size_t)m->F, att = (size_t)B * m->NH * T * T;
    size_t off = 0;
    TAKE(v->logits, N * (size_t)m->OUT); TAKE(v->lnf, N * C);
    TAKE(v->resid, N * C);
    icl_layer_grads *d = base ? &v->layer : NULL; /* only counting: no views to fill */
    TAKE(d->ln1, N * C);
    TAKE(d->qkv, 3 * N * C);
    TAKE(d->head_out, N * C); TAKE(d->ln2, N * C);
    TAKE(d->mlp_pre, N * F); TAKE(d->mlp_post, N * F);
    TAKE(d->scores, att); TAKE(d->probs, att);
    return off;
}
#undef TAKE

icl_status icl_config_training_bytes(const icl_config *cfg, int B, int T, double *bytes) {
    if (!cfg || !bytes || B < 1 || T < 1)
        return icl_fail(ICL_ERR_INVALID_ARG, "icl_config_training_bytes: NULL argument or B, T < 1");
    ICL_TRY(icl_config_validate(cfg));
    /* the sizes carve_acts and carve_dacts read, as icl_model_create sets them */
    icl_model shape = {.cfg = *cfg, .L = cfg->n_layer, .C = cfg->d_model, .NH = cfg->n_head,
                       .F = icl_config_d_ff(cfg), .V = cfg->vocab_size,
                       .OUT = cfg->mode == ICL_MODE_TOKEN ? cfg->vocab_size : cfg->d_out};
    double acts = (double)carve_acts(&shape, B, T, NULL, NULL), dacts = (double)carve_dacts(&shape, B, T, NULL, NULL);
    /* acts, dacts; params, grads and the two Adam moments */
    *bytes = sizeof(float) * (acts + dacts + 4.0 * (double)icl_config_num_params(cfg));
    return ICL_OK;
}

icl_status icl_model_ensure_acts(icl_model *m, int B, int T) {
    if (m->acts && m->B == B && m->T == T)
        return ICL_OK;
    size_t N = (size_t)B * T, need = carve_acts(m, B, T, NULL, NULL), dneed = carve_dacts(m, B, T, NULL, NULL);
    if (m->acts && need <= m->acts_cap && dneed <= m->dacts_cap && N <= m->rows_cap) {
        /* Shapes that fit the buffers only re-carve the views, so evaluations and
           curricula that change (B,T) often do not reallocate. */
        m->n_acts = need;
        m->n_dacts = dneed;
        carve_acts(m, B, T, m->acts, &m->a);
        carve_dacts(m, B, T, m->dacts, &m->da);
        m->B = B;
        m->T = T;
        m->forward_done = 0;
        return ICL_OK;
    }
    /* Grow to the largest shape seen, so that alternating shapes (one wider, one
       longer) settle into one allocation. */
    const size_t rows = N > m->rows_cap ? N : m->rows_cap;
    const size_t floats = need > m->acts_cap ? need : m->acts_cap;
    const size_t dfloats = dneed > m->dacts_cap ? dneed : m->dacts_cap;
    free_acts(m);
    const icl_backend_ops *ops = m->be->ops;
    icl_status s = ICL_OK;
    m->a.resid = calloc((size_t)m->L + 1, sizeof(float *));
    m->a.layers = calloc((size_t)m->L, sizeof(icl_layer_acts));
    if (!m->a.resid || !m->a.layers)
        s = icl_fail(ICL_ERR_NOMEM, "model: out of memory for activation views");
    if (s == ICL_OK)
        s = ops->alloc(m->be, (void **)&m->acts, floats * sizeof(float));
    if (s == ICL_OK)
        s = ops->alloc(m->be, (void **)&m->dacts, dfloats * sizeof(float));
    if (s == ICL_OK)
        s = ops->alloc(m->be, (void **)&m->tokens, 2 * rows * sizeof(int32_t));
    if (s == ICL_OK)
        s = ops->alloc(m->be, (void **)&m->dlosses, rows * sizeof(float));
    const size_t d_in = m->cfg.mode == ICL_MODE_VECTOR ? (size_t)m->cfg.d_in : 0;
    const size_t d_out = m->cfg.mode == ICL_MODE_VECTOR ? (size_t)m->cfg.d_out : 0;
    if (s == ICL_OK) /* 4-byte elements only: every carved array stays aligned */
        s = ops->alloc_staging(m->be, &m->staging_block, rows * (5 + d_in + d_out) * 4);
    if (s != ICL_OK) {
        free_acts(m);
        return s == ICL_ERR_NOMEM ? s
                                  : icl_fail(s, "model: cannot allocate activations for B=%d T=%d (%zu + %zu floats): "
                                             "%s", B, T, need, dneed, icl_last_error());
    }
    m->targets = m->tokens + rows;
    m->staged.tokens = m->staging_block;
    m->staged.targets = m->staged.tokens + rows;
    m->staged.weights = (float *)(m->staged.targets + rows);
    m->staged.dlosses = m->staged.weights + rows;
    m->staged.losses = m->staged.dlosses + rows;
    m->staged.inputs = m->staged.losses + rows;
    m->staged.target_values = m->staged.inputs + rows * d_in;
    m->acts_generation++;
    m->acts_cap = floats;
    m->dacts_cap = dfloats;
    m->rows_cap = rows;
    m->n_acts = need;
    m->n_dacts = dneed;
    carve_acts(m, B, T, m->acts, &m->a);
    carve_dacts(m, B, T, m->dacts, &m->da);
    m->B = B;
    m->T = T;
    return ICL_OK;
}

/* ---- chunks of whole prompts ---- */

/* Rows per chunk: enough that each chunk's products are large and the join of
 * its gradients (a pass over the parameters) costs about 1 % of its work. */
enum { CHUNK_ROWS = 512, CHUNK_MULTIPLE = 4 };

int icl_model_chunk_count(const icl_model *m) {
    if (!m->be->ops->parallel_for || m->B < 2)
        return 1;
    size_t rows = (size_t)m->B * m->T, n = (rows + CHUNK_ROWS - 1) / CHUNK_ROWS;
    if (n <= 1)
        return 1;
    /* a multiple of 4 shares out evenly between 2 or 4 workers */
    n = (n + CHUNK_MULTIPLE - 1) / CHUNK_MULTIPLE * CHUNK_MULTIPLE;
    return n > (size_t)m->B ? m->B : (int)n;
}

icl_chunk icl_model_chunk(const icl_model *m, int i, int n) {
    int b0 = (int)((long)i * m->B / n), b1 = (int)((long)(i + 1) * m->B / n);
    return (icl_chunk){b0, b1 - b0};
}

icl_layer_acts icl_layer_acts_at(const icl_model *m, const icl_layer_acts *a, const icl_chunk *c) {
    size_t C = (size_t)m->C, F = (size_t)m->F, att = (size_t)c->b0 * m->NH * m->T * m->T;
    icl_layer_acts v = {
        .ln1 = icl_rows_at(m, a->ln1, C, c), .ln1_mean = icl_rows_at(m, a->ln1_mean, 1, c),
        .ln1_rstd = icl_rows_at(m, a->ln1_rstd, 1, c), .qkv = icl_rows_at(m, a->qkv, 3 * C, c),
        .scores = a->scores + att, .probs = a->probs + att,
        .head_out = icl_rows_at(m, a->head_out, C, c), .attn_out = icl_rows_at(m, a->attn_out, C, c),
        .resid_mid = icl_rows_at(m, a->resid_mid, C, c), .ln2 = icl_rows_at(m, a->ln2, C, c),
        .ln2_mean = icl_rows_at(m, a->ln2_mean, 1, c), .ln2_rstd = icl_rows_at(m, a->ln2_rstd, 1, c),
        .mlp_pre = icl_rows_at(m, a->mlp_pre, F, c), .mlp_post = icl_rows_at(m, a->mlp_post, F, c),
        .mlp_out = icl_rows_at(m, a->mlp_out, C, c),
    };
    return v;
}

icl_layer_grads icl_layer_grads_at(const icl_model *m, const icl_layer_grads *d, const icl_chunk *c) {
    size_t C = (size_t)m->C, F = (size_t)m->F, att = (size_t)c->b0 * m->NH * m->T * m->T;
    icl_layer_grads v = {
        .ln1 = icl_rows_at(m, d->ln1, C, c), .qkv = icl_rows_at(m, d->qkv, 3 * C, c),
        .scores = d->scores + att, .probs = d->probs + att,
        .head_out = icl_rows_at(m, d->head_out, C, c), .ln2 = icl_rows_at(m, d->ln2, C, c),
        .mlp_pre = icl_rows_at(m, d->mlp_pre, F, c), .mlp_post = icl_rows_at(m, d->mlp_post, F, c),
    };
    return v;
}

void icl_chunk_job_init(icl_chunk_job *job, icl_model *m, int n) {
    job->m = m;
    job->n = n;
    atomic_init(&job->failed, 0);
    job->status = ICL_OK;
    job->message[0] = '\0';
}

void icl_chunk_job_fail(icl_chunk_job *job, icl_status s) {
    if (s == ICL_OK || atomic_exchange(&job->failed, 1))
        return;
    job->status = s;
    snprintf(job->message, sizeof job->message, "%s", icl_last_error());
}

icl_status icl_chunk_job_status(const icl_chunk_job *job) {
    return job->status == ICL_OK ? ICL_OK : icl_fail(job->status, "%s", job->message);
}

static void free_grad_slots(icl_model *m) {
    if (m->grad_slots)
        m->be->ops->release(m->be, m->grad_slots);
    if (m->slot_views)
        for (int i = 0; i < m->n_slots; i++)
            free(m->slot_views[i].layers);
    free(m->slot_views);
    m->grad_slots = NULL;
    m->slot_views = NULL;
    m->n_slots = 0;
}

icl_status icl_model_ensure_grad_slots(icl_model *m, int n) {
    if (n <= m->n_slots)
        return ICL_OK;
    free_grad_slots(m);
    m->slot_views = calloc((size_t)n, sizeof *m->slot_views);
    icl_status s = m->slot_views ? ICL_OK : icl_fail(ICL_ERR_NOMEM, "model: out of memory for gradient slots");
    for (int i = 0; s == ICL_OK && i < n; i++) {
        m->slot_views[i].layers = calloc((size_t)m->L, sizeof(icl_layer_params));
        if (!m->slot_views[i].layers)
            s = icl_fail(ICL_ERR_NOMEM, "model: out of memory for gradient slots");
    }
    if (s == ICL_OK) /* zero-filled, as the slots must be between uses */
        s = m->be->ops->alloc(m->be, (void **)&m->grad_slots, (size_t)n * m->n_params * sizeof(float));
    if (s != ICL_OK) {
        m->n_slots = m->slot_views ? n : 0; /* so that every allocated view is freed */
        free_grad_slots(m);
        return s;
    }
    m->n_slots = n;
    for (int i = 0; i < n; i++)
        carve_params(m, m->grad_slots + (size_t)i * m->n_params, &m->slot_views[i]);
    return ICL_OK;
}

/* ---- accessors ---- */

const icl_config *icl_model_config(const icl_model *m) { return m ? &m->cfg : NULL; }
icl_backend_kind icl_model_backend(const icl_model *m) { return m ? m->be->kind : ICL_BACKEND_CPU; }
size_t icl_model_num_params(const icl_model *m) { return m ? m->n_params : 0; }
int icl_model_num_tensors(const icl_model *m) { return m ? m->n_tensors : 0; }

const icl_param_info *icl_model_tensor(const icl_model *m, int i) {
    return (m && i >= 0 && i < m->n_tensors) ? &m->tensors[i] : NULL;
}

int icl_model_find_tensor(const icl_model *m, const char *name) {
    if (!m || !name)
        return -1;
    for (int i = 0; i < m->n_tensors; i++)
        if (strcmp(m->tensors[i].name, name) == 0)
            return i;
    return -1;
}

icl_status icl_model_get_tensor(const icl_model *m, const char *name, float *host, size_t n) {
    if (!m || !name || !host)
        return icl_fail(ICL_ERR_INVALID_ARG, "icl_model_get_tensor: NULL argument");
    int i = icl_model_find_tensor(m, name);
    if (i < 0)
        return icl_fail(ICL_ERR_INVALID_ARG, "icl_model_get_tensor: the model has no tensor %s", name);
    const icl_param_info *t = &m->tensors[i];
    if (n != t->numel)
        return icl_fail(ICL_ERR_SHAPE, "icl_model_get_tensor: %s has %zu floats, buffer holds %zu", name, t->numel, n);
    return m->be->ops->to_host(m->be, host, m->params + t->offset, n * sizeof(float));
}

static icl_status copy_params_out(const icl_model *m, const float *src, float *host, size_t n, const char *fn) {
    if (!m || !host)
        return icl_fail(ICL_ERR_INVALID_ARG, "%s: NULL argument", fn);
    if (n != m->n_params)
        return icl_fail(ICL_ERR_SHAPE, "%s: buffer holds %zu floats, model has %zu parameters", fn, n, m->n_params);
    return m->be->ops->to_host(m->be, host, src, n * sizeof(float));
}

icl_status icl_model_get_params(const icl_model *m, float *host, size_t n) {
    return copy_params_out(m, m ? m->params : NULL, host, n, "icl_model_get_params");
}

icl_status icl_model_get_grads(const icl_model *m, float *host, size_t n) {
    return copy_params_out(m, m ? m->grads : NULL, host, n, "icl_model_get_grads");
}

icl_status icl_model_clone(const icl_model *m, icl_model **out) {
    if (!m || !out)
        return icl_fail(ICL_ERR_INVALID_ARG, "icl_model_clone: NULL argument");
    *out = NULL;
    size_t n = m->n_params;
    float *p = malloc(n * sizeof *p);
    if (!p)
        return icl_fail(ICL_ERR_NOMEM, "icl_model_clone: out of memory for %zu parameters", n);
    icl_status s = icl_model_get_params(m, p, n);
    if (s == ICL_OK)
        s = icl_model_create(out, &m->cfg, icl_model_backend(m), 0);
    if (s == ICL_OK && (s = icl_model_set_params(*out, p, n)) != ICL_OK) {
        icl_model_free(*out);
        *out = NULL;
    }
    free(p);
    return s;
}

icl_status icl_model_set_params(icl_model *m, const float *host, size_t n) {
    if (!m || !host)
        return icl_fail(ICL_ERR_INVALID_ARG, "icl_model_set_params: NULL argument");
    if (n != m->n_params)
        return icl_fail(ICL_ERR_SHAPE, "icl_model_set_params: buffer holds %zu floats, model has %zu parameters", n,
                        m->n_params);
    m->forward_done = 0;
    return m->be->ops->to_device(m->be, m->params, host, n * sizeof(float));
}

icl_status icl_model_zero_grad(icl_model *m) {
    if (!m)
        return icl_fail(ICL_ERR_INVALID_ARG, "icl_model_zero_grad: model is NULL");
    return m->be->ops->zero(m->be, m->grads, m->n_params * sizeof(float));
}

void icl_model_set_hook(icl_model *m, icl_hook_fn fn, void *user) {
    if (!m)
        return;
    m->hook = fn;
    m->hook_user = fn ? user : NULL;
}

void icl_model_get_hook(const icl_model *m, icl_hook_fn *fn, void **user) {
    if (fn)
        *fn = m ? m->hook : NULL;
    if (user)
        *user = m ? m->hook_user : NULL;
}

/* ---- points ---- */

icl_status icl_model_point_in(const icl_model *m, const icl_act_views *a, icl_point p, int layer,
                              icl_point_view *view) {
    if ((unsigned)p >= ICL_POINT_COUNT)
        return icl_fail(ICL_ERR_INVALID_ARG, "unknown point %d", (int)p);
    int per_layer = icl_point_is_per_layer(p);
    if (per_layer && (layer < 0 || layer >= m->L))
        return icl_fail(ICL_ERR_INVALID_ARG, "point %s: layer %d out of range [0, %d)", icl_point_name(p), layer,
                        m->L);
    const icl_layer_acts *la = per_layer ? &a->layers[layer] : NULL;
    icl_point_view v = {p, per_layer ? layer : -1, m->B, m->T, m->C, m->C, m->NH, NULL};
    switch (p) {
    case ICL_POINT_EMBED: v.data = a->resid[0]; break;
    case ICL_POINT_RESID_PRE: v.data = a->resid[layer]; break;
    case ICL_POINT_LN1: v.data = la->ln1; break;
    case ICL_POINT_Q: v.data = la->qkv; v.row_stride = 3 * m->C; break;
    case ICL_POINT_K: v.data = la->qkv + m->C; v.row_stride = 3 * m->C; break;
    case ICL_POINT_V: v.data = la->qkv + 2 * m->C; v.row_stride = 3 * m->C; break;
    case ICL_POINT_ATTN_SCORES: v.data = la->scores; v.width = v.row_stride = m->T; break;
    case ICL_POINT_ATTN_PROBS: v.data = la->probs; v.width = v.row_stride = m->T; break;
    case ICL_POINT_HEAD_OUT: v.data = la->head_out; break;
    case ICL_POINT_ATTN_OUT: v.data = la->attn_out; break;
    case ICL_POINT_RESID_MID: v.data = la->resid_mid; break;
    case ICL_POINT_LN2: v.data = la->ln2; break;
    case ICL_POINT_MLP_PRE: v.data = la->mlp_pre; v.width = v.row_stride = m->F; break;
    case ICL_POINT_MLP_POST: v.data = la->mlp_post; v.width = v.row_stride = m->F; break;
    case ICL_POINT_MLP_OUT: v.data = la->mlp_out; break;
    case ICL_POINT_RESID_POST: v.data = a->resid[layer + 1]; break;
    case ICL_POINT_LN_FINAL: v.data = a->lnf; break;
    case ICL_POINT_LOGITS: v.data = a->logits; v.width = v.row_stride = m->OUT; break;
    case ICL_POINT_COUNT: break;
    }
    *view = v;
    return ICL_OK;
}

static icl_status require_forward(const icl_model *m, const char *fn) {
    if (!m)
        return icl_fail(ICL_ERR_INVALID_ARG, "%s: model is NULL", fn);
    if (!m->forward_done)
        return icl_fail(ICL_ERR_STATE, "%s: no forward pass has run since the model was created or changed", fn);
    return ICL_OK;
}

icl_status icl_model_point(const icl_model *m, icl_point p, int layer, icl_point_view *view) {
    ICL_TRY(require_forward(m, "icl_model_point"));
    if (!view)
        return icl_fail(ICL_ERR_INVALID_ARG, "icl_model_point: view is NULL");
    return icl_model_point_in(m, &m->a, p, layer, view);
}

/* Number of floats a dense copy of the view needs. */
static size_t view_numel(const icl_point_view *v) {
    int square = v->point == ICL_POINT_ATTN_SCORES || v->point == ICL_POINT_ATTN_PROBS;
    return square ? (size_t)v->B * v->n_head * v->T * v->T : (size_t)v->B * v->T * v->width;
}

icl_status icl_model_point_copy(const icl_model *m, icl_point p, int layer, float *host, size_t n) {
    icl_point_view v;
    ICL_TRY(icl_model_point(m, p, layer, &v));
    if (!host)
        return icl_fail(ICL_ERR_INVALID_ARG, "icl_model_point_copy: host is NULL");
    size_t need = view_numel(&v);
    if (n != need)
        return icl_fail(ICL_ERR_SHAPE, "icl_model_point_copy: %s needs %zu floats, buffer holds %zu",
                        icl_point_name(p), need, n);
    const icl_backend_ops *ops = m->be->ops;
    if (v.row_stride == v.width || v.point == ICL_POINT_ATTN_SCORES || v.point == ICL_POINT_ATTN_PROBS)
        return ops->to_host(m->be, host, v.data, need * sizeof(float));
    size_t rows = (size_t)v.B * v.T;
    for (size_t r = 0; r < rows; r++)
        ICL_TRY(ops->to_host(m->be, host + r * v.width, v.data + r * v.row_stride, (size_t)v.width * sizeof(float)));
    return ICL_OK;
}

icl_status icl_model_outputs(const icl_model *m, float *host, size_t n) {
    return icl_model_point_copy(m, ICL_POINT_LOGITS, -1, host, n);
}

icl_status icl_model_losses(const icl_model *m, float *host, size_t n) {
    ICL_TRY(require_forward(m, "icl_model_losses"));
    if (!m->staged_targets)
        return icl_fail(ICL_ERR_STATE, "icl_model_losses: the last forward pass had no targets");
    if (!host)
        return icl_fail(ICL_ERR_INVALID_ARG, "icl_model_losses: host is NULL");
    size_t need = (size_t)m->B * m->T;
    if (n != need)
        return icl_fail(ICL_ERR_SHAPE, "icl_model_losses: needs %zu floats, buffer holds %zu", need, n);
    return m->be->ops->to_host(m->be, host, m->a.losses, need * sizeof(float));
}

icl_status icl_model_probs(const icl_model *m, float *host, size_t n) {
    ICL_TRY(require_forward(m, "icl_model_probs"));
    if (m->cfg.mode != ICL_MODE_TOKEN)
        return icl_fail(ICL_ERR_STATE, "icl_model_probs: a vector-mode model has no softmax probabilities");
    if (!host)
        return icl_fail(ICL_ERR_INVALID_ARG, "icl_model_probs: host is NULL");
    size_t need = (size_t)m->B * m->T * m->V;
    if (n != need)
        return icl_fail(ICL_ERR_SHAPE, "icl_model_probs: needs %zu floats, buffer holds %zu", need, n);
    return m->be->ops->to_host(m->be, host, m->a.probs, need * sizeof(float));
}

icl_status icl_model_probs_at(const icl_model *m, int b, int t, float *host, size_t n) {
    ICL_TRY(require_forward(m, "icl_model_probs_at"));
    if (m->cfg.mode != ICL_MODE_TOKEN)
        return icl_fail(ICL_ERR_STATE, "icl_model_probs_at: a vector-mode model has no softmax probabilities");
    if (!host)
        return icl_fail(ICL_ERR_INVALID_ARG, "icl_model_probs_at: host is NULL");
    if (b < 0 || b >= m->B || t < 0 || t >= m->T)
        return icl_fail(ICL_ERR_INVALID_ARG, "icl_model_probs_at: (row %d, position %d) outside the last pass's "
                        "(B=%d, T=%d)", b, t, m->B, m->T);
    if (n != (size_t)m->V)
        return icl_fail(ICL_ERR_SHAPE, "icl_model_probs_at: needs %d floats, buffer holds %zu", m->V, n);
    return m->be->ops->to_host(m->be, host, m->a.probs + ((size_t)b * m->T + t) * m->V, n * sizeof(float));
}

icl_status icl_model_forward_shape(const icl_model *m, int *B, int *T) {
    ICL_TRY(require_forward(m, "icl_model_forward_shape"));
    if (!B || !T)
        return icl_fail(ICL_ERR_INVALID_ARG, "icl_model_forward_shape: NULL argument");
    *B = m->B;
    *T = m->T;
    return ICL_OK;
}
