/* numpy .npy files (format version 1.0/2.0, little-endian float32 and int32,
 * C order): how tensors enter and leave the command-line tools and probes. */
#ifndef ICL_NPY_H
#define ICL_NPY_H

#include <stddef.h>
#include <stdint.h>
#include "icl/status.h"

ICL_BEGIN_DECLS

#define ICL_NPY_MAX_DIM 8

typedef enum { ICL_DTYPE_F32 = 0, ICL_DTYPE_I32 = 1 } icl_dtype;

/* A dense host array that owns its data (free with icl_array_free). */
typedef struct {
    icl_dtype dtype;
    int ndim;
    size_t shape[ICL_NPY_MAX_DIM];
    size_t numel;
    void *data;   /* float* or int32_t* */
} icl_array;

void icl_array_free(icl_array *a);

/* Read a .npy file; ICL_ERR_FORMAT for anything other than <f4 / <i4 C-order arrays
 * or a truncated/inconsistent file. */
icl_status icl_npy_read(const char *path, icl_array *out);

/* Write atomically (temp file + rename). */
icl_status icl_npy_write(const char *path, icl_dtype dtype, int ndim, const size_t *shape, const void *data);

ICL_END_DECLS
#endif
