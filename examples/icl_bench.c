/* icl bench: training throughput (forward + backward + AdamW) of fixed configs,
 * and how much of the machine's measured matrix-multiply peak it reaches. */
#include <cblas.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "icl_cli.h"

typedef struct {
    const char *name;
    int n_layer, d_model, n_head, T, B, V;
} bench_config;

static const bench_config configs[] = {
    {"tiny", 2, 64, 4, 64, 32, 32},
    {"small", 4, 128, 4, 128, 32, 64},
    {"medium", 6, 256, 8, 128, 32, 64},
};

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

static int bench_one(const bench_config *bc, icl_backend_kind backend, double seconds, double peak, int graphs) {
    icl_config c = icl_config_default();
    c.n_layer = bc->n_layer;
    c.d_model = bc->d_model;
    c.n_head = bc->n_head;
    c.ctx = bc->T;
    c.vocab_size = bc->V;
    icl_model *m = NULL;
    icl_optimizer *o = NULL;
    icl_optim_config oc = icl_optim_config_default();
    icl_status s = icl_model_create(&m, &c, backend, 1);
    if (s == ICL_OK)
        s = icl_optimizer_create(&o, m, &oc);
    if (s == ICL_OK)
        icl_optimizer_set_graphs(o, graphs);
    size_t N = (size_t)bc->B * bc->T;
    int32_t *tok = malloc(N * sizeof *tok), *tgt = malloc(N * sizeof *tgt);
    if (s != ICL_OK || !tok || !tgt) {
        free(tok);
        free(tgt);
        icl_optimizer_free(o);
        icl_model_free(m);
        return s != ICL_OK ? cli_fail(bc->name, s) : 1;
    }
    icl_rng r;
    icl_rng_init(&r, 1, "bench");
    for (size_t i = 0; i < N; i++) {
        tok[i] = (int32_t)icl_rng_below(&r, (uint32_t)bc->V);
        tgt[i] = (int32_t)icl_rng_below(&r, (uint32_t)bc->V);
    }
    icl_batch b = {bc->B, bc->T, tok, NULL, tgt, NULL, NULL};
    int steps = 0;
    double t0 = 0;
    /* on the GPU: the first step sizes the buffers, the second records the step graph */
    for (int warm = 0; warm < 2 && s == ICL_OK; warm++)
        s = icl_train_step(m, o, &b, 1, NULL);
    t0 = cli_now();
    while (s == ICL_OK && (cli_now() - t0 < seconds || steps < 3)) {
        s = icl_train_step(m, o, &b, 1, NULL);
        steps++;
    }
    double dt = cli_now() - t0;
    if (s == ICL_OK) {
        double tok_s = (double)N * steps / dt;
        double gflops = tok_s * flops_per_token(m, bc->T) / 1e9;
        printf("| %-6s | %-4s | %9zu | %2d | %3d | %8.1f | %10.0f | %7.1f | %5.1f%% |\n", bc->name,
               icl_backend_name(backend), icl_model_num_params(m), bc->B, bc->T, 1e3 * dt / steps, tok_s, gflops,
               peak > 0 ? 100.0 * gflops / peak : 0.0);
    }
    free(tok);
    free(tgt);
    icl_optimizer_free(o);
    icl_model_free(m);
    return s == ICL_OK ? 0 : cli_fail(bc->name, s);
}

int cmd_bench(int argc, char **argv) {
    const char *which = "all", *backend_name = NULL;
    float seconds = 3.0f;
    int no_graphs = 0;
    cli_option opts[] = {
        {"--config", OPT_STRING, &which, "tiny | small | medium | all [all]"},
        {"--seconds", OPT_FLOAT, &seconds, "timed seconds per config, after 2 warm-up steps [3]"},
        {"--backend", OPT_STRING, &backend_name, "cpu | cuda [$ICL_BACKEND or cpu]"},
        {"--no-graphs", OPT_FLAG, &no_graphs, "cuda: launch every kernel instead of replaying a recorded step"},
    };
    icl_backend_kind backend;
    int rc;
    if (!cli_parse_with_backend(argc, argv, 2, opts, sizeof opts / sizeof opts[0],
                                "usage: icl bench [options]\n\nTraining tokens/s (forward+backward+AdamW) and the "
                                "fraction of the measured sgemm peak.",
                                &backend_name, &backend, &rc))
        return rc;
    double peak = backend == ICL_BACKEND_CPU ? sgemm_peak_gflops() : 0.0;
    if (backend == ICL_BACKEND_CPU)
        printf("sgemm peak (OpenBLAS, 1536^3, best of 4): %.1f GFLOP/s\n\n", peak);
    printf("| config | back | params    | B  | T   | step ms  | tokens/s   | GFLOP/s | %% peak |\n");
    printf("|--------|------|-----------|----|-----|----------|------------|---------|--------|\n");
    int found = 0;
    for (size_t i = 0; i < sizeof configs / sizeof configs[0]; i++) {
        if (strcmp(which, "all") != 0 && strcmp(which, configs[i].name) != 0)
            continue;
        found = 1;
        if (bench_one(&configs[i], backend, seconds, peak, !no_graphs))
            return 1;
    }
    if (!found) {
        fprintf(stderr, "icl bench: unknown --config %s\n", which);
        return 2;
    }
    return 0;
}
