/* icl info: a checkpoint's metadata and tensor table. */
#include <stdio.h>
#include "icl_cli.h"

int cmd_info(int argc, char **argv) {
    const char *path[1];
    int n = 0;
    int rc = cli_parse(argc, argv, 2, NULL, 0, "usage: icl info M.safetensors\n\nPrint the config and tensors.", path,
                       1, &n);
    if (rc)
        return rc < 0 ? 2 : 0;
    if (n != 1) {
        fprintf(stderr, "icl info: expected one checkpoint path (see --help)\n");
        return 2;
    }
    icl_status s = icl_checkpoint_describe(path[0], cli_print_line, NULL);
    return s == ICL_OK ? 0 : cli_fail(path[0], s);
}
