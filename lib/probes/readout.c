/* Answer probabilities and residual readouts (include/icl/readout.h). */
#include <stdlib.h>
#include <string.h>
#include "error.h"
#include "icl/readout.h"
#include "probe_internal.h"

static icl_status check_batch(const icl_model *m, const icl_task_batch *tb, const char *fn) {
    if (!m || !tb)
        return icl_fail(ICL_ERR_INVALID_ARG, "%s: NULL argument", fn);
    if (m->cfg.mode != ICL_MODE_TOKEN || tb->mode != ICL_MODE_TOKEN)
        return icl_fail(ICL_ERR_INVALID_ARG, "%s: needs a token-mode model and batch", fn);
    if (tb->B < 1)
        return icl_fail(ICL_ERR_INVALID_ARG, "%s: empty batch", fn);
    return ICL_OK;
}

/* Positions of row b's query answer tokens (role QUERY_ANSWER), in order. */
static int answer_slots(const icl_task_batch *tb, int b, int *slots, int cap) {
    int n = 0;
    for (int t = 0; t < tb->T && n < cap; t++)
        if (tb->roles[(size_t)b * tb->T + t] == ICL_ROLE_QUERY_ANSWER)
            slots[n++] = t;
    return n;
}

icl_status icl_answer_probs(icl_model *m, const icl_task_batch *tb, const int32_t *answers, int n_cand,
                            const icl_intervention *iv, int n_iv, double *probs) {
    ICL_TRY(check_batch(m, tb, "icl_answer_probs"));
    if (!answers || !probs || n_cand < 1)
        return icl_fail(ICL_ERR_INVALID_ARG, "icl_answer_probs: NULL output/answers or n_cand < 1");
    int B = tb->B, T = tb->T, V = m->V, A = tb->prompts[0].answer_len;
    for (size_t i = 0; i < (size_t)B * n_cand * A; i++)
        if (answers[i] < 0 || answers[i] >= V)
            return icl_fail(ICL_ERR_INVALID_ARG, "icl_answer_probs: answer token %d outside [0, %d)", answers[i], V);
    int32_t *tokens = malloc((size_t)B * T * sizeof *tokens);
    float *p = malloc((size_t)B * T * V * sizeof *p);
    int *slots = malloc((size_t)(A > 0 ? A : 1) * sizeof *slots);
    icl_status s = (tokens && p && slots) ? ICL_OK : icl_fail(ICL_ERR_NOMEM, "icl_answer_probs: out of memory");
    icl_row_labels labels = {tb->roles, tb->prompt_len};
    /* With one-token answers the prompt never contains the answer being scored. */
    int passes = A == 1 ? 1 : n_cand;
    for (int c = 0; s == ICL_OK && c < passes; c++) {
        memcpy(tokens, tb->tokens, (size_t)B * T * sizeof *tokens);
        for (int b = 0; b < B && A > 1; b++) {
            int n = answer_slots(tb, b, slots, A);
            for (int j = 0; j < n; j++)
                tokens[(size_t)b * T + slots[j]] = answers[((size_t)b * n_cand + c) * A + j];
        }
        icl_batch batch = {B, T, tokens, NULL, NULL, NULL, NULL};
        s = icl_forward_with(m, &batch, &labels, iv, n_iv, NULL);
        if (s == ICL_OK)
            s = icl_model_probs(m, p, (size_t)B * T * V);
        for (int b = 0; s == ICL_OK && b < B; b++) {
            int q = tb->query_pos[b];
            for (int cc = (A == 1 ? 0 : c); cc < (A == 1 ? n_cand : c + 1); cc++) {
                double prod = 1.0;
                for (int j = 0; j < A; j++)
                    prod *= p[((size_t)b * T + q + j) * V + answers[((size_t)b * n_cand + cc) * A + j]];
                probs[(size_t)b * n_cand + cc] = prod;
            }
        }
    }
    free(tokens);
    free(p);
    free(slots);
    return s;
}

icl_status icl_top_probs(const icl_model *m, const icl_task_batch *tb, int K, double *top) {
    ICL_TRY(check_batch(m, tb, "icl_top_probs"));
    if (!top || K < 1 || K > m->V)
        return icl_fail(ICL_ERR_INVALID_ARG, "icl_top_probs: K must be in [1, %d] and top non-NULL", m->V);
    if (!m->forward_done || m->B != tb->B || m->T != tb->T)
        return icl_fail(ICL_ERR_STATE, "icl_top_probs: the last forward pass was not of this batch");
    int V = m->V;
    float *row = malloc((size_t)V * sizeof *row);
    if (!row)
        return icl_fail(ICL_ERR_NOMEM, "icl_top_probs: out of memory");
    icl_status s = ICL_OK;
    for (int b = 0; s == ICL_OK && b < tb->B; b++) {
        s = m->be->ops->to_host(m->be, row, m->a.probs + ((size_t)b * tb->T + tb->query_pos[b]) * V,
                                (size_t)V * sizeof *row);
        /* partial selection sort: K is small */
        for (int k = 0; s == ICL_OK && k < K; k++) {
            int best = k;
            for (int v = k + 1; v < V; v++)
                if (row[v] > row[best]) best = v;
            float t = row[k];
            row[k] = row[best];
            row[best] = t;
            top[(size_t)b * K + k] = row[k];
        }
    }
    free(row);
    return s;
}

icl_status icl_residuals_at(icl_model *m, const icl_task_batch *tb, icl_positions pos, const icl_intervention *iv,
                            int n_iv, float *out) {
    if (!m || !tb || !out)
        return icl_fail(ICL_ERR_INVALID_ARG, "icl_residuals_at: NULL argument");
    icl_row_labels labels = {tb->roles, tb->prompt_len};
    ICL_TRY(icl_forward_with(m, &tb->batch, &labels, iv, n_iv, NULL));
    int B = tb->B, T = tb->T, C = m->C, n;
    int *buf = malloc((size_t)T * sizeof *buf);
    if (!buf)
        return icl_fail(ICL_ERR_NOMEM, "icl_residuals_at: out of memory");
    icl_status s = ICL_OK;
    for (int b = 0; s == ICL_OK && b < B; b++) {
        s = icl_select_positions(&pos, &labels, b, T, buf, &n);
        if (s == ICL_OK && n < 1)
            s = icl_fail(ICL_ERR_INVALID_ARG, "icl_residuals_at: row %d has no position of the selector", b);
        for (int level = 0; s == ICL_OK && level <= m->L; level++)
            s = m->be->ops->to_host(m->be, out + ((size_t)level * B + b) * C,
                                    m->a.resid[level] + ((size_t)b * T + buf[0]) * C, (size_t)C * sizeof(float));
    }
    free(buf);
    return s;
}
