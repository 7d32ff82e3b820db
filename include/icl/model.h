/* The transformer: creation, forward, backward, parameter access.
 *
 * One icl_model owns four contiguous buffers on its backend, each carved into
 * named views: parameters, parameter gradients, activations (every
 * intermediate of the last forward pass) and activation gradients. */
#ifndef ICL_MODEL_H
#define ICL_MODEL_H

#include <stddef.h>
#include <stdint.h>
#include "icl/config.h"
#include "icl/points.h"
#include "icl/status.h"

ICL_BEGIN_DECLS

typedef enum { ICL_BACKEND_CPU = 0, ICL_BACKEND_CUDA = 1 } icl_backend_kind;

/* "cpu" / "cuda" -> kind; ICL_ERR_INVALID_ARG for anything else. */
icl_status icl_backend_parse(const char *name, icl_backend_kind *out);
const char *icl_backend_name(icl_backend_kind kind);
/* 1 if this build can create models on `kind` right now (CUDA: compiled in and a device present). */
int icl_backend_available(icl_backend_kind kind);

/* One batch of prompts. Host pointers; the model copies what it needs.
 * Token mode: tokens (B,T) int32 in [0,V); targets (B,T) int32, a target is
 *   only read where its weight is non-zero.
 * Vector mode: inputs (B,T,d_in); target_values (B,T,d_out).
 * loss_weights (B,T): per-position weight; NULL means every position weighs 1.
 * The loss is sum_i w_i * loss_i / sum_i w_i. Targets may be NULL for a
 * forward pass without loss. */
typedef struct {
    int B, T;
    const int32_t *tokens;
    const float *inputs;
    const int32_t *targets;
    const float *target_values;
    const float *loss_weights;
} icl_batch;

/* Parameter groups: the unit of freezing and of checkpoint bookkeeping. */
typedef enum {
    ICL_GROUP_EMBED = 0,  /* token embedding (token mode) or read-in (vector mode) */
    ICL_GROUP_POSITION,   /* position embedding */
    ICL_GROUP_ATTN,       /* per layer: qkv and output projection */
    ICL_GROUP_MLP,        /* per layer: fc and projection */
    ICL_GROUP_NORM,       /* per layer: ln1 and ln2 */
    ICL_GROUP_FINAL_NORM, /* final layernorm */
    ICL_GROUP_HEAD        /* lm_head (untied token mode) or read-out (vector mode) */
} icl_group_kind;

/* A named parameter tensor (row-major, float32). */
typedef struct {
    const char *name;        /* e.g. "blocks.0.attn.qkv.weight" */
    int ndim;
    int shape[2];
    size_t offset;           /* in floats, into the parameter buffer */
    size_t numel;
    icl_group_kind group;
    int layer;               /* block index, -1 outside blocks */
    int decay;               /* 1: AdamW weight decay applies (matrices) */
} icl_param_info;

/* Create a model with parameters initialised from `seed`: weight matrices
 * N(0, cfg->init_std), whose default 0 means 1/sqrt(d_model); the residual
 * projections (attn.proj, mlp.proj) scaled by 1/sqrt(2*n_layer); zero
 * biases; unit layernorm gains (docs/architecture.md, Initialisation). */
icl_status icl_model_create(icl_model **out, const icl_config *cfg, icl_backend_kind backend, uint64_t seed);
void icl_model_free(icl_model *m);
/* A new model with m's config, backend and parameters. */
icl_status icl_model_clone(const icl_model *m, icl_model **out);

/* Bytes a model of this configuration needs to train on batches of B prompts
 * of T positions: the activations and the activation gradients the backward
 * keeps (the layouts the model carves), the parameters, their gradients and
 * AdamW's two moments. Lets a caller refuse an impossible batch before
 * allocating anything. Not counted: on the CPU a batch of more than 512
 * positions (B*T) also keeps one more copy of the gradients per thread (the
 * chunks' gradient slots, docs/architecture.md). */
icl_status icl_config_training_bytes(const icl_config *cfg, int B, int T, double *bytes);

const icl_config *icl_model_config(const icl_model *m);
icl_backend_kind icl_model_backend(const icl_model *m);
size_t icl_model_num_params(const icl_model *m);
int icl_model_num_tensors(const icl_model *m);
/* Info about tensor i in [0, num_tensors); NULL if out of range. */
const icl_param_info *icl_model_tensor(const icl_model *m, int i);
/* Index of the tensor called `name`, or -1. */
int icl_model_find_tensor(const icl_model *m, const char *name);
/* Copy the tensor called `name` to host: n must be its numel. */
icl_status icl_model_get_tensor(const icl_model *m, const char *name, float *host, size_t n);

/* Copy all parameters (num_params floats, in tensor order) to / from host memory. */
icl_status icl_model_get_params(const icl_model *m, float *host, size_t n);
icl_status icl_model_set_params(icl_model *m, const float *host, size_t n);
/* Same for the parameter gradients of the last backward pass(es). */
icl_status icl_model_get_grads(const icl_model *m, float *host, size_t n);

/* Run the forward pass. With targets, *loss (if non-NULL) receives the
 * weighted mean loss. Fails with ICL_ERR_SHAPE if T > ctx, ICL_ERR_INVALID_ARG
 * for a token outside [0,V) or missing inputs. */
icl_status icl_model_forward(icl_model *m, const icl_batch *batch, float *loss);

/* Zero the parameter gradients. */
icl_status icl_model_zero_grad(icl_model *m);
/* Backpropagate the loss of the last forward pass (which must have had
 * targets), accumulating (+=) into the parameter gradients; `scale`
 * multiplies the loss first (1/n for n accumulated micro-batches). */
icl_status icl_model_backward(icl_model *m, float scale);

/* Outputs of the last forward pass copied to host: logits (B,T,V) in token
 * mode, predictions (B,T,d_out) in vector mode. n = number of floats in `host`. */
icl_status icl_model_outputs(const icl_model *m, float *host, size_t n);
/* Per-position losses (B,T) of the last forward pass, unweighted, 0 where the
 * weight was 0 (cross-entropy in nats, or mean squared error over d_out). */
icl_status icl_model_losses(const icl_model *m, float *host, size_t n);
/* Token mode: softmax probabilities (B,T,V) of the last forward pass. */
icl_status icl_model_probs(const icl_model *m, float *host, size_t n);
/* The same for one position: the V probabilities at (b, t); n = V. */
icl_status icl_model_probs_at(const icl_model *m, int b, int t, float *host, size_t n);
/* (B,T) of the last forward pass; ICL_ERR_STATE if none has run since the
 * model was created or its parameters changed. */
icl_status icl_model_forward_shape(const icl_model *m, int *B, int *T);

/* Shape and location of a point of the last forward pass (layer ignored for
 * points outside blocks). The view's data stays valid until the next forward
 * pass or icl_model_free. */
icl_status icl_model_point(const icl_model *m, icl_point p, int layer, icl_point_view *view);
/* Copy a point of the last forward pass to host as a dense tensor of
 * view.B*view.T*view.width floats ((B,NH,T,T) points: B*NH*T*T). */
icl_status icl_model_point_copy(const icl_model *m, icl_point p, int layer, float *host, size_t n);

/* Copy the record of (b, t) of a point view to host / overwrite it from
 * host: icl_point_width floats, i.e. one head's HS channels (head >= 0 of a
 * head-split point) or every channel (head -1); for attention scores/probs
 * the T entries of query t of one head, or of every head one after another
 * (NH*T). Works on the view a hook receives (during the forward pass) as on
 * one from icl_model_point; a write is what downstream computation reads. */
icl_status icl_model_point_read(const icl_model *m, const icl_point_view *v, int head, int b, int t, float *host);
icl_status icl_model_point_write(icl_model *m, const icl_point_view *v, int head, int b, int t, const float *host);

/* Install (fn != NULL) or remove the hook called at every point. */
void icl_model_set_hook(icl_model *m, icl_hook_fn fn, void *user);
/* The installed hook and its user pointer (NULL, NULL if none). */
void icl_model_get_hook(const icl_model *m, icl_hook_fn *fn, void **user);

ICL_END_DECLS
#endif
