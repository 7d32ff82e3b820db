/* Internal: write a file so that a crash never leaves a half-written file in
 * place of the previous one. Data goes to "<path>.tmp.<pid>", is fsync'ed,
 * then renamed over <path>, and the directory is fsync'ed. */
#ifndef ICL_LIB_ATOMIC_FILE_H
#define ICL_LIB_ATOMIC_FILE_H

#include <stddef.h>
#include <stdio.h>
#include "icl/status.h"

typedef struct {
    FILE *f;
    char *path;
    char *tmp_path;
} icl_atomic_file;

icl_status icl_atomic_file_open(icl_atomic_file *af, const char *path);
icl_status icl_atomic_file_write(icl_atomic_file *af, const void *data, size_t n);
/* Flush, fsync, rename into place. On failure the temp file is removed and
 * the previous file at `path` is untouched. Always releases `af`. */
icl_status icl_atomic_file_commit(icl_atomic_file *af);
/* Discard the temp file (after a failed write). */
void icl_atomic_file_abort(icl_atomic_file *af);

#endif
