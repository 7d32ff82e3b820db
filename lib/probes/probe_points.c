/* Position selectors, and a model's sizes from its public config. */
#include "error.h"
#include "probe_internal.h"


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

probe_dims probe_dims_of(const icl_model *m) {
    probe_dims d = {ICL_MODE_TOKEN, 0, 0, 0, 0, 0, 0, 0};
    const icl_config *c = m ? icl_model_config(m) : NULL;
    if (!c)
        return d;
    d.mode = c->mode;
    d.L = c->n_layer;
    d.C = c->d_model;
    d.NH = c->n_head;
    d.F = icl_config_d_ff(c);
    d.V = c->mode == ICL_MODE_TOKEN ? c->vocab_size : 0;
    d.OUT = c->mode == ICL_MODE_TOKEN ? c->vocab_size : c->d_out;
    d.ctx = c->ctx;
    return d;
}
