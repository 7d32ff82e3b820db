/* Every checkpoint reader on arbitrary bytes: config, metadata, the
 * description `icl info` prints, the model tensors, and the optimizer and
 * RNG state. Each either succeeds or returns an error. */
#define _GNU_SOURCE
#include <stdlib.h>
#include <string.h>
#include "fuzz_input.h"
#include "icl/icl.h"

static void count_line(void *user, const char *line) {
    *(size_t *)user += strlen(line);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    const char *path = fuzz_input_path(data, size);
    icl_config cfg;
    char buf[256];
    size_t chars = 0;
    icl_checkpoint_read_config(path, &cfg);
    icl_checkpoint_read_meta(path, "icl.step", buf, sizeof buf);
    icl_checkpoint_read_meta(path, "user.task", buf, sizeof buf);
    icl_checkpoint_describe(path, count_line, &chars);
    icl_model *m = NULL;
    if (icl_checkpoint_load_model(path, ICL_BACKEND_CPU, &m) != ICL_OK) return 0;
    icl_optimizer *opt = NULL;
    icl_optim_config oc = icl_optim_config_default();
    if (icl_optimizer_create(&opt, m, &oc) == ICL_OK) {
        icl_rng rng;
        icl_checkpoint_load_state(path, opt, &rng);
        icl_checkpoint_load_state(path, NULL, &rng);
        icl_checkpoint_load_state(path, opt, NULL);
        icl_optimizer_free(opt);
    }
    icl_model_free(m);
    return 0;
}
