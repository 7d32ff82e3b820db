/* Task superposition on mixed prompts (include/icl/superposition.h): every
 * task's answer probability, the "other" mass, calibration and tasks solved,
 * from the model output and through the logit lens. */
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include "error.h"
#include "icl/analysis.h"
#include "icl/readout.h"
#include "icl/superposition.h"
#include "probe_internal.h"

#define LAMBDA_SUM_TOL 1e-6

icl_superposition_options icl_superposition_options_default(void) {
    icl_superposition_options o;
    o.n_prompts = 100;
    o.n_examples = -1;
    o.batch = 64;
    o.beam = 16;
    o.lens = 0;
    o.solved = 1;
    return o;
}

/* ---- p_(K): the K-th most probable answer string ---- */

typedef struct {
    double p;
    int w, v; /* beam it extends, token appended */
} candidate;

/* Decreasing probability; ties by beam, then token, so the search is deterministic. */
static int candidate_cmp(const void *a, const void *b) {
    const candidate *x = a, *y = b;
    if (x->p != y->p)
        return x->p < y->p ? 1 : -1;
    if (x->w != y->w)
        return x->w < y->w ? -1 : 1;
    return (x->v > y->v) - (x->v < y->v);
}

/* Forward R rows of tokens (R,T) and read the next-token distribution at
 * pos[r] of each row: dist (R,V), from the output or through the lens. */
static icl_status next_token_dists(icl_model *m, const icl_lens *lens, int level, int R, int T, const int32_t *tokens,
                                   const int32_t *rows, const int32_t *pos, float *row, double *dist) {
    icl_batch batch = {R, T, tokens, NULL, NULL, NULL, NULL};
    ICL_TRY(icl_model_forward(m, &batch, NULL));
    if (lens)
        return icl_lens_read(lens, m, level, rows, pos, R, dist);
    int V = probe_dims_of(m).V;
    for (int r = 0; r < R; r++) {
        ICL_TRY(icl_model_probs_at(m, r, pos[r], row, (size_t)V));
        for (int v = 0; v < V; v++) dist[(size_t)r * V + v] = row[v];
    }
    return ICL_OK;
}

/* One-token answers: the K-th largest entry of the distribution at the query separator. */
static icl_status kth_one_token(icl_model *m, const icl_task_batch *tb, int K, const icl_lens *lens, int level,
                                double *pK, uint8_t *exact) {
    int B = tb->B, V = probe_dims_of(m).V;
    ICL_TRY(icl_model_forward(m, &tb->batch, NULL));
    double *top = malloc((size_t)B * (lens ? V : K) * sizeof *top);
    int32_t *rows = malloc((size_t)B * sizeof *rows);
    icl_status s = (top && rows) ? ICL_OK : icl_fail(ICL_ERR_NOMEM, "icl_answer_kth_prob: out of memory");
    if (s == ICL_OK && !lens) {
        s = icl_top_probs(m, tb, K, top);
        for (int b = 0; s == ICL_OK && b < B; b++) pK[b] = top[(size_t)b * K + K - 1];
    } else if (s == ICL_OK) {
        for (int b = 0; b < B; b++) rows[b] = b;
        s = icl_lens_read(lens, m, level, rows, tb->query_pos, B, top);
        for (int b = 0; s == ICL_OK && b < B; b++) s = icl_kth_largest(top + (size_t)b * V, V, K, &pK[b]);
    }
    for (int b = 0; s == ICL_OK && b < B; b++) exact[b] = 1;
    free(top);
    free(rows);
    return s;
}

/* Beam search state of one group of G prompts, W beams each. A pass has R
 * >= G*W rows, the caller's batch size when it holds a beam, so that the
 * model's activations keep their shape between passes; rows past G*W are
 * filler. */
typedef struct {
    int G, W, R, A, V, T;
    int32_t *tokens;          /* (R, T) */
    int32_t *rows, *pos;      /* (R) */
    int32_t *prefix, *next;   /* (G*W, A) */
    double *score, *next_score; /* (G*W) */
    int *live;                /* (G) beams alive */
    double *pruned;           /* (G) best probability of a pruned prefix */
    double *dist;             /* (R, V) */
    float *row;               /* (V) */
    candidate *cand;          /* (W*V) */
} beam_state;

static void beam_free(beam_state *st) {
    free(st->tokens);
    free(st->rows);
    free(st->pos);
    free(st->prefix);
    free(st->next);
    free(st->score);
    free(st->next_score);
    free(st->live);
    free(st->pruned);
    free(st->dist);
    free(st->row);
    free(st->cand);
}

static icl_status beam_alloc(beam_state *st) {
    size_t R = (size_t)st->R, GW = (size_t)st->G * st->W;
    st->tokens = malloc(R * st->T * sizeof *st->tokens);
    st->rows = malloc(R * sizeof *st->rows);
    st->pos = malloc(R * sizeof *st->pos);
    st->prefix = malloc(GW * st->A * sizeof *st->prefix);
    st->next = malloc(GW * st->A * sizeof *st->next);
    st->score = malloc(GW * sizeof *st->score);
    st->next_score = malloc(GW * sizeof *st->next_score);
    st->live = malloc((size_t)st->G * sizeof *st->live);
    st->pruned = malloc((size_t)st->G * sizeof *st->pruned);
    st->dist = malloc(R * st->V * sizeof *st->dist);
    st->row = malloc((size_t)st->V * sizeof *st->row);
    st->cand = malloc((size_t)st->W * st->V * sizeof *st->cand);
    if (!st->tokens || !st->rows || !st->pos || !st->prefix || !st->next || !st->score || !st->next_score ||
        !st->live || !st->pruned || !st->dist || !st->row || !st->cand)
        return icl_fail(ICL_ERR_NOMEM, "icl_answer_kth_prob: out of memory for a beam of %d", st->W);
    return ICL_OK;
}

/* Rows for step j: prompt g0+g with beam w's prefix in its first j answer
 * slots, read at query_pos + j. Unused rows repeat a live one. */
static void beam_rows(beam_state *st, const icl_task_batch *tb, int g0, int Gc, int j) {
    for (int g = 0; g < st->G; g++) {
        int b = g0 + (g < Gc ? g : Gc - 1), q = tb->query_pos[b];
        for (int w = 0; w < st->W; w++) {
            int r = g * st->W + w, src = g * st->W + (g < Gc && w < st->live[g] ? w : 0);
            int32_t *t = st->tokens + (size_t)r * st->T;
            memcpy(t, tb->tokens + (size_t)b * st->T, (size_t)st->T * sizeof *t);
            for (int i = 0; i < j; i++) t[q + 1 + i] = st->prefix[(size_t)src * st->A + i];
            st->rows[r] = r;
            st->pos[r] = q + j;
        }
    }
    for (int r = st->G * st->W; r < st->R; r++) {
        memcpy(st->tokens + (size_t)r * st->T, st->tokens, (size_t)st->T * sizeof *st->tokens);
        st->rows[r] = r;
        st->pos[r] = st->pos[0];
    }
}

/* Extend prompt g's beams by one token: keep the W best (j < A-1), or take
 * the K-th best complete string (j = A-1). */
static icl_status beam_step(beam_state *st, int g, int j, int K, double *pK, uint8_t *exact) {
    int W = st->W, V = st->V, A = st->A, n = 0;
    for (int w = 0; w < st->live[g]; w++)
        for (int v = 0; v < V; v++)
            st->cand[n++] = (candidate){st->score[g * W + w] * st->dist[((size_t)g * W + w) * V + v], w, v};
    qsort(st->cand, (size_t)n, sizeof *st->cand, candidate_cmp);
    if (j == A - 1) {
        if (n < K)
            return icl_fail(ICL_ERR_INVALID_ARG, "icl_answer_kth_prob: only %d answer strings for K = %d", n, K);
        *pK = st->cand[K - 1].p;
        *exact = st->pruned[g] <= *pK;
        return ICL_OK;
    }
    int keep = n < W ? n : W;
    if (keep < n && st->cand[keep].p > st->pruned[g])
        st->pruned[g] = st->cand[keep].p;
    for (int k = 0; k < keep; k++) {
        int32_t *dst = st->next + ((size_t)g * W + k) * A;
        memcpy(dst, st->prefix + ((size_t)g * W + st->cand[k].w) * A, (size_t)j * sizeof *dst);
        dst[j] = st->cand[k].v;
        st->next_score[g * W + k] = st->cand[k].p;
    }
    memcpy(st->prefix + (size_t)g * W * A, st->next + (size_t)g * W * A, (size_t)keep * A * sizeof *st->prefix);
    memcpy(st->score + (size_t)g * W, st->next_score + (size_t)g * W, (size_t)keep * sizeof *st->score);
    st->live[g] = keep;
    return ICL_OK;
}

static icl_status kth_beam(icl_model *m, const icl_task_batch *tb, int K, int beam, const icl_lens *lens, int level,
                           double *pK, uint8_t *exact) {
    beam_state st;
    memset(&st, 0, sizeof st);
    st.W = beam;
    st.A = tb->prompts[0].answer_len;
    st.V = probe_dims_of(m).V;
    st.T = tb->T;
    /* As many prompts per pass as fit in the caller's batch size (or one beam). */
    st.R = tb->B > beam ? tb->B : beam;
    st.G = st.R / beam;
    icl_status s = beam_alloc(&st);
    for (int g0 = 0; s == ICL_OK && g0 < tb->B; g0 += st.G) {
        int Gc = tb->B - g0 < st.G ? tb->B - g0 : st.G;
        for (int g = 0; g < st.G; g++) {
            st.live[g] = 1;
            st.score[g * st.W] = 1.0;
            st.pruned[g] = 0.0;
        }
        for (int j = 0; s == ICL_OK && j < st.A; j++) {
            beam_rows(&st, tb, g0, Gc, j);
            s = next_token_dists(m, lens, level, st.R, st.T, st.tokens, st.rows, st.pos, st.row, st.dist);
            for (int g = 0; s == ICL_OK && g < Gc; g++) s = beam_step(&st, g, j, K, &pK[g0 + g], &exact[g0 + g]);
        }
    }
    beam_free(&st);
    return s;
}

icl_status icl_answer_kth_prob(icl_model *m, const icl_task_batch *tb, int K, int beam, const icl_lens *lens,
                               int level, double *pK, uint8_t *exact) {
    static const char fn[] = "icl_answer_kth_prob";
    if (!m || !tb || !pK || !exact)
        return icl_fail(ICL_ERR_INVALID_ARG, "%s: NULL argument", fn);
    probe_dims d = probe_dims_of(m);
    if (d.mode != ICL_MODE_TOKEN || tb->mode != ICL_MODE_TOKEN || tb->B < 1)
        return icl_fail(ICL_ERR_INVALID_ARG, "%s: needs a token-mode model and a non-empty token batch", fn);
    if (K < 1 || K > d.V)
        return icl_fail(ICL_ERR_INVALID_ARG, "%s: K = %d outside [1, V = %d]", fn, K, d.V);
    if (lens && (level < 0 || level > d.L))
        return icl_fail(ICL_ERR_INVALID_ARG, "%s: lens level %d out of range [0, %d]", fn, level, d.L);
    int A = tb->prompts[0].answer_len;
    for (int b = 0; b < tb->B; b++)
        if (tb->query_pos[b] < 0 || tb->query_pos[b] + A >= tb->T)
            return icl_fail(ICL_ERR_INVALID_ARG, "%s: row %d has no room for its %d answer tokens", fn, b, A);
    if (A == 1)
        return kth_one_token(m, tb, K, lens, level, pK, exact);
    if (beam < K)
        return icl_fail(ICL_ERR_INVALID_ARG, "%s: beam width %d must be at least K = %d", fn, beam, K);
    return kth_beam(m, tb, K, beam, lens, level, pK, exact);
}

/* ---- one mixture ---- */

void icl_superposition_result_free(icl_superposition_result *r) {
    if (!r)
        return;
    free(r->tasks);
    free(r->counts);
    free(r->lambda);
    free(r->P);
    free(r->pK);
    free(r->pK_exact);
    free(r->out.mean);
    free(r->out.sd);
    free(r->out.sorted);
    free(r->out.solved);
    free(r->lens_P);
    free(r->lens_pK);
    free(r->lens_pK_exact);
    for (int l = 0; r->lens && l < r->levels; l++) {
        free(r->lens[l].mean);
        free(r->lens[l].sd);
        free(r->lens[l].sorted);
        free(r->lens[l].solved);
    }
    free(r->lens);
    memset(r, 0, sizeof *r);
}

static icl_status check_mixture(const icl_task_family *f, const int *tasks, const double *lambda, int K,
                                const char *fn) {
    if (K < 2)
        return icl_fail(ICL_ERR_INVALID_ARG, "%s: a mixture needs at least 2 tasks, got %d", fn, K);
    int n_tasks = icl_task_family_num_tasks(f);
    double sum = 0.0;
    for (int j = 0; j < K; j++) {
        if (tasks[j] < 0 || tasks[j] >= n_tasks)
            return icl_fail(ICL_ERR_INVALID_ARG, "%s: task %d outside [0, %d) of family %s", fn, tasks[j], n_tasks,
                            icl_task_family_name(f));
        for (int i = 0; i < j; i++)
            if (tasks[i] == tasks[j])
                return icl_fail(ICL_ERR_INVALID_ARG, "%s: task %s appears twice in the mixture", fn,
                                icl_task_family_task_name(f, tasks[j]));
        if (!(lambda[j] >= 0.0 && lambda[j] <= 1.0))
            return icl_fail(ICL_ERR_INVALID_ARG, "%s: proportion %g of task %s is outside [0, 1]", fn, lambda[j],
                            icl_task_family_task_name(f, tasks[j]));
        sum += lambda[j];
    }
    if (fabs(sum - 1.0) > LAMBDA_SUM_TOL)
        return icl_fail(ICL_ERR_INVALID_ARG, "%s: the proportions sum to %.9g, not 1", fn, sum);
    return ICL_OK;
}

static icl_status check_run(const icl_model *m, const icl_task_family *f, const int *tasks, const double *lambda,
                            int K, const icl_superposition_options *o, const icl_rng *rng,
                            icl_superposition_result *out, int *n_examples) {
    static const char fn[] = "icl_superposition_run";
    if (!m || !f || !tasks || !lambda || !o || !rng || !out)
        return icl_fail(ICL_ERR_INVALID_ARG, "%s: NULL argument", fn);
    probe_dims d = probe_dims_of(m);
    if (d.mode != ICL_MODE_TOKEN || icl_task_family_mode(f) != ICL_MODE_TOKEN)
        return icl_fail(ICL_ERR_UNSUPPORTED, "%s: needs a token-mode model and task family (answer probabilities "
                        "of %s are not defined)", fn, icl_task_family_name(f));
    if (icl_task_family_vocab_size(f) != d.V)
        return icl_fail(ICL_ERR_INVALID_ARG, "%s: family %s has %d tokens, the model %d", fn,
                        icl_task_family_name(f), icl_task_family_vocab_size(f), d.V);
    ICL_TRY(check_mixture(f, tasks, lambda, K, fn));
    if (o->n_prompts < 1 || o->batch < 1)
        return icl_fail(ICL_ERR_INVALID_ARG, "%s: n_prompts = %d and batch = %d must be >= 1", fn, o->n_prompts,
                        o->batch);
    if (K > d.V)
        return icl_fail(ICL_ERR_INVALID_ARG, "%s: K = %d tasks exceed the %d tokens", fn, K, d.V);
    if (o->solved && icl_task_family_answer_len(f) > 1 && o->beam < K)
        return icl_fail(ICL_ERR_INVALID_ARG, "%s: beam width %d must be at least K = %d", fn, o->beam, K);
    *n_examples = o->n_examples < 0 ? icl_task_family_default_examples(f) : o->n_examples;
    if (*n_examples < 1)
        return icl_fail(ICL_ERR_INVALID_ARG, "%s: a mixed prompt needs at least 1 example, got %d", fn, *n_examples);
    int T;
    ICL_TRY(icl_task_family_prompt_len(f, *n_examples, &T));
    if (T > d.ctx)
        return icl_fail(ICL_ERR_CONFIG, "%s: prompts of %d examples have %d positions, more than the model's ctx %d",
                        fn, *n_examples, T, d.ctx);
    return ICL_OK;
}

static icl_status stats_alloc(icl_superposition_stats *st, int K) {
    st->mean = malloc((size_t)K * sizeof *st->mean);
    st->sd = malloc((size_t)K * sizeof *st->sd);
    st->sorted = malloc((size_t)K * sizeof *st->sorted);
    st->solved = malloc((size_t)K * sizeof *st->solved);
    return st->mean && st->sd && st->sorted && st->solved ? ICL_OK : icl_fail(ICL_ERR_NOMEM, "icl_superposition_run: out of memory");
}

static icl_status result_alloc(icl_superposition_result *r, int K, int n, int levels) {
    memset(r, 0, sizeof *r);
    r->K = K;
    r->n = n;
    r->levels = levels;
    r->tasks = malloc((size_t)K * sizeof *r->tasks);
    r->counts = malloc((size_t)K * sizeof *r->counts);
    r->lambda = malloc((size_t)K * sizeof *r->lambda);
    r->P = malloc((size_t)n * K * sizeof *r->P);
    r->pK = malloc((size_t)n * sizeof *r->pK);
    r->pK_exact = calloc((size_t)n, sizeof *r->pK_exact);
    if (!r->tasks || !r->counts || !r->lambda || !r->P || !r->pK || !r->pK_exact)
        return icl_fail(ICL_ERR_NOMEM, "icl_superposition_run: out of memory");
    ICL_TRY(stats_alloc(&r->out, K));
    if (levels == 0)
        return ICL_OK;
    r->lens_P = malloc((size_t)levels * n * K * sizeof *r->lens_P);
    r->lens_pK = malloc((size_t)levels * n * sizeof *r->lens_pK);
    r->lens_pK_exact = calloc((size_t)levels * n, sizeof *r->lens_pK_exact);
    r->lens = calloc((size_t)levels, sizeof *r->lens);
    if (!r->lens_P || !r->lens_pK || !r->lens_pK_exact || !r->lens)
        return icl_fail(ICL_ERR_NOMEM, "icl_superposition_run: out of memory");
    for (int l = 0; l < levels; l++) ICL_TRY(stats_alloc(&r->lens[l], K));
    return ICL_OK;
}

/* The metrics of one readout from P (n,K) and p_(K) (n). */
static icl_status summarize(const double *P, const double *pK, const uint8_t *exact, int n, int K,
                            const double *lambda, int solved, icl_superposition_stats *st) {
    ICL_TRY(icl_superposition_summary(P, n, K, st->mean, st->sd, NULL, &st->other));
    for (int j = 0; j < K; j++) st->sd[j] = sqrt(st->sd[j]);
    ICL_TRY(icl_superposition_sorted_mean(P, n, K, st->sorted));
    ICL_TRY(icl_superposition_kl(P, n, K, lambda, 0, NULL, &st->kl_raw));
    ICL_TRY(icl_superposition_kl(P, n, K, lambda, 1, NULL, &st->kl_renorm));
    if (!solved) {
        for (int j = 0; j < K; j++) st->solved[j] = NAN;
        st->r = st->pk_exact = NAN;
        return ICL_OK;
    }
    ICL_TRY(icl_tasks_solved(P, pK, n, K, st->solved, &st->r));
    int count = 0;
    for (int i = 0; i < n; i++) count += exact[i];
    st->pk_exact = (double)count / n;
    return ICL_OK;
}

static int same_answer(const int32_t *a, const int32_t *b, int A) { return memcmp(a, b, (size_t)A * sizeof *a) == 0; }

/* Scratch of one batch of prompts. */
typedef struct {
    icl_mixed_prompt *mp;      /* (batch) */
    const icl_prompt **ptrs;   /* (batch) */
    int32_t *answers;          /* (batch, K, A) */
    double *lens_P;            /* (levels, batch, K) */
    double *pK;                /* (batch) */
    uint8_t *exact;            /* (batch) */
    icl_task_batch tb;
} run_scratch;

icl_status icl_superposition_prompt(const icl_model *m, const icl_task_family *f, const int *tasks,
                                    const double *lambda, int K, int n_examples, const icl_rng *rng, int i,
                                    icl_mixed_prompt *out) {
    static const char fn[] = "icl_superposition_prompt";
    if (!m || !rng || !out)
        return icl_fail(ICL_ERR_INVALID_ARG, "%s: NULL argument", fn);
    if (i < 0)
        return icl_fail(ICL_ERR_INVALID_ARG, "%s: prompt index %d is negative", fn, i);
    icl_gen_options gen = icl_gen_options_default();
    gen.ctx = icl_model_config(m)->ctx;
    icl_rng r;
    icl_rng_split(&r, rng, (uint64_t)i);
    return icl_task_generate_mixed(f, tasks, lambda, K, n_examples, &gen, &r, out);
}

/* Generate prompts [start, start+Bc), score them and store their rows in out. */
static icl_status run_batch(icl_model *m, const icl_task_family *f, const double *lambda,
                            const icl_superposition_options *o, const icl_rng *rng, const icl_lens *lens, int start,
                            int Bc, run_scratch *sc, icl_superposition_result *out) {
    int K = out->K, A = out->answer_len, n = out->n;
    for (int i = 0; i < Bc; i++) {
        ICL_TRY(icl_superposition_prompt(m, f, out->tasks, lambda, K, out->n_examples, rng, start + i, &sc->mp[i]));
        sc->ptrs[i] = &sc->mp[i].prompt;
        memcpy(sc->answers + (size_t)i * K * A, sc->mp[i].answers, (size_t)K * A * sizeof *sc->answers);
        int collide = 0;
        for (int j = 0; j < K; j++)
            for (int k = 0; k < j; k++)
                collide |= same_answer(sc->mp[i].answers + (size_t)j * A, sc->mp[i].answers + (size_t)k * A, A);
        out->collisions += collide;
    }
    memcpy(out->counts, sc->mp[0].counts, (size_t)K * sizeof *out->counts);
    ICL_TRY(icl_task_batch_pack(&sc->tb, sc->ptrs, Bc, 0));
    ICL_TRY(icl_answer_probs(m, &sc->tb, sc->answers, K, NULL, 0, out->P + (size_t)start * K, NULL));
    if (o->solved)
        ICL_TRY(icl_answer_kth_prob(m, &sc->tb, K, o->beam, NULL, -1, out->pK + start, out->pK_exact + start));
    if (!lens)
        return ICL_OK;
    ICL_TRY(icl_lens_answer_probs(m, lens, &sc->tb, sc->answers, K, NULL, 0, sc->lens_P));
    for (int l = 0; l < out->levels; l++) {
        memcpy(out->lens_P + ((size_t)l * n + start) * K, sc->lens_P + (size_t)l * Bc * K,
               (size_t)Bc * K * sizeof *out->lens_P);
        if (!o->solved)
            continue;
        ICL_TRY(icl_answer_kth_prob(m, &sc->tb, K, o->beam, lens, l, sc->pK, sc->exact));
        memcpy(out->lens_pK + (size_t)l * n + start, sc->pK, (size_t)Bc * sizeof *sc->pK);
        memcpy(out->lens_pK_exact + (size_t)l * n + start, sc->exact, (size_t)Bc * sizeof *sc->exact);
    }
    return ICL_OK;
}

static icl_status run_all(icl_model *m, const icl_task_family *f, const double *lambda,
                          const icl_superposition_options *o, const icl_rng *rng, icl_superposition_result *out) {
    int K = out->K, n = out->n, A = out->answer_len, levels = out->levels;
    /* Equal chunks (the last one at most a few prompts shorter) keep the model's activations from
     * being reallocated for a short last batch. */
    int chunks = (n + o->batch - 1) / o->batch, batch = (n + chunks - 1) / chunks;
    run_scratch sc;
    memset(&sc, 0, sizeof sc);
    icl_lens *lens = NULL;
    sc.mp = calloc((size_t)batch, sizeof *sc.mp);
    sc.ptrs = malloc((size_t)batch * sizeof *sc.ptrs);
    sc.answers = malloc((size_t)batch * K * A * sizeof *sc.answers);
    sc.lens_P = malloc((size_t)(levels ? levels : 1) * batch * K * sizeof *sc.lens_P);
    sc.pK = malloc((size_t)batch * sizeof *sc.pK);
    sc.exact = malloc((size_t)batch * sizeof *sc.exact);
    icl_status s = (sc.mp && sc.ptrs && sc.answers && sc.lens_P && sc.pK && sc.exact)
                       ? ICL_OK
                       : icl_fail(ICL_ERR_NOMEM, "icl_superposition_run: out of memory");
    if (s == ICL_OK && levels)
        s = icl_lens_create(m, &lens);
    for (int start = 0; s == ICL_OK && start < n; start += batch)
        s = run_batch(m, f, lambda, o, rng, lens, start, n - start < batch ? n - start : batch, &sc, out);
    for (int i = 0; i < batch && sc.mp; i++) icl_mixed_prompt_free(&sc.mp[i]);
    icl_task_batch_free(&sc.tb);
    icl_lens_free(lens);
    free(sc.mp);
    free(sc.ptrs);
    free(sc.answers);
    free(sc.lens_P);
    free(sc.pK);
    free(sc.exact);
    return s;
}

icl_status icl_superposition_run(icl_model *m, const icl_task_family *f, const int *tasks, const double *lambda,
                                 int K, const icl_superposition_options *opts, const icl_rng *rng,
                                 icl_superposition_result *out) {
    int n_examples = 0;
    if (out)
        memset(out, 0, sizeof *out);
    ICL_TRY(check_run(m, f, tasks, lambda, K, opts, rng, out, &n_examples));
    int n = opts->n_prompts, levels = opts->lens ? icl_model_config(m)->n_layer + 1 : 0;
    icl_status s = result_alloc(out, K, n, levels);
    if (s == ICL_OK) {
        out->answer_len = icl_task_family_answer_len(f);
        out->n_examples = n_examples;
        memcpy(out->tasks, tasks, (size_t)K * sizeof *tasks);
        for (int i = 0; i < n; i++) out->pK[i] = NAN;
        for (size_t i = 0; i < (size_t)levels * n; i++) out->lens_pK[i] = NAN;
        s = run_all(m, f, lambda, opts, rng, out);
    }
    for (int j = 0; s == ICL_OK && j < K; j++) out->lambda[j] = (double)out->counts[j] / n_examples;
    if (s == ICL_OK)
        s = summarize(out->P, out->pK, out->pK_exact, n, K, out->lambda, opts->solved, &out->out);
    for (int l = 0; s == ICL_OK && l < levels; l++)
        s = summarize(out->lens_P + (size_t)l * n * K, out->lens_pK + (size_t)l * n, out->lens_pK_exact + (size_t)l * n,
                      n, K, out->lambda, opts->solved, &out->lens[l]);
    if (s != ICL_OK)
        icl_superposition_result_free(out);
    return s;
}

/* ---- mixture specs ---- */

icl_status icl_superposition_parse_mixture(const icl_task_family *f, const char *spec, int *tasks, double *lambda,
                                           int cap, int *K) {
    static const char fn[] = "icl_superposition_parse_mixture";
    if (!f || !spec || !tasks || !lambda || !K || cap < 1)
        return icl_fail(ICL_ERR_INVALID_ARG, "%s: NULL argument or cap < 1", fn);
    char name[128];
    int n = 0;
    const char *p = spec;
    while (*p) {
        const char *eq = strchr(p, '='), *end = strchr(p, ',');
        if (!end)
            end = p + strlen(p);
        if (!eq || eq > end || eq == p || (size_t)(eq - p) >= sizeof name)
            return icl_fail(ICL_ERR_INVALID_ARG, "%s: \"%.*s\" is not task=proportion", fn, (int)(end - p), p);
        if (n == cap)
            return icl_fail(ICL_ERR_INVALID_ARG, "%s: more than %d tasks in \"%s\"", fn, cap, spec);
        memcpy(name, p, (size_t)(eq - p));
        name[eq - p] = '\0';
        ICL_TRY(icl_task_family_find_task(f, name, &tasks[n]));
        char *num_end;
        errno = 0;
        lambda[n] = strtod(eq + 1, &num_end);
        if (num_end == eq + 1 || num_end != end || errno)
            return icl_fail(ICL_ERR_INVALID_ARG, "%s: proportion of %s \"%.*s\" is not a number", fn, name,
                            (int)(end - eq - 1), eq + 1);
        n++;
        p = *end ? end + 1 : end;
    }
    ICL_TRY(check_mixture(f, tasks, lambda, n, fn));
    *K = n;
    return ICL_OK;
}
