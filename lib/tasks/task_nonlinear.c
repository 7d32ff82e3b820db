/* Garg et al.'s non-linear regression families over x ~ N(0, I_d):
 *   relu_net       f = sqrt(2/h) * sum_j a_j relu(W_j . x), W (h,d) and a (h) ~ N(0,1)
 *   decision_tree  a full binary tree of `depth`: node k tests x[c_k] > 0 (right) with
 *                  c_k uniform over the d coordinates; leaves ~ N(0,1). */
#include <math.h>
#include "error.h"
#include "task_internal.h"

#define MAX_DIM 1024

static icl_status setup_common(icl_task_family *f, const char *task_name) {
    f->dim = task_opt_int(f, "d");
    f->sigma = task_opt(f, "sigma");
    task_opt_default(f, "n", 5.0 * f->dim);
    f->default_examples = task_opt_int(f, "n");
    ICL_TRY(task_set_tasks(f, 1));
    task_name_task(f, 0, "%s", task_name);
    return ICL_OK;
}

/* ---- relu_net: theta = W (h,d) then a (h) ---- */

static int hidden(const icl_task_family *f) { return f->n_theta / (f->dim + 1); }

static icl_status setup_relu(icl_task_family *f) {
    ICL_TRY(setup_common(f, "relu_net"));
    f->n_theta = task_opt_int(f, "h") * (f->dim + 1);
    return ICL_OK;
}

static void draw_relu(const icl_task_family *f, int task, icl_rng *rng, double *theta) {
    (void)task;
    for (int i = 0; i < f->n_theta; i++)
        theta[i] = icl_rng_normal(rng);
}

static double eval_relu(const icl_task_family *f, int task, const double *theta, const double *x) {
    (void)task;
    const int h = hidden(f), d = f->dim;
    const double *a = theta + (size_t)h * d;
    double y = 0.0;
    for (int j = 0; j < h; j++) {
        double z = 0.0;
        for (int i = 0; i < d; i++)
            z += theta[(size_t)j * d + i] * x[i];
        if (z > 0)
            y += a[j] * z;
    }
    return y * sqrt(2.0 / h);
}

/* ---- decision_tree: theta = coordinates of the 2^depth-1 nodes, then 2^depth leaves ---- */

static int n_nodes(const icl_task_family *f) { return (f->n_theta - 1) / 2; }

static icl_status setup_tree(icl_task_family *f) {
    ICL_TRY(setup_common(f, "decision_tree"));
    f->n_theta = (2 << task_opt_int(f, "depth")) - 1;
    return ICL_OK;
}

static void draw_tree(const icl_task_family *f, int task, icl_rng *rng, double *theta) {
    (void)task;
    const int nodes = n_nodes(f);
    for (int k = 0; k < nodes; k++)
        theta[k] = icl_rng_below(rng, (uint32_t)f->dim);
    for (int k = nodes; k < f->n_theta; k++)
        theta[k] = icl_rng_normal(rng);
}

static double eval_tree(const icl_task_family *f, int task, const double *theta, const double *x) {
    (void)task;
    const int nodes = n_nodes(f);
    int k = 0;
    while (k < nodes)
        k = x[(int)theta[k]] > 0 ? 2 * k + 2 : 2 * k + 1;
    return theta[k]; /* leaves follow the nodes in the same heap order */
}

static const task_option relu_options[] = {
    {"d", 20, 1, MAX_DIM, 1},   /* input dimension */
    {"h", 100, 1, 4096, 1},     /* hidden units */
    {"sigma", 0, 0, 100, 0},    /* label noise std */
    {"n", 0, 0, 100000, 1},     /* examples per prompt; default 5d */
};

static const task_option tree_options[] = {
    {"d", 20, 1, MAX_DIM, 1},   /* input dimension */
    {"depth", 4, 1, 12, 1},     /* levels of tests */
    {"sigma", 0, 0, 100, 0},    /* label noise std */
    {"n", 0, 0, 100000, 1},     /* examples per prompt; default 5d */
};

const task_family_ops icl_task_relu_net_ops = {
    .name = "relu_net",
    .mode = ICL_MODE_VECTOR,
    .options = relu_options,
    .n_options = (int)(sizeof relu_options / sizeof relu_options[0]),
    .setup = setup_relu,
    .draw_function = draw_relu,
    .eval = eval_relu,
};

const task_family_ops icl_task_decision_tree_ops = {
    .name = "decision_tree",
    .mode = ICL_MODE_VECTOR,
    .options = tree_options,
    .n_options = (int)(sizeof tree_options / sizeof tree_options[0]),
    .setup = setup_tree,
    .draw_function = draw_tree,
    .eval = eval_tree,
};
