/* Task generators: spec parsing, every family's answers recomputed from the
 * prompt, labels, mixed prompts, batches, determinism, bad parameters. */
#include <ctype.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "icl/task.h"
#include "testutil.h"

static icl_task_family *make(const char *spec) {
    icl_task_family *f = NULL;
    icl_status s = icl_task_family_create(&f, spec);
    ck_assert_msg(s == ICL_OK, "create %s: %s", spec, icl_last_error());
    return f;
}

static void expect_create_fail(const char *spec, icl_status want, const char *needle) {
    icl_task_family *f = (icl_task_family *)1;
    icl_status s = icl_task_family_create(&f, spec);
    printf("  %-40s -> %s: %s\n", spec, icl_status_name(s), icl_last_error());
    ck_assert_msg(s == want, "%s: got %s, want %s", spec, icl_status_name(s), icl_status_name(want));
    ck_assert_ptr_null(f);
    ck_assert_msg(strstr(icl_last_error(), needle), "%s: message \"%s\" lacks \"%s\"", spec, icl_last_error(), needle);
}

static const char *tn(const icl_task_family *f, int32_t tok) {
    const char *n = icl_task_family_token_name(f, tok);
    ck_assert_msg(n != NULL, "token %d has no name", (int)tok);
    return n;
}

/* ---- spec parsing and registry ---- */

START_TEST(test_spec_roundtrip) {
    for (int i = 0; i < icl_task_registry_count(); i++) {
        const char *name = icl_task_registry_name(i);
        icl_task_family *f = make(name), *g = make(icl_task_family_spec(f));
        ck_assert_str_eq(icl_task_family_spec(f), icl_task_family_spec(g));
        ck_assert_int_gt(icl_task_family_num_tasks(f), 0);
        for (int t = 0; t < icl_task_family_num_tasks(f); t++) {
            int id = -1;
            ck_assert_int_eq(icl_task_family_find_task(f, icl_task_family_task_name(f, t), &id), ICL_OK);
            ck_assert_int_eq(id, t);
        }
        for (int v = 0; v < icl_task_family_vocab_size(f); v++)
            ck_assert_ptr_nonnull(icl_task_family_token_name(f, v));
        icl_task_family_free(f);
        icl_task_family_free(g);
    }
    ck_assert_ptr_null(icl_task_registry_name(icl_task_registry_count()));
    ck_assert_ptr_null(icl_task_registry_name(-1));
}
END_TEST

START_TEST(test_spec_options_and_presets) {
    icl_task_family *f = make("retrieval:A=10,L=8,tasks=8");
    ck_assert_str_eq(icl_task_family_spec(f), "retrieval:A=10,L=8,tasks=8,n=8");
    ck_assert_int_eq(icl_task_family_vocab_size(f), 13);
    ck_assert_int_eq(icl_task_family_input_len(f), 8);
    ck_assert_str_eq(icl_task_family_task_name(f, 7), "ret_8");
    ck_assert_ptr_null(icl_task_family_task_name(f, 8));
    icl_task_family_free(f);

    f = make("basis_mixture_small");
    ck_assert_str_eq(icl_task_family_name(f), "basis_mixture");
    ck_assert_str_eq(icl_task_family_spec(f), "basis_mixture:D=8,k=4,r=2,K=12,sigma=0.1,groups=0");
    ck_assert_int_eq(icl_task_family_default_examples(f), 12);
    ck_assert_int_eq(icl_task_family_d_in(f), 9);
    ck_assert_int_eq(icl_task_family_d_out(f), 1);
    icl_task_family_free(f);
    /* A preset's options may be overridden once by the caller. */
    f = make("basis_mixture_small:K=6,sigma=0");
    ck_assert_str_eq(icl_task_family_spec(f), "basis_mixture:D=8,k=4,r=2,K=6,sigma=0,groups=0");
    icl_task_family_free(f);
    /* Derived defaults: n = 2d for linear, s = min(3, d). */
    f = make("linear:d=7");
    ck_assert_int_eq(icl_task_family_default_examples(f), 14);
    icl_task_family_free(f);
    f = make("linear_toy");
    ck_assert_str_eq(icl_task_family_spec(f), "linear:d=5,sigma=0,n=10");
    icl_task_family_free(f);
    f = make("sparse_linear:d=2");
    ck_assert_str_eq(icl_task_family_spec(f), "sparse_linear:d=2,s=2,sigma=0,n=4");
    icl_task_family_free(f);

    int ids[4], n = 0;
    f = make("bitwise");
    ck_assert_int_eq(icl_task_family_parse_tasks(f, "XOR,AND,NULL", ids, 4, &n), ICL_OK);
    ck_assert_int_eq(n, 3);
    ck_assert_str_eq(icl_task_family_task_name(f, ids[0]), "XOR");
    ck_assert_str_eq(icl_task_family_task_name(f, ids[2]), "NULL");
    ck_assert_int_eq(icl_task_family_parse_tasks(f, "XOR,FOO", ids, 4, &n), ICL_ERR_INVALID_ARG);
    ck_assert_ptr_nonnull(strstr(icl_last_error(), "FOO"));
    ck_assert_int_eq(icl_task_family_parse_tasks(f, "XOR,XOR", ids, 4, &n), ICL_ERR_INVALID_ARG);
    ck_assert_int_eq(icl_task_family_parse_tasks(f, "XOR,", ids, 4, &n), ICL_ERR_INVALID_ARG);
    ck_assert_int_eq(icl_task_family_parse_tasks(f, "AND,OR,XOR", ids, 2, &n), ICL_ERR_INVALID_ARG);
    int id;
    ck_assert_int_eq(icl_task_family_find_task(f, "ret_1", &id), ICL_ERR_INVALID_ARG);
    ck_assert_ptr_nonnull(strstr(icl_last_error(), "ret_1"));
    icl_task_family_free(f);
}
END_TEST

START_TEST(test_spec_errors) {
    expect_create_fail("retrieval:L=20", ICL_ERR_CONFIG, "L=20");
    expect_create_fail("retrieval:A=4,L=5", ICL_ERR_CONFIG, "L=5");
    expect_create_fail("retrieval:tasks=7", ICL_ERR_CONFIG, "tasks=7");
    expect_create_fail("retrieval:A=0", ICL_ERR_CONFIG, "A=0");
    expect_create_fail("retrieval:L=0", ICL_ERR_CONFIG, "L=0");
    expect_create_fail("retrieval:n=-1", ICL_ERR_CONFIG, "n=-1");
    expect_create_fail("retrieval:A=x", ICL_ERR_INVALID_ARG, "A=x");
    expect_create_fail("retrieval:A=2.5", ICL_ERR_INVALID_ARG, "A=2.5");
    expect_create_fail("retrieval:Q=3", ICL_ERR_INVALID_ARG, "\"Q\"");
    expect_create_fail("retrieval:A=8,A=9", ICL_ERR_INVALID_ARG, "twice");
    expect_create_fail("retrieval:A=8,", ICL_ERR_INVALID_ARG, "trailing");
    expect_create_fail("retrieval:", ICL_ERR_INVALID_ARG, "key=value");
    expect_create_fail("retrieval:A", ICL_ERR_INVALID_ARG, "key=value");
    expect_create_fail("retrieval:A=", ICL_ERR_INVALID_ARG, "A");
    expect_create_fail("nosuch", ICL_ERR_INVALID_ARG, "nosuch");
    expect_create_fail("", ICL_ERR_INVALID_ARG, "unknown family");
    expect_create_fail("retrieva", ICL_ERR_INVALID_ARG, "retrieva");
    expect_create_fail("class_lookup:C=5,L=4", ICL_ERR_CONFIG, "L=4");
    expect_create_fail("sparse_linear:d=3,s=4", ICL_ERR_CONFIG, "s=4");
    expect_create_fail("linear:d=0", ICL_ERR_CONFIG, "d=0");
    expect_create_fail("basis_mixture:k=5", ICL_ERR_CONFIG, "k*r");
    expect_create_fail("basis_mixture:k=6,groups=4", ICL_ERR_CONFIG, "groups=4");
    expect_create_fail("basis_mixture:k=8,r=8,groups=2", ICL_ERR_CONFIG, "r=8");
    expect_create_fail("bitwise:bits=0", ICL_ERR_CONFIG, "bits=0");
    ck_assert_int_eq(icl_task_family_create(NULL, "retrieval"), ICL_ERR_INVALID_ARG);
    icl_task_family *f;
    ck_assert_int_eq(icl_task_family_create(&f, NULL), ICL_ERR_INVALID_ARG);
    icl_task_family_free(NULL);
}
END_TEST

/* ---- token families: answers recomputed from the prompt tokens ---- */

typedef void (*answer_check)(const icl_task_family *f, const char *task, const int32_t *x, int lx, const int32_t *y,
                             int ly);

static void check_retrieval(const icl_task_family *f, const char *task, const int32_t *x, int lx, const int32_t *y,
                            int ly) {
    int i = atoi(task + 4); /* "ret_i" */
    ck_assert_int_eq(ly, 1);
    ck_assert_msg(i >= 1 && i <= lx, "bad task %s", task);
    ck_assert_str_eq(tn(f, y[0]), tn(f, x[i - 1]));
    for (int a = 0; a < lx; a++)
        for (int b = 0; b < a; b++)
            ck_assert_msg(x[a] != x[b], "retrieval input repeats a symbol");
}

static int digit(const icl_task_family *f, int32_t tok) {
    const char *n = tn(f, tok);
    ck_assert_msg(strlen(n) == 1 && isdigit((unsigned char)n[0]), "token %s is not a digit", n);
    return n[0] - '0';
}

static void check_two_operand(const icl_task_family *f, const char *task, const int32_t *x, int lx, const int32_t *y,
                              int ly) {
    ck_assert_int_eq(lx, 5);
    ck_assert_int_eq(ly, 3);
    ck_assert_str_eq(tn(f, x[2]), "@");
    int a = digit(f, x[0]) * 10 + digit(f, x[1]), b = digit(f, x[3]) * 10 + digit(f, x[4]);
    ck_assert(a >= 10 && a <= 99 && b >= 10 && b <= 99);
    int want = strcmp(task, "first") == 0 ? a : strcmp(task, "second") == 0 ? b : a + b;
    ck_assert_msg(strcmp(task, "first") == 0 || strcmp(task, "second") == 0 || strcmp(task, "sum") == 0, "%s", task);
    ck_assert_int_eq(digit(f, y[0]) * 100 + digit(f, y[1]) * 10 + digit(f, y[2]), want);
}

static void check_translation(const icl_task_family *f, const char *task, const int32_t *x, int lx, const int32_t *y,
                              int ly) {
    ck_assert_int_eq(ly, 1);
    int v = atoi(tn(f, x[0]));
    if (lx == 3) {
        ck_assert_str_eq(tn(f, x[1]), "+");
        v += atoi(tn(f, x[2]));
    }
    char want[16];
    snprintf(want, sizeof want, "%c%d", task[3], v); /* "to_X" */
    ck_assert_str_eq(tn(f, y[0]), want);
}

static void check_first_last(const icl_task_family *f, const char *task, const int32_t *x, int lx, const int32_t *y,
                             int ly) {
    ck_assert_int_eq(ly, 1);
    ck_assert_str_ne(tn(f, x[0]), tn(f, x[lx - 1]));
    const char *src = tn(f, strncmp(task, "first", 5) == 0 ? x[0] : x[lx - 1]);
    char want[16];
    snprintf(want, sizeof want, "%s", src);
    if (strstr(task, "_upper"))
        want[0] = (char)toupper((unsigned char)want[0]);
    ck_assert_str_eq(tn(f, y[0]), want);
    for (int i = 0; i < lx; i++)
        ck_assert_msg(islower((unsigned char)tn(f, x[i])[0]), "input symbol %s is not lower case", tn(f, x[i]));
}

static int null_ones, null_bits;

static void check_bitwise(const icl_task_family *f, const char *task, const int32_t *x, int lx, const int32_t *y,
                          int ly) {
    ck_assert_int_eq(lx, 2 * ly + 1);
    ck_assert_str_eq(tn(f, x[ly]), ",");
    for (int i = 0; i < ly; i++) {
        int a = digit(f, x[i]), b = digit(f, x[ly + 1 + i]), got = digit(f, y[i]), want;
        ck_assert(a <= 1 && b <= 1 && got <= 1);
        if (strcmp(task, "AND") == 0)
            want = a && b;
        else if (strcmp(task, "NAND") == 0)
            want = !(a && b);
        else if (strcmp(task, "OR") == 0)
            want = a || b;
        else if (strcmp(task, "NOR") == 0)
            want = !(a || b);
        else if (strcmp(task, "XOR") == 0)
            want = a != b;
        else if (strcmp(task, "XNOR") == 0)
            want = a == b;
        else {
            ck_assert_str_eq(task, "NULL");
            null_ones += got;
            null_bits++;
            continue;
        }
        ck_assert_msg(got == want, "%s bit %d: %d op %d gave %d", task, i, a, b, got);
    }
}

static void check_class_lookup(const icl_task_family *f, const char *task, const int32_t *x, int lx, const int32_t *y,
                               int ly) {
    ck_assert_int_eq(ly, 1);
    char cls = task[6]; /* "class_X" */
    int first = -1;
    for (int i = lx - 1; i >= 0; i--)
        if (tn(f, x[i])[0] == cls)
            first = i;
    ck_assert_msg(first >= 0, "class %c absent from the input", cls);
    ck_assert_str_eq(tn(f, y[0]), tn(f, x[first]));
    for (int c = 0; c < icl_task_family_num_tasks(f); c++) {
        int seen = 0;
        for (int i = 0; i < lx; i++)
            seen |= tn(f, x[i])[0] == 'A' + c;
        ck_assert_msg(seen, "class %c absent from the input", 'A' + c);
    }
}

/* Tokens of example e with role `role`, in order. */
static int gather(const icl_prompt *p, int e, icl_role role, int32_t *out, int cap) {
    int n = 0;
    for (int t = 0; t < p->T; t++)
        if (p->example_ids[t] == e && p->roles[t] == (int)role) {
            ck_assert_int_lt(n, cap);
            out[n++] = p->tokens[t];
        }
    return n;
}

static void check_family_answers(const char *spec, answer_check check) {
    icl_task_family *f = make(spec);
    icl_rng rng;
    icl_rng_init(&rng, 11, spec);
    icl_prompt p = {0};
    int checked = 0;
    for (int task = 0; task < icl_task_family_num_tasks(f); task++)
        for (int rep = 0; rep < 25; rep++) {
            ck_assert_int_eq(icl_task_generate(f, task, 6, NULL, &rng, &p), ICL_OK);
            for (int e = 0; e <= p.n_examples; e++) {
                int32_t x[64], y[64];
                int last = e == p.n_examples;
                int lx = gather(&p, e, last ? ICL_ROLE_QUERY_INPUT : ICL_ROLE_EX_INPUT, x, 64);
                int ly = gather(&p, e, last ? ICL_ROLE_QUERY_ANSWER : ICL_ROLE_EX_ANSWER, y, 64);
                ck_assert_int_eq(lx, icl_task_family_input_len(f));
                ck_assert_int_eq(ly, icl_task_family_answer_len(f));
                check(f, icl_task_family_task_name(f, task), x, lx, y, ly);
                checked++;
            }
        }
    printf("  %-40s %d answers recomputed\n", spec, checked);
    icl_prompt_free(&p);
    icl_task_family_free(f);
}

START_TEST(test_answers_retrieval) {
    check_family_answers("retrieval", check_retrieval);
    check_family_answers("retrieval:A=6,L=6,tasks=6", check_retrieval);
}
END_TEST

START_TEST(test_answers_two_operand) { check_family_answers("two_operand", check_two_operand); }
END_TEST

START_TEST(test_answers_translation) {
    check_family_answers("translation", check_translation);
    check_family_answers("translation:M=7,K=5,sum=1", check_translation);
}
END_TEST

START_TEST(test_answers_first_last) {
    check_family_answers("first_last", check_first_last);
    check_family_answers("first_last:A=2,L=3,case=0", check_first_last);
}
END_TEST

START_TEST(test_answers_bitwise) {
    null_ones = null_bits = 0;
    check_family_answers("bitwise", check_bitwise);
    check_family_answers("bitwise:bits=3,null=0", check_bitwise);
    /* Null bits are random: about half are ones (175 prompts x 7 answers x 5 bits). */
    double frac = (double)null_ones / null_bits;
    printf("  Null task: %d of %d bits are 1 (%.3f)\n", null_ones, null_bits, frac);
    ck_assert(null_bits == 25 * 7 * 5);
    ck_assert(frac > 0.4 && frac < 0.6);
}
END_TEST

START_TEST(test_answers_class_lookup) {
    check_family_answers("class_lookup", check_class_lookup);
    check_family_answers("class_lookup:C=6,M=1,L=6", check_class_lookup);
}
END_TEST

/* ---- labels ---- */

static float want_weight(icl_loss_mask loss, int next_role, int has_next) {
    if (!has_next)
        return 0.0f;
    if (loss == ICL_LOSS_ALL)
        return 1.0f;
    if (loss == ICL_LOSS_ANSWERS)
        return next_role == ICL_ROLE_EX_ANSWER || next_role == ICL_ROLE_QUERY_ANSWER;
    return next_role == ICL_ROLE_QUERY_ANSWER;
}

static void check_token_labels(const icl_task_family *f, const icl_prompt *p, int task, icl_loss_mask loss) {
    const int Lx = icl_task_family_input_len(f), Ly = icl_task_family_answer_len(f), n = p->n_examples;
    int T;
    ck_assert_int_eq(icl_task_family_prompt_len(f, n, &T), ICL_OK);
    ck_assert_int_eq(p->T, T);
    ck_assert_int_eq(p->T, (n + 1) * (Lx + Ly + 2));
    ck_assert_int_eq(p->tokens[0], ICL_TOKEN_BOS);
    ck_assert_int_eq(p->roles[0], ICL_ROLE_BOS);
    ck_assert_int_eq(p->example_ids[0], -1);
    ck_assert_int_eq(p->task_ids[0], -1);
    int t = 1;
    for (int e = 0; e <= n; e++) {
        int q = e == n;
        const int want_task = q && task < 0 ? -1 : p->task_ids[t];
        if (task >= 0)
            ck_assert_int_eq(p->task_ids[t], task);
        icl_role seq[4] = {q ? ICL_ROLE_QUERY_INPUT : ICL_ROLE_EX_INPUT, q ? ICL_ROLE_QUERY_SEP : ICL_ROLE_EX_SEP,
                           q ? ICL_ROLE_QUERY_ANSWER : ICL_ROLE_EX_ANSWER, ICL_ROLE_DELIM};
        int len[4] = {Lx, 1, Ly, q ? 0 : 1};
        for (int s = 0; s < 4; s++)
            for (int j = 0; j < len[s]; j++, t++) {
                ck_assert_msg(p->roles[t] == (int)seq[s], "pos %d: role %s, want %s", t, icl_role_name(p->roles[t]),
                              icl_role_name(seq[s]));
                ck_assert_int_eq(p->example_ids[t], e);
                ck_assert_int_eq(p->task_ids[t], want_task);
                if (seq[s] == ICL_ROLE_EX_SEP || seq[s] == ICL_ROLE_QUERY_SEP)
                    ck_assert_int_eq(p->tokens[t], ICL_TOKEN_SEP);
                else if (seq[s] == ICL_ROLE_DELIM)
                    ck_assert_int_eq(p->tokens[t], ICL_TOKEN_DELIM);
                else
                    ck_assert(p->tokens[t] >= ICL_TOKEN_FIRST_CONTENT && p->tokens[t] < icl_task_family_vocab_size(f));
                if (seq[s] == ICL_ROLE_QUERY_SEP)
                    ck_assert_int_eq(p->query_pos, t);
            }
    }
    ck_assert_int_eq(t, p->T);
    for (t = 0; t < p->T; t++) {
        int has_next = t + 1 < p->T;
        ck_assert_int_eq(p->targets[t], has_next ? p->tokens[t + 1] : -1);
        ck_assert_msg(p->loss_weights[t] == want_weight(loss, has_next ? p->roles[t + 1] : -1, has_next),
                      "pos %d: weight %g", t, (double)p->loss_weights[t]);
    }
}

START_TEST(test_token_labels) {
    const char *specs[] = {"retrieval", "two_operand", "translation:sum=1", "first_last", "bitwise", "class_lookup"};
    icl_rng rng;
    icl_rng_init(&rng, 3, "labels");
    icl_prompt p = {0};
    for (size_t s = 0; s < sizeof specs / sizeof specs[0]; s++) {
        icl_task_family *f = make(specs[s]);
        for (int loss = ICL_LOSS_QUERY; loss <= ICL_LOSS_ALL; loss++)
            for (int n = 0; n <= 5; n += 5) {
                icl_gen_options opt = icl_gen_options_default();
                opt.loss = (icl_loss_mask)loss;
                int task = (int)(s + (size_t)loss) % icl_task_family_num_tasks(f);
                ck_assert_int_eq(icl_task_generate(f, task, n, &opt, &rng, &p), ICL_OK);
                ck_assert_int_eq(p.task, task);
                ck_assert_int_eq(p.n_examples, n);
                check_token_labels(f, &p, task, (icl_loss_mask)loss);
            }
        icl_task_family_free(f);
    }
    /* ANSWERS counts n+1 answers of answer_len tokens: 6 answers x 3 digits. */
    icl_task_family *f = make("two_operand");
    ck_assert_int_eq(icl_task_generate(f, 2, 5, NULL, &rng, &p), ICL_OK);
    float total = 0;
    for (int t = 0; t < p.T; t++)
        total += p.loss_weights[t];
    ck_assert_float_eq(total, 18.0f);
    icl_task_family_free(f);
    icl_prompt_free(&p);
}
END_TEST

static void check_vector_labels(const icl_task_family *f, const icl_prompt *p, icl_loss_mask loss) {
    const int D = icl_task_family_dim(f), d_in = D + 1, n = p->n_examples;
    ck_assert_int_eq(p->T, 2 * (n + 1));
    ck_assert_int_eq(p->d_in, d_in);
    ck_assert_int_eq(p->d_out, 1);
    ck_assert_int_eq(p->query_pos, 2 * n);
    for (int t = 0; t < p->T; t++) {
        int e = t / 2, is_x = t % 2 == 0, q = e == n;
        const float *v = p->inputs + (size_t)t * d_in;
        icl_role want = is_x ? (q ? ICL_ROLE_QUERY_INPUT : ICL_ROLE_EX_INPUT)
                             : (q ? ICL_ROLE_QUERY_ANSWER : ICL_ROLE_EX_ANSWER);
        ck_assert_int_eq(p->roles[t], want);
        ck_assert_int_eq(p->example_ids[t], e);
        ck_assert_float_eq(v[D], is_x ? 0.0f : 1.0f);
        if (!is_x)
            for (int c = 1; c < D; c++)
                ck_assert_float_eq(v[c], 0.0f);
        ck_assert_float_eq(p->target_values[t], is_x ? p->inputs[(size_t)(t + 1) * d_in] : 0.0f);
        float w = is_x && (loss != ICL_LOSS_QUERY || q) ? 1.0f : 0.0f;
        ck_assert_float_eq(p->loss_weights[t], w);
    }
}

START_TEST(test_vector_labels) {
    const char *specs[] = {"linear:d=3", "basis_mixture_small", "relu_net:d=4,h=8", "decision_tree:d=3",
                           "regression_mix:d=3"};
    icl_rng rng;
    icl_rng_init(&rng, 4, "labels");
    icl_prompt p = {0};
    for (size_t s = 0; s < sizeof specs / sizeof specs[0]; s++) {
        icl_task_family *f = make(specs[s]);
        for (int loss = ICL_LOSS_QUERY; loss <= ICL_LOSS_ALL; loss++) {
            icl_gen_options opt = icl_gen_options_default();
            opt.loss = (icl_loss_mask)loss;
            int task = loss % icl_task_family_num_tasks(f);
            ck_assert_int_eq(icl_task_generate(f, task, 4, &opt, &rng, &p), ICL_OK);
            for (int t = 0; t < p.T; t++)
                ck_assert_int_eq(p.task_ids[t], task);
            check_vector_labels(f, &p, (icl_loss_mask)loss);
        }
        icl_task_family_free(f);
    }
    icl_prompt_free(&p);
}
END_TEST

/* ---- vector families: the labels follow the family's function ---- */

/* Least squares on features F (n,m) by normal equations and Gauss-Jordan
 * elimination (test-local, independent of lib/baselines.c); returns the
 * largest |F w - y|. */
static double fit_residual(const double *F, const double *y, int n, int m, double *w) {
    double G[16][17];
    ck_assert_int_le(m, 16);
    for (int a = 0; a < m; a++) {
        for (int b = 0; b < m; b++) {
            G[a][b] = 0;
            for (int i = 0; i < n; i++)
                G[a][b] += F[i * m + a] * F[i * m + b];
        }
        G[a][m] = 0;
        for (int i = 0; i < n; i++)
            G[a][m] += F[i * m + a] * y[i];
    }
    for (int c = 0; c < m; c++) {
        int piv = c;
        for (int r = c + 1; r < m; r++)
            if (fabs(G[r][c]) > fabs(G[piv][c]))
                piv = r;
        for (int k = 0; k <= m; k++) {
            double t = G[c][k];
            G[c][k] = G[piv][k];
            G[piv][k] = t;
        }
        for (int r = 0; r < m; r++)
            if (r != c) {
                double fct = G[r][c] / G[c][c];
                for (int k = c; k <= m; k++)
                    G[r][k] -= fct * G[c][k];
            }
    }
    double worst = 0;
    for (int c = 0; c < m; c++)
        w[c] = G[c][m] / G[c][c];
    for (int i = 0; i < n; i++) {
        double r = -y[i];
        for (int c = 0; c < m; c++)
            r += F[i * m + c] * w[c];
        worst = fmax(worst, fabs(r));
    }
    return worst;
}

typedef enum { F_LINEAR, F_SQUARES, F_LEAKY } feature_kind;

/* Points of a vector prompt mapped to features; leaky labels unbent by the slope. */
static int prompt_features(const icl_prompt *p, int D, feature_kind kind, double slope, double *F, double *y) {
    int n = p->n_examples + 1;
    for (int i = 0; i < n; i++) {
        const float *x = p->inputs + (size_t)(2 * i) * p->d_in;
        double yi = p->inputs[(size_t)(2 * i + 1) * p->d_in];
        for (int c = 0; c < D; c++)
            F[i * D + c] = kind == F_SQUARES ? (double)x[c] * x[c] : x[c];
        y[i] = kind == F_LEAKY && yi < 0 ? yi / slope : yi;
    }
    return n;
}

static void check_fit(const char *spec, int task, feature_kind kind, double slope, int want_nonzero) {
    icl_task_family *f = make(spec);
    const int D = icl_task_family_dim(f);
    icl_rng rng;
    icl_rng_init(&rng, 5, spec);
    icl_prompt p = {0};
    double F[64 * 16], y[64], w[16], worst = 0, scale = 0;
    for (int rep = 0; rep < 10; rep++) {
        ck_assert_int_eq(icl_task_generate(f, task, 40, NULL, &rng, &p), ICL_OK);
        int n = prompt_features(&p, D, kind, slope, F, y);
        worst = fmax(worst, fit_residual(F, y, n, D, w));
        for (int i = 0; i < n; i++)
            scale = fmax(scale, fabs(y[i]));
        if (want_nonzero >= 0) {
            int nz = 0;
            for (int c = 0; c < D; c++)
                nz += fabs(w[c]) > 1e-4;
            ck_assert_int_eq(nz, want_nonzero);
        }
    }
    /* Labels are float32: residuals of a few ulps of the largest label. */
    double tol = 1e-6 * scale;
    printf("  %-30s task %d: largest fit residual %.3g, %.1f%% of tolerance %.2g\n", spec, task, worst,
           100 * worst / tol, tol);
    ck_assert(worst <= tol);
    icl_prompt_free(&p);
    icl_task_family_free(f);
}

START_TEST(test_vector_functions) {
    check_fit("linear:d=6", 0, F_LINEAR, 0, 6);
    check_fit("sparse_linear:d=8,s=3", 0, F_LINEAR, 0, 3);
    check_fit("quadratic:d=5", 0, F_SQUARES, 0, 5);
    check_fit("leaky_relu:d=5,slope=0.25", 0, F_LEAKY, 0.25, 5);
    check_fit("regression_mix:d=6,s=2,slope=0.3", 0, F_LINEAR, 0, 6);
    check_fit("regression_mix:d=6,s=2,slope=0.3", 1, F_LINEAR, 0, 2);
    check_fit("regression_mix:d=6,s=2,slope=0.3", 2, F_LEAKY, 0.3, 6);
    check_fit("regression_mix:d=6,s=2,slope=0.3", 3, F_SQUARES, 0, 6);
}
END_TEST

START_TEST(test_basis_mixture_bases) {
    icl_task_family *f = make("basis_mixture_small:sigma=0");
    icl_rng rng;
    icl_rng_init(&rng, 6, "basis");
    icl_prompt p = {0};
    double F[13 * 8], y[13], w[8];
    for (int task = 0; task < 4; task++) {
        int coords[8], r;
        ck_assert_int_eq(icl_task_family_basis(f, task, coords, 8, &r), ICL_OK);
        ck_assert_int_eq(r, 2);
        ck_assert_int_eq(coords[0], 2 * task);
        ck_assert_int_eq(coords[1], 2 * task + 1);
        for (int rep = 0; rep < 5; rep++) {
            ck_assert_int_eq(icl_task_generate(f, task, 12, NULL, &rng, &p), ICL_OK);
            int n = prompt_features(&p, 8, F_LINEAR, 0, F, y);
            double res = fit_residual(F, y, n, 8, w);
            ck_assert_msg(res < 1e-5, "residual %g", res);
            for (int c = 0; c < 8; c++)
                ck_assert_msg((fabs(w[c]) > 1e-4) == (c / 2 == task), "basis %d uses coordinate %d (w %g)", task, c,
                              w[c]);
        }
    }
    ck_assert_int_eq(icl_task_family_basis(f, 4, (int[8]){0}, 8, &(int){0}), ICL_ERR_INVALID_ARG);
    ck_assert_int_eq(icl_task_family_basis(f, 0, (int[1]){0}, 1, &(int){0}), ICL_ERR_INVALID_ARG);
    icl_task_family_free(f);

    /* Han's overlapping layout: 8 rank-4 bases in two 8-coordinate blocks. */
    f = make("basis_mixture_overlap");
    static const int want[8][4] = {{0, 1, 2, 3},   {2, 3, 4, 5},     {4, 5, 6, 7},     {6, 7, 0, 1},
                                   {8, 9, 10, 11}, {10, 11, 12, 13}, {12, 13, 14, 15}, {14, 15, 8, 9}};
    for (int task = 0; task < 8; task++) {
        int coords[16], r;
        ck_assert_int_eq(icl_task_family_basis(f, task, coords, 16, &r), ICL_OK);
        ck_assert_int_eq(r, 4);
        for (int i = 0; i < 4; i++)
            ck_assert_int_eq(coords[i], want[task][i]);
    }
    icl_task_family_free(f);
    f = make("linear");
    ck_assert_int_eq(icl_task_family_basis(f, 0, (int[4]){0}, 4, &(int){0}), ICL_ERR_UNSUPPORTED);
    icl_task_family_free(f);
    icl_prompt_free(&p);
}
END_TEST

START_TEST(test_relu_net_and_tree) {
    icl_rng rng;
    icl_rng_init(&rng, 7, "nonlinear");
    icl_prompt p = {0};
    /* d = 1: relu(w x) is linear on each side of 0, so y/x takes two values. */
    icl_task_family *f = make("relu_net:d=1,h=16");
    double worst = 0;
    for (int rep = 0; rep < 10; rep++) {
        ck_assert_int_eq(icl_task_generate(f, 0, 30, NULL, &rng, &p), ICL_OK);
        double slope[2] = {NAN, NAN};
        for (int i = 0; i <= 30; i++) {
            double x = p.inputs[(size_t)(4 * i)], y = p.inputs[(size_t)(4 * i + 2)];
            int side = x > 0;
            if (isnan(slope[side]))
                slope[side] = y / x;
            worst = fmax(worst, fabs(y / x - slope[side]) / (1e-3 + fabs(slope[side])));
        }
    }
    printf("  relu_net d=1: largest relative spread of y/x per side %.3g (tolerance 1e-4)\n", worst);
    ck_assert(worst < 1e-4);
    icl_task_family_free(f);
    /* A depth-4 tree on d = 2 depends only on the two signs: equal signs, equal y. */
    f = make("decision_tree:d=2");
    for (int rep = 0; rep < 20; rep++) {
        ck_assert_int_eq(icl_task_generate(f, 0, 30, NULL, &rng, &p), ICL_OK);
        double by_signs[4];
        int seen[4] = {0};
        for (int i = 0; i <= 30; i++) {
            const float *x = p.inputs + (size_t)(2 * i) * 3;
            int key = (x[0] > 0) * 2 + (x[1] > 0);
            double y = x[3 + 0];
            if (seen[key])
                ck_assert_msg(y == by_signs[key], "tree output %g vs %g for the same signs", y, by_signs[key]);
            by_signs[key] = y;
            seen[key] = 1;
        }
    }
    icl_task_family_free(f);
    /* d = 1: every node tests x > 0, so x <= 0 always reaches the leftmost
     * leaf and x > 0 the rightmost: two values, one per side. */
    f = make("decision_tree:d=1");
    int sides_differ = 0;
    for (int rep = 0; rep < 20; rep++) {
        ck_assert_int_eq(icl_task_generate(f, 0, 30, NULL, &rng, &p), ICL_OK);
        double side_y[2] = {NAN, NAN};
        for (int i = 0; i <= 30; i++) {
            int side = p.inputs[(size_t)(4 * i)] > 0;
            double y = p.inputs[(size_t)(4 * i + 2)];
            if (!isnan(side_y[side]))
                ck_assert_msg(y == side_y[side], "tree output varies within one side of 0");
            side_y[side] = y;
        }
        sides_differ += side_y[0] != side_y[1];
    }
    printf("  decision_tree d=1: the two sides differ in %d of 20 prompts\n", sides_differ);
    ck_assert_int_ge(sides_differ, 18);
    icl_task_family_free(f);
    icl_prompt_free(&p);
}
END_TEST

/* The documented scalings give E[y^2] = d for linear, quadratic and relu_net. */
static void check_second_moment(const char *spec, int d) {
    icl_task_family *f = make(spec);
    icl_rng rng;
    icl_rng_init(&rng, 19, spec);
    icl_prompt p = {0};
    double sum2 = 0;
    int count = 0;
    for (int rep = 0; rep < 400; rep++) {
        ck_assert_int_eq(icl_task_generate(f, 0, 10, NULL, &rng, &p), ICL_OK);
        for (int i = 0; i <= 10; i++, count++)
            sum2 += pow(p.inputs[(size_t)(2 * i + 1) * (d + 1)], 2);
    }
    printf("  %-24s mean y^2 %.3f (want %d within 15%%)\n", spec, sum2 / count, d);
    ck_assert(fabs(sum2 / count - d) < 0.15 * d);
    icl_prompt_free(&p);
    icl_task_family_free(f);
}

START_TEST(test_output_scale) {
    check_second_moment("linear:d=4", 4);
    check_second_moment("quadratic:d=4", 4);
    check_second_moment("relu_net:d=4,h=100", 4);
}
END_TEST

START_TEST(test_noise_and_active_dims) {
    icl_task_family *f = make("linear:d=3,sigma=0.5");
    icl_rng rng;
    icl_rng_init(&rng, 8, "noise");
    icl_prompt p = {0};
    double F[61 * 3], y[61], w[3], ss = 0;
    int m = 0;
    for (int rep = 0; rep < 20; rep++) {
        ck_assert_int_eq(icl_task_generate(f, 0, 60, NULL, &rng, &p), ICL_OK);
        int n = prompt_features(&p, 3, F_LINEAR, 0, F, y);
        fit_residual(F, y, n, 3, w);
        for (int i = 0; i < n; i++) {
            double r = y[i] - (F[i * 3] * w[0] + F[i * 3 + 1] * w[1] + F[i * 3 + 2] * w[2]);
            ss += r * r;
        }
        m += n - 3;
    }
    printf("  linear sigma=0.5: residual std %.4f (want 0.5 within 8%%)\n", sqrt(ss / m));
    ck_assert(fabs(sqrt(ss / m) - 0.5) < 0.04);
    icl_task_family_free(f);

    /* Curriculum: coordinates >= active_dims are zero; the active ones match a full draw. */
    f = make("linear:d=6");
    icl_prompt full = {0};
    icl_gen_options opt = icl_gen_options_default();
    opt.active_dims = 2;
    icl_rng a, b;
    icl_rng_init(&a, 9, "active");
    b = a;
    ck_assert_int_eq(icl_task_generate(f, 0, 10, &opt, &a, &p), ICL_OK);
    ck_assert_int_eq(icl_task_generate(f, 0, 10, NULL, &b, &full), ICL_OK);
    for (int i = 0; i <= 10; i++)
        for (int c = 0; c < 6; c++) {
            float got = p.inputs[(size_t)(2 * i) * 7 + c], all = full.inputs[(size_t)(2 * i) * 7 + c];
            ck_assert_float_eq(got, c < 2 ? all : 0.0f);
        }
    for (int i = 0; i <= 10; i++) {
        const float *x = p.inputs + (size_t)(2 * i) * 7;
        F[i * 2] = x[0];
        F[i * 2 + 1] = x[1];
        y[i] = x[7];
    }
    double res = fit_residual(F, y, 11, 2, w);
    ck_assert_msg(res < 1e-5, "active-dims labels are not linear in the active coordinates (%g)", res);
    opt.active_dims = 7;
    ck_assert_int_eq(icl_task_generate(f, 0, 10, &opt, &a, &p), ICL_ERR_INVALID_ARG);
    icl_prompt_free(&full);
    icl_prompt_free(&p);
    icl_task_family_free(f);
}
END_TEST

/* ---- mixed prompts ---- */

START_TEST(test_mix_counts) {
    struct {
        double lambda[3];
        int n_tasks, n, want[3];
    } cases[] = {
        {{0.25, 0.75}, 2, 8, {2, 6}},           {{1.0 / 3, 1.0 / 3, 1.0 / 3}, 3, 8, {3, 3, 2}},
        {{0.29, 0.71}, 2, 100, {29, 71}},       {{0.5, 0.5, 0.0}, 3, 5, {3, 2, 0}},
        {{0.1, 0.2, 0.7}, 3, 10, {1, 2, 7}},    {{0.15, 0.35, 0.5}, 3, 4, {1, 1, 2}},
        {{0.45, 0.1, 0.45}, 3, 10, {5, 1, 4}},  {{1.0, 0.0}, 2, 7, {7, 0}},
        {{0.3, 0.7}, 2, 10, {3, 7}},            {{0.7, 0.3}, 2, 0, {0, 0}},
    };
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        int got[3];
        ck_assert_int_eq(icl_task_mix_counts(cases[c].lambda, cases[c].n_tasks, cases[c].n, got), ICL_OK);
        for (int j = 0; j < cases[c].n_tasks; j++)
            ck_assert_msg(got[j] == cases[c].want[j], "case %zu task %d: %d, want %d", c, j, got[j],
                          cases[c].want[j]);
    }
    /* Random proportions: counts sum to n and stay within 1 of lambda n. */
    icl_rng rng;
    icl_rng_init(&rng, 10, "mix");
    for (int rep = 0; rep < 200; rep++) {
        double lambda[5], sum = 0;
        int counts[5], n = 1 + (int)icl_rng_below(&rng, 50), total = 0;
        for (int j = 0; j < 5; j++)
            sum += lambda[j] = icl_rng_uniform(&rng);
        for (int j = 0; j < 5; j++)
            lambda[j] /= sum;
        ck_assert_int_eq(icl_task_mix_counts(lambda, 5, n, counts), ICL_OK);
        for (int j = 0; j < 5; j++) {
            total += counts[j];
            ck_assert(fabs(counts[j] - lambda[j] * n) < 1.0);
        }
        ck_assert_int_eq(total, n);
    }
    int c[2];
    ck_assert_int_eq(icl_task_mix_counts((double[]){0.5, 0.6}, 2, 8, c), ICL_ERR_INVALID_ARG);
    ck_assert_int_eq(icl_task_mix_counts((double[]){-0.5, 1.5}, 2, 8, c), ICL_ERR_INVALID_ARG);
    ck_assert_int_eq(icl_task_mix_counts((double[]){NAN, 1.0}, 2, 8, c), ICL_ERR_INVALID_ARG);
    ck_assert_int_eq(icl_task_mix_counts((double[]){1.0}, 1, -1, c), ICL_ERR_INVALID_ARG);
    ck_assert_int_eq(icl_task_mix_counts((double[]){1.0}, 0, 8, c), ICL_ERR_INVALID_ARG);
    ck_assert_int_eq(icl_task_mix_counts(NULL, 1, 8, c), ICL_ERR_INVALID_ARG);
}
END_TEST

START_TEST(test_mixed_retrieval) {
    icl_task_family *f = make("retrieval");
    icl_rng rng;
    icl_rng_init(&rng, 12, "mixed");
    icl_mixed_prompt m = {0};
    const int tasks[3] = {3, 0, 2};
    const double lambda[3] = {0.5, 0.25, 0.25};
    int orders_seen = 0, first_order[8];
    for (int rep = 0; rep < 30; rep++) {
        ck_assert_int_eq(icl_task_generate_mixed(f, tasks, lambda, 3, 8, NULL, &rng, &m), ICL_OK);
        const icl_prompt *p = &m.prompt;
        ck_assert_int_eq(p->task, -1);
        ck_assert_int_eq(m.n_tasks, 3);
        ck_assert_int_eq(m.counts[0], 4);
        ck_assert_int_eq(m.counts[1], 2);
        ck_assert_int_eq(m.counts[2], 2);
        check_token_labels(f, p, -1, ICL_LOSS_ANSWERS);
        int per_task[4] = {0}, order[8];
        for (int e = 0; e < 8; e++) {
            int32_t x[6], y[1];
            gather(p, e, ICL_ROLE_EX_INPUT, x, 6);
            gather(p, e, ICL_ROLE_EX_ANSWER, y, 1);
            int task = -1;
            for (int t = 0; t < p->T; t++)
                if (p->example_ids[t] == e)
                    task = p->task_ids[t];
            ck_assert(task == 0 || task == 2 || task == 3);
            per_task[task]++;
            order[e] = task;
            ck_assert_int_eq(y[0], x[task]); /* ret_{task+1} */
        }
        ck_assert_int_eq(per_task[3], 4);
        ck_assert_int_eq(per_task[0], 2);
        ck_assert_int_eq(per_task[2], 2);
        if (rep == 0)
            memcpy(first_order, order, sizeof order);
        else
            orders_seen += memcmp(first_order, order, sizeof order) != 0;
        int32_t qx[6], qy[1];
        gather(p, 8, ICL_ROLE_QUERY_INPUT, qx, 6);
        gather(p, 8, ICL_ROLE_QUERY_ANSWER, qy, 1);
        for (int j = 0; j < 3; j++)
            ck_assert_int_eq(m.answers[j], qx[tasks[j]]);
        ck_assert_int_eq(qy[0], m.answers[0]);
        for (int e = 0; e < 8; e++) {
            int32_t x[6];
            gather(p, e, ICL_ROLE_EX_INPUT, x, 6);
            ck_assert_msg(memcmp(x, qx, sizeof x) != 0, "query input repeats example %d", e);
        }
        /* Teacher-force another task's answer. */
        ck_assert_int_eq(icl_prompt_set_query_answer(&m.prompt, &m.answers[2], NULL), ICL_OK);
        ck_assert_int_eq(p->tokens[p->query_pos + 1], m.answers[2]);
        ck_assert_int_eq(p->targets[p->query_pos], m.answers[2]);
        ck_assert_int_eq(p->targets[p->T - 1], -1);
    }
    printf("  mixed retrieval: example order differed from the first prompt in %d of 29 prompts\n", orders_seen);
    ck_assert_int_ge(orders_seen, 25);
    icl_mixed_prompt_free(&m);
    icl_task_family_free(f);
}
END_TEST

START_TEST(test_mixed_small_input_space) {
    /* translation has M = 10 inputs: 9 examples leave as few as one free query input. */
    icl_task_family *f = make("translation");
    icl_rng rng;
    icl_rng_init(&rng, 13, "small");
    icl_mixed_prompt m = {0};
    const int tasks[3] = {0, 1, 2};
    const double lambda[3] = {1.0 / 3, 1.0 / 3, 1.0 / 3};
    for (int rep = 0; rep < 100; rep++) {
        ck_assert_int_eq(icl_task_generate_mixed(f, tasks, lambda, 3, 9, NULL, &rng, &m), ICL_OK);
        const icl_prompt *p = &m.prompt;
        int32_t q = p->tokens[p->query_pos - 1];
        for (int e = 0; e < 9; e++)
            ck_assert_int_ne(p->tokens[1 + 4 * e], q);
        for (int j = 0; j < 3; j++)
            check_translation(f, icl_task_family_task_name(f, j), &q, 1, &m.answers[j], 1);
    }
    ck_assert_int_eq(icl_task_generate_mixed(f, tasks, lambda, 3, 10, NULL, &rng, &m), ICL_ERR_CONFIG);
    printf("  10 examples of 10 inputs: %s\n", icl_last_error());
    /* Single-task prompts can ask for an unseen query too. */
    icl_prompt p = {0};
    icl_gen_options opt = icl_gen_options_default();
    opt.query_unseen = 1;
    for (int rep = 0; rep < 50; rep++) {
        ck_assert_int_eq(icl_task_generate(f, 1, 9, &opt, &rng, &p), ICL_OK);
        for (int e = 0; e < 9; e++)
            ck_assert_int_ne(p.tokens[1 + 4 * e], p.tokens[p.query_pos - 1]);
    }
    icl_prompt_free(&p);
    icl_mixed_prompt_free(&m);
    icl_task_family_free(f);
}
END_TEST

START_TEST(test_mixed_vector) {
    icl_task_family *f = make("basis_mixture_small:sigma=0");
    icl_rng rng;
    icl_rng_init(&rng, 14, "mixvec");
    icl_mixed_prompt m = {0};
    const int tasks[2] = {1, 3};
    const double lambda[2] = {0.5, 0.5};
    double F[12 * 2], y[12], w[2], got[20], want[20];
    for (int rep = 0; rep < 10; rep++) {
        ck_assert_int_eq(icl_task_generate_mixed(f, tasks, lambda, 2, 12, NULL, &rng, &m), ICL_OK);
        const icl_prompt *p = &m.prompt;
        check_vector_labels(f, p, ICL_LOSS_ANSWERS);
        ck_assert_int_eq(p->task_ids[p->query_pos], -1);
        /* Each task's 6 examples follow one function of its basis; the query answers too. */
        for (int j = 0; j < 2; j++) {
            int n = 0;
            for (int e = 0; e < 12; e++)
                if (p->task_ids[2 * e] == tasks[j]) {
                    const float *x = p->inputs + (size_t)(2 * e) * 9;
                    F[n * 2] = x[2 * tasks[j]];
                    F[n * 2 + 1] = x[2 * tasks[j] + 1];
                    y[n++] = x[9];
                }
            ck_assert_int_eq(n, 6);
            ck_assert(fit_residual(F, y, n, 2, w) < 1e-5);
            const float *q = p->inputs + (size_t)p->query_pos * 9;
            want[2 * rep + j] = w[0] * q[2 * tasks[j]] + w[1] * q[2 * tasks[j] + 1];
            got[2 * rep + j] = m.answer_values[j];
        }
        ck_assert_float_eq(p->inputs[(size_t)(p->query_pos + 1) * 9], m.answer_values[0]);
        ck_assert_float_eq(p->target_values[p->query_pos], m.answer_values[0]);
        ck_assert_int_eq(icl_prompt_set_query_answer(&m.prompt, NULL, &m.answer_values[1]), ICL_OK);
        ck_assert_float_eq(p->target_values[p->query_pos], m.answer_values[1]);
    }
    tu_assert_close_d("mixed basis answers (float32 labels)", got, want, 20, 2e-6);
    icl_mixed_prompt_free(&m);
    icl_task_family_free(f);
}
END_TEST

START_TEST(test_mixed_errors) {
    icl_task_family *f = make("retrieval");
    icl_rng rng;
    icl_rng_init(&rng, 15, "mixerr");
    icl_mixed_prompt m = {0};
    const double half[2] = {0.5, 0.5};
    ck_assert_int_eq(icl_task_generate_mixed(f, (int[]){0, 0}, half, 2, 8, NULL, &rng, &m), ICL_ERR_INVALID_ARG);
    ck_assert_int_eq(icl_task_generate_mixed(f, (int[]){0, 4}, half, 2, 8, NULL, &rng, &m), ICL_ERR_INVALID_ARG);
    ck_assert_int_eq(icl_task_generate_mixed(f, (int[]){0, 1}, half, 2, 0, NULL, &rng, &m), ICL_ERR_INVALID_ARG);
    ck_assert_int_eq(icl_task_generate_mixed(f, (int[]){0, 1}, (double[]){0.5, 0.4}, 2, 8, NULL, &rng, &m),
                     ICL_ERR_INVALID_ARG);
    ck_assert_int_eq(icl_task_generate_mixed(f, (int[]){0, 1}, half, 0, 8, NULL, &rng, &m), ICL_ERR_INVALID_ARG);
    ck_assert_int_eq(icl_task_generate_mixed(NULL, (int[]){0, 1}, half, 2, 8, NULL, &rng, &m), ICL_ERR_INVALID_ARG);
    icl_gen_options opt = icl_gen_options_default();
    opt.ctx = 80; /* 8 examples need 81 positions */
    ck_assert_int_eq(icl_task_generate_mixed(f, (int[]){0, 1}, half, 2, 8, &opt, &rng, &m), ICL_ERR_CONFIG);
    icl_mixed_prompt_free(&m);
    icl_task_family_free(f);
}
END_TEST

/* ---- batches and determinism ---- */

static void assert_rows_equal(const icl_task_batch *a, int ia, const icl_task_batch *b, int ib) {
    ck_assert_int_eq(a->T, b->T);
    size_t T = (size_t)a->T;
    if (a->mode == ICL_MODE_TOKEN)
        ck_assert(memcmp(a->tokens + ia * T, b->tokens + ib * T, T * sizeof(int32_t)) == 0);
    else
        ck_assert(memcmp(a->inputs + ia * T * a->d_in, b->inputs + ib * T * b->d_in, T * a->d_in * sizeof(float)) ==
                  0);
    ck_assert(memcmp(a->task_ids + ia * T, b->task_ids + ib * T, T * sizeof(int32_t)) == 0);
    ck_assert_int_eq(a->prompt_task[ia], b->prompt_task[ib]);
}

START_TEST(test_batch_determinism) {
    const char *specs[] = {"retrieval", "basis_mixture_small"};
    for (int s = 0; s < 2; s++) {
        icl_task_family *f = make(specs[s]);
        icl_task_batch small = {0}, big = {0}, again = {0}, next = {0};
        icl_task_batch_options opt = icl_task_batch_options_default();
        icl_rng r1, r2, r3;
        icl_rng_init(&r1, 42, "data");
        icl_rng_init(&r2, 42, "data");
        icl_rng_init(&r3, 43, "data");
        opt.B = 4;
        ck_assert_int_eq(icl_task_batch_generate(f, &opt, &r1, &small), ICL_OK);
        ck_assert_int_eq(icl_task_batch_generate(f, &opt, &r1, &next), ICL_OK);
        opt.B = 16;
        ck_assert_int_eq(icl_task_batch_generate(f, &opt, &r2, &big), ICL_OK);
        for (int i = 0; i < 4; i++)
            assert_rows_equal(&small, i, &big, i); /* prompt i does not depend on B */
        ck_assert_int_eq(icl_task_batch_generate(f, &opt, &r3, &again), ICL_OK);
        int same_next = 0, same_seed = 0, tasks_seen = 0;
        size_t row = (size_t)small.T * (small.mode == ICL_MODE_TOKEN ? 1 : (size_t)small.d_in);
        for (int i = 0; i < 4; i++) {
            if (small.mode == ICL_MODE_TOKEN) {
                same_next += memcmp(small.tokens + i * row, next.tokens + i * row, row * 4) == 0;
                same_seed += memcmp(big.tokens + i * row, again.tokens + i * row, row * 4) == 0;
            } else {
                same_next += memcmp(small.inputs + i * row, next.inputs + i * row, row * 4) == 0;
                same_seed += memcmp(big.inputs + i * row, again.inputs + i * row, row * 4) == 0;
            }
        }
        for (int t = 0; t < icl_task_family_num_tasks(f); t++)
            for (int i = 0; i < 16; i++)
                if (big.prompt_task[i] == t) {
                    tasks_seen++;
                    break;
                }
        ck_assert_int_eq(same_next, 0); /* consecutive batches are fresh */
        ck_assert_int_eq(same_seed, 0); /* another seed gives other prompts */
        ck_assert_int_eq(tasks_seen, icl_task_family_num_tasks(f));
        /* Same seed, same batch, including the model view. */
        icl_rng_init(&r2, 42, "data");
        ck_assert_int_eq(icl_task_batch_generate(f, &opt, &r2, &again), ICL_OK);
        for (int i = 0; i < 16; i++)
            assert_rows_equal(&big, i, &again, i);
        ck_assert_int_eq(again.batch.B, 16);
        ck_assert_int_eq(again.batch.T, again.T);
        ck_assert_ptr_eq(again.batch.loss_weights, again.loss_weights);
        if (again.mode == ICL_MODE_TOKEN) {
            ck_assert_ptr_eq(again.batch.tokens, again.tokens);
            ck_assert_ptr_eq(again.batch.targets, again.targets);
            ck_assert_ptr_null(again.batch.inputs);
        } else {
            ck_assert_ptr_eq(again.batch.inputs, again.inputs);
            ck_assert_ptr_eq(again.batch.target_values, again.target_values);
            ck_assert_ptr_null(again.batch.tokens);
        }
        icl_task_batch_free(&small);
        icl_task_batch_free(&big);
        icl_task_batch_free(&again);
        icl_task_batch_free(&next);
        icl_task_family_free(f);
    }
}
END_TEST

START_TEST(test_batch_tasks_and_padding) {
    icl_task_family *f = make("bitwise");
    icl_task_batch b = {0};
    icl_task_batch_options opt = icl_task_batch_options_default();
    icl_rng rng;
    icl_rng_init(&rng, 16, "pad");
    const int subset[2] = {1, 4};
    opt.tasks = subset;
    opt.n_tasks = 2;
    opt.B = 20;
    opt.n_examples = 2;
    opt.pad_to = 70;
    ck_assert_int_eq(icl_task_batch_generate(f, &opt, &rng, &b), ICL_OK);
    ck_assert_int_eq(b.T, 70);
    int seen[7] = {0};
    for (int i = 0; i < 20; i++) {
        ck_assert(b.prompt_task[i] == 1 || b.prompt_task[i] == 4);
        seen[b.prompt_task[i]] = 1;
        ck_assert_int_eq(b.prompt_len[i], 3 * 18);
        ck_assert_int_eq(b.query_pos[i], 2 * 18 + 12);
        ck_assert_int_eq(b.roles[i * 70 + b.query_pos[i]], ICL_ROLE_QUERY_SEP);
        for (int t = 0; t < 70; t++) {
            size_t k = (size_t)i * 70 + t;
            if (t < b.prompt_len[i]) {
                ck_assert_int_eq(b.tokens[k], b.prompts[i].tokens[t]);
                ck_assert_float_eq(b.loss_weights[k], b.prompts[i].loss_weights[t]);
                continue;
            }
            ck_assert_int_eq(b.roles[k], ICL_ROLE_PAD);
            ck_assert_int_eq(b.tokens[k], ICL_TOKEN_DELIM);
            ck_assert_int_eq(b.targets[k], -1);
            ck_assert_float_eq(b.loss_weights[k], 0.0f);
            ck_assert_int_eq(b.example_ids[k], -1);
            ck_assert_int_eq(b.task_ids[k], -1);
        }
    }
    ck_assert(seen[1] && seen[4]);
    opt.pad_to = 50;
    ck_assert_int_eq(icl_task_batch_generate(f, &opt, &rng, &b), ICL_ERR_CONFIG);
    opt.pad_to = 0;
    opt.gen.ctx = 53;
    ck_assert_int_eq(icl_task_batch_generate(f, &opt, &rng, &b), ICL_ERR_CONFIG);
    printf("  ctx 53: %s\n", icl_last_error());
    opt.gen.ctx = 0;
    opt.B = 0;
    ck_assert_int_eq(icl_task_batch_generate(f, &opt, &rng, &b), ICL_ERR_INVALID_ARG);
    opt.B = 2;
    opt.tasks = (int[]){7};
    opt.n_tasks = 1;
    ck_assert_int_eq(icl_task_batch_generate(f, &opt, &rng, &b), ICL_ERR_INVALID_ARG);
    opt.tasks = subset;
    opt.n_tasks = 0;
    ck_assert_int_eq(icl_task_batch_generate(f, &opt, &rng, &b), ICL_ERR_INVALID_ARG);
    opt.n_tasks = 2;
    opt.n_examples = -2;
    ck_assert_int_eq(icl_task_batch_generate(f, &opt, &rng, &b), ICL_ERR_INVALID_ARG);
    /* Default examples: bitwise n = 4. */
    opt.n_examples = -1;
    ck_assert_int_eq(icl_task_batch_generate(f, &opt, &rng, &b), ICL_OK);
    ck_assert_int_eq(b.T, 5 * 18);

    /* Pack prompts of different lengths (e.g. mixed prompts) with padding to the longest. */
    icl_prompt p1 = {0}, p2 = {0};
    ck_assert_int_eq(icl_task_generate(f, 0, 1, NULL, &rng, &p1), ICL_OK);
    ck_assert_int_eq(icl_task_generate(f, 2, 3, NULL, &rng, &p2), ICL_OK);
    const icl_prompt *ps[2] = {&p1, &p2};
    ck_assert_int_eq(icl_task_batch_pack(&b, ps, 2, 0), ICL_OK);
    ck_assert_int_eq(b.T, 4 * 18);
    ck_assert_int_eq(b.prompt_len[0], 2 * 18);
    ck_assert_int_eq(b.roles[2 * 18], ICL_ROLE_PAD);
    ck_assert_int_eq(b.tokens[b.T + 5], p2.tokens[5]);
    const icl_prompt *own[2] = {&b.prompts[0], &b.prompts[1]};
    ck_assert_int_eq(icl_task_batch_pack(&b, own, 2, 0), ICL_OK);
    const icl_prompt *swapped[2] = {&b.prompts[1], &b.prompts[0]};
    ck_assert_int_eq(icl_task_batch_pack(&b, swapped, 2, 0), ICL_ERR_INVALID_ARG);
    icl_task_family *g = make("linear:d=2");
    icl_prompt pv = {0};
    ck_assert_int_eq(icl_task_generate(g, 0, 2, NULL, &rng, &pv), ICL_OK);
    const icl_prompt *mixed_modes[2] = {&p1, &pv};
    ck_assert_int_eq(icl_task_batch_pack(&b, mixed_modes, 2, 0), ICL_ERR_SHAPE);
    icl_prompt_free(&pv);
    icl_task_family_free(g);
    icl_prompt_free(&p1);
    icl_prompt_free(&p2);
    icl_task_batch_free(&b);
    icl_task_family_free(f);
}
END_TEST

START_TEST(test_generate_errors) {
    icl_task_family *f = make("retrieval");
    icl_rng rng;
    icl_rng_init(&rng, 17, "err");
    icl_prompt p = {0};
    ck_assert_int_eq(icl_task_generate(f, 4, 8, NULL, &rng, &p), ICL_ERR_INVALID_ARG);
    ck_assert_int_eq(icl_task_generate(f, -1, 8, NULL, &rng, &p), ICL_ERR_INVALID_ARG);
    ck_assert_int_eq(icl_task_generate(f, 0, -1, NULL, &rng, &p), ICL_ERR_INVALID_ARG);
    ck_assert_int_eq(icl_task_generate(NULL, 0, 8, NULL, &rng, &p), ICL_ERR_INVALID_ARG);
    ck_assert_int_eq(icl_task_generate(f, 0, 8, NULL, NULL, &p), ICL_ERR_INVALID_ARG);
    icl_gen_options opt = icl_gen_options_default();
    opt.ctx = 64;
    ck_assert_int_eq(icl_task_generate(f, 0, 8, &opt, &rng, &p), ICL_ERR_CONFIG);
    printf("  ctx 64: %s\n", icl_last_error());
    ck_assert_ptr_nonnull(strstr(icl_last_error(), "81"));
    ck_assert_int_eq(icl_task_generate(f, 0, 6, &opt, &rng, &p), ICL_OK); /* 63 positions fit */
    opt.loss = (icl_loss_mask)7;
    ck_assert_int_eq(icl_task_generate(f, 0, 6, &opt, &rng, &p), ICL_ERR_INVALID_ARG);
    opt = icl_gen_options_default();
    opt.active_dims = -1;
    ck_assert_int_eq(icl_task_generate(f, 0, 6, &opt, &rng, &p), ICL_ERR_INVALID_ARG);
    int T;
    ck_assert_int_eq(icl_task_family_prompt_len(f, -1, &T), ICL_ERR_INVALID_ARG);
    ck_assert_int_eq(icl_task_family_prompt_len(f, 8, &T), ICL_OK);
    ck_assert_int_eq(T, 81);
    ck_assert_int_eq(icl_prompt_set_query_answer(&p, NULL, NULL), ICL_ERR_INVALID_ARG);
    ck_assert_int_eq(icl_prompt_set_query_answer(&p, (int32_t[]){-3}, NULL), ICL_ERR_INVALID_ARG);
    double xs[4], ys[4];
    ck_assert_int_eq(icl_prompt_points(&p, xs, ys, 4), ICL_ERR_INVALID_ARG);
    icl_prompt empty = {0};
    ck_assert_int_eq(icl_prompt_copy(&p, &empty), ICL_ERR_INVALID_ARG);
    icl_prompt_free(&p);
    icl_prompt_free(NULL);
    icl_task_family_free(f);
}
END_TEST

/* ---- rendering, config, curriculum ---- */

START_TEST(test_render_and_config) {
    icl_task_family *f = make("two_operand");
    icl_rng rng;
    icl_rng_init(&rng, 18, "render");
    icl_prompt p = {0}, copy = {0};
    ck_assert_int_eq(icl_task_generate(f, 2, 1, NULL, &rng, &p), ICL_OK);
    char buf[256];
    ck_assert_int_eq(icl_prompt_render(f, &p, buf, sizeof buf), ICL_OK);
    printf("  rendered: %s\n", buf);
    /* "<bos> a1 a0 @ b1 b0 -> s2 s1 s0 | ..." */
    int a1, a0, b1, b0, s2, s1, s0;
    ck_assert_int_eq(sscanf(buf, "<bos> %d %d @ %d %d -> %d %d %d |", &a1, &a0, &b1, &b0, &s2, &s1, &s0), 7);
    ck_assert_int_eq(100 * s2 + 10 * s1 + s0, 10 * a1 + a0 + 10 * b1 + b0);
    ck_assert_int_eq(icl_prompt_render(f, &p, buf, 10), ICL_ERR_INVALID_ARG);
    ck_assert_int_eq(icl_prompt_copy(&copy, &p), ICL_OK);
    ck_assert_int_eq(copy.T, p.T);
    ck_assert(memcmp(copy.tokens, p.tokens, (size_t)p.T * 4) == 0);
    ck_assert(memcmp(copy.loss_weights, p.loss_weights, (size_t)p.T * 4) == 0);
    icl_config cfg = icl_config_default();
    ck_assert_int_eq(icl_task_family_fill_config(f, &cfg), ICL_OK);
    ck_assert_int_eq(cfg.mode, ICL_MODE_TOKEN);
    ck_assert_int_eq(cfg.vocab_size, 14);
    icl_task_family *g = make("linear:d=2");
    ck_assert_int_eq(icl_prompt_render(g, &p, buf, sizeof buf), ICL_ERR_INVALID_ARG);
    ck_assert_int_eq(icl_task_generate(g, 0, 1, NULL, &rng, &p), ICL_OK);
    ck_assert_int_eq(icl_prompt_render(g, &p, buf, sizeof buf), ICL_OK);
    printf("  rendered: %s\n", buf);
    float x0, x1, y0, q0, q1, y1;
    ck_assert_int_eq(sscanf(buf, "[%f %f] -> %f | [%f %f] -> %f", &x0, &x1, &y0, &q0, &q1, &y1), 6);
    ck_assert(fabsf(x0 - p.inputs[0]) < 0.006f && fabsf(y1 - p.inputs[3 * 3]) < 0.006f);
    ck_assert_int_eq(icl_task_family_fill_config(g, &cfg), ICL_OK);
    ck_assert_int_eq(cfg.mode, ICL_MODE_VECTOR);
    ck_assert_int_eq(cfg.d_in, 3);
    ck_assert_int_eq(cfg.d_out, 1);
    double xs[4], ys[2];
    ck_assert_int_eq(icl_prompt_points(&p, xs, ys, 2), ICL_OK);
    ck_assert(xs[2] == p.inputs[6] && ys[1] == p.inputs[9]);
    ck_assert_int_eq(icl_prompt_points(&p, xs, ys, 1), ICL_ERR_INVALID_ARG);
    ck_assert_str_eq(icl_role_name(ICL_ROLE_QUERY_SEP), "query_sep");
    ck_assert_ptr_null(icl_role_name(ICL_ROLE_COUNT));
    icl_prompt_free(&p);
    icl_prompt_free(&copy);
    icl_task_family_free(g);
    icl_task_family_free(f);
}
END_TEST

START_TEST(test_curriculum) {
    icl_curriculum c;
    int dims, n;
    ck_assert_int_eq(icl_curriculum_default(20, 40, &c), ICL_OK); /* Garg's linear regression */
    struct {
        long step;
        int dims, n;
    } want[] = {{0, 5, 10}, {1999, 5, 10}, {2000, 6, 12}, {10000, 10, 20}, {30000, 20, 40}, {1000000, 20, 40}};
    for (size_t i = 0; i < sizeof want / sizeof want[0]; i++) {
        ck_assert_int_eq(icl_curriculum_at(&c, want[i].step, &dims, &n), ICL_OK);
        ck_assert_msg(dims == want[i].dims && n == want[i].n, "step %ld: (%d, %d), want (%d, %d)", want[i].step, dims,
                      n, want[i].dims, want[i].n);
    }
    ck_assert_int_eq(icl_curriculum_default(20, 100, &c), ICL_OK); /* Garg's ReLU net: 26 -> 101 points */
    ck_assert_int_eq(icl_curriculum_at(&c, 0, &dims, &n), ICL_OK);
    ck_assert_int_eq(n, 25);
    ck_assert_int_eq(icl_curriculum_at(&c, 2000, &dims, &n), ICL_OK);
    ck_assert_int_eq(n, 30);
    /* 8 examples over 3 dims stages: steps of ceil(8/3) = 3 reach 20 with the dims. */
    ck_assert_int_eq(icl_curriculum_default(8, 20, &c), ICL_OK);
    ck_assert_int_eq(icl_curriculum_at(&c, 6000, &dims, &n), ICL_OK);
    ck_assert(dims == 8 && n == 20);
    ck_assert_int_eq(icl_curriculum_at(&c, 4000, &dims, &n), ICL_OK);
    ck_assert(dims == 7 && n == 18);
    ck_assert_int_eq(icl_curriculum_default(5, 10, &c), ICL_OK);
    ck_assert_int_eq(icl_curriculum_at(&c, 0, &dims, &n), ICL_OK);
    ck_assert(dims == 5 && n == 10);
    c.dims_every = 0;
    c.dims_start = 1;
    ck_assert_int_eq(icl_curriculum_at(&c, 0, &dims, &n), ICL_OK);
    ck_assert_int_eq(dims, 5);
    c.dims_inc = 0;
    ck_assert_int_eq(icl_curriculum_validate(&c), ICL_ERR_CONFIG);
    c.dims_inc = 1;
    c.examples_start = 11;
    ck_assert_int_eq(icl_curriculum_validate(&c), ICL_ERR_CONFIG);
    ck_assert_int_eq(icl_curriculum_default(0, 10, &c), ICL_ERR_INVALID_ARG);
    ck_assert_int_eq(icl_curriculum_default(5, 10, &c), ICL_OK);
    ck_assert_int_eq(icl_curriculum_at(&c, -1, &dims, &n), ICL_ERR_INVALID_ARG);
}
END_TEST

START_TEST(test_curriculum_short_prompts) {
    icl_curriculum c;
    int dims, n;
    ck_assert_int_eq(icl_curriculum_short_prompts(1, 2, 3000, 8, &c), ICL_OK); /* the retrieval recipe */
    ck_assert_int_eq(icl_curriculum_validate(&c), ICL_OK);
    struct {
        long step;
        int n;
    } want[] = {{0, 2}, {2999, 2}, {3000, 8}, {3001, 8}, {1000000, 8}};
    for (size_t i = 0; i < sizeof want / sizeof want[0]; i++) {
        ck_assert_int_eq(icl_curriculum_at(&c, want[i].step, &dims, &n), ICL_OK);
        ck_assert_msg(dims == 1 && n == want[i].n, "step %ld: (%d, %d), want (1, %d)", want[i].step, dims, n,
                      want[i].n);
    }
    ck_assert_int_eq(icl_curriculum_short_prompts(8, 0, 10, 12, &c), ICL_OK); /* vector family: all 8 dims */
    ck_assert_int_eq(icl_curriculum_at(&c, 5, &dims, &n), ICL_OK);
    ck_assert(dims == 8 && n == 0);
    ck_assert_int_eq(icl_curriculum_short_prompts(1, 8, 10, 8, &c), ICL_ERR_INVALID_ARG);  /* not shorter */
    ck_assert_int_eq(icl_curriculum_short_prompts(1, -1, 10, 8, &c), ICL_ERR_INVALID_ARG);
    ck_assert_int_eq(icl_curriculum_short_prompts(1, 2, 0, 8, &c), ICL_ERR_INVALID_ARG);   /* no short steps */
    ck_assert_int_eq(icl_curriculum_short_prompts(0, 2, 10, 8, &c), ICL_ERR_INVALID_ARG);  /* no dims */
    ck_assert_int_eq(icl_curriculum_short_prompts(1, 2, 10, 8, NULL), ICL_ERR_INVALID_ARG);
    ck_assert_msg(strstr(icl_last_error(), "icl_curriculum_short_prompts") != NULL, "error: %s", icl_last_error());
}
END_TEST

int main(void) {
    Suite *s = suite_create("tasks");
    TCase *tc = tcase_create("tasks");
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, test_spec_roundtrip);
    tcase_add_test(tc, test_spec_options_and_presets);
    tcase_add_test(tc, test_spec_errors);
    tcase_add_test(tc, test_answers_retrieval);
    tcase_add_test(tc, test_answers_two_operand);
    tcase_add_test(tc, test_answers_translation);
    tcase_add_test(tc, test_answers_first_last);
    tcase_add_test(tc, test_answers_bitwise);
    tcase_add_test(tc, test_answers_class_lookup);
    tcase_add_test(tc, test_token_labels);
    tcase_add_test(tc, test_vector_labels);
    tcase_add_test(tc, test_vector_functions);
    tcase_add_test(tc, test_basis_mixture_bases);
    tcase_add_test(tc, test_relu_net_and_tree);
    tcase_add_test(tc, test_output_scale);
    tcase_add_test(tc, test_noise_and_active_dims);
    tcase_add_test(tc, test_mix_counts);
    tcase_add_test(tc, test_mixed_retrieval);
    tcase_add_test(tc, test_mixed_small_input_space);
    tcase_add_test(tc, test_mixed_vector);
    tcase_add_test(tc, test_mixed_errors);
    tcase_add_test(tc, test_batch_determinism);
    tcase_add_test(tc, test_batch_tasks_and_padding);
    tcase_add_test(tc, test_generate_errors);
    tcase_add_test(tc, test_render_and_config);
    tcase_add_test(tc, test_curriculum);
    tcase_add_test(tc, test_curriculum_short_prompts);
    suite_add_tcase(s, tc);
    return tu_run(s);
}
