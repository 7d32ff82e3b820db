/* The catalogue of named forward-pass points: names, parsing, widths, and the
 * layout of one (b, t) record of a point view. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "error.h"
#include "model_internal.h"

static const struct {
    const char *name;
    const char *alias;
    int per_layer;
} points[ICL_POINT_COUNT] = {
    [ICL_POINT_EMBED] = {"embed", "hook_embed", 0},
    [ICL_POINT_RESID_PRE] = {"resid_pre", "blocks.{l}.hook_resid_pre", 1},
    [ICL_POINT_LN1] = {"ln1", "blocks.{l}.ln1.hook_normalized", 1},
    [ICL_POINT_Q] = {"q", "blocks.{l}.attn.hook_q", 1},
    [ICL_POINT_K] = {"k", "blocks.{l}.attn.hook_k", 1},
    [ICL_POINT_V] = {"v", "blocks.{l}.attn.hook_v", 1},
    [ICL_POINT_ATTN_SCORES] = {"attn_scores", "blocks.{l}.attn.hook_attn_scores", 1},
    [ICL_POINT_ATTN_PROBS] = {"attn_probs", "blocks.{l}.attn.hook_pattern", 1},
    [ICL_POINT_HEAD_OUT] = {"head_out", "blocks.{l}.attn.hook_z", 1},
    [ICL_POINT_ATTN_OUT] = {"attn_out", "blocks.{l}.hook_attn_out", 1},
    [ICL_POINT_RESID_MID] = {"resid_mid", "blocks.{l}.hook_resid_mid", 1},
    [ICL_POINT_LN2] = {"ln2", "blocks.{l}.ln2.hook_normalized", 1},
    [ICL_POINT_MLP_PRE] = {"mlp_pre", "blocks.{l}.mlp.hook_pre", 1},
    [ICL_POINT_MLP_POST] = {"mlp_post", "blocks.{l}.mlp.hook_post", 1},
    [ICL_POINT_MLP_OUT] = {"mlp_out", "blocks.{l}.hook_mlp_out", 1},
    [ICL_POINT_RESID_POST] = {"resid_post", "blocks.{l}.hook_resid_post", 1},
    [ICL_POINT_LN_FINAL] = {"ln_final", "ln_final.hook_normalized", 0},
    [ICL_POINT_LOGITS] = {"logits", "hook_logits", 0},
};

const char *icl_point_name(icl_point p) { return (unsigned)p < ICL_POINT_COUNT ? points[p].name : NULL; }
const char *icl_point_alias(icl_point p) { return (unsigned)p < ICL_POINT_COUNT ? points[p].alias : NULL; }
int icl_point_is_per_layer(icl_point p) { return (unsigned)p < ICL_POINT_COUNT ? points[p].per_layer : 0; }

int icl_point_has_heads(icl_point p) {
    return p == ICL_POINT_Q || p == ICL_POINT_K || p == ICL_POINT_V || p == ICL_POINT_HEAD_OUT ||
           p == ICL_POINT_ATTN_SCORES || p == ICL_POINT_ATTN_PROBS;
}

static int is_square(icl_point p) { return p == ICL_POINT_ATTN_SCORES || p == ICL_POINT_ATTN_PROBS; }

icl_status icl_point_parse(const char *name, icl_point *point, int *layer) {
    if (!name || !point || !layer)
        return icl_fail(ICL_ERR_INVALID_ARG, "icl_point_parse: NULL argument");
    for (int p = 0; p < ICL_POINT_COUNT; p++) {
        if (strcmp(name, icl_point_name(p)) == 0) {
            *point = p;
            *layer = -1;
            return ICL_OK;
        }
        const char *alias = icl_point_alias(p);
        const char *hole = strstr(alias, "{l}");
        if (!hole) {
            if (strcmp(name, alias) == 0) {
                *point = p;
                *layer = -1;
                return ICL_OK;
            }
            continue;
        }
        size_t pre = (size_t)(hole - alias);
        if (strncmp(name, alias, pre) != 0)
            continue;
        char *end;
        long l = strtol(name + pre, &end, 10);
        if (end == name + pre || l < 0 || l > 1000000 || strcmp(end, hole + 3) != 0)
            continue;
        *point = p;
        *layer = (int)l;
        return ICL_OK;
    }
    return icl_fail(ICL_ERR_INVALID_ARG, "unknown point \"%s\" (icl probe points lists them)", name);
}

icl_status icl_point_width(const icl_model *m, icl_point p, int head, int *width) {
    if (!m || !width)
        return icl_fail(ICL_ERR_INVALID_ARG, "icl_point_width: NULL argument");
    if ((unsigned)p >= ICL_POINT_COUNT)
        return icl_fail(ICL_ERR_INVALID_ARG, "unknown point %d", (int)p);
    if (head < -1 || head >= m->NH || (head >= 0 && !icl_point_has_heads(p)))
        return icl_fail(ICL_ERR_INVALID_ARG, "point %s: head %d is not valid (model has %d heads%s)", icl_point_name(p),
                        head, m->NH, icl_point_has_heads(p) ? "" : "; this point is not split into heads");
    int T = m->T > 0 ? m->T : m->cfg.ctx;
    switch (p) {
    case ICL_POINT_ATTN_SCORES:
    case ICL_POINT_ATTN_PROBS: *width = head >= 0 ? T : m->NH * T; break;
    case ICL_POINT_MLP_PRE:
    case ICL_POINT_MLP_POST: *width = m->F; break;
    case ICL_POINT_LOGITS: *width = m->OUT; break;
    default: *width = head >= 0 ? m->C / m->NH : m->C; break;
    }
    return ICL_OK;
}

icl_status icl_point_catalogue(const icl_model *m, int B, int T, icl_line_fn emit, void *user) {
    if (!m || !emit || B < 1 || T < 1)
        return icl_fail(ICL_ERR_INVALID_ARG, "icl_point_catalogue: NULL argument or B, T < 1");
    char line[256], shape[64];
    int C = m->C, NH = m->NH;
    snprintf(line, sizeof line, "%-12s %-36s %-8s %s", "point", "alias", "layers", "shape");
    emit(user, line);
    for (int p = 0; p < ICL_POINT_COUNT; p++) {
        switch (p) {
        case ICL_POINT_ATTN_SCORES:
        case ICL_POINT_ATTN_PROBS: snprintf(shape, sizeof shape, "(B,NH,T,T) = (%d,%d,%d,%d)", B, NH, T, T); break;
        case ICL_POINT_Q:
        case ICL_POINT_K:
        case ICL_POINT_V:
        case ICL_POINT_HEAD_OUT:
            snprintf(shape, sizeof shape, "(B,T,NH,HS) = (%d,%d,%d,%d)", B, T, NH, C / NH);
            break;
        case ICL_POINT_MLP_PRE:
        case ICL_POINT_MLP_POST: snprintf(shape, sizeof shape, "(B,T,F) = (%d,%d,%d)", B, T, m->F); break;
        case ICL_POINT_LOGITS:
            snprintf(shape, sizeof shape, "(B,T,%s) = (%d,%d,%d)", m->cfg.mode == ICL_MODE_TOKEN ? "V" : "d_out", B,
                     T, m->OUT);
            break;
        default: snprintf(shape, sizeof shape, "(B,T,C) = (%d,%d,%d)", B, T, C); break;
        }
        char layers[16];
        if (icl_point_is_per_layer(p))
            snprintf(layers, sizeof layers, "0..%d", m->L - 1);
        else
            snprintf(layers, sizeof layers, "-");
        snprintf(line, sizeof line, "%-12s %-36s %-8s %s", icl_point_name(p), icl_point_alias(p), layers, shape);
        emit(user, line);
    }
    return ICL_OK;
}

/* The record of (b, t) at a point is `n_seg` segments of `seg_len` floats;
 * segment k starts at data + record_offset(view, head, b, t, k). */
typedef struct {
    int n_seg, seg_len;
} record_shape;

static record_shape record_shape_of(const icl_point_view *v, int head) {
    record_shape s;
    if (is_square(v->point)) {
        s.n_seg = head >= 0 ? 1 : v->n_head;
        s.seg_len = v->T;
    } else {
        s.n_seg = 1;
        s.seg_len = head >= 0 ? v->width / v->n_head : v->width;
    }
    return s;
}

static size_t record_offset(const icl_point_view *v, int head, int b, int t, int seg) {
    if (is_square(v->point)) {
        int h = head >= 0 ? head : seg;
        return (((size_t)b * v->n_head + h) * v->T + t) * v->T;
    }
    size_t base = ((size_t)b * v->T + t) * v->row_stride;
    return head >= 0 ? base + (size_t)head * (v->width / v->n_head) : base;
}

static icl_status check_record(const icl_model *m, const icl_point_view *v, int head, int b, int t,
                               const void *buf, const char *fn) {
    if (!m || !v || !v->data || !buf)
        return icl_fail(ICL_ERR_INVALID_ARG, "%s: NULL argument", fn);
    if ((unsigned)v->point >= ICL_POINT_COUNT)
        return icl_fail(ICL_ERR_INVALID_ARG, "%s: unknown point %d", fn, (int)v->point);
    if (head < -1 || head >= v->n_head || (head >= 0 && !icl_point_has_heads(v->point)))
        return icl_fail(ICL_ERR_INVALID_ARG, "%s: point %s has no head %d", fn, icl_point_name(v->point), head);
    if (b < 0 || b >= v->B || t < 0 || t >= v->T)
        return icl_fail(ICL_ERR_INVALID_ARG, "%s: (row %d, position %d) outside (B=%d, T=%d)", fn, b, t, v->B, v->T);
    return ICL_OK;
}

icl_status icl_model_point_read(const icl_model *m, const icl_point_view *v, int head, int b, int t, float *host) {
    ICL_TRY(check_record(m, v, head, b, t, host, "icl_model_point_read"));
    record_shape s = record_shape_of(v, head);
    for (int k = 0; k < s.n_seg; k++)
        ICL_TRY(m->be->ops->to_host(m->be, host + (size_t)k * s.seg_len, v->data + record_offset(v, head, b, t, k),
                                    (size_t)s.seg_len * sizeof(float)));
    return ICL_OK;
}

icl_status icl_model_point_write(icl_model *m, const icl_point_view *v, int head, int b, int t, const float *host) {
    ICL_TRY(check_record(m, v, head, b, t, host, "icl_model_point_write"));
    record_shape s = record_shape_of(v, head);
    for (int k = 0; k < s.n_seg; k++)
        ICL_TRY(m->be->ops->to_device(m->be, v->data + record_offset(v, head, b, t, k),
                                      host + (size_t)k * s.seg_len, (size_t)s.seg_len * sizeof(float)));
    return ICL_OK;
}
