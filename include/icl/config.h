/* Model configuration: a plain struct the caller fills, validated by the library.
 *
 * Conventions (GPT-2): pre-LayerNorm blocks, LayerNorm eps 1e-5, tanh-approximated
 * GELU, attention scores scaled by 1/sqrt(d_head), learned position embeddings. */
#ifndef ICL_CONFIG_H
#define ICL_CONFIG_H

#include <stddef.h>
#include "icl/status.h"

ICL_BEGIN_DECLS

typedef enum {
    ICL_MODE_TOKEN = 0, /* int32 tokens in, logits over a vocabulary out, cross-entropy */
    ICL_MODE_VECTOR = 1 /* d_in reals in per position, d_out reals out, mean squared error */
} icl_input_mode;

typedef struct {
    icl_input_mode mode;
    int n_layer;   /* transformer blocks */
    int d_model;   /* residual width C */
    int n_head;    /* attention heads; d_model % n_head == 0 */
    int d_ff;      /* MLP hidden width; 0 means 4 * d_model */
    int ctx;       /* longest sequence the position table covers */
    /* token mode */
    int vocab_size;     /* V */
    int tie_embeddings; /* 1: logits use the token embedding matrix; 0: separate lm_head */
    /* vector mode */
    int d_in;  /* reals per input position */
    int d_out; /* reals per output position */
    /* Standard deviation of the weight matrices at initialisation (residual
     * projections get it / sqrt(2 n_layer)); 0 means 1/sqrt(d_model). */
    float init_std;
} icl_config;

/* A small token-mode default: 2 layers, d_model 64, 4 heads, ctx 128, V 32, tied,
 * init_std 0 (1/sqrt(d_model)). */
icl_config icl_config_default(void);

/* ICL_OK, or ICL_ERR_CONFIG with a message naming the offending field. */
icl_status icl_config_validate(const icl_config *cfg);

/* d_ff with the 0 -> 4*d_model default applied. */
int icl_config_d_ff(const icl_config *cfg);

/* init_std with the 0 -> 1/sqrt(d_model) default applied. */
float icl_config_init_std(const icl_config *cfg);

/* Number of trainable scalars the config implies. */
size_t icl_config_num_params(const icl_config *cfg);

/* Serialise to / parse from a compact JSON object (used in checkpoint metadata).
 * icl_config_to_json writes into buf (NUL-terminated); ICL_ERR_INVALID_ARG if it does not fit. */
icl_status icl_config_to_json(const icl_config *cfg, char *buf, size_t buf_size);
icl_status icl_config_from_json(icl_config *cfg, const char *json);

ICL_END_DECLS
#endif
