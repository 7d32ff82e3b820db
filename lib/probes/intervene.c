/* Interventions: rewrite selected records of a point in place during the
 * forward pass, through the model's hook. */
#include <stdlib.h>
#include <string.h>
#include "error.h"
#include "probe_internal.h"

typedef struct {
    const icl_intervention *iv;
    int n;
    const icl_row_labels *labels;
    icl_hook_fn prev;
    void *prev_user;
    int *pos_buf;    /* (T) */
    float *rec, *src; /* (max width) */
} iv_context;

icl_intervention icl_intervention_make(icl_point p, int layer, icl_iv_op op) {
    icl_intervention iv;
    memset(&iv, 0, sizeof iv);
    iv.point = p;
    iv.layer = layer;
    iv.head = -1;
    iv.row = -1;
    iv.pos = icl_pos_all();
    iv.op = op;
    iv.alpha = 1.0f;
    iv.source_row = -1;
    return iv;
}

static void apply_op(const icl_intervention *iv, float *x, const float *src, int width) {
    switch (iv->op) {
    case ICL_IV_SET:
    case ICL_IV_MEAN: memcpy(x, iv->vector, (size_t)width * sizeof *x); break;
    case ICL_IV_ADD:
        for (int i = 0; i < width; i++) x[i] += iv->alpha * iv->vector[i];
        break;
    case ICL_IV_SCALE:
        for (int i = 0; i < width; i++) x[i] *= iv->alpha;
        break;
    case ICL_IV_ZERO: memset(x, 0, (size_t)width * sizeof *x); break;
    case ICL_IV_RESAMPLE: memcpy(x, src, (size_t)width * sizeof *x); break;
    }
}

/* Apply one intervention to the point now being visited. */
static icl_status apply(icl_model *m, const icl_point_view *v, const icl_intervention *iv, iv_context *ctx) {
    int width, n;
    ICL_TRY(icl_point_width(m, v->point, iv->head, &width));
    int first = iv->row < 0 ? 0 : iv->row, last = iv->row < 0 ? v->B - 1 : iv->row;
    for (int b = first; b <= last; b++) {
        ICL_TRY(icl_select_positions(&iv->pos, ctx->labels, b, v->T, ctx->pos_buf, &n));
        for (int k = 0; k < n; k++) {
            int t = ctx->pos_buf[k];
            const float *src = NULL;
            if (iv->op == ICL_IV_RESAMPLE && iv->source_row >= 0) {
                ICL_TRY(icl_model_point_read(m, v, iv->head, iv->source_row, t, ctx->src));
                src = ctx->src;
            } else if (iv->op == ICL_IV_RESAMPLE) {
                src = iv->source + ((size_t)b * v->T + t) * (size_t)width;
            }
            ICL_TRY(icl_model_point_read(m, v, iv->head, b, t, ctx->rec));
            apply_op(iv, ctx->rec, src, width);
            ICL_TRY(icl_model_point_write(m, v, iv->head, b, t, ctx->rec));
        }
    }
    return ICL_OK;
}

static icl_status iv_hook(void *user, icl_model *m, const icl_point_view *v) {
    iv_context *ctx = user;
    for (int i = 0; i < ctx->n; i++) {
        const icl_intervention *iv = &ctx->iv[i];
        if (iv->point == v->point && (v->layer < 0 || iv->layer == v->layer))
            ICL_TRY(apply(m, v, iv, ctx));
    }
    return ctx->prev ? ctx->prev(ctx->prev_user, m, v) : ICL_OK;
}

static icl_status validate(const icl_model *m, const icl_batch *batch, const icl_row_labels *labels,
                           const icl_intervention *iv, int k) {
    const icl_intervention *x = &iv[k];
    if ((unsigned)x->point >= ICL_POINT_COUNT)
        return icl_fail(ICL_ERR_INVALID_ARG, "intervention %d: unknown point %d", k, (int)x->point);
    const char *name = icl_point_name(x->point);
    probe_dims d = probe_dims_of(m);
    if (icl_point_is_per_layer(x->point) && (x->layer < 0 || x->layer >= d.L))
        return icl_fail(ICL_ERR_INVALID_ARG, "intervention %d at %s: layer %d out of range [0, %d)", k, name, x->layer,
                        d.L);
    if (x->head < -1 || x->head >= d.NH || (x->head >= 0 && !icl_point_has_heads(x->point)))
        return icl_fail(ICL_ERR_INVALID_ARG, "intervention %d at %s: head %d is not valid", k, name, x->head);
    if (x->row < -1 || x->row >= batch->B)
        return icl_fail(ICL_ERR_INVALID_ARG, "intervention %d at %s: row %d out of range [-1, %d)", k, name, x->row,
                        batch->B);
    if ((unsigned)x->op > ICL_IV_RESAMPLE)
        return icl_fail(ICL_ERR_INVALID_ARG, "intervention %d at %s: unknown operation %d", k, name, (int)x->op);
    if ((x->op == ICL_IV_SET || x->op == ICL_IV_ADD || x->op == ICL_IV_MEAN) && !x->vector)
        return icl_fail(ICL_ERR_INVALID_ARG, "intervention %d at %s: this operation needs a vector", k, name);
    if (x->op == ICL_IV_RESAMPLE && x->source_row < 0 && !x->source)
        return icl_fail(ICL_ERR_INVALID_ARG, "intervention %d at %s: resample needs a source row or array", k, name);
    if (x->op == ICL_IV_RESAMPLE && x->source_row >= batch->B)
        return icl_fail(ICL_ERR_INVALID_ARG, "intervention %d at %s: source row %d out of range [0, %d)", k, name,
                        x->source_row, batch->B);
    if (x->op == ICL_IV_RESAMPLE && x->source_row >= 0 && x->row >= 0 && labels && labels->row_len &&
        labels->row_len[x->source_row] != labels->row_len[x->row])
        return icl_fail(ICL_ERR_INVALID_ARG, "intervention %d at %s: source row %d has another length than row %d", k,
                        name, x->source_row, x->row);
    if (batch->T > 0)
        ICL_TRY(icl_check_positions(&x->pos, labels, batch->T));
    return ICL_OK;
}

icl_status icl_forward_with(icl_model *m, const icl_batch *batch, const icl_row_labels *labels,
                            const icl_intervention *iv, int n_iv, float *loss) {
    if (!m || !batch || (n_iv > 0 && !iv) || n_iv < 0)
        return icl_fail(ICL_ERR_INVALID_ARG, "icl_forward_with: NULL argument or negative count");
    for (int k = 0; k < n_iv; k++)
        ICL_TRY(validate(m, batch, labels, iv, k));
    probe_dims d = probe_dims_of(m);
    if (batch->T < 1 || batch->T > d.ctx)
        return icl_model_forward(m, batch, loss); /* reports the shape error */
    /* Largest record: all heads of an attention row, or the widest channel count. */
    int T = batch->T, max_width = d.NH * T;
    int widths[] = {d.C, d.F, d.OUT};
    for (int i = 0; i < 3; i++)
        if (widths[i] > max_width) max_width = widths[i];
    iv_context ctx = {iv, n_iv, labels, NULL, NULL, NULL, NULL, NULL};
    icl_model_get_hook(m, &ctx.prev, &ctx.prev_user);
    ctx.pos_buf = malloc((size_t)T * sizeof *ctx.pos_buf);
    ctx.rec = malloc((size_t)max_width * sizeof *ctx.rec);
    ctx.src = malloc((size_t)max_width * sizeof *ctx.src);
    icl_status s = (ctx.pos_buf && ctx.rec && ctx.src) ? ICL_OK : icl_fail(ICL_ERR_NOMEM, "icl_forward_with: out of memory");
    if (s == ICL_OK) {
        icl_model_set_hook(m, iv_hook, &ctx);
        s = icl_model_forward(m, batch, loss);
        icl_model_set_hook(m, ctx.prev, ctx.prev_user);
    }
    free(ctx.pos_buf);
    free(ctx.rec);
    free(ctx.src);
    return s;
}
