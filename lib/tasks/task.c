/* Task families: the registry, spec parsing ("name:key=value,..."), family
 * queries and the helpers family files use to name their tasks and tokens. */
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "error.h"
#include "task_internal.h"

static const task_family_ops *const families[] = {
    &icl_task_retrieval_ops,     &icl_task_two_operand_ops,  &icl_task_translation_ops,
    &icl_task_first_last_ops,    &icl_task_bitwise_ops,      &icl_task_class_lookup_ops,
    &icl_task_linear_ops,        &icl_task_sparse_linear_ops, &icl_task_quadratic_ops,
    &icl_task_leaky_relu_ops,    &icl_task_regression_mix_ops, &icl_task_basis_mixture_ops,
    &icl_task_relu_net_ops,      &icl_task_decision_tree_ops,
};
#define N_FAMILIES ((int)(sizeof families / sizeof families[0]))

/* A preset is a family with other defaults; options after it still apply. */
static const struct {
    const char *name, *family, *options;
} presets[] = {
    {"basis_mixture_small", "basis_mixture", "D=8,k=4,r=2,K=12"},
    {"basis_mixture_overlap", "basis_mixture", "D=16,k=8,r=4,groups=2"},
    {"linear_toy", "linear", "d=5,n=10"},
};
#define N_PRESETS ((int)(sizeof presets / sizeof presets[0]))

int icl_task_registry_count(void) { return N_FAMILIES + N_PRESETS; }

const char *icl_task_registry_name(int i) {
    if (i >= 0 && i < N_FAMILIES)
        return families[i]->name;
    if (i >= N_FAMILIES && i < N_FAMILIES + N_PRESETS)
        return presets[i - N_FAMILIES].name;
    return NULL;
}

static int option_index(const task_family_ops *ops, const char *key, size_t key_len) {
    for (int i = 0; i < ops->n_options; i++)
        if (strlen(ops->options[i].key) == key_len && strncmp(ops->options[i].key, key, key_len) == 0)
            return i;
    return -1;
}

static int find_option(const icl_task_family *f, const char *key) {
    return option_index(f->ops, key, strlen(key));
}

double task_opt(const icl_task_family *f, const char *key) {
    int i = find_option(f, key);
    return i < 0 ? 0.0 : f->opt[i];
}

int task_opt_int(const icl_task_family *f, const char *key) { return (int)task_opt(f, key); }

int task_opt_given(const icl_task_family *f, const char *key) {
    int i = find_option(f, key);
    return i >= 0 && f->opt_set[i];
}

void task_opt_default(icl_task_family *f, const char *key, double value) {
    int i = find_option(f, key);
    if (i >= 0 && !f->opt_set[i])
        f->opt[i] = value;
}

/* Apply "k=v,k=v" (len bytes of opts) to f. opt_set becomes 1 for preset
 * options and 2 for the caller's (`user`), which may not repeat. */
static icl_status apply_options(icl_task_family *f, const char *spec, const char *opts, size_t len, int user) {
    const char *p = opts, *end = opts + len;
    while (p < end) {
        const char *comma = memchr(p, ',', (size_t)(end - p));
        const char *item_end = comma ? comma : end;
        const char *eq = memchr(p, '=', (size_t)(item_end - p));
        if (item_end == p || !eq || eq == p)
            return icl_fail(ICL_ERR_INVALID_ARG, "task spec \"%s\": expected key=value, got \"%.*s\"", spec,
                            (int)(item_end - p), p);
        int idx = option_index(f->ops, p, (size_t)(eq - p));
        if (idx < 0) {
            char known[160] = "";
            for (int i = 0; i < f->ops->n_options; i++) {
                strncat(known, i ? ", " : "", sizeof known - strlen(known) - 1);
                strncat(known, f->ops->options[i].key, sizeof known - strlen(known) - 1);
            }
            return icl_fail(ICL_ERR_INVALID_ARG, "task spec \"%s\": unknown option \"%.*s\" for family %s (options: %s)",
                            spec, (int)(eq - p), p, f->ops->name, known);
        }
        const task_option *o = &f->ops->options[idx];
        if (user && f->opt_set[idx] == 2)
            return icl_fail(ICL_ERR_INVALID_ARG, "task spec \"%s\": option %s given twice", spec, o->key);
        char val[64];
        size_t vlen = (size_t)(item_end - eq - 1);
        if (vlen == 0 || vlen >= sizeof val)
            return icl_fail(ICL_ERR_INVALID_ARG, "task spec \"%s\": option %s has no usable value", spec, o->key);
        memcpy(val, eq + 1, vlen);
        val[vlen] = '\0';
        char *stop;
        double v = strtod(val, &stop);
        if (*stop != '\0' || !isfinite(v))
            return icl_fail(ICL_ERR_INVALID_ARG, "task spec \"%s\": option %s=%s is not a number", spec, o->key, val);
        if (o->integer && v != floor(v))
            return icl_fail(ICL_ERR_INVALID_ARG, "task spec \"%s\": option %s=%s must be an integer", spec, o->key, val);
        if (v < o->min || v > o->max)
            return icl_fail(ICL_ERR_CONFIG, "task spec \"%s\": option %s=%s is outside [%g, %g]", spec, o->key, val,
                            o->min, o->max);
        f->opt[idx] = v;
        f->opt_set[idx] = user ? 2 : 1;
        p = comma ? comma + 1 : end;
        if (comma && p == end)
            return icl_fail(ICL_ERR_INVALID_ARG, "task spec \"%s\": trailing comma", spec);
    }
    return ICL_OK;
}

static icl_status build_spec(icl_task_family *f) {
    size_t used = (size_t)snprintf(f->spec, sizeof f->spec, "%s", f->ops->name);
    for (int i = 0; i < f->ops->n_options && used < sizeof f->spec; i++)
        used += (size_t)snprintf(f->spec + used, sizeof f->spec - used, "%c%s=%.10g", i ? ',' : ':',
                                 f->ops->options[i].key, f->opt[i]);
    if (used >= sizeof f->spec)
        return icl_fail(ICL_ERR_INVALID_ARG, "task spec of family %s is too long", f->ops->name);
    return ICL_OK;
}

static icl_status family_init(icl_task_family *f, const char *spec) {
    const char *colon = strchr(spec, ':');
    size_t name_len = colon ? (size_t)(colon - spec) : strlen(spec);
    const char *preset_opts = NULL;
    const task_family_ops *ops = NULL;
    for (int i = 0; i < N_PRESETS && !ops; i++)
        if (strlen(presets[i].name) == name_len && strncmp(presets[i].name, spec, name_len) == 0) {
            preset_opts = presets[i].options;
            for (int j = 0; j < N_FAMILIES; j++)
                if (strcmp(families[j]->name, presets[i].family) == 0)
                    ops = families[j];
        }
    for (int i = 0; i < N_FAMILIES && !ops; i++)
        if (strlen(families[i]->name) == name_len && strncmp(families[i]->name, spec, name_len) == 0)
            ops = families[i];
    if (!ops) {
        char known[512] = "";
        for (int i = 0; i < icl_task_registry_count(); i++) {
            strncat(known, i ? ", " : "", sizeof known - strlen(known) - 1);
            strncat(known, icl_task_registry_name(i), sizeof known - strlen(known) - 1);
        }
        return icl_fail(ICL_ERR_INVALID_ARG, "task spec \"%s\": unknown family \"%.*s\" (known: %s)", spec,
                        (int)name_len, spec, known);
    }
    f->ops = ops;
    snprintf(f->name, sizeof f->name, "%s", ops->name);
    for (int i = 0; i < ops->n_options; i++)
        f->opt[i] = ops->options[i].def;
    if (preset_opts)
        ICL_TRY(apply_options(f, spec, preset_opts, strlen(preset_opts), 0));
    if (colon && colon[1] == '\0')
        return icl_fail(ICL_ERR_INVALID_ARG, "task spec \"%s\": expected key=value after ':'", spec);
    if (colon)
        ICL_TRY(apply_options(f, spec, colon + 1, strlen(colon + 1), 1));
    f->input_len = f->answer_len = 1;
    f->n_inputs = HUGE_VAL;
    ICL_TRY(ops->setup(f));
    return build_spec(f);
}

icl_status icl_task_family_create(icl_task_family **out, const char *spec) {
    if (!out || !spec)
        return icl_fail(ICL_ERR_INVALID_ARG, "icl_task_family_create: NULL argument");
    *out = NULL;
    icl_task_family *f = calloc(1, sizeof *f);
    if (!f)
        return icl_fail(ICL_ERR_NOMEM, "icl_task_family_create: out of memory");
    icl_status s = family_init(f, spec);
    if (s != ICL_OK) {
        icl_task_family_free(f);
        return s;
    }
    *out = f;
    return ICL_OK;
}

void icl_task_family_free(icl_task_family *f) {
    if (!f)
        return;
    if (f->ops && f->ops->destroy)
        f->ops->destroy(f);
    free(f->task_names);
    free(f->token_names);
    free(f);
}

const char *icl_task_family_name(const icl_task_family *f) { return f ? f->name : NULL; }
const char *icl_task_family_spec(const icl_task_family *f) { return f ? f->spec : NULL; }
icl_input_mode icl_task_family_mode(const icl_task_family *f) { return f ? f->ops->mode : ICL_MODE_TOKEN; }
int icl_task_family_num_tasks(const icl_task_family *f) { return f ? f->n_tasks : 0; }

const char *icl_task_family_task_name(const icl_task_family *f, int task) {
    return f && task >= 0 && task < f->n_tasks ? f->task_names[task] : NULL;
}

static icl_status unknown_task(const icl_task_family *f, const char *name, size_t len) {
    char known[512] = "";
    for (int i = 0; i < f->n_tasks; i++) {
        strncat(known, i ? ", " : "", sizeof known - strlen(known) - 1);
        strncat(known, f->task_names[i], sizeof known - strlen(known) - 1);
    }
    return icl_fail(ICL_ERR_INVALID_ARG, "unknown task \"%.*s\" in family %s (tasks: %s)", (int)len, name, f->name,
                    known);
}

static int task_index(const icl_task_family *f, const char *name, size_t len) {
    for (int i = 0; i < f->n_tasks; i++)
        if (strlen(f->task_names[i]) == len && strncmp(f->task_names[i], name, len) == 0)
            return i;
    return -1;
}

icl_status icl_task_family_find_task(const icl_task_family *f, const char *name, int *task) {
    if (!f || !name || !task)
        return icl_fail(ICL_ERR_INVALID_ARG, "icl_task_family_find_task: NULL argument");
    *task = task_index(f, name, strlen(name));
    return *task < 0 ? unknown_task(f, name, strlen(name)) : ICL_OK;
}

icl_status icl_task_family_parse_tasks(const icl_task_family *f, const char *list, int *ids, int cap, int *n) {
    if (!f || !list || !ids || !n)
        return icl_fail(ICL_ERR_INVALID_ARG, "icl_task_family_parse_tasks: NULL argument");
    if (cap <= 0)
        return icl_fail(ICL_ERR_INVALID_ARG, "icl_task_family_parse_tasks: cap must be positive, got %d", cap);
    *n = 0;
    const char *p = list;
    for (;;) {
        const char *comma = strchr(p, ',');
        size_t len = comma ? (size_t)(comma - p) : strlen(p);
        if (len == 0)
            return icl_fail(ICL_ERR_INVALID_ARG, "task list \"%s\": empty task name", list);
        int id = task_index(f, p, len);
        if (id < 0)
            return unknown_task(f, p, len);
        for (int i = 0; i < *n; i++)
            if (ids[i] == id)
                return icl_fail(ICL_ERR_INVALID_ARG, "task list \"%s\": task %s given twice", list, f->task_names[id]);
        if (*n == cap)
            return icl_fail(ICL_ERR_INVALID_ARG, "task list \"%s\": more than %d tasks", list, cap);
        ids[(*n)++] = id;
        if (!comma)
            return ICL_OK;
        p = comma + 1;
    }
}

int icl_task_family_vocab_size(const icl_task_family *f) { return f ? f->vocab_size : 0; }

const char *icl_task_family_token_name(const icl_task_family *f, int token) {
    return f && token >= 0 && token < f->vocab_size ? f->token_names[token] : NULL;
}

int icl_task_family_input_len(const icl_task_family *f) { return f ? f->input_len : 0; }
int icl_task_family_answer_len(const icl_task_family *f) { return f ? f->answer_len : 0; }

int icl_task_family_d_in(const icl_task_family *f) {
    return f && f->ops->mode == ICL_MODE_VECTOR ? f->dim + 1 : 0;
}

int icl_task_family_d_out(const icl_task_family *f) { return f && f->ops->mode == ICL_MODE_VECTOR ? 1 : 0; }
int icl_task_family_dim(const icl_task_family *f) { return f && f->ops->mode == ICL_MODE_VECTOR ? f->dim : 0; }
int icl_task_family_default_examples(const icl_task_family *f) { return f ? f->default_examples : 0; }

icl_status icl_task_family_prompt_len(const icl_task_family *f, int n_examples, int *T) {
    if (!f || !T)
        return icl_fail(ICL_ERR_INVALID_ARG, "icl_task_family_prompt_len: NULL argument");
    if (n_examples < 0)
        return icl_fail(ICL_ERR_INVALID_ARG, "icl_task_family_prompt_len: n_examples must be >= 0, got %d",
                        n_examples);
    long per = f->ops->mode == ICL_MODE_TOKEN ? f->input_len + f->answer_len + 2 : 2;
    long len = ((long)n_examples + 1) * per;
    if (len > 1L << 30)
        return icl_fail(ICL_ERR_CONFIG, "prompt of %d examples is too long (%ld positions)", n_examples, len);
    *T = (int)len;
    return ICL_OK;
}

icl_status icl_task_family_fill_config(const icl_task_family *f, icl_config *cfg) {
    if (!f || !cfg)
        return icl_fail(ICL_ERR_INVALID_ARG, "icl_task_family_fill_config: NULL argument");
    cfg->mode = f->ops->mode;
    if (f->ops->mode == ICL_MODE_TOKEN) {
        cfg->vocab_size = f->vocab_size;
    } else {
        cfg->d_in = f->dim + 1;
        cfg->d_out = 1;
    }
    return ICL_OK;
}

icl_status icl_task_family_basis(const icl_task_family *f, int task, int *coords, int cap, int *r) {
    if (!f || !coords || !r)
        return icl_fail(ICL_ERR_INVALID_ARG, "icl_task_family_basis: NULL argument");
    if (task < 0 || task >= f->n_tasks)
        return icl_fail(ICL_ERR_INVALID_ARG, "icl_task_family_basis: task %d outside [0, %d)", task, f->n_tasks);
    if (!f->ops->basis)
        return icl_fail(ICL_ERR_UNSUPPORTED, "family %s has no fixed bases", f->name);
    return f->ops->basis(f, task, coords, cap, r);
}

/* ---- helpers for the family files ---- */

icl_status task_set_tasks(icl_task_family *f, int n) {
    f->task_names = calloc((size_t)n, sizeof *f->task_names);
    if (!f->task_names)
        return icl_fail(ICL_ERR_NOMEM, "family %s: out of memory", f->name);
    f->n_tasks = n;
    return ICL_OK;
}

void task_name_task(icl_task_family *f, int task, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(f->task_names[task], TASK_NAME_LEN, fmt, ap);
    va_end(ap);
}

icl_status task_set_vocab(icl_task_family *f, int n_content) {
    f->vocab_size = ICL_TOKEN_FIRST_CONTENT + n_content;
    f->token_names = calloc((size_t)f->vocab_size, sizeof *f->token_names);
    if (!f->token_names)
        return icl_fail(ICL_ERR_NOMEM, "family %s: out of memory", f->name);
    task_name_token(f, ICL_TOKEN_BOS, "<bos>");
    task_name_token(f, ICL_TOKEN_SEP, "->");
    task_name_token(f, ICL_TOKEN_DELIM, "|");
    return ICL_OK;
}

void task_name_token(icl_task_family *f, int token, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(f->token_names[token], TASK_TOKEN_NAME_LEN, fmt, ap);
    va_end(ap);
}

void task_letter_name(char *buf, size_t size, int i, int upper) {
    if (i < 26)
        snprintf(buf, size, "%c", (upper ? 'A' : 'a') + i);
    else
        snprintf(buf, size, "%c%d", upper ? 'A' : 'a', i);
}
