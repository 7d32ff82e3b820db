/* Capture plans: choose points x layers x heads x positions, size them, and
 * read them from the activations of the last forward pass. */
#include <stdlib.h>
#include <string.h>
#include "error.h"
#include "probe_internal.h"

typedef struct {
    icl_point point;
    int layer, head;
    icl_positions pos;
} plan_item;

struct icl_capture_plan {
    plan_item *items;
    int n, cap;
};

icl_status icl_capture_plan_create(icl_capture_plan **out) {
    if (!out)
        return icl_fail(ICL_ERR_INVALID_ARG, "icl_capture_plan_create: out is NULL");
    *out = calloc(1, sizeof **out);
    return *out ? ICL_OK : icl_fail(ICL_ERR_NOMEM, "icl_capture_plan_create: out of memory");
}

void icl_capture_plan_free(icl_capture_plan *plan) {
    if (!plan)
        return;
    free(plan->items);
    free(plan);
}

int icl_capture_plan_size(const icl_capture_plan *plan) { return plan ? plan->n : 0; }

icl_status icl_capture_plan_add(icl_capture_plan *plan, icl_point p, int layer, int head, icl_positions pos,
                                int *index) {
    if (!plan)
        return icl_fail(ICL_ERR_INVALID_ARG, "icl_capture_plan_add: plan is NULL");
    if ((unsigned)p >= ICL_POINT_COUNT)
        return icl_fail(ICL_ERR_INVALID_ARG, "icl_capture_plan_add: unknown point %d", (int)p);
    if (layer < -1)
        return icl_fail(ICL_ERR_INVALID_ARG, "icl_capture_plan_add: layer %d (use -1 for every layer)", layer);
    if (head < -1 || (head >= 0 && !icl_point_has_heads(p)))
        return icl_fail(ICL_ERR_INVALID_ARG, "icl_capture_plan_add: point %s has no head %d", icl_point_name(p), head);
    if ((unsigned)pos.kind > ICL_POS_LAST)
        return icl_fail(ICL_ERR_INVALID_ARG, "icl_capture_plan_add: unknown position selector");
    if (plan->n == plan->cap) {
        int cap = plan->cap ? 2 * plan->cap : 8;
        plan_item *items = realloc(plan->items, (size_t)cap * sizeof *items);
        if (!items)
            return icl_fail(ICL_ERR_NOMEM, "icl_capture_plan_add: out of memory");
        plan->items = items;
        plan->cap = cap;
    }
    plan->items[plan->n] = (plan_item){p, icl_point_is_per_layer(p) ? layer : -1, head, pos};
    if (index)
        *index = plan->n;
    plan->n++;
    return ICL_OK;
}

/* Layers an item covers, [first, last]. */
static icl_status item_layers(const plan_item *it, const icl_model *m, int *first, int *last) {
    if (!icl_point_is_per_layer(it->point)) {
        *first = *last = -1;
        return ICL_OK;
    }
    probe_dims d = probe_dims_of(m);
    if (it->layer >= d.L)
        return icl_fail(ICL_ERR_INVALID_ARG, "capture %s: layer %d out of range [0, %d)", icl_point_name(it->point),
                        it->layer, d.L);
    if (it->head >= d.NH)
        return icl_fail(ICL_ERR_INVALID_ARG, "capture %s: head %d out of range [0, %d)", icl_point_name(it->point),
                        it->head, d.NH);
    *first = it->layer < 0 ? 0 : it->layer;
    *last = it->layer < 0 ? d.L - 1 : it->layer;
    return ICL_OK;
}

static int square(icl_point p) { return p == ICL_POINT_ATTN_SCORES || p == ICL_POINT_ATTN_PROBS; }

/* icl_point_width for a batch of T positions (not necessarily the last pass's). */
static int record_width(const icl_model *m, icl_point p, int head, int T) {
    if (square(p))
        return head >= 0 ? T : probe_dims_of(m).NH * T;
    int w;
    icl_point_width(m, p, head, &w);
    return w;
}

icl_status icl_capture_plan_bytes(const icl_capture_plan *plan, const icl_model *m, int B, int T, size_t *bytes) {
    if (!plan || !m || !bytes || B < 1 || T < 1)
        return icl_fail(ICL_ERR_INVALID_ARG, "icl_capture_plan_bytes: NULL argument or B, T < 1");
    size_t total = 0;
    for (int i = 0; i < plan->n; i++) {
        const plan_item *it = &plan->items[i];
        int first, last;
        ICL_TRY(item_layers(it, m, &first, &last));
        size_t per_row = (it->pos.kind == ICL_POS_ALL || it->pos.kind == ICL_POS_ROLE) ? (size_t)T : 1;
        size_t records = (size_t)B * per_row * (size_t)(last - first + 1);
        total += records * ((size_t)record_width(m, it->point, it->head, T) * sizeof(float) + 2 * sizeof(int32_t));
    }
    *bytes = total;
    return ICL_OK;
}

void icl_capture_set_free(icl_capture_set *set) {
    if (!set)
        return;
    for (int i = 0; i < set->n; i++) {
        free(set->items[i].data);
        free(set->items[i].rows);
        free(set->items[i].positions);
    }
    free(set->items);
    set->items = NULL;
    set->n = 0;
}

const icl_capture *icl_capture_set_find(const icl_capture_set *set, icl_point p, int layer) {
    for (int i = 0; set && i < set->n; i++)
        if (set->items[i].point == p && set->items[i].layer == (icl_point_is_per_layer(p) ? layer : -1))
            return &set->items[i];
    return NULL;
}

static icl_status collect_one(const icl_model *m, const plan_item *it, int layer, const icl_row_labels *labels,
                              int *pos_buf, icl_capture *c) {
    icl_point_view v;
    ICL_TRY(icl_model_point(m, it->point, layer, &v));
    int B = v.B, T = v.T, n;
    c->point = it->point;
    c->layer = layer;
    c->head = it->head;
    c->width = record_width(m, it->point, it->head, T);
    size_t total = 0;
    for (int b = 0; b < B; b++) {
        ICL_TRY(icl_select_positions(&it->pos, labels, b, T, pos_buf, &n));
        total += (size_t)n;
    }
    c->data = malloc((total ? total : 1) * (size_t)c->width * sizeof(float));
    c->rows = malloc((total ? total : 1) * sizeof(int32_t));
    c->positions = malloc((total ? total : 1) * sizeof(int32_t));
    if (!c->data || !c->rows || !c->positions)
        return icl_fail(ICL_ERR_NOMEM, "capture %s: out of memory for %zu records", icl_point_name(it->point), total);
    c->n = 0;
    for (int b = 0; b < B; b++) {
        ICL_TRY(icl_select_positions(&it->pos, labels, b, T, pos_buf, &n));
        for (int k = 0; k < n; k++) {
            ICL_TRY(icl_model_point_read(m, &v, it->head, b, pos_buf[k], c->data + c->n * (size_t)c->width));
            c->rows[c->n] = b;
            c->positions[c->n] = pos_buf[k];
            c->n++;
        }
    }
    return ICL_OK;
}

icl_status icl_capture_collect(const icl_capture_plan *plan, const icl_model *m, const icl_row_labels *labels,
                               icl_capture_set *out) {
    if (!plan || !m || !out)
        return icl_fail(ICL_ERR_INVALID_ARG, "icl_capture_collect: NULL argument");
    memset(out, 0, sizeof *out);
    int B, T;
    if (icl_model_forward_shape(m, &B, &T) != ICL_OK)
        return icl_fail(ICL_ERR_STATE, "icl_capture_collect: run a forward pass first");
    int total = 0;
    for (int i = 0; i < plan->n; i++) {
        int first, last;
        ICL_TRY(item_layers(&plan->items[i], m, &first, &last));
        ICL_TRY(icl_check_positions(&plan->items[i].pos, labels, T));
        total += last - first + 1;
    }
    out->items = calloc((size_t)(total ? total : 1), sizeof *out->items);
    int *pos_buf = malloc((size_t)T * sizeof *pos_buf);
    icl_status s = (out->items && pos_buf) ? ICL_OK : icl_fail(ICL_ERR_NOMEM, "icl_capture_collect: out of memory");
    for (int i = 0; s == ICL_OK && i < plan->n; i++) {
        int first, last;
        item_layers(&plan->items[i], m, &first, &last);
        for (int l = first; s == ICL_OK && l <= last; l++)
            s = collect_one(m, &plan->items[i], l, labels, pos_buf, &out->items[out->n++]);
    }
    free(pos_buf);
    if (s != ICL_OK)
        icl_capture_set_free(out);
    return s;
}
