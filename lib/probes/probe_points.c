/* The point catalogue, point-name parsing, record layout and position selectors. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "error.h"
#include "probe_internal.h"

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

icl_record_shape icl_record_shape_of(const icl_point_view *v, int head) {
    icl_record_shape s;
    if (is_square(v->point)) {
        s.n_seg = head >= 0 ? 1 : v->n_head;
        s.seg_len = v->T;
    } else {
        s.n_seg = 1;
        s.seg_len = head >= 0 ? v->width / v->n_head : v->width;
    }
    return s;
}

size_t icl_record_offset(const icl_point_view *v, int head, int b, int t, int seg) {
    if (is_square(v->point)) {
        int h = head >= 0 ? head : seg;
        return (((size_t)b * v->n_head + h) * v->T + t) * v->T;
    }
    size_t base = ((size_t)b * v->T + t) * v->row_stride;
    return head >= 0 ? base + (size_t)head * (v->width / v->n_head) : base;
}

icl_status icl_record_read(const icl_model *m, const icl_point_view *v, int head, int b, int t, float *dst) {
    icl_record_shape s = icl_record_shape_of(v, head);
    for (int k = 0; k < s.n_seg; k++)
        ICL_TRY(m->be->ops->to_host(m->be, dst + (size_t)k * s.seg_len, v->data + icl_record_offset(v, head, b, t, k),
                                    (size_t)s.seg_len * sizeof(float)));
    return ICL_OK;
}

icl_status icl_record_write(icl_model *m, const icl_point_view *v, int head, int b, int t, const float *src) {
    icl_record_shape s = icl_record_shape_of(v, head);
    for (int k = 0; k < s.n_seg; k++)
        ICL_TRY(m->be->ops->to_device(m->be, v->data + icl_record_offset(v, head, b, t, k),
                                      src + (size_t)k * s.seg_len, (size_t)s.seg_len * sizeof(float)));
    return ICL_OK;
}

/* ---- position selectors ---- */

icl_positions icl_pos_all(void) { return (icl_positions){ICL_POS_ALL, 0, 0, 0}; }
icl_positions icl_pos_index(int index) { return (icl_positions){ICL_POS_INDEX, index, 0, 0}; }
icl_positions icl_pos_role(int role) { return (icl_positions){ICL_POS_ROLE, 0, role, 0}; }
icl_positions icl_pos_role_nth(int role, int nth) { return (icl_positions){ICL_POS_ROLE_NTH, 0, role, nth}; }
icl_positions icl_pos_last(void) { return (icl_positions){ICL_POS_LAST, 0, 0, 0}; }

icl_status icl_check_positions(const icl_positions *pos, const icl_row_labels *labels, int T) {
    switch (pos->kind) {
    case ICL_POS_ALL:
    case ICL_POS_LAST: return ICL_OK;
    case ICL_POS_INDEX:
        if (pos->index >= T || pos->index < -T)
            return icl_fail(ICL_ERR_INVALID_ARG, "position %d is beyond the %d positions of the batch", pos->index, T);
        return ICL_OK;
    case ICL_POS_ROLE:
    case ICL_POS_ROLE_NTH:
        if (!labels || !labels->roles)
            return icl_fail(ICL_ERR_INVALID_ARG, "selecting positions by role %d needs per-position roles", pos->role);
        return ICL_OK;
    }
    return icl_fail(ICL_ERR_INVALID_ARG, "unknown position selector kind %d", (int)pos->kind);
}

icl_status icl_select_positions(const icl_positions *pos, const icl_row_labels *labels, int b, int T, int *out,
                                int *n) {
    int len = (labels && labels->row_len) ? labels->row_len[b] : T;
    if (len < 1 || len > T)
        return icl_fail(ICL_ERR_INVALID_ARG, "row %d has length %d outside [1, %d]", b, len, T);
    *n = 0;
    switch (pos->kind) {
    case ICL_POS_ALL:
        for (int t = 0; t < len; t++) out[(*n)++] = t;
        return ICL_OK;
    case ICL_POS_LAST:
        out[(*n)++] = len - 1;
        return ICL_OK;
    case ICL_POS_INDEX: {
        int t = pos->index < 0 ? len + pos->index : pos->index;
        if (t < 0 || t >= len)
            return icl_fail(ICL_ERR_INVALID_ARG, "position %d is beyond row %d of length %d", pos->index, b, len);
        out[(*n)++] = t;
        return ICL_OK;
    }
    case ICL_POS_ROLE:
    case ICL_POS_ROLE_NTH: {
        const int32_t *roles = labels->roles + (size_t)b * T;
        int count = 0;
        for (int t = 0; t < len; t++) count += roles[t] == pos->role;
        if (pos->kind == ICL_POS_ROLE) {
            for (int t = 0; t < len; t++)
                if (roles[t] == pos->role) out[(*n)++] = t;
            return ICL_OK;
        }
        int want = pos->nth < 0 ? count + pos->nth : pos->nth;
        if (want < 0 || want >= count)
            return icl_fail(ICL_ERR_INVALID_ARG, "row %d has %d positions of role %d; occurrence %d does not exist", b,
                            count, pos->role, pos->nth);
        for (int t = 0, seen = 0; t < len; t++)
            if (roles[t] == pos->role && seen++ == want) out[(*n)++] = t;
        return ICL_OK;
    }
    }
    return icl_fail(ICL_ERR_INVALID_ARG, "unknown position selector kind %d", (int)pos->kind);
}
