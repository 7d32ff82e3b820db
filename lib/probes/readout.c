/* Answer readouts after a forward pass, optionally under interventions
 * (include/icl/readout.h): teacher-forced answer probabilities, each row's own
 * answer, query errors and scores, top probabilities and residuals. */
#include <stdlib.h>
#include <string.h>
#include "error.h"
#include "icl/readout.h"
#include "probe_internal.h"

/* Positions of row b's query answer tokens (role QUERY_ANSWER), in order. */
static int answer_slots(const icl_task_batch *tb, int b, int *slots, int cap) {
    int n = 0;
    for (int t = 0; t < tb->T && n < cap; t++)
        if (tb->roles[(size_t)b * tb->T + t] == ICL_ROLE_QUERY_ANSWER)
            slots[n++] = t;
    return n;
}

icl_status icl_answer_probs(icl_model *m, const icl_task_batch *tb, const int32_t *answers, int n_cand,
                            const icl_intervention *iv, int n_iv, double *probs, double *exact) {
    if (!m || !tb || !answers || !probs || n_cand < 1)
        return icl_fail(ICL_ERR_INVALID_ARG, "icl_answer_probs: NULL argument or n_cand < 1");
    probe_dims d = probe_dims_of(m);
    if (d.mode != ICL_MODE_TOKEN || tb->mode != ICL_MODE_TOKEN || tb->B < 1)
        return icl_fail(ICL_ERR_INVALID_ARG, "icl_answer_probs: needs a token-mode model and a non-empty batch");
    int B = tb->B, T = tb->T, V = d.V, A = tb->prompts[0].answer_len;
    for (size_t i = 0; i < (size_t)B * n_cand * A; i++)
        if (answers[i] < 0 || answers[i] >= V)
            return icl_fail(ICL_ERR_INVALID_ARG, "icl_answer_probs: answer token %d outside [0, %d)", answers[i], V);
    int32_t *tokens = malloc((size_t)B * T * sizeof *tokens);
    float *p = malloc((size_t)B * T * V * sizeof *p);
    int *slots = malloc((size_t)A * sizeof *slots);
    icl_status s = (tokens && p && slots) ? ICL_OK : icl_fail(ICL_ERR_NOMEM, "icl_answer_probs: out of memory");
    icl_row_labels labels = {tb->roles, tb->prompt_len};
    /* One-token answers: the scored answer is never part of the input, so one pass serves every candidate. */
    int passes = A == 1 ? 1 : n_cand;
    for (int c = 0; s == ICL_OK && c < passes; c++) {
        memcpy(tokens, tb->tokens, (size_t)B * T * sizeof *tokens);
        for (int b = 0; b < B && A > 1 && s == ICL_OK; b++) {
            if (answer_slots(tb, b, slots, A) != A)
                s = icl_fail(ICL_ERR_INVALID_ARG, "icl_answer_probs: row %d lacks a %d-token query answer", b, A);
            for (int j = 0; s == ICL_OK && j < A; j++)
                tokens[(size_t)b * T + slots[j]] = answers[((size_t)b * n_cand + c) * A + j];
        }
        icl_batch batch = {B, T, tokens, NULL, NULL, NULL, NULL};
        if (s == ICL_OK)
            s = icl_forward_with(m, &batch, &labels, iv, n_iv, NULL);
        if (s == ICL_OK)
            s = icl_model_probs(m, p, (size_t)B * T * V);
        for (int b = 0; s == ICL_OK && b < B; b++) {
            int q = tb->query_pos[b];
            for (int cc = (A == 1 ? 0 : c); cc < (A == 1 ? n_cand : c + 1); cc++) {
                const int32_t *ans = answers + ((size_t)b * n_cand + cc) * A;
                double prod = 1.0;
                int hit = 1;
                for (int j = 0; j < A; j++) {
                    const float *row = p + ((size_t)b * T + q + j) * V;
                    int best = 0;
                    for (int v = 1; v < V; v++)
                        if (row[v] > row[best]) best = v;
                    prod *= row[ans[j]];
                    hit &= best == ans[j];
                }
                probs[(size_t)b * n_cand + cc] = prod;
                if (exact)
                    exact[(size_t)b * n_cand + cc] = hit;
            }
        }
    }
    free(tokens);
    free(p);
    free(slots);
    return s;
}

icl_status icl_readout_check_answer_slots(const icl_model *m, const icl_task_batch *tb, const char *fn) {
    if (!m || !tb)
        return icl_fail(ICL_ERR_INVALID_ARG, "%s: NULL model or batch", fn);
    if (probe_dims_of(m).mode != ICL_MODE_TOKEN || tb->mode != ICL_MODE_TOKEN)
        return icl_fail(ICL_ERR_INVALID_ARG, "%s: needs a token-mode model and batch", fn);
    if (tb->B < 1 || tb->T < 1)
        return icl_fail(ICL_ERR_INVALID_ARG, "%s: empty batch", fn);
    int A = tb->prompts[0].answer_len;
    for (int b = 0; b < tb->B; b++) {
        int q = tb->query_pos[b];
        if (q < 0 || q + A >= tb->T)
            return icl_fail(ICL_ERR_INVALID_ARG, "%s: row %d has query position %d outside its %d positions", fn, b,
                            q, tb->T);
        for (int j = 1; j <= A; j++)
            if (tb->roles[(size_t)b * tb->T + q + j] != ICL_ROLE_QUERY_ANSWER)
                return icl_fail(ICL_ERR_INVALID_ARG, "%s: row %d: position %d after the query separator is not a "
                                "query answer slot", fn, b, q + j);
    }
    return ICL_OK;
}

/* The answer tokens are read from the slots after the query separator. */
icl_status icl_readout_self_probs(icl_model *m, const icl_task_batch *tb, const icl_row_labels *labels,
                                  const icl_intervention *iv, int n_iv, double *probs, uint8_t *correct) {
    int B = tb->B, T = tb->T, V = probe_dims_of(m).V, A = tb->prompts[0].answer_len;
    ICL_TRY(icl_forward_with(m, &tb->batch, labels, iv, n_iv, NULL));
    float *row = malloc((size_t)V * sizeof *row);
    if (!row)
        return icl_fail(ICL_ERR_NOMEM, "icl_answer_self_probs: out of memory");
    icl_status s = ICL_OK;
    for (int b = 0; s == ICL_OK && b < B; b++) {
        int q = tb->query_pos[b], ok = 1;
        double prod = 1.0;
        for (int j = 0; s == ICL_OK && j < A; j++) {
            s = icl_model_probs_at(m, b, q + j, row, (size_t)V);
            int want = tb->tokens[(size_t)b * T + q + 1 + j], best = 0;
            for (int v = 1; v < V; v++)
                if (row[v] > row[best]) best = v;
            prod *= row[want];
            ok &= best == want;
        }
        probs[b] = prod;
        if (correct)
            correct[b] = (uint8_t)ok;
    }
    free(row);
    return s;
}

icl_status icl_answer_self_probs(icl_model *m, const icl_task_batch *tb, const icl_intervention *iv, int n_iv,
                                 double *probs, uint8_t *correct) {
    ICL_TRY(icl_readout_check_answer_slots(m, tb, "icl_answer_self_probs"));
    if (!probs)
        return icl_fail(ICL_ERR_INVALID_ARG, "icl_answer_self_probs: probs is NULL");
    icl_row_labels labels = {tb->roles, tb->prompt_len};
    return icl_readout_self_probs(m, tb, &labels, iv, n_iv, probs, correct);
}

icl_status icl_readout_check_query_batch(const icl_model *m, const icl_task_batch *tb, const double *err,
                                         const char *fn) {
    if (!m || !tb || !err)
        return icl_fail(ICL_ERR_INVALID_ARG, "%s: NULL argument", fn);
    probe_dims d = probe_dims_of(m);
    if (d.mode != ICL_MODE_VECTOR || tb->mode != ICL_MODE_VECTOR || tb->d_out != d.OUT)
        return icl_fail(ICL_ERR_INVALID_ARG, "%s: needs a vector-mode model and batch of the same d_out", fn);
    if (tb->B < 1)
        return icl_fail(ICL_ERR_INVALID_ARG, "%s: empty batch", fn);
    for (int b = 0; b < tb->B; b++)
        if (tb->query_pos[b] < 0 || tb->query_pos[b] >= tb->T)
            return icl_fail(ICL_ERR_INVALID_ARG, "%s: row %d has query position %d outside its %d positions", fn, b,
                            tb->query_pos[b], tb->T);
    return ICL_OK;
}

icl_status icl_readout_sq_errors(icl_model *m, const icl_task_batch *tb, const icl_row_labels *labels,
                                 const icl_intervention *iv, int n_iv, double *err) {
    int T = tb->T, O = probe_dims_of(m).OUT;
    icl_batch batch = tb->batch;
    batch.target_values = NULL; /* the error is computed here; no loss needed */
    batch.loss_weights = NULL;
    ICL_TRY(icl_forward_with(m, &batch, labels, iv, n_iv, NULL));
    icl_point_view v;
    ICL_TRY(icl_model_point(m, ICL_POINT_LOGITS, -1, &v));
    float *row = malloc((size_t)O * sizeof *row);
    if (!row)
        return icl_fail(ICL_ERR_NOMEM, "icl_query_sq_errors: out of memory");
    icl_status s = ICL_OK;
    for (int b = 0; s == ICL_OK && b < tb->B; b++) {
        size_t at = (size_t)b * T + tb->query_pos[b];
        s = icl_model_point_read(m, &v, -1, b, tb->query_pos[b], row);
        double se = 0.0;
        for (int o = 0; o < O; o++) {
            double e = (double)row[o] - tb->target_values[at * O + o];
            se += e * e;
        }
        err[b] = se / O;
    }
    free(row);
    return s;
}

icl_status icl_query_sq_errors(icl_model *m, const icl_task_batch *tb, const icl_intervention *iv, int n_iv,
                               double *err) {
    ICL_TRY(icl_readout_check_query_batch(m, tb, err, "icl_query_sq_errors"));
    icl_row_labels labels = {tb->roles, tb->prompt_len};
    return icl_readout_sq_errors(m, tb, &labels, iv, n_iv, err);
}

/* Score of row b (see icl_repr_set.score); out (B,T,OUT) outputs of the forward pass of tb. */
static double query_score(const icl_task_batch *tb, int b, const float *out, int OUT) {
    const icl_prompt *p = &tb->prompts[b];
    int T = tb->T, q = tb->query_pos[b];
    if (tb->mode == ICL_MODE_VECTOR) {
        double se = 0.0;
        for (int c = 0; c < tb->d_out; c++) {
            double e = out[((size_t)b * T + q) * OUT + c] - tb->target_values[((size_t)b * T + q) * tb->d_out + c];
            se += e * e;
        }
        return se;
    }
    for (int j = 0; j < p->answer_len; j++) {
        const float *row = out + ((size_t)b * T + q + j) * OUT;
        int best = 0;
        for (int v = 1; v < OUT; v++)
            if (row[v] > row[best]) best = v;
        if (best != tb->targets[(size_t)b * T + q + j])
            return 0.0;
    }
    return 1.0;
}

/* The model's last forward pass was of tb (same shape and mode). */
static icl_status check_last_pass(const icl_model *m, const icl_task_batch *tb, const char *fn) {
    int B, T;
    if (icl_model_forward_shape(m, &B, &T) != ICL_OK || B != tb->B || T != tb->T ||
        probe_dims_of(m).mode != tb->mode)
        return icl_fail(ICL_ERR_STATE, "%s: the last forward pass was not of this batch", fn);
    return ICL_OK;
}

icl_status icl_query_scores(const icl_model *m, const icl_task_batch *tb, double *score) {
    if (!m || !tb || !score)
        return icl_fail(ICL_ERR_INVALID_ARG, "icl_query_scores: NULL argument");
    ICL_TRY(check_last_pass(m, tb, "icl_query_scores"));
    int OUT = probe_dims_of(m).OUT;
    size_t n = (size_t)tb->B * tb->T * OUT;
    float *out = malloc(n * sizeof *out);
    if (!out)
        return icl_fail(ICL_ERR_NOMEM, "icl_query_scores: out of memory for %zu floats", n);
    icl_status s = icl_model_outputs(m, out, n);
    for (int b = 0; s == ICL_OK && b < tb->B; b++) score[b] = query_score(tb, b, out, OUT);
    free(out);
    return s;
}

icl_status icl_top_probs(const icl_model *m, const icl_task_batch *tb, int K, double *top) {
    if (!m || !tb)
        return icl_fail(ICL_ERR_INVALID_ARG, "icl_top_probs: NULL argument");
    probe_dims d = probe_dims_of(m);
    if (d.mode != ICL_MODE_TOKEN || tb->mode != ICL_MODE_TOKEN)
        return icl_fail(ICL_ERR_INVALID_ARG, "icl_top_probs: needs a token-mode model and batch");
    if (tb->B < 1)
        return icl_fail(ICL_ERR_INVALID_ARG, "icl_top_probs: empty batch");
    if (!top || K < 1 || K > d.V)
        return icl_fail(ICL_ERR_INVALID_ARG, "icl_top_probs: K must be in [1, %d] and top non-NULL", d.V);
    ICL_TRY(check_last_pass(m, tb, "icl_top_probs"));
    int V = d.V;
    float *row = malloc((size_t)V * sizeof *row);
    if (!row)
        return icl_fail(ICL_ERR_NOMEM, "icl_top_probs: out of memory");
    icl_status s = ICL_OK;
    for (int b = 0; s == ICL_OK && b < tb->B; b++) {
        s = icl_model_probs_at(m, b, tb->query_pos[b], row, (size_t)V);
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

icl_status icl_residual_view(const icl_model *m, int level, icl_point_view *view) {
    return level == 0 ? icl_model_point(m, ICL_POINT_EMBED, -1, view)
                      : icl_model_point(m, ICL_POINT_RESID_POST, level - 1, view);
}

icl_status icl_residuals_at(icl_model *m, const icl_task_batch *tb, icl_positions pos, const icl_intervention *iv,
                            int n_iv, float *out) {
    if (!m || !tb || !out)
        return icl_fail(ICL_ERR_INVALID_ARG, "icl_residuals_at: NULL argument");
    icl_row_labels labels = {tb->roles, tb->prompt_len};
    ICL_TRY(icl_forward_with(m, &tb->batch, &labels, iv, n_iv, NULL));
    probe_dims d = probe_dims_of(m);
    int B = tb->B, T = tb->T, C = d.C, n;
    int *buf = malloc((size_t)T * sizeof *buf);
    if (!buf)
        return icl_fail(ICL_ERR_NOMEM, "icl_residuals_at: out of memory");
    icl_status s = ICL_OK;
    for (int b = 0; s == ICL_OK && b < B; b++) {
        s = icl_select_positions(&pos, &labels, b, T, buf, &n);
        if (s == ICL_OK && n < 1)
            s = icl_fail(ICL_ERR_INVALID_ARG, "icl_residuals_at: row %d has no position of the selector", b);
        for (int level = 0; s == ICL_OK && level <= d.L; level++) {
            icl_point_view v;
            s = icl_residual_view(m, level, &v);
            if (s == ICL_OK)
                s = icl_model_point_read(m, &v, -1, b, buf[0], out + ((size_t)level * B + b) * C);
        }
    }
    free(buf);
    return s;
}
