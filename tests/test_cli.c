/* The icl tool end to end: each subcommand runs, exits 0 and writes its files;
 * bad input exits non-zero. The binary is found next to this test's build
 * directory (../bin/icl). */
#define _DEFAULT_SOURCE /* realpath */
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include "icl/icl.h"
#include "testutil.h"

static char icl_bin[PATH_MAX + 16], work[64];

/* Run `icl <args>` quietly; its exit status. */
static int icl(const char *args) {
    char cmd[2 * PATH_MAX];
    snprintf(cmd, sizeof cmd, "cd %s && '%s' %s > cmd.log 2>&1", work, icl_bin, args);
    int rc = system(cmd);
    printf("  icl %s -> %d\n", args, WIFEXITED(rc) ? WEXITSTATUS(rc) : -1);
    return WIFEXITED(rc) ? WEXITSTATUS(rc) : -1;
}

static int exists(const char *rel) {
    char path[PATH_MAX];
    struct stat st;
    snprintf(path, sizeof path, "%s/%s", work, rel);
    return stat(path, &st) == 0 && st.st_size > 0;
}

START_TEST(test_train_info_forward) {
    ck_assert_int_eq(icl("train --task copy --symbols 4 --length 3 --steps 3 --batch 4 --quiet --save copy.safetensors"), 0);
    ck_assert(exists("copy.safetensors"));
    /* --no-graphs only matters on CUDA; elsewhere it is accepted and changes nothing */
    ck_assert_int_eq(icl("train --task copy --symbols 4 --length 3 --steps 3 --batch 4 --quiet --no-graphs"), 0);
    ck_assert_int_eq(icl("bench --config tiny --seconds 0.01 --no-graphs"), 0);
    ck_assert_int_eq(icl("info copy.safetensors"), 0);
    /* tokens (2,8) int32 -> logits (2,8,6) */
    int32_t tok[16] = {4, 0, 1, 2, 5, 0, 1, 2, 4, 3, 3, 3, 5, 3, 3, 3};
    size_t shape[2] = {2, 8};
    char path[PATH_MAX];
    snprintf(path, sizeof path, "%s/tokens.npy", work);
    ck_assert_int_eq(icl_npy_write(path, ICL_DTYPE_I32, 2, shape, tok), ICL_OK);
    ck_assert_int_eq(icl("forward --model copy.safetensors --input tokens.npy --out logits.npy"), 0);
    icl_array y;
    snprintf(path, sizeof path, "%s/logits.npy", work);
    ck_assert_int_eq(icl_npy_read(path, &y), ICL_OK);
    ck_assert_int_eq(y.ndim, 3);
    ck_assert_uint_eq(y.shape[2], 6);
    icl_array_free(&y);
    ck_assert_int_ne(icl("forward --model copy.safetensors --input missing.npy --out x.npy"), 0);
    ck_assert_int_ne(icl("train --task no_such_family --steps 1"), 0);
    ck_assert_int_ne(icl("train --layers 0 --steps 1"), 0);
}
END_TEST

/* Task families through train (with its final evaluation) and eval, token and vector. */
START_TEST(test_train_and_eval_families) {
    ck_assert_int_eq(icl("train --task retrieval:A=6,L=3,tasks=3,n=2 --steps 2 --batch 4 --eval-every 1 --eval-prompts 4 --quiet --out ret"), 0);
    ck_assert(exists("ret/model.safetensors") && exists("ret/task_log.csv") && exists("ret/eval.csv"));
    ck_assert_int_eq(icl("eval --model ret/model.safetensors --prompts 4 --quiet --out ret/eval2.csv"), 0);
    ck_assert(exists("ret/eval2.csv"));
    /* a vector family without bases: the oracle baseline must be left out, not fail */
    ck_assert_int_eq(icl("train --task linear:d=3,n=4 --steps 2 --batch 4 --eval-prompts 4 --quiet --out lin"), 0);
    ck_assert(exists("lin/eval.csv"));
    ck_assert_int_eq(icl("train --task basis_mixture_small --curriculum --steps 2 --batch 4 --eval-prompts 4 --quiet --out bm"), 0);
    ck_assert(exists("bm/eval.csv"));
    /* the short-prompt phase, and its bad uses: not shorter than the full prompt, with the curriculum, on a toy task */
    ck_assert_int_eq(icl("train --task retrieval:A=6,L=3,tasks=3,n=3 --short-prompts 1 --short-steps 2 --steps 4 --batch 4 --eval-prompts 4 --quiet --out short"), 0);
    ck_assert(exists("short/eval.csv"));
    ck_assert_int_ne(icl("train --task retrieval:A=6,L=3,tasks=3,n=3 --short-prompts 3 --short-steps 2 --steps 4 --quiet"), 0);
    ck_assert_int_ne(icl("train --task linear:d=3,n=4 --curriculum --short-prompts 1 --short-steps 2 --steps 4 --quiet"), 0);
    ck_assert_int_ne(icl("train --task copy --short-prompts 1 --short-steps 2 --steps 4 --quiet"), 0);
    ck_assert_int_ne(icl("train --task copy --init-std -1 --steps 1 --quiet"), 0);
}
END_TEST

START_TEST(test_probes_run) {
    ck_assert_int_eq(icl("train --task translation:K=2,n=3 --steps 2 --batch 4 --quiet --out tr"), 0);
    ck_assert_int_eq(icl("probe points --model tr/model.safetensors"), 0);
    ck_assert_int_eq(icl("probe superposition --model tr/model.safetensors --prompts 4 --out tr/sup"), 0);
    ck_assert(exists("tr/sup/superposition.csv") && exists("tr/sup/superposition.json"));
    ck_assert_int_eq(icl("probe decodability --model tr/model.safetensors --prompts 12 --k 3 --out tr/td"), 0);
    ck_assert(exists("tr/td/td.csv") && exists("tr/td/decodability.json"));
    ck_assert_int_eq(icl("probe task-vectors --model tr/model.safetensors --prompts 4 --eval-prompts 4 --out tr/tv"), 0);
    ck_assert(exists("tr/tv/zero_shot.csv"));
    ck_assert_int_ne(icl("probe no-such-probe --model tr/model.safetensors"), 0);
}
END_TEST

/* The text of work/rel (at most size-1 bytes), "" when it cannot be read. */
static const char *slurp(const char *rel, char *buf, size_t size) {
    char path[PATH_MAX];
    snprintf(path, sizeof path, "%s/%s", work, rel);
    FILE *fp = fopen(path, "rb");
    size_t n = fp ? fread(buf, 1, size - 1, fp) : 0;
    if (fp)
        fclose(fp);
    buf[n] = '\0';
    return buf;
}

/* The options every probe shares (cli_probe_begin): listed by --help with the
 * probe's own default directory; a missing --model, an unknown option, an
 * unknown task name and a checkpoint that cannot be opened fail with their
 * exit codes and messages (eval's too); --seed and --out are honoured. */
START_TEST(test_probe_shared_options) {
    static const char *const probes[] = {"attention", "decodability",  "finetune", "function-vectors",
                                         "logit-lens", "head-ablation", "linear",   "rsa",
                                         "superposition", "task-vectors"};
    static const char *const shared[] = {"--model S", "--task S", "--tasks S", "--seed N", "--out S", "--backend S"};
    char cmd[256], text[8192], want[64];
    ck_assert_int_eq(icl("train --task translation:K=2,n=3 --steps 2 --batch 4 --quiet --out sh"), 0);
    for (size_t i = 0; i < sizeof probes / sizeof probes[0]; i++) {
        snprintf(cmd, sizeof cmd, "probe %s --help", probes[i]);
        ck_assert_int_eq(icl(cmd), 0);
        slurp("cmd.log", text, sizeof text);
        for (size_t j = 0; j < sizeof shared / sizeof shared[0]; j++)
            ck_assert_msg(strstr(text, shared[j]), "probe %s --help lacks %s", probes[i], shared[j]);
        snprintf(want, sizeof want, "output directory [out/probe-%s]", probes[i]);
        ck_assert_msg(strstr(text, want), "probe %s --help lacks \"%s\"", probes[i], want);
        snprintf(cmd, sizeof cmd, "probe %s --no-such-option", probes[i]);
        ck_assert_int_eq(icl(cmd), 2);
        snprintf(cmd, sizeof cmd, "probe %s --out sh/none", probes[i]);
        ck_assert_int_eq(icl(cmd), 1);
        ck_assert_msg(strstr(slurp("cmd.log", text, sizeof text), "--model is required"), "%s", text);
        snprintf(cmd, sizeof cmd, "probe %s --model sh/missing.safetensors --out sh/none", probes[i]);
        ck_assert_int_eq(icl(cmd), 1);
        ck_assert_msg(strstr(slurp("cmd.log", text, sizeof text), "cannot open checkpoint"), "%s", text);
        snprintf(cmd, sizeof cmd, "probe %s --model sh/model.safetensors --tasks no_such_task --out sh/none",
                 probes[i]);
        ck_assert_int_eq(icl(cmd), 1);
        ck_assert_msg(strstr(slurp("cmd.log", text, sizeof text), "no_such_task"), "%s", text);
        ck_assert(!exists("sh/none"));
    }
    ck_assert_int_eq(icl("eval --model sh/missing.safetensors"), 1);
    ck_assert_msg(strstr(slurp("cmd.log", text, sizeof text), "cannot open checkpoint"), "%s", text);
    ck_assert_int_eq(icl("probe decodability --model sh/model.safetensors --prompts 8 --k 3 --seed 7 --out sh/td"), 0);
    ck_assert_msg(strstr(slurp("sh/td/decodability.json", text, sizeof text), "\"seed\":\t7,"), "%s", text);
}
END_TEST

/* The probe scaffold (cli_probe_main): each probe's sidecar <name>.json sits
 * in --out and lists at least one file, and every file it lists exists there. */
START_TEST(test_probe_sidecar_files) {
    static const char *const runs[][2] = {
        {"linear", "--prompts 6 --folds 2"},
        {"rsa", "--prompts 4 --perm 5"},
        {"attention", "--prompts 4"},
        {"decodability", "--prompts 6 --k 2 --pca 2"},
        {"finetune", "--steps 2 --batch 4 --prompts 6 --eval-prompts 4 --k 2"},
        {"logit-lens", "--prompts 4"},
        {"head-ablation", "--prompts 4 --mode zero"},
        {"function-vectors", "--prompts 4 --eval-prompts 4"},
    };
    char cmd[512], rel[256], text[16384];
    ck_assert_int_eq(icl("train --task translation:K=2,n=3 --steps 2 --batch 4 --quiet --out sf"), 0);
    for (size_t i = 0; i < sizeof runs / sizeof runs[0]; i++) {
        snprintf(cmd, sizeof cmd, "probe %s --model sf/model.safetensors %s --out sf/%s", runs[i][0], runs[i][1],
                 runs[i][0]);
        ck_assert_int_eq(icl(cmd), 0);
        snprintf(rel, sizeof rel, "sf/%s/%s.json", runs[i][0], runs[i][0]);
        for (char *c = rel + 3 + strlen(runs[i][0]) + 1; *c; c++)
            if (*c == '-') *c = '_';
        const char *files = strstr(slurp(rel, text, sizeof text), "\"files\":");
        ck_assert_msg(files, "%s has no file list", rel);
        const char *q = strchr(files, '['), *stop = strchr(files, ']');
        int n = 0;
        while ((q = strchr(q + 1, '"')) && q < stop) {
            const char *end = strchr(q + 1, '"');
            snprintf(rel, sizeof rel, "sf/%s/%.*s", runs[i][0], (int)(end - q - 1), q + 1);
            ck_assert_msg(exists(rel), "%s is listed but not written", rel);
            n++;
            q = end;
        }
        printf("  %s: %d files listed\n", runs[i][0], n);
        ck_assert_int_gt(n, 0);
    }
}
END_TEST

int main(int argc, char **argv) {
    (void)argc;
    char self[PATH_MAX];
    if (!realpath(argv[0], self)) {
        perror(argv[0]);
        return 1;
    }
    *strrchr(self, '/') = '\0'; /* .../build/tests */
    snprintf(icl_bin, sizeof icl_bin, "%s/../bin/icl", self);
    snprintf(work, sizeof work, "/tmp/icl_test_cli_%d", (int)getpid());
    if (mkdir(work, 0755) != 0) {
        perror(work);
        return 1;
    }
    Suite *s = suite_create("cli");
    TCase *tc = tcase_create("cli");
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, test_train_info_forward);
    tcase_add_test(tc, test_train_and_eval_families);
    tcase_add_test(tc, test_probes_run);
    tcase_add_test(tc, test_probe_shared_options);
    tcase_add_test(tc, test_probe_sidecar_files);
    suite_add_tcase(s, tc);
    int rc = tu_run(s);
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf %s", work);
    if (system(cmd) != 0)
        fprintf(stderr, "could not remove %s\n", work);
    return rc;
}
