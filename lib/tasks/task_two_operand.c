/* Two operands (Xiong et al.'s "A@B"): x = a1 a0 @ b1 b0 with a, b in
 * [10, 99]; tasks copy the first operand, copy the second, or add them.
 * Every answer is three digits, zero-padded on the left (57 -> 0 5 7,
 * 57 + 68 -> 1 2 5), so all tasks have the same length. */
#include "error.h"
#include "task_internal.h"

#define TOK_DIGIT(d) (ICL_TOKEN_FIRST_CONTENT + (d))
#define TOK_AT (ICL_TOKEN_FIRST_CONTENT + 10)

enum { FIRST = 0, SECOND, SUM };

static const task_option options[] = {
    {"n", 8, 0, 100000, 1}, /* examples per prompt */
};

static icl_status setup(icl_task_family *f) {
    f->input_len = 5;
    f->answer_len = 3;
    f->default_examples = task_opt_int(f, "n");
    f->n_inputs = 90.0 * 90.0;
    ICL_TRY(task_set_tasks(f, 3));
    task_name_task(f, FIRST, "first");
    task_name_task(f, SECOND, "second");
    task_name_task(f, SUM, "sum");
    ICL_TRY(task_set_vocab(f, 11));
    for (int d = 0; d < 10; d++)
        task_name_token(f, TOK_DIGIT(d), "%d", d);
    task_name_token(f, TOK_AT, "@");
    return ICL_OK;
}

static void draw_input(const icl_task_family *f, icl_rng *rng, int32_t *x) {
    (void)f;
    int a = 10 + (int)icl_rng_below(rng, 90), b = 10 + (int)icl_rng_below(rng, 90);
    x[0] = TOK_DIGIT(a / 10);
    x[1] = TOK_DIGIT(a % 10);
    x[2] = TOK_AT;
    x[3] = TOK_DIGIT(b / 10);
    x[4] = TOK_DIGIT(b % 10);
}

static void answer(const icl_task_family *f, int task, const int32_t *x, icl_rng *rng, int32_t *y) {
    (void)f;
    (void)rng;
    int a = (x[0] - TOK_DIGIT(0)) * 10 + (x[1] - TOK_DIGIT(0));
    int b = (x[3] - TOK_DIGIT(0)) * 10 + (x[4] - TOK_DIGIT(0));
    int v = task == FIRST ? a : task == SECOND ? b : a + b;
    y[0] = TOK_DIGIT(v / 100);
    y[1] = TOK_DIGIT(v / 10 % 10);
    y[2] = TOK_DIGIT(v % 10);
}

const task_family_ops icl_task_two_operand_ops = {TASK_TOKEN_OPS("two_operand", options, setup, draw_input, answer)};
