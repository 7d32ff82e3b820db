/* First / last symbol (after Xiong et al.'s word task): x is a string of L
 * symbols of a lower-case alphabet of A, with its first and last symbols
 * different so the tasks disagree; tasks answer the first or the last
 * symbol, and (case=1) the same symbol in a second, upper-case alphabet. */
#include <math.h>
#include "error.h"
#include "task_internal.h"

static const task_option options[] = {
    {"A", 16, 2, 500, 1},   /* alphabet size */
    {"L", 5, 2, 64, 1},     /* string length */
    {"case", 1, 0, 1, 1},   /* 1: add first_upper and last_upper */
    {"n", 8, 0, 100000, 1}, /* examples per prompt */
};

enum { FIRST = 0, LAST, FIRST_UPPER, LAST_UPPER };

static int alphabet(const icl_task_family *f) { return task_opt_int(f, "A"); }

static icl_status setup(icl_task_family *f) {
    const int A = alphabet(f), L = task_opt_int(f, "L"), upper = task_opt_int(f, "case");
    f->input_len = L;
    f->answer_len = 1;
    f->default_examples = task_opt_int(f, "n");
    f->n_inputs = pow(A, L - 1) * (A - 1);
    ICL_TRY(task_set_tasks(f, upper ? 4 : 2));
    task_name_task(f, FIRST, "first");
    task_name_task(f, LAST, "last");
    if (upper) {
        task_name_task(f, FIRST_UPPER, "first_upper");
        task_name_task(f, LAST_UPPER, "last_upper");
    }
    ICL_TRY(task_set_vocab(f, upper ? 2 * A : A));
    for (int s = 0; s < A; s++) {
        task_letter_name(f->token_names[ICL_TOKEN_FIRST_CONTENT + s], TASK_TOKEN_NAME_LEN, s, 0);
        if (upper)
            task_letter_name(f->token_names[ICL_TOKEN_FIRST_CONTENT + A + s], TASK_TOKEN_NAME_LEN, s, 1);
    }
    return ICL_OK;
}

static void draw_input(const icl_task_family *f, icl_rng *rng, int32_t *x) {
    const int A = alphabet(f), L = f->input_len;
    for (int i = 0; i < L - 1; i++)
        x[i] = ICL_TOKEN_FIRST_CONTENT + (int)icl_rng_below(rng, (uint32_t)A);
    /* Last symbol from the A-1 symbols other than the first. */
    int s = (int)icl_rng_below(rng, (uint32_t)(A - 1));
    int first = x[0] - ICL_TOKEN_FIRST_CONTENT;
    x[L - 1] = ICL_TOKEN_FIRST_CONTENT + (s >= first ? s + 1 : s);
}

static void answer(const icl_task_family *f, int task, const int32_t *x, icl_rng *rng, int32_t *y) {
    (void)rng;
    int lower = task == FIRST || task == FIRST_UPPER ? x[0] : x[f->input_len - 1];
    y[0] = task >= FIRST_UPPER ? lower + alphabet(f) : lower;
}

const task_family_ops icl_task_first_last_ops = {TASK_TOKEN_OPS("first_last", options, setup, draw_input, answer)};
