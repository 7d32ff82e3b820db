/* Result files of the probes: tidy CSV tables and a JSON sidecar that
 * records how they were made. Both are written atomically (temp file, fsync,
 * rename), so a crash never leaves a half-written file behind; NPY arrays go
 * through icl_npy_write (include/icl/npy.h).
 *
 * Typical use:
 *   icl_csv *csv;
 *   const char *cols[] = {"task", "layer", "td"};
 *   icl_csv_create("out/td.csv", 3, cols, &csv);
 *   icl_csv_string(csv, "ret1"); icl_csv_int(csv, 2); icl_csv_number(csv, 0.97);
 *   icl_csv_end_row(csv);
 *   icl_csv_close(csv);            // commits the file
 *
 *   icl_sidecar *sc;
 *   icl_sidecar_create("decodability", seed, &sc);
 *   icl_sidecar_set_number(sc, "k", 10);
 *   icl_sidecar_add_file(sc, "td.csv");
 *   icl_sidecar_write(sc, "out/td.json");
 *   icl_sidecar_free(sc); */
#ifndef ICL_RESULTS_H
#define ICL_RESULTS_H

#include <stdint.h>
#include "icl/status.h"

ICL_BEGIN_DECLS

/* ---- CSV ----
 * Header row of column names, then rows of exactly n_columns cells, "\n"
 * line ends. A cell is quoted (RFC 4180: inside double quotes, quotes
 * doubled) when it contains a comma, a double quote, CR or LF. Numbers are
 * written with %.9g; NaN as "nan", infinities as "inf" / "-inf" (what pandas
 * and numpy read back). The file appears at `path` only on icl_csv_close. */
typedef struct icl_csv icl_csv;

icl_status icl_csv_create(const char *path, int n_columns, const char *const *columns, icl_csv **out);
/* Append one cell to the current row; ICL_ERR_STATE if the row is already full. */
icl_status icl_csv_string(icl_csv *csv, const char *value);
icl_status icl_csv_number(icl_csv *csv, double value);
icl_status icl_csv_int(icl_csv *csv, int64_t value);
/* Finish the current row; ICL_ERR_STATE unless it has exactly n_columns cells. */
icl_status icl_csv_end_row(icl_csv *csv);
/* Commit the file and free csv (always). ICL_ERR_STATE if a row was left
 * unfinished, or the first error of an earlier call; the previous file at
 * path is then left untouched. */
icl_status icl_csv_close(icl_csv *csv);
/* Discard the file and free csv. */
void icl_csv_abort(icl_csv *csv);

/* ---- JSON sidecar ----
 * {
 *   "probe": "<name>",
 *   "library": "libicl <ICL_VERSION_STRING>",
 *   "seed": <number; a string of digits if above 2^53, where doubles stop being exact>,
 *   "created": "YYYY-MM-DDTHH:MM:SSZ" (UTC, when the sidecar was created),
 *   "config": { caller's key/values },
 *   "files": [ "<name>", ... ]
 * }
 * Setting a config key again replaces its value. Non-finite numbers are
 * written as null (JSON has no NaN). */
typedef struct icl_sidecar icl_sidecar;

icl_status icl_sidecar_create(const char *probe, uint64_t seed, icl_sidecar **out);
icl_status icl_sidecar_set_string(icl_sidecar *sc, const char *key, const char *value);
icl_status icl_sidecar_set_number(icl_sidecar *sc, const char *key, double value);
/* values (n), n >= 0: a JSON array of numbers. */
icl_status icl_sidecar_set_numbers(icl_sidecar *sc, const char *key, const double *values, int n);
/* A JSON text (object, array, ...) parsed and stored under key, e.g. the
 * model config from icl_config_to_json. ICL_ERR_FORMAT if it does not parse. */
icl_status icl_sidecar_set_json(icl_sidecar *sc, const char *key, const char *json);
/* Name of an output file of the probe; a name already listed is not repeated. */
icl_status icl_sidecar_add_file(icl_sidecar *sc, const char *name);
icl_status icl_sidecar_write(const icl_sidecar *sc, const char *path);
void icl_sidecar_free(icl_sidecar *sc);

ICL_END_DECLS
#endif
