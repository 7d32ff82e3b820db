/* icl sweep: independent trainings over seeds x model sizes x task families,
 * spread over MPI ranks, one process in turn, or one per Slurm array task;
 * and the mean ± sd of every run's CSV files (docs/scaling.md). */
#define _XOPEN_SOURCE 700 /* nftw */
#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <ftw.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>
#include "icl/dist.h"
#include "icl_cli.h"

/* snprintf for text that may be cut short (messages, names already bounded
 * by their sources); 1 if it was. */
static int put(char *dst, size_t cap, const char *format, ...) __attribute__((format(printf, 3, 4)));
static int put(char *dst, size_t cap, const char *format, ...) {
    va_list ap;
    va_start(ap, format);
    int n = vsnprintf(dst, cap, format, ap);
    va_end(ap);
    return n < 0 || (size_t)n >= cap;
}

#define SWEEP_MAX_VALUES 64
#define SWEEP_MAX_ARGS 256
#define SWEEP_MAX_AFTER 32

/* A sweep description: the three axes, the options every training shares,
 * and shell commands run after each training. */
typedef struct {
    char *seeds[SWEEP_MAX_VALUES], *sizes[SWEEP_MAX_VALUES], *tasks[SWEEP_MAX_VALUES];
    int n_seeds, n_sizes, n_tasks;
    char *train[SWEEP_MAX_ARGS];
    int n_train;
    char *after[SWEEP_MAX_AFTER];
    int n_after;
} sweep_desc;

/* One run of the sweep. */
typedef struct {
    const char *task, *seed;
    int layers, d_model, heads; /* 0: the training options decide */
    char name[512], group[512];
} sweep_run;

static void sweep_free(sweep_desc *d) {
    for (int i = 0; i < d->n_seeds; i++) free(d->seeds[i]);
    for (int i = 0; i < d->n_sizes; i++) free(d->sizes[i]);
    for (int i = 0; i < d->n_tasks; i++) free(d->tasks[i]);
    for (int i = 0; i < d->n_train; i++) free(d->train[i]);
    for (int i = 0; i < d->n_after; i++) free(d->after[i]);
    memset(d, 0, sizeof *d);
}

/* Append the whitespace-separated words of `text` to list (n of them, at most max). */
static int add_words(char **list, int *n, int max, const char *text, const char *what) {
    const char *p = text;
    for (;;) {
        p += strspn(p, " \t\r\n");
        size_t len = strcspn(p, " \t\r\n");
        if (len == 0)
            return 0;
        if (*n == max) {
            fprintf(stderr, "icl sweep: more than %d %s\n", max, what);
            return 1;
        }
        if (!(list[(*n)++] = strndup(p, len))) {
            fprintf(stderr, "icl sweep: out of memory\n");
            return 1;
        }
        p += len;
    }
}

/* Lines "seeds 1 2 3", "sizes 2x32 4x64x8", "tasks retrieval", "train <options>",
 * "after <shell command>"; # starts a comment line. */
static int sweep_read(sweep_desc *d, const char *path) {
    FILE *f = fopen(path, "r");
    if (!f) {
        fprintf(stderr, "icl sweep: cannot open %s: %s\n", path, strerror(errno));
        return 1;
    }
    char line[8192];
    int lineno = 0, rc = 0;
    while (rc == 0 && fgets(line, sizeof line, f)) {
        lineno++;
        char *p = line + strspn(line, " \t");
        if (*p == '#' || *p == '\n' || *p == '\0')
            continue;
        size_t klen = strcspn(p, " \t\r\n");
        char *rest = p + klen;
        rest += strspn(rest, " \t");
        rest[strcspn(rest, "\r\n")] = '\0';
        if (klen == 5 && strncmp(p, "seeds", 5) == 0)
            rc = add_words(d->seeds, &d->n_seeds, SWEEP_MAX_VALUES, rest, "seeds");
        else if (klen == 5 && strncmp(p, "sizes", 5) == 0)
            rc = add_words(d->sizes, &d->n_sizes, SWEEP_MAX_VALUES, rest, "sizes");
        else if (klen == 5 && strncmp(p, "tasks", 5) == 0)
            rc = add_words(d->tasks, &d->n_tasks, SWEEP_MAX_VALUES, rest, "tasks");
        else if (klen == 5 && strncmp(p, "train", 5) == 0)
            rc = add_words(d->train, &d->n_train, SWEEP_MAX_ARGS, rest, "training options");
        else if (klen == 5 && strncmp(p, "after", 5) == 0) {
            if (d->n_after == SWEEP_MAX_AFTER || !(d->after[d->n_after++] = strdup(rest))) {
                fprintf(stderr, "icl sweep: %s:%d: too many after lines\n", path, lineno);
                rc = 1;
            }
        } else {
            fprintf(stderr, "icl sweep: %s:%d: unknown key \"%.*s\" (seeds, sizes, tasks, train, after)\n", path,
                    lineno, (int)klen, p);
            rc = 1;
        }
    }
    fclose(f);
    return rc;
}

static int sweep_count(const sweep_desc *d) {
    return d->n_tasks * (d->n_sizes ? d->n_sizes : 1) * d->n_seeds;
}

/* Letters, digits and ._- stay; anything else in a task spec becomes _. */
static void append_clean(char *dst, size_t cap, const char *src) {
    size_t n = strlen(dst);
    for (; *src && n + 1 < cap; src++)
        dst[n++] = (isalnum((unsigned char)*src) || strchr("._-", *src)) ? *src : '_';
    dst[n] = '\0';
}

/* Run i: seeds vary fastest, then sizes, then tasks. Its name is its group
 * (task and size) and _s<seed>. */
static int sweep_run_at(const sweep_desc *d, int i, sweep_run *r) {
    int ns = d->n_seeds, nz = d->n_sizes ? d->n_sizes : 1;
    memset(r, 0, sizeof *r);
    r->seed = d->seeds[i % ns];
    r->task = d->tasks[i / (ns * nz)];
    append_clean(r->group, sizeof r->group, r->task);
    if (d->n_sizes) {
        const char *z = d->sizes[(i / ns) % nz];
        int used = 0;
        if (sscanf(z, "%dx%d%n", &r->layers, &r->d_model, &used) < 2 ||
            (z[used] != '\0' && sscanf(z + used, "x%d", &r->heads) != 1) || r->layers < 1 || r->d_model < 1) {
            fprintf(stderr, "icl sweep: size \"%s\" is not LAYERSxD_MODEL or LAYERSxD_MODELxHEADS\n", z);
            return 1;
        }
        char size[64];
        snprintf(size, sizeof size, "_L%d_d%d", r->layers, r->d_model);
        if (r->heads > 0)
            snprintf(size + strlen(size), sizeof size - strlen(size), "_h%d", r->heads);
        append_clean(r->group, sizeof r->group, size);
    }
    put(r->name, sizeof r->name, "%s_s", r->group);
    append_clean(r->name, sizeof r->name, r->seed);
    return 0;
}

static int remove_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw) {
    (void)st;
    (void)flag;
    (void)ftw;
    return remove(path);
}

/* The marker, written last and atomically: a run with it is finished. */
static int write_marker(const char *run_dir, const sweep_run *r, const char *command) {
    char tmp[4200], path[4200];
    snprintf(tmp, sizeof tmp, "%s/done.tmp", run_dir);
    snprintf(path, sizeof path, "%s/done", run_dir);
    FILE *f = fopen(tmp, "w");
    if (!f)
        return 1;
    fprintf(f, "group %s\ntask %s\nseed %s\ncommand %s\n", r->group, r->task, r->seed, command);
    int bad = fflush(f) != 0 || fsync(fileno(f)) != 0;
    bad |= fclose(f) != 0;
    return bad || rename(tmp, path) != 0;
}

/* Train run r into dir/<name>/model, then the after commands; stdout and
 * stderr go to dir/<name>/run.log. Returns 0 when it finished. */
static int sweep_execute(const sweep_desc *d, const sweep_run *r, const char *dir) {
    char run_dir[4096], model_dir[4200], log[4200], model[4300], num[3][16];
    snprintf(run_dir, sizeof run_dir, "%s/%s", dir, r->name);
    snprintf(model_dir, sizeof model_dir, "%s/model", run_dir);
    snprintf(log, sizeof log, "%s/run.log", run_dir);
    snprintf(model, sizeof model, "%s/model.safetensors", model_dir);
    struct stat st;
    /* an unfinished run starts again from nothing: its logs would otherwise hold two histories */
    if (stat(run_dir, &st) == 0 && nftw(run_dir, remove_entry, 16, FTW_DEPTH | FTW_PHYS) != 0) {
        fprintf(stderr, "icl sweep: cannot clear the unfinished run %s: %s\n", run_dir, strerror(errno));
        return 1;
    }
    if (cli_make_dir(run_dir))
        return 1;
    char *argv[SWEEP_MAX_ARGS + 20];
    int argc = 0;
    argv[argc++] = "icl";
    argv[argc++] = "train";
    for (int i = 0; i < d->n_train; i++) argv[argc++] = d->train[i];
    argv[argc++] = "--task";
    argv[argc++] = (char *)r->task;
    const char *names[3] = {"--layers", "--d-model", "--heads"};
    const int values[3] = {r->layers, r->d_model, r->heads};
    for (int i = 0; i < 3; i++)
        if (values[i] > 0) {
            snprintf(num[i], sizeof num[i], "%d", values[i]);
            argv[argc++] = (char *)names[i];
            argv[argc++] = num[i];
        }
    argv[argc++] = "--seed";
    argv[argc++] = (char *)r->seed;
    argv[argc++] = "--out";
    argv[argc++] = model_dir;
    argv[argc++] = "--no-mpi";
    argv[argc] = NULL;
    char command[8192] = "";
    for (int i = 0; i < argc; i++)
        snprintf(command + strlen(command), sizeof command - strlen(command), "%s%s", i ? " " : "", argv[i]);

    fflush(stdout);
    fflush(stderr);
    FILE *lf = fopen(log, "w");
    if (!lf) {
        fprintf(stderr, "icl sweep: cannot write %s: %s\n", log, strerror(errno));
        return 1;
    }
    int saved_out = dup(1), saved_err = dup(2);
    dup2(fileno(lf), 1);
    dup2(fileno(lf), 2);
    fclose(lf);
    printf("+ %s\n", command);
    fflush(stdout);
    int rc = cmd_train(argc, argv);
    char self[4096];
    ssize_t n = readlink("/proc/self/exe", self, sizeof self - 1);
    self[n > 0 ? n : 0] = '\0';
    setenv("ICL", n > 0 ? self : "icl", 1);
    setenv("RUN", run_dir, 1);
    setenv("MODEL", model, 1);
    setenv("SEED", r->seed, 1);
    setenv("TASK", r->task, 1);
    for (int i = 0; rc == 0 && i < d->n_after; i++) {
        printf("+ %s\n", d->after[i]);
        fflush(stdout);
        int s = system(d->after[i]);
        rc = (s == -1 || !WIFEXITED(s) || WEXITSTATUS(s) != 0) ? 1 : 0;
        if (rc)
            printf("FAILED: %s\n", d->after[i]);
    }
    fflush(stdout);
    fflush(stderr);
    dup2(saved_out, 1);
    dup2(saved_err, 2);
    close(saved_out);
    close(saved_err);
    if (rc == 0 && write_marker(run_dir, r, command)) {
        fprintf(stderr, "icl sweep: cannot write the marker in %s\n", run_dir);
        return 1;
    }
    return rc;
}

/* Options shared by run and list: the description file and the axes. */
typedef struct {
    const char *seeds, *sizes, *tasks, *train, *out;
    long index;
} sweep_opts;

static int sweep_load(sweep_desc *d, const char *file, const sweep_opts *o) {
    if (file && sweep_read(d, file))
        return 1;
    /* command-line axes replace the file's */
    struct {
        const char *text;
        char **list;
        int *n, max;
        const char *what;
    } axes[4] = {{o->seeds, d->seeds, &d->n_seeds, SWEEP_MAX_VALUES, "seeds"},
                 {o->sizes, d->sizes, &d->n_sizes, SWEEP_MAX_VALUES, "sizes"},
                 {o->tasks, d->tasks, &d->n_tasks, SWEEP_MAX_VALUES, "tasks"},
                 {o->train, d->train, &d->n_train, SWEEP_MAX_ARGS, "training options"}};
    for (int a = 0; a < 4; a++) {
        if (!axes[a].text)
            continue;
        for (int i = 0; i < *axes[a].n; i++) free(axes[a].list[i]);
        *axes[a].n = 0;
        if (add_words(axes[a].list, axes[a].n, axes[a].max, axes[a].text, axes[a].what))
            return 1;
    }
    if (d->n_seeds == 0 && add_words(d->seeds, &d->n_seeds, SWEEP_MAX_VALUES, "1", "seeds"))
        return 1;
    if (d->n_tasks == 0) {
        fprintf(stderr, "icl sweep: no tasks (a \"tasks\" line or --tasks)\n");
        return 1;
    }
    sweep_run r;
    for (int i = 0; i < sweep_count(d); i++)
        if (sweep_run_at(d, i, &r))
            return 1;
    return 0;
}

static void sweep_mpi_finalize(void) { icl_dist_finalize(); }

/* Join the MPI job when a launcher started this process (NULL: alone). */
static int sweep_dist(icl_dist **dist, long index) {
    *dist = NULL;
    if (!icl_dist_launched() || index >= 0)
        return 0;
    if (!icl_dist_compiled()) {
        fprintf(stderr, "icl sweep: started by an MPI launcher, but this icl was built without MPI (make MPI=1), "
                        "so every process would run every run; give each one its run with --index\n");
        return 1;
    }
    icl_status s = icl_dist_init(NULL, NULL);
    if (s == ICL_OK && atexit(sweep_mpi_finalize) != 0)
        s = ICL_ERR_STATE;
    if (s != ICL_OK || (s = icl_dist_create(dist)) != ICL_OK)
        return cli_fail("MPI", s);
    return 0;
}

static int sweep_cmd_run(int argc, char **argv, int list_only) {
    sweep_opts o = {.index = -1};
    cli_option opts[] = {
        {"--seeds", OPT_STRING, &o.seeds, "seeds, space-separated, e.g. \"1 2 3\" [the file's, else 1]"},
        {"--sizes", OPT_STRING, &o.sizes, "model sizes LAYERSxD_MODEL[xHEADS], space-separated [the file's]"},
        {"--tasks", OPT_STRING, &o.tasks, "task families or toy tasks, space-separated [the file's]"},
        {"--train", OPT_STRING, &o.train, "options of every icl train, space-separated [the file's]"},
        {"--out", OPT_STRING, &o.out, "directory of the runs, one folder each"},
        {"--index", OPT_LONG, &o.index, "run only this run (0-based; e.g. $SLURM_ARRAY_TASK_ID) [all]"},
    };
    const char *usage = list_only ? "usage: icl sweep list [FILE] [options]\n\nPrint the runs of a sweep, one a line: "
                                    "index, name, icl train options."
                                  : "usage: icl sweep run [FILE] --out DIR [options]\n\nRun every training of a sweep "
                                    "not finished yet; under mpirun each rank runs every N-th.";
    const char *file = NULL;
    int n_pos = 0;
    int rc = cli_parse(argc, argv, 3, opts, sizeof opts / sizeof opts[0], usage, &file, 1, &n_pos);
    if (rc)
        return rc < 0 ? 2 : 0;
    sweep_desc d = {0};
    if (sweep_load(&d, n_pos ? file : NULL, &o)) {
        sweep_free(&d);
        return 2;
    }
    int n = sweep_count(&d);
    if (list_only) {
        for (int i = 0; i < n; i++) {
            sweep_run r;
            sweep_run_at(&d, i, &r);
            printf("%d %s --task %s --seed %s", i, r.name, r.task, r.seed);
            if (r.layers)
                printf(" --layers %d --d-model %d", r.layers, r.d_model);
            if (r.heads)
                printf(" --heads %d", r.heads);
            printf("\n");
        }
        sweep_free(&d);
        return 0;
    }
    if (!o.out || o.index < -1 || o.index >= n) {
        fprintf(stderr, "icl sweep run: --out is required and --index must be in [0, %d)\n", n);
        sweep_free(&d);
        return 2;
    }
    icl_dist *dist;
    if (cli_make_dir(o.out) || sweep_dist(&dist, o.index)) {
        sweep_free(&d);
        return 1;
    }
    int rank = icl_dist_rank(dist), size = icl_dist_size(dist), failed = 0;
    for (int i = 0; i < n; i++) {
        if (o.index >= 0 ? i != o.index : i % size != rank)
            continue;
        sweep_run r;
        sweep_run_at(&d, i, &r);
        char marker[4700];
        struct stat st;
        snprintf(marker, sizeof marker, "%s/%s/done", o.out, r.name);
        if (stat(marker, &st) == 0) {
            printf("sweep: run %d/%d %s: finished before, skipped\n", i, n, r.name);
            continue;
        }
        double t0 = cli_now();
        int bad = sweep_execute(&d, &r, o.out);
        failed += bad != 0;
        printf("sweep: run %d/%d %s (rank %d): %s in %.1f s\n", i, n, r.name, rank,
               bad ? "FAILED, see run.log," : "finished", cli_now() - t0);
        fflush(stdout);
    }
    /* every rank waits, so that mpirun returns when the whole sweep is done */
    icl_status s = icl_dist_barrier(dist);
    icl_dist_free(dist);
    sweep_free(&d);
    return failed || s != ICL_OK ? 1 : 0;
}

/* ---- summarize: mean ± sd over the seeds of each group ---- */

typedef struct {
    char **cells; /* rows x cols, row 0 the header */
    int rows, cols;
    char *text;
} csv_table;

static void csv_free(csv_table *t) {
    free(t->cells);
    free(t->text);
    memset(t, 0, sizeof *t);
}

/* A whole CSV file (no quoted fields: the tool never writes any); every row
 * must have the header's number of fields. */
static int csv_read(const char *path, csv_table *t) {
    memset(t, 0, sizeof *t);
    FILE *f = fopen(path, "rb");
    if (!f)
        return 1;
    fseek(f, 0, SEEK_END);
    long len = ftell(f);
    fseek(f, 0, SEEK_SET);
    t->text = malloc((size_t)len + 1);
    if (!t->text || fread(t->text, 1, (size_t)len, f) != (size_t)len) {
        fclose(f);
        csv_free(t);
        return 1;
    }
    fclose(f);
    t->text[len] = '\0';
    size_t cap = 0, n = 0;
    for (char *line = t->text; *line;) {
        char *end = line + strcspn(line, "\n");
        int more = *end == '\n';
        *end = '\0';
        if (end > line && end[-1] == '\r')
            end[-1] = '\0';
        int cols = 1;
        for (char *p = line; *p; p++) cols += *p == ',';
        if (t->rows == 0)
            t->cols = cols;
        if (*line && cols != t->cols) {
            csv_free(t);
            return 1;
        }
        if (*line) {
            if (n + (size_t)cols > cap) {
                cap = 2 * cap + (size_t)cols + 64;
                char **c = realloc(t->cells, cap * sizeof *c);
                if (!c) {
                    csv_free(t);
                    return 1;
                }
                t->cells = c;
            }
            for (char *p = line;; p++) {
                char *comma = strchr(p, ',');
                t->cells[n++] = p;
                if (!comma)
                    break;
                *comma = '\0';
                p = comma;
            }
            t->rows++;
        }
        line = more ? end + 1 : end;
    }
    return t->rows > 0 ? 0 : 1;
}

static int is_number(const char *s, double *v) {
    char *end;
    if (!*s)
        return 0;
    *v = strtod(s, &end);
    return *end == '\0';
}

/* Mean and sample standard deviation (n - 1; 0 for one run). */
static void mean_sd(const double *x, int n, double *mean, double *sd) {
    double m = 0.0, q = 0.0;
    for (int i = 0; i < n; i++) m += x[i];
    m /= n;
    for (int i = 0; i < n; i++) q += (x[i] - m) * (x[i] - m);
    *mean = m;
    *sd = n > 1 ? sqrt(q / (n - 1)) : 0.0;
}

/* One table over the runs: a column numeric in every run becomes "col,col_sd"
 * (mean and sd over the runs), any other column must agree across runs and
 * is copied. Written to out_csv; appended to md as "mean ± sd" cells when
 * short. Returns 1 (with why) when the runs' tables do not line up. */
static int summarize_table(csv_table *t, int n_runs, const char *out_csv, FILE *md, const char *title,
                           char *why, size_t why_size) {
    int rows = t[0].rows, cols = t[0].cols;
    for (int r = 1; r < n_runs; r++)
        if (t[r].rows != rows || t[r].cols != cols) {
            snprintf(why, why_size, "runs have different numbers of rows or columns");
            return 1;
        }
    unsigned char *numeric = malloc((size_t)cols);
    double *x = malloc((size_t)n_runs * sizeof *x);
    if (!numeric || !x) {
        free(numeric);
        free(x);
        snprintf(why, why_size, "out of memory");
        return 1;
    }
    for (int c = 0; c < cols; c++) {
        numeric[c] = rows > 1;
        for (int i = 1; i < rows && numeric[c]; i++)
            for (int r = 0; r < n_runs && numeric[c]; r++) numeric[c] = is_number(t[r].cells[i * cols + c], &x[r]);
    }
    int bad = 0;
    for (int i = 0; i < rows && !bad; i++)
        for (int c = 0; c < cols && !bad; c++)
            if (!numeric[c] || i == 0)
                for (int r = 1; r < n_runs && !bad; r++)
                    bad = strcmp(t[r].cells[i * cols + c], t[0].cells[i * cols + c]) != 0;
    if (bad) {
        snprintf(why, why_size, "the runs' rows do not line up (their text columns differ)");
        free(numeric);
        free(x);
        return 1;
    }
    char tmp[4200];
    put(tmp, sizeof tmp, "%s.tmp", out_csv);
    FILE *f = fopen(tmp, "w");
    if (!f) {
        put(why, why_size, "cannot write %s: %s", tmp, strerror(errno));
        free(numeric);
        free(x);
        return 1;
    }
    int write_md = md && rows <= 101;
    if (write_md)
        fprintf(md, "\n### %s (%d runs)\n\n|", title, n_runs);
    for (int i = 0; i < rows; i++) {
        for (int c = 0; c < cols; c++) {
            const char *cell = t[0].cells[i * cols + c];
            if (c)
                fputc(',', f);
            if (i == 0) {
                fprintf(f, numeric[c] ? "%s,%s_sd" : "%s", cell, cell);
                if (write_md)
                    fprintf(md, " %s |", cell);
                continue;
            }
            if (!numeric[c]) {
                fputs(cell, f);
                if (write_md)
                    fprintf(md, " %s |", cell);
                continue;
            }
            double mean, sd;
            for (int r = 0; r < n_runs; r++) is_number(t[r].cells[i * cols + c], &x[r]);
            mean_sd(x, n_runs, &mean, &sd);
            fprintf(f, "%.9g,%.9g", mean, sd);
            if (write_md)
                fprintf(md, sd > 0 ? " %.4g ± %.2g |" : " %.4g |", mean, sd);
        }
        fputc('\n', f);
        if (write_md) {
            fputs(i + 1 < rows ? "\n|" : "\n", md);
            if (i == 0) {
                for (int c = 0; c < cols; c++) fputs("---|", md);
                fputs("\n|", md);
            }
        }
    }
    free(numeric);
    free(x);
    if (fclose(f) != 0 || rename(tmp, out_csv) != 0) {
        put(why, why_size, "cannot write %s", out_csv);
        return 1;
    }
    return 0;
}

#define SWEEP_MAX_RUNS 4096
#define SWEEP_MAX_FILES 256

typedef struct {
    char name[256], group[512];
} finished_run;

static int by_name(const void *a, const void *b) {
    return strcmp(((const finished_run *)a)->name, ((const finished_run *)b)->name);
}

static int str_cmp(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

/* Every *.csv under dir/sub (checkpoints/ left out), as paths relative to dir. */
static void list_csv(const char *dir, const char *sub, char **files, int *n) {
    char path[4200];
    snprintf(path, sizeof path, "%s%s%s", dir, *sub ? "/" : "", sub);
    DIR *dp = opendir(path);
    if (!dp)
        return;
    struct dirent *e;
    while ((e = readdir(dp)) && *n < SWEEP_MAX_FILES) {
        if (e->d_name[0] == '.' || strcmp(e->d_name, "checkpoints") == 0)
            continue;
        char rel[1024], full[4600];
        snprintf(rel, sizeof rel, "%s%s%s", sub, *sub ? "/" : "", e->d_name);
        snprintf(full, sizeof full, "%s/%s", dir, rel);
        struct stat st;
        if (stat(full, &st) != 0)
            continue;
        size_t len = strlen(e->d_name);
        if (S_ISDIR(st.st_mode))
            list_csv(dir, rel, files, n);
        else if (len > 4 && strcmp(e->d_name + len - 4, ".csv") == 0)
            files[(*n)++] = strdup(rel);
    }
    closedir(dp);
}

static int sweep_cmd_summarize(int argc, char **argv) {
    const char *out = NULL, *dir = NULL;
    int n_pos = 0;
    cli_option opts[] = {{"--out", OPT_STRING, &out, "directory of the tables [DIR/summary]"}};
    int rc = cli_parse(argc, argv, 3, opts, 1,
                       "usage: icl sweep summarize DIR [--out OUT]\n\nMean ± sd over the seeds of every finished "
                       "run's CSV files, per task and size: OUT/<group>/<file>.csv (numeric columns become col, "
                       "col_sd) and OUT/summary.md.",
                       &dir, 1, &n_pos);
    if (rc)
        return rc < 0 ? 2 : 0;
    if (!n_pos) {
        fprintf(stderr, "icl sweep summarize: give the sweep's directory\n");
        return 2;
    }
    char out_dir[4096];
    snprintf(out_dir, sizeof out_dir, "%s", out ? out : "");
    if (!out)
        snprintf(out_dir, sizeof out_dir, "%s/summary", dir);
    finished_run *runs = calloc(SWEEP_MAX_RUNS, sizeof *runs);
    DIR *dp = opendir(dir);
    if (!runs || !dp) {
        fprintf(stderr, "icl sweep summarize: cannot read %s\n", dir);
        free(runs);
        if (dp)
            closedir(dp);
        return 1;
    }
    int n_runs = 0;
    struct dirent *e;
    while ((e = readdir(dp)) && n_runs < SWEEP_MAX_RUNS) {
        char marker[4600], line[1024];
        snprintf(marker, sizeof marker, "%s/%s/done", dir, e->d_name);
        FILE *f = e->d_name[0] != '.' ? fopen(marker, "r") : NULL;
        if (!f)
            continue;
        if (fgets(line, sizeof line, f) && strncmp(line, "group ", 6) == 0) {
            line[strcspn(line, "\n")] = '\0';
            snprintf(runs[n_runs].name, sizeof runs[n_runs].name, "%s", e->d_name);
            put(runs[n_runs].group, sizeof runs[n_runs].group, "%s", line + 6);
            n_runs++;
        }
        fclose(f);
    }
    closedir(dp);
    qsort(runs, (size_t)n_runs, sizeof *runs, by_name);
    char md_path[4200], md_tmp[4300];
    snprintf(md_path, sizeof md_path, "%s/summary.md", out_dir);
    snprintf(md_tmp, sizeof md_tmp, "%s.tmp", md_path);
    FILE *md = NULL;
    if (n_runs == 0 || cli_make_dir(out_dir) || !(md = fopen(md_tmp, "w"))) {
        fprintf(stderr, "icl sweep summarize: %s\n", n_runs ? "cannot write the summary" : "no finished run");
        free(runs);
        return 1;
    }
    fprintf(md, "# Sweep %s: mean ± sample sd over the runs of each group\n", dir);
    int tables = 0, skipped = 0;
    for (int g = 0; g < n_runs;) {
        int end = g;
        while (end < n_runs && strcmp(runs[end].group, runs[g].group) == 0) end++;
        int n = end - g;
        fprintf(md, "\n## %s: %d runs (", runs[g].group, n);
        for (int r = g; r < end; r++) fprintf(md, "%s%s", r > g ? ", " : "", runs[r].name);
        fprintf(md, ")\n");
        char first[4400], group_dir[4400];
        snprintf(first, sizeof first, "%s/%s", dir, runs[g].name);
        put(group_dir, sizeof group_dir, "%s/%s", out_dir, runs[g].group);
        char *files[SWEEP_MAX_FILES];
        int n_files = 0;
        list_csv(first, "", files, &n_files);
        qsort(files, (size_t)n_files, sizeof *files, str_cmp);
        if (n_files && cli_make_dir(group_dir))
            n_files = 0;
        for (int fi = 0; fi < n_files; fi++) {
            csv_table *t = calloc((size_t)n, sizeof *t);
            char why[512] = "";
            int ok = t != NULL;
            for (int r = 0; ok && r < n; r++) {
                char path[4800];
                snprintf(path, sizeof path, "%s/%s/%s", dir, runs[g + r].name, files[fi]);
                if (csv_read(path, &t[r])) {
                    put(why, sizeof why, "%s is missing or not a CSV table", path);
                    ok = 0;
                }
            }
            char flat[1024], out_csv[5600];
            snprintf(flat, sizeof flat, "%s", files[fi]);
            for (char *p = flat; *p; p++)
                if (*p == '/')
                    *p = '.';
            put(out_csv, sizeof out_csv, "%s/%s", group_dir, flat);
            if (ok && summarize_table(t, n, out_csv, md, files[fi], why, sizeof why) == 0)
                tables++;
            else {
                skipped++;
                fprintf(md, "\n%s: left out: %s\n", files[fi], why);
                fprintf(stderr, "icl sweep summarize: %s/%s: left out: %s\n", runs[g].group, files[fi], why);
            }
            for (int r = 0; t && r < n; r++) csv_free(&t[r]);
            free(t);
            free(files[fi]);
        }
        g = end;
    }
    int bad = fclose(md) != 0 || rename(md_tmp, md_path) != 0;
    printf("sweep summarize: %d finished runs, %d tables (%d left out) -> %s\n", n_runs, tables, skipped, out_dir);
    free(runs);
    return bad ? 1 : 0;
}

int cmd_sweep(int argc, char **argv) {
    const char *usage = "usage: icl sweep run [FILE] --out DIR [options]   train every run not finished yet\n"
                        "       icl sweep list [FILE] [options]            the runs, with their indices\n"
                        "       icl sweep summarize DIR                    mean ± sd tables over the seeds\n"
                        "(icl sweep <command> --help for its options; docs/scaling.md)\n";
    if (argc < 3 || strcmp(argv[2], "--help") == 0 || strcmp(argv[2], "-h") == 0) {
        fputs(usage, argc < 3 ? stderr : stdout);
        return argc < 3 ? 2 : 0;
    }
    if (strcmp(argv[2], "run") == 0)
        return sweep_cmd_run(argc, argv, 0);
    if (strcmp(argv[2], "list") == 0)
        return sweep_cmd_run(argc, argv, 1);
    if (strcmp(argv[2], "summarize") == 0)
        return sweep_cmd_summarize(argc, argv);
    fprintf(stderr, "icl sweep: unknown command \"%s\"\n%s", argv[2], usage);
    return 2;
}
