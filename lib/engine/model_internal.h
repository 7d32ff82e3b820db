/* Internal: the model's buffers and their named views.
 *
 * Four contiguous backend buffers, one per role, each carved into views:
 *   params  - every trainable tensor, in the order of the tensor table
 *   grads   - same layout as params
 *   acts    - every intermediate of the last forward pass (sized for B,T)
 *   dacts   - the activation gradients the backward pass needs at one time:
 *             the head's, two residual-stream ones and one block's, which
 *             every block reuses
 * A views struct holds pointers into one buffer; the same carving function
 * fills the views of params and grads, so grads.layers[l].qkv_w is always the
 * gradient of params.layers[l].qkv_w. */
#ifndef ICL_LIB_MODEL_INTERNAL_H
#define ICL_LIB_MODEL_INTERNAL_H

#include <stdatomic.h>
#include "backend.h"
#include "icl/model.h"

typedef struct {
    float *ln1_w, *ln1_b;   /* (C), (C) */
    float *qkv_w, *qkv_b;   /* (3C,C), (3C) */
    float *proj_w, *proj_b; /* (C,C), (C) */
    float *ln2_w, *ln2_b;   /* (C), (C) */
    float *fc_w, *fc_b;     /* (F,C), (F) */
    float *fcproj_w, *fcproj_b; /* (C,F), (C) */
} icl_layer_params;

typedef struct {
    float *tok_embed;                /* (V,C) token mode */
    float *read_in_w, *read_in_b;    /* (C,d_in), (C) vector mode */
    float *pos_embed;                /* (ctx,C) */
    icl_layer_params *layers;        /* [n_layer] */
    float *lnf_w, *lnf_b;            /* (C), (C) */
    float *lm_head;                  /* (V,C): tok_embed when tied */
    float *read_out_w, *read_out_b;  /* (d_out,C), (d_out) vector mode */
} icl_param_views;

typedef struct {
    float *ln1, *ln1_mean, *ln1_rstd; /* (B,T,C), (B,T), (B,T) */
    float *qkv;                       /* (B,T,3C) */
    float *scores, *probs;            /* (B,NH,T,T) each */
    float *head_out;                  /* (B,T,C) = (B,T,NH,HS) */
    float *attn_out;                  /* (B,T,C) */
    float *resid_mid;                 /* (B,T,C) */
    float *ln2, *ln2_mean, *ln2_rstd; /* (B,T,C), (B,T), (B,T) */
    float *mlp_pre, *mlp_post;        /* (B,T,F) each */
    float *mlp_out;                   /* (B,T,C) */
} icl_layer_acts;

typedef struct {
    float *inputs;        /* (B,T,d_in) vector mode */
    float *target_values; /* (B,T,d_out) vector mode */
    float *weights;       /* (B,T) loss weights */
    float *losses;        /* (B,T) per-position loss */
    float **resid;        /* [n_layer+1] (B,T,C): resid[0] = embedding, resid[l+1] = resid_post of block l */
    icl_layer_acts *layers; /* [n_layer] */
    float *lnf, *lnf_mean, *lnf_rstd; /* (B,T,C), (B,T), (B,T) */
    float *logits;        /* (B,T,V) token mode, (B,T,d_out) vector mode */
    float *probs;         /* (B,T,V) token mode */
} icl_act_views;

/* Gradients of one block's activations that the block's backward
 * accumulates into, contiguous from ln1 in this order. Those of resid_mid,
 * attn_out and mlp_out are the residual stream's own gradient (resid below):
 * a sum's gradient passes to both its terms unchanged. A backend with a
 * fused attention backward uses scores and probs as its workspace. */
typedef struct {
    float *ln1;                 /* (B,T,C) */
    float *qkv;                 /* (B,T,3C) */
    float *head_out, *ln2;      /* (B,T,C) each */
    float *mlp_pre, *mlp_post;  /* (B,T,F) each */
    float *scores, *probs;      /* (B,NH,T,T) each */
} icl_layer_grads;

/* The dacts buffer (carve_dacts). The backward of block l reads the gradient
 * of resid[l+1] and turns it, in place, into that of resid_mid and then of
 * resid[l]; nothing reads a block's gradients after its own backward, so one
 * set serves every block. Each part is zeroed just before its first writer. */
typedef struct {
    float *logits, *lnf;      /* (B,T,OUT), (B,T,C): contiguous from logits */
    float *resid;             /* (B,T,C): the residual stream's gradient where the backward is */
    icl_layer_grads layer;    /* the block whose backward runs */
} icl_act_grads;

/* Whole prompts [b0, b0 + B) of the carved batch: what one worker runs
 * through every kernel when the backend has parallel_for (forward.c). Every
 * activation view is batch-major, so a chunk's part of each is contiguous. */
typedef struct {
    int b0, B;
} icl_chunk;

/* Host staging of one batch (backend staging memory, so uploads and
 * downloads are queued without waiting, and a captured step reads the batch
 * from the same addresses every time). */
typedef struct {
    int32_t *tokens, *targets;     /* (B,T) token mode */
    float *inputs, *target_values; /* (B,T,d_in), (B,T,d_out) vector mode */
    float *weights;                /* (B,T) loss weights, 0 everywhere without targets */
    float *dlosses;                /* (B,T) d loss / d loss_i */
    float *losses;                 /* (B,T) per-position losses, downloaded after the forward */
} icl_staging;

struct icl_model {
    icl_config cfg;
    int L, C, NH, F, V, OUT; /* OUT = V (token) or d_out (vector) */
    icl_backend *be;

    int n_tensors;
    icl_param_info *tensors;
    char *names; /* n_tensors * ICL_NAME_LEN */
    size_t n_params;
    float *params, *grads;
    icl_param_views p, g;

    int B, T;               /* shape the activations are carved for (0 before the first forward) */
    size_t n_acts, n_dacts; /* floats of acts and of dacts the (B,T) views use */
    size_t acts_cap, dacts_cap; /* floats allocated for acts and for dacts */
    size_t rows_cap;        /* B*T positions tokens, targets, dlosses and the staging hold */
    long acts_generation;   /* counts the allocations of the buffers below: a (B,T) carving of one
                               generation always gives the same addresses, so a recorded graph
                               stays valid while (B,T) and the generation are unchanged */
    float *acts, *dacts;
    icl_act_views a;
    icl_act_grads da;
    int32_t *tokens, *targets; /* (B,T) each, backend memory */
    float *dlosses;         /* (B,T) backend memory */
    void *staging_block;
    icl_staging staged;
    int staged_targets;     /* the staged batch (and so a done forward pass) has targets */
    double weight_sum;      /* of the staged weights */
    int forward_done;       /* 1 after a successful forward; staging a batch resets it */

    /* Each worker's chunk gradients before they join grads, in chunk order
     * (backward.c): n_slots buffers of n_params floats, kept zero between uses. */
    float *grad_slots;
    icl_param_views *slot_views; /* [n_slots] */
    int n_slots;

    icl_hook_fn hook;
    void *hook_user;
};

#define ICL_NAME_LEN 48

/* Make activations fit (B,T), reallocating only when they outgrow the buffers. */
icl_status icl_model_ensure_acts(icl_model *m, int B, int T);

/* The pieces of a forward and backward pass that a training step queues
 * without waiting (forward.c, backward.c):
 *   stage_batch   (host) validate the batch, fit the activations, copy the batch into the staging
 *   stage_dlosses (host) d loss / d loss_i = scale * w_i / sum(w) into the staging
 *   queue_forward upload the staged batch, run the forward kernels (the hook may run and sync),
 *                 download the losses into the staging
 *   queue_backward upload the staged dlosses, run the backward kernels
 *   staged_loss   (host, after a sync) the weighted mean of the staged losses */
icl_status icl_model_stage_batch(icl_model *m, const icl_batch *b);
void icl_model_stage_dlosses(icl_model *m, float scale);
icl_status icl_model_queue_forward(icl_model *m);
icl_status icl_model_queue_backward(icl_model *m);
icl_status icl_model_staged_loss(icl_model *m, float *loss);
/* The chunks of the carved batch (1 without parallel_for or for small
 * batches): a function of (B,T) alone, never of the worker count, so that
 * the gradients' summation order is the same for every thread count. */
int icl_model_chunk_count(const icl_model *m);
/* Chunk i of n: prompts [i*B/n, (i+1)*B/n). */
icl_chunk icl_model_chunk(const icl_model *m, int i, int n);
/* The chunk's part of the batch-major views (a copy with each field moved to prompt b0). */
icl_layer_acts icl_layer_acts_at(const icl_model *m, const icl_layer_acts *a, const icl_chunk *c);
icl_layer_grads icl_layer_grads_at(const icl_model *m, const icl_layer_grads *d, const icl_chunk *c);
/* The chunk's part of a (B,T,width) view: from its first prompt's first row. */
static inline float *icl_rows_at(const icl_model *m, float *p, size_t width, const icl_chunk *c) {
    return p + (size_t)c->b0 * (size_t)m->T * width;
}
/* One parallel_for over the chunks. A worker's error message is in its own
 * thread's icl_last_error, so the first failure's is kept here and re-raised
 * on the calling thread. */
typedef struct {
    icl_model *m;
    int n; /* chunks */
    atomic_int failed;
    icl_status status;
    char message[512];
} icl_chunk_job;
void icl_chunk_job_init(icl_chunk_job *job, icl_model *m, int n);
void icl_chunk_job_fail(icl_chunk_job *job, icl_status s); /* nothing when s is ICL_OK */
icl_status icl_chunk_job_status(const icl_chunk_job *job);
/* At least n zeroed gradient slots (model.c). */
icl_status icl_model_ensure_grad_slots(icl_model *m, int n);

/* View of a point in the activation buffer `a` (shape from m->B, m->T). */
icl_status icl_model_point_in(const icl_model *m, const icl_act_views *a, icl_point p, int layer,
                              icl_point_view *view);

#endif
