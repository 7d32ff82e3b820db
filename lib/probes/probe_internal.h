/* Internal: shared by capture.c and intervene.c — position selection and the
 * memory layout of one (row, position) record of a point. */
#ifndef ICL_LIB_PROBE_INTERNAL_H
#define ICL_LIB_PROBE_INTERNAL_H

#include "icl/probe.h"
#include "model_internal.h"

/* Positions of row b selected by `pos`, in increasing order, into out[0..*n)
 * (out has room for T). ICL_ERR_INVALID_ARG for an index outside the row. */
icl_status icl_select_positions(const icl_positions *pos, const icl_row_labels *labels, int b, int T, int *out,
                                int *n);

/* Validate a selector against T (independent of the rows). */
icl_status icl_check_positions(const icl_positions *pos, const icl_row_labels *labels, int T);

/* 1 for points whose channels split into heads (Q, K, V, HEAD_OUT) or that are per head (scores, probs). */
int icl_point_has_heads(icl_point p);

/* The record of (b, t) at a point is `n_seg` segments of `seg_len` floats;
 * segment k starts at data + record_offset(view, head, b, t, k). */
typedef struct {
    int n_seg, seg_len;
} icl_record_shape;

icl_record_shape icl_record_shape_of(const icl_point_view *v, int head);
size_t icl_record_offset(const icl_point_view *v, int head, int b, int t, int seg);

/* Copy the record of (b, t) to host `dst` / from host `src` (record width floats). */
icl_status icl_record_read(const icl_model *m, const icl_point_view *v, int head, int b, int t, float *dst);
icl_status icl_record_write(icl_model *m, const icl_point_view *v, int head, int b, int t, const float *src);

#endif
