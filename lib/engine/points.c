/* The catalogue of named forward-pass points. */
#include "icl/points.h"

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
