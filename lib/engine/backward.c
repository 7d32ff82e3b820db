/* The backward pass: forward.c in reverse. Each kernel accumulates (+=) into
 * its gradients, so each activation gradient is zeroed just before its first
 * writer (the buffers are reused: model_internal.h, icl_act_grads), and the
 * parameter gradients only by icl_model_zero_grad (allowing accumulation over
 * micro-batches). */
#include <math.h>
#include "error.h"
#include "model_internal.h"

static icl_status block_backward(icl_model *m, int l) {
    const icl_backend_ops *ops = m->be->ops;
    icl_backend *be = m->be;
    int B = m->B, T = m->T, C = m->C, NH = m->NH, F = m->F, N = B * T;
    const icl_layer_params *p = &m->p.layers[l];
    icl_layer_params *g = &m->g.layers[l];
    const icl_layer_acts *a = &m->a.layers[l];
    const icl_layer_grads *d = &m->da.layer;
    const float *dout = m->da.resid[(l + 1) % 2];
    float *dx = m->da.resid[l % 2];

    /* d and dx still hold block l+1's gradients (dx: of resid[l+2]), which nothing reads after that block; the
       zeroing queues behind its kernels on the backend's one stream, so on the GPU too they are dead by then. */
    ICL_TRY(ops->zero(be, d->ln1, m->da.layer_floats * sizeof(float)));
    ICL_TRY(ops->zero(be, dx, (size_t)N * C * sizeof(float)));
    /* resid_post = resid_mid + mlp_out */
    ops->residual_backward(be, d->resid_mid, d->mlp_out, dout, (size_t)N * C);
    ops->matmul_backward(be, d->mlp_post, g->fcproj_w, g->fcproj_b, d->mlp_out, a->mlp_post, p->fcproj_w, N, F, C);
    ops->gelu_backward(be, d->mlp_pre, a->mlp_pre, d->mlp_post, (size_t)N * F);
    ops->matmul_backward(be, d->ln2, g->fc_w, g->fc_b, d->mlp_pre, a->ln2, p->fc_w, N, C, F);
    ops->layernorm_backward(be, d->resid_mid, g->ln2_w, g->ln2_b, d->ln2, a->resid_mid, p->ln2_w, a->ln2_mean,
                            a->ln2_rstd, N, C);
    /* resid_mid = resid_pre + attn_out */
    ops->residual_backward(be, dx, d->attn_out, d->resid_mid, (size_t)N * C);
    ops->matmul_backward(be, d->head_out, g->proj_w, g->proj_b, d->attn_out, a->head_out, p->proj_w, N, C, C);
    ops->attention_values_backward(be, d->probs, d->qkv, d->head_out, a->probs, a->qkv, B, T, C, NH);
    ops->attention_softmax_backward(be, d->scores, d->probs, a->probs, B, NH, T);
    ops->attention_scores_backward(be, d->qkv, d->scores, a->qkv, B, T, C, NH);
    ops->matmul_backward(be, d->ln1, g->qkv_w, g->qkv_b, d->qkv, a->ln1, p->qkv_w, N, C, 3 * C);
    ops->layernorm_backward(be, dx, g->ln1_w, g->ln1_b, d->ln1, m->a.resid[l], p->ln1_w, a->ln1_mean, a->ln1_rstd, N,
                            C);
    return ICL_OK;
}

void icl_model_stage_dlosses(icl_model *m, float scale) {
    int N = m->B * m->T;
    for (int i = 0; i < N; i++)
        m->staged.dlosses[i] = (float)(scale * m->staged.weights[i] / m->weight_sum);
}

icl_status icl_model_queue_backward(icl_model *m) {
    const icl_backend_ops *ops = m->be->ops;
    icl_backend *be = m->be;
    int B = m->B, T = m->T, C = m->C, N = B * T;
    ops->upload(be, m->dlosses, m->staged.dlosses, (size_t)N * sizeof(float));
    float *dresid = m->da.resid[m->L % 2];
    ICL_TRY(ops->zero(be, m->da.logits, m->da.head_floats * sizeof(float)));
    ICL_TRY(ops->zero(be, dresid, (size_t)N * C * sizeof(float)));

    if (m->cfg.mode == ICL_MODE_TOKEN) {
        ops->crossentropy_backward(be, m->da.logits, m->dlosses, m->a.probs, m->targets, N, m->V);
        ops->matmul_backward(be, m->da.lnf, m->g.lm_head, NULL, m->da.logits, m->a.lnf, m->p.lm_head, N, C, m->V);
    } else {
        ops->mse_backward(be, m->da.logits, m->dlosses, m->a.logits, m->a.target_values, N, m->OUT);
        ops->matmul_backward(be, m->da.lnf, m->g.read_out_w, m->g.read_out_b, m->da.logits, m->a.lnf,
                             m->p.read_out_w, N, C, m->OUT);
    }
    ops->layernorm_backward(be, dresid, m->g.lnf_w, m->g.lnf_b, m->da.lnf, m->a.resid[m->L], m->p.lnf_w,
                            m->a.lnf_mean, m->a.lnf_rstd, N, C);
    for (int l = m->L - 1; l >= 0; l--)
        ICL_TRY(block_backward(m, l));
    if (m->cfg.mode == ICL_MODE_TOKEN) {
        ops->embed_backward(be, m->g.tok_embed, m->g.pos_embed, m->da.resid[0], m->tokens, B, T, C);
    } else {
        ops->position_add_backward(be, m->g.pos_embed, m->da.resid[0], B, T, C);
        ops->matmul_backward(be, NULL, m->g.read_in_w, m->g.read_in_b, m->da.resid[0], m->a.inputs, m->p.read_in_w, N,
                             m->cfg.d_in, C);
    }
    return ICL_OK;
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
