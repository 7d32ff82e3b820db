/* Mixture of sparse-regression bases (Han et al.): x ~ N(0, I_D); each task
 * is a basis of r input coordinates; a prompt draws w ~ N(0, I_r) and
 * y = sum_i w_i x[coord_i] + sigma * N(0,1).
 *   groups=0 (orthogonal): basis j uses coordinates [j r, (j+1) r); needs k r <= D.
 *   groups=G (overlapping): the D coordinates form G blocks of w = D/G; the
 *     m = k/G bases of a block use the r coordinates starting at q*(w/m)
 *     (q = 0..m-1), wrapping around the block. Han's D=16, k=8, r=4, groups=2
 *     gives bases {0-3}, {2-5}, {4-7}, {6,7,0,1} in block 0 and so on. */
#include <stdlib.h>
#include "error.h"
#include "task_internal.h"

typedef struct {
    int r;
    int *coords; /* (k, r) */
} basis_mixture;

static const task_option options[] = {
    {"D", 16, 1, 1024, 1},     /* input dimension */
    {"k", 4, 1, 64, 1},        /* bases = tasks */
    {"r", 4, 1, 1024, 1},      /* coordinates per basis */
    {"K", 20, 0, 100000, 1},   /* examples per prompt */
    {"sigma", 0.1, 0, 100, 0}, /* label noise std */
    {"groups", 0, 0, 64, 1},   /* 0: orthogonal bases; G: overlapping within G blocks */
};

static icl_status place_bases(basis_mixture *bm, int D, int k, int r, int G) {
    if (G == 0) {
        if (k * r > D)
            return icl_fail(ICL_ERR_CONFIG,
                            "basis_mixture: k*r = %d*%d exceeds D=%d (orthogonal bases need disjoint coordinates; "
                            "groups=G allows overlap)", k, r, D);
        for (int j = 0; j < k; j++)
            for (int i = 0; i < r; i++)
                bm->coords[j * r + i] = j * r + i;
        return ICL_OK;
    }
    const int w = D / G, m = k / G;
    if (k % G || D % G)
        return icl_fail(ICL_ERR_CONFIG, "basis_mixture: option groups=%d must divide k=%d and D=%d", G, k, D);
    if (r > w || (m > 1 && r == w) || w < m)
        return icl_fail(ICL_ERR_CONFIG,
                        "basis_mixture: blocks of D/groups=%d coordinates cannot hold %d distinct bases of r=%d", w, m,
                        r);
    for (int j = 0; j < k; j++) {
        int block = j / m, q = j % m;
        for (int i = 0; i < r; i++)
            bm->coords[j * r + i] = block * w + (q * (w / m) + i) % w;
    }
    return ICL_OK;
}

static icl_status setup(icl_task_family *f) {
    basis_mixture *bm = calloc(1, sizeof *bm);
    if (!bm)
        return icl_fail(ICL_ERR_NOMEM, "basis_mixture: out of memory");
    f->data = bm;
    const int D = task_opt_int(f, "D"), k = task_opt_int(f, "k"), r = task_opt_int(f, "r");
    bm->r = r;
    bm->coords = malloc((size_t)k * r * sizeof *bm->coords);
    if (!bm->coords)
        return icl_fail(ICL_ERR_NOMEM, "basis_mixture: out of memory");
    ICL_TRY(place_bases(bm, D, k, r, task_opt_int(f, "groups")));
    f->dim = D;
    f->n_theta = r;
    f->sigma = task_opt(f, "sigma");
    f->default_examples = task_opt_int(f, "K");
    ICL_TRY(task_set_tasks(f, k));
    for (int j = 0; j < k; j++)
        task_name_task(f, j, "basis_%d", j);
    return ICL_OK;
}

static void destroy(icl_task_family *f) {
    basis_mixture *bm = f->data;
    if (bm)
        free(bm->coords);
    free(bm);
}

static void draw_function(const icl_task_family *f, int task, icl_rng *rng, double *w) {
    (void)task;
    for (int i = 0; i < f->n_theta; i++)
        w[i] = icl_rng_normal(rng);
}

static double eval(const icl_task_family *f, int task, const double *w, const double *x) {
    const basis_mixture *bm = f->data;
    const int *c = bm->coords + (size_t)task * bm->r;
    double y = 0.0;
    for (int i = 0; i < bm->r; i++)
        y += w[i] * x[c[i]];
    return y;
}

static icl_status basis(const icl_task_family *f, int task, int *coords, int cap, int *r) {
    const basis_mixture *bm = f->data;
    if (cap < bm->r)
        return icl_fail(ICL_ERR_INVALID_ARG, "basis_mixture: room for %d coordinates, a basis has %d", cap, bm->r);
    for (int i = 0; i < bm->r; i++)
        coords[i] = bm->coords[(size_t)task * bm->r + i];
    *r = bm->r;
    return ICL_OK;
}

const task_family_ops icl_task_basis_mixture_ops = {
    .name = "basis_mixture",
    .mode = ICL_MODE_VECTOR,
    .options = options,
    .n_options = (int)(sizeof options / sizeof options[0]),
    .setup = setup,
    .destroy = destroy,
    .draw_function = draw_function,
    .eval = eval,
    .basis = basis,
};
