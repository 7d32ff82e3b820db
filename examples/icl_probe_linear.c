/* Placeholder until the probe is written. */
#include <stdio.h>
#include "icl_cli.h"
int probe_linear(int argc, char **argv) {
    (void)argc;
    fprintf(stderr, "icl probe %s: not built yet\n", argv[2]);
    return 2;
}
