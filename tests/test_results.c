/* Result writers: CSV quoting and number formats, atomic replacement,
 * misuse rejected; the JSON sidecar parsed back with cJSON. */
#include <cjson/cJSON.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include "icl/icl.h"
#include "icl/results.h"
#include "testutil.h"

static void check_status(const char *label, icl_status got, icl_status want) {
    printf("  %-40s %s%s%s\n", label, icl_status_name(got), got != ICL_OK ? ": " : "",
           got != ICL_OK ? icl_last_error() : "");
    ck_assert_msg(got == want, "%s: got %s, want %s", label, icl_status_name(got), icl_status_name(want));
}

START_TEST(csv_quoting_and_numbers) {
    char path[128];
    tu_tmp_path(path, sizeof path, "table.csv");
    const char *cols[] = {"task", "note,with comma", "value", "count"};
    icl_csv *csv;
    ck_assert_int_eq(icl_csv_create(path, 4, cols, &csv), ICL_OK);
    ck_assert_int_eq(icl_csv_string(csv, "ret1"), ICL_OK);
    ck_assert_int_eq(icl_csv_string(csv, "say \"hi\", twice"), ICL_OK);
    ck_assert_int_eq(icl_csv_number(csv, 1.0 / 3.0), ICL_OK);
    ck_assert_int_eq(icl_csv_int(csv, 9007199254740993LL), ICL_OK);
    ck_assert_int_eq(icl_csv_end_row(csv), ICL_OK);
    ck_assert_int_eq(icl_csv_string(csv, "line\nbreak"), ICL_OK);
    ck_assert_int_eq(icl_csv_string(csv, ""), ICL_OK);
    ck_assert_int_eq(icl_csv_number(csv, NAN), ICL_OK);
    ck_assert_int_eq(icl_csv_int(csv, -3), ICL_OK);
    ck_assert_int_eq(icl_csv_end_row(csv), ICL_OK);
    ck_assert_int_eq(icl_csv_string(csv, "inf"), ICL_OK);
    ck_assert_int_eq(icl_csv_string(csv, "\""), ICL_OK);
    ck_assert_int_eq(icl_csv_number(csv, -INFINITY), ICL_OK);
    ck_assert_int_eq(icl_csv_number(csv, 1e-300), ICL_OK);
    ck_assert_int_eq(icl_csv_end_row(csv), ICL_OK);
    ck_assert_int_eq(tu_count_temp_files(), 1); /* nothing at path until close */
    ck_assert_int_eq(access(path, F_OK), -1);
    ck_assert_int_eq(icl_csv_close(csv), ICL_OK);
    char *text = (char *)tu_read_file(path, NULL);
    const char *want = "task,\"note,with comma\",value,count\n"
                       "ret1,\"say \"\"hi\"\", twice\",0.333333333,9007199254740993\n"
                       "\"line\nbreak\",,nan,-3\n"
                       "inf,\"\"\"\",-inf,1e-300\n";
    printf("  CSV written:\n%s", text);
    ck_assert_str_eq(text, want);
    ck_assert_int_eq(tu_count_temp_files(), 0);
    free(text);
    unlink(path);
}
END_TEST

START_TEST(csv_misuse_keeps_previous_file) {
    char path[128];
    tu_tmp_path(path, sizeof path, "keep.csv");
    const char *cols[] = {"a", "b"};
    icl_csv *csv;
    ck_assert_int_eq(icl_csv_create(path, 2, cols, &csv), ICL_OK);
    ck_assert_int_eq(icl_csv_number(csv, 1), ICL_OK);
    ck_assert_int_eq(icl_csv_number(csv, 2), ICL_OK);
    ck_assert_int_eq(icl_csv_end_row(csv), ICL_OK);
    ck_assert_int_eq(icl_csv_close(csv), ICL_OK);

    /* too many cells: the error sticks and close leaves the old file */
    ck_assert_int_eq(icl_csv_create(path, 2, cols, &csv), ICL_OK);
    ck_assert_int_eq(icl_csv_number(csv, 5), ICL_OK);
    ck_assert_int_eq(icl_csv_number(csv, 6), ICL_OK);
    check_status("third cell in a 2-column row", icl_csv_number(csv, 7), ICL_ERR_STATE);
    check_status("end_row after the error", icl_csv_end_row(csv), ICL_ERR_STATE);
    check_status("close after the error", icl_csv_close(csv), ICL_ERR_STATE);
    /* too few cells */
    ck_assert_int_eq(icl_csv_create(path, 2, cols, &csv), ICL_OK);
    ck_assert_int_eq(icl_csv_number(csv, 5), ICL_OK);
    check_status("end_row with 1 of 2 cells", icl_csv_end_row(csv), ICL_ERR_STATE);
    icl_csv_abort(csv);
    /* unfinished last row */
    ck_assert_int_eq(icl_csv_create(path, 2, cols, &csv), ICL_OK);
    ck_assert_int_eq(icl_csv_number(csv, 5), ICL_OK);
    check_status("close with an unfinished row", icl_csv_close(csv), ICL_ERR_STATE);

    char *text = (char *)tu_read_file(path, NULL);
    ck_assert_str_eq(text, "a,b\n1,2\n");
    printf("  previous file intact: \"a,b\\n1,2\\n\"\n");
    free(text);
    ck_assert_int_eq(tu_count_temp_files(), 0);

    icl_csv *bad;
    check_status("create with NULL columns", icl_csv_create(path, 2, NULL, &bad), ICL_ERR_INVALID_ARG);
    ck_assert_ptr_null(bad);
    check_status("create with 0 columns", icl_csv_create(path, 0, cols, &bad), ICL_ERR_INVALID_ARG);
    check_status("create in a missing directory", icl_csv_create("/nonexistent-dir/x.csv", 2, cols, &bad),
                 ICL_ERR_IO);
    check_status("string cell NULL csv", icl_csv_string(NULL, "x"), ICL_ERR_INVALID_ARG);
    unlink(path);
}
END_TEST

START_TEST(sidecar_round_trip) {
    char path[128];
    tu_tmp_path(path, sizeof path, "probe.json");
    char before[32], after[32];
    time_t t0 = time(NULL);
    struct tm tm0;
    strftime(before, sizeof before, "%Y-%m-%dT%H:%M:%SZ", gmtime_r(&t0, &tm0));
    icl_sidecar *sc;
    ck_assert_int_eq(icl_sidecar_create("decodability", 1234, &sc), ICL_OK);
    const double layers[] = {0, 1, 2.5, NAN};
    ck_assert_int_eq(icl_sidecar_set_string(sc, "task", "retrieval"), ICL_OK);
    ck_assert_int_eq(icl_sidecar_set_number(sc, "k", 7), ICL_OK);
    ck_assert_int_eq(icl_sidecar_set_number(sc, "k", 10), ICL_OK); /* replaces */
    ck_assert_int_eq(icl_sidecar_set_numbers(sc, "layers", layers, 4), ICL_OK);
    ck_assert_int_eq(icl_sidecar_set_numbers(sc, "empty", NULL, 0), ICL_OK);
    ck_assert_int_eq(icl_sidecar_set_json(sc, "model", "{\"n_layer\": 2, \"d_model\": 64}"), ICL_OK);
    ck_assert_int_eq(icl_sidecar_add_file(sc, "td.csv"), ICL_OK);
    ck_assert_int_eq(icl_sidecar_add_file(sc, "td.npy"), ICL_OK);
    ck_assert_int_eq(icl_sidecar_add_file(sc, "td.csv"), ICL_OK); /* not repeated */
    ck_assert_int_eq(icl_sidecar_write(sc, path), ICL_OK);
    icl_sidecar_free(sc);
    time_t t1 = time(NULL);
    struct tm tm1;
    strftime(after, sizeof after, "%Y-%m-%dT%H:%M:%SZ", gmtime_r(&t1, &tm1));

    char *text = (char *)tu_read_file(path, NULL);
    printf("  sidecar written:\n%s", text);
    cJSON *root = cJSON_Parse(text);
    ck_assert_ptr_nonnull(root);
    const cJSON *probe = cJSON_GetObjectItemCaseSensitive(root, "probe");
    const cJSON *lib = cJSON_GetObjectItemCaseSensitive(root, "library");
    const cJSON *seed = cJSON_GetObjectItemCaseSensitive(root, "seed");
    const cJSON *created = cJSON_GetObjectItemCaseSensitive(root, "created");
    const cJSON *config = cJSON_GetObjectItemCaseSensitive(root, "config");
    const cJSON *files = cJSON_GetObjectItemCaseSensitive(root, "files");
    ck_assert(cJSON_IsString(probe) && strcmp(probe->valuestring, "decodability") == 0);
    ck_assert(cJSON_IsString(lib) && strcmp(lib->valuestring, "libicl " ICL_VERSION_STRING) == 0);
    ck_assert(cJSON_IsNumber(seed) && seed->valuedouble == 1234.0);
    ck_assert(cJSON_IsString(created) && strlen(created->valuestring) == 20);
    ck_assert_msg(strcmp(before, created->valuestring) <= 0 && strcmp(created->valuestring, after) <= 0,
                  "created %s not within [%s, %s]", created->valuestring, before, after);
    ck_assert(cJSON_IsObject(config));
    ck_assert_int_eq(cJSON_GetArraySize(config), 5);
    const cJSON *task = cJSON_GetObjectItemCaseSensitive(config, "task");
    const cJSON *k = cJSON_GetObjectItemCaseSensitive(config, "k");
    const cJSON *ls = cJSON_GetObjectItemCaseSensitive(config, "layers");
    const cJSON *model = cJSON_GetObjectItemCaseSensitive(config, "model");
    ck_assert(cJSON_IsString(task) && strcmp(task->valuestring, "retrieval") == 0);
    ck_assert(cJSON_IsNumber(k) && k->valuedouble == 10.0);
    ck_assert(cJSON_IsArray(ls) && cJSON_GetArraySize(ls) == 4);
    ck_assert(cJSON_GetArrayItem(ls, 2)->valuedouble == 2.5);
    ck_assert(cJSON_IsNull(cJSON_GetArrayItem(ls, 3))); /* NaN -> null */
    ck_assert(cJSON_IsArray(cJSON_GetObjectItemCaseSensitive(config, "empty")));
    ck_assert(cJSON_GetObjectItemCaseSensitive(model, "d_model")->valuedouble == 64.0);
    ck_assert(cJSON_IsArray(files) && cJSON_GetArraySize(files) == 2);
    ck_assert_str_eq(cJSON_GetArrayItem(files, 0)->valuestring, "td.csv");
    ck_assert_str_eq(cJSON_GetArrayItem(files, 1)->valuestring, "td.npy");
    printf("  parsed back: probe, library \"%s\", seed, created %s, config (5 keys), files (2)\n", lib->valuestring,
           created->valuestring);
    cJSON_Delete(root);
    free(text);
    ck_assert_int_eq(tu_count_temp_files(), 0);
    unlink(path);
}
END_TEST

START_TEST(sidecar_large_seed_and_errors) {
    char path[128];
    tu_tmp_path(path, sizeof path, "big.json");
    icl_sidecar *sc;
    ck_assert_int_eq(icl_sidecar_create("tv", UINT64_MAX, &sc), ICL_OK);
    check_status("set_json with invalid JSON", icl_sidecar_set_json(sc, "bad", "{nope"), ICL_ERR_FORMAT);
    check_status("set_string NULL value", icl_sidecar_set_string(sc, "x", NULL), ICL_ERR_INVALID_ARG);
    check_status("set_number empty key", icl_sidecar_set_number(sc, "", 1.0), ICL_ERR_INVALID_ARG);
    check_status("set_numbers NULL values, n = 3", icl_sidecar_set_numbers(sc, "v", NULL, 3), ICL_ERR_INVALID_ARG);
    check_status("add_file NULL name", icl_sidecar_add_file(sc, NULL), ICL_ERR_INVALID_ARG);
    check_status("write to a missing directory", icl_sidecar_write(sc, "/nonexistent-dir/x.json"), ICL_ERR_IO);
    ck_assert_int_eq(icl_sidecar_write(sc, path), ICL_OK);
    icl_sidecar_free(sc);
    char *text = (char *)tu_read_file(path, NULL);
    cJSON *root = cJSON_Parse(text);
    ck_assert_ptr_nonnull(root);
    const cJSON *seed = cJSON_GetObjectItemCaseSensitive(root, "seed");
    ck_assert(cJSON_IsString(seed));
    ck_assert_str_eq(seed->valuestring, "18446744073709551615");
    printf("  seed 2^64-1 kept exact as the string %s\n", seed->valuestring);
    ck_assert_int_eq(cJSON_GetArraySize(cJSON_GetObjectItemCaseSensitive(root, "config")), 0);
    cJSON_Delete(root);
    free(text);
    icl_sidecar *none;
    check_status("create with empty probe name", icl_sidecar_create("", 1, &none), ICL_ERR_INVALID_ARG);
    ck_assert_ptr_null(none);
    unlink(path);
}
END_TEST

int main(void) {
    if (!tu_tmpdir_create("results"))
        return 1;
    Suite *s = suite_create("results");
    TCase *tc = tcase_create("results");
    tcase_add_test(tc, csv_quoting_and_numbers);
    tcase_add_test(tc, csv_misuse_keeps_previous_file);
    tcase_add_test(tc, sidecar_round_trip);
    tcase_add_test(tc, sidecar_large_seed_and_errors);
    suite_add_tcase(s, tc);
    int rc = tu_run(s);
    tu_tmpdir_remove();
    return rc;
}
