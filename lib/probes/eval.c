/* Evaluation of a model on a task family (include/icl/eval.h). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "error.h"
#include "atomic_file.h"
#include "icl/eval.h"
#include "probe_internal.h"

icl_eval_options icl_eval_options_default(void) {
    icl_eval_options o = {0};
    o.prompts_per_task = 100;
    o.max_examples = -1;
    o.batch = 64;
    o.seed = 12345;
    return o;
}

/* What one forward pass over a chunk of prompts yields, per prompt. */
typedef struct {
    icl_task_batch tb;
    icl_prompt *prompts;  /* (batch) generated one by one, then packed */
    float *out, *losses;  /* (B,T,W) outputs, (B,T) per-position losses */
    size_t cap_out, cap_losses;
} eval_scratch;

static void scratch_free(eval_scratch *s, int n_prompts) {
    icl_task_batch_free(&s->tb);
    icl_prompt_array_free(s->prompts, n_prompts);
    free(s->out);
    free(s->losses);
}

static icl_status grow(float **p, size_t *cap, size_t n) {
    if (n <= *cap)
        return ICL_OK;
    float *q = realloc(*p, n * sizeof *q);
    if (!q)
        return icl_fail(ICL_ERR_NOMEM, "eval: out of memory");
    *p = q;
    *cap = n;
    return ICL_OK;
}

/* Prompts [first, first+count) of the evaluation set of (task, k): prompt i
 * draws from child i of a stream named by (seed, task, k), so the set does not
 * depend on the chunking. Runs the forward pass and fetches outputs and losses. */
static icl_status run_chunk(icl_model *m, const icl_task_family *f, int task, int k, int first, int count,
                            uint64_t seed, icl_loss_mask mask, eval_scratch *s) {
    icl_rng stream, r;
    icl_rng_init(&stream, seed, "eval");
    icl_rng_split(&stream, &stream, (uint64_t)task * 100003u + (uint64_t)k);
    icl_gen_options g = icl_gen_options_default();
    g.loss = mask;
    g.ctx = icl_model_config(m)->ctx;
    const icl_prompt *ptrs[1024];
    for (int i = 0; i < count; i++) {
        icl_rng_split(&r, &stream, (uint64_t)(first + i));
        ICL_TRY(icl_task_generate(f, task, k, &g, &r, &s->prompts[i]));
        ptrs[i] = &s->prompts[i];
    }
    ICL_TRY(icl_task_batch_pack(&s->tb, ptrs, count, 0));
    ICL_TRY(icl_model_forward(m, &s->tb.batch, NULL));
    const icl_config *c = icl_model_config(m);
    size_t N = (size_t)count * s->tb.T, W = (size_t)(c->mode == ICL_MODE_TOKEN ? c->vocab_size : c->d_out);
    ICL_TRY(grow(&s->out, &s->cap_out, N * W));
    ICL_TRY(grow(&s->losses, &s->cap_losses, N));
    ICL_TRY(icl_model_outputs(m, s->out, N * W));
    return icl_model_losses(m, s->losses, N);
}

static int argmax(const float *x, int n) {
    int best = 0;
    for (int i = 1; i < n; i++)
        if (x[i] > x[best]) best = i;
    return best;
}

/* Token prompt b of the chunk: is every query answer token the argmax, and the
 * mean loss over them. The query answer's tokens are the targets of the
 * positions whose next position has role QUERY_ANSWER. */
static void score_token_query(const eval_scratch *s, int b, int V, int *correct, double *loss) {
    int T = s->tb.T, ok = 1, n = 0;
    double sum = 0;
    for (int t = 0; t + 1 < T; t++) {
        size_t i = (size_t)b * T + t;
        if (s->tb.roles[i + 1] != ICL_ROLE_QUERY_ANSWER)
            continue;
        ok &= argmax(s->out + i * V, V) == s->tb.targets[i];
        sum += s->losses[i];
        n++;
    }
    *correct = ok && n > 0;
    *loss = n ? sum / n : 0.0;
}

static icl_status alloc_result(icl_eval_result *r, icl_input_mode mode, int n_tasks, int n_k, int n_baselines) {
    memset(r, 0, sizeof *r);
    r->mode = mode;
    r->n_tasks = n_tasks;
    r->n_k = n_k;
    r->n_baselines = n_baselines;
    size_t cells = (size_t)n_tasks * n_k;
    r->tasks = calloc((size_t)n_tasks, sizeof *r->tasks);
    r->loss = calloc(cells, sizeof *r->loss);
    r->metric = calloc(cells, sizeof *r->metric);
    r->baseline_metric = calloc(cells * (n_baselines ? n_baselines : 1), sizeof *r->baseline_metric);
    r->baseline_names = calloc(n_baselines ? (size_t)n_baselines : 1, sizeof *r->baseline_names);
    if (!r->tasks || !r->loss || !r->metric || !r->baseline_metric || !r->baseline_names) {
        icl_eval_result_free(r);
        return icl_fail(ICL_ERR_NOMEM, "eval: out of memory");
    }
    return ICL_OK;
}

void icl_eval_result_free(icl_eval_result *r) {
    if (!r)
        return;
    free(r->tasks);
    free(r->loss);
    free(r->metric);
    free(r->baseline_metric);
    free(r->baseline_names);
    memset(r, 0, sizeof *r);
}

static icl_status validate(const icl_model *m, const icl_task_family *f, const icl_eval_options *o) {
    if (!m || !f || !o)
        return icl_fail(ICL_ERR_INVALID_ARG, "eval: NULL argument");
    if (o->prompts_per_task < 1 || o->batch < 1 || o->batch > 1024)
        return icl_fail(ICL_ERR_INVALID_ARG, "eval: prompts_per_task must be >= 1 and batch in [1, 1024]");
    if (icl_model_config(m)->mode != icl_task_family_mode(f))
        return icl_fail(ICL_ERR_CONFIG, "eval: the model is in %s mode but the task family is in %s mode",
                        icl_model_config(m)->mode == ICL_MODE_TOKEN ? "token" : "vector",
                        icl_task_family_mode(f) == ICL_MODE_TOKEN ? "token" : "vector");
    if (o->n_baselines < 0 || (o->n_baselines > 0 && !o->baselines))
        return icl_fail(ICL_ERR_INVALID_ARG, "eval: %d baselines but no baseline array", o->n_baselines);
    if (o->n_baselines > 0 && icl_task_family_mode(f) != ICL_MODE_VECTOR)
        return icl_fail(ICL_ERR_INVALID_ARG, "eval: regression baselines need a vector task family");
    int nt = icl_task_family_num_tasks(f);
    for (int i = 0; o->tasks && i < o->n_tasks; i++)
        if (o->tasks[i] < 0 || o->tasks[i] >= nt)
            return icl_fail(ICL_ERR_INVALID_ARG, "eval: task id %d out of range [0, %d)", o->tasks[i], nt);
    return ICL_OK;
}

/* Vector family: error at every x position of prompts with K examples. */
static icl_status eval_vector(icl_model *m, const icl_task_family *f, const icl_eval_options *o, int K,
                              icl_eval_result *r, eval_scratch *s) {
    int D = icl_task_family_dim(f), dout = icl_model_config(m)->d_out;
    double *xs = malloc((size_t)(K + 1) * D * sizeof *xs), *ys = malloc((size_t)(K + 1) * sizeof *ys);
    double *pred = malloc((size_t)(K + 1) * sizeof *pred);
    icl_status st = (xs && ys && pred) ? ICL_OK : icl_fail(ICL_ERR_NOMEM, "eval: out of memory");
    for (int ti = 0; st == ICL_OK && ti < r->n_tasks; ti++) {
        int task = r->tasks[ti];
        for (int first = 0; st == ICL_OK && first < o->prompts_per_task; first += o->batch) {
            int count = o->prompts_per_task - first < o->batch ? o->prompts_per_task - first : o->batch;
            st = run_chunk(m, f, task, K, first, count, o->seed, ICL_LOSS_ANSWERS, s);
            for (int b = 0; st == ICL_OK && b < count; b++) {
                const icl_prompt *p = &s->prompts[b];
                for (int t = 0; t < p->T; t++) {
                    size_t i = (size_t)b * s->tb.T + t;
                    int role = s->tb.roles[i];
                    if (role != ICL_ROLE_EX_INPUT && role != ICL_ROLE_QUERY_INPUT)
                        continue;
                    int k = s->tb.example_ids[i]; /* x of example k is predicted from k examples */
                    double se = 0;
                    for (int d = 0; d < dout; d++) {
                        double e = s->out[i * dout + d] - s->tb.target_values[i * dout + d];
                        se += e * e;
                    }
                    r->metric[(size_t)ti * r->n_k + k] += se / dout;
                    r->loss[(size_t)ti * r->n_k + k] += s->losses[i];
                }
                if (o->n_baselines == 0)
                    continue;
                st = icl_prompt_points(p, xs, ys, (size_t)(K + 1) * D);
                for (int bi = 0; st == ICL_OK && bi < o->n_baselines; bi++) {
                    st = icl_baseline_predict_prompt(&o->baselines[bi], f, p, pred, K + 1);
                    for (int k = 0; st == ICL_OK && k <= K; k++)
                        r->baseline_metric[((size_t)bi * r->n_tasks + ti) * r->n_k + k] +=
                            (pred[k] - ys[k]) * (pred[k] - ys[k]);
                }
            }
        }
    }
    free(xs);
    free(ys);
    free(pred);
    return st;
}

static icl_status eval_token(icl_model *m, const icl_task_family *f, const icl_eval_options *o, icl_eval_result *r,
                             eval_scratch *s) {
    int V = icl_model_config(m)->vocab_size;
    for (int ti = 0; ti < r->n_tasks; ti++)
        for (int k = 0; k < r->n_k; k++)
            for (int first = 0; first < o->prompts_per_task; first += o->batch) {
                int count = o->prompts_per_task - first < o->batch ? o->prompts_per_task - first : o->batch;
                ICL_TRY(run_chunk(m, f, r->tasks[ti], k, first, count, o->seed, ICL_LOSS_QUERY, s));
                for (int b = 0; b < count; b++) {
                    int correct;
                    double loss;
                    score_token_query(s, b, V, &correct, &loss);
                    r->metric[(size_t)ti * r->n_k + k] += correct;
                    r->loss[(size_t)ti * r->n_k + k] += loss;
                }
            }
    return ICL_OK;
}

icl_status icl_eval_by_examples(icl_model *m, const icl_task_family *f, const icl_eval_options *o,
                                icl_eval_result *out) {
    ICL_TRY(validate(m, f, o));
    if (!out)
        return icl_fail(ICL_ERR_INVALID_ARG, "eval: out is NULL");
    int K = o->max_examples >= 0 ? o->max_examples : icl_task_family_default_examples(f);
    int n_tasks = o->tasks ? o->n_tasks : icl_task_family_num_tasks(f);
    if (n_tasks < 1)
        return icl_fail(ICL_ERR_INVALID_ARG, "eval: empty task set");
    icl_input_mode mode = icl_task_family_mode(f);
    ICL_TRY(alloc_result(out, mode, n_tasks, K + 1, o->n_baselines));
    out->prompts_per_task = o->prompts_per_task;
    for (int i = 0; i < n_tasks; i++)
        out->tasks[i] = o->tasks ? o->tasks[i] : i;
    for (int i = 0; i < o->n_baselines; i++)
        snprintf(out->baseline_names[i], sizeof out->baseline_names[i], "%s", icl_baseline_name(o->baselines[i].kind));

    eval_scratch s = {0};
    int batch = o->batch < o->prompts_per_task ? o->batch : o->prompts_per_task;
    s.prompts = calloc((size_t)batch, sizeof *s.prompts);
    icl_status st = s.prompts ? ICL_OK : icl_fail(ICL_ERR_NOMEM, "eval: out of memory");
    if (st == ICL_OK)
        st = mode == ICL_MODE_VECTOR ? eval_vector(m, f, o, K, out, &s) : eval_token(m, f, o, out, &s);
    scratch_free(&s, batch);
    if (st != ICL_OK) {
        icl_eval_result_free(out);
        return st;
    }
    size_t cells = (size_t)n_tasks * (K + 1);
    for (size_t i = 0; i < cells; i++) {
        out->metric[i] /= o->prompts_per_task;
        out->loss[i] /= o->prompts_per_task;
    }
    for (size_t i = 0; i < cells * o->n_baselines; i++)
        out->baseline_metric[i] /= o->prompts_per_task;
    return ICL_OK;
}

void icl_eval_detail_free(icl_eval_detail *d) {
    if (!d)
        return;
    icl_prompt_array_free(d->prompts, d->n);
    free(d->losses);
    free(d->score);
    memset(d, 0, sizeof *d);
}

static icl_status detail_alloc(const icl_task_family *f, int prompts_per_task, int k, icl_eval_detail *d) {
    memset(d, 0, sizeof *d);
    ICL_TRY(icl_task_family_prompt_len(f, k, &d->T));
    d->n = icl_task_family_num_tasks(f) * prompts_per_task;
    d->prompts_per_task = prompts_per_task;
    d->prompts = calloc((size_t)d->n, sizeof *d->prompts);
    d->losses = calloc((size_t)d->n * d->T, sizeof *d->losses);
    d->score = calloc((size_t)d->n, sizeof *d->score);
    if (d->prompts && d->losses && d->score)
        return ICL_OK;
    icl_eval_detail_free(d);
    return icl_fail(ICL_ERR_NOMEM, "eval: out of memory");
}

/* icl_eval_tasks, with each prompt's losses and score kept in detail when it is not NULL. */
static icl_status eval_tasks(icl_model *m, const icl_task_family *f, int prompts_per_task, uint64_t seed,
                             double *loss, double *metric, icl_eval_detail *detail, const char *fn) {
    icl_eval_options o = icl_eval_options_default();
    o.prompts_per_task = prompts_per_task;
    o.seed = seed;
    ICL_TRY(validate(m, f, &o));
    if (!loss || !metric)
        return icl_fail(ICL_ERR_INVALID_ARG, "%s: NULL output", fn);
    int k = icl_task_family_default_examples(f), token = icl_task_family_mode(f) == ICL_MODE_TOKEN;
    int V = icl_model_config(m)->vocab_size;
    int batch = prompts_per_task < o.batch ? prompts_per_task : o.batch;
    if (detail)
        ICL_TRY(detail_alloc(f, prompts_per_task, k, detail));
    eval_scratch s = {0};
    s.prompts = calloc((size_t)batch, sizeof *s.prompts);
    icl_status st = s.prompts ? ICL_OK : icl_fail(ICL_ERR_NOMEM, "eval: out of memory");
    for (int task = 0; st == ICL_OK && task < icl_task_family_num_tasks(f); task++) {
        double wsum = 0, lsum = 0, msum = 0;
        for (int first = 0; st == ICL_OK && first < prompts_per_task; first += batch) {
            int count = prompts_per_task - first < batch ? prompts_per_task - first : batch;
            st = run_chunk(m, f, task, k, first, count, seed, ICL_LOSS_ANSWERS, &s);
            for (int b = 0; st == ICL_OK && b < count; b++) {
                double score = 0;
                for (int t = 0; t < s.tb.T; t++) {
                    size_t i = (size_t)b * s.tb.T + t;
                    wsum += s.tb.loss_weights[i];
                    lsum += (double)s.tb.loss_weights[i] * s.losses[i];
                    if (!token && s.tb.roles[i] == ICL_ROLE_QUERY_INPUT)
                        score += s.losses[i];
                }
                if (token) {
                    int correct;
                    double ql;
                    score_token_query(&s, b, V, &correct, &ql);
                    score = correct;
                }
                msum += score;
                if (!detail)
                    continue;
                int item = task * prompts_per_task + first + b, T = s.prompts[b].T;
                st = icl_prompt_copy(&detail->prompts[item], &s.prompts[b]);
                memcpy(detail->losses + (size_t)item * detail->T, s.losses + (size_t)b * s.tb.T,
                       (size_t)(T < detail->T ? T : detail->T) * sizeof *s.losses);
                detail->score[item] = score;
            }
        }
        loss[task] = lsum / wsum;
        metric[task] = msum / prompts_per_task;
    }
    scratch_free(&s, batch);
    if (st != ICL_OK && detail)
        icl_eval_detail_free(detail);
    return st;
}

icl_status icl_eval_tasks(icl_model *m, const icl_task_family *f, int prompts_per_task, uint64_t seed, double *loss,
                          double *metric) {
    return eval_tasks(m, f, prompts_per_task, seed, loss, metric, NULL, "icl_eval_tasks");
}

icl_status icl_eval_tasks_detail(icl_model *m, const icl_task_family *f, int prompts_per_task, uint64_t seed,
                                 double *loss, double *metric, icl_eval_detail *detail) {
    if (!detail)
        return icl_fail(ICL_ERR_INVALID_ARG, "icl_eval_tasks_detail: NULL detail");
    memset(detail, 0, sizeof *detail);
    return eval_tasks(m, f, prompts_per_task, seed, loss, metric, detail, "icl_eval_tasks_detail");
}

icl_status icl_eval_write_csv(const icl_eval_result *r, const icl_task_family *f, const char *path) {
    if (!r || !f || !path)
        return icl_fail(ICL_ERR_INVALID_ARG, "icl_eval_write_csv: NULL argument");
    icl_atomic_file af;
    ICL_TRY(icl_atomic_file_open(&af, path));
    char line[256];
    icl_status st = icl_atomic_file_write(&af, "task,k,method,metric,value\n", 27);
    const char *metric = r->mode == ICL_MODE_TOKEN ? "accuracy" : "mse";
    for (int ti = 0; st == ICL_OK && ti < r->n_tasks; ti++) {
        const char *name = icl_task_family_task_name(f, r->tasks[ti]);
        for (int k = 0; st == ICL_OK && k < r->n_k; k++) {
            size_t c = (size_t)ti * r->n_k + k;
            int n = snprintf(line, sizeof line, "%s,%d,model,%s,%.9g\n%s,%d,model,%s,%.9g\n", name, k, metric,
                             r->metric[c], name, k, "query_loss", r->loss[c]);
            st = icl_atomic_file_write(&af, line, (size_t)n);
            for (int bi = 0; st == ICL_OK && bi < r->n_baselines; bi++) {
                n = snprintf(line, sizeof line, "%s,%d,%s,mse,%.9g\n", name, k, r->baseline_names[bi],
                             r->baseline_metric[((size_t)bi * r->n_tasks + ti) * r->n_k + k]);
                st = icl_atomic_file_write(&af, line, (size_t)n);
            }
        }
    }
    if (st != ICL_OK) {
        icl_atomic_file_abort(&af);
        return st;
    }
    return icl_atomic_file_commit(&af);
}
