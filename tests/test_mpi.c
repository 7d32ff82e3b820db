/* Data-parallel training and sweeps over MPI ranks, end to end through the
 * icl tool under mpirun: 2 ranks match one process on the same global batch,
 * repeat bit for bit, resume from rank 0's checkpoints in either setting; a
 * sweep survives being killed and its summary matches the runs' CSV files.
 * Without MPI (or mpirun) those tests say so and pass; the stub's are always
 * run. */
#define _DEFAULT_SOURCE /* realpath, kill */
#include <dirent.h>
#include <limits.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include "icl/dist.h"
#include "icl/icl.h"
#include "testutil.h"

static char icl_bin[PATH_MAX + 16], work[64];
static const char *mpi_missing; /* why the MPI tests cannot run, or NULL */

/* A tiny retrieval model; 2 micro-batches of 8 prompts, so each rank trains on 4 rows of each. */
#define TRAIN_ARGS                                                                                        \
    "train --task retrieval:A=6,L=3,tasks=3,n=4 --layers 1 --d-model 16 --heads 2 --batch 8 --accum 2 " \
    "--steps 200 --log-every 1 --quiet --seed 3"
#define MPIRUN "mpirun --oversubscribe -np 2 "

/* Run `[launcher] icl <args>` in the work directory; its exit status. */
static int icl(const char *launcher, const char *args) {
    char cmd[4 * PATH_MAX];
    snprintf(cmd, sizeof cmd, "cd %s && %s'%s' %s > cmd.log 2>&1", work, launcher, icl_bin, args);
    int rc = system(cmd);
    printf("  %sicl %s -> %d\n", launcher, args, WIFEXITED(rc) ? WEXITSTATUS(rc) : -1);
    return WIFEXITED(rc) ? WEXITSTATUS(rc) : -1;
}

static const char *at(const char *rel) {
    static char path[4][PATH_MAX];
    static int next;
    char *p = path[next++ % 4];
    snprintf(p, PATH_MAX, "%s/%s", work, rel);
    return p;
}

/* The parameters of a checkpoint (n floats, malloc'd). */
static float *load_params(const char *rel, size_t *n) {
    icl_model *m = NULL;
    ck_assert_msg(icl_checkpoint_load_model(at(rel), ICL_BACKEND_CPU, &m) == ICL_OK, "%s: %s", rel, icl_last_error());
    *n = icl_model_num_params(m);
    float *p = malloc(*n * sizeof *p);
    ck_assert_ptr_nonnull(p);
    ck_assert_int_eq(icl_model_get_params(m, p, *n), ICL_OK);
    icl_model_free(m);
    return p;
}

/* Column col (1 loss, 3 gradient norm) of a train_log.csv (at most max rows); how many. */
static int read_log(const char *rel, int col, float *x, int max) {
    FILE *f = fopen(at(rel), "r");
    ck_assert_msg(f != NULL, "%s is missing", rel);
    char line[256];
    int n = 0;
    long step;
    float v[3];
    while (fgets(line, sizeof line, f) && n < max)
        if (sscanf(line, "%ld,%f,%f,%f", &step, &v[0], &v[1], &v[2]) == 4)
            x[n++] = v[col - 1];
    fclose(f);
    return n;
}

static int skip_without_mpi(void) {
    if (mpi_missing)
        printf("  SKIPPED: %s; the MPI tests did not run\n", mpi_missing);
    return mpi_missing != NULL;
}

/* make check says what the build was configured with (ICL_EXPECT_MPI=$(MPI)):
 * a build that lost its MPI flags must fail here, not skip every MPI test. */
START_TEST(test_build_matches_its_configuration) {
    const char *expect = getenv("ICL_EXPECT_MPI");
    printf("  ICL_EXPECT_MPI=%s, icl_dist_compiled()=%d\n", expect ? expect : "(unset)", icl_dist_compiled());
    if (expect)
        ck_assert_int_eq(icl_dist_compiled(), strcmp(expect, "1") == 0);
}
END_TEST

/* The stub: without MPI_Init a handle has size 1, and an optimizer given it
 * trains bit for bit as one without. */
START_TEST(test_stub_is_one_process) {
    icl_dist *d = NULL;
    ck_assert_int_eq(icl_dist_create(&d), ICL_OK);
    ck_assert_int_eq(icl_dist_size(d), 1);
    ck_assert_int_eq(icl_dist_rank(d), 0);
    ck_assert_int_eq(icl_dist_size(NULL), 1);
    int any = 0;
    ck_assert_int_eq(icl_dist_any(d, 1, &any), ICL_OK);
    ck_assert_int_eq(any, 1);
    ck_assert_int_eq(icl_dist_barrier(d), ICL_OK);
    ck_assert_int_eq(icl_dist_create(NULL), ICL_ERR_INVALID_ARG);
    ck_assert_int_eq(icl_optimizer_set_dist(NULL, d), ICL_ERR_INVALID_ARG);
    if (!icl_dist_compiled())
        ck_assert_int_eq(icl_dist_init(NULL, NULL), ICL_ERR_UNSUPPORTED);

    icl_config cfg = icl_config_default();
    cfg.n_layer = 1, cfg.d_model = 16, cfg.n_head = 2, cfg.vocab_size = 8, cfg.ctx = 6;
    icl_optim_config oc = icl_optim_config_default();
    float params[2][8192];
    size_t n = 0;
    for (int with = 0; with < 2; with++) {
        icl_model *m;
        icl_optimizer *o;
        ck_assert_int_eq(icl_model_create(&m, &cfg, ICL_BACKEND_CPU, 5), ICL_OK);
        ck_assert_int_eq(icl_optimizer_create(&o, m, &oc), ICL_OK);
        if (with)
            ck_assert_int_eq(icl_optimizer_set_dist(o, d), ICL_OK);
        ck_assert_ptr_eq(icl_optimizer_dist(o), with ? d : NULL);
        icl_rng rng;
        icl_rng_init(&rng, 9, "data");
        int32_t tok[4 * 6], tgt[4 * 6];
        for (int s = 0; s < 5; s++) {
            tu_fill_tokens(tok, 24, 8, &rng);
            tu_fill_tokens(tgt, 24, 8, &rng);
            icl_batch b = {.B = 4, .T = 6, .tokens = tok, .targets = tgt};
            ck_assert_int_eq(icl_train_step(m, o, &b, 1, NULL), ICL_OK);
        }
        n = icl_model_num_params(m);
        ck_assert_uint_le(n, 8192);
        ck_assert_int_eq(icl_model_get_params(m, params[with], n), ICL_OK);
        icl_optimizer_free(o);
        icl_model_free(m);
    }
    ck_assert_int_eq(memcmp(params[0], params[1], n * sizeof(float)), 0);
    icl_dist_free(d);
}
END_TEST

/* Tolerance of 2 ranks against 1. The ranks' gradients are summed in another
 * order than one process sums its rows, so they differ by float rounding
 * (~1e-7 relative), and Adam amplifies that where a gradient is near zero:
 * m/sqrt(v) of rounding noise is a step of up to lr either way. So single
 * parameters may drift by a few lr over the run while the parameter vector
 * as a whole stays close: the tolerance is on ||p2 - p1|| / ||p1||, with a
 * bound of 10 lr (lr = 1e-3) on any one parameter. The losses of the first
 * steps agree to float rounding, later ones to the CSV's 6 decimals. */
#define LOSS_ATOL 2e-5
#define PARAM_REL_L2 1e-3
#define PARAM_MAX_ABS 1e-2

/* ||got - want|| / ||want||, and the largest |got - want|, printed with their margins. */
static void assert_params_close(const char *label, const float *got, const float *want, size_t n) {
    double d2 = 0.0, w2 = 0.0, worst = 0.0;
    for (size_t i = 0; i < n; i++) {
        double d = (double)got[i] - want[i];
        d2 += d * d;
        w2 += (double)want[i] * want[i];
        worst = fmax(worst, fabs(d));
    }
    double rel = sqrt(d2 / w2);
    printf("  %-45s relative L2 difference %.3g (%.1f%% of tolerance), max abs %.3g (%.1f%% of tolerance)\n", label,
           rel, 100.0 * rel / PARAM_REL_L2, worst, 100.0 * worst / PARAM_MAX_ABS);
    ck_assert_msg(rel <= PARAM_REL_L2 && worst <= PARAM_MAX_ABS, "%s: relative L2 %.3g, max abs %.3g", label, rel,
                  worst);
}

/* Two ranks match one process, bit for bit run to run; rank 0's checkpoint
 * resumes in one process and under 2 ranks. */
START_TEST(test_data_parallel_matches_one_process) {
    if (skip_without_mpi())
        return;
    ck_assert_int_eq(icl("", TRAIN_ARGS " --out one"), 0);
    ck_assert_int_eq(icl(MPIRUN, TRAIN_ARGS " --checkpoint-every 100 --out two"), 0);
    ck_assert_int_eq(icl(MPIRUN, TRAIN_ARGS " --out two_again"), 0);

    float l1[256], l2[256], l2b[256];
    ck_assert_int_eq(read_log("one/train_log.csv", 1, l1, 256), 200);
    ck_assert_int_eq(read_log("two/train_log.csv", 1, l2, 256), 200);
    ck_assert_int_eq(read_log("two_again/train_log.csv", 1, l2b, 256), 200);
    TU_ASSERT_CLOSE("losses, 2 ranks vs 1", l2, l1, 200, LOSS_ATOL, 0.0);
    ck_assert_int_eq(memcmp(l2, l2b, 200 * sizeof(float)), 0);
    /* Adam hides a wrong gradient scale; the logged norm does not */
    float g1[256], g2[256];
    ck_assert_int_eq(read_log("one/train_log.csv", 3, g1, 256), 200);
    ck_assert_int_eq(read_log("two/train_log.csv", 3, g2, 256), 200);
    TU_ASSERT_CLOSE("gradient norms, 2 ranks vs 1", g2, g1, 200, 2e-6, 1e-5);

    size_t n1, n2, n2b;
    float *p1 = load_params("one/model.safetensors", &n1);
    float *p2 = load_params("two/model.safetensors", &n2);
    float *p2b = load_params("two_again/model.safetensors", &n2b);
    ck_assert_uint_eq(n1, n2);
    ck_assert_uint_eq(n2, n2b);
    assert_params_close("parameters after 200 steps, 2 ranks vs 1", p2, p1, n1);
    ck_assert_msg(memcmp(p2, p2b, n2 * sizeof(float)) == 0, "2 ranks are not bit-reproducible");
    /* a run with 2 ranks is not the same bits as one process (else the test above tests nothing) */
    ck_assert(memcmp(p1, p2, n1 * sizeof(float)) != 0);

    /* rank 0's checkpoint at step 100, resumed under 2 ranks: the same bits as the straight run */
    const char *ck = "--resume two/checkpoints/step_0000100.safetensors";
    char args[1024];
    snprintf(args, sizeof args, "%s %s --out two_resumed", TRAIN_ARGS, ck);
    ck_assert_int_eq(icl(MPIRUN, args), 0);
    size_t nr;
    float *pr = load_params("two_resumed/model.safetensors", &nr);
    ck_assert_msg(memcmp(pr, p2, n2 * sizeof(float)) == 0, "resumed under 2 ranks differs from the straight run");
    float lr[256];
    ck_assert_int_eq(read_log("two_resumed/train_log.csv", 1, lr, 256), 100);
    ck_assert_int_eq(memcmp(lr, l2 + 100, 100 * sizeof(float)), 0);
    free(pr);
    /* ... and in one process: within the tolerance of both straight runs */
    snprintf(args, sizeof args, "%s %s --out one_resumed", TRAIN_ARGS, ck);
    ck_assert_int_eq(icl("", args), 0);
    pr = load_params("one_resumed/model.safetensors", &nr);
    assert_params_close("resumed in 1 process vs 2 ranks", pr, p2, n2);
    assert_params_close("resumed in 1 process vs 1 process", pr, p1, n1);
    free(pr);
    free(p1);
    free(p2);
    free(p2b);
}
END_TEST

static int count_done(const char *dir, int n, char names[][128]) {
    int done = 0;
    for (int i = 0; i < n; i++) {
        char rel[1024];
        struct stat st;
        snprintf(rel, sizeof rel, "%s/%s/done", dir, names[i]);
        done += stat(at(rel), &st) == 0;
    }
    return done;
}

/* Values of column `col` (0-based) of a CSV, rows after the header; how many. */
static int read_column(const char *rel, int col, double *x, int max) {
    FILE *f = fopen(at(rel), "r");
    ck_assert_msg(f != NULL, "%s is missing", rel);
    char line[1024];
    int n = 0;
    for (int row = 0; fgets(line, sizeof line, f) && n < max; row++) {
        if (row == 0)
            continue;
        char *p = line;
        for (int c = 0; c < col && p; c++) p = strchr(p, ',') ? strchr(p, ',') + 1 : NULL;
        ck_assert_ptr_nonnull(p);
        x[n++] = strtod(p, NULL);
    }
    fclose(f);
    return n;
}

/* Send sig to every child process of parent (mpirun's ranks); how many. */
static int signal_children(pid_t parent, int sig) {
    DIR *proc = opendir("/proc");
    int n = 0;
    struct dirent *e;
    while (proc && (e = readdir(proc)) != NULL) {
        char path[300], buf[512];
        snprintf(path, sizeof path, "/proc/%s/stat", e->d_name);
        FILE *f = fopen(path, "r");
        if (!f)
            continue;
        size_t len = fread(buf, 1, sizeof buf - 1, f);
        fclose(f);
        buf[len] = 0;
        const char *after_name = strrchr(buf, ')'); /* the command name may hold spaces */
        char state;
        int ppid;
        if (after_name && sscanf(after_name + 1, " %c %d", &state, &ppid) == 2 && ppid == parent &&
            kill((pid_t)atoi(e->d_name), sig) == 0)
            n++;
    }
    if (proc)
        closedir(proc);
    return n;
}

/* A run stopped by SIGTERM under mpirun prints a resume command that runs
 * under the same number of ranks (the bits depend on it). The ranks are
 * signalled themselves: mpirun, signalled, kills them after a short grace
 * period that a step and a checkpoint may outlast (docs/scaling.md). */
START_TEST(test_interrupted_run_resumes_under_mpirun) {
    if (skip_without_mpi())
        return;
    pid_t pid = fork();
    ck_assert_int_ge(pid, 0);
    if (pid == 0) {
        char cmd[2 * PATH_MAX];
        snprintf(cmd, sizeof cmd,
                 "cd %s && exec " MPIRUN "'%s' train --task retrieval:A=6,L=3,tasks=3,n=4 --layers 1 --d-model 16 "
                 "--heads 2 --batch 8 --steps 1000000 --log-every 1 --out stopped > stopped.log 2>&1",
                 work, icl_bin);
        execl("/bin/sh", "sh", "-c", cmd, (char *)NULL);
        _exit(127);
    }
    /* wait for training steps in the log, then stop it */
    int started = 0;
    for (int tries = 0; tries < 1200 && !started; tries++) {
        struct timespec ts = {0, 50 * 1000 * 1000};
        nanosleep(&ts, NULL);
        FILE *f = fopen(at("stopped.log"), "r");
        char line[512];
        while (f && !started && fgets(line, sizeof line, f))
            started = strstr(line, "step ") != NULL;
        if (f)
            fclose(f);
    }
    ck_assert_msg(started, "no training step logged");
    ck_assert_int_eq(signal_children(pid, SIGTERM), 2);
    int status;
    waitpid(pid, &status, 0);
    FILE *f = fopen(at("stopped.log"), "r");
    ck_assert_ptr_nonnull(f);
    char line[4096], *resume = NULL;
    while (!resume && fgets(line, sizeof line, f))
        resume = strstr(line, "to resume: ");
    fclose(f);
    ck_assert_msg(resume != NULL, "no resume command printed");
    printf("  %s", resume);
    ck_assert_msg(strncmp(resume, "to resume: mpirun -np 2 ", 24) == 0, "resume command without mpirun -np 2");
}
END_TEST

/* 2 seeds x 2 sizes under 2 ranks, killed after its first finished run and
 * restarted: finished runs are not redone, and the summary's mean and sd are
 * those of the runs' eval.csv. */
START_TEST(test_sweep_killed_and_restarted) {
    if (skip_without_mpi())
        return;
    /* The last run waits at its end while the file `hold` exists, so that the
     * kill below always finds it unfinished, however fast the machine. */
    FILE *hold = fopen(at("hold"), "w");
    ck_assert_ptr_nonnull(hold);
    fclose(hold);
    FILE *f = fopen(at("tiny.sweep"), "w");
    ck_assert_ptr_nonnull(f);
    fprintf(f, "# two seeds x two sizes of a tiny retrieval model\n"
               "seeds 1 2\nsizes 1x16x2 2x16x2\ntasks retrieval:A=6,L=3,tasks=3,n=4\n"
               "train --steps 60 --batch 8 --eval-every 20 --eval-prompts 8 --log-every 10\n"
               "after $ICL eval --model \"$MODEL\" --prompts 8 --out \"$RUN/eval_k.csv\" && "
               "case \"$RUN\" in *_L2_d16_h2_s2) while [ -e '%s' ]; do sleep 0.05; done;; esac\n",
            at("hold"));
    fclose(f);
    char names[4][128];
    const char *group[2] = {"retrieval_A_6_L_3_tasks_3_n_4_L1_d16_h2", "retrieval_A_6_L_3_tasks_3_n_4_L2_d16_h2"};
    for (int i = 0; i < 4; i++) snprintf(names[i], sizeof names[i], "%s_s%d", group[i / 2], i % 2 + 1);
    ck_assert_int_eq(icl("", "sweep list tiny.sweep"), 0);

    /* start it, and stop it with SIGTERM as soon as one run has finished */
    pid_t pid = fork();
    ck_assert_int_ge(pid, 0);
    if (pid == 0) {
        char cmd[2 * PATH_MAX];
        snprintf(cmd, sizeof cmd, "cd %s && exec " MPIRUN "'%s' sweep run tiny.sweep --out sw > sweep1.log 2>&1", work,
                 icl_bin);
        execl("/bin/sh", "sh", "-c", cmd, (char *)NULL);
        _exit(127);
    }
    int done_at_kill = 0;
    for (int tries = 0; tries < 1200 && done_at_kill == 0; tries++) {
        struct timespec ts = {0, 50 * 1000 * 1000};
        nanosleep(&ts, NULL);
        done_at_kill = count_done("sw", 4, names);
    }
    kill(pid, SIGTERM);
    int status;
    waitpid(pid, &status, 0);
    int done_before = count_done("sw", 4, names);
    printf("  killed the sweep with %d of 4 runs finished\n", done_before);
    ck_assert_int_ge(done_before, 1);
    ck_assert_int_lt(done_before, 4);
    ck_assert_int_eq(unlink(at("hold")), 0);
    struct stat before[4];
    for (int i = 0; i < 4; i++) {
        char rel[1024];
        snprintf(rel, sizeof rel, "sw/%s/done", names[i]);
        if (stat(at(rel), &before[i]) != 0)
            before[i].st_ino = 0;
    }
    ck_assert_int_eq(icl(MPIRUN, "sweep run tiny.sweep --out sw"), 0);
    ck_assert_int_eq(count_done("sw", 4, names), 4);
    for (int i = 0; i < 4; i++) {
        char rel[1024];
        struct stat st;
        snprintf(rel, sizeof rel, "sw/%s/done", names[i]);
        ck_assert_int_eq(stat(at(rel), &st), 0);
        if (before[i].st_ino) /* finished before the kill: not redone */
            ck_assert_msg(st.st_ino == before[i].st_ino && st.st_mtim.tv_nsec == before[i].st_mtim.tv_nsec &&
                          st.st_mtim.tv_sec == before[i].st_mtim.tv_sec, "%s was redone", names[i]);
    }
    /* the runs' logs hold one history each: the redone ones were started afresh */
    for (int i = 0; i < 4; i++) {
        float l[64];
        char rel[1024];
        snprintf(rel, sizeof rel, "sw/%s/model/train_log.csv", names[i]);
        ck_assert_int_eq(read_log(rel, 1, l, 64), 6);
    }

    /* summary: per group, value and value_sd (columns 5 and 6) of eval.csv's value (column 4) */
    ck_assert_int_eq(icl("", "sweep summarize sw"), 0);
    for (int g = 0; g < 2; g++) {
        double a[512], b[512], mean[512], sd[512];
        char rel[1024];
        snprintf(rel, sizeof rel, "sw/%s/model/eval.csv", names[2 * g]);
        int n = read_column(rel, 4, a, 512);
        snprintf(rel, sizeof rel, "sw/%s/model/eval.csv", names[2 * g + 1]);
        ck_assert_int_eq(read_column(rel, 4, b, 512), n);
        snprintf(rel, sizeof rel, "sw/summary/%s/model.eval.csv", group[g]);
        ck_assert_int_eq(read_column(rel, 5, mean, 512), n);
        ck_assert_int_eq(read_column(rel, 6, sd, 512), n);
        ck_assert_int_gt(n, 10);
        double worst = 0.0;
        for (int i = 0; i < n; i++) {
            double m = 0.5 * (a[i] + b[i]), s = fabs(a[i] - b[i]) / sqrt(2.0); /* sample sd of two values */
            double e = fmax(fabs(mean[i] - m), fabs(sd[i] - s)) / (1e-9 + 1e-7 * fabs(m));
            worst = fmax(worst, e);
        }
        printf("  summary of %s vs its runs: %d rows, worst error %.3g x the tolerance\n", group[g], n, worst);
        ck_assert(worst <= 1.0);
    }
}
END_TEST

int main(int argc, char **argv) {
    (void)argc;
    char bin[PATH_MAX];
    if (tu_bin_dir(argv[0], bin, sizeof bin))
        return 1;
    snprintf(icl_bin, sizeof icl_bin, "%s/icl", bin);
    const char *dir = tu_tmpdir_create("mpi");
    if (!dir)
        return 1;
    snprintf(work, sizeof work, "%s", dir);
    if (!icl_dist_compiled())
        mpi_missing = "this build has no MPI (make MPI=1 needs mpicc)";
    else if (system("command -v mpirun > /dev/null 2>&1") != 0)
        mpi_missing = "mpirun is not on PATH";
    /* mpirun refuses root unless told; one thread per rank on a small machine */
    setenv("OMPI_ALLOW_RUN_AS_ROOT", "1", 1);
    setenv("OMPI_ALLOW_RUN_AS_ROOT_CONFIRM", "1", 1);
    setenv("OMP_NUM_THREADS", "1", 1);
    if (mpi_missing)
        printf("test_mpi: %s: only the single-process stub is tested\n", mpi_missing);
    Suite *s = suite_create("mpi");
    TCase *tc = tcase_create("mpi");
    tcase_set_timeout(tc, 300);
    tcase_add_test(tc, test_build_matches_its_configuration);
    tcase_add_test(tc, test_stub_is_one_process);
    tcase_add_test(tc, test_data_parallel_matches_one_process);
    tcase_add_test(tc, test_interrupted_run_resumes_under_mpirun);
    tcase_add_test(tc, test_sweep_killed_and_restarted);
    suite_add_tcase(s, tc);
    int rc = tu_run(s);
    tu_tmpdir_remove();
    return rc;
}
