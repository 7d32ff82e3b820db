/* icl forward: run a saved model on an .npy batch and write its outputs, and
 * any --capture'd activations, as .npy. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "icl_cli.h"

#define MAX_CAPTURES 64
#define MAX_CAPTURE_FILES 1024

/* One activation to write: (point, layer) and its file. */
typedef struct {
    icl_point point;
    int layer;
    char path[1100];
} capture_file;

/* Every value of --capture in argv[first..) (other options' values skipped), at most cap; -1 if more. */
static int capture_args(int argc, char **argv, int first, const cli_option *opts, int n_opts, const char **out,
                        int cap) {
    int n = 0;
    for (int i = first; i + 1 < argc; i++) {
        const cli_option *o = NULL;
        for (int k = 0; k < n_opts; k++)
            if (strcmp(opts[k].name, argv[i]) == 0) o = &opts[k];
        if (!o || o->kind == OPT_FLAG)
            continue;
        if (strcmp(argv[i], "--capture") == 0) {
            if (n == cap)
                return -1;
            out[n++] = argv[i + 1];
        }
        i++;
    }
    return n;
}

/* "POINT" or "POINT:LAYER" (POINT canonical or a TransformerLens alias) -> point and layer (-1: every layer
 * of a per-layer point). Prints the error and returns 1 when it does not parse or the layer is out of range. */
static int parse_capture(const char *text, int n_layer, icl_point *p, int *layer) {
    char name[256];
    const char *colon = strrchr(text, ':');
    size_t len = colon ? (size_t)(colon - text) : strlen(text);
    if (len >= sizeof name) {
        fprintf(stderr, "icl forward: --capture %s: name too long\n", text);
        return 1;
    }
    memcpy(name, text, len);
    name[len] = '\0';
    if (icl_point_parse(name, p, layer) != ICL_OK) {
        fprintf(stderr, "icl forward: --capture %s: %s\n", text, icl_last_error());
        return 1;
    }
    if (colon) {
        char *end;
        long l = strtol(colon + 1, &end, 10);
        if (end == colon + 1 || *end || !icl_point_is_per_layer(*p) || (*layer >= 0 && l != *layer) || l < 0 ||
            l > 1000000) {
            fprintf(stderr, "icl forward: --capture %s: \":LAYER\" wants a layer number of a per-layer point%s\n",
                    text, *layer >= 0 ? " (the alias names one already)" : "");
            return 1;
        }
        *layer = (int)l;
    }
    if (icl_point_is_per_layer(*p) && *layer >= n_layer) {
        fprintf(stderr, "icl forward: --capture %s: layer %d out of range [0, %d)\n", text, *layer, n_layer);
        return 1;
    }
    return 0;
}

/* The files of the captures: <out without .npy>.<point>.L<layer>.npy (per-layer points) or
 * <out without .npy>.<point>.npy, each (point, layer) once, every output path checked. Prints the error
 * and returns 2 for a wrong --capture, 1 for a path that cannot be written. */
static int plan_captures(const char *out, const char *const *args, int n_args, int n_layer, capture_file *files,
                         int *n_files) {
    size_t stem = strlen(out);
    if (stem > 4 && strcmp(out + stem - 4, ".npy") == 0)
        stem -= 4;
    *n_files = 0;
    for (int a = 0; a < n_args; a++) {
        icl_point p;
        int layer;
        if (parse_capture(args[a], n_layer, &p, &layer))
            return 2;
        int per_layer = icl_point_is_per_layer(p);
        int first = per_layer ? (layer < 0 ? 0 : layer) : -1, last = per_layer ? (layer < 0 ? n_layer - 1 : layer) : -1;
        for (int l = first; l <= last; l++) {
            int seen = 0;
            for (int k = 0; k < *n_files; k++) seen |= files[k].point == p && files[k].layer == l;
            if (seen)
                continue;
            if (*n_files == MAX_CAPTURE_FILES) {
                fprintf(stderr, "icl forward: more than %d captured tensors\n", MAX_CAPTURE_FILES);
                return 1;
            }
            capture_file *f = &files[(*n_files)++];
            f->point = p;
            f->layer = l;
            int w = per_layer ? snprintf(f->path, sizeof f->path, "%.*s.%s.L%d.npy", (int)stem, out, icl_point_name(p), l)
                              : snprintf(f->path, sizeof f->path, "%.*s.%s.npy", (int)stem, out, icl_point_name(p));
            if (w >= (int)sizeof f->path) {
                fprintf(stderr, "icl forward: --out %s: path too long\n", out);
                return 1;
            }
            if (cli_check_output_file("--capture", f->path))
                return 1;
        }
    }
    return 0;
}

/* Write capture c of a (B,T) batch to path in the point's layout: (B,T,C|F|V), (B,T,NH,HS) for head-split
 * points, (B,NH,T,T) for attention scores/probs (as run_with_cache and hook_pattern). */
static icl_status write_capture(const char *path, const icl_capture *c, int B, int T, int NH) {
    if (c->point == ICL_POINT_ATTN_SCORES || c->point == ICL_POINT_ATTN_PROBS) {
        float *y = malloc(c->n * (size_t)c->width * sizeof *y);
        if (!y)
            return ICL_ERR_NOMEM;
        /* record (b,t) holds [h][s]; the file is [b][h][t][s] */
        for (int b = 0; b < B; b++)
            for (int t = 0; t < T; t++)
                for (int h = 0; h < NH; h++)
                    memcpy(y + (((size_t)b * NH + h) * T + t) * T, c->data + ((size_t)b * T + t) * c->width + (size_t)h * T,
                           (size_t)T * sizeof *y);
        size_t shape[4] = {(size_t)B, (size_t)NH, (size_t)T, (size_t)T};
        icl_status s = icl_npy_write(path, ICL_DTYPE_F32, 4, shape, y);
        free(y);
        return s;
    }
    if (icl_point_has_heads(c->point)) {
        size_t shape[4] = {(size_t)B, (size_t)T, (size_t)NH, (size_t)(c->width / NH)};
        return icl_npy_write(path, ICL_DTYPE_F32, 4, shape, c->data);
    }
    size_t shape[3] = {(size_t)B, (size_t)T, (size_t)c->width};
    return icl_npy_write(path, ICL_DTYPE_F32, 3, shape, c->data);
}

/* Capture every planned (point, layer) of the last forward pass and write it. */
static int write_captures(icl_model *m, const capture_file *files, int n_files, int B, int T) {
    icl_capture_plan *plan = NULL;
    icl_capture_set set = {0};
    icl_status s = icl_capture_plan_create(&plan);
    for (int k = 0; s == ICL_OK && k < n_files; k++)
        s = icl_capture_plan_add(plan, files[k].point, files[k].layer, -1, icl_pos_all(), NULL);
    if (s == ICL_OK)
        s = icl_capture_collect(plan, m, NULL, &set);
    icl_capture_plan_free(plan);
    if (s != ICL_OK)
        return cli_fail("--capture", s);
    int NH = icl_model_config(m)->n_head;
    for (int k = 0; k < n_files; k++)
        if ((s = write_capture(files[k].path, &set.items[k], B, T, NH)) != ICL_OK) {
            icl_capture_set_free(&set);
            return cli_fail(files[k].path, s);
        }
    icl_capture_set_free(&set);
    return 0;
}

int cmd_forward(int argc, char **argv) {
    const char *model_path = NULL, *input = NULL, *out = NULL, *backend_name = NULL, *capture_last = NULL;
    int probs = 0;
    cli_option opts[] = {
        {"--model", OPT_STRING, &model_path, "checkpoint (.safetensors)"},
        {"--input", OPT_STRING, &input, "int32 tokens (B,T) in token mode, float32 (B,T,d_in) in vector mode"},
        {"--out", OPT_STRING, &out, "float32 logits (B,T,V) or outputs (B,T,d_out)"},
        {"--probs", OPT_FLAG, &probs, "token mode: write softmax probabilities instead of logits"},
        {"--capture", OPT_STRING, &capture_last,
         "POINT[:LAYER], repeatable: also write that activation (every layer without :LAYER)"},
        {"--backend", OPT_STRING, &backend_name, "cpu | cuda [$ICL_BACKEND or cpu]"},
    };
    int n_opts = (int)(sizeof opts / sizeof opts[0]);
    int rc = cli_parse(argc, argv, 2, opts, n_opts,
                       "usage: icl forward --model M.safetensors --input X.npy --out Y.npy [--capture POINT[:LAYER]]...\n\n"
                       "Run the model on a batch and write its logits (or outputs). Each --capture POINT writes the\n"
                       "float32 activation at that point next to --out, as <Y>.<point>.L<layer>.npy for per-layer\n"
                       "points (one file per layer without :LAYER) and <Y>.<point>.npy for the others (embed,\n"
                       "ln_final, logits). POINT is a canonical name (resid_post) or a TransformerLens alias\n"
                       "(blocks.1.hook_resid_post); `icl probe points --model M` lists them with their shapes.\n"
                       "Shapes: (B,T,width); q, k, v, head_out (B,T,NH,HS); attn_scores, attn_probs (B,NH,T,T).",
                       NULL, 0, NULL);
    if (rc)
        return rc < 0 ? 2 : 0;
    if (!model_path || !input || !out) {
        fprintf(stderr, "icl forward: --model, --input and --out are required (see --help)\n");
        return 2;
    }
    const char *capture_text[MAX_CAPTURES];
    int n_capture = capture_args(argc, argv, 2, opts, n_opts, capture_text, MAX_CAPTURES);
    if (n_capture < 0) {
        fprintf(stderr, "icl forward: at most %d --capture options\n", MAX_CAPTURES);
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
    capture_file *files = NULL;
    int n_files = 0, result = 1;
    icl_status s;
    if ((s = icl_checkpoint_load_model(model_path, backend, &m)) != ICL_OK) {
        cli_fail(model_path, s);
        goto done;
    }
    if (cli_check_finite_params(model_path, m))
        goto done;
    const icl_config *c = icl_model_config(m);
    if (n_capture) {
        files = malloc(MAX_CAPTURE_FILES * sizeof *files);
        if (!files) {
            fprintf(stderr, "icl forward: out of memory\n");
            goto done;
        }
        if ((result = plan_captures(out, capture_text, n_capture, c->n_layer, files, &n_files)) != 0)
            goto done;
        result = 1;
    }
    if ((s = icl_npy_read(input, &x)) != ICL_OK) {
        cli_fail(input, s);
        goto done;
    }
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
    if (n_files && write_captures(m, files, n_files, b.B, b.T))
        goto done;
    result = 0;
done:
    free(files);
    free(y);
    icl_array_free(&x);
    icl_model_free(m);
    return result;
}
