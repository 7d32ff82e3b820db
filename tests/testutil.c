#define _DEFAULT_SOURCE /* realpath */
#include "testutil.h"
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <dirent.h>
#include <limits.h>
#include <sys/wait.h>
#include <unistd.h>
#include "icl/model.h"
#include "icl/train.h"

void tu_fill_uniform(float *x, size_t n, float scale, icl_rng *r) {
    for (size_t i = 0; i < n; i++)
        x[i] = (2.0f * icl_rng_uniform(r) - 1.0f) * scale;
}

void tu_fill_tokens(int32_t *x, size_t n, int n_values, icl_rng *r) {
    for (size_t i = 0; i < n; i++)
        x[i] = (int32_t)icl_rng_below(r, (uint32_t)n_values);
}

double tu_compare(const char *label, const float *got, const float *want, size_t n, double atol, double rtol) {
    double worst = 0.0, worst_abs = 0.0;
    size_t at = 0;
    for (size_t i = 0; i < n; i++) {
        double d = fabs((double)got[i] - (double)want[i]);
        double ratio = d / (atol + rtol * fabs((double)want[i]));
        if (!(ratio <= worst)) { /* also catches NaN */
            worst = isnan(ratio) ? INFINITY : ratio;
            worst_abs = d;
            at = i;
        }
    }
    if (n > 0)
        printf("  %-44s max abs err %.3g at %zu (got %.7g, want %.7g), %.1f%% of tolerance\n", label, worst_abs, at,
               (double)got[at], (double)want[at], 100.0 * worst);
    return worst;
}

void tu_assert_close_d(const char *label, const double *got, const double *want, int n, double tol) {
    double worst = 0.0;
    int at = 0;
    for (int i = 0; i < n; i++) {
        double e = fabs(got[i] - want[i]);
        if (!(e <= worst)) {
            worst = isnan(e) ? INFINITY : e;
            at = i;
        }
    }
    if (tol > 0)
        printf("  %-44s max abs err %.3g at %d (got %.12g, want %.12g), %.1f%% of tolerance %.1g\n", label, worst, at,
               got[at], want[at], 100.0 * worst / tol, tol);
    else
        printf("  %-44s max abs err %.3g at %d (got %.12g, want %.12g), must be exact\n", label, worst, at, got[at],
               want[at]);
    ck_assert_msg(worst <= tol, "%s: error %.3g exceeds %.3g", label, worst, tol);
}

int tu_run(Suite *s) {
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? 0 : 1;
}

float *tu_floats(size_t n) {
    float *p = calloc(n ? n : 1, sizeof *p);
    ck_assert_ptr_nonnull(p);
    return p;
}

int32_t *tu_ints(size_t n) {
    int32_t *p = calloc(n ? n : 1, sizeof *p);
    ck_assert_ptr_nonnull(p);
    return p;
}

float *tu_rand_floats(size_t n, float scale, icl_rng *r) {
    float *p = tu_floats(n);
    tu_fill_uniform(p, n, scale, r);
    return p;
}

float *tu_dup_floats(const float *x, size_t n) {
    float *p = tu_floats(n);
    memcpy(p, x, n * sizeof *p);
    return p;
}

static char tmp_dir[64];

const char *tu_tmpdir_create(const char *tag) {
    snprintf(tmp_dir, sizeof tmp_dir, "/tmp/icl_test_%s_XXXXXX", tag);
    if (!mkdtemp(tmp_dir)) {
        perror("mkdtemp");
        return NULL;
    }
    return tmp_dir;
}

const char *tu_tmpdir(void) { return tmp_dir; }

void tu_tmp_path(char *buf, size_t cap, const char *name) { snprintf(buf, cap, "%s/%s", tmp_dir, name); }

int tu_count_temp_files(void) {
    DIR *d = opendir(tmp_dir);
    ck_assert_ptr_nonnull(d);
    int n = 0;
    for (struct dirent *e; (e = readdir(d));)
        n += strstr(e->d_name, ".tmp.") != NULL;
    closedir(d);
    return n;
}

/* A file, or a directory emptied first (a failed test can leave either). */
static void remove_tree(const char *path) {
    if (unlink(path) == 0)
        return;
    DIR *d = opendir(path);
    if (d) {
        for (struct dirent *e; (e = readdir(d));) {
            if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
                continue;
            char p[1024];
            snprintf(p, sizeof p, "%s/%s", path, e->d_name);
            remove_tree(p);
        }
        closedir(d);
    }
    rmdir(path);
}

void tu_tmpdir_remove(void) {
    if (tmp_dir[0])
        remove_tree(tmp_dir);
    tmp_dir[0] = '\0';
}

unsigned char *tu_read_file(const char *path, size_t *n) {
    FILE *f = fopen(path, "rb");
    ck_assert_msg(f != NULL, "cannot open %s", path);
    ck_assert_int_eq(fseek(f, 0, SEEK_END), 0);
    long size = ftell(f);
    ck_assert_int_ge(size, 0);
    rewind(f);
    unsigned char *buf = malloc((size_t)size + 1);
    ck_assert_ptr_nonnull(buf);
    ck_assert_uint_eq(fread(buf, 1, (size_t)size, f), (size_t)size);
    buf[size] = '\0';
    fclose(f);
    if (n)
        *n = (size_t)size;
    return buf;
}

void tu_write_file(const char *path, const void *data, size_t n) {
    FILE *f = fopen(path, "wb");
    ck_assert_msg(f != NULL, "cannot create %s", path);
    ck_assert_uint_eq(fwrite(data, 1, n, f), n);
    ck_assert_int_eq(fclose(f), 0);
}

icl_config tu_config(tu_model_shape s) {
    icl_config c = icl_config_default();
    if (s.family)
        ck_assert_int_eq(icl_task_family_fill_config(s.family, &c), ICL_OK);
    if (s.d_in > 0) {
        c.mode = ICL_MODE_VECTOR;
        c.d_in = s.d_in;
        c.d_out = s.d_out;
    }
    c.n_layer = s.n_layer ? s.n_layer : c.n_layer;
    c.d_model = s.d_model ? s.d_model : c.d_model;
    c.n_head = s.n_head ? s.n_head : c.n_head;
    c.d_ff = s.d_ff ? s.d_ff : c.d_ff;
    c.ctx = s.ctx ? s.ctx : c.ctx;
    c.vocab_size = s.vocab_size ? s.vocab_size : c.vocab_size;
    c.tie_embeddings = !s.untied;
    return c;
}

icl_model *tu_model(tu_model_shape s, uint64_t seed) {
    icl_config c = tu_config(s);
    icl_model *m = NULL;
    ck_assert_msg(icl_model_create(&m, &c, ICL_BACKEND_CPU, seed) == ICL_OK, "icl_model_create: %s", icl_last_error());
    return m;
}

const char *tu_cuda_unavailable_reason(void) {
#ifndef ICL_WITH_CUDA
    return "this libicl was built without CUDA";
#else
    fflush(stdout);
    pid_t pid = fork();
    if (pid < 0)
        return "could not fork a process to look for a CUDA device";
    if (pid == 0)
        _exit(icl_backend_available(ICL_BACKEND_CUDA) ? 0 : 1);
    int status = 0;
    if (waitpid(pid, &status, 0) != pid || !WIFEXITED(status))
        return "the process looking for a CUDA device failed";
    return WEXITSTATUS(status) == 0 ? NULL : "the CUDA runtime reports no usable device";
#endif
}

/* One batch of n-dimensional linear regression: y = sum of x, every position scored. */
static void fill_regression(icl_rng *r, int B, int T, int d, float *x, float *y) {
    tu_fill_uniform(x, (size_t)B * T * d, 1.0f, r);
    for (int i = 0; i < B * T; i++) {
        double s = 0.0;
        for (int k = 0; k < d; k++)
            s += x[(size_t)i * d + k];
        y[i] = (float)s;
    }
}

int tu_check_nan_step_rejected(icl_backend_kind backend, int warm) {
    enum { B = 4, T = 6, D = 3 };
    icl_config c = tu_config((tu_model_shape){.n_layer = 1, .d_model = 16, .n_head = 2, .ctx = T, .d_in = D,
            .d_out = 1});
    icl_model *m;
    icl_optimizer *o;
    icl_optim_config oc = icl_optim_config_default();
    ck_assert_int_eq(icl_model_create(&m, &c, backend, 2), ICL_OK);
    ck_assert_int_eq(icl_optimizer_create(&o, m, &oc), ICL_OK);
    float x[B * T * D], y[B * T];
    icl_batch b = {.B = B, .T = T, .inputs = x, .target_values = y};
    icl_rng r;
    icl_rng_init(&r, 2, "nan step");
    icl_step_stats st;
    int replayed = 0;
    for (int k = 0; k < warm; k++) {
        fill_regression(&r, B, T, D, x, y);
        ck_assert_int_eq(icl_train_step(m, o, &b, 1, &st), ICL_OK);
        replayed += st.graph;
    }
    size_t P = icl_model_num_params(m);
    float *p0 = tu_floats(P), *m0 = tu_floats(P), *v0 = tu_floats(P), *p1 = tu_floats(P), *m1 = tu_floats(P),
          *v1 = tu_floats(P);
    ck_assert_int_eq(icl_model_get_params(m, p0, P), ICL_OK);
    ck_assert_int_eq(icl_optimizer_get_state(o, m0, v0, P), ICL_OK);
    fill_regression(&r, B, T, D, x, y);
    x[7] = NAN;
    ck_assert_int_eq(icl_train_step(m, o, &b, 1, &st), ICL_ERR_NUMERIC);
    printf("  NaN input at step %d: %s\n", warm + 1, icl_last_error());
    ck_assert_int_eq(icl_model_get_params(m, p1, P), ICL_OK);
    ck_assert_int_eq(icl_optimizer_get_state(o, m1, v1, P), ICL_OK);
    ck_assert_msg(memcmp(p0, p1, P * 4) == 0, "a rejected step changed the parameters");
    ck_assert_msg(memcmp(m0, m1, P * 4) == 0 && memcmp(v0, v1, P * 4) == 0, "a rejected step changed Adam's moments");
    ck_assert_int_eq(icl_optimizer_step_count(o), warm);
    x[7] = 0.5f;
    ck_assert_int_eq(icl_train_step(m, o, &b, 1, &st), ICL_OK);
    replayed += st.graph;
    ck_assert(isfinite(st.loss) && st.step == warm + 1);
    ck_assert_int_eq(icl_model_get_params(m, p1, P), ICL_OK);
    ck_assert_msg(memcmp(p0, p1, P * 4) != 0, "the clean step after a rejected one did not train");
    free(p0), free(m0), free(v0), free(p1), free(m1), free(v1);
    icl_optimizer_free(o);
    icl_model_free(m);
    return replayed;
}

int tu_bin_dir(const char *argv0, char *out, size_t cap) {
    char self[PATH_MAX];
    if (!realpath(argv0, self)) {
        perror(argv0);
        return 1;
    }
    *strrchr(self, '/') = '\0'; /* .../build/tests */
    snprintf(out, cap, "%s/../bin", self);
    return 0;
}
