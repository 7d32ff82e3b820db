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

/* Public declarations: C linkage, and exported from libicl.so (the library is
 * built with -fvisibility=hidden so that internal functions stay private). */
#ifdef __cplusplus
#define ICL_LINKAGE_BEGIN extern "C" {
#define ICL_LINKAGE_END }
#else
#define ICL_LINKAGE_BEGIN
#define ICL_LINKAGE_END
#endif
#define ICL_BEGIN_DECLS ICL_LINKAGE_BEGIN _Pragma("GCC visibility push(default)")
#define ICL_END_DECLS _Pragma("GCC visibility pop") ICL_LINKAGE_END

ICL_BEGIN_DECLS

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
/* Receives text one line at a time (no newline), e.g. a listing for a person. */
typedef void (*icl_line_fn)(void *user, const char *line);

ICL_END_DECLS
#endif
