/* Logit lens and head ablation (include/icl/lens.h): read each task's answer
 * out of every level of the residual stream, and remove one head at a time. */
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include "error.h"
#include "icl/lens.h"
#include "icl/readout.h"
#include "probe_internal.h"

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

static icl_status check_lens_model(const icl_lens *lens, const icl_model *m, const char *fn) {
    if (!lens || !m)
        return icl_fail(ICL_ERR_INVALID_ARG, "%s: NULL lens or model", fn);
    probe_dims d = probe_dims_of(m);
    if (lens->L != d.L || lens->C != d.C || lens->V != d.V)
        return icl_fail(ICL_ERR_INVALID_ARG, "%s: the lens was made from another model (L=%d C=%d V=%d, model L=%d "
                        "C=%d V=%d)", fn, lens->L, lens->C, lens->V, d.L, d.C, d.V);
    return ICL_OK;
}

/* ---- logit lens ---- */

/* Copy LN_f (into doubles) and W_U from the model. */
static icl_status lens_fill(icl_lens *lens, const icl_model *m) {
    size_t C = (size_t)lens->C;
    float *w = malloc(C * sizeof *w), *b = malloc(C * sizeof *b);
    icl_status s = (w && b) ? ICL_OK : icl_fail(ICL_ERR_NOMEM, "icl_lens_create: out of memory");
    if (s == ICL_OK)
        s = icl_model_get_tensor(m, "ln_f.weight", w, C);
    if (s == ICL_OK)
        s = icl_model_get_tensor(m, "ln_f.bias", b, C);
    if (s == ICL_OK)
        s = icl_model_get_tensor(m, icl_model_config(m)->tie_embeddings ? "tok_embed.weight" : "lm_head.weight",
                                 lens->unembed, (size_t)lens->V * C);
    for (size_t c = 0; s == ICL_OK && c < C; c++) {
        lens->ln_w[c] = w[c];
        lens->ln_b[c] = b[c];
    }
    free(w);
    free(b);
    return s;
}

icl_status icl_lens_create(const icl_model *m, icl_lens **out) {
    if (!m || !out)
        return icl_fail(ICL_ERR_INVALID_ARG, "icl_lens_create: NULL argument");
    *out = NULL;
    probe_dims d = probe_dims_of(m);
    if (d.mode != ICL_MODE_TOKEN)
        return icl_fail(ICL_ERR_UNSUPPORTED, "icl_lens_create: the logit lens needs a token-mode model");
    icl_lens *lens = calloc(1, sizeof *lens);
    if (!lens)
        return icl_fail(ICL_ERR_NOMEM, "icl_lens_create: out of memory");
    lens->L = d.L;
    lens->C = d.C;
    lens->V = d.V;
    lens->ln_w = malloc((size_t)d.C * sizeof *lens->ln_w);
    lens->ln_b = malloc((size_t)d.C * sizeof *lens->ln_b);
    lens->unembed = malloc((size_t)d.V * d.C * sizeof *lens->unembed);
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
    if (level < 0 || level > lens->L)
        return icl_fail(ICL_ERR_INVALID_ARG, "icl_lens_read: level %d out of range [0, %d] (0 = embedding, l+1 = "
                        "after block l)", level, lens->L);
    int B, T;
    if (icl_model_forward_shape(m, &B, &T) != ICL_OK)
        return icl_fail(ICL_ERR_STATE, "icl_lens_read: no forward pass to read");
    for (int i = 0; i < n; i++)
        if (rows[i] < 0 || rows[i] >= B || positions[i] < 0 || positions[i] >= T)
            return icl_fail(ICL_ERR_INVALID_ARG, "icl_lens_read: (row %d, position %d) outside the last pass's "
                            "(B=%d, T=%d)", rows[i], positions[i], B, T);
    int C = lens->C;
    icl_point_view v;
    ICL_TRY(icl_residual_view(m, level, &v));
    float *h = malloc((size_t)n * C * sizeof *h);
    if (!h)
        return icl_fail(ICL_ERR_NOMEM, "icl_lens_read: out of memory");
    icl_status s = ICL_OK;
    for (int i = 0; s == ICL_OK && i < n; i++)
        s = icl_model_point_read(m, &v, -1, rows[i], positions[i], h + (size_t)i * C);
    if (s == ICL_OK)
        s = icl_lens_apply(lens, h, n, probs);
    free(h);
    return s;
}

icl_status icl_lens_answer_probs(icl_model *m, const icl_lens *lens, const icl_task_batch *tb,
                                 const int32_t *answers, int n_cand, const icl_intervention *iv, int n_iv,
                                 double *probs) {
    static const char fn[] = "icl_lens_answer_probs";
    ICL_TRY(icl_readout_check_answer_slots(m, tb, fn));
    ICL_TRY(check_lens_model(lens, m, fn));
    if (!answers || !probs || n_cand < 1)
        return icl_fail(ICL_ERR_INVALID_ARG, "%s: NULL answers/probs or n_cand < 1", fn);
    int B = tb->B, T = tb->T, V = lens->V, A = tb->prompts[0].answer_len, levels = lens->L + 1;
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
    probe_dims d = probe_dims_of(m);
    if (T < 1 || T > d.ctx)
        return icl_fail(ICL_ERR_INVALID_ARG, "icl_head_means_create: T = %d outside [1, ctx = %d]", T, d.ctx);
    icl_head_means *hm = calloc(1, sizeof *hm);
    if (!hm)
        return icl_fail(ICL_ERR_NOMEM, "icl_head_means_create: out of memory");
    *hm = (icl_head_means){d.L, T, d.C, d.NH, NULL, NULL};
    hm->sum = calloc((size_t)d.L * T * d.C, sizeof *hm->sum);
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
    probe_dims d = probe_dims_of(m);
    if (hm->L != d.L || hm->C != d.C || hm->NH != d.NH)
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

/* Validate an ablation request and build its interventions: one ZERO at
 * every position, or one MEAN per position t with the mean at t. *iv and
 * *mean are allocated (free both). */
static icl_status ablation_ivs(const icl_model *m, int T, int layer, int head, icl_ablation_mode mode,
                               const icl_head_means *hm, const char *fn, icl_intervention **iv, float **mean,
                               int *n_iv) {
    *iv = NULL;
    *mean = NULL;
    probe_dims d = probe_dims_of(m);
    if (layer < 0 || layer >= d.L)
        return icl_fail(ICL_ERR_INVALID_ARG, "%s: layer %d out of range [0, %d)", fn, layer, d.L);
    if (head < 0 || head >= d.NH)
        return icl_fail(ICL_ERR_INVALID_ARG, "%s: head %d out of range [0, %d)", fn, head, d.NH);
    if (mode != ICL_ABLATE_ZERO && mode != ICL_ABLATE_MEAN)
        return icl_fail(ICL_ERR_INVALID_ARG, "%s: unknown ablation mode %d", fn, (int)mode);
    if (mode == ICL_ABLATE_MEAN && !hm)
        return icl_fail(ICL_ERR_INVALID_ARG, "%s: mean ablation needs head means", fn);
    if (mode == ICL_ABLATE_MEAN && (hm->L != d.L || hm->C != d.C || hm->NH != d.NH || hm->T < T))
        return icl_fail(ICL_ERR_INVALID_ARG, "%s: the head means were made for another model or for %d < %d "
                        "positions", fn, hm->T, T);
    int HS = d.C / d.NH;
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

/* The readout of tb with the head ablated: probs / correct, or err when it
 * is not NULL. Every position of the padded batch is ablated: padding comes
 * after a row's content, so what is written there is never read by the
 * positions that matter. */
static icl_status ablated_readout(icl_model *m, const icl_task_batch *tb, int layer, int head, icl_ablation_mode mode,
                                  const icl_head_means *hm, const char *fn, double *probs, uint8_t *correct,
                                  double *err) {
    icl_intervention *iv;
    float *mean;
    int n_iv = 0;
    icl_status s = ablation_ivs(m, tb->T, layer, head, mode, hm, fn, &iv, &mean, &n_iv);
    icl_row_labels labels = {tb->roles, NULL};
    if (s == ICL_OK)
        s = err ? icl_readout_sq_errors(m, tb, &labels, iv, n_iv, err)
                : icl_readout_self_probs(m, tb, &labels, iv, n_iv, probs, correct);
    free(iv);
    free(mean);
    return s;
}

icl_status icl_head_ablation(icl_model *m, const icl_task_batch *tb, int layer, int head, icl_ablation_mode mode,
                             const icl_head_means *hm, double *probs, uint8_t *correct) {
    static const char fn[] = "icl_head_ablation";
    ICL_TRY(icl_readout_check_answer_slots(m, tb, fn));
    if (!probs)
        return icl_fail(ICL_ERR_INVALID_ARG, "%s: probs is NULL", fn);
    return ablated_readout(m, tb, layer, head, mode, hm, fn, probs, correct, NULL);
}

icl_status icl_head_ablation_errors(icl_model *m, const icl_task_batch *tb, int layer, int head,
                                    icl_ablation_mode mode, const icl_head_means *hm, double *err) {
    static const char fn[] = "icl_head_ablation_errors";
    ICL_TRY(icl_readout_check_query_batch(m, tb, err, fn));
    return ablated_readout(m, tb, layer, head, mode, hm, fn, NULL, NULL, err);
}
