/* Status codes and the last-error message.
 *
 * Every libicl function that can fail returns an icl_status. On failure the
 * library also records a human-readable message, retrievable with
 * icl_last_error() until the next failing call on the same thread (the one
 * piece of thread-local state in the library). The library never prints:
 * progress meant for a person goes through the log callback of the object
 * that produces it (see icl_log_fn users such as the training loop). */
#ifndef ICL_STATUS_H
#define ICL_STATUS_H

#ifdef __cplusplus
extern "C" {
#endif

typedef enum {
    ICL_OK = 0,
    ICL_ERR_INVALID_ARG,   /* a NULL pointer, a negative size, an unknown name ... */
    ICL_ERR_CONFIG,        /* an impossible model or training configuration */
    ICL_ERR_SHAPE,         /* tensor shapes that do not agree */
    ICL_ERR_NOMEM,         /* an allocation failed */
    ICL_ERR_IO,            /* open/read/write/rename failed */
    ICL_ERR_FORMAT,        /* a malformed or truncated file */
    ICL_ERR_NUMERIC,       /* NaN or Inf in a loss or gradient */
    ICL_ERR_BACKEND,       /* the compute backend failed or is unavailable */
    ICL_ERR_STATE,         /* call out of order (e.g. backward before forward) */
    ICL_ERR_UNSUPPORTED    /* valid request this build cannot serve */
} icl_status;

/* Short constant name of a status, e.g. "ICL_ERR_FORMAT". */
const char *icl_status_name(icl_status s);

/* Message of the most recent failure on this thread ("" if none). */
const char *icl_last_error(void);

typedef enum { ICL_LOG_DEBUG, ICL_LOG_INFO, ICL_LOG_WARN, ICL_LOG_ERROR } icl_log_level;
typedef void (*icl_log_fn)(void *user, icl_log_level level, const char *message);

#ifdef __cplusplus
}
#endif
#endif
