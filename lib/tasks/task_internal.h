/* Internal: the task family vtable and the helpers families use to describe
 * themselves. lib/task.c owns spec parsing, prompt assembly and batching; a
 * family file (lib/task_<family>.c) only says how to draw inputs and answers. */
#ifndef ICL_LIB_TASK_INTERNAL_H
#define ICL_LIB_TASK_INTERNAL_H

#include "icl/task.h"

#define TASK_MAX_OPTIONS 12
#define TASK_NAME_LEN 24
#define TASK_TOKEN_NAME_LEN 12

/* One spec option. Integer options must hold whole numbers. */
typedef struct {
    const char *key;
    double def;
    double min, max;
    int integer;
} task_option;

typedef struct task_family_ops task_family_ops;

struct icl_task_family {
    const task_family_ops *ops;
    char name[TASK_NAME_LEN];
    char spec[256];
    double opt[TASK_MAX_OPTIONS]; /* option values in ops->options order */
    int opt_set[TASK_MAX_OPTIONS]; /* 0: default, 1: set by a preset, 2: set by the spec */
    int n_tasks;
    char (*task_names)[TASK_NAME_LEN];
    int vocab_size;
    char (*token_names)[TASK_TOKEN_NAME_LEN];
    int input_len, answer_len; /* token mode; 1, 1 in vector mode */
    int dim;                   /* vector mode: D */
    int n_theta;               /* vector mode: doubles describing one drawn function */
    double sigma;              /* vector mode: std of the additive label noise */
    int default_examples;
    double n_inputs;           /* distinct token inputs (HUGE_VAL if too many to matter) */
    void *data;                /* family-specific, freed by ops->destroy */
};

struct task_family_ops {
    const char *name;
    icl_input_mode mode;
    const task_option *options;
    int n_options;
    /* Check f->opt, then fill tasks, vocabulary and sizes (task_set_* helpers). */
    icl_status (*setup)(icl_task_family *f);
    void (*destroy)(icl_task_family *f); /* nullable: frees f->data */
    /* Token mode. draw_input must not depend on the task, so one query input
     * is valid for every task of a mixed prompt. x (input_len), y (answer_len). */
    void (*draw_input)(const icl_task_family *f, icl_rng *rng, int32_t *x);
    void (*answer)(const icl_task_family *f, int task, const int32_t *x, icl_rng *rng, int32_t *y);
    /* Vector mode: draw a function theta (n_theta) of task `task`; evaluate it
     * at x (dim) without noise. */
    void (*draw_function)(const icl_task_family *f, int task, icl_rng *rng, double *theta);
    double (*eval)(const icl_task_family *f, int task, const double *theta, const double *x);
    /* Nullable: the coordinates of a basis (basis_mixture). */
    icl_status (*basis)(const icl_task_family *f, int task, int *coords, int cap, int *r);
};

/* The fields every token family's ops table sets: its name, the token mode,
 * its option table (and count) and its three functions. A family that has a
 * nullable function (destroy) sets it after these. */
#define TASK_TOKEN_OPS(name_, options_, setup_, draw_input_, answer_)                                            \
    .name = (name_), .mode = ICL_MODE_TOKEN, .options = (options_),                                              \
    .n_options = (int)(sizeof(options_) / sizeof((options_)[0])), .setup = (setup_), .draw_input = (draw_input_), \
    .answer = (answer_)

/* Option value by key (the key must exist in the family's table). */
double task_opt(const icl_task_family *f, const char *key);
int task_opt_int(const icl_task_family *f, const char *key);
int task_opt_given(const icl_task_family *f, const char *key);
/* Set an option the spec did not give (a default derived from other options). */
void task_opt_default(icl_task_family *f, const char *key, double value);

/* Allocate n task names / a vocabulary of n_content content tokens (specials
 * are named by the helper); names are then set with the printf-style setters. */
icl_status task_set_tasks(icl_task_family *f, int n);
void task_name_task(icl_task_family *f, int task, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
icl_status task_set_vocab(icl_task_family *f, int n_content);
void task_name_token(icl_task_family *f, int token, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

/* Name of symbol i of a letter alphabet: "a".."z" then "a26", ... (upper: "A".."Z"). */
void task_letter_name(char *buf, size_t size, int i, int upper);

/* Registered families (lib/task_<family>.c). */
extern const task_family_ops icl_task_retrieval_ops;
extern const task_family_ops icl_task_two_operand_ops;
extern const task_family_ops icl_task_translation_ops;
extern const task_family_ops icl_task_first_last_ops;
extern const task_family_ops icl_task_bitwise_ops;
extern const task_family_ops icl_task_class_lookup_ops;
extern const task_family_ops icl_task_linear_ops;
extern const task_family_ops icl_task_sparse_linear_ops;
extern const task_family_ops icl_task_quadratic_ops;
extern const task_family_ops icl_task_leaky_relu_ops;
extern const task_family_ops icl_task_regression_mix_ops;
extern const task_family_ops icl_task_basis_mixture_ops;
extern const task_family_ops icl_task_relu_net_ops;
extern const task_family_ops icl_task_decision_tree_ops;

#endif
