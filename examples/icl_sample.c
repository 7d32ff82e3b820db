/* icl sample: write a batch of prompts of a task family as .npy arrays (and
 * the prompts as text), for inspection or for use outside libicl.
 * Prompts come from stream (seed, "sample"); the Python package's
 * TaskFamily.sample / sample_mixed draw the same prompts for the same seed. */
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "icl/superposition.h"
#include "icl_cli.h"

#define MAX_MIX 64

typedef struct {
    const char *task, *tasks, *mix, *loss, *out;
    int batch, examples, pad_to, query_unseen;
    long seed;
} options;

static icl_status write_i32(cli_outputs *o, const char *name, const int32_t *x, int ndim, const size_t *shape) {
    return icl_npy_write(cli_out_path(o, name), ICL_DTYPE_I32, ndim, shape, x);
}

static icl_status write_f32(cli_outputs *o, const char *name, const float *x, int ndim, const size_t *shape) {
    return icl_npy_write(cli_out_path(o, name), ICL_DTYPE_F32, ndim, shape, x);
}

/* Every per-position and per-prompt array of the batch, and each row's query answer. */
static icl_status write_batch(cli_outputs *o, const icl_task_batch *tb) {
    size_t BT[3] = {(size_t)tb->B, (size_t)tb->T, 0}, B1[1] = {(size_t)tb->B};
    icl_status s;
    int A = tb->prompts[0].answer_len;
    if (tb->mode == ICL_MODE_TOKEN) {
        int32_t *ans = malloc((size_t)tb->B * A * sizeof *ans);
        if (!ans)
            return ICL_ERR_NOMEM;
        for (int b = 0; b < tb->B; b++)
            for (int t = 0, j = 0; t < tb->T && j < A; t++)
                if (tb->roles[(size_t)b * tb->T + t] == ICL_ROLE_QUERY_ANSWER)
                    ans[(size_t)b * A + j++] = tb->tokens[(size_t)b * tb->T + t];
        size_t BA[2] = {(size_t)tb->B, (size_t)A};
        s = write_i32(o, "tokens.npy", tb->tokens, 2, BT);
        if (s == ICL_OK) s = write_i32(o, "targets.npy", tb->targets, 2, BT);
        if (s == ICL_OK) s = write_i32(o, "answers.npy", ans, 2, BA);
        free(ans);
    } else {
        float *ans = malloc((size_t)tb->B * tb->d_out * sizeof *ans);
        if (!ans)
            return ICL_ERR_NOMEM;
        for (int b = 0; b < tb->B; b++)
            memcpy(ans + (size_t)b * tb->d_out, tb->target_values + ((size_t)b * tb->T + tb->query_pos[b]) * tb->d_out,
                   (size_t)tb->d_out * sizeof *ans);
        size_t BD[2] = {(size_t)tb->B, (size_t)tb->d_out};
        BT[2] = (size_t)tb->d_in;
        s = write_f32(o, "inputs.npy", tb->inputs, 3, BT);
        BT[2] = (size_t)tb->d_out;
        if (s == ICL_OK) s = write_f32(o, "target_values.npy", tb->target_values, 3, BT);
        if (s == ICL_OK) s = write_f32(o, "answers.npy", ans, 2, BD);
        free(ans);
    }
    if (s == ICL_OK) s = write_f32(o, "loss_weights.npy", tb->loss_weights, 2, BT);
    if (s == ICL_OK) s = write_i32(o, "roles.npy", tb->roles, 2, BT);
    if (s == ICL_OK) s = write_i32(o, "example_ids.npy", tb->example_ids, 2, BT);
    if (s == ICL_OK) s = write_i32(o, "task_ids.npy", tb->task_ids, 2, BT);
    if (s == ICL_OK) s = write_i32(o, "prompt_task.npy", tb->prompt_task, 1, B1);
    if (s == ICL_OK) s = write_i32(o, "prompt_len.npy", tb->prompt_len, 1, B1);
    if (s == ICL_OK) s = write_i32(o, "query_pos.npy", tb->query_pos, 1, B1);
    return s;
}

/* prompts.txt, one rendered prompt per line: written to a temporary name and renamed. */
static int write_text(cli_outputs *o, const icl_task_family *f, const icl_task_batch *tb) {
    char tmp[1100], *buf = NULL;
    const char *path = cli_out_path(o, "prompts.txt");
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    FILE *fp = fopen(tmp, "w");
    if (!fp) {
        perror(tmp);
        return 1;
    }
    size_t size = 64 * ((size_t)tb->T + 4) * (size_t)(tb->d_in > 0 ? tb->d_in : 1);
    int ok = (buf = malloc(size)) != NULL;
    for (int b = 0; ok && b < tb->B; b++) {
        icl_status s = icl_prompt_render(f, &tb->prompts[b], buf, size);
        ok = s == ICL_OK ? fprintf(fp, "%s\n", buf) >= 0 : !cli_fail("render", s);
    }
    free(buf);
    ok = (fclose(fp) == 0) && ok;
    if (!ok || rename(tmp, path) != 0) {
        if (ok)
            perror(path);
        remove(tmp);
        return 1;
    }
    return 0;
}

/* B mixed prompts, prompt i from child stream i of rng, packed into tb; their
 * every-task answers into mix_answers.npy / mix_answer_values.npy and counts into mix_counts.npy. */
static int sample_mixed(cli_outputs *o, const icl_task_family *f, const options *op, const icl_gen_options *gen,
                        const icl_rng *rng, icl_task_batch *tb) {
    int tasks[MAX_MIX], K;
    double lambda[MAX_MIX];
    icl_status s = icl_superposition_parse_mixture(f, op->mix, tasks, lambda, MAX_MIX, &K);
    if (s != ICL_OK)
        return cli_fail("--mix", s);
    int n = op->examples >= 0 ? op->examples : icl_task_family_default_examples(f);
    int A = icl_task_family_mode(f) == ICL_MODE_TOKEN ? icl_task_family_answer_len(f) : icl_task_family_d_out(f);
    icl_mixed_prompt *mp = calloc((size_t)op->batch, sizeof *mp);
    const icl_prompt **pp = calloc((size_t)op->batch, sizeof *pp);
    int32_t *counts = malloc((size_t)op->batch * K * sizeof *counts);
    void *answers = malloc((size_t)op->batch * K * A * 4);
    int result = 1;
    if (!mp || !pp || !counts || !answers) {
        fprintf(stderr, "icl sample: out of memory\n");
        goto done;
    }
    for (int i = 0; i < op->batch; i++) {
        icl_rng child;
        icl_rng_split(&child, rng, (uint64_t)i);
        if ((s = icl_task_generate_mixed(f, tasks, lambda, K, n, gen, &child, &mp[i])) != ICL_OK) {
            cli_fail("mixed prompt", s);
            goto done;
        }
        pp[i] = &mp[i].prompt;
        for (int k = 0; k < K; k++) counts[(size_t)i * K + k] = mp[i].counts[k];
        const void *src = mp[i].answers ? (const void *)mp[i].answers : (const void *)mp[i].answer_values;
        memcpy((char *)answers + (size_t)i * K * A * 4, src, (size_t)K * A * 4);
    }
    if ((s = icl_task_batch_pack(tb, pp, op->batch, op->pad_to)) != ICL_OK) {
        cli_fail("pack", s);
        goto done;
    }
    size_t k1[1] = {(size_t)K}, bk[2] = {(size_t)op->batch, (size_t)K}, bka[3] = {(size_t)op->batch, (size_t)K, (size_t)A};
    int token = icl_task_family_mode(f) == ICL_MODE_TOKEN;
    if ((s = write_i32(o, "mix_tasks.npy", tasks, 1, k1)) != ICL_OK ||
        (s = write_i32(o, "mix_counts.npy", counts, 2, bk)) != ICL_OK ||
        (s = token ? write_i32(o, "mix_answers.npy", answers, 3, bka)
                   : write_f32(o, "mix_answer_values.npy", answers, 3, bka)) != ICL_OK) {
        cli_fail(o->path, s);
        goto done;
    }
    result = 0;
done:
    for (int i = 0; mp && i < op->batch; i++) icl_mixed_prompt_free(&mp[i]);
    free(mp);
    free(pp);
    free(counts);
    free(answers);
    return result;
}

int cmd_sample(int argc, char **argv) {
    options op = {.batch = 8, .examples = -1, .seed = 1, .loss = "answers"};
    cli_option opts[] = {
        {"--task", OPT_STRING, &op.task, "task family spec (docs/tasks.md), e.g. retrieval:A=16,L=6"},
        {"--batch", OPT_INT, &op.batch, "prompts [8]"},
        {"--examples", OPT_INT, &op.examples, "in-context examples per prompt [family default]"},
        {"--tasks", OPT_STRING, &op.tasks, "comma-separated task names each prompt's task is drawn from [all]"},
        {"--mix", OPT_STRING, &op.mix, "mixed prompts instead: task=proportion,... (exact example counts)"},
        {"--loss", OPT_STRING, &op.loss, "loss weights on: query | answers | all [answers]"},
        {"--pad-to", OPT_INT, &op.pad_to, "right-pad every prompt to this length [the longest]"},
        {"--query-unseen", OPT_FLAG, &op.query_unseen, "redraw a query equal to an example's input"},
        {"--seed", OPT_LONG, &op.seed, "seed; prompts come from stream (seed, \"sample\") [1]"},
        {"--out", OPT_STRING, &op.out, "output directory (created)"},
    };
    static const cli_range ranges[] = {
        {"--batch", 1, INT_MAX}, {"--examples", -1, INT_MAX}, {"--pad-to", 0, INT_MAX}, {"--seed", 0, LONG_MAX}};
    int rc = cli_parse_ranged(argc, argv, 2, opts, sizeof opts / sizeof opts[0], ranges,
                              sizeof ranges / sizeof ranges[0],
                       "usage: icl sample --task SPEC --out DIR [options]\n\n"
                       "Write a batch of prompts: tokens/targets (token families) or inputs/target_values (vector\n"
                       "families), loss_weights, roles, example_ids, task_ids (B,T); prompt_task, prompt_len,\n"
                       "query_pos (B); answers (B,answer_len or d_out), as .npy; prompts.txt, one line each.",
                       NULL, 0, NULL);
    if (rc)
        return rc < 0 ? 2 : 0;
    if (!op.task || !op.out) {
        fprintf(stderr, "icl sample: --task and --out are required (see --help)\n");
        return 2;
    }
    icl_gen_options gen = icl_gen_options_default();
    const char *masks[] = {"query", "answers", "all"};
    int mask = -1;
    for (int i = 0; i < 3; i++)
        if (strcmp(op.loss, masks[i]) == 0) mask = i;
    if (mask < 0 || (op.mix && op.tasks)) {
        fprintf(stderr, "icl sample: --loss query|answers|all, and --mix or --tasks, not both\n");
        return 2;
    }
    gen.loss = (icl_loss_mask)mask;
    gen.query_unseen = op.query_unseen;
    if (cli_make_dir(op.out))
        return 1;
    icl_task_family *f = NULL;
    icl_task_batch tb = {0};
    icl_sidecar *sc = NULL;
    int ids[MAX_MIX], n_ids = 0, result = 1;
    icl_status s;
    if ((s = icl_task_family_create(&f, op.task)) != ICL_OK ||
        (s = icl_sidecar_create("sample", (uint64_t)op.seed, &sc)) != ICL_OK) {
        cli_fail(op.task, s);
        goto done;
    }
    if (op.tasks && (s = icl_task_family_parse_tasks(f, op.tasks, ids, MAX_MIX, &n_ids)) != ICL_OK) {
        cli_fail("--tasks", s);
        goto done;
    }
    cli_outputs o = {op.out, sc, {0}};
    icl_rng rng;
    icl_rng_init(&rng, (uint64_t)op.seed, "sample");
    if (op.mix) {
        if (sample_mixed(&o, f, &op, &gen, &rng, &tb))
            goto done;
    } else {
        icl_task_batch_options bo = icl_task_batch_options_default();
        bo.B = op.batch;
        bo.n_examples = op.examples;
        bo.tasks = n_ids ? ids : NULL;
        bo.n_tasks = n_ids;
        bo.pad_to = op.pad_to;
        bo.gen = gen;
        if ((s = icl_task_batch_generate(f, &bo, &rng, &tb)) != ICL_OK) {
            cli_fail("sample", s);
            goto done;
        }
    }
    if ((s = write_batch(&o, &tb)) != ICL_OK) {
        cli_fail(o.path, s);
        goto done;
    }
    if (write_text(&o, f, &tb))
        goto done;
    icl_sidecar_set_string(sc, "task", icl_task_family_spec(f));
    icl_sidecar_set_string(sc, "loss", op.loss);
    icl_sidecar_set_number(sc, "batch", op.batch);
    icl_sidecar_set_number(sc, "examples", op.examples);
    if (op.mix)
        icl_sidecar_set_string(sc, "mix", op.mix);
    if (op.tasks)
        icl_sidecar_set_string(sc, "tasks", op.tasks);
    if ((s = icl_sidecar_write(sc, cli_out_path(&o, "sample.json"))) != ICL_OK) {
        cli_fail(o.path, s);
        goto done;
    }
    printf("icl sample: %d prompts of %s (T = %d) in %s\n", tb.B, icl_task_family_spec(f), tb.T, op.out);
    result = 0;
done:
    icl_sidecar_free(sc);
    icl_task_batch_free(&tb);
    icl_task_family_free(f);
    return result;
}
