/* Safetensors checkpoints: bit-exact round trips, atomic saves, and a reader
 * that rejects every truncated, corrupted or inconsistent file with a status. */
#include <cjson/cJSON.h>
#include <fcntl.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>
#include "icl/icl.h"
#include "testutil.h"

/* ---- configs and fixtures ---- */

static icl_config tiny_token(int tied) {
    return tu_config((tu_model_shape){.n_layer = 1, .d_model = 8, .n_head = 2, .ctx = 8, .vocab_size = 7,
            .untied = !tied});
}

static icl_config tiny_vector(void) {
    return tu_config((tu_model_shape){.n_layer = 2, .d_model = 8, .n_head = 2, .d_ff = 12, .ctx = 6, .d_in = 3,
            .d_out = 2});
}

static void assert_same_config(const icl_config *a, const icl_config *b) {
    ck_assert_int_eq(a->mode, b->mode);
    ck_assert_int_eq(a->n_layer, b->n_layer);
    ck_assert_int_eq(a->d_model, b->d_model);
    ck_assert_int_eq(a->n_head, b->n_head);
    ck_assert_int_eq(icl_config_d_ff(a), icl_config_d_ff(b));
    ck_assert_int_eq(a->ctx, b->ctx);
    if (a->mode == ICL_MODE_TOKEN) {
        ck_assert_int_eq(a->vocab_size, b->vocab_size);
        ck_assert_int_eq(a->tie_embeddings, b->tie_embeddings);
    } else {
        ck_assert_int_eq(a->d_in, b->d_in);
        ck_assert_int_eq(a->d_out, b->d_out);
    }
}

/* Arbitrary bit patterns (NaN payloads, -0, denormals, Inf included): the
 * checkpoint must carry bits, not values. */
static void fill_bits(float *x, size_t n, icl_rng *r) {
    for (size_t i = 0; i < n; i++) {
        uint32_t u = icl_rng_u32(r);
        memcpy(&x[i], &u, 4);
    }
}

typedef struct {
    icl_model *model;
    icl_optimizer *opt;
    icl_rng data_rng;
    size_t n;
    float *params, *m, *v; /* what was put into the model and optimizer */
} fixture;

static icl_optim_config odd_optim_config(void) {
    icl_optim_config oc = icl_optim_config_default();
    oc.lr = 3.0e-4f + 1.0e-11f; /* values that are not short decimals */
    oc.min_lr_frac = 1.0f / 3.0f;
    oc.warmup_steps = 17;
    oc.total_steps = 1234;
    oc.beta1 = 0.85f;
    oc.beta2 = 0.9995f;
    oc.eps = 1.0e-7f;
    oc.weight_decay = 0.1f;
    oc.grad_clip = -1.0f;
    return oc;
}

static void fixture_make(fixture *f, const icl_config *cfg, uint64_t seed) {
    ck_assert_int_eq(icl_model_create(&f->model, cfg, ICL_BACKEND_CPU, seed), ICL_OK);
    icl_optim_config oc = odd_optim_config();
    ck_assert_int_eq(icl_optimizer_create(&f->opt, f->model, &oc), ICL_OK);
    f->n = icl_model_num_params(f->model);
    f->params = tu_floats(f->n);
    f->m = tu_floats(f->n);
    f->v = tu_floats(f->n);
    icl_rng r;
    icl_rng_init(&r, seed, "checkpoint-test");
    fill_bits(f->params, f->n, &r);
    fill_bits(f->m, f->n, &r);
    fill_bits(f->v, f->n, &r);
    ck_assert_int_eq(icl_model_set_params(f->model, f->params, f->n), ICL_OK);
    ck_assert_int_eq(icl_optimizer_set_state(f->opt, f->m, f->v, f->n, 5), ICL_OK);
    icl_rng_init(&f->data_rng, seed, "data");
    for (int i = 0; i < 6; i++) /* mid-block: buf_pos 2 */
        icl_rng_u32(&f->data_rng);
}

static void fixture_free(fixture *f) {
    icl_optimizer_free(f->opt);
    icl_model_free(f->model);
    free(f->params);
    free(f->m);
    free(f->v);
}

/* ---- raw file helpers ---- */

static uint64_t header_len_of(const unsigned char *bytes) {
    uint64_t n = 0;
    for (int i = 7; i >= 0; i--)
        n = (n << 8) | bytes[i];
    return n;
}

/* A file with the given length field, header text and data section. */
static void write_parts(const char *path, uint64_t len_field, const char *header, size_t header_size,
                        const unsigned char *data, size_t data_size) {
    FILE *fp = fopen(path, "wb");
    ck_assert_ptr_nonnull(fp);
    unsigned char len[8];
    for (int i = 0; i < 8; i++)
        len[i] = (unsigned char)(len_field >> (8 * i));
    ck_assert_uint_eq(fwrite(len, 1, 8, fp), 8);
    ck_assert_uint_eq(fwrite(header, 1, header_size, fp), header_size);
    ck_assert_uint_eq(fwrite(data, 1, data_size, fp), data_size);
    ck_assert_int_eq(fclose(fp), 0);
}

static void assert_model_params(const icl_model *m, const float *want, size_t n) {
    ck_assert_uint_eq(icl_model_num_params(m), n);
    float *got = tu_floats(n);
    ck_assert_int_eq(icl_model_get_params(m, got, n), ICL_OK);
    ck_assert_msg(memcmp(got, want, n * 4) == 0, "loaded parameters differ from the saved bits");
    free(got);
}

/* ---- round trips ---- */

typedef struct {
    char **lines;
    int n;
} line_list;

static void collect_line(void *user, const char *line) {
    line_list *l = user;
    l->lines = realloc(l->lines, (size_t)(l->n + 1) * sizeof *l->lines);
    l->lines[l->n++] = strdup(line);
}

static void free_lines(line_list *l) {
    for (int i = 0; i < l->n; i++)
        free(l->lines[i]);
    free(l->lines);
}

static const char *find_line(const line_list *l, const char *prefix) {
    for (int i = 0; i < l->n; i++)
        if (strncmp(l->lines[i], prefix, strlen(prefix)) == 0)
            return l->lines[i];
    return NULL;
}

static void check_round_trip(const icl_config *cfg, const char *label) {
    fixture f;
    fixture_make(&f, cfg, 11);
    char path[128];
    tu_tmp_path(path, sizeof path, "round_trip.safetensors");
    ck_assert_int_eq(icl_checkpoint_save(path, f.model, f.opt, &f.data_rng), ICL_OK);
    ck_assert_int_eq(tu_count_temp_files(), 0);

    icl_config got_cfg;
    ck_assert_int_eq(icl_checkpoint_read_config(path, &got_cfg), ICL_OK);
    assert_same_config(&got_cfg, cfg);

    icl_model *loaded;
    icl_status st = icl_checkpoint_load_model(path, ICL_BACKEND_CPU, &loaded);
    ck_assert_msg(st == ICL_OK, "%s", icl_last_error());
    assert_same_config(icl_model_config(loaded), cfg);
    ck_assert_int_eq(icl_model_num_tensors(loaded), icl_model_num_tensors(f.model));
    assert_model_params(loaded, f.params, f.n);

    icl_optimizer *opt;
    icl_optim_config oc = icl_optim_config_default();
    ck_assert_int_eq(icl_optimizer_create(&opt, loaded, &oc), ICL_OK);
    icl_rng rng;
    icl_rng_init(&rng, 999, "unrelated");
    ck_assert_int_eq(icl_checkpoint_load_state(path, opt, &rng), ICL_OK);
    ck_assert_int_eq(icl_optimizer_step_count(opt), 5);
    float *m = tu_floats(f.n), *v = tu_floats(f.n);
    ck_assert_int_eq(icl_optimizer_get_state(opt, m, v, f.n), ICL_OK);
    ck_assert_msg(memcmp(m, f.m, f.n * 4) == 0, "Adam m differs");
    ck_assert_msg(memcmp(v, f.v, f.n * 4) == 0, "Adam v differs");
    ck_assert_uint_eq(rng.key, f.data_rng.key);
    ck_assert_uint_eq(rng.counter, f.data_rng.counter);
    ck_assert_int_eq(rng.buf_pos, f.data_rng.buf_pos);
    for (int i = 0; i < 10; i++)
        ck_assert_uint_eq(icl_rng_u32(&rng), icl_rng_u32(&f.data_rng));

    /* The optimizer config travels as JSON text; its floats must come back exactly. */
    line_list lines = {0};
    ck_assert_int_eq(icl_checkpoint_describe(path, collect_line, &lines), ICL_OK);
    const char *optim_line = find_line(&lines, "icl.optim = ");
    ck_assert_ptr_nonnull(optim_line);
    cJSON *oj = cJSON_Parse(optim_line + strlen("icl.optim = "));
    ck_assert_ptr_nonnull(oj);
    icl_optim_config want = odd_optim_config();
    ck_assert(cJSON_GetObjectItem(oj, "lr")->valuedouble == (double)want.lr);
    ck_assert(cJSON_GetObjectItem(oj, "min_lr_frac")->valuedouble == (double)want.min_lr_frac);
    ck_assert(cJSON_GetObjectItem(oj, "beta2")->valuedouble == (double)want.beta2);
    ck_assert(cJSON_GetObjectItem(oj, "eps")->valuedouble == (double)want.eps);
    ck_assert(cJSON_GetObjectItem(oj, "grad_clip")->valuedouble == (double)want.grad_clip);
    ck_assert_int_eq(cJSON_GetObjectItem(oj, "total_steps")->valueint, 1234);
    cJSON_Delete(oj);
    free_lines(&lines);

    printf("  round trip %-14s %zu params + %zu Adam moments + step + rng: bit-exact\n", label, f.n, 2 * f.n);
    free(m);
    free(v);
    icl_optimizer_free(opt);
    icl_model_free(loaded);
    fixture_free(&f);
    unlink(path);
}

START_TEST(round_trip_token_tied) {
    icl_config c = tiny_token(1);
    check_round_trip(&c, "token/tied");
}
END_TEST

START_TEST(round_trip_token_untied) {
    icl_config c = tiny_token(0);
    check_round_trip(&c, "token/untied");
}
END_TEST

START_TEST(round_trip_vector) {
    icl_config c = tiny_vector();
    check_round_trip(&c, "vector");
}
END_TEST

START_TEST(model_only_checkpoint) {
    icl_config cfg = tiny_token(1);
    fixture f;
    fixture_make(&f, &cfg, 3);
    char path[128];
    tu_tmp_path(path, sizeof path, "model_only.safetensors");
    ck_assert_int_eq(icl_checkpoint_save(path, f.model, NULL, NULL), ICL_OK);
    icl_model *loaded;
    ck_assert_int_eq(icl_checkpoint_load_model(path, ICL_BACKEND_CPU, &loaded), ICL_OK);
    assert_model_params(loaded, f.params, f.n);
    line_list lines = {0};
    ck_assert_int_eq(icl_checkpoint_describe(path, collect_line, &lines), ICL_OK);
    ck_assert_ptr_nonnull(find_line(&lines, "icl.step = 0"));
    ck_assert_ptr_null(find_line(&lines, "icl.optim"));
    ck_assert_ptr_null(find_line(&lines, "icl.rng"));
    ck_assert_ptr_null(find_line(&lines, "optim."));
    free_lines(&lines);
    icl_rng rng;
    icl_rng_init(&rng, 1, "x");
    icl_rng before = rng;
    ck_assert_int_eq(icl_checkpoint_load_state(path, f.opt, NULL), ICL_ERR_FORMAT);
    ck_assert_ptr_nonnull(strstr(icl_last_error(), "without optimizer state"));
    ck_assert_int_eq(icl_checkpoint_load_state(path, NULL, &rng), ICL_ERR_FORMAT);
    ck_assert_ptr_nonnull(strstr(icl_last_error(), "without an RNG state"));
    ck_assert_int_eq(memcmp(&rng, &before, sizeof rng), 0);
    ck_assert_int_eq(icl_checkpoint_load_state(path, NULL, NULL), ICL_OK);
    icl_model_free(loaded);
    fixture_free(&f);
    unlink(path);
}
END_TEST

START_TEST(user_metadata) {
    icl_config cfg = tiny_token(1);
    fixture f;
    fixture_make(&f, &cfg, 3);
    char path[128], buf[64];
    tu_tmp_path(path, sizeof path, "meta.safetensors");
    icl_meta_entry meta[] = {{"user.task", "retrieval:A=16,L=6"}, {"user.note", "x"}};
    ck_assert_int_eq(icl_checkpoint_save_with_meta(path, f.model, f.opt, NULL, meta, 2), ICL_OK);
    ck_assert_int_eq(icl_checkpoint_read_meta(path, "user.task", buf, sizeof buf), ICL_OK);
    ck_assert_str_eq(buf, "retrieval:A=16,L=6");
    ck_assert_int_eq(icl_checkpoint_read_meta(path, "icl.step", buf, sizeof buf), ICL_OK);
    char want[32];
    snprintf(want, sizeof want, "%ld", icl_optimizer_step_count(f.opt));
    ck_assert_str_eq(buf, want);
    ck_assert_int_eq(icl_checkpoint_read_meta(path, "user.task", buf, 5), ICL_ERR_INVALID_ARG);
    ck_assert_int_eq(icl_checkpoint_read_meta(path, "user.missing", buf, sizeof buf), ICL_ERR_INVALID_ARG);
    icl_model *loaded;
    ck_assert_int_eq(icl_checkpoint_load_model(path, ICL_BACKEND_CPU, &loaded), ICL_OK);
    icl_model_free(loaded);
    icl_meta_entry bad_key[] = {{"icl.task", "x"}};
    ck_assert_int_eq(icl_checkpoint_save_with_meta(path, f.model, NULL, NULL, bad_key, 1), ICL_ERR_INVALID_ARG);
    icl_meta_entry repeated[] = {{"user.a", "1"}, {"user.a", "2"}};
    ck_assert_int_eq(icl_checkpoint_save_with_meta(path, f.model, NULL, NULL, repeated, 2), ICL_ERR_INVALID_ARG);
    /* the failed saves left the first file in place */
    ck_assert_int_eq(icl_checkpoint_read_meta(path, "user.note", buf, sizeof buf), ICL_OK);
    ck_assert_str_eq(buf, "x");
    fixture_free(&f);
    unlink(path);
}
END_TEST

/* The bytes follow the safetensors layout, read here independently of the library. */
START_TEST(file_layout) {
    icl_config cfg = tiny_token(1);
    fixture f;
    fixture_make(&f, &cfg, 5);
    char path[128];
    tu_tmp_path(path, sizeof path, "layout.safetensors");
    ck_assert_int_eq(icl_checkpoint_save(path, f.model, f.opt, &f.data_rng), ICL_OK);
    size_t size;
    unsigned char *bytes = tu_read_file(path, &size);
    uint64_t n = header_len_of(bytes);
    ck_assert_uint_eq(n % 8, 0);
    ck_assert_uint_eq(bytes[8], '{');
    ck_assert_uint_eq(8 + n + 3 * f.n * 4, size);
    cJSON *root = cJSON_ParseWithLength((const char *)bytes + 8, (size_t)n);
    ck_assert_ptr_nonnull(root);
    cJSON *meta = cJSON_GetObjectItem(root, "__metadata__");
    ck_assert_str_eq(cJSON_GetObjectItem(meta, "icl.format")->valuestring, "1");
    ck_assert_str_eq(cJSON_GetObjectItem(meta, "icl.step")->valuestring, "5");
    ck_assert_str_eq(cJSON_GetObjectItem(meta, "icl.library")->valuestring, "libicl 0.1.0");
    char rng_text[64];
    icl_rng_to_string(&f.data_rng, rng_text);
    ck_assert_str_eq(cJSON_GetObjectItem(meta, "icl.rng")->valuestring, rng_text);
    char cfg_json[512];
    ck_assert_int_eq(icl_config_to_json(&cfg, cfg_json, sizeof cfg_json), ICL_OK);
    ck_assert_str_eq(cJSON_GetObjectItem(meta, "icl.config")->valuestring, cfg_json);
    /* Tensors contiguous in model order, then optim.m.*, then optim.v.*. */
    uint64_t pos = 0;
    int nt = icl_model_num_tensors(f.model);
    const char *prefix[3] = {"", "optim.m.", "optim.v."};
    const float *src[3] = {f.params, f.m, f.v};
    for (int role = 0; role < 3; role++)
        for (int i = 0; i < nt; i++) {
            const icl_param_info *t = icl_model_tensor(f.model, i);
            char name[128];
            snprintf(name, sizeof name, "%s%s", prefix[role], t->name);
            cJSON *e = cJSON_GetObjectItem(root, name);
            ck_assert_msg(e != NULL, "no entry %s", name);
            ck_assert_str_eq(cJSON_GetObjectItem(e, "dtype")->valuestring, "F32");
            cJSON *shape = cJSON_GetObjectItem(e, "shape");
            ck_assert_int_eq(cJSON_GetArraySize(shape), t->ndim);
            for (int d = 0; d < t->ndim; d++)
                ck_assert_int_eq(cJSON_GetArrayItem(shape, d)->valueint, t->shape[d]);
            cJSON *off = cJSON_GetObjectItem(e, "data_offsets");
            ck_assert_uint_eq((uint64_t)cJSON_GetArrayItem(off, 0)->valuedouble, pos);
            ck_assert_uint_eq((uint64_t)cJSON_GetArrayItem(off, 1)->valuedouble, pos + t->numel * 4);
            ck_assert_int_eq(memcmp(bytes + 8 + n + pos, src[role] + t->offset, t->numel * 4), 0);
            pos += t->numel * 4;
        }
    ck_assert_int_eq(cJSON_GetArraySize(root), 1 + 3 * nt);
    printf("  layout: %d entries, %llu-byte header, tensors tile the %llu data bytes in model order\n", 3 * nt,
           (unsigned long long)n, (unsigned long long)pos);
    cJSON_Delete(root);
    free(bytes);
    fixture_free(&f);
    unlink(path);
}
END_TEST

START_TEST(describe_lines) {
    icl_config cfg = tiny_token(1);
    fixture f;
    fixture_make(&f, &cfg, 5);
    char path[128];
    tu_tmp_path(path, sizeof path, "describe.safetensors");
    ck_assert_int_eq(icl_checkpoint_save(path, f.model, f.opt, &f.data_rng), ICL_OK);
    line_list lines = {0};
    ck_assert_int_eq(icl_checkpoint_describe(path, collect_line, &lines), ICL_OK);
    for (int i = 0; i < lines.n && i < 12; i++)
        printf("    | %s\n", lines.lines[i]);
    ck_assert_ptr_nonnull(find_line(&lines, "safetensors checkpoint: "));
    ck_assert_ptr_nonnull(find_line(&lines, "icl.format = 1"));
    ck_assert_ptr_nonnull(find_line(&lines, "icl.step = 5"));
    ck_assert_ptr_nonnull(find_line(&lines, "icl.config = {"));
    ck_assert_ptr_nonnull(find_line(&lines, "icl.library = libicl 0.1.0"));
    const char *head = find_line(&lines, "name ");
    ck_assert_ptr_nonnull(head);
    ck_assert_ptr_nonnull(strstr(head, "dtype"));
    ck_assert_ptr_nonnull(strstr(head, "shape"));
    ck_assert_ptr_nonnull(strstr(head, "offsets"));
    const char *tok = find_line(&lines, "tok_embed.weight ");
    ck_assert_ptr_nonnull(tok);
    ck_assert_ptr_nonnull(strstr(tok, "F32"));
    ck_assert_ptr_nonnull(strstr(tok, "[7, 8]"));
    ck_assert_ptr_nonnull(strstr(tok, "[0, 224]"));
    int rows = 0;
    for (int i = 0; i < lines.n; i++)
        rows += strstr(lines.lines[i], "  F32  ") != NULL;
    ck_assert_int_eq(rows, 3 * icl_model_num_tensors(f.model));
    free_lines(&lines);
    fixture_free(&f);
    unlink(path);
}
END_TEST

/* ---- failed saves leave the old file alone ---- */

static void assert_file_is(const char *path, const unsigned char *want, size_t n) {
    size_t got_n;
    unsigned char *got = tu_read_file(path, &got_n);
    ck_assert_uint_eq(got_n, n);
    ck_assert_msg(memcmp(got, want, n) == 0, "%s changed", path);
    free(got);
}

START_TEST(failed_save_keeps_old_checkpoint) {
    icl_config cfg = tiny_token(1);
    fixture f;
    fixture_make(&f, &cfg, 8);
    char path[128];
    tu_tmp_path(path, sizeof path, "keep.safetensors");
    ck_assert_int_eq(icl_checkpoint_save(path, f.model, NULL, NULL), ICL_OK);
    size_t old_n;
    unsigned char *old = tu_read_file(path, &old_n);

    /* An optimizer of a different model: refused before anything is written. */
    fixture other;
    icl_config bigger = tiny_token(0);
    fixture_make(&other, &bigger, 9);
    ck_assert_int_eq(icl_checkpoint_save(path, f.model, other.opt, NULL), ICL_ERR_SHAPE);
    assert_file_is(path, old, old_n);

    /* The write itself fails part-way (file size limit, as on a full disk). */
    signal(SIGXFSZ, SIG_IGN);
    struct rlimit saved, lim;
    ck_assert_int_eq(getrlimit(RLIMIT_FSIZE, &saved), 0);
    lim = saved;
    lim.rlim_cur = 2048;
    ck_assert_int_eq(setrlimit(RLIMIT_FSIZE, &lim), 0);
    icl_status st = icl_checkpoint_save(path, f.model, f.opt, &f.data_rng);
    ck_assert_int_eq(setrlimit(RLIMIT_FSIZE, &saved), 0);
    ck_assert_int_eq(st, ICL_ERR_IO);
    printf("  save past a 2 KiB file size limit: %s\n", icl_last_error());
    assert_file_is(path, old, old_n);
    ck_assert_int_eq(tu_count_temp_files(), 0);
    icl_model *loaded;
    ck_assert_int_eq(icl_checkpoint_load_model(path, ICL_BACKEND_CPU, &loaded), ICL_OK);
    assert_model_params(loaded, f.params, f.n);
    icl_model_free(loaded);

    /* A directory in the way of the rename. */
    char dir[128], inside[160];
    tu_tmp_path(dir, sizeof dir, "a_directory");
    ck_assert_int_eq(mkdir(dir, 0755), 0);
    snprintf(inside, sizeof inside, "%s/old.safetensors", dir);
    tu_write_file(inside, old, old_n);
    ck_assert_int_eq(icl_checkpoint_save(dir, f.model, f.opt, NULL), ICL_ERR_IO);
    ck_assert_ptr_nonnull(strstr(icl_last_error(), dir));
    assert_file_is(inside, old, old_n);
    ck_assert_int_eq(tu_count_temp_files(), 0);
    unlink(inside);
    rmdir(dir);

    /* A directory that does not exist. */
    char missing[160];
    tu_tmp_path(missing, sizeof missing, "no/such/dir/ck.safetensors");
    ck_assert_int_eq(icl_checkpoint_save(missing, f.model, NULL, NULL), ICL_ERR_IO);
    ck_assert_ptr_nonnull(strstr(icl_last_error(), missing));
    ck_assert_ptr_nonnull(strstr(icl_last_error(), "No such file"));

    free(old);
    fixture_free(&other);
    fixture_free(&f);
    unlink(path);
}
END_TEST

START_TEST(bad_arguments) {
    icl_config cfg = tiny_token(1);
    fixture f;
    fixture_make(&f, &cfg, 2);
    char path[128];
    tu_tmp_path(path, sizeof path, "args.safetensors");
    icl_model *m = (icl_model *)1;
    icl_config c;
    ck_assert_int_eq(icl_checkpoint_save(NULL, f.model, NULL, NULL), ICL_ERR_INVALID_ARG);
    ck_assert_int_eq(icl_checkpoint_save(path, NULL, NULL, NULL), ICL_ERR_INVALID_ARG);
    ck_assert_int_eq(icl_checkpoint_read_config(NULL, &c), ICL_ERR_INVALID_ARG);
    ck_assert_int_eq(icl_checkpoint_read_config(path, NULL), ICL_ERR_INVALID_ARG);
    ck_assert_int_eq(icl_checkpoint_load_model(path, ICL_BACKEND_CPU, NULL), ICL_ERR_INVALID_ARG);
    ck_assert_int_eq(icl_checkpoint_load_model(NULL, ICL_BACKEND_CPU, &m), ICL_ERR_INVALID_ARG);
    ck_assert_ptr_null(m);
    ck_assert_int_eq(icl_checkpoint_load_state(NULL, f.opt, NULL), ICL_ERR_INVALID_ARG);
    ck_assert_int_eq(icl_checkpoint_describe(path, NULL, NULL), ICL_ERR_INVALID_ARG);
    ck_assert_int_eq(icl_checkpoint_describe(NULL, collect_line, NULL), ICL_ERR_INVALID_ARG);
    /* Missing file and a directory: I/O errors naming the path. */
    ck_assert_int_eq(icl_checkpoint_load_model(path, ICL_BACKEND_CPU, &m), ICL_ERR_IO);
    ck_assert_ptr_nonnull(strstr(icl_last_error(), path));
    ck_assert_int_eq(icl_checkpoint_read_config(tu_tmpdir(), &c), ICL_ERR_IO);
    /* An optimizer whose config cannot be written as JSON. */
    icl_optim_config oc = icl_optim_config_default();
    oc.grad_clip = INFINITY;
    icl_optimizer *opt;
    ck_assert_int_eq(icl_optimizer_create(&opt, f.model, &oc), ICL_OK);
    ck_assert_int_eq(icl_checkpoint_save(path, f.model, opt, NULL), ICL_ERR_INVALID_ARG);
    ck_assert_int_eq(access(path, F_OK), -1);
    icl_optimizer_free(opt);
    fixture_free(&f);
}
END_TEST

/* ---- corrupted files ---- */

/* A saved tiny checkpoint with optimizer and RNG; returns its bytes. */
static unsigned char *saved_bytes(const char *path, fixture *f, size_t *n) {
    icl_config cfg = tiny_token(1);
    fixture_make(f, &cfg, 21);
    ck_assert_int_eq(icl_checkpoint_save(path, f->model, f->opt, &f->data_rng), ICL_OK);
    return tu_read_file(path, n);
}

START_TEST(every_truncation_rejected) {
    char path[128];
    tu_tmp_path(path, sizeof path, "truncate.safetensors");
    fixture f;
    size_t size;
    unsigned char *bytes = saved_bytes(path, &f, &size);
    int counts[3] = {0, 0, 0}; /* failing in: length field, header, data */
    uint64_t hlen = header_len_of(bytes);
    for (size_t len = size; len-- > 0;) {
        ck_assert_int_eq(truncate(path, (off_t)len), 0);
        icl_model *m = (icl_model *)1;
        icl_status st = icl_checkpoint_load_model(path, ICL_BACKEND_CPU, &m);
        ck_assert_msg(st == ICL_ERR_FORMAT, "%zu of %zu bytes: %s (%s)", len, size, icl_status_name(st),
                      icl_last_error());
        ck_assert_ptr_null(m);
        icl_config c;
        ck_assert_int_eq(icl_checkpoint_read_config(path, &c), ICL_ERR_FORMAT);
        counts[len < 8 ? 0 : len < 8 + hlen ? 1 : 2]++;
    }
    printf("  every truncation of a %zu-byte checkpoint rejected: %d in the length, %d in the header, %d in the data\n",
           size, counts[0], counts[1], counts[2]);
    free(bytes);
    fixture_free(&f);
    unlink(path);
}
END_TEST

START_TEST(flipped_header_bytes) {
    char path[128];
    tu_tmp_path(path, sizeof path, "flip.safetensors");
    fixture f;
    size_t size;
    unsigned char *bytes = saved_bytes(path, &f, &size);
    uint64_t hlen = header_len_of(bytes);
    icl_config cfg = tiny_token(1);
    int fd = open(path, O_RDWR);
    ck_assert_int_ge(fd, 0);
    static const unsigned char masks[] = {0x01, 0x20, 0x80};
    int rejected = 0, accepted = 0;
    for (size_t pos = 0; pos < 8 + hlen; pos++)
        for (size_t k = 0; k < sizeof masks; k++) {
            unsigned char b = bytes[pos] ^ masks[k];
            ck_assert_int_eq(pwrite(fd, &b, 1, (off_t)pos), 1);
            icl_model *m = NULL;
            icl_status st = icl_checkpoint_load_model(path, ICL_BACKEND_CPU, &m);
            if (st == ICL_OK) {
                /* Still valid and meaning the same model: e.g. a changed library string. */
                assert_same_config(icl_model_config(m), &cfg);
                assert_model_params(m, f.params, f.n);
                icl_model_free(m);
                accepted++;
            } else {
                ck_assert_msg(st == ICL_ERR_FORMAT, "flip 0x%02x at byte %zu: %s (%s)", masks[k], pos,
                              icl_status_name(st), icl_last_error());
                ck_assert_ptr_null(m);
                rejected++;
            }
            ck_assert_int_eq(pwrite(fd, &bytes[pos], 1, (off_t)pos), 1);
        }
    close(fd);
    ck_assert_int_gt(rejected, 0);
    printf("  %d single-bit flips in the length + %llu-byte header: %d rejected, %d loaded the same model\n",
           rejected + accepted, (unsigned long long)hlen, rejected, accepted);
    free(bytes);
    fixture_free(&f);
    unlink(path);
}
END_TEST

/* Edits of the parsed header, applied to a good file. */
typedef void (*edit_fn)(cJSON *root);

static cJSON *entry_of(cJSON *root, const char *name) {
    cJSON *e = cJSON_GetObjectItemCaseSensitive(root, name);
    ck_assert_msg(e != NULL, "fixture has no %s", name);
    return e;
}

static void set_offsets(cJSON *root, const char *name, double begin, double end) {
    cJSON *off = cJSON_CreateArray();
    cJSON_AddItemToArray(off, cJSON_CreateNumber(begin));
    cJSON_AddItemToArray(off, cJSON_CreateNumber(end));
    cJSON_ReplaceItemInObjectCaseSensitive(entry_of(root, name), "data_offsets", off);
}

static void set_shape(cJSON *root, const char *name, const int *dims, int n) {
    cJSON_ReplaceItemInObjectCaseSensitive(entry_of(root, name), "shape", cJSON_CreateIntArray(dims, n));
}

static void set_meta(cJSON *root, const char *key, const char *value) {
    cJSON *meta = cJSON_GetObjectItem(root, "__metadata__");
    cJSON_DeleteItemFromObjectCaseSensitive(meta, key);
    if (value)
        cJSON_AddStringToObject(meta, key, value);
}

/* Replace `from` by `to` in the config JSON of the metadata. */
static void edit_config(cJSON *root, const char *from, const char *to) {
    const char *cfg = cJSON_GetObjectItem(cJSON_GetObjectItem(root, "__metadata__"), "icl.config")->valuestring;
    const char *at = strstr(cfg, from);
    ck_assert_ptr_nonnull(at);
    char buf[512];
    snprintf(buf, sizeof buf, "%.*s%s%s", (int)(at - cfg), cfg, to, at + strlen(from));
    set_meta(root, "icl.config", buf);
}

static void e_dtype_f16(cJSON *r) {
    cJSON_ReplaceItemInObjectCaseSensitive(entry_of(r, "tok_embed.weight"), "dtype", cJSON_CreateString("F16"));
}
static void e_dtype_number(cJSON *r) {
    cJSON_ReplaceItemInObjectCaseSensitive(entry_of(r, "tok_embed.weight"), "dtype", cJSON_CreateNumber(32));
}
static void e_end_past_data(cJSON *r) {
    cJSON *off = cJSON_GetObjectItem(entry_of(r, "optim.v.ln_f.bias"), "data_offsets");
    double end = cJSON_GetArrayItem(off, 1)->valuedouble;
    set_offsets(r, "optim.v.ln_f.bias", end - 32, end + 4);
}
static void e_begin_after_end(cJSON *r) { set_offsets(r, "tok_embed.weight", 224, 0); }
static void e_fractional_offset(cJSON *r) { set_offsets(r, "tok_embed.weight", 0.5, 224); }
static void e_negative_offset(cJSON *r) { set_offsets(r, "tok_embed.weight", -4, 220); }
static void e_huge_offset(cJSON *r) { set_offsets(r, "tok_embed.weight", 0, 1e300); }
static void e_string_offset(cJSON *r) {
    cJSON *off = cJSON_CreateArray();
    cJSON_AddItemToArray(off, cJSON_CreateString("0"));
    cJSON_AddItemToArray(off, cJSON_CreateNumber(224));
    cJSON_ReplaceItemInObjectCaseSensitive(entry_of(r, "tok_embed.weight"), "data_offsets", off);
}
static void e_one_offset(cJSON *r) {
    cJSON *off = cJSON_CreateArray();
    cJSON_AddItemToArray(off, cJSON_CreateNumber(0));
    cJSON_ReplaceItemInObjectCaseSensitive(entry_of(r, "tok_embed.weight"), "data_offsets", off);
}
static void e_short_span(cJSON *r) { set_offsets(r, "tok_embed.weight", 0, 220); }
static void e_shape_transposed(cJSON *r) { set_shape(r, "tok_embed.weight", (const int[]){8, 7}, 2); }
static void e_shape_flat(cJSON *r) { set_shape(r, "tok_embed.weight", (const int[]){56}, 1); }
static void e_shape_3d(cJSON *r) { set_shape(r, "tok_embed.weight", (const int[]){7, 8, 1}, 3); }
static void e_shape_negative(cJSON *r) { set_shape(r, "tok_embed.weight", (const int[]){-7, 8}, 2); }
static void e_extra_tensor(cJSON *r) {
    cJSON_AddItemToObject(r, "extra.weight", cJSON_Duplicate(entry_of(r, "blocks.0.ln1.bias"), 1));
}
static void e_missing_tensor(cJSON *r) { cJSON_DeleteItemFromObjectCaseSensitive(r, "ln_f.bias"); }
static void e_missing_moment(cJSON *r) { cJSON_DeleteItemFromObjectCaseSensitive(r, "optim.m.ln_f.bias"); }
static void e_duplicate_tensor(cJSON *r) {
    cJSON_AddItemToObject(r, "ln_f.bias", cJSON_Duplicate(entry_of(r, "ln_f.bias"), 1));
}
static void e_overlap(cJSON *r) {
    cJSON *off = cJSON_GetObjectItem(entry_of(r, "blocks.0.ln1.weight"), "data_offsets");
    set_offsets(r, "blocks.0.ln1.bias", cJSON_GetArrayItem(off, 0)->valuedouble,
                cJSON_GetArrayItem(off, 1)->valuedouble);
}
static void e_entry_not_object(cJSON *r) {
    cJSON_ReplaceItemInObjectCaseSensitive(r, "tok_embed.weight", cJSON_CreateArray());
}
static void e_entry_extra_field(cJSON *r) { cJSON_AddNumberToObject(entry_of(r, "tok_embed.weight"), "foo", 1); }
static void e_entry_no_dtype(cJSON *r) { cJSON_DeleteItemFromObject(entry_of(r, "tok_embed.weight"), "dtype"); }
static void e_no_metadata(cJSON *r) { cJSON_DeleteItemFromObjectCaseSensitive(r, "__metadata__"); }
static void e_metadata_not_object(cJSON *r) {
    cJSON_ReplaceItemInObjectCaseSensitive(r, "__metadata__", cJSON_CreateString("x"));
}
static void e_metadata_number(cJSON *r) {
    cJSON *meta = cJSON_GetObjectItem(r, "__metadata__");
    cJSON_DeleteItemFromObjectCaseSensitive(meta, "icl.step");
    cJSON_AddNumberToObject(meta, "icl.step", 5);
}
static void e_no_config(cJSON *r) { set_meta(r, "icl.config", NULL); }
static void e_config_not_json(cJSON *r) { set_meta(r, "icl.config", "{\"mode\":"); }
static void e_config_invalid(cJSON *r) { edit_config(r, "\"n_head\":2", "\"n_head\":3"); }
static void e_config_other_vocab(cJSON *r) { edit_config(r, "\"vocab_size\":7", "\"vocab_size\":6"); }
static void e_config_bigger(cJSON *r) { edit_config(r, "\"d_model\":8", "\"d_model\":4096"); }
static void e_no_format(cJSON *r) { set_meta(r, "icl.format", NULL); }
static void e_format_2(cJSON *r) { set_meta(r, "icl.format", "2"); }
static void e_bad_rng(cJSON *r) { set_meta(r, "icl.rng", "zz:1:2"); }
static void e_negative_step(cJSON *r) { set_meta(r, "icl.step", "-3"); }
static void e_no_step(cJSON *r) { set_meta(r, "icl.step", NULL); }
static void e_no_optim(cJSON *r) {
    set_meta(r, "icl.optim", NULL);
    set_meta(r, "icl.step", "0");
}
static void e_optim_bad_lr(cJSON *r) {
    set_meta(r, "icl.optim", "{\"lr\":-1,\"min_lr_frac\":0.1,\"warmup_steps\":1,\"total_steps\":2,\"beta1\":0.9,"
                             "\"beta2\":0.99,\"eps\":1e-8,\"weight_decay\":0,\"grad_clip\":1}");
}
static void e_optim_huge_lr(cJSON *r) {
    set_meta(r, "icl.optim", "{\"lr\":1e300,\"min_lr_frac\":0.1,\"warmup_steps\":1,\"total_steps\":2,\"beta1\":0.9,"
                             "\"beta2\":0.99,\"eps\":1e-8,\"weight_decay\":0,\"grad_clip\":1}");
}
static void e_optim_missing_field(cJSON *r) { set_meta(r, "icl.optim", "{\"lr\":0.001}"); }
static void e_optim_not_json(cJSON *r) { set_meta(r, "icl.optim", "lr=0.001"); }
static void e_unknown_icl_key(cJSON *r) { set_meta(r, "icl.bogus", "1"); }
static void e_root_array(cJSON *r) {
    while (r->child)
        cJSON_Delete(cJSON_DetachItemViaPointer(r, r->child));
    r->type = cJSON_Array;
    cJSON_AddItemToArray(r, cJSON_CreateNumber(1));
}
/* Accepted: other tools may add their own metadata. */
static void e_foreign_metadata(cJSON *r) { set_meta(r, "author", "someone"); }
/* Accepted: offsets, not order, say where a tensor is. */
static void e_swap_ln1(cJSON *r) {
    cJSON *w = cJSON_GetObjectItem(entry_of(r, "blocks.0.ln1.weight"), "data_offsets");
    cJSON *b = cJSON_GetObjectItem(entry_of(r, "blocks.0.ln1.bias"), "data_offsets");
    double wb = cJSON_GetArrayItem(w, 0)->valuedouble, we = cJSON_GetArrayItem(w, 1)->valuedouble;
    double bb = cJSON_GetArrayItem(b, 0)->valuedouble, be = cJSON_GetArrayItem(b, 1)->valuedouble;
    set_offsets(r, "blocks.0.ln1.weight", bb, be);
    set_offsets(r, "blocks.0.ln1.bias", wb, we);
}

static const struct {
    const char *label;
    edit_fn edit;
    const char *must_mention; /* NULL: the file must load */
} edits[] = {
    {"dtype F16", e_dtype_f16, "\"F16\""},
    {"dtype not a string", e_dtype_number, "dtype"},
    {"offsets past the data", e_end_past_data, "past the"},
    {"begin after end", e_begin_after_end, "end before they begin"},
    {"fractional offset", e_fractional_offset, "not non-negative integers"},
    {"negative offset", e_negative_offset, "not non-negative integers"},
    {"absurd offset", e_huge_offset, "not non-negative integers"},
    {"string offset", e_string_offset, "not non-negative integers"},
    {"one offset", e_one_offset, "not a pair"},
    {"span too short", e_short_span, "its shape needs 224"},
    {"shape transposed", e_shape_transposed, "shape [8, 7] does not match [7, 8]"},
    {"shape flattened", e_shape_flat, "does not match"},
    {"shape 3-d", e_shape_3d, "does not match"},
    {"shape negative", e_shape_negative, "not a non-negative integer"},
    {"extra tensor", e_extra_tensor, "unknown tensor \"extra.weight\""},
    {"missing tensor", e_missing_tensor, "\"ln_f.bias\" is missing"},
    {"missing moment", e_missing_moment, "\"optim.m.ln_f.bias\" is missing"},
    {"duplicate tensor", e_duplicate_tensor, "appears twice"},
    {"overlapping tensors", e_overlap, "overlap"},
    {"entry not an object", e_entry_not_object, "not a JSON object"},
    {"entry extra field", e_entry_extra_field, "unknown field \"foo\""},
    {"entry without dtype", e_entry_no_dtype, "dtype is missing"},
    {"no __metadata__", e_no_metadata, "no __metadata__"},
    {"__metadata__ a string", e_metadata_not_object, "__metadata__ is not a JSON object"},
    {"metadata value a number", e_metadata_number, "\"icl.step\" is not a string"},
    {"no icl.config", e_no_config, "lacks icl.config"},
    {"icl.config not JSON", e_config_not_json, "icl.config"},
    {"icl.config invalid", e_config_invalid, "n_head"},
    {"icl.config other vocab", e_config_other_vocab, "does not match"},
    {"icl.config far bigger", e_config_bigger, "too small for the config"},
    {"no icl.format", e_no_format, "lacks icl.format"},
    {"icl.format 2", e_format_2, "not supported"},
    {"bad icl.rng", e_bad_rng, "icl.rng"},
    {"negative icl.step", e_negative_step, "icl.step"},
    {"no icl.step", e_no_step, "lacks icl.step"},
    {"moments without icl.optim", e_no_optim, "no icl.optim"},
    {"icl.optim lr -1", e_optim_bad_lr, "lr"},
    {"icl.optim lr 1e300", e_optim_huge_lr, "out of float range"},
    {"icl.optim field missing", e_optim_missing_field, "min_lr_frac"},
    {"icl.optim not JSON", e_optim_not_json, "icl.optim"},
    {"unknown icl.* key", e_unknown_icl_key, "icl.bogus"},
    {"header an array", e_root_array, "not a JSON object"},
    {"foreign metadata", e_foreign_metadata, NULL},
    {"swapped offsets", e_swap_ln1, NULL},
};

START_TEST(edited_headers) {
    char good[128], path[128];
    tu_tmp_path(good, sizeof good, "good.safetensors");
    tu_tmp_path(path, sizeof path, "edited.safetensors");
    fixture f;
    size_t size;
    unsigned char *bytes = saved_bytes(good, &f, &size);
    uint64_t hlen = header_len_of(bytes);
    const unsigned char *data = bytes + 8 + hlen;
    size_t data_size = size - 8 - (size_t)hlen;
    for (size_t i = 0; i < sizeof edits / sizeof edits[0]; i++) {
        cJSON *root = cJSON_ParseWithLength((const char *)bytes + 8, (size_t)hlen);
        ck_assert_ptr_nonnull(root);
        edits[i].edit(root);
        char *text = cJSON_PrintUnformatted(root);
        cJSON_Delete(root);
        write_parts(path, strlen(text), text, strlen(text), data, data_size);
        cJSON_free(text);
        icl_model *m = NULL;
        icl_status st = icl_checkpoint_load_model(path, ICL_BACKEND_CPU, &m);
        if (!edits[i].must_mention) {
            ck_assert_msg(st == ICL_OK, "%s: %s", edits[i].label, icl_last_error());
            float *want = tu_floats(f.n);
            memcpy(want, f.params, f.n * 4);
            if (edits[i].edit == e_swap_ln1) {
                const icl_param_info *w = icl_model_tensor(m, icl_model_find_tensor(m, "blocks.0.ln1.weight"));
                const icl_param_info *b = icl_model_tensor(m, icl_model_find_tensor(m, "blocks.0.ln1.bias"));
                memcpy(want + w->offset, f.params + b->offset, w->numel * 4);
                memcpy(want + b->offset, f.params + w->offset, b->numel * 4);
            }
            assert_model_params(m, want, f.n);
            free(want);
            icl_model_free(m);
            printf("  %-26s loads (as it should)\n", edits[i].label);
            continue;
        }
        ck_assert_msg(st == ICL_ERR_FORMAT, "%s: got %s (%s)", edits[i].label, icl_status_name(st), icl_last_error());
        ck_assert_ptr_null(m);
        ck_assert_msg(strstr(icl_last_error(), edits[i].must_mention) != NULL, "%s: message \"%s\" lacks \"%s\"",
                      edits[i].label, icl_last_error(), edits[i].must_mention);
        ck_assert_ptr_nonnull(strstr(icl_last_error(), path));
        icl_config c;
        ck_assert_int_eq(icl_checkpoint_read_config(path, &c), ICL_ERR_FORMAT);
        printf("  %-26s rejected: %s\n", edits[i].label, strstr(icl_last_error(), "\": ") + 3);
    }
    free(bytes);
    fixture_free(&f);
    unlink(good);
    unlink(path);
}
END_TEST

/* Damage below the JSON level: the length field, the bytes, the data size. */
START_TEST(damaged_bytes) {
    char good[128], path[128];
    tu_tmp_path(good, sizeof good, "good_raw.safetensors");
    tu_tmp_path(path, sizeof path, "raw.safetensors");
    fixture f;
    size_t size;
    unsigned char *bytes = saved_bytes(good, &f, &size);
    uint64_t hlen = header_len_of(bytes);
    const char *header = (const char *)bytes + 8;
    const unsigned char *data = bytes + 8 + hlen;
    size_t data_size = size - 8 - (size_t)hlen;
    char *copy = malloc((size_t)hlen + 16);
    ck_assert_ptr_nonnull(copy);
    icl_model *m = NULL;

    write_parts(path, (uint64_t)1 << 40, header, (size_t)hlen, data, data_size);
    ck_assert_int_eq(icl_checkpoint_load_model(path, ICL_BACKEND_CPU, &m), ICL_ERR_FORMAT);
    ck_assert_ptr_nonnull(strstr(icl_last_error(), "limit"));

    write_parts(path, hlen + data_size + 1, header, (size_t)hlen, data, data_size);
    ck_assert_int_eq(icl_checkpoint_load_model(path, ICL_BACKEND_CPU, &m), ICL_ERR_FORMAT);
    ck_assert_ptr_nonnull(strstr(icl_last_error(), "truncated"));

    write_parts(path, 0, "", 0, data, data_size);
    ck_assert_int_eq(icl_checkpoint_load_model(path, ICL_BACKEND_CPU, &m), ICL_ERR_FORMAT);
    ck_assert_ptr_nonnull(strstr(icl_last_error(), "not valid JSON"));

    memcpy(copy, header, (size_t)hlen);
    memcpy(copy + hlen, "x", 1);
    write_parts(path, hlen + 1, copy, (size_t)hlen + 1, data, data_size);
    ck_assert_int_eq(icl_checkpoint_load_model(path, ICL_BACKEND_CPU, &m), ICL_ERR_FORMAT);
    ck_assert_ptr_nonnull(strstr(icl_last_error(), "text after the JSON"));

    memcpy(copy, header, (size_t)hlen);
    copy[hlen - 1] = '\0'; /* in the padding */
    write_parts(path, hlen, copy, (size_t)hlen, data, data_size);
    ck_assert_int_eq(icl_checkpoint_load_model(path, ICL_BACKEND_CPU, &m), ICL_ERR_FORMAT);
    ck_assert_ptr_nonnull(strstr(icl_last_error(), "NUL"));

    memcpy(copy, header, (size_t)hlen);
    char *lib = strstr(copy, "libicl");
    ck_assert_ptr_nonnull(lib);
    lib[0] = (char)0xC0; /* overlong encoding lead byte */
    write_parts(path, hlen, copy, (size_t)hlen, data, data_size);
    ck_assert_int_eq(icl_checkpoint_load_model(path, ICL_BACKEND_CPU, &m), ICL_ERR_FORMAT);
    ck_assert_ptr_nonnull(strstr(icl_last_error(), "UTF-8"));

    memcpy(copy, header, (size_t)hlen);
    memcpy(strstr(copy, "libicl"), "l\xC3\xA9", 3); /* valid UTF-8 (e acute) in a free-text value */
    write_parts(path, hlen, copy, (size_t)hlen, data, data_size);
    ck_assert_int_eq(icl_checkpoint_load_model(path, ICL_BACKEND_CPU, &m), ICL_OK);
    icl_model_free(m);
    m = NULL;

    /* Trailing bytes after the last tensor. */
    unsigned char *longer = malloc(data_size + 4);
    ck_assert_ptr_nonnull(longer);
    memcpy(longer, data, data_size);
    memset(longer + data_size, 0, 4);
    write_parts(path, hlen, header, (size_t)hlen, longer, data_size + 4);
    ck_assert_int_eq(icl_checkpoint_load_model(path, ICL_BACKEND_CPU, &m), ICL_ERR_FORMAT);
    ck_assert_ptr_nonnull(strstr(icl_last_error(), "4 unused bytes after the last tensor"));
    free(longer);

    /* The smallest header that parses: an object with nothing in it. */
    tu_write_file(path, "\x03\x00\x00\x00\x00\x00\x00\x00{} ", 11);
    ck_assert_int_eq(icl_checkpoint_load_model(path, ICL_BACKEND_CPU, &m), ICL_ERR_FORMAT);
    ck_assert_ptr_nonnull(strstr(icl_last_error(), "no __metadata__"));
    ck_assert_ptr_null(m);

    free(copy);
    free(bytes);
    fixture_free(&f);
    unlink(good);
    unlink(path);
}
END_TEST

START_TEST(load_state_into_other_model_rejected) {
    char path[128];
    tu_tmp_path(path, sizeof path, "state.safetensors");
    fixture f;
    size_t size;
    free(saved_bytes(path, &f, &size));
    fixture other;
    icl_config cfg = tiny_token(0); /* untied: more parameters */
    fixture_make(&other, &cfg, 4);
    icl_rng rng = other.data_rng;
    ck_assert_int_eq(icl_checkpoint_load_state(path, other.opt, &rng), ICL_ERR_SHAPE);
    ck_assert_int_eq(memcmp(&rng, &other.data_rng, sizeof rng), 0); /* untouched on failure */
    ck_assert_int_eq(icl_optimizer_step_count(other.opt), 5);
    fixture_free(&other);
    fixture_free(&f);
    unlink(path);
}
END_TEST

int main(void) {
    if (!tu_tmpdir_create("ckpt"))
        return 1;
    Suite *s = suite_create("checkpoint");
    TCase *rt = tcase_create("round_trip");
    tcase_add_test(rt, round_trip_token_tied);
    tcase_add_test(rt, round_trip_token_untied);
    tcase_add_test(rt, round_trip_vector);
    tcase_add_test(rt, model_only_checkpoint);
    tcase_add_test(rt, user_metadata);
    tcase_add_test(rt, file_layout);
    tcase_add_test(rt, describe_lines);
    tcase_add_test(rt, failed_save_keeps_old_checkpoint);
    tcase_add_test(rt, bad_arguments);
    suite_add_tcase(s, rt);
    TCase *bad = tcase_create("corruption");
    tcase_set_timeout(bad, 60);
    tcase_add_test(bad, every_truncation_rejected);
    tcase_add_test(bad, flipped_header_bytes);
    tcase_add_test(bad, edited_headers);
    tcase_add_test(bad, damaged_bytes);
    tcase_add_test(bad, load_state_into_other_model_rejected);
    suite_add_tcase(s, bad);
    int rc = tu_run(s);
    tu_tmpdir_remove();
    return rc;
}
