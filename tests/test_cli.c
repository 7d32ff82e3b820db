/* The icl tool end to end: each subcommand runs, exits 0 and writes its files;
 * bad input exits non-zero. The binary is found next to this test's build
 * directory (../bin/icl). */
#define _DEFAULT_SOURCE /* realpath */
#include <limits.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
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
    ck_assert_int_eq(icl("train --task copy --symbols 4 --length 3 --steps 3 --batch 4 --quiet --no-graphs --save ng.safetensors"), 0);
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
        ck_assert_int_eq(icl(cmd), 2);
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

/* ---- reliability: no result is ever lost ---- */

/* Run `icl <args>` with the address space capped at limit_kb (so that a build
 * without the memory check fails to allocate instead of taking the machine). */
static int icl_capped(const char *args, long limit_kb) {
    char cmd[2 * PATH_MAX];
#ifdef __SANITIZE_ADDRESS__
    /* AddressSanitizer reserves terabytes of shadow address space at start-up,
     * so no cap fits it; its allocator_may_return_null stands in for the cap. */
    limit_kb = -1;
#endif
    if (limit_kb < 0)
        snprintf(cmd, sizeof cmd, "cd %s && '%s' %s > cmd.log 2>&1", work, icl_bin, args);
    else
        snprintf(cmd, sizeof cmd, "cd %s && ulimit -v %ld && '%s' %s > cmd.log 2>&1", work, limit_kb, icl_bin,
                 args);
    int rc = system(cmd);
    printf("  (ulimit -v %ld) icl %s -> %d\n", limit_kb, args, WIFEXITED(rc) ? WEXITSTATUS(rc) : -1);
    return WIFEXITED(rc) ? WEXITSTATUS(rc) : -1;
}

/* Assert that the last command's output holds `want`. */
static void log_has(const char *want) {
    char text[16384];
    slurp("cmd.log", text, sizeof text);
    ck_assert_msg(strstr(text, want), "output lacks \"%s\":\n%s", want, text);
}

static void log_lacks(const char *unwanted) {
    char text[16384];
    slurp("cmd.log", text, sizeof text);
    ck_assert_msg(!strstr(text, unwanted), "output has \"%s\":\n%s", unwanted, text);
}

/* The last field of the row of `config` in the last command's bench table (a row ends "| field |"). */
static void bench_field(const char *config, char *field, size_t size) {
    char text[16384], want[32], line[512];
    slurp("cmd.log", text, sizeof text);
    snprintf(want, sizeof want, "| %s ", config);
    const char *row = strstr(text, want);
    ck_assert_msg(row, "no %s row in:\n%s", config, text);
    snprintf(line, sizeof line, "%.*s", (int)strcspn(row, "\n"), row);
    *strrchr(line, '|') = '\0'; /* the closing bar; the row's first bar is still there */
    char fmt_field[16];
    snprintf(fmt_field, sizeof fmt_field, "%%%zus", size - 1);
    ck_assert_int_eq(sscanf(strrchr(line, '|') + 1, fmt_field, field), 1);
}

/* bench times the forward pass alone unless --no-inference says not to. */
START_TEST(test_bench_inference_column) {
    char fwd[32];
    ck_assert_int_eq(icl("bench --config tiny --steps 2 --no-peak"), 0);
    bench_field("tiny", fwd, sizeof fwd);
    printf("  fwd tokens/s with inference: %s\n", fwd);
    ck_assert_msg(atof(fwd) > 0, "fwd tokens/s is \"%s\"", fwd);
    ck_assert_int_eq(icl("bench --config tiny --steps 2 --no-peak --no-inference"), 0);
    bench_field("tiny", fwd, sizeof fwd);
    ck_assert_str_eq(fwd, "-");
}
END_TEST

/* Neither --out nor --save, or --checkpoint-every without a directory: refused before training. */
START_TEST(test_train_refuses_to_save_nothing) {
    ck_assert_int_eq(icl("train --task copy --symbols 4 --length 3 --steps 2 --batch 4"), 2);
    log_has("pass --out DIR");
    log_lacks("step ");
    ck_assert_int_eq(icl("train --task copy --symbols 4 --length 3 --steps 2 --batch 4 --checkpoint-every 1 "
                         "--save nockpt.safetensors"), 2);
    log_has("--checkpoint-every needs --checkpoint-dir DIR or --out DIR");
    ck_assert(!exists("nockpt.safetensors"));
}
END_TEST

/* Each output path is checked before the first step: nothing is trained when one cannot be written. */
START_TEST(test_outputs_checked_before_training) {
    static const char *const bad[] = {"--save missing_dir/m.safetensors", "--out ok1 --log-csv missing_dir/log.csv",
                                      "--save m.safetensors --task-log missing_dir/t.csv --eval-every 1"};
    char cmd[512];
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        snprintf(cmd, sizeof cmd, "train --task retrieval:A=6,L=3,tasks=3,n=2 --steps 2 --batch 4 --log-every 1 %s",
                 bad[i]);
        ck_assert_int_eq(icl(cmd), 1);
        log_has("missing_dir does not exist");
        log_lacks("step ");
    }
    ck_assert(!exists("m.safetensors") && !exists("ok1/model.safetensors"));
    /* the model given to eval and forward exists; their --out directory does not */
    ck_assert_int_eq(icl("train --task retrieval:A=6,L=3,tasks=3,n=2 --steps 1 --batch 4 --quiet --save oc.safetensors"), 0);
    ck_assert_int_eq(icl("eval --model oc.safetensors --prompts 2 --quiet --out missing_dir/e.csv"), 1);
    log_has("missing_dir does not exist");
}
END_TEST

/* --out holding a run is refused, replaced with --force (old files gone), or continued by --resume from inside it. */
START_TEST(test_out_dir_holding_a_run) {
    char text[8192];
    const char *train = "train --task retrieval:A=6,L=3,tasks=3,n=2 --steps 4 --batch 4 --log-every 1 "
                        "--checkpoint-every 2 --eval-prompts 2 --quiet";
    char cmd[512];
    snprintf(cmd, sizeof cmd, "%s --out od", train);
    ck_assert_int_eq(icl(cmd), 0);
    ck_assert(exists("od/checkpoints/step_0000002.safetensors"));
    ck_assert_int_eq(icl(cmd), 2);
    log_has("--out od already holds a run");
    /* only the run's own files; the log must not be appended to */
    snprintf(cmd, sizeof cmd, "%s --out od --force --steps 3 --checkpoint-every 3", train);
    ck_assert_int_eq(icl(cmd), 0);
    ck_assert(!exists("od/checkpoints/step_0000002.safetensors") && exists("od/checkpoints/step_0000003.safetensors"));
    slurp("od/train_log.csv", text, sizeof text);
    ck_assert_msg(strstr(text, "step,") == text && !strstr(text + 1, "step,") && !strstr(text, "\n4,"), "%s", text);
    snprintf(cmd, sizeof cmd, "train --resume od/checkpoints/step_0000003.safetensors --steps 5 --log-every 1 --quiet --out od");
    ck_assert_int_eq(icl(cmd), 0);
    /* again from step 3: the rows of steps 4 and 5 are replaced, not repeated */
    ck_assert_int_eq(icl(cmd), 0);
    slurp("od/train_log.csv", text, sizeof text);
    const char *row4 = strstr(text, "\n4,"), *row5 = strstr(text, "\n5,");
    ck_assert_msg(strstr(text, "\n3,") && row4 && !strstr(row4 + 1, "\n4,") && row5 && !strstr(row5 + 1, "\n5,"),
                  "%s", text);
    ck_assert_int_eq(icl("train --resume od/checkpoints/step_0000003.safetensors --steps 5 --out od --force"), 2);
    log_has("--force would delete the checkpoint");
}
END_TEST

/* SIGINT during training: the current step ends, a resumable checkpoint is
 * written, the resume command printed, exit status 130; the command resumes. */
START_TEST(test_sigint_saves_a_checkpoint) {
    int err[2];
    ck_assert_int_eq(pipe(err), 0);
    pid_t pid = fork();
    ck_assert_int_ge(pid, 0);
    if (pid == 0) {
        dup2(err[1], 2);
        close(err[0]);
        if (chdir(work) != 0)
            _exit(127);
        execl(icl_bin, icl_bin, "train", "--task", "copy", "--symbols", "4", "--length", "3", "--batch", "4",
              "--steps", "1000000", "--log-every", "1", "--out", "sig", (char *)NULL);
        _exit(127);
    }
    close(err[1]);
    FILE *f = fdopen(err[0], "r");
    char line[4096], text[16384] = "";
    int signalled = 0;
    while (fgets(line, sizeof line, f)) {
        strncat(text, line, sizeof text - strlen(text) - 1);
        if (!signalled && strncmp(line, "step ", 5) == 0) {
            kill(pid, SIGINT);
            signalled = 1;
        }
    }
    fclose(f);
    int status;
    ck_assert_int_eq(waitpid(pid, &status, 0), pid);
    printf("  interrupted run:\n%s", text);
    ck_assert_msg(signalled, "no progress line:\n%s", text);
    ck_assert_msg(WIFEXITED(status) && WEXITSTATUS(status) == 130, "status %d:\n%s", status, text);
    ck_assert_msg(strstr(text, "interrupted by SIGINT after step"), "%s", text);
    const char *resume = strstr(text, "to resume: ");
    ck_assert_msg(resume, "%s", text);
    resume += strlen("to resume: ");
    char cmd[4096], path[PATH_MAX];
    snprintf(cmd, sizeof cmd, "%.*s", (int)strcspn(resume, "\n"), resume);
    const char *ckpt = strstr(cmd, "--resume ");
    ck_assert_msg(ckpt, "%s", cmd);
    snprintf(path, sizeof path, "%s/%s", work, ckpt + strlen("--resume "));
    icl_model *m = NULL;
    ck_assert_int_eq(icl_checkpoint_load_model(path, ICL_BACKEND_CPU, &m), ICL_OK);
    icl_model_free(m);
    char step_text[32];
    ck_assert_int_eq(icl_checkpoint_read_meta(path, "icl.step", step_text, sizeof step_text), ICL_OK);
    long step = atol(step_text);
    ck_assert_int_ge(step, 1);
    /* the printed command, with a short schedule so that it ends */
    char run[2 * PATH_MAX + 4096];
    snprintf(run, sizeof run, "cd %s && %s --steps %ld --quiet > cmd.log 2>&1", work, cmd, step + 2);
    ck_assert_int_eq(system(run), 0);
    log_has("a new ");
    ck_assert(exists("sig/model.safetensors"));
    char final[PATH_MAX];
    snprintf(final, sizeof final, "%s/sig/model.safetensors", work);
    ck_assert_int_eq(icl_checkpoint_read_meta(final, "icl.step", step_text, sizeof step_text), ICL_OK);
    ck_assert_int_eq(atol(step_text), step + 2);
}
END_TEST

/* --resume takes the task and architecture from the checkpoint, refuses
 * contradicting options, says what happens to the schedule, and refuses
 * --steps that would train nothing. */
START_TEST(test_resume_uses_the_checkpoint) {
    ck_assert_int_eq(icl("train --task retrieval:A=6,L=3,tasks=3,n=2 --layers 1 --steps 4 --batch 4 --checkpoint-every 2 "
                         "--eval-prompts 2 --quiet --out rs"), 0);
    const char *ck = "--resume rs/checkpoints/step_0000002.safetensors";
    char cmd[512];
    snprintf(cmd, sizeof cmd, "train %s --quiet --save rs1.safetensors", ck);
    ck_assert_int_eq(icl(cmd), 0); /* no --task, no --layers, no --steps: all from the checkpoint */
    char step_text[32], path[PATH_MAX];
    snprintf(path, sizeof path, "%s/rs1.safetensors", work);
    ck_assert_int_eq(icl_checkpoint_read_meta(path, "icl.step", step_text, sizeof step_text), ICL_OK);
    ck_assert_int_eq(atol(step_text), 4);
    snprintf(cmd, sizeof cmd, "train %s --layers 2 --save rs2.safetensors", ck);
    ck_assert_int_eq(icl(cmd), 2);
    log_has("--layers 2 contradicts");
    snprintf(cmd, sizeof cmd, "train %s --task translation:K=2,n=3 --save rs2.safetensors", ck);
    ck_assert_int_eq(icl(cmd), 2);
    log_has("--task translation:K=2,n=3 contradicts");
    snprintf(cmd, sizeof cmd, "train %s --steps 2 --save rs2.safetensors", ck);
    ck_assert_int_eq(icl(cmd), 2);
    log_has("would train nothing");
    ck_assert_int_eq(icl("train --resume rs/model.safetensors --save rs2.safetensors"), 2);
    log_has("pass --steps above 4");
    snprintf(cmd, sizeof cmd, "train %s --steps 6 --quiet --save rs2.safetensors", ck);
    ck_assert_int_eq(icl(cmd), 0);
    log_has("resuming at step 2 of a new 6-step cosine schedule (the checkpoint's run had 4 steps)");
    ck_assert(exists("rs2.safetensors"));
}
END_TEST

/* eval --task with another family than the model's is refused, not scored as zeros. */
START_TEST(test_eval_refuses_another_family) {
    ck_assert_int_eq(icl("train --task translation:K=2,n=3 --steps 1 --batch 4 --quiet --save tf.safetensors"), 0);
    ck_assert_int_eq(icl("eval --model tf.safetensors --task retrieval:A=6,L=3,tasks=3,n=2 --prompts 2"), 2);
    log_has("not on family retrieval");
    log_lacks("query accuracy");
    ck_assert_int_eq(icl("eval --model tf.safetensors --task translation:K=2,n=3 --prompts 2 --quiet"), 0);
    /* the probes refuse the same mismatch with the same message, writing nothing */
    static const char *const probes[] = {"superposition", "task-vectors", "decodability", "rsa"};
    char cmd[256];
    for (size_t i = 0; i < sizeof probes / sizeof probes[0]; i++) {
        snprintf(cmd, sizeof cmd, "probe %s --model tf.safetensors --task retrieval:A=6,L=3,tasks=3,n=2 --out tf_%zu",
                 probes[i], i);
        ck_assert_int_eq(icl(cmd), 2);
        log_has("not on family retrieval");
        snprintf(cmd, sizeof cmd, "tf_%zu", i);
        ck_assert_msg(!exists(cmd), "probe %s wrote %s", probes[i], cmd);
    }
}
END_TEST

/* Numbers: range-checked per option, whole numbers in float notation accepted,
 * an impossible batch refused with the memory it needs. */
START_TEST(test_numeric_options) {
    const char *base = "train --task copy --symbols 4 --length 3 --batch 4 --quiet --save num.safetensors";
    static const struct { const char *arg, *msg; } bad[] = {
        {"--steps 3000000000", "--steps 3000000000 is out of range"},
        {"--examples -3", "--examples -3 is out of range"},
        {"--clip -1", "--clip -1 is out of range"},
        {"--steps 1.5", "--steps: 1.5 is not a whole number"},
        {"--lr nan", "--lr: \"nan\" is not a finite number"},
        {"--eval-prompts 0", "--eval-prompts 0 is out of range"},
    };
    char cmd[512];
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        snprintf(cmd, sizeof cmd, "%s --steps 1 %s", base, bad[i].arg);
        ck_assert_int_eq(icl(cmd), 2);
        log_has(bad[i].msg);
    }
    snprintf(cmd, sizeof cmd, "%s --steps 2e0", base);
    ck_assert_int_eq(icl(cmd), 0);
    snprintf(cmd, sizeof cmd, "%s --steps 1 --batch 100000000", base);
    ck_assert_int_eq(icl_capped(cmd, 8L << 20), 2);
    log_has("--batch 100000000 needs about");
    log_has("GB");
    ck_assert_int_eq(icl("eval --model num.safetensors --prompts -1"), 2);
}
END_TEST

/* A checkpoint with a NaN weight is refused at load, naming the tensor. */
START_TEST(test_nonfinite_checkpoint_refused) {
    ck_assert_int_eq(icl("train --task copy --symbols 4 --length 3 --steps 1 --batch 4 --quiet --save nan.safetensors"), 0);
    char path[PATH_MAX];
    snprintf(path, sizeof path, "%s/nan.safetensors", work);
    icl_model *m = NULL;
    ck_assert_int_eq(icl_checkpoint_load_model(path, ICL_BACKEND_CPU, &m), ICL_OK);
    size_t n = icl_model_num_params(m);
    float *p = malloc(n * sizeof *p);
    ck_assert_ptr_nonnull(p);
    ck_assert_int_eq(icl_model_get_params(m, p, n), ICL_OK);
    const icl_param_info *t = icl_model_tensor(m, 1);
    p[t->offset + 3] = NAN;
    ck_assert_int_eq(icl_model_set_params(m, p, n), ICL_OK);
    ck_assert_int_eq(icl_checkpoint_save(path, m, NULL, NULL), ICL_OK);
    char want[256];
    snprintf(want, sizeof want, "tensor %s holds nan at element 3", t->name);
    free(p);
    icl_model_free(m);
    int32_t tok[8] = {4, 0, 1, 2, 5, 0, 1, 2};
    size_t shape[2] = {1, 8};
    snprintf(path, sizeof path, "%s/nan_tokens.npy", work);
    ck_assert_int_eq(icl_npy_write(path, ICL_DTYPE_I32, 2, shape, tok), ICL_OK);
    ck_assert_int_eq(icl("forward --model nan.safetensors --input nan_tokens.npy --out nan_logits.npy"), 1);
    log_has(want);
    ck_assert(!exists("nan_logits.npy"));
}
END_TEST

/* Messages speak in options, --version works, usage errors exit 2 and runtime errors 1. */
START_TEST(test_messages_and_exit_codes) {
    ck_assert_int_eq(icl("--version"), 0);
    char want[64];
    snprintf(want, sizeof want, "icl %s\n", ICL_VERSION_STRING);
    log_has(want);
    static const struct { const char *args, *msg; } usage[] = {
        {"train --symbols 1 --save u.safetensors", "--symbols 1 is out of range"},
        {"train --log-every -1 --save u.safetensors", "--log-every -1 is out of range"},
        {"train --d-model 30 --heads 4 --save u.safetensors", "--d-model 30 is not divisible by --heads 4"},
        {"train --backend nope --save u.safetensors", "nope"},
        {"train --no-such-option", "unknown option --no-such-option"},
        {"eval", "--model is required"},
        {"forward --model u.safetensors", "--model, --input and --out are required"},
        {"no-such-command", "unknown command"},
    };
    for (size_t i = 0; i < sizeof usage / sizeof usage[0]; i++) {
        ck_assert_int_eq(icl(usage[i].args), 2);
        log_has(usage[i].msg);
        log_lacks("icl_toy_fill");
        log_lacks("icl_train_loop");
    }
    ck_assert_int_eq(icl("forward --model missing.safetensors --input x.npy --out y.npy"), 1);
    ck_assert_int_eq(icl("eval --model missing.safetensors"), 1);
}
END_TEST

/* forward --capture: resid_post at one layer, named by its alias, equals the
 * library's capture of the same forward pass bit for bit; without :LAYER a
 * per-layer point gives one file per layer; a bad point exits 2 and a capture
 * path that cannot be written exits 1 before anything is written. */
START_TEST(test_forward_capture) {
    ck_assert_int_eq(icl("train --task retrieval:A=6,L=3,tasks=3,n=2 --layers 2 --steps 3 --batch 4 --quiet --save cap.safetensors"), 0);
    int32_t tok[2 * 12] = {0, 3, 4, 5, 1, 3, 2, 6, 7, 8, 1, 8, 0, 5, 4, 3, 1, 5, 2, 8, 7, 6, 1, 6};
    size_t shape[2] = {2, 12};
    char path[PATH_MAX];
    snprintf(path, sizeof path, "%s/cap_tokens.npy", work);
    ck_assert_int_eq(icl_npy_write(path, ICL_DTYPE_I32, 2, shape, tok), ICL_OK);
    ck_assert_int_eq(icl("forward --model cap.safetensors --input cap_tokens.npy --out cap.npy "
                         "--capture blocks.1.hook_resid_post --capture attn_probs --capture embed"), 0);
    ck_assert(exists("cap.npy") && exists("cap.resid_post.L1.npy") && !exists("cap.resid_post.L0.npy"));
    ck_assert(exists("cap.attn_probs.L0.npy") && exists("cap.attn_probs.L1.npy") && exists("cap.embed.npy"));

    icl_model *m;
    snprintf(path, sizeof path, "%s/cap.safetensors", work);
    ck_assert_int_eq(icl_checkpoint_load_model(path, ICL_BACKEND_CPU, &m), ICL_OK);
    icl_batch b = {2, 12, tok, NULL, NULL, NULL, NULL};
    ck_assert_int_eq(icl_model_forward(m, &b, NULL), ICL_OK);
    icl_capture_plan *plan;
    icl_capture_set set;
    ck_assert_int_eq(icl_capture_plan_create(&plan), ICL_OK);
    ck_assert_int_eq(icl_capture_plan_add(plan, ICL_POINT_RESID_POST, 1, -1, icl_pos_all(), NULL), ICL_OK);
    ck_assert_int_eq(icl_capture_collect(plan, m, NULL, &set), ICL_OK);
    const icl_capture *c = icl_capture_set_find(&set, ICL_POINT_RESID_POST, 1);
    ck_assert_ptr_nonnull(c);
    icl_array y;
    snprintf(path, sizeof path, "%s/cap.resid_post.L1.npy", work);
    ck_assert_int_eq(icl_npy_read(path, &y), ICL_OK);
    int C = icl_model_config(m)->d_model;
    ck_assert_int_eq(y.ndim, 3);
    ck_assert_uint_eq(y.shape[0], 2);
    ck_assert_uint_eq(y.shape[1], 12);
    ck_assert_uint_eq(y.shape[2], (size_t)C);
    ck_assert_uint_eq(c->n * (size_t)c->width, y.numel);
    size_t differ = 0;
    for (size_t i = 0; i < y.numel; i++) differ += memcmp(&((float *)y.data)[i], &c->data[i], sizeof(float)) != 0;
    printf("  forward --capture resid_post L1: %zu of %zu floats differ from icl_capture_collect\n", differ, y.numel);
    ck_assert_uint_eq(differ, 0);
    icl_array_free(&y);
    /* attention probabilities come as (B,NH,T,T), rows summing to 1 */
    snprintf(path, sizeof path, "%s/cap.attn_probs.L1.npy", work);
    ck_assert_int_eq(icl_npy_read(path, &y), ICL_OK);
    ck_assert_int_eq(y.ndim, 4);
    ck_assert_uint_eq(y.shape[1], (size_t)icl_model_config(m)->n_head);
    const float *row = (const float *)y.data + 5 * 12; /* b 0, head 0, t 5 */
    double sum = 0.0;
    for (int s = 0; s < 12; s++) sum += row[s];
    ck_assert_double_eq_tol(sum, 1.0, 1e-5);
    ck_assert_float_eq(row[6], 0.0f);
    icl_array_free(&y);
    icl_capture_set_free(&set);
    icl_capture_plan_free(plan);
    icl_model_free(m);

    ck_assert_int_eq(icl("forward --model cap.safetensors --input cap_tokens.npy --out bad.npy --capture resid_post:2"), 2);
    log_has("layer 2 out of range [0, 2)");
    ck_assert_int_eq(icl("forward --model cap.safetensors --input cap_tokens.npy --out bad.npy --capture no_point"), 2);
    log_has("unknown point");
    ck_assert_int_eq(icl("forward --model cap.safetensors --input cap_tokens.npy --out bad.npy --capture embed:0"), 2);
    snprintf(path, sizeof path, "%s/bad.mlp_out.L0.npy", work);
    ck_assert_int_eq(mkdir(path, 0755), 0);
    ck_assert_int_eq(icl("forward --model cap.safetensors --input cap_tokens.npy --out bad.npy --capture mlp_out"), 1);
    log_has("is a directory");
    ck_assert(!exists("bad.npy") && !exists("bad.mlp_out.L1.npy"));
}
END_TEST

/* info --task prints the family's task, token and role ids; --tokens the checkpoint's family. */
START_TEST(test_info_task_ids) {
    ck_assert_int_eq(icl("info --task retrieval:A=6,L=3,tasks=3,n=2"), 0);
    icl_task_family *f;
    ck_assert_int_eq(icl_task_family_create(&f, "retrieval:A=6,L=3,tasks=3,n=2"), ICL_OK);
    char want[128];
    for (int v = 0; v < icl_task_family_vocab_size(f); v++) {
        snprintf(want, sizeof want, "\ntoken %d %s\n", v, icl_task_family_token_name(f, v));
        log_has(want);
    }
    for (int t = 0; t < icl_task_family_num_tasks(f); t++) {
        snprintf(want, sizeof want, "\ntask %d %s\n", t, icl_task_family_task_name(f, t));
        log_has(want);
    }
    snprintf(want, sizeof want, "\nrole %d query_sep\n", ICL_ROLE_QUERY_SEP);
    log_has(want);
    log_has("token 0 <bos>\ntoken 1 ->\ntoken 2 |\ntoken 3 a\n");
    icl_task_family_free(f);
    ck_assert_int_eq(icl("train --task retrieval:A=6,L=3,tasks=3,n=2 --steps 1 --batch 4 --quiet --save ids.safetensors"), 0);
    ck_assert_int_eq(icl("info ids.safetensors --tokens"), 0);
    log_has("family retrieval:A=6,L=3,tasks=3,n=2 (token mode)");
    log_has("\ntask 2 ret_3\n");
    ck_assert_int_eq(icl("info --task basis_mixture_small"), 0);
    log_has("\ntask 0 basis_0\n");
    log_lacks("token 0");
    ck_assert_int_eq(icl("info --task no_such_family"), 1);
    ck_assert_int_eq(icl("info ids.safetensors --task retrieval"), 2);
    ck_assert_int_eq(icl("info --tokens"), 2);
}
END_TEST

/* The value of the CSV row of work/rel that starts with `prefix`; NaN when absent. */
static double csv_value(const char *rel, const char *prefix) {
    static char text[65536];
    slurp(rel, text, sizeof text);
    for (const char *line = text; line && *line; line = strchr(line, '\n') ? strchr(line, '\n') + 1 : NULL)
        if (strncmp(line, prefix, strlen(prefix)) == 0)
            return strtod(line + strlen(prefix), NULL);
    return NAN;
}

/* probe linear --shots 0,2: the shot counts share their queries (so the answer
 * classes, and their majority share, are the same), recorded in the sidecar;
 * --independent draws fresh 0-shot prompts. The query separator's embedding
 * (layer 0) is the same in every prompt: nan. */
START_TEST(test_linear_shots_share_queries) {
    ck_assert_int_eq(icl("train --task retrieval:A=8,L=4,tasks=3,n=2 --layers 1 --steps 2 --batch 4 --quiet --save lq.safetensors"), 0);
    ck_assert_int_eq(icl("probe linear --model lq.safetensors --prompts 12 --folds 3 --shots 0,2 --out lq"), 0);
    log_has("same queries at every shot count");
    char text[4096];
    ck_assert_ptr_nonnull(strstr(slurp("lq/linear.json", text, sizeof text), "\"same_queries\":\t1"));
    double c0 = csv_value("lq/linear.csv", "0,0,logistic,answer,chance,");
    double c2 = csv_value("lq/linear.csv", "2,0,logistic,answer,chance,");
    printf("  answer majority share: 0-shot %.4f, 2-shot %.4f\n", c0, c2);
    ck_assert(c0 == c2);
    ck_assert(isnan(csv_value("lq/linear.csv", "0,0,logistic,task,cv_accuracy,")));
    ck_assert(isfinite(csv_value("lq/linear.csv", "0,1,logistic,task,cv_accuracy,")));
    ck_assert_int_eq(icl("probe linear --model lq.safetensors --prompts 12 --folds 3 --shots 0,2 --independent --out lqi"), 0);
    log_has("independent prompts per shot count");
    ck_assert_ptr_nonnull(strstr(slurp("lqi/linear.json", text, sizeof text), "\"same_queries\":\t0"));
    /* the 2-shot prompts are the same either way */
    ck_assert(csv_value("lqi/linear.csv", "2,1,logistic,task,cv_accuracy,") ==
              csv_value("lq/linear.csv", "2,1,logistic,task,cv_accuracy,"));
}
END_TEST

/* Assert that work/rel is an .npy array of the given shape (ndim dims). */
static void npy_shape(const char *rel, int ndim, const size_t *shape) {
    char path[PATH_MAX];
    snprintf(path, sizeof path, "%s/%s", work, rel);
    icl_array a;
    ck_assert_msg(icl_npy_read(path, &a) == ICL_OK, "%s: %s", rel, icl_last_error());
    ck_assert_msg(a.ndim == ndim, "%s has %d dimensions, not %d", rel, a.ndim, ndim);
    for (int d = 0; d < ndim; d++)
        ck_assert_msg(a.shape[d] == shape[d], "%s: dimension %d is %zu, not %zu", rel, d, a.shape[d], shape[d]);
    icl_array_free(&a);
}

/* --save-inputs on function-vectors and finetune: the inputs are written with
 * the documented shapes (a 2-layer, 2-head, d_model 16 model of the 2-task
 * translation family, whose prompts have 16 positions), listed in the sidecar,
 * and the figures are those of a run without the option. */
START_TEST(test_probe_save_inputs) {
    ck_assert_int_eq(icl("train --task translation:K=2,n=3 --layers 2 --heads 2 --d-model 16 --steps 2 --batch 4 "
                         "--quiet --save si.safetensors"), 0);
    ck_assert_int_eq(icl("probe function-vectors --model si.safetensors --prompts 4 --eval-prompts 3 --batch 2 "
                         "--save-inputs --out si/fv"), 0);
    size_t means[4] = {2 * 4, 2, 2, 8}, tokens[2] = {2 * 3, 16}, zs[2] = {2 * 3, 4}, w[3] = {2, 16, 16};
    size_t ev[4] = {2, 3, 2, 3}, p0[2] = {2, 3}, pl[4] = {2, 2, 2, 3};
    npy_shape("si/fv/inputs/mean_head_out.npy", 4, means);
    npy_shape("si/fv/inputs/mean_labels.npy", 1, means);
    npy_shape("si/fv/inputs/clean_tokens.npy", 2, tokens);
    npy_shape("si/fv/inputs/shuffled_roles.npy", 2, tokens);
    npy_shape("si/fv/inputs/zero_shot_tokens.npy", 2, zs);
    npy_shape("si/fv/inputs/clean_answers.npy", 2, (size_t[]){2 * 3, 1});
    npy_shape("si/fv/inputs/proj_w.npy", 3, w);
    npy_shape("si/fv/inputs/eval_p.npy", 4, ev);
    npy_shape("si/fv/inputs/eval_correct.npy", 4, ev);
    npy_shape("si/fv/inputs/aie_p_corrupted.npy", 2, p0);
    npy_shape("si/fv/inputs/aie_p_patched.npy", 4, pl);
    char text[16384], plain[16384];
    slurp("si/fv/function_vectors.json", text, sizeof text);
    ck_assert_ptr_nonnull(strstr(text, "\"inputs/aie_p_patched.npy\""));
    ck_assert_int_eq(icl("probe function-vectors --model si.safetensors --prompts 4 --eval-prompts 3 --batch 2 "
                         "--out si/fv0"), 0);
    ck_assert_str_eq(slurp("si/fv/aie.csv", text, sizeof text), slurp("si/fv0/aie.csv", plain, sizeof plain));
    ck_assert_str_eq(slurp("si/fv/fv_eval.csv", text, sizeof text), slurp("si/fv0/fv_eval.csv", plain, sizeof plain));
    ck_assert(!exists("si/fv0/inputs"));

    ck_assert_int_eq(icl("probe finetune --model si.safetensors --steps 3 --batch 4 --prompts 5 --eval-prompts 4 --k 2 "
                         "--save-inputs --out si/ft"), 0);
    size_t X[3] = {3, 2 * 5, 16}, td[2] = {2 * 5, 16}, weights[2] = {2 * 4, 16}, losses[3] = {3, 2 * 4, 16};
    size_t score[2] = {3, 2 * 4}, train[2] = {3, 3};
    npy_shape("si/ft/inputs/td_tokens.npy", 2, td);
    npy_shape("si/ft/inputs/td_labels.npy", 1, td);
    npy_shape("si/ft/inputs/td_original_X.npy", 3, X);
    npy_shape("si/ft/inputs/td_first_X.npy", 3, X);
    npy_shape("si/ft/inputs/td_last_X.npy", 3, X);
    npy_shape("si/ft/inputs/eval_tokens.npy", 2, weights);
    npy_shape("si/ft/inputs/eval_loss_weights.npy", 2, weights);
    npy_shape("si/ft/inputs/eval_losses.npy", 3, losses);
    npy_shape("si/ft/inputs/eval_score.npy", 2, score);
    npy_shape("si/ft/inputs/train_loss.npy", 2, train);
    ck_assert_ptr_nonnull(strstr(slurp("si/ft/finetune.json", text, sizeof text), "\"inputs/train_loss.npy\""));
    ck_assert_int_eq(icl("probe finetune --model si.safetensors --steps 3 --batch 4 --prompts 5 --eval-prompts 4 --k 2 "
                         "--out si/ft0"), 0);
    ck_assert_str_eq(slurp("si/ft/finetune.csv", text, sizeof text), slurp("si/ft0/finetune.csv", plain, sizeof plain));
    ck_assert_str_eq(slurp("si/ft/td_layers.csv", text, sizeof text),
                     slurp("si/ft0/td_layers.csv", plain, sizeof plain));
}
END_TEST

/* probe rsa --shots 0,1,...,8: a k-sweep of 9 shot counts (up to ICL_RSA_MAX_SHOTS)
 * writes one accuracy per count in score.csv; one count more is refused. */
START_TEST(test_rsa_shot_sweep) {
    ck_assert_int_eq(icl("train --task retrieval:A=8,L=4,tasks=3,n=8 --layers 1 --steps 2 --batch 4 --quiet --save rk.safetensors"), 0);
    ck_assert_int_eq(icl("probe rsa --model rk.safetensors --prompts 6 --perm 5 --shots 0,1,2,3,4,5,6,7,8 --out rk"), 0);
    char cell[32];
    for (int k = 0; k <= 8; k++) {
        snprintf(cell, sizeof cell, "%d,accuracy,", k);
        ck_assert_msg(isfinite(csv_value("rk/score.csv", cell)), "no accuracy for %d shots", k);
    }
    ck_assert(isfinite(csv_value("rk/rsa.csv", "8,1,answer,")));
    ck_assert_int_eq(icl("probe rsa --model rk.safetensors --prompts 6 --perm 5 "
                         "--shots 0,1,2,3,4,5,6,7,8,0,1,2,3,4,5,6,7 --out rk17"), 1);
    ck_assert(!exists("rk17"));
}
END_TEST

int main(int argc, char **argv) {
    (void)argc;
    char bin[PATH_MAX];
    if (tu_bin_dir(argv[0], bin, sizeof bin))
        return 1;
    snprintf(icl_bin, sizeof icl_bin, "%s/icl", bin);
    const char *dir = tu_tmpdir_create("cli");
    if (!dir)
        return 1;
    snprintf(work, sizeof work, "%s", dir);
    Suite *s = suite_create("cli");
    TCase *tc = tcase_create("cli");
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, test_train_info_forward);
    tcase_add_test(tc, test_train_and_eval_families);
    tcase_add_test(tc, test_probes_run);
    tcase_add_test(tc, test_probe_shared_options);
    tcase_add_test(tc, test_probe_sidecar_files);
    tcase_add_test(tc, test_bench_inference_column);
    tcase_add_test(tc, test_train_refuses_to_save_nothing);
    tcase_add_test(tc, test_outputs_checked_before_training);
    tcase_add_test(tc, test_out_dir_holding_a_run);
    tcase_add_test(tc, test_sigint_saves_a_checkpoint);
    tcase_add_test(tc, test_resume_uses_the_checkpoint);
    tcase_add_test(tc, test_eval_refuses_another_family);
    tcase_add_test(tc, test_numeric_options);
    tcase_add_test(tc, test_nonfinite_checkpoint_refused);
    tcase_add_test(tc, test_messages_and_exit_codes);
    tcase_add_test(tc, test_forward_capture);
    tcase_add_test(tc, test_info_task_ids);
    tcase_add_test(tc, test_linear_shots_share_queries);
    tcase_add_test(tc, test_probe_save_inputs);
    tcase_add_test(tc, test_rsa_shot_sweep);
    suite_add_tcase(s, tc);
    int rc = tu_run(s);
    tu_tmpdir_remove();
    return rc;
}
