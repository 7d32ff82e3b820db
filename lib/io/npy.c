/* numpy .npy reading and writing.
 *
 * Layout: "\x93NUMPY", major, minor, header length (u16 LE in version 1.0,
 * u32 LE in 2.0 and 3.0), then a Python dict literal such as
 * {'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), } padded with
 * spaces and a newline, then the raw array data in C order. The writer
 * reproduces numpy's own bytes (np.save) exactly. The data is copied as is,
 * so the host must be little-endian like the files. */
#include "icl/npy.h"
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include "atomic_file.h"
#include "error.h"

_Static_assert(__BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__, "npy.c copies little-endian data verbatim");

#define NPY_MAGIC "\x93NUMPY"
#define NPY_MAGIC_LEN 6
#define NPY_ALIGN 64
/* np.save leaves room for the first axis to grow to this many digits. */
#define NPY_GROWTH_DIGITS 21
/* numpy itself refuses headers over 10000 bytes by default; anything this
 * large is a corrupt length field, not a real header. */
#define NPY_MAX_HEADER (1u << 20)

void icl_array_free(icl_array *a) {
    if (!a)
        return;
    free(a->data);
    memset(a, 0, sizeof *a);
}

/* ---- header dict parsing ---- */

typedef struct {
    const char *p, *end;
    const char *path;
} cursor;

static void skip_space(cursor *c) {
    while (c->p < c->end && (*c->p == ' ' || *c->p == '\t' || *c->p == '\n' || *c->p == '\r'))
        c->p++;
}

static int accept_char(cursor *c, char ch) {
    skip_space(c);
    if (c->p < c->end && *c->p == ch) {
        c->p++;
        return 1;
    }
    return 0;
}

static icl_status expected(const cursor *c, const char *what) {
    if (c->p >= c->end)
        return icl_fail(ICL_ERR_FORMAT, "\"%s\": npy header ends where %s was expected", c->path, what);
    return icl_fail(ICL_ERR_FORMAT, "\"%s\": npy header has '%c' where %s was expected", c->path, *c->p, what);
}

/* A quoted string without escapes ('...' or "..."), copied into out. */
static icl_status parse_string(cursor *c, char *out, size_t cap) {
    skip_space(c);
    if (c->p >= c->end || (*c->p != '\'' && *c->p != '"'))
        return expected(c, "a quoted string");
    char quote = *c->p++;
    size_t n = 0;
    while (c->p < c->end && *c->p != quote) {
        if (*c->p == '\\' || n + 1 >= cap)
            return icl_fail(ICL_ERR_FORMAT, "\"%s\": npy header has an unsupported string", c->path);
        out[n++] = *c->p++;
    }
    if (c->p >= c->end)
        return icl_fail(ICL_ERR_FORMAT, "\"%s\": npy header has an unterminated string", c->path);
    c->p++;
    out[n] = '\0';
    return ICL_OK;
}

static icl_status parse_bool(cursor *c, int *out) {
    skip_space(c);
    size_t left = (size_t)(c->end - c->p);
    if (left >= 4 && memcmp(c->p, "True", 4) == 0) {
        c->p += 4;
        *out = 1;
    } else if (left >= 5 && memcmp(c->p, "False", 5) == 0) {
        c->p += 5;
        *out = 0;
    } else
        return expected(c, "True or False");
    return ICL_OK;
}

static icl_status parse_dim(cursor *c, size_t *out) {
    skip_space(c);
    if (c->p >= c->end || *c->p < '0' || *c->p > '9')
        return expected(c, "a non-negative dimension");
    size_t v = 0;
    while (c->p < c->end && *c->p >= '0' && *c->p <= '9') {
        size_t digit = (size_t)(*c->p - '0');
        if (v > (SIZE_MAX - digit) / 10)
            return icl_fail(ICL_ERR_FORMAT, "\"%s\": npy dimension too large", c->path);
        v = v * 10 + digit;
        c->p++;
    }
    *out = v;
    return ICL_OK;
}

/* A Python tuple of ints: (), (5,), (2, 3) or (2, 3,). "(5)" is an int in
 * Python, not a tuple, so it is rejected like numpy does. */
static icl_status parse_shape(cursor *c, int *ndim, size_t *shape) {
    if (!accept_char(c, '('))
        return expected(c, "a shape tuple");
    int n = 0, trailing_comma = 0;
    while (!accept_char(c, ')')) {
        if (n == ICL_NPY_MAX_DIM)
            return icl_fail(ICL_ERR_FORMAT, "\"%s\": npy array has more than %d dimensions", c->path,
                            ICL_NPY_MAX_DIM);
        ICL_TRY(parse_dim(c, &shape[n++]));
        trailing_comma = accept_char(c, ',');
        skip_space(c);
        if (!trailing_comma && (c->p >= c->end || *c->p != ')'))
            return expected(c, "',' or ')' in the shape");
    }
    if (n == 1 && !trailing_comma)
        return icl_fail(ICL_ERR_FORMAT, "\"%s\": npy shape \"(%zu)\" is not a tuple", c->path, shape[0]);
    *ndim = n;
    return ICL_OK;
}

static icl_status parse_header(const char *text, size_t len, const char *path, icl_array *out) {
    cursor c = {text, text + len, path};
    char descr[32] = "";
    int fortran = 0, seen_descr = 0, seen_fortran = 0, seen_shape = 0;
    if (!accept_char(&c, '{'))
        return expected(&c, "'{'");
    while (!accept_char(&c, '}')) {
        char key[32];
        ICL_TRY(parse_string(&c, key, sizeof key));
        if (!accept_char(&c, ':'))
            return expected(&c, "':'");
        int *seen;
        if (strcmp(key, "descr") == 0) {
            seen = &seen_descr;
            ICL_TRY(parse_string(&c, descr, sizeof descr));
        } else if (strcmp(key, "fortran_order") == 0) {
            seen = &seen_fortran;
            ICL_TRY(parse_bool(&c, &fortran));
        } else if (strcmp(key, "shape") == 0) {
            seen = &seen_shape;
            ICL_TRY(parse_shape(&c, &out->ndim, out->shape));
        } else
            return icl_fail(ICL_ERR_FORMAT, "\"%s\": npy header has unknown key '%s'", path, key);
        if (*seen)
            return icl_fail(ICL_ERR_FORMAT, "\"%s\": npy header repeats key '%s'", path, key);
        *seen = 1;
        if (!accept_char(&c, ',')) {
            skip_space(&c);
            if (c.p >= c.end || *c.p != '}')
                return expected(&c, "',' or '}'");
        }
    }
    skip_space(&c);
    if (c.p != c.end)
        return icl_fail(ICL_ERR_FORMAT, "\"%s\": npy header has text after the closing '}'", path);
    if (!seen_descr || !seen_fortran || !seen_shape)
        return icl_fail(ICL_ERR_FORMAT, "\"%s\": npy header lacks '%s'", path,
                        !seen_descr ? "descr" : !seen_fortran ? "fortran_order" : "shape");
    if (strcmp(descr, "<f4") == 0)
        out->dtype = ICL_DTYPE_F32;
    else if (strcmp(descr, "<i4") == 0)
        out->dtype = ICL_DTYPE_I32;
    else
        return icl_fail(ICL_ERR_FORMAT, "\"%s\": npy dtype '%s' is not supported (only '<f4' and '<i4')", path,
                        descr);
    if (fortran)
        return icl_fail(ICL_ERR_FORMAT, "\"%s\": npy array is in Fortran order; only C order is supported", path);
    return ICL_OK;
}

/* numel of a shape, 0 on overflow of numel * 4 bytes (ok set to 0). */
static size_t shape_numel(int ndim, const size_t *shape, int *ok) {
    size_t numel = 1;
    *ok = 1;
    for (int i = 0; i < ndim; i++) {
        if (shape[i] != 0 && numel > SIZE_MAX / 4 / shape[i]) {
            *ok = 0;
            return 0;
        }
        numel *= shape[i];
    }
    return numel;
}

/* ---- reading ---- */

static uint32_t read_le(const unsigned char *b, int nbytes) {
    uint32_t v = 0;
    for (int i = nbytes - 1; i >= 0; i--)
        v = (v << 8) | b[i];
    return v;
}

static icl_status read_exact(FILE *f, void *buf, size_t n, const char *path, const char *what) {
    if (fread(buf, 1, n, f) != n) {
        if (ferror(f))
            return icl_fail(ICL_ERR_IO, "\"%s\": reading the %s failed: %s", path, what, strerror(errno));
        return icl_fail(ICL_ERR_FORMAT, "\"%s\": npy file is truncated in the %s", path, what);
    }
    return ICL_OK;
}

static icl_status read_file(FILE *f, const char *path, icl_array *out) {
    struct stat sb;
    if (fstat(fileno(f), &sb) != 0)
        return icl_fail(ICL_ERR_IO, "cannot stat \"%s\": %s", path, strerror(errno));
    if (!S_ISREG(sb.st_mode))
        return icl_fail(ICL_ERR_IO, "\"%s\" is not a regular file", path);
    unsigned char prefix[12];
    ICL_TRY(read_exact(f, prefix, 8, path, "magic string"));
    if (memcmp(prefix, NPY_MAGIC, NPY_MAGIC_LEN) != 0)
        return icl_fail(ICL_ERR_FORMAT, "\"%s\" is not an npy file (bad magic string)", path);
    int major = prefix[6], minor = prefix[7];
    if (major < 1 || major > 3 || minor != 0)
        return icl_fail(ICL_ERR_FORMAT, "\"%s\": npy format version %d.%d is not supported (1.0, 2.0, 3.0)", path,
                        major, minor);
    int len_bytes = major == 1 ? 2 : 4;
    ICL_TRY(read_exact(f, prefix + 8, (size_t)len_bytes, path, "header length"));
    uint32_t header_len = read_le(prefix + 8, len_bytes);
    if (header_len > NPY_MAX_HEADER)
        return icl_fail(ICL_ERR_FORMAT, "\"%s\": npy header length %u is implausibly large", path, header_len);
    uint64_t data_start = 8 + (uint64_t)len_bytes + header_len;
    uint64_t file_size = (uint64_t)sb.st_size;
    if (data_start > file_size)
        return icl_fail(ICL_ERR_FORMAT, "\"%s\": npy file is truncated in the header (%llu of %llu bytes)", path,
                        (unsigned long long)file_size, (unsigned long long)data_start);
    char *header = malloc(header_len ? header_len : 1);
    if (!header)
        return icl_fail(ICL_ERR_NOMEM, "\"%s\": out of memory for the npy header", path);
    icl_status st = read_exact(f, header, header_len, path, "header");
    if (st == ICL_OK)
        st = parse_header(header, header_len, path, out);
    free(header);
    if (st != ICL_OK)
        return st;
    int ok;
    out->numel = shape_numel(out->ndim, out->shape, &ok);
    if (!ok)
        return icl_fail(ICL_ERR_FORMAT, "\"%s\": npy shape is too large", path);
    uint64_t data_bytes = (uint64_t)out->numel * 4;
    uint64_t have = file_size - data_start;
    if (have < data_bytes)
        return icl_fail(ICL_ERR_FORMAT, "\"%s\": npy data is truncated (%llu of %llu bytes)", path,
                        (unsigned long long)have, (unsigned long long)data_bytes);
    if (have > data_bytes)
        return icl_fail(ICL_ERR_FORMAT, "\"%s\": npy file has %llu bytes after the %llu bytes of data", path,
                        (unsigned long long)(have - data_bytes), (unsigned long long)data_bytes);
    out->data = malloc(data_bytes ? (size_t)data_bytes : 1);
    if (!out->data)
        return icl_fail(ICL_ERR_NOMEM, "\"%s\": out of memory for %llu bytes of npy data", path,
                        (unsigned long long)data_bytes);
    return read_exact(f, out->data, (size_t)data_bytes, path, "data");
}

icl_status icl_npy_read(const char *path, icl_array *out) {
    if (!out)
        return icl_fail(ICL_ERR_INVALID_ARG, "icl_npy_read: NULL output array");
    memset(out, 0, sizeof *out);
    if (!path)
        return icl_fail(ICL_ERR_INVALID_ARG, "icl_npy_read: NULL path");
    FILE *f = fopen(path, "rb");
    if (!f)
        return icl_fail(ICL_ERR_IO, "cannot open \"%s\": %s", path, strerror(errno));
    icl_status st = read_file(f, path, out);
    fclose(f);
    if (st != ICL_OK)
        icl_array_free(out);
    return st;
}

/* ---- writing ---- */

/* The header exactly as np.save writes it: sorted keys, repr() of the
 * values, room for the first axis to grow, then spaces and a newline so the
 * data starts at a multiple of 64 bytes (numpy pads a full 64 when the
 * header already ends on a boundary). Returns the total header bytes. */
static size_t format_header(char *buf, size_t cap, icl_dtype dtype, int ndim, const size_t *shape) {
    char dict[512];
    int n = snprintf(dict, sizeof dict, "{'descr': '%s', 'fortran_order': False, 'shape': (",
                     dtype == ICL_DTYPE_F32 ? "<f4" : "<i4");
    for (int i = 0; i < ndim; i++)
        n += snprintf(dict + n, sizeof dict - (size_t)n, i + 1 < ndim ? "%zu, " : "%zu", shape[i]);
    n += snprintf(dict + n, sizeof dict - (size_t)n, ndim == 1 ? ",), }" : "), }");
    if (ndim > 0) {
        int digits = snprintf(NULL, 0, "%zu", shape[0]);
        for (int i = digits; i < NPY_GROWTH_DIGITS; i++)
            dict[n++] = ' ';
    }
    size_t hlen = (size_t)n + 1;
    size_t pad = NPY_ALIGN - (NPY_MAGIC_LEN + 4 + hlen) % NPY_ALIGN;
    size_t field = hlen + pad;
    size_t total = NPY_MAGIC_LEN + 4 + field;
    if (total > cap)
        return 0;
    memcpy(buf, NPY_MAGIC, NPY_MAGIC_LEN);
    buf[6] = 1;
    buf[7] = 0;
    buf[8] = (char)(field & 0xff);
    buf[9] = (char)(field >> 8);
    memcpy(buf + 10, dict, (size_t)n);
    memset(buf + 10 + n, ' ', pad);
    buf[total - 1] = '\n';
    return total;
}

icl_status icl_npy_write(const char *path, icl_dtype dtype, int ndim, const size_t *shape, const void *data) {
    if (!path)
        return icl_fail(ICL_ERR_INVALID_ARG, "icl_npy_write: NULL path");
    if (dtype != ICL_DTYPE_F32 && dtype != ICL_DTYPE_I32)
        return icl_fail(ICL_ERR_INVALID_ARG, "icl_npy_write: unknown dtype %d", (int)dtype);
    if (ndim < 0 || ndim > ICL_NPY_MAX_DIM)
        return icl_fail(ICL_ERR_INVALID_ARG, "icl_npy_write: ndim %d outside [0, %d]", ndim, ICL_NPY_MAX_DIM);
    if (ndim > 0 && !shape)
        return icl_fail(ICL_ERR_INVALID_ARG, "icl_npy_write: NULL shape");
    int ok;
    size_t numel = shape_numel(ndim, shape, &ok);
    if (!ok)
        return icl_fail(ICL_ERR_INVALID_ARG, "icl_npy_write: shape is too large");
    if (numel > 0 && !data)
        return icl_fail(ICL_ERR_INVALID_ARG, "icl_npy_write: NULL data");
    char header[640];
    size_t header_len = format_header(header, sizeof header, dtype, ndim, shape);
    if (header_len == 0)
        return icl_fail(ICL_ERR_INVALID_ARG, "icl_npy_write: header does not fit");
    icl_atomic_file af;
    ICL_TRY(icl_atomic_file_open(&af, path));
    icl_status st = icl_atomic_file_write(&af, header, header_len);
    if (st == ICL_OK)
        st = icl_atomic_file_write(&af, data, numel * 4);
    if (st != ICL_OK) {
        icl_atomic_file_abort(&af);
        return st;
    }
    return icl_atomic_file_commit(&af);
}
