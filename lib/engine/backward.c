/* The backward pass: forward.c in reverse. Each kernel accumulates (+=) into
 * its gradients, so each activation gradient is zeroed just before its first
 * writer (the buffers are reused: model_internal.h, icl_act_grads), and the
 * parameter gradients only by icl_model_zero_grad (allowing accumulation over
 * micro-batches).
 *
 * With parallel_for (the CPU) and a batch of several chunks, each worker runs
 * whole chunks of prompts and accumulates their parameter gradients in its own
 * slot, which joins grads in chunk order: every gradient element is then the
 * same sum, in the same order, for any number of workers. */
#include <math.h>
#include "error.h"
#include "model_internal.h"

static icl_status zero_floats(icl_model *m, float *p, size_t n) {
    return m->be->ops->zero(m->be, p, n * sizeof(float));
}

/* Zero the chunk's part of a (B,T,width) gradient view. */
static icl_status zero_rows(icl_model *m, float *p, size_t width, const icl_chunk *c) {
    return zero_floats(m, icl_rows_at(m, p, width, c), (size_t)c->B * m->T * width);
}

/* Block l on the chunk's prompts, its parameter gradients into g. On entry dres
 * holds the gradient of resid[l+1], on return that of resid[l]. */
static icl_status block_backward(icl_model *m, int l, const icl_chunk *c, icl_layer_params *g) {
    const icl_backend_ops *ops = m->be->ops;
    icl_backend *be = m->be;
    int B = c->B, T = m->T, C = m->C, NH = m->NH, F = m->F, N = B * T;
    const icl_layer_params *p = &m->p.layers[l];
    const icl_layer_acts a = icl_layer_acts_at(m, &m->a.layers[l], c);
    const icl_layer_grads d = icl_layer_grads_at(m, &m->da.layer, c);
    float *dres = icl_rows_at(m, m->da.resid, C, c);

    /* Each of d's views is zeroed just before its first writer accumulates into it, while its lines can stay
       in cache. d still holds block l+1's gradients, which nothing reads after that block; each zeroing
       queues behind its kernels on the backend's one stream, so on the GPU too they are dead by then. */
    size_t NC = (size_t)N * C, NF = (size_t)N * F, att = (size_t)B * NH * T * T;
    /* resid_post = resid_mid + mlp_out: both terms' gradient is dres, which the MLP branch reads as it is
       and ln2's backward then adds to, making it resid_mid's */
    ICL_TRY(zero_floats(m, d.mlp_post, NF));
    ops->matmul_backward(be, d.mlp_post, g->fcproj_w, g->fcproj_b, dres, a.mlp_post, p->fcproj_w, N, F, C);
    ICL_TRY(zero_floats(m, d.mlp_pre, NF));
    ops->gelu_backward(be, d.mlp_pre, a.mlp_pre, d.mlp_post, NF);
    ICL_TRY(zero_floats(m, d.ln2, NC));
    ops->matmul_backward(be, d.ln2, g->fc_w, g->fc_b, d.mlp_pre, a.ln2, p->fc_w, N, C, F);
    ops->layernorm_backward(be, dres, g->ln2_w, g->ln2_b, d.ln2, a.resid_mid, p->ln2_w, a.ln2_mean,
                            a.ln2_rstd, N, C);
    /* resid_mid = resid_pre + attn_out: the same again, ln1's backward making dres resid_pre's gradient */
    ICL_TRY(zero_floats(m, d.head_out, NC));
    ops->matmul_backward(be, d.head_out, g->proj_w, g->proj_b, dres, a.head_out, p->proj_w, N, C, C);
    ICL_TRY(zero_floats(m, d.qkv, 3 * NC));
    if (ops->attention_backward) { /* dprobs and dscores are its workspace: no zeroing */
        ops->attention_backward(be, d.qkv, d.probs, d.scores, d.head_out, a.probs, a.qkv, B, T, C, NH);
    } else {
        ICL_TRY(zero_floats(m, d.probs, att));
        ICL_TRY(zero_floats(m, d.scores, att));
        ops->attention_values_backward(be, d.probs, d.qkv, d.head_out, a.probs, a.qkv, B, T, C, NH);
        ops->attention_softmax_backward(be, d.scores, d.probs, a.probs, B, NH, T);
        ops->attention_scores_backward(be, d.qkv, d.scores, a.qkv, B, T, C, NH);
    }
    ICL_TRY(zero_floats(m, d.ln1, NC));
    ops->matmul_backward(be, d.ln1, g->qkv_w, g->qkv_b, d.qkv, a.ln1, p->qkv_w, N, C, 3 * C);
    ops->layernorm_backward(be, dres, g->ln1_w, g->ln1_b, d.ln1, icl_rows_at(m, m->a.resid[l], C, c), p->ln1_w,
                            a.ln1_mean, a.ln1_rstd, N, C);
    return ICL_OK;
}

void icl_model_stage_dlosses(icl_model *m, float scale) {
    int N = m->B * m->T;
    for (int i = 0; i < N; i++)
        m->staged.dlosses[i] = (float)(scale * m->staged.weights[i] / m->weight_sum);
}

/* The whole backward pass on the chunk's prompts, its parameter gradients into g. */
static icl_status backward_chunk(icl_model *m, const icl_chunk *c, const icl_param_views *g) {
    const icl_backend_ops *ops = m->be->ops;
    icl_backend *be = m->be;
    int B = c->B, T = m->T, C = m->C, N = B * T;
    size_t row0 = (size_t)c->b0 * T;
    float *dlogits = icl_rows_at(m, m->da.logits, m->OUT, c), *dlnf = icl_rows_at(m, m->da.lnf, C, c);
    float *dresid = icl_rows_at(m, m->da.resid, C, c), *lnf = icl_rows_at(m, m->a.lnf, C, c);
    ICL_TRY(zero_rows(m, m->da.logits, m->OUT, c));
    ICL_TRY(zero_rows(m, m->da.lnf, C, c));
    ICL_TRY(zero_rows(m, m->da.resid, C, c));

    if (m->cfg.mode == ICL_MODE_TOKEN) {
        ops->crossentropy_backward(be, dlogits, m->dlosses + row0, icl_rows_at(m, m->a.probs, m->V, c),
                                   m->targets + row0, N, m->V);
        ops->matmul_backward(be, dlnf, g->lm_head, NULL, dlogits, lnf, m->p.lm_head, N, C, m->V);
    } else {
        ops->mse_backward(be, dlogits, m->dlosses + row0, icl_rows_at(m, m->a.logits, m->OUT, c),
                          icl_rows_at(m, m->a.target_values, m->cfg.d_out, c), N, m->OUT);
        ops->matmul_backward(be, dlnf, g->read_out_w, g->read_out_b, dlogits, lnf, m->p.read_out_w, N, C, m->OUT);
    }
    ops->layernorm_backward(be, dresid, g->lnf_w, g->lnf_b, dlnf, icl_rows_at(m, m->a.resid[m->L], C, c), m->p.lnf_w,
                            icl_rows_at(m, m->a.lnf_mean, 1, c), icl_rows_at(m, m->a.lnf_rstd, 1, c), N, C);
    for (int l = m->L - 1; l >= 0; l--)
        ICL_TRY(block_backward(m, l, c, &g->layers[l]));
    float *dx0 = dresid; /* now the gradient of resid[0] */
    if (m->cfg.mode == ICL_MODE_TOKEN) {
        ops->embed_backward(be, g->tok_embed, g->pos_embed, dx0, m->tokens + row0, B, T, C);
    } else {
        ops->position_add_backward(be, g->pos_embed, dx0, B, T, C);
        ops->matmul_backward(be, NULL, g->read_in_w, g->read_in_b, dx0, icl_rows_at(m, m->a.inputs, m->cfg.d_in, c),
                             m->p.read_in_w, N, m->cfg.d_in, C);
    }
    return ICL_OK;
}

static void backward_chunk_run(void *ctx, int i, int worker) {
    icl_chunk_job *job = ctx;
    icl_chunk c = icl_model_chunk(job->m, i, job->n);
    icl_chunk_job_fail(job, backward_chunk(job->m, &c, &job->m->slot_views[worker]));
}

/* Chunk i's gradients join grads in chunk order, so that their sum does not depend on which worker ran which
   chunk; the slot is zeroed for its worker's next chunk. */
static void join_chunk_grads(void *ctx, int i, int worker) {
    (void)i;
    icl_chunk_job *job = ctx;
    icl_model *m = job->m;
    float *slot = m->grad_slots + (size_t)worker * m->n_params;
    m->be->ops->residual_forward(m->be, m->grads, m->grads, slot, m->n_params);
    icl_chunk_job_fail(job, zero_floats(m, slot, m->n_params));
}

icl_status icl_model_queue_backward(icl_model *m) {
    const icl_backend_ops *ops = m->be->ops;
    ops->upload(m->be, m->dlosses, m->staged.dlosses, (size_t)m->B * m->T * sizeof(float));
    int n = icl_model_chunk_count(m);
    if (n == 1) {
        icl_chunk all = {0, m->B};
        return backward_chunk(m, &all, &m->g);
    }
    int width = ops->workers(m->be);
    width = width < n ? width : n;
    ICL_TRY(icl_model_ensure_grad_slots(m, width));
    icl_chunk_job job;
    icl_chunk_job_init(&job, m, n);
    ops->parallel_for(m->be, n, width, backward_chunk_run, join_chunk_grads, &job);
    return icl_chunk_job_status(&job);
}

icl_status icl_model_backward(icl_model *m, float scale) {
    if (!m)
        return icl_fail(ICL_ERR_INVALID_ARG, "icl_model_backward: model is NULL");
    if (!m->forward_done || !m->staged_targets)
        return icl_fail(ICL_ERR_STATE, "icl_model_backward: needs a successful forward pass with targets first");
    if (!(scale > 0.0f) || isinf(scale))
        return icl_fail(ICL_ERR_INVALID_ARG, "icl_model_backward: scale %g must be a positive finite number",
                        (double)scale);
    icl_model_stage_dlosses(m, scale);
    ICL_TRY(icl_model_queue_backward(m));
    return m->be->ops->sync(m->be);
}
