/* .npy reading/writing and the atomic file writer underneath it. */
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>
#include "atomic_file.h"
#include "icl/npy.h"
#include "icl/rng.h"
#include "testutil.h"

/* ---- round trips ---- */

static void check_round_trip(icl_dtype dtype, int ndim, const size_t *shape, const char *name) {
    size_t numel = 1;
    for (int i = 0; i < ndim; i++)
        numel *= shape[i];
    uint32_t *data = calloc(numel ? numel : 1, 4);
    ck_assert_ptr_nonnull(data);
    icl_rng r;
    icl_rng_init(&r, 7, name);
    for (size_t i = 0; i < numel; i++)
        data[i] = icl_rng_u32(&r); /* any bit pattern, NaNs included, must survive */
    char path[128];
    tu_tmp_path(path, sizeof path, name);
    ck_assert_int_eq(icl_npy_write(path, dtype, ndim, shape, data), ICL_OK);
    icl_array a;
    icl_status st = icl_npy_read(path, &a);
    ck_assert_msg(st == ICL_OK, "%s: %s", name, icl_last_error());
    ck_assert_int_eq(a.dtype, dtype);
    ck_assert_int_eq(a.ndim, ndim);
    for (int i = 0; i < ndim; i++)
        ck_assert_uint_eq(a.shape[i], shape[i]);
    ck_assert_uint_eq(a.numel, numel);
    ck_assert_ptr_nonnull(a.data);
    ck_assert_int_eq(memcmp(a.data, data, numel * 4), 0);
    size_t file_size;
    unsigned char *bytes = tu_read_file(path, &file_size);
    size_t data_start = file_size - numel * 4;
    ck_assert_uint_eq(data_start % 64, 0);
    ck_assert_uint_eq(bytes[data_start - 1], '\n');
    printf("  round trip %-22s %zu elements bit-exact, data at byte %zu\n", name, numel, data_start);
    free(bytes);
    icl_array_free(&a);
    ck_assert_ptr_null(a.data);
    free(data);
    unlink(path);
}

START_TEST(round_trip_shapes) {
    static const size_t s0[1] = {0}, s5[] = {5}, s23[] = {2, 3}, s302[] = {3, 0, 2}, s2341[] = {2, 3, 4, 1},
                        s8[] = {2, 1, 2, 1, 3, 1, 2, 2}, s_big[] = {1000, 17};
    static const struct {
        const char *name;
        int ndim;
        const size_t *shape;
    } shapes[] = {{"scalar", 0, s0}, {"empty", 1, s0}, {"5", 1, s5}, {"2x3", 2, s23}, {"3x0x2", 3, s302},
                  {"2x3x4x1", 4, s2341}, {"8d", 8, s8}, {"1000x17", 2, s_big}};
    for (int d = 0; d < 2; d++) {
        icl_dtype dt = d == 0 ? ICL_DTYPE_F32 : ICL_DTYPE_I32;
        for (size_t k = 0; k < sizeof shapes / sizeof shapes[0]; k++) {
            char name[64];
            snprintf(name, sizeof name, "%s_%s.npy", d == 0 ? "f32" : "i32", shapes[k].name);
            check_round_trip(dt, shapes[k].ndim, shapes[k].shape, name);
        }
    }
}
END_TEST

START_TEST(overwrite_replaces_file) {
    char path[128];
    tu_tmp_path(path, sizeof path, "overwrite.npy");
    size_t big[] = {100}, small[] = {2};
    float a[100] = {0}, b[2] = {1.5f, -2.0f};
    ck_assert_int_eq(icl_npy_write(path, ICL_DTYPE_F32, 1, big, a), ICL_OK);
    ck_assert_int_eq(icl_npy_write(path, ICL_DTYPE_F32, 1, small, b), ICL_OK);
    icl_array arr;
    ck_assert_int_eq(icl_npy_read(path, &arr), ICL_OK);
    ck_assert_uint_eq(arr.numel, 2);
    ck_assert_int_eq(memcmp(arr.data, b, sizeof b), 0);
    icl_array_free(&arr);
    ck_assert_int_eq(tu_count_temp_files(), 0);
    unlink(path);
}
END_TEST

/* ---- exact bytes ---- */

/* np.save of np.arange(6, dtype='<i4').reshape(2, 3), written out by hand:
 * the dict, 20 spaces numpy reserves for the first axis to grow to 21
 * digits, 38 spaces of alignment padding and a newline (118 header bytes,
 * data at 128), then 0..5 as little-endian int32. */
static const char numpy_arange_2x3[] =
    "\x93NUMPY\x01\x00\x76\x00"
    "{'descr': '<i4', 'fortran_order': False, 'shape': (2, 3), }"
    "                    "                    /* 20: growth room */
    "                                      " /* 38: alignment */
    "\n"
    "\x00\x00\x00\x00\x01\x00\x00\x00\x02\x00\x00\x00"
    "\x03\x00\x00\x00\x04\x00\x00\x00\x05\x00\x00\x00";

START_TEST(writes_numpy_bytes) {
    size_t want_len = sizeof numpy_arange_2x3 - 1;
    ck_assert_uint_eq(want_len, 128 + 24);
    char path[128];
    tu_tmp_path(path, sizeof path, "arange.npy");
    int32_t v[6] = {0, 1, 2, 3, 4, 5};
    size_t shape[] = {2, 3};
    ck_assert_int_eq(icl_npy_write(path, ICL_DTYPE_I32, 2, shape, v), ICL_OK);
    size_t n;
    unsigned char *got = tu_read_file(path, &n);
    ck_assert_uint_eq(n, want_len);
    for (size_t i = 0; i < n; i++)
        ck_assert_msg(got[i] == (unsigned char)numpy_arange_2x3[i], "byte %zu: got 0x%02x, numpy writes 0x%02x", i,
                      got[i], (unsigned char)numpy_arange_2x3[i]);
    free(got);
    unlink(path);
}
END_TEST

/* Where numpy's room for growth decides the header size: the 97-byte dict,
 * 20 growth spaces (21 minus the one digit of the first axis) and the
 * newline end exactly at byte 128, and numpy then pads a whole 64 bytes
 * more rather than none, so the data starts at 192. */
START_TEST(writes_numpy_growth_room) {
    static const char dict[] =
        "{'descr': '<i4', 'fortran_order': False, 'shape': (0, 1000, 1000, 1000, 1000, 10000, 10000, 5), }";
    unsigned char want[192];
    ck_assert_uint_eq(sizeof dict - 1, 97);
    memcpy(want, "\x93NUMPY\x01\x00\xb6\x00", 10);
    memcpy(want + 10, dict, 97);
    memset(want + 107, ' ', 20 + 64);
    want[191] = '\n';
    char path[128];
    tu_tmp_path(path, sizeof path, "growth.npy");
    size_t shape[] = {0, 1000, 1000, 1000, 1000, 10000, 10000, 5};
    ck_assert_int_eq(icl_npy_write(path, ICL_DTYPE_I32, 8, shape, NULL), ICL_OK);
    size_t n;
    unsigned char *got = tu_read_file(path, &n);
    ck_assert_uint_eq(n, sizeof want);
    for (size_t i = 0; i < n; i++)
        ck_assert_msg(got[i] == want[i], "byte %zu: got 0x%02x, numpy writes 0x%02x", i, got[i], want[i]);
    free(got);
    icl_array a;
    ck_assert_int_eq(icl_npy_read(path, &a), ICL_OK);
    ck_assert_int_eq(a.ndim, 8);
    ck_assert_uint_eq(a.shape[7], 5);
    ck_assert_uint_eq(a.numel, 0);
    icl_array_free(&a);
    unlink(path);
}
END_TEST

START_TEST(reads_numpy_bytes) {
    char path[128];
    tu_tmp_path(path, sizeof path, "arange_in.npy");
    tu_write_file(path, numpy_arange_2x3, sizeof numpy_arange_2x3 - 1);
    icl_array a;
    ck_assert_int_eq(icl_npy_read(path, &a), ICL_OK);
    ck_assert_int_eq(a.dtype, ICL_DTYPE_I32);
    ck_assert_int_eq(a.ndim, 2);
    ck_assert_uint_eq(a.shape[0], 2);
    ck_assert_uint_eq(a.shape[1], 3);
    for (int i = 0; i < 6; i++)
        ck_assert_int_eq(((int32_t *)a.data)[i], i);
    icl_array_free(&a);
    unlink(path);
}
END_TEST

/* A file with magic, version (major), the header dict `dict` (length field
 * sized for the version) and `data_bytes` bytes of 0x3f after it. */
static size_t build_npy(unsigned char *buf, int major, int minor, const char *dict, size_t data_bytes) {
    size_t hlen = strlen(dict);
    memcpy(buf, "\x93NUMPY", 6);
    buf[6] = (unsigned char)major;
    buf[7] = (unsigned char)minor;
    size_t pos = 8;
    int len_bytes = major == 1 ? 2 : 4;
    for (int i = 0; i < len_bytes; i++)
        buf[pos++] = (unsigned char)(hlen >> (8 * i));
    memcpy(buf + pos, dict, hlen);
    pos += hlen;
    memset(buf + pos, 0x3f, data_bytes);
    return pos + data_bytes;
}

static icl_status read_built(const char *name, int major, int minor, const char *dict, size_t data_bytes,
                             icl_array *a) {
    unsigned char buf[1024];
    char path[128];
    tu_tmp_path(path, sizeof path, name);
    tu_write_file(path, buf, build_npy(buf, major, minor, dict, data_bytes));
    icl_status st = icl_npy_read(path, a);
    unlink(path);
    return st;
}

START_TEST(reads_header_variants) {
    static const struct {
        int major;
        const char *dict;
        int ndim;
        size_t d0, d1;
        icl_dtype dtype;
    } cases[] = {
        {1, "{'descr': '<f4', 'fortran_order': False, 'shape': (5,), }\n", 1, 5, 0, ICL_DTYPE_F32},
        {1, "{'descr':'<f4','fortran_order':False,'shape':(5,)}", 1, 5, 0, ICL_DTYPE_F32},
        {1, "{\"shape\": (2, 3,), \"descr\": \"<i4\", \"fortran_order\": False}  \n", 2, 2, 3, ICL_DTYPE_I32},
        {1, "{ 'fortran_order' : False , 'shape' : ( ) , 'descr' : '<i4' , }", 0, 0, 0, ICL_DTYPE_I32},
        {2, "{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }\n", 2, 2, 3, ICL_DTYPE_F32},
        {3, "{'descr': '<i4', 'fortran_order': False, 'shape': (3, 2), }\n", 2, 3, 2, ICL_DTYPE_I32},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        size_t numel = cases[i].ndim == 0 ? 1 : cases[i].ndim == 1 ? cases[i].d0 : cases[i].d0 * cases[i].d1;
        icl_array a;
        icl_status st = read_built("variant.npy", cases[i].major, 0, cases[i].dict, numel * 4, &a);
        ck_assert_msg(st == ICL_OK, "case %zu: %s", i, icl_last_error());
        ck_assert_int_eq(a.dtype, cases[i].dtype);
        ck_assert_int_eq(a.ndim, cases[i].ndim);
        if (a.ndim > 0)
            ck_assert_uint_eq(a.shape[0], cases[i].d0);
        if (a.ndim > 1)
            ck_assert_uint_eq(a.shape[1], cases[i].d1);
        ck_assert_uint_eq(a.numel, numel);
        ck_assert_uint_eq(((unsigned char *)a.data)[numel * 4 - 1], 0x3f);
        icl_array_free(&a);
    }
}
END_TEST

/* ---- rejection ---- */

START_TEST(rejects_bad_headers) {
    static const struct {
        int major, minor;
        const char *dict;
        size_t data_bytes;
        const char *must_mention;
    } cases[] = {
        {1, 0, "{'descr': '>f4', 'fortran_order': False, 'shape': (2,), }", 8, ">f4"},
        {1, 0, "{'descr': '<f8', 'fortran_order': False, 'shape': (2,), }", 16, "<f8"},
        {1, 0, "{'descr': '|u1', 'fortran_order': False, 'shape': (2,), }", 2, "|u1"},
        {1, 0, "{'descr': '<f4', 'fortran_order': True, 'shape': (2, 2), }", 16, "Fortran"},
        {1, 0, "{'descr': '<f4', 'fortran_order': False, 'shape': (2), }", 8, "not a tuple"},
        {1, 0, "{'descr': '<f4', 'fortran_order': False, 'shape': (2, -1), }", 8, "dimension"},
        {1, 0, "{'descr': '<f4', 'fortran_order': False, 'shape': (1,1,1,1,1,1,1,1,1), }", 4, "dimensions"},
        {1, 0, "{'descr': '<f4', 'fortran_order': False, 'shape': (99999999999999999999999,), }", 4, "too large"},
        {1, 0, "{'descr': '<f4', 'fortran_order': False, 'shape': (4611686018427387904, 4), }", 4, "too large"},
        {1, 0, "{'descr': '<f4', 'fortran_order': False, }", 0, "shape"},
        {1, 0, "{'descr': '<f4', 'fortran_order': False, 'shape': (2,), 'x': 1}", 8, "unknown key"},
        {1, 0, "{'descr': '<f4', 'descr': '<f4', 'fortran_order': False, 'shape': (2,)}", 8, "repeats"},
        {1, 0, "{'descr': '<f4', 'fortran_order': Flase, 'shape': (2,), }", 8, "True or False"},
        {1, 0, "{'descr': '<f4', 'fortran_order': False, 'shape': (2,) junk", 8, "expected"},
        {1, 0, "{'descr': '<f4', 'fortran_order': False, 'shape': (2,)} x", 8, "after the closing"},
        {1, 0, "{'descr': '<f4, 'fortran_order': False, 'shape': (2,)}", 8, "expected"},
        {1, 0, "['<f4', False, (2,)]", 8, "'{'"},
        {1, 0, "", 8, "'{'"},
        {1, 0, "{'descr': '<f4', 'fortran_order': False, 'shape': (2,), }", 4, "truncated"},
        {1, 0, "{'descr': '<f4', 'fortran_order': False, 'shape': (2,), }", 12, "after the"},
        {4, 0, "{'descr': '<f4', 'fortran_order': False, 'shape': (2,), }", 8, "version"},
        {1, 1, "{'descr': '<f4', 'fortran_order': False, 'shape': (2,), }", 8, "version"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        icl_array a;
        icl_status st = read_built("bad.npy", cases[i].major, cases[i].minor, cases[i].dict, cases[i].data_bytes, &a);
        ck_assert_msg(st == ICL_ERR_FORMAT, "case %zu: got %s (%s)", i, icl_status_name(st), icl_last_error());
        ck_assert_msg(strstr(icl_last_error(), cases[i].must_mention) != NULL, "case %zu: message \"%s\" lacks \"%s\"",
                      i, icl_last_error(), cases[i].must_mention);
        ck_assert_ptr_null(a.data);
    }
}
END_TEST

START_TEST(rejects_wrong_magic) {
    char path[128];
    tu_tmp_path(path, sizeof path, "magic.npy");
    unsigned char bytes[sizeof numpy_arange_2x3];
    memcpy(bytes, numpy_arange_2x3, sizeof bytes);
    bytes[1] = 'n';
    tu_write_file(path, bytes, sizeof bytes - 1);
    icl_array a;
    ck_assert_int_eq(icl_npy_read(path, &a), ICL_ERR_FORMAT);
    ck_assert_ptr_nonnull(strstr(icl_last_error(), "magic"));
    unlink(path);
}
END_TEST

START_TEST(rejects_every_truncation) {
    char src[128], path[128];
    tu_tmp_path(src, sizeof src, "full.npy");
    tu_tmp_path(path, sizeof path, "cut.npy");
    float v[6] = {1, 2, 3, 4, 5, 6};
    size_t shape[] = {2, 3};
    ck_assert_int_eq(icl_npy_write(src, ICL_DTYPE_F32, 2, shape, v), ICL_OK);
    size_t n;
    unsigned char *bytes = tu_read_file(src, &n);
    for (size_t len = 0; len < n; len++) {
        tu_write_file(path, bytes, len);
        icl_array a;
        icl_status st = icl_npy_read(path, &a);
        ck_assert_msg(st == ICL_ERR_FORMAT, "%zu of %zu bytes: got %s", len, n, icl_status_name(st));
        ck_assert_ptr_null(a.data);
    }
    printf("  every truncation of a %zu-byte file rejected with ICL_ERR_FORMAT\n", n);
    free(bytes);
    unlink(src);
    unlink(path);
}
END_TEST

START_TEST(rejects_bad_arguments) {
    char path[128];
    tu_tmp_path(path, sizeof path, "args.npy");
    size_t shape[] = {2};
    float v[2] = {0};
    icl_array a;
    ck_assert_int_eq(icl_npy_read(NULL, &a), ICL_ERR_INVALID_ARG);
    ck_assert_int_eq(icl_npy_read(path, NULL), ICL_ERR_INVALID_ARG);
    ck_assert_int_eq(icl_npy_read(path, &a), ICL_ERR_IO); /* does not exist */
    ck_assert_ptr_nonnull(strstr(icl_last_error(), path));
    ck_assert_int_eq(icl_npy_read(tu_tmpdir(), &a), ICL_ERR_IO); /* a directory */
    ck_assert_int_eq(icl_npy_write(NULL, ICL_DTYPE_F32, 1, shape, v), ICL_ERR_INVALID_ARG);
    ck_assert_int_eq(icl_npy_write(path, (icl_dtype)7, 1, shape, v), ICL_ERR_INVALID_ARG);
    ck_assert_int_eq(icl_npy_write(path, ICL_DTYPE_F32, -1, shape, v), ICL_ERR_INVALID_ARG);
    ck_assert_int_eq(icl_npy_write(path, ICL_DTYPE_F32, ICL_NPY_MAX_DIM + 1, shape, v), ICL_ERR_INVALID_ARG);
    ck_assert_int_eq(icl_npy_write(path, ICL_DTYPE_F32, 1, NULL, v), ICL_ERR_INVALID_ARG);
    ck_assert_int_eq(icl_npy_write(path, ICL_DTYPE_F32, 1, shape, NULL), ICL_ERR_INVALID_ARG);
    size_t huge[] = {SIZE_MAX / 2, 4};
    ck_assert_int_eq(icl_npy_write(path, ICL_DTYPE_F32, 2, huge, v), ICL_ERR_INVALID_ARG);
    ck_assert_int_eq(access(path, F_OK), -1);
    char missing[160];
    tu_tmp_path(missing, sizeof missing, "no/such/dir/x.npy");
    ck_assert_int_eq(icl_npy_write(missing, ICL_DTYPE_F32, 1, shape, v), ICL_ERR_IO);
    ck_assert_ptr_nonnull(strstr(icl_last_error(), missing));
    ck_assert_ptr_nonnull(strstr(icl_last_error(), "No such file"));
}
END_TEST

/* ---- atomic file ---- */

static const char old_text[] = "old contents\n";

/* The file at path still holds old_text, byte for byte. */
static void assert_holds_old_text(const char *path) {
    size_t n;
    unsigned char *got = tu_read_file(path, &n);
    ck_assert_uint_eq(n, sizeof old_text);
    ck_assert_int_eq(memcmp(got, old_text, n), 0);
    free(got);
}

START_TEST(atomic_abort_keeps_old_file) {
    char path[128];
    tu_tmp_path(path, sizeof path, "keep.txt");
    tu_write_file(path, old_text, sizeof old_text);
    icl_atomic_file af;
    ck_assert_int_eq(icl_atomic_file_open(&af, path), ICL_OK);
    ck_assert_int_eq(icl_atomic_file_write(&af, "new", 3), ICL_OK);
    ck_assert_int_eq(tu_count_temp_files(), 1);
    icl_atomic_file_abort(&af);
    icl_atomic_file_abort(&af); /* idempotent */
    ck_assert_int_eq(tu_count_temp_files(), 0);
    assert_holds_old_text(path);
    unlink(path);
}
END_TEST

START_TEST(atomic_failed_rename_keeps_target) {
    /* The target is a non-empty directory: rename fails, the directory and
     * its contents stay, the temp file goes. */
    char dir[128], inside[160];
    tu_tmp_path(dir, sizeof dir, "target_dir");
    ck_assert_int_eq(mkdir(dir, 0755), 0);
    snprintf(inside, sizeof inside, "%s/old", dir);
    tu_write_file(inside, old_text, sizeof old_text);
    icl_atomic_file af;
    ck_assert_int_eq(icl_atomic_file_open(&af, dir), ICL_OK);
    ck_assert_int_eq(icl_atomic_file_write(&af, "new", 3), ICL_OK);
    ck_assert_int_eq(icl_atomic_file_commit(&af), ICL_ERR_IO);
    ck_assert_ptr_nonnull(strstr(icl_last_error(), "rename"));
    ck_assert_ptr_nonnull(strstr(icl_last_error(), dir));
    ck_assert_ptr_null(af.f);
    ck_assert_int_eq(tu_count_temp_files(), 0);
    assert_holds_old_text(inside);
    unlink(inside);
    rmdir(dir);
}
END_TEST

START_TEST(atomic_failed_write_keeps_old_file) {
    /* A file size limit makes the write itself fail part-way (EFBIG), as a
     * full disk would. Check runs each test in its own process, so the limit
     * does not outlive this test. */
    char path[128];
    tu_tmp_path(path, sizeof path, "limited.npy");
    tu_write_file(path, old_text, sizeof old_text);
    signal(SIGXFSZ, SIG_IGN);
    struct rlimit old, lim;
    ck_assert_int_eq(getrlimit(RLIMIT_FSIZE, &old), 0);
    lim = old;
    lim.rlim_cur = 4096;
    ck_assert_int_eq(setrlimit(RLIMIT_FSIZE, &lim), 0);
    size_t shape[] = {100000};
    float *v = tu_floats(shape[0]);
    icl_status st = icl_npy_write(path, ICL_DTYPE_F32, 1, shape, v);
    ck_assert_int_eq(setrlimit(RLIMIT_FSIZE, &old), 0); /* stdout may be a file too */
    ck_assert_int_eq(st, ICL_ERR_IO);
    ck_assert_ptr_nonnull(strstr(icl_last_error(), path));
    printf("  write past the size limit: %s\n", icl_last_error());
    ck_assert_int_eq(tu_count_temp_files(), 0);
    assert_holds_old_text(path);
    free(v);
    unlink(path);
}
END_TEST

START_TEST(atomic_bad_arguments) {
    icl_atomic_file af;
    ck_assert_int_eq(icl_atomic_file_open(NULL, "x"), ICL_ERR_INVALID_ARG);
    ck_assert_int_eq(icl_atomic_file_open(&af, NULL), ICL_ERR_INVALID_ARG);
    ck_assert_int_eq(icl_atomic_file_open(&af, ""), ICL_ERR_INVALID_ARG);
    ck_assert_int_eq(icl_atomic_file_write(NULL, "x", 1), ICL_ERR_INVALID_ARG);
    ck_assert_int_eq(icl_atomic_file_commit(NULL), ICL_ERR_INVALID_ARG);
    char path[128];
    tu_tmp_path(path, sizeof path, "args.txt");
    ck_assert_int_eq(icl_atomic_file_open(&af, path), ICL_OK);
    ck_assert_int_eq(icl_atomic_file_write(&af, NULL, 1), ICL_ERR_INVALID_ARG);
    ck_assert_int_eq(icl_atomic_file_write(&af, NULL, 0), ICL_OK);
    ck_assert_int_eq(icl_atomic_file_commit(&af), ICL_OK);
    ck_assert_int_eq(icl_atomic_file_commit(&af), ICL_ERR_INVALID_ARG); /* already released */
    ck_assert_int_eq(access(path, F_OK), 0);
    unlink(path);
}
END_TEST

int main(void) {
    if (!tu_tmpdir_create("npy"))
        return 1;
    Suite *s = suite_create("npy");
    TCase *io = tcase_create("npy");
    tcase_add_test(io, round_trip_shapes);
    tcase_add_test(io, overwrite_replaces_file);
    tcase_add_test(io, writes_numpy_bytes);
    tcase_add_test(io, writes_numpy_growth_room);
    tcase_add_test(io, reads_numpy_bytes);
    tcase_add_test(io, reads_header_variants);
    tcase_add_test(io, rejects_bad_headers);
    tcase_add_test(io, rejects_wrong_magic);
    tcase_add_test(io, rejects_every_truncation);
    tcase_add_test(io, rejects_bad_arguments);
    suite_add_tcase(s, io);
    TCase *atomic = tcase_create("atomic_file");
    tcase_add_test(atomic, atomic_abort_keeps_old_file);
    tcase_add_test(atomic, atomic_failed_rename_keeps_target);
    tcase_add_test(atomic, atomic_failed_write_keeps_old_file);
    tcase_add_test(atomic, atomic_bad_arguments);
    suite_add_tcase(s, atomic);
    int rc = tu_run(s);
    tu_tmpdir_remove();
    return rc;
}
