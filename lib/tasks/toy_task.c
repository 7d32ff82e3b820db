/* Copy / reverse toy tasks (see include/icl/toy.h). */
#include <string.h>
#include "error.h"
#include "icl/toy.h"

icl_status icl_toy_parse(const char *name, icl_toy_kind *out) {
    if (!name || !out)
        return icl_fail(ICL_ERR_INVALID_ARG, "icl_toy_parse: NULL argument");
    if (strcmp(name, "copy") == 0)
        *out = ICL_TOY_COPY;
    else if (strcmp(name, "reverse") == 0)
        *out = ICL_TOY_REVERSE;
    else
        return icl_fail(ICL_ERR_INVALID_ARG, "unknown toy task \"%s\" (expected copy or reverse)", name);
    return ICL_OK;
}

int icl_toy_vocab_size(const icl_toy_task *t) { return t->n_symbols + 2; }
int icl_toy_seq_len(const icl_toy_task *t) { return 2 * t->length + 2; }

icl_status icl_toy_fill(const icl_toy_task *t, icl_rng *rng, int B, int32_t *tokens, int32_t *targets,
                        float *weights, icl_batch *batch) {
    if (!t || !rng || !tokens || !targets || !weights || !batch)
        return icl_fail(ICL_ERR_INVALID_ARG, "icl_toy_fill: NULL argument");
    if (t->n_symbols < 2 || t->length < 1 || B < 1 || (t->kind != ICL_TOY_COPY && t->kind != ICL_TOY_REVERSE))
        return icl_fail(ICL_ERR_INVALID_ARG, "icl_toy_fill: need n_symbols >= 2, length >= 1, B >= 1 and a known kind");
    int n = t->length, T = icl_toy_seq_len(t);
    int32_t bos = t->n_symbols, sep = t->n_symbols + 1;
    /* One draw from rng picks this batch's base stream, so consecutive calls
     * give new prompts while prompt b never depends on B. */
    icl_rng base;
    icl_rng_split(&base, rng, icl_rng_u64(rng));
    for (int b = 0; b < B; b++) {
        icl_rng r;
        icl_rng_split(&r, &base, (uint64_t)b);
        int32_t *x = tokens + (size_t)b * T;
        x[0] = bos;
        for (int i = 0; i < n; i++)
            x[1 + i] = (int32_t)icl_rng_below(&r, (uint32_t)t->n_symbols);
        x[n + 1] = sep;
        for (int i = 0; i < n; i++)
            x[n + 2 + i] = t->kind == ICL_TOY_COPY ? x[1 + i] : x[n - i];
        for (int i = 0; i < T; i++) {
            targets[(size_t)b * T + i] = i + 1 < T ? x[i + 1] : -1;
            weights[(size_t)b * T + i] = (i >= n + 1 && i + 1 < T) ? 1.0f : 0.0f;
        }
    }
    batch->B = B;
    batch->T = T;
    batch->tokens = tokens;
    batch->targets = targets;
    batch->inputs = NULL;
    batch->target_values = NULL;
    batch->loss_weights = weights;
    return ICL_OK;
}
