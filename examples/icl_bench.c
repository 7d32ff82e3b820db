/* icl bench: training throughput (forward + backward + AdamW) of fixed configs
 * and of the real workloads (the demo's retrieval model, the Han basis-mixture
 * model), how much of the machine's measured matrix-multiply peak it reaches,
 * and the peak resident memory of each row.
 *
 * Every row runs in its own forked process, so that its peak RSS is its own
 * and not the largest row's so far; the parent runs no OpenMP region (a
 * forked child could not use libgomp's threads) and initialises no CUDA. */
#include <cblas.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>
#include "icl_cli.h"

typedef struct {
    const char *name;
    int n_layer, d_model, n_head, B;
    /* synthetic rows: random tokens over V at T positions, every position scored */
    int T, V;
    /* task rows: one batch of this family at its default prompt length, reused every step */
    const char *task;
} bench_config;

static const bench_config configs[] = {
    {"tiny", 2, 64, 4, 32, 64, 32, NULL},
    {"small", 4, 128, 4, 32, 128, 64, NULL},
    {"medium", 6, 256, 8, 32, 128, 64, NULL},
    /* scripts/demo.sh's model: token mode, V 19, T 81 */
    {"retrieval", 3, 64, 4, 32, 0, 0, "retrieval"},
    /* docs/tasks.md's 8-layer Han model: vector mode, d_in 9, d_out 1, T 26 */
    {"han", 8, 64, 4, 64, 0, 0, "basis_mixture_small"},
};
enum { N_CONFIGS = sizeof configs / sizeof configs[0] };

/* Model FLOPs of one training token: 6 per weight of every matrix product
 * (forward 2, backward 4) plus 12*L*T*C for the attention products
 * (q.k and probs.v over the full T x T square, as PaLM's appendix counts them). */
static double flops_per_token(const icl_model *m, int T) {
    const icl_config *c = icl_model_config(m);
    double matmul_weights = 0;
    for (int i = 0; i < icl_model_num_tensors(m); i++) {
        const icl_param_info *t = icl_model_tensor(m, i);
        if (t->ndim == 2 && strcmp(t->name, "pos_embed.weight") != 0 && strcmp(t->name, "tok_embed.weight") != 0)
            matmul_weights += (double)t->numel;
    }
    if (c->mode == ICL_MODE_TOKEN && c->tie_embeddings)
        matmul_weights += (double)c->vocab_size * c->d_model; /* the tied head is a matmul too */
    return 6.0 * matmul_weights + 12.0 * c->n_layer * T * c->d_model;
}

/* Best sgemm rate over a few square products, as the machine's peak. */
static double sgemm_peak_gflops(void) {
    const int n = 1536;
    float *a = calloc((size_t)n * n, sizeof(float)), *b = calloc((size_t)n * n, sizeof(float)),
          *c = calloc((size_t)n * n, sizeof(float));
    double best = 0;
    if (!a || !b || !c)
        goto done;
    for (size_t i = 0; i < (size_t)n * n; i++) a[i] = b[i] = (float)(i % 7) * 0.1f;
    for (int rep = 0; rep < 4; rep++) {
        double t0 = cli_now();
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, n, n, n, 1.0f, a, n, b, n, 0.0f, c, n);
        double g = 2.0 * n * n * (double)n / (cli_now() - t0) / 1e9;
        if (g > best) best = g;
    }
done:
    free(a);
    free(b);
    free(c);
    return best;
}

typedef struct {
    icl_backend_kind backend;
    double seconds;
    long steps; /* > 0: exactly this many timed steps instead of `seconds` */
    double peak;
    int graphs;
    int inference; /* also time the forward pass alone */
} bench_options;

static void print_header(void) {
    printf("| config    | back | params    | B  | T   | step ms  | tokens/s   | GFLOP/s | %% peak | peak RSS MB "
           "| fwd tokens/s |\n");
    printf("|-----------|------|-----------|----|-----|----------|------------|---------|--------|-------------"
           "|--------------|\n");
    fflush(stdout);
}

/* The data of a row: one batch reused every step. */
typedef struct {
    icl_task_family *family;
    icl_task_batch tb;
    int32_t *tokens, *targets;
    icl_batch batch;
} row_data;

static void row_data_free(row_data *d) {
    icl_task_batch_free(&d->tb);
    icl_task_family_free(d->family);
    free(d->tokens);
    free(d->targets);
}

/* The config and batch of a row. Task rows build the model as icl train does:
 * the default config with the family's mode and widths, and a context of at
 * least the prompt length. */
static icl_status row_setup(const bench_config *bc, icl_config *c, row_data *d) {
    *c = icl_config_default();
    c->n_layer = bc->n_layer;
    c->d_model = bc->d_model;
    c->n_head = bc->n_head;
    icl_rng r;
    icl_rng_init(&r, 1, "bench");
    icl_status s;
    if (bc->task) {
        icl_task_batch_options opt = icl_task_batch_options_default();
        opt.B = bc->B;
        if ((s = icl_task_family_create(&d->family, bc->task)) != ICL_OK ||
            (s = icl_task_family_fill_config(d->family, c)) != ICL_OK ||
            (s = icl_task_batch_generate(d->family, &opt, &r, &d->tb)) != ICL_OK)
            return s;
        if (c->ctx < d->tb.T)
            c->ctx = d->tb.T;
        d->batch = d->tb.batch;
        return ICL_OK;
    }
    c->ctx = bc->T;
    c->vocab_size = bc->V;
    size_t N = (size_t)bc->B * bc->T;
    d->tokens = malloc(N * sizeof *d->tokens);
    d->targets = malloc(N * sizeof *d->targets);
    if (!d->tokens || !d->targets) {
        fprintf(stderr, "icl bench: out of memory\n");
        return ICL_ERR_NOMEM;
    }
    for (size_t i = 0; i < N; i++) {
        d->tokens[i] = (int32_t)icl_rng_below(&r, (uint32_t)bc->V);
        d->targets[i] = (int32_t)icl_rng_below(&r, (uint32_t)bc->V);
    }
    d->batch = (icl_batch){bc->B, bc->T, d->tokens, NULL, d->targets, NULL, NULL};
    return ICL_OK;
}

/* Whether to time another step after `done` since t0: exactly --steps, or
 * --seconds and at least 3. */
static int keep_timing(const bench_options *bo, long done, double t0) {
    return bo->steps > 0 ? done < bo->steps : cli_now() - t0 < bo->seconds || done < 3;
}

/* One row, in the calling (forked) process; prints the header first when asked. */
static int bench_row(const bench_config *bc, const bench_options *bo, int header) {
    icl_config c;
    row_data d;
    memset(&d, 0, sizeof d);
    icl_model *m = NULL;
    icl_optimizer *o = NULL;
    icl_optim_config oc = icl_optim_config_default();
    icl_status s = row_setup(bc, &c, &d);
    if (s == ICL_OK)
        s = icl_model_create(&m, &c, bo->backend, 1);
    if (s == ICL_OK)
        s = icl_optimizer_create(&o, m, &oc);
    if (s == ICL_OK)
        icl_optimizer_set_graphs(o, bo->graphs);
    /* on the GPU: the first step sizes the buffers, the second records the step graph */
    for (int warm = 0; warm < 2 && s == ICL_OK; warm++)
        s = icl_train_step(m, o, &d.batch, 1, NULL);
    long steps = 0;
    double t0 = cli_now();
    while (s == ICL_OK && keep_timing(bo, steps, t0)) {
        s = icl_train_step(m, o, &d.batch, 1, NULL);
        steps++;
    }
    double dt = cli_now() - t0;
    /* Inference: the forward pass alone (with the loss), as eval and the probes run it. */
    long passes = 0;
    double t1 = cli_now();
    float loss;
    while (s == ICL_OK && bo->inference && keep_timing(bo, passes, t1)) {
        s = icl_model_forward(m, &d.batch, &loss);
        passes++;
    }
    double dt_fwd = cli_now() - t1;
    if (s == ICL_OK) {
        struct rusage ru;
        getrusage(RUSAGE_SELF, &ru);
        double tok_s = (double)d.batch.B * d.batch.T * steps / dt;
        double gflops = tok_s * flops_per_token(m, d.batch.T) / 1e9;
        char pct[16] = "-";
        if (bo->peak > 0)
            snprintf(pct, sizeof pct, "%5.1f%%", 100.0 * gflops / bo->peak);
        char fwd[24] = "-";
        if (passes > 0)
            snprintf(fwd, sizeof fwd, "%.0f", (double)d.batch.B * d.batch.T * passes / dt_fwd);
        if (header)
            print_header();
        printf("| %-9s | %-4s | %9zu | %2d | %3d | %8.1f | %10.0f | %7.1f | %6s | %11.1f | %12s |\n", bc->name,
               icl_backend_name(bo->backend), icl_model_num_params(m), d.batch.B, d.batch.T, 1e3 * dt / steps, tok_s,
               gflops, pct, ru.ru_maxrss / 1024.0, fwd);
        fflush(stdout);
    }
    icl_optimizer_free(o);
    icl_model_free(m);
    row_data_free(&d);
    return s == ICL_OK ? 0 : cli_fail(bc->name, s);
}

/* The sgemm peak, measured in a child; 0 if it failed. */
static double peak_in_child(void) {
    int fds[2];
    if (pipe(fds) != 0)
        return 0.0;
    fflush(stdout);
    pid_t pid = fork();
    if (pid == 0) {
        close(fds[0]);
        double g = sgemm_peak_gflops();
        _exit(write(fds[1], &g, sizeof g) == (ssize_t)sizeof g ? 0 : 1);
    }
    close(fds[1]);
    double g = 0.0;
    if (pid < 0 || read(fds[0], &g, sizeof g) != (ssize_t)sizeof g)
        g = 0.0;
    close(fds[0]);
    if (pid > 0)
        waitpid(pid, NULL, 0);
    return g;
}

/* Run one row in a child; 0 when it printed its row. */
static int row_in_child(const bench_config *bc, const bench_options *bo, int header) {
    fflush(stdout);
    pid_t pid = fork();
    if (pid < 0) {
        perror("icl bench: fork");
        return 1;
    }
    if (pid == 0)
        _exit(bench_row(bc, bo, header));
    int status = 0;
    if (waitpid(pid, &status, 0) != pid || !WIFEXITED(status)) {
        fprintf(stderr, "icl bench: %s: the row's process died\n", bc->name);
        return 1;
    }
    return WEXITSTATUS(status);
}

int cmd_bench(int argc, char **argv) {
    const char *which = "all", *backend_name = NULL;
    float seconds = 3.0f;
    long steps = 0;
    int no_graphs = 0, no_peak = 0, no_inference = 0;
    cli_option opts[] = {
        {"--config", OPT_STRING, &which, "tiny | small | medium | retrieval | han | all [all]"},
        {"--seconds", OPT_FLOAT, &seconds, "timed seconds per config, after 2 warm-up steps [3]"},
        {"--steps", OPT_LONG, &steps, "time exactly this many steps instead of --seconds [0: use --seconds]"},
        {"--backend", OPT_STRING, &backend_name, "cpu | cuda [$ICL_BACKEND or cpu]"},
        {"--no-graphs", OPT_FLAG, &no_graphs, "cuda: launch every kernel instead of replaying a recorded step"},
        {"--no-peak", OPT_FLAG, &no_peak, "cpu: skip the sgemm peak measurement (% peak shows -), e.g. under a profiler"},
        {"--no-inference", OPT_FLAG, &no_inference,
         "skip timing the forward pass alone (fwd tokens/s shows -): a profile then sees the training step only"},
    };
    bench_options bo = {ICL_BACKEND_CPU, seconds, steps, 0.0, 1, 1};
    int rc;
    if (!cli_parse_with_backend(argc, argv, 2, opts, sizeof opts / sizeof opts[0],
                                "usage: icl bench [options]\n\nTraining tokens/s (forward+backward+AdamW), the "
                                "fraction of the measured sgemm peak, and the peak resident memory of each row (each "
                                "runs in its own process).",
                                &backend_name, &bo.backend, &rc))
        return rc;
    if (!(seconds > 0) || steps < 0) {
        fprintf(stderr, "icl bench: --seconds must be > 0 and --steps >= 0\n");
        return 2;
    }
    int selected[N_CONFIGS], n_selected = 0;
    for (int i = 0; i < N_CONFIGS; i++)
        if (strcmp(which, "all") == 0 || strcmp(which, configs[i].name) == 0)
            selected[n_selected++] = i;
    if (!n_selected) {
        fprintf(stderr, "icl bench: unknown --config %s\n", which);
        return 2;
    }
    bo.seconds = seconds;
    bo.steps = steps;
    bo.graphs = !no_graphs;
    bo.inference = !no_inference;
    if (bo.backend == ICL_BACKEND_CPU && !no_peak) {
        bo.peak = peak_in_child();
        printf("sgemm peak (OpenBLAS, 1536^3, best of 4): %.1f GFLOP/s\n\n", bo.peak);
    }
    int printed = 0;
    for (int i = 0; i < n_selected; i++) {
        if (row_in_child(&configs[selected[i]], &bo, !printed))
            return 1;
        printed = 1;
    }
    return 0;
}
