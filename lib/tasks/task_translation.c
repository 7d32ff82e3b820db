/* Translation ("same answer, different alphabets", after Xiong et al.'s sum
 * written in several languages): x is a value v in a source alphabet of M
 * symbols, or with sum=1 "a + b" whose value is v = a + b; task to_<k>
 * writes v in target alphabet k. The K target alphabets are disjoint, so the
 * tasks agree on the value and differ only in how it is written. */
#include <stdlib.h>
#include "error.h"
#include "task_internal.h"

static const task_option options[] = {
    {"M", 10, 2, 100, 1},   /* source symbols (values 0 .. M-1) */
    {"K", 3, 1, 26, 1},     /* target alphabets = tasks */
    {"sum", 0, 0, 1, 1},    /* 1: x = a + b and v = a + b */
    {"n", 8, 0, 100000, 1}, /* examples per prompt */
};

typedef struct {
    int M, V;    /* source symbols; values a target alphabet must write */
    int sum;
    int plus;    /* token of "+" (sum=1) */
} translation;

static icl_status setup(icl_task_family *f) {
    translation *tr = calloc(1, sizeof *tr);
    if (!tr)
        return icl_fail(ICL_ERR_NOMEM, "translation: out of memory");
    f->data = tr;
    tr->M = task_opt_int(f, "M");
    tr->sum = task_opt_int(f, "sum");
    tr->V = tr->sum ? 2 * tr->M - 1 : tr->M;
    const int K = task_opt_int(f, "K");
    f->input_len = tr->sum ? 3 : 1;
    f->answer_len = 1;
    f->default_examples = task_opt_int(f, "n");
    f->n_inputs = tr->sum ? (double)tr->M * tr->M : tr->M;
    ICL_TRY(task_set_tasks(f, K));
    for (int k = 0; k < K; k++)
        task_name_task(f, k, "to_%c", 'A' + k);
    ICL_TRY(task_set_vocab(f, tr->M + K * tr->V + tr->sum));
    for (int v = 0; v < tr->M; v++)
        task_name_token(f, ICL_TOKEN_FIRST_CONTENT + v, "%d", v);
    for (int k = 0; k < K; k++)
        for (int v = 0; v < tr->V; v++)
            task_name_token(f, ICL_TOKEN_FIRST_CONTENT + tr->M + k * tr->V + v, "%c%d", 'A' + k, v);
    tr->plus = ICL_TOKEN_FIRST_CONTENT + tr->M + K * tr->V;
    if (tr->sum)
        task_name_token(f, tr->plus, "+");
    return ICL_OK;
}

static void destroy(icl_task_family *f) { free(f->data); }

static void draw_input(const icl_task_family *f, icl_rng *rng, int32_t *x) {
    const translation *tr = f->data;
    x[0] = ICL_TOKEN_FIRST_CONTENT + (int)icl_rng_below(rng, (uint32_t)tr->M);
    if (tr->sum) {
        x[1] = tr->plus;
        x[2] = ICL_TOKEN_FIRST_CONTENT + (int)icl_rng_below(rng, (uint32_t)tr->M);
    }
}

static void answer(const icl_task_family *f, int task, const int32_t *x, icl_rng *rng, int32_t *y) {
    (void)rng;
    const translation *tr = f->data;
    int v = x[0] - ICL_TOKEN_FIRST_CONTENT;
    if (tr->sum)
        v += x[2] - ICL_TOKEN_FIRST_CONTENT;
    y[0] = ICL_TOKEN_FIRST_CONTENT + tr->M + task * tr->V + v;
}

const task_family_ops icl_task_translation_ops = {
    TASK_TOKEN_OPS("translation", options, setup, draw_input, answer),
    .destroy = destroy,
};
