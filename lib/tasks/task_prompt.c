/* Prompt assembly: the token and vector layouts, per-position labels, targets
 * and loss weights, mixed-task prompts, rendering as text. */
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "error.h"
#include "task_internal.h"

/* A query input unlike every example's is found well within this many draws
 * whenever the family has more distinct inputs than the prompt has examples. */
#define MAX_QUERY_DRAWS 100000

const char *icl_role_name(icl_role r) {
    static const char *const names[ICL_ROLE_COUNT] = {"bos",          "ex_input",  "ex_sep",
                                                      "ex_answer",    "delim",     "query_input",
                                                      "query_sep",    "query_answer", "pad"};
    return (int)r >= 0 && r < ICL_ROLE_COUNT ? names[r] : NULL;
}

icl_status icl_role_parse(const char *name, int *role) {
    if (!name || !role)
        return icl_fail(ICL_ERR_INVALID_ARG, "icl_role_parse: NULL argument");
    char names[256] = "";
    for (int r = 0; r < ICL_ROLE_COUNT; r++) {
        if (strcmp(name, icl_role_name((icl_role)r)) == 0) {
            *role = r;
            return ICL_OK;
        }
        size_t len = strlen(names);
        snprintf(names + len, sizeof names - len, "%s%s", r ? ", " : "", icl_role_name((icl_role)r));
    }
    return icl_fail(ICL_ERR_INVALID_ARG, "unknown role \"%s\" (roles: %s)", name, names);
}

icl_gen_options icl_gen_options_default(void) {
    icl_gen_options o = {ICL_LOSS_ANSWERS, 0, 0, 0};
    return o;
}

static icl_status grow(void *ptr_to_ptr, size_t bytes) {
    void **ptr = ptr_to_ptr;
    void *q = realloc(*ptr, bytes ? bytes : 1);
    if (!q)
        return icl_fail(ICL_ERR_NOMEM, "prompt: out of memory (%zu bytes)", bytes);
    *ptr = q;
    return ICL_OK;
}

void icl_prompt_free(icl_prompt *p) {
    if (!p)
        return;
    free(p->tokens);
    free(p->targets);
    free(p->inputs);
    free(p->target_values);
    free(p->loss_weights);
    free(p->roles);
    free(p->example_ids);
    free(p->task_ids);
    memset(p, 0, sizeof *p);
}

/* Size p's arrays for T positions of `mode`; the other mode's arrays are released. */
static icl_status prompt_reserve(icl_prompt *p, icl_input_mode mode, int T, int d_in, int d_out) {
    size_t t = (size_t)T;
    if (mode == ICL_MODE_TOKEN) {
        ICL_TRY(grow(&p->tokens, t * sizeof *p->tokens));
        ICL_TRY(grow(&p->targets, t * sizeof *p->targets));
        free(p->inputs);
        free(p->target_values);
        p->inputs = p->target_values = NULL;
        d_in = d_out = 0;
    } else {
        ICL_TRY(grow(&p->inputs, t * (size_t)d_in * sizeof *p->inputs));
        ICL_TRY(grow(&p->target_values, t * (size_t)d_out * sizeof *p->target_values));
        free(p->tokens);
        free(p->targets);
        p->tokens = p->targets = NULL;
    }
    ICL_TRY(grow(&p->loss_weights, t * sizeof *p->loss_weights));
    ICL_TRY(grow(&p->roles, t * sizeof *p->roles));
    ICL_TRY(grow(&p->example_ids, t * sizeof *p->example_ids));
    ICL_TRY(grow(&p->task_ids, t * sizeof *p->task_ids));
    p->mode = mode;
    p->T = T;
    p->d_in = d_in;
    p->d_out = d_out;
    return ICL_OK;
}

icl_status icl_prompt_copy(icl_prompt *dst, const icl_prompt *src) {
    if (!dst || !src)
        return icl_fail(ICL_ERR_INVALID_ARG, "icl_prompt_copy: NULL argument");
    if (dst == src)
        return ICL_OK;
    if (src->T <= 0 || !src->roles)
        return icl_fail(ICL_ERR_INVALID_ARG, "icl_prompt_copy: the source prompt is empty");
    ICL_TRY(prompt_reserve(dst, src->mode, src->T, src->d_in, src->d_out));
    size_t t = (size_t)src->T;
    if (src->mode == ICL_MODE_TOKEN) {
        memcpy(dst->tokens, src->tokens, t * sizeof *dst->tokens);
        memcpy(dst->targets, src->targets, t * sizeof *dst->targets);
    } else {
        memcpy(dst->inputs, src->inputs, t * (size_t)src->d_in * sizeof *dst->inputs);
        memcpy(dst->target_values, src->target_values, t * (size_t)src->d_out * sizeof *dst->target_values);
    }
    memcpy(dst->loss_weights, src->loss_weights, t * sizeof *dst->loss_weights);
    memcpy(dst->roles, src->roles, t * sizeof *dst->roles);
    memcpy(dst->example_ids, src->example_ids, t * sizeof *dst->example_ids);
    memcpy(dst->task_ids, src->task_ids, t * sizeof *dst->task_ids);
    dst->n_examples = src->n_examples;
    dst->task = src->task;
    dst->answer_len = src->answer_len;
    dst->query_pos = src->query_pos;
    return ICL_OK;
}

/* What goes into one prompt: n_fn distinct tasks, example i of task
 * fn_task[slot[i]] (slot NULL: all fn_task[0]). */
typedef struct {
    int n_fn;
    const int *fn_task;
    const int *slot;
    int query_task; /* task id written at the query positions */
    int unseen;     /* query input must differ from every example input */
} prompt_plan;

static int plan_task(const prompt_plan *pl, int i) { return pl->fn_task[pl->slot ? pl->slot[i] : 0]; }

static void label(icl_prompt *p, int pos, int count, icl_role role, int example, int task) {
    for (int j = pos; j < pos + count; j++) {
        p->roles[j] = role;
        p->example_ids[j] = example;
        p->task_ids[j] = task;
    }
}

static void put(icl_prompt *p, int pos, int32_t token, icl_role role, int example, int task) {
    p->tokens[pos] = token;
    label(p, pos, 1, role, example, task);
}

static icl_status check_gen(const icl_task_family *f, const icl_gen_options *opt, int n, int *T) {
    if ((int)opt->loss < ICL_LOSS_QUERY || opt->loss > ICL_LOSS_ALL)
        return icl_fail(ICL_ERR_INVALID_ARG, "generation options: unknown loss mask %d", (int)opt->loss);
    if (opt->active_dims < 0 || (f->ops->mode == ICL_MODE_VECTOR && opt->active_dims > f->dim))
        return icl_fail(ICL_ERR_INVALID_ARG, "generation options: active_dims %d outside [0, %d]", opt->active_dims,
                        f->dim);
    if (opt->ctx < 0)
        return icl_fail(ICL_ERR_INVALID_ARG, "generation options: ctx must be >= 0, got %d", opt->ctx);
    ICL_TRY(icl_task_family_prompt_len(f, n, T));
    if (opt->ctx > 0 && *T > opt->ctx)
        return icl_fail(ICL_ERR_CONFIG, "a %s prompt of %d examples has %d positions, more than ctx %d", f->name, n,
                        *T, opt->ctx);
    return ICL_OK;
}

static int input_seen(const icl_prompt *p, const int32_t *x, int n, int len, int per) {
    for (int i = 0; i < n; i++)
        if (memcmp(p->tokens + 1 + i * per, x, (size_t)len * sizeof *x) == 0)
            return 1;
    return 0;
}

/* BOS x1 SEP y1 DELIM ... xq SEP yq. answers (n_fn, answer_len), nullable:
 * every planned task's answer to the query; the prompt carries the first. */
static icl_status build_tokens(const icl_task_family *f, const prompt_plan *pl, int n, int T, icl_rng *rng,
                               icl_prompt *p, int32_t *answers) {
    const int Lx = f->input_len, Ly = f->answer_len, per = Lx + Ly + 2;
    if (pl->unseen && f->n_inputs <= n)
        return icl_fail(ICL_ERR_CONFIG, "family %s has only %.0f distinct inputs: no query input can differ from %d examples",
                        f->name, f->n_inputs, n);
    ICL_TRY(prompt_reserve(p, ICL_MODE_TOKEN, T, 0, 0));
    put(p, 0, ICL_TOKEN_BOS, ICL_ROLE_BOS, -1, -1);
    int pos = 1;
    for (int i = 0; i < n; i++) {
        int task = plan_task(pl, i);
        const int32_t *x = p->tokens + pos;
        f->ops->draw_input(f, rng, p->tokens + pos);
        label(p, pos, Lx, ICL_ROLE_EX_INPUT, i, task);
        pos += Lx;
        put(p, pos++, ICL_TOKEN_SEP, ICL_ROLE_EX_SEP, i, task);
        f->ops->answer(f, task, x, rng, p->tokens + pos);
        label(p, pos, Ly, ICL_ROLE_EX_ANSWER, i, task);
        pos += Ly;
        put(p, pos++, ICL_TOKEN_DELIM, ICL_ROLE_DELIM, i, task);
    }
    int32_t *qx = p->tokens + pos;
    for (int tries = 0;; tries++) {
        if (tries == MAX_QUERY_DRAWS)
            return icl_fail(ICL_ERR_CONFIG, "family %s: no query input unlike the %d examples' in %d draws", f->name, n,
                            MAX_QUERY_DRAWS);
        f->ops->draw_input(f, rng, qx);
        if (!pl->unseen || !input_seen(p, qx, n, Lx, per))
            break;
    }
    label(p, pos, Lx, ICL_ROLE_QUERY_INPUT, n, pl->query_task);
    pos += Lx;
    p->query_pos = pos;
    put(p, pos++, ICL_TOKEN_SEP, ICL_ROLE_QUERY_SEP, n, pl->query_task);
    if (answers) {
        for (int j = 0; j < pl->n_fn; j++)
            f->ops->answer(f, pl->fn_task[j], qx, rng, answers + (size_t)j * Ly);
        memcpy(p->tokens + pos, answers, (size_t)Ly * sizeof *answers);
    } else {
        f->ops->answer(f, pl->fn_task[0], qx, rng, p->tokens + pos);
    }
    label(p, pos, Ly, ICL_ROLE_QUERY_ANSWER, n, pl->query_task);
    return ICL_OK;
}

/* x1 y1 ... xq yq with one function per planned task. answer_values (n_fn),
 * nullable: every task's noise-free value at the query; the prompt carries
 * the first. Without it the query gets a noisy label like the examples. */
static icl_status build_vectors(const icl_task_family *f, const prompt_plan *pl, int n, int T,
                                const icl_gen_options *opt, icl_rng *rng, icl_prompt *p, float *answer_values) {
    const int D = f->dim, d_in = D + 1;
    ICL_TRY(prompt_reserve(p, ICL_MODE_VECTOR, T, d_in, 1));
    double *theta = malloc((size_t)pl->n_fn * (size_t)f->n_theta * sizeof *theta);
    double *x = malloc((size_t)D * sizeof *x);
    if (!theta || !x) {
        free(theta);
        free(x);
        return icl_fail(ICL_ERR_NOMEM, "family %s: out of memory", f->name);
    }
    for (int j = 0; j < pl->n_fn; j++)
        f->ops->draw_function(f, pl->fn_task[j], rng, theta + (size_t)j * f->n_theta);
    memset(p->inputs, 0, (size_t)T * d_in * sizeof *p->inputs);
    for (int i = 0; i <= n; i++) {
        float *xin = p->inputs + (size_t)(2 * i) * d_in, *yin = xin + d_in;
        /* Every coordinate is drawn, active or not, so the stream does not
         * depend on the curriculum. */
        for (int c = 0; c < D; c++) {
            float v = icl_rng_normal(rng);
            xin[c] = opt->active_dims > 0 && c >= opt->active_dims ? 0.0f : v;
            x[c] = xin[c];
        }
        double y;
        int task;
        if (i < n) {
            int k = pl->slot ? pl->slot[i] : 0;
            task = pl->fn_task[k];
            y = f->ops->eval(f, task, theta + (size_t)k * f->n_theta, x);
        } else if (answer_values) {
            task = pl->query_task;
            for (int j = 0; j < pl->n_fn; j++)
                answer_values[j] = (float)f->ops->eval(f, pl->fn_task[j], theta + (size_t)j * f->n_theta, x);
            y = answer_values[0];
        } else {
            task = pl->query_task;
            y = f->ops->eval(f, pl->fn_task[0], theta, x);
        }
        if (f->sigma > 0 && !(i == n && answer_values))
            y += f->sigma * icl_rng_normal(rng);
        yin[0] = (float)y;
        yin[D] = 1.0f;
        label(p, 2 * i, 1, i < n ? ICL_ROLE_EX_INPUT : ICL_ROLE_QUERY_INPUT, i, task);
        label(p, 2 * i + 1, 1, i < n ? ICL_ROLE_EX_ANSWER : ICL_ROLE_QUERY_ANSWER, i, task);
    }
    p->query_pos = 2 * n;
    free(theta);
    free(x);
    return ICL_OK;
}

/* Targets and loss weights from the tokens/inputs and roles. */
static void finalize(icl_prompt *p, icl_loss_mask loss) {
    for (int t = 0; t < p->T; t++) {
        int has_next = t + 1 < p->T;
        int r = has_next ? p->roles[t + 1] : ICL_ROLE_PAD;
        float w = 0.0f;
        if (p->mode == ICL_MODE_TOKEN) {
            p->targets[t] = has_next ? p->tokens[t + 1] : -1;
            if (loss == ICL_LOSS_ALL)
                w = has_next ? 1.0f : 0.0f;
            else if (loss == ICL_LOSS_ANSWERS)
                w = r == ICL_ROLE_EX_ANSWER || r == ICL_ROLE_QUERY_ANSWER;
            else
                w = r == ICL_ROLE_QUERY_ANSWER;
        } else {
            int role = p->roles[t];
            int is_x = role == ICL_ROLE_EX_INPUT || role == ICL_ROLE_QUERY_INPUT;
            p->target_values[t] = is_x ? p->inputs[(size_t)(t + 1) * p->d_in] : 0.0f;
            w = loss == ICL_LOSS_QUERY ? role == ICL_ROLE_QUERY_INPUT : is_x;
        }
        p->loss_weights[t] = w;
    }
}

static icl_status build(const icl_task_family *f, const prompt_plan *pl, int n, const icl_gen_options *opt,
                        icl_rng *rng, icl_prompt *p, int32_t *answers, float *answer_values) {
    int T;
    ICL_TRY(check_gen(f, opt, n, &T));
    if (f->ops->mode == ICL_MODE_TOKEN)
        ICL_TRY(build_tokens(f, pl, n, T, rng, p, answers));
    else
        ICL_TRY(build_vectors(f, pl, n, T, opt, rng, p, answer_values));
    finalize(p, opt->loss);
    p->n_examples = n;
    p->task = pl->query_task;
    p->answer_len = f->ops->mode == ICL_MODE_TOKEN ? f->answer_len : 1;
    return ICL_OK;
}

icl_status icl_task_generate(const icl_task_family *f, int task, int n_examples, const icl_gen_options *opt,
                             icl_rng *rng, icl_prompt *out) {
    if (!f || !rng || !out)
        return icl_fail(ICL_ERR_INVALID_ARG, "icl_task_generate: NULL argument");
    if (task < 0 || task >= f->n_tasks)
        return icl_fail(ICL_ERR_INVALID_ARG, "icl_task_generate: task %d outside [0, %d) of family %s", task,
                        f->n_tasks, f->name);
    if (n_examples < 0)
        return icl_fail(ICL_ERR_INVALID_ARG, "icl_task_generate: n_examples must be >= 0, got %d", n_examples);
    icl_gen_options def = icl_gen_options_default();
    if (!opt)
        opt = &def;
    prompt_plan pl = {1, &task, NULL, task, opt->query_unseen && f->ops->mode == ICL_MODE_TOKEN};
    return build(f, &pl, n_examples, opt, rng, out, NULL, NULL);
}

icl_status icl_prompt_set_query_answer(icl_prompt *p, const int32_t *tokens, const float *values) {
    if (!p || !p->roles || p->T <= 0)
        return icl_fail(ICL_ERR_INVALID_ARG, "icl_prompt_set_query_answer: NULL or empty prompt");
    int q = p->query_pos;
    if (p->mode == ICL_MODE_TOKEN) {
        if (!tokens)
            return icl_fail(ICL_ERR_INVALID_ARG, "icl_prompt_set_query_answer: a token prompt needs tokens");
        for (int j = 0; j < p->answer_len; j++) {
            if (tokens[j] < 0)
                return icl_fail(ICL_ERR_INVALID_ARG, "icl_prompt_set_query_answer: negative token %d", (int)tokens[j]);
            p->tokens[q + 1 + j] = tokens[j];
            p->targets[q + j] = tokens[j];
        }
    } else {
        if (!values)
            return icl_fail(ICL_ERR_INVALID_ARG, "icl_prompt_set_query_answer: a vector prompt needs values");
        p->inputs[(size_t)(q + 1) * p->d_in] = values[0];
        p->target_values[(size_t)q * p->d_out] = values[0];
    }
    return ICL_OK;
}

/* Append printf-style text at *used; 0 once the buffer is full. */
static int append(char *buf, size_t size, size_t *used, const char *fmt, ...) __attribute__((format(printf, 4, 5)));
static int append(char *buf, size_t size, size_t *used, const char *fmt, ...) {
    if (*used >= size)
        return 0;
    va_list ap;
    va_start(ap, fmt);
    int k = vsnprintf(buf + *used, size - *used, fmt, ap);
    va_end(ap);
    if (k < 0 || (size_t)k >= size - *used) {
        *used = size;
        return 0;
    }
    *used += (size_t)k;
    return 1;
}

icl_status icl_prompt_render(const icl_task_family *f, const icl_prompt *p, char *buf, size_t size) {
    if (!f || !p || !buf || size == 0 || !p->roles)
        return icl_fail(ICL_ERR_INVALID_ARG, "icl_prompt_render: NULL argument or empty prompt");
    if (p->mode != f->ops->mode)
        return icl_fail(ICL_ERR_INVALID_ARG, "icl_prompt_render: prompt and family %s differ in mode", f->name);
    size_t used = 0;
    buf[0] = '\0';
    int ok = 1;
    for (int t = 0; t < p->T && ok; t++) {
        if (p->roles[t] == ICL_ROLE_PAD)
            break;
        const char *space = t ? " " : "";
        if (p->mode == ICL_MODE_TOKEN) {
            const char *name = icl_task_family_token_name(f, p->tokens[t]);
            ok = name ? append(buf, size, &used, "%s%s", space, name)
                      : append(buf, size, &used, "%s<%d>", space, (int)p->tokens[t]);
            continue;
        }
        const float *v = p->inputs + (size_t)t * p->d_in;
        int is_x = p->roles[t] == ICL_ROLE_EX_INPUT || p->roles[t] == ICL_ROLE_QUERY_INPUT;
        if (is_x) {
            ok = append(buf, size, &used, "%s[", t ? " | " : "");
            for (int c = 0; c < p->d_in - 1 && ok; c++)
                ok = append(buf, size, &used, "%s%.2f", c ? " " : "", (double)v[c]);
            ok = ok && append(buf, size, &used, "]");
        } else {
            ok = append(buf, size, &used, " -> %.2f", (double)v[0]);
        }
    }
    if (!ok)
        return icl_fail(ICL_ERR_INVALID_ARG, "icl_prompt_render: %zu bytes are too few for the prompt", size);
    return ICL_OK;
}

icl_status icl_prompt_points(const icl_prompt *p, double *xs, double *ys, int max_points) {
    if (!p || !xs || !ys || !p->roles)
        return icl_fail(ICL_ERR_INVALID_ARG, "icl_prompt_points: NULL argument or empty prompt");
    if (p->mode != ICL_MODE_VECTOR)
        return icl_fail(ICL_ERR_INVALID_ARG, "icl_prompt_points: needs a vector prompt");
    if (max_points < p->n_examples + 1)
        return icl_fail(ICL_ERR_INVALID_ARG, "icl_prompt_points: room for %d points, the prompt has %d", max_points,
                        p->n_examples + 1);
    const int D = p->d_in - 1;
    for (int i = 0; i <= p->n_examples; i++) {
        const float *xin = p->inputs + (size_t)(2 * i) * p->d_in;
        for (int c = 0; c < D; c++)
            xs[(size_t)i * D + c] = xin[c];
        ys[i] = xin[p->d_in];
    }
    return ICL_OK;
}

/* ---- mixed-task prompts ---- */

icl_status icl_task_mix_counts(const double *lambda, int n_tasks, int n_examples, int *counts) {
    if (!lambda || !counts)
        return icl_fail(ICL_ERR_INVALID_ARG, "icl_task_mix_counts: NULL argument");
    if (n_tasks <= 0 || n_examples < 0)
        return icl_fail(ICL_ERR_INVALID_ARG, "icl_task_mix_counts: need n_tasks > 0 and n_examples >= 0, got %d and %d",
                        n_tasks, n_examples);
    double sum = 0.0;
    for (int j = 0; j < n_tasks; j++) {
        if (!(lambda[j] >= 0.0) || !isfinite(lambda[j]))
            return icl_fail(ICL_ERR_INVALID_ARG, "icl_task_mix_counts: lambda[%d] = %g is not a proportion", j,
                            lambda[j]);
        sum += lambda[j];
    }
    if (fabs(sum - 1.0) > 1e-6)
        return icl_fail(ICL_ERR_INVALID_ARG, "icl_task_mix_counts: the proportions sum to %.9g, not 1", sum);
    int rem = n_examples;
    for (int j = 0; j < n_tasks; j++) {
        /* The 1e-9 keeps 0.29 * 100 = 28.999999999999996 from flooring to 28. */
        counts[j] = (int)floor(lambda[j] * n_examples + 1e-9);
        rem -= counts[j];
    }
    if (rem < 0 || rem > n_tasks)
        return icl_fail(ICL_ERR_INVALID_ARG, "icl_task_mix_counts: proportions do not split %d examples", n_examples);
    for (; rem > 0; rem--) {
        /* Only positive remainders compete (a task already rounded up has a
         * negative one); strict > keeps the lower index on ties. */
        int best = -1;
        double best_frac = 1e-12;
        for (int j = 0; j < n_tasks; j++) {
            double frac = lambda[j] * n_examples - counts[j];
            if (frac > best_frac) {
                best_frac = frac;
                best = j;
            }
        }
        if (best < 0)
            return icl_fail(ICL_ERR_INVALID_ARG, "icl_task_mix_counts: proportions do not split %d examples",
                            n_examples);
        counts[best]++;
    }
    return ICL_OK;
}

void icl_mixed_prompt_free(icl_mixed_prompt *m) {
    if (!m)
        return;
    icl_prompt_free(&m->prompt);
    free(m->tasks);
    free(m->counts);
    free(m->answers);
    free(m->answer_values);
    memset(m, 0, sizeof *m);
}

static icl_status check_mix_tasks(const icl_task_family *f, const int *tasks, int n_tasks) {
    for (int j = 0; j < n_tasks; j++) {
        if (tasks[j] < 0 || tasks[j] >= f->n_tasks)
            return icl_fail(ICL_ERR_INVALID_ARG, "mixed prompt: task %d outside [0, %d) of family %s", tasks[j],
                            f->n_tasks, f->name);
        for (int i = 0; i < j; i++)
            if (tasks[i] == tasks[j])
                return icl_fail(ICL_ERR_INVALID_ARG, "mixed prompt: task %s given twice", f->task_names[tasks[j]]);
    }
    return ICL_OK;
}

icl_status icl_task_generate_mixed(const icl_task_family *f, const int *tasks, const double *lambda, int n_tasks,
                                   int n_examples, const icl_gen_options *opt, icl_rng *rng, icl_mixed_prompt *out) {
    if (!f || !tasks || !lambda || !rng || !out)
        return icl_fail(ICL_ERR_INVALID_ARG, "icl_task_generate_mixed: NULL argument");
    if (n_tasks <= 0)
        return icl_fail(ICL_ERR_INVALID_ARG, "icl_task_generate_mixed: n_tasks must be positive, got %d", n_tasks);
    if (n_examples < 1)
        return icl_fail(ICL_ERR_INVALID_ARG, "icl_task_generate_mixed: a mixed prompt needs n_examples >= 1, got %d",
                        n_examples);
    ICL_TRY(check_mix_tasks(f, tasks, n_tasks));
    icl_gen_options def = icl_gen_options_default();
    if (!opt)
        opt = &def;
    size_t nt = (size_t)n_tasks;
    ICL_TRY(grow(&out->tasks, nt * sizeof *out->tasks));
    ICL_TRY(grow(&out->counts, nt * sizeof *out->counts));
    ICL_TRY(icl_task_mix_counts(lambda, n_tasks, n_examples, out->counts));
    memcpy(out->tasks, tasks, nt * sizeof *tasks);
    out->n_tasks = n_tasks;
    if (f->ops->mode == ICL_MODE_TOKEN) {
        ICL_TRY(grow(&out->answers, nt * (size_t)f->answer_len * sizeof *out->answers));
        free(out->answer_values);
        out->answer_values = NULL;
    } else {
        ICL_TRY(grow(&out->answer_values, nt * sizeof *out->answer_values));
        free(out->answers);
        out->answers = NULL;
    }
    int *slot = malloc((size_t)n_examples * sizeof *slot);
    if (!slot)
        return icl_fail(ICL_ERR_NOMEM, "icl_task_generate_mixed: out of memory");
    for (int j = 0, i = 0; j < n_tasks; j++)
        for (int c = 0; c < out->counts[j]; c++)
            slot[i++] = j;
    icl_rng_shuffle_int(rng, slot, n_examples);
    prompt_plan pl = {n_tasks, out->tasks, slot, -1, f->ops->mode == ICL_MODE_TOKEN};
    icl_status s = build(f, &pl, n_examples, opt, rng, &out->prompt, out->answers, out->answer_values);
    free(slot);
    return s;
}

icl_status icl_prompt_keep_examples(const icl_prompt *src, int k, icl_prompt *dst) {
    if (!src || !dst)
        return icl_fail(ICL_ERR_INVALID_ARG, "icl_prompt_keep_examples: NULL argument");
    if (k < 0 || k > src->n_examples)
        return icl_fail(ICL_ERR_INVALID_ARG, "icl_prompt_keep_examples: k = %d outside [0, %d]", k, src->n_examples);
    int n = src->n_examples;
    ICL_TRY(icl_prompt_copy(dst, src));
    /* Compact in place: position w <= t, so nothing is overwritten before it is read. */
    int w = 0, query_pos = -1;
    for (int t = 0; t < src->T; t++) {
        int ex = dst->example_ids[t];
        if (ex >= k && ex < n)
            continue;
        if (t == src->query_pos)
            query_pos = w;
        if (dst->mode == ICL_MODE_TOKEN) {
            dst->tokens[w] = dst->tokens[t];
        } else {
            memmove(dst->inputs + (size_t)w * dst->d_in, dst->inputs + (size_t)t * dst->d_in,
                    (size_t)dst->d_in * sizeof *dst->inputs);
            memmove(dst->target_values + (size_t)w * dst->d_out, dst->target_values + (size_t)t * dst->d_out,
                    (size_t)dst->d_out * sizeof *dst->target_values);
        }
        dst->loss_weights[w] = dst->loss_weights[t];
        dst->roles[w] = dst->roles[t];
        dst->task_ids[w] = dst->task_ids[t];
        dst->example_ids[w] = ex == n ? k : ex;
        w++;
    }
    if (dst->mode == ICL_MODE_TOKEN)
        for (int t = 0; t < w; t++)
            dst->targets[t] = t + 1 < w ? dst->tokens[t + 1] : -1;
    dst->T = w;
    dst->n_examples = k;
    dst->query_pos = query_pos;
    return ICL_OK;
}
