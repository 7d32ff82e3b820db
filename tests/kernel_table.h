/* The kernels that have a fast CPU version, a naive double-precision
 * reference and a backend ops entry, all with the same operands, in one
 * table that test_kernels (fast vs naive) and test_cuda (device vs naive)
 * both walk: operands and their fills, awkward sizes, tolerances. */
#ifndef ICL_TEST_KERNEL_TABLE_H
#define ICL_TEST_KERNEL_TABLE_H

#include <stddef.h>
#include "backend.h"

/* Which implementation a run uses. */
typedef enum { TK_FAST, TK_NAIVE, TK_BACKEND } tk_impl;

/* Which comparison a tolerance is for. */
enum { TK_TOL_FAST, TK_TOL_DEVICE, TK_N_TOL };

typedef enum {
    TK_IN,     /* floats, uniform in offset +- scale */
    TK_TOKENS, /* int32 in [0, d[token_dim]) */
    TK_OUT,    /* written by the kernel; pre-filled with random garbage that must be overwritten */
    TK_ACC,    /* accumulated into (+=); pre-filled with random values */
} tk_role;

enum { TK_MAX_OPERANDS = 10, TK_MAX_DIMS = 5 };

typedef struct {
    const char *name;
    tk_role role;
    float scale, offset;
    int nullable;                /* the kernel accepts NULL here: also run with it NULL */
    double atol[TK_N_TOL], rtol[TK_N_TOL]; /* outputs: how close to the naive reference */
} tk_operand;

typedef struct {
    const char *name;           /* the ops entry, e.g. "matmul_forward" */
    const char *dims;           /* names of d[], e.g. "B T C OC" */
    const int (*sizes)[TK_MAX_DIMS];
    int n_sizes;
    int token_dim;              /* d[token_dim] bounds TK_TOKENS operands */
    /* The device accumulates in float in the fast kernel's order: TK_BACKEND
     * runs compare with the fast kernel (itself tied to naive by test_kernels). */
    int device_vs_fast;
    int n_operands;
    tk_operand op[TK_MAX_OPERANDS];
    /* numel[i] = how many elements operand i has at dims d */
    void (*numel)(size_t *numel, const int *d);
    /* Makes inputs consistent (host copies; a NULL entry is an operand left out); may be NULL. */
    void (*prepare)(void *const *host, const int *d);
    /* Runs the kernel in the argument order the three implementations share. */
    void (*run)(tk_impl impl, icl_backend *be, void *const *x, const int *d);
    /* Exact properties of the outputs (host copies after the run under test); may be NULL. */
    void (*check)(const char *label, void *const *host, const int *d);
} tk_kernel;

extern const tk_kernel tk_kernels[];
extern const int tk_n_kernels;

/* Runs every size of kernel k, each with its nullable operands present and
 * left out, with `impl` (TK_FAST, or TK_BACKEND on `be`) and with the naive
 * reference on the same inputs, and asserts that every output agrees within
 * the kernel's tolerance for that comparison, printing each margin. */
void tk_check_kernel(const tk_kernel *k, tk_impl impl, icl_backend *be);

/* Device memory holding a copy of bytes of host (zero-filled if host is NULL). */
void *tk_upload(icl_backend *be, const void *host, size_t bytes);
/* A fresh host copy of n floats of device memory. */
float *tk_download(icl_backend *be, const float *dev, size_t n);
/* be->ops->sync, failing the test with `what` and the error message. */
void tk_sync(icl_backend *be, const char *what);

#endif
