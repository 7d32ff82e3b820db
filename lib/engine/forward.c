/* The forward pass: embeddings, pre-LN blocks, final norm, head, loss.
 *
 *   x0 = tok_embed[tokens] + pos_embed[t]        (vector mode: inputs W_in^T + b_in + pos_embed[t])
 *   for each block l:
 *     h   = ln1(x);  q,k,v = h W_qkv^T + b_qkv
 *     a   = causal_softmax(q k^T / sqrt(HS)) v    per head
 *     x   = x + a W_proj^T + b_proj               (resid_mid)
 *     h   = ln2(x);  u = gelu(h W_fc^T + b_fc)
 *     x   = x + u W_fcproj^T + b_fcproj           (resid_post)
 *   logits = ln_f(x) W_head^T                     (vector mode: ln_f(x) W_out^T + b_out)
 *   loss   = sum_i w_i loss_i / sum_i w_i         (cross-entropy or mean squared error)
 *
 * Each intermediate lands in its own view of the activation buffer; after
 * each one the hook (if installed) may read or overwrite it. Without a hook,
 * on the CPU, each worker runs whole chunks of prompts through all of this
 * (docs/architecture.md, "Chunks of whole prompts"). */
#include <math.h>
#include <stdio.h>
#include <string.h>
#include "error.h"
#include "model_internal.h"

/* Offer the point's tensor to the hook before anything downstream reads it. */
static icl_status visit(icl_model *m, icl_point p, int layer) {
    if (!m->hook)
        return ICL_OK;
    icl_point_view view;
    ICL_TRY(icl_model_point_in(m, &m->a, p, layer, &view));
    icl_status s = m->hook(m->hook_user, m, &view);
    if (s != ICL_OK) {
        char reason[256];
        snprintf(reason, sizeof reason, "%s", icl_last_error());
        return icl_fail(s, "forward aborted by the hook at %s (layer %d): %s", icl_point_name(p), layer, reason);
    }
    return ICL_OK;
}

static icl_status validate_batch(const icl_model *m, const icl_batch *b) {
    if (b->B <= 0 || b->T <= 0)
        return icl_fail(ICL_ERR_SHAPE, "forward: batch shape B=%d T=%d must be positive", b->B, b->T);
    if (b->T > m->cfg.ctx)
        return icl_fail(ICL_ERR_SHAPE, "forward: T=%d exceeds the model's context length ctx=%d", b->T, m->cfg.ctx);
    size_t N = (size_t)b->B * b->T;
    int has_targets;
    if (m->cfg.mode == ICL_MODE_TOKEN) {
        if (!b->tokens)
            return icl_fail(ICL_ERR_INVALID_ARG, "forward: token-mode model needs batch.tokens");
        for (size_t i = 0; i < N; i++)
            if (b->tokens[i] < 0 || b->tokens[i] >= m->V)
                return icl_fail(ICL_ERR_INVALID_ARG, "forward: token %d at flat position %zu is outside [0, %d)",
                                b->tokens[i], i, m->V);
        has_targets = b->targets != NULL;
    } else {
        if (!b->inputs)
            return icl_fail(ICL_ERR_INVALID_ARG, "forward: vector-mode model needs batch.inputs");
        has_targets = b->target_values != NULL;
    }
    if (!has_targets)
        return ICL_OK;
    double wsum = 0.0;
    for (size_t i = 0; i < N; i++) {
        float w = b->loss_weights ? b->loss_weights[i] : 1.0f;
        if (!(w >= 0.0f) || isinf(w))
            return icl_fail(ICL_ERR_INVALID_ARG, "forward: loss weight %g at flat position %zu is not a finite "
                                                 "non-negative number", (double)w, i);
        if (w > 0.0f && m->cfg.mode == ICL_MODE_TOKEN && (b->targets[i] < 0 || b->targets[i] >= m->V))
            return icl_fail(ICL_ERR_INVALID_ARG, "forward: target %d at flat position %zu (weight %g) is outside "
                                                 "[0, %d)", b->targets[i], i, (double)w, m->V);
        wsum += w;
    }
    if (wsum <= 0.0)
        return icl_fail(ICL_ERR_INVALID_ARG, "forward: every loss weight is zero; there is nothing to score");
    return ICL_OK;
}

icl_status icl_model_stage_batch(icl_model *m, const icl_batch *b) {
    m->forward_done = 0;
    ICL_TRY(validate_batch(m, b));
    ICL_TRY(icl_model_ensure_acts(m, b->B, b->T));
    size_t N = (size_t)b->B * b->T;
    icl_staging *st = &m->staged;
    int has_targets;
    if (m->cfg.mode == ICL_MODE_TOKEN) {
        has_targets = b->targets != NULL;
        memcpy(st->tokens, b->tokens, N * sizeof(int32_t));
        if (has_targets)
            memcpy(st->targets, b->targets, N * sizeof(int32_t));
    } else {
        has_targets = b->target_values != NULL;
        memcpy(st->inputs, b->inputs, N * m->cfg.d_in * sizeof(float));
        if (has_targets)
            memcpy(st->target_values, b->target_values, N * m->cfg.d_out * sizeof(float));
    }
    /* Without targets every weight is 0: the loss kernels then only compute probabilities. */
    double wsum = 0.0;
    for (size_t i = 0; i < N; i++) {
        st->weights[i] = !has_targets ? 0.0f : b->loss_weights ? b->loss_weights[i] : 1.0f;
        wsum += st->weights[i];
    }
    m->weight_sum = wsum;
    m->staged_targets = has_targets;
    return ICL_OK;
}

/* Queue the staged batch's copies into backend memory. */
static void upload_staged(icl_model *m) {
    const icl_backend_ops *ops = m->be->ops;
    size_t N = (size_t)m->B * m->T;
    const icl_staging *st = &m->staged;
    if (m->cfg.mode == ICL_MODE_TOKEN) {
        ops->upload(m->be, m->tokens, st->tokens, N * sizeof(int32_t));
        if (m->staged_targets)
            ops->upload(m->be, m->targets, st->targets, N * sizeof(int32_t));
    } else {
        ops->upload(m->be, m->a.inputs, st->inputs, N * m->cfg.d_in * sizeof(float));
        if (m->staged_targets)
            ops->upload(m->be, m->a.target_values, st->target_values, N * m->cfg.d_out * sizeof(float));
    }
    ops->upload(m->be, m->a.weights, st->weights, N * sizeof(float));
}

/* Block l on the chunk's prompts. The hook only runs on the whole batch (queue_forward). */
static icl_status block_forward(icl_model *m, int l, const icl_chunk *c) {
    const icl_backend_ops *ops = m->be->ops;
    icl_backend *be = m->be;
    int B = c->B, T = m->T, C = m->C, NH = m->NH, F = m->F, N = B * T;
    const icl_layer_params *p = &m->p.layers[l];
    const icl_layer_acts a = icl_layer_acts_at(m, &m->a.layers[l], c);
    float *x = icl_rows_at(m, m->a.resid[l], C, c), *next = icl_rows_at(m, m->a.resid[l + 1], C, c);

    ICL_TRY(visit(m, ICL_POINT_RESID_PRE, l));
    ops->layernorm_forward(be, a.ln1, a.ln1_mean, a.ln1_rstd, x, p->ln1_w, p->ln1_b, N, C);
    ICL_TRY(visit(m, ICL_POINT_LN1, l));
    ops->matmul_forward(be, a.qkv, a.ln1, p->qkv_w, p->qkv_b, B, T, C, 3 * C);
    ICL_TRY(visit(m, ICL_POINT_Q, l));
    ICL_TRY(visit(m, ICL_POINT_K, l));
    ICL_TRY(visit(m, ICL_POINT_V, l));
    if (!m->hook && ops->attention_forward) {
        ops->attention_forward(be, a.scores, a.probs, a.head_out, a.qkv, B, T, C, NH);
    } else {
        ops->attention_scores_forward(be, a.scores, a.qkv, B, T, C, NH);
        ICL_TRY(visit(m, ICL_POINT_ATTN_SCORES, l));
        ops->attention_softmax_forward(be, a.probs, a.scores, B, NH, T);
        ICL_TRY(visit(m, ICL_POINT_ATTN_PROBS, l));
        ops->attention_values_forward(be, a.head_out, a.probs, a.qkv, B, T, C, NH);
    }
    ICL_TRY(visit(m, ICL_POINT_HEAD_OUT, l));
    ops->matmul_forward(be, a.attn_out, a.head_out, p->proj_w, p->proj_b, B, T, C, C);
    ICL_TRY(visit(m, ICL_POINT_ATTN_OUT, l));
    /* Without a hook nobody looks between these pairs of kernels, so each pair is
       one fused kernel where the backend has one (the same bits either way). */
    if (m->hook) {
        ops->residual_forward(be, a.resid_mid, x, a.attn_out, (size_t)N * C);
        ICL_TRY(visit(m, ICL_POINT_RESID_MID, l));
        ops->layernorm_forward(be, a.ln2, a.ln2_mean, a.ln2_rstd, a.resid_mid, p->ln2_w, p->ln2_b, N, C);
    } else {
        ops->residual_layernorm_forward(be, a.resid_mid, a.ln2, a.ln2_mean, a.ln2_rstd, x, a.attn_out, p->ln2_w,
                                        p->ln2_b, N, C);
    }
    ICL_TRY(visit(m, ICL_POINT_LN2, l));
    if (m->hook) {
        ops->matmul_forward(be, a.mlp_pre, a.ln2, p->fc_w, p->fc_b, B, T, C, F);
        ICL_TRY(visit(m, ICL_POINT_MLP_PRE, l));
        ops->gelu_forward(be, a.mlp_post, a.mlp_pre, (size_t)N * F);
    } else {
        ops->matmul_gelu_forward(be, a.mlp_pre, a.mlp_post, a.ln2, p->fc_w, p->fc_b, B, T, C, F);
    }
    ICL_TRY(visit(m, ICL_POINT_MLP_POST, l));
    ops->matmul_forward(be, a.mlp_out, a.mlp_post, p->fcproj_w, p->fcproj_b, B, T, F, C);
    ICL_TRY(visit(m, ICL_POINT_MLP_OUT, l));
    ops->residual_forward(be, next, a.resid_mid, a.mlp_out, (size_t)N * C);
    return visit(m, ICL_POINT_RESID_POST, l);
}

/* The whole forward pass on the chunk's prompts: a prompt's values do not
 * depend on the chunk it is in (every kernel treats prompts independently). */
static icl_status forward_chunk(icl_model *m, const icl_chunk *c) {
    const icl_backend_ops *ops = m->be->ops;
    icl_backend *be = m->be;
    int B = c->B, T = m->T, C = m->C, N = B * T;
    int token = m->cfg.mode == ICL_MODE_TOKEN;
    float *x0 = icl_rows_at(m, m->a.resid[0], C, c);
    if (token) {
        ops->embed_forward(be, x0, m->tokens + (size_t)c->b0 * T, m->p.tok_embed, m->p.pos_embed, B, T, C);
    } else {
        ops->matmul_forward(be, x0, icl_rows_at(m, m->a.inputs, m->cfg.d_in, c), m->p.read_in_w, m->p.read_in_b, B, T,
                            m->cfg.d_in, C);
        ops->position_add_forward(be, x0, m->p.pos_embed, B, T, C);
    }
    ICL_TRY(visit(m, ICL_POINT_EMBED, -1));
    for (int l = 0; l < m->L; l++)
        ICL_TRY(block_forward(m, l, c));

    float *lnf = icl_rows_at(m, m->a.lnf, C, c), *logits = icl_rows_at(m, m->a.logits, m->OUT, c);
    float *losses = icl_rows_at(m, m->a.losses, 1, c), *weights = icl_rows_at(m, m->a.weights, 1, c);
    ops->layernorm_forward(be, lnf, icl_rows_at(m, m->a.lnf_mean, 1, c), icl_rows_at(m, m->a.lnf_rstd, 1, c),
                           icl_rows_at(m, m->a.resid[m->L], C, c), m->p.lnf_w, m->p.lnf_b, N, C);
    ICL_TRY(visit(m, ICL_POINT_LN_FINAL, -1));
    if (token) {
        ops->matmul_forward(be, logits, lnf, m->p.lm_head, NULL, B, T, C, m->V);
        ICL_TRY(visit(m, ICL_POINT_LOGITS, -1));
        ops->crossentropy_forward(be, losses, icl_rows_at(m, m->a.probs, m->V, c), logits,
                                  m->targets + (size_t)c->b0 * T, weights, N, m->V);
    } else {
        ops->matmul_forward(be, logits, lnf, m->p.read_out_w, m->p.read_out_b, B, T, C, m->OUT);
        ICL_TRY(visit(m, ICL_POINT_LOGITS, -1));
        if (m->staged_targets)
            ops->mse_forward(be, losses, logits, icl_rows_at(m, m->a.target_values, m->cfg.d_out, c), weights, N,
                             m->OUT);
    }
    return ICL_OK;
}

static void forward_chunk_run(void *ctx, int i, int worker) {
    (void)worker;
    icl_chunk_job *job = ctx;
    icl_chunk c = icl_model_chunk(job->m, i, job->n);
    icl_chunk_job_fail(job, forward_chunk(job->m, &c));
}

icl_status icl_model_queue_forward(icl_model *m) {
    upload_staged(m);
    const icl_backend_ops *ops = m->be->ops;
    /* The hook sees whole tensors, so with one the batch is one chunk. A prompt's values do not depend on its
       chunk, so the forward pass can take one chunk per worker (fewer, larger products) where the backward
       pass's chunks must not depend on the worker count. */
    int n = m->hook ? 1 : icl_model_chunk_count(m);
    if (n > 1) {
        int workers = ops->workers(m->be);
        n = workers < n ? workers : n;
    }
    if (n == 1) {
        icl_chunk all = {0, m->B};
        ICL_TRY(forward_chunk(m, &all));
    } else {
        icl_chunk_job job;
        icl_chunk_job_init(&job, m, n);
        ops->parallel_for(m->be, n, n, forward_chunk_run, NULL, &job);
        ICL_TRY(icl_chunk_job_status(&job));
    }
    if (m->staged_targets)
        ops->download(m->be, m->staged.losses, m->a.losses, (size_t)m->B * m->T * sizeof(float));
    return ICL_OK;
}

/* Weighted mean in double, in position order: deterministic and independent of the backend. */
icl_status icl_model_staged_loss(icl_model *m, float *loss) {
    int N = m->B * m->T;
    double total = 0.0;
    for (int i = 0; i < N; i++)
        total += (double)m->staged.weights[i] * m->staged.losses[i];
    float mean = (float)(total / m->weight_sum);
    if (!isfinite(mean))
        return icl_fail(ICL_ERR_NUMERIC, "forward: the loss is not finite (%g); the model has diverged or the "
                                         "inputs hold NaN/Inf", (double)mean);
    if (loss)
        *loss = mean;
    return ICL_OK;
}

icl_status icl_model_forward(icl_model *m, const icl_batch *batch, float *loss) {
    if (!m || !batch)
        return icl_fail(ICL_ERR_INVALID_ARG, "icl_model_forward: NULL argument");
    ICL_TRY(icl_model_stage_batch(m, batch));
    ICL_TRY(icl_model_queue_forward(m));
    ICL_TRY(m->be->ops->sync(m->be));
    m->forward_done = 1;
    if (!m->staged_targets) {
        if (loss)
            *loss = NAN;
        return ICL_OK;
    }
    icl_status s = icl_model_staged_loss(m, loss);
    if (s != ICL_OK)
        m->forward_done = 0;
    return s;
}
