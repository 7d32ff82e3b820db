/* Class lookup (a POS-like task after Han et al.): the vocabulary is split
 * into C classes of M tokens; x is L tokens holding at least one token of
 * every class (like a sentence holding every part of speech); task class_<c>
 * answers the first token of x that belongs to class c. */
#include <math.h>
#include "error.h"
#include "task_internal.h"

#define MAX_LEN 64

static const task_option options[] = {
    {"C", 4, 2, 26, 1},      /* classes = tasks */
    {"M", 4, 1, 100, 1},     /* tokens per class */
    {"L", 6, 2, MAX_LEN, 1}, /* tokens per input, >= C */
    {"n", 8, 0, 100000, 1},  /* examples per prompt */
};

static int per_class(const icl_task_family *f) { return task_opt_int(f, "M"); }

static icl_status setup(icl_task_family *f) {
    const int C = task_opt_int(f, "C"), M = per_class(f), L = task_opt_int(f, "L");
    if (L < C)
        return icl_fail(ICL_ERR_CONFIG, "class_lookup: option L=%d is less than C=%d (every class must occur)", L, C);
    f->input_len = L;
    f->answer_len = 1;
    f->default_examples = task_opt_int(f, "n");
    f->n_inputs = pow((double)C * M, L); /* an upper bound; only compared with the number of examples */
    ICL_TRY(task_set_tasks(f, C));
    for (int c = 0; c < C; c++)
        task_name_task(f, c, "class_%c", 'A' + c);
    ICL_TRY(task_set_vocab(f, C * M));
    for (int c = 0; c < C; c++)
        for (int m = 0; m < M; m++)
            task_name_token(f, ICL_TOKEN_FIRST_CONTENT + c * M + m, "%c%d", 'A' + c, m);
    return ICL_OK;
}

/* Classes per position: each class once, the rest uniform, then shuffled. */
static void draw_input(const icl_task_family *f, icl_rng *rng, int32_t *x) {
    const int C = f->n_tasks, M = per_class(f), L = f->input_len;
    int cls[MAX_LEN];
    for (int i = 0; i < L; i++)
        cls[i] = i < C ? i : (int)icl_rng_below(rng, (uint32_t)C);
    icl_rng_shuffle_int(rng, cls, L);
    for (int i = 0; i < L; i++)
        x[i] = ICL_TOKEN_FIRST_CONTENT + cls[i] * M + (int)icl_rng_below(rng, (uint32_t)M);
}

static void answer(const icl_task_family *f, int task, const int32_t *x, icl_rng *rng, int32_t *y) {
    (void)rng;
    const int M = per_class(f);
    for (int i = 0; i < f->input_len; i++)
        if ((x[i] - ICL_TOKEN_FIRST_CONTENT) / M == task) {
            y[0] = x[i];
            return;
        }
    y[0] = ICL_TOKEN_DELIM; /* unreachable: draw_input puts every class in x */
}

const task_family_ops icl_task_class_lookup_ops = {TASK_TOKEN_OPS("class_lookup", options, setup, draw_input, answer)};
