/* The example programs, run as a user would: examples/answer_rank.c (a logit
 * lens written against the public headers alone) on a model trained here
 * for 200 steps. Its per-level mean ranks must equal the ranks the
 * library's own logit lens (icl_lens_read) gives on the same prompts, its
 * last level must agree with the model's output distribution, every mean
 * must lie in [1, V], and the trained model must rank the answer well above
 * chance after its last block. The binaries are found next to this test's
 * build directory (../bin). */
#define _DEFAULT_SOURCE /* realpath */
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "icl/icl.h"
#include "testutil.h"

#define SPEC "retrieval:A=6,L=3,tasks=2,n=3"
#define MAX_LEVELS 8

static char bin_dir[PATH_MAX + 16];

/* Train a 2-block model on SPEC for `steps` steps; saved to `path` with the
 * family as "user.task". */
static icl_model *train_model(const char *path, long steps) {
    icl_task_family *f;
    ck_assert_int_eq(icl_task_family_create(&f, SPEC), ICL_OK);
    icl_config c = icl_config_default();
    c.d_model = 32;
    c.n_head = 2;
    c.n_layer = 2;
    ck_assert_int_eq(icl_task_family_fill_config(f, &c), ICL_OK);
    ck_assert_int_eq(icl_task_family_prompt_len(f, icl_task_family_default_examples(f), &c.ctx), ICL_OK);
    icl_model *m;
    icl_optimizer *opt;
    icl_optim_config oc = icl_optim_config_default();
    oc.lr = 3e-3f;
    oc.total_steps = steps;
    oc.warmup_steps = 20;
    ck_assert_int_eq(icl_model_create(&m, &c, ICL_BACKEND_CPU, 7), ICL_OK);
    ck_assert_int_eq(icl_optimizer_create(&opt, m, &oc), ICL_OK);
    icl_task_batch_options bo = icl_task_batch_options_default();
    bo.B = 16;
    icl_task_batch tb = {0};
    icl_rng rng;
    icl_rng_init(&rng, 3, "train");
    icl_step_stats st;
    for (long s = 0; s < steps; s++) {
        ck_assert_int_eq(icl_task_batch_generate(f, &bo, &rng, &tb), ICL_OK);
        ck_assert_int_eq(icl_train_step(m, opt, &tb.batch, 1, &st), ICL_OK);
    }
    printf("  trained %ld steps, last loss %.4f\n", steps, st.loss);
    icl_meta_entry meta = {"user.task", SPEC};
    ck_assert_int_eq(icl_checkpoint_save_with_meta(path, m, NULL, NULL, &meta, 1), ICL_OK);
    icl_task_batch_free(&tb);
    icl_optimizer_free(opt);
    icl_task_family_free(f);
    return m;
}

/* Run answer_rank on `path` with its defaults (the family from the
 * checkpoint, 64 prompts, seed 1) and parse its per-level means; the number
 * of levels. */
static int run_example(const char *path, double *mean) {
    char cmd[2 * PATH_MAX], line[256];
    snprintf(cmd, sizeof cmd, "'%s/answer_rank' '%s' 2>&1", bin_dir, path);
    FILE *p = popen(cmd, "r");
    ck_assert_msg(p != NULL, "cannot run %s", cmd);
    int n = 0, level;
    char after[32];
    double v;
    while (fgets(line, sizeof line, p)) {
        printf("  | %s", line);
        if (sscanf(line, "%d\t%31s\t%lf", &level, after, &v) == 3) {
            ck_assert_int_eq(level, n);
            ck_assert_int_lt(n, MAX_LEVELS);
            mean[n++] = v;
        }
    }
    ck_assert_int_eq(pclose(p), 0);
    return n;
}

/* 1 + the number of tokens more probable than `want`. */
static int rank_of(const double *p, int V, int want) {
    int r = 1;
    for (int v = 0; v < V; v++) r += p[v] > p[want];
    return r;
}

START_TEST(test_answer_rank_matches_the_library_lens) {
    char path[64];
    snprintf(path, sizeof path, "/tmp/icl_test_examples_%d.safetensors", (int)getpid());
    icl_model *m = train_model(path, 200);
    double got[MAX_LEVELS];
    int levels = run_example(path, got);
    unlink(path);
    const icl_config *c = icl_model_config(m);
    int V = c->vocab_size;
    ck_assert_int_eq(levels, c->n_layer + 1);
    /* The same prompts as the example's defaults: 64 prompts, seed 1. */
    icl_task_family *f;
    ck_assert_int_eq(icl_task_family_create(&f, SPEC), ICL_OK);
    icl_task_batch_options bo = icl_task_batch_options_default();
    bo.B = 64;
    icl_task_batch tb = {0};
    icl_rng rng;
    icl_rng_init(&rng, 1, "answer_rank");
    ck_assert_int_eq(icl_task_batch_generate(f, &bo, &rng, &tb), ICL_OK);
    ck_assert_int_eq(icl_model_forward(m, &tb.batch, NULL), ICL_OK);
    icl_lens *lens;
    ck_assert_int_eq(icl_lens_create(m, &lens), ICL_OK);
    int B = tb.B, rows[64];
    double *p = malloc((size_t)B * V * sizeof *p);
    float *out = tu_floats((size_t)V);
    for (int b = 0; b < B; b++) rows[b] = b;
    double chance = (V + 1) / 2.0, want_last = 0.0;
    for (int l = 0; l < levels; l++) {
        ck_assert_int_eq(icl_lens_read(lens, m, l, rows, tb.query_pos, B, p), ICL_OK);
        double sum = 0.0;
        for (int b = 0; b < B; b++)
            sum += rank_of(p + (size_t)b * V, V, tb.tokens[(size_t)b * tb.T + tb.query_pos[b] + 1]);
        double want = sum / B;
        printf("  level %d: example %.6f, library lens %.6f (|diff| %.2g, margin 5e-7)\n", l, got[l], want,
               fabs(got[l] - want));
        ck_assert(fabs(got[l] - want) < 5e-7);
        ck_assert(got[l] >= 1.0 && got[l] <= V);
        want_last = want;
    }
    /* The last level is the model's own output distribution. */
    double sum = 0.0;
    for (int b = 0; b < B; b++) {
        ck_assert_int_eq(icl_model_probs_at(m, b, tb.query_pos[b], out, (size_t)V), ICL_OK);
        int want = tb.tokens[(size_t)b * tb.T + tb.query_pos[b] + 1], r = 1;
        for (int v = 0; v < V; v++) r += out[v] > out[want];
        sum += r;
    }
    printf("  last level %.6f, model output %.6f; chance %.1f\n", want_last, sum / B, chance);
    ck_assert(fabs(sum / B - want_last) < 5e-7);
    ck_assert_msg(got[levels - 1] < 0.5 * chance, "mean rank %.3f after the last block, chance %.1f",
                  got[levels - 1], chance);
    free(p);
    free(out);
    icl_lens_free(lens);
    icl_task_batch_free(&tb);
    icl_task_family_free(f);
    icl_model_free(m);
}
END_TEST

int main(int argc, char **argv) {
    (void)argc;
    if (tu_bin_dir(argv[0], bin_dir, sizeof bin_dir))
        return 1;
    Suite *s = suite_create("examples");
    TCase *tc = tcase_create("answer_rank");
    tcase_set_timeout(tc, 300);
    tcase_add_test(tc, test_answer_rank_matches_the_library_lens);
    suite_add_tcase(s, tc);
    return tu_run(s);
}
