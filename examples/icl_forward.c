/* icl forward: run a saved model on an .npy batch and write its outputs as .npy. */
#include <stdio.h>
#include <stdlib.h>
#include "icl_cli.h"

int cmd_forward(int argc, char **argv) {
    const char *model_path = NULL, *input = NULL, *out = NULL, *backend_name = NULL;
    int probs = 0;
    cli_option opts[] = {
        {"--model", OPT_STRING, &model_path, "checkpoint (.safetensors)"},
        {"--input", OPT_STRING, &input, "int32 tokens (B,T) in token mode, float32 (B,T,d_in) in vector mode"},
        {"--out", OPT_STRING, &out, "float32 logits (B,T,V) or outputs (B,T,d_out)"},
        {"--probs", OPT_FLAG, &probs, "token mode: write softmax probabilities instead of logits"},
        {"--backend", OPT_STRING, &backend_name, "cpu | cuda [$ICL_BACKEND or cpu]"},
    };
    int rc = cli_parse(argc, argv, 2, opts, sizeof opts / sizeof opts[0],
                       "usage: icl forward --model M.safetensors --input X.npy --out Y.npy", NULL, 0, NULL);
    if (rc)
        return rc < 0 ? 2 : 0;
    if (!model_path || !input || !out) {
        fprintf(stderr, "icl forward: --model, --input and --out are required (see --help)\n");
        return 2;
    }
    icl_backend_kind backend;
    if (cli_backend(backend_name, &backend))
        return 2;
    if (cli_check_output_file("--out", out))
        return 1;
    icl_model *m = NULL;
    icl_array x = {0};
    float *y = NULL;
    int result = 1;
    icl_status s;
    if ((s = icl_checkpoint_load_model(model_path, backend, &m)) != ICL_OK) {
        cli_fail(model_path, s);
        goto done;
    }
    if (cli_check_finite_params(model_path, m))
        goto done;
    if ((s = icl_npy_read(input, &x)) != ICL_OK) {
        cli_fail(input, s);
        goto done;
    }
    const icl_config *c = icl_model_config(m);
    int token = c->mode == ICL_MODE_TOKEN;
    int want_ndim = token ? 2 : 3;
    if (x.ndim != want_ndim || x.dtype != (token ? ICL_DTYPE_I32 : ICL_DTYPE_F32) ||
        (!token && (int)x.shape[2] != c->d_in)) {
        fprintf(stderr, "icl forward: %s must be %s for this %s-mode model\n", input,
                token ? "int32 of shape (B,T)" : "float32 of shape (B,T,d_in)", token ? "token" : "vector");
        goto done;
    }
    if (probs && !token) {
        fprintf(stderr, "icl forward: --probs needs a token-mode model\n");
        result = 2;
        goto done;
    }
    icl_batch b = {(int)x.shape[0], (int)x.shape[1], token ? x.data : NULL, token ? NULL : x.data, NULL, NULL, NULL};
    if ((s = icl_model_forward(m, &b, NULL)) != ICL_OK) {
        cli_fail("forward", s);
        goto done;
    }
    int width = token ? c->vocab_size : c->d_out;
    size_t n = x.shape[0] * x.shape[1] * (size_t)width;
    y = malloc(n * sizeof *y);
    if (!y) {
        fprintf(stderr, "icl forward: out of memory\n");
        goto done;
    }
    s = probs ? icl_model_probs(m, y, n) : icl_model_outputs(m, y, n);
    size_t shape[3] = {x.shape[0], x.shape[1], (size_t)width};
    if (s == ICL_OK)
        s = icl_npy_write(out, ICL_DTYPE_F32, 3, shape, y);
    if (s != ICL_OK) {
        cli_fail(out, s);
        goto done;
    }
    result = 0;
done:
    free(y);
    icl_array_free(&x);
    icl_model_free(m);
    return result;
}
