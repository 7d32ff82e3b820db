/* The icl tool's option parser (examples/icl_cli.c) over an argv split from
 * the input at NUL bytes: every kind of option, positionals, --help. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include "icl_cli.h"

#define FUZZ_MAX_ARGS 64

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    char *text = malloc(size + 1);
    if (!text) return 0;
    memcpy(text, data, size);
    text[size] = '\0';
    char *argv[FUZZ_MAX_ARGS + 1];
    int argc = 0;
    argv[argc++] = "icl";
    for (size_t i = 0; i < size && argc < FUZZ_MAX_ARGS; i += strlen(text + i) + 1)
        argv[argc++] = text + i;
    argv[argc] = NULL;

    int flag = 0, n = 0;
    long steps = 0;
    float lr = 0;
    const char *out = NULL, *backend = NULL;
    const cli_option opts[] = {
        {"--quiet", OPT_FLAG, &flag, "flag"},
        {"--layers", OPT_INT, &n, "int"},
        {"--steps", OPT_LONG, &steps, "long"},
        {"--lr", OPT_FLOAT, &lr, "float"},
        {"--out", OPT_STRING, &out, "string"},
        {"--backend", OPT_STRING, &backend, "string"},
    };
    const char *positional[3];
    int np = 0;
    int rc = cli_parse(argc, argv, 1, opts, (int)(sizeof opts / sizeof opts[0]), "usage: icl fuzz [options]",
                       positional, 3, &np);
    if (rc == 0) {
        if (np < 0 || np > 3) abort();
        for (int i = 0; i < np; i++)
            if (strlen(positional[i]) > size) abort();
        icl_backend_kind kind;
        cli_backend(backend, &kind);
    }
    free(text);
    return 0;
}
