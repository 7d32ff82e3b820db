/* Logit lens and head ablation (include/icl/lens.h): read each task's answer
 * out of every level of the residual stream, and remove one head at a time. */
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include "error.h"
#include "icl/lens.h"
#include "model_internal.h"

/* The model's final layernorm uses this epsilon (kernels/cpu/layernorm.c). */
#define LENS_LN_EPS 1e-5

struct icl_lens {
    int L, C, V;
    double *ln_w, *ln_b; /* (C), (C) */
    float *unembed;      /* (V,C) */
};

struct icl_head_means {
    int L, T, C, NH;
    double *sum;   /* (L,T,C) */
    int64_t *count; /* (T) prompts that reached position t */
};

/* ---- shared checks ---- */

static icl_status check_token_batch(const icl_model *m, const icl_task_batch *tb, const char *fn) {
    if (!m || !tb)
        return icl_fail(ICL_ERR_INVALID_ARG, "%s: NULL model or batch", fn);
    if (m->cfg.mode != ICL_MODE_TOKEN || tb->mode != ICL_MODE_TOKEN)
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

static icl_status check_lens_model(const icl_lens *lens, const icl_model *m, const char *fn) {
    if (!lens || !m)
        return icl_fail(ICL_ERR_INVALID_ARG, "%s: NULL lens or model", fn);
    if (lens->L != m->L || lens->C != m->C || lens->V != m->V)
        return icl_fail(ICL_ERR_INVALID_ARG, "%s: the lens was made from another model (L=%d C=%d V=%d, model L=%d "
                        "C=%d V=%d)", fn, lens->L, lens->C, lens->V, m->L, m->C, m->V);
    return ICL_OK;
}

/* ---- logit lens ---- */

static icl_status copy_tensor(const icl_model *m, const float *params, const char *name, size_t numel, float *dst) {
    int i = icl_model_find_tensor(m, name);
    const icl_param_info *t = icl_model_tensor(m, i);
    if (!t || t->numel != numel)
        return icl_fail(ICL_ERR_STATE, "icl_lens_create: tensor %s missing or of unexpected size", name);
    memcpy(dst, params + t->offset, numel * sizeof *dst);
    return ICL_OK;
}

static icl_status lens_fill(icl_lens *lens, const icl_model *m) {
    size_t P = icl_model_num_params(m), C = (size_t)lens->C;
    float *params = malloc(P * sizeof *params), *w = malloc(C * sizeof *w), *b = malloc(C * sizeof *b);
    icl_status s = (params && w && b) ? ICL_OK : icl_fail(ICL_ERR_NOMEM, "icl_lens_create: out of memory");
    if (s == ICL_OK)
        s = icl_model_get_params(m, params, P);
    if (s == ICL_OK)
        s = copy_tensor(m, params, "ln_f.weight", C, w);
    if (s == ICL_OK)
        s = copy_tensor(m, params, "ln_f.bias", C, b);
    if (s == ICL_OK)
        s = copy_tensor(m, params, m->cfg.tie_embeddings ? "tok_embed.weight" : "lm_head.weight",
                        (size_t)lens->V * C, lens->unembed);
    for (size_t c = 0; s == ICL_OK && c < C; c++) {
        lens->ln_w[c] = w[c];
        lens->ln_b[c] = b[c];
    }
    free(params);
    free(w);
    free(b);
    return s;
}

icl_status icl_lens_create(const icl_model *m, icl_lens **out) {
    if (!m || !out)
        return icl_fail(ICL_ERR_INVALID_ARG, "icl_lens_create: NULL argument");
    *out = NULL;
    if (m->cfg.mode != ICL_MODE_TOKEN)
        return icl_fail(ICL_ERR_UNSUPPORTED, "icl_lens_create: the logit lens needs a token-mode model");
    icl_lens *lens = calloc(1, sizeof *lens);
    if (!lens)
        return icl_fail(ICL_ERR_NOMEM, "icl_lens_create: out of memory");
    lens->L = m->L;
    lens->C = m->C;
    lens->V = m->V;
    lens->ln_w = malloc((size_t)m->C * sizeof *lens->ln_w);
    lens->ln_b = malloc((size_t)m->C * sizeof *lens->ln_b);
    lens->unembed = malloc((size_t)m->V * m->C * sizeof *lens->unembed);
    icl_status s = (lens->ln_w && lens->ln_b && lens->unembed) ? lens_fill(lens, m)
                                                               : icl_fail(ICL_ERR_NOMEM, "icl_lens_create: out of memory");
    if (s != ICL_OK) {
        icl_lens_free(lens);
        return s;
    }
    *out = lens;
    return ICL_OK;
}

void icl_lens_free(icl_lens *lens) {
    if (!lens)
        return;
    free(lens->ln_w);
    free(lens->ln_b);
    free(lens->unembed);
    free(lens);
}

int icl_lens_levels(const icl_lens *lens) { return lens ? lens->L + 1 : 0; }

/* probs (V) = softmax(W_U LN_f(h)) for one h (C); y (C) is scratch. */
static void lens_one(const icl_lens *lens, const float *h, double *y, double *probs) {
    int C = lens->C, V = lens->V;
    double mean = 0.0, var = 0.0;
    for (int c = 0; c < C; c++) mean += h[c];
    mean /= C;
    for (int c = 0; c < C; c++) var += (h[c] - mean) * (h[c] - mean);
    var /= C;
    double rstd = 1.0 / sqrt(var + LENS_LN_EPS), top = -INFINITY;
    for (int c = 0; c < C; c++) y[c] = (h[c] - mean) * rstd * lens->ln_w[c] + lens->ln_b[c];
    for (int v = 0; v < V; v++) {
        const float *w = lens->unembed + (size_t)v * C;
        double z = 0.0;
        for (int c = 0; c < C; c++) z += w[c] * y[c];
        probs[v] = z;
        if (z > top) top = z;
    }
    double total = 0.0;
    for (int v = 0; v < V; v++) {
        probs[v] = exp(probs[v] - top);
        total += probs[v];
    }
    for (int v = 0; v < V; v++) probs[v] /= total;
}

icl_status icl_lens_apply(const icl_lens *lens, const float *h, int n, double *probs) {
    if (!lens || !h || !probs || n < 1)
        return icl_fail(ICL_ERR_INVALID_ARG, "icl_lens_apply: NULL argument or n < 1");
    double *y = malloc((size_t)lens->C * sizeof *y);
    if (!y)
        return icl_fail(ICL_ERR_NOMEM, "icl_lens_apply: out of memory");
    for (int i = 0; i < n; i++) {
        const float *hi = h + (size_t)i * lens->C;
        for (int c = 0; c < lens->C; c++)
            if (!isfinite(hi[c])) {
                free(y);
                return icl_fail(ICL_ERR_NUMERIC, "icl_lens_apply: residual %d has a non-finite entry", i);
            }
        lens_one(lens, hi, y, probs + (size_t)i * lens->V);
    }
    free(y);
    return ICL_OK;
}

icl_status icl_lens_read(const icl_lens *lens, const icl_model *m, int level, const int32_t *rows,
                         const int32_t *positions, int n, double *probs) {
    ICL_TRY(check_lens_model(lens, m, "icl_lens_read"));
    if (!rows || !positions || !probs || n < 1)
        return icl_fail(ICL_ERR_INVALID_ARG, "icl_lens_read: NULL argument or n < 1");
    if (level < 0 || level > m->L)
        return icl_fail(ICL_ERR_INVALID_ARG, "icl_lens_read: level %d out of range [0, %d] (0 = embedding, l+1 = "
                        "after block l)", level, m->L);
    if (!m->forward_done)
        return icl_fail(ICL_ERR_STATE, "icl_lens_read: no forward pass to read");
    for (int i = 0; i < n; i++)
        if (rows[i] < 0 || rows[i] >= m->B || positions[i] < 0 || positions[i] >= m->T)
            return icl_fail(ICL_ERR_INVALID_ARG, "icl_lens_read: (row %d, position %d) outside the last pass's "
                            "(B=%d, T=%d)", rows[i], positions[i], m->B, m->T);
    int C = m->C;
    float *h = malloc((size_t)n * C * sizeof *h);
    if (!h)
        return icl_fail(ICL_ERR_NOMEM, "icl_lens_read: out of memory");
    icl_status s = ICL_OK;
    for (int i = 0; s == ICL_OK && i < n; i++)
        s = m->be->ops->to_host(m->be, h + (size_t)i * C,
                                m->a.resid[level] + ((size_t)rows[i] * m->T + positions[i]) * C,
                                (size_t)C * sizeof *h);
    if (s == ICL_OK)
        s = icl_lens_apply(lens, h, n, probs);
    free(h);
    return s;
}

icl_status icl_lens_answer_probs(icl_model *m, const icl_lens *lens, const icl_task_batch *tb,
                                 const int32_t *answers, int n_cand, const icl_intervention *iv, int n_iv,
                                 double *probs) {
    static const char fn[] = "icl_lens_answer_probs";
    ICL_TRY(check_token_batch(m, tb, fn));
    ICL_TRY(check_lens_model(lens, m, fn));
    if (!answers || !probs || n_cand < 1)
        return icl_fail(ICL_ERR_INVALID_ARG, "%s: NULL answers/probs or n_cand < 1", fn);
    int B = tb->B, T = tb->T, V = m->V, A = tb->prompts[0].answer_len, levels = m->L + 1;
    for (size_t i = 0; i < (size_t)B * n_cand * A; i++)
        if (answers[i] < 0 || answers[i] >= V)
            return icl_fail(ICL_ERR_INVALID_ARG, "%s: answer token %d outside [0, %d)", fn, answers[i], V);
    int32_t *tokens = malloc((size_t)B * T * sizeof *tokens);
    int32_t *rows = malloc((size_t)B * A * sizeof *rows), *pos = malloc((size_t)B * A * sizeof *pos);
    double *dist = malloc((size_t)B * A * V * sizeof *dist);
    icl_status s = (tokens && rows && pos && dist) ? ICL_OK : icl_fail(ICL_ERR_NOMEM, "%s: out of memory", fn);
    icl_row_labels labels = {tb->roles, tb->prompt_len};
    // record (b, j) reads position query_pos + j, whose output predicts answer token j
    for (int b = 0; b < B && s == ICL_OK; b++)
        for (int j = 0; j < A; j++) {
            rows[b * A + j] = b;
            pos[b * A + j] = tb->query_pos[b] + j;
        }
    /* A one-token answer is never part of what is read, so one pass serves every candidate. */
    int passes = A == 1 ? 1 : n_cand;
    for (int c = 0; s == ICL_OK && c < passes; c++) {
        memcpy(tokens, tb->tokens, (size_t)B * T * sizeof *tokens);
        for (int b = 0; b < B && A > 1; b++)
            for (int j = 0; j < A; j++)
                tokens[(size_t)b * T + tb->query_pos[b] + 1 + j] = answers[((size_t)b * n_cand + c) * A + j];
        icl_batch batch = {B, T, tokens, NULL, NULL, NULL, NULL};
        s = icl_forward_with(m, &batch, &labels, iv, n_iv, NULL);
        for (int l = 0; s == ICL_OK && l < levels; l++) {
            s = icl_lens_read(lens, m, l, rows, pos, B * A, dist);
            for (int b = 0; s == ICL_OK && b < B; b++)
                for (int cc = (A == 1 ? 0 : c); cc < (A == 1 ? n_cand : c + 1); cc++) {
                    double prod = 1.0;
                    for (int j = 0; j < A; j++)
                        prod *= dist[((size_t)b * A + j) * V + answers[((size_t)b * n_cand + cc) * A + j]];
                    probs[((size_t)l * B + b) * n_cand + cc] = prod;
                }
        }
    }
    free(tokens);
    free(rows);
    free(pos);
    free(dist);
    return s;
}

/* ---- head ablation ---- */

const char *icl_ablation_mode_name(icl_ablation_mode mode) {
    switch (mode) {
    case ICL_ABLATE_ZERO: return "zero";
    case ICL_ABLATE_MEAN: return "mean";
    }
    return NULL;
}

icl_status icl_head_means_create(const icl_model *m, int T, icl_head_means **out) {
    if (!m || !out)
        return icl_fail(ICL_ERR_INVALID_ARG, "icl_head_means_create: NULL argument");
    *out = NULL;
    if (T < 1 || T > m->cfg.ctx)
        return icl_fail(ICL_ERR_INVALID_ARG, "icl_head_means_create: T = %d outside [1, ctx = %d]", T, m->cfg.ctx);
    icl_head_means *hm = calloc(1, sizeof *hm);
    if (!hm)
        return icl_fail(ICL_ERR_NOMEM, "icl_head_means_create: out of memory");
    *hm = (icl_head_means){m->L, T, m->C, m->NH, NULL, NULL};
    hm->sum = calloc((size_t)m->L * T * m->C, sizeof *hm->sum);
    hm->count = calloc((size_t)T, sizeof *hm->count);
    if (!hm->sum || !hm->count) {
        icl_head_means_free(hm);
        return icl_fail(ICL_ERR_NOMEM, "icl_head_means_create: out of memory");
    }
    *out = hm;
    return ICL_OK;
}

void icl_head_means_free(icl_head_means *hm) {
    if (!hm)
        return;
    free(hm->sum);
    free(hm->count);
    free(hm);
}

icl_status icl_head_means_add(icl_head_means *hm, icl_model *m, const icl_task_batch *tb) {
    if (!hm || !m || !tb)
        return icl_fail(ICL_ERR_INVALID_ARG, "icl_head_means_add: NULL argument");
    if (hm->L != m->L || hm->C != m->C || hm->NH != m->NH)
        return icl_fail(ICL_ERR_INVALID_ARG, "icl_head_means_add: the means were made for another model");
    if (tb->B < 1 || tb->T > hm->T)
        return icl_fail(ICL_ERR_INVALID_ARG, "icl_head_means_add: batch of %d rows and %d positions; the means "
                        "cover %d positions", tb->B, tb->T, hm->T);
    int B = tb->B, T = tb->T, C = hm->C;
    float *out = malloc((size_t)B * T * C * sizeof *out);
    if (!out)
        return icl_fail(ICL_ERR_NOMEM, "icl_head_means_add: out of memory");
    icl_status s = icl_model_forward(m, &tb->batch, NULL);
    // head_out (B,T,NH,HS) = (B,T,C): accumulate row b at its positions t < prompt_len
    for (int l = 0; s == ICL_OK && l < hm->L; l++) {
        s = icl_model_point_copy(m, ICL_POINT_HEAD_OUT, l, out, (size_t)B * T * C);
        for (int b = 0; s == ICL_OK && b < B; b++)
            for (int t = 0; t < tb->prompt_len[b]; t++) {
                double *dst = hm->sum + ((size_t)l * hm->T + t) * C;
                const float *src = out + ((size_t)b * T + t) * C;
                for (int c = 0; c < C; c++) dst[c] += src[c];
            }
    }
    for (int b = 0; s == ICL_OK && b < B; b++)
        for (int t = 0; t < tb->prompt_len[b]; t++) hm->count[t]++;
    free(out);
    return s;
}

icl_status icl_head_means_get(const icl_head_means *hm, int layer, int head, float *mean) {
    if (!hm || !mean)
        return icl_fail(ICL_ERR_INVALID_ARG, "icl_head_means_get: NULL argument");
    if (layer < 0 || layer >= hm->L || head < 0 || head >= hm->NH)
        return icl_fail(ICL_ERR_INVALID_ARG, "icl_head_means_get: (layer %d, head %d) outside [0, %d) x [0, %d)",
                        layer, head, hm->L, hm->NH);
    if (hm->count[0] == 0)
        return icl_fail(ICL_ERR_STATE, "icl_head_means_get: no prompts were added");
    int HS = hm->C / hm->NH;
    for (int t = 0; t < hm->T; t++) {
        const double *src = hm->sum + ((size_t)layer * hm->T + t) * hm->C + (size_t)head * HS;
        for (int i = 0; i < HS; i++)
            mean[(size_t)t * HS + i] = hm->count[t] ? (float)(src[i] / (double)hm->count[t]) : 0.0f;
    }
    return ICL_OK;
}

/* The answer tokens are read from the slots after the query separator. */
static icl_status self_probs(icl_model *m, const icl_task_batch *tb, const icl_row_labels *labels,
                             const icl_intervention *iv, int n_iv, double *probs, uint8_t *correct) {
    int B = tb->B, T = tb->T, V = m->V, A = tb->prompts[0].answer_len;
    ICL_TRY(icl_forward_with(m, &tb->batch, labels, iv, n_iv, NULL));
    float *row = malloc((size_t)V * sizeof *row);
    if (!row)
        return icl_fail(ICL_ERR_NOMEM, "icl_answer_self_probs: out of memory");
    icl_status s = ICL_OK;
    for (int b = 0; s == ICL_OK && b < B; b++) {
        int q = tb->query_pos[b], ok = 1;
        double prod = 1.0;
        for (int j = 0; s == ICL_OK && j < A; j++) {
            s = m->be->ops->to_host(m->be, row, m->a.probs + ((size_t)b * T + q + j) * V, (size_t)V * sizeof *row);
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
    ICL_TRY(check_token_batch(m, tb, "icl_answer_self_probs"));
    if (!probs)
        return icl_fail(ICL_ERR_INVALID_ARG, "icl_answer_self_probs: probs is NULL");
    icl_row_labels labels = {tb->roles, tb->prompt_len};
    return self_probs(m, tb, &labels, iv, n_iv, probs, correct);
}

/* Validate an ablation request and build its interventions: one ZERO at
 * every position, or one MEAN per position t with the mean at t. *iv and
 * *mean are allocated (free both). */
static icl_status ablation_ivs(const icl_model *m, int T, int layer, int head, icl_ablation_mode mode,
                               const icl_head_means *hm, const char *fn, icl_intervention **iv, float **mean,
                               int *n_iv) {
    *iv = NULL;
    *mean = NULL;
    if (layer < 0 || layer >= m->L)
        return icl_fail(ICL_ERR_INVALID_ARG, "%s: layer %d out of range [0, %d)", fn, layer, m->L);
    if (head < 0 || head >= m->NH)
        return icl_fail(ICL_ERR_INVALID_ARG, "%s: head %d out of range [0, %d)", fn, head, m->NH);
    if (mode != ICL_ABLATE_ZERO && mode != ICL_ABLATE_MEAN)
        return icl_fail(ICL_ERR_INVALID_ARG, "%s: unknown ablation mode %d", fn, (int)mode);
    if (mode == ICL_ABLATE_MEAN && !hm)
        return icl_fail(ICL_ERR_INVALID_ARG, "%s: mean ablation needs head means", fn);
    if (mode == ICL_ABLATE_MEAN && (hm->L != m->L || hm->C != m->C || hm->NH != m->NH || hm->T < T))
        return icl_fail(ICL_ERR_INVALID_ARG, "%s: the head means were made for another model or for %d < %d "
                        "positions", fn, hm->T, T);
    int HS = m->C / m->NH;
    *n_iv = mode == ICL_ABLATE_ZERO ? 1 : T;
    *iv = malloc((size_t)*n_iv * sizeof **iv);
    if (mode == ICL_ABLATE_MEAN)
        *mean = malloc((size_t)hm->T * HS * sizeof **mean);
    if (!*iv || (mode == ICL_ABLATE_MEAN && !*mean))
        return icl_fail(ICL_ERR_NOMEM, "%s: out of memory", fn);
    if (mode == ICL_ABLATE_ZERO) {
        (*iv)[0] = icl_intervention_make(ICL_POINT_HEAD_OUT, layer, ICL_IV_ZERO);
        (*iv)[0].head = head;
        return ICL_OK;
    }
    ICL_TRY(icl_head_means_get(hm, layer, head, *mean));
    for (int t = 0; t < T; t++) {
        (*iv)[t] = icl_intervention_make(ICL_POINT_HEAD_OUT, layer, ICL_IV_MEAN);
        (*iv)[t].head = head;
        (*iv)[t].pos = icl_pos_index(t);
        (*iv)[t].vector = *mean + (size_t)t * HS;
    }
    return ICL_OK;
}

icl_status icl_head_ablation(icl_model *m, const icl_task_batch *tb, int layer, int head, icl_ablation_mode mode,
                             const icl_head_means *hm, double *probs, uint8_t *correct) {
    static const char fn[] = "icl_head_ablation";
    ICL_TRY(check_token_batch(m, tb, fn));
    if (!probs)
        return icl_fail(ICL_ERR_INVALID_ARG, "%s: probs is NULL", fn);
    icl_intervention *iv;
    float *mean;
    int n_iv;
    icl_status s = ablation_ivs(m, tb->T, layer, head, mode, hm, fn, &iv, &mean, &n_iv);
    /* Every position of the padded batch: padding comes after a row's content,
     * so what is written there is never read by the positions that matter. */
    icl_row_labels labels = {tb->roles, NULL};
    if (s == ICL_OK)
        s = self_probs(m, tb, &labels, iv, n_iv, probs, correct);
    free(iv);
    free(mean);
    return s;
}

static icl_status sq_errors(icl_model *m, const icl_task_batch *tb, const icl_row_labels *labels,
                            const icl_intervention *iv, int n_iv, double *err) {
    int T = tb->T, O = m->OUT;
    ICL_TRY(icl_forward_with(m, &tb->batch, labels, iv, n_iv, NULL));
    float *row = malloc((size_t)O * sizeof *row);
    if (!row)
        return icl_fail(ICL_ERR_NOMEM, "icl_query_sq_errors: out of memory");
    icl_status s = ICL_OK;
    for (int b = 0; s == ICL_OK && b < tb->B; b++) {
        size_t at = (size_t)b * T + tb->query_pos[b];
        s = m->be->ops->to_host(m->be, row, m->a.logits + at * O, (size_t)O * sizeof *row);
        double se = 0.0;
        for (int d = 0; d < O; d++) {
            double e = (double)row[d] - tb->target_values[at * O + d];
            se += e * e;
        }
        err[b] = se / O;
    }
    free(row);
    return s;
}

static icl_status check_vector_batch(const icl_model *m, const icl_task_batch *tb, const double *err,
                                     const char *fn) {
    if (!m || !tb || !err)
        return icl_fail(ICL_ERR_INVALID_ARG, "%s: NULL argument", fn);
    if (m->cfg.mode != ICL_MODE_VECTOR || tb->mode != ICL_MODE_VECTOR || tb->d_out != m->OUT)
        return icl_fail(ICL_ERR_INVALID_ARG, "%s: needs a vector-mode model and batch of the same d_out", fn);
    if (tb->B < 1)
        return icl_fail(ICL_ERR_INVALID_ARG, "%s: empty batch", fn);
    for (int b = 0; b < tb->B; b++)
        if (tb->query_pos[b] < 0 || tb->query_pos[b] >= tb->T)
            return icl_fail(ICL_ERR_INVALID_ARG, "%s: row %d has query position %d outside its %d positions", fn, b,
                            tb->query_pos[b], tb->T);
    return ICL_OK;
}

icl_status icl_query_sq_errors(icl_model *m, const icl_task_batch *tb, const icl_intervention *iv, int n_iv,
                               double *err) {
    ICL_TRY(check_vector_batch(m, tb, err, "icl_query_sq_errors"));
    icl_row_labels labels = {tb->roles, tb->prompt_len};
    return sq_errors(m, tb, &labels, iv, n_iv, err);
}

icl_status icl_head_ablation_errors(icl_model *m, const icl_task_batch *tb, int layer, int head,
                                    icl_ablation_mode mode, const icl_head_means *hm, double *err) {
    static const char fn[] = "icl_head_ablation_errors";
    ICL_TRY(check_vector_batch(m, tb, err, fn));
    icl_intervention *iv;
    float *mean;
    int n_iv;
    icl_status s = ablation_ivs(m, tb->T, layer, head, mode, hm, fn, &iv, &mean, &n_iv);
    icl_row_labels labels = {tb->roles, NULL};
    if (s == ICL_OK)
        s = sq_errors(m, tb, &labels, iv, n_iv, err);
    free(iv);
    free(mean);
    return s;
}
