/* Bitwise operations (Han et al.): x = a , b with a and b written as `bits`
 * binary digits (most significant first); tasks AND NAND OR NOR XOR XNOR
 * answer the bits of a op b, and the Null task (null=1) random bits. */
#include <math.h>
#include "error.h"
#include "task_internal.h"

#define TOK_BIT(b) (ICL_TOKEN_FIRST_CONTENT + (b))
#define TOK_COMMA (ICL_TOKEN_FIRST_CONTENT + 2)

enum { AND = 0, NAND, OR, NOR, XOR, XNOR, NUL };

static const char *const names[] = {"AND", "NAND", "OR", "NOR", "XOR", "XNOR", "NULL"};

static const task_option options[] = {
    {"bits", 5, 1, 16, 1},  /* digits per operand */
    {"null", 1, 0, 1, 1},   /* 1: add the Null task */
    {"n", 4, 0, 100000, 1}, /* examples per prompt */
};

static icl_status setup(icl_task_family *f) {
    const int bits = task_opt_int(f, "bits");
    f->input_len = 2 * bits + 1;
    f->answer_len = bits;
    f->default_examples = task_opt_int(f, "n");
    f->n_inputs = ldexp(1.0, 2 * bits);
    ICL_TRY(task_set_tasks(f, task_opt_int(f, "null") ? 7 : 6));
    for (int t = 0; t < f->n_tasks; t++)
        task_name_task(f, t, "%s", names[t]);
    ICL_TRY(task_set_vocab(f, 3));
    task_name_token(f, TOK_BIT(0), "0");
    task_name_token(f, TOK_BIT(1), "1");
    task_name_token(f, TOK_COMMA, ",");
    return ICL_OK;
}

static void draw_input(const icl_task_family *f, icl_rng *rng, int32_t *x) {
    const int bits = f->answer_len;
    for (int i = 0; i < bits; i++) {
        x[i] = TOK_BIT((int)icl_rng_below(rng, 2));
        x[bits + 1 + i] = TOK_BIT((int)icl_rng_below(rng, 2));
    }
    x[bits] = TOK_COMMA;
}

static void answer(const icl_task_family *f, int task, const int32_t *x, icl_rng *rng, int32_t *y) {
    const int bits = f->answer_len;
    for (int i = 0; i < bits; i++) {
        int a = x[i] - TOK_BIT(0), b = x[bits + 1 + i] - TOK_BIT(0), v;
        switch (task) {
        case AND: v = a & b; break;
        case NAND: v = !(a & b); break;
        case OR: v = a | b; break;
        case NOR: v = !(a | b); break;
        case XOR: v = a ^ b; break;
        case XNOR: v = !(a ^ b); break;
        default: v = (int)icl_rng_below(rng, 2); break;
        }
        y[i] = TOK_BIT(v);
    }
}

const task_family_ops icl_task_bitwise_ops = {TASK_TOKEN_OPS("bitwise", options, setup, draw_input, answer)};
