/* Batches: B prompts generated from per-prompt child streams, packed
 * row-major and right-padded for the model. */
#include <stdlib.h>
#include <string.h>
#include "error.h"
#include "task_internal.h"

icl_task_batch_options icl_task_batch_options_default(void) {
    icl_task_batch_options o;
    memset(&o, 0, sizeof o);
    o.B = 32;
    o.n_examples = -1;
    o.gen = icl_gen_options_default();
    return o;
}

void icl_task_batch_free(icl_task_batch *b) {
    if (!b)
        return;
    for (int i = 0; i < b->cap_prompts; i++)
        icl_prompt_free(&b->prompts[i]);
    free(b->prompts);
    free(b->tokens);
    free(b->targets);
    free(b->inputs);
    free(b->target_values);
    free(b->loss_weights);
    free(b->roles);
    free(b->example_ids);
    free(b->task_ids);
    free(b->prompt_task);
    free(b->prompt_len);
    free(b->query_pos);
    memset(b, 0, sizeof *b);
}

static icl_status grow(void *ptr_to_ptr, size_t bytes) {
    void **ptr = ptr_to_ptr;
    void *q = realloc(*ptr, bytes ? bytes : 1);
    if (!q)
        return icl_fail(ICL_ERR_NOMEM, "batch: out of memory (%zu bytes)", bytes);
    *ptr = q;
    return ICL_OK;
}

/* Room for B prompts; new ones start zeroed as icl_prompt requires. */
static icl_status reserve_prompts(icl_task_batch *b, int B) {
    if (B <= b->cap_prompts)
        return ICL_OK;
    ICL_TRY(grow(&b->prompts, (size_t)B * sizeof *b->prompts));
    memset(b->prompts + b->cap_prompts, 0, (size_t)(B - b->cap_prompts) * sizeof *b->prompts);
    b->cap_prompts = B;
    return ICL_OK;
}

/* Pack b->prompts[0..B) into the row-major arrays. */
static icl_status pack_rows(icl_task_batch *b, int B, int pad_to) {
    const icl_prompt *p0 = &b->prompts[0];
    int T = 0;
    for (int i = 0; i < B; i++) {
        const icl_prompt *p = &b->prompts[i];
        if (p->mode != p0->mode || p->d_in != p0->d_in || p->d_out != p0->d_out)
            return icl_fail(ICL_ERR_SHAPE, "batch: prompt %d differs from prompt 0 in mode or width", i);
        if (pad_to > 0 && p->T > pad_to)
            return icl_fail(ICL_ERR_CONFIG, "batch: prompt %d has %d positions, more than pad_to %d", i, p->T, pad_to);
        if (p->T > T)
            T = p->T;
    }
    if (pad_to > 0)
        T = pad_to;
    const size_t n = (size_t)B * T, d_in = (size_t)p0->d_in, d_out = (size_t)p0->d_out;
    if (p0->mode == ICL_MODE_TOKEN) {
        ICL_TRY(grow(&b->tokens, n * sizeof *b->tokens));
        ICL_TRY(grow(&b->targets, n * sizeof *b->targets));
    } else {
        ICL_TRY(grow(&b->inputs, n * d_in * sizeof *b->inputs));
        ICL_TRY(grow(&b->target_values, n * d_out * sizeof *b->target_values));
    }
    ICL_TRY(grow(&b->loss_weights, n * sizeof *b->loss_weights));
    ICL_TRY(grow(&b->roles, n * sizeof *b->roles));
    ICL_TRY(grow(&b->example_ids, n * sizeof *b->example_ids));
    ICL_TRY(grow(&b->task_ids, n * sizeof *b->task_ids));
    ICL_TRY(grow(&b->prompt_task, (size_t)B * sizeof *b->prompt_task));
    ICL_TRY(grow(&b->prompt_len, (size_t)B * sizeof *b->prompt_len));
    ICL_TRY(grow(&b->query_pos, (size_t)B * sizeof *b->query_pos));
    for (int i = 0; i < B; i++) {
        const icl_prompt *p = &b->prompts[i];
        const size_t row = (size_t)i * T, len = (size_t)p->T, pad = (size_t)T - len;
        if (p->mode == ICL_MODE_TOKEN) {
            memcpy(b->tokens + row, p->tokens, len * sizeof *b->tokens);
            memcpy(b->targets + row, p->targets, len * sizeof *b->targets);
            for (size_t t = len; t < (size_t)T; t++) {
                b->tokens[row + t] = ICL_TOKEN_DELIM;
                b->targets[row + t] = -1;
            }
        } else {
            memcpy(b->inputs + row * d_in, p->inputs, len * d_in * sizeof *b->inputs);
            memcpy(b->target_values + row * d_out, p->target_values, len * d_out * sizeof *b->target_values);
            memset(b->inputs + (row + len) * d_in, 0, pad * d_in * sizeof *b->inputs);
            memset(b->target_values + (row + len) * d_out, 0, pad * d_out * sizeof *b->target_values);
        }
        memcpy(b->loss_weights + row, p->loss_weights, len * sizeof *b->loss_weights);
        memcpy(b->roles + row, p->roles, len * sizeof *b->roles);
        memcpy(b->example_ids + row, p->example_ids, len * sizeof *b->example_ids);
        memcpy(b->task_ids + row, p->task_ids, len * sizeof *b->task_ids);
        for (size_t t = len; t < (size_t)T; t++) {
            b->loss_weights[row + t] = 0.0f;
            b->roles[row + t] = ICL_ROLE_PAD;
            b->example_ids[row + t] = -1;
            b->task_ids[row + t] = -1;
        }
        b->prompt_task[i] = p->task;
        b->prompt_len[i] = p->T;
        b->query_pos[i] = p->query_pos;
    }
    b->mode = p0->mode;
    b->B = B;
    b->T = T;
    b->d_in = p0->d_in;
    b->d_out = p0->d_out;
    int token = p0->mode == ICL_MODE_TOKEN;
    b->batch.B = B;
    b->batch.T = T;
    b->batch.tokens = token ? b->tokens : NULL;
    b->batch.targets = token ? b->targets : NULL;
    b->batch.inputs = token ? NULL : b->inputs;
    b->batch.target_values = token ? NULL : b->target_values;
    b->batch.loss_weights = b->loss_weights;
    return ICL_OK;
}

icl_status icl_task_batch_pack(icl_task_batch *out, const icl_prompt *const *prompts, int B, int pad_to) {
    if (!out || !prompts)
        return icl_fail(ICL_ERR_INVALID_ARG, "icl_task_batch_pack: NULL argument");
    if (B <= 0 || pad_to < 0)
        return icl_fail(ICL_ERR_INVALID_ARG, "icl_task_batch_pack: need B > 0 and pad_to >= 0, got %d and %d", B,
                        pad_to);
    for (int i = 0; i < B; i++)
        if (!prompts[i] || !prompts[i]->roles || prompts[i]->T <= 0)
            return icl_fail(ICL_ERR_INVALID_ARG, "icl_task_batch_pack: prompt %d is NULL or empty", i);
    /* A caller may pass the batch's own prompts back, row i as row i (copied
     * in place); any other aliasing would overwrite a row before it is read. */
    for (int i = 0; i < B; i++) {
        int inside = out->prompts && prompts[i] >= out->prompts && prompts[i] < out->prompts + out->cap_prompts;
        if (inside && (prompts[i] != &out->prompts[i] || B > out->cap_prompts))
            return icl_fail(ICL_ERR_INVALID_ARG, "icl_task_batch_pack: prompt %d is another row of this batch", i);
    }
    ICL_TRY(reserve_prompts(out, B));
    for (int i = 0; i < B; i++)
        ICL_TRY(icl_prompt_copy(&out->prompts[i], prompts[i]));
    return pack_rows(out, B, pad_to);
}

icl_status icl_task_batch_generate(const icl_task_family *f, const icl_task_batch_options *opt, icl_rng *rng,
                                   icl_task_batch *out) {
    if (!f || !opt || !rng || !out)
        return icl_fail(ICL_ERR_INVALID_ARG, "icl_task_batch_generate: NULL argument");
    if (opt->B <= 0)
        return icl_fail(ICL_ERR_INVALID_ARG, "icl_task_batch_generate: B must be positive, got %d", opt->B);
    if (opt->n_examples < -1)
        return icl_fail(ICL_ERR_INVALID_ARG, "icl_task_batch_generate: n_examples must be >= 0 (or -1), got %d",
                        opt->n_examples);
    if (opt->pad_to < 0)
        return icl_fail(ICL_ERR_INVALID_ARG, "icl_task_batch_generate: pad_to must be >= 0, got %d", opt->pad_to);
    if (opt->tasks) {
        if (opt->n_tasks <= 0)
            return icl_fail(ICL_ERR_INVALID_ARG, "icl_task_batch_generate: n_tasks must be positive, got %d",
                            opt->n_tasks);
        for (int j = 0; j < opt->n_tasks; j++)
            if (opt->tasks[j] < 0 || opt->tasks[j] >= f->n_tasks)
                return icl_fail(ICL_ERR_INVALID_ARG, "icl_task_batch_generate: task %d outside [0, %d) of family %s",
                                opt->tasks[j], f->n_tasks, f->name);
    }
    const int n = opt->n_examples < 0 ? f->default_examples : opt->n_examples;
    ICL_TRY(reserve_prompts(out, opt->B));
    /* One draw from rng keys this batch; prompt i then depends only on that key and i. */
    icl_rng base;
    icl_rng_split(&base, rng, icl_rng_u64(rng));
    for (int i = 0; i < opt->B; i++) {
        icl_rng child;
        icl_rng_split(&child, &base, (uint64_t)i);
        int task = opt->tasks ? opt->tasks[icl_rng_below(&child, (uint32_t)opt->n_tasks)]
                              : (int)icl_rng_below(&child, (uint32_t)f->n_tasks);
        ICL_TRY(icl_task_generate(f, task, n, &opt->gen, &child, &out->prompts[i]));
    }
    return pack_rows(out, opt->B, opt->pad_to);
}

/* ---- the answers of another task ---- */

/* Positions of row b holding `role`, in order, into pos[0..n) (at most cap). */
static int role_positions(const icl_task_batch *tb, int b, icl_role role, int *pos, int cap) {
    int n = 0;
    for (int t = 0; t < tb->T && n < cap; t++)
        if (tb->roles[(size_t)b * tb->T + t] == (int32_t)role)
            pos[n++] = t;
    return n;
}

icl_status icl_query_answers(const icl_task_family *f, const icl_task_batch *tb, int task, int32_t *answers) {
    if (!f || !tb || !answers)
        return icl_fail(ICL_ERR_INVALID_ARG, "icl_query_answers: NULL argument");
    if (f->ops->mode != ICL_MODE_TOKEN || tb->mode != ICL_MODE_TOKEN || tb->B < 1)
        return icl_fail(ICL_ERR_INVALID_ARG, "icl_query_answers: needs a token family and a non-empty token batch");
    if (task < 0 || task >= f->n_tasks)
        return icl_fail(ICL_ERR_INVALID_ARG, "icl_query_answers: unknown task %d (family %s has tasks 0..%d)", task,
                        f->name, f->n_tasks - 1);
    int Lx = f->input_len, A = f->answer_len;
    int *pos = malloc((size_t)(Lx > A ? Lx : A) * sizeof *pos);
    int32_t *x = malloc((size_t)Lx * sizeof *x);
    icl_status s = (pos && x) ? ICL_OK : icl_fail(ICL_ERR_NOMEM, "icl_query_answers: out of memory");
    icl_rng root;
    icl_rng_init(&root, (uint64_t)task, "query_answers");
    for (int b = 0; s == ICL_OK && b < tb->B; b++) {
        const int32_t *row = tb->tokens + (size_t)b * tb->T;
        int32_t *y = answers + (size_t)b * A;
        if (tb->prompt_task[b] == task) {
            if (role_positions(tb, b, ICL_ROLE_QUERY_ANSWER, pos, A) != A)
                s = icl_fail(ICL_ERR_INVALID_ARG, "icl_query_answers: row %d lacks a %d-token query answer", b, A);
            for (int j = 0; s == ICL_OK && j < A; j++)
                y[j] = row[pos[j]];
            continue;
        }
        if (role_positions(tb, b, ICL_ROLE_QUERY_INPUT, pos, Lx) != Lx) {
            s = icl_fail(ICL_ERR_INVALID_ARG, "icl_query_answers: row %d lacks a %d-token query input", b, Lx);
            break;
        }
        for (int j = 0; j < Lx; j++)
            x[j] = row[pos[j]];
        icl_rng r;
        icl_rng_split(&r, &root, (uint64_t)b);
        f->ops->answer(f, task, x, &r, y);
    }
    free(pos);
    free(x);
    return s;
}
