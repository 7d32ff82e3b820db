/* Capture and intervention at named points of the forward pass.
 *
 * Built on the engine's public point API (include/icl/model.h:
 * icl_model_point, icl_model_point_read / _write, the hook).
 * Positions are chosen by index or by token role (include/icl/task.h roles,
 * e.g. every example answer, or the query separator), per batch row. A
 * capture reads the selected rows straight from the activations the forward
 * pass keeps (nothing is recomputed, and the full tensors are not copied);
 * an intervention rewrites them in place, through the model's hook, before
 * anything downstream reads them. Several interventions compose in one
 * forward pass, applied in the order given. */
#ifndef ICL_PROBE_H
#define ICL_PROBE_H

#include <stddef.h>
#include <stdint.h>
#include "icl/model.h"
#include "icl/points.h"

ICL_BEGIN_DECLS

/* ---- position selectors ---- */

typedef enum {
    ICL_POS_ALL = 0,  /* every position of the row (up to its length) */
    ICL_POS_INDEX,    /* position `index`; negative counts from the row's end (-1 = last) */
    ICL_POS_ROLE,     /* every position whose role is `role` */
    ICL_POS_ROLE_NTH, /* the nth position whose role is `role` (negative nth: from the end) */
    ICL_POS_LAST      /* the last position of the row */
} icl_pos_kind;

typedef struct {
    icl_pos_kind kind;
    int index; /* ICL_POS_INDEX */
    int role;  /* ICL_POS_ROLE, ICL_POS_ROLE_NTH */
    int nth;   /* ICL_POS_ROLE_NTH */
} icl_positions;

icl_positions icl_pos_all(void);
icl_positions icl_pos_index(int index);
icl_positions icl_pos_role(int role);
icl_positions icl_pos_role_nth(int role, int nth);
icl_positions icl_pos_last(void);

/* Per-row labels the selectors read: roles (B,T) and row lengths (B). Either
 * may be NULL (no role selection; every row has length T). */
typedef struct {
    const int32_t *roles;
    const int32_t *row_len;
} icl_row_labels;

/* ---- capture ---- */

typedef struct icl_capture_plan icl_capture_plan;

icl_status icl_capture_plan_create(icl_capture_plan **out);
void icl_capture_plan_free(icl_capture_plan *plan);
/* Add a capture: point p at `layer` (-1 = every layer for per-layer points),
 * one head (-1 = all channels) of head-split points (Q, K, V, HEAD_OUT,
 * ATTN_SCORES, ATTN_PROBS), at the selected positions. Returns its index. */
icl_status icl_capture_plan_add(icl_capture_plan *plan, icl_point p, int layer, int head, icl_positions pos,
                                int *index);
int icl_capture_plan_size(const icl_capture_plan *plan);

/* Bytes the captured data of the plan needs for a batch of B rows of T
 * positions, before running it (an upper bound for role selectors). */
icl_status icl_capture_plan_bytes(const icl_capture_plan *plan, const icl_model *m, int B, int T, size_t *bytes);

/* One captured tensor: n records of `width` floats; record i comes from batch
 * row rows[i], position positions[i], at `layer`. */
typedef struct {
    icl_point point;
    int layer, head, width;
    size_t n;
    float *data;      /* (n, width) */
    int32_t *rows;    /* (n) */
    int32_t *positions; /* (n) */
} icl_capture;

typedef struct {
    int n;             /* captures; a layer = -1 entry expands to one per layer */
    icl_capture *items;
} icl_capture_set;

void icl_capture_set_free(icl_capture_set *set);
/* Find the capture of (point, layer); NULL if absent. */
const icl_capture *icl_capture_set_find(const icl_capture_set *set, icl_point p, int layer);

/* Read the plan's captures from the model's last forward pass. */
icl_status icl_capture_collect(const icl_capture_plan *plan, const icl_model *m, const icl_row_labels *labels,
                               icl_capture_set *out);

/* ---- interventions ---- */

typedef enum {
    ICL_IV_SET = 0,  /* x = vector */
    ICL_IV_ADD,      /* x += alpha * vector */
    ICL_IV_SCALE,    /* x *= alpha */
    ICL_IV_ZERO,     /* x = 0 */
    ICL_IV_MEAN,     /* x = vector, a mean computed beforehand (e.g. streamed over many prompts) */
    ICL_IV_RESAMPLE  /* x = the same point/position of another row (source_row) of this batch, or of
                        `source`: a (B,T,width) activation of another run captured at this point */
} icl_iv_op;

typedef struct {
    icl_point point;
    int layer;         /* block (ignored for points outside blocks) */
    int head;          /* -1 = all channels; else one head of a head-split point */
    int row;           /* batch row, -1 = every row */
    icl_positions pos;
    icl_iv_op op;
    const float *vector; /* SET / ADD / MEAN: `width` floats (icl_point_width) */
    float alpha;         /* ADD / SCALE */
    int source_row;      /* RESAMPLE from this row of the batch (-1: from `source`) */
    const float *source; /* RESAMPLE: (B,T,width) host array */
} icl_intervention;

/* An intervention of op `op` at (p, layer) on every row and position; fill in the rest. */
icl_intervention icl_intervention_make(icl_point p, int layer, icl_iv_op op);

/* Forward pass with the interventions applied; like icl_model_forward
 * otherwise (the previously installed hook is restored afterwards).
 * Interventions are validated before anything runs. */
icl_status icl_forward_with(icl_model *m, const icl_batch *batch, const icl_row_labels *labels,
                            const icl_intervention *iv, int n_iv, float *loss);

ICL_END_DECLS
#endif
