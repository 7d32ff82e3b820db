/* Helpers shared by the Check test suites. */
#ifndef ICL_TESTUTIL_H
#define ICL_TESTUTIL_H

#include <check.h>
#include <stddef.h>
#include <stdint.h>
#include "icl/model.h"
#include "icl/rng.h"
#include "icl/task.h"

/* Uniform [-scale, scale) floats from a named stream. */
void tu_fill_uniform(float *x, size_t n, float scale, icl_rng *r);
/* Uniform ints in [0, n_values). */
void tu_fill_tokens(int32_t *x, size_t n, int n_values, icl_rng *r);

/* Largest |a-b| / (atol + rtol*|b|) over n elements: <= 1 means within
 * tolerance. Prints "<label>: max abs err E at i (got a, want b), margin M"
 * so every comparison shows how close it came to failing. */
double tu_compare(const char *label, const float *got, const float *want, size_t n, double atol, double rtol);

/* Largest |got - want| over n doubles <= tol (tol 0: exact), printed with its margin. */
void tu_assert_close_d(const char *label, const double *got, const double *want, int n, double tol);

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

/* n floats uniform in [-scale, scale) / a copy of n floats, allocated as tu_floats. */
float *tu_rand_floats(size_t n, float scale, icl_rng *r);
float *tu_dup_floats(const float *x, size_t n);

/* ---- a per-process temporary directory ---- */

/* Creates /tmp/icl_test_<tag>_XXXXXX and returns its path (NULL, with a
 * message on stderr, on failure). One directory per process at a time. */
/* The build's bin/ directory (tests/../bin) of the running test program argv0,
 * into out (PATH_MAX). 0 on success; prints the reason and returns 1 otherwise. */
int tu_bin_dir(const char *argv0, char *out, size_t cap);

const char *tu_tmpdir_create(const char *tag);
/* The directory's path. */
const char *tu_tmpdir(void);
/* buf = "<the directory>/<name>". */
void tu_tmp_path(char *buf, size_t cap, const char *name);
/* How many "<name>.tmp.<pid>" files an atomic write left in the directory. */
int tu_count_temp_files(void);
/* Removes the directory and everything under it. */
void tu_tmpdir_remove(void);

/* Whole file into a NUL-terminated malloc'ed buffer; *n (if not NULL) receives its size. */
unsigned char *tu_read_file(const char *path, size_t *n);
/* Writes n bytes to path, failing the test on error. */
void tu_write_file(const char *path, const void *data, size_t n);

/* ---- small models ---- */

/* The sizes of a small test model; a 0 field keeps icl_config_default's value. */
typedef struct {
    int n_layer, d_model, n_head, d_ff, ctx;
    int vocab_size, untied;         /* token mode */
    int d_in, d_out;                /* d_in > 0: vector mode */
    const icl_task_family *family;  /* sets the mode, vocabulary or widths for this family's prompts */
} tu_model_shape;

icl_config tu_config(tu_model_shape s);
/* icl_model_create on the CPU, failing the test on error. */
icl_model *tu_model(tu_model_shape s, uint64_t seed);

#endif
