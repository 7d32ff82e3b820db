/* Helpers shared by the Check test suites. */
#ifndef ICL_TESTUTIL_H
#define ICL_TESTUTIL_H

#include <check.h>
#include <stddef.h>
#include <stdint.h>
#include "icl/model.h"
#include "icl/rng.h"

/* Uniform [-scale, scale) floats from a named stream. */
void tu_fill_uniform(float *x, size_t n, float scale, icl_rng *r);
/* Uniform ints in [0, n_values). */
void tu_fill_tokens(int32_t *x, size_t n, int n_values, icl_rng *r);

/* Largest |a-b| / (atol + rtol*|b|) over n elements: <= 1 means within
 * tolerance. Prints "<label>: max abs err E at i (got a, want b), margin M"
 * so every comparison shows how close it came to failing. */
double tu_compare(const char *label, const float *got, const float *want, size_t n, double atol, double rtol);

/* ck_assert that tu_compare(...) <= 1. */
#define TU_ASSERT_CLOSE(label, got, want, n, atol, rtol)                                         \
    do {                                                                                         \
        double tu_ratio_ = tu_compare((label), (got), (want), (n), (atol), (rtol));              \
        ck_assert_msg(tu_ratio_ <= 1.0, "%s: error is %.3g x the tolerance", (label), tu_ratio_); \
    } while (0)

/* Why the CUDA backend cannot be used here, or NULL if it can. Looks in a
 * child process: Check forks every test, and a CUDA driver initialised
 * before fork() cannot be used in the children. Call it from main. */
const char *tu_cuda_unavailable_reason(void);

/* On `backend`: train a small vector-mode model for `warm` steps, then give
 * icl_train_step a batch whose inputs hold a NaN at a scored position. Checks
 * that the step fails with ICL_ERR_NUMERIC and changes no parameter, no Adam
 * moment and not the step count, and that the next clean step trains again.
 * Returns how many of the steps ran from a recorded graph. */
int tu_check_nan_step_rejected(icl_backend_kind backend, int warm);

/* Run the suite, print Check's summary, return the process exit status. */
int tu_run(Suite *s);

/* Allocate n floats / int32s with calloc; fail the test on OOM. */
float *tu_floats(size_t n);
int32_t *tu_ints(size_t n);

#endif
