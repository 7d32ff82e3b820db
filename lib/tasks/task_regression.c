/* Regression families over x ~ N(0, I_d), y = f(x) + sigma * N(0,1), with a
 * fresh function per prompt (Garg et al.; Han et al.'s regression mixture):
 *   linear        f = w.x,                     w ~ N(0, I_d)
 *   sparse_linear f = w.x, w ~ N(0, I_d) with all but s random coordinates zeroed
 *   leaky_relu    f = max(w.x, slope * w.x)
 *   quadratic     f = w.(x*x) / sqrt(3)        (the 1/sqrt(3) matches the variance of w.x)
 *   regression_mix  one task per kind above: linear, sparse_linear, leaky_relu, quadratic. */
#include <math.h>
#include <stdlib.h>
#include "error.h"
#include "task_internal.h"

#define MAX_DIM 1024

typedef enum { LINEAR = 0, SPARSE, LEAKY, QUADRATIC } kind;

static const char *const kind_names[] = {"linear", "sparse_linear", "leaky_relu", "quadratic"};

typedef struct {
    kind kinds[4]; /* by task */
    int s;
    double slope;
} regression;

static icl_status setup_kinds(icl_task_family *f, const kind *kinds, int n_kinds) {
    regression *g = calloc(1, sizeof *g);
    if (!g)
        return icl_fail(ICL_ERR_NOMEM, "%s: out of memory", f->name);
    f->data = g;
    f->dim = task_opt_int(f, "d");
    f->n_theta = f->dim;
    f->sigma = task_opt(f, "sigma");
    task_opt_default(f, "n", 2.0 * f->dim);
    f->default_examples = task_opt_int(f, "n");
    task_opt_default(f, "s", f->dim < 3 ? f->dim : 3);
    g->s = task_opt_int(f, "s"); /* 0 for families without the option */
    g->slope = task_opt(f, "slope");
    if (g->s > f->dim)
        return icl_fail(ICL_ERR_CONFIG, "%s: option s=%d exceeds d=%d", f->name, g->s, f->dim);
    ICL_TRY(task_set_tasks(f, n_kinds));
    for (int t = 0; t < n_kinds; t++) {
        g->kinds[t] = kinds[t];
        task_name_task(f, t, "%s", kind_names[kinds[t]]);
    }
    return ICL_OK;
}

static void destroy(icl_task_family *f) { free(f->data); }

static void draw_function(const icl_task_family *f, int task, icl_rng *rng, double *w) {
    const regression *g = f->data;
    const int d = f->dim;
    for (int i = 0; i < d; i++)
        w[i] = icl_rng_normal(rng);
    if (g->kinds[task] != SPARSE)
        return;
    /* Keep s coordinates chosen by a partial Fisher-Yates shuffle. */
    int idx[MAX_DIM];
    for (int i = 0; i < d; i++)
        idx[i] = i;
    for (int i = 0; i < g->s; i++) {
        int j = i + (int)icl_rng_below(rng, (uint32_t)(d - i));
        int t = idx[i];
        idx[i] = idx[j];
        idx[j] = t;
    }
    for (int i = g->s; i < d; i++)
        w[idx[i]] = 0.0;
}

static double eval(const icl_task_family *f, int task, const double *w, const double *x) {
    const regression *g = f->data;
    double z = 0.0;
    if (g->kinds[task] == QUADRATIC) {
        for (int i = 0; i < f->dim; i++)
            z += w[i] * x[i] * x[i];
        return z / sqrt(3.0);
    }
    for (int i = 0; i < f->dim; i++)
        z += w[i] * x[i];
    return g->kinds[task] == LEAKY && z < 0 ? g->slope * z : z;
}

#define OPT_D {"d", 20, 1, MAX_DIM, 1}          /* input dimension */
#define OPT_SIGMA {"sigma", 0, 0, 100, 0}       /* label noise std */
#define OPT_N {"n", 0, 0, 100000, 1}            /* examples per prompt; default 2d */
#define OPT_S {"s", 3, 1, MAX_DIM, 1}           /* non-zero weights (sparse_linear); default min(3, d) */
#define OPT_SLOPE {"slope", 0.1, 0, 1, 0}       /* negative-side slope (leaky_relu) */

static const task_option linear_options[] = {OPT_D, OPT_SIGMA, OPT_N};
static const task_option sparse_options[] = {OPT_D, OPT_S, OPT_SIGMA, OPT_N};
static const task_option leaky_options[] = {OPT_D, OPT_SLOPE, OPT_SIGMA, OPT_N};
static const task_option mix_options[] = {OPT_D, OPT_S, OPT_SLOPE, OPT_SIGMA, OPT_N};

static icl_status setup_linear(icl_task_family *f) { return setup_kinds(f, (const kind[]){LINEAR}, 1); }
static icl_status setup_sparse(icl_task_family *f) { return setup_kinds(f, (const kind[]){SPARSE}, 1); }
static icl_status setup_leaky(icl_task_family *f) { return setup_kinds(f, (const kind[]){LEAKY}, 1); }
static icl_status setup_quadratic(icl_task_family *f) { return setup_kinds(f, (const kind[]){QUADRATIC}, 1); }
static icl_status setup_mix(icl_task_family *f) {
    return setup_kinds(f, (const kind[]){LINEAR, SPARSE, LEAKY, QUADRATIC}, 4);
}

#define REGRESSION_OPS(var, family, opts, setup_fn)          \
    const task_family_ops var = {                            \
        .name = family,                                      \
        .mode = ICL_MODE_VECTOR,                             \
        .options = opts,                                     \
        .n_options = (int)(sizeof opts / sizeof opts[0]),    \
        .setup = setup_fn,                                   \
        .destroy = destroy,                                  \
        .draw_function = draw_function,                      \
        .eval = eval,                                        \
    }

REGRESSION_OPS(icl_task_linear_ops, "linear", linear_options, setup_linear);
REGRESSION_OPS(icl_task_sparse_linear_ops, "sparse_linear", sparse_options, setup_sparse);
REGRESSION_OPS(icl_task_leaky_relu_ops, "leaky_relu", leaky_options, setup_leaky);
REGRESSION_OPS(icl_task_quadratic_ops, "quadratic", linear_options, setup_quadratic);
REGRESSION_OPS(icl_task_regression_mix_ops, "regression_mix", mix_options, setup_mix);
