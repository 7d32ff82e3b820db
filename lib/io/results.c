/* Result writers: tidy CSV tables and the JSON sidecar, both atomic. */
#include "icl/results.h"
#include <cjson/cJSON.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include "atomic_file.h"
#include "error.h"
#include "icl/icl.h"

/* ---- CSV ---- */

struct icl_csv {
    icl_atomic_file af;
    int n_columns;
    int cells;        /* cells written in the current row */
    icl_status error; /* first failure; once set, every call returns it and close discards the file */
};

static icl_status csv_put(icl_csv *csv, const char *s, size_t n) {
    icl_status st = icl_atomic_file_write(&csv->af, s, n);
    if (st != ICL_OK)
        csv->error = st;
    return st;
}

/* Write a cell's text, quoted when it holds a separator, quote or line break. */
static icl_status csv_put_text(icl_csv *csv, const char *s) {
    if (!strpbrk(s, ",\"\r\n"))
        return csv_put(csv, s, strlen(s));
    ICL_TRY(csv_put(csv, "\"", 1));
    for (const char *q; (q = strchr(s, '"')); s = q + 1) {
        ICL_TRY(csv_put(csv, s, (size_t)(q - s) + 1));
        ICL_TRY(csv_put(csv, "\"", 1)); /* the quote just written, doubled */
    }
    ICL_TRY(csv_put(csv, s, strlen(s)));
    return csv_put(csv, "\"", 1);
}

static icl_status csv_begin_cell(icl_csv *csv, const char *fn) {
    if (!csv)
        return icl_fail(ICL_ERR_INVALID_ARG, "%s: csv is NULL", fn);
    if (csv->error != ICL_OK)
        return csv->error;
    if (csv->cells >= csv->n_columns) {
        csv->error = icl_fail(ICL_ERR_STATE, "%s: row already has all %d cells; call icl_csv_end_row", fn,
                              csv->n_columns);
        return csv->error;
    }
    if (csv->cells++ > 0)
        return csv_put(csv, ",", 1);
    return ICL_OK;
}

icl_status icl_csv_create(const char *path, int n_columns, const char *const *columns, icl_csv **out) {
    static const char fn[] = "icl_csv_create";
    if (!out)
        return icl_fail(ICL_ERR_INVALID_ARG, "%s: out is NULL", fn);
    *out = NULL;
    if (!path || !columns)
        return icl_fail(ICL_ERR_INVALID_ARG, "%s: %s is NULL", fn, !path ? "path" : "columns");
    if (n_columns < 1)
        return icl_fail(ICL_ERR_INVALID_ARG, "%s: n_columns = %d, must be >= 1", fn, n_columns);
    for (int c = 0; c < n_columns; c++)
        if (!columns[c])
            return icl_fail(ICL_ERR_INVALID_ARG, "%s: column name %d is NULL", fn, c);
    icl_csv *csv = calloc(1, sizeof *csv);
    if (!csv)
        return icl_fail(ICL_ERR_NOMEM, "%s: out of memory", fn);
    icl_status st = icl_atomic_file_open(&csv->af, path);
    if (st != ICL_OK) {
        free(csv);
        return st;
    }
    csv->n_columns = n_columns;
    for (int c = 0; st == ICL_OK && c < n_columns; c++)
        st = csv_begin_cell(csv, fn) == ICL_OK ? csv_put_text(csv, columns[c]) : csv->error;
    if (st == ICL_OK)
        st = icl_csv_end_row(csv);
    if (st != ICL_OK) {
        icl_csv_abort(csv);
        return st;
    }
    *out = csv;
    return ICL_OK;
}

icl_status icl_csv_string(icl_csv *csv, const char *value) {
    ICL_TRY(csv_begin_cell(csv, "icl_csv_string"));
    if (!value) {
        csv->error = icl_fail(ICL_ERR_INVALID_ARG, "icl_csv_string: value is NULL");
        return csv->error;
    }
    return csv_put_text(csv, value);
}

icl_status icl_csv_number(icl_csv *csv, double value) {
    ICL_TRY(csv_begin_cell(csv, "icl_csv_number"));
    char buf[32];
    if (isnan(value))
        strcpy(buf, "nan");
    else if (isinf(value))
        strcpy(buf, value > 0 ? "inf" : "-inf");
    else
        snprintf(buf, sizeof buf, "%.9g", value);
    return csv_put(csv, buf, strlen(buf));
}

icl_status icl_csv_int(icl_csv *csv, int64_t value) {
    ICL_TRY(csv_begin_cell(csv, "icl_csv_int"));
    char buf[32];
    snprintf(buf, sizeof buf, "%lld", (long long)value);
    return csv_put(csv, buf, strlen(buf));
}

icl_status icl_csv_end_row(icl_csv *csv) {
    if (!csv)
        return icl_fail(ICL_ERR_INVALID_ARG, "icl_csv_end_row: csv is NULL");
    if (csv->error != ICL_OK)
        return csv->error;
    if (csv->cells != csv->n_columns) {
        csv->error = icl_fail(ICL_ERR_STATE, "icl_csv_end_row: row has %d cells, the header has %d", csv->cells,
                              csv->n_columns);
        return csv->error;
    }
    csv->cells = 0;
    return csv_put(csv, "\n", 1);
}

icl_status icl_csv_close(icl_csv *csv) {
    if (!csv)
        return icl_fail(ICL_ERR_INVALID_ARG, "icl_csv_close: csv is NULL");
    icl_status st = csv->error;
    if (st == ICL_OK && csv->cells != 0)
        st = icl_fail(ICL_ERR_STATE, "icl_csv_close: the last row has %d of %d cells", csv->cells, csv->n_columns);
    if (st != ICL_OK) {
        icl_csv_abort(csv);
        return st;
    }
    st = icl_atomic_file_commit(&csv->af);
    free(csv);
    return st;
}

void icl_csv_abort(icl_csv *csv) {
    if (!csv)
        return;
    icl_atomic_file_abort(&csv->af);
    free(csv);
}

/* ---- JSON sidecar ---- */

struct icl_sidecar {
    cJSON *root;
    cJSON *config; /* owned by root */
    cJSON *files;  /* owned by root */
};

/* Doubles represent every integer up to 2^53 exactly. */
#define EXACT_INT_LIMIT (UINT64_C(1) << 53)

void icl_sidecar_free(icl_sidecar *sc) {
    if (!sc)
        return;
    cJSON_Delete(sc->root);
    free(sc);
}

icl_status icl_sidecar_create(const char *probe, uint64_t seed, icl_sidecar **out) {
    static const char fn[] = "icl_sidecar_create";
    if (!out)
        return icl_fail(ICL_ERR_INVALID_ARG, "%s: out is NULL", fn);
    *out = NULL;
    if (!probe || !probe[0])
        return icl_fail(ICL_ERR_INVALID_ARG, "%s: probe name is NULL or empty", fn);
    char created[32];
    time_t now = time(NULL);
    struct tm utc;
    if (now == (time_t)-1 || !gmtime_r(&now, &utc) || !strftime(created, sizeof created, "%Y-%m-%dT%H:%M:%SZ", &utc))
        return icl_fail(ICL_ERR_IO, "%s: cannot read the current UTC time", fn);
    char seed_text[32];
    snprintf(seed_text, sizeof seed_text, "%llu", (unsigned long long)seed);

    icl_sidecar *sc = calloc(1, sizeof *sc);
    if (!sc)
        return icl_fail(ICL_ERR_NOMEM, "%s: out of memory", fn);
    sc->root = cJSON_CreateObject();
    int ok = sc->root && cJSON_AddStringToObject(sc->root, "probe", probe) &&
             cJSON_AddStringToObject(sc->root, "library", "libicl " ICL_VERSION_STRING) &&
             (seed <= EXACT_INT_LIMIT ? cJSON_AddNumberToObject(sc->root, "seed", (double)seed) != NULL
                                               : cJSON_AddStringToObject(sc->root, "seed", seed_text) != NULL) &&
             cJSON_AddStringToObject(sc->root, "created", created);
    if (ok) {
        sc->config = cJSON_AddObjectToObject(sc->root, "config");
        sc->files = cJSON_AddArrayToObject(sc->root, "files");
    }
    if (!ok || !sc->config || !sc->files) {
        icl_sidecar_free(sc);
        return icl_fail(ICL_ERR_NOMEM, "%s: out of memory", fn);
    }
    *out = sc;
    return ICL_OK;
}

/* Put item under key in config, replacing an earlier value; takes ownership of item. */
static icl_status set_item(icl_sidecar *sc, const char *key, cJSON *item, const char *fn) {
    if (!item)
        return icl_fail(ICL_ERR_NOMEM, "%s: out of memory for \"%s\"", fn, key);
    int ok = cJSON_GetObjectItemCaseSensitive(sc->config, key)
                 ? cJSON_ReplaceItemInObjectCaseSensitive(sc->config, key, item)
                 : cJSON_AddItemToObject(sc->config, key, item);
    if (!ok) {
        cJSON_Delete(item);
        return icl_fail(ICL_ERR_NOMEM, "%s: out of memory for \"%s\"", fn, key);
    }
    return ICL_OK;
}

static icl_status check_key(const icl_sidecar *sc, const char *key, const char *fn) {
    if (!sc)
        return icl_fail(ICL_ERR_INVALID_ARG, "%s: sidecar is NULL", fn);
    if (!key || !key[0])
        return icl_fail(ICL_ERR_INVALID_ARG, "%s: key is NULL or empty", fn);
    return ICL_OK;
}

static cJSON *number_item(double v) { return isfinite(v) ? cJSON_CreateNumber(v) : cJSON_CreateNull(); }

icl_status icl_sidecar_set_string(icl_sidecar *sc, const char *key, const char *value) {
    static const char fn[] = "icl_sidecar_set_string";
    ICL_TRY(check_key(sc, key, fn));
    if (!value)
        return icl_fail(ICL_ERR_INVALID_ARG, "%s: value of \"%s\" is NULL", fn, key);
    return set_item(sc, key, cJSON_CreateString(value), fn);
}

icl_status icl_sidecar_set_number(icl_sidecar *sc, const char *key, double value) {
    static const char fn[] = "icl_sidecar_set_number";
    ICL_TRY(check_key(sc, key, fn));
    return set_item(sc, key, number_item(value), fn);
}

icl_status icl_sidecar_set_numbers(icl_sidecar *sc, const char *key, const double *values, int n) {
    static const char fn[] = "icl_sidecar_set_numbers";
    ICL_TRY(check_key(sc, key, fn));
    if (n < 0 || (n > 0 && !values))
        return icl_fail(ICL_ERR_INVALID_ARG, "%s: \"%s\": n = %d with values %s", fn, key, n,
                        values ? "given" : "NULL");
    cJSON *arr = cJSON_CreateArray();
    for (int i = 0; arr && i < n; i++) {
        cJSON *v = number_item(values[i]);
        if (!v || !cJSON_AddItemToArray(arr, v)) {
            cJSON_Delete(v);
            cJSON_Delete(arr);
            arr = NULL;
        }
    }
    return set_item(sc, key, arr, fn);
}

icl_status icl_sidecar_set_json(icl_sidecar *sc, const char *key, const char *json) {
    static const char fn[] = "icl_sidecar_set_json";
    ICL_TRY(check_key(sc, key, fn));
    if (!json)
        return icl_fail(ICL_ERR_INVALID_ARG, "%s: JSON text of \"%s\" is NULL", fn, key);
    cJSON *item = cJSON_Parse(json);
    if (!item)
        return icl_fail(ICL_ERR_FORMAT, "%s: the text given for \"%s\" is not valid JSON", fn, key);
    return set_item(sc, key, item, fn);
}

icl_status icl_sidecar_add_file(icl_sidecar *sc, const char *name) {
    static const char fn[] = "icl_sidecar_add_file";
    if (!sc)
        return icl_fail(ICL_ERR_INVALID_ARG, "%s: sidecar is NULL", fn);
    if (!name || !name[0])
        return icl_fail(ICL_ERR_INVALID_ARG, "%s: file name is NULL or empty", fn);
    const cJSON *it;
    cJSON_ArrayForEach(it, sc->files) {
        if (cJSON_IsString(it) && strcmp(it->valuestring, name) == 0)
            return ICL_OK;
    }
    cJSON *s = cJSON_CreateString(name);
    if (!s || !cJSON_AddItemToArray(sc->files, s)) {
        cJSON_Delete(s);
        return icl_fail(ICL_ERR_NOMEM, "%s: out of memory", fn);
    }
    return ICL_OK;
}

icl_status icl_sidecar_write(const icl_sidecar *sc, const char *path) {
    static const char fn[] = "icl_sidecar_write";
    if (!sc || !path)
        return icl_fail(ICL_ERR_INVALID_ARG, "%s: %s is NULL", fn, !sc ? "sidecar" : "path");
    char *text = cJSON_Print(sc->root);
    if (!text)
        return icl_fail(ICL_ERR_NOMEM, "%s: out of memory printing the JSON", fn);
    icl_atomic_file af;
    icl_status st = icl_atomic_file_open(&af, path);
    if (st == ICL_OK) {
        st = icl_atomic_file_write(&af, text, strlen(text));
        if (st == ICL_OK)
            st = icl_atomic_file_write(&af, "\n", 1);
        if (st == ICL_OK)
            st = icl_atomic_file_commit(&af);
        else
            icl_atomic_file_abort(&af);
    }
    cJSON_free(text);
    return st;
}
