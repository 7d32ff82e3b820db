/* Named points of the forward pass, and the hook that sees each one.
 *
 * The forward pass stores every intermediate tensor in the model's activation
 * buffer. Right after a point's tensor is computed, and before anything
 * downstream reads it, the model calls the installed hook (if any) with the
 * tensor's location and shape. A hook may read the tensor (capture) or
 * overwrite it in place (intervention); the rest of the forward pass then
 * consumes the modified values. Shapes use B batch rows, T positions,
 * C = d_model, NH heads, HS = C/NH, F = d_ff, V vocab, O = d_out. */
#ifndef ICL_POINTS_H
#define ICL_POINTS_H

#include <stddef.h>
#include "icl/status.h"

ICL_BEGIN_DECLS

typedef enum {
    ICL_POINT_EMBED = 0,   /* (B,T,C)   token/read-in embedding + position, = resid_pre of layer 0 */
    ICL_POINT_RESID_PRE,   /* (B,T,C)   residual entering block l (alias of resid_post of l-1) */
    ICL_POINT_LN1,         /* (B,T,C)   first layernorm output of block l */
    ICL_POINT_Q,           /* (B,T,C)   queries, head h at channels [h*HS,(h+1)*HS), row stride 3C */
    ICL_POINT_K,           /* (B,T,C)   keys, same layout as Q, row stride 3C */
    ICL_POINT_V,           /* (B,T,C)   values, same layout as Q, row stride 3C */
    ICL_POINT_ATTN_SCORES, /* (B,NH,T,T) scaled q.k; entries above the diagonal are 0 and unused */
    ICL_POINT_ATTN_PROBS,  /* (B,NH,T,T) causal softmax of the scores; 0 above the diagonal */
    ICL_POINT_HEAD_OUT,    /* (B,T,NH,HS) per-head weighted values, before the output projection */
    ICL_POINT_ATTN_OUT,    /* (B,T,C)   attention output after projection */
    ICL_POINT_RESID_MID,   /* (B,T,C)   residual after attention */
    ICL_POINT_LN2,         /* (B,T,C)   second layernorm output */
    ICL_POINT_MLP_PRE,     /* (B,T,F)   MLP hidden before GELU */
    ICL_POINT_MLP_POST,    /* (B,T,F)   MLP hidden after GELU */
    ICL_POINT_MLP_OUT,     /* (B,T,C)   MLP output after projection */
    ICL_POINT_RESID_POST,  /* (B,T,C)   residual leaving block l */
    ICL_POINT_LN_FINAL,    /* (B,T,C)   final layernorm output */
    ICL_POINT_LOGITS,      /* (B,T,V) in token mode, (B,T,O) outputs in vector mode */
    ICL_POINT_COUNT
} icl_point;

/* Where a point's tensor lives during one forward pass. `data` is backend
 * memory (host memory on the CPU backend). Element (b, t, c) of a (B,T,X)
 * point is data[(b*T + t)*row_stride + c]; for (B,NH,T,T) points
 * element (b,h,t,s) is data[((b*NH + h)*T + t)*T + s]. */
typedef struct {
    icl_point point;
    int layer;        /* block index, or -1 for points outside blocks */
    int B, T;
    int width;        /* elements per (b,t) row that belong to the point */
    int row_stride;   /* elements between consecutive (b,t) rows */
    int n_head;       /* heads, for the (B,NH,T,T) and head-split points */
    float *data;
} icl_point_view;

typedef struct icl_model icl_model;

/* Called once per point per layer in forward order. Return ICL_OK to go on;
 * any other status aborts the forward pass with that status. */
typedef icl_status (*icl_hook_fn)(void *user, icl_model *model, const icl_point_view *view);

/* Canonical name, e.g. "resid_post", and TransformerLens-style alias
 * template, e.g. "blocks.{l}.hook_resid_post" (NULL for unknown points). */
const char *icl_point_name(icl_point p);
const char *icl_point_alias(icl_point p);
/* 1 if the point exists once per block, 0 if once per model. */
int icl_point_is_per_layer(icl_point p);
/* 1 for points whose channels split into heads (Q, K, V, HEAD_OUT) or that
 * are per head (ATTN_SCORES, ATTN_PROBS). */
int icl_point_has_heads(icl_point p);

/* Parse a point name: canonical ("resid_post"), or a TransformerLens-style
 * alias with a layer ("blocks.3.hook_resid_post"). *layer is -1 for points
 * outside blocks and for canonical names. */
icl_status icl_point_parse(const char *name, icl_point *point, int *layer);

/* Elements one (b, t) position holds at a point of model m (for head-split
 * points with head >= 0: HS; for attention scores/probs: NH*T, or T for one
 * head, with T of the last forward pass, or ctx before the first). */
icl_status icl_point_width(const icl_model *m, icl_point p, int head, int *width);

/* One line per point for this model and (B,T): name, alias, layers, shape. */
icl_status icl_point_catalogue(const icl_model *m, int B, int T, icl_line_fn emit, void *user);

ICL_END_DECLS
#endif
