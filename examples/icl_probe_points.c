/* icl probe points: print the catalogue of named points for a model. */
#include <stdio.h>
#include "icl_cli.h"

int probe_points(int argc, char **argv) {
    const char *model_path = NULL;
    int B = 1, T = 0;
    cli_option opts[] = {
        {"--model", OPT_STRING, &model_path, "checkpoint (.safetensors)"},
        {"--batch", OPT_INT, &B, "batch rows for the shapes [1]"},
        {"--positions", OPT_INT, &T, "positions for the shapes [the model's ctx]"},
    };
    int rc = cli_parse(argc, argv, 3, opts, sizeof opts / sizeof opts[0],
                       "usage: icl probe points --model M.safetensors\n\nNamed points, their aliases and shapes.",
                       NULL, 0, NULL);
    if (rc)
        return rc < 0 ? 2 : 0;
    if (!model_path) {
        fprintf(stderr, "icl probe points: --model is required\n");
        return 2;
    }
    icl_model *m;
    icl_status s = icl_checkpoint_load_model(model_path, ICL_BACKEND_CPU, &m);
    if (s != ICL_OK)
        return cli_fail(model_path, s);
    s = icl_point_catalogue(m, B, T > 0 ? T : icl_model_config(m)->ctx, cli_print_line, NULL);
    icl_model_free(m);
    return s == ICL_OK ? 0 : cli_fail("catalogue", s);
}
