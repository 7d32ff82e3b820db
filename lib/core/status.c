/* Status names and the thread-local last-error message. */
#include <stdarg.h>
#include <stdio.h>
#include "error.h"

static _Thread_local char last_error[512];

const char *icl_status_name(icl_status s) {
    switch (s) {
    case ICL_OK: return "ICL_OK";
    case ICL_ERR_INVALID_ARG: return "ICL_ERR_INVALID_ARG";
    case ICL_ERR_CONFIG: return "ICL_ERR_CONFIG";
    case ICL_ERR_SHAPE: return "ICL_ERR_SHAPE";
    case ICL_ERR_NOMEM: return "ICL_ERR_NOMEM";
    case ICL_ERR_IO: return "ICL_ERR_IO";
    case ICL_ERR_FORMAT: return "ICL_ERR_FORMAT";
    case ICL_ERR_NUMERIC: return "ICL_ERR_NUMERIC";
    case ICL_ERR_BACKEND: return "ICL_ERR_BACKEND";
    case ICL_ERR_STATE: return "ICL_ERR_STATE";
    case ICL_ERR_UNSUPPORTED: return "ICL_ERR_UNSUPPORTED";
    }
    return "ICL_ERR_UNKNOWN";
}

const char *icl_last_error(void) { return last_error; }

icl_status icl_fail(icl_status s, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(last_error, sizeof last_error, fmt, ap);
    va_end(ap);
    return s;
}
