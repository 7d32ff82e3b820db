/* The periodic checkpoints of a training run in one directory
 * (include/icl/checkpoint.h, icl_checkpoint_list_steps). */
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "error.h"
#include "icl/checkpoint.h"

void icl_checkpoint_list_free(icl_checkpoint_list *l) {
    if (!l)
        return;
    for (int i = 0; l->paths && i < l->n; i++) free(l->paths[i]);
    free(l->paths);
    free(l->steps);
    memset(l, 0, sizeof *l);
}

/* Step of a file name "step_<digits>.safetensors", or -1. */
static long step_of(const char *name) {
    static const char prefix[] = "step_", suffix[] = ".safetensors";
    size_t len = strlen(name), np = sizeof prefix - 1, ns = sizeof suffix - 1;
    if (len <= np + ns || strncmp(name, prefix, np) != 0 || strcmp(name + len - ns, suffix) != 0)
        return -1;
    long step = 0;
    for (size_t i = np; i < len - ns; i++) {
        if (name[i] < '0' || name[i] > '9' || step > 100000000000L)
            return -1;
        step = step * 10 + (name[i] - '0');
    }
    return step;
}

static icl_status list_append(icl_checkpoint_list *l, int *cap, const char *dir, const char *name, long step) {
    if (l->n == *cap) {
        int c = *cap ? 2 * *cap : 16;
        long *steps = realloc(l->steps, (size_t)c * sizeof *steps);
        if (steps)
            l->steps = steps;
        char **paths = steps ? realloc(l->paths, (size_t)c * sizeof *paths) : NULL;
        if (!paths)
            return icl_fail(ICL_ERR_NOMEM, "icl_checkpoint_list_steps: out of memory");
        l->paths = paths;
        *cap = c;
    }
    size_t size = strlen(dir) + strlen(name) + 2;
    char *path = malloc(size);
    if (!path)
        return icl_fail(ICL_ERR_NOMEM, "icl_checkpoint_list_steps: out of memory");
    snprintf(path, size, "%s/%s", dir, name);
    /* insertion by (step, path): the order never depends on the directory's */
    int i = l->n;
    while (i > 0 && (l->steps[i - 1] > step || (l->steps[i - 1] == step && strcmp(l->paths[i - 1], path) > 0))) {
        l->steps[i] = l->steps[i - 1];
        l->paths[i] = l->paths[i - 1];
        i--;
    }
    l->steps[i] = step;
    l->paths[i] = path;
    l->n++;
    return ICL_OK;
}

icl_status icl_checkpoint_list_steps(const char *dir, icl_checkpoint_list *out) {
    if (!dir || !out)
        return icl_fail(ICL_ERR_INVALID_ARG, "icl_checkpoint_list_steps: NULL argument");
    memset(out, 0, sizeof *out);
    DIR *d = opendir(dir);
    if (!d)
        return icl_fail(ICL_ERR_IO, "cannot read the checkpoint directory %s", dir);
    int cap = 0;
    icl_status s = ICL_OK;
    struct dirent *e;
    while (s == ICL_OK && (e = readdir(d)) != NULL) {
        long step = step_of(e->d_name);
        if (step >= 0)
            s = list_append(out, &cap, dir, e->d_name, step);
    }
    closedir(d);
    if (s == ICL_OK && out->n == 0)
        s = icl_fail(ICL_ERR_INVALID_ARG, "%s holds no step_<N>.safetensors checkpoint", dir);
    if (s != ICL_OK)
        icl_checkpoint_list_free(out);
    return s;
}
