/* Answer rank through a logit lens, written against the public API alone.
 *
 *   answer_rank MODEL [TASK_SPEC [PROMPTS [SEED]]]
 *
 * For every level of the residual stream (0 = embedding, l+1 = after block l)
 * the vector at each prompt's query separator is decoded as if it were the
 * last block's output, softmax(W_U LN_f(h)), and the correct answer token is
 * ranked among the V tokens (1 = top; ties count in its favour). Prints the
 * mean rank over PROMPTS prompts (default 64) of TASK_SPEC (default: the
 * family the model was trained on, its "user.task" metadata), drawn by
 * icl_task_batch_generate from icl_rng_init(SEED, "answer_rank"). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <icl/icl.h>

#define LN_EPS 1e-5 /* the model's layernorm epsilon */

/* Rank of token `want` when h (C) is read through LN_f (w, b) and W_U (V,C). */
static int lens_rank(const float *h, const float *w, const float *b, const float *unembed, int C, int V, int want,
                     double *y) {
    double mean = 0.0, var = 0.0;
    for (int c = 0; c < C; c++) mean += h[c];
    mean /= C;
    for (int c = 0; c < C; c++) var += (h[c] - mean) * (h[c] - mean);
    double rstd = 1.0 / sqrt(var / C + LN_EPS);
    for (int c = 0; c < C; c++) y[c] = (h[c] - mean) * rstd * w[c] + b[c];
    double z_want = 0.0;
    for (int c = 0; c < C; c++) z_want += unembed[(size_t)want * C + c] * y[c];
    int rank = 1;
    for (int v = 0; v < V; v++) {
        double z = 0.0;
        for (int c = 0; c < C; c++) z += unembed[(size_t)v * C + c] * y[c];
        rank += z > z_want;
    }
    return rank;
}

static int fail(const char *what) {
    fprintf(stderr, "answer_rank: %s: %s\n", what, icl_last_error());
    return 1;
}

int main(int argc, char **argv) {
    if (argc < 2 || argc > 5) {
        fprintf(stderr, "usage: answer_rank MODEL [TASK_SPEC [PROMPTS [SEED]]]\n");
        return 2;
    }
    char spec[256];
    int n = argc > 3 ? atoi(argv[3]) : 64;
    unsigned long long seed = argc > 4 ? strtoull(argv[4], NULL, 10) : 1;
    icl_model *m = NULL;
    icl_task_family *f = NULL;
    icl_task_batch tb = {0};
    if (icl_checkpoint_load_model(argv[1], ICL_BACKEND_CPU, &m) != ICL_OK)
        return fail(argv[1]);
    if (argc > 2)
        snprintf(spec, sizeof spec, "%s", argv[2]);
    else if (icl_checkpoint_read_meta(argv[1], "user.task", spec, sizeof spec) != ICL_OK)
        return fail("no TASK_SPEC given and none in the checkpoint");
    if (icl_task_family_create(&f, spec) != ICL_OK)
        return fail(spec);
    const icl_config *cfg = icl_model_config(m);
    int L = cfg->n_layer, C = cfg->d_model, V = cfg->vocab_size;
    if (cfg->mode != ICL_MODE_TOKEN || icl_task_family_mode(f) != ICL_MODE_TOKEN || n < 1) {
        fprintf(stderr, "answer_rank: needs a token-mode model and family, and PROMPTS >= 1\n");
        return 2;
    }
    icl_task_batch_options opt = icl_task_batch_options_default();
    opt.B = n;
    icl_rng rng;
    icl_rng_init(&rng, seed, "answer_rank");
    if (icl_task_batch_generate(f, &opt, &rng, &tb) != ICL_OK || icl_model_forward(m, &tb.batch, NULL) != ICL_OK)
        return fail("forward pass");
    /* LN_f and the unembedding (the token embedding when tied). */
    float *w = malloc((size_t)C * sizeof *w), *b = malloc((size_t)C * sizeof *b);
    float *unembed = malloc((size_t)V * C * sizeof *unembed), *h = malloc((size_t)C * sizeof *h);
    double *y = malloc((size_t)C * sizeof *y);
    if (!w || !b || !unembed || !h || !y)
        return fprintf(stderr, "answer_rank: out of memory\n"), 1;
    if (icl_model_get_tensor(m, "ln_f.weight", w, (size_t)C) != ICL_OK ||
        icl_model_get_tensor(m, "ln_f.bias", b, (size_t)C) != ICL_OK ||
        icl_model_get_tensor(m, cfg->tie_embeddings ? "tok_embed.weight" : "lm_head.weight", unembed,
                             (size_t)V * C) != ICL_OK)
        return fail("unembedding");
    printf("# answer_rank: %s on %s, %d prompts, V %d, chance rank %.1f\n", argv[1], icl_task_family_spec(f), n, V,
           (V + 1) / 2.0);
    printf("level\tafter\tmean_rank\n");
    for (int level = 0; level <= L; level++) {
        icl_point_view view;
        icl_status s = level == 0 ? icl_model_point(m, ICL_POINT_EMBED, -1, &view)
                                  : icl_model_point(m, ICL_POINT_RESID_POST, level - 1, &view);
        double sum = 0.0;
        for (int r = 0; s == ICL_OK && r < n; r++) {
            int q = tb.query_pos[r]; /* its output predicts the first answer token, the next token */
            s = icl_model_point_read(m, &view, -1, r, q, h);
            sum += lens_rank(h, w, b, unembed, C, V, tb.tokens[(size_t)r * tb.T + q + 1], y);
        }
        if (s != ICL_OK)
            return fail("reading the residual stream");
        if (level == 0)
            printf("0\tembed\t%.6f\n", sum / n);
        else
            printf("%d\tblock%d\t%.6f\n", level, level - 1, sum / n);
    }
    free(w);
    free(b);
    free(unembed);
    free(h);
    free(y);
    icl_task_batch_free(&tb);
    icl_task_family_free(f);
    icl_model_free(m);
    return 0;
}
