/* Internal: recording failures for icl_last_error(). */
#ifndef ICL_LIB_ERROR_H
#define ICL_LIB_ERROR_H

#include "icl/status.h"

/* Record a printf-style message for icl_last_error() and return `s`. */
icl_status icl_fail(icl_status s, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Evaluate a call returning icl_status; return its status from the caller on failure. */
#define ICL_TRY(call)                    \
    do {                                 \
        icl_status icl_try_s_ = (call);  \
        if (icl_try_s_ != ICL_OK)        \
            return icl_try_s_;           \
    } while (0)

#endif
