/* Retrieval (Xiong et al.): x is a string of L distinct symbols from an
 * alphabet of A; task ret_i answers its i-th symbol. */
#include "error.h"
#include "task_internal.h"

#define MAX_ALPHABET 1000

static const task_option options[] = {
    {"A", 16, 2, MAX_ALPHABET, 1},   /* alphabet size */
    {"L", 6, 1, 64, 1},              /* string length */
    {"tasks", 4, 1, 64, 1},          /* ret_1 .. ret_tasks */
    {"n", 8, 0, 100000, 1},          /* examples per prompt */
};

static icl_status setup(icl_task_family *f) {
    const int A = task_opt_int(f, "A"), L = task_opt_int(f, "L"), tasks = task_opt_int(f, "tasks");
    if (L > A)
        return icl_fail(ICL_ERR_CONFIG, "retrieval: option L=%d exceeds A=%d (the L symbols must be distinct)", L, A);
    if (tasks > L)
        return icl_fail(ICL_ERR_CONFIG, "retrieval: option tasks=%d exceeds L=%d (ret_i needs i <= L)", tasks, L);
    f->input_len = L;
    f->answer_len = 1;
    f->default_examples = task_opt_int(f, "n");
    f->n_inputs = 1.0;
    for (int i = 0; i < L; i++)
        f->n_inputs *= A - i;
    ICL_TRY(task_set_tasks(f, tasks));
    for (int t = 0; t < tasks; t++)
        task_name_task(f, t, "ret_%d", t + 1);
    ICL_TRY(task_set_vocab(f, A));
    for (int s = 0; s < A; s++)
        task_letter_name(f->token_names[ICL_TOKEN_FIRST_CONTENT + s], TASK_TOKEN_NAME_LEN, s, 0);
    return ICL_OK;
}

/* L distinct symbols: the first L entries of a partial Fisher-Yates shuffle. */
static void draw_input(const icl_task_family *f, icl_rng *rng, int32_t *x) {
    const int A = f->vocab_size - ICL_TOKEN_FIRST_CONTENT;
    int pool[MAX_ALPHABET];
    for (int s = 0; s < A; s++)
        pool[s] = s;
    for (int i = 0; i < f->input_len; i++) {
        int j = i + (int)icl_rng_below(rng, (uint32_t)(A - i));
        int t = pool[i];
        pool[i] = pool[j];
        pool[j] = t;
        x[i] = ICL_TOKEN_FIRST_CONTENT + pool[i];
    }
}

static void answer(const icl_task_family *f, int task, const int32_t *x, icl_rng *rng, int32_t *y) {
    (void)f;
    (void)rng;
    y[0] = x[task];
}

const task_family_ops icl_task_retrieval_ops = {TASK_TOKEN_OPS("retrieval", options, setup, draw_input, answer)};
