/* RNG tests: reproducibility, stream independence, distributions, state round-trip. */
#include <math.h>
#include <stdio.h>
#include <string.h>
#include "icl/rng.h"
#include "testutil.h"

START_TEST(test_same_seed_same_stream) {
    icl_rng a, b, c;
    icl_rng_init(&a, 7, "data");
    icl_rng_init(&b, 7, "data");
    icl_rng_init(&c, 7, "init");
    int same_as_other_name = 0;
    for (int i = 0; i < 1000; i++) {
        uint32_t x = icl_rng_u32(&a), y = icl_rng_u32(&b), z = icl_rng_u32(&c);
        ck_assert_uint_eq(x, y);
        same_as_other_name += x == z;
    }
    ck_assert_int_le(same_as_other_name, 2);
}
END_TEST

/* Known-answer test: Philox-4x32-10 with key 0 and counter 0 (Random123's KAT vector). */
START_TEST(test_philox_known_answer) {
    icl_rng r = {0, 0, {0}, 4};
    uint32_t want[4] = {0x6627e8d5u, 0xe169c58du, 0xbc57ac4cu, 0x9b00dbd8u};
    for (int i = 0; i < 4; i++) ck_assert_uint_eq(icl_rng_u32(&r), want[i]);
}
END_TEST

START_TEST(test_split_is_independent_of_parent_use) {
    icl_rng p1, p2, c1, c2;
    icl_rng_init(&p1, 1, "data");
    icl_rng_init(&p2, 1, "data");
    for (int i = 0; i < 37; i++) icl_rng_u32(&p2);
    icl_rng_split(&c1, &p1, 5);
    icl_rng_split(&c2, &p2, 5);
    for (int i = 0; i < 100; i++) ck_assert_uint_eq(icl_rng_u32(&c1), icl_rng_u32(&c2));
    icl_rng_split(&c2, &p1, 6);
    icl_rng_split(&c1, &p1, 5);
    ck_assert_uint_ne(icl_rng_u64(&c1), icl_rng_u64(&c2));
}
END_TEST

START_TEST(test_distributions) {
    icl_rng r;
    icl_rng_init(&r, 3, "dist");
    const int n = 200000;
    double s = 0, s2 = 0, u = 0;
    int counts[7] = {0};
    for (int i = 0; i < n; i++) {
        double x = icl_rng_normal(&r);
        s += x;
        s2 += x * x;
        float f = icl_rng_uniform(&r);
        ck_assert(f >= 0.0f && f < 1.0f);
        u += f;
        counts[icl_rng_below(&r, 7)]++;
    }
    double mean = s / n, var = s2 / n - mean * mean;
    printf("  normal mean %.4f var %.4f, uniform mean %.4f\n", mean, var, u / n);
    ck_assert(fabs(mean) < 0.01 && fabs(var - 1.0) < 0.02 && fabs(u / n - 0.5) < 0.005);
    for (int k = 0; k < 7; k++) ck_assert(fabs(counts[k] / (double)n - 1.0 / 7) < 0.005);
    int a[10] = {0, 1, 2, 3, 4, 5, 6, 7, 8, 9}, seen = 0;
    icl_rng_shuffle_int(&r, a, 10);
    for (int i = 0; i < 10; i++) seen |= 1 << a[i];
    ck_assert_int_eq(seen, 0x3ff);
}
END_TEST

START_TEST(test_state_roundtrip) {
    icl_rng a, b;
    icl_rng_init(&a, 9, "x");
    for (int i = 0; i < 5; i++) icl_rng_u32(&a); /* mid-block */
    char s[64];
    icl_rng_to_string(&a, s);
    ck_assert_int_eq(icl_rng_from_string(&b, s), ICL_OK);
    for (int i = 0; i < 20; i++) ck_assert_uint_eq(icl_rng_u32(&a), icl_rng_u32(&b));
    ck_assert_int_eq(icl_rng_from_string(&b, "zz:1:2"), ICL_ERR_FORMAT);
    ck_assert_int_eq(icl_rng_from_string(&b, "12:1:9"), ICL_ERR_FORMAT);
    ck_assert_int_eq(icl_rng_from_string(&b, "12:1:2 trailing"), ICL_ERR_FORMAT);
}
END_TEST

int main(void) {
    Suite *s = suite_create("rng");
    TCase *tc = tcase_create("rng");
    tcase_add_test(tc, test_same_seed_same_stream);
    tcase_add_test(tc, test_philox_known_answer);
    tcase_add_test(tc, test_split_is_independent_of_parent_use);
    tcase_add_test(tc, test_distributions);
    tcase_add_test(tc, test_state_roundtrip);
    suite_add_tcase(s, tc);
    return tu_run(s);
}
