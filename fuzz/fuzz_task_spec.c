/* Task family specs and the strings read against a family, on arbitrary text.
 * Input lines: spec, task list, role, nth, pool. A spec the library accepts
 * must recreate itself from its canonical form and generate a prompt of
 * every task with the family's default number of examples. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include "icl/icl.h"

/* Prompts of more reals than this are legal (relu_net:d=406) but take
 * seconds each under the sanitizers; the fuzzer would report them as hangs. */
#define FUZZ_MAX_PROMPT_VALUES 65536

static char *next_line(char **cursor) {
    char *line = *cursor;
    if (!line) return NULL;
    char *nl = strchr(line, '\n');
    if (nl) {
        *nl = '\0';
        *cursor = nl + 1;
    } else {
        *cursor = NULL;
    }
    return line;
}

static void exercise(const icl_task_family *f, char *rest) {
    const char *spec = icl_task_family_spec(f);
    icl_task_family *again = NULL;
    if (!spec || icl_task_family_create(&again, spec) != ICL_OK) abort();
    if (strcmp(icl_task_family_spec(again), spec) != 0) abort();
    icl_task_family_free(again);

    int ids[64], n = 0;
    char *list = next_line(&rest);
    if (list) icl_task_family_parse_tasks(f, list, ids, 64, &n);
    char *role = next_line(&rest), *nth = next_line(&rest), *pool = next_line(&rest);
    icl_repr_site site;
    icl_repr_site_parse(f, role, nth, pool, 0, &site);

    int T = 0, shots = icl_task_family_default_examples(f);
    int width = icl_task_family_d_in(f) > 0 ? icl_task_family_d_in(f) : 1;
    if (icl_task_family_prompt_len(f, shots, &T) != ICL_OK || (long)T * width > FUZZ_MAX_PROMPT_VALUES) return;
    icl_gen_options opt = icl_gen_options_default();
    icl_prompt p = {0};
    icl_rng rng;
    icl_rng_init(&rng, 1, "fuzz");
    int tasks = icl_task_family_num_tasks(f);
    for (int t = 0; t < tasks && t < 8; t++)
        if (icl_task_generate(f, t, shots, &opt, &rng, &p) == ICL_OK && p.T != T) abort();
    icl_prompt_free(&p);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    char *text = malloc(size + 1);
    if (!text) return 0;
    memcpy(text, data, size);
    text[size] = '\0';
    char *rest = text;
    char *spec = next_line(&rest);
    icl_task_family *f = NULL;
    if (icl_task_family_create(&f, spec) == ICL_OK) {
        exercise(f, rest);
        icl_task_family_free(f);
    }
    free(text);
    return 0;
}
