/* Checkpoints in the safetensors format (docs/checkpoint-format.md).
 *
 * File = u64 little-endian header length N, N bytes of UTF-8 JSON padded
 * with spaces to a multiple of 8, then the tensor data. Tensors are float32
 * in row-major order, contiguous, in model tensor order, followed by the
 * Adam moments "optim.m.<name>" (all tensors) and "optim.v.<name>". The data
 * is copied verbatim, so the host must be little-endian like the file.
 *
 * The reader trusts nothing: every field of the header is checked against
 * the tensor table of a model built from the checkpoint's own config before
 * a single parameter is read. */
#include "icl/checkpoint.h"
#include <cjson/cJSON.h>
#include <errno.h>
#include <float.h>
#include <limits.h>
#include <math.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/types.h>
#include "atomic_file.h"
#include "error.h"
#include "icl/icl.h"

_Static_assert(__BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__, "checkpoint.c copies little-endian data verbatim");

#define FORMAT_VERSION "1"
#define META_KEY "__metadata__"
/* The same bound the safetensors library applies: a longer header is a
 * corrupt length field, not a real header. */
#define MAX_HEADER_BYTES 100000000ull
/* Above 2^53 not every integer is a double, so JSON offsets stop being exact. */
#define MAX_JSON_INT 9007199254740992.0

typedef enum { ROLE_PARAM = 0, ROLE_ADAM_M = 1, ROLE_ADAM_V = 2, N_ROLES = 3 } tensor_role;
static const char *const role_prefix[N_ROLES] = {"", "optim.m.", "optim.v."};

typedef struct {
    const char *name; /* as in the file */
    int index;        /* model tensor */
    tensor_role role;
    uint64_t begin, end; /* byte range in the data section */
} entry;

typedef struct {
    const char *path;
    FILE *f;
    uint64_t header_len, data_size;
    char *header; /* NUL-terminated copy of the JSON text */
    cJSON *root;
    const cJSON *meta;
    icl_config cfg;
    long step;
    int has_rng;
    icl_rng rng;
    int has_optim;
    icl_optim_config optim;
    entry *entries; /* sorted by begin once validated */
    int n_entries;
} reader;

static icl_status bad(const reader *r, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static icl_status bad(const reader *r, const char *fmt, ...) {
    char msg[400];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    return icl_fail(ICL_ERR_FORMAT, "checkpoint \"%s\": %s", r->path, msg);
}

/* Re-raise the last error (from a callee) with the checkpoint as context. */
static icl_status bad_nested(const reader *r, const char *what) {
    char inner[400];
    snprintf(inner, sizeof inner, "%s", icl_last_error());
    return bad(r, "%s: %s", what, inner);
}

/* ---- small parsers ---- */

static int valid_utf8(const unsigned char *s, size_t n) {
    size_t i = 0;
    while (i < n) {
        unsigned c = s[i];
        if (c < 0x80) {
            i++;
            continue;
        }
        size_t len;
        uint32_t cp, min;
        if ((c & 0xE0) == 0xC0) {
            len = 2, cp = c & 0x1F, min = 0x80;
        } else if ((c & 0xF0) == 0xE0) {
            len = 3, cp = c & 0x0F, min = 0x800;
        } else if ((c & 0xF8) == 0xF0) {
            len = 4, cp = c & 0x07, min = 0x10000;
        } else
            return 0;
        if (n - i < len)
            return 0;
        for (size_t k = 1; k < len; k++) {
            if ((s[i + k] & 0xC0) != 0x80)
                return 0;
            cp = (cp << 6) | (s[i + k] & 0x3F);
        }
        if (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF))
            return 0; /* overlong, out of range or a surrogate */
        i += len;
    }
    return 1;
}

/* A JSON number that is a non-negative integer exactly representable. */
static int json_uint(const cJSON *item, uint64_t *out) {
    if (!cJSON_IsNumber(item))
        return 0;
    double v = item->valuedouble;
    if (!(v >= 0.0 && v <= MAX_JSON_INT) || v != floor(v))
        return 0;
    *out = (uint64_t)v;
    return 1;
}

/* Decimal digits only, fitting in a long. */
static int parse_count(const char *s, long *out) {
    if (!*s)
        return 0;
    long v = 0;
    for (; *s; s++) {
        if (*s < '0' || *s > '9')
            return 0;
        int d = *s - '0';
        if (v > (LONG_MAX - d) / 10)
            return 0;
        v = v * 10 + d;
    }
    *out = v;
    return 1;
}

/* Number of children of `obj` whose key is `key`. */
static int count_key(const cJSON *obj, const char *key) {
    int n = 0;
    for (const cJSON *c = obj->child; c; c = c->next)
        n += c->string && strcmp(c->string, key) == 0;
    return n;
}

/* ---- optimizer config as JSON ---- */

static const struct {
    const char *key;
    size_t offset;
    int is_int;
} optim_fields[] = {
    {"lr", offsetof(icl_optim_config, lr), 0},
    {"min_lr_frac", offsetof(icl_optim_config, min_lr_frac), 0},
    {"warmup_steps", offsetof(icl_optim_config, warmup_steps), 1},
    {"total_steps", offsetof(icl_optim_config, total_steps), 1},
    {"beta1", offsetof(icl_optim_config, beta1), 0},
    {"beta2", offsetof(icl_optim_config, beta2), 0},
    {"eps", offsetof(icl_optim_config, eps), 0},
    {"weight_decay", offsetof(icl_optim_config, weight_decay), 0},
    {"grad_clip", offsetof(icl_optim_config, grad_clip), 0},
};
#define N_OPTIM_FIELDS (sizeof optim_fields / sizeof optim_fields[0])

/* Floats widen exactly to double and cJSON prints doubles so that they parse
 * back to the same value, so the round trip is bit-exact. */
static char *optim_to_json(const icl_optim_config *oc) {
    cJSON *o = cJSON_CreateObject();
    int ok = o != NULL;
    for (size_t i = 0; ok && i < N_OPTIM_FIELDS; i++) {
        const char *field = (const char *)oc + optim_fields[i].offset;
        double v = optim_fields[i].is_int ? (double)*(const int *)field : (double)*(const float *)field;
        ok = cJSON_AddNumberToObject(o, optim_fields[i].key, v) != NULL;
    }
    char *text = ok ? cJSON_PrintUnformatted(o) : NULL;
    cJSON_Delete(o);
    return text;
}

static icl_status optim_from_json(const reader *r, const char *text, icl_optim_config *oc) {
    cJSON *o = cJSON_Parse(text);
    icl_status st = ICL_OK;
    if (!cJSON_IsObject(o))
        st = bad(r, "icl.optim is not a JSON object");
    for (const cJSON *c = o ? o->child : NULL; st == ICL_OK && c; c = c->next) {
        size_t i = 0;
        while (i < N_OPTIM_FIELDS && strcmp(optim_fields[i].key, c->string) != 0)
            i++;
        if (i == N_OPTIM_FIELDS)
            st = bad(r, "icl.optim has unknown field \"%s\"", c->string);
        else if (count_key(o, c->string) != 1)
            st = bad(r, "icl.optim repeats field \"%s\"", c->string);
    }
    for (size_t i = 0; st == ICL_OK && i < N_OPTIM_FIELDS; i++) {
        const cJSON *item = cJSON_GetObjectItemCaseSensitive(o, optim_fields[i].key);
        char *field = (char *)oc + optim_fields[i].offset;
        if (!cJSON_IsNumber(item))
            st = bad(r, "icl.optim field \"%s\" is missing or not a number", optim_fields[i].key);
        else if (!optim_fields[i].is_int && fabs(item->valuedouble) > FLT_MAX)
            st = bad(r, "icl.optim field \"%s\" = %g is out of float range", optim_fields[i].key, item->valuedouble);
        else if (!optim_fields[i].is_int)
            *(float *)field = (float)item->valuedouble;
        else if (item->valuedouble != floor(item->valuedouble) || fabs(item->valuedouble) > 2147483647.0)
            st = bad(r, "icl.optim field \"%s\" = %g is not an int", optim_fields[i].key, item->valuedouble);
        else
            *(int *)field = (int)item->valuedouble;
    }
    cJSON_Delete(o);
    if (st == ICL_OK && icl_optim_config_validate(oc) != ICL_OK)
        st = bad_nested(r, "icl.optim");
    return st;
}

/* ---- reading: header and metadata ---- */

static void reader_close(reader *r) {
    if (r->f)
        fclose(r->f);
    free(r->header);
    cJSON_Delete(r->root);
    free(r->entries);
    r->f = NULL;
    r->header = NULL;
    r->root = NULL;
    r->entries = NULL;
}

static icl_status read_metadata(reader *r) {
    int n_meta = count_key(r->root, META_KEY);
    if (n_meta != 1)
        return bad(r, n_meta == 0 ? "header has no " META_KEY : "header repeats " META_KEY);
    r->meta = cJSON_GetObjectItemCaseSensitive(r->root, META_KEY);
    if (!cJSON_IsObject(r->meta))
        return bad(r, META_KEY " is not a JSON object");
    static const char *const known[] = {"icl.format", "icl.config", "icl.step", "icl.rng", "icl.optim", "icl.library"};
    for (const cJSON *c = r->meta->child; c; c = c->next) {
        if (!cJSON_IsString(c))
            return bad(r, "metadata \"%s\" is not a string", c->string);
        if (count_key(r->meta, c->string) != 1)
            return bad(r, "metadata repeats \"%s\"", c->string);
        int is_known = 0;
        for (size_t i = 0; i < sizeof known / sizeof known[0]; i++)
            is_known |= strcmp(c->string, known[i]) == 0;
        /* Other tools may annotate a file; only our own namespace is closed. */
        if (!is_known && strncmp(c->string, "icl.", 4) == 0)
            return bad(r, "unknown metadata key \"%s\"", c->string);
    }
    const cJSON *format = cJSON_GetObjectItemCaseSensitive(r->meta, "icl.format");
    const cJSON *config = cJSON_GetObjectItemCaseSensitive(r->meta, "icl.config");
    const cJSON *step = cJSON_GetObjectItemCaseSensitive(r->meta, "icl.step");
    const cJSON *rng = cJSON_GetObjectItemCaseSensitive(r->meta, "icl.rng");
    const cJSON *optim = cJSON_GetObjectItemCaseSensitive(r->meta, "icl.optim");
    if (!format)
        return bad(r, "metadata lacks icl.format (not a libicl checkpoint?)");
    if (strcmp(format->valuestring, FORMAT_VERSION) != 0)
        return bad(r, "icl.format \"%.20s\" is not supported (this library reads \"" FORMAT_VERSION "\")",
                   format->valuestring);
    if (!config)
        return bad(r, "metadata lacks icl.config");
    if (icl_config_from_json(&r->cfg, config->valuestring) != ICL_OK)
        return bad_nested(r, "icl.config");
    if (!step)
        return bad(r, "metadata lacks icl.step");
    if (!parse_count(step->valuestring, &r->step))
        return bad(r, "icl.step \"%.30s\" is not a non-negative integer", step->valuestring);
    if (rng) {
        if (icl_rng_from_string(&r->rng, rng->valuestring) != ICL_OK)
            return bad_nested(r, "icl.rng");
        r->has_rng = 1;
    }
    if (optim) {
        ICL_TRY(optim_from_json(r, optim->valuestring, &r->optim));
        r->has_optim = 1;
    } else if (r->step != 0)
        return bad(r, "icl.step is %ld but there is no optimizer state", r->step);
    return ICL_OK;
}

static icl_status read_exact(reader *r, void *buf, size_t n, uint64_t at, const char *what) {
    if (fseeko(r->f, (off_t)at, SEEK_SET) != 0)
        return icl_fail(ICL_ERR_IO, "checkpoint \"%s\": seek to the %s failed: %s", r->path, what, strerror(errno));
    if (fread(buf, 1, n, r->f) != n) {
        if (ferror(r->f))
            return icl_fail(ICL_ERR_IO, "checkpoint \"%s\": reading the %s failed: %s", r->path, what,
                            strerror(errno));
        return bad(r, "file ended inside the %s (was it truncated while being read?)", what);
    }
    return ICL_OK;
}

static icl_status reader_open(reader *r, const char *path) {
    memset(r, 0, sizeof *r);
    r->path = path;
    r->f = fopen(path, "rb");
    if (!r->f)
        return icl_fail(ICL_ERR_IO, "cannot open checkpoint \"%s\": %s", path, strerror(errno));
    struct stat sb;
    if (fstat(fileno(r->f), &sb) != 0)
        return icl_fail(ICL_ERR_IO, "cannot stat checkpoint \"%s\": %s", path, strerror(errno));
    if (!S_ISREG(sb.st_mode))
        return icl_fail(ICL_ERR_IO, "checkpoint \"%s\" is not a regular file", path);
    uint64_t size = (uint64_t)sb.st_size;
    if (size < 8)
        return bad(r, "file is %llu bytes, too short for the 8-byte header length", (unsigned long long)size);
    unsigned char len_bytes[8];
    ICL_TRY(read_exact(r, len_bytes, 8, 0, "header length"));
    for (int i = 7; i >= 0; i--)
        r->header_len = (r->header_len << 8) | len_bytes[i];
    if (r->header_len > MAX_HEADER_BYTES)
        return bad(r, "header length %llu is over the %llu-byte limit (corrupt file?)",
                   (unsigned long long)r->header_len, MAX_HEADER_BYTES);
    if (r->header_len > size - 8)
        return bad(r, "header length %llu is more than the %llu bytes that follow it (truncated file?)",
                   (unsigned long long)r->header_len, (unsigned long long)(size - 8));
    r->data_size = size - 8 - r->header_len;
    size_t n = (size_t)r->header_len;
    r->header = malloc(n + 1);
    if (!r->header)
        return icl_fail(ICL_ERR_NOMEM, "checkpoint \"%s\": out of memory for a %zu-byte header", path, n);
    ICL_TRY(read_exact(r, r->header, n, 8, "header"));
    r->header[n] = '\0';
    if (memchr(r->header, '\0', n))
        return bad(r, "header contains a NUL byte");
    if (!valid_utf8((const unsigned char *)r->header, n))
        return bad(r, "header is not valid UTF-8");
    const char *end = NULL;
    r->root = cJSON_ParseWithLengthOpts(r->header, n, &end, 0);
    if (!r->root)
        return bad(r, "header is not valid JSON (error at byte %lld of %zu)",
                   end ? (long long)(end - r->header) : -1LL, n);
    for (const char *p = end; p < r->header + n; p++)
        if (*p != ' ' && *p != '\t' && *p != '\n' && *p != '\r')
            return bad(r, "header has text after the JSON value, at byte %lld", (long long)(p - r->header));
    if (!cJSON_IsObject(r->root))
        return bad(r, "header is not a JSON object");
    ICL_TRY(read_metadata(r));
    /* Cheap bound before a model of the config is allocated: a file cannot
     * hold the parameters of a config it is too small for. */
    uint64_t param_bytes = (uint64_t)icl_config_num_params(&r->cfg) * 4;
    if (r->data_size < param_bytes * (r->has_optim ? 3 : 1))
        return bad(r, "data section of %llu bytes is too small for the config's %llu parameters%s",
                   (unsigned long long)r->data_size, (unsigned long long)(param_bytes / 4),
                   r->has_optim ? " and their Adam moments" : "");
    return ICL_OK;
}

/* ---- reading: the tensor table ---- */

static void shape_text(char *buf, size_t cap, const uint64_t *dims, int n) {
    size_t used = (size_t)snprintf(buf, cap, "[");
    for (int i = 0; i < n && used < cap; i++)
        used += (size_t)snprintf(buf + used, cap - used, i ? ", %llu" : "%llu", (unsigned long long)dims[i]);
    if (used < cap)
        snprintf(buf + used, cap - used, "]");
}

static icl_status check_entry(const reader *r, const cJSON *item, const icl_param_info *info, entry *e) {
    const char *name = e->name;
    if (!cJSON_IsObject(item))
        return bad(r, "tensor \"%s\": entry is not a JSON object", name);
    for (const cJSON *c = item->child; c; c = c->next) {
        if (strcmp(c->string, "dtype") != 0 && strcmp(c->string, "shape") != 0 &&
            strcmp(c->string, "data_offsets") != 0)
            return bad(r, "tensor \"%s\": unknown field \"%s\"", name, c->string);
        if (count_key(item, c->string) != 1)
            return bad(r, "tensor \"%s\": repeated field \"%s\"", name, c->string);
    }
    const cJSON *dtype = cJSON_GetObjectItemCaseSensitive(item, "dtype");
    const cJSON *shape = cJSON_GetObjectItemCaseSensitive(item, "shape");
    const cJSON *offsets = cJSON_GetObjectItemCaseSensitive(item, "data_offsets");
    if (!cJSON_IsString(dtype))
        return bad(r, "tensor \"%s\": dtype is missing or not a string", name);
    if (strcmp(dtype->valuestring, "F32") != 0)
        return bad(r, "tensor \"%s\": dtype \"%.20s\" is not supported (only F32)", name, dtype->valuestring);

    if (!cJSON_IsArray(shape))
        return bad(r, "tensor \"%s\": shape is missing or not an array", name);
    uint64_t dims[ICL_NPY_MAX_DIM];
    int ndim = 0;
    for (const cJSON *d = shape->child; d; d = d->next) {
        if (ndim == ICL_NPY_MAX_DIM)
            return bad(r, "tensor \"%s\": shape has more than %d dimensions", name, ICL_NPY_MAX_DIM);
        if (!json_uint(d, &dims[ndim++]))
            return bad(r, "tensor \"%s\": shape entry is not a non-negative integer", name);
    }
    uint64_t want[2] = {(uint64_t)info->shape[0], (uint64_t)info->shape[1]};
    int same = ndim == info->ndim;
    for (int i = 0; same && i < ndim; i++)
        same = dims[i] == want[i];
    if (!same) {
        char got_s[160], want_s[64];
        shape_text(got_s, sizeof got_s, dims, ndim);
        shape_text(want_s, sizeof want_s, want, info->ndim);
        return bad(r, "tensor \"%s\": shape %s does not match %s of the config", name, got_s, want_s);
    }

    if (!cJSON_IsArray(offsets) || cJSON_GetArraySize(offsets) != 2)
        return bad(r, "tensor \"%s\": data_offsets is missing or not a pair", name);
    if (!json_uint(offsets->child, &e->begin) || !json_uint(offsets->child->next, &e->end))
        return bad(r, "tensor \"%s\": data_offsets are not non-negative integers", name);
    if (e->begin > e->end)
        return bad(r, "tensor \"%s\": data_offsets [%llu, %llu] end before they begin", name,
                   (unsigned long long)e->begin, (unsigned long long)e->end);
    if (e->end > r->data_size)
        return bad(r, "tensor \"%s\": data_offsets end at %llu, past the %llu-byte data section", name,
                   (unsigned long long)e->end, (unsigned long long)r->data_size);
    if (e->end - e->begin != (uint64_t)info->numel * 4)
        return bad(r, "tensor \"%s\": data_offsets span %llu bytes, its shape needs %llu", name,
                   (unsigned long long)(e->end - e->begin), (unsigned long long)info->numel * 4);
    return ICL_OK;
}

/* Model tensor index of `name` (without role prefix); tries `guess` first
 * because files we wrote list tensors in model order. */
static int lookup(const icl_model *m, const char *name, int guess) {
    const icl_param_info *t = icl_model_tensor(m, guess);
    if (t && strcmp(t->name, name) == 0)
        return guess;
    return icl_model_find_tensor(m, name);
}

static int by_begin(const void *a, const void *b) {
    const entry *x = a, *y = b;
    if (x->begin != y->begin)
        return x->begin < y->begin ? -1 : 1;
    return (x->end > y->end) - (x->end < y->end);
}

static icl_status check_tensors(reader *r, const icl_model *m) {
    int nt = icl_model_num_tensors(m);
    int n_items = cJSON_GetArraySize(r->root) - 1; /* minus __metadata__ */
    r->entries = calloc((size_t)(n_items > 0 ? n_items : 1), sizeof *r->entries);
    unsigned char *seen = calloc((size_t)nt * N_ROLES, 1);
    if (!r->entries || !seen) {
        free(seen);
        return icl_fail(ICL_ERR_NOMEM, "checkpoint \"%s\": out of memory for the tensor table", r->path);
    }
    icl_status st = ICL_OK;
    int guess = 0;
    for (const cJSON *c = r->root->child; st == ICL_OK && c; c = c->next) {
        if (strcmp(c->string, META_KEY) == 0)
            continue;
        entry *e = &r->entries[r->n_entries++];
        e->name = c->string;
        e->role = ROLE_PARAM;
        for (int role = ROLE_ADAM_M; role < N_ROLES; role++)
            if (strncmp(c->string, role_prefix[role], strlen(role_prefix[role])) == 0)
                e->role = (tensor_role)role;
        e->index = lookup(m, c->string + strlen(role_prefix[e->role]), guess);
        if (e->index < 0)
            st = bad(r, "unknown tensor \"%s\" (not part of this config)", e->name);
        else if (seen[e->role * nt + e->index]++)
            st = bad(r, "tensor \"%s\" appears twice", e->name);
        else {
            guess = (e->index + 1) % nt;
            st = check_entry(r, c, icl_model_tensor(m, e->index), e);
        }
    }
    int n_moments = 0;
    for (int i = 0; i < nt; i++)
        n_moments += seen[ROLE_ADAM_M * nt + i] + seen[ROLE_ADAM_V * nt + i];
    for (int role = ROLE_PARAM; st == ICL_OK && role < N_ROLES; role++) {
        if (role != ROLE_PARAM && !r->has_optim)
            break;
        for (int i = 0; st == ICL_OK && i < nt; i++)
            if (!seen[role * nt + i])
                st = bad(r, "tensor \"%s%s\" is missing", role_prefix[role], icl_model_tensor(m, i)->name);
    }
    free(seen);
    if (st == ICL_OK && !r->has_optim && n_moments > 0)
        st = bad(r, "has optimizer moments but no icl.optim metadata");
    if (st != ICL_OK)
        return st;
    /* safetensors requires the tensors to tile the data section exactly. */
    qsort(r->entries, (size_t)r->n_entries, sizeof *r->entries, by_begin);
    uint64_t pos = 0;
    for (int i = 0; i < r->n_entries; i++) {
        const entry *e = &r->entries[i];
        if (e->begin < pos)
            return bad(r, "tensors \"%s\" and \"%s\" overlap", r->entries[i - 1].name, e->name);
        if (e->begin > pos)
            return bad(r, "%llu unused bytes before tensor \"%s\"", (unsigned long long)(e->begin - pos), e->name);
        pos = e->end;
    }
    if (pos != r->data_size)
        return bad(r, "%llu unused bytes after the last tensor", (unsigned long long)(r->data_size - pos));
    return ICL_OK;
}

/* Open and validate everything; on success *model is a model of the
 * checkpoint's config on `backend` (freshly initialised, not yet loaded). */
static icl_status open_checked(reader *r, const char *path, icl_backend_kind backend, icl_model **model) {
    *model = NULL;
    icl_status st = reader_open(r, path);
    if (st == ICL_OK)
        st = icl_model_create(model, &r->cfg, backend, 0);
    if (st == ICL_OK)
        st = check_tensors(r, *model);
    if (st != ICL_OK) {
        icl_model_free(*model);
        *model = NULL;
        reader_close(r);
    }
    return st;
}

/* Copy every tensor of `role` into host (num_params floats, parameter layout). */
static icl_status read_role(reader *r, const icl_model *m, tensor_role role, float *host) {
    for (int i = 0; i < r->n_entries; i++) {
        const entry *e = &r->entries[i];
        if (e->role == role)
            ICL_TRY(read_exact(r, host + icl_model_tensor(m, e->index)->offset, (size_t)(e->end - e->begin),
                               8 + r->header_len + e->begin, "tensor data"));
    }
    return ICL_OK;
}

/* ---- public: reading ---- */

icl_status icl_checkpoint_read_config(const char *path, icl_config *cfg) {
    if (!path || !cfg)
        return icl_fail(ICL_ERR_INVALID_ARG, "icl_checkpoint_read_config: NULL argument");
    reader r;
    icl_model *layout;
    ICL_TRY(open_checked(&r, path, ICL_BACKEND_CPU, &layout));
    *cfg = r.cfg;
    icl_model_free(layout);
    reader_close(&r);
    return ICL_OK;
}

icl_status icl_checkpoint_read_meta(const char *path, const char *key, char *buf, size_t size) {
    if (!path || !key || !buf || size == 0)
        return icl_fail(ICL_ERR_INVALID_ARG, "icl_checkpoint_read_meta: NULL argument or empty buffer");
    reader r;
    icl_model *layout;
    ICL_TRY(open_checked(&r, path, ICL_BACKEND_CPU, &layout));
    const cJSON *item = cJSON_GetObjectItemCaseSensitive(r.meta, key);
    icl_status st = ICL_OK;
    if (!item)
        st = icl_fail(ICL_ERR_INVALID_ARG, "checkpoint \"%s\" has no metadata key \"%s\"", path, key);
    else if (strlen(item->valuestring) >= size)
        st = icl_fail(ICL_ERR_INVALID_ARG, "checkpoint \"%s\": metadata \"%s\" needs %zu bytes, buffer has %zu", path,
                      key, strlen(item->valuestring) + 1, size);
    else
        memcpy(buf, item->valuestring, strlen(item->valuestring) + 1);
    icl_model_free(layout);
    reader_close(&r);
    return st;
}

icl_status icl_checkpoint_load_model(const char *path, icl_backend_kind backend, icl_model **out) {
    if (!out)
        return icl_fail(ICL_ERR_INVALID_ARG, "icl_checkpoint_load_model: out is NULL");
    *out = NULL;
    if (!path)
        return icl_fail(ICL_ERR_INVALID_ARG, "icl_checkpoint_load_model: path is NULL");
    reader r;
    icl_model *m;
    ICL_TRY(open_checked(&r, path, backend, &m));
    size_t n = icl_model_num_params(m);
    float *host = malloc(n * sizeof *host);
    icl_status st = host ? read_role(&r, m, ROLE_PARAM, host)
                         : icl_fail(ICL_ERR_NOMEM, "checkpoint \"%s\": out of memory for %zu parameters", path, n);
    if (st == ICL_OK)
        st = icl_model_set_params(m, host, n);
    free(host);
    reader_close(&r);
    if (st != ICL_OK) {
        icl_model_free(m);
        return st;
    }
    *out = m;
    return ICL_OK;
}

icl_status icl_checkpoint_load_state(const char *path, icl_optimizer *opt, icl_rng *rng) {
    if (!path)
        return icl_fail(ICL_ERR_INVALID_ARG, "icl_checkpoint_load_state: path is NULL");
    reader r;
    icl_model *layout;
    ICL_TRY(open_checked(&r, path, ICL_BACKEND_CPU, &layout));
    icl_status st = ICL_OK;
    if (opt && !r.has_optim)
        st = bad(&r, "was saved without optimizer state");
    else if (rng && !r.has_rng)
        st = bad(&r, "was saved without an RNG state");
    if (st == ICL_OK && opt) {
        size_t n = icl_model_num_params(layout);
        float *moments = malloc(2 * n * sizeof *moments);
        if (!moments)
            st = icl_fail(ICL_ERR_NOMEM, "checkpoint \"%s\": out of memory for the Adam moments", path);
        if (st == ICL_OK)
            st = read_role(&r, layout, ROLE_ADAM_M, moments);
        if (st == ICL_OK)
            st = read_role(&r, layout, ROLE_ADAM_V, moments + n);
        if (st == ICL_OK)
            st = icl_optimizer_set_state(opt, moments, moments + n, n, r.step);
        free(moments);
    }
    /* Last, so a failure above leaves the caller's RNG as it was. */
    if (st == ICL_OK && rng)
        *rng = r.rng;
    icl_model_free(layout);
    reader_close(&r);
    return st;
}

icl_status icl_checkpoint_describe(const char *path, icl_text_fn emit, void *user) {
    if (!path || !emit)
        return icl_fail(ICL_ERR_INVALID_ARG, "icl_checkpoint_describe: NULL argument");
    reader r;
    icl_model *layout;
    ICL_TRY(open_checked(&r, path, ICL_BACKEND_CPU, &layout));
    char line[512];
    snprintf(line, sizeof line, "safetensors checkpoint: %d tensors, %llu-byte header, %llu bytes of data",
             r.n_entries, (unsigned long long)r.header_len, (unsigned long long)r.data_size);
    emit(user, line);
    icl_status st = ICL_OK;
    for (const cJSON *c = r.meta->child; c; c = c->next) {
        size_t need = strlen(c->string) + strlen(c->valuestring) + 4;
        char *text = malloc(need);
        if (!text) {
            st = icl_fail(ICL_ERR_NOMEM, "icl_checkpoint_describe: out of memory");
            break;
        }
        snprintf(text, need, "%s = %s", c->string, c->valuestring);
        emit(user, text);
        free(text);
    }
    int width = (int)strlen("name");
    for (int i = 0; i < r.n_entries; i++)
        if ((int)strlen(r.entries[i].name) > width)
            width = (int)strlen(r.entries[i].name);
    if (st == ICL_OK) {
        snprintf(line, sizeof line, "%-*s  dtype  %-12s  offsets", width, "name", "shape");
        emit(user, line);
    }
    for (int i = 0; st == ICL_OK && i < r.n_entries; i++) {
        const entry *e = &r.entries[i];
        const icl_param_info *t = icl_model_tensor(layout, e->index);
        uint64_t dims[2] = {(uint64_t)t->shape[0], (uint64_t)t->shape[1]};
        char shape[64];
        shape_text(shape, sizeof shape, dims, t->ndim);
        snprintf(line, sizeof line, "%-*s  F32    %-12s  [%llu, %llu]", width, e->name, shape,
                 (unsigned long long)e->begin, (unsigned long long)e->end);
        emit(user, line);
    }
    icl_model_free(layout);
    reader_close(&r);
    return st;
}

/* ---- writing ---- */

static int add_item(cJSON *obj, const char *key, cJSON *item) {
    if (item && cJSON_AddItemToObject(obj, key, item))
        return 1;
    cJSON_Delete(item);
    return 0;
}

static cJSON *tensor_entry(const icl_param_info *t, uint64_t begin) {
    cJSON *e = cJSON_CreateObject();
    cJSON *offsets = cJSON_CreateArray();
    int ok = e && offsets && cJSON_AddStringToObject(e, "dtype", "F32") &&
             add_item(e, "shape", cJSON_CreateIntArray(t->shape, t->ndim)) &&
             cJSON_AddItemToArray(offsets, cJSON_CreateNumber((double)begin)) &&
             cJSON_AddItemToArray(offsets, cJSON_CreateNumber((double)(begin + t->numel * 4)));
    if (ok) {
        ok = add_item(e, "data_offsets", offsets);
        offsets = NULL;
    }
    cJSON_Delete(offsets);
    if (!ok) {
        cJSON_Delete(e);
        return NULL;
    }
    return e;
}

/* The JSON header text (caller frees), or NULL when out of memory. */
static char *build_header(const icl_model *m, const icl_optimizer *opt, const icl_rng *rng, const char *config_json,
                          const icl_meta_entry *extra, int n_extra) {
    cJSON *root = cJSON_CreateObject();
    cJSON *meta = cJSON_CreateObject();
    char step[32], rng_text[64];
    snprintf(step, sizeof step, "%ld", opt ? icl_optimizer_step_count(opt) : 0L);
    if (!root || !meta || !cJSON_AddItemToObject(root, META_KEY, meta)) {
        cJSON_Delete(root);
        cJSON_Delete(meta);
        return NULL;
    }
    int ok = cJSON_AddStringToObject(meta, "icl.format", FORMAT_VERSION) &&
         cJSON_AddStringToObject(meta, "icl.config", config_json) && cJSON_AddStringToObject(meta, "icl.step", step);
    if (ok && rng) {
        icl_rng_to_string(rng, rng_text);
        ok = cJSON_AddStringToObject(meta, "icl.rng", rng_text) != NULL;
    }
    if (ok && opt) {
        char *optim = optim_to_json(icl_optimizer_config(opt));
        ok = optim && cJSON_AddStringToObject(meta, "icl.optim", optim);
        cJSON_free(optim);
    }
    ok = ok && cJSON_AddStringToObject(meta, "icl.library", "libicl " ICL_VERSION_STRING);
    for (int i = 0; ok && i < n_extra; i++)
        ok = cJSON_AddStringToObject(meta, extra[i].key, extra[i].value) != NULL;
    uint64_t pos = 0;
    int nt = icl_model_num_tensors(m);
    for (int role = ROLE_PARAM; ok && role < (opt ? N_ROLES : 1); role++)
        for (int i = 0; ok && i < nt; i++) {
            const icl_param_info *t = icl_model_tensor(m, i);
            char name[128];
            snprintf(name, sizeof name, "%s%s", role_prefix[role], t->name);
            ok = add_item(root, name, tensor_entry(t, pos));
            pos += (uint64_t)t->numel * 4;
        }
    char *text = ok ? cJSON_PrintUnformatted(root) : NULL;
    cJSON_Delete(root);
    return text;
}

static icl_status write_file(const char *path, const char *header, const icl_model *m, const float *buffers,
                             int n_roles) {
    size_t len = strlen(header), padded = (len + 7) & ~(size_t)7;
    unsigned char len_bytes[8];
    for (int i = 0; i < 8; i++)
        len_bytes[i] = (unsigned char)((uint64_t)padded >> (8 * i));
    static const char spaces[8] = "        ";
    size_t n = icl_model_num_params(m);
    icl_atomic_file af;
    ICL_TRY(icl_atomic_file_open(&af, path));
    icl_status st = icl_atomic_file_write(&af, len_bytes, 8);
    if (st == ICL_OK)
        st = icl_atomic_file_write(&af, header, len);
    if (st == ICL_OK)
        st = icl_atomic_file_write(&af, spaces, padded - len);
    for (int role = 0; st == ICL_OK && role < n_roles; role++)
        for (int i = 0; st == ICL_OK && i < icl_model_num_tensors(m); i++) {
            const icl_param_info *t = icl_model_tensor(m, i);
            st = icl_atomic_file_write(&af, buffers + (size_t)role * n + t->offset, t->numel * sizeof(float));
        }
    if (st != ICL_OK) {
        icl_atomic_file_abort(&af);
        return st;
    }
    return icl_atomic_file_commit(&af);
}

icl_status icl_checkpoint_save(const char *path, const icl_model *m, const icl_optimizer *opt,
                               const icl_rng *rng) {
    return icl_checkpoint_save_with_meta(path, m, opt, rng, NULL, 0);
}

icl_status icl_checkpoint_save_with_meta(const char *path, const icl_model *m, const icl_optimizer *opt,
                                         const icl_rng *rng, const icl_meta_entry *meta, int n_meta) {
    if (!path || !m)
        return icl_fail(ICL_ERR_INVALID_ARG, "icl_checkpoint_save: NULL %s", path ? "model" : "path");
    if (n_meta < 0 || (n_meta > 0 && !meta))
        return icl_fail(ICL_ERR_INVALID_ARG, "icl_checkpoint_save: %d metadata entries but no array", n_meta);
    for (int i = 0; i < n_meta; i++) {
        if (!meta[i].key || !meta[i].value || strncmp(meta[i].key, "user.", 5) != 0 || !meta[i].key[5])
            return icl_fail(ICL_ERR_INVALID_ARG, "icl_checkpoint_save: metadata key \"%s\" must be \"user.<name>\" "
                            "with a string value", meta[i].key ? meta[i].key : "(null)");
        for (int j = 0; j < i; j++)
            if (strcmp(meta[i].key, meta[j].key) == 0)
                return icl_fail(ICL_ERR_INVALID_ARG, "icl_checkpoint_save: metadata key \"%s\" repeats", meta[i].key);
    }
    if (opt) {
        /* JSON has no Inf/NaN; a config that needs them could not be read back. */
        const icl_optim_config *oc = icl_optimizer_config(opt);
        const float f[] = {oc->lr, oc->min_lr_frac, oc->beta1, oc->beta2, oc->eps, oc->weight_decay, oc->grad_clip};
        for (size_t i = 0; i < sizeof f / sizeof f[0]; i++)
            if (!isfinite(f[i]))
                return icl_fail(ICL_ERR_INVALID_ARG, "icl_checkpoint_save: optimizer config has a non-finite value");
    }
    char config_json[1024];
    ICL_TRY(icl_config_to_json(icl_model_config(m), config_json, sizeof config_json));
    size_t n = icl_model_num_params(m);
    int n_roles = opt ? 3 : 1;
    float *buffers = malloc((size_t)n_roles * n * sizeof *buffers); /* params, then Adam m and v */
    if (!buffers)
        return icl_fail(ICL_ERR_NOMEM, "icl_checkpoint_save: out of memory for %zu parameters", n);
    icl_status st = icl_model_get_params(m, buffers, n);
    if (st == ICL_OK && opt)
        st = icl_optimizer_get_state(opt, buffers + n, buffers + 2 * n, n);
    char *header = NULL;
    if (st == ICL_OK) {
        header = build_header(m, opt, rng, config_json, meta, n_meta);
        if (!header)
            st = icl_fail(ICL_ERR_NOMEM, "icl_checkpoint_save: out of memory building the header");
    }
    if (st == ICL_OK)
        st = write_file(path, header, m, buffers, n_roles);
    cJSON_free(header);
    free(buffers);
    return st;
}
