/* Task-vector and function-vector probes: extraction equals a manual mean of
 * residuals, self-patching is a bitwise no-op, interpolation end points equal
 * plain patching, the head projection equals the head's share of attn_out,
 * AIE vanishes where clean = corrupted, scores agree with icl_answer_probs and
 * the model's own MSE, and bad requests are rejected. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "icl/icl.h"
#include "icl/readout.h"
#include "icl/task_vectors.h"
#include "probe_internal.h"
#include "testutil.h"

typedef struct {
    icl_task_family *f;
    icl_model *m;
} fixture;

/* An untrained model sized for `spec` with n examples per prompt (random weights are enough: every check
 * here compares two computations of the same quantity). */
static void setup(fixture *x, const char *spec, int n_examples, int n_head) {
    memset(x, 0, sizeof *x);
    ck_assert_int_eq(icl_task_family_create(&x->f, spec), ICL_OK);
    int ctx;
    ck_assert_int_eq(icl_task_family_prompt_len(x->f, n_examples, &ctx), ICL_OK);
    x->m = tu_model((tu_model_shape){.n_layer = 2, .d_model = 24, .n_head = n_head, .d_ff = 40, .ctx = ctx,
            .family = x->f}, 11);
}

static void teardown(fixture *x) {
    icl_model_free(x->m);
    icl_task_family_free(x->f);
}

static icl_prompt_set set_of(const fixture *x, const char *stream, int task, int k) {
    icl_prompt_set ps = {5, stream, task, k, 0, icl_model_config(x->m)->ctx, ICL_LOSS_ANSWERS};
    return ps;
}

static float *outputs_of(const fixture *x, const icl_task_batch *tb) {
    const icl_config *c = icl_model_config(x->m);
    size_t n = (size_t)tb->B * tb->T * (c->mode == ICL_MODE_TOKEN ? c->vocab_size : c->d_out);
    float *y = tu_floats(n);
    ck_assert_int_eq(icl_model_outputs(x->m, y, n), ICL_OK);
    return y;
}

/* The vectors are the mean over prompts of icl_residuals_at at the query separator, for every level. */
START_TEST(test_extraction_is_mean_of_residuals) {
    fixture x;
    setup(&x, "retrieval:A=8,L=4,n=3", 3, 3);
    int tasks[2] = {0, 2}, N = 5, NL = 3, C = 24;
    float *got = tu_floats((size_t)2 * NL * C), *want = tu_floats((size_t)2 * NL * C);
    /* batch 2 splits the 5 prompts over three passes */
    ck_assert_int_eq(icl_tv_mean_residuals(x.m, x.f, tasks, 2, 3, N, 2, 5, ICL_TV_STREAM_DEMO, got), ICL_OK);
    icl_task_batch tb = {0};
    float *res = tu_floats((size_t)NL * N * C);
    for (int i = 0; i < 2; i++) {
        icl_prompt_set ps = set_of(&x, ICL_TV_STREAM_DEMO, tasks[i], 3);
        ck_assert_int_eq(icl_prompt_set_batch(x.f, &ps, 0, N, &tb), ICL_OK);
        ck_assert_int_eq(icl_residuals_at(x.m, &tb, icl_pos_role(ICL_ROLE_QUERY_SEP), NULL, 0, res), ICL_OK);
        for (int l = 0; l < NL; l++)
            for (int c = 0; c < C; c++) {
                double s = 0.0;
                for (int b = 0; b < N; b++) s += res[((size_t)l * N + b) * C + c];
                want[((size_t)i * NL + l) * C + c] = (float)(s / N);
            }
    }
    TU_ASSERT_CLOSE("extracted vs manual mean of residuals", got, want, (size_t)2 * NL * C, 1e-6, 1e-5);
    /* the two tasks' vectors differ (the comparison above is not trivially of equal arrays) */
    ck_assert(memcmp(want, want + (size_t)NL * C, (size_t)NL * C * sizeof(float)) != 0);
    free(got);
    free(want);
    free(res);
    icl_task_batch_free(&tb);
    teardown(&x);
}
END_TEST

/* A vector extracted from one prompt, put back into that prompt by REPLACE, changes no bit of its outputs;
 * another prompt's vector does change them. */
START_TEST(test_self_patch_is_bitwise_noop) {
    fixture x;
    setup(&x, "retrieval:A=8,L=4,n=3", 3, 3);
    int task = 1, NL = 3, C = 24;
    float *v = tu_floats((size_t)NL * C), *other = tu_floats((size_t)NL * C);
    ck_assert_int_eq(icl_tv_mean_residuals(x.m, x.f, &task, 1, 3, 1, 4, 5, "self", v), ICL_OK);
    /* two examples: the query separator sits elsewhere, so even the embedding level differs */
    ck_assert_int_eq(icl_tv_mean_residuals(x.m, x.f, &task, 1, 2, 1, 4, 5, "another", other), ICL_OK);
    icl_task_batch tb = {0};
    icl_prompt_set ps = set_of(&x, "self", task, 3);
    ck_assert_int_eq(icl_prompt_set_batch(x.f, &ps, 0, 1, &tb), ICL_OK);
    icl_row_labels labels = {tb.roles, tb.prompt_len};
    ck_assert_int_eq(icl_forward_with(x.m, &tb.batch, &labels, NULL, 0, NULL), ICL_OK);
    float *clean = outputs_of(&x, &tb);
    size_t n = (size_t)tb.T * icl_model_config(x.m)->vocab_size;
    for (int l = 0; l < NL; l++) {
        icl_intervention iv;
        ck_assert_int_eq(icl_tv_intervention(x.m, l, ICL_TV_REPLACE, v + (size_t)l * C, &iv), ICL_OK);
        ck_assert_int_eq(icl_forward_with(x.m, &tb.batch, &labels, &iv, 1, NULL), ICL_OK);
        float *patched = outputs_of(&x, &tb);
        ck_assert_msg(memcmp(clean, patched, n * sizeof(float)) == 0, "level %d: self-patch changed the logits", l);
        free(patched);
        ck_assert_int_eq(icl_tv_intervention(x.m, l, ICL_TV_REPLACE, other + (size_t)l * C, &iv), ICL_OK);
        ck_assert_int_eq(icl_forward_with(x.m, &tb.batch, &labels, &iv, 1, NULL), ICL_OK);
        float *moved = outputs_of(&x, &tb);
        ck_assert_msg(memcmp(clean, moved, n * sizeof(float)) != 0, "level %d: a foreign vector changed nothing", l);
        free(moved);
    }
    printf("  self-patch at levels 0..%d: logits bit-identical; foreign vectors change them\n", NL - 1);
    free(v);
    free(other);
    free(clean);
    icl_task_batch_free(&tb);
    teardown(&x);
}
END_TEST

/* Mean of P(candidate 0 / 1) over the interpolation prompts of the run with v patched at `level`. */
static void patched_means(fixture *x, const icl_tv_options *o, const icl_tv_result *r, const float *v, int level,
                          double *mean) {
    icl_task_batch tb = {0};
    icl_prompt_set ps = set_of(x, ICL_TV_STREAM_INTERP, r->tasks[0], 0);
    ps.seed = o->seed;
    ck_assert_int_eq(icl_prompt_set_batch(x->f, &ps, 0, o->eval_prompts, &tb), ICL_OK);
    int B = tb.B, A = 1;
    int32_t *ans = tu_ints((size_t)B * 2 * A), *one = tu_ints((size_t)B * A);
    for (int side = 0; side < 2; side++) {
        ck_assert_int_eq(icl_query_answers(x->f, &tb, r->tasks[side], one), ICL_OK);
        for (int b = 0; b < B; b++) ans[b * 2 + side] = one[b];
    }
    icl_intervention iv;
    ck_assert_int_eq(icl_tv_intervention(x->m, level, o->mode, v, &iv), ICL_OK);
    double *p = malloc((size_t)B * 2 * sizeof *p);
    ck_assert_int_eq(icl_answer_probs(x->m, &tb, ans, 2, &iv, 1, p, NULL), ICL_OK);
    const double w = 1.0 / o->eval_prompts;
    mean[0] = mean[1] = 0.0;
    for (int b = 0; b < B; b++) {
        mean[0] += p[2 * b] * w;
        mean[1] += p[2 * b + 1] * w;
    }
    free(p);
    free(ans);
    free(one);
    icl_task_batch_free(&tb);
}

/* alpha = 1 is patching v_1 and alpha = 0 is patching v_2, exactly; the run's vectors are the extraction's. */
START_TEST(test_interpolation_end_points) {
    fixture x;
    setup(&x, "retrieval:A=8,L=4,n=3", 3, 3);
    int tasks[2] = {0, 3};
    icl_tv_options o = icl_tv_options_default(x.f);
    o.tasks = tasks;
    o.n_tasks = 2;
    o.n_prompts = 4;
    o.eval_prompts = 6;
    o.n_alpha = 3;
    o.level = 1;
    o.batch = 8;
    o.seed = 3;
    icl_tv_result r;
    ck_assert_int_eq(icl_task_vectors_run(x.m, x.f, &o, &r), ICL_OK);
    ck_assert_int_eq(r.n_pairs, 1);
    ck_assert_int_eq(r.n_levels, 3);
    float *v = tu_floats((size_t)2 * 3 * 24);
    ck_assert_int_eq(icl_tv_mean_residuals(x.m, x.f, tasks, 2, 3, 4, 8, 3, ICL_TV_STREAM_DEMO, v), ICL_OK);
    ck_assert(memcmp(v, r.vectors, (size_t)2 * 3 * 24 * sizeof(float)) == 0);
    double m1[2], m2[2];
    patched_means(&x, &o, &r, r.vectors + (size_t)(0 * 3 + 1) * 24, 1, m1);
    patched_means(&x, &o, &r, r.vectors + (size_t)(1 * 3 + 1) * 24, 1, m2);
    const double *a1 = r.interp + 2 * 3, *a0 = r.interp;
    printf("  alpha=1: P1 %.9g vs %.9g, P2 %.9g vs %.9g\n", a1[0], m1[0], a1[1], m1[1]);
    printf("  alpha=0: P1 %.9g vs %.9g, P2 %.9g vs %.9g\n", a0[0], m2[0], a0[1], m2[1]);
    ck_assert(a1[0] == m1[0] && a1[1] == m1[1]);
    ck_assert(a0[0] == m2[0] && a0[1] == m2[1]);
    ck_assert(m1[0] != m2[0]); /* the end points differ, so the test could tell them apart */
    for (int a = 0; a < 3; a++) {
        const double *c = r.interp + a * 3;
        ck_assert(c[0] >= 0 && c[1] >= 0 && c[2] >= -1e-12 && fabs(c[0] + c[1] + c[2] - 1.0) < 1e-12);
    }
    /* the zero-shot sweep and the matrices are filled with probabilities */
    for (int i = 0; i < 2 * 3; i++) ck_assert(r.zs_p[i] > 0 && r.zs_p[i] < 1 && r.zs_acc[i] >= 0 && r.zs_acc[i] <= 1);
    for (int i = 0; i < 3 * 2 * 2; i++) ck_assert(r.mat_p[i] > 0 && r.mat_p_own[i] > 0);
    /* the rule, recomputed: highest mean accuracy over levels 1..L, then P, then the lower level;
       level 0 (the embedding: a patch there changes nothing) is no candidate */
    int want = -1, all_levels = 0;
    double want_a = -1, want_p = -1, top_a = -1, top_p = -1;
    for (int l = 0; l < 3; l++) {
        double a = r.zs_acc[l] + r.zs_acc[3 + l], p = r.zs_p[l] + r.zs_p[3 + l];
        if (a > top_a || (a == top_a && p > top_p))
            all_levels = l, top_a = a, top_p = p;
        if (l >= 1 && (a > want_a || (a == want_a && p > want_p)))
            want = l, want_a = a, want_p = p;
    }
    printf("  best level %d (rule: %d; with the embedding level a candidate: %d)\n", r.best_level, want, all_levels);
    ck_assert_int_eq(r.best_level, want);
    icl_tv_result_free(&r);
    free(v);
    teardown(&x);
}
END_TEST

/* Where the mixed-prompt vector lies: the run's a* and distance from the line equal those recomputed from
 * the mixed prompts regenerated from the documented stream (mean query residual m, then the projection of
 * m - v_j on v_i - v_j); with k < 2 there is no half-and-half prompt and no result. */
START_TEST(test_mixed_vector_position) {
    fixture x;
    setup(&x, "retrieval:A=8,L=4,n=4", 4, 3);
    int tasks[2] = {1, 3}, N = 5, NL = 3, C = 24;
    icl_tv_options o = icl_tv_options_default(x.f);
    o.tasks = tasks;
    o.n_tasks = 2;
    o.n_prompts = N;
    o.eval_prompts = 2;
    o.n_alpha = 2;
    o.batch = 2; /* the 5 mixed prompts in three passes */
    o.seed = 9;
    icl_tv_result r;
    ck_assert_int_eq(icl_task_vectors_run(x.m, x.f, &o, &r), ICL_OK);
    ck_assert_ptr_nonnull(r.mix_alpha);
    icl_rng root, per_a, per_pair;
    icl_rng_init(&root, 9, ICL_TV_STREAM_MIXED);
    icl_rng_split(&per_a, &root, 1);
    icl_rng_split(&per_pair, &per_a, 3);
    icl_gen_options gen = icl_gen_options_default();
    gen.loss = ICL_LOSS_ANSWERS;
    gen.ctx = icl_model_config(x.m)->ctx;
    const double lambda[2] = {0.5, 0.5};
    icl_mixed_prompt mp[5];
    const icl_prompt *rows[5];
    memset(mp, 0, sizeof mp);
    for (int q = 0; q < N; q++) {
        icl_rng rq;
        icl_rng_split(&rq, &per_pair, (uint64_t)q);
        ck_assert_int_eq(icl_task_generate_mixed(x.f, tasks, lambda, 2, 4, &gen, &rq, &mp[q]), ICL_OK);
        ck_assert_int_eq(mp[q].counts[0], 2);
        rows[q] = &mp[q].prompt;
    }
    icl_task_batch tb = {0};
    ck_assert_int_eq(icl_task_batch_pack(&tb, rows, N, 0), ICL_OK);
    float *res = tu_floats((size_t)NL * N * C);
    ck_assert_int_eq(icl_residuals_at(x.m, &tb, icl_pos_role(ICL_ROLE_QUERY_SEP), NULL, 0, res), ICL_OK);
    for (int l = 1; l < NL; l++) {
        const float *vi = r.vectors + (size_t)(0 * NL + l) * C, *vj = r.vectors + (size_t)(1 * NL + l) * C;
        double m[24], dd = 0.0, md = 0.0, off = 0.0;
        for (int c = 0; c < C; c++) {
            m[c] = 0.0;
            for (int q = 0; q < N; q++) m[c] += res[((size_t)l * N + q) * C + c] / N;
            dd += ((double)vi[c] - vj[c]) * ((double)vi[c] - vj[c]);
            md += (m[c] - vj[c]) * ((double)vi[c] - vj[c]);
        }
        double a = md / dd;
        for (int c = 0; c < C; c++) {
            double e = m[c] - (a * vi[c] + (1.0 - a) * vj[c]);
            off += e * e;
        }
        printf("  level %d: a* %.9g vs %.9g, off-line %.9g vs %.9g\n", l, r.mix_alpha[l], a, r.mix_offline[l],
               sqrt(off / dd));
        ck_assert(fabs(r.mix_alpha[l] - a) < 1e-6 && fabs(r.mix_offline[l] - sqrt(off / dd)) < 1e-6);
    }
    /* level 0 is the query separator's embedding, the same in every prompt: v_i = v_j, NaN */
    ck_assert(isnan(r.mix_alpha[0]) && isnan(r.mix_offline[0]));
    icl_tv_result_free(&r);
    o.n_examples = 1;
    o.target_examples = 1;
    ck_assert_int_eq(icl_task_vectors_run(x.m, x.f, &o, &r), ICL_OK);
    ck_assert(r.mix_alpha == NULL && r.mix_offline == NULL);
    icl_tv_result_free(&r);
    for (int q = 0; q < N; q++) icl_mixed_prompt_free(&mp[q]);
    icl_task_batch_free(&tb);
    free(res);
    teardown(&x);
}
END_TEST

/* best_helps: a hand-made sweep where patching lowers zero-shot accuracy at
 * every level (the demo model's ret_1, 0.14 -> 0.10) reports no help, one
 * that raises it at one level reports help there only; a run sets best_helps
 * by the same rule at its best level. */
START_TEST(test_best_level_helps) {
    /* 2 tasks x 3 levels; baselines 0.14 and 0.20 (mean 0.17) */
    double acc0[2] = {0.14, 0.20};
    double hurts[6] = {0.14, 0.10, 0.12, 0.20, 0.18, 0.16}; /* level means 0.17, 0.14, 0.14: none > 0.17 */
    double helps[6] = {0.14, 0.10, 0.30, 0.20, 0.18, 0.20}; /* level 2: mean 0.25 */
    icl_tv_result r = {.mode = ICL_MODE_TOKEN, .n_tasks = 2, .n_levels = 3, .zs_acc0 = acc0, .zs_acc = hurts};
    int h = -1;
    for (int l = 0; l < 3; l++) {
        ck_assert_int_eq(icl_tv_level_helps(&r, l, &h), ICL_OK);
        ck_assert_int_eq(h, 0); /* level 0 equals the baseline: equal is no help */
    }
    r.zs_acc = helps;
    const int want[3] = {0, 0, 1};
    for (int l = 0; l < 3; l++) {
        ck_assert_int_eq(icl_tv_level_helps(&r, l, &h), ICL_OK);
        ck_assert_int_eq(h, want[l]);
    }
    /* vector families: the diagonal MSE against the unpatched MSE */
    double base[2] = {1.0, 2.0}, mse[1 * 2 * 2] = {0.5, 9.0, 9.0, 2.4}; /* diagonal 0.5 + 2.4 < 3.0 */
    icl_tv_result v = {.mode = ICL_MODE_VECTOR, .n_tasks = 2, .n_levels = 1, .base_mse = base, .mat_mse = mse};
    ck_assert_int_eq(icl_tv_level_helps(&v, 0, &h), ICL_OK);
    ck_assert_int_eq(h, 1);
    mse[3] = 2.6; /* 3.1 > 3.0 */
    ck_assert_int_eq(icl_tv_level_helps(&v, 0, &h), ICL_OK);
    ck_assert_int_eq(h, 0);
    ck_assert_int_eq(icl_tv_level_helps(&r, 3, &h), ICL_ERR_INVALID_ARG);
    ck_assert_int_eq(icl_tv_level_helps(NULL, 0, &h), ICL_ERR_INVALID_ARG);

    fixture x;
    setup(&x, "retrieval:A=8,L=4,n=3", 3, 3);
    icl_tv_options o = icl_tv_options_default(x.f);
    int tasks[2] = {0, 3};
    o.tasks = tasks;
    o.n_tasks = 2;
    o.n_prompts = 4;
    o.eval_prompts = 6;
    o.n_alpha = 2;
    o.batch = 8;
    icl_tv_result run;
    ck_assert_int_eq(icl_task_vectors_run(x.m, x.f, &o, &run), ICL_OK);
    double with = run.zs_acc[run.best_level] + run.zs_acc[3 + run.best_level], without = run.zs_acc0[0] + run.zs_acc0[1];
    printf("  untrained model: mean zero-shot accuracy %.3f -> %.3f at best level %d, helps %d\n", without / 2,
           with / 2, run.best_level, run.best_helps);
    ck_assert_int_eq(run.best_helps, with > without);
    ck_assert_int_eq(run.interp_level, run.best_level); /* the documented rule: interpolate there anyway */
    icl_tv_result_free(&run);
    teardown(&x);
}
END_TEST

/* The head's W_O projection equals attn_out with only that head (ZERO on the others) minus attn_out
 * with every head zeroed (the bias); an FV of two heads is the sum of their projections. */
START_TEST(test_head_projection_matches_attn_out) {
    fixture x;
    setup(&x, "retrieval:A=8,L=4,n=3", 3, 3);
    int layer = 1, head = 2, NH = 3, C = 24, HS = 8;
    icl_task_batch tb = {0};
    icl_prompt_set ps = set_of(&x, "proj", 0, 3);
    ck_assert_int_eq(icl_prompt_set_batch(x.f, &ps, 0, 2, &tb), ICL_OK);
    icl_row_labels labels = {tb.roles, tb.prompt_len};
    size_t n = (size_t)tb.B * tb.T * C;
    icl_intervention iv[3];
    for (int j = 0, k = 0; j < NH; j++) {
        iv[k] = icl_intervention_make(ICL_POINT_HEAD_OUT, layer, ICL_IV_ZERO);
        iv[k].head = j;
        if (j != head) k++;
    }
    float *only = tu_floats(n), *heads = tu_floats(n), *bias = tu_floats(n);
    ck_assert_int_eq(icl_forward_with(x.m, &tb.batch, &labels, iv, NH - 1, NULL), ICL_OK);
    ck_assert_int_eq(icl_model_point_copy(x.m, ICL_POINT_ATTN_OUT, layer, only, n), ICL_OK);
    ck_assert_int_eq(icl_model_point_copy(x.m, ICL_POINT_HEAD_OUT, layer, heads, n), ICL_OK);
    iv[NH - 1] = icl_intervention_make(ICL_POINT_HEAD_OUT, layer, ICL_IV_ZERO);
    iv[NH - 1].head = head;
    ck_assert_int_eq(icl_forward_with(x.m, &tb.batch, &labels, iv, NH, NULL), ICL_OK);
    ck_assert_int_eq(icl_model_point_copy(x.m, ICL_POINT_ATTN_OUT, layer, bias, n), ICL_OK);
    float *got = tu_floats(n), *want = tu_floats(n);
    for (size_t r = 0; r < (size_t)tb.B * tb.T; r++) {
        ck_assert_int_eq(icl_head_output_project(x.m, layer, head, heads + r * C + head * HS, got + r * C), ICL_OK);
        for (int c = 0; c < C; c++) want[r * C + c] = only[r * C + c] - bias[r * C + c];
    }
    TU_ASSERT_CLOSE("W_O z_h vs attn_out(only h) - attn_out(none)", got, want, n, 1e-6, 1e-4);

    float means[2 * 3 * 8], fv[24], p0[24], p1[24], sum[24];
    icl_rng r;
    icl_rng_init(&r, 8, "head-means");
    tu_fill_uniform(means, 2 * 3 * 8, 1.0f, &r);
    int two[4] = {0, 1, 1, 2};
    ck_assert_int_eq(icl_function_vector(x.m, means, two, 2, fv), ICL_OK);
    ck_assert_int_eq(icl_head_output_project(x.m, 0, 1, means + (0 * NH + 1) * HS, p0), ICL_OK);
    ck_assert_int_eq(icl_head_output_project(x.m, 1, 2, means + (1 * NH + 2) * HS, p1), ICL_OK);
    for (int c = 0; c < C; c++) sum[c] = p0[c] + p1[c];
    TU_ASSERT_CLOSE("FV of two heads vs sum of projections", fv, sum, C, 1e-6, 1e-5);
    free(only);
    free(heads);
    free(bias);
    free(got);
    free(want);
    icl_task_batch_free(&tb);
    teardown(&x);
}
END_TEST

/* With the mean taken over the very prompt that is patched (clean = corrupted), every head's AIE is 0;
 * another prompt's head outputs give a non-zero effect. */
START_TEST(test_aie_zero_when_clean_is_corrupted) {
    fixture x;
    setup(&x, "retrieval:A=8,L=4,n=3", 3, 3);
    int L = 2, NH = 3, HS = 8;
    float *same = tu_floats((size_t)L * NH * HS), *other = tu_floats((size_t)L * NH * HS);
    ck_assert_int_eq(icl_fv_mean_head_outputs(x.m, x.f, 2, 3, 1, 4, 5, "aie", same), ICL_OK);
    ck_assert_int_eq(icl_fv_mean_head_outputs(x.m, x.f, 2, 3, 1, 4, 5, "aie-other", other), ICL_OK);
    icl_task_batch tb = {0};
    icl_prompt_set ps = set_of(&x, "aie", 2, 3);
    ck_assert_int_eq(icl_prompt_set_batch(x.f, &ps, 0, 1, &tb), ICL_OK);
    int32_t ans[1];
    ck_assert_int_eq(icl_query_answers(x.f, &tb, 2, ans), ICL_OK);
    double aie[6], moved[6];
    ck_assert_int_eq(icl_fv_head_effects(x.m, &tb, ans, same, aie, NULL, NULL), ICL_OK);
    ck_assert_int_eq(icl_fv_head_effects(x.m, &tb, ans, other, moved, NULL, NULL), ICL_OK);
    double largest = 0.0;
    for (int j = 0; j < L * NH; j++) {
        ck_assert_msg(aie[j] == 0.0, "head %d: AIE %g on a prompt patched with itself", j, aie[j]);
        if (fabs(moved[j]) > largest) largest = fabs(moved[j]);
    }
    printf("  AIE with clean = corrupted: all 0; with another prompt's outputs: max |AIE| %.3g\n", largest);
    ck_assert(largest > 0.0);
    free(same);
    free(other);
    icl_task_batch_free(&tb);
    teardown(&x);
}
END_TEST

/* Shuffled labels permute the example answers of each prompt and nothing else. */
START_TEST(test_shuffled_labels) {
    fixture x;
    setup(&x, "retrieval:A=8,L=4,n=6", 6, 3);
    icl_task_batch clean = {0}, shuf = {0};
    icl_prompt_set ps = set_of(&x, "shuffle", 1, 6);
    ck_assert_int_eq(icl_prompt_set_batch(x.f, &ps, 0, 8, &clean), ICL_OK);
    ps.shuffle_labels = 1;
    ck_assert_int_eq(icl_prompt_set_batch(x.f, &ps, 0, 8, &shuf), ICL_OK);
    int moved = 0;
    for (int b = 0; b < 8; b++) {
        int count_clean[16] = {0}, count_shuf[16] = {0};
        for (int t = 0; t < clean.T; t++) {
            size_t i = (size_t)b * clean.T + t;
            if (clean.roles[i] == ICL_ROLE_EX_ANSWER) {
                count_clean[clean.tokens[i]]++;
                count_shuf[shuf.tokens[i]]++;
                moved += clean.tokens[i] != shuf.tokens[i];
            } else {
                ck_assert_int_eq(clean.tokens[i], shuf.tokens[i]);
            }
            if (t + 1 < clean.T) ck_assert_int_eq(shuf.targets[i], shuf.tokens[i + 1]);
        }
        ck_assert(memcmp(count_clean, count_shuf, sizeof count_clean) == 0);
    }
    printf("  %d of 48 example answers moved by the shuffle\n", moved);
    ck_assert_int_gt(moved, 0);
    icl_task_batch_free(&clean);
    icl_task_batch_free(&shuf);
    teardown(&x);
}
END_TEST

/* Another task's answer to a retrieval query is the symbol at its index; multi-token scores equal
 * icl_answer_probs, and "exact" is the teacher-forced argmax. */
START_TEST(test_answers_and_scores) {
    fixture x;
    setup(&x, "retrieval:A=8,L=4,n=3", 3, 3);
    icl_task_batch tb = {0};
    icl_prompt_set ps = set_of(&x, "answers", 0, 3);
    ck_assert_int_eq(icl_prompt_set_batch(x.f, &ps, 0, 4, &tb), ICL_OK);
    int32_t ans[4];
    ck_assert_int_eq(icl_query_answers(x.f, &tb, 2, ans), ICL_OK); /* ret_3: the third query symbol */
    for (int b = 0; b < 4; b++) {
        int seen = 0;
        for (int t = 0; t < tb.T; t++)
            if (tb.roles[b * tb.T + t] == ICL_ROLE_QUERY_INPUT && seen++ == 2) ck_assert_int_eq(ans[b], tb.tokens[b * tb.T + t]);
    }
    icl_task_batch_free(&tb);
    teardown(&x);

    setup(&x, "two_operand:n=2", 2, 3);
    ps = set_of(&x, "scores", 2, 2);
    ck_assert_int_eq(icl_prompt_set_batch(x.f, &ps, 0, 3, &tb), ICL_OK);
    int A = icl_task_family_answer_len(x.f), B = 3, K = 3;
    int32_t *cand = tu_ints((size_t)B * K * A), *one = tu_ints((size_t)B * A);
    for (int k = 0; k < K; k++) {
        ck_assert_int_eq(icl_query_answers(x.f, &tb, k, one), ICL_OK);
        for (int b = 0; b < B; b++) memcpy(cand + ((size_t)b * K + k) * A, one + (size_t)b * A, A * sizeof *one);
    }
    double got[9], want[9], exact[9];
    icl_intervention iv = icl_intervention_make(ICL_POINT_RESID_MID, 0, ICL_IV_SCALE);
    iv.alpha = 0.5f;
    ck_assert_int_eq(icl_answer_probs(x.m, &tb, cand, K, &iv, 1, got, exact), ICL_OK);
    ck_assert_int_eq(icl_answer_probs(x.m, &tb, cand, K, &iv, 1, want, NULL), ICL_OK);
    float gf[9], wf[9];
    for (int i = 0; i < 9; i++) {
        gf[i] = (float)got[i];
        wf[i] = (float)want[i];
        ck_assert(got[i] == want[i]);
    }
    TU_ASSERT_CLOSE("score_answers vs icl_answer_probs (3 tokens)", gf, wf, 9, 0.0, 1e-12);
    /* the last pass scored candidate K-1: its exact flag is the argmax of every answer position */
    int V = icl_model_config(x.m)->vocab_size;
    float *p = tu_floats((size_t)B * tb.T * V);
    ck_assert_int_eq(icl_model_probs(x.m, p, (size_t)B * tb.T * V), ICL_OK);
    for (int b = 0; b < B; b++) {
        int hit = 1;
        for (int j = 0; j < A; j++) {
            const float *row = p + ((size_t)b * tb.T + tb.query_pos[b] + j) * V;
            int best = 0;
            for (int v = 1; v < V; v++) if (row[v] > row[best]) best = v;
            hit &= best == cand[((size_t)b * K + K - 1) * A + j];
        }
        ck_assert(exact[b * K + K - 1] == hit);
    }
    free(p);
    free(cand);
    free(one);
    icl_task_batch_free(&tb);
    teardown(&x);
}
END_TEST

/* Vector families: the query squared error equals the model's own per-position loss; the dMSE matrix run
 * fills every cell, and its unpatched error equals the manual one. */
START_TEST(test_vector_family_matrix) {
    fixture x;
    setup(&x, "basis_mixture_small:K=6", 6, 4);
    icl_task_batch tb = {0};
    icl_prompt_set ps = set_of(&x, ICL_TV_STREAM_TARGET, 1, 6);
    ps.loss = ICL_LOSS_QUERY;
    ps.seed = 2;
    ck_assert_int_eq(icl_prompt_set_batch(x.f, &ps, 0, 5, &tb), ICL_OK);
    double err[5];
    ck_assert_int_eq(icl_query_sq_errors(x.m, &tb, NULL, 0, err), ICL_OK);
    ck_assert_int_eq(icl_model_forward(x.m, &tb.batch, NULL), ICL_OK);
    float *loss = tu_floats((size_t)5 * tb.T);
    ck_assert_int_eq(icl_model_losses(x.m, loss, (size_t)5 * tb.T), ICL_OK);
    float e[5], l[5];
    double mean = 0.0;
    for (int b = 0; b < 5; b++) {
        e[b] = (float)err[b];
        l[b] = loss[b * tb.T + tb.query_pos[b]];
        mean += err[b] * (1.0 / 5);
    }
    TU_ASSERT_CLOSE("query squared error vs model MSE loss", e, l, 5, 1e-7, 1e-5);

    int tasks[3] = {0, 1, 3};
    icl_tv_options o = icl_tv_options_default(x.f);
    o.tasks = tasks;
    o.n_tasks = 3;
    o.n_prompts = 6;
    o.eval_prompts = 5;
    o.seed = 2;
    o.mode = ICL_TV_ADD;
    icl_tv_result r;
    ck_assert_int_eq(icl_task_vectors_run(x.m, x.f, &o, &r), ICL_OK);
    ck_assert_int_eq(r.mode, ICL_MODE_VECTOR);
    printf("  unpatched query MSE of basis 1: run %.9g, manual %.9g\n", r.base_mse[1], mean);
    ck_assert(fabs(r.base_mse[1] - mean) <= 1e-12 * (1 + mean));
    for (int i = 0; i < 3 * 3 * 3; i++) ck_assert(isfinite(r.mat_mse[i]) && r.mat_mse[i] >= 0);
    ck_assert_ptr_null(r.zs_p);
    icl_tv_result_free(&r);
    free(loss);
    icl_task_batch_free(&tb);
    teardown(&x);
}
END_TEST

/* The FV run ranks heads by mean AIE, builds each task's FV from the top heads, and its
 * without-FV scores do not depend on the FV. */
START_TEST(test_function_vector_run) {
    fixture x;
    setup(&x, "retrieval:A=8,L=4,n=3", 3, 3);
    icl_fv_options o = icl_fv_options_default(x.f);
    o.n_prompts = 4;
    o.eval_prompts = 5;
    o.top_k = 2;
    o.batch = 2;
    icl_fv_result r;
    ck_assert_int_eq(icl_function_vectors_run(x.m, x.f, &o, &r), ICL_OK);
    ck_assert_int_eq(r.n_tasks, 4);
    ck_assert_int_eq(r.fv_layer, 0); /* round(2/3) - 1 */
    int n = r.L * r.NH, seen[6] = {0};
    for (int j = 0; j < n; j++) seen[r.rank[j] - 1]++;
    for (int j = 0; j < n; j++) ck_assert_int_eq(seen[j], 1);
    double a0 = r.aie_mean[r.heads[0] * r.NH + r.heads[1]], a1 = r.aie_mean[r.heads[2] * r.NH + r.heads[3]];
    for (int j = 0; j < n; j++)
        if (r.rank[j] > 2) ck_assert(r.aie_mean[j] <= a1);
    ck_assert(a0 >= a1);
    float fv[24];
    ck_assert_int_eq(icl_function_vector(x.m, r.head_means + (size_t)3 * r.L * r.C, r.heads, 2, fv), ICL_OK);
    ck_assert(memcmp(fv, r.fv + (size_t)3 * r.C, sizeof fv) == 0);
    for (int i = 0; i < r.n_tasks * ICL_FV_N_CONDITIONS * 2; i++) ck_assert(r.acc[i] >= 0 && r.acc[i] <= 1 && r.p[i] > 0);
    /* the per-prompt values average to the summaries (batch 2: the 5 prompts come in chunks of 2, 2, 1) */
    int m = r.eval_prompts;
    ck_assert_int_eq(m, 5);
    double worst = 0.0;
    for (int i = 0; i < r.n_tasks * ICL_FV_N_CONDITIONS * 2; i++) {
        double sp = 0.0, sa = 0.0;
        for (int k = 0; k < m; k++) {
            sp += r.p_prompt[(size_t)i * m + k];
            sa += r.acc_prompt[(size_t)i * m + k];
            ck_assert(r.acc_prompt[(size_t)i * m + k] == 0.0 || r.acc_prompt[(size_t)i * m + k] == 1.0);
        }
        worst = fmax(worst, fmax(fabs(sp / m - r.p[i]), fabs(sa / m - r.acc[i])));
    }
    for (int t = 0; t < r.n_tasks; t++) {
        /* the AIE's corrupted prompts are the shuffled condition's, unpatched */
        size_t shuffled = (((size_t)t * ICL_FV_N_CONDITIONS + ICL_FV_SHUFFLED) * 2) * m;
        ck_assert(memcmp(r.aie_p0 + (size_t)t * m, r.p_prompt + shuffled, (size_t)m * sizeof(double)) == 0);
        for (int j = 0; j < n; j++) {
            double d = 0.0;
            for (int k = 0; k < m; k++) d += r.aie_p[((size_t)t * n + j) * m + k] - r.aie_p0[(size_t)t * m + k];
            worst = fmax(worst, fabs(d / m - r.aie[(size_t)t * n + j]));
        }
    }
    printf("  per-prompt values vs summaries: max difference %.3g\n", worst);
    ck_assert(worst < 1e-12);
    o.top_k = 1;
    icl_fv_result r1;
    ck_assert_int_eq(icl_function_vectors_run(x.m, x.f, &o, &r1), ICL_OK);
    for (int i = 0; i < r.n_tasks * ICL_FV_N_CONDITIONS; i++) ck_assert(r.p[2 * i] == r1.p[2 * i]);
    printf("  top heads (%d,%d) AIE %.3g, (%d,%d) AIE %.3g\n", r.heads[0], r.heads[1], a0, r.heads[2], r.heads[3], a1);
    icl_fv_result_free(&r);
    icl_fv_result_free(&r1);
    teardown(&x);
}
END_TEST

START_TEST(test_bad_requests_rejected) {
    fixture x;
    setup(&x, "retrieval:A=8,L=4,n=3", 3, 3);
    icl_tv_result r;
    icl_tv_options o = icl_tv_options_default(x.f);
    int bad[1] = {7}, good[1] = {0};
    o.tasks = bad;
    o.n_tasks = 1;
    ck_assert_int_eq(icl_task_vectors_run(x.m, x.f, &o, &r), ICL_ERR_INVALID_ARG);
    printf("  unknown task: %s\n", icl_last_error());
    o.tasks = good;
    o.n_tasks = 0;
    ck_assert_int_eq(icl_task_vectors_run(x.m, x.f, &o, &r), ICL_ERR_INVALID_ARG);
    printf("  empty task set: %s\n", icl_last_error());
    o.n_tasks = 1;
    o.level = 3;
    ck_assert_int_eq(icl_task_vectors_run(x.m, x.f, &o, &r), ICL_ERR_INVALID_ARG);
    printf("  level: %s\n", icl_last_error());
    o.level = -1;
    o.n_examples = -1;
    ck_assert_int_eq(icl_task_vectors_run(x.m, x.f, &o, &r), ICL_ERR_INVALID_ARG);
    printf("  k < 0: %s\n", icl_last_error());
    o.n_examples = 3;
    o.target_examples = -2;
    ck_assert_int_eq(icl_task_vectors_run(x.m, x.f, &o, &r), ICL_ERR_INVALID_ARG);
    o.target_examples = 3;
    o.n_alpha = 1;
    ck_assert_int_eq(icl_task_vectors_run(x.m, x.f, &o, &r), ICL_ERR_INVALID_ARG);
    o.n_alpha = 3;
    o.n_examples = 9; /* longer than the model's context */
    ck_assert_int_ne(icl_task_vectors_run(x.m, x.f, &o, &r), ICL_OK);
    printf("  too long: %s\n", icl_last_error());

    float v[24] = {0}, out[24];
    icl_intervention iv;
    ck_assert_int_eq(icl_tv_intervention(x.m, 3, ICL_TV_REPLACE, v, &iv), ICL_ERR_INVALID_ARG);
    ck_assert_int_eq(icl_tv_intervention(x.m, -1, ICL_TV_ADD, v, &iv), ICL_ERR_INVALID_ARG);
    ck_assert_int_eq(icl_tv_intervention(x.m, 0, ICL_TV_ADD, NULL, &iv), ICL_ERR_INVALID_ARG);
    ck_assert_int_eq(icl_head_output_project(x.m, 2, 0, v, out), ICL_ERR_INVALID_ARG);
    ck_assert_int_eq(icl_head_output_project(x.m, 0, 3, v, out), ICL_ERR_INVALID_ARG);
    int heads[2] = {0, 5};
    ck_assert_int_eq(icl_function_vector(x.m, v, heads, 1, out), ICL_ERR_INVALID_ARG);
    icl_task_batch tb = {0};
    icl_prompt_set ps = set_of(&x, "bad", 4, 3);
    ck_assert_int_eq(icl_prompt_set_batch(x.f, &ps, 0, 1, &tb), ICL_ERR_INVALID_ARG);
    ps.task = 0;
    ps.n_examples = -1;
    ck_assert_int_eq(icl_prompt_set_batch(x.f, &ps, 0, 1, &tb), ICL_ERR_INVALID_ARG);
    float means[24];
    ck_assert_int_eq(icl_tv_mean_residuals(x.m, x.f, good, 0, 3, 1, 1, 1, "s", means), ICL_ERR_INVALID_ARG);

    icl_fv_result fr;
    icl_fv_options fo = icl_fv_options_default(x.f);
    fo.tasks = bad;
    fo.n_tasks = 1;
    ck_assert_int_eq(icl_function_vectors_run(x.m, x.f, &fo, &fr), ICL_ERR_INVALID_ARG);
    fo.tasks = good;
    fo.n_tasks = 0;
    ck_assert_int_eq(icl_function_vectors_run(x.m, x.f, &fo, &fr), ICL_ERR_INVALID_ARG);
    fo.n_tasks = 1;
    fo.fv_layer = 2;
    ck_assert_int_eq(icl_function_vectors_run(x.m, x.f, &fo, &fr), ICL_ERR_INVALID_ARG);
    printf("  fv layer: %s\n", icl_last_error());
    fo.fv_layer = -1;
    fo.top_k = 0;
    ck_assert_int_eq(icl_function_vectors_run(x.m, x.f, &fo, &fr), ICL_ERR_INVALID_ARG);
    fo.top_k = -1;
    fo.n_examples = 0;
    ck_assert_int_eq(icl_function_vectors_run(x.m, x.f, &fo, &fr), ICL_ERR_INVALID_ARG);
    printf("  fv k: %s\n", icl_last_error());

    icl_task_family *vec;
    ck_assert_int_eq(icl_task_family_create(&vec, "basis_mixture_small"), ICL_OK);
    o = icl_tv_options_default(vec);
    ck_assert_int_eq(icl_task_vectors_run(x.m, vec, &o, &r), ICL_ERR_INVALID_ARG);
    printf("  mode mismatch: %s\n", icl_last_error());
    fo = icl_fv_options_default(vec);
    ck_assert_int_eq(icl_function_vectors_run(x.m, vec, &fo, &fr), ICL_ERR_UNSUPPORTED);
    icl_task_family_free(vec);
    icl_task_batch_free(&tb);
    teardown(&x);
}
END_TEST

int main(void) {
    Suite *s = suite_create("task_vectors");
    TCase *tc = tcase_create("task+function vectors");
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, test_extraction_is_mean_of_residuals);
    tcase_add_test(tc, test_self_patch_is_bitwise_noop);
    tcase_add_test(tc, test_interpolation_end_points);
    tcase_add_test(tc, test_mixed_vector_position);
    tcase_add_test(tc, test_best_level_helps);
    tcase_add_test(tc, test_head_projection_matches_attn_out);
    tcase_add_test(tc, test_aie_zero_when_clean_is_corrupted);
    tcase_add_test(tc, test_shuffled_labels);
    tcase_add_test(tc, test_answers_and_scores);
    tcase_add_test(tc, test_vector_family_matrix);
    tcase_add_test(tc, test_function_vector_run);
    tcase_add_test(tc, test_bad_requests_rejected);
    suite_add_tcase(s, tc);
    return tu_run(s);
}
